#!/usr/bin/env python3
"""lab_catalogue - a price change at the ERP while the store is split (issue 16).

The half that keeps its uplinks gets the new price; the other half, cut off
from the ERP and from its neighbours, keeps selling at the price it holds.
Each half prices sales from what it holds (a sale line with sku and qty only);
after the heal every till prices at the new price, the sales keep the price
they were sold at, and the checker finds nothing lost, nothing booked twice
and equal digests.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402

SKU = "LAB-PAN"


def product(price):
    return {"sku": SKU, "name": "Pan amasado (lab)", "uom": "unit", "unit_price": price,
            "tax_rate": 1900, "barcodes": ["7800000000017"], "active": True}


def price_on(lab, n):
    st, js = lab.api(n, "GET", f"/v1/products/{SKU}", timeout=3)
    return js.get("unit_price") if st == 200 and isinstance(js, dict) else None


def sell_by_sku(lab, n):
    """A sale the till prices itself; returns (sale_id, unit price used)."""
    st, js = lab.api(n, "POST", "/v1/sales", {
        "currency": "CLP", "lines": [{"sku": SKU, "qty": 1000}],
        "payments": [{"method": "cash", "amount": 100000}]}, timeout=5)
    if st != 201:
        raise AssertionError(f"{n}: a sale by sku got {st}: {js}")
    return js["sale_id"], js["lines"][0]["unit_price"]


def drill(lab, s):
    names = lab.names
    a, b = names[: len(names) // 2], names[len(names) // 2:]
    st, js = lab.erp_catalogue(upsert=[product(1000)])
    assert st == 200, (st, js)
    s.wait(lambda: all(price_on(lab, n) == 1000 for n in names), 60,
           "every till to price the product at 1000")
    s.log(f"split {a} / {b}; {b} also lose their uplinks")
    lab.partition([a, b])
    for n in b:
        lab.cable(n, "uplink", False)
    st, js = lab.erp_catalogue(upsert=[product(1200)])
    assert st == 200, (st, js)
    s.wait(lambda: all(price_on(lab, n) == 1200 for n in a), 60,
           f"{a} (with the ERP) to price at 1200")
    s.pause(4)
    stale = [n for n in b if price_on(lab, n) != 1000]
    assert not stale, f"{stale} changed price without the ERP or a neighbour"
    sold = {n: sell_by_sku(lab, n) for n in names}
    for n, (_, price) in sold.items():
        want = 1200 if n in a else 1000
        assert price == want, f"{n} priced at {price}, holds {want}"
    s.log("each half priced by what it holds: " +
          ", ".join(f"{n}={p}" for n, (_, p) in sold.items()))
    for n in b:
        lab.cable(n, "uplink", True)
    lab.heal()
    s.mark_heal()
    s.log("healed")
    s.wait(lambda: all(price_on(lab, n) == 1200 for n in names), 60,
           "every till to price at 1200 after the heal")
    for n in names:
        for m, (sid, price) in sold.items():
            s.wait(lambda n=n, sid=sid: lab.api(n, "GET", f"/v1/sales/{sid}", timeout=3)[0] == 200,
                   30, f"{m}'s priced sale on {n}")
            st, js = lab.api(n, "GET", f"/v1/sales/{sid}", timeout=3)
            assert js["lines"][0]["unit_price"] == price, \
                f"{m}'s sale changed price on {n}: {js['lines'][0]}"
    s.pause(2)


if __name__ == "__main__":
    sys.exit(scenario.run("catalogue", drill, tills=4, rate=5))
