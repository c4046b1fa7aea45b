#!/usr/bin/env python3
"""The forwarder's uplink goes silent (the line died outside the store: its
connections are taken, nothing comes back, nothing is refused): the probe's
burst finds it (probes lost in a row, counted in status), the standby every
till named takes over and books the sales rung up after the cut, each once,
under the key the batch was first sent with. Then the line comes back: the
old forwarder's uplink is up again and the role stays where it is (sticky).
Counts and states only; no timing is asserted (bench_failover measures it)."""
from tmharness import wait_until
from erplab import run_erp, wait_forwarder, wait_all_booked, wait_backlog_zero, assert_once


def silent_cut_hands_over_to_the_standby(lab, stub):
    for t in lab.tills.values():
        t.erp_extra = "probe_slow_interval_ms = 1000\n"
    lab.start_all()
    fw = wait_forwarder(lab)
    sb = wait_until(lambda: lab[fw].status()["forwarder"].get("standby"), 10, "a standby")
    seller = next(n for n in lab.tills if n not in (fw, sb))
    assert lab[seller].status()["forwarder"]["standby"] == sb
    ids = [lab[seller].post_sale()["sale_id"] for _ in range(5)]
    wait_all_booked(lab, stub, ids)
    wait_backlog_zero(lab)
    epoch = lab[seller].status()["forwarder"]["epoch"]

    lab.cables[fw].silence()
    more = [lab[seller].post_sale()["sale_id"] for _ in range(5)]
    wait_all_booked(lab, stub, more, timeout=30)
    wait_until(lambda: lab.forwarder(seller) == sb, 10, f"{seller} to name {sb} forwarder")
    s = lab[fw].status()
    assert s["uplink"]["state"] == "down", s["uplink"]
    probe = s["uplink"]["probe"]
    assert probe["lost"] >= 12 and probe["bursts"] >= 1, probe
    st = stub.stats(detail=True)
    tills = {t for i in more for t in st["by_sale"][i]["tills"]}
    assert sb in tills and tills <= {fw, sb}, tills
    # A new epoch, but not always epoch + 1: a new forwarder takes one above
    # every epoch seen, and a claim that lost at start-up (seen under load in
    # CI: a claimed 2 while b kept 1) has used one up.
    assert lab[seller].status()["forwarder"]["epoch"] > epoch
    # whoever sent a sale, it went under one key with one body
    assert_once(stub, ids + more, allow_redelivered=more)

    lab.cables[fw].plug()
    wait_until(lambda: lab[fw].status()["uplink"]["state"] == "up", 20,
               f"{fw}'s uplink to be up again")
    wait_backlog_zero(lab)
    assert lab.forwarder(seller) == sb and lab.forwarder(fw) == sb
    print(f"silent cut of {fw}: {sb} (the standby) took over; {fw}'s probe {probe}")


if __name__ == "__main__":
    run_erp(silent_cut_hands_over_to_the_standby, ["a", "b", "c"])
