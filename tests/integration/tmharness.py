"""tmharness - start real tillmeshd processes on loopback and talk to them.

Used by the integration tests (it_*.py). Standard library only, so it runs
on a fresh Debian with nothing but python3.

A StoreLab makes a temporary directory with one CurveZMQ keypair per till
(made by `tillmesh keygen`), a trusted keys file, and one config per till,
then starts, kills (-9) and restarts tillmeshd processes. Every wait is a
bounded poll of a condition (wait_until), never a bare sleep; a timeout
fails the test with what was being waited for and the last state seen.

A till can run with a wrong wall clock (libfaketime, Debian package
`libfaketime`): Till(clock="-600s" | "+1d" | "-10m" | "@2000-01-01 00:00:00"),
or lab.add(name, clock=...), and till.set_clock(spec) steps it while it runs.
The till's monotonic clock stays real (its timers keep working). How to see
what a till believes: till.wall_clock() (the HTTP Date header its API sends).
"""
import email.utils
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

import fakeclock
from fakeclock import clock_offset_s, write_stamp

BIN = os.environ.get("TM_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "asan"))
TILLMESHD = os.path.join(BIN, "tillmeshd")
TILLMESH = os.path.join(BIN, "tillmesh")


class Skip(Exception):
    """The test cannot run here; run() prints SKIP and exits 77."""


_PORTS_GIVEN = set()
_PORT_LOCKS = []


def free_port():
    """A loopback TCP port no other test of this machine is handed meanwhile.

    Ports come from below the kernel's ephemeral range (32768-60999), so an
    outgoing connection of another process cannot take one between this
    check and the daemon's bind (bind(("", 0)) hands out ephemeral ports,
    and it handed the same one twice in one test: it_clock_restart once saw
    its mesh port taken by its own API). Each port is reserved for the life
    of this process by a lock file, so tests run side by side (ctest -j2)
    never pick the same one.
    """
    import fcntl
    import random

    lockdir = os.path.join(tempfile.gettempdir(), "tm-test-ports")
    os.makedirs(lockdir, exist_ok=True)
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(20000, 32000)
        if port in _PORTS_GIVEN:
            continue
        fd = os.open(os.path.join(lockdir, str(port)), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            os.close(fd)
            continue
        _PORTS_GIVEN.add(port)
        _PORT_LOCKS.append(fd)  # released when this process exits
        return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


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
    def __init__(self, lab, name, store_id, clock=None):
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
        self.erp_extra = ""      # more [erp] lines
        self.erp_url = None      # [erp] url, usually a Cable in front of the stub
        self.priority = 100
        self.heartbeat_ms = None  # None: the lab's
        self.mdns = False        # loopback tests use static peers only
        # None: the real clock, no libfaketime. Otherwise a spec for
        # clock_offset_s; the offset is fixed when the till starts.
        self.clock = clock
        self.clock_offset_s = 0
        self.stamp_file = os.path.join(self.dir, "faketime.stamp")

    @property
    def endpoint(self):
        return f"tcp://127.0.0.1:{self.mesh_port}"

    def write_config(self):
        peers = "".join(f"{n} = {ep}\n" for n, ep in self.peers.items())
        hb = self.heartbeat_ms or self.lab.heartbeat_ms
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
heartbeat_ms = {hb}
peer_timeout_ms = {hb * 4}

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
{self.erp_extra}"""
        self.config = os.path.join(self.dir, "tillmeshd.conf")
        with open(self.config, "w") as f:
            f.write(cfg)

    def start(self, wait=True):
        self.write_config()
        env = None
        if self.clock is not None:
            self.clock_offset_s = clock_offset_s(self.clock)
            write_stamp(self.stamp_file, self.clock_offset_s)
            try:
                env = fakeclock.env(self.stamp_file)
            except fakeclock.FaketimeMissing as e:
                raise Skip(str(e)) from None
        else:
            self.clock_offset_s = 0
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([TILLMESHD, "-c", self.config], stdout=logf, stderr=logf,
                                     env=env)
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

    # ---- clock ----
    def wall_clock(self):
        """The till's wall clock (epoch s, 1 s resolution): the Date header
        of its API's answer, which libmicrohttpd stamps with time()."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/v1/status")
        with urllib.request.urlopen(req, timeout=10) as r:
            date = r.headers.get("Date")
            r.read()
        if not date:
            raise AssertionError(f"{self.name}: API answer without a Date header")
        return email.utils.parsedate_to_datetime(date).timestamp()

    def clock_ok(self, slack=2.5):
        """True when the till's wall clock shows real time + its offset."""
        return abs(self.wall_clock() - (time.time() + self.clock_offset_s)) <= slack

    def set_clock(self, spec, timeout=10):
        """Steps the running till's wall clock (as an NTP step or an admin's
        `date -s` would) and waits until the till shows it (libfaketime
        re-reads the file within a second). Only for a till started with a
        clock (else it has no libfaketime); on a stopped till it applies at
        its next start."""
        if self.clock is None:
            raise AssertionError(f"{self.name} was started without clock=: "
                                 "give it clock='+0' to step it later")
        self.clock = spec
        self.clock_offset_s = clock_offset_s(spec)
        write_stamp(self.stamp_file, self.clock_offset_s)
        if not self.proc or self.proc.poll() is not None:
            return      # a stopped till: start() writes the file again anyway
        wait_until(self.clock_ok, timeout,
                   f"{self.name}'s wall clock to show real time {self.clock_offset_s:+d} s")

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
    every open connection is reset; plug() puts it back on the same port.
    silence() is the line dying outside the store: connections are still
    taken, but nothing gets through either way (no reset, no answer)."""

    def __init__(self, target_port):
        import threading
        self.target = target_port
        self.port = free_port()
        self.lock = threading.Lock()
        self.conns = []
        self.listener = None
        self.silent = False
        self.plug()

    def silence(self):
        self.silent = True

    def plug(self):
        import threading
        self.silent = False
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
                if not self.silent:
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
    def __init__(self, names, store_id="store-it", heartbeat_ms=100, log_level="info",
                 clocks=None):
        self.root = tempfile.mkdtemp(prefix="tm-it-")
        self.heartbeat_ms = heartbeat_ms
        self.log_level = log_level
        os.makedirs(os.path.join(self.root, "keys"))
        self.trusted_lines = {}
        self.tills = {}
        self.trusted_override = {}
        clocks = clocks or {}
        for n in names:
            self.add(n, store_id, clock=clocks.get(n))

    def keygen(self, name):
        prefix = os.path.join(self.root, "keys", name)
        subprocess.run([TILLMESH, "keygen", "--out", prefix], check=True,
                       capture_output=True, text=True)
        return self.keygen_pub(name)

    def add(self, name, store_id="store-it", trusted=True, clock=None):
        pub = self.keygen(name)
        if trusted:
            self.trusted_lines[name] = pub
        t = Till(self, name, store_id, clock=clock)
        self.tills[name] = t
        return t

    def trusted_for(self, till):
        """Every till trusts the store's keys; an outsider trusts the store
        too (so that it tries), but the store does not trust it."""
        lines = dict(self.trusted_lines)
        lines[till.name] = self.keygen_pub(till.name)
        path = os.path.join(till.dir, "trusted_keys")
        with open(path, "w") as f:
            f.write("# NAME PUBLIC-KEY SIGNING-KEY\n")
            for n, k in sorted(lines.items()):
                f.write(f"{n} {k}\n")
        return path

    def keygen_pub(self, name):
        """The keys of name's trusted line: "CURVE-PUBLIC SIGNING-PUBLIC"."""
        prefix = os.path.join(self.root, "keys", name)
        with open(prefix + ".pub") as f, open(prefix + ".sign") as g:
            return f"{f.read().strip()} {g.read().strip()}"

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
    """Runs one test function against a fresh lab; prints PASS/FAIL.
    A Skip raised by the test prints SKIP with the reason and exits 77."""
    lab = StoreLab(names, **kw)
    ok = False
    try:
        test_fn(lab)
        ok = True
    except Skip as e:
        ok = True
        print(f"SKIP {test_fn.__name__}: {e}", flush=True)
        sys.exit(77)
    finally:
        lab.cleanup(ok)
    print(f"PASS {test_fn.__name__}")


def make_rut(body):
    """A valid Chilean RUT for the number body ("12.345.678-5" style): the
    check digit is modulo 11 over the reversed digits with weights 2..7."""
    s, m = 0, 2
    for d in reversed(str(body)):
        s += int(d) * m
        m = 2 if m == 7 else m + 1
    dv = 11 - s % 11
    dv = "0" if dv == 11 else "K" if dv == 10 else str(dv)
    b = f"{body:,}".replace(",", ".")
    return f"{b}-{dv}"


def rut_key(rut):
    """The normalised id the API keys a customer by: no dots, no dash."""
    return rut.replace(".", "").replace("-", "").upper()


def missing_sales(tills, ids, timeout, interval=0.1):
    """Polls until every till holds every sale id (id -> origin name) or
    the deadline passes. Returns {till name: [(origin, id), ...]} of what is
    still missing (empty when everything arrived)."""
    deadline = time.monotonic() + timeout
    todo = {t.name: {i: o for i, o in ids.items() if o != t.name} for t in tills}
    by_name = {t.name: t for t in tills}
    while True:
        for n, want in todo.items():
            for i in [i for i in want if by_name[n].has_sale(i)]:
                del want[i]
        if not any(todo.values()) or time.monotonic() >= deadline:
            return {n: sorted((o, i) for i, o in w.items()) for n, w in todo.items() if w}
        time.sleep(interval)


def describe_missing(missing, clocks=None):
    """One line per till: which origins' sales it lacks (and their clocks)."""
    clocks = clocks or {}
    out = []
    for n, pairs in sorted(missing.items()):
        per = {}
        for o, _ in pairs:
            per[o] = per.get(o, 0) + 1
        src = ", ".join(f"{k} from {o}" + (f" (clock {clocks[o]})" if o in clocks else "")
                        for o, k in sorted(per.items()))
        out.append(f"{n}" + (f" (clock {clocks[n]})" if n in clocks else "") + f" lacks {src}")
    return "; ".join(out)


class Findings:
    """Collects independent checks so that one run reports every broken
    promise, not only the first: check(name, fn) runs fn, records an
    AssertionError as a failure and goes on; done() raises if any failed."""

    def __init__(self):
        self.failed = []

    def check(self, name, fn, *a, **kw):
        try:
            fn(*a, **kw)
        except AssertionError as e:
            self.failed.append((name, str(e)))
            print(f"FAIL {name}: {e}", flush=True)
            return False
        print(f"ok   {name}", flush=True)
        return True

    def done(self):
        if self.failed:
            raise AssertionError(f"{len(self.failed)} check(s) failed: " +
                                 "; ".join(n for n, _ in self.failed))
