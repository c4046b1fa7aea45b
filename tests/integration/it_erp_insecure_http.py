#!/usr/bin/env python3
"""A bearer token over plain http:// would travel in clear on every probe
and POST: tillmeshd refuses such a config (at -n and at start) with a message
that says what to do, unless [erp] allow_insecure_http = yes, and then it
starts, forwards, and says INSECURE in its log."""
import subprocess

from tmharness import TILLMESHD, wait_until
from erplab import run_erp, wait_forwarder, wait_all_booked


def token_over_http(lab, stub):
    a = lab["a"]
    a.write_config()
    with open(a.config) as f:
        allowed = f.read()
    assert "allow_insecure_http = yes" in allowed, "the harness allows it for the stub"
    with open(a.config, "w") as f:
        f.write(allowed.replace("allow_insecure_http = yes", ""))
    for args in (["-n", "-c", a.config], ["-c", a.config]):
        r = subprocess.run([TILLMESHD] + args, capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, f"tillmeshd {args} accepted a token over http: {r}"
        assert "allow_insecure_http" in r.stderr and "https://" in r.stderr \
            and "in clear" in r.stderr, r.stderr
    a.start()  # write_config puts allow_insecure_http = yes back
    wait_until(lambda: "INSECURE" in a.tail(100), 10, "the loud warning in the log")
    a = lab[wait_forwarder(lab)]
    sid = a.post_sale()["sale_id"]
    wait_all_booked(lab, stub, [sid])


if __name__ == "__main__":
    run_erp(token_over_http, ["a"])
