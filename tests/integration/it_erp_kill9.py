#!/usr/bin/env python3
"""The forwarder is killed with kill -9 after the ERP booked its batches but
before any acknowledgement reached the other tills (the ERP's answers are
lost). The successor re-sends that batch - it learnt it from the batch intent
op the forwarder replicated before sending - under the same idempotency key;
the ERP replays its answer. Every sale is booked exactly once, and only
sales of that batch are delivered more than once, each under one key."""
from tmharness import wait_until
from erplab import run_erp, wait_forwarder, wait_all_booked, wait_backlog_zero, assert_once


def kill9_between_booking_and_ack(lab, stub):
    lab.start_all()
    # Whichever till forwards is "f"; sales are rung up on another one, "s".
    f = wait_forwarder(lab)
    s, other = [n for n in lab.tills if n != f]
    before = [lab[s].post_sale()["sale_id"] for _ in range(5)]
    wait_all_booked(lab, stub, before)
    wait_backlog_zero(lab)
    # From now on the ERP books what a sends and the answers are lost: a has
    # no acknowledgement to record or replicate.
    stub.set_mode("drop_after_accept")
    ids = [lab[s].post_sale()["sale_id"] for _ in range(8)]
    wait_until(lambda: stub.stats()["outcomes"].get("accepted:dropped", 0) >= 1, 30,
               "the ERP to book a batch and lose the answer")
    lab[f].kill9()
    stub.set_mode("ok")
    successor = wait_until(lambda: lab.forwarder(s) not in (None, f) and lab.forwarder(s),
                           20, "a successor")
    wait_all_booked(lab, stub, ids)
    wait_backlog_zero(lab, [s, other])
    st = stub.stats(detail=True)
    by = st["by_sale"]
    redelivered = {i for i in ids if by[i]["deliveries"] > 1}
    for i in redelivered:
        assert f in by[i]["tills"], f"{i} delivered twice but never by the dead forwarder: {by[i]}"
        assert successor in by[i]["tills"], by[i]
    for i in before + ids:
        assert by[i]["booked"], i
    assert st["mismatches"] == 0
    # Every sale a delivered after the answers were lost was re-sent by the
    # successor (no acknowledgement survived), and none was booked twice.
    from_a = {i for i in ids if f in by[i]["tills"]}
    assert from_a and from_a == redelivered, (from_a, redelivered)
    assert_once(stub, before, allow_redelivered=())
    for i in redelivered:
        assert len(set(by[i]["keys"])) == 1, f"{i} re-sent under a new key: {by[i]}"
        assert any(o == "replay" for o in by[i]["outcomes"]), by[i]
    print(f"{len(redelivered)} sales re-sent by {successor} after the kill, all under the dead "
          f"forwarder's key; all booked once")


if __name__ == "__main__":
    run_erp(kill9_between_booking_and_ack, ["a", "b", "c"])
