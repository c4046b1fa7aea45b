#!/usr/bin/env python3
"""The ERP (or a proxy) answers 413 to batches of more than one sale: one refusal, then the
batch goes one sale per request; bounded requests; every sale booked once."""
import erpbad

if __name__ == "__main__":
    erpbad.main(erpbad.batch_refused("batch413"))
