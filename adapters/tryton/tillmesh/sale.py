from trytond.model import ModelSQL, ModelView, Unique, fields
from trytond.pool import PoolMeta

REVIEWS = [
    (None, ''),
    ('over_refund', 'Over Refund'),
    ('original_unknown', 'Original Unknown'),
    ]


class Sale(metaclass=PoolMeta):
    __name__ = 'sale.sale'
    # The till's UUID: unique in the database, so that a sale is booked once
    # even by two requests racing (the constraint, not only the search).
    tillmesh_sale_id = fields.Char('Sale ID (tillmesh)', readonly=True,
        select=True)
    tillmesh_till = fields.Char('Till (tillmesh)', readonly=True)
    tillmesh_receipt_no = fields.BigInteger('Receipt (tillmesh)',
        readonly=True)
    tillmesh_created_at = fields.DateTime('Sold At (till clock)',
        readonly=True)
    tillmesh_clock_offset_ms = fields.BigInteger('Till Clock Offset (ms)',
        readonly=True)
    tillmesh_clock_skewed = fields.Boolean('Till Clock Skewed',
        readonly=True)
    tillmesh_total = fields.Numeric('Total (till)', readonly=True,
        digits=(16, 4),
        help="The total the customer paid, tax included, as the till "
        "computed it.")
    tillmesh_refund_of = fields.Char('Refund Of (tillmesh)', readonly=True)
    tillmesh_refund_sale = fields.Many2One('sale.sale', 'Refund Of Sale',
        readonly=True)
    tillmesh_review = fields.Selection(REVIEWS, 'Review (tillmesh)',
        readonly=True)
    tillmesh_payments = fields.One2Many('tillmesh.sale.payment', 'sale',
        'Payments (tillmesh)', readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('tillmesh_sale_id_uniq', Unique(t, t.tillmesh_sale_id),
                'tillmesh.msg_sale_id_unique'),
            ]

    @classmethod
    def copy(cls, sales, default=None):
        default = dict(default or {})
        for f in ('tillmesh_sale_id', 'tillmesh_till', 'tillmesh_receipt_no',
                'tillmesh_created_at', 'tillmesh_clock_offset_ms',
                'tillmesh_clock_skewed', 'tillmesh_total',
                'tillmesh_refund_of', 'tillmesh_refund_sale',
                'tillmesh_review', 'tillmesh_payments'):
            default.setdefault(f, None)
        return super().copy(sales, default=default)


class Payment(ModelSQL, ModelView):
    'tillmesh Sale Payment'
    __name__ = 'tillmesh.sale.payment'
    sale = fields.Many2One('sale.sale', 'Sale', required=True,
        ondelete='CASCADE', select=True)
    method = fields.Selection([
            ('cash', 'Cash'),
            ('card', 'Card'),
            ('other', 'Other'),
            ], 'Method', required=True)
    amount = fields.Numeric('Amount', digits=(16, 4), required=True)
    reference = fields.Char('Reference')


class IdempotencyKey(ModelSQL):
    'tillmesh Idempotency Key'
    __name__ = 'tillmesh.idempotency'
    key = fields.Char('Key', required=True)
    body_sha256 = fields.Char('Body SHA-256', required=True)
    response = fields.Text('Response')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('key_uniq', Unique(t, t.key),
                'tillmesh.msg_key_unique'),
            ]
