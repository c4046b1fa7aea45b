#!/usr/bin/env python3
"""The forwarder's uplink cable is pulled: another till with an uplink takes
over; nothing is lost or booked twice."""
import time

from tmharness import wait_until
from erplab import run_erp, wait_forwarder, wait_all_booked, wait_backlog_zero, assert_once


def uplink_pull_moves_the_forwarder(lab, stub):
    lab.start_all()
    first = wait_forwarder(lab)
    watcher = next(n for n in lab.tills if n != first)
    epoch1 = lab[watcher].status()["forwarder"]["epoch"]
    ids = [lab[n].post_sale()["sale_id"] for n in lab.tills for _ in range(7)]
    wait_all_booked(lab, stub, ids)
    lab.cables[first].pull()
    t0 = time.monotonic()
    second = wait_until(lambda: lab.forwarder(watcher) not in (None, first) and
                        lab.forwarder(watcher), 20, "a new forwarder")
    took = time.monotonic() - t0
    more = [lab[n].post_sale()["sale_id"] for n in ("a", "b", "c") for _ in range(10)]
    wait_all_booked(lab, stub, more)
    wait_until(lambda: lab[first].status()["uplink"]["state"] == "down", 10,
               "the old forwarder to see its uplink down")
    wait_until(lambda: lab.forwarder(first) == second, 10, "the old forwarder to agree")
    assert lab[watcher].status()["forwarder"]["epoch"] > epoch1
    wait_backlog_zero(lab)
    st = assert_once(stub, ids + more)
    tills = {t for i in more for t in st["by_sale"][i]["tills"]}
    assert tills == {second}, tills
    print(f"forwarder moved {first} -> {second} in {took:.2f} s (observed through status polling)")


if __name__ == "__main__":
    run_erp(uplink_pull_moves_the_forwarder, ["a", "b", "c"])
