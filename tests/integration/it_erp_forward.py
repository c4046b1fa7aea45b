#!/usr/bin/env python3
"""3 tills, ERP up: one forwarder, every sale from every till booked once."""
from erplab import run_erp, wait_forwarder, wait_all_booked, wait_backlog_zero, assert_once


def every_sale_booked_once(lab, stub):
    lab.start_all()
    fwd = wait_forwarder(lab)
    ids = [lab[n].post_sale()["sale_id"] for n in ("a", "b", "c") for _ in range(20)]
    wait_all_booked(lab, stub, ids)
    wait_backlog_zero(lab)
    st = assert_once(stub, ids)
    assert st["redeliveries"] == 0, st
    by = st["by_sale"]
    tills = {t for i in ids for t in by[i]["tills"]}
    assert tills == {fwd}, f"sales were forwarded by {tills}, the forwarder is {fwd}"
    s = lab["a"].status()
    assert s["uplink"]["state"] == "up" and s["forwarder"]["epoch"] >= 1, s
    assert s["erp"]["last_forward_at"] or fwd != "a", s["erp"]


if __name__ == "__main__":
    run_erp(every_sale_booked_once, ["a", "b", "c"])
