#!/usr/bin/env python3
"""lab_split - the store is split in two halves (LAN partition), each with
its own uplink to the ERP, both selling; then healed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402



def drill(lab, s):
    a, b = lab.names[: len(lab.names) // 2], lab.names[len(lab.names) // 2:]
    s.log(f"partition {a} / {b}")
    lab.partition([a, b])
    s.wait(lambda: lab.forwarder_agreed(a) in a and lab.forwarder_agreed(b) in b, 30,
           "a forwarder of its own in each half")
    s.log(f"forwarders: {lab.forwarder_agreed(a)} / {lab.forwarder_agreed(b)}")
    s.pause(8)
    lab.heal()
    s.mark_heal()
    s.log("healed")
    s.wait(lambda: lab.forwarder_agreed(), 30, "one forwarder after heal")
    s.log(f"forwarder {lab.forwarder_agreed()}")
    s.pause(3)


if __name__ == "__main__":
    sys.exit(scenario.run("split", drill, tills=4, rate=5))
