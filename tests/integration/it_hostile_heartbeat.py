#!/usr/bin/env python3
"""it_hostile_heartbeat: a trusted till sends three 4 MB heartbeats with
180,000 version vector entries each (issue 13: one froze a till for 49 s,
O(n^2) merge). The till must keep selling: every POST /v1/sales answers 201
within a POS's client timeout while the heartbeats arrive, and status counts
the frames as dropped over the bound. p99 of POST is printed, not asserted.
"""
import sys

import hostilelib as hl
import tmharness as h

CLIENT_TIMEOUT_S = 5


def test_hostile_heartbeat(lab):
    key = hl.add_hostile_key(lab)
    a = lab["a"]
    lab.start_all()
    proc = hl.start(lab, a, ["heartbeat", "180000", "3", "2000"], key, wait_ms=1000)
    lat = hl.pos_sales_while(a, proc, CLIENT_TIMEOUT_S)
    rep = hl.finish(proc)
    print(f"hostile sent {rep['sent_frames']} frames, {rep['sent_bytes'] / 1e6:.1f} MB; "
          f"{len(lat)} sales, POST p99 {hl.p99(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms",
          flush=True)
    assert rep["sent_bytes"] > 3 * 3.9e6, f"the big heartbeats did not leave: {rep}"
    trust = a.status().get("trust") or {}
    assert trust.get("frames_over_bound", 0) >= 3, \
        f"status does not count the 3 over-bound heartbeats: {trust}"
    p = hl.peer(a, "hostile")
    assert p and p.get("frames_over_bound", 0) >= 3, f"peer entry: {p}"


if __name__ == "__main__":
    h.run(test_hostile_heartbeat, ["a"])
    sys.exit(0)
