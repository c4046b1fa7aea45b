#!/usr/bin/env python3
"""lab_forwarder_uplink - pull the forwarder's uplink mid-run: another till
takes over forwarding; plug it back; nothing lost, nothing booked twice."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402


def drill(lab, s):
    fw = lab.forwarder_agreed()
    s.log(f"pull uplink of forwarder {fw}")
    lab.cable(fw, "uplink", False)
    new = s.wait(lambda: (lab.forwarder_agreed() or fw) != fw and lab.forwarder_agreed(), 40,
                 "another forwarder")
    s.log(f"new forwarder {new}")
    s.pause(5)
    lab.cable(fw, "uplink", True)
    s.mark_heal()
    s.log("plugged back")
    s.pause(3)


if __name__ == "__main__":
    sys.exit(scenario.run("forwarder_uplink", drill, tills=4, rate=5))
