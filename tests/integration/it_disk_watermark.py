#!/usr/bin/env python3
"""Disk watermark: a till whose disk runs low stops taking peers' ops and keeps
selling itself; once space is back it catches up.

Till b's data_dir is a real 64 MiB tmpfs (root needed: exit 77 = SKIP, said
loudly, elsewhere); a filler file brings its free space under min_free_mb.
Before the watermark existed, b kept storing a's ops until its disk was full
and then refused its own sales with 507 - the whole store stops selling at
once when every till holds every till's ops.
"""
import os
import subprocess
import sys

from tmharness import run, wait_until

MIB = 1024 * 1024


def skip(why):
    print(f"SKIP it_disk_watermark: {why}", file=sys.stderr)
    sys.exit(77)


def mount_tmpfs(path, size_mib):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot mount a tmpfs for the data_dir ({r.stderr.strip()}); needs root")


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_to(path, leave):
    """Writes a filler file so that about `leave` bytes stay free."""
    filler = os.path.join(path, "filler")
    n = free_bytes(path) - leave
    with open(filler, "wb") as f:
        chunk = b"\0" * MIB
        while n > 0:
            f.write(chunk[: min(n, MIB)])
            n -= MIB
    return filler


def peer(st, name):
    return next(p for p in st["peers"] if p["name"] == name)


def low_disk_keeps_own_sales(lab):
    a, b = lab["a"], lab["b"]
    data = os.path.join(b.dir, "data")
    mount_tmpfs(data, 64)
    try:
        b.extra = "min_free_mb = 40\n"
        lab.full_mesh()
        lab.start_all()
        first = a.post_sale()
        wait_until(lambda: b.has_sale(first["sale_id"]), 20, "a's first sale on b")
        st = b.status()
        assert st["disk"]["peer_ops_paused"] is False, st["disk"]
        assert st["disk"]["min_free_bytes"] == 40 * MIB, st["disk"]

        filler = fill_to(data, 30 * MIB)
        wait_until(lambda: b.status()["disk"]["peer_ops_paused"], 20,
                   "b to notice its disk is below the watermark")
        ids = [a.post_sale()["sale_id"] for _ in range(20)]
        # b hears of them (a's heartbeats carry its vector) but does not take them.
        wait_until(lambda: peer(b.status(), "a")["we_lack_ops"] >= 20, 20,
                   "b to learn that a holds 20 ops it lacks")
        missing = [i for i in ids if b.has_sale(i)]
        assert not missing, f"b took peers' ops below the watermark: {missing}"
        # Its own sales still go in: that is what the space left is for.
        own = b.post_sale()
        wait_until(lambda: a.has_sale(own["sale_id"]), 20, "b's own sale on a")
        st = b.status()
        assert st["disk"]["free_bytes"] < 40 * MIB, st["disk"]
        _, metrics = b.get("/metrics")
        assert "tillmesh_peer_intake_paused 1" in metrics, metrics

        os.unlink(filler)
        wait_until(lambda: not b.status()["disk"]["peer_ops_paused"], 20,
                   "b to take peers' ops again once space is back")
        for i in ids:
            wait_until(lambda i=i: b.has_sale(i), 20, f"sale {i} on b after space came back")
        wait_until(lab.converged, 20, "equal digests")
        log = open(b.log_path, errors="replace").read()
        assert "below the watermark" in log and "taking peers' ops again" in log, b.tail()
    finally:
        for t in (a, b):
            if t.proc and t.proc.poll() is None:
                t.stop()
        subprocess.run(["umount", "-l", data], capture_output=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        skip("needs root to mount a tmpfs")
    run(low_disk_keeps_own_sales, ["a", "b"])
