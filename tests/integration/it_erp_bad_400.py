#!/usr/bin/env python3
"""The ERP answers 400 to any request carrying one poisoned sale: the batch is split, the
good sales are booked once, only the poisoned one is parked; bounded requests."""
import erpbad

if __name__ == "__main__":
    erpbad.main(erpbad.batch_refused("batch400", poisoned=True))
