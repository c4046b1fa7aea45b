"""Tryton's own module checks (depends, fields, views, access) and the
adapter's booking inside a real trytond transaction on SQLite. Run with
run_module_tests.py (it makes the module importable and needs Debian's
trytond); ctest: tryton_module."""
import os
import sys
import unittest
import uuid
from unittest import mock

from trytond.exceptions import UserError
from trytond.pool import Pool
from trytond.tests import test_tryton
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'scripts'))
import tillmesh_fixture  # noqa: E402


def sale(sku='7801', qty=1000, price=1990, customer=None, refund_of=None):
    amount = qty * price // 1000
    s = {'sale_id': str(uuid.uuid4()), 'till': 't1', 'receipt_no': 1,
        'currency': 'CLP',
        'lines': [{'sku': sku, 'name': 'x', 'qty': qty, 'unit_price': price,
                'discount': 0, 'tax_rate': 1900}],
        'total': amount, 'payments': [{'method': 'cash', 'amount': amount}]}
    if customer:
        s['customer'] = {'id': customer, 'id_type': 'rut'}
    if refund_of:
        s['refund_of'] = refund_of
    return s


class TillmeshTestCase(test_tryton.ModuleTestCase):
    'Test tillmesh module'
    module = 'tillmesh'

    def booker(self):
        from trytond.modules.tillmesh.routes import Booker
        pool = Pool()
        tillmesh_fixture.build(pool, tillmesh_fixture.DEFAULT_PRODUCTS,
            'confirmed')
        config = pool.get('tillmesh.configuration')(1)
        return Booker(pool, config), config

    @with_transaction()
    def test_batch_lists_and_duplicates(self):
        booker, config = self.booker()
        Sale = Pool().get('sale.sale')
        with Transaction().set_context(company=config.company.id):
            a, b = sale(customer='123456785'), sale('NOPE')
            r = booker.book_batch([a, b, a])
            self.assertEqual(r['accepted'], [a['sale_id']])
            self.assertEqual([x['sale_id'] for x in r['rejected']],
                [b['sale_id']])
            self.assertIn('unknown SKU NOPE', r['rejected'][0]['message'])
            r = booker.book_batch([a])
            self.assertEqual(r, {'accepted': [], 'rejected': [],
                    'duplicates': [a['sale_id']]})
            booked, = Sale.search([('tillmesh_sale_id', '=', a['sale_id'])])
            self.assertEqual(booked.state, 'confirmed')
            self.assertEqual(booked.party.tax_identifier.code, '123456785')

    @with_transaction()
    def test_tryton_refusal_rejects_only_the_culprit(self):
        "A sale Tryton refuses in the batch's fast path is rejected alone"
        booker, config = self.booker()
        Sale = Pool().get('sale.sale')
        good1, bad, good2 = sale(), sale('7802', 2000, 990), sale()
        ret = sale(qty=-1000, refund_of=good1['sale_id'])
        quote = Sale.quote

        def refuse(cls, sales):
            if any(s.tillmesh_sale_id == bad['sale_id'] for s in sales):
                raise UserError('the period is closed')
            return quote(sales)
        with Transaction().set_context(company=config.company.id), \
                mock.patch.object(Sale, 'quote', classmethod(refuse)):
            r = booker.book_batch([good1, bad, good2, ret])
        self.assertEqual(r['accepted'],
            [good1['sale_id'], good2['sale_id'], ret['sale_id']])
        rej, = r['rejected']
        self.assertEqual(rej['sale_id'], bad['sale_id'])
        self.assertIn('the period is closed', rej['message'])
        # Nothing of the refused sale is left, not even a draft.
        self.assertFalse(Sale.search([('tillmesh_sale_id', '=', bad['sale_id'])]))
        self.assertEqual(Sale.search_count([('tillmesh_sale_id', '!=', None)]), 3)
        r1, = Sale.search([('tillmesh_sale_id', '=', ret['sale_id'])])
        self.assertEqual(r1.tillmesh_refund_sale.tillmesh_sale_id,
            good1['sale_id'])

    @with_transaction()
    def test_unique_sale_id_is_a_race_not_a_rejection(self):
        "A sale booked by another transaction meanwhile: 503, not 422"
        from werkzeug.exceptions import HTTPException
        booker, config = self.booker()
        Sale = Pool().get('sale.sale')
        a = sale()
        with Transaction().set_context(company=config.company.id):
            self.assertEqual(booker.book_batch([a])['accepted'], [a['sale_id']])
            search = Sale.search

            def blind(cls, domain, *args, **kw):
                # The other transaction's booking is not visible yet.
                if domain and domain[0][:2] == ('tillmesh_sale_id', 'in'):
                    return []
                return search(domain, *args, **kw)
            with mock.patch.object(Sale, 'search', classmethod(blind)), \
                    self.assertRaises(HTTPException) as cm:
                booker.book_batch([a, sale()])
        self.assertEqual(cm.exception.response.status_code, 503)


def suite():
    return unittest.TestLoader().loadTestsFromTestCase(TillmeshTestCase)
