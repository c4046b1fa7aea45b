#!/usr/bin/env python3
"""ERP acknowledgements are bound to the forwarder's intents, and the
forwarder reconciles with the ERP.

1. A forged ERP_ACK from a till that wrote no intent for the sale is kept
   in the log but marks nothing booked: the sale still reaches the ERP.
2. A till that forges both an intent and an ack does mark the sale booked
   for a while; reconcile (POST /sales/status) finds that the ERP does not
   hold it, the acknowledgement is revoked everywhere and the sale sent.
3. The ERP loses a booked sale (restored from a backup): reconcile finds it
   and the sale is booked again.
Fails before: the forged ack made the backlog 0 and the sale never reached
the ERP."""
from erplab import run_erp, wait_all_booked, wait_forwarder
from ownedlab import Forge, ops_held
from tmharness import Findings, wait_until

REAL = ("a", "b")


def backlog(t):
    return t.status()["erp"]["backlog"]


def acks_bound(lab, stub):
    for n in REAL:
        lab[n].erp_extra = "reconcile_interval_ms = 300\nreconcile_batch = 50\n"
        lab[n].start(wait=False)
    a, b = lab["a"], lab["b"]
    for t in (a, b):
        wait_until(t.alive_api, 30, f"{t.name} API")
    wait_forwarder(lab)
    for n in REAL:  # nothing reaches the ERP while the forged ops arrive
        lab.cables[n].pull()
    wait_until(lambda: all(lab.forwarder(n) is None for n in REAL), 15, "no forwarder")

    evil = Forge(lab, "evil")
    s1 = a.post_sale()["sale_id"]
    s2 = a.post_sale()["sale_id"]
    wait_until(lambda: b.has_sale(s1) and b.has_sale(s2), 30, "both sales on b")
    before = {t.name: ops_held(t) for t in (a, b)}
    evil.run([a, b], seconds=2, ops=[
        {"origin": evil.node_id, "seq": 1, "hlc": 1, "ack": {"ids": [s1], "key": "k-evil", "epoch": 1}},
        {"origin": evil.node_id, "seq": 2, "hlc": 2, "intent": {"ids": [s2], "key": "k2", "epoch": 1}},
        {"origin": evil.node_id, "seq": 3, "hlc": 3, "ack": {"ids": [s2], "key": "k2", "epoch": 1}},
    ])
    for t in (a, b):
        wait_until(lambda: ops_held(t) >= before[t.name] + 3, 20, f"{t.name} to hold evil's ops")

    f = Findings()

    def forged_ack_ignored():
        for t in (a, b):
            assert backlog(t) >= 1, f"{t.name}: backlog {backlog(t)}: the forged ack counted"
    f.check("an ack without its own intent marks nothing booked", forged_ack_ignored)

    for n in REAL:
        lab.cables[n].plug()
    f.check("both sales reach the ERP (the second through reconcile)",
            lambda: wait_all_booked(lab, stub, [s1, s2], timeout=30))

    def reconcile_reported():
        fwd = lab[wait_forwarder(lab)]
        rec = wait_until(lambda: (lambda r: r["missing"] >= 1 and r)(
            fwd.status()["erp"]["reconcile"]), 15, "reconcile to report the missing sale")
        assert rec["checked"] >= 1 and not rec["off"], rec
    f.check("status reports what reconcile found", reconcile_reported)

    def lost_sale_resent():
        n0 = stub.stats(detail=True)["by_sale"][s1]["deliveries"]
        stub.forget([s1])
        wait_until(lambda: (lambda e: e["booked"] and e["deliveries"] > n0)(
            stub.stats(detail=True)["by_sale"][s1]), 30, "the lost sale booked again")
        for t in (a, b):
            wait_until(lambda: backlog(t) == 0, 30, f"{t.name}'s backlog to drain")
    f.check("a sale the ERP lost is sent again", lost_sale_resent)
    f.done()


if __name__ == "__main__":
    run_erp(acks_bound, ["a", "b", "evil"])
