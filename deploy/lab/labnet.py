"""labnet - the tillmesh store lab: tests/integration/netlab.py plus uplinks,
a store router, an "internet" namespace with the stub ERP, tillmeshd per till,
cable pulls on either cable, kill -9 / start, impairments and partitions.

Namespaces (all named with the creating process's pid, swept when it is gone):

    tmlab-br-<pid>        the store switch (bridge br0), from netlab
    tmlab-<pid>-<till>    a till: eth0 on the LAN (10.77.0.<10+i>/24),
                          up0 its uplink (10.88.<i>.2/24)
    tmlab-<pid>-rtr       the store router: one port per till (u<i>, 10.88.<i>.1)
                          and wan0 (10.66.0.2) to the internet
    tmlab-<pid>-net       the internet: wan-side 10.66.0.1, 4G ports, and the
                          ERP stub on 10.99.0.1:8080 (on lo)

A till listed in `fourg` has its uplink straight into the internet namespace
instead, with a rate limit (tbf), random loss (iptables statistic) and 60 ms
(+0..20 ms) delay each way (delaybox.py: the kernel has no netem): a slow,
lossy, far-away 4G modem.

Every till's tillmeshd runs under libfaketime (when installed) with a
per-till timestamp file holding its wall-clock offset ("+0s" unless the lab
was built with clocks= or `set_clock` changed it); rewriting the file steps
the running daemon's wall clock within a second (fakeclock.py). The offset
belongs to the till, not to the daemon: it survives kill -9 and start.

Talking to a till's API from outside: `api(lab_or_nspath, ...)` makes the
socket inside the till's network namespace (setns in the calling thread, then
back), so load generators and checkers need no process per request.
"""
import ctypes
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
# installed (share/tillmesh/lab) the helpers sit next to this file; in the
# source tree they live with the tests
sys.path.insert(0, HERE if os.path.exists(os.path.join(HERE, "netlab.py"))
                else os.path.join(REPO, "tests", "integration"))
import netlab  # noqa: E402
import fakeclock  # noqa: E402
from netlab import wait_until, _sh  # noqa: E402,F401

ERP_STUB = os.path.join(HERE, "erp_stub.py")
if not os.path.exists(ERP_STUB):
    ERP_STUB = os.path.join(REPO, "tests", "erp-stub", "erp_stub.py")
DELAYBOX = os.path.join(HERE, "delaybox.py")
ERP_IP, ERP_PORT = "10.99.0.1", 8080
API_PORT = 7780
TOKEN = "lab-token-0123456789"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_ns_lock = threading.Lock()


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def ns_connect(nspath, host, port, timeout=5.0):
    """A TCP socket connected from inside network namespace nspath."""
    with _ns_lock:
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        tgt = os.open(nspath, os.O_RDONLY)
        try:
            _setns(tgt)
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                _setns(own)
        finally:
            os.close(tgt)
            os.close(own)
    try:
        s.settimeout(timeout)
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


class _NsHTTP(http.client.HTTPConnection):
    def __init__(self, nspath, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self.nspath = nspath

    def connect(self):
        self.sock = ns_connect(self.nspath, self.host, self.port, self.timeout)


def http_json(nspath, host, port, method, path, body=None, timeout=5.0, headers=None):
    """(status, parsed JSON or None). Raises OSError when unreachable."""
    c = _NsHTTP(nspath, host, port, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data else {}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        try:
            js = json.loads(raw) if raw else None
        except ValueError:
            js = None
        return r.status, js
    finally:
        c.close()


def nspath(ns):
    return f"/run/netns/{ns}"


class StoreLab(netlab.Lab):
    """N tills with tillmeshd, a router, an internet with the ERP stub."""

    def __init__(self, n, bin_dir, fourg=(), store_id="store-lab", ipv6=False,
                 heartbeat_ms=250, peer_timeout_ms=1500, log_level="info", clocks=None,
                 defaults=False):
        names = [f"t{i}" for i in range(1, n + 1)]
        super().__init__(names, avahi=True, ipv6=ipv6)
        self.bin_dir = os.path.abspath(bin_dir)
        self.tillmeshd = find_bin(self.bin_dir, "tillmeshd")
        self.tillmesh = find_bin(self.bin_dir, "tillmesh")
        self.fourg = set(fourg)
        self.store_id = store_id
        self.heartbeat_ms = heartbeat_ms
        self.peer_timeout_ms = peer_timeout_ms
        self.log_level = log_level
        # defaults=True: heartbeat, peer timeout, probe and ERP timings are
        # tillmeshd's defaults (the failover bench: what a new user gets)
        self.defaults = defaults
        self.rtr_ns = f"tmlab-{self.pid}-rtr"
        self.net_ns = f"tmlab-{self.pid}-net"
        self.erp = None
        self.daemons = {}          # name -> Popen of tillmeshd
        self.cables = {n: {"lan": True, "uplink": True} for n in names}
        self.impair = {n: {"lan": {}, "uplink": {}} for n in names}
        self.partition_groups = None
        self.delayboxes = {}       # (till, "lan"|"uplink") -> [Popen, Popen]
        self.delay_counters = []   # what each stopped delaybox printed
        self.events = []           # (time, till or None, what) for timelines
        # till -> wall-clock offset in s (libfaketime); None: no libfaketime here
        try:
            if os.environ.get("TM_LAB_FAKETIME") == "0":
                raise fakeclock.FaketimeMissing("TM_LAB_FAKETIME=0: tills run on the real clock")
            fakeclock.require()
            self.clocks = {n: 0 for n in names}
        except fakeclock.FaketimeMissing as e:
            self.clocks = None
            self.faketime_missing = str(e)
            if clocks:
                raise
        for n, spec in (clocks or {}).items():
            if n not in self.clocks:
                raise ValueError(f"clock for {n!r}: no such till (tills: {' '.join(names)})")
            self.clocks[n] = fakeclock.clock_offset_s(spec)

    # ---- building --------------------------------------------------------
    def start(self):
        super().start()
        self._build_uplinks()
        self._start_erp()
        self._write_keys()
        for n in self.names:
            self.start_till(n, wait=False)
        for n in self.names:
            wait_until(lambda n=n: self._api_up(n), 60, f"{n} API to answer")
        for n in self.names:
            if self.clocks and self.clocks[n]:
                wait_until(lambda n=n: self.clock_ok(n), 10,
                           f"{n}'s wall clock to show {fakeclock.describe(self.clocks[n])}")
        self.event(None, "up")

    def _api_up(self, n):
        p = self.daemons[n]
        if p.poll() is not None:
            with open(os.path.join(self.tills[n].dir, "tillmeshd.log"), errors="replace") as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"tillmeshd of {n} exited with {p.returncode}: {tail}")
        return self.status(n)

    def _ipn(self, ns, *args, check=True):
        return _sh(["ip", "-n", ns] + list(args), check=check)

    def _nsexec(self, ns, argv, check=True):
        return _sh(["ip", "netns", "exec", ns] + argv, check=check)

    def _build_uplinks(self):
        for ns in (self.rtr_ns, self.net_ns):
            self._add_ns(ns)
            self._ipn(ns, "link", "set", "lo", "up")
            self._nsexec(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        # router <-> internet
        self._ipn(self.rtr_ns, "link", "add", "wan0", "type", "veth", "peer", "name", "isp0",
                  "netns", self.net_ns)
        self._ipn(self.rtr_ns, "addr", "add", "10.66.0.2/30", "dev", "wan0")
        self._ipn(self.net_ns, "addr", "add", "10.66.0.1/30", "dev", "isp0")
        self._ipn(self.rtr_ns, "link", "set", "wan0", "up")
        self._ipn(self.net_ns, "link", "set", "isp0", "up")
        self._ipn(self.rtr_ns, "route", "add", "default", "via", "10.66.0.1")
        self._ipn(self.net_ns, "addr", "add", f"{ERP_IP}/32", "dev", "lo")  # no dummy module
        for n, t in self.tills.items():
            i = t.index
            far = self.net_ns if n in self.fourg else self.rtr_ns
            t.up_port = f"u{i}"
            t.up_ns = far
            self._ipn(t.ns, "link", "add", "up0", "type", "veth", "peer", "name", t.up_port,
                      "netns", far)
            self._ipn(t.ns, "addr", "add", f"10.88.{i}.2/24", "dev", "up0")
            self._ipn(far, "addr", "add", f"10.88.{i}.1/24", "dev", t.up_port)
            self._ipn(t.ns, "link", "set", "up0", "up")
            self._ipn(far, "link", "set", t.up_port, "up")
            self._ipn(t.ns, "route", "add", f"{ERP_IP}/32", "via", f"10.88.{i}.1")
            if far == self.rtr_ns:
                self._ipn(self.net_ns, "route", "add", f"10.88.{i}.0/24", "via", "10.66.0.2")
        for n in self.fourg:  # slow lossy 4G: 1 Mbit/s, 3 % loss, 60-80 ms each way
            self.set_impair(n, "uplink", loss=3.0, rate="1mbit", delay=60, jitter=20,
                            log=False)

    def _start_erp(self):
        d = os.path.join(self.root, "erp")
        os.makedirs(d, exist_ok=True)
        self.token_file = os.path.join(self.root, "erp.token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(self.token_file, 0o600)
        log = open(os.path.join(d, "erp.log"), "ab")
        self.erp = subprocess.Popen(
            ["ip", "netns", "exec", self.net_ns, sys.executable, ERP_STUB,
             "--listen", f"{ERP_IP}:{ERP_PORT}", "--db", os.path.join(d, "erp.sqlite"),
             "--token", TOKEN], stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.procs.append(self.erp)
        wait_until(lambda: self._erp_ok(), 20, "ERP stub to answer")

    def _erp_ok(self):
        if self.erp.poll() is not None:
            raise AssertionError("ERP stub exited")
        try:
            return self.erp_stats()
        except OSError:
            return None

    def erp_stats(self, detail=False):
        st, js = http_json(nspath(self.net_ns), ERP_IP, ERP_PORT, "GET",
                           "/_stub/stats" + ("?detail=1" if detail else ""), timeout=20)
        return js if st == 200 else None

    def erp_catalogue(self, **change):
        """Changes the stub ERP's catalogue (upsert=[...], delete=[...])."""
        return http_json(nspath(self.net_ns), ERP_IP, ERP_PORT, "POST", "/_stub/catalogue",
                         change)

    def erp_mode(self, mode, **kw):
        return http_json(nspath(self.net_ns), ERP_IP, ERP_PORT, "POST", "/_stub/mode",
                         dict(mode=mode, **kw))

    def _write_keys(self):
        keys = os.path.join(self.root, "keys")
        os.makedirs(keys, exist_ok=True)
        self.trusted = os.path.join(keys, "trusted_keys")
        with open(self.trusted, "w") as f:
            for n in self.names:
                subprocess.run([self.tillmesh, "keygen", "--out", os.path.join(keys, n)],
                               check=True, capture_output=True)
                with open(os.path.join(keys, n + ".pub")) as k, \
                        open(os.path.join(keys, n + ".sign")) as s:
                    f.write(f"{n} {k.read().strip()} {s.read().strip()}\n")
        self.keys = keys

    def write_config(self, n):
        t = self.tills[n]
        cfg = os.path.join(t.dir, "tillmeshd.conf")
        mesh_timing = erp_timing = ""
        if not self.defaults:
            mesh_timing = (f"heartbeat_ms = {self.heartbeat_ms}\n"
                           f"peer_timeout_ms = {self.peer_timeout_ms}")
            erp_timing = ("probe_interval_ms = 200\nprobe_timeout_ms = 1000\nrise = 2\nfall = 3\n"
                          "request_timeout_ms = 5000\nbackoff_min_ms = 200\nbackoff_max_ms = 2000\n"
                          "# pull catalogue changes every 2 s (default 60): drills see a price "
                          "change soon\ncatalogue_interval_s = 2")
        with open(cfg, "w") as f:
            f.write(f"""# written by tillmesh-lab
[node]
name = {n}
store_id = {self.store_id}
data_dir = {t.dir}/data
api_listen = 127.0.0.1:{API_PORT}
log_level = {self.log_level}
priority = {50 if n in self.fourg else 100 + t.index}
[mesh]
listen = tcp://0.0.0.0:7700
advertise = tcp://{t.ip}:7700
secret_key = {self.keys}/{n}.key
public_key = {self.keys}/{n}.pub
trusted_keys = {self.trusted}
{mesh_timing}
[discovery]
mdns = yes
[erp]
url = http://{ERP_IP}:{ERP_PORT}
token_file = {self.token_file}
# the lab's stub ERP speaks plain http inside the lab's namespaces
allow_insecure_http = yes
{erp_timing}
""")
        return cfg

    # ---- tills -----------------------------------------------------------
    def start_till(self, n, wait=True):
        if self.alive(n):
            return
        cfg = self.write_config(n)
        env = None
        if self.clocks is not None:
            stamp = self.stamp_file(n)
            fakeclock.write_stamp(stamp, self.clocks[n])
            env = fakeclock.env(stamp)
        log = open(os.path.join(self.tills[n].dir, "tillmeshd.log"), "ab")
        self.daemons[n] = self.run_in(n, [self.tillmeshd, "-c", cfg], stdout=log, stderr=log,
                                      env=env)
        log.close()
        self.event(n, "start")
        if wait:
            wait_until(lambda: self._api_up(n), 60, f"{n} API to answer")

    # ---- clocks ----------------------------------------------------------
    def stamp_file(self, n):
        return os.path.join(self.tills[n].dir, "faketime.stamp")

    def wall_clock(self, n):
        """Till n's wall clock (epoch s, 1 s resolution): the Date header
        its API (libmicrohttpd, time()) puts on an answer."""
        import email.utils
        c = _NsHTTP(self.nspath(n), "127.0.0.1", API_PORT, 3)
        try:
            c.request("GET", "/v1/status")
            r = c.getresponse()
            r.read()
            date = r.getheader("Date")
        finally:
            c.close()
        if not date:
            raise RuntimeError(f"{n}: API answer without a Date header")
        return email.utils.parsedate_to_datetime(date).timestamp()

    def clock_ok(self, n, slack=2.5):
        try:
            return abs(self.wall_clock(n) - (time.time() + self.clocks[n])) <= slack
        except OSError:
            return False

    def set_clock(self, n, spec, timeout=10):
        """Sets till n's wall clock: an offset (-10m, +1d, -1h, ok) or a
        date (2000-01-01) it shows from now on; a running daemon is stepped
        (and this waits until it shows the new time), a stopped one starts
        with it. ValueError for a bad spec or when libfaketime is missing."""
        if n not in self.tills:
            raise ValueError(f"no till {n!r}; tills: {' '.join(self.names)}")
        if self.clocks is None:
            raise ValueError(f"cannot set clocks: {self.faketime_missing} (then `down` and `up`)")
        off = fakeclock.clock_offset_s(spec)
        self.clocks[n] = off
        fakeclock.write_stamp(self.stamp_file(n), off)
        self.event(n, f"clock {fakeclock.describe(off)}")
        if self.alive(n):
            wait_until(lambda: self.clock_ok(n), timeout,
                       f"{n}'s wall clock to show {fakeclock.describe(off)}")
        return off

    def clock_label(self, n):
        return "-" if self.clocks is None else fakeclock.describe(self.clocks[n])

    def kill9(self, n):
        p = self.daemons.get(n)
        if p is None or p.poll() is not None:
            return False
        # the daemon runs under nsenter: kill the whole group, -9
        os.killpg(p.pid, 9)
        p.wait(10)
        self.event(n, "kill")
        return True

    def alive(self, n):
        p = self.daemons.get(n)
        return p is not None and p.poll() is None

    def nspath(self, n):
        return nspath(self.tills[n].ns)

    def api(self, n, method, path, body=None, timeout=5.0):
        return http_json(self.nspath(n), "127.0.0.1", API_PORT, method, path, body, timeout)

    def status(self, n):
        if not self.alive(n):
            return None
        try:
            st, js = self.api(n, "GET", "/v1/status", timeout=3)
            return js if st == 200 else None
        except OSError:
            return None

    def sale_ids(self, n):
        """Every sale id till n holds (paged)."""
        ids, since = set(), 0
        while True:
            st, js = self.api(n, "GET", f"/v1/sales?since={since}&limit=1000", timeout=20)
            if st != 200:
                raise AssertionError(f"{n}: GET /v1/sales -> {st} {js}")
            if not js["sales"]:
                return ids
            ids.update(s["sale_id"] for s in js["sales"])
            since = js["next"]

    # ---- cables, impairments, partitions ---------------------------------
    def event(self, n, what):
        self.events.append((time.time(), n, what))

    def cable(self, n, which, up):
        t = self.tills[n]
        state = "up" if up else "down"
        if which == "lan":
            self.link(n, up)      # the switch port
        elif which == "uplink":
            self._ipn(t.up_ns, "link", "set", t.up_port, state)
        else:
            raise ValueError("cable must be lan or uplink")
        self.cables[n][which] = up
        self.event(n, f"{'plug' if up else 'pull'} {which}")

    def _ends(self, n, which):
        """(ns, dev) at the till and at the far end of one of its cables."""
        t = self.tills[n]
        if which == "lan":
            return (t.ns, "eth0"), (self.bridge_ns, t.port)
        if which == "uplink":
            return (t.ns, "up0"), (t.up_ns, t.up_port)
        raise ValueError("cable must be lan or uplink")

    def set_impair(self, n, which, loss=None, rate=None, delay=None, jitter=None, log=True):
        """loss in percent (iptables statistic at the till's device, in and
        out), rate as tc wants it (tbf, egress of both ends), delay and jitter
        in ms (delaybox.py, egress of both ends: each direction of the cable
        gets the delay, so a till-to-till round trip across two delayed
        cables takes 4 x delay). Replaces what the cable had."""
        delay_ms = parse_ms(delay) if delay else 0.0
        jitter_ms = parse_ms(jitter) if jitter else 0.0
        if jitter_ms and not delay_ms:
            raise ValueError("jitter needs a delay")
        if loss is not None and not 0 <= float(loss) <= 100:
            raise ValueError(f"loss={loss}: a percentage, 0..100")
        self.clear_impair(n, which, log=False)
        ends = self._ends(n, which)
        ns, dev = ends[0]
        try:
            if loss:
                p = f"{float(loss) / 100:.4f}"
                for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
                    self._nsexec(ns, ["iptables", "-w", "-A", chain, flag, dev, "-m",
                                      "statistic", "--mode", "random", "--probability", p,
                                      "-j", "DROP"])
            if rate:
                for (xns, xdev) in ends:
                    _sh(["tc", "-n", xns, "qdisc", "replace", "dev", xdev, "root", "tbf",
                         "rate", rate, "burst", "16kb", "latency", "100ms"])
            if delay_ms:
                self.delayboxes[(n, which)] = [self._start_delaybox(xns, xdev, delay_ms,
                                                                    jitter_ms)
                                               for (xns, xdev) in ends]
        except BaseException:
            self.clear_impair(n, which, log=False)
            raise
        spec = (("loss", loss), ("rate", rate),
                ("delay", f"{delay_ms:g}ms" if delay_ms else None),
                ("jitter", f"{jitter_ms:g}ms" if jitter_ms else None))
        self.impair[n][which] = {k: v for k, v in spec if v}
        if log:
            self.event(n, f"impair {which} {self.impair[n][which]}")

    def _start_delaybox(self, ns, dev, delay_ms, jitter_ms):
        log = open(os.path.join(self.root, f"delaybox-{ns}-{dev}.log"), "ab")
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, DELAYBOX, "--dev", dev,
             "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms)],
            stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        log.close()
        self.procs.append(p)
        line = p.stdout.readline()  # "ready" once the redirect is in place
        if line.strip() != b"ready":
            p.wait(5)
            with open(os.path.join(self.root, f"delaybox-{ns}-{dev}.log"), errors="replace") as f:
                raise RuntimeError(f"delaybox on {ns} {dev} failed: {f.read()[-500:]}")
        return p

    def clear_impair(self, n, which, log=True):
        ends = self._ends(n, which)
        ns, dev = ends[0]
        for p in self.delayboxes.pop((n, which), []):
            netlab._kill_group(p)
            tail = p.stdout.read().decode(errors="replace").strip()
            if tail:
                self.delay_counters.append(tail)
        for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
            r = self._nsexec(ns, ["iptables", "-w", "-S", chain], check=False)
            for line in r.stdout.splitlines():
                if f"{flag} {dev} " in line and "statistic" in line:
                    self._nsexec(ns, ["iptables", "-w", "-D"] + _split(line)[1:], check=False)
        for (xns, xdev) in ends:
            _sh(["tc", "-n", xns, "qdisc", "del", "dev", xdev, "root"], check=False)
            # the delay redirect; a delaybox that died by -9 leaves it behind
            _sh(["tc", "-n", xns, "qdisc", "del", "dev", xdev, "clsact"], check=False)
        r = self._nsexec(ns, ["iptables", "-w", "-S"], check=False)
        if "statistic" in r.stdout and f" {dev} " in r.stdout:
            raise RuntimeError(f"clear: loss rules left in {n}: {r.stdout}")
        self.impair[n][which] = {}
        if log:
            self.event(n, f"clear {which}")

    def partition(self, groups):
        """groups: lists of till names; tills in different groups cannot talk
        on the LAN (ebtables-free: per-till iptables DROP of the others' IPs)."""
        self.heal(log=False)
        where = {n: gi for gi, g in enumerate(groups) for n in g}
        for n in self.names:
            t = self.tills[n]
            for o in self.names:
                if o != n and where.get(o) != where.get(n):
                    ip = self.tills[o].ip
                    self._nsexec(t.ns, ["iptables", "-w", "-A", "INPUT", "-i", "eth0", "-s", ip,
                                        "-j", "DROP", "-m", "comment", "--comment", "tmlab-part"])
                    self._nsexec(t.ns, ["iptables", "-w", "-A", "OUTPUT", "-o", "eth0", "-d", ip,
                                        "-j", "DROP", "-m", "comment", "--comment", "tmlab-part"])
        self.partition_groups = [list(g) for g in groups]
        self.event(None, "partition " + " / ".join(",".join(g) for g in groups))

    def heal(self, log=True):
        for n in self.names:
            t = self.tills[n]
            for chain in ("INPUT", "OUTPUT"):
                r = self._nsexec(t.ns, ["iptables", "-w", "-S", chain], check=False)
                for line in r.stdout.splitlines():
                    if "tmlab-part" in line:
                        self._nsexec(t.ns, ["iptables", "-w", "-D"] + _split(line)[1:],
                                     check=False)
        for n in self.names:
            r = self._nsexec(self.tills[n].ns, ["iptables", "-w", "-S"], check=False)
            if "tmlab-part" in r.stdout:
                raise RuntimeError(f"heal: partition rules left in {n}: {r.stdout}")
        self.partition_groups = None
        if log:
            self.event(None, "heal")

    def connect_ms(self, n, host, port, tries=3, timeout=5.0):
        """Fastest of `tries` TCP handshakes from till n to host:port, in ms
        (one round trip: SYN out, SYN-ACK back); None if none connected.
        How the scenarios see that a delay is really on the wire."""
        best = None
        for _ in range(tries):
            t = time.monotonic()
            try:
                ns_connect(self.nspath(n), host, port, timeout).close()
            except OSError:
                continue
            ms = (time.monotonic() - t) * 1000
            best = ms if best is None else min(best, ms)
        return best

    # ---- views -----------------------------------------------------------
    def forwarder_agreed(self, names=None):
        names = [n for n in (names or self.names) if self.alive(n)]
        fw = set()
        for n in names:
            st = self.status(n)
            if not st:
                return None
            fw.add(st["forwarder"]["name"])
        return fw.pop() if len(fw) == 1 and None not in fw else None

    def digests(self, names=None):
        out = {}
        for n in (names or self.names):
            st = self.status(n)
            out[n] = st and st["state"]["digest"]
        return out

    def converged(self, names=None):
        d = self.digests(names)
        return len(set(d.values())) == 1 and None not in d.values()

    def table(self):
        rows = [("till", "daemon", "lan", "uplink", "sales", "digest", "peers", "forwarder",
                 "backlog", "parked", "clock", "link")]
        for n in self.names:
            st = self.status(n)
            c = self.cables[n]
            imp = " ".join(f"{w}:{v}" for w, v in self.impair[n].items() if v)
            if st:
                alive_peers = sum(1 for p in st["peers"] if p["state"] == "alive")
                rows.append((n, "up", "in" if c["lan"] else "OUT", "in" if c["uplink"] else "OUT",
                             str(st["state"]["sales"]), (st["state"]["digest"] or "-")[:10],
                             f"{alive_peers}/{len(st['peers'])}",
                             (st["forwarder"]["name"] or "-") + ("*" if st["forwarder"].get(
                                 "is_self") else ""),
                             str(st["erp"]["backlog"]), str(st["erp"]["parked"]),
                             self.clock_label(n) + own_clock(st),
                             st["uplink"]["state"] + (" " + imp if imp else "")))
            else:
                rows.append((n, "DOWN" if not self.alive(n) else "no-api",
                             "in" if c["lan"] else "OUT", "in" if c["uplink"] else "OUT",
                             "-", "-", "-", "-", "-", "-", self.clock_label(n), imp or "-"))
        w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
        try:
            es = self.erp_stats()
            lines.append(f"ERP: booked={es['booked']} deliveries={es['deliveries']} "
                         f"redeliveries={es['redeliveries']} mode={es['mode']}")
        except OSError as e:
            lines.append(f"ERP: unreachable ({e})")
        if self.partition_groups:
            lines.append("partition: " + " / ".join(",".join(g) for g in self.partition_groups))
        return "\n".join(lines)


def own_clock(st):
    """What the till itself says of its clock, when its status says it
    (issue 11: "clock": {"offset_ms", "skewed", ...}): " (skewed -600s)"."""
    c = st.get("clock")
    if not isinstance(c, dict):
        return ""
    off = c.get("offset_ms")
    flag = "skewed" if c.get("skewed") else "says"
    return f" ({flag} {off / 1000:+.0f}s)" if isinstance(off, (int, float)) else ""


def find_bin(bin_dir, name):
    """name in bin_dir (a build tree), or in bin_dir/../sbin (installed:
    tillmesh in bin, tillmeshd in sbin)."""
    for d in (bin_dir, os.path.join(bin_dir, "..", "sbin")):
        p = os.path.abspath(os.path.join(d, name))
        if os.access(p, os.X_OK):
            return p
    raise RuntimeError(f"no executable {name} in {bin_dir} (set TM_BIN_DIR / --bin)")


def parse_ms(v):
    """'200', '200ms', '0.2s' -> 200.0 (milliseconds); ValueError otherwise."""
    t = str(v).strip().lower()
    scale = 1.0
    if t.endswith("ms"):
        t = t[:-2]
    elif t.endswith("s"):
        t, scale = t[:-1], 1000.0
    try:
        ms = float(t) * scale
    except ValueError:
        raise ValueError(f"{v!r}: a time like 200ms or 0.2s") from None
    if not 0 <= ms <= 10000:
        raise ValueError(f"{v!r}: between 0 and 10 s")
    return ms


def _split(line):
    import shlex
    return shlex.split(line)
