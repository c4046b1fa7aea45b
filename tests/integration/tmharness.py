"""tmharness - start real tillmeshd processes on loopback and talk to them.

Used by the integration tests (it_*.py). Standard library only, so it runs
on a fresh Debian with nothing but python3.

A StoreLab makes a temporary directory with one CurveZMQ keypair per till
(made by `tillmesh keygen`), a trusted keys file, and one config per till,
then starts, kills (-9) and restarts tillmeshd processes. Every wait is a
bounded poll of a condition (wait_until), never a bare sleep; a timeout
fails the test with what was being waited for and the last state seen.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

BIN = os.environ.get("TM_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "asan"))
TILLMESHD = os.path.join(BIN, "tillmeshd")
TILLMESH = os.path.join(BIN, "tillmesh")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns a truthy value; fails after timeout s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except (OSError, urllib.error.URLError, ConnectionError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class ApiError(Exception):
    pass


class Till:
    def __init__(self, lab, name, store_id):
        self.lab = lab
        self.name = name
        self.store_id = store_id
        self.dir = os.path.join(lab.root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.mesh_port = free_port()
        self.api_port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "tillmeshd.log")
        self.peers = {}
        self.extra = ""
        self.erp_url = None      # [erp] url, usually a Cable in front of the stub
        self.priority = 100
        self.mdns = False        # loopback tests use static peers only

    @property
    def endpoint(self):
        return f"tcp://127.0.0.1:{self.mesh_port}"

    def write_config(self):
        peers = "".join(f"{n} = {ep}\n" for n, ep in self.peers.items())
        cfg = f"""# written by tmharness
[node]
name = {self.name}
store_id = {self.store_id}
data_dir = {self.dir}/data
api_listen = 127.0.0.1:{self.api_port}
log_level = {self.lab.log_level}
priority = {self.priority}
{self.extra}
[mesh]
listen = {self.endpoint}
secret_key = {self.lab.root}/keys/{self.name}.key
public_key = {self.lab.root}/keys/{self.name}.pub
trusted_keys = {self.lab.trusted_for(self)}
heartbeat_ms = {self.lab.heartbeat_ms}
peer_timeout_ms = {self.lab.heartbeat_ms * 4}

[discovery]
mdns = {"yes" if self.mdns else "no"}

[peers]
{peers}"""
        if self.erp_url:
            cfg += f"""
[erp]
url = {self.erp_url}
token_file = {self.lab.token_file}
# the stub ERP speaks plain http on loopback
allow_insecure_http = yes
probe_interval_ms = 100
probe_timeout_ms = 500
rise = 2
fall = 2
request_timeout_ms = 3000
backoff_min_ms = 100
backoff_max_ms = 1000
"""
        self.config = os.path.join(self.dir, "tillmeshd.conf")
        with open(self.config, "w") as f:
            f.write(cfg)

    def start(self, wait=True):
        self.write_config()
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([TILLMESHD, "-c", self.config], stdout=logf, stderr=logf)
        logf.close()
        if wait:
            wait_until(lambda: self.alive_api(), 30, f"{self.name} API to answer")
        return self

    def alive_api(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            return self.get("/v1/status")[0] == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError(f"{self.name} did not stop on SIGTERM within 20 s")
            return rc
        return self.proc.returncode if self.proc else None

    def tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    # ---- HTTP ----
    def request(self, method, path, body=None, raw=None, headers=None):
        url = f"http://127.0.0.1:{self.api_port}{path}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                payload = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            payload = e.read()
            status = e.code
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)

    def status(self):
        st, js = self.get("/v1/status")
        if st != 200:
            raise ApiError(f"{self.name} status {st}: {js}")
        return js

    def digest(self):
        return self.status()["state"]["digest"]

    def post_sale(self, sale=None, expect=201):
        sale = sale or make_sale()
        st, js = self.request("POST", "/v1/sales", sale)
        if expect is not None and st != expect:
            raise ApiError(f"POST /v1/sales on {self.name}: {st} {js}")
        return js

    def has_sale(self, sale_id):
        return self.get(f"/v1/sales/{sale_id}")[0] == 200


class Cable:
    """A till's uplink on loopback: a TCP relay from a port of its own to the
    ERP. pull() is the technician pulling the cable: the listener closes and
    every open connection is reset; plug() puts it back on the same port."""

    def __init__(self, target_port):
        import threading
        self.target = target_port
        self.port = free_port()
        self.lock = threading.Lock()
        self.conns = []
        self.listener = None
        self.plug()

    def plug(self):
        import threading
        with self.lock:
            if self.listener:
                return
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", self.port))
            ls.listen(64)
            self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        import threading
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                if self.listener is not ls:
                    c.close(); u.close()
                    return
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pull(self):
        with self.lock:
            ls, self.listener = self.listener, None
            conns, self.conns = self.conns, []
        if ls:
            ls.close()
        for x in conns:
            try:
                x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                x.close()
            except OSError:
                pass

    def close(self):
        self.pull()


def make_sale(total=1990, sale_id=None):
    return {
        "sale_id": sale_id or str(uuid.uuid4()),
        "currency": "CLP",
        "lines": [{"sku": "7801", "name": "Pan", "qty": 1000, "unit_price": total, "tax_rate": 1900}],
        "total": total,
        "payments": [{"method": "cash", "amount": total}],
    }


class StoreLab:
    def __init__(self, names, store_id="store-it", heartbeat_ms=100, log_level="info"):
        self.root = tempfile.mkdtemp(prefix="tm-it-")
        self.heartbeat_ms = heartbeat_ms
        self.log_level = log_level
        os.makedirs(os.path.join(self.root, "keys"))
        self.trusted_lines = {}
        self.tills = {}
        self.trusted_override = {}
        for n in names:
            self.add(n, store_id)

    def keygen(self, name):
        prefix = os.path.join(self.root, "keys", name)
        out = subprocess.run([TILLMESH, "keygen", "--out", prefix], check=True,
                             capture_output=True, text=True).stdout
        with open(prefix + ".pub") as f:
            return f.read().strip()

    def add(self, name, store_id="store-it", trusted=True):
        pub = self.keygen(name)
        if trusted:
            self.trusted_lines[name] = pub
        t = Till(self, name, store_id)
        self.tills[name] = t
        return t

    def trusted_for(self, till):
        """Every till trusts the store's keys; an outsider trusts the store
        too (so that it tries), but the store does not trust it."""
        lines = dict(self.trusted_lines)
        lines[till.name] = self.keygen_pub(till.name)
        path = os.path.join(till.dir, "trusted_keys")
        with open(path, "w") as f:
            f.write("# NAME PUBLIC-KEY\n")
            for n, k in sorted(lines.items()):
                f.write(f"{n} {k}\n")
        return path

    def keygen_pub(self, name):
        with open(os.path.join(self.root, "keys", name + ".pub")) as f:
            return f.read().strip()

    def connect(self, a, b):
        """Static peer entry a -> b (b learns a from a's heartbeats)."""
        self.tills[a].peers[b] = self.tills[b].endpoint

    def full_mesh(self):
        names = list(self.tills)
        for a in names:
            for b in names:
                if a != b:
                    self.connect(a, b)

    def attach_erp(self, stub, token):
        """Gives every till an uplink: its own Cable to the stub ERP."""
        self.token_file = os.path.join(self.root, "erp.token")
        with open(self.token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(self.token_file, 0o600)
        self.cables = {}
        for n, t in self.tills.items():
            c = Cable(stub.port)
            self.cables[n] = c
            t.erp_url = f"http://127.0.0.1:{c.port}"

    def forwarder(self, name):
        """The forwarder as `name` sees it (its name, or None)."""
        return self.tills[name].status()["forwarder"]["name"]

    def __getitem__(self, name):
        return self.tills[name]

    def start_all(self):
        for t in self.tills.values():
            t.start(wait=False)
        for t in self.tills.values():
            wait_until(t.alive_api, 30, f"{t.name} API")

    def converged(self, names=None):
        names = names or list(self.tills)
        ds = {n: self.tills[n].digest() for n in names}
        return len(set(ds.values())) == 1 and ds

    def cleanup(self, ok):
        for c in getattr(self, "cables", {}).values():
            c.close()
        for t in self.tills.values():
            if t.proc and t.proc.poll() is None:
                t.proc.kill()
                t.proc.wait(10)
        if ok and not os.environ.get("TM_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print(f"lab left in {self.root} for inspection", file=sys.stderr)
            for t in self.tills.values():
                print(f"---- {t.name} log tail ----\n{t.tail()}", file=sys.stderr)


def run(test_fn, names, **kw):
    """Runs one test function against a fresh lab; prints PASS/FAIL."""
    lab = StoreLab(names, **kw)
    ok = False
    try:
        test_fn(lab)
        ok = True
    finally:
        lab.cleanup(ok)
    print(f"PASS {test_fn.__name__}")
