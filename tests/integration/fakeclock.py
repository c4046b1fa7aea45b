"""fakeclock - give a tillmeshd its own wall clock with libfaketime.

Used by tmharness (loopback tests) and deploy/lab/labnet.py (the store lab,
which installs this file next to itself). Standard library only.

A process started with env(stamp_file) reads its wall-clock offset from
stamp_file (libfaketime re-reads it at most once a second, so rewriting the
file steps the clock of the running process, as an NTP step or `date -s`
would); its monotonic clock stays real, so the daemon's timers keep working.
The file always holds a plain offset ("-600s", "+0s"): a date such as
2000-01-01 is turned into the offset that shows that date now.
"""
import calendar
import os
import re
import time

LIB = os.environ.get("TM_FAKETIME_LIB", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
SPEC_HELP = ("an offset like -10m, -600s, -1h, +1d, +2y, ok (= +0), or a date like "
             "2000-01-01 or '@2000-01-01 00:00:00' (UTC) that the clock shows now")


class FaketimeMissing(RuntimeError):
    pass


def clock_offset_s(spec, now=None):
    """A clock spec -> whole seconds to add to the real wall clock.
    Raises ValueError saying what is accepted."""
    t = str(spec).strip()
    if t in ("ok", "0", "+0", "-0"):
        return 0
    m = re.fullmatch(r"([+-])(\d+(?:\.\d+)?)([smhdy]?)", t)
    if m:
        mult = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}[m.group(3)]
        v = float(m.group(2)) * mult
        if v > 200 * 365 * 86400:
            raise ValueError(f"{spec!r}: more than 200 years away")
        return int(-v if m.group(1) == "-" else v)
    d = t.lstrip("@").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            target = calendar.timegm(time.strptime(d, fmt))
        except ValueError:
            continue
        if target < 0:
            raise ValueError(f"{spec!r}: before 1970")
        return int(target - (now if now is not None else time.time()))
    raise ValueError(f"{spec!r}: a clock is {SPEC_HELP}")


def describe(offset_s):
    """-600 -> '-10m', 86400 -> '+1d', 0 -> 'ok'; else seconds."""
    if offset_s == 0:
        return "ok"
    sign = "+" if offset_s > 0 else "-"
    a = abs(offset_s)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if a % n == 0:
            return f"{sign}{a // n}{unit}"
    if a > 366 * 86400:
        return time.strftime("%Y-%m-%d", time.gmtime(time.time() + offset_s))
    return f"{sign}{a}s"


def require():
    if not os.path.exists(LIB):
        raise FaketimeMissing(f"libfaketime not installed ({LIB} missing; "
                              "apt-get install libfaketime, or sh scripts/deps.sh)")


def env(stamp_file, base=None):
    """Environment for a process whose wall clock follows stamp_file.
    Raises FaketimeMissing when libfaketime is not installed."""
    require()
    e = dict(os.environ if base is None else base)
    e["LD_PRELOAD"] = LIB + (" " + e["LD_PRELOAD"] if e.get("LD_PRELOAD") else "")
    e["FAKETIME_TIMESTAMP_FILE"] = stamp_file
    # Re-read the file at most once a second: FAKETIME_NO_CACHE=1 would
    # open and read it on every clock call (the daemon's loop makes several
    # per wake-up).
    e["FAKETIME_CACHE_DURATION"] = "1"
    e.pop("FAKETIME_NO_CACHE", None)
    e["DONT_FAKE_MONOTONIC"] = "1"
    e.pop("FAKETIME", None)
    # An ASan build wants its runtime first among the preloads; libfaketime
    # in front of it works (ASan's clock_gettime interceptor calls on into
    # libfaketime's), so only that start-up check is switched off.
    e["ASAN_OPTIONS"] = ":".join(x for x in (e.get("ASAN_OPTIONS"),
                                             "verify_asan_link_order=0") if x)
    return e


def write_stamp(path, offset_s):
    """Writes the offset atomically (rename): a reader sees old or new."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{'+' if offset_s >= 0 else '-'}{abs(int(offset_s))}s\n")
    os.replace(tmp, path)
