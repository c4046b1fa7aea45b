#!/usr/bin/env python3
"""lab_cable_pulls - random LAN and uplink cable pulls and plugs on random
tills (sometimes several at once), then everything plugged back."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402



def drill(lab, s):
    for _ in range(8):
        n = s.rng.choice(lab.names)
        which = s.rng.choice(["lan", "uplink"])
        up = not lab.cables[n][which]
        s.log(f"{'plug' if up else 'pull'} {n} {which}")
        lab.cable(n, which, up)
        s.pause(s.rng.uniform(1.0, 3.0))
    for n in lab.names:
        for which in ("lan", "uplink"):
            if not lab.cables[n][which]:
                lab.cable(n, which, True)
    s.mark_heal()
    s.log("all plugged")
    s.pause(3)


if __name__ == "__main__":
    sys.exit(scenario.run("cable_pulls", drill, tills=4, rate=5))
