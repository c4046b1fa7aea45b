#!/usr/bin/env python3
"""lab_avahi_restart - avahi-daemon is restarted on every till, one after
another, mid-run (the forwarder first); replication and forwarding go on."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402



def drill(lab, s):
    fw = lab.forwarder_agreed()
    order = [fw] + [n for n in lab.names if n != fw]
    for n in order:
        s.log(f"restart avahi-daemon on {n}")
        lab.restart_avahi(n)
        lab.event(n, "avahi restart")
        s.pause(1.5)
    s.mark_heal()
    s.pause(3)


if __name__ == "__main__":
    sys.exit(scenario.run("avahi_restart", drill, tills=4, rate=5))
