#!/usr/bin/env python3
"""it_hostile_revoke: a till's key is removed from the trusted keys file and
tillmeshd gets SIGHUP (issue 13: its connections stayed open, its sales kept
arriving and every sale kept being pushed to it). The hostile till keeps its
connection and keeps pushing ops, one every 30 ms, before and after. After
the reload: status shows it `revoked`, the log says so, none of its later
ops is stored, and the sale sold after the reload is not pushed to it (the
one sold before is: the path works).
"""
import sys

import hostilelib as hl
import tmharness as h


def test_hostile_revoke(lab):
    key = hl.add_hostile_key(lab)
    a = lab["a"]
    lab.start_all()
    proc = hl.start(lab, a, ["flood", "400", "1", "50"], key, wait_ms=3000,
                    opts=("--pace-ms", "30"))
    h.wait_until(lambda: (hl.peer(a, "hostile") or {}).get("state") == "alive", 10,
                 "the hostile till to be alive at a")
    node = h.wait_until(lambda: [e["origin"] for e in a.status()["state"]["vv"]
                                 if e["origin"] != a.status()["node"]["id"]], 10,
                        "a to hold some of the hostile till's ops")[0]
    a.post_sale()  # pushed to the hostile till: it is trusted still
    h.wait_until(lambda: a.status()["state"]["ops"] >= 5, 10, "a few ops")
    hl.revoke_key(lab, a)
    h.wait_until(lambda: (hl.peer(a, "hostile") or {}).get("state") == "revoked", 10,
                 "status to show the hostile till revoked")
    held = hl.held_seq(a, node)
    sold_after = a.post_sale()["sale_id"]
    rep = hl.finish(proc)
    later = hl.held_seq(a, node)
    print(f"hostile pushed {rep['sent_frames']} frames; a held {held} of its ops at the "
          f"reload, {later} at the end; hostile received {rep['recv_pushed_ops']} pushed op(s)",
          flush=True)
    assert later == held, f"a took {later - held} op(s) from the revoked till after the reload"
    assert held < 400, f"the flood ended before the reload ({held}): the test proves nothing"
    assert rep["recv_pushed_ops"] == 1, \
        f"the revoked till got {rep['recv_pushed_ops']} pushed op(s), want only the one sold " \
        f"before the reload (sale {sold_after} was sold after)"
    assert "revoked" in a.tail(400), "the log does not say the key was revoked"
    trust = a.status().get("trust") or {}
    assert trust.get("frames_revoked", 0) > 0, f"frames from the revoked key not counted: {trust}"


if __name__ == "__main__":
    h.run(test_hostile_revoke, ["a"])
    sys.exit(0)
