from trytond.model import fields
from trytond.pool import PoolMeta


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'
    tillmesh_offers_opt_in = fields.Boolean('Offers Opt-in (tillmesh)',
        readonly=True)
    tillmesh_loyalty_program = fields.Char('Loyalty Program (tillmesh)',
        readonly=True)
    tillmesh_loyalty_number = fields.Char('Loyalty Number (tillmesh)',
        readonly=True)
    # The store's hybrid logical clock stamp of the last PUT applied, as
    # digits (it may exceed a signed 64-bit integer).
    tillmesh_version = fields.Char('Version (tillmesh)', readonly=True)
    tillmesh_erased = fields.Boolean('Erased (tillmesh)', readonly=True,
        help="The customer asked the store to be forgotten.")
