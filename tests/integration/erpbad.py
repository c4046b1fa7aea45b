"""erpbad - one bad ERP answer against a real store (it_erp_bad_*.py).

Each test: two tills and the stub ERP; a backlog of sales forms while the ERP
is down; then the ERP comes back answering badly (a stub mode). The test
measures the /sales requests the stub received under that answer, from the
stub's own request records, and checks the forwarder's promises:

- requests are bounded: failures back off (capped exponential, jitter), so a
  5 s window holds at most what the backoff schedule allows; a batch refused
  as a whole is split into single sales once, not re-sent in a loop;
- nothing the ERP did not book is acknowledged, on any till;
- a wrong answer is shown in status (erp.error) and parks nothing;
- when the ERP answers well again, every sale is booked once, under one key.
"""
import time
import uuid

from erplab import run_erp, wait_forwarder, wait_all_booked, wait_backlog_zero
from tmharness import make_sale, wait_until

N = 20                 # the backlog posted while the ERP is down
WINDOW_S = 5.0         # measurement window
BACKOFF_MIN_MS = 100   # tmharness's [erp] settings
BACKOFF_MAX_MS = 1000


def backoff_bound(window_s):
    """The most requests a forwarder failing every request can make in a
    window: each wait is at least half the capped exponential step (jitter
    takes the upper half), the window may start at the first failure."""
    t, k, step = 0.0, 1, BACKOFF_MIN_MS
    while True:
        wait = step / 2 / 1000.0
        if t + wait > window_s:
            return k
        t += wait
        k += 1
        step = min(step * 2, BACKOFF_MAX_MS)


def requests_since(stub, since):
    st, js = stub.request("GET", f"/_stub/requests?since={since}")
    assert st == 200, (st, js)
    return js["now"], js["requests"]


def max_in_window(reqs, window_s):
    ats = sorted(r["at"] for r in reqs)
    best, j = 0, 0
    for i, a in enumerate(ats):
        while ats[j] < a - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best


def acked_everywhere(lab):
    return {n: lab[n].status()["state"]["erp_acked"] for n in lab.tills}


def backlog_while_down(lab, stub, ids_extra=()):
    """Warm-up (3 sales booked), then N sales posted on the forwarder while
    the ERP is down, so that they leave in one batch when it comes back."""
    lab.start_all()
    f = lab[wait_forwarder(lab)]
    warm = [f.post_sale()["sale_id"] for _ in range(3)]
    wait_all_booked(lab, stub, warm)
    wait_backlog_zero(lab)
    stub.set_mode("down")
    wait_until(lambda: all(lab[n].status()["uplink"]["state"] == "down" for n in lab.tills), 20,
               "every till to see the ERP down")
    ids = [f.post_sale()["sale_id"] for _ in range(N)]
    for sid in ids_extra:
        f.post_sale(make_sale(sale_id=sid))
    ids += list(ids_extra)
    return f, warm, ids


def measure(stub, mode, **kw):
    """Sets the bad mode and returns (requests in the worst WINDOW_S window,
    requests per minute over the whole measurement, all requests seen)."""
    t0, _ = requests_since(stub, 1e12)
    stub.set_mode(mode, **kw)
    wait_until(lambda: requests_since(stub, t0)[1], 30, f"a /sales request under {mode}")
    time.sleep(WINDOW_S)  # a measurement window, not a wait for a condition
    t1, reqs = requests_since(stub, t0)
    first = reqs[0]["at"]
    span = max(t1 - first, 1e-3)
    per_min = len(reqs) / span * 60
    worst = max_in_window(reqs, WINDOW_S)
    print(f"{mode}: {len(reqs)} /sales requests in {span:.1f} s = {per_min:.0f}/min;"
          f" worst {WINDOW_S:.0f} s window: {worst}")
    return worst, per_min, reqs


def status_error(till):
    return till.status()["erp"].get("error")


def check_recovery(lab, stub, f, ids):
    stub.set_mode("ok")
    wait_all_booked(lab, stub, ids)
    wait_backlog_zero(lab)
    wait_until(lambda: status_error(f) is None, 20, "erp.error to clear after the ERP recovered")
    st = stub.stats(detail=True)
    assert st["mismatches"] == 0, st
    for i in ids:
        v = st["by_sale"][i]
        assert v["booked"] and v["outcomes"].count("accepted") == 1, (i, v)
        assert len(v["keys"]) == 1, f"sale {i} re-sent under another key: {v}"
    for n in lab.tills:
        assert lab[n].status()["erp"]["parked"] == 0, lab[n].status()["erp"]


def wrong_answer(mode, expect_in_error, **kw):
    """The ERP answers every /sales request wrongly: nothing is booked
    (except under foreign200), nothing acknowledged, nothing parked, bounded
    requests, status says why."""
    def test(lab, stub):
        foreign = str(uuid.uuid4())  # a real sale of the store, not yet sent
        if mode == "foreign200":
            kw["sale_id"] = foreign
        f, warm, ids = backlog_while_down(lab, stub)
        acked0 = acked_everywhere(lab)
        worst, _, _ = measure(stub, mode, **kw)
        f = lab[wait_forwarder(lab)]  # the ERP's return may have moved the role
        bound = backoff_bound(WINDOW_S) + 1
        assert worst <= bound, f"{worst} requests in {WINDOW_S} s under {mode}; backoff allows {bound}"
        assert acked_everywhere(lab) == acked0, \
            f"acknowledged while the ERP answered {mode}: {acked0} -> {acked_everywhere(lab)}"
        for n in lab.tills:
            assert lab[n].status()["erp"]["parked"] == 0, \
                f"{n} parked sales under {mode}: {lab[n].status()['erp']}"
        err = wait_until(lambda: status_error(f), 10, f"erp.error in status under {mode}")
        assert expect_in_error in err, f"erp.error {err!r} should mention {expect_in_error!r}"
        # Under foreign200 the answer names `foreign`: post that sale now; it
        # must still be sent (it was never acknowledged).
        if mode == "foreign200":
            f.post_sale(make_sale(sale_id=foreign))
            ids.append(foreign)
        check_recovery(lab, stub, f, ids)
    test.__name__ = f"wrong_answer_{mode}"
    return test


def batch_refused(mode, poisoned=False):
    """The ERP refuses a batch as a whole (4xx) but takes single sales: the
    batch is split once, every good sale booked once under a single-sale
    key; with a poisoned sale, only that one is parked."""
    def test(lab, stub):
        bad = str(uuid.uuid4())
        f, warm, ids = backlog_while_down(lab, stub, ids_extra=[bad] if poisoned else [])
        worst, _, reqs = measure(stub, mode, **({"sale_id": bad} if poisoned else {}))
        f = lab[wait_forwarder(lab)]  # the ERP's return may have moved the role
        good = [i for i in ids if i != bad]
        wait_all_booked(lab, stub, good)
        if poisoned:
            wait_until(lambda: f.status()["erp"]["parked"] == 1, 20, "the poisoned sale parked")
        _, reqs = requests_since(stub, reqs[0]["at"])
        refused = [r for r in reqs if r["status"] != 200]
        # One refusal per batch formed (the backlog is one batch), then singles.
        assert len(refused) <= 1 + (1 if poisoned else 0), \
            f"{len(refused)} refused requests under {mode}: {refused[:5]}"
        assert len(reqs) <= len(ids) + 2, f"{len(reqs)} requests for {len(ids)} sales under {mode}"
        st = stub.stats(detail=True)
        by_key = {r["key"]: r["n"] for r in reqs}
        for i in good:
            v = st["by_sale"][i]
            assert v["booked"] and v["outcomes"].count("accepted") == 1, (i, v)
            assert by_key.get(v["first_key"]) == 1, f"sale {i} not booked alone after the split: {v}"
        if poisoned:
            st_, js = f.get("/v1/erp/parked")
            assert [p["sale_id"] for p in js["parked"]] == [bad] and js["parked"][0]["status"] == 400, js
            assert not st["by_sale"][bad]["booked"]
        for n in lab.tills:
            # Parking is the forwarder's own note: the others still count it.
            want = 1 if poisoned and lab[n] is not f else 0
            wait_until(lambda n=n: lab[n].status()["erp"]["backlog"] == want, 30,
                       f"{n} backlog {want}")
        print(f"{mode}: {len(reqs)} requests for {len(ids)} sales, {len(refused)} refused")
    test.__name__ = f"batch_refused_{mode}" + ("_poisoned" if poisoned else "")
    return test


def health_redirect(lab, stub):
    """A captive portal catches /health too: every till sees its uplink down
    and says why in status (erp.error names the redirect); no sale is sent,
    refused or parked meanwhile; all flow once the portal is gone."""
    lab.start_all()
    f = lab[wait_forwarder(lab)]
    warm = [f.post_sale()["sale_id"] for _ in range(3)]
    wait_all_booked(lab, stub, warm)
    t0, _ = requests_since(stub, 1e12)
    stub.set_mode("redirect302_all")
    for n in lab.tills:
        err = wait_until(lambda n=n: status_error(lab[n]), 20, f"erp.error on {n}")
        assert "302" in err and "/health" in err and "captive.invalid" in err, err
        wait_until(lambda n=n: lab[n].status()["uplink"]["state"] == "down", 20, f"{n} uplink down")
    ids = [f.post_sale()["sale_id"] for _ in range(N)]
    time.sleep(WINDOW_S)  # a measurement window, not a wait for a condition
    _, reqs = requests_since(stub, t0)
    print(f"redirect302_all: {len(reqs)} /sales requests in {WINDOW_S:.0f}+ s")
    assert len(reqs) <= 1, f"/sales requests while /health redirects: {reqs}"
    for n in lab.tills:
        assert lab[n].status()["erp"]["parked"] == 0
    stub.set_mode("ok")
    check_recovery(lab, stub, lab[wait_forwarder(lab)], ids)


def main(test):
    run_erp(test, ["a", "b"])
