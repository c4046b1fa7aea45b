#!/usr/bin/env python3
"""[node] metrics_listen: a second listener for Prometheus on the store LAN.

- It serves GET (and HEAD) /metrics to any client without a token, also
  from a LAN address, while the API itself stays on loopback.
- Nothing else is there: every other path is 404 (the write API too,
  whatever the method), POST /metrics is 405, nothing is stored.
- Bounded like the API: a flood of idle connections does not lock a scrape
  out (the oldest idle one is evicted), and a request that never finishes
  is closed by the deadline.
- The live text passes `promtool check metrics`; the example rules pass
  `promtool check rules` and their unit tests; every metric the rules use
  is exported, and every exported metric is documented in docs/metrics.md.
  promtool (Debian package `prometheus`) missing: SKIP, loudly, after the
  rest has run.
"""
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

from tmharness import run, wait_until, free_port, Skip

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RULES = os.path.join(ROOT, "deploy", "prometheus", "tillmesh.rules.yml")
RULES_TEST = os.path.join(ROOT, "tests", "prometheus", "tillmesh.rules.test.yml")
DOC = os.path.join(ROOT, "docs", "metrics.md")


def lan_address():
    """A non-loopback IPv4 address of this host, or None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    except OSError:
        return None
    for m in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/", out):
        if not m.group(1).startswith("127."):
            return m.group(1)
    return None


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def closed_by_server(s):
    """True once the server closed s (recv gives EOF or a reset)."""
    s.settimeout(0.1)
    try:
        return s.recv(4096) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def metrics_listen(lab):
    a, b = lab["a"], lab["b"]
    lab.connect("a", "b")
    port = free_port()
    a.extra = f"metrics_listen = 0.0.0.0:{port}\napi_request_timeout_s = 2"
    b.start()
    a.start()
    a.post_sale()
    wait_until(lambda: any(p["name"] == "b" and p["state"] == "alive"
                           for p in a.status()["peers"]), 20, "a to see b alive")
    lan = lan_address()
    host = lan or "127.0.0.1"
    if not lan:
        print("NOTE: no non-loopback IPv4 address here: the LAN client is played "
              "from 127.0.0.1 only", flush=True)
    base = f"http://{host}:{port}"

    st, ctype, text = http("GET", base + "/metrics")
    assert st == 200 and ctype.startswith("text/plain; version=0.0.4"), (st, ctype)
    assert 'tillmesh_info{till="a",store="store-it"} 1' in text, text[:400]
    assert 'tillmesh_peer_up{peer="b"} 1' in text, text
    assert re.search(r"^tillmesh_sales 1$", text, re.M), text
    st, _, body = http("HEAD", base + "/metrics")
    assert st == 200 and body == "", st

    # Only /metrics: the API's routes are not there, a token changes nothing.
    sales_before = a.status()["state"]["digest"]
    for method, path, body in [("GET", "/v1/status", None), ("GET", "/v1/sales", None),
                               ("GET", "/metrics/", None), ("GET", "/metricsx", None),
                               ("GET", "/", None), ("GET", "/v1/erp/parked", None),
                               ("POST", "/v1/sales", b'{"lines":[]}'),
                               ("PUT", "/v1/customers/1", b"{}"),
                               ("POST", "/v1/erp/parked/x/retry", b"{}")]:
        st, _, out = http(method, base + path, body,
                          {"Content-Type": "application/json",
                           "Authorization": "Bearer 0123456789abcdef0123"})
        assert st == 404 and "only GET /metrics" in out, (method, path, st, out)
    st, _, _ = http("POST", base + "/metrics", b"{}", {"Content-Type": "application/json"})
    assert st == 405, st
    assert a.status()["state"]["digest"] == sales_before, "a write got through"

    # Bounded: 40 idle loopback connections and 10 from the LAN address
    # (cap 16; 4 per non-loopback address, the rest refused at connect),
    # then scrapes from both still get in: the oldest idle one makes room.
    idle = []
    try:
        for _ in range(40):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        if lan:
            for _ in range(10):
                idle.append(socket.create_connection((lan, port), timeout=5))
        st, _, _ = http("GET", f"http://127.0.0.1:{port}/metrics")
        assert st == 200, st
        st, _, m = http("GET", f"http://127.0.0.1:{a.api_port}/metrics")
        assert st == 200, st
    finally:
        for s in idle:
            s.close()
    if lan:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
        try:
            st, _, _ = http("GET", base + "/metrics")
            assert st == 200, st
        finally:
            for s in idle:
                s.close()
    # A request that never ends is closed by the deadline (2 s here).
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    wait_until(lambda: closed_by_server(s), 15, "the half-sent request to be closed")
    s.close()
    assert a.proc.poll() is None and a.alive_api()

    # Every metric the rules use is exported; every exported one documented.
    exported = set(re.findall(r"^# TYPE (tillmesh_\w+) ", text, re.M))
    with open(RULES) as f:
        used = set(re.findall(r"\b(tillmesh_\w+)", f.read()))
    assert used <= exported, f"rules use metrics not exported: {sorted(used - exported)}"
    with open(DOC) as f:
        doc = f.read()
    undocumented = sorted(n for n in exported if f"`{n}`" not in doc)
    assert not undocumented, f"not in docs/metrics.md: {undocumented}"
    print(f"metrics: {len(exported)} families, {len(used)} used by the rules", flush=True)

    promtool = shutil.which("promtool")
    if not promtool:
        raise Skip("promtool not found (Debian package `prometheus`): the metrics text "
                   "and the rules were NOT checked by promtool; everything else passed")
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert r.returncode == 0, f"promtool check metrics:\n{r.stdout}{r.stderr}"
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    assert r.returncode == 0, f"promtool check rules:\n{r.stdout}{r.stderr}"
    r = subprocess.run([promtool, "test", "rules", RULES_TEST], capture_output=True, text=True)
    assert r.returncode == 0, f"promtool test rules:\n{r.stdout}{r.stderr}"


if __name__ == "__main__":
    run(metrics_listen, ["a", "b"])
