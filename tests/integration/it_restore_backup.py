#!/usr/bin/env python3
"""A till restored from an old copy of its data folder loses no sale and
makes nobody lose one (issue 13, item 3).

a sells, its data folder is copied (the backup), it sells more (b and c get
those), then the folder is restored from the copy and a sells again at once.
Its new sales reuse seqs b and c already hold from a (a fork, refused); as
soon as a hears that its peers hold more of its own chain than it does, it
moves to a new origin and re-issues what it made since it started, and its
older sales come back from its peers. Before this, those sales stayed on a
(refused by every peer) or, unsigned, silently replaced a's history.
"""
import shutil

from tmharness import run, wait_until


def restored_till_loses_nothing(lab):
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
    later = [a.post_sale()["sale_id"] for _ in range(5)]
    for t in (b, c):
        for i in later:
            wait_until(lambda t=t, i=i: t.has_sale(i), 20, f"{i} on {t.name}")
    a.stop()
    shutil.rmtree(data)
    shutil.copytree(f"{a.dir}/backup", data)  # the restore
    a.start()
    after = [a.post_sale()["sale_id"] for _ in range(2)]
    every = first + later + after
    for t in (a, b, c):
        for i in every:
            wait_until(lambda t=t, i=i: t.has_sale(i), 30, f"{i} on {t.name}")
    wait_until(lab.converged, 30, "equal digests")
    log = open(a.log_path, errors="replace").read()
    assert "restored from a backup" in log, a.tail()
    st = a.status()
    assert st["state"]["sales"] == len(every), st["state"]
    # A fork signed by a's key is a's doing: b and c never charge each
    # other (the honest relay) with it; status says what a restore did.
    for t, other in ((b, "c"), (c, "b")):
        s = t.status()
        for p in s["peers"]:
            if p["name"] == other:
                assert p["ops_refused"] == 0, (t.name, p)
        tr = s["trust"]
        assert tr["restores"] in (0, 1) and tr["ops_set_aside"] <= tr["ops_reissued"], tr
        assert (tr["restore_message"] is None) == (tr["restores"] == 0), tr


if __name__ == "__main__":
    run(restored_till_loses_nothing, ["a", "b", "c"])
