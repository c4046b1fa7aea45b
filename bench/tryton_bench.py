#!/usr/bin/env python3
"""Sales booked per second in Tryton 6.0 through the tillmesh adapter
(POST /sales, batches as a forwarder sends them), beside Tryton's own rate
for sale.sale over JSON-RPC (create + quote + confirm: the same end state,
the way a Tryton client or integration script books a sale), in the same
run, on the same fresh SQLite database.

    bench/tryton_bench.py [--sales 300] [--batch 50] [--rounds 2]

Needs the Debian packages (scripts/deps-tryton.sh). Prints one line per
measure and a JSON summary."""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(REPO, "adapters", "tryton", "testing"))
import trytonlab  # noqa: E402

PRODUCTS = {"7801": 1990, "7802": 990, "7803": 4590}


def make_sales(n, rnd):
    out = []
    for _ in range(n):
        lines = []
        for sku in rnd.sample(sorted(PRODUCTS), 2):
            q = rnd.choice([1000, 2000])
            lines.append({"sku": sku, "name": sku, "qty": q, "unit_price": PRODUCTS[sku],
                          "discount": 0, "tax_rate": 1900})
        total = sum(ln["qty"] * ln["unit_price"] // 1000 for ln in lines)
        out.append({"sale_id": str(uuid.uuid4()), "till": "bench", "receipt_no": len(out) + 1,
                    "currency": "CLP", "lines": lines, "total": total,
                    "payments": [{"method": "cash", "amount": total}]})
    return out


def adapter_rate(ty, sales, batch):
    t0 = time.monotonic()
    for i in range(0, len(sales), batch):
        part = sales[i:i + batch]
        st, js = ty.post_sales(part, f"bench-{uuid.uuid4()}", timeout=600)
        assert st == 200 and len(js["accepted"]) == len(part), (st, js)
    return len(sales) / (time.monotonic() - t0)


def jsonrpc_rate(ty, rpc, sales, batch, ids):
    """sale.sale create (batch sales per call), quote, confirm over JSON-RPC."""
    from decimal import Decimal
    ctx = {"company": 1}
    t0 = time.monotonic()
    for i in range(0, len(sales), batch):
        vlist = []
        for s in sales[i:i + batch]:
            vlist.append({
                "company": 1, "currency": ids["currency"], "party": ids["party"],
                "invoice_address": ids["address"], "shipment_address": ids["address"],
                "warehouse": ids["warehouse"], "reference": f"rpc/{s['receipt_no']}",
                "invoice_method": "manual", "shipment_method": "manual",
                "lines": [["create", [{
                    "type": "line", "product": ids["products"][ln["sku"]],
                    "quantity": ln["qty"] / 1000, "unit": ids["unit"],
                    "unit_price": (Decimal(ln["unit_price"]) / Decimal("1.19")).quantize(
                        Decimal("0.0001")),
                    "description": ln["name"], "taxes": [["add", [ids["tax"]]]],
                } for ln in s["lines"]]]]})
        new = rpc.model("sale.sale", "create", vlist, context=ctx)
        rpc.model("sale.sale", "quote", new, context=ctx)
        rpc.model("sale.sale", "confirm", new, context=ctx)
    return len(sales) / (time.monotonic() - t0)


def lookup_ids(rpc):
    ctx = {"company": 1}
    cfg = rpc.search_read("tillmesh.configuration", [], ["walk_in_party", "warehouse"])[0]
    party = rpc.search_read("party.party", [("id", "=", cfg["walk_in_party"])], ["addresses"])[0]
    prods = rpc.search_read("product.product", [("code", "in", list(PRODUCTS))],
                            ["code", "sale_uom"], context=ctx)
    tax = rpc.search_read("account.tax", [("name", "=", "IVA 19%")], ["id"], context=ctx)[0]
    cur = rpc.search_read("currency.currency", [("code", "=", "CLP")], ["id"])[0]
    return {"party": party["id"], "address": party["addresses"][0], "warehouse": cfg["warehouse"],
            "products": {p["code"]: p["id"] for p in prods}, "unit": prods[0]["sale_uom"],
            "tax": tax["id"], "currency": cur["id"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sales", type=int, default=300)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    trytonlab.ensure_packages(REPO)
    root = tempfile.mkdtemp(prefix="tm-tryton-bench-")
    ty = trytonlab.TrytonLab(root)
    try:
        times = ty.create_db(sale_state="confirmed")
        ty.start()
        rpc = ty.rpc()
        ids = lookup_ids(rpc)
        rnd = random.Random(1)
        # Warm both paths (caches, first-time imports) before measuring.
        adapter_rate(ty, make_sales(10, rnd), 10)
        jsonrpc_rate(ty, rpc, make_sales(10, rnd), 10, ids)
        res = {"adapter": [], "jsonrpc": [], "jsonrpc_single": []}
        for r in range(a.rounds):
            # Interleaved, so that the database's growth weighs on both alike.
            res["adapter"].append(adapter_rate(ty, make_sales(a.sales, rnd), a.batch))
            res["jsonrpc"].append(jsonrpc_rate(ty, rpc, make_sales(a.sales, rnd), a.batch, ids))
            res["jsonrpc_single"].append(jsonrpc_rate(ty, rpc, make_sales(a.sales // 5, rnd), 1,
                                                      ids))
        best = {k: max(v) for k, v in res.items()}
        for k, v in res.items():
            print(f"{k:15s} " + "  ".join(f"{x:6.1f}" for x in v) + "  sales/s")
        ratio = best["adapter"] / best["jsonrpc"]
        print(f"adapter / JSON-RPC create+quote+confirm (batches of {a.batch}): {ratio:.2f}")
        print(json.dumps({"sales": a.sales, "batch": a.batch, "db_create_s": times,
                          "best_sales_per_s": best, "ratio": round(ratio, 3)}))
    finally:
        ty.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
