#!/usr/bin/env python3
"""An edit made after seeing another edit of the same field wins over it,
whatever the clocks say (issue 11: ordering stays causal).

Three real tillmeshd under libfaketime: a (right clock), b (a day ahead),
c (2000-01-01). Each chain edits one field of one customer: a till writes,
a till whose clock is far behind reads that value and then overwrites it;
the later edit must end on every till. A till dragged a day forward by b's
stamps keeps ordering its own successive edits (its HLC counter must not
stall or wrap). Chains are separate checks: one run reports each.
"""
from tmharness import Findings, make_rut, run, rut_key, wait_until

CLOCKS = {"a": "+0", "b": "+1d", "c": "@2000-01-01 00:00:00"}
WAIT = 12
RUT = make_rut(17000000)
KEY = rut_key(RUT)


def field_on(t, field):
    st, js = t.get(f"/v1/customers/{KEY}")
    return js.get(field) if st == 200 and isinstance(js, dict) else None


def put(t, body):
    st, js = t.request("PUT", f"/v1/customers/{RUT}", body)
    assert st == 200, f"PUT on {t.name}: {st} {js}"


def shows(lab, names, field, value, what):
    last = {}

    def ok():
        last.update({n: field_on(lab[n], field) for n in names})
        return all(v == value for v in last.values())

    try:
        wait_until(ok, WAIT, what)
    except AssertionError:
        raise AssertionError(f"{what}: after {WAIT}s {field} is {last}, want {value!r} "
                             f"(clocks {CLOCKS})") from None


def value(field, who, n):
    """A valid value of field that names who wrote it (and edit n)."""
    if field == "email":
        return f"{who}.{n}@example.cl"
    if field == "phone":
        return f"+56 9 {ord(who)} {n:04d}"
    return f"{who} edit {n} (clock {CLOCKS[who]})"


def read_then_overwrite(lab, field, writer, reader):
    """writer sets field; reader (clock far behind writer) sees it, then
    sets it again: reader's later edit must win on every till."""
    first = value(field, writer, 1)
    put(lab[writer], {field: first})
    shows(lab, [reader], field, first, f"{reader} ({CLOCKS[reader]}) reads {writer}'s {field}")
    later = value(field, reader, 2)
    put(lab[reader], {field: later})
    assert field_on(lab[reader], field) == later, \
        f"{reader}'s own later edit of {field} lost on {reader}: {field_on(lab[reader], field)!r}"
    shows(lab, list(lab.tills), field, later,
          f"{reader}'s later edit of {field} wins on every till over {writer}'s")


def dragged_forward_still_orders(lab, n=30):
    """a has taken b's stamps (a day ahead): its own next edits, one after
    another, each win over the previous; then c (26 years behind) reads the
    last and overwrites it, and wins."""
    put(lab["b"], {"loyalty_program": "b-day-ahead"})
    shows(lab, ["a"], "loyalty_program", "b-day-ahead", "a reads b's loyalty_program")
    for i in range(n):
        v = f"a edit {i}"
        put(lab["a"], {"loyalty_program": v})
        got = field_on(lab["a"], "loyalty_program")
        assert got == v, f"a's edit {i} lost on a itself after the drag: {got!r}"
    shows(lab, list(lab.tills), "loyalty_program", f"a edit {n - 1}",
          f"a's last of {n} edits wins on every till")
    put(lab["c"], {"loyalty_program": "c after a"})
    shows(lab, list(lab.tills), "loyalty_program", "c after a",
          "c's later edit (clock 26 years behind) wins on every till")


def later_edit_wins_whatever_the_clocks(lab):
    lab.full_mesh()
    lab.start_all()
    for t in lab.tills.values():
        wait_until(t.clock_ok, 10, f"{t.name} to show real time {t.clock_offset_s:+d} s")
    f = Findings()
    # b a day ahead writes, a (right clock) reads and overwrites.
    f.check("a overwrites b's name after reading it (b a day ahead)",
            read_then_overwrite, lab, "name", "b", "a")
    # a writes, c (2000-01-01) reads and overwrites.
    f.check("c overwrites a's email after reading it (c at 2000-01-01)",
            read_then_overwrite, lab, "email", "a", "c")
    # Both far apart: b (a day ahead) writes, c (26 years behind) overwrites.
    f.check("c overwrites b's phone after reading it (26 years apart)",
            read_then_overwrite, lab, "phone", "b", "c")
    f.check("a dragged a day forward keeps ordering its own edits",
            dragged_forward_still_orders, lab)
    f.check("digests equal", lambda: wait_until(lab.converged, WAIT, "equal digests"))
    f.done()


if __name__ == "__main__":
    run(later_edit_wins_whatever_the_clocks, list(CLOCKS), clocks=CLOCKS)
