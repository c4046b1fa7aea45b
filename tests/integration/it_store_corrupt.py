#!/usr/bin/env python3
"""Issue 12 item 6: a till whose store file is corrupt starts anyway.

Three tills. a sells alone while b and c are stopped (its own sales that no
peer has), then a stops and pages in the middle of its file are overwritten:
the first leaf of the op log (ops the peers also hold) and a page of the
sales table. On start a must: start (today it refuses and stays down), log
one line saying where it moved the old files, salvage the readable ops so
that every sale only it had is back, go on with receipt numbers after the
salvaged ones, and re-seed the rest from its peers when they come back.
Then c crashes and its database file alone is deleted: on start it salvages
what the write-ahead log left behind holds and re-seeds the rest.
"""
import os
import sqlite3
import sys

from tmharness import run, wait_until


def leaves(db, table):
    """Leaf pages of table's b-tree in key order, with their cell counts."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT pageno, ncell, path FROM dbstat WHERE name = ? AND "
                           "pagetype = 'leaf'", (table,)).fetchall()
    except sqlite3.OperationalError as e:
        print(f"SKIP it_store_corrupt: python's SQLite has no dbstat table to find pages ({e})")
        sys.exit(77)
    finally:
        con.close()
    return [(p, n) for p, n, _ in sorted(rows, key=lambda r: r[2])]


def smash(db, pageno, page_size=4096):
    with open(db, "r+b") as f:
        f.seek((pageno - 1) * page_size)
        f.write(bytes((i * 7919 + 13) & 0xFF for i in range(page_size)))


def store_corrupt(lab):
    lab.full_mesh()
    lab.start_all()
    a, b, c = lab["a"], lab["b"], lab["c"]
    # Enough shared ops that the first leaf of the op log holds only those.
    shared = [t.post_sale()["sale_id"] for t in (a, b, c) for _ in range(20)]
    wait_until(lab.converged, 30, "equal digests before the partition")
    old_id = a.status()["node"]["id"]
    b.stop()
    c.stop()
    alone = [a.post_sale() for _ in range(30)]
    top_receipt = max(s["receipt_no"] for s in alone)
    assert a.stop() == 0, a.tail()

    db = os.path.join(a.dir, "data", "tillmesh.db")
    assert not os.path.exists(db + "-wal"), "a clean stop checkpoints the log"
    ops = leaves(db, "ops")
    sales = leaves(db, "sales")
    assert len(ops) >= 3 and len(sales) >= 2, (ops, sales)
    lost_rows = ops[0][1]
    # The first leaf holds the oldest ops, all of them also held by peers.
    assert lost_rows < len(shared), f"test setup: first op leaf holds {lost_rows} rows"
    smash(db, ops[0][0])
    smash(db, sales[len(sales) // 2][0])

    a.start()
    log = a.tail(80)
    assert "moved the old store to" in log, log
    st = a.status()
    healed = st["store"]["healed_at_start"]
    assert healed and os.path.isfile(os.path.join(healed["moved_to"], "tillmesh.db")), healed
    assert healed["moved_to"] in log, "the log line names the folder"
    assert os.path.basename(healed["moved_to"]).startswith("corrupt-"), healed
    assert healed["old_node_id"] == old_id, healed
    n_ops = len(shared) + len(alone)
    assert healed["ops_salvaged"] == n_ops - lost_rows, (healed, lost_rows, ops)
    assert st["node"]["id"] != old_id, "a fresh store takes a new node id"
    # Every sale only a had is back, before any peer is up.
    for s in alone:
        assert a.has_sale(s["sale_id"]), f"sale {s['sale_id']} made while alone was not salvaged"
    nxt = a.post_sale()
    assert nxt["receipt_no"] == top_receipt + 1, (nxt["receipt_no"], top_receipt)

    # The peers come back: a re-seeds what the smashed page held, and they
    # get a's salvaged sales (old origin) and its new one.
    b.start()
    c.start()
    wait_until(lambda: lab.converged(), 30, "equal digests after the heal")
    for sid in shared + [s["sale_id"] for s in alone] + [nxt["sale_id"]]:
        for t in (a, b, c):
            assert t.has_sale(sid), f"{t.name} lacks {sid}"
    assert a.status()["state"]["sales"] == n_ops + 1
    print(f"store_corrupt: {healed['ops_salvaged']} ops salvaged, {lost_rows} re-seeded from peers")

    # c crashes, then its database alone is deleted while it is down: the
    # commits since its last start are in the -wal, which SQLite would
    # silently delete on the next open. c moves the log aside, salvages from
    # it (at least the 31 sales it received since it was started above) and
    # re-seeds the rest.
    c.kill9()
    cdb = os.path.join(c.dir, "data", "tillmesh.db")
    assert os.path.getsize(cdb + "-wal") > 0
    os.unlink(cdb)
    c.start()
    healed = c.status()["store"]["healed_at_start"]
    assert healed and os.path.basename(healed["moved_to"]).startswith("orphan-wal-"), healed
    assert os.path.isfile(os.path.join(healed["moved_to"], "tillmesh.db-wal")), healed
    assert "write-ahead log" in c.tail(40), c.tail(40)
    assert healed["ops_salvaged"] >= len(alone) + 1, healed
    wait_until(lambda: lab.converged(), 30, "equal digests after c's heal")
    print(f"store_corrupt: orphaned -wal of c: {healed['ops_salvaged']} ops salvaged")

if __name__ == "__main__":
    run(store_corrupt, ["a", "b", "c"])
