#!/usr/bin/env python3
"""A till with a valid key cannot capture the forwarder role.

1. Forged heartbeats (uplink up, priority 0xFFFFFFFF, epoch 2^40, claiming
   the role): every till elected it and nothing was forwarded again. Now a
   priority or epoch outside the configured range makes no candidate.
2. A stuck "up": a plausible claim (the top priority of the range) by a
   till that never forwards. Its claim wins at first; the backlog does not
   shrink, so every till passes it over after forwarder_stall_ms and a real
   till sends the sales, while the stuck one still claims.
Fails before: the forged till kept the role and no sale reached the ERP."""
from erplab import run_erp, wait_all_booked, wait_forwarder
from ownedlab import Forge
from tmharness import wait_until

REAL = ("a", "b")


def forwarder_names(lab):
    return {lab.forwarder(n) for n in REAL}


def election_bound(lab, stub):
    for n in REAL:
        lab[n].erp_extra = "forwarder_stall_ms = 1500\n"
        lab[n].start(wait=False)
    for n in REAL:
        wait_until(lab[n].alive_api, 30, f"{n} API")
    evil = Forge(lab, "evil")
    real = [lab[n] for n in REAL]
    wait_forwarder(lab)

    # 1. Out of range.
    p = evil.run(real, heartbeat={"uplink": "up", "priority": 0xFFFFFFFF, "epoch": 1 << 40,
                                  "claims": True}, seconds=8, wait=False)
    try:
        def heard():
            peers = {x["name"]: x for x in lab["a"].status()["peers"]}
            e = peers.get("evil")
            # (priority: shown in status since elections are bound to keys)
            return e and e["state"] == "alive" and e.get("priority", 0xFFFFFFFF) == 0xFFFFFFFF and e
        wait_until(heard, 10, "a to hear evil's forged heartbeats (the test's control)")
        ids = [lab["a"].post_sale()["sale_id"] for _ in range(5)]
        wait_all_booked(lab, stub, ids, timeout=20)
        names = forwarder_names(lab)
        assert "evil" not in names, f"the forged heartbeat captured the role: {names}"
        ep = lab["a"].status()["forwarder"]["epoch"]
        assert ep < 1 << 32, f"epoch {ep} taken from a forged heartbeat"
    finally:
        p.kill()
        p.wait()

    # 2. A plausible claim by a till that never forwards.
    # (epoch 1: between claimants the oldest claim wins, tm_elect.h; a
    # claim newer than the forwarder's would not win even for a moment)
    p = evil.run(real, heartbeat={"uplink": "up", "priority": 1000000, "epoch": 1,
                                  "claims": True}, seconds=25, wait=False)
    try:
        wait_until(lambda: forwarder_names(lab) == {"evil"}, 10,
                   "evil's plausible claim to win at first (the test's control)")
        ids = [lab["b"].post_sale()["sale_id"] for _ in range(5)]
        wait_all_booked(lab, stub, ids, timeout=20)
        assert p.poll() is None, "evil stopped claiming before the sales were booked"
        names = forwarder_names(lab)
        assert "evil" not in names, names
        logs = "".join(open(lab[n].log_path, errors="replace").read() for n in REAL)
        assert "passed over" in logs, "no till logged that it passed the stuck forwarder over"
    finally:
        p.kill()
        p.wait()


if __name__ == "__main__":
    run_erp(election_bound, ["a", "b", "evil"])
