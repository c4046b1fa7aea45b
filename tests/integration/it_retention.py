#!/usr/bin/env python3
"""Retention: sales the ERP booked, older than retention_days, are forgotten;
a till that was away longer than the retention is brought level by stubs.

a's clock is moved 100 days ahead (libfaketime) so that its sales are past
the default 90-day retention: it forgets them (GET 404) but keeps their
place in the log, so vectors and digests do not change. c, a brand-new till,
catches up from a alone and ends with a's digest without the old sales; b,
which kept everything, rejoins and nothing comes back at a.
"""
from erplab import run_erp, wait_all_booked, wait_backlog_zero, wait_forwarder
from tmharness import wait_until


def booked_sales_are_forgotten_and_stubs_bring_a_new_till_level(lab, stub):
    a, b, c = lab["a"], lab["b"], lab["c"]
    a.start()
    b.start()
    wait_forwarder(lab)
    old = [a.post_sale()["sale_id"] for _ in range(10)]
    wait_all_booked(lab, stub, old)
    wait_backlog_zero(lab, ["a", "b"])
    b.stop()
    a.stop()

    a.clock = "+100d"  # 100 days later, alone in the store
    a.start()
    wait_until(lambda: a.status()["disk"]["sales_compacted"] == 10, 30,
               "a to forget the 10 booked sales past retention")
    for i in old:
        assert not a.has_sale(i), f"sale {i} still readable on a after retention"
    digest_after = a.digest()
    a.stop()

    a.clock = None
    a.start()
    assert a.digest() == digest_after, "restart changed a's digest"
    c.start()
    wait_until(lambda: lab.converged(["a", "c"]), 30, "c (new, empty) level with a")
    assert not any(c.has_sale(i) for i in old), "c got sales a had forgotten"
    vv_a = sorted((e["origin"], e["seq"]) for e in a.status()["state"]["vv"])
    vv_c = sorted((e["origin"], e["seq"]) for e in c.status()["state"]["vv"])
    assert vv_a == vv_c, f"vectors differ: a {vv_a}, c {vv_c}"
    new = a.post_sale()["sale_id"]
    wait_until(lambda: c.has_sale(new), 20, "a new sale from a on c")

    b.start()  # kept every old sale: it has nothing a lacks, and nothing comes back
    wait_until(lambda: lab.converged(["a", "b", "c"]), 30, "equal digests on a, b and c")
    assert all(b.has_sale(i) for i in old), "b lost sales it never compacted"
    assert not any(a.has_sale(i) for i in old), "forgotten sales came back at a"


if __name__ == "__main__":
    run_erp(booked_sales_are_forgotten_and_stubs_bring_a_new_till_level, ["a", "b", "c"])
