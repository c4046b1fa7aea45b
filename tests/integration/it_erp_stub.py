#!/usr/bin/env python3
"""The stub ERP itself (tests/erp-stub/erp_stub.py) keeps the contract of
docs/erp.md: bookings once per sale_id, replays by Idempotency-Key, the
documented errors, and each fault mode; its counters are right. Other
integration tests trust those counters to check promise P3."""
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "erp-stub"))
from erp_stub import ErpStub, MAX_BODY  # noqa: E402
sys.path.insert(0, HERE)
from netlab import wait_until  # noqa: E402

TOKEN = "s3cret-token"


def sale(total=1990, sale_id=None):
    return {"sale_id": sale_id or str(uuid.uuid4()), "till": "till-1", "receipt_no": 1,
            "created_at": "2026-11-23T12:00:00.000Z", "currency": "CLP",
            "lines": [{"sku": "7801", "name": "Pan", "qty": 1000, "unit_price": total,
                       "discount": 0, "tax_rate": 1900}],
            "total": total, "payments": [{"method": "cash", "amount": total}]}


def raw_request(stub, method, path, headers, body=b"", timeout=5):
    """Sends headers (and body) by hand; returns (status, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=timeout)
    try:
        conn.putrequest(method, path)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def check(stub):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # --- health
    assert stub.request("GET", "/health") == (200, {"status": "ok"})

    # --- a batch accepted
    batch = [sale(), sale(2500), sale(100)]
    ids = [s["sale_id"] for s in batch]
    st, a1 = stub.post_sales(batch, "k1")
    assert st == 200 and a1 == {"accepted": ids, "duplicates": [], "rejected": []}, (st, a1)

    # --- same key, same body: a replay, the same answer, no new booking
    st, again = stub.post_sales(batch, "k1")
    assert (st, again) == (200, a1), (st, again)
    s = stub.stats(detail=True)
    assert (s["booked"], s["deliveries"], s["redeliveries"]) == (3, 6, 3), s
    for i in ids:
        assert s["by_sale"][i]["deliveries"] == 2 and s["by_sale"][i]["keys"] == ["k1"], s["by_sale"][i]
        assert s["by_sale"][i]["outcomes"] == ["accepted", "replay"], s["by_sale"][i]
    # the same replay with keys in another order and other whitespace is still the same body
    st, js = stub.request("POST", "/sales", raw=('{ "sales" : %s }' % json.dumps(
        [dict(reversed(list(x.items()))) for x in batch])).encode(),
        headers=dict(auth, **{"Idempotency-Key": "k1"}))
    assert (st, js) == (200, a1), (st, js)

    # --- an already booked sale under a new key: duplicates, acknowledged
    new = sale(700)
    st, js = stub.post_sales([batch[0], new], "k2", headers={"X-Tillmesh-Till": "till-2",
                                                              "X-Tillmesh-Epoch": "7"})
    assert st == 200 and js == {"accepted": [new["sale_id"]], "duplicates": [ids[0]], "rejected": []}, js
    e = stub.stats(detail=True)["by_sale"][ids[0]]
    assert e["keys"] == ["k1", "k2"] and e["tills"] == ["till-2"] and e["epochs"] == ["7"], e

    # --- the key reused with another body: 422, nothing booked
    other = sale(42)
    st, js = stub.post_sales([other], "k1")
    assert st == 422 and js["error"] == "idempotency_key_reused", (st, js)
    assert stub.stats()["booked"] == 4

    # --- reject mode: one sale refused, the rest of the batch booked
    bad, good = sale(11), sale(12)
    stub.set_mode("reject", sale_id=bad["sale_id"])
    st, js = stub.post_sales([bad, good, {"sale_id": "not-a-uuid", "total": 1}], "k3")
    assert st == 200, (st, js)
    assert js["accepted"] == [good["sale_id"]] and js["duplicates"] == [], js
    assert [(r["sale_id"], r["status"]) for r in js["rejected"]] == [(bad["sale_id"], 422), ("not-a-uuid", 422)], js
    assert all(r["message"] for r in js["rejected"]), js
    stub.set_mode("ok")
    st, js = stub.post_sales([bad], "k3b")     # accepted once the ERP no longer refuses it
    assert st == 200 and js["accepted"] == [bad["sale_id"]], js

    # --- fail500 for one request, then ok; /health stays 200 (up but failing)
    f = sale(13)
    stub.set_mode("fail500", count=1)
    assert stub.request("GET", "/health")[0] == 200
    st, js = stub.post_sales([f], "k4")
    assert st == 500 and js["error"] == "internal", (st, js)
    assert stub.stats()["mode"] == "ok"
    st, js = stub.post_sales([f], "k4")
    assert st == 200 and js["accepted"] == [f["sale_id"]], (st, js)

    # --- down: health 503 and sales 503, nothing booked
    d = sale(14)
    stub.set_mode("down")
    assert stub.request("GET", "/health")[0] == 503
    st, js = stub.post_sales([d], "k5")
    assert st == 503 and js["error"] == "unavailable", (st, js)
    stub.set_mode("ok")
    assert stub.request("GET", "/health")[0] == 200

    # --- drop_after_accept: booked, answer lost; the retry with the same key is a replay
    lost = sale(15)
    stub.set_mode("drop_after_accept", count=1)
    try:
        r = stub.post_sales([lost], "k6")
        raise AssertionError(f"expected a dropped connection, got {r}")
    except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine) as e:
        print(f"  drop_after_accept: client saw {type(e).__name__}")
    st, js = stub.post_sales([lost], "k6")
    assert st == 200 and js == {"accepted": [lost["sale_id"]], "duplicates": [], "rejected": []}, js
    e = stub.stats(detail=True)["by_sale"][lost["sale_id"]]
    assert e["booked"] and e["keys"] == ["k6"] and e["deliveries"] == 2 and e["redeliveries"] == 1, e
    assert e["outcomes"] == ["accepted:dropped", "replay"], e

    # --- stall: the client gives up after 1 s; other requests are served meanwhile
    stalled = sale(16)
    stub.set_mode("stall", count=1)
    box = {}

    def stalled_post():
        t0 = time.monotonic()
        try:
            box["r"] = stub.post_sales([stalled], "k7", timeout=1)
        except (socket.timeout, TimeoutError) as e:
            box["e"] = e
        box["t"] = time.monotonic() - t0

    th = threading.Thread(target=stalled_post)
    th.start()
    wait_until(lambda: "stall" in stub.stats()["outcomes"], 5, "the stalled request to reach the stub")
    t0 = time.monotonic()
    assert stub.request("GET", "/health", timeout=2) == (200, {"status": "ok"})
    other = sale(17)
    st, js = stub.post_sales([other], "k8", timeout=2)
    assert st == 200 and js["accepted"] == [other["sale_id"]], js
    assert time.monotonic() - t0 < 0.9 and "t" not in box, "served only after the stall ended"
    th.join(10)
    assert not th.is_alive()
    assert "e" in box and 0.9 <= box["t"] < 3, box
    e = stub.stats(detail=True)["by_sale"][stalled["sale_id"]]
    assert not e["booked"] and e["outcomes"] == ["stall"], e
    st, js = stub.post_sales([stalled], "k7")
    assert st == 200 and js["accepted"] == [stalled["sale_id"]], js

    # --- slow: answers after delay_ms
    sl = sale(18)
    stub.set_mode("slow", delay_ms=300, count=1)
    t0 = time.monotonic()
    st, js = stub.post_sales([sl], "k9")
    took = time.monotonic() - t0
    assert st == 200 and js["accepted"] == [sl["sale_id"]] and 0.3 <= took < 3, (st, js, took)

    # --- 401 without or with a wrong token; nothing recorded
    before = stub.stats()["deliveries"]
    st, js = stub.post_sales([sale(19)], "k10", token="")
    assert st == 401 and js["error"] == "unauthorized", (st, js)
    st, js = stub.post_sales([sale(19)], "k10", token="wrong")
    assert st == 401, (st, js)
    st, js = stub.request("PUT", "/customers/123456785", {"id": "123456785"})
    assert st == 401, (st, js)

    # --- 400: malformed JSON, not a batch, no Idempotency-Key
    h = dict(auth, **{"Idempotency-Key": "k11"})
    st, js = stub.request("POST", "/sales", raw=b"{not json", headers=h)
    assert st == 400 and js["error"] == "malformed_json", (st, js)
    st, js = stub.request("POST", "/sales", raw=b'{"sales": 1}', headers=h)
    assert st == 400 and js["error"] == "bad_batch", (st, js)
    st, js = stub.request("POST", "/sales", {"sales": [sale()]}, headers=auth)
    assert st == 400 and js["error"] == "bad_idempotency_key", (st, js)
    st, js = stub.post_sales([sale()], "x" * 129)
    assert st == 400 and js["error"] == "bad_idempotency_key", (st, js)
    assert stub.stats()["deliveries"] == before

    # --- 413 before the body is sent (with and without Expect: 100-continue)
    big = {"Content-Type": "application/json", "Content-Length": str(MAX_BODY + 1),
           "Idempotency-Key": "k12", **auth}
    st, body = raw_request(stub, "POST", "/sales", big)
    assert st == 413 and b"too_large" in body, (st, body)
    st, body = raw_request(stub, "POST", "/sales", dict(big, Expect="100-continue"))
    assert st == 413, (st, body)
    # a body at the limit is read (and here rejected as malformed JSON, not 413)
    st, body = raw_request(stub, "POST", "/sales", dict(big, **{"Content-Length": str(MAX_BODY)}),
                           body=b" " * MAX_BODY, timeout=30)
    assert st == 400, (st, body)

    # --- customers: last version stored, PUTs counted
    st, js = stub.request("PUT", "/customers/123456785", {"id": "123456785", "name": "Ana"}, headers=auth)
    assert st == 200, (st, js)
    st, js = stub.request("PUT", "/customers/123456785", {"id": "123456785", "name": "Ana P"}, headers=auth)
    assert st == 200, (st, js)
    st, js = stub.request("PUT", "/customers/123456785", raw=b"[", headers=auth)
    assert st == 400, (st, js)
    s = stub.stats(detail=True)
    assert (s["customers"], s["customer_puts"]) == (1, 2), s
    assert s["by_customer"]["123456785"]["body"]["name"] == "Ana P", s["by_customer"]

    # --- 404 / 405
    assert stub.request("GET", "/nope")[0] == 404
    assert stub.request("GET", "/sales")[0] == 405

    # --- the numbers
    # booked: 3 (k1) + new (k2) + good, bad (k3, k3b) + f + lost + other + stalled + sl = 11
    # deliveries: k1 3+3+3, k2 2, k1-reuse 1, k3 3, k3b 1, k4 1+1, k5 1,
    #             k6 1+1, k7 1 (stall) + 1, k8 1, k9 1                        = 25
    # redeliveries: k1 replays 3+3, k2's duplicate 1, k6 replay 1             = 8
    s = stub.stats(detail=True)
    want = {"booked": 11, "deliveries": 25, "redeliveries": 8, "customers": 1,
            "customer_puts": 2, "mismatches": 0, "mode": "ok"}
    got = {k: s[k] for k in want}
    assert got == want, (got, want)
    o = s["outcomes"]
    assert o == {"accepted": 10, "accepted:dropped": 1, "duplicate": 1, "replay": 7, "rejected": 2,
                 "key_reused": 1, "fail500": 1, "down": 1, "stall": 1}, o
    booked = [i for i, e in s["by_sale"].items() if e["booked"]]
    assert len(booked) == 11 and all(s["by_sale"][i]["first_key"] for i in booked)
    assert "not-a-uuid" in s["by_sale"] and not s["by_sale"]["not-a-uuid"]["booked"]
    # a duplicate with different content is counted (an ERP must not compare; the stub tells tests)
    changed = dict(batch[1], total=1)
    st, js = stub.post_sales([changed], "k13")
    assert js["duplicates"] == [ids[1]] and stub.stats()["mismatches"] == 1, js
    return a1, batch


def main():
    work = tempfile.mkdtemp(prefix="it-erp-stub-")
    stub = ErpStub(token=TOKEN, workdir=work)
    ok = False
    try:
        stub.start()
        a1, batch = check(stub)
        # --- SIGTERM stops it cleanly; a restart on the same file keeps everything
        assert stub.stop() == 0, stub.tail()
        assert "stopped" in stub.tail()
        stub.start()
        st, js = stub.post_sales(batch, "k1")
        assert (st, js) == (200, a1), (st, js)
        assert stub.stats()["booked"] == 11
        # --- reset empties it
        stub.reset()
        s = stub.stats()
        assert (s["booked"], s["deliveries"], s["keys"], s["customers"]) == (0, 0, 0, 0), s
        assert stub.stop() == 0
        # --- the log has one line per request with method, path, status, key and count
        log = stub.tail(2000)
        assert "POST /sales 200 key=k1 n=3" in log, log[-2000:]
        assert "dropped key=k6 n=1" in log and "stall key=k7 n=1" in log, log[-3000:]
        ok = True
    finally:
        if stub.proc and stub.proc.poll() is None:
            stub.kill9()
        if not ok:
            sys.stderr.write("---- stub log ----\n" + stub.tail(60))
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("PASS it_erp_stub")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        import traceback
        traceback.print_exc()
        print(f"FAIL it_erp_stub: {e}")
        sys.exit(1)
