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

/* Probes in flight at once during a burst (see probe_schedule). */
#define PROBES_MAX 16
/* During a burst a probe starts every BURST_GAP_MS, each given
 * BURST_TIMEOUT_MS plus three smoothed round trips: enough for one TCP
 * retransmission of the request or the answer (200 ms minimum RTO on
 * Linux), too short for a lost SYN (retried after 1 s). A lost SYN is what
 * makes a probe fail on a lossy link; it cannot make silent_fall probes in a
 * row fail except by chance (0.41^12 ~ 2e-5 at 20 % loss, see docs/erp.md). */
#define BURST_GAP_MS     20u
#define BURST_TIMEOUT_MS 250u

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
    uint64_t seen_ms;   /* when the probe first saw it in flight (0: not yet) */
} wslot_t;

typedef struct {
    req_t r;
    bool busy;
    uint64_t started_ms;
    long timeout_ms;
} probe_t;

struct tm_erp {
    const tm_log_t *log;
    tm_erp_cfg_t cfg;
    char url[512];
    char token[512];
    CURLM *multi;
    wslot_t w[TM_ERP_MAX_WRITES];
    wslot_t *cur; /* the write being set up */
    /* The probe (see tm_erp.h): a pool for bursts, the pace from the
     * engine, the run counts behind rise/fall/silent_fall. */
    probe_t probes[PROBES_MAX];
    bool fast;           /* forwarder or standby: tm_erp_set_fast */
    bool suspect;        /* a burst runs: something went unanswered */
    uint64_t next_probe; /* monotonic ms */
    uint64_t last_ok_ms; /* the last answer that proved the uplink works */
    uint32_t ok_run, fail_run, lost_run;
    double srtt_ms; /* smoothed duration of a good probe */
    tm_erp_probe_stats_t pst;
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
        e->cfg.probe_interval_ms = 2000;
    if (!e->cfg.probe_slow_interval_ms)
        e->cfg.probe_slow_interval_ms = 30000;
    if (!e->cfg.probe_timeout_ms)
        e->cfg.probe_timeout_ms = 1000;
    if (!e->cfg.probe_suspect_ms)
        e->cfg.probe_suspect_ms = 100;
    if (!e->cfg.silent_fall)
        e->cfg.silent_fall = 12;
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
    if (!(e->multi = curl_multi_init()))
        goto fail;
    for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
        if (!(e->w[i].req.easy = curl_easy_init()))
            goto fail;
    for (int i = 0; i < PROBES_MAX; i++)
        if (!(e->probes[i].r.easy = curl_easy_init()))
            goto fail;
    e->fast = true; /* until the engine says otherwise: settle the verdict */
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
    req_t *rs[TM_ERP_MAX_WRITES + PROBES_MAX];
    for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
        rs[i] = &e->w[i].req;
    for (int i = 0; i < PROBES_MAX; i++)
        rs[TM_ERP_MAX_WRITES + i] = &e->probes[i].r;
    for (int i = 0; i < TM_ERP_MAX_WRITES + PROBES_MAX; i++) {
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

static uint64_t suspicion_due(const tm_erp_t *e);

long tm_erp_timeout_ms(tm_erp_t *e, uint64_t now_ms)
{
    long t = -1;
    curl_multi_timeout(e->multi, &t);
    uint64_t due = e->next_probe, s = suspicion_due(e);
    if (s < due)
        due = s;
    long p = due > now_ms ? (long)(due - now_ms) : 0;
    if (t < 0 || p < t)
        t = p;
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
    if (e->uplink != TM_UPLINK_DOWN && !e->suspect) {
        e->suspect = true; /* a failed request: find out fast */
        e->pst.bursts++;
    }
}

void tm_erp_probe_once(tm_erp_t *e)
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

static probe_t *probe_free_slot(tm_erp_t *e)
{
    for (int i = 0; i < PROBES_MAX; i++)
        if (!e->probes[i].busy)
            return &e->probes[i];
    return NULL;
}

static bool probe_any_busy(const tm_erp_t *e)
{
    for (int i = 0; i < PROBES_MAX; i++)
        if (e->probes[i].busy)
            return true;
    return false;
}

static void probe_start(tm_erp_t *e, uint64_t now_ms)
{
    probe_t *p = probe_free_slot(e);
    if (!p)
        return;
    /* A burst probe gets a short timeout (see BURST_TIMEOUT_MS), a paced
     * one the configured one. */
    long t = (long)e->cfg.probe_timeout_ms;
    if (e->suspect) {
        long bt = (long)BURST_TIMEOUT_MS + (long)(3.0 * e->srtt_ms);
        if (bt < t)
            t = bt;
    }
    req_setup(e, &p->r, "/health", t);
    /* The till's name: the ERP (and the stub's counts) can tell whose
     * probes these are. */
    if (e->cfg.till && e->cfg.till[0]) {
        char h[160];
        snprintf(h, sizeof h, "X-Tillmesh-Till: %.100s", e->cfg.till);
        p->r.headers = curl_slist_append(p->r.headers, h);
    }
    curl_easy_setopt(p->r.easy, CURLOPT_HTTPHEADER, p->r.headers);
    /* A fresh connection each time: a probe must notice a pulled cable, not
     * ride on a pooled connection that has not yet noticed; and probes in a
     * burst must not queue behind one lost packet. */
    curl_easy_setopt(p->r.easy, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(p->r.easy, CURLOPT_FORBID_REUSE, 1L);
    if (curl_multi_add_handle(e->multi, p->r.easy) != CURLM_OK)
        return;
    p->busy = true;
    p->started_ms = now_ms;
    p->timeout_ms = t;
    e->pst.health_requests++;
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
static void probe_config_error(tm_erp_t *e, CURL *easy, long status)
{
    char loc[200];
    if (status >= 300 && status < 400) {
        redirect_target(easy, loc, sizeof loc);
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

/* The time to the next paced probe: a till that is neither forwarder nor
 * standby probes slowly, up or down, once its first verdict is in. */
static uint64_t pace_ms(const tm_erp_t *e)
{
    return e->fast || e->uplink == TM_UPLINK_UNKNOWN ? e->cfg.probe_interval_ms
                                                     : e->cfg.probe_slow_interval_ms;
}

/* The uplink answered: a good probe, or a real request that got an answer
 * (a POST that succeeds counts as a probe, so no /health goes out while
 * sales flow). Ends a burst. */
static void uplink_ok(tm_erp_t *e, uint64_t now_ms, uint64_t wall_ms)
{
    e->fail_run = 0;
    e->lost_run = 0;
    e->last_ok_ms = now_ms;
    e->suspect = false;
    if (++e->ok_run >= e->cfg.rise) {
        set_uplink(e, TM_UPLINK_UP, wall_ms, "");
        e->next_probe = now_ms + pace_ms(e);
    } else {
        e->next_probe = now_ms + BURST_GAP_MS; /* rising: the next one soon */
    }
}

/* A probe or request failed. `lost`: no answer at all within its timeout
 * (the link may be silent, or a packet was lost); else something answered
 * no (connection refused, network unreachable, an HTTP error), which random
 * loss cannot fake. Either starts a burst; `fall` answers of no in a row, or
 * `silent_fall` probes lost in a row with no answer in between, make the
 * uplink DOWN. */
static void uplink_failed(tm_erp_t *e, bool lost, const char *why, uint64_t now_ms,
                          uint64_t wall_ms)
{
    e->ok_run = 0;
    if (lost)
        e->lost_run++;
    else
        e->fail_run++;
    if (e->uplink != TM_UPLINK_DOWN && !e->suspect) {
        e->suspect = true;
        e->pst.bursts++;
        e->next_probe = now_ms;
    }
    if (e->fail_run >= e->cfg.fall || e->lost_run >= e->cfg.silent_fall) {
        if (e->uplink != TM_UPLINK_DOWN)
            tm_log_info(e->log, "ERP probe: %u refused, %u unanswered since the last answer",
                        e->fail_run, e->lost_run);
        set_uplink(e, TM_UPLINK_DOWN, wall_ms, why);
        e->suspect = false;
        e->next_probe = now_ms + pace_ms(e);
    }
}

static void probe_done(tm_erp_t *e, probe_t *p, CURLcode cc, uint64_t now_ms, uint64_t wall_ms)
{
    long status = 0;
    double secs = 0;
    char why[CURL_ERROR_SIZE + 32];
    curl_easy_getinfo(p->r.easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(p->r.easy, CURLINFO_TOTAL_TIME, &secs);
    p->busy = false;
    /* What happened before the last proof of life says nothing new. */
    bool stale = p->started_ms < e->last_ok_ms;
    if (cc == CURLE_OK && status == 200) {
        e->probe_error[0] = '\0';
        double ms = secs * 1000.0;
        e->srtt_ms = e->srtt_ms > 0 ? 0.875 * e->srtt_ms + 0.125 * ms : ms;
        uplink_ok(e, now_ms, wall_ms);
        return;
    }
    if (cc != CURLE_OK)
        snprintf(why, sizeof why, "%s", p->r.errbuf[0] ? p->r.errbuf : curl_easy_strerror(cc));
    else
        snprintf(why, sizeof why, "health check answered %ld", status);
    probe_config_error(e, p->r.easy, status);
    if (stale)
        return;
    /* No answer within most of the timeout: lost. A quick failure is an
     * answer (RST, ICMP unreachable, an HTTP status). */
    bool lost = cc != CURLE_OK && now_ms - p->started_ms >= (uint64_t)p->timeout_ms / 2;
    if (lost)
        e->pst.lost++;
    uplink_failed(e, lost, why, now_ms, wall_ms);
}

/* A finished POST/PUT/GET on the request slot, seen by the probe: an HTTP
 * answer below 500 proves the uplink; a transport error starts a burst. */
static void probe_saw_request(tm_erp_t *e, wslot_t *w, CURLcode cc, uint64_t now_ms,
                              uint64_t wall_ms)
{
    long status = 0;
    curl_easy_getinfo(w->req.easy, CURLINFO_RESPONSE_CODE, &status);
    w->seen_ms = 0;
    if (cc == CURLE_OK && status > 0 && status < 500) {
        e->pst.requests_as_probes++;
        uplink_ok(e, now_ms, wall_ms);
    } else if (cc != CURLE_OK && e->uplink != TM_UPLINK_DOWN && !e->suspect) {
        e->suspect = true;
        e->pst.bursts++;
        e->next_probe = now_ms;
    }
}

/* When a request in flight becomes suspect (UINT64_MAX: none will): the
 * request slot's or a probe's, unanswered for probe_suspect_ms and started
 * after the uplink last answered. Once anything answers, what was started
 * before no longer counts: a slow POST to a slow ERP starts one burst (a
 * probe or two answered), not one after every answer. */
static uint64_t suspicion_due(const tm_erp_t *e)
{
    uint64_t due = UINT64_MAX;
    if (e->suspect || e->uplink == TM_UPLINK_DOWN)
        return due;
    for (int i = 0; i < TM_ERP_MAX_WRITES; i++) {
        const wslot_t *w = &e->w[i];
        if (w->busy && w->seen_ms && w->seen_ms > e->last_ok_ms &&
            w->seen_ms + e->cfg.probe_suspect_ms < due)
            due = w->seen_ms + e->cfg.probe_suspect_ms;
    }
    for (int i = 0; i < PROBES_MAX; i++) {
        const probe_t *p = &e->probes[i];
        if (p->busy && p->started_ms > e->last_ok_ms &&
            p->started_ms + e->cfg.probe_suspect_ms < due)
            due = p->started_ms + e->cfg.probe_suspect_ms;
    }
    return due;
}

/* Starts what is due: a paced probe, or the next probe of a burst. A
 * request unanswered for probe_suspect_ms (a POST or a paced probe) starts
 * a burst: on a silent link nothing else would say so before its timeout. */
static void probe_schedule(tm_erp_t *e, uint64_t now_ms)
{
    for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
        if (e->w[i].busy && !e->w[i].seen_ms)
            e->w[i].seen_ms = now_ms;
    if (now_ms >= suspicion_due(e)) {
        e->suspect = true;
        e->pst.bursts++;
        e->next_probe = now_ms;
    }
    if (now_ms < e->next_probe)
        return;
    if (e->suspect) {
        probe_start(e, now_ms);
        e->next_probe = now_ms + BURST_GAP_MS;
    } else if (!probe_any_busy(e)) {
        probe_start(e, now_ms);
        e->next_probe = now_ms + pace_ms(e);
    }
}

void tm_erp_set_fast(tm_erp_t *e, bool fast, uint64_t now_ms)
{
    if (fast == e->fast)
        return;
    e->fast = fast;
    if (e->next_probe > now_ms + pace_ms(e))
        e->next_probe = now_ms + pace_ms(e);
    tm_log_info(e->log, "ERP probe pace: %s (every %u ms)",
                fast ? "fast, forwarder or standby" : "slow",
                fast ? e->cfg.probe_interval_ms : e->cfg.probe_slow_interval_ms);
}

void tm_erp_probe_stats(const tm_erp_t *e, uint64_t now_ms, tm_erp_probe_stats_t *out)
{
    *out = e->pst;
    out->fast = e->fast;
    out->bursting = e->suspect;
    out->last_ok_age_ms = e->last_ok_ms ? now_ms - e->last_ok_ms : UINT64_MAX;
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
    probe_schedule(e, now_ms);
    curl_multi_perform(e->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(e->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode cc = m->data.result;
        curl_multi_remove_handle(e->multi, easy);
        for (int i = 0; i < PROBES_MAX; i++)
            if (easy == e->probes[i].r.easy)
                probe_done(e, &e->probes[i], cc, now_ms, wall_ms);
        for (int i = 0; i < TM_ERP_MAX_WRITES; i++)
            if (easy == e->w[i].req.easy && e->w[i].busy) {
                probe_saw_request(e, &e->w[i], cc, now_ms, wall_ms);
                post_done(&e->w[i], cc);
                break;
            }
    }
}
