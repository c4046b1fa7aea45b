"""trytonlab - a real trytond (Debian 12 packages) on a fresh SQLite database
with the tillmesh module, for the e2e test and the bench. Standard library
only: trytond runs under the system python (/usr/bin/python3), the caller may
be any python3.

    t = TrytonLab(root)       # writes trytond.conf, makes the module findable
    t.create_db()             # trytond-admin --all, -u tillmesh, fixtures
    t.start(); t.health()     # trytond on a free loopback port
    rpc = t.rpc()             # Tryton's own JSON-RPC, logged in as admin
    t.kill9(); t.start()
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ADAPTER = os.path.dirname(HERE)
MODULE = os.path.join(ADAPTER, 'tillmesh')
FIXTURE = os.path.join(ADAPTER, 'scripts', 'tillmesh_fixture.py')
SYS_PY = os.environ.get('TRYTON_PYTHON', '/usr/bin/python3')
ADMIN_PW = 'admin-pw-tillmesh'


class Unavailable(Exception):
    """Tryton cannot run here (packages missing and not installable)."""


def ensure_packages(repo):
    """Installs the Debian packages when root; Unavailable otherwise."""
    probe = [SYS_PY, '-c', 'import trytond, trytond.modules.sale, stdnum']
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return
    script = os.path.join(repo, 'scripts', 'deps-tryton.sh')
    r = subprocess.run(['sh', script], capture_output=True, text=True)
    if r.returncode != 0 or subprocess.run(probe, capture_output=True).returncode:
        raise Unavailable('Tryton 6.0 not installed and scripts/deps-tryton.sh '
                          'failed: ' + (r.stderr.strip()[-400:] or 'probe failed'))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class TrytonLab:
    def __init__(self, root, db='tillmesh'):
        self.root = root
        self.db = db
        self.port = free_port()
        self.proc = None
        self.key = None
        self.dbdir = os.path.join(root, 'db')
        os.makedirs(self.dbdir, exist_ok=True)
        self.conf = os.path.join(root, 'trytond.conf')
        with open(self.conf, 'w') as f:
            f.write(f"""[database]
uri = sqlite://
path = {self.dbdir}
[web]
listen = 127.0.0.1:{self.port}
[session]
# the tests log in many times in a few seconds
max_attempt = 1000
""")
        self.passfile = os.path.join(root, 'admin.pass')
        with open(self.passfile, 'w') as f:
            f.write(ADMIN_PW + '\n')
        # trytond finds modules in trytond/modules or by the entry point group
        # trytond.modules: a dist-info on PYTHONPATH points at this checkout.
        self.site = os.path.join(root, 'site')
        mods = os.path.join(self.site, 'trytond', 'modules')
        os.makedirs(mods, exist_ok=True)
        os.symlink(MODULE, os.path.join(mods, 'tillmesh'))
        di = os.path.join(self.site, 'trytond_tillmesh-6.0.0.dist-info')
        os.makedirs(di, exist_ok=True)
        with open(os.path.join(di, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: trytond_tillmesh\nVersion: 6.0.0\n')
        with open(os.path.join(di, 'entry_points.txt'), 'w') as f:
            f.write('[trytond.modules]\ntillmesh = trytond.modules.tillmesh\n')
        self.log_path = os.path.join(root, 'trytond.log')
        self.env = dict(os.environ, PYTHONPATH=self.site, TRYTONPASSFILE=self.passfile,
                        PYTHONDONTWRITEBYTECODE='1')
        self.env.pop('PYTHONHOME', None)

    @property
    def base(self):
        return f'http://127.0.0.1:{self.port}/{self.db}/tillmesh/v1'

    def _run(self, args, what):
        t0 = time.monotonic()
        r = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise AssertionError(f'{what} failed ({r.returncode}):\n{r.stdout[-2000:]}\n'
                                 f'{r.stderr[-4000:]}')
        return r, time.monotonic() - t0

    def create_db(self, sale_state='confirmed', products=None):
        """Returns {'init': s, 'activate': s, 'fixture': s}."""
        open(os.path.join(self.dbdir, self.db + '.sqlite'), 'w').close()
        admin = ['/usr/bin/trytond-admin', '-c', self.conf, '-d', self.db]
        times = {}
        _, times['init'] = self._run(admin + ['--all', '--email', 'admin@example.com'],
                                     'trytond-admin --all')
        _, times['activate'] = self._run(admin + ['-u', 'tillmesh', '--activate-dependencies'],
                                         'trytond-admin -u tillmesh')
        args = [SYS_PY, FIXTURE, '-c', self.conf, '-d', self.db, '--sale-state', sale_state]
        if products:
            pf = os.path.join(self.root, 'products.json')
            with open(pf, 'w') as f:
                json.dump(products, f)
            args += ['--products', pf]
        r, times['fixture'] = self._run(args, 'fixture')
        self.key = json.loads(r.stdout.strip().splitlines()[-1])['key']
        return times

    def start(self, timeout=60):
        logf = open(self.log_path, 'ab')
        # -vv: INFO, where the adapter logs each batch it books
        self.proc = subprocess.Popen(['/usr/bin/trytond', '-vv', '-c', self.conf, '-d', self.db],
                                     env=self.env, stdout=logf, stderr=logf)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f'trytond exited with {self.proc.returncode}:\n{self.tail()}')
            try:
                if self.health() == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f'trytond did not answer /health within {timeout}s:\n{self.tail()}')

    def health(self):
        st, _ = self.request('GET', '/health')
        return st

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def tail(self, n=40):
        try:
            with open(self.log_path, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return '(no log)'

    # ---- the adapter's routes (the contract) ----
    def request(self, method, path, body=None, headers=None, token=None, timeout=30):
        h = {'Authorization': f'Bearer {token or self.key}'}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h['Content-Type'] = 'application/json'
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            payload, status = e.read(), e.code
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode(errors='replace')

    def post_sales(self, sales, key, **kw):
        return self.request('POST', '/sales', {'sales': sales},
                            headers={'Idempotency-Key': key}, **kw)

    def rpc(self):
        return JsonRpc(f'http://127.0.0.1:{self.port}/{self.db}/', 'admin', ADMIN_PW)


class JsonRpc:
    """Tryton's own client protocol (what the desktop client speaks)."""

    def __init__(self, url, login, password):
        self.url = url
        self.n = 0
        uid, session = self.call('common.db.login', [login, {'password': password}, 'en'],
                                 auth=False)
        tok = base64.b64encode(f'{login}:{uid}:{session}'.encode()).decode()
        self.auth = f'Session {tok}'

    def call(self, method, params, auth=True):
        self.n += 1
        h = {'Content-Type': 'application/json'}
        if auth:
            h['Authorization'] = self.auth
        body = json.dumps({'id': self.n, 'method': method, 'params': params},
                          default=_enc).encode()
        req = urllib.request.Request(self.url, data=body, headers=h, method='POST')
        with urllib.request.urlopen(req, timeout=120) as r:
            js = json.loads(r.read(), object_hook=_dec)
        if js.get('error'):
            raise AssertionError(f'JSON-RPC {method}: {js["error"]}')
        return js['result']

    def model(self, model, method, *args, context=None):
        return self.call(f'model.{model}.{method}', list(args) + [context or {}])

    def search_read(self, model, domain, fields, context=None, limit=None):
        return self.call(f'model.{model}.search_read',
                         [domain, 0, limit, None, fields, context or {}])


def _dec(o):
    from decimal import Decimal
    import datetime as dt
    c = o.get('__class__')
    if c == 'Decimal':
        return Decimal(o['decimal'])
    if c == 'date':
        return dt.date(o['year'], o['month'], o['day'])
    if c == 'datetime':
        return dt.datetime(o['year'], o['month'], o['day'], o['hour'], o['minute'],
                           o['second'], o.get('microsecond', 0))
    return o


def _enc(o):
    from decimal import Decimal
    import datetime as dt
    if isinstance(o, Decimal):
        return {'__class__': 'Decimal', 'decimal': str(o)}
    if isinstance(o, dt.datetime):
        return {'__class__': 'datetime', 'year': o.year, 'month': o.month, 'day': o.day,
                'hour': o.hour, 'minute': o.minute, 'second': o.second,
                'microsecond': o.microsecond}
    if isinstance(o, dt.date):
        return {'__class__': 'date', 'year': o.year, 'month': o.month, 'day': o.day}
    raise TypeError(repr(o))
