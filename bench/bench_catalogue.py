#!/usr/bin/env python3
"""bench_catalogue.py - the catalogue from the stub ERP to every till.

  full       N products (default 50,000) at the ERP before the tills start:
             from the tills' APIs answering until every till prices every
             product (its catalogue holds N products at the ERP's version;
             a sample of skus priced through GET /v1/products/{sku}),
             beside the stub's own time to serve the same pages to a client
             that only reads them (the ERP side's limit)
  change     one price changed at the ERP until every till answers the new
             price, over R changes (p50, max); the pull interval
             (catalogue_interval_s, 1 s here) bounds it
  disk, RSS  store bytes and tillmeshd resident memory per 10,000 products

Run with TM_BIN_DIR pointing at a release build (bench/run.sh). Writes
bench/results/catalogue.md. Figures from a shared machine: read, not assert.
"""
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "erp-stub"))
from erp_stub import ErpStub  # noqa: E402
from tmharness import StoreLab, wait_until  # noqa: E402

N = int(os.environ.get("BENCH_CAT_SKUS", "50000"))
TILLS = int(os.environ.get("BENCH_CAT_TILLS", "3"))
CHANGES = int(os.environ.get("BENCH_CAT_CHANGES", "10"))
PAGE = 500
TOKEN = "bench-token"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stub_serve_time(stub):
    """Seconds for a client to read every page from the stub (no till)."""
    t0 = time.monotonic()
    since, n = "", 0
    while True:
        st, js = stub.request("GET", f"/catalogue?since={since}&limit={PAGE}",
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert st == 200, (st, js)
        n += len(js["products"]) + len(js["deletions"])
        since = js["next_cursor"]
        if not js["more"]:
            break
    assert n == N, n
    return time.monotonic() - t0


def main():
    stub = ErpStub(token=TOKEN).start()
    lab = StoreLab([f"t{i}" for i in range(TILLS)], heartbeat_ms=250)
    ok = False
    try:
        version = stub.catalogue_change(generate={"n": N, "prefix": "SKU"})
        serve_s = stub_serve_time(stub)
        lab.attach_erp(stub, TOKEN)
        lab.full_mesh()
        for t in lab.tills.values():
            t.erp_extra += f"catalogue_interval_s = 1\ncatalogue_page = {PAGE}\n"
        lab.start_all()
        tills = list(lab.tills.values())
        t0 = time.monotonic()
        disk0 = {t.name: t.status()["disk"]["store_bytes"] for t in tills}
        rss0 = {t.name: rss_kb(t.proc.pid) for t in tills}
        done_at = {}

        def all_have():
            for t in tills:
                if t.name in done_at:
                    continue
                c = t.status()["catalogue"]
                if c["products"] == N and c["version"] == version:
                    done_at[t.name] = time.monotonic() - t0
            return len(done_at) == len(tills)
        wait_until(all_have, 600, f"{N} products on every till", interval=0.1)
        full_s = max(done_at.values())
        for t in tills:
            for i in random.sample(range(N), 50):
                st, p = t.get(f"/v1/products/SKU{i:06d}")
                assert st == 200 and p["unit_price"] == 1000 + i % 1000, (t.name, i, st, p)
        disk1 = {t.name: t.status()["disk"]["store_bytes"] for t in tills}
        rss1 = {t.name: rss_kb(t.proc.pid) for t in tills}

        lat = []
        for k in range(CHANGES):
            # Not in step with the pull cycle: a change lands anywhere in it.
            time.sleep(random.random())
            i = random.randrange(N)
            price = 500000 + k
            stub.catalogue_change(upsert=[{"sku": f"SKU{i:06d}", "name": f"Product SKU{i:06d}",
                                           "uom": "unit", "unit_price": price, "tax_rate": 1900,
                                           "barcodes": [f"78{i:010d}"], "active": True}])
            t1 = time.monotonic()
            for t in tills:
                wait_until(lambda t=t: t.get(f"/v1/products/SKU{i:06d}")[1]["unit_price"] == price,
                           30, f"{t.name} to see the new price", interval=0.01)
            lat.append(time.monotonic() - t1)

        per10k_disk = statistics.median((disk1[n] - disk0[n]) for n in disk0) * 10000 / N
        per10k_rss = statistics.median((rss1[n] - rss0[n]) for n in rss0) * 10000 / N
        rows = [
            "| measure | value | beside |",
            "|---|---|---|",
            f"| {N} SKUs to {TILLS} tills, until every till prices every SKU | {full_s:.1f} s "
            f"(per till: {', '.join(f'{n} {s:.1f} s' for n, s in sorted(done_at.items()))}) | "
            f"the stub ERP alone serves the same {N // PAGE} pages of {PAGE} in {serve_s:.1f} s |",
            f"| one changed price to every till, {CHANGES} changes | p50 {statistics.median(lat):.2f} s,"
            f" max {max(lat):.2f} s | pull interval 1 s (catalogue_interval_s); the ERP contract "
            f"has no push |",
            f"| store disk per 10,000 SKUs | {per10k_disk / 1e6:.1f} MB "
            f"({per10k_disk / 10000:.0f} B/SKU) | op log + products + barcodes |",
            f"| tillmeshd RSS per 10,000 SKUs | {per10k_rss / 1024:.1f} MB | RSS growth while "
            f"taking the catalogue (SQLite page cache included) |",
        ]
        text = "\n".join(rows) + "\n"
        print(text)
        out = os.path.join(HERE, "results", "catalogue.md")
        with open(out, "w") as f:
            f.write("# Catalogue down-sync (bench/bench_catalogue.py)\n\n")
            f.write(f"Release build, {TILLS} tills and the stub ERP on loopback, heartbeat 250 ms,"
                    f" pages of {PAGE}; a 2-core machine shared with other builds while it ran.\n\n")
            f.write(text)
        ok = True
    finally:
        lab.cleanup(ok)
        stub.stop()


if __name__ == "__main__":
    main()
