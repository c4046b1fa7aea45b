#!/usr/bin/env python3
"""tillmeshd under systemd's Type=notify, with a fake manager: a Python
AF_UNIX datagram socket as NOTIFY_SOCKET (what systemd gives a service) and
WATCHDOG_USEC set (WatchdogSec=).

- READY=1 comes only once the API answers: the moment it arrives, a GET
  /v1/status must succeed.
- STATUS= is one line (peers up/known, forwarder, backlog), sent when it
  changes and not every turn of the loop.
- WATCHDOG=1 keeps coming from the loop; a SIGSTOPped daemon (a hung loop)
  sends none, and pings resume on SIGCONT. Counted, not timed.
- SIGHUP: RELOADING=1 then READY=1. SIGTERM: STOPPING=1, exit 0.
"""
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from tmharness import run, wait_until, TILLMESHD

WATCHDOG_USEC = 200000  # pings every 100 ms


class FakeManager:
    """Receives every datagram on a NOTIFY_SOCKET; keeps them in order."""

    def __init__(self, path, api_port):
        self.path = path
        self.api_port = api_port
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []          # list of lists of "KEY=VALUE" lines
        self.ready_api = []     # for each READY=1: did the API answer right then?
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _api_answers(self):
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.api_port}/v1/status", timeout=5) as r:
                return r.status == 200
        except OSError as e:
            return f"API did not answer at READY=1: {e}"

    def _loop(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            lines = data.decode(errors="replace").split("\n")
            if "READY=1" in lines:
                self.ready_api.append(self._api_answers())
            with self.lock:
                self.msgs.append(lines)

    def count(self, key, since=0):
        with self.lock:
            return sum(1 for m in self.msgs[since:] for ln in m if ln == key
                       or (key.endswith("=") and ln.startswith(key)))

    def statuses(self, since=0):
        with self.lock:
            return [ln[7:] for m in self.msgs[since:] for ln in m if ln.startswith("STATUS=")]

    def mark(self):
        """Sends ourselves a marker and waits until it is read: everything
        queued before it has been taken. Returns its index."""
        tag = f"MARK={time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(tag.encode(), self.path)
        wait_until(lambda: any(tag in m for m in list(self.msgs)), 10, "our marker")
        with self.lock:
            return next(i for i, m in enumerate(self.msgs) if tag in m) + 1

    def close(self):
        self.done = True
        self.thread.join(5)
        self.sock.close()


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def systemd_notify(lab):
    a, b = lab["a"], lab["b"]
    lab.connect("a", "b")
    a.write_config()
    mgr = FakeManager(os.path.join(lab.root, "notify.sock"), a.api_port)
    env = dict(os.environ, NOTIFY_SOCKET=mgr.path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("WATCHDOG_PID", None)
    logf = open(a.log_path, "ab")
    a.proc = subprocess.Popen([TILLMESHD, "-c", a.config], stdout=logf, stderr=logf, env=env)
    logf.close()
    try:
        wait_until(lambda: mgr.count("READY=1") >= 1, 30,
                   "READY=1 (a build without libsystemd never sends it)")
        assert mgr.ready_api[0] is True, mgr.ready_api
        first = mgr.statuses()
        assert first and first[0].startswith("peers 0/1 up; forwarder "), first
        assert "backlog 0" in first[0], first

        # Watchdog pings from the loop, counted.
        wait_until(lambda: mgr.count("WATCHDOG=1") >= 5, 20, "five WATCHDOG=1")

        # STATUS follows what changes: a peer comes up, a sale waits.
        b.start()
        wait_until(lambda: any(s.startswith("peers 1/1 up") for s in mgr.statuses()), 30,
                   "STATUS with peers 1/1 up")
        a.post_sale()
        wait_until(lambda: any("backlog 1 (oldest <1m)" in s for s in mgr.statuses()), 20,
                   "STATUS with the sale in the backlog")

        # Quiet till: the loop turns at least once per ping and per
        # heartbeat (every 100 ms), STATUS stays put. Over 20 pings a STATUS
        # per turn would be 20 or more; a peer flapping on a loaded machine
        # may honestly change it once or twice.
        at = mgr.mark()
        wait_until(lambda: mgr.count("WATCHDOG=1", at) >= 20, 30, "20 more WATCHDOG=1")
        quiet = mgr.statuses(at)
        assert len(quiet) <= 3, f"STATUS sent on loop turns, not changes: {quiet}"

        # A hung loop: SIGSTOP. Over a window in which a running till pings
        # about ten times, a stopped one pings zero times.
        at = mgr.mark()
        window = 10 * WATCHDOG_USEC / 2 / 1e6
        time.sleep(window)
        alive_pings = mgr.count("WATCHDOG=1", at)
        assert alive_pings >= 3, f"only {alive_pings} pings in {window}s from a running till"
        a.proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: proc_state(a.proc.pid) == "T", 10, "tillmeshd to be stopped")
        at = mgr.mark()
        time.sleep(window)
        stopped_pings = mgr.count("WATCHDOG=1", at)
        assert stopped_pings == 0, f"{stopped_pings} WATCHDOG=1 from a stopped daemon"
        a.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: mgr.count("WATCHDOG=1", at) >= 3, 20, "pings again after SIGCONT")
        print(f"watchdog: {alive_pings} pings running, {stopped_pings} stopped, same window")

        # Reload: RELOADING=1 then READY=1 again.
        at = mgr.mark()
        a.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: mgr.count("READY=1", at) >= 1, 20, "READY=1 after the reload")
        with mgr.lock:
            seq = [ln for m in mgr.msgs[at:] for ln in m
                   if ln in ("RELOADING=1", "READY=1")]
        assert seq[:2] == ["RELOADING=1", "READY=1"], seq
        assert all(r is True for r in mgr.ready_api), mgr.ready_api

        # Stop: STOPPING=1 and a clean exit.
        at = mgr.mark()
        assert a.stop() == 0, a.tail()
        wait_until(lambda: mgr.count("STOPPING=1", at) >= 1, 10, "STOPPING=1")
        print(f"notify: {len(mgr.msgs)} datagrams, statuses: {mgr.statuses()}")
    finally:
        if a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        mgr.close()


if __name__ == "__main__":
    run(systemd_notify, ["a", "b"])
