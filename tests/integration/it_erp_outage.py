#!/usr/bin/env python3
"""The ERP is down for a while (30 s by default) while every till sells;
when it comes back, every sale is booked once."""
import os
import time

from tmharness import wait_until
from erplab import run_erp, wait_forwarder, wait_all_booked, wait_backlog_zero, assert_once

DOWN_S = float(os.environ.get("TM_IT_ERP_DOWN_S", "30"))


def erp_outage_then_recovery(lab, stub):
    lab.start_all()
    wait_forwarder(lab)
    stub.set_mode("down")
    for n in lab.tills:
        wait_until(lambda n=n: lab[n].status()["uplink"]["state"] == "down", 20, f"{n} uplink down")
    assert lab["a"].status()["forwarder"]["name"] is None
    ids = []
    t_end = time.monotonic() + DOWN_S
    while time.monotonic() < t_end:  # P5: selling goes on throughout
        for n in lab.tills:
            ids.append(lab[n].post_sale()["sale_id"])
        time.sleep(0.1)
    s = lab["b"].status()
    assert s["erp"]["backlog"] > 0 and s["erp"]["oldest_unsent_age_s"] is not None, s["erp"]
    assert stub.stats()["booked"] == 0
    stub.set_mode("ok")
    wait_forwarder(lab)
    wait_all_booked(lab, stub, ids, timeout=120)
    wait_backlog_zero(lab)
    assert_once(stub, ids)
    print(f"{len(ids)} sales rung up during a {DOWN_S:.0f} s ERP outage, each booked once")


if __name__ == "__main__":
    run_erp(erp_outage_then_recovery, ["a", "b", "c"])
