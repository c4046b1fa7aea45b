#!/usr/bin/env python3
"""Issue 12 item 6: the database files of a running till are deleted.

Three tills in a full mesh. On till a:
1. `rm` of tillmesh.db, -wal and -shm while it runs, and its data_dir
   replaced by a plain file so that the till cannot put its store back yet:
   POST /v1/sales and PUT /v1/customers are refused with 503 `store_lost`
   (never 201 into an unlinked file), status says `lost`, the metric says 0,
   the log says what happened and what to do.
2. The file is removed: the till rewrites its store from the copy it still
   holds open, by itself, without a restart; sales are taken again, and the
   node id is the same.
3. A plain `rm` of the three files while sales are being posted: every sale
   answered 201 is still there after a kill -9 and restart (written to the
   real file, not to an unlinked inode), on a and on its peers.
4. `rm` and a stop at once: the stop writes the store back first.
"""
import os
import shutil

from tmharness import run, wait_until, make_sale


def db_files(till):
    d = os.path.join(till.dir, "data")
    return [os.path.join(d, "tillmesh.db" + s) for s in ("", "-wal", "-shm")]


def metric(till, name):
    st, text = till.get("/metrics")
    assert st == 200, st
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def store_lost(lab):
    lab.full_mesh()
    lab.start_all()
    a, b, c = lab["a"], lab["b"], lab["c"]
    ids = [t.post_sale()["sale_id"] for t in (a, b, c) for _ in range(5)]
    wait_until(lab.converged, 30, "equal digests before the rm")
    node_id = a.status()["node"]["id"]
    assert a.status()["store"]["state"] == "ok", a.status()["store"]
    assert metric(a, "tillmesh_store_ok") == 1

    # 1. Files gone and the directory unusable: refused, reported.
    data = os.path.join(a.dir, "data")
    shutil.rmtree(data)
    with open(data, "w") as f:
        f.write("not a directory\n")
    st, js = a.request("POST", "/v1/sales", make_sale())
    assert st == 503 and js["error"] == "store_lost", (st, js)
    st, js = a.request("PUT", "/v1/customers/11111111-1", {"name": "Ana"})
    assert st == 503 and js["error"] == "store_lost", (st, js)
    store = wait_until(lambda: a.status()["store"]["state"] == "lost" and a.status()["store"],
                       10, "a's status to say the store is lost")
    assert "deleted" in store["message"], store
    assert metric(a, "tillmesh_store_ok") == 0
    wait_until(lambda: "store lost: the database file" in a.tail(50), 10,
               "a to log that its store was lost")
    assert "was deleted" in a.tail(50), a.tail(50)
    # Reads still answer from the open copy.
    assert a.has_sale(ids[0])
    # A peer's new sale reaches a only once its store is back.
    late = b.post_sale()["sale_id"]
    ids.append(late)

    # 2. The directory can be made again: a puts its store back by itself.
    os.unlink(data)
    wait_until(lambda: a.status()["store"]["state"] == "ok", 10, "a to restore its store")
    s = a.status()
    assert s["node"]["id"] == node_id, "a must keep its node id"
    assert s["store"]["restored"] == 1, s["store"]
    assert os.path.exists(db_files(a)[0])
    assert "restored" in a.tail(50), a.tail(50)
    ids.append(a.post_sale()["sale_id"])
    wait_until(lambda: a.has_sale(late), 20, "b's sale made while a was lost to reach a")

    # 3. A plain rm under load: nothing answered 201 may be lost.
    acked = []
    for i in range(60):
        if i == 20:
            for p in db_files(a):
                if os.path.exists(p):
                    os.unlink(p)
        st, js = a.request("POST", "/v1/sales", make_sale())
        assert st in (201, 503), (st, js)
        if st == 201:
            acked.append(js["sale_id"])
        else:
            assert js["error"] == "store_lost", js
    wait_until(lambda: a.status()["store"]["state"] == "ok", 10, "a to restore its store again")
    acked.append(a.post_sale()["sale_id"])
    ids += acked
    a.kill9()
    a.start()
    assert a.status()["node"]["id"] == node_id
    missing = [sid for sid in ids if not a.has_sale(sid)]
    assert not missing, f"{len(missing)} sales answered 201 are gone after restart: {missing[:3]}"
    wait_until(lab.converged, 30, "equal digests after the restart")
    for sid in acked:
        assert b.has_sale(sid) and c.has_sale(sid), sid

    # 4. rm, then a stop at once (an attempt to "reset" a running till):
    # the stop writes the store back first; the restart has every sale and
    # the same node id.
    for p in db_files(a):
        if os.path.exists(p):
            os.unlink(p)
    assert a.stop() == 0, a.tail()
    assert os.path.exists(db_files(a)[0]), "stopped without writing the store back"
    a.start()
    assert a.status()["node"]["id"] == node_id
    assert a.status()["state"]["sales"] == len(set(ids)), a.status()["state"]
    print(f"store_lost: {len(acked)} sales acknowledged around the rm, all kept")


if __name__ == "__main__":
    run(store_lost, ["a", "b", "c"])
