"""scenario - the frame every lab scenario (tests/lab/lab_*.py) runs in:
build the store, wait for a forwarder, ring up sales on every till, run the
scenario's drill, stop the load, run the checker, draw the timeline.

    def drill(lab, s):            # s.pause(sec), s.rng, s.mark_heal()
        ...
    sys.exit(scenario.run("uplink_pull", drill, tills=4, rate=5))

Exit 0 = checker OK, 1 = violation or error, 77 = no namespaces here (SKIP).
Artifacts (timeline SVG, report JSON, ground truth) go to $TM_LAB_OUT
(default /tmp/tillmesh-lab-runs/<name>-<time>/).
"""
import json
import os
import random
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import labnet  # noqa: E402
import checker  # noqa: E402
import loadgen  # noqa: E402
import timeline  # noqa: E402


class Ctx:
    def __init__(self, lab, seed):
        self.lab = lab
        self.rng = random.Random(seed)
        self.heal_at = None

    def pause(self, sec):
        time.sleep(sec)           # load keeps running meanwhile

    def mark_heal(self):
        self.heal_at = time.time()

    def wait(self, cond, timeout, what):
        return labnet.wait_until(cond, timeout, what, interval=0.2)

    def log(self, msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def bin_dir():
    for d in (os.environ.get("TM_BIN_DIR"), os.path.join(labnet.REPO, "build", "asan"),
              os.path.join(labnet.REPO, "build")):
        if d and os.access(os.path.join(d, "tillmeshd"), os.X_OK):
            return d
    labnet.netlab.skip("no tillmeshd build found (set TM_BIN_DIR)")


def run(name, drill, tills=4, rate=5.0, fourg=(), settle=90, warmup=3, seed=None,
        clocks=None, defaults=False):
    """clocks: {till: WHEN} wall clocks from the start (labnet, fakeclock);
    the drill can change them with lab.set_clock(till, WHEN). defaults: the
    tills run on tillmeshd's default timings (labnet.StoreLab)."""
    labnet.netlab.require_netns(("ip", "unshare", "nsenter", "dbus-daemon", "avahi-daemon",
                                 "iptables", "tc"))
    if clocks:
        if os.environ.get("TM_LAB_FAKETIME") == "0":
            labnet.netlab.skip("TM_LAB_FAKETIME=0 and this scenario needs wrong clocks")
        try:
            labnet.fakeclock.require()
        except labnet.fakeclock.FaketimeMissing as e:
            labnet.netlab.skip(str(e))
    seed = seed if seed is not None else int(os.environ.get("TM_LAB_SEED", time.time()))
    out = os.environ.get("TM_LAB_OUT") or os.path.join(
        "/tmp/tillmesh-lab-runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out, exist_ok=True)
    print(f"lab scenario {name}: {tills} tills, {rate} sales/s each, seed {seed}, out {out}",
          flush=True)
    t_start = time.monotonic()
    ok = False
    try:
        with labnet.StoreLab(tills, bin_dir(), fourg=fourg, clocks=clocks,
                             defaults=defaults) as lab:
            ctx = Ctx(lab, seed)
            ctx.log(f"store up in {time.monotonic() - t_start:.1f}s" + (
                "; clocks " + " ".join(f"{n}={lab.clock_label(n)}" for n in lab.names)
                if clocks else ""))
            fw = ctx.wait(lab.forwarder_agreed, 60, "a forwarder agreed by every till")
            ctx.log(f"forwarder {fw}")
            rec = timeline.Recorder(lab).start()
            gen = loadgen.LoadGen(lab, rate=rate, seed=seed).start()
            try:
                ctx.pause(warmup)
                drill(lab, ctx)
            finally:
                gen.stop()
            ctx.log(f"load stopped: {gen.summary()}")
            try:
                rep = checker.check(lab, gen.truth, since=ctx.heal_at, timeout=settle)
            finally:
                time.sleep(1)
                rec.stop()
                rec.svg(os.path.join(out, "timeline.svg"), gen.truth, f"lab {name} (seed {seed})")
                gen.write(os.path.join(out, "truth.json"))
            rep["scenario"], rep["seed"] = name, seed
            rep["load_errors"] = gen.errors
            with open(os.path.join(out, "report.json"), "w") as f:
                json.dump(rep, f, indent=1)
            print(checker.format_report(rep), flush=True)
            ok = rep["ok"]
            if not ok:
                lab.keep_logs = True
                print(lab.table())
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        ok = False
    left = labnet._sh(["ip", "netns", "list"], check=False).stdout
    mine = [l for l in left.splitlines() if f"-{os.getpid()}" in l]
    if mine:
        print(f"LEFT BEHIND: {mine}", flush=True)
        ok = False
    print(f"{'PASS' if ok else 'FAIL'} lab_{name} in {time.monotonic() - t_start:.1f}s "
          f"(timeline {out}/timeline.svg)", flush=True)
    return 0 if ok else 1
