/*
 * render.c - pure rendering of the daemon's JSON for the terminal.
 *
 * Nothing here does I/O or reads the clock: the daemon reports ages
 * ("last_seen_ms_ago", "uptime_s"), so the same input always gives the same
 * text. Every value is looked up defensively: a missing field or one of the
 * wrong type shows as "?", and strings from the network are cleaned of
 * control characters (a hostile peer name must not drive the terminal).
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_int.h"

#define CELL    256 /* bytes of one rendered cell */
#define MAX_W   60  /* display columns of one cell before it is cut */
#define LABEL_W 12  /* "Forwarder:  " */

/* ---- a growing string buffer -------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf_t;

static void sb_putn(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n > SIZE_MAX / 4 || b->len > SIZE_MAX / 4) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (!b->p) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_putn(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)n);
    free(big);
}

/* The text, or NULL (and nothing leaked) when memory ran out. */
static char *sb_finish(sbuf_t *b)
{
    if (!b->oom && !b->p)
        sb_putn(b, "", 0);
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

/* ---- cleaning text from the network ------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4) that is printable, or 0. */
static size_t utf8_printable(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c >= 0x20 && c < 0x7f)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0; /* control, DEL, continuation or invalid lead byte */
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0; /* overlong or out of range */
    if ((cp >= 0x80 && cp <= 0x9f) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* C1 controls, surrogates */
    return n;
}

/* Copies s into out, replacing anything unprintable by '?', cutting it at
 * maxw display columns (ending it with "~"). */
static void clean_copy(const char *s, char *out, size_t outsz, size_t maxw)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, w = 0;
    while (*p && o + 1 < outsz) {
        size_t n = utf8_printable(p);
        if (w + 1 > maxw || o + (n ? n : 1) + 2 > outsz) {
            out[o++] = '~';
            break;
        }
        if (n == 0) {
            out[o++] = '?';
            p++;
        } else {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        }
        w++;
    }
    out[o] = '\0';
}

/* The first nchars characters of an ASCII (hex) string; out holds nchars+1. */
static void clean_prefix(const char *s, char *out, size_t nchars)
{
    size_t i = 0;
    for (; s[i] && i < nchars; i++)
        out[i] = (char)((s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?');
    out[i] = '\0';
}

/* Display columns of clean UTF-8 text (one per code point). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

/* ---- fields -------------------------------------------------------------- */

/* A string field (cleaned), null_text when null, "?" when missing/wrong. */
static void fld_str(const json_t *o, const char *key, const char *null_text, char *out, size_t n,
                    size_t maxw)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        clean_copy(json_string_value(v), out, n, maxw);
    else if (json_is_null(v) && null_text)
        snprintf(out, n, "%s", null_text);
    else
        snprintf(out, n, "?");
}

/* The first nchars of a hex id (nchars < n), null_text when null. */
static void fld_hex(const json_t *o, const char *key, const char *null_text, size_t nchars,
                    char *out, size_t n)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_string(v) && nchars < n)
        clean_prefix(json_string_value(v), out, nchars);
    else if (json_is_null(v) && null_text)
        snprintf(out, n, "%s", null_text);
    else
        snprintf(out, n, "?");
}

/* An integer field. */
static void fld_int(const json_t *o, const char *key, const char *null_text, char *out, size_t n)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_null(v) && null_text)
        snprintf(out, n, "%s", null_text);
    else
        snprintf(out, n, "?");
}

/* A number, or NAN when missing/wrong; *is_null tells null apart. */
static double fld_num(const json_t *o, const char *key, int *is_null)
{
    const json_t *v = json_object_get(o, key);
    *is_null = json_is_null(v);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A point in time given as unix seconds/milliseconds or as text. */
static void fld_time(const json_t *o, const char *key, const char *null_text, char *out, size_t n)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_number(v))
        tm_cli_fmt_unix(json_number_value(v), out, n);
    else
        fld_str(o, key, null_text, out, n, MAX_W);
}

/* ---- formatting of numbers ---------------------------------------------- */

void tm_cli_fmt_duration(double seconds, char *buf, size_t n)
{
    if (!(seconds >= 0) || seconds > 1e12) {
        snprintf(buf, n, "?");
        return;
    }
    unsigned long long s = (unsigned long long)seconds;
    if (s < 60)
        snprintf(buf, n, "%llus", s);
    else if (s < 3600)
        snprintf(buf, n, "%llum %02llus", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, n, "%lluh %02llum", s / 3600, s / 60 % 60);
    else
        snprintf(buf, n, "%llud %02lluh", s / 86400, s / 3600 % 24);
}

void tm_cli_fmt_ago_ms(double ms, char *buf, size_t n)
{
    if (!(ms >= 0) || ms > 1e15) {
        snprintf(buf, n, "?");
        return;
    }
    if (ms < 9950) {
        snprintf(buf, n, "%.1fs ago", ms / 1000.0);
        return;
    }
    char d[48];
    tm_cli_fmt_duration(ms / 1000.0, d, sizeof d);
    snprintf(buf, n, "%s ago", d);
}

/* True when the 3-letter code cur is one of the space-separated list. */
static int in_list(const char *list, const char *cur)
{
    for (const char *t = list; t[0]; t += t[3] ? 4 : 3)
        if (strncmp(t, cur, 3) == 0)
            return 1;
    return 0;
}

/* Decimal places of an ISO 4217 currency (display only). */
static int currency_exponent(const char *cur)
{
    static const char zero[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF "
                               "XOF XPF";
    static const char three[] = "BHD IQD JOD KWD LYD OMR TND";
    if (!cur || strlen(cur) != 3)
        return 2;
    if (in_list(zero, cur))
        return 0;
    if (in_list(three, cur))
        return 3;
    return 2;
}

void tm_cli_fmt_money(int64_t minor, const char *currency, char *buf, size_t n)
{
    char cur[16];
    clean_copy(currency ? currency : "?", cur, sizeof cur, 8);
    int e = currency_exponent(currency);
    const char *sign = minor < 0 ? "-" : "";
    unsigned long long mag =
        minor < 0 ? 0ULL - (unsigned long long)minor : (unsigned long long)minor;
    unsigned long long div = e == 0 ? 1 : e == 3 ? 1000 : 100;
    if (e == 0)
        snprintf(buf, n, "%s%llu %s", sign, mag, cur);
    else
        snprintf(buf, n, "%s%llu.%0*llu %s", sign, mag / div, e, mag % div, cur);
}

void tm_cli_fmt_unix(double t, char *buf, size_t n)
{
    if (t > 1e11)
        t /= 1000.0; /* milliseconds */
    struct tm tmv;
    time_t tt = (time_t)t;
    if (!(t >= 0) || t > 1e11 || !gmtime_r(&tt, &tmv) ||
        strftime(buf, n, "%Y-%m-%d %H:%M:%SZ", &tmv) == 0)
        snprintf(buf, n, "?");
}

/* ---- tables -------------------------------------------------------------- */

/* Columns padded to the widest cell; cells holds nrows * ncols entries. */
static void sb_table(sbuf_t *b, size_t ncols, const char *const head[], char (*cells)[CELL],
                     size_t nrows, const char *indent)
{
    size_t w[8] = {0};
    for (size_t c = 0; c < ncols && c < 8; c++) {
        w[c] = text_width(head[c]);
        for (size_t r = 0; r < nrows; r++) {
            size_t cw = text_width(cells[r * ncols + c]);
            w[c] = cw > w[c] ? cw : w[c];
        }
    }
    for (size_t r = 0; r <= nrows; r++) {
        sb_puts(b, indent);
        for (size_t c = 0; c < ncols && c < 8; c++) {
            const char *t = r == 0 ? head[c] : cells[(r - 1) * ncols + c];
            sb_puts(b, t);
            if (c + 1 < ncols)
                sb_printf(b, "%*s", (int)(w[c] - text_width(t) + 2), "");
        }
        sb_puts(b, "\n");
    }
}

/* Parses JSON text; on failure *out explains and the result is NULL. */
static json_t *parse_or_explain(const char *json, size_t len, char **out, int *rc)
{
    json_error_t err;
    json_t *root = json_loadb(json ? json : "", json ? len : 0, JSON_DECODE_ANY, &err);
    if (root) {
        *rc = TM_CLI_R_OK;
        return root;
    }
    char text[sizeof err.text + 8];
    clean_copy(err.text, text, sizeof text, 160);
    sbuf_t b = {0};
    sb_printf(&b, "tillmeshd answered with malformed JSON: %s (line %d, column %d)", text, err.line,
              err.column);
    *out = sb_finish(&b);
    *rc = *out ? TM_CLI_R_BADJSON : TM_CLI_R_NOMEM;
    return NULL;
}

static int finish(sbuf_t *b, char **out)
{
    *out = sb_finish(b);
    return *out ? TM_CLI_R_OK : TM_CLI_R_NOMEM;
}

/* ---- peers --------------------------------------------------------------- */

#define PEER_COLS 7

/* A clock offset in ms, signed, in a unit a person reads at a glance. */
void tm_cli_fmt_offset_ms(double ms, char *buf, size_t n)
{
    double a = ms < 0 ? -ms : ms;
    if (a < 60000)
        snprintf(buf, n, "%+.3fs", ms / 1000);
    else if (a < 3600000)
        snprintf(buf, n, "%+.1fm", ms / 60000);
    else if (a < 2 * 86400000.0)
        snprintf(buf, n, "%+.1fh", ms / 3600000);
    else
        snprintf(buf, n, "%+.1fd", ms / 86400000);
}

static void peer_row(const json_t *p, char (*row)[CELL])
{
    int null_seen;
    fld_str(p, "name", NULL, row[0], CELL, MAX_W);
    fld_str(p, "source", NULL, row[1], CELL, MAX_W);
    fld_str(p, "endpoint", NULL, row[2], CELL, MAX_W);
    fld_str(p, "state", NULL, row[3], CELL, MAX_W);
    double ago = fld_num(p, "last_seen_ms_ago", &null_seen);
    if (null_seen)
        snprintf(row[4], CELL, "never");
    else
        tm_cli_fmt_ago_ms(ago, row[4], CELL);
    double off = fld_num(p, "clock_offset_ms", &null_seen);
    if (null_seen || isnan(off))
        snprintf(row[5], CELL, "?");
    else
        tm_cli_fmt_offset_ms(off, row[5], CELL);
    char they[32], we[32];
    fld_int(p, "they_lack_ops", NULL, they, sizeof they);
    fld_int(p, "we_lack_ops", NULL, we, sizeof we);
    snprintf(row[6], CELL, "%s/%s", they, we);
}

static void render_peers_table(sbuf_t *b, const json_t *root, const char *indent)
{
    static const char *const head[PEER_COLS] = {"NAME",      "SOURCE", "ENDPOINT",     "STATE",
                                                "LAST SEEN", "CLOCK",  "LAG (THEY/WE)"};
    const json_t *peers = json_object_get(root, "peers");
    if (!json_is_array(peers)) {
        sb_printf(b, "%speers: ?\n", indent);
        return;
    }
    size_t n = json_array_size(peers);
    if (n == 0) {
        sb_printf(b, "%sno peers (none configured, discovered or learned yet)\n", indent);
        return;
    }
    char(*cells)[CELL] = calloc(n * PEER_COLS, CELL);
    if (!cells) {
        b->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        peer_row(json_array_get(peers, i), cells + i * PEER_COLS);
    sb_table(b, PEER_COLS, head, cells, n, indent);
    free(cells);
}

int tm_cli_render_peers(const char *json, size_t len, char **out)
{
    int rc;
    *out = NULL;
    json_t *root = parse_or_explain(json, len, out, &rc);
    if (!root)
        return rc;
    sbuf_t b = {0};
    render_peers_table(&b, root, "");
    json_decref(root);
    return finish(&b, out);
}

/* ---- status -------------------------------------------------------------- */

static void line(sbuf_t *b, const char *label, const char *value)
{
    sb_printf(b, "%-*s%s\n", LABEL_W, label, value);
}

static void render_node(sbuf_t *b, const json_t *root)
{
    const json_t *node = json_object_get(root, "node");
    char v[CELL];
    int is_null;
    fld_str(node, "name", NULL, v, sizeof v, MAX_W);
    line(b, "Node:", v);
    fld_hex(node, "id", NULL, 12, v, sizeof v);
    line(b, "Node id:", v);
    fld_str(node, "store_id", NULL, v, sizeof v, MAX_W);
    line(b, "Store:", v);
    fld_str(node, "version", NULL, v, sizeof v, MAX_W);
    line(b, "Version:", v);
    tm_cli_fmt_duration(fld_num(node, "uptime_s", &is_null), v, sizeof v);
    line(b, "Uptime:", v);
    fld_str(node, "mesh_endpoint", "none", v, sizeof v, MAX_W);
    line(b, "Mesh:", v);
    fld_str(node, "api", "none", v, sizeof v, MAX_W);
    line(b, "API:", v);
}

static void render_state(sbuf_t *b, const json_t *root)
{
    const json_t *st = json_object_get(root, "state");
    static const char *const keys[] = {"ops", "local_ops", "sales", "customers", "erp_acked"};
    static const char *const labels[] = {
        "Ops:", "Local ops:", "Sales:", "Customers:", "ERP acked:"};
    char v[CELL];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fld_int(st, keys[i], NULL, v, sizeof v);
        line(b, labels[i], v);
    }
    fld_hex(st, "digest", NULL, 16, v, sizeof v);
    line(b, "Digest:", v);
}

/* Our clock against the store's; the banner itself is at the top. */
static void render_clock(sbuf_t *b, const json_t *root)
{
    const json_t *c = json_object_get(root, "clock");
    char off[32], v[CELL + 64];
    int is_null;
    if (!json_is_object(c)) {
        line(b, "Clock:", "?");
        return;
    }
    double measured = fld_num(c, "peers_measured", &is_null);
    if (isnan(measured)) {
        line(b, "Clock:", "?");
        return;
    }
    if (is_null || measured < 1) {
        line(b, "Clock:", "no peer to compare with");
        return;
    }
    double ms = fld_num(c, "offset_ms", &is_null);
    if (isnan(ms))
        snprintf(off, sizeof off, "?");
    else
        tm_cli_fmt_offset_ms(ms, off, sizeof off);
    const json_t *sk = json_object_get(c, "skewed");
    snprintf(v, sizeof v, "%s, %s from the store's (median of %.0f clocks)",
             json_is_true(sk) ? "WRONG" : "ok", off, measured + 1);
    line(b, "Clock:", v);
}

static void render_uplink(sbuf_t *b, const json_t *root)
{
    const json_t *up = json_object_get(root, "uplink");
    char state[CELL], since[CELL], v[2 * CELL + 8];
    fld_str(up, "state", "unknown", state, sizeof state, MAX_W);
    const json_t *s = json_object_get(up, "since");
    if (!json_is_object(up) || json_is_null(s)) {
        snprintf(v, sizeof v, "%s", state);
    } else {
        fld_time(up, "since", NULL, since, sizeof since);
        snprintf(v, sizeof v, "%s since %s", state, since);
    }
    line(b, "Uplink:", v);
}

static void render_forwarder(sbuf_t *b, const json_t *root)
{
    const json_t *fw = json_object_get(root, "forwarder");
    const json_t *id = json_object_get(fw, "node_id");
    const json_t *name = json_object_get(fw, "name");
    const json_t *self = json_object_get(json_object_get(root, "node"), "id");
    char n[CELL], i[16], e[32], v[CELL + 80];
    fld_int(fw, "epoch", NULL, e, sizeof e);
    if (!json_is_object(fw)) {
        snprintf(v, sizeof v, "?");
    } else if (json_is_null(id) && json_is_null(name)) {
        snprintf(v, sizeof v, "none (epoch %s)", e);
    } else {
        fld_str(fw, "name", "?", n, sizeof n, MAX_W);
        fld_hex(fw, "node_id", "?", 12, i, sizeof i);
        int me = json_is_string(id) && json_is_string(self) &&
                 strcmp(json_string_value(id), json_string_value(self)) == 0;
        snprintf(v, sizeof v, "%s (%s), epoch %s", n, me ? "this node" : i, e);
    }
    line(b, "Forwarder:", v);
    /* The standby takes over at once if the forwarder goes (docs/erp.md);
     * a tillmeshd older than the standby sends no key: no line then. */
    const json_t *sb = json_object_get(fw, "standby");
    if (!sb)
        return;
    fld_str(fw, "standby", "none", n, sizeof n, MAX_W);
    snprintf(v, sizeof v, "%s%s", n,
             json_is_true(json_object_get(fw, "standby_is_self")) ? " (this node)" : "");
    line(b, "Standby:", v);
}

static void render_erp(sbuf_t *b, const json_t *root)
{
    const json_t *erp = json_object_get(root, "erp");
    char backlog[32], parked[32], age[64], last[CELL], v[2 * CELL];
    int is_null;
    fld_int(erp, "backlog", NULL, backlog, sizeof backlog);
    fld_int(erp, "parked", NULL, parked, sizeof parked);
    double a = fld_num(erp, "oldest_unsent_age_s", &is_null);
    if (is_null)
        snprintf(age, sizeof age, "none");
    else
        tm_cli_fmt_duration(a, age, sizeof age);
    fld_time(erp, "last_forward_at", "never", last, sizeof last);
    snprintf(v, sizeof v, "backlog %s, parked %s, oldest unsent %s, last forward %s", backlog,
             parked, age, last);
    line(b, "ERP:", json_is_object(erp) ? v : "?");
    const json_t *le = json_object_get(erp, "last_error");
    if (json_is_string(le) && json_string_length(le)) {
        char e[CELL];
        fld_str(erp, "last_error", "", e, sizeof e, MAX_W);
        line(b, "ERP error:", e);
    }
}

int tm_cli_render_parked(const char *json, size_t len, char **out)
{
    int rc;
    *out = NULL;
    json_t *root = parse_or_explain(json, len, out, &rc);
    if (!root)
        return rc;
    sbuf_t b = {0};
    const json_t *arr = json_object_get(root, "parked");
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        sb_puts(&b, "No parked sales.\n");
    } else {
        sb_printf(&b, "%-36s  %-6s  %-20s  %s\n", "SALE", "STATUS", "PARKED AT", "REASON");
        size_t i;
        const json_t *p;
        json_array_foreach (arr, i, p) {
            char id[CELL], st[32], at[CELL], msg[CELL];
            fld_str(p, "sale_id", "?", id, sizeof id, MAX_W);
            fld_int(p, "status", NULL, st, sizeof st);
            fld_time(p, "parked_at", "?", at, sizeof at);
            fld_str(p, "message", "", msg, sizeof msg, MAX_W);
            sb_printf(&b, "%-36s  %-6s  %-20s  %s\n", id, st, at, msg);
        }
        sb_puts(&b, "\nRetry one with: tillmesh erp retry SALE\n");
    }
    json_decref(root);
    return finish(&b, out);
}

/* The store's file (docs/api.md, status.store): lost while running, or
 * found corrupt at start and rebuilt. Top of the page, like the clock. */
static void render_store_banner(sbuf_t *b, const json_t *root)
{
    const json_t *store = json_object_get(root, "store");
    const json_t *state = json_object_get(store, "state");
    if (json_is_string(state) && strcmp(json_string_value(state), "lost") == 0) {
        char m[2 * CELL];
        fld_str(store, "message", "the store's database file was deleted or replaced", m, sizeof m,
                2 * CELL - 1);
        sb_printf(b, "WARNING: STORE LOST: %s\n\n", m);
    }
    const json_t *h = json_object_get(store, "healed_at_start");
    if (json_is_object(h)) {
        char dir[2 * CELL], ops[32];
        fld_str(h, "moved_to", "?", dir, sizeof dir, 2 * CELL - 1);
        fld_int(h, "ops_salvaged", NULL, ops, sizeof ops);
        sb_printf(
            b,
            "NOTE: the store was rebuilt at start: old files moved to %s, %s ops salvaged, the "
            "rest re-seeded from peers\n\n",
            dir, ops);
    }
}

int tm_cli_render_status(const char *json, size_t len, char **out)
{
    int rc;
    *out = NULL;
    json_t *root = parse_or_explain(json, len, out, &rc);
    if (!root)
        return rc;
    sbuf_t b = {0};
    const json_t *ver = json_object_get(root, "api_version");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1)
        sb_puts(&b, "warning: tillmeshd speaks another status API version than this "
                    "tillmesh (1); fields it does not know show as \"?\"\n\n");
    const json_t *clock = json_object_get(root, "clock");
    if (json_is_true(json_object_get(clock, "skewed"))) {
        char m[2 * CELL];
        fld_str(clock, "message", "this till's clock disagrees with the store's", m, sizeof m,
                2 * CELL - 1);
        sb_printf(&b, "WARNING: %s\n\n", m);
    }
    render_store_banner(&b, root);
    const json_t *trust = json_object_get(root, "trust");
    if (json_is_true(json_object_get(trust, "quota_hit"))) {
        char m[2 * CELL];
        fld_str(trust, "message", "a till sent more ops than its quota", m, sizeof m, 2 * CELL - 1);
        sb_printf(&b, "WARNING: %s\n\n", m);
    }
    /* A till restored from a backup (docs/security.md): settled by itself,
     * but a person should know it happened. */
    if (json_is_string(json_object_get(trust, "restore_message"))) {
        char m[2 * CELL];
        fld_str(trust, "restore_message", "", m, sizeof m, 2 * CELL - 1);
        sb_printf(&b, "NOTE: %s\n\n", m);
    }
    /* Ops kept aside (records are owned, docs/api.md): only when there are
     * some, so that the usual output stays as it was. */
    const json_t *conf = json_object_get(json_object_get(root, "conflicts"), "total");
    if (json_is_integer(conf) && json_integer_value(conf) > 0)
        sb_printf(&b,
                  "WARNING: %lld op(s) from tills kept aside, not shown as sales (a sale "
                  "rewritten, posted as another till, or breaking the rules): see `tillmesh "
                  "status --json`, conflicts\n\n",
                  (long long)json_integer_value(conf));
    /* Catalogue: a stale one prices sales from old data, so it is a banner. */
    const json_t *cat = json_object_get(root, "catalogue");
    if (json_is_true(json_object_get(cat, "stale")))
        sb_printf(&b,
                  "WARNING: catalogue older than %lld h (or never synced): prices may be out "
                  "of date; see Catalogue: below\n\n",
                  (long long)json_integer_value(json_object_get(cat, "max_age_h")));
    render_node(&b, root);
    sb_puts(&b, "\n");
    render_state(&b, root);
    sb_puts(&b, "\nPeers:\n");
    render_peers_table(&b, root, "  ");
    sb_puts(&b, "\n");
    render_clock(&b, root);
    render_uplink(&b, root);
    render_forwarder(&b, root);
    render_erp(&b, root);
    if (json_is_object(cat)) {
        char age[32] = "never synced", err[2 * CELL];
        const json_t *a = json_object_get(cat, "age_s");
        if (json_is_integer(a))
            tm_cli_fmt_duration((double)json_integer_value(a), age, sizeof age);
        fld_str(cat, "error", "", err, sizeof err, 2 * CELL - 1);
        sb_printf(&b, "Catalogue: version %lld, %lld products, %s%s%s%s\n",
                  (long long)json_integer_value(json_object_get(cat, "version")),
                  (long long)json_integer_value(json_object_get(cat, "products")), age,
                  json_is_integer(a) ? " old" : "", err[0] ? "; last pull: " : "", err);
        /* Per till, as their heartbeats say: one that lags shows here. */
        size_t i;
        const json_t *p;
        json_array_foreach (json_object_get(root, "peers"), i, p) {
            const json_t *pv = json_object_get(p, "catalogue_version");
            const json_t *pa = json_object_get(p, "catalogue_age_s");
            if (!json_is_integer(pv))
                continue;
            char name[CELL], pag[32] = "never synced";
            fld_str(p, "name", "?", name, sizeof name, MAX_W);
            if (json_is_integer(pa))
                tm_cli_fmt_duration((double)json_integer_value(pa), pag, sizeof pag);
            sb_printf(&b, "  %-16s version %lld, %s%s%s\n", name, (long long)json_integer_value(pv),
                      pag, json_is_integer(pa) ? " old" : "",
                      json_is_true(json_object_get(p, "catalogue_stale")) ? "  STALE" : "");
        }
    }
    json_decref(root);
    return finish(&b, out);
}

/* ---- sales list ---------------------------------------------------------- */

#define SALE_COLS 6

static void sale_row(const json_t *s, char (*row)[CELL])
{
    fld_str(s, "sale_id", NULL, row[0], CELL, MAX_W);
    fld_str(s, "till", NULL, row[1], CELL, MAX_W);
    fld_int(s, "receipt_no", NULL, row[2], CELL);
    fld_str(s, "created_at", NULL, row[3], CELL, MAX_W);
    const json_t *total = json_object_get(s, "total");
    const json_t *cur = json_object_get(s, "currency");
    if (json_is_integer(total))
        tm_cli_fmt_money(json_integer_value(total), json_string_value(cur), row[4], CELL);
    else
        snprintf(row[4], CELL, "?");
    const json_t *cust = json_object_get(s, "customer");
    const json_t *refund = json_object_get(s, "refund_of");
    if (json_is_string(refund) && json_string_length(refund) > 0) {
        char r[16];
        fld_hex(s, "refund_of", NULL, 8, r, sizeof r);
        snprintf(row[5], CELL, "refund of %s", r);
    } else if (json_is_object(cust)) {
        fld_str(cust, "id", NULL, row[5], CELL, MAX_W);
    } else {
        snprintf(row[5], CELL, "-");
    }
}

int tm_cli_render_sales(const char *json, size_t len, char **out)
{
    static const char *const head[SALE_COLS] = {"SALE ID",    "TILL",  "RECEIPT",
                                                "CREATED AT", "TOTAL", "CUSTOMER/NOTE"};
    int rc;
    *out = NULL;
    json_t *root = parse_or_explain(json, len, out, &rc);
    if (!root)
        return rc;
    sbuf_t b = {0};
    const json_t *sales = json_object_get(root, "sales");
    size_t n = json_array_size(sales);
    char(*cells)[CELL] = n ? calloc(n * SALE_COLS, CELL) : NULL;
    if (!json_is_array(sales)) {
        sb_puts(&b, "sales: ?\n");
    } else if (n == 0) {
        sb_puts(&b, "no sales\n");
    } else if (!cells) {
        b.oom = 1;
    } else {
        for (size_t i = 0; i < n; i++)
            sale_row(json_array_get(sales, i), cells + i * SALE_COLS);
        sb_table(&b, SALE_COLS, head, cells, n, "");
    }
    free(cells);
    const json_t *next = json_object_get(root, "next");
    char v[CELL];
    if (json_is_integer(next) || json_is_string(next)) {
        if (json_is_integer(next))
            snprintf(v, sizeof v, "%lld", (long long)json_integer_value(next));
        else
            clean_copy(json_string_value(next), v, sizeof v, MAX_W);
        sb_printf(&b, "more: tillmesh sale list --since %s\n", v);
    }
    json_decref(root);
    return finish(&b, out);
}

/* ---- errors and passthrough ---------------------------------------------- */

static void render_field_errors(sbuf_t *b, const json_t *fields)
{
    size_t i;
    const json_t *f;
    json_array_foreach (fields, i, f) {
        char field[CELL], msg[CELL], rule[CELL];
        fld_str(f, "field", NULL, field, sizeof field, MAX_W);
        fld_str(f, "message", NULL, msg, sizeof msg, 200);
        fld_str(f, "rule", NULL, rule, sizeof rule, MAX_W);
        sb_printf(b, "%s: %s (%s)\n", field[0] ? field : "body", msg, rule);
    }
}

/* Cleans the first bytes of a body that is not NUL-terminated. */
static void clean_bytes(const char *body, size_t len, char *out, size_t outsz)
{
    char raw[CELL];
    size_t n = len < sizeof raw - 1 ? len : sizeof raw - 1;
    memcpy(raw, body, n);
    raw[n] = '\0';
    clean_copy(raw, out, outsz, 200);
}

char *tm_cli_render_error(long status, const char *body, size_t len)
{
    sbuf_t b = {0};
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(root, "message"));
    const char *err = json_string_value(json_object_get(root, "error"));
    char text[CELL];
    if (msg)
        clean_copy(msg, text, sizeof text, 200);
    else if (err && strcmp(err, "validation") == 0)
        snprintf(text, sizeof text, "the request failed validation");
    else if (err)
        clean_copy(err, text, sizeof text, 200);
    else if (body && len && !root)
        clean_bytes(body, len, text, sizeof text);
    else
        snprintf(text, sizeof text, "tillmeshd answered with an error");
    sb_printf(&b, "tillmesh: %s (HTTP %ld)\n", text, status);
    render_field_errors(&b, json_object_get(root, "fields"));
    json_decref(root);
    return sb_finish(&b);
}

char *tm_cli_json_passthrough(const char *body, size_t len)
{
    sbuf_t b = {0};
    if (body && len)
        sb_putn(&b, body, len);
    if (b.len == 0 || b.p[b.len - 1] != '\n')
        sb_putn(&b, "\n", 1);
    return sb_finish(&b);
}
