#!/usr/bin/env python3
"""lab_lan_loss - 5 % random loss (iptables statistic, both directions) and
a 2 Mbit/s rate limit (tbf) on every till's LAN cable while selling; one
till has its own slow lossy 4G uplink (1 Mbit/s, 3 % loss). The 200 ms
delay of the issue is NOT applied: the userspace delay relay is unwritten."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402



def drill(lab, s):
    for n in lab.names:
        lab.set_impair(n, "lan", loss=5, rate="2mbit")
    s.log("5% loss + 2mbit on every LAN port")
    s.pause(15)
    for n in lab.names:
        lab.clear_impair(n, "lan")
    s.mark_heal()
    s.log("cleared")
    s.pause(3)


if __name__ == "__main__":
    sys.exit(scenario.run("lan_loss", drill, tills=4, rate=5, fourg=["t4"]))
