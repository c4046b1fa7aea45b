"""hostilelib - run tests/hostile/tm_hostile against tills of a StoreLab.

A hostile till holds a key every till of the lab trusts (it is in their
trusted keys files) but is no tillmeshd: tm_hostile speaks the protocol from
the project's own libraries and sends what the test tells it to. Its JSON
report says what it sent and what the target sent back.
"""
import json
import os
import subprocess
import time

import tmharness as h

TM_HOSTILE = os.path.join(h.BIN, "tm_hostile")


def add_hostile_key(lab, name="hostile"):
    """Makes a keypair for the hostile till and has every till trust it.
    Call before the tills start (their trusted keys are written then)."""
    pub = lab.keygen(name)
    lab.trusted_lines[name] = pub
    return os.path.join(lab.root, "keys", name)


def revoke_key(lab, till, name="hostile"):
    """Removes name's line from till's trusted keys file (not the lab's
    list: a restart would write it again) and sends SIGHUP."""
    path = os.path.join(till.dir, "trusted_keys")
    with open(path) as f:
        lines = [ln for ln in f if not ln.startswith(name + " ")]
    with open(path, "w") as f:
        f.writelines(lines)
    till.proc.send_signal(1)  # SIGHUP


def start(lab, target, args, key_prefix, wait_ms=2000, opts=()):
    """Starts tm_hostile against till `target`; returns the Popen."""
    if not os.path.exists(TM_HOSTILE):
        raise h.Skip(f"{TM_HOSTILE} not built (configure with tests on)")
    cmd = [TM_HOSTILE, "--target", target.endpoint, "--server-key",
           os.path.join(lab.root, "keys", target.name + ".pub"), "--key", key_prefix,
           "--store", target.store_id, "--wait-ms", str(wait_ms), *opts, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=120):
    """Waits for tm_hostile and returns its report (a dict)."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"tm_hostile exited {proc.returncode}: {err.strip()}")
    return json.loads(out.strip().splitlines()[-1])


def pos_sales_while(till, proc, timeout_s, min_sales=20):
    """Sells on till, one POST after another, while proc runs (and at least
    min_sales). Every POST must succeed within timeout_s (a POS's client
    timeout). Returns the latencies in seconds."""
    lat = []
    while proc.poll() is None or len(lat) < min_sales:
        t0 = time.monotonic()
        try:
            st, js = till.request_timeout("POST", "/v1/sales", h.make_sale(), timeout_s)
        except OSError as e:
            raise AssertionError(f"POST /v1/sales on {till.name} failed after "
                                 f"{time.monotonic() - t0:.1f} s (client timeout {timeout_s} s): "
                                 f"{e}")
        dt = time.monotonic() - t0
        if st != 201:
            raise AssertionError(f"POST /v1/sales on {till.name}: {st} {js}")
        lat.append(dt)
    return lat


def p99(lat):
    s = sorted(lat)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]


def till_request_timeout(self, method, path, body, timeout):
    import urllib.request
    import urllib.error
    req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}",
                                 data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


h.Till.request_timeout = till_request_timeout


def peer(till, name):
    for p in till.status()["peers"]:
        if p["name"] == name:
            return p
    return None


def held_seq(till, node_id):
    """The seq till's vector holds of origin node_id (0 if none)."""
    for e in till.status()["state"]["vv"]:
        if e["origin"] == node_id:
            return e["seq"]
    return 0
