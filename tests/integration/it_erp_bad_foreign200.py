#!/usr/bin/env python3
"""The ERP's 200 names a sale that was not in the batch: a protocol error; that sale is
not acknowledged (it is posted afterwards and must still reach the ERP)."""
import erpbad

if __name__ == "__main__":
    erpbad.main(erpbad.wrong_answer("foreign200", "not in the batch"))
