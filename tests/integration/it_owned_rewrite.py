#!/usr/bin/env python3
"""A till holding a valid key cannot rewrite another till's sale, post as
another till, or slip in a sale that breaks the rules; each of its ops stays
in the log (equal digests everywhere) and is shown in status as kept aside.

Fails before records were owned: the forged op with hlc 1 replaced the sale
(total 1) on every till, and the other forged sales were shown."""
import uuid

from ownedlab import Forge, node_id, ops_held, sale_json
from tmharness import Findings, run, wait_until


def history_rewrite_refused(lab):
    lab.add("evil")
    lab.connect("till-1", "till-2")
    lab.connect("till-2", "till-1")
    t1, t2 = lab["till-1"], lab["till-2"]
    t1.start(wait=False)
    t2.start(wait=False)
    wait_until(t1.alive_api, 30, "till-1 API")
    wait_until(t2.alive_api, 30, "till-2 API")
    real = t1.post_sale()
    sid = real["sale_id"]
    wait_until(lambda: t2.has_sale(sid), 30, "the real sale on till-2")

    evil = Forge(lab, "evil")
    as_other = str(uuid.uuid4())
    broken = str(uuid.uuid4())
    own = str(uuid.uuid4())
    rewrite = sale_json(sid, "till-1", real["receipt_no"], 1, real["created_at"])
    bad = sale_json(broken, "evil", 2, 500)
    bad["total"] = 5  # lines add up to 500
    bad["payments"][0]["amount"] = 5
    ops = [
        # "any origin, seq 1, hlc 1": the attack of issue 13.
        {"origin": evil.node_id, "seq": 1, "hlc": 1, "sale": rewrite},
        # The victim's own origin, far past its seqs, also with hlc 1: signed
        # with evil's key, so refused outright (evidence), never stored.
        {"origin": node_id(t1), "seq": 500, "hlc": 1, "sale": rewrite},
        {"origin": evil.node_id, "seq": 2, "hlc": 2, "sale": sale_json(as_other, "till-1", 99, 700)},
        {"origin": evil.node_id, "seq": 3, "hlc": 3, "sale": bad},
        # A control: its own sale is an ordinary sale.
        {"origin": evil.node_id, "seq": 4, "hlc": 4, "sale": sale_json(own, "evil", 1, 300)},
    ]
    before = {t.name: ops_held(t) for t in (t1, t2)}
    evil.run([t1, t2], ops=ops, seconds=2.5)
    for t in (t1, t2):
        wait_until(lambda: ops_held(t) >= before[t.name] + len(ops) - 1, 30,
                   f"{t.name} to hold every forged op under evil's own origin")
        wait_until(lambda: t.status()["trust"]["ops_refused"] >= 1, 30,
                   f"{t.name} to refuse the op forged under till-1's origin")
        assert ops_held(t) == before[t.name] + len(ops) - 1, \
            f"{t.name} stored the op forged under till-1's origin"
    wait_until(lambda: t1.digest() == t2.digest(), 30, "equal digests")

    f = Findings()

    def control():
        for t in (t1, t2):
            assert t.has_sale(own), f"{t.name} did not take evil's own sale: the test proves nothing"

    def sale_unchanged():
        for t in (t1, t2):
            st, js = t.get(f"/v1/sales/{sid}")
            assert st == 200 and js["total"] == real["total"], f"{t.name} shows {js}"

    def not_shown():
        for t in (t1, t2):
            assert not t.has_sale(as_other), f"{t.name} shows a sale posted as till-1 by evil"
            assert not t.has_sale(broken), f"{t.name} shows a sale that breaks the rules"

    def reported():
        for t in (t1, t2):
            c = t.status().get("conflicts")
            assert c, f"{t.name}: no conflicts in status"
            # (The rewrite under till-1's own origin never got this far:
            # its signature is evil's.)
            assert (c["total"], c["till_not_origin"], c["different_body"], c["invalid"]) == \
                (3, 2, 0, 1), c
            reasons = {(o["sale_id"], o["reason"]) for o in c["ops"]}
            assert (broken, "invalid:total:sum") in reasons, reasons
            assert (as_other, "till_not_origin") in reasons, reasons
            text = t.request("GET", "/metrics")[1]
            assert "tillmesh_ops_kept_aside 3" in text, \
                [l for l in text.splitlines() if "kept_aside" in l]
        log = open(t1.log_path, errors="replace").read()
        assert "kept aside" in log, "till-1's log does not say ops were kept aside"

    def node_id_bound_to_key():
        # The same key now speaks for till-1's node id: every frame refused.
        other = str(uuid.uuid4())
        Forge(lab, "evil", node_id=node_id(t1)).run([t2], seconds=1.5, ops=[
            {"origin": uuid.uuid4().hex, "seq": 1, "hlc": 9, "sale": sale_json(other, "evil", 9, 100)}])
        wait_until(lambda: "speaks for node" in open(t2.log_path, errors="replace").read(), 10,
                   "till-2 to log the refusal")
        assert not t2.has_sale(other), "a frame from a key speaking for another till was taken"

    def api_refuses_another_till():
        body = sale_json(str(uuid.uuid4()), "till-2", 1, 100)
        st, js = t1.request("POST", "/v1/sales", body)
        assert st == 422 and any(e["rule"] == "not_this_till" for e in js["fields"]), (st, js)
        body["till"] = "till-1"
        st, js = t1.request("POST", "/v1/sales", body)
        assert st == 201, (st, js)

    f.check("control: evil's own sale is taken", control)
    f.check("the API takes a sale only under this till's name", api_refuses_another_till)
    f.check("a key cannot speak for another till's node id", node_id_bound_to_key)
    f.check("the sale keeps its body on every till", sale_unchanged)
    f.check("a sale as another till, and a broken one, are not shown", not_shown)
    f.check("status, metrics and log report what was kept aside", reported)
    f.done()


if __name__ == "__main__":
    run(history_rewrite_refused, ["till-1", "till-2"])
