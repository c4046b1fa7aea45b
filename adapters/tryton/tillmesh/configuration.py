from trytond.model import ModelSingleton, ModelSQL, ModelView, fields

SALE_STATES = [
    ('quotation', 'Quotation'),
    ('confirmed', 'Confirmed'),
    ('processed', 'Processed'),
    ]


class Configuration(ModelSingleton, ModelSQL, ModelView):
    'tillmesh Configuration'
    __name__ = 'tillmesh.configuration'
    company = fields.Many2One('company.company', 'Company',
        help="The company the store's sales are booked for.")
    warehouse = fields.Many2One('stock.location', 'Warehouse',
        domain=[('type', '=', 'warehouse')])
    walk_in_party = fields.Many2One('party.party', 'Walk-in Party',
        help="The party of sales without a customer.")
    sale_state = fields.Selection(SALE_STATES, 'Sale State',
        help="How far each booked sale goes in Tryton's workflow.")
    invoice_method = fields.Selection([
            ('manual', 'Manual'),
            ('order', 'On Order Processed'),
            ], 'Invoice Method')

    @staticmethod
    def default_sale_state():
        return 'confirmed'

    @staticmethod
    def default_invoice_method():
        return 'manual'

    def problems(self):
        """What keeps the adapter from booking (empty when it can)."""
        out = []
        if not self.company:
            out.append('no company')
        if not self.warehouse:
            out.append('no warehouse')
        if not self.walk_in_party:
            out.append('no walk-in party')
        elif not self.walk_in_party.addresses:
            out.append('the walk-in party has no address')
        return out
