#!/usr/bin/env python3
"""A rolling upgrade: a till of the store still runs a tillmesh from before
the catalogue (tm_hostile's heartbeats carry no catalogue fields, as an old
tillmeshd's). Such a till refuses an OP_CATALOGUE as malformed and, after
it, every later op of the forwarder's chain; so while it is heard the
forwarder writes no catalogue page, says why in status, and keeps
forwarding sales. Without the pause the price change below is pulled and
written (the first half of the test shows the pull works)."""
import hostilelib as hl
from erplab import TOKEN, run_erp, wait_forwarder
from tmharness import wait_until

A1 = {"sku": "A1", "name": "Pan", "uom": "unit", "unit_price": 1500, "tax_rate": 1900,
      "barcodes": [], "active": True}


def old_till_pauses_the_catalogue(lab, stub):
    a = lab["a"]
    a.erp_extra += "catalogue_interval_s = 1\n"
    stub.catalogue_change(upsert=[A1])
    a.start()
    wait_forwarder(lab)
    wait_until(lambda: a.get("/v1/products/A1")[0] == 200, 20, "the first pull")
    proc = hl.start(lab, a, ["hello"], KEY[0], wait_ms=8000)
    try:
        wait_until(lambda: (a.status()["catalogue"]["error"] or "").startswith("paused: till "
                                                                              "hostile"),
                   20, "the catalogue paused for the old till")
        pulls = stub.catalogue_stats()["requests"]
        stub.catalogue_change(upsert=[dict(A1, unit_price=1700)])
        # Sales still go to the ERP while the catalogue waits.
        sale = a.post_sale()
        wait_until(lambda: stub.stats(detail=True)["by_sale"].get(sale["sale_id"], {})
                   .get("booked"), 30, "the sale booked while the catalogue is paused")
        assert stub.catalogue_stats()["requests"] == pulls, "a paused forwarder pulled"
        assert a.get("/v1/products/A1")[1]["unit_price"] == 1500
    finally:
        hl.finish(proc)


KEY = []


def main(lab, stub):
    KEY.append(hl.add_hostile_key(lab))
    old_till_pauses_the_catalogue(lab, stub)


if __name__ == "__main__":
    assert TOKEN
    run_erp(main, ["a"])
