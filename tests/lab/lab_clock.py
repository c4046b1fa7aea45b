#!/usr/bin/env python3
"""lab_clock - tills with wrong wall clocks under load (issue 11): t2 runs
10 minutes behind and t3 a day ahead from the start (libfaketime), and t4's
clock is stepped back one hour mid-run (NTP jumping back when the uplink
returns). Every acknowledged sale must reach every till and the ERP once,
and the digests must end equal: clocks never gate replication."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "lab"))
import scenario  # noqa: E402


def drill(lab, s):
    s.pause(10)                          # selling with t2 behind and t3 ahead
    s.log("t4: clock stepped back 1 h")
    lab.set_clock("t4", "-1h")
    s.mark_heal()
    s.pause(10)                          # and selling on after the step


if __name__ == "__main__":
    sys.exit(scenario.run("clock", drill, tills=4, rate=5,
                          clocks={"t2": "-10m", "t3": "+1d"}))
