#!/usr/bin/env python3
"""A 302 on /sales (a login proxy, a moved URL) is a configuration error shown in status,
with backoff; no sale is refused or parked for it."""
import erpbad

if __name__ == "__main__":
    erpbad.main(erpbad.wrong_answer("redirect302", "302"))
