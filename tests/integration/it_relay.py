#!/usr/bin/env python3
"""A and C are not connected to each other, only to B: they still converge."""
from tmharness import run, wait_until


def relay_through_third_till(lab):
    lab.connect("a", "b")
    lab.connect("c", "b")
    lab.start_all()
    a, b, c = lab["a"], lab["b"], lab["c"]
    sa = a.post_sale()["sale_id"]
    sc = c.post_sale()["sale_id"]
    wait_until(lambda: c.has_sale(sa), 30, "a's sale on c via b")
    wait_until(lambda: a.has_sale(sc), 30, "c's sale on a via b")
    wait_until(lab.converged, 30, "equal digests")
    # The relay really was a relay: a never talked to c.
    assert all(p["name"] != "c" for p in a.status()["peers"]), a.status()["peers"]


if __name__ == "__main__":
    run(relay_through_third_till, ["a", "b", "c"])
