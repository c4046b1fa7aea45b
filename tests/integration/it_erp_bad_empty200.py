#!/usr/bin/env python3
"""The ERP answers 200 {}: a protocol error (status erp.error), backoff, the same batch
again under the same key; nothing parked, nothing acknowledged."""
import erpbad

if __name__ == "__main__":
    erpbad.main(erpbad.wrong_answer("empty200", "protocol"))
