#!/usr/bin/env python3
"""A till restored from a backup that crashes again before it hears a peer
loses no sale (docs/security.md, "A till restored from a backup").

a sells, its data folder is copied, it sells 5 more (b and c get them). The
folder is restored from the copy while b and c are off; a sells 7 at once
(more than it lost: the peers' vectors of a's origin stay below a's), and is
killed (-9) before it hears anyone. Then b, c and a start again. Before, a's
second start counted those 7 as its own history: it never asked whether
they forked the chain b and c hold, they were refused by both (evidence)
and stayed on a alone, and the store's digests differed for good. Now what a
made since its last start that no peer confirmed stays "unchecked" across a
crash: a notices the fork, re-issues the 7 under a new origin, and every
till holds all 15 sales."""
import shutil

from tmharness import run, wait_until


def restored_till_that_crashes_again_loses_nothing(lab):
    a, b, c = lab["a"], lab["b"], lab["c"]
    lab.full_mesh()
    lab.start_all()
    first = [a.post_sale()["sale_id"] for _ in range(3)]
    for t in (b, c):
        for i in first:
            wait_until(lambda t=t, i=i: t.has_sale(i), 20, f"{i} on {t.name}")
    a.stop()
    data = f"{a.dir}/data"
    shutil.copytree(data, f"{a.dir}/backup")
    a.start()
    lost = [a.post_sale()["sale_id"] for _ in range(5)]
    for t in (b, c):
        for i in lost:
            wait_until(lambda t=t, i=i: t.has_sale(i), 20, f"{i} on {t.name}")
    for t in (a, b, c):
        t.stop()
    shutil.rmtree(data)
    shutil.copytree(f"{a.dir}/backup", data)  # the restore
    a.start()
    alone = [a.post_sale()["sale_id"] for _ in range(7)]
    a.kill9()  # before it heard anyone: nothing told it about the restore
    b.start()
    c.start()
    a.start()
    every = first + lost + alone
    for t in (a, b, c):
        for i in every:
            wait_until(lambda t=t, i=i: t.has_sale(i), 30, f"{i} on {t.name}")
    wait_until(lab.converged, 30, "equal digests")
    log = open(a.log_path, errors="replace").read()
    assert "restored from a backup" in log, a.tail()
    assert a.status()["state"]["sales"] == len(every), a.status()["state"]


if __name__ == "__main__":
    run(restored_till_that_crashes_again_loses_nothing, ["a", "b", "c"])
