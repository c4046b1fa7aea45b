#!/usr/bin/env python3
"""The forwarder is killed with kill -9 after the ERP booked its batches but
before any acknowledgement reached the other tills (the ERP's answers are
lost). The successor learns of that batch from the batch intent op the
forwarder replicated before sending, asks the ERP what it holds of it
(POST /sales/status) and acknowledges those sales without sending them
again. Every sale is booked exactly once, the successor re-delivers none,
and a sale delivered more than once (the dead forwarder's own retries) went
under one key."""
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
    for i in before + ids:
        assert by[i]["booked"], i
    assert st["mismatches"] == 0
    assert_once(stub, before, allow_redelivered=())
    # What a delivered after the answers were lost was booked; the successor
    # asked the ERP and sent none of it again.
    from_a = {i for i in ids if f in by[i]["tills"]}
    assert from_a, "the dead forwarder delivered nothing"
    for i in from_a:
        assert successor not in by[i]["tills"], f"{i} re-sent by the successor: {by[i]}"
    for i in ids:
        assert len(set(by[i]["keys"])) == 1, f"{i} re-sent under a new key: {by[i]}"
    print(f"{len(from_a)} sales booked before the kill, acknowledged by {successor} from the "
          f"ERP's POST /sales/status without a re-send; all booked once")


if __name__ == "__main__":
    run_erp(kill9_between_booking_and_ack, ["a", "b", "c"])
