#!/usr/bin/env python3
"""lab_delaybox - the lab's userspace delay box (deploy/lab/delaybox.py) on a
real veth pair between two namespaces this test makes:

  1. delay D on A's egress: every UDP echo round trip takes at least D, and
     none is lost; with D on both ends, at least 2 D;
  2. with jitter, a burst of numbered datagrams arrives complete and in order;
  3. with a tbf rate limit on the same device, a 300 kB TCP transfer still
     arrives whole (the delayed frames go back through the device's qdisc);
  4. SIGTERM: the redirect and the tap are gone and echoes work undelayed
     (checked by the box's own counters standing still, not by a stopwatch);
  5. kill -9: the redirect is left pointing at nothing, so the cable drops
     everything, and `tc qdisc del dev DEV clsact` (what the lab's `clear`
     runs) brings it back;
  6. bad arguments and a missing device: a one-line error, exit non-zero,
     nothing left behind.

The only time assertions are lower bounds (a delayed frame cannot arrive
before its delay); no upper bound is asserted. Needs root (exit 77 = SKIP).
"""
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "deploy", "lab"))
import labnet  # noqa: E402
from labnet import _sh, netlab  # noqa: E402

PID = os.getpid()
NS_A, NS_B = f"tmdly-{PID}-a", f"tmdly-{PID}-b"
IP_A, IP_B = "10.55.0.1", "10.55.0.2"

ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9999))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 9998)); t.listen()
print("ready", flush=True)
import threading
def tcp():
    while True:
        c, _ = t.accept(); n = 0
        while True:
            d = c.recv(65536)
            if not d: break
            n += len(d)
        c.sendall(str(n).encode()); c.close()
threading.Thread(target=tcp, daemon=True).start()
while True:
    d, a = s.recvfrom(2000); s.sendto(d, a)
"""

# Sends N numbered datagrams and prints {"rtt_ms": [...], "order": [...]}.
# GAP > 0: one at a time, each waits up to WAIT s for its echo, then GAP s.
# GAP = 0: a burst, all sent at once, echoes collected for up to WAIT s.
PROBE = r"""
import json, socket, sys, time
n, gap, wait = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((sys.argv[4], 9999))
sent, rtt, order = {}, [], []
def collect(until_n, deadline):
    while len(order) < until_n:
        left = deadline - time.monotonic()
        if left <= 0: return
        s.settimeout(left)
        try: d = s.recv(2000)
        except socket.timeout: return
        i = int(d.strip()); order.append(i); rtt.append((time.monotonic() - sent[i]) * 1000)
for i in range(n):
    sent[i] = time.monotonic(); s.send(str(i).encode().ljust(64))
    if gap:
        collect(len(order) + 1, time.monotonic() + wait)
        time.sleep(gap)
if not gap:
    collect(n, time.monotonic() + wait)
print(json.dumps({"rtt_ms": rtt, "order": order}))
"""

BULK = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 9998), timeout=60)
s.sendall(b"y" * int(sys.argv[2])); s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode())
"""


def ns_py(ns, code, *args, timeout=60):
    r = _sh(["ip", "netns", "exec", ns, sys.executable, "-c", code] + [str(a) for a in args],
            timeout=timeout)
    return r.stdout


def probe(n=10, gap=0.02, wait=2.0):
    return json.loads(ns_py(NS_A, PROBE, n, gap, wait, IP_B))


def start_box(ns, delay, jitter=0, extra=()):
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, labnet.DELAYBOX,
                          "--dev", "v0", "--delay-ms", str(delay), "--jitter-ms", str(jitter)]
                         + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    line = p.stdout.readline().strip()
    if line != "ready":
        p.wait(5)
        raise AssertionError(f"delaybox did not start: {line!r} {p.stderr.read()}")
    return p


def stop_box(p):
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, f"delaybox exit {p.returncode}: {err}"
    return out


def qdiscs(ns):
    return _sh(["tc", "-n", ns, "qdisc", "show", "dev", "v0"]).stdout


def links(ns):
    return _sh(["ip", "-n", ns, "-o", "link", "show"]).stdout


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}", flush=True)


def build():
    for ns in (NS_A, NS_B):
        _sh(["ip", "netns", "add", ns])
        _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    _sh(["ip", "-n", NS_A, "link", "add", "name", "v0", "type", "veth", "peer", "name", "v0",
         "netns", NS_B])
    for ns, addr in ((NS_A, IP_A), (NS_B, IP_B)):
        _sh(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "v0"])
        _sh(["ip", "-n", ns, "link", "set", "v0", "up"])


def teardown(procs):
    for p in procs:
        netlab._kill_group(p)
    for ns in (NS_A, NS_B):
        netlab._del_ns(ns)


def run(procs):
    build()
    echo = subprocess.Popen(["ip", "netns", "exec", NS_B, sys.executable, "-c", ECHO],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    procs.append(echo)
    check(echo.stdout.readline().strip() == "ready", "echo server up in B")
    base = probe()
    check(len(base["order"]) == 10, f"undelayed: 10/10 echoes "
          f"(min {min(base['rtt_ms']):.2f} ms)")

    # 1. one end, then both ends
    a = start_box(NS_A, 100)
    procs.append(a)
    r = probe()
    check(len(r["order"]) == 10, "delay 100 ms at A: no echo lost")
    check(min(r["rtt_ms"]) >= 100, f"delay 100 ms at A: every round trip >= 100 ms "
          f"(min {min(r['rtt_ms']):.1f}, max {max(r['rtt_ms']):.1f})")
    b = start_box(NS_B, 100)
    procs.append(b)
    r = probe()
    check(len(r["order"]) == 10 and min(r["rtt_ms"]) >= 200,
          f"delay 100 ms at both ends: 10/10, every round trip >= 200 ms "
          f"(min {min(r['rtt_ms']):.1f})")
    stop_box(b)

    # 2. jitter keeps order
    stop_box(a)
    a = start_box(NS_A, 30, jitter=40)
    procs.append(a)
    r = probe(n=200, gap=0, wait=5)
    check(sorted(r["order"]) == list(range(200)), "jitter 40 ms: 200/200 datagrams of a burst")
    check(r["order"] == list(range(200)), "jitter 40 ms: they arrive in the order sent")
    check(min(r["rtt_ms"]) >= 30, f"jitter: every round trip >= the 30 ms delay "
          f"(min {min(r['rtt_ms']):.1f}, max {max(r['rtt_ms']):.1f})")

    # 3. with a rate limit on the same device
    _sh(["tc", "-n", NS_A, "qdisc", "replace", "dev", "v0", "root", "tbf", "rate", "2mbit",
         "burst", "16kb", "latency", "100ms"])
    got = ns_py(NS_A, BULK, IP_B, 300000).strip()
    check(got == "300000", f"tbf 2mbit + delay: 300000 bytes over TCP arrive whole ({got})")
    _sh(["tc", "-n", NS_A, "qdisc", "del", "dev", "v0", "root"])

    # 4. SIGTERM restores the cable
    out = stop_box(a)
    check("in=" in out and "out=" in out, f"SIGTERM: counters printed: {out.strip()}")
    check("clsact" not in qdiscs(NS_A), "SIGTERM: the redirect (clsact) is removed")
    check("dly-v0" not in links(NS_A), "SIGTERM: the tap is gone")
    check(len(probe()["order"]) == 10, "SIGTERM: echoes work again")

    # 5. kill -9 leaves a dead cable until clsact is deleted
    a = start_box(NS_A, 50)
    procs.append(a)
    os.killpg(a.pid, signal.SIGKILL)
    a.wait(10)
    check("clsact" in qdiscs(NS_A), "kill -9: the redirect is left behind")
    check(len(probe(n=3, wait=1)["order"]) == 0, "kill -9: the cable drops everything")
    _sh(["tc", "-n", NS_A, "qdisc", "del", "dev", "v0", "clsact"])
    check(len(probe()["order"]) == 10, "after `tc qdisc del ... clsact`: echoes work again")

    # 6. bad input
    for argv, want in ((["--dev", "v0", "--delay-ms", "-5"], "within 0..10000"),
                       (["--dev", "v0", "--delay-ms", "abc"], "invalid float"),
                       (["--dev", "nosuch0", "--delay-ms", "10"], "nosuch0")):
        r = subprocess.run(["ip", "netns", "exec", NS_A, sys.executable, labnet.DELAYBOX]
                           + argv, capture_output=True, text=True, timeout=20)
        check(r.returncode != 0 and want in r.stderr and "Traceback" not in r.stderr,
              f"{' '.join(argv)}: exit {r.returncode}, says {r.stderr.strip().splitlines()[-1]!r}")
    q, l = qdiscs(NS_A), links(NS_A)
    check("clsact" not in q and "dly-v0" not in l,
          f"after the refused starts: no redirect, no tap left")
    for bad in ("fast", "-1ms", "20s"):
        try:
            labnet.parse_ms(bad)
        except ValueError as e:
            check(True, f"lab delay={bad}: refused ({e})")
        else:
            raise AssertionError(f"lab delay={bad} accepted")
    check(labnet.parse_ms("200ms") == 200 and labnet.parse_ms("0.2s") == 200
          and labnet.parse_ms("200") == 200, "lab delay= 200ms, 0.2s and 200 are 200 ms")


def main():
    netlab.require_netns(("ip", "tc"))
    if not os.path.exists("/dev/net/tun"):
        netlab.skip("no /dev/net/tun: the delay box needs a tap device")
    procs = []
    t0 = time.monotonic()
    try:
        run(procs)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL lab_delaybox: {type(e).__name__}: {e}", flush=True)
        return 1
    finally:
        teardown(procs)
    left = [l for l in _sh(["ip", "netns", "list"]).stdout.splitlines() if f"-{PID}-" in l]
    if left:
        print(f"FAIL lab_delaybox: left behind {left}")
        return 1
    print(f"PASS lab_delaybox in {time.monotonic() - t0:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
