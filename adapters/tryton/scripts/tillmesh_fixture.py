#!/usr/bin/python3
"""Minimum fixtures for a store booking tillmesh sales in a fresh Tryton 6.0
database (the e2e test, the bench, and a demo): CLP, a company, a minimal
chart with a 19 % IVA, a fiscal year, a warehouse, a walk-in party, products,
the tillmesh configuration, and a validated tillmesh key for user admin.

    tillmesh_fixture.py -c trytond.conf -d DB [--products FILE.json]
                        [--sale-state confirmed]

Prints {"key": ...} on stdout. Products: a JSON list of
{"code", "name", "price", "uom": "u"|"kg"}; a default set otherwise."""
import argparse
import datetime as dt
import json
import sys
from decimal import Decimal

DEFAULT_PRODUCTS = [
    {"code": "7801", "name": "Pan", "price": 1990, "uom": "u"},
    {"code": "7802", "name": "Leche", "price": 990, "uom": "u"},
    {"code": "7803", "name": "Cafe", "price": 4590, "uom": "u"},
    {"code": "QUESO-GR", "name": "Queso gauda", "price": 9990, "uom": "kg"},
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-c', '--config', required=True)
    ap.add_argument('-d', '--database', required=True)
    ap.add_argument('--products')
    ap.add_argument('--sale-state', default='confirmed',
        choices=['quotation', 'confirmed', 'processed'])
    a = ap.parse_args()
    from trytond.config import config
    config.update_etc(a.config)
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    Pool.start()
    pool = Pool(a.database)
    with Transaction().start(a.database, 0, readonly=True):
        pool.init()
    products = DEFAULT_PRODUCTS
    if a.products:
        with open(a.products) as f:
            products = json.load(f)
    with Transaction().start(a.database, 0, context={}) as t:
        key = build(pool, products, a.sale_state)
        t.commit()
    print(json.dumps({"key": key}))


def build(pool, products, sale_state):
    from trytond.transaction import Transaction
    get = pool.get
    Currency, Party, Company, User = (get('currency.currency'),
        get('party.party'), get('company.company'), get('res.user'))
    clp, = Currency.create([{'name': 'Peso chileno', 'code': 'CLP',
                'symbol': '$', 'digits': 0, 'rounding': Decimal(1)}])
    cparty, = Party.create([{'name': 'Tienda Demo SpA',
                'addresses': [('create', [{}])]}])
    # No timezone: Debian's trytond offers none without pytz; sale dates are
    # then UTC dates (docs/tryton.md).
    company, = Company.create([{'party': cparty.id, 'currency': clp.id}])
    admin, = User.search([('login', '=', 'admin')])
    User.write([admin], {'companies': [('add', [company.id])],
            'company': company.id})
    with Transaction().set_context(company=company.id,
            companies=[company.id]):
        return build_company(pool, company, clp, products, sale_state,
            admin)


def build_company(pool, company, clp, products, sale_state, admin):
    get = pool.get
    Type, Account = get('account.account.type'), get('account.account')
    c = company.id

    def typ(name, statement, **kw):
        t, = Type.create([dict(name=name, statement=statement, company=c,
                    **kw)])
        return t
    t_rev = typ('Revenue', 'income', revenue=True)
    t_exp = typ('Expense', 'income', expense=True)
    t_rec = typ('Receivable', 'balance', receivable=True)
    t_pay = typ('Payable', 'balance', payable=True)
    t_tax = typ('Tax', 'balance')

    def acc(code, name, t, **kw):
        a, = Account.create([dict(code=code, name=name, type=t.id,
                    company=c, **kw)])
        return a
    revenue = acc('4100', 'Ventas', t_rev)
    expense = acc('5100', 'Costo de ventas', t_exp)
    receivable = acc('1120', 'Clientes', t_rec, party_required=True,
        reconcile=True)
    payable = acc('2110', 'Proveedores', t_pay, party_required=True,
        reconcile=True)
    iva = acc('2150', 'IVA debito fiscal', t_tax)
    AConfig = get('account.configuration')
    AConfig.write([AConfig(1)], {
            'default_account_receivable': receivable.id,
            'default_account_payable': payable.id})
    Tax = get('account.tax')
    tax, = Tax.create([{'name': 'IVA 19%', 'description': 'IVA 19%',
                'type': 'percentage', 'rate': Decimal('0.19'), 'company': c,
                'invoice_account': iva.id, 'credit_note_account': iva.id}])
    # A fiscal year for the sale dates (invoices need it when invoicing
    # on order; quotation and confirmation do not).
    FY, Seq, SeqType = (get('account.fiscalyear'), get('ir.sequence'),
        get('ir.sequence.type'))
    today = dt.date.today()
    move_type, = SeqType.search([('name', '=', 'Account Move')], limit=1) \
        or SeqType.search([], limit=1)
    seq, = Seq.create([{'name': 'Movimientos', 'sequence_type': move_type.id,
                'company': c}])
    fyvals = {'name': str(today.year), 'company': c,
        'start_date': dt.date(today.year - 1, 1, 1),
        'end_date': dt.date(today.year + 1, 12, 31),
        'post_move_sequence': seq.id}
    if 'invoice_sequences' in FY._fields:
        # account_invoice: the four invoice sequences of the year.
        Strict = get('ir.sequence.strict')
        inv_type, = SeqType.search([('name', '=', 'Invoice')], limit=1)
        inv, = Strict.create([{'name': 'Facturas', 'company': c,
                    'sequence_type': inv_type.id}])
        fyvals['invoice_sequences'] = [('create', [{
                        'company': c,
                        'out_invoice_sequence': inv.id,
                        'out_credit_note_sequence': inv.id,
                        'in_invoice_sequence': inv.id,
                        'in_credit_note_sequence': inv.id}])]
    fy, = FY.create([fyvals])
    FY.create_period([fy])
    Category, Uom = get('product.category'), get('product.uom')
    cat, = Category.create([{'name': 'Abarrotes', 'accounting': True,
                'account_revenue': revenue.id,
                'account_expense': expense.id,
                'customer_taxes': [('add', [tax.id])]}])
    Template = get('product.template')
    uoms = {u: Uom.search([('symbol', '=', u)], limit=1)[0]
        for u in ('u', 'kg')}
    # Tills weigh to the gram (qty in thousandths); Tryton's kg has 2 digits.
    Uom.write([uoms['kg']], {'rounding': 0.001, 'digits': 3})
    for p in products:
        u = uoms[p.get('uom', 'u')]
        net = (Decimal(p['price']) / Decimal('1.19')).quantize(
            Decimal('0.0001'))
        Template.create([{'name': p['name'], 'type': 'goods',
                    'default_uom': u.id, 'sale_uom': u.id, 'salable': True,
                    'list_price': net, 'account_category': cat.id,
                    'code': p['code'],
                    'products': [('create', [{}])]}])
    Party = get('party.party')
    walk_in, = Party.create([{'name': 'Cliente sin RUT',
                'addresses': [('create', [{}])]}])
    Location = get('stock.location')
    wh, = Location.search([('type', '=', 'warehouse')], limit=1)
    Config = get('tillmesh.configuration')
    Config.write([Config(1)], {'company': c, 'warehouse': wh.id,
            'walk_in_party': walk_in.id, 'sale_state': sale_state})
    App = get('res.user.application')
    app, = App.create([{'user': admin.id, 'application': 'tillmesh'}])
    App.validate_([app])
    return app.key


if __name__ == '__main__':
    sys.exit(main())
