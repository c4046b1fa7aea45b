#!/usr/bin/env python3
"""it_hostile_forge: a till with a trusted key cannot write as another till
(issue 13: origin squatting, history rewrite).

tm_hostile sends a's next seq under a's origin, signed with its own (trusted)
key, to b. Before op signatures, b took it: a's real op with that seq never
reached b, and the digests differed for good with equal vectors. Now b refuses
it and keeps it as evidence (status trust, metrics, log), a's real sale with
that seq reaches b, and a, b and c converge.
"""
import sys

import hostilelib as hl
import tmharness as h


def node_id(t):
    return t.status()["node"]["id"]


def test_hostile_forge(lab):
    key = hl.add_hostile_key(lab)
    a, b, c = lab["a"], lab["b"], lab["c"]
    lab.full_mesh()
    lab.start_all()
    first = a.post_sale()["sale_id"]
    for t in (b, c):
        h.wait_until(lambda t=t: t.has_sale(first), 15, f"a's first sale on {t.name}")
    a_id = node_id(a)
    held = hl.held_seq(b, a_id)
    proc = hl.start(lab, b, ["squat", a_id, str(held + 1)], key, wait_ms=1000)
    hl.finish(proc)
    h.wait_until(lambda: b.status()["trust"]["ops_refused"] >= 1, 10,
                 "b to refuse the op squatting a's origin")
    st = b.status()
    assert st["trust"]["evidence"] >= 1, st["trust"]
    assert "bad signature" in (st["trust"]["last_refusal"] or ""), st["trust"]
    assert hl.held_seq(b, a_id) == held, "b stored the squatted op"
    _, metrics = b.get("/metrics")
    assert "tillmesh_ops_refused_total 0" not in metrics, "metric does not count the refusal"
    # a's real op with that seq still gets in everywhere.
    real = a.post_sale()["sale_id"]
    for t in (b, c):
        h.wait_until(lambda t=t: t.has_sale(real), 15, f"a's real next sale on {t.name}")
    h.wait_until(lab.converged, 20, "equal digests on a, b and c")
    log = open(b.log_path, errors="replace").read()
    assert "fail verification" in log, b.tail()


if __name__ == "__main__":
    h.run(test_hostile_forge, ["a", "b", "c"])
    sys.exit(0)
