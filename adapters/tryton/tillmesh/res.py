from trytond.pool import PoolMeta


class UserApplication(metaclass=PoolMeta):
    __name__ = 'res.user.application'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        # Keys for this application authenticate the tills of a store.
        cls.application.selection.append(('tillmesh', 'tillmesh'))
