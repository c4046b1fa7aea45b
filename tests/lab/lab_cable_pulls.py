#!/usr/bin/env python3
"""lab_cable_pulls - for 60 s under load, random LAN and uplink cable pulls
and plugs on random tills every 1-4 s (so sometimes several out at once),
then everything plugged back. TM_LAB_DRILL_S=1800 makes it a 30-minute soak."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402

DRILL_S = float(os.environ.get("TM_LAB_DRILL_S", "60"))


def drill(lab, s):
    end = time.monotonic() + DRILL_S
    moves = 0
    while time.monotonic() < end:
        n = s.rng.choice(lab.names)
        which = s.rng.choice(["lan", "uplink"])
        up = not lab.cables[n][which]
        s.log(f"{'plug' if up else 'pull'} {n} {which}")
        lab.cable(n, which, up)
        moves += 1
        s.pause(min(s.rng.uniform(1.0, 4.0), max(0.0, end - time.monotonic())))
    for n in lab.names:
        for which in ("lan", "uplink"):
            if not lab.cables[n][which]:
                lab.cable(n, which, True)
    s.mark_heal()
    s.log(f"all plugged after {moves} pulls/plugs in {DRILL_S:.0f} s")
    s.pause(3)


if __name__ == "__main__":
    sys.exit(scenario.run("cable_pulls", drill, tills=4, rate=5))
