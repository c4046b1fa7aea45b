#!/usr/bin/env python3
"""delaybox - hold every frame a network device sends for a set time, in
userspace, because the kernels we run the lab on have no netem.

    delaybox.py --dev eth0 --delay-ms 200 [--jitter-ms 20] [--limit 5000]

Run it inside the namespace that owns the device (`ip netns exec NS ...`).
Only the kernel pieces these machines do have are used:

    dev egress (clsact, cls_bpf "mark is not ours") --mirred redirect--> tap
    this process reads the tap "dly-<dev>", keeps each frame until
    now >= arrival + delay, then sends it out of dev through an AF_PACKET
    socket with SO_MARK set; the filter does not match it, so it goes out

Frames re-enter dev's normal transmit path, so a tbf rate limit on dev (the
lab's rate=) still applies after the delay, and iptables loss (the lab's
loss=) has already been applied before it. Frames leave in the order they
arrived (jitter never reorders: a link, not a scrambler). When the queue
holds --limit frames, new frames are dropped, as netem does (its limit is
1000); the count of drops is printed at exit.

It delays one direction, dev's egress. The lab runs one box at each end of a
cable, so both directions are delayed, like netem on both ends.

Prints "ready" on stdout once the redirect is in place. SIGTERM/SIGINT:
removes the tc filters (the cable works undelayed again), sends what it
still holds at once, prints counters and exits 0. After a kill -9 the filters still point at the vanished tap and
the cable drops everything until `tc qdisc del dev DEV clsact` (the lab's
`clear` always does that).
"""
import argparse
import collections
import fcntl
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SO_MARK = 36
MARK = 0x7E11  # frames this box re-sends; the first egress filter lets them pass


def tc(*args, check=True):
    r = subprocess.run(["tc"] + list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"tc {' '.join(args)}: {r.stderr.strip()}")
    return r


def ip(*args):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    # the tap must never speak for itself (IPv6 DAD, router solicitations):
    # whatever it "sends" is read here and would be put on the wire
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass  # no IPv6 in this kernel: nothing to silence
    ip("link", "set", "dev", name, "arp", "off", "up")
    return fd


# cls_bpf with classic BPF: "skb->mark == MARK ? no match : match". The
# kernels here have neither u32's mark match, nor fw, matchall or gact, but
# they do have cls_bpf and mirred. The ancillary load SKF_AD_OFF+SKF_AD_MARK
# (SKF_AD_MARK = 20, so k = 0xfffff014) reads skb->mark; returning -1 means "match, run the actions".
NOT_OURS_BPF = f"4,32 0 0 {0xFFFFF014},21 0 1 {MARK},6 0 0 0,6 0 0 {0xFFFFFFFF}"


def install(dev, tap):
    tc("qdisc", "del", "dev", dev, "clsact", check=False)
    tc("qdisc", "add", "dev", dev, "clsact")
    tc("filter", "add", "dev", dev, "egress", "prio", "1", "protocol", "all", "bpf",
       "bytecode", NOT_OURS_BPF, "action", "mirred", "egress", "redirect", "dev", tap)


def uninstall(dev):
    tc("qdisc", "del", "dev", dev, "clsact", check=False)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", required=True, help="device whose egress is delayed")
    ap.add_argument("--delay-ms", type=float, required=True, help="added one-way delay")
    ap.add_argument("--jitter-ms", type=float, default=0.0,
                    help="uniform extra 0..J ms per frame (order kept)")
    ap.add_argument("--limit", type=int, default=5000, help="frames held at most")
    ap.add_argument("--tap", help="tap name (default dly-<dev>, cut to 15 chars)")
    a = ap.parse_args(argv)
    if a.delay_ms < 0 or a.delay_ms > 10000 or a.jitter_ms < 0 or a.jitter_ms > 10000:
        ap.error("--delay-ms and --jitter-ms must be within 0..10000")
    if a.limit < 1:
        ap.error("--limit must be at least 1")
    return a


class Box:
    """The queue and its counters; run() is the loop."""

    def __init__(self, a, tap, out):
        self.a, self.tap, self.out = a, tap, out
        self.q = collections.deque()  # (due, frame), due never decreasing
        self.last_due = 0.0
        self.n_in = self.n_out = self.n_drop = self.n_err = 0

    def send_due(self, now):
        while self.q and self.q[0][0] <= now:
            self.send(self.q.popleft()[1])

    def send(self, frame):
        try:
            self.out.send(frame)
            self.n_out += 1
        except OSError:
            self.n_err += 1  # tbf queue full or the cable pulled: lost, as on a wire

    def take(self, now):
        delay, jitter = self.a.delay_ms / 1000.0, self.a.jitter_ms / 1000.0
        for _ in range(256):  # drain what is there, but keep sending on time
            try:
                frame = os.read(self.tap, 65536)
            except BlockingIOError:
                return
            self.n_in += 1
            if len(self.q) >= self.a.limit:
                self.n_drop += 1
                continue
            due = now + delay + (random.random() * jitter if jitter else 0.0)
            self.last_due = max(self.last_due, due)
            self.q.append((self.last_due, frame))

    def run(self, wake):
        while True:
            self.send_due(time.monotonic())
            timeout = max(0.0, self.q[0][0] - time.monotonic()) if self.q else None
            r, _, _ = select.select([self.tap, wake], [], [], timeout)
            if wake in r:
                return
            if self.tap in r:
                self.take(time.monotonic())

    def counters(self):
        return (f"in={self.n_in} out={self.n_out} dropped(limit)={self.n_drop} "
                f"send-errors={self.n_err}")


def main(argv):
    a = parse_args(argv)
    tap_name = (a.tap or f"dly-{a.dev}")[:15]
    try:
        socket.if_nametoindex(a.dev)
    except OSError:
        raise RuntimeError(f"no network device {a.dev!r} in this namespace") from None
    # a signal writes a byte to this pipe, which wakes the select at once
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    tap = open_tap(tap_name)
    out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: send only
    box = Box(a, tap, out)
    try:
        out.setsockopt(socket.SOL_SOCKET, SO_MARK, MARK)
        out.bind((a.dev, 0))
        out.setblocking(False)
        install(a.dev, tap_name)
        print("ready", flush=True)
        box.run(wake_r)
    finally:
        # undelayed from now on; what is still held goes out at once rather
        # than being lost with the box
        uninstall(a.dev)
        box.take(time.monotonic())
        held = len(box.q)
        while box.q:
            box.send(box.q.popleft()[1])
        os.close(tap)
        out.close()
        print(f"delaybox {a.dev}: {box.counters()} flushed-at-exit={held}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (RuntimeError, OSError) as e:
        print(f"delaybox: {e}", file=sys.stderr)
        sys.exit(1)
