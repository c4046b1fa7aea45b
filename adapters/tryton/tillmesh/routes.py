"""The tillmesh ERP contract (docs/erp.md) served by trytond:
    GET  /<db>/tillmesh/v1/health
    POST /<db>/tillmesh/v1/sales
    PUT  /<db>/tillmesh/v1/customers/<id>
Authenticated with a bearer key of res.user.application 'tillmesh'."""
import datetime as dt
import json
import logging
from functools import wraps

from werkzeug.exceptions import abort
from werkzeug.wrappers import Response

from trytond import backend
from trytond.exceptions import UserError
from trytond.i18n import gettext
from trytond.model.exceptions import SQLConstraintError, ValidationError
from trytond.protocols.wrappers import (
    set_max_request_size, with_pool, with_transaction)
from trytond.transaction import Transaction
from trytond.wsgi import app

from .booking import (
    KEY_RE, Refusal, body_digest, canonical, check_sale, minor_to_major,
    net_unit_price, parse_json, store_time)

logger = logging.getLogger(__name__)
BASE = '/<database_name>/tillmesh/v1'
MAX_BODY = 16 * 1024 * 1024
MAX_ID = 128


def answer(status, obj, headers=None):
    return Response(json.dumps(obj, ensure_ascii=False), status,
        headers=headers, content_type='application/json')


def error(status, code, message, headers=None):
    return answer(status, {'error': code, 'message': message}, headers)


def fail(status, code, message, headers=None):
    """Answers and rolls the transaction back (abort raises)."""
    abort(error(status, code, message, headers))


def tillmesh_auth(func):
    """The contract's 401 for a missing or wrong key (Tryton's own
    user_application decorator answers 403, and 500 without a header).
    Runs the route as the key's user, in the configured company."""
    @wraps(func)
    def wrapper(request, pool, *args, **kwargs):
        UserApplication = pool.get('res.user.application')
        Configuration = pool.get('tillmesh.configuration')
        auth = request.headers.get('Authorization', '')
        kind, _, key = auth.partition(' ')
        key = key.strip()
        if kind.lower() != 'bearer' or not key or len(key) > 1024:
            return error(401, 'unauthorized',
                'no bearer token' if not auth
                else 'Authorization must be "Bearer <token>"',
                {'WWW-Authenticate': 'Bearer realm="tillmesh"'})
        application = UserApplication.check(key, 'tillmesh')
        if not application:
            return error(401, 'unauthorized',
                'unknown, unvalidated or revoked tillmesh key',
                {'WWW-Authenticate': 'Bearer realm="tillmesh"'})
        config = Configuration(1)
        ctx = {}
        if config.company:
            ctx['company'] = config.company.id
            ctx['companies'] = [config.company.id]
        transaction = Transaction()
        with transaction.set_user(application.user.id), \
                transaction.set_context(**ctx):
            return func(request, pool, config, *args, **kwargs)
    return wrapper


@app.route(BASE + '/health', methods=['GET', 'HEAD'])
@with_pool
@with_transaction()
@tillmesh_auth
def health(request, pool, config):
    problems = config.problems()
    if problems:
        return error(503, 'unavailable',
            'tillmesh configuration incomplete: ' + ', '.join(problems))
    # A read through the ORM: the database answers and the module is active.
    pool.get('sale.sale').search([], limit=1)
    return answer(200, {'status': 'ok'})


@app.route(BASE + '/sales', methods=['POST'])
@set_max_request_size(MAX_BODY)
@with_pool
@with_transaction()
@tillmesh_auth
def sales(request, pool, config):
    Idem = pool.get('tillmesh.idempotency')
    key = request.headers.get('Idempotency-Key')
    if key is None or not KEY_RE.match(key):
        return error(400, 'bad_idempotency_key',
            'Idempotency-Key must be 1 to 128 printable ASCII characters')
    try:
        doc = parse_json(request.get_data())
    except ValueError as e:
        return error(400, 'malformed_json', str(e))
    batch = doc.get('sales') if isinstance(doc, dict) else None
    if not isinstance(batch, list):
        return error(400, 'bad_batch',
            'body must be an object {"sales": [sale, ...]}')
    problems = config.problems()
    if problems:
        return error(503, 'unavailable',
            'tillmesh configuration incomplete: ' + ', '.join(problems))
    digest = body_digest(doc)
    prev = Idem.search([('key', '=', key)], limit=1)
    if prev:
        prev, = prev
        if prev.body_sha256 != digest:
            return error(422, 'idempotency_key_reused',
                'this Idempotency-Key was used with another body')
        logger.info('tillmesh: replay of %s (%d sales)', key, len(batch))
        return Response(prev.response, 200, content_type='application/json')
    # The key's row first: it opens the write transaction, and a second
    # request with the same key (a retry overtaking a slow first attempt)
    # fails on the unique key instead of booking the batch again.
    try:
        rec, = Idem.create([{'key': key, 'body_sha256': digest}])
    except (backend.DatabaseIntegrityError, UserError):
        fail(503, 'unavailable', 'this Idempotency-Key is in progress',
            {'Retry-After': '1'})
    # Logged before booking so that an operator (and the e2e test) can tell
    # a batch in progress from one answered.
    logger.info('tillmesh: booking %s till=%s epoch=%s: %d sales', key,
        request.headers.get('X-Tillmesh-Till'),
        request.headers.get('X-Tillmesh-Epoch'), len(batch))
    result = Booker(pool, config).book_batch(batch)
    body = canonical(result)
    Idem.write([rec], {'response': body})
    logger.info('tillmesh: booked %s till=%s epoch=%s accepted=%d duplicates=%d '
        'rejected=%d', key, request.headers.get('X-Tillmesh-Till'),
        request.headers.get('X-Tillmesh-Epoch'), len(result['accepted']),
        len(result['duplicates']), len(result['rejected']))
    return Response(body, 200, content_type='application/json')


@app.route(BASE + '/customers/<customer_id>', methods=['PUT'])
@set_max_request_size(1024 * 1024)
@with_pool
@with_transaction()
@tillmesh_auth
def customer(request, pool, config, customer_id):
    if not customer_id or len(customer_id) > MAX_ID:
        return error(400, 'bad_request',
            'customer id must be 1 to %d characters' % MAX_ID)
    try:
        doc = parse_json(request.get_data())
    except ValueError as e:
        return error(400, 'malformed_json', str(e))
    if not isinstance(doc, dict):
        return error(400, 'bad_request', 'the customer must be a JSON object')
    ver = request.headers.get('X-Tillmesh-Version', '').strip()
    ver = int(ver) if ver.isdigit() and len(ver) <= 40 else None
    try:
        stored = Booker(pool, config).upsert_customer(customer_id, doc, ver)
    except Refusal as e:
        fail(e.status, 'invalid_customer', str(e))
    except (UserError, ValidationError) as e:
        fail(422, 'invalid_customer', str(e))
    return answer(200, {'id': customer_id, 'stored': stored})


class Booker:
    """Books one batch inside the request's transaction."""

    def __init__(self, pool, config):
        self.pool = pool
        self.config = config
        self.products = {}
        self.currencies = {}
        self.taxes = {}

    # ---- sales ----------------------------------------------------------
    def book_batch(self, batch):
        """Books a batch's new sales; returns the three lists.

        Fast path: every sale created, quoted and confirmed in one call each,
        as a Tryton client would (one queued `process` for the batch). If
        Tryton refuses that (one sale breaks a rule), it is rolled back and
        each sale is booked alone in a savepoint, so that only the culprit
        is rejected."""
        Sale = self.pool.get('sale.sale')
        outcome, order, todo = {}, [], []
        for raw in batch:
            given = raw.get('sale_id') if isinstance(raw, dict) else None
            sent_id = given if isinstance(given, str) else None
            try:
                s = check_sale(raw)
            except Refusal as e:
                outcome[id(raw)] = ('rejected', e.status, str(e))
                order.append((sent_id, id(raw)))
                continue
            if s['sale_id'] in outcome:
                continue        # listed once, as its first occurrence
            order.append((sent_id, s['sale_id']))
            outcome[s['sale_id']] = None
            todo.append(s)
        ids = [s['sale_id'] for s in todo]
        booked = set()
        for i in range(0, len(ids), 500):
            booked.update(r.tillmesh_sale_id for r in Sale.search(
                    [('tillmesh_sale_id', 'in', ids[i:i + 500])]))
        ready = []
        for s in todo:
            if s['sale_id'] in booked:
                outcome[s['sale_id']] = ('duplicates',)
                continue
            try:
                with savepoint():
                    ready.append((s, self.values(s)))
            except Refusal as e:
                outcome[s['sale_id']] = ('rejected', e.status, str(e))
            except (UserError, ValidationError) as e:
                outcome[s['sale_id']] = ('rejected', 422, tryton_says(e))
        try:
            if ready:
                with savepoint():
                    self.create([v for _, v in ready])
            for s, _ in ready:
                outcome[s['sale_id']] = ('accepted',)
        except backend.DatabaseIntegrityError:
            self.raced()
        except (UserError, ValidationError) as e:
            self.raced_if_unique(e)
            logger.info('tillmesh: batch refused by Tryton (%s): booking its '
                '%d sales one by one', tryton_says(e), len(ready))
            for s, v in ready:
                try:
                    with savepoint():
                        self.create([v])
                    outcome[s['sale_id']] = ('accepted',)
                except backend.DatabaseIntegrityError:
                    self.raced()
                except (UserError, ValidationError) as e:
                    self.raced_if_unique(e)
                    outcome[s['sale_id']] = ('rejected', 422, tryton_says(e))
        result = {'accepted': [], 'duplicates': [], 'rejected': []}
        for sent_id, k in order:
            o = outcome[k]
            if o[0] == 'rejected':
                result['rejected'].append({'sale_id': sent_id,
                        'status': o[1], 'message': o[2]})
            else:
                result[o[0]].append(sent_id)
        return result

    def raced(self):
        # Another transaction booked one of these sales meanwhile (a second
        # forwarder for a moment): the retry finds it as a duplicate.
        fail(503, 'unavailable', 'a sale of this batch is being booked by '
            'another request', {'Retry-After': '1'})

    def raced_if_unique(self, e):
        # Tryton reports a broken SQL constraint as a SQLConstraintError
        # with the constraint's message: the unique sale_id means another
        # transaction booked the sale (PostgreSQL; SQLite serialises the
        # requests on the key's row), never a reason to reject it.
        if isinstance(e, SQLConstraintError) and \
                gettext('tillmesh.msg_sale_id_unique') in str(e):
            self.raced()

    def create(self, vlist):
        """Creates the sales and takes them to the configured state."""
        Sale = self.pool.get('sale.sale')
        sales = Sale.create(vlist)
        # A return may come in the batch of its original (after it), which
        # did not exist yet when its values were made.
        unlinked = [s for s in sales
            if s.tillmesh_refund_of and not s.tillmesh_refund_sale]
        if unlinked:
            originals = {o.tillmesh_sale_id: o for o in Sale.search([
                        ('tillmesh_sale_id', 'in',
                            [s.tillmesh_refund_of for s in unlinked])])}
            for ret in unlinked:
                if ret.tillmesh_refund_of in originals:
                    Sale.write([ret], {'tillmesh_refund_sale':
                            originals[ret.tillmesh_refund_of].id})
        # A return taken while its original's till was cut off may have
        # been booked before it ('original_unknown'): link it now.
        for ret in Sale.search([
                    ('tillmesh_refund_of', 'in',
                        [s.tillmesh_sale_id for s in sales]),
                    ('tillmesh_refund_sale', '=', None),
                    ]):
            orig, = [s for s in sales
                if s.tillmesh_sale_id == ret.tillmesh_refund_of]
            Sale.write([ret], {'tillmesh_refund_sale': orig.id})
        Sale.quote(sales)
        if self.config.sale_state in ('confirmed', 'processed'):
            Sale.confirm(sales)
        if self.config.sale_state == 'processed':
            Sale.process(sales)
        return sales

    def currency(self, code):
        if code not in self.currencies:
            Currency = self.pool.get('currency.currency')
            found = Currency.search([('code', '=', code)], limit=1)
            self.currencies[code] = found[0] if found else None
        cur = self.currencies[code]
        if cur is None:
            raise Refusal('unknown currency %s' % code)
        return cur

    def product(self, sku):
        if sku not in self.products:
            Product = self.pool.get('product.product')
            found = Product.search([
                    ('code', '=', sku),
                    ('salable', '=', True),
                    ], limit=1)
            self.products[sku] = found[0] if found else None
        p = self.products[sku]
        if p is None:
            raise Refusal('unknown SKU %s (no salable product with that '
                'code)' % sku)
        return p

    def line_taxes(self, product, rate):
        k = (product.id, rate)
        if k in self.taxes:
            return self.taxes[k]
        want = minor_to_major(rate, 4)
        taxes = [t.id for t in product.customer_taxes_used
            if t.type == 'percentage' and t.rate == want]
        if not taxes and rate:
            Tax = self.pool.get('account.tax')
            taxes = [t.id for t in Tax.search([
                        ('type', '=', 'percentage'),
                        ('rate', '=', want),
                        ('parent', '=', None),
                        ('company', '=', self.config.company.id),
                        ], limit=1)]
            if not taxes:
                raise Refusal('no customer tax of %s %% for SKU %s'
                    % (minor_to_major(rate, 2).normalize(), product.code))
        self.taxes[k] = taxes
        return taxes

    def values(self, s):
        """The sale.sale values of a checked sale. Reads only, until the
        party (which may be created) comes last."""
        pool = self.pool
        Sale = pool.get('sale.sale')
        cfg = self.config
        cur = self.currency(s['currency'])
        company = cfg.company
        if cur != company.currency:
            raise Refusal('currency %s is not the company currency %s'
                % (s['currency'], company.currency.code))
        lines = []
        for i, ln in enumerate(s['lines']):
            product = self.product(ln['sku'])
            unit = product.sale_uom
            qty = ln['qty'] / 1000
            if round(qty, unit.digits) != qty:
                raise Refusal('lines[%d]: quantity %s of %s has more digits '
                    'than its unit %s allows' % (i, qty, ln['sku'],
                        unit.symbol))
            lines.append({
                    'type': 'line',
                    'sequence': i + 1,
                    'product': product.id,
                    'description': ln['name'] or product.rec_name,
                    'quantity': qty,
                    'unit': unit.id,
                    'unit_price': net_unit_price(ln['amount'] * cur_scale(cur),
                        ln['qty'], ln['tax_rate']),
                    'taxes': [('add', self.line_taxes(product,
                                ln['tax_rate']))],
                    })
        when = store_time(s) or dt.datetime.utcnow()
        refund_sale = None
        if s['refund_of']:
            found = Sale.search([('tillmesh_sale_id', '=', s['refund_of'])],
                limit=1)
            refund_sale = found[0].id if found else None
        ref = '%s/%s' % (s['till'] or '?', s['receipt_no']
            if s['receipt_no'] is not None else '?')
        party = self.sale_party(s['customer'])
        address = party.addresses[0] if party.addresses else None
        if address is None:
            raise Refusal('party %s has no address' % party.rec_name)
        return {
                    'company': company.id,
                    'currency': cur.id,
                    'party': party.id,
                    'invoice_address': address.id,
                    'shipment_address': address.id,
                    'warehouse': cfg.warehouse.id,
                    'sale_date': local_date(when, company),
                    'reference': ref,
                    'description': 'tillmesh %s receipt %s' % (
                        s['till'] or '?', s['receipt_no']),
                    'invoice_method': cfg.invoice_method or 'manual',
                    'shipment_method': 'manual',
                    'tillmesh_sale_id': s['sale_id'],
                    'tillmesh_till': s['till'],
                    'tillmesh_receipt_no': s['receipt_no'],
                    'tillmesh_created_at': s['created_at'],
                    'tillmesh_clock_offset_ms': s['offset_ms'],
                    'tillmesh_clock_skewed': s['skewed'],
                    'tillmesh_total': minor_to_major(s['total'], cur.digits),
                    'tillmesh_refund_of': s['refund_of'],
                    'tillmesh_refund_sale': refund_sale,
                    'tillmesh_review': s['review'],
                    'lines': [('create', lines)],
                    'tillmesh_payments': [('create', [{
                                    'method': p['method'],
                                    'amount': minor_to_major(p['amount'],
                                        cur.digits),
                                    'reference': p['reference'],
                                    } for p in s['payments']])],
                    }

    # ---- parties --------------------------------------------------------
    def find_party(self, cid, id_type):
        Identifier = self.pool.get('party.identifier')
        found = Identifier.search([
                ('code', '=', cid),
                ('type', '=', 'cl_rut' if id_type == 'rut' else None),
                ], limit=1)
        return found[0].party if found else None

    def normalise_id(self, cid, id_type):
        if id_type != 'rut':
            return cid
        from stdnum.cl import rut
        code = rut.compact(cid)
        if not rut.is_valid(code):
            raise Refusal('customer id %s is not a valid RUT' % cid)
        return code

    def sale_party(self, cust):
        if cust is None:
            return self.config.walk_in_party
        cid = self.normalise_id(cust['id'], cust['id_type'])
        party = self.find_party(cid, cust['id_type'])
        if party is None:
            # The customer's PUT may come after its sales (the forwarder
            # sends customers when no sale waits): a placeholder name now,
            # the PUT fills it in.
            party = self.create_party(cid, cust['id_type'], cust['email'])
        return party

    def create_party(self, cid, id_type, email=None, name=None):
        Party = self.pool.get('party.party')
        if name is None:
            if id_type == 'rut':
                from stdnum.cl import rut
                name = 'RUT %s' % rut.format(cid)
            else:
                name = 'ID %s' % cid
        mechs = []
        if email:
            mechs.append({'type': 'email', 'value': email})
        party, = Party.create([{
                    'name': name,
                    'identifiers': [('create', [{
                                    'type': ('cl_rut' if id_type == 'rut'
                                        else None),
                                    'code': cid,
                                    }])],
                    'addresses': [('create', [{}])],
                    'contact_mechanisms': [('create', mechs)],
                    }])
        return party

    def upsert_customer(self, path_id, doc, version):
        """Returns False when the PUT is older than the stored version."""
        Party = self.pool.get('party.party')
        Mech = self.pool.get('party.contact_mechanism')
        id_type = doc.get('id_type', 'rut')
        if id_type not in ('rut', 'dni'):
            raise Refusal('id_type must be rut or dni')
        body_id = doc.get('id')
        if body_id is not None and body_id != path_id:
            raise Refusal('id in the body (%s) is not the id in the path'
                % str(body_id)[:MAX_ID])
        cid = self.normalise_id(path_id, id_type)
        for f in ('name', 'email', 'phone', 'loyalty_program',
                'loyalty_number'):
            v = doc.get(f)
            if v is not None and (not isinstance(v, str) or len(v) > 256):
                raise Refusal('%s must be a string of at most 256 characters'
                    % f)
        party = self.find_party(cid, id_type)
        if party is None:
            party = self.create_party(cid, id_type, name=doc.get('name'))
        elif (version is not None and party.tillmesh_version
                and version < int(party.tillmesh_version)):
            return False
        erased = doc.get('erased') is True
        vals = {
            'tillmesh_offers_opt_in': (doc.get('offers_opt_in') is True
                and not erased),
            'tillmesh_loyalty_program': (None if erased
                else doc.get('loyalty_program')),
            'tillmesh_loyalty_number': (None if erased
                else doc.get('loyalty_number')),
            'tillmesh_erased': erased,
            }
        if version is not None:
            vals['tillmesh_version'] = str(version)
        if erased:
            # Forgotten: the identifier stays (sales booked for it are fiscal
            # records); name and contact data go.
            vals['name'] = 'Erased customer'
        elif doc.get('name'):
            vals['name'] = doc['name']
        Party.write([party], vals)
        for kind, value in (('email', doc.get('email')),
                ('phone', doc.get('phone'))):
            mine = [m for m in party.contact_mechanisms if m.type == kind]
            if erased:
                Mech.delete(mine)
            elif value:
                if mine:
                    if mine[0].value != value:
                        Mech.write([mine[0]], {'value': value})
                else:
                    Mech.create([{'party': party.id, 'type': kind,
                                'value': value}])
        return True


def tryton_says(e):
    return 'Tryton refused the sale: %s' % (getattr(e, 'message', None) or e)


def cur_scale(cur):
    """Minor units to the currency's major unit (CLP: 1, EUR: 1/100)."""
    from decimal import Decimal
    return Decimal(1).scaleb(-cur.digits)


def local_date(when, company):
    tz = getattr(company, 'timezone', None)
    if tz:
        try:
            from zoneinfo import ZoneInfo
            return when.replace(tzinfo=dt.timezone.utc).astimezone(
                ZoneInfo(tz)).date()
        except Exception:
            pass
    return when.date()


class savepoint:
    """Books one sale atomically inside the batch's transaction: a refused
    sale leaves nothing behind and the others of the batch go on. Tryton
    has no savepoint API; the record caches of the transaction are dropped
    on rollback, since ids of rolled-back records are given out again."""

    def __enter__(self):
        t = Transaction()
        self.cursor = t.connection.cursor()
        self.cursor.execute('SAVEPOINT tillmesh_sale')
        self.saved = (
            {k: set(v) for k, v in t.create_records.items()},
            {k: set(v) for k, v in t.delete_records.items()},
            dict(t.timestamp))
        return self

    def __exit__(self, exc_type, exc, tb):
        t = Transaction()
        if exc_type is None:
            self.cursor.execute('RELEASE SAVEPOINT tillmesh_sale')
            return False
        self.cursor.execute('ROLLBACK TO SAVEPOINT tillmesh_sale')
        self.cursor.execute('RELEASE SAVEPOINT tillmesh_sale')
        t.create_records.clear()
        t.create_records.update(self.saved[0])
        t.delete_records.clear()
        t.delete_records.update(self.saved[1])
        t.timestamp.clear()
        t.timestamp.update(self.saved[2])
        t.cache.clear()
        t.counter += 1
        return False
