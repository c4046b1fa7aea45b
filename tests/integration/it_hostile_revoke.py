#!/usr/bin/env python3
"""it_hostile_revoke: a till's key is removed from the trusted keys file and
tillmeshd gets SIGHUP (issue 13: its connections stayed open, its sales kept
arriving and every sale kept being pushed to it). The hostile till keeps its
connection and keeps pushing ops, one every 30 ms, before and after. After
the reload: status shows it `revoked`, the log says so, its connection is
closed and its reconnects are refused, none of its later ops is stored, the
sale sold after the reload is not pushed to it (the one sold before is: the
path works), and the honest tills a and b still exchange sales both ways
(closing a's inbound connections made b reconnect).
"""
import sys

import hostilelib as hl
import tmharness as h


def test_hostile_revoke(lab):
    key = hl.add_hostile_key(lab)
    a, b = lab["a"], lab["b"]
    lab.full_mesh()
    lab.start_all()
    proc = hl.start(lab, a, ["flood", "200", "1", "50"], key, wait_ms=3000,
                    opts=("--pace-ms", "30"))
    h.wait_until(lambda: (hl.peer(a, "hostile") or {}).get("state") == "alive", 10,
                 "the hostile till to be alive at a")
    node = h.wait_until(lambda: hl.peer(a, "hostile")["node_id"], 10, "the hostile's node id")
    h.wait_until(lambda: hl.held_seq(a, node) > 0, 10, "a to hold some of the hostile's ops")
    sold_before = a.post_sale()["sale_id"]  # pushed to the hostile till: trusted still
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
    assert held < 200, f"the flood ended before the reload ({held}): the test proves nothing"
    assert sold_after not in rep["recv_sale_ids"] and rep["recv_pushed_ops"] <= 1, \
        f"the revoked till got {rep['recv_pushed_ops']} pushed op(s) (sales " \
        f"{rep['recv_sale_ids']}); sale {sold_after} was sold after the reload"
    # That the path worked before: it heard a's heartbeats (and, unless the
    # connect-back was still in its handshake, the sale sold before).
    assert rep["recv_heartbeats"] > 0, f"a never reached the hostile till: {rep}"
    print(f"sale sold before the reload reached it: {sold_before in rep['recv_sale_ids']}")
    assert "its key is no longer in the trusted keys: revoked" in a.tail(400), \
        "the log does not say the key was revoked"
    assert rep["send_failed"] > 0 and "refused a connection" in a.tail(400), \
        f"the revoked till's connection stayed open: {rep['send_failed']} sends failed"
    s1, s2 = a.post_sale()["sale_id"], b.post_sale()["sale_id"]
    h.wait_until(lambda: a.has_sale(s2) and b.has_sale(s1), 10,
                 "a and b to exchange sales after the reload")


if __name__ == "__main__":
    h.run(test_hostile_revoke, ["a", "b"])
    sys.exit(0)
