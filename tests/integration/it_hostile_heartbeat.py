#!/usr/bin/env python3
"""it_hostile_heartbeat: a trusted till sends three 4 MB heartbeats with
180,000 version vector entries each (issue 13: one froze a till for 49 s,
O(n^2) merge). The till must keep selling: every POST /v1/sales answers 201
within a POS's client timeout while the heartbeats arrive, and status counts
the frames as dropped over the bound. p99 of POST is printed, not asserted.
Then pull requests: 100,000 ranges are dropped over the bound; one range
1..2^63 of the till's own origin is answered with one bounded batch.
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

    rep = hl.finish(hl.start(lab, a, ["pull", "100000"], key, wait_ms=1000))
    trust = a.status()["trust"]
    assert trust["frames_over_bound"] >= 4, f"a pull with 100,000 ranges was not dropped: {trust}"
    assert rep["recv_ops"] == 0, f"a pull with 100,000 ranges was answered: {rep}"
    rep = hl.finish(hl.start(lab, a, ["pull", "1", "1", str(2 ** 63)], key, wait_ms=1000))
    held = a.status()["state"]["local_ops"]
    print(f"a pull of 1..2^63 of a's {held} ops got {rep['recv_ops']} ops back", flush=True)
    assert 0 < rep["recv_ops"] <= 1000 and rep["recv_ops"] <= held, \
        f"a pull of 1..2^63 got {rep['recv_ops']} ops (batch_max_ops 1000, a holds {held})"


if __name__ == "__main__":
    h.run(test_hostile_heartbeat, ["a"])
    sys.exit(0)
