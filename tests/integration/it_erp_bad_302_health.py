#!/usr/bin/env python3
"""A 302 on /health as well (a captive portal catching everything): the
uplink is down, status says why (erp.error names the redirect), nothing is
sent or parked; everything flows once the portal is gone."""
import erpbad

if __name__ == "__main__":
    erpbad.main(erpbad.health_redirect)
