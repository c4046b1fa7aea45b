"""Pure checks and arithmetic of the adapter: no database, unit-tested alone
(tests/test_booking.py)."""
import datetime as dt
import hashlib
import json
import re
from decimal import Decimal, ROUND_HALF_UP

UUID_RE = re.compile(
    r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}'
    r'-[0-9a-fA-F]{12}$')
KEY_RE = re.compile(r'^[\x21-\x7e]{1,128}$')
MAX_LINES = 1000
MAX_PAYMENTS = 100
MAX_TEXT = 256
METHODS = ('cash', 'card', 'other')
REVIEWS = ('over_refund', 'original_unknown')
# Integers a sale may carry: far above any till amount, far below what a
# Numeric or a float would mangle.
MAX_INT = 10 ** 15


class Refusal(Exception):
    """The sale's content is refused: answered per sale as `rejected`."""

    def __init__(self, message, status=422):
        super().__init__(message)
        self.status = status


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':'),
        ensure_ascii=False)


def body_digest(doc):
    """Same JSON value, same digest: key order and spaces do not matter."""
    return hashlib.sha256(canonical(doc).encode('utf-8')).hexdigest()


def no_dup_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError('key %r given twice' % k)
        d[k] = v
    return d


def parse_json(raw):
    """Returns the document or raises ValueError with a sentence."""
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ValueError('body is not UTF-8 at byte %d' % e.start)
    try:
        return json.loads(text, object_pairs_hook=no_dup_keys)
    except json.JSONDecodeError as e:
        raise ValueError('%s at line %d column %d' % (e.msg, e.lineno, e.colno))
    except RecursionError:
        raise ValueError('JSON nested too deeply')


def _int(v, what, lo=-MAX_INT, hi=MAX_INT):
    if not isinstance(v, int) or isinstance(v, bool):
        raise Refusal('%s must be an integer' % what)
    if not lo <= v <= hi:
        raise Refusal('%s is out of range (%d..%d)' % (what, lo, hi))
    return v


def _text(v, what, required=True, limit=MAX_TEXT):
    if v is None and not required:
        return None
    if not isinstance(v, str) or (required and not v):
        raise Refusal('%s must be a non-empty string' % what)
    if len(v) > limit:
        raise Refusal('%s is longer than %d characters' % (what, limit))
    return v


def round_half_away(num, den):
    """round_half_away_from_zero(num / den) for integers (docs/api.md)."""
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


def line_amount(line):
    """The line's amount in minor units, tax included, as the till computes
    it (record/sale.c): on a return (qty < 0) the discount given on the
    original reduces the amount paid back."""
    gross = round_half_away(abs(line['qty']) * line['unit_price'], 1000)
    net = gross - line['discount']
    return net if line['qty'] > 0 else -net


def parse_time(v, what):
    if not isinstance(v, str) or len(v) > 64:
        raise Refusal('%s must be an RFC 3339 time' % what)
    s = v.strip()
    if s.endswith(('Z', 'z')):
        s = s[:-1] + '+00:00'
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        raise Refusal('%s is not an RFC 3339 time: %r' % (what, v[:40]))
    if t.tzinfo is None:
        raise Refusal('%s has no time zone' % what)
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def check_sale(sale):
    """Checks a sale's shape and arithmetic; returns a normalised copy.

    The till checked all this already; the ERP is the authority on what it
    books, and a malformed sale must be refused alone, not fail the batch."""
    if not isinstance(sale, dict):
        raise Refusal('a sale must be a JSON object')
    sid = sale.get('sale_id')
    if not isinstance(sid, str) or not UUID_RE.match(sid):
        raise Refusal('sale_id is missing or not a UUID (8-4-4-4-12 hex)')
    out = {'sale_id': sid.lower()}
    out['till'] = _text(sale.get('till'), 'till', required=False, limit=64)
    rn = sale.get('receipt_no')
    out['receipt_no'] = None if rn is None else _int(rn, 'receipt_no', 0)
    ca = sale.get('created_at')
    out['created_at'] = None if ca is None else parse_time(ca, 'created_at')
    out['currency'] = _text(sale.get('currency'), 'currency', limit=3)
    lines = sale.get('lines')
    if not isinstance(lines, list) or not lines:
        raise Refusal('lines must be a non-empty list')
    if len(lines) > MAX_LINES:
        raise Refusal('more than %d lines' % MAX_LINES)
    out['lines'] = []
    for i, ln in enumerate(lines):
        w = 'lines[%d]' % i
        if not isinstance(ln, dict):
            raise Refusal('%s must be an object' % w)
        n = {
            'sku': _text(ln.get('sku'), w + '.sku', limit=128),
            'name': _text(ln.get('name'), w + '.name', required=False),
            'qty': _int(ln.get('qty'), w + '.qty', -10 ** 9, 10 ** 9),
            'unit_price': _int(ln.get('unit_price'), w + '.unit_price', 0),
            'discount': _int(ln.get('discount', 0), w + '.discount', 0),
            'tax_rate': _int(ln.get('tax_rate', 0), w + '.tax_rate', 0,
                10000),
            }
        if n['qty'] == 0:
            raise Refusal('%s.qty must not be 0' % w)
        n['amount'] = line_amount(n)
        out['lines'].append(n)
    out['total'] = _int(sale.get('total'), 'total')
    added = sum(n['amount'] for n in out['lines'])
    if added != out['total']:
        raise Refusal('total %d is not the sum of the line amounts (%d)'
            % (out['total'], added))
    pays = sale.get('payments', [])
    if not isinstance(pays, list) or len(pays) > MAX_PAYMENTS:
        raise Refusal('payments must be a list of at most %d'
            % MAX_PAYMENTS)
    out['payments'] = []
    for i, p in enumerate(pays):
        w = 'payments[%d]' % i
        if not isinstance(p, dict):
            raise Refusal('%s must be an object' % w)
        if p.get('method') not in METHODS:
            raise Refusal('%s.method must be one of %s'
                % (w, ', '.join(METHODS)))
        out['payments'].append({
                'method': p['method'],
                'amount': _int(p.get('amount'), w + '.amount'),
                'reference': _text(p.get('reference'), w + '.reference',
                    required=False),
                })
    cust = sale.get('customer')
    if cust is not None:
        if not isinstance(cust, dict):
            raise Refusal('customer must be an object')
        id_type = cust.get('id_type', 'rut')
        if id_type not in ('rut', 'dni'):
            raise Refusal('customer.id_type must be rut or dni')
        out['customer'] = {
            'id': _text(cust.get('id'), 'customer.id', limit=128),
            'id_type': id_type,
            'email': _text(cust.get('email'), 'customer.email',
                required=False),
            }
    else:
        out['customer'] = None
    ref = sale.get('refund_of')
    if ref is not None and (not isinstance(ref, str)
            or not UUID_RE.match(ref)):
        raise Refusal('refund_of must be a sale_id (UUID)')
    out['refund_of'] = ref.lower() if ref else None
    rv = sale.get('review')
    # An unknown review value from a later version is still worth a look.
    out['review'] = rv if rv in REVIEWS else None
    clock = sale.get('clock')
    out['offset_ms'], out['skewed'] = None, False
    if isinstance(clock, dict):
        off = clock.get('offset_ms')
        if isinstance(off, int) and not isinstance(off, bool) \
                and abs(off) <= MAX_INT:
            out['offset_ms'] = off
        out['skewed'] = clock.get('skewed') is True
    return out


def store_time(s):
    """The store's time of the sale: the till's created_at, corrected by its
    offset when the till knew its clock was off (docs/erp.md, Clocks)."""
    t = s['created_at']
    if t is not None and s['skewed'] and s['offset_ms'] is not None:
        t = t - dt.timedelta(milliseconds=s['offset_ms'])
    return t


def net_unit_price(amount, qty, tax_rate, digits=4):
    """Tryton prices exclude tax; the till's amounts include it. The line's
    net amount is amount / (1 + rate), spread over the quantity and
    rounded to the price's digits. Tryton then rounds quantity × price and
    the tax again, so its total may differ from the till's by about one
    minor unit per line (the till's total is kept on the sale)."""
    quantity = Decimal(qty) / 1000
    net = Decimal(amount) / (1 + Decimal(tax_rate) / 10000)
    exp = Decimal(1).scaleb(-digits)
    return (net / quantity).quantize(exp, rounding=ROUND_HALF_UP)


def minor_to_major(amount, digits):
    return Decimal(amount).scaleb(-digits)
