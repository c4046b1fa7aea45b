#!/usr/bin/env python3
"""A sale the ERP rejects is parked, shown in status and listed; the rest
flow; an operator's retry sends it again under a new key."""
import os
import subprocess

import uuid

from tmharness import wait_until, make_sale, TILLMESH
from erplab import run_erp, wait_forwarder, wait_all_booked


def rejected_sale_is_parked(lab, stub):
    lab.start_all()
    a = lab[wait_forwarder(lab)]  # parking is the forwarder's own note
    ids = [a.post_sale()["sale_id"] for _ in range(3)]
    wait_all_booked(lab, stub, ids)
    bad = str(uuid.uuid4())
    stub.set_mode("reject", sale_id=bad)  # before the sale exists: no race
    a.post_sale(make_sale(sale_id=bad))
    good = [a.post_sale()["sale_id"] for _ in range(5)]
    wait_all_booked(lab, stub, good)
    wait_until(lambda: a.status()["erp"]["parked"] == 1, 20, "the rejected sale to be parked")
    st, js = a.get("/v1/erp/parked")
    assert st == 200 and [p["sale_id"] for p in js["parked"]] == [bad], js
    assert js["parked"][0]["status"] == 422, js
    out = subprocess.run([TILLMESH, "--api", f"127.0.0.1:{a.api_port}", "erp", "parked"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and bad in out.stdout, out
    assert a.status()["erp"]["backlog"] == 0
    # The ERP is fixed; the operator retries.
    stub.set_mode("ok")
    out = subprocess.run([TILLMESH, "--api", f"127.0.0.1:{a.api_port}", "erp", "retry", bad],
                         capture_output=True, text=True)
    assert out.returncode == 0, out
    wait_all_booked(lab, stub, [bad])
    wait_until(lambda: a.status()["erp"]["parked"] == 0, 20, "parked list to empty")
    v = stub.stats(detail=True)["by_sale"][bad]
    assert len(v["keys"]) == 2, f"the retry must be a new request, not a replay: {v}"


if __name__ == "__main__":
    run_erp(rejected_sale_is_parked, ["a", "b"])
