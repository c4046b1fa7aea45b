#!/usr/bin/env python3
"""kill -9 C, post 10,000 sales spread over A and B, restart C: C catches
up and all three digests are equal. Also: P1, every sale acknowledged with
201 by C before its kill -9 is still there after the restart."""
import os
import threading

from tmharness import run, wait_until, make_sale

N = int(os.environ.get("TM_IT_CATCHUP_SALES", "10000"))


def post_many(till, n, out):
    for _ in range(n):
        out.append(till.post_sale()["sale_id"])


def catchup_after_kill9(lab):
    lab.full_mesh()
    lab.start_all()
    a, b, c = lab["a"], lab["b"], lab["c"]
    acked_on_c = [c.post_sale()["sale_id"] for _ in range(20)]
    c.kill9()
    ids_a, ids_b = [], []
    ta = threading.Thread(target=post_many, args=(a, N // 2, ids_a))
    tb = threading.Thread(target=post_many, args=(b, N - N // 2, ids_b))
    ta.start(); tb.start(); ta.join(); tb.join()
    assert len(ids_a) + len(ids_b) == N
    c.start()
    for sid in acked_on_c:
        assert c.has_sale(sid), f"sale {sid} acknowledged by c before kill -9 is gone"
    wait_until(lambda: c.status()["state"]["sales"] == N + 20, 300,
               f"c to hold all {N + 20} sales", interval=0.5)
    wait_until(lab.converged, 60, "equal digests")
    for sid in ids_a[:50] + ids_b[-50:]:
        assert c.has_sale(sid), sid


if __name__ == "__main__":
    run(catchup_after_kill9, ["a", "b", "c"])
