#!/usr/bin/env python3
"""it_hostile_rekey: till b's key was stolen, so the store gives b a new
keypair: on a, b's line in the trusted keys file gets the new key and a is
reloaded (SIGHUP); b restarts with the new key. a must talk to the real b
again with the new key (its connection to b made with the old key is
replaced) and both must exchange sales. Fails on a tillmeshd whose reload
keeps connections made with the old key.
"""
import os
import shutil
import sys

import tmharness as h


def test_hostile_rekey(lab):
    a, b = lab["a"], lab["b"]
    lab.full_mesh()
    lab.start_all()
    s = a.post_sale()["sale_id"]
    h.wait_until(lambda: b.has_sale(s), 10, "b to get a's sale before the rekey")
    b.stop()
    keys = os.path.join(lab.root, "keys")
    for ext in (".key", ".pub", ".sign"):
        shutil.move(os.path.join(keys, "b" + ext), os.path.join(keys, "b-old" + ext))
    lab.trusted_lines["b"] = lab.keygen("b")
    a.write_config()  # rewrites a's trusted keys with b's new key
    a.proc.send_signal(1)
    h.wait_until(lambda: "reconnecting with the new key" in a.tail(200), 10,
                 "a to reconnect to b with its new key")
    b.start()
    s1, s2 = a.post_sale()["sale_id"], b.post_sale()["sale_id"]
    h.wait_until(lambda: b.has_sale(s1) and a.has_sale(s2), 15,
                 "a and b to exchange sales after b's key was replaced")
    h.wait_until(lambda: lab.converged(), 15, "a and b to converge")


if __name__ == "__main__":
    h.run(test_hostile_rekey, ["a", "b"])
    sys.exit(0)
