#!/usr/bin/env python3
"""it_hostile_flood: a trusted till pushes 3,000 valid customer ops as fast
as it can (issue 13: 16 MB on every till in 3 s). With
origin_quota_ops_per_hour = 300 the till stores 300 of them and no more, says
so (status trust block, metric, log), and keeps selling: every POST
/v1/sales answers 201 within a POS's client timeout. That the waiting ops are
pulled again once the quota refills is test_engine's
an_origin_past_its_quota_waits_and_is_pulled_again_when_it_refills.
p99 of POST under the flood is printed, not asserted.
"""
import sys

import hostilelib as hl
import tmharness as h

CLIENT_TIMEOUT_S = 5
QUOTA = 300


def test_hostile_flood(lab):
    key = hl.add_hostile_key(lab)
    a = lab["a"]
    a.extra = f"\n[mesh]\norigin_quota_ops_per_hour = {QUOTA}\n"
    lab.start_all()
    before = a.status()["disk"]["store_bytes"]
    proc = hl.start(lab, a, ["flood", "3000", "1", "200"], key, wait_ms=1500)
    lat = hl.pos_sales_while(a, proc, CLIENT_TIMEOUT_S)
    rep = hl.finish(proc)
    st = a.status()
    grown = st["disk"]["store_bytes"] - before
    print(f"hostile pushed {rep['sent_frames']} frames; store grew {grown / 1e6:.2f} MB with "
          f"{len(lat)} sales; POST p99 {hl.p99(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms",
          flush=True)
    # tm_hostile is done sending, but a may still be working through the
    # frames queued for it (a loaded machine): wait until it has seen them.
    h.wait_until(lambda: a.status()["trust"]["ops_over_quota"] > 0, 20,
                 "a to work through the flood and hit the quota")
    held = hl.held_seq(a, rep["node_id"])
    assert held == QUOTA, f"a stored {held} of the hostile origin's 3000 ops, quota {QUOTA}"
    st = a.status()
    trust = st.get("trust") or {}
    assert trust.get("quota_hit") is True and trust.get("origins_over_quota") == 1, \
        f"status does not say the quota was hit: {trust}"
    over = trust["over_quota"][0]
    assert over["name"] == "hostile" and over["origin"] == rep["node_id"], over
    assert trust.get("message"), f"no sentence for the banner: {trust}"
    code, metrics = a.get("/metrics")
    if code == 404:
        code, metrics = a.get("/v1/metrics")
    assert "tillmesh_origins_over_quota 1" in str(metrics), "metric origins_over_quota is not 1"
    h.wait_until(lambda: "quota of 300 ops an hour" in a.tail(200), 5, "the quota line in the log")


if __name__ == "__main__":
    h.run(test_hostile_flood, ["a"])
    sys.exit(0)
