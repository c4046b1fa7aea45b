"""ownedlab - a hostile till (tests/tm_forge.c) next to real tillmeshd.

The hostile till holds a trusted key of the store (a till with a bug, one
restored from an old backup, or a compromised machine), so the mesh admits
it; tm_forge lets a test say exactly what it sends."""
import json
import os
import subprocess
import uuid

import tmharness as h

TM_FORGE = os.environ.get("TM_FORGE", os.path.join(h.BIN, "tm_forge"))


def sale_json(sale_id, till, receipt_no, total, created_at="2026-11-23T12:00:00Z"):
    return {
        "sale_id": sale_id, "till": till, "receipt_no": receipt_no, "created_at": created_at,
        "currency": "CLP",
        "lines": [{"sku": "7801", "name": "Pan", "qty": 1000, "unit_price": total,
                   "tax_rate": 1900}],
        "total": total, "payments": [{"method": "cash", "amount": total}],
    }


class Forge:
    """Runs tm_forge as till `name` of the lab (its key is trusted)."""

    def __init__(self, lab, name, node_id=None):
        if not os.path.exists(TM_FORGE):
            raise h.Skip(f"{TM_FORGE} not built")
        self.lab = lab
        self.name = name
        # By default the origin its key names (ops signed by the key verify,
        # tm_sign.h); a test may make it claim another till's node id.
        self.node_id = node_id or subprocess.run(
            [TM_FORGE, "--whoami", f"{lab.root}/keys/{name}.key"], check=True,
            capture_output=True, text=True).stdout.strip()
        self.till = lab.tills[name]  # made by lab.add: keys and trusted file
        # Where the other tills' configs expect this till, if they name it.
        self.port = self.till.mesh_port

    def run(self, to, ops=(), heartbeat=None, seconds=2.0, wait=True):
        spec = {
            "secret_key": f"{self.lab.root}/keys/{self.name}.key",
            "public_key": f"{self.lab.root}/keys/{self.name}.pub",
            "trusted_keys": self.lab.trusted_for(self.till),
            "listen": f"tcp://127.0.0.1:{self.port}",
            "store_id": self.till.store_id, "name": self.name, "sender": self.node_id,
            "to": [{"name": t.name, "endpoint": t.endpoint} for t in to],
            "seconds": seconds, "ops": list(ops),
        }
        if heartbeat:
            spec["heartbeat"] = heartbeat
        path = os.path.join(self.lab.root, f"forge-{uuid.uuid4().hex[:8]}.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        p = subprocess.Popen([TM_FORGE, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        if wait:
            out, _ = p.communicate(timeout=seconds + 30)
            if p.returncode != 0:
                raise AssertionError(f"tm_forge failed ({p.returncode}): {out}")
        return p


def node_id(till):
    return till.status()["node"]["id"]


def ops_held(till):
    return till.status()["state"]["ops"]
