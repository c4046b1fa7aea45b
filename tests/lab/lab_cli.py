#!/usr/bin/env python3
"""lab_cli - the `tillmesh-lab` command a technician or developer types, as
the build puts it ($TM_BIN_DIR/tillmesh-lab), driven through one whole drill
on a 3-till store (t3 on 4G):

  help; status without a lab (exit 1); up; a second up (refused); impair
  with loss + delay, and wrong tills / cables / specs (exit 1, one line, no
  traceback); load start; pull/plug; kill -9 / start; partition / heal;
  avahi-restart; clear; load stop --out; check --timeout (RESULT: OK);
  timeline (an SVG); clock (a till 10 min behind, stepped, a date, ok; wrong
  tills and specs); down, after which no namespace, process or run file of
  the lab is left.

Needs root (exit 77 = SKIP).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "deploy", "lab"))
import labnet  # noqa: E402
from labnet import netlab, _sh  # noqa: E402

BIN = os.path.abspath(os.environ.get("TM_BIN_DIR", os.path.join(HERE, "..", "..", "build")))
LAB = os.path.join(BIN, "tillmesh-lab")


def lab(*args, want=0, timeout=300):
    t = time.monotonic()
    r = subprocess.run([LAB] + list(args), capture_output=True, text=True, timeout=timeout,
                       env=ENV)
    out = (r.stdout + r.stderr).strip()
    print(f"$ tillmesh-lab {' '.join(args)}  -> {r.returncode} ({time.monotonic() - t:.1f}s)\n"
          + "\n".join("    " + l for l in out.splitlines()[-14:]), flush=True)
    if r.returncode != want:
        raise AssertionError(f"tillmesh-lab {' '.join(args)}: exit {r.returncode}, "
                             f"wanted {want}")
    if "Traceback" in out:
        raise AssertionError(f"tillmesh-lab {' '.join(args)} printed a traceback")
    return out


def expect(out, *words):
    for w in words:
        if w not in out:
            raise AssertionError(f"expected {w!r} in: {out}")


def leftovers(sup):
    ns = [l for l in _sh(["ip", "netns", "list"]).stdout.splitlines() if f"-{sup}-" in l
          or f"-{sup} " in l or l.endswith(f"-{sup}")]
    ps = _sh(["ps", "-eo", "pid,stat,args"]).stdout.splitlines()
    procs = [l for l in ps if f"tmlab-{sup}-" in l and " Z" not in l]
    return ns + procs


def drill(run):
    out = lab("--help")
    expect(out, "impair", "delay", "partition", "clock TILL WHEN")
    expect(lab("status", want=1), "no lab running")
    expect(lab("up", "3", "--clock", "t9=-10m", want=1), "--clock", "t1..t3")
    expect(lab("up", "3", "--clock", "t1=soon", want=1), "--clock t1=soon", "2000-01-01")
    out = lab("up", "3", "--fourg", "t3")
    expect(out, "t1", "t2", "t3", "ERP:")
    sup = int(open(os.path.join(run, "supervisor.pid")).read())
    state = json.load(open(os.path.join(run, "state.json")))
    expect(json.dumps(state), "internet_ns", "t3")
    try:
        expect(lab("up", "3", want=1), "already running")
        expect(lab("impair", "t9", "lan", "loss=5", want=1), "no till 't9'")
        expect(lab("impair", "t1", "wifi", "loss=5", want=1), "lan or uplink")
        expect(lab("impair", "t1", "lan", "bogus", want=1), "KEY=VALUE")
        expect(lab("impair", "t1", "lan", "speed=5", want=1), "unknown impairment")
        expect(lab("impair", "t1", "lan", "delay=fast", want=1), "200ms")
        expect(lab("impair", "t1", "lan", "loss=2,delay=100ms,jitter=10ms"), "delay", "100ms")
        expect(lab("status"), "delay")
        expect(lab("load", "start", "--rate", "3"), "load started")
        expect(lab("load", "start", want=1), "already running")
        lab("pull", "t2", "lan")
        time.sleep(3)           # the drill: selling with t2 cut off
        expect(lab("status"), "OUT")
        lab("plug", "t2", "lan")
        expect(lab("kill", "t1"), "killed t1")
        time.sleep(2)
        expect(lab("start", "t1"), "started t1")
        lab("partition", "t1", "/", "t2,t3")
        time.sleep(3)
        expect(lab("status"), "partition: t1 / t2,t3")
        lab("heal")
        lab("avahi-restart", "t2")
        lab("clear", "t1", "lan")
        time.sleep(2)
        truth = os.path.join(run, "truth.json")
        expect(lab("load", "stop", "--out", truth), "load stopped", "acknowledged=")
        n = len(json.load(open(truth))["truth"])
        if n < 10:
            raise AssertionError(f"only {n} sales acknowledged in the drill")
        expect(lab("check", "--timeout", "90"), "RESULT: OK", "missing at ERP:       0")
        svg = os.path.join(run, "t.svg")
        lab("timeline", svg)
        with open(svg) as f:
            head = f.read(200)
        expect(head, "<svg")
        # Clocks, after the check (wrong clocks are lab_clock's business).
        # The supervisor waits until the till's own API shows the new time.
        expect(lab("clock", "t2", "-10m"), "clock of t2: -10m")
        expect(lab("status"), "-10m")
        expect(lab("clock", "t2", "2000-01-01"), "shows 2000-01-01")
        expect(lab("kill", "t2"), "killed t2")
        expect(lab("clock", "t2", "+1d"), "+1d", "from its next start")
        expect(lab("start", "t2"), "started t2")
        expect(lab("clock", "t2", "ok"), "clock of t2: ok")
        expect(lab("clock", "t9", "-10m", want=1), "no till 't9'")
        expect(lab("clock", "t1", "yesterday", want=1), "-10m", "2000-01-01")
        expect(lab("clock", "t1", want=1), "usage: clock TILL WHEN")
    finally:
        lab("down")
    expect(lab("status", want=1), "no lab running")
    left = leftovers(sup)
    if left:
        raise AssertionError(f"left behind after down: {left}")
    print(f"ok - nothing of lab {sup} left after down", flush=True)
    for f in ("ctl.sock", "state.json", "supervisor.pid"):
        if os.path.exists(os.path.join(run, f)):
            raise AssertionError(f"{f} left in {run}")


def main():
    netlab.require_netns(("ip", "unshare", "nsenter", "dbus-daemon", "avahi-daemon",
                          "iptables", "tc"))
    if not os.access(LAB, os.X_OK):
        netlab.skip(f"no {LAB} (the build writes it; set TM_BIN_DIR)")
    run = tempfile.mkdtemp(prefix="tmlab-cli-")
    global ENV
    ENV = dict(os.environ, TILLMESH_LAB_RUN=run, TM_BIN_DIR=BIN)
    t0 = time.monotonic()
    try:
        drill(run)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL lab_cli: {type(e).__name__}: {e}", flush=True)
        log = os.path.join(run, "supervisor.log")
        if os.path.exists(log):
            print("supervisor log (tail):\n" + open(log, errors="replace").read()[-3000:])
        subprocess.run([LAB, "down", "--force"], env=ENV, capture_output=True, timeout=120)
        return 1
    finally:
        shutil.rmtree(run, ignore_errors=True)
    print(f"PASS lab_cli in {time.monotonic() - t0:.1f}s", flush=True)
    return 0


ENV = None

if __name__ == "__main__":
    sys.exit(main())
