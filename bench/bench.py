#!/usr/bin/env python3
"""bench.py - mesh benchmarks, each figure beside its physical limit measured
in the same run. Run through bench/run.sh (which builds a release build).

  propagation  p50/p99 from POST on A until GET on B and C answers 200,
               over N sales, beside the raw CurveZMQ round trip
  catch-up     ops/s for a till that missed M ops, beside the raw SQLite
               insert rate of the same rows into the same schema
  memory       RSS of an idle till and of the caught-up till, each beside its
               private memory (Private_Clean + Private_Dirty of
               /proc/PID/smaps_rollup) and anonymous memory: most of the RSS
               is shared libraries, mapped once for every process

`bench.py catchup` runs only the raw SQLite figure and the catch-up (and
prints, without writing the table). Writes a markdown table to
bench/results/mesh.md (quoted in the README).
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import tmharness  # noqa: E402
from tmharness import StoreLab, wait_until, make_sale  # noqa: E402

BIN = os.environ["TM_BIN_DIR"]
N_PROP = int(os.environ.get("BENCH_SALES", "1000"))
N_CATCH = int(os.environ.get("BENCH_CATCHUP_OPS", "100000"))
ROUNDS = int(os.environ.get("BENCH_CATCHUP_ROUNDS", "3"))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def smaps_kb(pid):
    """RSS, private (clean + dirty) and anonymous memory, in kB."""
    v = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                v[parts[0].rstrip(":")] = int(parts[1])
    return {"rss": v["Rss"], "private": v["Private_Clean"] + v["Private_Dirty"],
            "anon": v["Anonymous"]}


def cpu_s(pid):
    """CPU time (user + system) a process has used, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Conn:
    """A keep-alive HTTP connection, so polling measures the mesh, not TCP setup."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def req(self, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        hdr = {"Content-Type": "application/json"} if data else {}
        self.c.request(method, path, body=data, headers=hdr)
        r = self.c.getresponse()
        payload = r.read()
        return r.status, payload


def propagation(results):
    lab = StoreLab(["a", "b", "c"], heartbeat_ms=500, log_level="warn")
    ok = False
    try:
        lab.full_mesh()
        lab.start_all()
        wait_until(lambda: all(p["state"] == "alive" for p in lab["a"].status()["peers"]), 20,
                   "peers alive")
        ca, cb, cc = Conn(lab["a"].api_port), Conn(lab["b"].api_port), Conn(lab["c"].api_port)
        lat = []
        for i in range(N_PROP):
            s = make_sale()
            t0 = time.perf_counter()
            st, _ = ca.req("POST", "/v1/sales", s)
            assert st == 201, st
            t_ack = time.perf_counter()
            pending = {"b": cb, "c": cc}
            done = {}
            while pending:
                for n, c in list(pending.items()):
                    if c.req("GET", f"/v1/sales/{s['sale_id']}")[0] == 200:
                        done[n] = time.perf_counter() - t0
                        del pending[n]
            lat.append((max(done.values()), t_ack - t0))
        results["prop_p50_ms"] = pct([x[0] for x in lat], 50) * 1000
        results["prop_p99_ms"] = pct([x[0] for x in lat], 99) * 1000
        results["ack_p50_ms"] = pct([x[1] for x in lat], 50) * 1000
        results["ack_p99_ms"] = pct([x[1] for x in lat], 99) * 1000
        results["idle_mem"] = smaps_kb(lab["c"].proc.pid)
        ok = True
    finally:
        lab.cleanup(ok)


def catchup(results, tmp):
    lab = StoreLab(["a", "c"], heartbeat_ms=500, log_level="warn")
    ok = False
    try:
        lab.connect("c", "a")
        a, c = lab["a"], lab["c"]
        # The ops are of an origin no running till speaks for (A's earlier
        # incarnation), so the origin quota (docs/security.md) would pace c's
        # catch-up; the bench measures the transport and the store, not the
        # policy.
        for t in (a, c):
            t.extra = "\n[mesh]\norigin_quota_ops_per_hour = 100000000\n"
        # A's store is filled offline through tm_store_apply (the catch-up
        # path), which is much faster than N POSTs with an fsync each. The
        # ops are A's own (an earlier incarnation of its origin), signed and
        # chained under A's key, so C verifies every one as in a real
        # catch-up; tm_fill itself applies them verified too.
        os.makedirs(os.path.join(a.dir, "data"), mode=0o700)
        out = subprocess.run([os.path.join(BIN, "tm_fill"), os.path.join(a.dir, "data", "tillmesh.db"),
                              str(N_CATCH), "1000", os.path.join(lab.root, "keys", "a.key")],
                             check=True, capture_output=True, text=True).stdout
        results["fill_ops_per_s"] = float(out.split()[1])
        kv = dict(x.split("=") for x in out.split()[2:])
        last_sale, first_sale = kv["last_sale"], kv.get("first_sale")
        a.start()
        # Time to the first op: from c's start (its process started, its
        # first hello sent) until it holds the first sale of A's backlog.
        t_start = time.perf_counter()
        c.start()
        peak = 0
        t0 = time.perf_counter()
        first_at = None
        cpu0 = cpu_s(c.proc.pid)
        samples = []

        cm = Conn(c.api_port)

        def held():
            # One sale looked up by id (an index probe): neither /metrics
            # nor /v1/status, which count the backlog and the tables, so
            # that the probe does not load the till it measures. The pulls
            # ask for each origin's ops in seq order: the last sale made is
            # the last one held.
            nonlocal peak, first_at
            if first_at is None and first_sale and \
                    cm.req("GET", f"/v1/sales/{first_sale}")[0] == 200:
                first_at = time.perf_counter() - t_start
            rss = rss_kb(c.proc.pid)
            peak = max(peak, rss)
            samples.append((time.perf_counter() - t0, rss))
            return cm.req("GET", f"/v1/sales/{last_sale}")[0] == 200

        wait_until(held, 600, f"c to catch up {N_CATCH} ops", interval=0.01)
        dt = time.perf_counter() - t0
        results["first_op_s"] = first_at if first_at is not None else dt
        # Of which: until c's API answered (process start, store open).
        results["start_s"] = t0 - t_start
        results["catchup_cpu_us_per_op"] = (cpu_s(c.proc.pid) - cpu0) / N_CATCH * 1e6
        results["catchup_ops_per_s"] = N_CATCH / dt
        results["catchup_peak_rss_kb"] = rss_kb(c.proc.pid, "VmHWM")

        def ops_held():
            text = cm.req("GET", "/metrics")[1].decode()
            return int(next(l.split()[1] for l in text.splitlines() if l.startswith("tillmesh_ops ")))

        assert ops_held() >= N_CATCH, f"the last sale is held but only {ops_held()} ops"
        mid = [s[1] for s in samples if dt * 0.2 <= s[0] <= dt * 0.8]
        results["catchup_rss_mid_min_kb"] = min(mid) if mid else 0
        results["catchup_rss_mid_max_kb"] = max(mid) if mid else 0
        wait_until(lab.converged, 60, "equal digests")
        results["caught_up_mem"] = smaps_kb(c.proc.pid)
        # A till idle for a whole housekeeping period (2 s) hands its page
        # cache back (tm_store_trim): the figure a till shows for the rest
        # of the day. A bench, not a test: waiting out the period is fine.
        time.sleep(6)
        results["caught_up_idle_mem"] = smaps_kb(c.proc.pid)
        ok = True
    finally:
        lab.cleanup(ok)


def mem(m):
    return (f"RSS {m['rss'] / 1024:.1f} MB, private {m['private'] / 1024:.1f} MB "
            f"(anonymous {m['anon'] / 1024:.1f} MB)")


def raw(tmp, tuned):
    out = subprocess.run([os.path.join(BIN, "sqlite_raw"), os.path.join(tmp, f"raw{int(tuned)}.db"),
                          str(N_CATCH)] + (["tuned"] if tuned else []), check=True,
                         capture_output=True, text=True).stdout
    subprocess.run(["rm", "-f"] + [os.path.join(tmp, f"raw{int(tuned)}.db{x}") for x in ("", "-wal", "-shm")])
    kv = dict(x.split("=") for x in out.split()[2:])
    return float(out.split()[1]), float(kv["cpu_us_per_row"])


def med(xs):
    return statistics.median(xs)


def catchup_rounds(tmp):
    """The catch-up and its raw limits, ROUNDS times, each round back to back
    (the machine is shared: a figure is the median of the rounds, and each
    ratio compares a round's catch-up with the raw runs just before it)."""
    rounds = []
    for _ in range(ROUNDS):
        r = {}
        # The raw limit with the store's own pragmas (foreign keys, cache,
        # checkpoints: tm_store_tuning_sql), and with SQLite's defaults.
        r["raw"], r["raw_cpu"] = raw(tmp, True)
        r["raw_default"], _ = raw(tmp, False)
        catchup(r, tmp)
        r["ratio"] = r["catchup_ops_per_s"] / r["raw"]
        rounds.append(r)
        print(f"round: catch-up {r['catchup_ops_per_s']:.0f} ops/s ({r['catchup_cpu_us_per_op']:.1f} "
              f"us CPU/op), raw {r['raw']:.0f} rows/s ({r['raw_cpu']:.1f} us CPU/row), "
              f"{100 * r['ratio']:.0f} %; SQLite defaults {r['raw_default']:.0f} rows/s; apply alone "
              f"{r['fill_ops_per_s']:.0f} ops/s; first op {r['first_op_s']:.2f} s after the start "
              f"(API up after {r['start_s']:.2f} s)",
              flush=True)
    agg = {k: med([r[k] for r in rounds]) for k in rounds[0] if isinstance(rounds[0][k], (int, float))}
    agg["ratio_min"] = min(r["ratio"] for r in rounds)
    agg["ratio_max"] = max(r["ratio"] for r in rounds)
    for k in ("caught_up_mem", "caught_up_idle_mem"):
        agg[k] = {m: med([r[k][m] for r in rounds]) for m in rounds[0][k]}
    return agg


def main():
    only = sys.argv[1:]
    results = {}
    tmp = tempfile.mkdtemp(prefix="tm-bench-")
    if only and "catchup" in only:
        r = catchup_rounds(tmp)
        subprocess.run(["rm", "-rf", tmp])
        print(f"median of {ROUNDS}: catch-up {r['catchup_ops_per_s']:.0f} ops/s, raw {r['raw']:.0f} "
              f"rows/s ({100 * r['ratio']:.0f} %, rounds {100 * r['ratio_min']:.0f}-"
              f"{100 * r['ratio_max']:.0f} %); CPU {r['catchup_cpu_us_per_op']:.1f} vs "
              f"{r['raw_cpu']:.1f} us; first op {r['first_op_s']:.2f} s after the start (API up after "
              f"{r['start_s']:.2f} s); "
              f"caught-up till: {mem(r['caught_up_mem'])}; idle 6 s later: "
              f"{mem(r['caught_up_idle_mem'])}")
        return
    out = subprocess.run([os.path.join(BIN, "zmq_rtt"), "2000"], check=True, capture_output=True,
                         text=True).stdout
    kv = dict(x.split("=") for x in out.split()[1:])
    results["zmq_rtt_p50_ms"] = float(kv["p50"]) / 1000
    results["zmq_rtt_p99_ms"] = float(kv["p99"]) / 1000
    propagation(results)
    c = catchup_rounds(tmp)
    subprocess.run(["rm", "-rf", tmp])
    r = results
    cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True,
                         capture_output=True, text=True).stdout.strip()
    table = f"""| figure | tillmesh | limit measured in the same run | target |
|---|---|---|---|
| propagation POST on A → readable on B and C, p50 / p99 ({N_PROP} sales) | {r['prop_p50_ms']:.2f} / {r['prop_p99_ms']:.2f} ms | raw CurveZMQ round trip p50 / p99: {r['zmq_rtt_p50_ms']:.3f} / {r['zmq_rtt_p99_ms']:.3f} ms | p99 < 20 ms |
| local durable ack (POST → 201, fsync), p50 / p99 | {r['ack_p50_ms']:.2f} / {r['ack_p99_ms']:.2f} ms | (included in the line above) | |
| catch-up of {N_CATCH} missed ops (signed; each checked, chain verified, 1,000 per fsync'd transaction), end to end over the mesh; median of {ROUNDS} rounds | {c['catchup_ops_per_s']:.0f} ops/s | raw SQLite insert of the same rows into the same schema, synchronous=FULL, the store's pragmas, 1,000 per transaction: {c['raw']:.0f} rows/s (**{100 * c['ratio']:.0f} %**, rounds {100 * c['ratio_min']:.0f}–{100 * c['ratio_max']:.0f} %); with SQLite's default pragmas: {c['raw_default']:.0f} rows/s | ≥ 60 % of raw |
| CPU per op of the till catching up (user + system) | {c['catchup_cpu_us_per_op']:.1f} µs | raw SQLite: {c['raw_cpu']:.1f} µs per row ({100 * c['raw_cpu'] / c['catchup_cpu_us_per_op']:.0f} %) | |
| first op held by the till catching up, counted from its start (median) | {c['first_op_s']:.2f} s | its API answered after {c['start_s']:.2f} s | |
| tm_store_apply alone (verified, no network), same ops | {c['fill_ops_per_s']:.0f} ops/s | (same raw figure) | |
| memory of an idle till (3 tills, after {N_PROP} sales) | {mem(r['idle_mem'])} | | RSS < 16 MB |
| memory of the till that caught up: at the end / idle 6 s later | {mem(c['caught_up_mem'])} / {mem(c['caught_up_idle_mem'])} | | |
| RSS during catch-up (20–80 % of its time: min–max), peak | {c['catchup_rss_mid_min_kb'] / 1024:.1f}–{c['catchup_rss_mid_max_kb'] / 1024:.1f} MB, peak {c['catchup_peak_rss_kb'] / 1024:.1f} MB | | bounded: the page cache stops at 8 MiB |

Private memory is Private_Clean + Private_Dirty of /proc/PID/smaps_rollup (anonymous: the heap and
stacks); the rest of the RSS is shared libraries, mapped once for every process on the machine.
Machine: {os.cpu_count()} cores, {cpu}, shared with other work; release build (-O2), loopback; {time.strftime('%Y-%m-%d')}.
"""
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "mesh.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
