#!/usr/bin/env python3
"""P7 at the API: malformed and oversize bodies get the documented errors
and change nothing; a POS retry of the same sale is idempotent."""
from tmharness import run, wait_until, make_sale


def api_errors_change_nothing(lab):
    lab.start_all()
    a = lab["a"]
    good = make_sale()
    assert a.request("POST", "/v1/sales", good)[0] == 201
    before = a.status()["state"]
    cases = [
        (b"{not json", 400),
        (b"[1,2,3]", 422),
        (b'{"currency":"CLP"}', 422),
        (b"x" * (1024 * 1024 + 1), 413),
    ]
    for raw, want in cases:
        st, js = a.request("POST", "/v1/sales", raw=raw)
        assert st == want, f"{raw[:30]!r}: got {st} {js}, want {want}"
        assert isinstance(js, dict) and "error" in js, js
    bad_total = make_sale()
    bad_total["total"] = 1
    st, js = a.request("POST", "/v1/sales", bad_total)
    assert st == 422 and any(f["field"] == "total" for f in js["fields"]), js
    bad_rut = make_sale()
    bad_rut["customer"] = {"id": "12.345.678-9", "id_type": "rut"}
    st, js = a.request("POST", "/v1/sales", bad_rut)
    assert st == 422 and any(f["field"] == "customer.id" for f in js["fields"]), js
    # Same sale again: 200 and the same record; changed content: 409.
    st, js = a.request("POST", "/v1/sales", good)
    assert st == 200 and js["sale_id"] == good["sale_id"], (st, js)
    changed = dict(good, total=2000, lines=[dict(good["lines"][0], unit_price=2000)],
                   payments=[{"method": "cash", "amount": 2000}])
    st, js = a.request("POST", "/v1/sales", changed)
    assert st == 409, (st, js)
    assert a.get("/v1/sales/00000000-0000-4000-8000-000000000000")[0] == 404
    after = a.status()["state"]
    assert after["ops"] == before["ops"] and after["digest"] == before["digest"], (before, after)


if __name__ == "__main__":
    run(api_errors_change_nothing, ["a"])
