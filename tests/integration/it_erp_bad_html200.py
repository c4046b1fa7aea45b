#!/usr/bin/env python3
"""A captive portal answers 200 with an HTML page: a protocol error, backoff, nothing
parked or acknowledged, status says so."""
import erpbad

if __name__ == "__main__":
    erpbad.main(erpbad.wrong_answer("html200", "protocol"))
