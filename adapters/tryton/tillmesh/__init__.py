# tillmesh adapter for Tryton 6.0: serves the tillmesh ERP contract (docs/erp.md)
# inside trytond. See docs/tryton.md.
from trytond.pool import Pool

from . import configuration, party, sale, res
from . import routes  # noqa: F401  (registers the HTTP routes on trytond.wsgi.app)

__all__ = ['register', 'routes']


def register():
    Pool.register(
        configuration.Configuration,
        sale.Sale,
        sale.Payment,
        sale.IdempotencyKey,
        party.Party,
        res.UserApplication,
        module='tillmesh', type_='model')
