#!/usr/bin/env python3
"""it_hostile_claim: a till that speaks first cannot take another till's node
id (found by tm-sim --impersonate, seeds 7, 18, 24).

A node id used to be bound to the name of the first peer that presented it.
tm_hostile (a trusted key) says hello to a with b's node id before a has
heard b: a bound b's id to "hostile" and from then on refused b's own frames
("key b speaks for node ..., which belongs to till hostile"), for good (the
binding is in a's store). Now a binds an id only to the till whose signing
key owns it: it refuses the claim, and b's sales reach a.
"""
import sys

import hostilelib as hl
import tmharness as h


def test_hostile_claim(lab):
    key = hl.add_hostile_key(lab)
    a, b = lab["a"], lab["b"]
    lab.full_mesh()
    # b's node id: made at its first start; a is not running, so has not
    # heard b.
    b.start()
    b_id = b.status()["node"]["id"]
    b.stop()
    a.start()
    proc = hl.start(lab, a, ["hello"], key, wait_ms=1500, opts=("--node-id", b_id))
    hl.finish(proc)
    log = open(a.log_path, errors="replace").read()
    assert "which its signing key does not own" in log, a.tail()
    b.start()
    sale = b.post_sale()["sale_id"]
    h.wait_until(lambda: a.has_sale(sale), 15, "b's sale on a")
    log = open(a.log_path, errors="replace").read()
    assert "which belongs to till hostile" not in log, a.tail()
    h.wait_until(lab.converged, 20, "equal digests on a and b")


if __name__ == "__main__":
    h.run(test_hostile_claim, ["a", "b"])
    sys.exit(0)
