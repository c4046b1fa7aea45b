#!/usr/bin/env python3
"""The adapter's pure checks and arithmetic (no database, no trytond):
    python3 adapters/tryton/tillmesh/tests/test_booking.py"""
import copy
import datetime as dt
import os
import sys
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import booking  # noqa: E402
from booking import Refusal, check_sale  # noqa: E402

SALE = {
    "sale_id": "3F2C1A9E-8B7D-4C6E-9F01-23456789ABCD",
    "till": "till-1", "receipt_no": 42, "created_at": "2026-11-23T12:00:00.123Z",
    "currency": "CLP",
    "lines": [
        {"sku": "7801234567890", "name": "Pan amasado", "qty": 2000, "unit_price": 700,
         "discount": 0, "tax_rate": 1900},
        {"sku": "QUESO-GR", "name": "Queso gauda", "qty": 250, "unit_price": 9990,
         "discount": 100, "tax_rate": 1900}],
    "total": 3798,
    "payments": [{"method": "card", "amount": 3000, "reference": "AUTH 123456"},
                 {"method": "cash", "amount": 1000}],
    "customer": {"id": "123456785", "id_type": "rut", "email": "ana@example.cl"},
    "clock": {"offset_ms": -600012, "skewed": True},
    "some_future_field": {"ignored": True},
}


class CheckSale(unittest.TestCase):
    def test_contract_example(self):
        s = check_sale(SALE)
        self.assertEqual(s['sale_id'], SALE['sale_id'].lower())
        self.assertEqual([ln['amount'] for ln in s['lines']], [1400, 2398])
        self.assertEqual(s['created_at'], dt.datetime(2026, 11, 23, 12, 0, 0, 123000))
        self.assertEqual(booking.store_time(s), dt.datetime(2026, 11, 23, 12, 10, 0, 135000))

    def test_return_discount_reduces_refund(self):
        # record/sale.c: on a return the original's discount is not paid back
        r = {"sale_id": "9a1d7c44-0e2b-4f7a-8c55-1b2c3d4e5f60", "currency": "CLP",
             "lines": [{"sku": "QUESO-GR", "name": "", "qty": -250, "unit_price": 9990,
                        "discount": 100, "tax_rate": 1900}],
             "total": -2398, "payments": [{"method": "cash", "amount": -2398}],
             "refund_of": "3F2C1A9E-8B7D-4C6E-9F01-23456789ABCD", "review": "over_refund"}
        s = check_sale(r)
        self.assertEqual(s['lines'][0]['amount'], -2398)
        self.assertEqual(s['refund_of'], "3f2c1a9e-8b7d-4c6e-9f01-23456789abcd")
        self.assertEqual(s['review'], 'over_refund')
        self.assertIsNone(booking.store_time(s))

    def test_refusals(self):
        def bad(mutate, words):
            s = copy.deepcopy(SALE)
            mutate(s)
            with self.assertRaises(Refusal) as cm:
                check_sale(s)
            self.assertIn(words, str(cm.exception))
        bad(lambda s: s.update(sale_id="nope"), "UUID")
        bad(lambda s: s.update(total=3799), "not the sum")
        bad(lambda s: s["lines"][0].update(qty=True), "integer")
        bad(lambda s: s["lines"][0].update(qty=0), "must not be 0")
        bad(lambda s: s.update(lines=[]), "non-empty")
        bad(lambda s: s["payments"][0].update(method="bitcoin"), "method")
        bad(lambda s: s.update(created_at="yesterday"), "RFC 3339")
        bad(lambda s: s.update(created_at="2026-11-23T12:00:00"), "time zone")
        bad(lambda s: s["customer"].update(id_type="passport"), "rut or dni")
        bad(lambda s: s.update(refund_of="x"), "refund_of")
        bad(lambda s: s["lines"][0].update(unit_price=10 ** 16), "out of range")
        with self.assertRaises(Refusal):
            check_sale([1, 2])

    def test_unknown_review_and_bad_clock_ignored(self):
        s = copy.deepcopy(SALE)
        s.update(review="later_value", clock={"offset_ms": "x", "skewed": "yes"})
        c = check_sale(s)
        self.assertIsNone(c['review'])
        self.assertEqual((c['offset_ms'], c['skewed']), (None, False))


class Arithmetic(unittest.TestCase):
    def test_round_half_away(self):
        self.assertEqual(booking.round_half_away(24975, 10), 2498)
        self.assertEqual(booking.round_half_away(-24975, 10), -2498)
        self.assertEqual(booking.round_half_away(24974, 10), 2497)

    def test_net_price_within_one_unit(self):
        for amount, qty in ((1400, 2000), (2398, 250), (1990, 1000), (-2398, -250), (7, 3000)):
            p = booking.net_unit_price(amount, qty, 1900)
            q = Decimal(qty) / 1000
            net = (q * p).quantize(Decimal(1))
            gross = net + (net * Decimal('0.19')).quantize(Decimal(1))
            self.assertLessEqual(abs(gross - amount), 1, (amount, qty, p))
            self.assertGreaterEqual(p, 0)

    def test_digest_ignores_key_order_and_spaces(self):
        a = booking.parse_json(b'{"sales": [{"a": 1, "b": 2}]}')
        b = booking.parse_json(b'{ "sales":[{"b":2,"a":1}] }')
        self.assertEqual(booking.body_digest(a), booking.body_digest(b))
        self.assertNotEqual(booking.body_digest(a), booking.body_digest({"sales": []}))

    def test_parse_json_refuses(self):
        for raw in (b'\xff', b'{"a":1,"a":2}', b'{', b'[' * 100000):
            with self.assertRaises(ValueError):
                booking.parse_json(raw)

    def test_keys(self):
        self.assertTrue(booking.KEY_RE.match("tm1-" + "a" * 40))
        self.assertFalse(booking.KEY_RE.match("a b"))
        self.assertFalse(booking.KEY_RE.match("k" * 129))


if __name__ == '__main__':
    unittest.main()
