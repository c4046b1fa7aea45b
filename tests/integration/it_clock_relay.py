#!/usr/bin/env python3
"""A far-future op in a relayed batch must not hold back the others
(issue 11): sales of a till whose clock is right reach a till whose clock
is right, even when they travel through a till a day ahead together with
that till's own ops.

Star around b: a, c, d talk only to b. b and c run a day ahead
(libfaketime +1d), a and d on the right clock (no libfaketime). d's sales
reach a only inside b's pull answers, next to b's and c's day-ahead ops.
"""
from tmharness import Findings, describe_missing, make_sale, missing_sales, run, wait_until

CLOCKS = {"b": "+1d", "c": "+1d"}
WAIT = 12


def every_sale_everywhere(lab, ids, only_from=None):
    want = {i: o for i, o in ids.items() if only_from is None or o in only_from}
    missing = missing_sales(list(lab.tills.values()), want, WAIT)
    assert not missing, f"after {WAIT}s " + describe_missing(
        missing, {n: lab[n].clock or "right" for n in lab.tills})


def relayed_batch_not_blocked(lab):
    for n in ("a", "c", "d"):
        lab.connect(n, "b")
    lab.start_all()
    for n in CLOCKS:
        wait_until(lab[n].clock_ok, 10, f"{n} to show real time +1 day")
    f = Findings()
    ids = {}
    for n in ("d", "c", "b", "d", "c", "b", "d", "a"):
        ids[lab[n].post_sale(make_sale())["sale_id"]] = n
    f.check("d's sales (right clock) reach a (right clock) through b (a day ahead)",
            every_sale_everywhere, lab, ids, {"d"})
    f.check("every sale reaches every till", every_sale_everywhere, lab, ids)
    f.check("digests equal", lambda: wait_until(lab.converged, WAIT, "equal digests"))
    # The relay really was a relay: a never talked to c or d.
    peers = sorted(p["name"] for p in lab["a"].status()["peers"])
    assert peers == ["b"], f"a talked to {peers}, the test wants b only"
    f.done()


if __name__ == "__main__":
    run(relayed_batch_not_blocked, ["a", "b", "c", "d"], clocks=CLOCKS)
