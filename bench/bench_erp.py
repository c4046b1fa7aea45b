#!/usr/bin/env python3
"""bench_erp.py - ERP forwarding benchmarks, beside their limits measured in
the same run. Run through bench/run.sh.

  throughput  sales/s from a till's backlog into the stub ERP (batches of
              500), beside the stub's own rate for the same batches posted
              directly by a client (the stub is Python + SQLite: it is the
              limit here, not tillmeshd)
  failover    from pulling the forwarder's uplink cable until the stub has
              booked a sale sent by its successor, p50/p99 over N runs,
              beside keepalived's default VRRP takeover (3 adverts x 1 s +
              skew = 3.6 s; a figure from its documentation, not run here)

Writes bench/results/erp.md.
"""
import json
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "erp-stub"))
from erp_stub import ErpStub  # noqa: E402
from tmharness import StoreLab, wait_until, make_sale  # noqa: E402

BIN = os.environ["TM_BIN_DIR"]
N_SALES = int(os.environ.get("BENCH_ERP_SALES", "20000"))
N_FAILOVER = int(os.environ.get("BENCH_FAILOVER_RUNS", "20"))
TOKEN = "bench-token"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def stub_direct_rate(stub, n=5000, batch=500):
    t0 = time.perf_counter()
    for k in range(0, n, batch):
        sales = [dict(make_sale(), till="bench", receipt_no=k + i + 1,
                      created_at="2026-11-23T12:00:00Z") for i in range(batch)]
        st, _ = stub.post_sales(sales, f"direct-{k}-{uuid.uuid4()}", timeout=60)
        assert st == 200, st
    return n / (time.perf_counter() - t0)


def throughput(res):
    stub = ErpStub(token=TOKEN).start()
    lab = StoreLab(["a"], heartbeat_ms=200, log_level="warn")
    ok = False
    try:
        res["stub_direct_sales_per_s"] = stub_direct_rate(stub)
        stub.reset()
        lab.attach_erp(stub, TOKEN)
        a = lab["a"]
        a.extra = ""
        os.makedirs(os.path.join(a.dir, "data"), mode=0o700)
        subprocess.run([os.path.join(BIN, "tm_fill"), os.path.join(a.dir, "data", "tillmesh.db"),
                        str(N_SALES)], check=True, capture_output=True)
        a.start()
        # Timed from the first booking: start-up (uplink rise, election) is
        # the failover figure's business, not this one's.
        first = wait_until(lambda: stub.stats()["booked"], 60, "a first booking", interval=0.01)
        t0 = time.perf_counter()
        wait_until(lambda: stub.stats()["booked"] >= N_SALES, 600, "all sales booked",
                   interval=0.1)
        res["fwd_sales_per_s"] = (N_SALES - first) / (time.perf_counter() - t0)
        st = stub.stats()
        res["fwd_redeliveries"] = st["redeliveries"]
        ok = True
    finally:
        lab.cleanup(ok)
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
        ok = True
    finally:
        lab.cleanup(ok)
        stub.stop()


def main():
    res = {}
    throughput(res)
    failover(res)
    r = res
    table = f"""| figure | tillmesh | limit / comparison | target |
|---|---|---|---|
| forwarding a backlog of {N_SALES} sales to the stub ERP (batches of 500) | {r['fwd_sales_per_s']:.0f} sales/s, {r['fwd_redeliveries']} re-deliveries | the stub's own rate, same batches posted directly: {r['stub_direct_sales_per_s']:.0f} sales/s | ≥ 5,000 sales/s |
| failover: forwarder's uplink pulled → successor's sale booked, p50 / p99 ({N_FAILOVER} runs) | {r['failover_p50_s']:.2f} / {r['failover_p99_s']:.2f} s | keepalived default VRRP takeover ≈ 3.6 s (documented, not run) | < 1.5 s |

Failover settings: heartbeat 100 ms, probe every 100 ms, fall 2; the "cable" is a TCP relay
that closes (connections refused), so the probe fails at once; a cable that silently drops
packets adds the probe timeout (500 ms here). Release build, loopback, {time.strftime('%Y-%m-%d')}.
"""
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "erp.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
