#!/usr/bin/env python3
"""Hand-over of the forwarder role between two real tills, with the stub ERP
(issue 15, item 5: fewer re-deliveries).

booked_then_killed: the forwarder is killed with kill -9 after the ERP
booked its batch but before the answer reached it (the stub drops it), so
no acknowledgement exists anywhere; only its batch intent replicated. The
successor asks the ERP what it holds of that batch (POST /sales/status) and
acknowledges it: it sends none of those sales again. (Before: it re-sent
the batch under the same key and the ERP replayed its answer, one
re-delivery per sale.)

intent_then_killed: the forwarder is killed while its POST is held by the
ERP unbooked (after the intent replicated). The successor learns the ERP
holds none of the batch and sends it whole under the ORIGINAL key: the sales
are booked under the key of the first attempt, no sale under two keys.
"""
from tmharness import wait_until
from erplab import run_erp, wait_forwarder, wait_all_booked, wait_backlog_zero


def _setup(lab):
    lab.start_all()
    f = wait_forwarder(lab)
    s = next(n for n in lab.tills if n != f)
    return f, s


def booked_then_killed(lab, stub):
    f, s = _setup(lab)
    stub.set_mode("drop_after_accept")
    ids = [lab[s].post_sale()["sale_id"] for _ in range(6)]
    wait_until(lambda: stub.stats()["outcomes"].get("accepted:dropped", 0) >= 1, 30,
               "the ERP to book a batch and lose the answer")
    lab[f].kill9()
    stub.set_mode("ok")
    wait_until(lambda: lab.forwarder(s) == s, 20, f"{s} to take over")
    wait_all_booked(lab, stub, ids)
    wait_backlog_zero(lab, [s])
    st = stub.stats(detail=True)
    by = st["by_sale"]
    booked_by_f = [i for i in ids if f in by[i]["tills"]]
    assert booked_by_f, "the dead forwarder delivered nothing"
    resent = [i for i in booked_by_f if s in by[i]["tills"]]
    assert not resent, (f"{len(resent)} sale(s) the ERP had booked were sent again by the "
                        f"successor: {by[resent[0]]}")
    assert st["redeliveries_new_key"] == 0, st
    assert st["mismatches"] == 0, st
    for i in ids:
        assert len(by[i]["keys"]) == 1, f"{i} sent under two keys: {by[i]}"
    status = lab[s].status()["erp"]
    print(f"{len(booked_by_f)} sales booked before the kill; {s} asked the ERP "
          f"({st['status_requests']} /sales/status) and re-sent none; erp status: "
          f"{ {k: status.get(k) for k in ('backlog', 'in_flight')} }")


def intent_then_killed(lab, stub):
    f, s = _setup(lab)
    stub.set_mode("stall")
    ids = [lab[s].post_sale()["sale_id"] for _ in range(6)]
    wait_until(lambda: stub.stats()["outcomes"].get("stall", 0) >= 1, 30,
               "the forwarder's POST to reach the ERP (held unbooked)")
    # The intent went to the other till before the POST.
    lab[f].kill9()
    stub.set_mode("ok")
    wait_until(lambda: lab.forwarder(s) == s, 20, f"{s} to take over")
    wait_all_booked(lab, stub, ids)
    wait_backlog_zero(lab, [s])
    st = stub.stats(detail=True)
    by = st["by_sale"]
    stalled = [i for i in ids if "stall" in by[i]["outcomes"]]
    assert stalled, "no sale was in the held POST"
    for i in stalled:
        v = by[i]
        assert v["booked"] and len(v["keys"]) == 1 and v["first_key"] == v["keys"][0], \
            f"{i} not booked under the key of its first attempt: {v}"
        assert s in v["tills"], v
    assert st["redeliveries"] == 0 and st["redeliveries_new_key"] == 0, st
    print(f"{len(stalled)} sales held unbooked when {f} died were sent by {s} under their "
          f"original key; no re-delivery")


if __name__ == "__main__":
    run_erp(booked_then_killed, ["a", "b"])
    run_erp(intent_then_killed, ["a", "b"])
