#!/usr/bin/env python3
"""Tills whose wall clocks are wrong still exchange every sale (issue 11).

Four real tillmeshd on loopback, each under libfaketime:

    a  right clock, stepped back 1 h mid-run (NTP jumping back when the
       uplink returns)
    b  10 min behind (rebooted while NTP was unreachable)
    c  one day ahead
    d  reset to 2000-01-01 (flat RTC battery)

Every sale posted on any till is readable on every other (before and after
the step); a customer edited on every till ends equal everywhere; digests
are equal. Each phase is a separate check, so one run lists every promise
that breaks (and which till lacks what from whom) instead of the first.
"""
from tmharness import (Findings, describe_missing, make_rut, make_sale, missing_sales, run,
                       rut_key, wait_until)

CLOCKS = {"a": "+0", "b": "-10m", "c": "+1d", "d": "@2000-01-01 00:00:00"}
WAIT = 12  # s; a handful of ops crosses loopback in milliseconds


def post_round(lab, ids, per_till, tag):
    for t in lab.tills.values():
        for k in range(per_till):
            s = t.post_sale(make_sale(total=1000 + k))
            assert s["till"] == t.name, s
            ids[s["sale_id"]] = t.name
    print(f"posted {per_till} sale(s) on each till ({tag})", flush=True)


def every_sale_everywhere(lab, ids, tag):
    tills = list(lab.tills.values())
    missing = missing_sales(tills, ids, WAIT)
    assert not missing, (f"{tag}: after {WAIT}s " + describe_missing(missing, CLOCKS) +
                         "\n" + "\n".join(f"-- {t.name} log --\n{t.tail(4)}" for t in tills
                                          if t.name in missing))


def customer_views(lab, key):
    out = {}
    for n, t in lab.tills.items():
        st, js = t.get(f"/v1/customers/{key}")
        out[n] = js if st == 200 else f"HTTP {st}"
    return out


def customers_equal(lab, keys, tag):
    last = {}

    def equal():
        for k in keys:
            v = customer_views(lab, k)
            last[k] = v
            if len({repr(x) for x in v.values()}) != 1 or not isinstance(v["a"], dict):
                return False
        return True

    try:
        wait_until(equal, WAIT, f"{tag}: customers equal on every till")
    except AssertionError:
        diff = {k: v for k, v in last.items() if len({repr(x) for x in v.values()}) != 1}
        raise AssertionError(f"{tag}: customers differ after {WAIT}s: {diff}") from None


def digests_equal(lab, tag):
    last = {}

    def eq():
        last.update({n: t.digest() for n, t in lab.tills.items()})
        return len(set(last.values())) == 1

    try:
        wait_until(eq, WAIT, "equal digests")
    except AssertionError:
        raise AssertionError(f"{tag}: digests differ after {WAIT}s: "
                             f"{ {n: d[:12] for n, d in last.items()} }") from None


def clocks_as_configured(lab):
    """The experiment is what it claims: each till really runs on its fake
    clock (else every other check proves nothing)."""
    for t in lab.tills.values():
        wait_until(t.clock_ok, 10, f"{t.name} to show real time {t.clock_offset_s:+d} s")


def skewed_clocks_exchange_everything(lab):
    lab.full_mesh()
    lab.start_all()
    a = lab["a"]
    clocks_as_configured(lab)
    f = Findings()
    ids = {}
    post_round(lab, ids, 2, "clocks -10 min, +1 day, 2000-01-01")
    f.check("sales from every till reach every till (skewed clocks)",
            every_sale_everywhere, lab, ids, "before the step")

    # One customer edited on every till (a field each, then the same field
    # by all) and one customer per till.
    shared = make_rut(15000000)
    own = {n: make_rut(16000000 + i) for i, n in enumerate(lab.tills)}
    fields = {"a": {"name": "Ana"}, "b": {"email": "ana@example.cl"},
              "c": {"phone": "+56 9 2222 2222"}, "d": {"offers_opt_in": True}}
    for n, t in lab.tills.items():
        st, js = t.request("PUT", f"/v1/customers/{shared}", fields[n])
        assert st == 200, (n, st, js)
        st, js = t.request("PUT", f"/v1/customers/{own[n]}", {"name": f"cliente de {n}"})
        assert st == 200, (n, st, js)
        st, js = t.request("PUT", f"/v1/customers/{shared}", {"loyalty_number": f"L-{n}"})
        assert st == 200, (n, st, js)
    f.check("customers equal on every till (skewed clocks)", customers_equal, lab,
            [rut_key(shared)] + [rut_key(r) for r in own.values()], "before the step")

    # NTP steps a's clock back one hour while it runs.
    a.set_clock("-1h")
    CLOCKS["a"] = "-1h (stepped)"
    post_round(lab, ids, 2, "after a's clock stepped back 1 h")
    for i, (n, t) in enumerate(lab.tills.items()):
        st, js = t.request("PUT", f"/v1/customers/{shared}", {"phone": f"+56 9 3333 000{i}"})
        assert st == 200, (n, st, js)
    f.check("sales from every till reach every till (after a 1 h step back)",
            every_sale_everywhere, lab, ids, "after the step")
    f.check("customers equal on every till (after a 1 h step back)", customers_equal, lab,
            [rut_key(shared)], "after the step")
    f.check("digests equal", digests_equal, lab, "end")
    f.check("sale counts equal", sale_counts, lab, len(ids))
    f.done()


def sale_counts(lab, n):
    got = {name: t.status()["state"]["sales"] for name, t in lab.tills.items()}
    assert set(got.values()) == {n}, f"{n} sales posted; tills hold {got}"


if __name__ == "__main__":
    run(skewed_clocks_exchange_everything, list(CLOCKS), clocks=CLOCKS)
