#!/usr/bin/env python3
"""A till's first hello goes out before its connection is up and the
transport drops it; the till greets the peer again as soon as the
handshake is done, so a catch-up does not wait for a heartbeat round.

Heartbeats every 60 s (the most the config allows): within the test no
round is due after the start, so the only way `a` learns `b`'s vector and
pulls is the greeting on connection (or `b` greeting `a` the same way).
Before the fix `a` held nothing of `b`'s until the next round, a minute
later. The wait below is a give-up deadline, not the figure asserted: the
order is (a) a's link to b comes up, (b) a greets b, (c) b answers at once,
(d) a pulls, all before either till's second heartbeat round."""
import re

from tmharness import run, wait_until

N = 20


def metric(till, name):
    st, text = till.get("/metrics")
    assert st == 200, st
    m = re.search(r"^tillmesh_%s (\d+)" % name, text, re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


def catchup_starts_on_connection(lab):
    lab.full_mesh()
    a, b = lab["a"], lab["b"]
    b.start()
    ids = [b.post_sale()["sale_id"] for _ in range(N)]
    a.start()
    wait_until(lambda: a.status()["state"]["sales"] == N, 30,
               f"a to hold b's {N} sales before the next heartbeat round (60 s)")
    for sid in ids:
        assert a.has_sale(sid), sid
    greeted = metric(a, "mesh_links_greeted_total") + metric(b, "mesh_links_greeted_total")
    assert greeted >= 1, "caught up without a greeting: the test no longer tests it"
    # Still inside the first round on both tills: no heartbeat round did it.
    for t in (a, b):
        assert t.status()["node"]["uptime_s"] < 60, "a heartbeat round passed: the order is not shown"


if __name__ == "__main__":
    run(catchup_starts_on_connection, ["a", "b"], heartbeat_ms=60000)
