#!/usr/bin/env python3
"""lab_lan_loss - 5 % random loss (iptables statistic, both directions),
200 ms delay each way (delaybox.py: a userspace relay, the kernel has no
netem) and a 2 Mbit/s rate limit (tbf) on every till's LAN cable while
selling. A till-to-till round trip then crosses two delayed cables: 800 ms,
longer than three heartbeats. One till has its own slow lossy 4G uplink
(1 Mbit/s, 3 % loss, 60-80 ms each way)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import labnet  # noqa: E402
import scenario  # noqa: E402


def drill(lab, s):
    for n in lab.names:
        lab.set_impair(n, "lan", loss=5, delay="200ms", rate="2mbit")
    s.log("5% loss + 200 ms delay + 2mbit on every LAN cable")
    # the delay is on the wire: a handshake t1 -> t2 crosses t1's cable and
    # t2's cable, each delayed both ways (lower bounds only: never faster)
    lan = lab.connect_ms("t1", lab.tills["t2"].ip, 7700)
    fourg = lab.connect_ms("t4", labnet.ERP_IP, labnet.ERP_PORT)
    if lan is None or fourg is None:
        raise AssertionError(f"no TCP handshake in 3 tries: LAN {lan}, 4G {fourg}")
    s.log(f"round trip t1->t2 over the LAN {lan:.0f} ms (>= 800), "
          f"t4 over 4G to the ERP {fourg:.0f} ms (>= 120)")
    if lan < 800 or fourg < 120:
        raise AssertionError(f"delay not in effect: LAN {lan} ms, 4G {fourg} ms")
    s.pause(20)
    for n in lab.names:
        lab.clear_impair(n, "lan")
    s.mark_heal()
    s.log("cleared: " + "; ".join(lab.delay_counters))
    s.pause(3)


if __name__ == "__main__":
    sys.exit(scenario.run("lan_loss", drill, tills=4, rate=5, fourg=["t4"]))
