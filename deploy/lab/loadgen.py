"""loadgen - rings up realistic sales on every till through its local API
and records each sale the till acknowledged with 201 (the ground truth).

Sales: 1-6 lines from a small catalogue (some by weight, some discounted),
paid cash (rounded up: change given), card, or mixed card + cash; about one
in four names a customer (valid RUT + e-mail); about one in twelve is a
(partial) return of an earlier sale of the same till (negative line,
refund_of, paid back exactly). Money in minor units (CLP), qty in thousandths.

    gen = LoadGen(lab, rate=5.0)    # per till, sales/s
    gen.start(); ...; gen.stop()
    gen.truth  -> [{"sale_id", "till", "t", "total", "kind"}]

`lab` is anything with .names, .alive(n) and .api(n, method, path, body)
(labnet.StoreLab, or labnet.LabView for a lab run by the supervisor).
Standard library only.
"""
import json
import random
import threading
import time
import uuid

CATALOGUE = [  # sku, name, unit price (CLP, tax incl.), sold by weight
    ("7801234567890", "Pan amasado", 1990, True),
    ("7802000012345", "Leche entera 1L", 1150, False),
    ("7803111122223", "Queso gauda", 9990, True),
    ("7804444455556", "Palta hass", 4990, True),
    ("7805555566667", "Cafe molido 250g", 4590, False),
    ("7806666677778", "Bebida 1.5L", 1790, False),
    ("7807777788889", "Detergente 3L", 8990, False),
    ("7808888899990", "Huevos x12", 3490, False),
    ("7809999900001", "Tomate", 1690, True),
    ("7800000011112", "Chocolate 100g", 1290, False),
]
NAMES = ["ana", "benja", "camila", "diego", "eli", "fena", "gabo", "ho"]


def rut_dv(body):
    s, m = 0, 2
    for d in reversed(str(body)):
        s += int(d) * m
        m = 2 if m == 7 else m + 1
    r = 11 - s % 11
    return {11: "0", 10: "K"}.get(r, str(r))


def line_amount(qty, price, discount=0):
    p = qty * price
    a = (abs(p) + 500) // 1000
    return (a if p >= 0 else -a) - discount


class LoadGen:
    def __init__(self, lab, rate=5.0, names=None, seed=None, timeout=5.0):
        self.lab = lab
        self.rate = rate
        self.names = list(names or lab.names)
        self.rng = random.Random(seed)
        self.timeout = timeout
        self.truth = []
        self.errors = {}          # status or exception name -> count
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []
        self.mine = {n: [] for n in self.names}   # acked sales per till, for returns

    # ---- sales -----------------------------------------------------------
    def make_sale(self, till, rng):
        mine = self.mine[till]
        if mine and rng.random() < 0.08:
            orig = rng.choice(mine)
            ln = rng.choice(orig["lines"])
            qty = -max(1, ln["qty"] // rng.choice((1, 2)))
            total = line_amount(qty, ln["unit_price"])
            return {"sale_id": str(uuid.uuid4()), "currency": "CLP",
                    "lines": [{"sku": ln["sku"], "name": ln["name"], "qty": qty,
                               "unit_price": ln["unit_price"], "tax_rate": 1900}],
                    "total": total, "refund_of": orig["sale_id"],
                    "payments": [{"method": orig["payments"][0]["method"], "amount": total}]}, \
                "return"
        lines = []
        for _ in range(rng.randint(1, 6)):
            sku, name, price, weight = rng.choice(CATALOGUE)
            qty = rng.randint(150, 2500) if weight else 1000 * rng.randint(1, 4)
            gross = line_amount(qty, price)
            disc = gross // 10 if rng.random() < 0.15 else 0
            lines.append({"sku": sku, "name": name, "qty": qty, "unit_price": price,
                          "discount": disc, "tax_rate": 1900})
        total = sum(line_amount(l["qty"], l["unit_price"], l["discount"]) for l in lines)
        r = rng.random()
        if r < 0.4:
            kind = "cash"
            pays = [{"method": "cash", "amount": -(-total // 1000) * 1000 or total}]
        elif r < 0.8:
            kind = "card"
            pays = [{"method": "card", "amount": total,
                     "reference": f"AUTH {rng.randint(100000, 999999)}"}]
        else:
            kind = "mixed"
            card = max(1, total // 2)
            pays = [{"method": "card", "amount": card, "reference": "AUTH 424242"},
                    {"method": "cash", "amount": total - card}]
            if pays[1]["amount"] == 0:
                pays.pop()
        sale = {"sale_id": str(uuid.uuid4()), "currency": "CLP", "lines": lines,
                "total": total, "payments": pays}
        if rng.random() < 0.25:
            body = rng.randint(5_000_000, 25_000_000)
            sale["customer"] = {"id": f"{body}-{rut_dv(body)}", "id_type": "rut",
                                "email": f"{rng.choice(NAMES)}{body % 1000}@example.cl"}
        return sale, kind

    # ---- running -----------------------------------------------------------
    def _err(self, what):
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def _run(self, till, seed):
        rng = random.Random(seed)
        period = 1.0 / self.rate
        nxt = time.monotonic() + rng.random() * period
        while not self.stop_ev.is_set():
            delay = nxt - time.monotonic()
            if delay > 0 and self.stop_ev.wait(delay):
                break
            nxt += period
            if time.monotonic() - nxt > 2:      # fell behind (till was down): do not burst
                nxt = time.monotonic() + period
            if not self.lab.alive(till):
                self._err("till_down")
                continue
            sale, kind = self.make_sale(till, rng)
            try:
                st, js = self.lab.api(till, "POST", "/v1/sales", sale, timeout=self.timeout)
            except OSError as e:
                self._err(type(e).__name__)
                continue
            if st == 201:
                rec = {"sale_id": sale["sale_id"], "till": till, "t": time.time(),
                       "total": sale["total"], "kind": kind}
                with self.lock:
                    self.truth.append(rec)
                if kind != "return":
                    self.mine[till].append(sale)
            else:
                self._err(f"http_{st}:{(js or {}).get('error', {}).get('code', '?') if isinstance((js or {}).get('error'), dict) else (js or {}).get('error')}")

    def start(self):
        for n in self.names:
            th = threading.Thread(target=self._run, args=(n, self.rng.random()), daemon=True,
                                  name=f"loadgen-{n}")
            th.start()
            self.threads.append(th)
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(30)
        return self

    def write(self, path):
        with open(path, "w") as f:
            json.dump({"truth": self.truth, "errors": self.errors}, f)

    def summary(self):
        kinds = {}
        for r in self.truth:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        return f"acknowledged={len(self.truth)} {kinds} errors={self.errors}"
