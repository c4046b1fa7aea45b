#!/usr/bin/env python3
"""Two tills configured with other heartbeats: a every 100 ms (peer timeout
400 ms), b every 1500 ms (6 s). Before heartbeats said their interval, a
called b down 400 ms after each of b's heartbeats and alive again at the
next one: every 1.5 s the peer flapped in a's log and status, and with it
a's election (a forwarder on b lost its role on a, and back). Now b says
"every 1500 ms" and a waits three of b's heartbeats (4.5 s, longer than its
own 400 ms), and still sees b go when b is killed."""
import time

from tmharness import run, wait_until

WATCH_S = 8  # more than 5 of b's heartbeats; a window to count flaps in, not a timing


def flaps(till, peer):
    with open(till.log_path, errors="replace") as f:
        return sum(f"peer {peer}: alive -> down" in ln for ln in f)


def slow_peer_is_not_timed_out(lab):
    lab.full_mesh()
    a, b = lab["a"], lab["b"]
    b.heartbeat_ms = 1500
    lab.start_all()
    wait_until(lambda: {p["name"]: p["state"] for p in a.status()["peers"]} == {"b": "alive"},
               20, "a to hear b")
    peer_b = wait_until(lambda: [p for p in a.status()["peers"] if p.get("heartbeat_ms")], 20,
                        "b's heartbeat in a's status")[0]
    assert peer_b["heartbeat_ms"] == 1500, peer_b
    peer_a = next(p for p in b.status()["peers"] if p["name"] == "a")
    assert peer_a["heartbeat_ms"] == 100, peer_a
    before = flaps(a, "b")
    states = set()
    end = time.monotonic() + WATCH_S
    while time.monotonic() < end:
        states.add(next(p["state"] for p in a.status()["peers"] if p["name"] == "b"))
        time.sleep(0.05)
    assert flaps(a, "b") == before and states == {"alive"}, \
        f"a called b down between two of its heartbeats: {flaps(a, 'b') - before} times, " \
        f"states seen {states}"
    # Gone is still gone: kill -9, and a says so after 3 of b's heartbeats.
    b.kill9()
    wait_until(lambda: next(p["state"] for p in a.status()["peers"] if p["name"] == "b")
               == "down", 20, "a to call b down after b was killed")


if __name__ == "__main__":
    run(slow_peer_is_not_timed_out, ["a", "b"])
