#!/usr/bin/env python3
"""lab_cutoff - one till (not the forwarder) is cut off from the LAN and
keeps selling on its own; its uplink is pulled too so it cannot reach the ERP;
then it is healed and everything converges."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402



def drill(lab, s):
    fw = lab.forwarder_agreed()
    v = s.rng.choice([n for n in lab.names if n != fw])
    s.log(f"cut off {v}: pull lan and uplink")
    lab.cable(v, "lan", False)
    lab.cable(v, "uplink", False)
    s.pause(10)
    lab.cable(v, "lan", True)
    lab.cable(v, "uplink", True)
    s.mark_heal()
    s.log(f"healed {v}")
    s.pause(3)


if __name__ == "__main__":
    sys.exit(scenario.run("cutoff", drill, tills=4, rate=5))
