/* erp.c - uplink probe and ERP POSTs over libcurl multi (see tm_erp.h). */
#include "tm_erp.h"

#include "tm_record.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>

#define MAX_RESPONSE (4 * 1024 * 1024)

typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    char *buf; /* response body */
    size_t len;
    bool overflow;
    char errbuf[CURL_ERROR_SIZE];
} req_t;

/* One write (POST, PUT, GET /catalogue) in flight on its own easy handle;
 * handles are kept, so curl reuses their connections (keep-alive). */
typedef struct {
    req_t req;
    bool busy;
    tm_erp_done_fn done;
    void *done_ctx;
    char location[256]; /* a 3xx's Location */
} wslot_t;

struct tm_erp {
    const tm_log_t *log;
    tm_erp_cfg_t cfg;
    char url[512];
    char token[512];
    CURLM *multi;
    req_t probe;
    wslot_t w[TM_ERP_MAX_WRITES];
    wslot_t *cur; /* the write being set up */
    bool probe_busy;
    uint64_t next_probe; /* monotonic ms */
    uint32_t ok_run, fail_run;
    tm_uplink_t uplink;
    uint64_t uplink_since;
    char probe_error[600]; /* a configuration error seen by the probe, or "" */
};

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    req_t *r = userp;
    size_t add = size * n;
    if (r->overflow || r->len + add > MAX_RESPONSE) {
        r->overflow = true;
        return 0; /* makes curl fail the transfer: an answer this big is not ours */
    }
    char *b = realloc(r->buf, r->len + add + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, data, add);
    r->buf = b;
    r->len += add;
    b[r->len] = '\0';
    return add;
}

static void req_reset(req_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = 0;
    r->overflow = false;
    r->errbuf[0] = '\0';
    curl_slist_free_all(r->headers);
    r->headers = NULL;
}

static int read_token(tm_erp_t *e, const char *path)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    if (!f) {
        tm_log_error(e->log, "ERP token file %s: %s", path, strerror(errno));
        return TM_ECONFIG;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        fclose(f);
        tm_log_error(e->log, "ERP token file %s is readable by group or others: chmod 600 it",
                     path);
        return TM_EPERM;
    }
    if (!fgets(e->token, sizeof e->token, f))
        e->token[0] = '\0';
    fclose(f);
    e->token[strcspn(e->token, "\r\n")] = '\0';
    return e->token[0] ? TM_OK : TM_ECONFIG;
}

static int req_setup(tm_erp_t *e, req_t *r, const char *path, long timeout_ms)
{
    char url[600];
    req_reset(r);
    snprintf(url, sizeof url, "%s%s", e->url, path);
    curl_easy_reset(r->easy);
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, e->cfg.tls_verify ? 1L : 0L);
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, e->cfg.tls_verify ? 2L : 0L);
    curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "tillmeshd/0.1.0");
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    if (e->token[0]) {
        char h[600];
        snprintf(h, sizeof h, "Authorization: Bearer %s", e->token);
        r->headers = curl_slist_append(r->headers, h);
    }
    return TM_OK;
}

int tm_erp_new(const tm_erp_cfg_t *cfg, const tm_log_t *log, tm_erp_t **out)
{
    *out = NULL;
    if (!cfg->url || (strncmp(cfg->url, "http://", 7) && strncmp(cfg->url, "https://", 8)) ||
        strlen(cfg->url) >= 512)
        return TM_ECONFIG;
    tm_erp_t *e = calloc(1, sizeof *e);
    if (!e)
        return TM_ENOMEM;
    e->log = log;
    e->cfg = *cfg;
    tm_strlcpy(e->url, cfg->url, sizeof e->url);
    size_t ul = strlen(e->url);
    if (ul && e->url[ul - 1] == '/')
        e->url[ul - 1] = '\0';
    e->cfg.url = e->url;
    if (!e->cfg.probe_interval_ms)
        e->cfg.probe_interval_ms = 250;
    if (!e->cfg.probe_timeout_ms)
        e->cfg.probe_timeout_ms = 1000;
    if (!e->cfg.rise)
        e->cfg.rise = 2;
    if (!e->cfg.fall)
        e->cfg.fall = 2;
    if (!e->cfg.request_timeout_ms)
        e->cfg.request_timeout_ms = 10000;
    int rc = TM_OK;
    if (cfg->token_file && cfg->token_file[0] && (rc = read_token(e, cfg->token_file)))
        goto fail;
    rc = TM_ENOMEM;
    if (!(e->multi = curl_multi_init()) || !(e->probe.easy = curl_easy_init()))
        goto fail;
    for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
        if (!(e->w[i].req.easy = curl_easy_init()))
            goto fail;
    e->cfg.token_file = NULL;
    /* The config admits this pair only with allow_insecure_http = yes. */
    if (e->token[0] && !strncmp(e->url, "http://", 7))
        tm_log_warn(log,
                    "INSECURE: [erp] url %s is plain http:// and the ERP token is sent on every "
                    "request in clear (allow_insecure_http = yes); use https:// outside tests",
                    e->url);
    *out = e;
    return TM_OK;
fail:
    tm_erp_destroy(&e);
    return rc;
}

void tm_erp_destroy(tm_erp_t **self_p)
{
    tm_erp_t *e = *self_p;
    if (!e)
        return;
    req_t *rs[TM_ERP_MAX_WRITES + 1] = {&e->probe};
    for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
        rs[i + 1] = &e->w[i].req;
    for (int i = 0; i < TM_ERP_MAX_WRITES + 1; i++) {
        if (rs[i]->easy) {
            if (e->multi)
                curl_multi_remove_handle(e->multi, rs[i]->easy);
            curl_easy_cleanup(rs[i]->easy);
        }
        req_reset(rs[i]);
    }
    if (e->multi)
        curl_multi_cleanup(e->multi);
    memset(e->token, 0, sizeof e->token);
    free(e);
    *self_p = NULL;
}

/* ---- polling ---------------------------------------------------------- */

size_t tm_erp_pollitems(tm_erp_t *e, zmq_pollitem_t *items, size_t max)
{
    fd_set r, w, x;
    int maxfd = -1;
    size_t n = 0;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_ZERO(&x);
    if (curl_multi_fdset(e->multi, &r, &w, &x, &maxfd) != CURLM_OK)
        return 0;
    for (int fd = 0; fd <= maxfd && n < max; fd++) {
        short ev =
            (short)((FD_ISSET(fd, &r) ? ZMQ_POLLIN : 0) | (FD_ISSET(fd, &w) ? ZMQ_POLLOUT : 0) |
                    (FD_ISSET(fd, &x) ? ZMQ_POLLERR : 0));
        if (ev)
            items[n++] = (zmq_pollitem_t){.socket = NULL, .fd = fd, .events = ev};
    }
    return n;
}

long tm_erp_timeout_ms(tm_erp_t *e, uint64_t now_ms)
{
    long t = -1;
    curl_multi_timeout(e->multi, &t);
    if (!e->probe_busy) {
        long p = e->next_probe > now_ms ? (long)(e->next_probe - now_ms) : 0;
        if (t < 0 || p < t)
            t = p;
    }
    return t;
}

tm_uplink_t tm_erp_uplink(const tm_erp_t *e, uint64_t *since_wall_ms)
{
    if (since_wall_ms)
        *since_wall_ms = e->uplink_since;
    return e->uplink;
}

const char *tm_erp_error(const tm_erp_t *e)
{
    return e->probe_error[0] ? e->probe_error : NULL;
}

/* The Location of a 3xx answer, for the operator ("" if none). */
static void redirect_target(CURL *easy, char *out, size_t outsz)
{
    char *loc = NULL;
    out[0] = '\0';
    if (curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
        snprintf(out, outsz, "%.*s", (int)(outsz - 1), loc);
}

void tm_erp_probe_now(tm_erp_t *e)
{
    e->next_probe = 0;
}

bool tm_erp_busy(const tm_erp_t *e)
{
    return tm_erp_writes(e) > 0;
}

unsigned tm_erp_writes(const tm_erp_t *e)
{
    unsigned n = 0;
    for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
        n += e->w[i].busy;
    return n;
}

/* A free write slot, set up for path; NULL when all are busy. */
static req_t *write_slot(tm_erp_t *e, const char *path)
{
    e->cur = NULL;
    for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
        if (!e->w[i].busy) {
            e->cur = &e->w[i];
            req_setup(e, &e->cur->req, path, (long)e->cfg.request_timeout_ms);
            return &e->cur->req;
        }
    return NULL;
}

static int write_add(tm_erp_t *e, tm_erp_done_fn done, void *ctx)
{
    if (curl_multi_add_handle(e->multi, e->cur->req.easy) != CURLM_OK)
        return TM_EIO;
    e->cur->busy = true;
    e->cur->done = done;
    e->cur->done_ctx = ctx;
    return TM_OK;
}

/* ---- the probe -------------------------------------------------------- */

static void probe_start(tm_erp_t *e)
{
    req_setup(e, &e->probe, "/health", (long)e->cfg.probe_timeout_ms);
    curl_easy_setopt(e->probe.easy, CURLOPT_HTTPHEADER, e->probe.headers);
    /* A fresh connection each time: a probe must notice a pulled cable, not
     * ride on a pooled connection that has not yet noticed. */
    curl_easy_setopt(e->probe.easy, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e->probe.easy, CURLOPT_FORBID_REUSE, 1L);
    if (curl_multi_add_handle(e->multi, e->probe.easy) == CURLM_OK)
        e->probe_busy = true;
}

static void set_uplink(tm_erp_t *e, tm_uplink_t u, uint64_t wall_ms, const char *why)
{
    if (u == e->uplink)
        return;
    if (u == TM_UPLINK_DOWN)
        tm_log_warn(e->log, "ERP %s unreachable: %s", e->url, why);
    else
        tm_log_info(e->log, "ERP %s reachable", e->url);
    e->uplink = u;
    e->uplink_since = wall_ms;
}

/* Answers that no waiting will fix: say what to change. The uplink state
 * change is logged once by set_uplink; this is for status. */
static void probe_config_error(tm_erp_t *e, long status)
{
    char loc[200];
    if (status >= 300 && status < 400) {
        redirect_target(e->probe.easy, loc, sizeof loc);
        snprintf(
            e->probe_error, sizeof e->probe_error,
            "GET %.200s/health answered HTTP %ld (redirect to %s): redirects are not followed; "
            "check [erp] url (a login proxy or captive portal in the way?)",
            e->url, status, loc[0] ? loc : "nowhere");
    } else if (status == 401 || status == 403) {
        snprintf(e->probe_error, sizeof e->probe_error,
                 "GET %.200s/health answered HTTP %ld: the ERP refuses our token; check [erp] "
                 "token_file",
                 e->url, status);
    } else if (status == 404) {
        snprintf(e->probe_error, sizeof e->probe_error,
                 "GET %.200s/health answered HTTP 404: check the base path in [erp] url", e->url);
    } else {
        e->probe_error[0] = '\0';
    }
}

static void probe_done(tm_erp_t *e, CURLcode cc, uint64_t now_ms, uint64_t wall_ms)
{
    long status = 0;
    char why[CURL_ERROR_SIZE + 32];
    curl_easy_getinfo(e->probe.easy, CURLINFO_RESPONSE_CODE, &status);
    bool ok = cc == CURLE_OK && status == 200;
    if (ok) {
        e->probe_error[0] = '\0';
        e->fail_run = 0;
        if (++e->ok_run >= e->cfg.rise)
            set_uplink(e, TM_UPLINK_UP, wall_ms, "");
    } else {
        e->ok_run = 0;
        if (cc != CURLE_OK)
            snprintf(why, sizeof why, "%s",
                     e->probe.errbuf[0] ? e->probe.errbuf : curl_easy_strerror(cc));
        else
            snprintf(why, sizeof why, "health check answered %ld", status);
        probe_config_error(e, status);
        if (++e->fail_run >= e->cfg.fall)
            set_uplink(e, TM_UPLINK_DOWN, wall_ms, why);
    }
    e->probe_busy = false;
    e->next_probe = now_ms + e->cfg.probe_interval_ms;
}

/* ---- POST /sales ------------------------------------------------------ */

/* Adds the headers every write carries (the request's own are already in
 * the slot being set up), sets the body and starts the transfer. */
static int write_start(tm_erp_t *e, const char *body, size_t len, uint64_t epoch, const char *till,
                       tm_erp_done_fn done, void *ctx)
{
    char h[256];
    req_t *p = &e->cur->req;
    p->headers = curl_slist_append(p->headers, "Content-Type: application/json");
    p->headers = curl_slist_append(p->headers, "Expect:");
    snprintf(h, sizeof h, "X-Tillmesh-Epoch: %llu", (unsigned long long)epoch);
    p->headers = curl_slist_append(p->headers, h);
    snprintf(h, sizeof h, "X-Tillmesh-Till: %s", till);
    p->headers = curl_slist_append(p->headers, h);
    curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(p->easy, CURLOPT_COPYPOSTFIELDS, body);
    return write_add(e, done, ctx);
}

int tm_erp_post_sales(tm_erp_t *e, const char *body, size_t len, const char *key, uint64_t epoch,
                      const char *till, tm_erp_done_fn done, void *ctx)
{
    char h[256];
    req_t *p = write_slot(e, "/sales");
    if (!p)
        return TM_ESTATE;
    snprintf(h, sizeof h, "Idempotency-Key: %s", key);
    p->headers = curl_slist_append(p->headers, h);
    return write_start(e, body, len, epoch, till, done, ctx);
}

int tm_erp_post_status(tm_erp_t *e, const char *body, size_t len, uint64_t epoch, const char *till,
                       tm_erp_done_fn done, void *ctx)
{
    if (!write_slot(e, "/sales/status"))
        return TM_ESTATE;
    return write_start(e, body, len, epoch, till, done, ctx);
}

int tm_erp_put_customer(tm_erp_t *e, const char *id, const char *body, size_t len, uint64_t version,
                        uint64_t epoch, const char *till, tm_erp_done_fn done, void *ctx)
{
    char h[256], path[TM_CUST_ID_MAX + 16];
    /* Normalised ids are [0-9A-Z]: nothing to escape in a path. */
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z')))
            return TM_EINVAL;
    snprintf(path, sizeof path, "/customers/%s", id);
    req_t *p = write_slot(e, path);
    if (!p)
        return TM_ESTATE;
    curl_easy_setopt(p->easy, CURLOPT_CUSTOMREQUEST, "PUT");
    snprintf(h, sizeof h, "X-Tillmesh-Version: %llu", (unsigned long long)version);
    p->headers = curl_slist_append(p->headers, h);
    return write_start(e, body, len, epoch, till, done, ctx);
}

int tm_erp_get_catalogue(tm_erp_t *e, const char *since, uint32_t limit, uint64_t epoch,
                         const char *till, tm_erp_done_fn done, void *ctx)
{
    char path[TM_CURSOR_MAX * 3 + 64], h[256];
    if (tm_erp_writes(e) >= TM_ERP_MAX_WRITES)
        return TM_ESTATE;
    CURL *esc = curl_easy_init();
    char *q = esc ? curl_easy_escape(esc, since, 0) : NULL;
    if (q)
        snprintf(path, sizeof path, "/catalogue?since=%s&limit=%u", q, limit);
    curl_free(q);
    curl_easy_cleanup(esc);
    if (!q)
        return TM_ENOMEM;
    req_t *p = write_slot(e, path);
    if (!p)
        return TM_ESTATE;
    snprintf(h, sizeof h, "X-Tillmesh-Epoch: %llu", (unsigned long long)epoch);
    p->headers = curl_slist_append(p->headers, h);
    snprintf(h, sizeof h, "X-Tillmesh-Till: %s", till);
    p->headers = curl_slist_append(p->headers, h);
    curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->headers);
    return write_add(e, done, ctx);
}

static void post_done(wslot_t *w, CURLcode cc)
{
    tm_erp_result_t r = {0};
    double secs = 0;
    curl_easy_getinfo(w->req.easy, CURLINFO_TOTAL_TIME, &secs);
    w->location[0] = '\0';
    if (cc == CURLE_OK) {
        curl_easy_getinfo(w->req.easy, CURLINFO_RESPONSE_CODE, &r.status);
        if (r.status >= 300 && r.status < 400)
            redirect_target(w->req.easy, w->location, sizeof w->location);
    } else {
        r.error = w->req.errbuf[0] ? w->req.errbuf : curl_easy_strerror(cc);
        r.fail = cc == CURLE_OPERATION_TIMEDOUT ? TM_ERP_FAIL_TIMEOUT
                 : cc == CURLE_COULDNT_CONNECT  ? TM_ERP_FAIL_REFUSED
                                                : TM_ERP_FAIL_OTHER;
    }
    r.body = w->req.buf ? w->req.buf : "";
    r.body_len = w->req.len;
    r.location = w->location;
    r.seconds = secs;
    w->busy = false;
    if (w->done)
        w->done(w->done_ctx, &r);
}

void tm_erp_run(tm_erp_t *e, uint64_t now_ms, uint64_t wall_ms)
{
    int running, left;
    if (!e->probe_busy && now_ms >= e->next_probe)
        probe_start(e);
    curl_multi_perform(e->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(e->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode cc = m->data.result;
        curl_multi_remove_handle(e->multi, easy);
        if (easy == e->probe.easy)
            probe_done(e, cc, now_ms, wall_ms);
        else
            for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
                if (easy == e->w[i].req.easy && e->w[i].busy) {
                    post_done(&e->w[i], cc);
                    break;
                }
    }
}
