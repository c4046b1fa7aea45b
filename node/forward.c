/* forward.c - forwarding batches of sales to the ERP (see tm_fwd.h). */
#include "tm_fwd.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fwd_int.h"
#include "tm_wire.h"

/* A batch the ERP refused as a whole (a 4xx): its intent is superseded by
 * one-sale intents, taken in its order from `next` on. Kept in memory
 * only: after a restart, or on a successor, the batch is sent once more,
 * refused once more, and split there (one request, under backoff). */
typedef struct {
    char key[72]; /* "" when no split is under way */
    size_t next;
    bool single; /* the request in flight is one of this split's sales */
} split_t;

struct tm_fwd {
    tm_fwd_cfg_t cfg;
    char till[TM_PEER_NAME_MAX];
    tm_store_t *store;
    tm_engine_t *engine;
    tm_erp_t *erp;
    tm_outbox_t *outbox;
    const tm_log_t *log;
    tm_fwd_stats_t st;
    /* The batch in flight. */
    char (*ids)[TM_UUID_LEN];
    size_t n_ids;
    bool resend; /* the batch failed: send exactly it again, same key */
    char key[72];
    uint64_t epoch;
    /* A customer PUT in flight instead of a sales batch. */
    bool customer;
    tm_cust_version_t cust;
    /* Customers the ERP refused (4xx) since we started: not retried until
     * restart; a change to the customer makes a new version, retried. */
    tm_cust_version_t *refused;
    size_t n_refused;
    /* Nothing was left to send when the store held idle_ops ops: no need
     * to query again until it holds more (or an operator retries). */
    bool idle;
    uint64_t idle_ops;
    split_t split;
    /* Rate limit of the failure log: the same message at most once a
     * minute, with the count of repeats not logged. */
    char logged[200];
    uint64_t logged_at_ms;
    uint32_t repeats;
    int last_kind; /* fail_t of the last failure */
    uint64_t now_ms, wall_ms;
    /* Reconcile: the request in flight, and where the next window starts. */
    bool reconciling;
    char (*rec_ids)[TM_UUID_LEN];
    size_t n_rec;
    uint64_t rec_cursor, next_reconcile_ms;
    tm_fwd__cat_t cat; /* catalogue down-sync (fwd_catalogue.c) */
    bool cat_ready;    /* we were the forwarder with a working uplink last step */
};

uint32_t tm_fwd_jitter_random(void *ctx, uint32_t upper)
{
    (void)ctx;
    return upper == UINT32_MAX ? randombytes_random() : randombytes_uniform(upper + 1);
}

int tm_fwd_new(const tm_fwd_cfg_t *cfg, tm_store_t *store, tm_engine_t *engine, tm_erp_t *erp,
               tm_outbox_t *outbox, const tm_log_t *log, tm_fwd_t **out)
{
    tm_fwd_t *f = calloc(1, sizeof *f);
    *out = NULL;
    if (!f)
        return TM_ENOMEM;
    f->cfg = *cfg;
    if (!f->cfg.batch_max)
        f->cfg.batch_max = 500;
    if (f->cfg.batch_max > TM_ERP_ACK_MAX_IDS)
        f->cfg.batch_max = TM_ERP_ACK_MAX_IDS;
    if (!f->cfg.backoff_min_ms)
        f->cfg.backoff_min_ms = 200;
    if (!f->cfg.backoff_max_ms)
        f->cfg.backoff_max_ms = 30000;
    if (!f->cfg.reconcile_batch)
        f->cfg.reconcile_batch = 100;
    if (f->cfg.reconcile_batch > 1000)
        f->cfg.reconcile_batch = 1000;
    if (f->cfg.backoff_max_ms < f->cfg.backoff_min_ms)
        f->cfg.backoff_max_ms = f->cfg.backoff_min_ms;
    if (!f->cfg.jitter)
        f->cfg.jitter = tm_fwd_jitter_random;
    tm_strlcpy(f->till, cfg->till ? cfg->till : "", sizeof f->till);
    f->store = store;
    f->engine = engine;
    f->erp = erp;
    f->outbox = outbox;
    f->log = log;
    tm_fwd__cat_init(&f->cat, cfg->catalogue_interval_ms, cfg->catalogue_page);
    *out = f;
    return TM_OK;
}

void tm_fwd_destroy(tm_fwd_t **self_p)
{
    tm_fwd_t *f = *self_p;
    if (!f)
        return;
    free(f->ids);
    free(f->rec_ids);
    free(f->refused);
    free(f);
    *self_p = NULL;
}

void tm_fwd_stats(const tm_fwd_t *f, tm_fwd_stats_t *out)
{
    *out = f->st;
    out->in_flight = tm_erp_busy(f->erp);
}

long tm_fwd_timeout_ms(const tm_fwd_t *f, uint64_t now_ms)
{
    tm_forwarder_t who;
    tm_engine_forwarder(f->engine, &who);
    if (who.is_self && who.active_from_ms > now_ms)
        return (long)(who.active_from_ms - now_ms);
    if (f->st.backoff_until_ms > now_ms)
        return (long)(f->st.backoff_until_ms - now_ms);
    /* Past due (the uplink is down, a request in flight): the loop's other
     * timers bring us back; never a busy loop. */
    long t = -1;
    if (who.is_self && f->cfg.reconcile_interval_ms && !f->st.reconcile_off &&
        f->next_reconcile_ms > now_ms)
        t = (long)(f->next_reconcile_ms - now_ms);
    /* A pull due now (the ERP said "more") runs at the next turn, not at
     * the next heartbeat; only while it can run, or the loop would spin. */
    if (who.is_self && !f->cat.busy &&
        (f->cat.next_ms > now_ms ||
         (!tm_erp_busy(f->erp) && tm_erp_uplink(f->erp, NULL) == TM_UPLINK_UP))) {
        long c = tm_fwd__cat_timeout_ms(&f->cat, now_ms);
        t = t < 0 || c < t ? c : t;
    }
    return t;
}

/* ---- outcomes --------------------------------------------------------- */

typedef enum {
    FAIL_TRANSIENT, /* the ERP is down or busy: waiting fixes it */
    FAIL_CONFIG,    /* a person must change the config or the network */
    FAIL_PROTOCOL,  /* the answer breaks the contract (docs/erp.md) */
    FAIL_REFUSED,   /* the ERP refused the request (4xx): sales parked or split */
} fail_t;

static void log_failure(tm_fwd_t *f, fail_t kind, const char *why, uint64_t delay)
{
    bool same = strcmp(f->logged, why) == 0 && f->now_ms - f->logged_at_ms < 60000;
    if (same && kind != FAIL_REFUSED) {
        f->repeats++;
        tm_log_debug(f->log, "ERP: %s (again; next try in %llu ms)", why,
                     (unsigned long long)delay);
        return;
    }
    const char *what = kind == FAIL_CONFIG     ? "configuration error: "
                       : kind == FAIL_PROTOCOL ? "protocol error: "
                                               : "";
    if (f->repeats)
        tm_log_warn(f->log, "ERP %s%s; retrying in %llu ms (%u more like it in the last minute)",
                    what, why, (unsigned long long)delay, f->repeats);
    else
        tm_log_warn(f->log, "ERP %s%s; retrying in %llu ms", what, why, (unsigned long long)delay);
    tm_strlcpy(f->logged, why, sizeof f->logged);
    f->logged_at_ms = f->now_ms;
    f->repeats = 0;
}

uint64_t tm_fwd__backoff_ms(uint32_t failures, uint32_t min_ms, uint32_t max_ms,
                            tm_fwd_jitter_fn jitter, void *ctx)
{
    uint64_t d = min_ms;
    for (uint32_t i = 1; i < failures && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    /* Jitter on the upper half: tills that failed together do not retry
     * together, and the wait never drops under half the step. */
    uint32_t j = jitter(ctx, (uint32_t)(d / 2));
    return d / 2 + (j > d / 2 ? d / 2 : j);
}

/* Every failed request ends here: nothing is sent again before the backoff
 * runs out, whatever the failure. */
static void backoff(tm_fwd_t *f, fail_t kind, const char *why)
{
    f->st.failures++;
    f->st.batches_failed++;
    f->last_kind = (int)kind;
    uint64_t d = tm_fwd__backoff_ms(f->st.failures, f->cfg.backoff_min_ms, f->cfg.backoff_max_ms,
                                    f->cfg.jitter, f->cfg.jitter_ctx);
    f->st.backoff_until_ms = f->now_ms + d;
    tm_strlcpy(f->st.last_error, why, sizeof f->st.last_error);
    if (kind == FAIL_PROTOCOL)
        f->st.protocol_errors++;
    if (kind == FAIL_CONFIG || kind == FAIL_PROTOCOL)
        snprintf(f->st.error, sizeof f->st.error, "%s error: %s",
                 kind == FAIL_CONFIG ? "configuration" : "protocol", why);
    log_failure(f, kind, why, d);
}

static void succeeded(tm_fwd_t *f)
{
    /* Say so when a failure the log reported is over. */
    if (f->st.failures && f->logged[0] && f->last_kind != FAIL_REFUSED)
        tm_log_info(f->log, "ERP answers well again after %u failed request(s) (last: %s)",
                    f->st.failures, f->st.last_error);
    f->st.failures = 0;
    f->st.backoff_until_ms = 0;
    f->st.last_forward_wall_ms = f->wall_ms;
    f->st.last_error[0] = '\0';
    f->st.error[0] = '\0';
    f->logged[0] = '\0';
    f->repeats = 0;
}

/* Records acknowledged ids as ERP_ACK ops (replicated to every till). */
static int record_acks(tm_fwd_t *f, char (*ids)[TM_UUID_LEN], size_t n)
{
    if (!n)
        return TM_OK;
    tm_erp_ack_t a = {.sale_ids = ids, .n = n, .epoch = f->epoch};
    tm_strlcpy(a.idempotency_key, f->key, sizeof a.idempotency_key);
    uint8_t *body;
    size_t len;
    int rc = tm_wire_ack_encode(&a, &body, &len);
    if (rc)
        return rc;
    uint64_t hlc = tm_engine_hlc_now(f->engine, f->wall_ms);
    rc = tm_engine_local_op(f->engine, TM_OP_ERP_ACK, hlc, body, len, f->now_ms, f->outbox);
    free(body);
    if (rc)
        tm_log_error(f->log, "could not record ERP acknowledgement of %zu sales: %s", n,
                     tm_strerror(rc));
    else
        f->st.sales_acked += n;
    return rc;
}

static void park(tm_fwd_t *f, const char *id, int status, const char *msg)
{
    if (tm_store_park(f->store, id, status, msg, f->wall_ms) == TM_OK) {
        f->st.sales_parked++;
        tm_log_warn(f->log,
                    "ERP refused sale %s (%d: %s): parked; `tillmesh erp retry %s` "
                    "sends it again",
                    id, status, msg, id);
    }
}

typedef tm_fwd__answer_t answer_t;
enum { ANS_NONE = TM_FWD__NONE, ANS_ACKED = TM_FWD__ACKED, ANS_REJECTED = TM_FWD__REJECTED };

typedef struct {
    char (*ids)[TM_UUID_LEN];
    size_t n;
} batch_t;

static size_t batch_index(const batch_t *f, const char *id)
{
    /* The contract echoes ids "spelt as sent"; tolerate a change of case. */
    for (size_t i = 0; i < f->n; i++)
        if (strcasecmp(f->ids[i], id) == 0)
            return i;
    return SIZE_MAX;
}

static void bad_answer(answer_t *a, bool untrusted, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bad_answer(answer_t *a, bool untrusted, const char *fmt, ...)
{
    if (!a->problem[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(a->problem, sizeof a->problem, fmt, ap);
        va_end(ap);
    }
    a->untrusted |= untrusted;
}

/* One id of accepted/duplicates (rej = NULL) or one rejected entry. */
static void classify(const batch_t *f, answer_t *a, json_t *v, json_t *rej)
{
    const char *id = json_string_value(rej ? json_object_get(rej, "sale_id") : v);
    if (!id || !tm_uuid_valid(id)) {
        bad_answer(a, true, "the ERP's answer lists an entry that is not a sale id");
        return;
    }
    size_t i = batch_index(f, id);
    if (i == SIZE_MAX) {
        bad_answer(a, true, "the ERP's answer names sale %s, which was not in the batch", id);
        return;
    }
    uint8_t w = rej ? ANS_REJECTED : ANS_ACKED;
    if (a->what[i] != ANS_NONE && a->what[i] != w) {
        bad_answer(a, true, "the ERP's answer lists sale %s as both booked and rejected", id);
        return;
    }
    a->what[i] = w;
    if (rej) {
        json_t *st = json_object_get(rej, "status");
        json_int_t s = json_is_integer(st) ? json_integer_value(st) : 422;
        const char *m = json_string_value(json_object_get(rej, "message"));
        a->status[i] = s >= 400 && s < 500 ? (int)s : 422;
        snprintf(a->msg[i], sizeof a->msg[i], "%.150s", m ? m : "rejected");
    }
}

/* The start of an answer's body, printable, for a log line or status. */
static const char *snippet(const char *body, size_t len, char *out, size_t outsz)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < outsz; i++)
        out[k++] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : ' ';
    out[k] = '\0';
    return k ? out : "(empty)";
}

void tm_fwd__read_answer(char (*ids)[TM_UUID_LEN], size_t n, long status, const char *body,
                         size_t len, tm_fwd__answer_t *a)
{
    const batch_t batch = {ids, n}, *f = &batch;
    char head[48];
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *acc = json_object_get(root, "accepted"), *dup = json_object_get(root, "duplicates");
    json_t *rej = json_object_get(root, "rejected"), *v;
    size_t i;
    if (!json_is_object(root))
        bad_answer(a, true,
                   "the ERP answered HTTP %ld with a body that is not a JSON object: \"%s\"",
                   status, snippet(body, len, head, sizeof head));
    else if (!json_is_array(acc) || !json_is_array(dup) || !json_is_array(rej))
        bad_answer(a, true, "the ERP's 200 answer lacks the accepted/duplicates/rejected lists");
    else {
        json_array_foreach (acc, i, v)
            classify(f, a, v, NULL);
        json_array_foreach (dup, i, v)
            classify(f, a, v, NULL);
        json_array_foreach (rej, i, v)
            classify(f, a, NULL, json_is_object(v) ? v : json_null());
    }
    json_decref(root);
    if (a->problem[0])
        return;
    size_t missing = 0;
    for (i = 0; i < f->n; i++)
        missing += a->what[i] == ANS_NONE;
    if (missing) {
        bad_answer(a, false, "the ERP's answer does not mention %zu of the batch's %zu sales",
                   missing, f->n);
    }
}

static void on_2xx(tm_fwd_t *f, const tm_erp_result_t *r)
{
    answer_t a = {0};
    char(*acked)[TM_UUID_LEN] = NULL;
    size_t k = 0;
    int rc = TM_ENOMEM;
    a.what = calloc(f->n_ids, 1);
    a.status = calloc(f->n_ids, sizeof *a.status);
    a.msg = calloc(f->n_ids, sizeof *a.msg);
    acked = calloc(f->n_ids + 1, TM_UUID_LEN);
    if (!a.what || !a.status || !a.msg || !acked)
        goto cleanup;
    tm_fwd__read_answer(f->ids, f->n_ids, r->status, r->body, r->body_len, &a);
    rc = TM_OK;
    if (a.untrusted)
        goto cleanup;
    /* Only ids of this batch, spelt as we sent them; a re-sent batch's
     * earlier acks are not recorded twice. */
    for (size_t i = 0; i < f->n_ids; i++)
        if (a.what[i] == ANS_ACKED && tm_store_is_acked(f->store, f->ids[i]) == 0)
            tm_strlcpy(acked[k++], f->ids[i], TM_UUID_LEN);
    rc = record_acks(f, acked, k);
    for (size_t i = 0; rc == TM_OK && i < f->n_ids; i++)
        if (a.what[i] == ANS_REJECTED)
            park(f, f->ids[i], a.status[i], a.msg[i]);
cleanup:
    free(a.what);
    free(a.status);
    free(a.msg);
    free(acked);
    f->resend = true; /* unless it all went well, below */
    if (rc) {
        backoff(f, FAIL_TRANSIENT, "could not record the acknowledgement locally");
        return;
    }
    if (a.problem[0]) {
        backoff(f, FAIL_PROTOCOL, a.problem);
        return;
    }
    f->resend = false;
    f->st.batches_ok++;
    if (f->split.single)
        f->split.next++;
    succeeded(f);
}

/* Answers that no waiting fixes (a redirect, a refused token, a wrong
 * path): what to check, in why. False for any other answer. */
static bool config_error(const tm_erp_result_t *r, const char *route, char *why, size_t sz)
{
    long s = r->status;
    if (s >= 300 && s < 400)
        snprintf(why, sz,
                 "%s answered HTTP %ld (redirect to %.200s): redirects are not followed and no "
                 "sale is refused for it; check [erp] url (a login proxy or captive portal in "
                 "the way?)",
                 route, s, r->location && r->location[0] ? r->location : "nowhere");
    else if (s == 401 || s == 403)
        snprintf(why, sz, "%s answered HTTP %ld: the ERP refuses our token; check [erp] token_file",
                 route, s);
    else if (s == 404)
        snprintf(why, sz, "%s answered HTTP 404: check the base path in [erp] url", route);
    else
        return false;
    return true;
}

static void on_customer_done(tm_fwd_t *f, const tm_erp_result_t *r)
{
    char why[300];
    f->customer = false;
    if (r->status >= 200 && r->status < 300) {
        tm_erp_ack_t a = {.epoch = f->epoch, .customers = &f->cust, .n_customers = 1};
        uint8_t *body;
        size_t len;
        if (tm_wire_ack_encode(&a, &body, &len) == TM_OK) {
            uint64_t hlc = tm_engine_hlc_now(f->engine, f->wall_ms);
            if (tm_engine_local_op(f->engine, TM_OP_ERP_ACK, hlc, body, len, f->now_ms,
                                   f->outbox) != TM_OK)
                tm_log_error(f->log, "could not record the ERP's copy of customer %s", f->cust.id);
            free(body);
        }
        succeeded(f);
        return;
    }
    if (r->status >= 400 && r->status < 500 && r->status != 401 && r->status != 403 &&
        r->status != 404 && r->status != 408 && r->status != 429) {
        tm_cust_version_t *v = realloc(f->refused, (f->n_refused + 1) * sizeof *v);
        if (v) {
            f->refused = v;
            f->refused[f->n_refused++] = f->cust;
        }
        char head[100];
        tm_log_warn(f->log,
                    "ERP refused customer %s (HTTP %ld: %s): not sent again until it changes",
                    f->cust.id, r->status, snippet(r->body, r->body_len, head, sizeof head));
        backoff(f, FAIL_REFUSED, "the ERP refused a customer record");
        return;
    }
    fail_t kind = FAIL_TRANSIENT;
    if (config_error(r, "PUT /customers", why, sizeof why))
        kind = FAIL_CONFIG;
    else if (r->status)
        snprintf(why, sizeof why, "HTTP %ld on customer %s", r->status, f->cust.id);
    else
        snprintf(why, sizeof why, "no answer on customer %s: %s", f->cust.id,
                 r->error ? r->error : "?");
    backoff(f, kind, why);
    tm_erp_probe_now(f->erp);
}

/* A 4xx for the request as a whole. */
static void on_refused(tm_fwd_t *f, const tm_erp_result_t *r)
{
    char why[200];
    if (f->n_ids == 1) {
        char msg[150];
        park(f, f->ids[0], (int)r->status, snippet(r->body, r->body_len, msg, sizeof msg));
        if (f->split.single)
            f->split.next++;
        snprintf(why, sizeof why, "HTTP %ld for sale %s: parked", r->status, f->ids[0]);
    } else {
        /* One bad sale must not hold back the rest: find it, one sale per
         * request, in the batch's order. The batch's intent stays open until
         * each of its sales is acknowledged or parked, but is no longer
         * re-sent as a whole (tm_fwd_step). */
        tm_strlcpy(f->split.key, f->key, sizeof f->split.key);
        f->split.next = 0;
        snprintf(why, sizeof why, "HTTP %ld for a batch of %zu (key %s): sending them one by one",
                 r->status, f->n_ids, f->key);
    }
    f->resend = false;
    backoff(f, FAIL_REFUSED, why);
}

/* ---- reconcile -------------------------------------------------------- */

static void on_done(void *ctx, const tm_erp_result_t *r);

/* Whether id was in the window asked about (spelt in any case). */
static bool in_window(const tm_fwd_t *f, const char *id)
{
    for (size_t i = 0; i < f->n_rec; i++)
        if (strcasecmp(f->rec_ids[i], id) == 0)
            return true;
    return false;
}

/* Revokes the acknowledgement of the window's sales the ERP says it does
 * not hold: an ERP_ACK op with revoked_ids, replicated, so that whoever
 * forwards next sends them again. */
static void revoke(tm_fwd_t *f, char (*ids)[TM_UUID_LEN], size_t n)
{
    tm_erp_ack_t a = {.revoked = ids, .n_revoked = n, .epoch = f->epoch};
    uint8_t *body;
    size_t len;
    int rc = tm_wire_ack_encode(&a, &body, &len);
    if (rc == TM_OK) {
        uint64_t hlc = tm_engine_hlc_now(f->engine, f->wall_ms);
        rc = tm_engine_local_op(f->engine, TM_OP_ERP_ACK, hlc, body, len, f->now_ms, f->outbox);
        free(body);
    }
    if (rc) {
        tm_log_error(f->log, "could not record that the ERP lacks %zu acknowledged sale(s): %s", n,
                     tm_strerror(rc));
        return;
    }
    f->st.reconcile_missing += n;
    tm_log_warn(f->log,
                "reconcile: the ERP does not hold %zu sale(s) acknowledged before (first: %s): "
                "sending them again",
                n, ids[0]);
    f->idle = false;
}

static void on_status_done(tm_fwd_t *f, const tm_erp_result_t *r)
{
    f->reconciling = false;
    if (r->status == 404) {
        f->st.reconcile_off = true;
        tm_log_warn(f->log, "reconcile: the ERP has no POST /sales/status (HTTP 404): "
                            "acknowledgements are not checked until restart (docs/erp.md)");
        return;
    }
    if (r->status != 200) {
        tm_log_info(f->log, "reconcile: POST /sales/status answered %ld%s%s: trying again later",
                    r->status, r->error ? ": " : "", r->error ? r->error : "");
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr), *v;
    json_t *unknown = json_object_get(root, "unknown");
    char(*miss)[TM_UUID_LEN] = calloc(f->n_rec + 1, TM_UUID_LEN);
    size_t k = 0, i;
    if (!json_is_array(unknown) || !json_is_array(json_object_get(root, "booked")) || !miss) {
        f->st.protocol_errors++;
        tm_log_warn(f->log, "reconcile: the ERP's answer to /sales/status lacks the "
                            "booked/unknown lists: ignored");
        goto cleanup;
    }
    json_array_foreach (unknown, i, v) {
        const char *id = json_string_value(v);
        /* Only ids we asked about, spelt as we hold them. */
        for (size_t j = 0; id && j < f->n_rec && k < f->n_rec; j++)
            if (strcasecmp(f->rec_ids[j], id) == 0 &&
                tm_store_is_acked(f->store, f->rec_ids[j]) == 1)
                tm_strlcpy(miss[k++], f->rec_ids[j], TM_UUID_LEN);
        if (id && !in_window(f, id))
            tm_log_debug(f->log, "reconcile: the ERP names %s, which was not asked about", id);
    }
    f->st.reconcile_checked += f->n_rec;
    f->st.reconcile_last_wall_ms = f->wall_ms;
    if (k)
        revoke(f, miss, k);
cleanup:
    free(miss);
    json_decref(root);
}

/* Asks the ERP about the next window of acknowledged sales. true when a
 * request went out. */
static bool start_reconcile(tm_fwd_t *f, const tm_forwarder_t *who)
{
    uint64_t last = 0;
    f->next_reconcile_ms = f->now_ms + f->cfg.reconcile_interval_ms;
    free(f->rec_ids);
    f->rec_ids = NULL;
    f->n_rec = 0;
    if (tm_store_acked_window(f->store, f->rec_cursor, f->cfg.reconcile_batch, &f->rec_ids,
                              &f->n_rec, &last) != TM_OK)
        return false;
    f->rec_cursor = last; /* 0 after the last window: start again */
    if (!f->n_rec)
        return false;
    json_t *ids = json_array();
    for (size_t i = 0; i < f->n_rec; i++)
        json_array_append_new(ids, json_string(f->rec_ids[i]));
    json_t *root = json_pack("{s:o}", "ids", ids);
    char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    int rc = body ? tm_erp_post_status(f->erp, body, strlen(body), who->epoch, f->till, on_done, f)
                  : TM_ENOMEM;
    free(body);
    f->epoch = who->epoch;
    f->reconciling = rc == TM_OK;
    return f->reconciling;
}

static tm_fwd__cat_env_t cat_env(tm_fwd_t *f)
{
    return (tm_fwd__cat_env_t){f->store,  f->engine, f->erp,        f->outbox,         f->log,
                               f->till,   &f->st,    f->cfg.jitter, f->cfg.jitter_ctx, f->now_ms,
                               f->wall_ms};
}

static void on_done(void *ctx, const tm_erp_result_t *r)
{
    tm_fwd_t *f = ctx;
    char why[400];
    long s = r->status;
    if (f->cat.busy) {
        tm_fwd__cat_env_t env = cat_env(f);
        tm_fwd__cat_done(&f->cat, &env, r);
        return;
    }
    if (f->reconciling) {
        on_status_done(f, r);
        return;
    }
    if (f->customer) {
        on_customer_done(f, r);
        return;
    }
    if (s >= 200 && s < 300) {
        on_2xx(f, r);
        return;
    }
    if (s >= 400 && s < 500 && s != 401 && s != 403 && s != 404 && s != 408 && s != 429) {
        on_refused(f, r);
        return;
    }
    /* Everything else: the same sales again, under the same key, later. */
    fail_t kind = FAIL_TRANSIENT;
    if (s == 0) {
        snprintf(why, sizeof why, "no answer: %s", r->error ? r->error : "?");
    } else if (config_error(r, "POST /sales", why, sizeof why)) {
        kind = FAIL_CONFIG;
    } else if (s < 200) {
        kind = FAIL_PROTOCOL;
        snprintf(why, sizeof why, "the ERP answered HTTP %ld, which the contract does not know", s);
    } else {
        snprintf(why, sizeof why, "HTTP %ld", s);
    }
    backoff(f, kind, why);
    tm_erp_probe_now(f->erp);
    /* A re-delivery carries the same sales and the same key. */
    f->resend = true;
}

/* ---- starting a batch ------------------------------------------------- */

/* The key depends only on the batch's sale ids, in order: a successor that
 * re-forms the same batch sends the same key. */
static void batch_key(tm_fwd_t *f, char out[72])
{
    crypto_hash_sha256_state h;
    uint8_t d[32];
    char hex[65];
    crypto_hash_sha256_init(&h);
    for (size_t i = 0; i < f->n_ids; i++) {
        uint32_t gen = 0;
        crypto_hash_sha256_update(&h, (const uint8_t *)f->ids[i], TM_UUID_LEN - 1);
        /* An operator's retry of a parked sale is a new request, not a
         * replay of the refusal; every other sale has generation 0 and the
         * key stays the same on every till. */
        if (tm_store_retry_gen(f->store, f->ids[i], &gen) == TM_OK && gen) {
            char g[16];
            snprintf(g, sizeof g, "#%u", gen);
            crypto_hash_sha256_update(&h, (const uint8_t *)g, strlen(g));
        }
    }
    crypto_hash_sha256_final(&h, d);
    tm_hex(d, 20, hex);
    snprintf(out, 72, "tm1-%s", hex);
}

/* {"sales":[...]}: each element is tm_sale_to_json's output, itself JSON
 * made by jansson, joined with commas. */
static int batch_body(tm_fwd_t *f, char **body, size_t *len)
{
    char *buf = NULL;
    size_t sz = 0;
    FILE *m = open_memstream(&buf, &sz);
    if (!m)
        return TM_ENOMEM;
    int rc = TM_OK;
    fputs("{\"sales\":[", m);
    for (size_t i = 0; i < f->n_ids && rc == TM_OK; i++) {
        tm_sale_t s;
        if ((rc = tm_store_get_sale(f->store, f->ids[i], &s)))
            break;
        char *j = tm_sale_to_json(&s);
        tm_sale_free(&s);
        if (!j) {
            rc = TM_ENOMEM;
            break;
        }
        fprintf(m, "%s%s", i ? "," : "", j);
        free(j);
    }
    fputs("]}", m);
    fclose(m);
    if (rc) {
        free(buf);
        return rc;
    }
    *body = buf;
    *len = sz;
    return TM_OK;
}

static bool refused(const tm_fwd_t *f, const tm_cust_version_t *c)
{
    for (size_t i = 0; i < f->n_refused; i++)
        if (strcmp(f->refused[i].id, c->id) == 0 && f->refused[i].version == c->version)
            return true;
    return false;
}

/* When no sale is waiting: the next customer whose current version the ERP
 * does not have. Sales first: they are the money. */
static void step_customer(tm_fwd_t *f, const tm_forwarder_t *who)
{
    tm_cust_version_t *cv = NULL;
    size_t n = 0;
    if (tm_store_unacked_customers(f->store, f->n_refused + 1, &cv, &n) != TM_OK)
        return;
    size_t i = 0;
    while (i < n && refused(f, &cv[i]))
        i++;
    tm_customer_t c;
    char *json = NULL;
    if (i < n && tm_store_get_customer(f->store, cv[i].id, &c) == TM_OK &&
        (json = tm_customer_to_json(&c)) != NULL) {
        f->cust = cv[i];
        f->customer = true;
        f->epoch = who->epoch;
        if (tm_erp_put_customer(f->erp, f->cust.id, json, strlen(json), f->cust.version, f->epoch,
                                f->till, on_done, f) != TM_OK)
            f->customer = false;
    }
    free(json);
    free(cv);
}

/* Records the batch in f->ids as an intent op, under its key, before it is
 * sent: the intent reaches the other tills ahead of the POST, so if we die
 * after the ERP booked the batch but before its acknowledgement is
 * replicated, a successor re-sends exactly this batch under this key and
 * the ERP replays its answer. */
static int record_intent(tm_fwd_t *f, const tm_forwarder_t *who);

static int write_intent(tm_fwd_t *f, const tm_forwarder_t *who)
{
    batch_key(f, f->key);
    return record_intent(f, who);
}

/* The intent op for f->ids under f->key as it is. */
static int record_intent(tm_fwd_t *f, const tm_forwarder_t *who)
{
    tm_erp_ack_t intent = {.sale_ids = f->ids, .n = f->n_ids, .epoch = who->epoch};
    tm_strlcpy(intent.idempotency_key, f->key, sizeof intent.idempotency_key);
    uint8_t *body;
    size_t len;
    int rc = tm_wire_ack_encode(&intent, &body, &len);
    if (rc)
        return rc;
    uint64_t hlc = tm_engine_hlc_now(f->engine, f->wall_ms);
    rc = tm_engine_local_op(f->engine, TM_OP_ERP_INTENT, hlc, body, len, f->now_ms, f->outbox);
    free(body);
    if (rc)
        tm_log_error(f->log, "could not record the batch intent: %s", tm_strerror(rc));
    return rc;
}

/* Forms the next batch from the unacknowledged sales. TM_ENOTFOUND when no
 * sale waits (a customer may be sent). */
static int new_batch(tm_fwd_t *f, const tm_forwarder_t *who)
{
    int rc = tm_store_unacked_sales(f->store, f->cfg.batch_max, &f->ids, &f->n_ids);
    if (rc)
        return rc;
    if (f->n_ids == 0) {
        step_customer(f, who);
        return TM_ENOTFOUND;
    }
    return write_intent(f, who);
}

/* f->ids is the open intent of a batch the ERP refused as a whole: replace
 * it by its next sale not yet acknowledged, as a one-sale batch with an
 * intent of its own. Sales before the cursor were acknowledged or parked
 * (the intent closes once all are). */
static int next_single(tm_fwd_t *f, const tm_forwarder_t *who)
{
    size_t i = f->split.next;
    while (i < f->n_ids && tm_store_is_acked(f->store, f->ids[i]) == 1)
        i++;
    if (i >= f->n_ids) {
        /* Nothing left after the cursor, yet the intent is open: a sale
         * before it is waiting again. Send the batch whole; a refusal
         * splits it from the start. */
        f->split.key[0] = '\0';
        return TM_OK;
    }
    char(*one)[TM_UUID_LEN] = calloc(1, TM_UUID_LEN);
    if (!one)
        return TM_ENOMEM;
    tm_strlcpy(one[0], f->ids[i], TM_UUID_LEN);
    free(f->ids);
    f->ids = one;
    f->n_ids = 1;
    f->split.next = i;
    f->split.single = true;
    return write_intent(f, who);
}

/* The batch to send: the oldest open intent (a predecessor's, or ours
 * refused and being split), else a new one. */
static int pick_batch(tm_fwd_t *f, const tm_forwarder_t *who)
{
    free(f->ids);
    f->ids = NULL;
    f->n_ids = 0;
    f->split.single = false;
    int rc = tm_store_open_intent(f->store, &f->ids, &f->n_ids, f->key);
    if (rc == TM_ENOTFOUND)
        return new_batch(f, who);
    if (rc)
        return rc;
    if (f->split.key[0] && strcmp(f->key, f->split.key) == 0)
        return next_single(f, who);
    tm_log_debug(f->log, "ERP: re-sending batch %s (%zu sales) from an open intent", f->key,
                 f->n_ids);
    /* Acks count only for intents their own origin wrote (tm_store.h): a
     * successor re-sending its predecessor's batch writes the same intent
     * (same ids, same key) as its own first. */
    uint8_t me[TM_NODE_ID_LEN];
    tm_store_node_id(f->store, me);
    rc = tm_store_intent_written_by(f->store, f->key, me);
    if (rc < 0)
        return rc;
    return rc == 1 ? TM_OK : record_intent(f, who);
}

void tm_fwd_wake(tm_fwd_t *f)
{
    f->idle = false;
}

/* The store's op count (cached by the store until its next write). */
static uint64_t ops_held(tm_fwd_t *f)
{
    tm_store_counts_t c;
    return tm_store_counts(f->store, &c) == TM_OK ? c.ops : 0;
}

void tm_fwd_step(tm_fwd_t *f, uint64_t now_ms, uint64_t wall_ms)
{
    tm_forwarder_t who;
    f->now_ms = now_ms;
    f->wall_ms = wall_ms;
    if (tm_erp_busy(f->erp) || now_ms < f->st.backoff_until_ms)
        return;
    tm_engine_forwarder(f->engine, &who);
    if (!who.is_self || now_ms < who.active_from_ms ||
        tm_erp_uplink(f->erp, NULL) != TM_UPLINK_UP) {
        f->resend = false; /* a successor re-forms the batch from the log */
        f->cat_ready = false;
        return;
    }
    /* Elected, or the uplink is back: prices first thing, then as due. */
    if (!f->cat_ready)
        tm_fwd__cat_due_now(&f->cat);
    f->cat_ready = true;
    tm_fwd__cat_env_t env = cat_env(f);
    if (tm_fwd__cat_step(&f->cat, &env, who.epoch, on_done, f))
        return;
    /* Reconcile between batches, when nothing waits to be re-sent. */
    if (f->cfg.reconcile_interval_ms && !f->st.reconcile_off && !f->resend &&
        now_ms >= f->next_reconcile_ms) {
        if (!f->next_reconcile_ms)
            f->next_reconcile_ms = now_ms + f->cfg.reconcile_interval_ms; /* not at once */
        else if (start_reconcile(f, &who))
            return;
    }
    /* Called on every turn of the main loop: skip the queries while the
     * store has not changed since they last found nothing. */
    if (f->idle && ops_held(f) == f->idle_ops)
        return;
    f->idle = false;
    if (!f->resend || !f->n_ids) {
        int rc = pick_batch(f, &who);
        if (rc == TM_ENOTFOUND && !tm_erp_busy(f->erp)) {
            f->idle = true; /* no intent, no sale, no customer to send */
            f->idle_ops = ops_held(f);
        } else if (rc && rc != TM_ENOTFOUND) {
            backoff(f, FAIL_TRANSIENT, "could not form the next batch locally");
        }
        if (rc)
            return;
    }
    f->resend = false;
    char *body = NULL;
    size_t len = 0;
    f->epoch = who.epoch;
    int rc = batch_body(f, &body, &len);
    if (rc == TM_OK)
        rc = tm_erp_post_sales(f->erp, body, len, f->key, f->epoch, f->till, on_done, f);
    free(body);
    if (rc) {
        backoff(f, FAIL_TRANSIENT, tm_strerror(rc));
        return;
    }
    tm_log_debug(f->log, "ERP: sending %zu sale(s), key %s, epoch %llu", f->n_ids, f->key,
                 (unsigned long long)f->epoch);
}
