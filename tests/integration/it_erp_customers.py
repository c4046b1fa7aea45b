#!/usr/bin/env python3
"""Customer changes reach the ERP: each customer's latest version is PUT
once by the forwarder, the ERP's copy is recorded as an ERP_ACK op and
replicated, and a later edit (on any till) is sent again."""
from tmharness import wait_until
from erplab import run_erp, wait_forwarder


def customers_reach_the_erp(lab, stub):
    lab.start_all()
    f = wait_forwarder(lab)
    other = next(n for n in lab.tills if n != f)
    st, _ = lab[other].request("PUT", "/v1/customers/12.345.678-5",
                               {"name": "Ana", "email": "ana@example.cl"})
    assert st == 200

    def erp_has(name):
        c = stub.stats(detail=True).get("by_customer", {}).get("123456785")
        return c and c["body"].get("name") == name and c
    wait_until(lambda: erp_has("Ana"), 30, "the customer at the ERP")
    # Nothing more is sent while nothing changes.
    puts = stub.stats()["customer_puts"]
    lab[other].post_sale()  # traffic, so the forwarder keeps looping
    wait_until(lambda: lab[f].status()["erp"]["backlog"] == 0, 20, "sale acknowledged")
    assert stub.stats()["customer_puts"] == puts, "an unchanged customer was sent again"
    # An edit on the forwarder itself is sent again.
    st, _ = lab[f].request("PUT", "/v1/customers/12.345.678-5", {"name": "Ana María"})
    assert st == 200
    c = wait_until(lambda: erp_has("Ana María"), 30, "the edit at the ERP")
    assert c["body"]["email"] == "ana@example.cl", c
    assert c["stale"] == 0, c


if __name__ == "__main__":
    run_erp(customers_reach_the_erp, ["a", "b"])
