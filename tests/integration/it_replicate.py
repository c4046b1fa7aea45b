#!/usr/bin/env python3
"""3 tills: a sale posted on A is readable on B and C; all digests agree."""
from tmharness import run, wait_until, make_sale


def replicate_three_tills(lab):
    lab.full_mesh()
    lab.start_all()
    a, b, c = lab["a"], lab["b"], lab["c"]
    sale = a.post_sale()
    sid = sale["sale_id"]
    assert sale["till"] == "a" and sale["receipt_no"] == 1, sale
    for t in (b, c):
        wait_until(lambda t=t: t.has_sale(sid), 20, f"sale {sid} on {t.name}")
        st, got = t.get(f"/v1/sales/{sid}")
        assert got == sale, f"{t.name} holds a different sale: {got} vs {sale}"
    # Sales from every till reach every till.
    ids = [b.post_sale()["sale_id"], c.post_sale()["sale_id"]]
    for t in (a, b, c):
        for i in ids:
            wait_until(lambda t=t, i=i: t.has_sale(i), 20, f"sale {i} on {t.name}")
    wait_until(lab.converged, 20, "equal digests")
    st = a.status()
    alive = sorted(p["name"] for p in st["peers"] if p["state"] == "alive")
    assert alive == ["b", "c"], st["peers"]
    assert st["state"]["sales"] == 3, st["state"]


if __name__ == "__main__":
    run(replicate_three_tills, ["a", "b", "c"])
