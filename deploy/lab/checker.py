"""checker - compares the ground truth (every sale a till acknowledged with
201) with every till and the ERP stub, after waiting (bounded) for the store
to settle. Reports:

  acknowledged        sales in the ground truth
  missing_on_till     per till, acknowledged sales it does not hold   (must be 0)
  missing_at_erp      acknowledged sales the ERP has not booked       (must be 0)
  booked_twice        sales the ERP booked more than once             (must be 0)
  would_double_book   sales delivered again under a new key after being
                      booked (answered `duplicate`; an ERP without the
                      sale_id dedup of docs/erp.md would book them twice)
  redeliveries        deliveries of an already booked sale (allowed, counted),
                      also as a share of the acknowledged sales, and those
                      under another key than the one that booked the sale
  digests_equal       every till's state digest equal
  converge_s          seconds from `since` (the last heal) to convergence
  clocks              per till: the wall clock the lab gave it and what the
                      till says of it (status "clock", once tillmeshd has it);
                      reported, not judged: wrong clocks must change nothing

    rep = check(lab, truth, since=t_heal, timeout=90)
    print(format_report(rep)); sys.exit(0 if rep["ok"] else 1)
"""
import time


def _settled(lab, ids):
    st = {n: lab.status(n) for n in lab.names}
    if any(s is None for s in st.values()):
        return False
    if len({s["state"]["digest"] for s in st.values()}) != 1:
        return False
    if any(s["erp"]["backlog"] for s in st.values()):
        return False
    es = lab.erp_stats(detail=True)
    by = es.get("by_sale", {})
    return all(by.get(i, {}).get("booked") for i in ids)


def check(lab, truth, since=None, timeout=90.0, interval=0.5):
    ids = [r["sale_id"] for r in truth]
    t0 = time.time()
    since = since or t0
    converged_at = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _settled(lab, ids):
                converged_at = time.time()
                break
        except OSError:
            pass
        time.sleep(interval)
    rep = {"acknowledged": len(ids), "violations": []}
    idset = set(ids)
    miss = {}
    for n in lab.names:
        try:
            held = lab.sale_ids(n)
            miss[n] = len(idset - held)
        except (OSError, AssertionError) as e:
            miss[n] = None
            rep["violations"].append(f"till {n} unreadable: {e}")
    rep["missing_on_till"] = miss
    es = lab.erp_stats(detail=True)
    by = es.get("by_sale", {})
    rep["missing_at_erp"] = sum(1 for i in ids if not by.get(i, {}).get("booked"))
    rep["booked_twice"] = sum(1 for e in by.values() if e["outcomes"].count("accepted") > 1)
    rep["would_double_book"] = sum(1 for e in by.values() if "duplicate" in e["outcomes"])
    rep["redeliveries"] = es.get("redeliveries", 0)
    rep["redeliveries_new_key"] = es.get("redeliveries_new_key", 0)
    rep["redeliveries_pct"] = round(100.0 * rep["redeliveries"] / max(1, len(ids)), 1)
    # A few sales re-delivered under a new key, with who sent them when: what
    # to look at in the tills' logs.
    rep["new_key_examples"] = [
        {"sale_id": i, "tills": e["tills"], "epochs": e["epochs"], "outcomes": e["outcomes"]}
        for i, e in by.items() if len(e.get("keys", [])) > 1 and e["redeliveries"]][:3]
    rep["erp_booked"] = es.get("booked", 0)
    rep["erp_deliveries"] = es.get("deliveries", 0)
    rep["erp_mismatches"] = es.get("mismatches", 0)
    dg = {n: (lab.status(n) or {}).get("state", {}).get("digest") for n in lab.names}
    rep["digests_equal"] = len(set(dg.values())) == 1 and None not in dg.values()
    rep["converge_s"] = round(converged_at - since, 2) if converged_at else None
    rep["clocks"] = clocks(lab)
    for n, m in miss.items():
        if m:
            rep["violations"].append(f"{m} acknowledged sales missing on {n}")
    if rep["missing_at_erp"]:
        rep["violations"].append(f"{rep['missing_at_erp']} acknowledged sales not booked at the ERP")
    if rep["booked_twice"]:
        rep["violations"].append(f"{rep['booked_twice']} sales booked twice at the ERP")
    if rep["erp_mismatches"]:
        rep["violations"].append(f"{rep['erp_mismatches']} deliveries with a changed body")
    if not rep["digests_equal"]:
        rep["violations"].append(f"digests differ: {dg}")
    if converged_at is None:
        rep["violations"].append(f"not settled within {timeout}s")
    rep["ok"] = not rep["violations"]
    return rep


def clocks(lab):
    """{till: {"set": "-10m", "offset_ms": .., "skewed": ..}} when the lab
    runs tills under libfaketime and any clock is not right; else {}."""
    if not getattr(lab, "clocks", None) or not any(lab.clocks.values()):
        return {}
    out = {}
    for n in lab.names:
        c = (lab.status(n) or {}).get("clock")
        c = c if isinstance(c, dict) else {}
        out[n] = {"set": lab.clock_label(n), "offset_ms": c.get("offset_ms"),
                  "skewed": c.get("skewed")}
    return out


def format_report(rep):
    mt = " ".join(f"{n}={m}" for n, m in rep["missing_on_till"].items())
    out = [f"acknowledged sales:   {rep['acknowledged']}",
           f"missing on tills:     {mt}",
           f"missing at ERP:       {rep['missing_at_erp']}",
           f"booked twice at ERP:  {rep['booked_twice']}",
           f"re-deliveries:        {rep['redeliveries']} = {rep['redeliveries_pct']} % of sales, "
           f"{rep['redeliveries_new_key']} under a new key (allowed; would-double-book at a "
           f"non-deduplicating ERP: {rep['would_double_book']})",
           f"ERP booked/deliveries:{rep['erp_booked']}/{rep['erp_deliveries']}",
           f"digests equal:        {rep['digests_equal']}",
           f"converged after heal: {rep['converge_s']} s"]
    for ex in rep.get("new_key_examples", []):
        out.append(f"  new key: {ex['sale_id']} tills={','.join(t or '?' for t in ex['tills'])} "
                   f"epochs={','.join(str(x) for x in ex['epochs'])} "
                   f"outcomes={','.join(ex['outcomes'])}")
    if rep.get("clocks"):
        out.append("clocks (set; says):   " + "  ".join(
            f"{n}={c['set']}" + ("" if c["offset_ms"] is None else " ({}{:+.0f}s)".format(
                "skewed " if c["skewed"] else "", c["offset_ms"] / 1000))
            for n, c in rep["clocks"].items()))
    out.append("RESULT: " + ("OK" if rep["ok"] else "VIOLATIONS: " + "; ".join(rep["violations"])))
    return "\n".join(out)
