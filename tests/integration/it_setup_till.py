#!/usr/bin/env python3
"""Setting up a till as README "Setting up a till" says: `tillmesh init` on
two tills (temporary directories here), each runs the `tillmesh trust add`
line the other's init printed, both start, a sale on one is seen on the
other. No trusted keys file is edited by hand.

Also: init's files and modes, init refusing to overwrite without --force
(and keeping FILE.old with it), trust refusing a duplicate name or key and
a malformed key, `trust list`/`remove`, the file replaced atomically with
its mode kept, and a trust added while tillmeshd runs taking effect on
SIGHUP (the till that did not trust the other gets its sale after the
reload).
"""
import json
import os
import pwd
import re
import shlex
import signal
import stat
import subprocess

from tmharness import run, wait_until, free_port, make_sale, TILLMESH, TILLMESHD


def cli(*args, check=True):
    r = subprocess.run([TILLMESH, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"tillmesh {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def set_key(conf, section, key, value):
    """Sets key in [section] (the operator's edit of ports for two tills on
    one host; trust needs no edit)."""
    out, sec, done = [], None, False
    with open(conf) as f:
        lines = f.read().split("\n")
    for ln in lines:
        m = re.match(r"\[(\w+)\]", ln)
        if m:
            if sec == section and not done:
                out.append(f"{key} = {value}")
                done = True
            sec = m.group(1)
        if sec == section and not done and re.match(rf"(# )?{key} = ", ln):
            ln, done = f"{key} = {value}", True
        out.append(ln)
    if not done:
        out.append(f"[{section}]\n{key} = {value}")
    with open(conf, "w") as f:
        f.write("\n".join(out))


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class SetupTill:
    def __init__(self, root, name):
        self.name = name
        self.etc = os.path.join(root, name, "etc")
        self.data = os.path.join(root, name, "data")
        self.conf = os.path.join(self.etc, "tillmeshd.conf")
        self.trusted = os.path.join(self.etc, "trusted_keys")
        self.api_port, self.mesh_port = free_port(), free_port()
        self.proc = None
        self.log = os.path.join(root, name, "tillmeshd.log")

    def init(self, *extra):
        return cli("init", "--store", "store-setup", "--name", self.name, "--dir", self.etc,
                   "--data", self.data, "--user", pwd.getpwuid(os.geteuid()).pw_name, *extra,
                   check=False)

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([TILLMESHD, "-c", self.conf], stdout=logf, stderr=logf)
        logf.close()
        wait_until(self.api_ok, 30, f"{self.name} API")

    def api_ok(self):
        assert self.proc.poll() is None, f"{self.name} exited:\n{self.tail()}"
        return cli("--api", f"127.0.0.1:{self.api_port}", "status", check=False).returncode == 0

    def tail(self):
        with open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-30:])

    def has_sale(self, sid):
        return cli("--api", f"127.0.0.1:{self.api_port}", "sale", "get", sid,
                   check=False).returncode == 0


def trust_line(init_out):
    """The last line of init's output, as argv for tillmesh."""
    last = init_out.strip().split("\n")[-1]
    argv = shlex.split(last)
    assert argv[:3] == ["tillmesh", "trust", "add"] and len(argv) == 6, last
    return argv[3:]


def setup_till(lab):
    root = lab.root
    a, b = SetupTill(root, "till-a"), SetupTill(root, "till-b")
    ra = a.init()
    assert ra.returncode == 0, ra.stderr
    rb = b.init()
    assert rb.returncode == 0, rb.stderr
    for t in (a, b):
        assert mode(os.path.join(t.etc, f"{t.name}.key")) == 0o600
        assert mode(t.conf) == 0o640
        assert mode(os.path.join(t.etc, f"{t.name}.pub")) == 0o644
        assert mode(t.data) == 0o700
        r = subprocess.run([TILLMESHD, "-n", "-c", t.conf], capture_output=True, text=True)
        assert r.returncode == 0 and "configuration OK" in r.stdout, r
        with open(t.conf) as f:
            conf = f.read()
        for sec in ("[node]", "[mesh]", "[erp]", "[discovery]", "[peers]"):
            assert sec in conf, f"init's config lacks {sec}"
    a_line, b_line = trust_line(ra.stdout), trust_line(rb.stdout)
    assert a_line[0] == "till-a" and b_line[0] == "till-b"

    # A second init refuses and changes nothing; --force keeps FILE.old.
    key_a = os.path.join(a.etc, "till-a.key")
    with open(key_a) as f:
        secret = f.read()
    r = a.init()
    assert r.returncode == 4 and "--force" in r.stderr and "exists" in r.stderr, r
    with open(key_a) as f:
        assert f.read() == secret
    c = SetupTill(root, "till-c")
    assert c.init().returncode == 0
    r = c.init("--force")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(c.etc, "till-c.key")) as f, \
            open(os.path.join(c.etc, "till-c.key.old")) as g:
        assert f.read() != g.read(), "--force kept the old key"
    assert len([ln for ln in open(c.trusted) if ln.startswith("till-c ")]) == 1
    # As root, --user gets the secret key and the data, its group the config.
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        d = SetupTill(root, "till-d")
        r = cli("init", "--store", "store-setup", "--name", "till-d", "--dir", d.etc,
                "--data", d.data, "--user", "nobody")
        key = os.stat(os.path.join(d.etc, "till-d.key"))
        assert (key.st_uid, stat.S_IMODE(key.st_mode)) == (nobody.pw_uid, 0o600), key
        assert os.stat(d.data).st_uid == nobody.pw_uid
        conf = os.stat(d.conf)
        assert (conf.st_uid, conf.st_gid) == (0, nobody.pw_gid), conf
        assert "owner nobody" in r.stdout, r.stdout
    else:
        print("NOTE: not root: --user ownership not checked", flush=True)

    # Two tills on one host: their own ports, static peers (no mDNS here).
    for t, other in ((a, b), (b, a)):
        set_key(t.conf, "node", "api_listen", f"127.0.0.1:{t.api_port}")
        set_key(t.conf, "mesh", "listen", f"tcp://127.0.0.1:{t.mesh_port}")
        set_key(t.conf, "mesh", "heartbeat_ms", "100")
        set_key(t.conf, "mesh", "peer_timeout_ms", "400")
        set_key(t.conf, "discovery", "mdns", "no")
        set_key(t.conf, "peers", other.name, f"tcp://127.0.0.1:{other.mesh_port}")

    # trust add: a trusts b (before start); b trusts a only later.
    r = cli("--config", a.conf, "trust", "add", *b_line)
    assert "SIGHUP" in r.stdout and "reload" in r.stdout, r.stdout
    m0 = mode(a.trusted)
    # The same line again: nothing changes. The name with another key, or
    # the key under another name: refused. A malformed key: refused.
    with open(a.trusted) as f:
        before = f.read()
    r = cli("--config", a.conf, "trust", "add", *b_line)
    assert "nothing changed" in r.stdout, r.stdout
    r = cli("--config", a.conf, "trust", "add", "till-b", a_line[1], a_line[2], check=False)
    assert r.returncode == 4 and "already trusts" in r.stderr, r
    r = cli("--config", a.conf, "trust", "add", "till-x", *b_line[1:], check=False)
    assert r.returncode == 4 and "under the name till-b" in r.stderr, r
    r = cli("--config", a.conf, "trust", "add", "till-x", "short", b_line[2], check=False)
    assert r.returncode == 2 and "Z85" in r.stderr, r
    with open(a.trusted) as f:
        assert f.read() == before, "a refused add changed the file"
    assert mode(a.trusted) == m0
    assert not [n for n in os.listdir(a.etc) if n.startswith("trusted_keys.")], \
        os.listdir(a.etc)
    ls = cli("--config", a.conf, "trust", "list").stdout
    assert "till-a" in ls and "till-b" in ls and "2 till(s)" in ls, ls
    # list/remove with --file, on a scratch copy.
    scratch = os.path.join(root, "scratch_keys")
    with open(scratch, "w") as f:
        f.write(before)
    cli("trust", "remove", "till-b", "--file", scratch)
    assert "till-b" not in cli("trust", "list", "--file", scratch).stdout
    r = cli("trust", "remove", "till-b", "--file", scratch, check=False)
    assert r.returncode == 4 and "no till named till-b" in r.stderr, r

    try:
        both_ways(a, b, a_line, root)
    finally:
        for t in (a, b):
            if t.proc and t.proc.poll() is None:
                t.proc.kill()
                t.proc.wait(10)


def both_ways(a, b, a_line, root):
    # Start both: b does not trust a yet, so a's sale stays on a.
    b.start()
    a.start()
    sid = make_sale()["sale_id"]
    with open(os.path.join(root, "sale.json"), "w") as f:
        json.dump(make_sale(sale_id=sid), f)
    cli("--api", f"127.0.0.1:{a.api_port}", "sale", "add", os.path.join(root, "sale.json"))
    assert a.has_sale(sid)
    # b trusts a now, and a reload makes it so.
    r = cli("--config", b.conf, "trust", "add", *a_line)
    b.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b.has_sale(sid), 30, "till-b to get till-a's sale after trust add + SIGHUP")
    # And the other way: a sale on b reaches a.
    sid2 = make_sale()["sale_id"]
    with open(os.path.join(root, "sale2.json"), "w") as f:
        json.dump(make_sale(sale_id=sid2), f)
    cli("--api", f"127.0.0.1:{b.api_port}", "sale", "add", os.path.join(root, "sale2.json"))
    wait_until(lambda: a.has_sale(sid2), 30, "till-a to get till-b's sale")
    for t in (a, b):
        t.proc.send_signal(signal.SIGTERM)
        assert t.proc.wait(20) == 0, t.tail()


if __name__ == "__main__":
    run(setup_till, [])
