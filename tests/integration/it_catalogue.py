#!/usr/bin/env python3
"""The catalogue: the ERP's prices reach every till through the forwarder and
the mesh; a till that was off during a price change gets it from a
neighbour with the ERP out of reach; a sale line with only sku and qty is
priced from the till's catalogue; a bad page from the ERP is refused whole."""
import subprocess

from erplab import run_erp, wait_forwarder
from tmharness import TILLMESH, wait_until

PRODUCTS = [
    {"sku": "A1", "name": "Pan amasado", "uom": "unit", "unit_price": 1500, "tax_rate": 1900,
     "barcodes": ["7801234567890"], "active": True},
    {"sku": "B2", "name": "Queso mantecoso", "uom": "kg", "unit_price": 9990,
     "tax_rate": 1900, "barcodes": [], "active": True},
    {"sku": "C3", "name": "Bolsa", "uom": "unit", "unit_price": 50, "tax_rate": 0,
     "barcodes": [], "active": True},
]


def price_of(till, sku):
    st, js = till.get(f"/v1/products/{sku}")
    return js["unit_price"] if st == 200 else None


def wait_price(tills, sku, price, what, timeout=30):
    for t in tills:
        wait_until(lambda t=t: price_of(t, sku) == price, timeout,
                   f"{t.name} to price {sku} at {price} ({what})")


def catalogue_reaches_every_till(lab, stub):
    for t in lab.tills.values():
        t.erp_extra += "catalogue_interval_s = 1\n"
    stub.catalogue_change(upsert=PRODUCTS)
    lab.start_all()
    fwd = wait_forwarder(lab)
    a, b, c = lab["a"], lab["b"], lab["c"]
    wait_price((a, b, c), "A1", 1500, "first pull")
    other = next(t for t in (a, b, c) if t.name != fwd)

    # A sale line with sku and qty only: priced here, from the catalogue.
    priced = {
        "sale_id": "5d1c6a43-7e0f-4f6b-9a35-3b0c2a1f9e11", "currency": "CLP",
        "lines": [{"sku": "A1", "qty": 2000}, {"sku": "7801234567890", "qty": 1000},
                  {"sku": "B2", "name": "Queso (oferta)", "qty": 500, "unit_price": 8000,
                   "tax_rate": 1900}],
        "payments": [{"method": "cash", "amount": 10000}]}
    st, sale = other.request("POST", "/v1/sales", priced)
    assert st == 201, sale
    l0, l1, l2 = sale["lines"]
    assert (l0["name"], l0["unit_price"], l0["tax_rate"]) == ("Pan amasado", 1500, 1900), l0
    assert l0["catalogue_version"] >= 1, l0
    assert l1["sku"] == "A1" and l1["unit_price"] == 1500, "a barcode prices as its sku"
    assert l2["unit_price"] == 8000 and "catalogue_version" not in l2, "the POS's price stays"
    assert sale["total"] == 3000 + 1500 + 4000, sale
    # The priced sale is what every till holds, catalogue version included.
    wait_until(lambda: a.get(f"/v1/sales/{sale['sale_id']}")[0] == 200, 20, "sale on a")
    assert a.get(f"/v1/sales/{sale['sale_id']}")[1]["lines"][0]["catalogue_version"] == \
        l0["catalogue_version"]
    st, err = other.request("POST", "/v1/sales", {
        "currency": "CLP", "lines": [{"sku": "NOPE", "qty": 1000}],
        "payments": [{"method": "cash", "amount": 100}]})
    assert st == 422 and err["fields"][0]["rule"] == "unknown_sku", (st, err)
    st, found = other.get("/v1/products?q=que&limit=5")
    assert st == 200 and [p["sku"] for p in found["products"]] == ["B2"], found

    # c is off while the ERP changes a price and drops a product.
    c.stop()
    stub.catalogue_change(upsert=[dict(PRODUCTS[0], unit_price=1700)], delete=["C3"])
    wait_price((a, b), "A1", 1700, "price change")
    wait_until(lambda: a.get("/v1/products/C3")[0] == 404, 20, "C3 dropped on a")
    # A POS retrying the priced sale after the change gets the first answer.
    wait_price((other,), "A1", 1700, "price change")
    st, again = other.request("POST", "/v1/sales", priced)
    assert st == 200 and again == sale, (st, again, sale)
    # The ERP goes out of reach for every till: c can only learn from a and b.
    for cable in lab.cables.values():
        cable.pull()
    c.start()
    wait_price((c,), "A1", 1700, "from a neighbour, ERP unreachable")
    assert c.get("/v1/products/C3")[0] == 404
    versions = {t.status()["catalogue"]["version"] for t in (a, b, c)}
    assert len(versions) == 1, versions
    # Each till's version, as its heartbeats tell the others.
    wait_until(lambda: {p["name"]: p["catalogue_version"] for p in a.status()["peers"]}
               == {"b": versions.copy().pop(), "c": versions.copy().pop()}, 20,
               "a to hear b's and c's catalogue versions")
    s = c.status()["catalogue"]
    assert s["products"] == 2 and s["stale"] is False and s["age_s"] is not None, s
    # The printed price list of the bad day, from c's own store.
    cli = [TILLMESH, "--api", f"127.0.0.1:{c.api_port}", "catalogue"]
    csv = subprocess.run(cli + ["--csv"], capture_output=True, text=True, check=True).stdout
    assert csv.splitlines()[0].startswith("sku,name,"), csv
    assert "A1,Pan amasado,unit,1700,1900,true," in csv and "C3," not in csv, csv
    table = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert "Catalogue of c: version" in table and "WARNING" not in table, table
    for cable in lab.cables.values():
        cable.plug()

    # A page breaking a rule is refused whole: nothing of it anywhere, the
    # forwarder says why; the next good page goes through.
    fwd = wait_forwarder(lab)
    stub.catalogue_change(upsert=[dict(PRODUCTS[0], unit_price=1800),
                                  dict(PRODUCTS[1], unit_price=9000)], bad_pages=1)
    f = lab[fwd]
    # The error of a pull tried while the cables were out may still be shown
    # until the next pull: wait for the refusal itself.
    err = wait_until(lambda: "refused" in (f.status()["catalogue"]["error"] or "")
                     and f.status()["catalogue"]["error"], 20, "the refusal in status")
    assert "refused" in err and "unit_price" in err, err
    assert price_of(f, "A1") == 1700, "nothing of a refused page is applied"
    assert f.status()["catalogue"]["pages_refused_here"] >= 1
    wait_price((a, b, c), "A1", 1800, "after the refused page", timeout=40)
    wait_price((a, b, c), "B2", 9000, "after the refused page")
    wait_until(lambda: f.status()["catalogue"]["error"] is None, 20, "the error cleared")
    st, m = f.get("/metrics")
    assert "tillmesh_catalogue_pages_refused_total" in m, m


if __name__ == "__main__":
    run_erp(catalogue_reaches_every_till, ["a", "b", "c"])
