#!/usr/bin/env python3
"""P6: a till whose key is not trusted gets no data and injects none; a till
of another store (trusted key, other store_id) is ignored."""
import time

from tmharness import run, wait_until


def closed_mesh(lab):
    lab.full_mesh()
    intruder = lab.add("intruder", trusted=False)
    other = lab.add("other", store_id="store-elsewhere")
    # Both try hard: static peers pointing at every store till.
    for t in ("a", "b"):
        lab.connect("intruder", t)
        lab.connect("other", t)
        lab.connect(t, "other")
    lab.start_all()
    a, b = lab["a"], lab["b"]
    sid = a.post_sale()["sale_id"]
    wait_until(lambda: b.has_sale(sid), 20, "sale on b")
    bad = intruder.post_sale()["sale_id"]
    alien = other.post_sale()["sale_id"]
    # Give the outsiders many heartbeat rounds to (fail to) do harm, then
    # check from both sides; a and b exchange further sales meanwhile so we
    # know replication itself was working during the window.
    sid2 = b.post_sale()["sale_id"]
    wait_until(lambda: a.has_sale(sid2), 20, "second sale on a")
    wait_until(lambda: any(p["name"] == "other" and p["state"] == "foreign"
                           for p in a.status()["peers"]), 20, "a to mark other as foreign")
    for t in (a, b):
        assert not t.has_sale(bad), f"untrusted till injected a sale into {t.name}"
        assert not t.has_sale(alien), f"other store's sale reached {t.name}"
    for outsider in (intruder, other):
        assert not outsider.has_sale(sid), f"{outsider.name} read a store sale"
        assert not outsider.has_sale(sid2), f"{outsider.name} read a store sale"
    assert all(p["name"] != "intruder" or p["state"] != "alive" for p in a.status()["peers"])
    # The refusal is logged when the intruder's handshake reaches a or b,
    # which may come after the store's own sales have crossed (a greeting on
    # link up made those faster than the intruder's first dial).
    wait_until(lambda: "refused a connection" in a.tail(200) + b.tail(200), 20,
               "the ZAP refusal of the intruder to be logged")


if __name__ == "__main__":
    run(closed_mesh, ["a", "b"])
