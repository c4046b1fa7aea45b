#!/usr/bin/env python3
"""The ERP's probe load is O(1) per store (issue 15 item 2): of five idle
tills only the forwarder and the standby probe GET /health at the fast pace,
the three others slowly; and while sales flow the forwarder's answered POSTs
stand in for probes, so it sends (almost) no /health at all.

Counts with generous bounds, never timings: five tills probing at the old
every-till pace send 5 x WINDOW / PACE requests, two send 2 x."""
import time

from tmharness import wait_until
from erplab import run_erp, wait_forwarder, wait_all_booked

PACE_MS = 200          # the fast pace in this test (default 2000)
WINDOW_S = 6.0


def health(stub):
    return stub.stats()["health_by_till"]


def diff(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def probe_load_is_per_store(lab, stub):
    for t in lab.tills.values():
        t.erp_extra = (f"probe_interval_ms = {PACE_MS}\nprobe_slow_interval_ms = 30000\n"
                       "probe_timeout_ms = 1000\n")
    lab.start_all()
    fw = wait_forwarder(lab)

    # 1. idle: the store's count over the window is bounded by what two
    # fast probers send, whatever the number of tills.
    before = health(stub)
    time.sleep(WINDOW_S)
    idle = diff(health(stub), before)
    per_prober = WINDOW_S * 1000 / PACE_MS
    bound = 2 * per_prober * 1.5 + 3 * 2 + 4
    total = sum(idle.values())
    print(f"idle {WINDOW_S:.0f} s, 5 tills: {total} GET /health {idle} "
          f"(two fast probers: ~{2 * per_prober:.0f}; bound {bound:.0f}; every till "
          f"probing fast: ~{5 * per_prober:.0f})")
    assert total <= bound, f"{total} health requests from an idle store of 5 > {bound}: {idle}"

    # ... and the two that probe are the forwarder and the standby that
    # every till names.
    sb = lab[fw].status()["forwarder"].get("standby")
    assert sb and sb != fw, lab[fw].status()["forwarder"]
    for n in lab.tills:
        f = lab[n].status()["forwarder"]
        assert f["standby"] == sb, (n, f)
        assert f["standby_is_self"] == (n == sb), (n, f)
        want = "fast" if n in (fw, sb) else "slow"
        assert lab[n].status()["uplink"]["probe"]["pace"] == want, (n, want)
        if n not in (fw, sb):
            assert idle.get(n, 0) <= 2, f"{n} (neither forwarder nor standby) probed " \
                                        f"{idle.get(n, 0)} times in {WINDOW_S} s: {idle}"
    assert idle.get(fw, 0) >= per_prober / 3, f"the forwarder {fw} hardly probes: {idle}"
    assert idle.get(sb, 0) >= per_prober / 3, f"the standby {sb} hardly probes: {idle}"

    # 2. sales flowing: the forwarder's answered POSTs are its probes.
    seller = next(n for n in lab.tills if n not in (fw, sb))
    before = health(stub)
    ids = []
    t_end = time.monotonic() + WINDOW_S
    while time.monotonic() < t_end:
        ids.append(lab[seller].post_sale()["sale_id"])
        time.sleep(0.05)
    wait_all_booked(lab, stub, ids)
    busy = diff(health(stub), before)
    print(f"{len(ids)} sales over {WINDOW_S:.0f} s: GET /health {busy}")
    assert busy.get(fw, 0) <= 3, \
        f"the forwarder {fw} probed {busy.get(fw, 0)} times while its POSTs were answered: {busy}"
    assert lab[fw].status()["uplink"]["probe"]["requests_as_probes"] > 0


if __name__ == "__main__":
    run_erp(probe_load_is_per_store, ["a", "b", "c", "d", "e"])
