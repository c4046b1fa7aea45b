"""erplab - helpers shared by the ERP forwarding tests (it_erp_*.py): a lab
of tills whose uplinks (Cables) lead to one stub ERP."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "erp-stub"))
from erp_stub import ErpStub  # noqa: E402
from tmharness import StoreLab, wait_until  # noqa: E402

TOKEN = "it-token-123"


def run_erp(test_fn, names, **kw):
    stub = ErpStub(token=TOKEN).start()
    lab = StoreLab(names, **kw)
    ok = False
    try:
        lab.attach_erp(stub, TOKEN)
        lab.full_mesh()
        test_fn(lab, stub)
        ok = True
    finally:
        lab.cleanup(ok)
        stub.stop()
        if not ok:
            print(f"---- erp stub log ----\n{stub.tail(60)}", file=sys.stderr)
    print(f"PASS {test_fn.__name__}")


def wait_forwarder(lab, timeout=30):
    """Until every till names the same forwarder; returns its name."""
    def agreed():
        names = {lab.forwarder(n) for n in lab.tills
                 if lab[n].proc and lab[n].proc.poll() is None}
        return len(names) == 1 and None not in names and names.pop()
    return wait_until(agreed, timeout, "all tills to agree on a forwarder")


def wait_all_booked(lab, stub, ids, timeout=60):
    ids = set(ids)

    def done():
        st = stub.stats(detail=True)
        booked = {i for i, v in st["by_sale"].items() if v["booked"]}
        return ids <= booked and st
    return wait_until(done, timeout, f"{len(ids)} sales booked at the ERP", interval=0.2)


def wait_backlog_zero(lab, names=None, timeout=60):
    for n in names or lab.tills:
        wait_until(lambda n=n: lab[n].status()["erp"]["backlog"] == 0, timeout,
                   f"{n}'s ERP backlog to drain (acknowledgements replicated)")


def assert_once(stub, ids, allow_redelivered=()):
    """Every sale booked exactly once; a sale delivered more than once only
    if listed in allow_redelivered, and then always under one key."""
    st = stub.stats(detail=True)
    assert st["mismatches"] == 0, st
    for i in ids:
        v = st["by_sale"].get(i)
        assert v and v["booked"], f"sale {i} never booked: {v}"
        if i not in allow_redelivered:
            assert v["deliveries"] == 1, f"sale {i} delivered {v['deliveries']} times: {v}"
        else:
            assert len(v["keys"]) == 1, f"sale {i} re-sent under a new key: {v}"
    return st
