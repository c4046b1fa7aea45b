#!/usr/bin/env python3
"""lab_kill9 - kill -9 random tills, the forwarder among them, and start
them again, while every till rings up sales."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402



def drill(lab, s):
    for rnd in range(3):
        fw = lab.forwarder_agreed() or s.rng.choice(lab.names)
        victims = {fw} if rnd == 0 else {s.rng.choice(lab.names)}
        if rnd == 2:
            victims.add(fw)
        for v in sorted(victims):
            s.log(f"kill -9 {v}{' (forwarder)' if v == fw else ''}")
            lab.kill9(v)
        s.pause(3)
        for v in sorted(victims):
            lab.start_till(v)
            s.log(f"started {v}")
        s.mark_heal()
        s.wait(lambda: lab.forwarder_agreed(), 40, "a forwarder after restart")
        s.pause(2)


if __name__ == "__main__":
    sys.exit(scenario.run("kill9", drill, tills=4, rate=5))
