#!/usr/bin/env python3
"""A till 10 minutes behind (issue 11, the original report): it exchanges
every sale with the others, and every till tells the truth about clocks.

a, b and d run on the right clock (no libfaketime), c 10 min behind
(libfaketime -10m); four tills so that "the store median" is the right time
whether a till counts itself in it or not. First the promise: sales and a customer edit cross both
ways. Then what the store's IT person sees, in check functions named
check_status_clock, check_status_peers and check_metrics_clock so that they
are easy to adjust to the fields as built:

    GET /v1/status  "clock": {"offset_ms": this till minus the store median,
                              "skewed": bool, "bound_ms": int,
                              "peers_measured": int}
                    "peers"[i]: "clock_offset_ms" (peer minus us, null if
                              unknown), "rtt_ms"
    /metrics        tillmesh_clock_offset_seconds, tillmesh_clock_skewed,
                    tillmesh_peer_clock_offset_seconds{peer="NAME"}

c must say it is skewed with an offset near -600000 ms, the others that
they are not; then c's clock is set right while it runs and c must stop saying
so. Each check is separate: one run reports every one that fails.
"""
import re
import urllib.request

from tmharness import Findings, describe_missing, make_rut, make_sale, missing_sales, run, \
    rut_key, wait_until

WAIT = 12
TOL_MS = 3000      # heartbeat round trips on loopback are far below this
BEHIND_MS = -600000


def near(v, want, tol=TOL_MS):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v - want) <= tol


def exchange_both_ways(lab):
    ids = {}
    for t in lab.tills.values():
        ids[t.post_sale(make_sale())["sale_id"]] = t.name
    missing = missing_sales(list(lab.tills.values()), ids, WAIT)
    assert not missing, f"after {WAIT}s " + describe_missing(missing, {"c": "-10m"})
    rut = make_rut(19000000)
    st, js = lab["a"].request("PUT", f"/v1/customers/{rut}", {"name": "from a"})
    assert st == 200, js
    wait_until(lambda: lab["c"].get(f"/v1/customers/{rut_key(rut)}")[0] == 200, WAIT,
               "a's customer on c (10 min behind)")
    wait_until(lab.converged, WAIT, "equal digests")


def clock_of(t):
    """The "clock" object of t's status, or a string saying what is there."""
    js = t.status()
    c = js.get("clock")
    return c if isinstance(c, dict) else f"no \"clock\" object (keys: {', '.join(sorted(js))})"


def check_status_clock(lab, expect, wait=WAIT):
    """expect: name -> (offset_ms, skewed) each till reports about itself."""
    last = {}

    def ok():
        for n, (off, skewed) in expect.items():
            c = clock_of(lab[n])
            last[n] = c
            if not isinstance(c, dict):
                return False
            if c.get("peers_measured") != len(lab.tills) - 1:
                return False
            if not near(c.get("offset_ms"), off) or c.get("skewed") is not skewed:
                return False
            if not isinstance(c.get("bound_ms"), int) or c["bound_ms"] <= 0:
                return False
        return True

    try:
        wait_until(ok, wait, "clock in GET /v1/status")
    except AssertionError:
        raise AssertionError(f"want (offset_ms +-{TOL_MS}, skewed) {expect} with "
                             f"peers_measured {len(lab.tills) - 1} and bound_ms > 0; "
                             f"got {last}") from None
    bound = last["a"]["bound_ms"]
    assert bound < abs(BEHIND_MS), f"bound_ms {bound}: 10 min behind must count as skewed"


def check_status_peers(lab, expect):
    """expect: (viewer, peer) -> clock_offset_ms (peer minus viewer)."""
    last = {}

    def ok():
        good = True
        for (v, p), off in expect.items():
            peers = {x["name"]: x for x in lab[v].status()["peers"]}
            e = peers.get(p, {})
            last[(v, p)] = {k: e.get(k, "absent") for k in ("clock_offset_ms", "rtt_ms")}
            rtt = e.get("rtt_ms")
            good &= near(e.get("clock_offset_ms"), off) and near(rtt, 0, 1000) and rtt >= 0
        return good

    try:
        wait_until(ok, WAIT, "peer clock offsets in GET /v1/status")
    except AssertionError:
        raise AssertionError(f"want clock_offset_ms (+-{TOL_MS}) {expect} and 0 <= rtt_ms < "
                             f"1000; got {last}") from None


def metrics(t):
    with urllib.request.urlopen(f"http://127.0.0.1:{t.api_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+(?:\{[^}]*\})?) (\S+)", line.strip())
        if m and not line.startswith("#"):
            out[m.group(1)] = float(m.group(2))
    return out


def check_metrics_clock(lab, expect, peer_expect, wait=WAIT):
    """expect: name -> (offset_s, skewed 0/1); peer_expect: (viewer, peer)
    -> offset_s."""
    last = {}

    def ok():
        good = True
        for n, (off, sk) in expect.items():
            m = metrics(lab[n])
            last[n] = {k: m.get(k) for k in ("tillmesh_clock_offset_seconds",
                                               "tillmesh_clock_skewed")}
            good &= near(m.get("tillmesh_clock_offset_seconds"), off, TOL_MS / 1000)
            good &= m.get("tillmesh_clock_skewed") == sk
        for (v, p), off in peer_expect.items():
            k = f'tillmesh_peer_clock_offset_seconds{{peer="{p}"}}'
            got = metrics(lab[v]).get(k)
            last[f"{v}: {k}"] = got
            good &= near(got, off, TOL_MS / 1000)
        return good

    try:
        wait_until(ok, wait, "clock metrics")
    except AssertionError:
        raise AssertionError(f"want {expect} and {peer_expect}; got {last}") from None


def behind_till_exchanges_and_is_reported(lab):
    lab.full_mesh()
    lab.start_all()
    c = lab["c"]
    wait_until(c.clock_ok, 10, "c to show real time -600 s")
    f = Findings()
    f.check("sales and customers cross both ways with a till 10 min behind",
            exchange_both_ways, lab)
    s = BEHIND_MS
    f.check("status clock: c skewed at -600 s, a and b not", check_status_clock, lab,
            {"a": (0, False), "b": (0, False), "c": (s, True), "d": (0, False)})
    f.check("status peers: clock_offset_ms and rtt_ms", check_status_peers, lab,
            {("a", "c"): s, ("a", "b"): 0, ("c", "a"): -s, ("c", "b"): -s})
    f.check("metrics: clock offset, skewed, per-peer offset", check_metrics_clock, lab,
            {"a": (0, 0), "c": (s / 1000, 1)}, {("a", "c"): s / 1000, ("c", "a"): -s / 1000})
    # The admin (or NTP) sets c right while it runs: the banner goes away
    # (an estimator may smooth over a few heartbeats, hence the longer wait).
    c.set_clock("+0")
    f.check("status clock after c is set right: nobody skewed", check_status_clock, lab,
            {"a": (0, False), "b": (0, False), "c": (0, False), "d": (0, False)}, wait=20)
    f.check("metrics after c is set right", check_metrics_clock, lab,
            {"a": (0, 0), "c": (0, 0)}, {("a", "c"): 0}, wait=5)
    f.done()


if __name__ == "__main__":
    run(behind_till_exchanges_and_is_reported, ["a", "b", "c", "d"], clocks={"c": "-10m"})
