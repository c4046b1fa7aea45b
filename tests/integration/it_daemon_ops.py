#!/usr/bin/env python3
"""What a store's IT person does with tillmeshd itself: `-n` checks the
config and keys, a bad file or a world-readable secret key is refused with a
clear message, SIGHUP applies new peers, SIGTERM stops cleanly (exit 0) and
the data is there after a restart."""
import os
import signal
import subprocess

from tmharness import run, wait_until, TILLMESHD


def daemon_operations(lab):
    a, b = lab["a"], lab["b"]
    a.write_config()
    r = subprocess.run([TILLMESHD, "-n", "-c", a.config], capture_output=True, text=True)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    # A typo in the file: refused, and the message names the setting.
    with open(a.config) as f:
        good = f.read()
    with open(a.config, "w") as f:
        f.write(good.replace("store_id", "stor_id"))
    r = subprocess.run([TILLMESHD, "-n", "-c", a.config], capture_output=True, text=True)
    assert r.returncode == 1 and "stor_id" in r.stderr and "store_id is required" in r.stderr, r
    with open(a.config, "w") as f:
        f.write(good)
    # A secret key others can read: refused.
    key = os.path.join(lab.root, "keys", "a.key")
    os.chmod(key, 0o644)
    r = subprocess.run([TILLMESHD, "-n", "-c", a.config], capture_output=True, text=True)
    assert r.returncode == 1 and "chmod 600" in r.stderr, r
    os.chmod(key, 0o600)
    # Start without peers; SIGHUP after adding b as a static peer.
    b.start()
    a.start()
    sid = a.post_sale()["sale_id"]
    assert not any(p["name"] == "b" for p in a.status()["peers"])
    lab.connect("a", "b")
    a.write_config()
    a.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b.has_sale(sid), 20, "b to get a's sale after a's SIGHUP")
    assert "reloading" in a.tail(50)
    # SIGTERM: clean exit, and the sale survives a restart.
    assert a.stop() == 0, a.tail()
    a.start()
    assert a.has_sale(sid)


if __name__ == "__main__":
    run(daemon_operations, ["a", "b"])
