#!/usr/bin/env python3
"""erp_stub - a stand-in ERP that speaks the tillmesh ERP contract (docs/erp.md).

A real HTTP server (plain HTTP, meant for loopback) that books sales exactly
once, replays answers by Idempotency-Key, records every delivery attempt so
tests can tell a legitimate re-delivery (a lost answer, retried with the same
key) from a double booking, and can be told to fail, stall, drop answers,
answer slowly, play dead or reject a sale.

    erp_stub.py --listen 127.0.0.1:0 --db /tmp/erp.sqlite [--token T]
                [--fail-mode MODE] [--port-file F]

Routes (the contract): GET /health, POST /sales, PUT /customers/{id},
GET /catalogue?since=CURSOR&limit=N.
Control routes (tests and demos only, no token): GET /_stub/stats[?detail=1],
POST /_stub/mode, POST /_stub/reset, GET|POST /_stub/catalogue (change prices,
add or drop products, generate many, serve bad pages).

Python 3 standard library only. Also importable: `ErpStub` starts and drives
the stub as a subprocess for tests (see tests/integration/it_erp_stub.py).
"""
import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

MAX_BODY = 16 * 1024 * 1024          # bytes; larger bodies get 413 unread
MAX_KEY = 128                        # Idempotency-Key length
MAX_ID = 128                         # customer id length in the path
STATUS_MAX = 1000                    # ids per POST /sales/status
STALL_MAX_S = 600                    # a stalled request is held at most this long
LINGER_S = 1.0                       # how long to drain a refused body before closing
MODES = ("ok", "fail500", "stall", "drop_after_accept", "slow", "down", "reject",
         # bad answers (docs/erp.md: what the forwarder must survive without amplifying)
         "batch413", "batch400", "empty200", "html200", "foreign200", "redirect302", "redirect302_all")
CAPTIVE_URL = "http://captive.invalid/login"   # where redirect302 sends the client
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
KEY_RE = re.compile(r"^[\x21-\x7e]{1,%d}$" % MAX_KEY)   # printable ASCII, no spaces

SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    sale_id   TEXT PRIMARY KEY,          -- lower-case uuid
    first_key TEXT NOT NULL,             -- Idempotency-Key of the request that booked it
    body      TEXT NOT NULL,             -- the sale, canonical JSON
    booked_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id            INTEGER PRIMARY KEY,
    sale_id       TEXT NOT NULL,         -- as sent (lower-cased when it is a uuid)
    key           TEXT NOT NULL,
    at            REAL NOT NULL,
    outcome       TEXT NOT NULL,         -- accepted|duplicate|replay|rejected|key_reused|
                                         -- fail500|down|stall (+ ':dropped' when the answer was dropped)
    booked_before INTEGER NOT NULL,      -- the sale was already booked when this attempt arrived
    mismatch      INTEGER NOT NULL DEFAULT 0,  -- duplicate whose content differs from the booking
    till          TEXT,                  -- X-Tillmesh-Till header (the forwarding till), if sent
    epoch         TEXT                   -- X-Tillmesh-Epoch header (forwarder epoch), if sent
);
CREATE INDEX IF NOT EXISTS deliveries_sale ON deliveries(sale_id);
CREATE TABLE IF NOT EXISTS catalogue (    -- the ERP's products; version is one sequence for all
    sku     TEXT PRIMARY KEY,
    body    TEXT NOT NULL,               -- the product JSON without version ('' when deleted)
    version INTEGER NOT NULL UNIQUE,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY,
    body_sha256 TEXT NOT NULL,           -- of the canonical JSON of the request body
    response    TEXT NOT NULL,           -- the 200 answer, replayed verbatim
    at          REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (    -- one row per /sales request that reached the handler
    id      INTEGER PRIMARY KEY,
    at      REAL NOT NULL,
    status  INTEGER NOT NULL,            -- the status answered (0: no answer: stall, dropped)
    n       INTEGER,                     -- sales in the body, when it parsed
    key     TEXT,
    mode    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
    id      TEXT PRIMARY KEY,
    body    TEXT NOT NULL,               -- last stored version
    puts    INTEGER NOT NULL,            -- PUTs received (including stale ones)
    version INTEGER,                     -- X-Tillmesh-Version of the stored body, if sent
    stale   INTEGER NOT NULL DEFAULT 0   -- PUTs ignored because their version was older
);
"""


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same_sale(booked_json, sale):
    """A re-delivery is the same sale when it differs at most in `review`:
    the flag the till derives from the sales it holds (docs/erp.md), which a
    merge may set or clear between two sends."""
    try:
        booked = json.loads(booked_json)
    except ValueError:
        return False
    strip = lambda d: {k: v for k, v in d.items() if k != "review"}  # noqa: E731
    return canonical(strip(booked)) == canonical(strip(sale))


def _no_dup_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"key {k!r} given twice")
        d[k] = v
    return d


class BadJson(Exception):
    pass


def parse_json(raw):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadJson(f"body is not UTF-8 at byte {e.start}")
    try:
        return json.loads(text, object_pairs_hook=_no_dup_keys)
    except json.JSONDecodeError as e:
        raise BadJson(f"{e.msg} at line {e.lineno} column {e.colno}")
    except (ValueError, RecursionError) as e:
        raise BadJson(str(e))


class Mode:
    """The current fault mode; `count` limits it to the next N /sales requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.set("ok")

    def set(self, mode, sale_id=None, delay_ms=None, count=None):
        with self.lock:
            self.mode, self.sale_id, self.delay_ms, self.count = mode, sale_id, delay_ms, count

    def peek(self):
        with self.lock:
            return self.mode

    def take(self):
        """For a /sales request: returns (mode, sale_id, delay_ms) and uses up one count."""
        with self.lock:
            cur = (self.mode, self.sale_id, self.delay_ms)
            if self.count is not None and self.mode != "ok":
                self.count -= 1
                if self.count <= 0:
                    self.mode, self.sale_id, self.delay_ms, self.count = "ok", None, None, None
            return cur

    def describe(self):
        with self.lock:
            return {"mode": self.mode, "sale_id": self.sale_id, "delay_ms": self.delay_ms,
                    "count": self.count}


class Store:
    """The stub's SQLite file. One connection, serialised by a lock; every
    change is committed before the answer is sent."""

    status_requests = 0     # POST /sales/status answered (not kept across restarts)

    def __init__(self, path):
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")   # survives kill -9 of the stub
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        # GET /health counts (in memory: the probe load, docs/erp.md), by
        # the X-Tillmesh-Till header the probes carry ("-" without one).
        self.health = {}

    def note_health(self, till):
        with self.lock:
            self.health[till or "-"] = self.health.get(till or "-", 0) + 1

    def close(self):
        with self.lock:
            self.db.close()

    def reset(self):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            for t in ("bookings", "deliveries", "idempotency", "customers", "requests", "catalogue"):
                self.db.execute(f"DELETE FROM {t}")
            self.db.execute("COMMIT")

    def is_booked(self, sid):
        return self.db.execute("SELECT body FROM bookings WHERE sale_id = ?", (sid,)).fetchone()

    def record(self, rows, key, outcome, meta, now):
        """One deliveries row per sale in `rows` (list of (sale_id_or_None, sale))."""
        for sid, _ in rows:
            booked = sid is not None and self.is_booked(sid) is not None
            self.db.execute("INSERT INTO deliveries (sale_id, key, at, outcome, booked_before, till, epoch)"
                            " VALUES (?,?,?,?,?,?,?)",
                            (sid if sid is not None else "", key, now, outcome, int(booked),
                             meta.get("till"), meta.get("epoch")))

    def note_request(self, status, n, key, mode):
        with self.lock:
            self.db.execute("INSERT INTO requests (at, status, n, key, mode) VALUES (?,?,?,?,?)",
                            (time.time(), status, n, key, mode))

    def requests(self, since):
        with self.lock:
            rows = self.db.execute("SELECT at, status, n, key, mode FROM requests WHERE at >= ?"
                                   " ORDER BY id DESC LIMIT 100000", (since,)).fetchall()
        return [{"at": a, "status": st, "n": n, "key": k, "mode": m} for a, st, n, k, m in reversed(rows)]

    def stats(self, detail, mode):
        with self.lock:
            q = lambda sql, *a: self.db.execute(sql, a).fetchone()[0]
            out = {
                "booked": q("SELECT count(*) FROM bookings"),
                "deliveries": q("SELECT count(*) FROM deliveries"),
                "redeliveries": q("SELECT count(*) FROM deliveries WHERE booked_before"),
                # re-deliveries under another key than the one that booked the sale
                # (a replay under the same key is the contract working; these
                # are kept single only by the sale_id dedup)
                "redeliveries_new_key": q("SELECT count(*) FROM deliveries d JOIN bookings b"
                                          " USING (sale_id) WHERE d.booked_before"
                                          " AND d.key != b.first_key"),
                "status_requests": self.status_requests,
                "mismatches": q("SELECT count(*) FROM deliveries WHERE mismatch"),
                "keys": q("SELECT count(*) FROM idempotency"),
                "customers": q("SELECT count(*) FROM customers"),
                "customer_puts": q("SELECT coalesce(sum(puts), 0) FROM customers"),
                "sales_requests": q("SELECT count(*) FROM requests"),
                "outcomes": dict(self.db.execute(
                    "SELECT outcome, count(*) FROM deliveries GROUP BY outcome ORDER BY outcome")),
                "mode": mode["mode"],
                "health_requests": sum(self.health.values()),
                "health_by_till": dict(self.health),
                "mode_args": {k: v for k, v in mode.items() if k != "mode" and v is not None},
            }
            if detail:
                by = {}
                def entry(sid):
                    return by.setdefault(sid, {"deliveries": 0, "redeliveries": 0, "keys": [],
                                               "outcomes": [], "booked": False, "first_key": None,
                                               "tills": [], "epochs": []})
                for sid, key, outcome, before, till, epoch in self.db.execute(
                        "SELECT sale_id, key, outcome, booked_before, till, epoch FROM deliveries ORDER BY id"):
                    e = entry(sid)
                    e["deliveries"] += 1
                    e["redeliveries"] += before
                    e["outcomes"].append(outcome)
                    for lst, v in ((e["keys"], key), (e["tills"], till), (e["epochs"], epoch)):
                        if v is not None and v not in lst:
                            lst.append(v)
                for sid, first_key in self.db.execute("SELECT sale_id, first_key FROM bookings"):
                    e = entry(sid)
                    e["booked"], e["first_key"] = True, first_key
                out["by_sale"] = by
                out["by_customer"] = {
                    cid: {"puts": puts, "stale": stale, "version": ver, "body": json.loads(body)}
                    for cid, body, puts, ver, stale in self.db.execute(
                        "SELECT id, body, puts, version, stale FROM customers")}
            return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tillmesh-erp-stub/1"
    sys_version = ""

    # ---- plumbing -------------------------------------------------------
    def log_message(self, fmt, *args):      # replaced by log_request_line
        pass

    def log_request_line(self, status, key=None, n=None, note=None):
        parts = [time.strftime("%H:%M:%S"), self.command or "-", self.path or "-", str(status)]
        if key is None and getattr(self, "headers", None) is not None:
            key = (self.headers.get("Idempotency-Key") or "")[:MAX_KEY] or None
        parts.append(f"key={key}" if key else "key=-")
        parts.append(f"n={n}" if n is not None else "n=-")
        if note:
            parts.append(note)
        sys.stderr.write("erp-stub: " + " ".join(parts) + "\n")
        sys.stderr.flush()

    def send_response(self, code, message=None):
        self.answered = code
        super().send_response(code, message)

    def send_json(self, status, obj, close=False, extra=None):
        body = (obj if isinstance(obj, str) else canonical(obj)).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, key=None, n=None, close=False, extra=None):
        self.send_json(status, {"error": code, "message": message}, close=close, extra=extra)
        self.log_request_line(status, key, n, code)

    def refuse_unread(self, status, code, message, extra=None):
        """Answers without reading the body, then closes the connection
        gracefully (FIN, then drain briefly) so that the client sees the answer."""
        self.error(status, code, message, close=True, extra=extra)
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_S
            self.connection.settimeout(0.1)
            while time.monotonic() < deadline:
                try:
                    if not self.connection.recv(65536):
                        break
                except socket.timeout:
                    continue
        except OSError:
            pass

    def body_length(self):
        """Returns the announced length, 'chunked', or raises ValueError."""
        te = self.headers.get("Transfer-Encoding", "")
        if te:
            if te.strip().lower() != "chunked":
                raise ValueError("unsupported Transfer-Encoding")
            return "chunked"
        cl = self.headers.get("Content-Length")
        if cl is None:
            return 0
        if not cl.strip().isdigit():
            raise ValueError("bad Content-Length")
        return int(cl)

    def read_body(self):
        """Returns the body bytes, or None when it is over MAX_BODY (chunked)."""
        n = self.body_length()
        if n != "chunked":
            return self.rfile.read(n) if n else b""
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out) if len(out) <= MAX_BODY else None
            if len(out) + size > MAX_BODY * 4:
                raise ValueError("chunked body far over the limit")
            chunk = self.rfile.read(size)
            if len(out) <= MAX_BODY:
                out += chunk
            self.rfile.readline(1024)

    # ---- routing ----------------------------------------------------------
    CONTROL = {"/_stub/stats": {"GET": "stats"},
               "/_stub/catalogue": {"GET": "cat_stats", "POST": "cat_change"},
               "/_stub/requests": {"GET": "requests"},
               "/_stub/mode": {"POST": "mode", "GET": "get_mode"},
               "/_stub/reset": {"POST": "reset"},
               "/_stub/forget": {"POST": "forget"}}
    CONTRACT = {"/health": {"GET": "health", "HEAD": "health"},
                "/sales": {"POST": "sales"},
                "/sales/status": {"POST": "sales_status"},
                "/catalogue": {"GET": "catalogue"}}

    def route(self):
        """Returns (handler name, arg), or (None, Allow header) / (None, None)."""
        path = urllib.parse.urlsplit(self.path).path
        m = self.command
        methods = self.CONTROL.get(path)
        base = self.server.base
        rel = None
        if methods is None and path.startswith(base + "/"):
            rel = path[len(base):]
            methods = self.CONTRACT.get(rel)
        if methods is not None:
            name = methods.get(m)
            return (name, None) if name else (None, ", ".join(sorted(methods)))
        if rel is not None and rel.startswith("/customers/"):
            if m != "PUT":
                return None, "PUT"
            return "customer", urllib.parse.unquote(rel[len("/customers/"):])
        return None, None

    def preflight(self):
        """Checks that need no body: route, token, size. Sends the error and
        returns False when the request is refused; else returns True."""
        name, arg = self.route()
        if name is None:
            if arg:
                self.refuse_unread(405, "method_not_allowed", f"{self.command} not allowed here",
                                   extra={"Allow": arg})
            else:
                self.refuse_unread(404, "not_found", f"no route {self.path}")
            return False
        self.route_name, self.route_arg = name, arg
        if name in ("sales", "customer", "sales_status", "catalogue") and self.server.token is not None:
            auth = self.headers.get("Authorization", "")
            want = "Bearer " + self.server.token
            if not hmac.compare_digest(auth.encode(), want.encode()):
                self.refuse_unread(401, "unauthorized",
                                   "missing or wrong bearer token" if auth else "no Authorization header",
                                   extra={"WWW-Authenticate": 'Bearer realm="erp"'})
                return False
        try:
            n = self.body_length()
        except ValueError as e:
            self.refuse_unread(400, "bad_request", str(e))
            return False
        if n != "chunked" and n > MAX_BODY:
            self.refuse_unread(413, "too_large", f"body of {n} bytes is over the limit of {MAX_BODY}")
            return False
        return True

    def handle_expect_100(self):
        # Refuse before the client sends the body when we already know the answer.
        if not self.preflight():
            return False
        self.preflight_done = True
        return super().handle_expect_100()

    def dispatch(self):
        self.answered, self.sales_n = 0, None
        if not getattr(self, "preflight_done", False):
            self.route_name = None
        try:
            self.dispatch_routed()
        finally:
            if self.route_name == "sales" or (self.route_name is None and
                                              urllib.parse.urlsplit(self.path).path.endswith("/sales")):
                key = (self.headers.get("Idempotency-Key") or "")[:MAX_KEY] or None
                self.server.store.note_request(self.answered, self.sales_n, key,
                                               self.server.mode.peek())

    def dispatch_routed(self):
        if not getattr(self, "preflight_done", False) and not self.preflight():
            return
        self.preflight_done = False
        try:
            getattr(self, "do_" + self.route_name)(self.route_arg)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:          # a bug in the stub: say so, keep serving
            import traceback
            traceback.print_exc()
            try:
                self.error(500, "internal", f"stub bug: {e!r}", close=True)
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = dispatch

    def read_json_body(self, key=None):
        """Returns (ok, obj). On failure the error has been sent."""
        try:
            raw = self.read_body()
        except ValueError as e:
            self.error(400, "bad_request", str(e), key=key, close=True)
            return False, None
        if raw is None:
            self.error(413, "too_large", f"body is over the limit of {MAX_BODY} bytes", key=key)
            return False, None
        try:
            return True, parse_json(raw)
        except BadJson as e:
            self.error(400, "malformed_json", str(e), key=key)
            return False, None

    # ---- the contract -----------------------------------------------------
    def do_health(self, _):
        self.server.store.note_health((self.headers.get("X-Tillmesh-Till") or "")[:64])
        if self.server.mode.peek() == "redirect302_all":
            self.send_page(302)
            self.log_request_line(302, None, None, "redirect302_all")
            return
        if self.server.mode.peek() == "down":
            self.error(503, "unavailable", "the ERP is down (stub mode down)")
            return
        self.send_json(200, {"status": "ok"})
        self.log_request_line(200)

    def do_sales(self, _):
        key = self.headers.get("Idempotency-Key")
        meta = {"till": self.headers.get("X-Tillmesh-Till") or self.headers.get("X-Tillmesh-Node"),
                "epoch": self.headers.get("X-Tillmesh-Epoch")}
        if key is None or not KEY_RE.match(key):
            self.read_body_quietly()
            self.error(400, "bad_idempotency_key",
                       f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters",
                       key=(key or "")[:40] or None)
            return
        ok, doc = self.read_json_body(key)
        if not ok:
            return
        sales = doc.get("sales") if isinstance(doc, dict) else None
        if not isinstance(sales, list):
            self.error(400, "bad_batch", 'body must be an object {"sales": [sale, ...]}', key=key)
            return
        rows = []
        for s in sales:
            sid = s.get("sale_id") if isinstance(s, dict) else None
            if isinstance(sid, str) and UUID_RE.match(sid):
                rows.append((sid.lower(), s))
            else:
                rows.append((None, s))
        n = self.sales_n = len(sales)
        mode, rej_id, delay_ms = self.server.mode.take()
        st = self.server.store
        now = time.time()
        if self.bad_answer(mode, rows, rej_id, key, meta, now):
            return

        if mode in ("fail500", "down", "stall"):
            with st.lock:
                st.db.execute("BEGIN IMMEDIATE")
                st.record(rows, key, mode, meta, now)
                st.db.execute("COMMIT")
            if mode == "fail500":
                self.error(500, "internal", "the ERP failed (stub mode fail500)", key=key, n=n)
            elif mode == "down":
                self.error(503, "unavailable", "the ERP is down (stub mode down)", key=key, n=n)
            else:
                self.stall(key, n)
            return
        if mode == "slow" and delay_ms:
            self.server.stopping.wait(delay_ms / 1000.0)

        digest = hashlib.sha256(canonical(doc).encode()).hexdigest()
        dropped = mode == "drop_after_accept"
        suffix = ":dropped" if dropped else ""
        with st.lock:
            st.db.execute("BEGIN IMMEDIATE")
            try:
                prev = st.db.execute("SELECT body_sha256, response FROM idempotency WHERE key = ?",
                                     (key,)).fetchone()
                if prev is not None and prev[0] != digest:
                    st.record(rows, key, "key_reused", meta, now)
                    st.db.execute("COMMIT")
                    status, answer, note = 422, {"error": "idempotency_key_reused",
                                                 "message": "this Idempotency-Key was used with another body"}, None
                elif prev is not None:
                    st.record(rows, key, "replay" + suffix, meta, now)
                    st.db.execute("COMMIT")
                    status, answer, note = 200, prev[1], "replay"
                else:
                    answer = self.book(rows, key, meta, now, rej_id if mode == "reject" else False, suffix)
                    answer = canonical(answer)
                    st.db.execute("INSERT INTO idempotency (key, body_sha256, response, at) VALUES (?,?,?,?)",
                                  (key, digest, answer, now))
                    st.db.execute("COMMIT")
                    status, note = 200, None
            except BaseException:
                st.db.execute("ROLLBACK")
                raise
        if status == 422:
            self.error(422, "idempotency_key_reused", answer["message"], key=key, n=n)
            return
        if dropped:
            # The booking is committed; the answer is lost on the way back.
            self.close_connection = True
            self.log_request_line("dropped", key, n, "answer dropped after commit" +
                                  (" (replay)" if note else ""))
            return
        if mode == "foreign200":
            # An adapter bug or a proxy mixing up answers: the bookings are
            # right, the answer also names a sale this request did not carry.
            a = json.loads(answer)
            a["accepted"].append(rej_id or str(uuid.uuid4()))
            answer = canonical(a)
        self.send_json(200, answer)
        a = json.loads(answer)
        self.log_request_line(200, key, n, f"accepted={len(a['accepted'])} duplicates={len(a['duplicates'])}"
                              f" rejected={len(a['rejected'])}" + (" replay" if note else ""))

    def bad_answer(self, mode, rows, sale_id, key, meta, now):
        """The modes that answer wrongly without booking anything; True when
        the request was answered here."""
        n = len(rows)
        st = self.server.store
        if mode == "batch413":
            # A proxy (or the ERP) with a body limit that a single sale fits under.
            hit, status, code = n > 1, 413, "too_large"
        elif mode == "batch400":
            # With sale_id: any request carrying that sale (a poisoned batch,
            # and the sale alone); without: any request of more than one sale.
            hit = any(sid == sale_id.lower() for sid, _ in rows) if sale_id else n > 1
            status, code = 400, "bad_batch"
        elif mode in ("empty200", "html200", "redirect302", "redirect302_all"):
            hit, status, code = True, None, None
        else:
            return False
        if not hit:
            return False
        with st.lock:
            st.db.execute("BEGIN IMMEDIATE")
            st.record(rows, key, mode, meta, now)
            st.db.execute("COMMIT")
        if status:
            self.error(status, code, f"refused by the stub ERP (mode {mode})", key=key, n=n)
        elif mode == "empty200":
            self.send_json(200, {})
            self.log_request_line(200, key, n, "empty200: {} and nothing booked")
        else:
            # A captive portal or a login proxy in front of the ERP.
            code = 200 if mode == "html200" else 302
            self.send_page(code)
            self.log_request_line(code, key, n, f"{mode}: nothing booked")
        return True

    def send_page(self, code):
        page = ('<html><head><title>Login</title></head><body>Please log in to use the'
                ' network.</body></html>\n').encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        if code == 302:
            self.send_header("Location", CAPTIVE_URL)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(page)

    def book(self, rows, key, meta, now, reject, suffix):
        """Books the new sales of a batch (inside the caller's transaction)."""
        st = self.server.store
        accepted, duplicates, rejected, seen = [], [], [], set()
        for sid, sale in rows:
            if sid is None:
                given = sale.get("sale_id") if isinstance(sale, dict) else None
                rejected.append({"sale_id": given if isinstance(given, str) else None, "status": 422,
                                 "message": "sale_id is missing or not a UUID (8-4-4-4-12 hex)"})
                st.record([(given if isinstance(given, str) else None, sale)], key,
                          "rejected" + suffix, meta, now)
                continue
            sent_id = sale["sale_id"]
            booked = st.is_booked(sid)
            outcome, mismatch = None, 0
            if booked is not None:
                outcome = "duplicate"
                mismatch = int(not same_sale(booked[0], sale))
                if sid not in seen:
                    duplicates.append(sent_id)
            elif reject is not False and (reject is None or reject.lower() == sid):
                outcome = "rejected"
                rejected.append({"sale_id": sent_id, "status": 422,
                                 "message": "rejected by the stub ERP (mode reject)"})
            else:
                outcome = "accepted"
                st.db.execute("INSERT INTO bookings (sale_id, first_key, body, booked_at) VALUES (?,?,?,?)",
                              (sid, key, canonical(sale), now))
                accepted.append(sent_id)
            seen.add(sid)
            st.db.execute("INSERT INTO deliveries (sale_id, key, at, outcome, booked_before, mismatch,"
                          " till, epoch) VALUES (?,?,?,?,?,?,?,?)",
                          (sid, key, now, outcome + suffix, int(booked is not None), mismatch,
                           meta.get("till"), meta.get("epoch")))
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    def read_body_quietly(self):
        try:
            self.read_body()
        except ValueError:
            self.close_connection = True

    def stall(self, key, n):
        """Holds the request unanswered until the client gives up (closes its
        end), the stub stops, or STALL_MAX_S passes; then closes without answer."""
        self.log_request_line("stall", key, n, "holding the request unanswered")
        sock = self.connection
        deadline = time.monotonic() + STALL_MAX_S
        while not self.server.stopping.is_set() and time.monotonic() < deadline:
            r, _, _ = select.select([sock], [], [], 0.2)
            if r:
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break               # the client closed
                except OSError:
                    break
                self.server.stopping.wait(0.2)  # pipelined data: keep holding
        self.close_connection = True
        self.log_request_line("stall-end", key, n, "client gave up or stub stopping")

    def do_customer(self, cid):
        mode = self.server.mode.peek()
        if not cid or len(cid) > MAX_ID or "/" in cid:
            self.read_body_quietly()
            self.error(400, "bad_request", f"customer id must be 1 to {MAX_ID} characters")
            return
        ok, doc = self.read_json_body()
        if not ok:
            return
        if mode in ("down", "fail500"):
            code = 503 if mode == "down" else 500
            self.error(code, "unavailable" if code == 503 else "internal", f"stub mode {mode}")
            return
        if not isinstance(doc, dict):
            self.error(400, "bad_request", "the customer must be a JSON object")
            return
        ver = self.headers.get("X-Tillmesh-Version")
        ver = int(ver) if ver and ver.strip().isdigit() else None
        st = self.server.store
        with st.lock:
            st.db.execute("BEGIN IMMEDIATE")
            row = st.db.execute("SELECT version FROM customers WHERE id = ?", (cid,)).fetchone()
            stale = row is not None and ver is not None and row[0] is not None and ver < row[0]
            if row is None:
                st.db.execute("INSERT INTO customers (id, body, puts, version) VALUES (?,?,1,?)",
                              (cid, canonical(doc), ver))
            elif stale:
                st.db.execute("UPDATE customers SET puts = puts + 1, stale = stale + 1 WHERE id = ?", (cid,))
            else:
                st.db.execute("UPDATE customers SET body = ?, puts = puts + 1, version = ? WHERE id = ?",
                              (canonical(doc), ver, cid))
            puts = st.db.execute("SELECT puts FROM customers WHERE id = ?", (cid,)).fetchone()[0]
            st.db.execute("COMMIT")
        self.send_json(200, {"id": cid, "stored": not stale})
        self.log_request_line(200, None, None, f"customer={cid} puts={puts}" + (" stale" if stale else ""))

    def do_sales_status(self, _):
        """POST /sales/status {"ids": [...]} -> {"booked": [...], "unknown": [...]}
        (docs/erp.md, Reconcile): which of the ids the ERP holds, each id
        spelt as sent. At most STATUS_MAX ids a request."""
        ok, doc = self.read_json_body()
        if not ok:
            return
        ids = doc.get("ids") if isinstance(doc, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            self.error(400, "bad_request", 'body must be an object {"ids": ["sale id", ...]}')
            return
        if len(ids) > STATUS_MAX:
            self.error(413, "too_large", f"at most {STATUS_MAX} ids a request")
            return
        st = self.server.store
        with st.lock:
            booked = [i for i in ids if st.is_booked(i.lower()) is not None]
            st.status_requests += 1
        have = set(booked)
        self.send_json(200, {"booked": booked, "unknown": [i for i in ids if i not in have]})
        self.log_request_line(200, None, len(ids), f"status: {len(booked)} booked")

    # ---- control routes -----------------------------------------------------
    def do_forget(self, _):
        """Makes the ERP lose bookings, as a restore from an old backup
        would: {"ids": [...]}. Their idempotency keys go too."""
        ok, doc = self.read_json_body()
        if not ok:
            return
        ids = [i.lower() for i in (doc.get("ids") or []) if isinstance(i, str)]
        st = self.server.store
        with st.lock:
            st.db.execute("BEGIN")
            for i in ids:
                st.db.execute("DELETE FROM bookings WHERE sale_id = ?", (i,))
                st.db.execute("DELETE FROM idempotency WHERE response LIKE ?", (f"%{i}%",))
            st.db.execute("COMMIT")
        self.send_json(200, {"forgotten": len(ids)})
        self.log_request_line(200, None, len(ids), "forget")

    def do_stats(self, _):
        qs = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        detail = qs.get("detail", ["0"])[0] not in ("0", "", "false")
        if qs.get("brief", ["0"])[0] not in ("0", "", "false"):
            # For pollers (benchmarks): the full stats scan every table, work
            # that would slow the very bookings being timed.
            st = self.server.store
            with st.lock:
                n = st.db.execute("SELECT count(*) FROM bookings").fetchone()[0]
            self.send_json(200, {"booked": n})
            return
        self.send_json(200, self.server.store.stats(detail, self.server.mode.describe()))
        self.log_request_line(200)

    def do_requests(self, _):
        qs = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            since = float(qs.get("since", ["0"])[0])
        except ValueError:
            self.error(400, "bad_request", "since must be a number (seconds since the epoch)")
            return
        self.send_json(200, {"now": time.time(), "requests": self.server.store.requests(since)})
        self.log_request_line(200)

    def do_get_mode(self, _):
        self.send_json(200, self.server.mode.describe())
        self.log_request_line(200)

    def do_mode(self, _):
        ok, doc = self.read_json_body()
        if not ok:
            return
        if not isinstance(doc, dict) or doc.get("mode") not in MODES:
            self.error(400, "bad_request", f"mode must be one of {', '.join(MODES)}")
            return
        sale_id, delay_ms, count = doc.get("sale_id"), doc.get("delay_ms"), doc.get("count")
        if sale_id is not None and not isinstance(sale_id, str):
            self.error(400, "bad_request", "sale_id must be a string")
            return
        for name, v in (("delay_ms", delay_ms), ("count", count)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                self.error(400, "bad_request", f"{name} must be a non-negative integer")
                return
        if doc["mode"] == "slow" and delay_ms is None:
            delay_ms = 1000
        self.server.mode.set(doc["mode"], sale_id, delay_ms, count if count else None)
        self.send_json(200, self.server.mode.describe())
        self.log_request_line(200, None, None, f"mode={doc['mode']}")

    # ---- catalogue (GET /catalogue, docs/erp.md) ----------------------------
    CAT_LIMIT_MAX = 500

    def do_catalogue(self, _):
        qs = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        since, limit = qs.get("since", ["0"])[0] or "0", qs.get("limit", ["200"])[0]
        if not since.isdigit() or not limit.isdigit() or not 1 <= int(limit) <= self.CAT_LIMIT_MAX:
            self.error(400, "bad_request", f"since must be a cursor from next_cursor, "
                       f"limit 1..{self.CAT_LIMIT_MAX}")
            return
        if self.server.mode.peek() == "down":
            self.error(503, "unavailable", "the ERP is down (stub mode down)")
            return
        st, srv = self.server.store, self.server
        with st.lock:
            rows = st.db.execute("SELECT sku, body, version, deleted FROM catalogue WHERE version > ?"
                                 " ORDER BY version LIMIT ?", (int(since), int(limit) + 1)).fetchall()
            srv.cat_requests += 1
            bad = srv.cat_bad > 0
            if bad:
                srv.cat_bad -= 1
        more = len(rows) > int(limit)
        rows = rows[:int(limit)]
        products, deletions = [], []
        for sku, body, version, deleted in rows:
            if deleted:
                deletions.append({"sku": sku, "version": version})
            else:
                products.append(dict(json.loads(body), sku=sku, version=version))
        if bad and products:
            # One product breaks a rule: the till must refuse the page whole.
            products[-1]["unit_price"] = -1
        nxt = str(rows[-1][2]) if rows else since
        self.send_json(200, {"products": products, "deletions": deletions,
                             "next_cursor": nxt, "more": more})
        self.log_request_line(200, None, len(rows), "catalogue")

    def do_cat_stats(self, _):
        st = self.server.store
        with st.lock:
            n, v = st.db.execute("SELECT count(*) FILTER (WHERE deleted = 0), coalesce(max(version), 0)"
                                 " FROM catalogue").fetchone()
        self.send_json(200, {"products": n, "version": v, "requests": self.server.cat_requests,
                             "bad_pages_left": self.server.cat_bad})
        self.log_request_line(200)

    def do_cat_change(self, _):
        """{"upsert": [product without version, ...], "delete": [sku, ...],
        "generate": {"n": N, "prefix": "SKU", "price": P}, "bad_pages": K}:
        every change gets the next version, in the order given."""
        ok, doc = self.read_json_body()
        if not ok:
            return
        if not isinstance(doc, dict):
            self.error(400, "bad_request", "body must be an object")
            return
        st = self.server.store
        ups = list(doc.get("upsert") or [])
        gen = doc.get("generate")
        if isinstance(gen, dict):
            pre, price = gen.get("prefix", "SKU"), int(gen.get("price", 1000))
            ups += [{"sku": f"{pre}{i:06d}", "name": f"Product {pre}{i:06d}", "uom": "unit",
                     "unit_price": price + i % 1000, "tax_rate": 1900,
                     "barcodes": [f"78{i:010d}"], "active": True} for i in range(int(gen.get("n", 0)))]
        with st.lock:
            st.db.execute("BEGIN IMMEDIATE")
            v = st.db.execute("SELECT coalesce(max(version), 0) FROM catalogue").fetchone()[0]
            for p in ups:
                v += 1
                body = {k: p[k] for k in p if k not in ("sku", "version")}
                st.db.execute("INSERT OR REPLACE INTO catalogue (sku, body, version, deleted)"
                              " VALUES (?,?,?,0)", (p["sku"], json.dumps(body), v))
            for sku in doc.get("delete") or []:
                v += 1
                st.db.execute("INSERT OR REPLACE INTO catalogue (sku, body, version, deleted)"
                              " VALUES (?,'',?,1)", (sku, v))
            st.db.execute("COMMIT")
        if isinstance(doc.get("bad_pages"), int):
            self.server.cat_bad = doc["bad_pages"]
        self.send_json(200, {"version": v})
        self.log_request_line(200, None, len(ups), "catalogue change")

    def do_reset(self, _):
        self.read_body_quietly()
        self.server.store.reset()
        self.server.mode.set("ok")
        self.send_json(200, {"reset": True})
        self.log_request_line(200)


class StubServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, store, token=None, mode="ok", base=""):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, Handler)
        self.store = store
        self.token = token
        self.base = base.rstrip("/")
        self.mode = Mode()
        self.mode.set(mode, delay_ms=1000 if mode == "slow" else None)
        self.stopping = threading.Event()
        self.cat_requests = 0   # GET /catalogue answered
        self.cat_bad = 0        # next pages to serve with a rule broken


def parse_listen(s):
    m = re.match(r"^\[(.+)\]:(\d+)$", s) or re.match(r"^([^:]+):(\d+)$", s)
    if not m:
        raise argparse.ArgumentTypeError("expected HOST:PORT or [V6]:PORT")
    return m.group(1), int(m.group(2))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stub ERP for tillmesh tests (see docs/erp.md).")
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0),
                    help="HOST:PORT; port 0 picks a free one (default 127.0.0.1:0)")
    ap.add_argument("--db", required=True, help="SQLite file (created if absent; kept across restarts)")
    ap.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on /sales and /customers")
    ap.add_argument("--token-file", help="read the token from this file (first line)")
    ap.add_argument("--fail-mode", choices=MODES, default="ok", help="initial mode (default ok)")
    ap.add_argument("--port-file", help="write the listening port here once the socket listens")
    ap.add_argument("--base", default="", help="path prefix of the contract routes, e.g. /erp")
    a = ap.parse_args(argv)
    token = a.token
    if a.token_file:
        with open(a.token_file) as f:
            token = f.readline().strip()

    store = Store(a.db)
    srv = StubServer(a.listen, store, token=token, mode=a.fail_mode, base=a.base)
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, a.port_file)
    sys.stderr.write(f"erp-stub: listening on {a.listen[0]}:{port} db={a.db} mode={a.fail_mode}"
                     f" token={'yes' if token else 'no'}\n")
    sys.stderr.flush()

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    while not stop.wait(0.5):
        pass
    srv.stopping.set()           # releases stalled and slow requests
    srv.shutdown()
    srv.server_close()
    with store.lock:             # no request is mid-transaction past this point
        store.close()
    sys.stderr.write("erp-stub: stopped\n")
    return 0


# ---- for tests: run and drive the stub as a subprocess ----------------------
class ErpStub:
    """Starts erp_stub.py as a subprocess on a free loopback port.

        stub = ErpStub(token="t").start()
        stub.url            # http://127.0.0.1:PORT  (the ERP base URL)
        stub.stats(detail=True); stub.set_mode("fail500", count=1); stub.stop()
    """

    def __init__(self, db=None, token=None, fail_mode=None, workdir=None, log=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="erp-stub-")
        self.db = db or os.path.join(self.dir, "erp.sqlite")
        self.token, self.fail_mode = token, fail_mode
        self.port_file = os.path.join(self.dir, "erp.port")
        self.log_path = log or os.path.join(self.dir, "erp-stub.log")
        self.proc, self.port = None, None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=15):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        cmd = [sys.executable, os.path.abspath(__file__), "--listen", "127.0.0.1:0",
               "--db", self.db, "--port-file", self.port_file]
        if self.token:
            cmd += ["--token", self.token]
        if self.fail_mode:
            cmd += ["--fail-mode", self.fail_mode]
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"erp_stub exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with open(self.port_file) as f:
                    txt = f.read()
                if txt.endswith("\n"):
                    self.port = int(txt)
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"erp_stub did not write its port within {timeout}s:\n{self.tail()}")

    def tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def request(self, method, path, body=None, headers=None, timeout=10, raw=None):
        """Returns (status, parsed JSON or text). Raises OSError/http.client errors
        when there is no answer (connection dropped, timeout)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            h = {"Content-Type": "application/json"} if data is not None else {}
            h.update(headers or {})
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            payload = r.read()
            try:
                return r.status, json.loads(payload) if payload else None
            except ValueError:
                return r.status, payload.decode(errors="replace")
        finally:
            conn.close()

    def post_sales(self, sales, key, token=None, headers=None, **kw):
        h = dict(headers or {}, **{"Idempotency-Key": key})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        return self.request("POST", "/sales", {"sales": sales}, headers=h, **kw)

    def booked(self):
        """Sales booked: a cheap poll (GET /_stub/stats?brief=1)."""
        st, js = self.request("GET", "/_stub/stats?brief=1")
        assert st == 200, (st, js)
        return js["booked"]

    def stats(self, detail=False):
        st, js = self.request("GET", "/_stub/stats" + ("?detail=1" if detail else ""))
        assert st == 200, (st, js)
        return js

    def set_mode(self, mode, **kw):
        st, js = self.request("POST", "/_stub/mode", dict(kw, mode=mode))
        assert st == 200, (st, js)
        return js

    def reset(self):
        st, js = self.request("POST", "/_stub/reset", {})
        assert st == 200, (st, js)

    def catalogue_change(self, upsert=None, delete=None, generate=None, bad_pages=None):
        """Changes the ERP's catalogue; returns its new version."""
        body = {"upsert": upsert or [], "delete": delete or []}
        if generate:
            body["generate"] = generate
        if bad_pages is not None:
            body["bad_pages"] = bad_pages
        st, js = self.request("POST", "/_stub/catalogue", body, timeout=120)
        assert st == 200, (st, js)
        return js["version"]

    def catalogue_stats(self):
        st, js = self.request("GET", "/_stub/catalogue")
        assert st == 200, (st, js)
        return js

    def forget(self, ids):
        """The ERP loses these bookings (a restore from an old backup)."""
        st, js = self.request("POST", "/_stub/forget", {"ids": list(ids)})
        assert st == 200, (st, js)

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise RuntimeError("erp_stub did not stop on SIGTERM")
        return self.proc.returncode if self.proc else None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
