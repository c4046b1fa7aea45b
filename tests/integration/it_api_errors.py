#!/usr/bin/env python3
"""P7 at the API: malformed and oversize bodies get the documented errors
and change nothing; a POS retry of the same sale is idempotent."""
import socket

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
    ]
    for raw, want in cases:
        st, js = a.request("POST", "/v1/sales", raw=raw)
        assert st == want, f"{raw[:30]!r}: got {st} {js}, want {want}"
        assert isinstance(js, dict) and "error" in js, js
    # Oversize: answered from the headers, as a POS client that sends
    # "Expect: 100-continue" (curl does for large bodies) sees it, before
    # any of the body is sent.
    with socket.create_connection(("127.0.0.1", a.api_port), timeout=10) as s:
        s.sendall(b"POST /v1/sales HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1048577\r\nExpect: 100-continue\r\n\r\n")
        head = ""
        while "too_large" not in head:  # headers and body may come in pieces
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk.decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
    assert '"error":"too_large"' in head.replace(" ", ""), head
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
