#!/usr/bin/env python3
"""With api_allow_remote = yes the API needs a bearer token from other hosts.

Without api_token_file tillmeshd refuses the configuration (and -n says
why); a token file that group or others can read is refused at start. With a
0600 token file and the API on 0.0.0.0, a client on another address (this
host's own non-loopback address: the source is then not loopback) gets 401
without the token or with a wrong one, and its answers with it; the POS on
loopback needs no token, as before. The remote part SKIPs, loudly, on a host
without a non-loopback IPv4 address."""
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request

from tmharness import run, wait_until, make_sale, TILLMESHD

TOKEN = "s3cr3t-t0ken-for-the-store-api-0001"


def host_ip():
    """A non-loopback IPv4 address of this host, or None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        addr = line.split()[3].split("/")[0]
        if not addr.startswith("127."):
            return addr
    return None


def call(ip, port, method, path, token=None, body=None):
    h = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{ip}:{port}{path}", data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def remote_api_needs_token(lab):
    a = lab["a"]
    tok = os.path.join(a.dir, "api.token")
    # 1. api_allow_remote without a token file: refused, and -n says why.
    a.extra = f"api_listen = 0.0.0.0:{a.api_port}\napi_allow_remote = yes\n"
    a.write_config()
    r = subprocess.run([TILLMESHD, "-n", "-c", a.config], capture_output=True, text=True)
    assert r.returncode == 1 and "api_token_file" in r.stderr, r
    # 2. A token file others can read: the daemon does not start.
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tok, 0o644)
    a.extra += f"api_token_file = {tok}\n"
    a.write_config()
    r = subprocess.run([TILLMESHD, "-c", a.config], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "chmod 600" in r.stderr, r
    # 3. 0600: it starts; loopback works without a token, as before.
    os.chmod(tok, 0o600)
    a.start()
    assert a.post_sale()["sale_id"]
    ip = host_ip()
    if not ip:
        print("SKIP: remote part: this host has no non-loopback IPv4 address to connect from")
        return
    for path in ("/v1/status", "/metrics", "/v1/sales/00000000-0000-4000-8000-000000000000"):
        st, hdrs, body = call(ip, a.api_port, "GET", path)
        assert st == 401, (path, st, body)
        assert hdrs.get("WWW-Authenticate", "").startswith("Bearer"), hdrs
        assert json.loads(body)["error"] == "unauthorized", body
        st, _, body = call(ip, a.api_port, "GET", path, token=TOKEN[:-1] + "x")
        assert st == 401, (path, st, body)
    st, _, body = call(ip, a.api_port, "GET", "/v1/status", token=TOKEN)
    assert st == 200 and json.loads(body)["api_version"] == 1, (st, body)
    st, _, body = call(ip, a.api_port, "POST", "/v1/sales", token=TOKEN, body=make_sale())
    assert st == 201, (st, body)
    st, _, body = call(ip, a.api_port, "GET", "/metrics", token=TOKEN)
    assert st == 200 and b"tillmesh_" in body, (st, body)
    assert a.status()["state"]["sales"] == 2
    # The refusals are in the log, for the store's IT person.
    wait_until(lambda: "401 unauthorized" in a.tail(100), 10, "the 401s in the log")


if __name__ == "__main__":
    run(remote_api_needs_token, ["a"])
