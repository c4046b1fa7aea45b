#!/usr/bin/env python3
"""bench_failover - forwarder failover and ERP probe load in the netns store
lab (issue 15), with keepalived's VRRP measured in the same namespaces as
the reference. Not a test: figures to read (bench/results/failover.md).

A store of TILLS tills (deploy/lab/labnet.py: namespaces, real avahi/mDNS,
real tillmeshd with the DEFAULT heartbeat, probe and ERP timings, the stub
ERP in an "internet" namespace behind a store router). Each till also runs
keepalived (Debian's) with one VRRP instance on the store LAN: a virtual IP,
priorities in the same order as the tills', a track script that checks the
ERP's /health the way an IT person would write it (curl -m 1, interval 1 s,
fall 2, rise 2), nopreempt (sticky, like the forwarder).

  silent   the cut till's uplink drops every packet both ways (iptables DROP
           on up0, the link stays up: a dead ISP router, a cable cut down
           the street); a sale is rung up on another till right after.
           tillmesh: cut -> the ERP books that sale (the stub's booked_at).
           keepalived: cut -> another till's notify_master fires (it owns
           the VIP).
  refused  the same with iptables REJECT --reject-with tcp-reset: every
           connection is refused at once (the best case).
  loss     20 % loss (iptables statistic, both ways) on the forwarder's
           uplink and on its LAN port for LOSS_S seconds while a till sells
           a sale every 2 s; counts hand-overs (epoch changes), uplink-down
           verdicts, keepalived master changes. Must be zero hand-overs.
  health   GET /health per second at the stub from an idle store of 2, 5
           and 10 tills (no keepalived), over IDLE_S seconds.

Exactly once during hand-overs: every sale delivered by two tills must have
gone under one Idempotency-Key with the same body (stub: keys, mismatches).

Environment: TM_BIN_DIR (a build), TM_BENCH_FAILOVER_RUNS (20),
TM_BENCH_LOSS_S (600), TM_BENCH_IDLE_S (30), TM_BENCH_HEALTH_TILLS (2,5,10),
TM_BENCH_PARTS (silent,refused,loss,health), TM_BENCH_JSON (a file for every run's figures), TM_BENCH_OUT (instead of
bench/results/failover.md).
"""
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "deploy", "lab"))
import labnet  # noqa: E402

RUNS = int(os.environ.get("TM_BENCH_FAILOVER_RUNS", "20"))
LOSS_S = float(os.environ.get("TM_BENCH_LOSS_S", "600"))
IDLE_S = float(os.environ.get("TM_BENCH_IDLE_S", "30"))
HEALTH_TILLS = [int(x) for x in os.environ.get("TM_BENCH_HEALTH_TILLS", "2,5,10").split(",")]
PARTS = os.environ.get("TM_BENCH_PARTS", "silent,refused,loss,health").split(",")
TILLS = 5
VIP = "10.77.0.250"
OUT = os.environ.get("TM_BENCH_OUT") or os.path.join(REPO, "bench", "results", "failover.md")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(xs):
    return {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "worst": max(xs) if xs else
            float("nan")}


def a_sale():
    return {"sale_id": str(uuid.uuid4()), "currency": "CLP",
            "lines": [{"sku": "BENCH-1", "name": "bench", "qty": 1000, "unit_price": 990,
                       "tax_rate": 1900}],
            "total": 990, "payments": [{"method": "cash", "amount": 990}]}


def bin_dir():
    for d in (os.environ.get("TM_BIN_DIR"), os.path.join(REPO, "build", "release"),
              os.path.join(REPO, "build", "asan")):
        if d and os.access(os.path.join(d, "tillmeshd"), os.X_OK):
            return d
    sys.exit("no tillmeshd build found (set TM_BIN_DIR)")


# ---- cuts -------------------------------------------------------------------
def cut(lab, n, kind):
    t = lab.tills[n]
    if kind == "silent":
        rules = ["-I OUTPUT -o up0 -j DROP", "-I INPUT -i up0 -j DROP"]
    elif kind == "refused":
        rules = ["-I OUTPUT -o up0 -p tcp -j REJECT --reject-with tcp-reset"]
    else:
        raise ValueError(kind)
    sh = " && ".join(f"iptables -w {r} -m comment --comment tmbench" for r in rules)
    lab._nsexec(t.ns, ["sh", "-c", sh])
    lab.event(n, f"cut {kind}")


def uncut(lab, n):
    t = lab.tills[n]
    for chain in ("INPUT", "OUTPUT"):
        r = lab._nsexec(t.ns, ["iptables", "-w", "-S", chain], check=False)
        for line in r.stdout.splitlines():
            if "tmbench" in line:
                lab._nsexec(t.ns, ["iptables", "-w", "-D"] + labnet._split(line)[1:], check=False)
    lab.event(n, "uncut")


# ---- keepalived --------------------------------------------------------------
KA_CONF = """global_defs {{
    router_id {name}
    script_user root
}}
vrrp_script chk_erp {{
    script "/usr/bin/curl -sf -m 1 -o /dev/null http://{erp}:{port}/health"
    interval 1
    fall 2
    rise 2
}}
vrrp_instance store {{
    state BACKUP
    interface eth0
    virtual_router_id 77
    priority {prio}
    advert_int 1
    nopreempt
    virtual_ipaddress {{
        {vip}/24
    }}
    track_script {{
        chk_erp
    }}
    notify_master "{dir}/ka-note master"
    notify_fault "{dir}/ka-note fault"
}}
"""


class Keepalived:
    def __init__(self, lab):
        self.lab = lab
        self.procs = {}

    def start(self):
        for n in self.lab.names:
            t = self.lab.tills[n]
            conf = os.path.join(t.dir, "keepalived.conf")
            with open(conf, "w") as f:
                f.write(KA_CONF.format(name=n, erp=labnet.ERP_IP, port=labnet.ERP_PORT,
                                       prio=100 + t.index, vip=VIP, dir=t.dir))
            os.chmod(conf, 0o600)
            note = os.path.join(t.dir, "ka-note")
            with open(note, "w") as f:  # when keepalived changed state, to the ns
                f.write(f'#!/bin/sh\ndate +%s.%N >> {t.dir}/ka-"$1"\n')
            os.chmod(note, 0o700)
            logf = open(os.path.join(t.dir, "keepalived.log"), "ab")
            self.procs[n] = self.lab.run_in(
                n, ["keepalived", "--dont-fork", "--log-console", "--vrrp", "-f", conf,
                    "-p", "/run/keepalived.pid", "-r", "/run/keepalived-vrrp.pid"],
                stdout=logf, stderr=logf)
            logf.close()

    def masters(self):
        """Tills that own the VIP now."""
        out = []
        for n in self.lab.names:
            r = self.lab._ipn(self.lab.tills[n].ns, "-4", "addr", "show", "dev", "eth0",
                              check=False)
            if f"{VIP}/" in r.stdout:
                out.append(n)
        return out

    def master_times(self, n):
        p = os.path.join(self.lab.tills[n].dir, "ka-master")
        try:
            with open(p) as f:
                return [float(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def became_master_after(self, t0, exclude):
        best = None
        for n in self.lab.names:
            if n == exclude:
                continue
            for t in self.master_times(n):
                if t >= t0 and (best is None or t < best[0]):
                    best = (t, n)
        return best


# ---- tillmesh views ----------------------------------------------------------
def erp_db(lab):
    path = os.path.join(lab.root, "erp", "erp.sqlite")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


def booked_at(db, sale_id):
    row = db.execute("SELECT booked_at FROM bookings WHERE sale_id = ?", (sale_id,)).fetchone()
    return row[0] if row else None


def views(lab):
    return {n: lab.status(n) for n in lab.names if lab.alive(n)}


def ready(lab, need_up=2):
    """The forwarder every till names, its standby, both with a working
    uplink, nothing waiting; returns (forwarder, standby, epoch) or None."""
    st = views(lab)
    if len(st) != len(lab.names) or any(s is None for s in st.values()):
        return None
    fws = {s["forwarder"]["name"] for s in st.values()}
    if len(fws) != 1 or None in fws:
        return None
    fw = fws.pop()
    sb = st[fw]["forwarder"].get("standby")
    if not sb or st[sb]["uplink"]["state"] != "up" or st[fw]["uplink"]["state"] != "up":
        return None
    if sum(1 for s in st.values() if s["uplink"]["state"] == "up") < need_up:
        return None
    if any(s["erp"]["backlog"] for s in st.values()):
        return None
    return fw, sb, st[fw]["forwarder"]["epoch"]


def ka_ready(lab, ka, fw):
    """keepalived settled: one master, on a till other than fw's next cut
    needs nothing from; returns the master."""
    m = ka.masters()
    return m[0] if len(m) == 1 else None


# ---- parts -------------------------------------------------------------------
def run_cuts(lab, ka, kind, res):
    db = erp_db(lab)
    rng = random.Random(7)
    tm, kav = [], []
    for i in range(RUNS):
        got = labnet.wait_until(lambda: ready(lab), 120, "a settled forwarder and standby",
                                interval=0.2)
        fw, sb, epoch = got
        seller = next(n for n in lab.names if n not in (fw, sb))
        time.sleep(rng.uniform(0, 2.0))  # the cut lands anywhere in the probe schedule
        cut(lab, fw, kind)
        t0 = time.time()
        sale = a_sale()
        st, js = lab.api(seller, "POST", "/v1/sales", sale)
        if st != 201:
            raise RuntimeError(f"{seller}: POST /v1/sales -> {st} {js}")
        t_end = t0 + 30
        b = None
        while b is None and time.time() < t_end:
            b = booked_at(db, sale["sale_id"])
            if b is None:
                time.sleep(0.005)
        if b is None:
            raise RuntimeError(f"{kind} run {i}: the sale rung up on {seller} after cutting {fw} "
                               f"was not booked within 30 s\n{lab.table()}")
        tm.append(b - t0)
        log(f"{kind} {i + 1}/{RUNS}: tillmesh cut {fw} -> booked {b - t0:.3f} s")
        uncut(lab, fw)
        # keepalived, same namespaces, same cut: of its current master
        m = labnet.wait_until(lambda: ka_ready(lab, ka, fw), 60, "one keepalived master",
                              interval=0.2)
        time.sleep(rng.uniform(0, 1.0))
        cut(lab, m, kind)
        t1 = time.time()
        nm = labnet.wait_until(lambda: ka.became_master_after(t1, m), 30,
                               "another keepalived master", interval=0.02)
        kav.append(nm[0] - t1)
        log(f"{kind} {i + 1}/{RUNS}: keepalived cut {m} -> {nm[1]} master {nm[0] - t1:.3f} s")
        uncut(lab, m)
    db.close()
    res[kind] = {"tillmesh": summary(tm), "keepalived": summary(kav), "tillmesh_all": tm,
                 "keepalived_all": kav}


def epochs(lab):
    return {n: (s["forwarder"]["name"], s["forwarder"]["epoch"]) for n, s in views(lab).items()
            if s}


def run_loss(lab, ka, res):
    fw, sb, epoch0 = labnet.wait_until(lambda: ready(lab), 120, "a settled forwarder",
                                       interval=0.2)
    m0 = labnet.wait_until(lambda: ka_ready(lab, ka, fw), 60, "one keepalived master")
    log(f"loss: 20 % on {fw}'s uplink and LAN port for {LOSS_S:.0f} s "
        f"(standby {sb}, epoch {epoch0}; keepalived master {m0}); a sale every 2 s")
    # keepalived's master gets the same loss (it is another till when the
    # sticky roles differ: then both are lossy)
    lossy = {fw, m0}
    for n in lossy:
        lab.set_impair(n, "uplink", loss=20)
        lab.set_impair(n, "lan", loss=20)
    ka_before = {n: len(ka.master_times(n)) for n in lab.names}
    down_before = {n: down_count(lab, n) for n in lab.names}
    seller = next(n for n in lab.names if n not in (fw, sb))
    seen, ids, changes = epochs(lab), [], 0
    t_end = time.time() + LOSS_S
    next_sale = 0
    while time.time() < t_end:
        if time.time() >= next_sale:
            try:
                st, js = lab.api(seller, "POST", "/v1/sales", a_sale())
                if st == 201:
                    ids.append(js["sale_id"])
            except OSError:
                pass
            next_sale = time.time() + 2
        now = epochs(lab)
        for n, v in now.items():
            if n in seen and v != seen[n]:
                changes += 1
                log(f"loss: {n} now names {v} (was {seen[n]})")
        seen.update(now)
        time.sleep(0.5)
    for n in lossy:
        lab.clear_impair(n, "uplink")
        lab.clear_impair(n, "lan")
    fw1, _, epoch1 = labnet.wait_until(lambda: ready(lab), 120, "the store to settle",
                                       interval=0.2)
    ka_changes = sum(len(ka.master_times(n)) - ka_before[n] for n in lab.names)
    downs = {n: down_count(lab, n) - down_before[n] for n in lab.names}
    res["loss"] = {"seconds": LOSS_S, "sales": len(ids), "handovers": epoch1 - epoch0,
                   "forwarder_before": fw, "forwarder_after": fw1, "view_changes": changes,
                   "uplink_down_verdicts": downs, "keepalived_master_changes": ka_changes}
    log(f"loss: {res['loss']}")


def down_count(lab, n):
    try:
        with open(os.path.join(lab.tills[n].dir, "tillmeshd.log"), errors="replace") as f:
            return sum(1 for line in f if "unreachable:" in line)
    except FileNotFoundError:
        return 0


def check_keys(lab, res):
    es = lab.erp_stats(detail=True)
    by = es.get("by_sale", {})
    two = [v for v in by.values() if len(v["tills"]) > 1]
    res["exactly_once"] = {
        "sales": len(by), "booked_twice": es["booked"] - len([v for v in by.values()
                                                                if v["booked"]]),
        "mismatches": es["mismatches"], "redeliveries": es["redeliveries"],
        "sent_by_two_tills": len(two),
        "two_tills_two_keys": sum(1 for v in two if len(v["keys"]) > 1)}
    log(f"exactly once: {res['exactly_once']}")


def run_health(res):
    out = {}
    for n in HEALTH_TILLS:
        with labnet.StoreLab(n, bin_dir(), defaults=True, store_id=f"store-h{n}") as lab:
            labnet.wait_until(lambda: ready(lab, need_up=min(2, n)), 120, "a settled store",
                              interval=0.5)
            time.sleep(5)  # first verdicts in, the slow tills slowed down
            h0 = lab.erp_stats()
            t0 = time.time()
            time.sleep(IDLE_S)
            h1 = lab.erp_stats()
            dt = time.time() - t0
            per = {k: v - h0["health_by_till"].get(k, 0) for k, v in h1["health_by_till"].items()}
            out[n] = {"per_s": (h1["health_requests"] - h0["health_requests"]) / dt,
                      "by_till": per, "seconds": dt}
            log(f"health, {n} idle tills: {out[n]['per_s']:.2f} req/s {per}")
    res["health"] = out


def fmt(x):
    return f"{x:.2f}" if x == x else "-"


def write(res, started, load):
    lines = ["# Failover and ERP probe load (bench/bench_failover.py)", "",
             f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
             f"{time.time() - started:.0f} s; {TILLS} tills in network namespaces with avahi/mDNS, "
             "real tillmeshd with the default heartbeat (500 ms), peer timeout and probe settings, "
             "the stub ERP behind a store router. Machine: 2 cores shared with other work "
             f"(load average at start {load[0]:.2f}, at the end {os.getloadavg()[0]:.2f}).", "",
             "| cut of the forwarder's uplink | tillmesh: cut → ERP books a sale rung up right "
             "after, p50 / p99 / worst | keepalived VRRP (same namespaces, same cut): cut → "
             "another till owns the VIP, p50 / p99 / worst | runs |", "|---|---|---|---|"]
    for kind, label in (("silent", "silent (100 % loss, link up)"),
                        ("refused", "refused (TCP reset at once)")):
        if kind in res:
            a, k = res[kind]["tillmesh"], res[kind]["keepalived"]
            lines.append(f"| {label} | {fmt(a['p50'])} / {fmt(a['p99'])} / {fmt(a['worst'])} s | "
                         f"{fmt(k['p50'])} / {fmt(k['p99'])} / {fmt(k['worst'])} s | {a['n']} |")
    if "loss" in res:
        lo = res["loss"]
        lines += ["", f"20 % loss on the forwarder's uplink and LAN port for {lo['seconds']:.0f} s "
                  f"({lo['sales']} sales rung up meanwhile): **{lo['handovers']} hand-overs** "
                  f"(forwarder {lo['forwarder_before']} → {lo['forwarder_after']}); uplink-down "
                  f"verdicts per till {lo['uplink_down_verdicts']}; keepalived master changes "
                  f"{lo['keepalived_master_changes']}."]
    if "exactly_once" in res:
        eo = res["exactly_once"]
        lines += ["", f"Exactly once over the whole run: {eo['sales']} sales at the ERP, "
                  f"{eo['booked_twice']} booked twice, {eo['mismatches']} re-deliveries with a "
                  f"different body, {eo['redeliveries']} re-deliveries; {eo['sent_by_two_tills']} "
                  f"sales sent by two tills, {eo['two_tills_two_keys']} of them under two keys."]
    if "health" in res:
        lines += ["", "| idle store | GET /health per second at the ERP | by till (requests in "
                  "the window) | before (every till every 250 ms) |", "|---|---|---|---|"]
        for n, h in sorted(res["health"].items()):
            lines.append(f"| {n} tills | {h['per_s']:.2f} | {h['by_till']} | {4 * n:.0f} |")
    lines += ["", "keepalived: `vrrp_script` curl -sf -m 1 {erp}/health, interval 1, fall 2, "
              "rise 2; advert_int 1; nopreempt; priorities in the tills' order. The sale for "
              "tillmesh is rung up on a till that is neither the forwarder nor the standby, "
              "right after the cut (the cut lands at a random point of the probe schedule).", ""]
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    raw = os.environ.get("TM_BENCH_JSON")
    if raw:  # every run's figures, for a closer look
        with open(raw, "w") as f:
            json.dump(res, f, indent=1, default=str)
    print("\n".join(lines))


def main():
    labnet.netlab.require_netns(("ip", "unshare", "nsenter", "dbus-daemon", "avahi-daemon",
                                 "iptables", "keepalived", "curl"))
    started, load = time.time(), os.getloadavg()
    res = {}
    if {"silent", "refused", "loss"} & set(PARTS):
        with labnet.StoreLab(TILLS, bin_dir(), defaults=True) as lab:
            ka = Keepalived(lab)
            ka.start()
            try:
                for kind in ("silent", "refused"):
                    if kind in PARTS:
                        run_cuts(lab, ka, kind, res)
                if "loss" in PARTS:
                    run_loss(lab, ka, res)
                check_keys(lab, res)
            except Exception:
                lab.keep_logs = True
                print(lab.table())
                raise
    if "health" in PARTS:
        run_health(res)
    write(res, started, load)


if __name__ == "__main__":
    main()
