#!/usr/bin/env python3
"""Concurrent edits of one customer on two tills converge, per field, to the
same winner everywhere (last writer by HLC, node id breaking ties)."""
from tmharness import run, wait_until

RUT = "12.345.678-5"


def customer_edits_converge(lab):
    lab.full_mesh()
    lab.start_all()
    a, b, c = lab["a"], lab["b"], lab["c"]
    st, js = a.request("PUT", f"/v1/customers/{RUT}", {"name": "Ana", "email": "ana@example.cl"})
    assert st == 200, js
    wait_until(lambda: b.get("/v1/customers/123456785")[0] == 200, 20, "customer on b")
    # Partition-free but concurrent: both tills edit before hearing the other.
    a.stop()
    st1, _ = b.request("PUT", f"/v1/customers/{RUT}", {"phone": "+56 9 1111 1111", "name": "Ana B"})
    a.start()
    st2, _ = a.request("PUT", f"/v1/customers/{RUT}", {"name": "Ana A", "offers_opt_in": True})
    assert st1 == 200 and st2 == 200
    wait_until(lab.converged, 30, "equal digests")
    views = [t.get("/v1/customers/123456785")[1] for t in (a, b, c)]
    assert views[0] == views[1] == views[2], views
    v = views[0]
    # a's edit happened after b's in HLC order (a restarted after b wrote,
    # and its clock starts above every stamp it has seen), so a's name wins;
    # b's phone and a's opt-in both survive: fields merge independently.
    assert v["phone"] == "+56 9 1111 1111", v
    assert v["offers_opt_in"] is True, v
    assert v["email"] == "ana@example.cl", v
    assert v["name"] in ("Ana A", "Ana B"), v


if __name__ == "__main__":
    run(customer_edits_converge, ["a", "b", "c"])
