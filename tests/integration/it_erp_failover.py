#!/usr/bin/env python3
"""The forwarder's uplink cable is pulled: another till with an uplink takes
over; nothing is lost or booked twice."""
import time

from tmharness import wait_until
from erplab import run_erp, wait_forwarder, wait_all_booked, wait_backlog_zero, assert_once


def uplink_pull_moves_the_forwarder(lab, stub):
    lab["c"].priority = 200  # the till with the best uplink
    lab.start_all()
    first = wait_forwarder(lab)
    assert first == "c", first
    epoch1 = lab["a"].status()["forwarder"]["epoch"]
    ids = [lab[n].post_sale()["sale_id"] for n in ("a", "b") for _ in range(10)]
    wait_all_booked(lab, stub, ids)
    lab.cables["c"].pull()
    t0 = time.monotonic()
    second = wait_until(lambda: lab.forwarder("a") not in (None, "c") and lab.forwarder("a"),
                        20, "a new forwarder")
    took = time.monotonic() - t0
    more = [lab[n].post_sale()["sale_id"] for n in ("a", "b", "c") for _ in range(10)]
    wait_all_booked(lab, stub, more)
    wait_until(lambda: lab["c"].status()["uplink"]["state"] == "down", 10, "c to see its uplink down")
    assert lab["c"].status()["forwarder"]["name"] == second
    assert lab["a"].status()["forwarder"]["epoch"] > epoch1
    wait_backlog_zero(lab)
    st = assert_once(stub, ids + more)
    tills = {t for i in more for t in st["by_sale"][i]["tills"]}
    assert tills == {second}, tills
    print(f"forwarder moved c -> {second} in {took:.2f} s (observed through status polling)")


if __name__ == "__main__":
    run_erp(uplink_pull_moves_the_forwarder, ["a", "b", "c"])
