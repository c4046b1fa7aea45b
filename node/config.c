/* config.c - parse, then validate, the tillmeshd configuration. */
#include "tm_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tm_config_t *cfg;
    const tm_log_t *log;
    const char *path;
    char dir[TM_CFG_STR];
    int errors;
    int lineno; /* of the line inih is at (our reader counts them) */
} parse_t;

/* Largest config file read; real ones are a few KiB. */
#define CFG_MAX_FILE (1024 * 1024)

static void bad(parse_t *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void bad(parse_t *p, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        tm_log_error(p->log, "%s:%d: %s", p->path, line, msg);
    else
        tm_log_error(p->log, "%s: %s", p->path, msg);
    p->errors++;
}

static int set_str(parse_t *p, int line, char *dst, size_t dstsz, const char *key,
                   const char *value)
{
    if (strlen(value) >= dstsz) {
        bad(p, line, "%s is too long (\"%.40s...\")", key, value);
        return 1;
    }
    tm_strlcpy(dst, value, dstsz);
    return 1;
}

static int set_path(parse_t *p, int line, char *dst, const char *key, const char *value)
{
    if (value[0] == '/' || !p->dir[0])
        return set_str(p, line, dst, TM_CFG_STR, key, value);
    char full[2 * TM_CFG_STR];
    snprintf(full, sizeof full, "%s/%s", p->dir, value);
    return set_str(p, line, dst, TM_CFG_STR, key, full);
}

static int set_u32(parse_t *p, int line, uint32_t *dst, const char *key, const char *value,
                   unsigned long lo, unsigned long hi)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi || value[0] == '-') {
        char range[64];
        snprintf(range, sizeof range, "a whole number from %lu to %lu", lo, hi);
        bad(p, line, "%s must be %s", key, range);
        return 1;
    }
    *dst = (uint32_t)v;
    return 1;
}

static int node_key(parse_t *p, int line, const char *k, const char *v)
{
    tm_config_t *c = p->cfg;
    if (!strcmp(k, "name"))
        return set_str(p, line, c->name, sizeof c->name, k, v);
    if (!strcmp(k, "store_id"))
        return set_str(p, line, c->store_id, sizeof c->store_id, k, v);
    if (!strcmp(k, "data_dir"))
        return set_path(p, line, c->data_dir, k, v);
    if (!strcmp(k, "api_listen"))
        return set_str(p, line, c->api_listen, sizeof c->api_listen, k, v);
    if (!strcmp(k, "metrics_listen"))
        return set_str(p, line, c->metrics_listen, sizeof c->metrics_listen, k, v);
    if (!strcmp(k, "priority"))
        return set_u32(p, line, &c->priority, k, v, 0, 1000000);
    if (!strcmp(k, "retention_days"))
        return set_u32(p, line, &c->retention_days, k, v, 0, 36500);
    if (!strcmp(k, "min_free_mb"))
        return set_u32(p, line, &c->min_free_mb, k, v, 0, 10000000);
    if (!strcmp(k, "catalogue_max_age_h"))
        return set_u32(p, line, &c->catalogue_max_age_h, k, v, 1, 8760);
    if (!strcmp(k, "api_token_file"))
        return set_path(p, line, c->api_token_file, k, v);
    if (!strcmp(k, "api_request_timeout_s"))
        return set_u32(p, line, &c->api_request_timeout_s, k, v, 1, 600);
    if (!strcmp(k, "api_allow_remote")) {
        c->api_allow_remote = !strcmp(v, "yes") || !strcmp(v, "true");
        return 1;
    }
    if (!strcmp(k, "log_level")) {
        if (tm_log_level_parse(v, &c->log_level))
            bad(p, line, "log_level must be error, warn, info or debug, not \"%s\"", v);
        return 1;
    }
    return 0;
}

static int mesh_key(parse_t *p, int line, const char *k, const char *v)
{
    tm_config_t *c = p->cfg;
    if (!strcmp(k, "listen"))
        return set_str(p, line, c->listen, sizeof c->listen, k, v);
    if (!strcmp(k, "advertise"))
        return set_str(p, line, c->advertise, sizeof c->advertise, k, v);
    if (!strcmp(k, "secret_key"))
        return set_path(p, line, c->secret_key, k, v);
    if (!strcmp(k, "public_key"))
        return set_path(p, line, c->public_key, k, v);
    if (!strcmp(k, "trusted_keys"))
        return set_path(p, line, c->trusted_keys, k, v);
    if (!strcmp(k, "heartbeat_ms"))
        return set_u32(p, line, &c->heartbeat_ms, k, v, 20, 60000); /* TM_ENGINE_HEARTBEAT_MAX_MS */
    if (!strcmp(k, "peer_timeout_ms"))
        return set_u32(p, line, &c->peer_timeout_ms, k, v, 50, 600000);
    if (!strcmp(k, "batch_max_ops"))
        return set_u32(p, line, &c->batch_max_ops, k, v, 1, 100000);
    if (!strcmp(k, "origin_quota_ops_per_hour"))
        return set_u32(p, line, &c->origin_quota_ops_per_hour, k, v, 10, 100000000);
    if (!strcmp(k, "clock_warn_ms"))
        return set_u32(p, line, &c->clock_warn_ms, k, v, 100, 3600000);
    if (!strcmp(k, "max_clock_drift_s")) {
        /* Obsolete, not an error: an old config must still start the till. */
        tm_log_warn(p->log,
                    "%s: [mesh] max_clock_drift_s is obsolete and ignored: tills no longer "
                    "refuse ops for their timestamps. Delete the line; to set when a wrong "
                    "clock is reported use clock_warn_ms (default 5000)",
                    p->path);
        return 1;
    }
    return 0;
}

static int erp_key(parse_t *p, int line, const char *k, const char *v)
{
    tm_config_t *c = p->cfg;
    if (!strcmp(k, "url"))
        return set_str(p, line, c->erp_url, sizeof c->erp_url, k, v);
    if (!strcmp(k, "token_file"))
        return set_path(p, line, c->erp_token_file, k, v);
    if (!strcmp(k, "probe_interval_ms"))
        return set_u32(p, line, &c->erp_probe_interval_ms, k, v, 20, 600000);
    if (!strcmp(k, "probe_timeout_ms"))
        return set_u32(p, line, &c->erp_probe_timeout_ms, k, v, 20, 600000);
    if (!strcmp(k, "probe_slow_interval_ms"))
        return set_u32(p, line, &c->erp_probe_slow_interval_ms, k, v, 20, 3600000);
    if (!strcmp(k, "probe_suspect_ms"))
        return set_u32(p, line, &c->erp_probe_suspect_ms, k, v, 20, 600000);
    if (!strcmp(k, "silent_fall"))
        return set_u32(p, line, &c->erp_silent_fall, k, v, 1, 1000);
    if (!strcmp(k, "rise"))
        return set_u32(p, line, &c->erp_rise, k, v, 1, 100);
    if (!strcmp(k, "fall"))
        return set_u32(p, line, &c->erp_fall, k, v, 1, 100);
    if (!strcmp(k, "request_timeout_ms"))
        return set_u32(p, line, &c->erp_request_timeout_ms, k, v, 100, 600000);
    if (!strcmp(k, "batch_max"))
        return set_u32(p, line, &c->erp_batch_max, k, v, 1, 10000);
    if (!strcmp(k, "max_in_flight"))
        return set_u32(p, line, &c->erp_max_in_flight, k, v, 1, 8); /* TM_FWD_MAX_IN_FLIGHT */
    if (!strcmp(k, "backoff_min_ms"))
        return set_u32(p, line, &c->erp_backoff_min_ms, k, v, 10, 3600000);
    if (!strcmp(k, "backoff_max_ms"))
        return set_u32(p, line, &c->erp_backoff_max_ms, k, v, 10, 3600000);
    if (!strcmp(k, "forwarder_stall_ms"))
        return set_u32(p, line, &c->erp_forwarder_stall_ms, k, v, 200, 86400000);
    if (!strcmp(k, "reconcile_interval_ms"))
        return set_u32(p, line, &c->erp_reconcile_interval_ms, k, v, 0, 86400000);
    if (!strcmp(k, "reconcile_batch"))
        return set_u32(p, line, &c->erp_reconcile_batch, k, v, 1, 1000);
    if (!strcmp(k, "catalogue_interval_s"))
        return set_u32(p, line, &c->erp_catalogue_interval_s, k, v, 1, 86400);
    if (!strcmp(k, "catalogue_page"))
        return set_u32(p, line, &c->erp_catalogue_page, k, v, 1, 500); /* TM_CATALOGUE_PAGE_MAX */
    if (!strcmp(k, "allow_insecure_http")) {
        if (!strcmp(v, "yes") || !strcmp(v, "true"))
            c->erp_allow_insecure_http = 1;
        else if (!strcmp(v, "no") || !strcmp(v, "false"))
            c->erp_allow_insecure_http = 0;
        else
            bad(p, line, "allow_insecure_http must be yes or no, not \"%s\"", v);
        return 1;
    }
    if (!strcmp(k, "tls_verify")) {
        if (!strcmp(v, "yes") || !strcmp(v, "true"))
            c->erp_tls_verify = 1;
        else if (!strcmp(v, "no") || !strcmp(v, "false"))
            c->erp_tls_verify = 0;
        else
            bad(p, line, "tls_verify must be yes or no, not \"%s\"", v);
        return 1;
    }
    return 0;
}

static int on_entry(void *user, const char *section, const char *key, const char *value)
{
    parse_t *p = user;
    const int line = p->lineno;
    tm_config_t *c = p->cfg;
    int known = 0;
    if (!strcmp(section, "node")) {
        known = node_key(p, line, key, value);
    } else if (!strcmp(section, "mesh")) {
        known = mesh_key(p, line, key, value);
    } else if (!strcmp(section, "discovery")) {
        known = !strcmp(key, "mdns");
        if (known && (!strcmp(value, "yes") || !strcmp(value, "true")))
            c->mdns = 1;
        else if (known && (!strcmp(value, "no") || !strcmp(value, "false")))
            c->mdns = 0;
        else if (known)
            bad(p, line, "[discovery] mdns must be yes or no, not \"%s\"", value);
    } else if (!strcmp(section, "erp")) {
        known = erp_key(p, line, key, value);
    } else if (!strcmp(section, "peers")) {
        known = 1;
        if (c->n_peers == TM_CFG_MAX_PEERS)
            bad(p, line, "too many peers (at most %d)", TM_CFG_MAX_PEERS);
        else if (strlen(key) >= sizeof c->peers[0].name ||
                 strlen(value) >= sizeof c->peers[0].endpoint)
            bad(p, line, "peer %s: name or endpoint too long", key);
        else {
            tm_strlcpy(c->peers[c->n_peers].name, key, sizeof c->peers[0].name);
            tm_strlcpy(c->peers[c->n_peers].endpoint, value, sizeof c->peers[0].endpoint);
            c->n_peers++;
        }
    }
    if (!known)
        bad(p, line, "unknown setting \"%s\" in [%s]", key, section);
    return 1; /* keep going: report every problem at once */
}

int tm_config_split_hostport(const char *s, char *host, size_t hostsz, uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return TM_EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return TM_EINVAL;
        hl = (size_t)(colon - s);
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(colon + 1, &end, 10);
    if (hl == 0 || hl >= hostsz || errno || *end || end == colon + 1 || v > 65535)
        return TM_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)v;
    return TM_OK;
}

static void validate(parse_t *p)
{
    tm_config_t *c = p->cfg;
    char host[64];
    uint16_t port;
    if (!c->name[0])
        bad(p, 0, "[node] name is required (this till's name, e.g. till-1)");
    if (!c->store_id[0])
        bad(p, 0, "[node] store_id is required (the same on every till of the store)");
    if (!c->data_dir[0])
        bad(p, 0, "[node] data_dir is required");
    if (tm_config_split_hostport(c->api_listen, host, sizeof host, &port))
        bad(p, 0, "[node] api_listen must be HOST:PORT, not \"%s\"", c->api_listen);
    else if (!c->api_allow_remote && strcmp(host, "127.0.0.1") && strcmp(host, "::1"))
        bad(p, 0,
            "[node] api_listen %s is not loopback; set api_allow_remote = yes if you "
            "really mean to expose the API (it then needs api_token_file)",
            c->api_listen);
    if (c->api_allow_remote && !c->api_token_file[0])
        bad(p, 0,
            "[node] api_allow_remote = yes needs api_token_file: a file (chmod 600) with "
            "the bearer token that clients on other hosts must send; make one with: "
            "(umask 077; head -c 32 /dev/urandom | base64 > FILE)");
    /* A LAN address is the point: it serves nothing but counters. */
    unsigned char addr[16];
    if (c->metrics_listen[0] &&
        (tm_config_split_hostport(c->metrics_listen, host, sizeof host, &port) ||
         (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1)))
        bad(p, 0,
            "[node] metrics_listen must be HOST:PORT with a numeric address (e.g. "
            "192.168.1.11:9780 or 0.0.0.0:9780), not \"%s\"",
            c->metrics_listen);
    else if (c->metrics_listen[0] && !strcmp(c->metrics_listen, c->api_listen))
        bad(p, 0, "[node] metrics_listen must differ from api_listen (%s)", c->api_listen);
    if (strncmp(c->listen, "tcp://", 6) != 0)
        bad(p, 0, "[mesh] listen must be tcp://HOST:PORT, not \"%s\"", c->listen);
    if (!c->secret_key[0] || !c->public_key[0] || !c->trusted_keys[0])
        bad(p, 0,
            "[mesh] secret_key, public_key and trusted_keys are required "
            "(make keys with: tillmesh keygen)");
    if (c->erp_url[0] && strncmp(c->erp_url, "http://", 7) && strncmp(c->erp_url, "https://", 8))
        bad(p, 0, "[erp] url must start with http:// or https://, not \"%s\"", c->erp_url);
    /* The bearer token would travel in clear on every probe and POST. */
    if (!strncmp(c->erp_url, "http://", 7) && c->erp_token_file[0] && !c->erp_allow_insecure_http)
        bad(p, 0,
            "[erp] url %s is plain http:// but token_file is set: the token would be sent in "
            "clear; use https://, or set allow_insecure_http = yes in [erp] (tests only)",
            c->erp_url);
    for (int i = 0; i < c->n_peers; i++)
        if (strncmp(c->peers[i].endpoint, "tcp://", 6) != 0)
            bad(p, 0, "[peers] %s: endpoint must be tcp://HOST:PORT", c->peers[i].name);
}

static void defaults(tm_config_t *out)
{
    memset(out, 0, sizeof *out);
    out->log_level = TM_LOG_INFO;
    out->priority = 100;
    out->erp_forwarder_stall_ms = 120000;
    out->erp_reconcile_interval_ms = 60000;
    out->erp_reconcile_batch = 100;
    out->catalogue_max_age_h = 24;
    out->erp_catalogue_interval_s = 60;
    out->erp_catalogue_page = 200;
    out->retention_days = 90;
    out->min_free_mb = 256;
    out->erp_tls_verify = 1;
    out->mdns = 1;
    out->api_request_timeout_s = 10;
    tm_strlcpy(out->api_listen, "127.0.0.1:7780", sizeof out->api_listen);
    tm_strlcpy(out->listen, "tcp://0.0.0.0:7700", sizeof out->listen);
}

static void start(parse_t *p, const char *path, const tm_log_t *log, tm_config_t *out)
{
    defaults(out);
    *p = (parse_t){.cfg = out, .log = log, .path = path};
    const char *slash = strrchr(path, '/');
    if (slash && (size_t)(slash - path) < sizeof p->dir)
        snprintf(p->dir, sizeof p->dir, "%.*s", (int)(slash - path), path);
}

/* Text being read, line by line, for inih. */
typedef struct {
    const char *s;
    size_t len, pos;
    parse_t *p;
} text_t;

/*
 * inih's reader: one whole line per call. inih's own (fgets into its
 * 200-byte buffer) cuts a longer line in two and parses the tail as a line
 * of its own, so "# ...long comment... tls_verify = no" turned TLS checks
 * off. Here a long comment stays a comment and any other over-long line is
 * an error; so is a NUL byte. Either way inih is handed a blank line.
 */
static char *s_read_line(char *str, int num, void *stream)
{
    text_t *t = stream;
    if (t->pos >= t->len)
        return NULL;
    const char *at = t->s + t->pos;
    const char *nl = memchr(at, '\n', t->len - t->pos);
    size_t n = nl ? (size_t)(nl - at) + 1 : t->len - t->pos; /* with its newline */
    t->pos += n;
    t->p->lineno++;
    size_t lead = 0;
    while (lead < n && (at[lead] == ' ' || at[lead] == '\t'))
        lead++;
    int comment = lead < n && (at[lead] == '#' || at[lead] == ';');
    const char *why = NULL;
    if (memchr(at, '\0', n))
        why = "a NUL byte in the line";
    else if (n + 1 > (size_t)num)
        why = "line too long";
    if (!why) {
        memcpy(str, at, n);
        str[n] = '\0';
        return str;
    }
    if (!comment)
        bad(t->p, t->p->lineno, "%s (at most %d characters)", why, num - 2);
    tm_strlcpy(str, "\n", (size_t)num);
    return str;
}

static int parse_text(parse_t *p, const char *text, size_t len)
{
    text_t t = {.s = text, .len = len, .p = p};
    int rc = ini_parse_stream(s_read_line, &t, on_entry, p);
    if (rc < 0)
        return TM_ENOMEM;
    if (rc > 0)
        bad(p, rc, "syntax error (expected [section] or key = value)");
    validate(p);
    return p->errors ? TM_ECONFIG : TM_OK;
}

int tm_config_load(const char *path, const tm_log_t *log, tm_config_t *out)
{
    parse_t p;
    start(&p, path, log, out);
    FILE *f = fopen(path, "r");
    if (!f) {
        tm_log_error(log, "cannot read config file %s: %s", path, strerror(errno));
        return TM_ECONFIG;
    }
    char *text = malloc(CFG_MAX_FILE + 1);
    size_t len = text ? fread(text, 1, CFG_MAX_FILE + 1, f) : 0;
    int rc = TM_ECONFIG;
    if (!text)
        rc = TM_ENOMEM;
    else if (ferror(f))
        tm_log_error(log, "cannot read config file %s: %s", path, strerror(errno));
    else if (len > CFG_MAX_FILE)
        tm_log_error(log, "config file %s is larger than %d bytes; is it the right file?", path,
                     CFG_MAX_FILE);
    else
        rc = parse_text(&p, text, len);
    free(text);
    fclose(f);
    return rc;
}

int tm_config_parse(const char *text, size_t len, const char *name, const tm_log_t *log,
                    tm_config_t *out)
{
    parse_t p;
    start(&p, name, log, out);
    return parse_text(&p, text, len);
}
