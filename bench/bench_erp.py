#!/usr/bin/env python3
"""bench_erp.py - ERP forwarding benchmarks, beside their limits measured in
the same run. Run through bench/run.sh.

  throughput  sales/s from a till's backlog into the stub ERP (batches of
              500, 2 in flight, and 1 in flight as before), beside the stub's
              own rate for the same batches posted directly by a client (the
              stub is Python + SQLite: it is the limit here, not tillmeshd);
              the till's RSS and private (anonymous) memory
  re-deliveries  over the failover runs, in total and under a new key
  failover    from pulling the forwarder's uplink cable until the stub has
              booked a sale sent by its successor, p50/p99 over N runs,
              beside keepalived's default VRRP takeover (3 adverts x 1 s +
              skew = 3.6 s; a figure from its documentation, not run here)

Writes bench/results/erp.md.
"""
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "erp-stub"))
from erp_stub import ErpStub  # noqa: E402
import tmharness  # noqa: E402
from tmharness import StoreLab, wait_until, make_sale  # noqa: E402

BIN = os.environ["TM_BIN_DIR"]
N_SALES = int(os.environ.get("BENCH_ERP_SALES", "20000"))
N_FAILOVER = int(os.environ.get("BENCH_FAILOVER_RUNS", "20"))
TOKEN = "bench-token"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def stub_direct_rate(stub, sales, batch=500):
    """The stub's own rate for the till's sales (as the till sent them, under
    new ids) posted directly by a client, one batch at a time."""
    t0 = time.perf_counter()
    for k in range(0, len(sales), batch):
        part = [dict(s, sale_id=str(uuid.uuid4())) for s in sales[k:k + batch]]
        st, _ = stub.post_sales(part, f"direct-{k}-{uuid.uuid4()}", timeout=60)
        assert st == 200, st
    return len(sales) / (time.perf_counter() - t0)


def booked_sales(stub, n=5000):
    """n sales the stub booked, as the till sent them."""
    db = sqlite3.connect(f"file:{stub.db}?mode=ro", uri=True)
    try:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM bookings LIMIT ?", (n,))]
    finally:
        db.close()


def memory_kb(pid):
    """(RSS, private anonymous) of a process in kB, from smaps_rollup: most of
    an idle till's RSS is shared libraries, its own memory is Anonymous."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Anonymous"):
                out[k] = int(v.split()[0])
    return out.get("Rss", 0), out.get("Anonymous", 0)


def cpu_ms(pid):
    """CPU time (user + system) a process has used, in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def forward_rate(stub, inflight, tillmeshd=None):
    """sales/s of one till draining a backlog of N_SALES into the stub, with
    at most `inflight` batches in flight (None: a tillmeshd from before the
    setting, given by path); memory sampled during and after."""
    stub.reset()
    lab = StoreLab(["a"], heartbeat_ms=200, log_level="warn")
    ok = False
    saved = tmharness.TILLMESHD
    try:
        lab.attach_erp(stub, TOKEN)
        a = lab["a"]
        # Straight to the stub: the Cable (a Python relay, there to be pulled
        # in the failover runs) would add its own copying to the figure.
        a.erp_url = stub.url
        if inflight:
            a.erp_extra = f"max_in_flight = {inflight}\n"
        if tillmeshd:
            tmharness.TILLMESHD = tillmeshd
        # tm_fill stamps its sales a year back: with the default retention
        # each acknowledged batch would be compacted at once, work a drain
        # of a day's backlog does not do.
        a.extra = "retention_days = 36500\n"
        os.makedirs(os.path.join(a.dir, "data"), mode=0o700)
        subprocess.run([os.path.join(BIN, "tm_fill"), os.path.join(a.dir, "data", "tillmesh.db"),
                        str(N_SALES)], check=True, capture_output=True)
        a.start()
        # Timed from the first booking: start-up (uplink rise, election) is
        # the failover figure's business, not this one's.
        first = wait_until(lambda: stub.booked(), 60, "a first booking", interval=0.01)
        t0, c0 = time.perf_counter(), cpu_ms(a.proc.pid)
        peak = (0, 0)

        def drained():
            nonlocal peak
            m = memory_kb(a.proc.pid)
            peak = max(peak, m)
            return stub.booked() >= N_SALES
        wait_until(drained, 600, "all sales booked", interval=0.05)
        rate = (N_SALES - first) / (time.perf_counter() - t0)
        # The till's own CPU per 1,000 sales: unlike the rate, it does not
        # depend on what else runs on the machine.
        cpu = (cpu_ms(a.proc.pid) - c0) * 1000 / (N_SALES - first)
        st = stub.stats()
        time.sleep(1)  # settle: the last acknowledgements written, nothing in flight
        ok = True
        return rate, st["redeliveries"], peak, memory_kb(a.proc.pid), cpu
    finally:
        tmharness.TILLMESHD = saved
        lab.cleanup(ok)


def throughput(res):
    """Forwarding with the tillmeshd of BENCH_ERP_BEFORE (a build from before
    this change, if given), with one batch in flight and with the default
    (two), then the stub's own rate for the same sales posted directly;
    alternated so that all see the same machine (it is shared: each figure
    is the mean of BENCH_ERP_ROUNDS)."""
    before_bin = os.environ.get("BENCH_ERP_BEFORE")
    stub = ErpStub(token=TOKEN).start()
    try:
        direct, before, one, deflt = [], [], [], []
        sales = None
        for _ in range(int(os.environ.get("BENCH_ERP_ROUNDS", "3"))):
            if before_bin:
                before.append(forward_rate(stub, None, before_bin))
            one.append(forward_rate(stub, 1))
            deflt.append(forward_rate(stub, 2))
            sales = sales or booked_sales(stub)
            stub.reset()
            direct.append(stub_direct_rate(stub, sales))
        mean = lambda rs, k=0: sum(r[k] for r in rs) / len(rs)  # noqa: E731
        res["stub_direct_sales_per_s"] = sum(direct) / len(direct)
        res["before_sales_per_s"] = mean(before) if before else None
        res["before_cpu_ms"] = mean(before, 4) if before else None
        res["fwd1_sales_per_s"] = mean(one)
        res["fwd_sales_per_s"] = mean(deflt)
        res["fwd_cpu_ms"] = mean(deflt, 4)
        res["fwd_redeliveries"] = sum(r[1] for r in before + one + deflt)
        res["fwd_peak_kb"] = max(r[2] for r in deflt)
        res["fwd_idle_kb"] = deflt[-1][3]
    finally:
        stub.stop()


def failover(res):
    stub = ErpStub(token=TOKEN).start()
    lab = StoreLab(["a", "b", "c"], heartbeat_ms=100, log_level="warn")
    ok = False
    times = []
    try:
        lab.attach_erp(stub, TOKEN)
        lab.full_mesh()
        lab.start_all()
        pulled = None
        for run in range(N_FAILOVER):
            fwd = wait_until(lambda: len({lab.forwarder(n) for n in lab.tills}) == 1 and
                             lab.forwarder("a"), 30, "one forwarder")
            seller = next(n for n in lab.tills if n != fwd)
            if pulled:
                lab.cables[pulled].plug()
                wait_until(lambda: lab[pulled].status()["uplink"]["state"] == "up", 20, "replug")
            lab.cables[fwd].pull()
            t0 = time.perf_counter()
            sid = lab[seller].post_sale()["sale_id"]

            def booked_by_successor():
                v = stub.stats(detail=True)["by_sale"].get(sid)
                return v and v["booked"] and fwd not in v["tills"]
            wait_until(booked_by_successor, 30, "successor to book the sale", interval=0.01)
            times.append(time.perf_counter() - t0)
            pulled = fwd
        res["failover_p50_s"] = pct(times, 50)
        res["failover_p99_s"] = pct(times, 99)
        # Re-deliveries over the whole drill: every hand-over is a chance to
        # send again what the ERP already booked.
        time.sleep(1)
        st = stub.stats()
        res["failover_sales"] = st["booked"]
        res["failover_redeliveries"] = st["redeliveries"]
        res["failover_redeliveries_new_key"] = st["redeliveries_new_key"]
        ok = True
    finally:
        lab.cleanup(ok)
        stub.stop()


def main():
    res = {}
    throughput(res)
    failover(res)
    r = res
    pk, idle = r["fwd_peak_kb"], r["fwd_idle_kb"]
    stub_rate = r["stub_direct_sales_per_s"]
    before = "" if r["before_sales_per_s"] is None else (
        f"; the tillmeshd from before (one batch at a time): {r['before_sales_per_s']:.0f} sales/s "
        f"({100 * r['before_sales_per_s'] / stub_rate:.0f} %), {r['before_cpu_ms']:.0f} ms of "
        f"till CPU per 1,000 sales")
    table = f"""| figure | tillmesh | limit / comparison | target |
|---|---|---|---|
| forwarding a backlog of {N_SALES} sales to the stub ERP (batches of 500, 2 in flight) | {r['fwd_sales_per_s']:.0f} sales/s ({100 * r['fwd_sales_per_s'] / stub_rate:.0f} % of the stub), {r['fwd_cpu_ms']:.0f} ms of till CPU per 1,000 sales, {r['fwd_redeliveries']} re-deliveries | the stub's own rate, the same sales (as the till sent them) posted directly in batches of 500: {stub_rate:.0f} sales/s; max_in_flight = 1: {r['fwd1_sales_per_s']:.0f} sales/s ({100 * r['fwd1_sales_per_s'] / stub_rate:.0f} %){before} | ≥ 50 % of the stub |
| memory of the forwarding till: during the drain (peak) / after | RSS {pk[0] / 1024:.1f} MB, private (anonymous) {pk[1] / 1024:.1f} MB / RSS {idle[0] / 1024:.1f} MB, private {idle[1] / 1024:.1f} MB | | |
| failover: forwarder's uplink pulled → successor's sale booked, p50 / p99 ({N_FAILOVER} runs) | {r['failover_p50_s']:.2f} / {r['failover_p99_s']:.2f} s | keepalived default VRRP takeover ≈ 3.6 s (documented, not run) | < 1.5 s |
| re-deliveries over those {N_FAILOVER} hand-overs ({r['failover_sales']} sales) | {r['failover_redeliveries']} ({100 * r['failover_redeliveries'] / max(1, r['failover_sales']):.0f} %), {r['failover_redeliveries_new_key']} under a new key | | < 10 %, none under a new key |

Failover settings: heartbeat 100 ms, probe every 100 ms, fall 2; the "cable" is a TCP relay
that closes (connections refused), so the probe fails at once; a cable that silently drops
packets adds the probe timeout (500 ms here). Throughput: the forwarding figures and the
stub's rate alternate in one run, {os.environ.get("BENCH_ERP_ROUNDS", "3")} rounds (this
machine is shared; each is the mean); the stub's rate is for the till's own sales.
Release build, loopback, {time.strftime('%Y-%m-%d')}.
"""
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "erp.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
