#!/usr/bin/env python3
"""it_disc_mesh - tillmeshd finds its peers by mDNS, with no static peers,
in a namespace lab where every till has its own dbus and avahi-daemon.

  1. three tills of one store find each other and replicate a sale;
  2. a till of another store (its key is trusted, its store id is not ours)
     is seen, shown as "foreign", and never joined; a till whose key is not
     trusted is shown as "untrusted", gets nothing and injects nothing;
  3. pulling a till's LAN cable makes it "down" in the others' status within
     the peer timeout; plugging it back brings it back and it catches up on
     the sales it missed;
  4. restarting one till's avahi-daemon does not stop replication.
Status and sales go through the `tillmesh` CLI inside each till's namespace,
as a technician would. Needs root and netns (exit 77 = SKIP otherwise)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from tmharness import make_sale  # noqa: E402

BIN = os.path.abspath(os.environ.get("TM_BIN_DIR", "build/asan"))
TILLMESHD, TILLMESH = os.path.join(BIN, "tillmeshd"), os.path.join(BIN, "tillmesh")
API = "127.0.0.1:7780"
PEER_TIMEOUT_MS = 1500


def setup(lab, stores, untrusted=()):
    keys = os.path.join(lab.root, "keys")
    os.makedirs(keys)
    trusted = os.path.join(keys, "trusted_keys")
    with open(trusted, "w") as f:
        for n in stores:
            subprocess.run([TILLMESH, "keygen", "--out", os.path.join(keys, n)], check=True,
                           capture_output=True)
            if n in untrusted:
                continue  # it has a key, but the store does not list it
            with open(os.path.join(keys, n + ".pub")) as k, \
                    open(os.path.join(keys, n + ".sign")) as s:
                f.write(f"{n} {k.read().strip()} {s.read().strip()}\n")
    procs = {}
    for n, store in stores.items():
        d = os.path.join(lab.root, n)
        cfg = os.path.join(d, "tillmeshd.conf")
        with open(cfg, "w") as f:
            f.write(f"""[node]
name = {n}
store_id = {store}
data_dir = {d}/data
api_listen = {API}
[mesh]
listen = tcp://0.0.0.0:7700
advertise = tcp://{lab.ip(n)}:7700
secret_key = {keys}/{n}.key
public_key = {keys}/{n}.pub
trusted_keys = {trusted}
heartbeat_ms = 250
peer_timeout_ms = {PEER_TIMEOUT_MS}
[discovery]
mdns = yes
""")
        log = open(os.path.join(d, "tillmeshd.log"), "ab")
        procs[n] = lab.run_in(n, [TILLMESHD, "-c", cfg], stdout=log, stderr=log)
    return procs


def cli(lab, n, *args, stdin=None):
    r = subprocess.run(["nsenter", "-t", str(lab.tills[n].holder.pid), "-m", "-n", "--",
                        TILLMESH, "--api", API] + list(args), input=stdin, capture_output=True,
                       text=True, timeout=20)
    return r


def status(lab, n):
    r = cli(lab, n, "status", "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def peer(lab, n, other):
    st = status(lab, n)
    for p in (st or {}).get("peers", []):
        if p["name"] == other:
            return p
    return None


def add_sale(lab, n):
    r = cli(lab, n, "sale", "add", "-", stdin=json.dumps(make_sale()))
    assert r.returncode == 0, r
    return json.loads(r.stdout)["sale_id"]


def has_sale(lab, n, sid):
    return cli(lab, n, "sale", "get", sid).returncode == 0


def main():
    netlab.require_netns()
    with netlab.Lab(["a", "b", "c", "x", "u"]) as lab:
        setup(lab, {"a": "store-1", "b": "store-1", "c": "store-1", "x": "store-2",
                    "u": "store-1"}, untrusted=("u",))
        w = netlab.wait_until
        for n in "abc":
            w(lambda n=n: status(lab, n), 30, f"{n} to start")
        # 1. found by mDNS, alive, replicating
        for n in "abc":
            for o in "abc":
                if o != n:
                    w(lambda n=n, o=o: (peer(lab, n, o) or {}).get("state") == "alive", 30,
                      f"{n} to find {o} by mDNS")
        p = peer(lab, "a", "b")
        assert p["source"] == "mdns" and lab.ip("b") in p["addresses"], p
        assert p["last_announced"], p
        sid = add_sale(lab, "a")
        for n in "bc":
            w(lambda n=n: has_sale(lab, n, sid), 20, f"sale on {n}")
        # 2. another store: seen, foreign, never joined
        w(lambda: (peer(lab, "a", "x") or {}).get("state") == "foreign", 30, "x seen as foreign")
        assert not has_sale(lab, "x", sid), "a till of another store got our sale"
        # an untrusted key: reported as such, not connected, gets nothing
        def untrusted_seen():
            return [p for p in (status(lab, "a") or {}).get("peers", [])
                    if p["name"].startswith("untrusted:") and p["state"] == "untrusted"
                    and lab.ip("u") in p["addresses"]]
        w(untrusted_seen, 30, "u reported as untrusted")
        assert not has_sale(lab, "u", sid), "an untrusted till got our sale"
        usid = add_sale(lab, "u")
        # 3. cable pull: down within the peer timeout; plug: back and caught up
        lab.link("c", False)
        w(lambda: (peer(lab, "a", "c") or {}).get("state") == "down", PEER_TIMEOUT_MS / 1000 + 5,
          "c to go down after its cable was pulled")
        missed = [add_sale(lab, "a") for _ in range(5)]
        lab.link("c", True)
        w(lambda: (peer(lab, "a", "c") or {}).get("state") == "alive", 30, "c back after plug")
        for s in missed:
            w(lambda s=s: has_sale(lab, "c", s), 30, "c to catch up")
        # 4. avahi-daemon restart in b: replication goes on
        lab.restart_avahi("b")
        sid2 = add_sale(lab, "a")
        w(lambda: has_sale(lab, "b", sid2), 20, "sale on b after its avahi restart")
        w(lambda: len({(status(lab, n) or {}).get("state", {}).get("digest") for n in "abc"}) == 1,
          30, "equal digests")
        assert not has_sale(lab, "a", usid), "an untrusted till injected a sale"
        print("PASS it_disc_mesh")


if __name__ == "__main__":
    main()
