#!/usr/bin/env python3
"""A till that ran a day ahead, restarted with its clock corrected, keeps
exchanging every sale (issue 11).

a and b run on the right clock (no libfaketime); c starts a day ahead
(libfaketime +1d), rings up sales and edits a customer, is stopped, and is
started again on the right clock (as after an admin fixed its RTC), then
rings up more sales. Its old ops carry stamps a day ahead and its HLC
remembers them across the restart; none of that may keep its sales, old or
new, from a and b, nor keep a's and b's sales from it. a reaches c only
through b for the relayed part (a is not c's peer), so a far-future op in a
relayed pull answer must not block the others in the same batch.
"""
from tmharness import (Findings, describe_missing, make_rut, make_sale, missing_sales, run,
                       rut_key, wait_until)

WAIT = 12
RUT = make_rut(18000000)


def every_sale_everywhere(lab, ids, tag):
    missing = missing_sales(list(lab.tills.values()), ids, WAIT)
    assert not missing, f"{tag}: after {WAIT}s " + describe_missing(
        missing, {"a": "right", "b": "right", "c": lab["c"].clock or "right"})


def customer_equal(lab, want):
    last = {}

    def ok():
        for n, t in lab.tills.items():
            st, js = t.get(f"/v1/customers/{rut_key(RUT)}")
            last[n] = js.get("name") if st == 200 else f"HTTP {st}"
        return all(v == want for v in last.values())

    try:
        wait_until(ok, WAIT, "customer name on every till")
    except AssertionError:
        raise AssertionError(f"after {WAIT}s name is {last}, want {want!r}") from None


def corrected_till_keeps_exchanging(lab):
    # a - b - c in a line for the mesh: a's and c's ops cross b (relay).
    lab.connect("a", "b")
    lab.connect("c", "b")
    lab.start_all()
    a, b, c = lab["a"], lab["b"], lab["c"]
    wait_until(c.clock_ok, 10, "c to show real time +1 day")
    f = Findings()
    ids = {}
    for t in (c, c, c, a, b):
        ids[t.post_sale(make_sale())["sale_id"]] = t.name
    st, js = c.request("PUT", f"/v1/customers/{RUT}", {"name": "written a day ahead"})
    assert st == 200, js
    f.check("sales of a till a day ahead reach every till (and its peers' reach it)",
            every_sale_everywhere, lab, ids, "c a day ahead")
    f.check("customer written a day ahead reaches every till", customer_equal, lab,
            "written a day ahead")

    # The admin fixes c's clock: restart on the right time (libfaketime +0).
    assert c.stop() == 0, c.tail()
    c.clock = "+0"
    c.start()
    wait_until(c.clock_ok, 10, "c to show the right time after the restart")
    for t in (c, c, c, a, b):
        ids[t.post_sale(make_sale())["sale_id"]] = t.name
    f.check("after the clock is corrected and c restarted, every sale reaches every till",
            every_sale_everywhere, lab, ids, "c restarted on the right clock")
    # An edit a makes after it has seen c's day-ahead one wins (causality is
    # kept across the restart, whatever c's old stamps said).
    if f.check("a sees c's day-ahead edit", customer_equal, lab, "written a day ahead"):
        st, js = a.request("PUT", f"/v1/customers/{RUT}", {"name": "a fixes it"})
        assert st == 200, js
        f.check("a's later edit wins on every till over c's day-ahead one",
                customer_equal, lab, "a fixes it")
    f.check("digests equal", lambda: wait_until(lab.converged, WAIT, "equal digests"))
    # The relay really was a relay.
    assert all(p["name"] != "c" for p in a.status()["peers"]), a.status()["peers"]
    f.done()


if __name__ == "__main__":
    run(corrected_till_keeps_exchanging, ["a", "b", "c"], clocks={"c": "+1d"})
