"""netlab - store labs in Linux network namespaces (standard library only).

A Lab is a small store LAN built from namespaces, touching nothing on the host
network:

    tmlab-br-<pid>          holds the bridge br0 (the store's switch)
    tmlab-<pid>-<till>      one per till: lo, and eth0 = one end of a veth
                            whose other end ("port<i>") sits on br0;
                            eth0 has 10.77.0.<10+i>/24 (i = 1, 2, ...)

Each till also gets its own mount namespace, kept alive by a holder process
(`sleep infinity` under `ip netns exec NS unshare -m`) with a fresh tmpfs on
/run, so that the till's dbus-daemon and avahi-daemon (and later its
tillmeshd) have their own /run/dbus and /run/avahi-daemon. `ip netns exec`
bind-mounts /etc/netns/NS/{hosts,resolv.conf} over /etc in that namespace, so
name lookups answer from a hosts file listing every till and never hang on a
DNS server. Commands run inside with `nsenter -t HOLDER -m -n`.

    with Lab(["a", "b"]) as lab:
        p = lab.run_in("a", ["tm-disc-probe", ...], stdout=subprocess.PIPE)
        lab.link("a", False)      # pull a's LAN cable
        lab.restart_avahi("b")

Cleanup (kill every process started, delete namespaces and /etc/netns dirs)
runs from __exit__, atexit and a SIGTERM handler, is idempotent, and also
sweeps labs left behind by runs whose process is gone. Names carry the pid so
parallel runs do not collide. Logs and configs live in a temp dir that is
kept (and printed) when the lab exits with an exception.
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP_CODE = 77  # ctest SKIP_RETURN_CODE
SUBNET = "10.77.0"
ETC_NETNS = "/etc/netns"
_LABS = []  # live labs, for atexit and the signal handler


def wait_until(cond, timeout, what, interval=0.05):
    """Polls cond() until truthy; AssertionError naming `what` after timeout s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _sh(argv, check=True, timeout=20):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def skip(reason):
    """Exits with SKIP_CODE after saying why, loudly, on both streams."""
    msg = f"SKIP: {reason}"
    print("\n" + "*" * len(msg) + "\n" + msg + "\n" + "*" * len(msg), flush=True)
    print(msg, file=sys.stderr, flush=True)
    sys.exit(SKIP_CODE)


def require_netns(tools=("ip", "unshare", "nsenter", "dbus-daemon", "avahi-daemon")):
    """Skips the test (exit 77) unless we can build namespace labs here."""
    if os.geteuid() != 0:
        skip("network namespace labs need root (run as root, or in a privileged container)")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        skip(f"missing tools: {', '.join(missing)}")
    probe = f"tmlab-probe-{os.getpid()}"
    r = _sh(["ip", "netns", "add", probe], check=False)
    if r.returncode != 0:
        skip(f"`ip netns add` does not work here: {r.stderr.strip()}")
    _sh(["ip", "netns", "del", probe], check=False)


def _pid_alive(pid):
    """True if pid runs; a zombie (killed, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_group(proc, grace=3.0):
    """SIGTERM the process group of proc, then SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


def _kill_ns_pids(ns):
    """Kills whatever still runs in netns ns (e.g. a daemon that forked)."""
    r = _sh(["ip", "netns", "pids", ns], check=False)
    for tok in r.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def _del_ns(ns):
    _kill_ns_pids(ns)
    _sh(["ip", "netns", "del", ns], check=False)
    shutil.rmtree(os.path.join(ETC_NETNS, ns), ignore_errors=True)


def sweep_stale():
    """Removes labs whose creating process no longer exists."""
    r = _sh(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        m = re.match(r"tmlab-(?:br-)?(\d+)(?:-|$)", ns)
        if m and not _pid_alive(int(m.group(1))):
            _del_ns(ns)
    if os.path.isdir(ETC_NETNS):
        for d in os.listdir(ETC_NETNS):
            m = re.match(r"tmlab-(?:br-)?(\d+)(?:-|$)", d)
            if m and not _pid_alive(int(m.group(1))):
                shutil.rmtree(os.path.join(ETC_NETNS, d), ignore_errors=True)


def _cleanup_all():
    for lab in list(_LABS):
        lab.cleanup()


def _on_signal(signum, frame):
    _cleanup_all()
    raise SystemExit(128 + signum)


atexit.register(_cleanup_all)


AVAHI_CONF = """# written by netlab for till {name}
[server]
host-name={host}
use-ipv4=yes
use-ipv6={ipv6}
allow-interfaces=eth0
disallow-other-stacks=no
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000

[wide-area]
enable-wide-area=no

[publish]
publish-hinfo=no
publish-workstation=no

[reflector]
enable-reflector=no

[rlimits]
"""


class Till:
    def __init__(self, lab, name, index):
        self.lab = lab
        self.name = name
        self.index = index
        self.ns = f"tmlab-{lab.pid}-{name}"
        self.ip = f"{SUBNET}.{10 + index}"
        self.port = f"port{index}"  # the veth end on the bridge
        self.dir = os.path.join(lab.root, name)
        self.holder = None
        self.dbus = None
        self.avahi = None
        os.makedirs(self.dir, exist_ok=True)

    def runpath(self, rel):
        """Host path of a file under this till's private /run."""
        return f"/proc/{self.holder.pid}/root/run/{rel}"


class Lab:
    """A store LAN of tills in namespaces; see the module docstring."""

    def __init__(self, names, avahi=True, ipv6=True):
        if len(set(names)) != len(names) or not names:
            raise ValueError("till names must be unique and non-empty")
        for n in names:
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,15}", n):
                raise ValueError(f"till name {n!r}: use [a-z0-9-], at most 16 characters")
        self.pid = os.getpid()
        self.names = list(names)
        self.avahi = avahi
        self.ipv6 = ipv6
        self.bridge_ns = f"tmlab-br-{self.pid}"
        self.root = tempfile.mkdtemp(prefix=f"tmlab-{self.pid}-")
        self.tills = {n: Till(self, n, i + 1) for i, n in enumerate(names)}
        self.procs = []  # every Popen started, holders included
        self.namespaces = []
        self.keep_logs = False
        self._closed = False
        self._old_term = None

    # ---- lifecycle -------------------------------------------------------

    def __enter__(self):
        _LABS.append(self)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self._old_term = signal.signal(signal.SIGTERM, _on_signal)
        try:
            self.start()
        except BaseException:
            self.keep_logs = True
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.keep_logs = True
        self.cleanup()
        return False

    def start(self):
        sweep_stale()
        self._add_ns(self.bridge_ns)
        b = ["ip", "-n", self.bridge_ns]
        _sh(b + ["link", "add", "br0", "type", "bridge"])
        # Snooping without a querier can starve mDNS; a store switch floods.
        _sh(b + ["link", "set", "br0", "type", "bridge", "mcast_snooping", "0"], check=False)
        _sh(b + ["link", "set", "lo", "up"])
        _sh(b + ["link", "set", "br0", "up"])
        for t in self.tills.values():
            self._make_till_net(t)
        for t in self.tills.values():
            self._start_holder(t)
            if self.avahi:
                self._start_dbus(t)
                self.start_avahi(t.name)
        if self.avahi:
            for t in self.tills.values():
                self.wait_avahi_ready(t.name)

    def cleanup(self):
        """Kills every process, deletes every namespace; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for p in reversed(self.procs):
            _kill_group(p)
        for ns in reversed(self.namespaces):
            _del_ns(ns)
        if self in _LABS:
            _LABS.remove(self)
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
        if self.keep_logs:
            print(f"netlab: logs kept in {self.root}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- building --------------------------------------------------------

    def _add_ns(self, ns):
        _sh(["ip", "netns", "add", ns])
        self.namespaces.append(ns)

    def _write_etc(self, t):
        d = os.path.join(ETC_NETNS, t.ns)
        os.makedirs(d, exist_ok=True)
        hosts = ["127.0.0.1 localhost", "::1 localhost"]
        hosts += [f"{o.ip} {o.name} tmlab-{o.name}" for o in self.tills.values()]
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write("\n".join(hosts) + "\n")
        with open(os.path.join(d, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def _make_till_net(self, t):
        self._add_ns(t.ns)
        self._write_etc(t)
        n = ["ip", "-n", t.ns]
        # No duplicate address detection: the lab has no duplicates, and DAD
        # would hold the IPv6 link-local address back for a second or two.
        for k in ("default", "all"):
            _sh(["ip", "netns", "exec", t.ns, "sysctl", "-qw",
                 f"net.ipv6.conf.{k}.accept_dad=0"], check=False)
        _sh(["ip", "-n", self.bridge_ns, "link", "add", t.port, "type", "veth",
             "peer", "name", "eth0", "netns", t.ns])
        _sh(["ip", "-n", self.bridge_ns, "link", "set", t.port, "master", "br0", "up"])
        _sh(n + ["link", "set", "lo", "up"])
        _sh(n + ["addr", "add", f"{t.ip}/24", "dev", "eth0"])
        _sh(n + ["link", "set", "eth0", "up"])

    def _start_holder(self, t):
        script = ("mount -t tmpfs -o mode=0755 tmpfs /run && "
                  "mkdir -p /run/dbus /run/avahi-daemon && echo ready && exec sleep infinity")
        p = subprocess.Popen(["ip", "netns", "exec", t.ns, "unshare", "-m",
                              "--propagation", "private", "sh", "-c", script],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        self.procs.append(p)
        t.holder = p
        line = p.stdout.readline()  # sh prints "ready" or exits (EOF)
        if line.strip() != "ready":
            raise RuntimeError(f"till {t.name}: namespace holder failed: {p.stderr.read()}")

    def _start_dbus(self, t):
        log = open(os.path.join(t.dir, "dbus.log"), "w")
        t.dbus = self.run_in(t.name, ["dbus-daemon", "--system", "--nofork", "--nopidfile"],
                             stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(lambda: os.path.exists(t.runpath("dbus/system_bus_socket")), 10,
                   f"dbus-daemon of {t.name}")

    # ---- avahi -----------------------------------------------------------

    def avahi_log(self, name):
        return os.path.join(self.tills[name].dir, "avahi.log")

    def start_avahi(self, name):
        t = self.tills[name]
        conf = os.path.join(t.dir, "avahi-daemon.conf")
        with open(conf, "w") as f:
            f.write(AVAHI_CONF.format(name=name, host=f"tmlab-{name}",
                                      ipv6="yes" if self.ipv6 else "no"))
        try:  # a pid file left by a killed daemon would make it refuse to start
            os.unlink(t.runpath("avahi-daemon/pid"))
        except FileNotFoundError:
            pass
        log = open(self.avahi_log(name), "a")
        log.write(f"---- netlab: starting avahi-daemon at {time.time():.3f}\n")
        log.flush()
        t.avahi = self.run_in(name, ["avahi-daemon", "--no-drop-root", "--no-chroot",
                                     "--no-rlimits", "-f", conf],
                              stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def wait_avahi_ready(self, name, timeout=15):
        """Waits until the current avahi-daemon of name has finished startup."""
        path = self.avahi_log(name)

        def ready():
            with open(path) as f:
                tail = f.read().rsplit("---- netlab: starting", 1)[-1]
            if self.tills[name].avahi.poll() is not None:
                raise AssertionError(f"avahi-daemon of {name} exited: {tail}")
            return "Server startup complete" in tail
        wait_until(ready, timeout, f"avahi-daemon of {name} to start")

    def stop_avahi(self, name):
        """SIGTERM, as systemd would: avahi sends goodbye packets first."""
        t = self.tills[name]
        if t.avahi is not None:
            _kill_group(t.avahi, grace=5)
            t.avahi = None

    def restart_avahi(self, name, wait=True):
        self.stop_avahi(name)
        self.start_avahi(name)
        if wait:
            self.wait_avahi_ready(name)

    # ---- running things and pulling cables -------------------------------

    def run_in(self, name, argv, **popen_kw):
        """Popen of argv inside till name's net and mount namespaces. The
        process gets its own session so cleanup can kill its whole group."""
        t = self.tills[name]
        popen_kw.setdefault("start_new_session", True)
        p = subprocess.Popen(["nsenter", "-t", str(t.holder.pid), "-m", "-n", "--"] + list(argv),
                             **popen_kw)
        self.procs.append(p)
        return p

    def exec_in(self, name, argv, timeout=20):
        """Runs argv in till name to completion; returns CompletedProcess."""
        t = self.tills[name]
        return subprocess.run(["nsenter", "-t", str(t.holder.pid), "-m", "-n", "--"] + list(argv),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)

    def link(self, name, up, side="bridge"):
        """Plugs (up=True) or pulls (up=False) till name's LAN cable.

        side="bridge" downs the switch port: the till's eth0 keeps its
        address but loses carrier, as with a real cable pull. side="till"
        downs eth0 itself (an admin `ip link set down`), which the till's
        avahi-daemon notices and withdraws from."""
        t = self.tills[name]
        state = "up" if up else "down"
        if side == "bridge":
            _sh(["ip", "-n", self.bridge_ns, "link", "set", t.port, state])
        elif side == "till":
            _sh(["ip", "-n", t.ns, "link", "set", "eth0", state])
        else:
            raise ValueError("side must be 'bridge' or 'till'")

    def ip(self, name):
        return self.tills[name].ip

    def ns(self, name):
        return self.tills[name].ns
