#!/usr/bin/env python3
"""Returns bounded by the original sale (issue 12, item 3), on real tills.

1. bounds: the issue's example on two peered tills: a sale of 1,000 CLP is
   201; three returns of 5,000 naming it and one of 999,999 USD for a SKU it
   did not have are 422 with the rule named; returns within bounds are 201
   on either till until the sale is used up (counting the other till's
   return); a refund of a refund is 422; a return whose original this till
   does not hold is taken and flagged original_unknown.
2. partition: two tills that hold the same sale refund it while they cannot
   reach each other, each within bounds alone; once peered, both tills flag
   both returns over_refund (status, metrics, GET), digests agree, and the
   stub ERP, reached only after the merge, books both returns carrying
   "review":"over_refund".
"""
import sqlite3
import sys
import uuid
import urllib.request

from erplab import TOKEN, wait_forwarder
from erp_stub import ErpStub
from tmharness import StoreLab, run, wait_until


def sale(total=1000, sku="7801", qty=1000, currency="CLP"):
    return {"sale_id": str(uuid.uuid4()), "currency": currency,
            "lines": [{"sku": sku, "name": "Pan", "qty": qty, "unit_price": total * 1000 // qty,
                       "tax_rate": 1900}],
            "total": total, "payments": [{"method": "cash", "amount": total}]}


def ret(orig_id, amount, sku="7801", qty=1000, currency="CLP"):
    """A return of qty thousandths of sku, refunding amount in all."""
    return {"sale_id": str(uuid.uuid4()), "currency": currency, "refund_of": orig_id,
            "lines": [{"sku": sku, "name": "Pan", "qty": -qty,
                       "unit_price": amount * 1000 // qty, "tax_rate": 1900}],
            "total": -amount, "payments": [{"method": "cash", "amount": -amount}]}


def post(till, body):
    return till.request("POST", "/v1/sales", body)


def expect_422(till, body, field, rule):
    st, js = post(till, body)
    assert st == 422, f"{till.name}: expected 422 {field}/{rule}, got {st} {js}"
    got = [(f["field"], f["rule"]) for f in js["fields"]]
    assert (field, rule) in got, f"{till.name}: expected {field}/{rule} in {js}"
    return js


def metrics(till):
    with urllib.request.urlopen(f"http://127.0.0.1:{till.api_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {ln.split()[0]: int(ln.split()[1]) for ln in text.splitlines()
            if ln.startswith("tillmesh_review_")}


def bounds(lab):
    lab.full_mesh()
    lab.start_all()
    a, b = lab["a"], lab["b"]
    orig = sale(1000)
    st, js = post(a, orig)
    assert st == 201, (st, js)
    oid = orig["sale_id"]
    wait_until(lambda: b.has_sale(oid), 20, "the original on b")

    # The example: every one of these was 201 before.
    for _ in range(3):
        expect_422(b, ret(oid, 5000), "lines[0].unit_price", "exceeds_original")
    expect_422(a, ret(oid, 999999, sku="9999", currency="USD"), "currency", "currency_mismatch")
    expect_422(a, ret(oid, 999999, sku="9999"), "lines[0].sku", "not_in_original")
    expect_422(a, ret(oid, 2000, qty=2000), "lines[0].qty", "exceeds_original")

    # Within bounds: half on b, then 0.3 on a once a holds b's return.
    r1 = ret(oid, 500, qty=500)
    st, js = post(b, r1)
    assert st == 201 and "review" not in js, (st, js)
    wait_until(lambda: a.has_sale(r1["sale_id"]), 20, "b's return on a")
    r2 = ret(oid, 300, qty=300)
    st, js = post(a, r2)
    assert st == 201, (st, js)
    # 0.2 units and 200 CLP are left; b must count a's return too.
    wait_until(lambda: b.has_sale(r2["sale_id"]), 20, "a's return on b")
    js = expect_422(b, ret(oid, 300, qty=300), "lines[0].qty", "exceeds_original")
    assert "0.8 already returned" in js["fields"][0]["message"], js
    st, js = post(b, ret(oid, 200, qty=200))
    assert st == 201, (st, js)
    # The same return posted again (a POS retry) is the same sale, not a new one.
    st, js = post(a, r2)
    assert st == 200, (st, js)

    expect_422(a, ret(r1["sale_id"], 100, qty=100), "refund_of", "refund_of_refund")

    # An original this till has never seen: taken (the store stays able to
    # serve the customer) and flagged, on both tills.
    unknown = ret(str(uuid.uuid4()), 700, qty=1000)
    st, js = post(a, unknown)
    assert st == 201 and js.get("review") == "original_unknown", (st, js)
    for t in (a, b):
        wait_until(lambda t=t: t.status()["review"]["original_unknown"] == 1, 20,
                   f"original_unknown counted on {t.name}")
        rv = t.status()["review"]
        assert rv["over_refund"] == 0, rv
        assert [s["sale_id"] for s in rv["sales"]] == [unknown["sale_id"]], rv
        assert metrics(t)["tillmesh_review_original_unknown"] == 1


def partition(lab):
    stub = ErpStub(token=TOKEN).start()
    try:
        split_store(lab, stub)
    except BaseException:
        print(f"---- erp stub log ----\n{stub.tail(60)}", file=sys.stderr)
        raise
    finally:
        stub.stop()


def split_store(lab, stub):
    lab.attach_erp(stub, TOKEN)
    for c in lab.cables.values():
        c.pull()  # the store is offline throughout the split
    lab.full_mesh()
    lab.start_all()
    a, b = lab["a"], lab["b"]
    orig = sale(1000)
    assert post(a, orig)[0] == 201
    oid = orig["sale_id"]
    wait_until(lambda: b.has_sale(oid), 20, "the original on b")

    # The LAN splits: each till restarted with no peers.
    for t in (a, b):
        t.stop()
        t.peers = {}
        t.start()
    ra, rb = ret(oid, 700, qty=700), ret(oid, 700, qty=700)
    for t, r in ((a, ra), (b, rb)):
        st, js = post(t, r)
        assert st == 201 and "review" not in js, f"{t.name}: {st} {js}"
    assert not a.has_sale(rb["sale_id"]) and not b.has_sale(ra["sale_id"]), "not split"

    # The LAN is back: b is given a as a peer; a learns b from it.
    b.stop()
    b.peers = {"a": a.endpoint}
    b.start()
    wait_until(lambda: lab.converged(), 30, "equal digests after the merge")
    want = sorted([ra["sale_id"], rb["sale_id"]])
    for t in (a, b):
        rv = t.status()["review"]
        assert rv["over_refund"] == 2, f"{t.name}: {rv}"
        assert sorted(s["sale_id"] for s in rv["sales"]) == want, rv
        assert all(s["review"] == "over_refund" and s["refund_of"] == oid for s in rv["sales"]), rv
        assert metrics(t)["tillmesh_review_over_refund"] == 2
        for r in (ra, rb):
            st, js = t.get(f"/v1/sales/{r['sale_id']}")
            assert st == 200 and js["review"] == "over_refund", f"{t.name}: {js}"
        st, js = t.get(f"/v1/sales/{oid}")
        assert "review" not in js, js
    # Both tills accepted; neither refuses the other's op nor a new one that
    # would fit had the other not happened.
    expect_422(a, ret(oid, 100, qty=100), "lines[0].qty", "exceeds_original")

    # The uplink comes back: the ERP gets the flag with each return.
    for c in lab.cables.values():
        c.plug()
    wait_forwarder(lab)
    db = sqlite3.connect(f"file:{stub.db}?mode=ro", uri=True)

    def booked():
        rows = db.execute("SELECT sale_id, body FROM bookings").fetchall()
        return {r[0]: r[1] for r in rows} if len(rows) >= 3 else None
    bodies = wait_until(booked, 30, "the original and both returns booked at the ERP")
    import json
    for r in (ra, rb):
        body = json.loads(bodies[r["sale_id"]])
        assert body.get("review") == "over_refund", body
    assert "review" not in json.loads(bodies[oid])
    db.close()


if __name__ == "__main__":
    run(bounds, ["a", "b"])
    run(partition, ["a", "b"])
