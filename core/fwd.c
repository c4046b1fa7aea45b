/* fwd.c - the forwarder's decisions (see tm_fwd_core.h): which batch goes
 * next and under which key, what an ERP answer means, what is written
 * back. No clock, no randomness, no socket: the shell (node/forward.c)
 * does the HTTP. */
#include "tm_fwd_core.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fwd_int.h"
#include "tm_plant.h"
#include "tm_wire.h"

/* A batch the ERP refused as a whole (a 4xx): its intent is superseded by
 * one-sale intents, taken in its order from `next` on. Kept in memory
 * only: after a restart, or on a successor, the batch is sent once more,
 * refused once more, and split there (one request, under backoff). */
typedef struct {
    char key[72]; /* "" when no split is under way */
    size_t next;
} split_t;

typedef enum {
    SLOT_FREE = 0,
    SLOT_SALES,     /* POST /sales in flight */
    SLOT_READY,     /* a verified batch waits for its POST (not in flight) */
    SLOT_VERIFY,    /* POST /sales/status about a batch, in flight */
    SLOT_RECONCILE, /* POST /sales/status about acknowledged sales, in flight */
    SLOT_CUSTOMER,  /* PUT /customers/{id} in flight */
    SLOT_CATALOGUE, /* GET /catalogue in flight */
} slot_kind_t;

typedef struct {
    slot_kind_t kind;
    char (*ids)[TM_UUID_LEN]; /* the batch, or the reconcile window */
    size_t n;
    char key[72];
    uint64_t epoch;
    bool single; /* one sale of a split */
    bool fresh;  /* formed from unacknowledged sales for this POST: none acked yet */
    char *body;
    tm_cust_version_t cust;
} slot_t;

/* Keys this forwarder has POSTed in this run: re-sending one of those after
 * a failure needs no question to the ERP first. A ring: old keys fall out,
 * and their batches are then asked about like a predecessor's. */
#define SENT_MAX 64
/* Batches whose booked sales were acknowledged after a question to the ERP
 * while the rest still waited: the rest goes in a new batch, so these are
 * not re-sent (in memory only; a successor asks again). */
#define SUPERSEDED_MAX 64

struct tm_fwd_core {
    tm_fwd_core_cfg_t cfg;
    char till[TM_PEER_NAME_MAX];
    tm_store_t *store;
    tm_engine_t *engine;
    tm_outbox_t *outbox;
    const tm_log_t *log;
    tm_fwd_stats_t st;
    slot_t slot[TM_FWD_MAX_IN_FLIGHT];
    uint32_t busy; /* slots not free */
    /* Customers the ERP refused (4xx) since we started: not retried until
     * restart; a change to the customer makes a new version, retried. */
    tm_cust_version_t *refused;
    size_t n_refused;
    /* Nothing was left to send when the store held idle_ops ops: no need
     * to query again until it holds more (or an operator retries). */
    bool idle;
    uint64_t idle_ops;
    split_t split;
    /* A sales request failed: its batch waits to be re-sent (its intent is
     * open); reconcile waits for it. */
    bool retry_pending;
    /* Rate limit of the failure log: the same message at most once a
     * minute, with the count of repeats not logged. */
    char logged[200];
    uint64_t logged_at_ms;
    uint32_t repeats;
    int last_kind; /* fail_t of the last failure */
    uint64_t now_ms, wall_ms;
    uint32_t random;
    /* Reconcile: where the next window starts, and when. */
    uint64_t rec_cursor, next_reconcile_ms;
    tm_fwd__cat_t cat; /* catalogue down-sync (fwd_catalogue.c) */
    bool cat_ready;    /* we were the forwarder with a working uplink last step */
    /* Hand-over: the epoch we last forwarded in; after it changes, batches
     * are asked about (POST /sales/status) until the ERP holds none of a
     * batch. */
    uint64_t epoch_seen;
    bool verify_new;
    /* What else makes another till's sending likely: peers came or went (a
     * split store has a forwarder on each side), our uplink came back. */
    size_t alive_seen;
    bool uplink_seen;
    bool status_off; /* the ERP has no POST /sales/status */
    char sent[SENT_MAX][72];
    size_t sent_next;
    char superseded[SUPERSEDED_MAX][72];
    size_t superseded_next;
};

int tm_fwd_core_new(const tm_fwd_core_cfg_t *cfg, tm_store_t *store, tm_engine_t *engine,
                    tm_outbox_t *outbox, const tm_log_t *log, tm_fwd_core_t **out)
{
    tm_fwd_core_t *f = calloc(1, sizeof *f);
    *out = NULL;
    if (!f)
        return TM_ENOMEM;
    f->cfg = *cfg;
    if (!f->cfg.batch_max)
        f->cfg.batch_max = 500;
    if (f->cfg.batch_max > TM_ERP_ACK_MAX_IDS)
        f->cfg.batch_max = TM_ERP_ACK_MAX_IDS;
    if (!f->cfg.max_in_flight)
        f->cfg.max_in_flight = 2;
    if (f->cfg.max_in_flight > TM_FWD_MAX_IN_FLIGHT)
        f->cfg.max_in_flight = TM_FWD_MAX_IN_FLIGHT;
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
    tm_strlcpy(f->till, cfg->till ? cfg->till : "", sizeof f->till);
    f->cfg.till = f->till;
    f->store = store;
    f->engine = engine;
    f->outbox = outbox;
    f->log = log;
    tm_fwd__cat_init(&f->cat, cfg->catalogue_interval_ms, cfg->catalogue_page);
    *out = f;
    return TM_OK;
}

static void slot_clear(tm_fwd_core_t *f, slot_t *s)
{
    if (s->kind != SLOT_FREE)
        f->busy--;
    free(s->ids);
    free(s->body);
    memset(s, 0, sizeof *s);
}

void tm_fwd_core_destroy(tm_fwd_core_t **self_p)
{
    tm_fwd_core_t *f = *self_p;
    if (!f)
        return;
    for (size_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++)
        slot_clear(f, &f->slot[i]);
    free(f->refused);
    free(f);
    *self_p = NULL;
}

/* Requests the ERP is working on (a READY slot is not sent yet). */
static uint32_t in_flight(const tm_fwd_core_t *f)
{
    uint32_t n = 0;
    for (size_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++)
        n += f->slot[i].kind != SLOT_FREE && f->slot[i].kind != SLOT_READY;
    return n;
}

void tm_fwd_core_stats(const tm_fwd_core_t *f, tm_fwd_stats_t *out)
{
    *out = f->st;
    out->requests_in_flight = in_flight(f);
    out->in_flight = out->requests_in_flight > 0;
}

static void take_input(tm_fwd_core_t *f, const tm_fwd_in_t *in)
{
    f->now_ms = in->now_ms;
    f->wall_ms = in->wall_ms;
    f->random = in->random;
}

long tm_fwd_core_timeout_ms(const tm_fwd_core_t *f, const tm_fwd_in_t *in)
{
    tm_forwarder_t who;
    uint64_t now_ms = in->now_ms;
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
        (f->cat.next_ms > now_ms || (f->busy == 0 && in->uplink_up))) {
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

static void log_failure(tm_fwd_core_t *f, fail_t kind, const char *why, uint64_t delay)
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

uint64_t tm_fwd__backoff_ms(uint32_t failures, uint32_t min_ms, uint32_t max_ms, uint32_t random)
{
    uint64_t d = min_ms;
    for (uint32_t i = 1; i < failures && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    /* Jitter on the upper half: tills that failed together do not retry
     * together, and the wait never drops under half the step. */
    return d / 2 + random % (d / 2 + 1);
}

/* Every failed request ends here: nothing is sent again before the backoff
 * runs out, whatever the failure. */
static void backoff(tm_fwd_core_t *f, fail_t kind, const char *why)
{
    f->st.failures++;
    f->st.batches_failed++;
    f->last_kind = (int)kind;
    uint64_t d =
        tm_fwd__backoff_ms(f->st.failures, f->cfg.backoff_min_ms, f->cfg.backoff_max_ms, f->random);
    f->st.backoff_until_ms = f->now_ms + d;
    tm_strlcpy(f->st.last_error, why, sizeof f->st.last_error);
    if (kind == FAIL_PROTOCOL)
        f->st.protocol_errors++;
    if (kind == FAIL_CONFIG || kind == FAIL_PROTOCOL)
        snprintf(f->st.error, sizeof f->st.error, "%s error: %s",
                 kind == FAIL_CONFIG ? "configuration" : "protocol", why);
    log_failure(f, kind, why, d);
}

static void succeeded(tm_fwd_core_t *f)
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

/* Records acknowledged ids as ERP_ACK ops (replicated to every till),
 * under the key of the batch they were sent (or asked about) in. */
static int record_acks(tm_fwd_core_t *f, const slot_t *s, char (*ids)[TM_UUID_LEN], size_t n)
{
    if (!n)
        return TM_OK;
    tm_erp_ack_t a = {.sale_ids = ids, .n = n, .epoch = s->epoch};
    tm_strlcpy(a.idempotency_key, s->key, sizeof a.idempotency_key);
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

static void park(tm_fwd_core_t *f, const char *id, int status, const char *msg)
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

static void remember(char (*ring)[72], size_t max, size_t *next, const char *key)
{
    tm_strlcpy(ring[*next % max], key, 72);
    (*next)++;
}

static bool in_ring(char (*ring)[72], size_t max, const char *key)
{
    for (size_t i = 0; i < max; i++)
        if (ring[i][0] && strcmp(ring[i], key) == 0)
            return true;
    return false;
}

static void on_2xx(tm_fwd_core_t *f, slot_t *s, const tm_fwd_result_t *r)
{
    answer_t a = {0};
    char(*acked)[TM_UUID_LEN] = NULL;
    size_t k = 0, rejected = 0;
    int rc = TM_ENOMEM;
    a.what = calloc(s->n, 1);
    a.status = calloc(s->n, sizeof *a.status);
    a.msg = calloc(s->n, sizeof *a.msg);
    acked = calloc(s->n + 1, TM_UUID_LEN);
    if (!a.what || !a.status || !a.msg || !acked)
        goto cleanup;
    tm_fwd__read_answer(s->ids, s->n, r->status, r->body, r->body_len, &a);
    rc = TM_OK;
    if (a.untrusted)
        goto cleanup;
    /* Only ids of this batch, spelt as we sent them; a re-sent batch's
     * earlier acks are not recorded twice. */
    for (size_t i = 0; i < s->n; i++)
        if ((a.what[i] == ANS_ACKED || (TM_PLANTED("ack-unnamed") && a.what[i] == ANS_REJECTED)) &&
            (s->fresh || tm_store_is_acked(f->store, s->ids[i]) == 0))
            tm_strlcpy(acked[k++], s->ids[i], TM_UUID_LEN);
    rc = record_acks(f, s, acked, k);
    for (size_t i = 0; rc == TM_OK && i < s->n && !TM_PLANTED("ack-unnamed"); i++)
        if (a.what[i] == ANS_REJECTED) {
            park(f, s->ids[i], a.status[i], a.msg[i]);
            rejected++;
        }
cleanup:
    free(a.what);
    free(a.status);
    free(a.msg);
    free(acked);
    /* Unless it all went well (below), the intent stays open and the same
     * batch goes again under the same key. */
    f->retry_pending = true;
    if (rc) {
        backoff(f, FAIL_TRANSIENT, "could not record the acknowledgement locally");
        return;
    }
    if (a.problem[0]) {
        backoff(f, FAIL_PROTOCOL, a.problem);
        return;
    }
    f->retry_pending = false;
    f->st.batches_ok++;
    if (s->single)
        f->split.next++;
    else if (!rejected)
        (void)tm_store_intent_close(f->store, s->key); /* every sale acknowledged */
    succeeded(f);
}

/* Answers that no waiting fixes (a redirect, a refused token, a wrong
 * path): what to check, in why. False for any other answer. */
static bool config_error(const tm_fwd_result_t *r, const char *route, char *why, size_t sz)
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

/* A 4xx that refuses the request itself (its sales or customer), as
 * opposed to the ERP or its configuration being in trouble (401/403/404,
 * 408, 429), which waiting or a person fixes: the one retry rule. */
static bool refusal(long status)
{
    return status >= 400 && status < 500 && status != 401 && status != 403 && status != 404 &&
           status != 408 && status != 429;
}

static void on_customer_done(tm_fwd_core_t *f, slot_t *s, const tm_fwd_result_t *r,
                             tm_fwd_effects_t *fx)
{
    char why[300];
    if (r->outcome == TM_FWD_OUT_HTTP && r->status >= 200 && r->status < 300) {
        tm_erp_ack_t a = {.epoch = s->epoch, .customers = &s->cust, .n_customers = 1};
        uint8_t *body;
        size_t len;
        if (tm_wire_ack_encode(&a, &body, &len) == TM_OK) {
            uint64_t hlc = tm_engine_hlc_now(f->engine, f->wall_ms);
            if (tm_engine_local_op(f->engine, TM_OP_ERP_ACK, hlc, body, len, f->now_ms,
                                   f->outbox) != TM_OK)
                tm_log_error(f->log, "could not record the ERP's copy of customer %s", s->cust.id);
            free(body);
        }
        succeeded(f);
        return;
    }
    if (r->outcome == TM_FWD_OUT_HTTP && refusal(r->status)) {
        tm_cust_version_t *v = realloc(f->refused, (f->n_refused + 1) * sizeof *v);
        if (v) {
            f->refused = v;
            f->refused[f->n_refused++] = s->cust;
        }
        char head[100];
        tm_log_warn(f->log,
                    "ERP refused customer %s (HTTP %ld: %s): not sent again until it changes",
                    s->cust.id, r->status, snippet(r->body, r->body_len, head, sizeof head));
        backoff(f, FAIL_REFUSED, "the ERP refused a customer record");
        return;
    }
    fail_t kind = FAIL_TRANSIENT;
    if (config_error(r, "PUT /customers", why, sizeof why))
        kind = FAIL_CONFIG;
    else if (r->status)
        snprintf(why, sizeof why, "HTTP %ld on customer %s", r->status, s->cust.id);
    else
        snprintf(why, sizeof why, "no answer on customer %s: %s", s->cust.id,
                 r->error ? r->error : "?");
    backoff(f, kind, why);
    fx->probe_now = true;
}

/* A 4xx for the request as a whole. */
static void on_refused(tm_fwd_core_t *f, slot_t *s, const tm_fwd_result_t *r)
{
    char why[200];
    if (s->n == 1) {
        char msg[150];
        park(f, s->ids[0], (int)r->status, snippet(r->body, r->body_len, msg, sizeof msg));
        if (s->single)
            f->split.next++;
        snprintf(why, sizeof why, "HTTP %ld for sale %s: parked", r->status, s->ids[0]);
    } else {
        /* One bad sale must not hold back the rest: find it, one sale per
         * request, in the batch's order. The batch's intent stays open until
         * each of its sales is acknowledged or parked, but is no longer
         * re-sent as a whole (pick_batch). */
        tm_strlcpy(f->split.key, s->key, sizeof f->split.key);
        f->split.next = 0;
        snprintf(why, sizeof why, "HTTP %ld for a batch of %zu (key %s): sending them one by one",
                 r->status, s->n, s->key);
    }
    backoff(f, FAIL_REFUSED, why);
}

/* ---- POST /sales/status: reconcile and hand-over ---------------------- */

/* The ids of the window the ERP's answer lists under name ("booked" or
 * "unknown"), spelt as we hold them, marked in mark[]; -1 when the answer
 * lacks the booked/unknown lists. Ids we did not ask about are ignored. */
static long status_lists(tm_fwd_core_t *f, const slot_t *s, const tm_fwd_result_t *r,
                         const char *name, uint8_t *mark)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr), *v;
    json_t *list = json_object_get(root, name);
    long k = 0;
    size_t i;
    if (!json_is_array(json_object_get(root, "booked")) ||
        !json_is_array(json_object_get(root, "unknown"))) {
        json_decref(root);
        return -1;
    }
    json_array_foreach (list, i, v) {
        const char *id = json_string_value(v);
        bool asked = false;
        for (size_t j = 0; id && j < s->n; j++)
            if (strcasecmp(s->ids[j], id) == 0) {
                asked = true;
                if (!mark[j]) {
                    mark[j] = 1;
                    k++;
                }
            }
        if (id && !asked)
            tm_log_debug(f->log, "ERP: /sales/status names %s, which was not asked about", id);
    }
    json_decref(root);
    return k;
}

/* Revokes the acknowledgement of the window's sales the ERP says it does
 * not hold: an ERP_ACK op with revoked_ids, replicated, so that whoever
 * forwards next sends them again. */
static void revoke(tm_fwd_core_t *f, const slot_t *s, char (*ids)[TM_UUID_LEN], size_t n)
{
    tm_erp_ack_t a = {.revoked = ids, .n_revoked = n, .epoch = s->epoch};
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

static void on_reconcile_done(tm_fwd_core_t *f, slot_t *s, const tm_fwd_result_t *r)
{
    if (r->outcome == TM_FWD_OUT_HTTP && r->status == 404) {
        f->st.reconcile_off = true;
        tm_log_warn(f->log, "reconcile: the ERP has no POST /sales/status (HTTP 404): "
                            "acknowledgements are not checked until restart (docs/erp.md)");
        return;
    }
    if (r->outcome != TM_FWD_OUT_HTTP || r->status != 200) {
        tm_log_info(f->log, "reconcile: POST /sales/status answered %ld%s%s: trying again later",
                    r->status, r->error ? ": " : "", r->error ? r->error : "");
        return;
    }
    uint8_t *mark = calloc(s->n + 1, 1);
    char(*miss)[TM_UUID_LEN] = calloc(s->n + 1, TM_UUID_LEN);
    long u = mark && miss ? status_lists(f, s, r, "unknown", mark) : -1;
    size_t k = 0;
    if (u < 0) {
        f->st.protocol_errors++;
        tm_log_warn(f->log, "reconcile: the ERP's answer to /sales/status lacks the "
                            "booked/unknown lists: ignored");
        goto cleanup;
    }
    for (size_t j = 0; j < s->n; j++)
        if (mark[j] && tm_store_is_acked(f->store, s->ids[j]) == 1)
            tm_strlcpy(miss[k++], s->ids[j], TM_UUID_LEN);
    f->st.reconcile_checked += s->n;
    f->st.reconcile_last_wall_ms = f->wall_ms;
    if (k)
        revoke(f, s, miss, k);
cleanup:
    free(mark);
    free(miss);
}

/* Asks the ERP about the next window of acknowledged sales into s. true
 * when there is a request to make. */
static bool start_reconcile(tm_fwd_core_t *f, slot_t *s)
{
    uint64_t last = 0;
    f->next_reconcile_ms = f->now_ms + f->cfg.reconcile_interval_ms;
    if (tm_store_acked_window(f->store, f->rec_cursor, f->cfg.reconcile_batch, &s->ids, &s->n,
                              &last) != TM_OK)
        return false;
    f->rec_cursor = last; /* 0 after the last window: start again */
    return s->n > 0;
}

/* {"ids": [...]} of the slot's ids. */
static char *status_body(const slot_t *s)
{
    json_t *ids = json_array();
    for (size_t i = 0; ids && i < s->n; i++)
        json_array_append_new(ids, json_string(s->ids[i]));
    json_t *root = ids ? json_pack("{s:o}", "ids", ids) : NULL;
    char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return body;
}

/* The answer about a batch asked about before it is sent (hand-over):
 * the sales the ERP holds are acknowledged under the batch's key (our
 * intent of it is written); if it holds none, the batch goes whole under
 * that key; if some, the rest waits for a new batch. */
static void on_verify_done(tm_fwd_core_t *f, slot_t *s, const tm_fwd_result_t *r)
{
    bool http = r->outcome == TM_FWD_OUT_HTTP;
    if (http && (refusal(r->status) || r->status == 404)) {
        /* No such route (or one that refuses us): send as before it. */
        if (!f->status_off)
            tm_log_warn(f->log,
                        "ERP: POST /sales/status answered HTTP %ld: batches taken over are sent "
                        "again without asking the ERP first (docs/erp.md)",
                        r->status);
        f->status_off = true;
        s->kind = SLOT_READY;
        return;
    }
    char cfg_why[400];
    if (http && config_error(r, "POST /sales/status", cfg_why, sizeof cfg_why)) {
        f->retry_pending = true;
        backoff(f, FAIL_CONFIG, cfg_why);
        slot_clear(f, s);
        return;
    }
    uint8_t *mark = http && r->status == 200 ? calloc(s->n + 1, 1) : NULL;
    long b = mark ? status_lists(f, s, r, "booked", mark) : -1;
    if (b < 0) {
        char why[200];
        snprintf(why, sizeof why, "POST /sales/status before a re-send: %s",
                 !http              ? (r->error ? r->error : "no answer")
                 : r->status != 200 ? "the ERP did not answer 200"
                                    : "the answer lacks the booked/unknown lists");
        free(mark);
        f->retry_pending = true;
        backoff(f, http && r->status == 200 ? FAIL_PROTOCOL : FAIL_TRANSIENT, why);
        slot_clear(f, s);
        return;
    }
    f->st.verify_checked += s->n;
    if (b == 0) {
        free(mark);
        f->verify_new = false; /* the ERP holds none: no one sent these, trust the log */
        s->kind = SLOT_READY;
        return;
    }
    char(*acked)[TM_UUID_LEN] = calloc((size_t)b + 1, TM_UUID_LEN);
    size_t k = 0;
    for (size_t j = 0; acked && j < s->n; j++)
        if (mark[j] && tm_store_is_acked(f->store, s->ids[j]) == 0)
            tm_strlcpy(acked[k++], s->ids[j], TM_UUID_LEN);
    int rc = acked ? record_acks(f, s, acked, k) : TM_ENOMEM;
    free(acked);
    free(mark);
    if (rc) {
        f->retry_pending = true;
        backoff(f, FAIL_TRANSIENT, "could not record the acknowledgement locally");
        slot_clear(f, s);
        return;
    }
    f->st.verify_booked += (uint64_t)b;
    tm_log_info(f->log,
                "ERP already holds %ld of the %zu sale(s) of batch %s: acknowledged without "
                "sending them again%s",
                b, s->n, s->key, (size_t)b < s->n ? "; the rest goes in a new batch" : "");
    if ((size_t)b < s->n)
        remember(f->superseded, SUPERSEDED_MAX, &f->superseded_next, s->key);
    f->idle = false;
    succeeded(f);
    slot_clear(f, s);
}

/* ---- starting a batch ------------------------------------------------- */

/* The key depends only on the batch's sale ids, in order: a successor that
 * re-forms the same batch sends the same key. */
static int batch_key(tm_fwd_core_t *f, slot_t *s)
{
    crypto_hash_sha256_state h;
    uint8_t d[32];
    char hex[65];
    uint32_t *gen = calloc(s->n + 1, sizeof *gen);
    if (!gen)
        return TM_ENOMEM;
    /* An operator's retry of a parked sale is a new request, not a replay
     * of the refusal; every other sale has generation 0 and the key stays
     * the same on every till. */
    int rc = tm_store_retry_gens(f->store, s->ids, s->n, gen);
    if (rc) {
        free(gen);
        return rc;
    }
    crypto_hash_sha256_init(&h);
    for (size_t i = 0; i < s->n; i++) {
        crypto_hash_sha256_update(&h, (const uint8_t *)s->ids[i], TM_UUID_LEN - 1);
        if (gen[i]) {
            char g[16];
            snprintf(g, sizeof g, "#%u", gen[i]);
            crypto_hash_sha256_update(&h, (const uint8_t *)g, strlen(g));
        }
    }
    free(gen);
    crypto_hash_sha256_final(&h, d);
    tm_hex(d, 20, hex);
    snprintf(s->key, sizeof s->key, "tm1-%s", hex);
    return TM_OK;
}

/* {"sales":[...]}: each element is tm_sale_to_json's output, itself JSON
 * made by jansson, joined with commas. */
static int batch_body(tm_fwd_core_t *f, const slot_t *s, char **body, size_t *len)
{
    char *buf = NULL;
    size_t sz = 0;
    FILE *m = open_memstream(&buf, &sz);
    if (!m)
        return TM_ENOMEM;
    int rc = TM_OK;
    fputs("{\"sales\":[", m);
    for (size_t i = 0; i < s->n && rc == TM_OK; i++) {
        tm_sale_t sale;
        if ((rc = tm_store_get_sale(f->store, s->ids[i], &sale)))
            break;
        char *j = tm_sale_to_json(&sale);
        tm_sale_free(&sale);
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

static bool refused(const tm_fwd_core_t *f, const tm_cust_version_t *c)
{
    for (size_t i = 0; i < f->n_refused; i++)
        if (strcmp(f->refused[i].id, c->id) == 0 && f->refused[i].version == c->version)
            return true;
    return false;
}

/* When no sale is waiting: the next customer whose current version the ERP
 * does not have. Sales first: they are the money. 1 with s and req
 * filled, 0 if none. */
static int pick_customer(tm_fwd_core_t *f, slot_t *s, tm_fwd_req_t *req)
{
    tm_cust_version_t *cv = NULL;
    size_t n = 0;
    if (tm_store_unacked_customers(f->store, f->n_refused + 1, &cv, &n) != TM_OK)
        return 0;
    size_t i = 0;
    while (i < n && refused(f, &cv[i]))
        i++;
    tm_customer_t c;
    char *json = NULL;
    if (i < n && tm_store_get_customer(f->store, cv[i].id, &c) == TM_OK &&
        (json = tm_customer_to_json(&c)) != NULL) {
        s->cust = cv[i];
        s->body = json;
        req->kind = TM_FWD_REQ_CUSTOMER;
        req->body = json;
        req->len = strlen(json);
        tm_strlcpy(req->customer_id, s->cust.id, sizeof req->customer_id);
        req->version = s->cust.version;
    }
    free(cv);
    return json != NULL;
}

/* The intent op for s->ids under s->key: it reaches the other tills ahead
 * of the POST, so if we die after the ERP booked the batch but before its
 * acknowledgement is replicated, a successor re-sends exactly this batch
 * under this key. Written once per origin and key. */
static int record_intent(tm_fwd_core_t *f, const slot_t *s)
{
    uint8_t me[TM_NODE_ID_LEN];
    tm_store_node_id(f->store, me);
    int rc = tm_store_intent_written_by(f->store, s->key, me);
    if (rc != 0)
        return rc < 0 ? rc : TM_OK;
    tm_erp_ack_t intent = {.sale_ids = s->ids, .n = s->n, .epoch = s->epoch};
    tm_strlcpy(intent.idempotency_key, s->key, sizeof intent.idempotency_key);
    uint8_t *body;
    size_t len;
    rc = tm_wire_ack_encode(&intent, &body, &len);
    if (rc)
        return rc;
    uint64_t hlc = tm_engine_hlc_now(f->engine, f->wall_ms);
    rc = tm_engine_local_op(f->engine, TM_OP_ERP_INTENT, hlc, body, len, f->now_ms, f->outbox);
    free(body);
    if (rc)
        tm_log_error(f->log, "could not record the batch intent: %s", tm_strerror(rc));
    return rc;
}

/* Whether id is in a batch of another slot. */
static bool id_busy(const tm_fwd_core_t *f, const slot_t *self, const char *id)
{
    for (size_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++) {
        const slot_t *o = &f->slot[i];
        if (o == self || (o->kind != SLOT_SALES && o->kind != SLOT_READY && o->kind != SLOT_VERIFY))
            continue;
        for (size_t j = 0; j < o->n; j++)
            if (strcmp(o->ids[j], id) == 0)
                return true;
    }
    return false;
}

typedef struct {
    const tm_fwd_core_t *f;
    const slot_t *self;
} skip_ctx_t;

/* An open intent not to send now: in flight, superseded, or sharing a sale
 * with a batch in flight. */
static bool skip_intent(void *ctx, const char *key, char (*ids)[TM_UUID_LEN], size_t n)
{
    const skip_ctx_t *c = ctx;
    for (size_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++) {
        const slot_t *o = &c->f->slot[i];
        if (o != c->self && o->kind != SLOT_FREE && strcmp(o->key, key) == 0)
            return true;
    }
    if (strcmp(c->f->split.key, key) != 0 &&
        in_ring((char(*)[72])c->f->superseded, SUPERSEDED_MAX, key))
        return true;
    for (size_t j = 0; j < n; j++)
        if (id_busy(c->f, c->self, ids[j]))
            return true;
    return false;
}

static int cmp_id(const void *a, const void *b)
{
    return strcasecmp(a, b);
}

/* Batches in flight at once may be booked in any order: a return must not
 * go out while its original is in another batch still in flight (the
 * contract says a return never comes before its original). Cuts the batch
 * before the first such return; 0 sales left means: wait for the answer. */
static int cut_before_returns(tm_fwd_core_t *f, char (*ids)[TM_UUID_LEN], size_t *k,
                              char (*busy)[TM_UUID_LEN], size_t h)
{
    char(*orig)[TM_UUID_LEN] = calloc(*k + 1, TM_UUID_LEN);
    if (!orig)
        return TM_ENOMEM;
    int rc = tm_store_refunds_of(f->store, ids, *k, orig);
    for (size_t i = 0; rc == TM_OK && i < *k; i++)
        if (orig[i][0] && bsearch(orig[i], busy, h, TM_UUID_LEN, cmp_id)) {
            *k = i;
            break;
        }
    free(orig);
    return rc;
}

/* Forms a new batch from the unacknowledged sales not in flight.
 * TM_ENOTFOUND when none waits. */
static int new_batch(tm_fwd_core_t *f, slot_t *s)
{
    size_t held = 0, h = 0;
    for (size_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++)
        if (&f->slot[i] != s && f->slot[i].kind != SLOT_FREE)
            held += f->slot[i].n;
    /* The ids in flight, sorted, so that each candidate costs a search. */
    char(*busy)[TM_UUID_LEN] = calloc(held + 1, TM_UUID_LEN);
    if (!busy)
        return TM_ENOMEM;
    for (size_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++)
        if (&f->slot[i] != s && f->slot[i].kind != SLOT_FREE)
            for (size_t j = 0; j < f->slot[i].n; j++)
                memcpy(busy[h++], f->slot[i].ids[j], TM_UUID_LEN);
    qsort(busy, h, TM_UUID_LEN, cmp_id);
    char(*ids)[TM_UUID_LEN] = NULL;
    size_t n = 0, k = 0;
    int rc = tm_store_unacked_sales(f->store, f->cfg.batch_max + held, &ids, &n);
    for (size_t i = 0; rc == TM_OK && i < n && k < f->cfg.batch_max; i++)
        if (!h || !bsearch(ids[i], busy, h, TM_UUID_LEN, cmp_id))
            memmove(ids[k++], ids[i], TM_UUID_LEN);
    if (rc == TM_OK && h && k)
        rc = cut_before_returns(f, ids, &k, busy, h);
    free(busy);
    if (rc || k == 0) {
        free(ids);
        return rc ? rc : TM_ENOTFOUND;
    }
    s->ids = ids;
    s->n = k;
    s->fresh = true;
    return batch_key(f, s);
}

/* s holds the open intent of a batch the ERP refused as a whole: replace
 * it by its next sale not yet acknowledged, as a one-sale batch with an
 * intent of its own. Sales before the cursor were acknowledged or parked
 * (the intent closes once all are). */
static int next_single(tm_fwd_core_t *f, slot_t *s)
{
    size_t i = f->split.next;
    while (i < s->n && tm_store_is_acked(f->store, s->ids[i]) == 1)
        i++;
    if (i >= s->n) {
        /* Nothing left after the cursor, yet the intent is open: a sale
         * before it is waiting again. Send the batch whole; a refusal
         * splits it from the start. */
        f->split.key[0] = '\0';
        return TM_OK;
    }
    memmove(s->ids[0], s->ids[i], TM_UUID_LEN);
    s->n = 1;
    f->split.next = i;
    s->single = true;
    return batch_key(f, s);
}

/* Ids a POST /sales/status may carry (docs/erp.md): a larger batch
 * (batch_max above it) is sent without asking. */
#define STATUS_MAX_IDS 1000

/* The batch to send into s: the oldest open intent (a predecessor's, ours
 * that failed, or ours refused and being split), else a new one. Sets
 * *ask when the ERP should be asked about it first. */
static int pick_batch(tm_fwd_core_t *f, slot_t *s, bool *ask)
{
    skip_ctx_t c = {f, s};
    *ask = false;
    int rc = tm_store_open_intent_except(f->store, skip_intent, &c, &s->ids, &s->n, s->key);
    if (rc == TM_ENOTFOUND && TM_PLANTED("resend-acked") && f->verify_new) {
        /* Planted (docs/sim.md): on taking over, the predecessor's last
         * acknowledged sales go again "to be safe", under a key of ours. */
        uint64_t last = 0;
        f->verify_new = false;
        if (tm_store_acked_window(f->store, 0, f->cfg.batch_max, &s->ids, &s->n, &last) == TM_OK &&
            s->n && batch_key(f, s) == TM_OK) {
            size_t l = strlen(s->key);
            snprintf(s->key + l, sizeof s->key - l, "-e%llu", (unsigned long long)s->epoch);
            return TM_OK;
        }
        free(s->ids);
        s->ids = NULL;
        s->n = 0;
    }
    if (rc == TM_ENOTFOUND) {
        rc = new_batch(f, s);
        *ask = rc == TM_OK && f->verify_new && !f->status_off && s->n <= STATUS_MAX_IDS;
        return rc;
    }
    if (rc)
        return rc;
    if (f->split.key[0] && strcmp(s->key, f->split.key) == 0)
        return next_single(f, s);
    /* A batch we did not send in this run may have been booked (its
     * acknowledgement lost with its sender), and so may ours after a failure
     * or a split (another forwarder, out of our sight, sent its sales):
     * ask before sending again. */
    *ask = !f->status_off && s->n <= STATUS_MAX_IDS &&
           (f->verify_new || !in_ring(f->sent, SENT_MAX, s->key));
    tm_log_debug(f->log, "ERP: re-sending batch %s (%zu sales) from an open intent%s", s->key, s->n,
                 *ask ? ", after asking the ERP what it holds" : "");
    return TM_OK;
}

void tm_fwd_core_wake(tm_fwd_core_t *f)
{
    f->idle = false;
}

/* The store's op count (cached by the store until its next write). */
static uint64_t ops_held(tm_fwd_core_t *f)
{
    tm_store_counts_t c;
    return tm_store_counts(f->store, &c) == TM_OK ? c.ops : 0;
}

/* How long after a peer fell silent it may still be sending on its side of
 * a split (its uplink may come back there, its backoff runs out); past
 * that, a till unplugged for the day costs the ERP no question per batch. */
#define SPLIT_WATCH_MS (10 * 60 * 1000)

/* Peers alive; *split: a peer went silent lately, so a forwarder may be
 * sending on the other side. */
static size_t alive_peers(const tm_fwd_core_t *f, bool *split)
{
    size_t n = 0;
    *split = false;
    for (size_t i = 0; i < tm_engine_peer_count(f->engine); i++) {
        tm_peer_info_t p;
        if (tm_engine_peer_info(f->engine, i, &p) != TM_OK)
            continue;
        n += p.state == TM_PEER_ALIVE;
        *split |= p.state == TM_PEER_DOWN && f->now_ms - p.last_seen_ms < SPLIT_WATCH_MS;
    }
    return n;
}

static slot_t *free_slot(tm_fwd_core_t *f, uint32_t *idx)
{
    for (uint32_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++)
        if (f->slot[i].kind == SLOT_FREE) {
            *idx = i;
            return &f->slot[i];
        }
    return NULL;
}

static void start_req(tm_fwd_core_t *f, slot_t *s, uint32_t idx, slot_kind_t kind,
                      tm_fwd_req_t *req)
{
    if (s->kind == SLOT_FREE)
        f->busy++;
    s->kind = kind;
    req->slot = idx;
    req->epoch = s->epoch;
    req->till = f->till;
}

/* The POST of the batch in s (formed, intent written). */
static int post_batch(tm_fwd_core_t *f, slot_t *s, uint32_t idx, tm_fwd_req_t *req)
{
    size_t len = 0;
    free(s->body);
    s->body = NULL;
    int rc = batch_body(f, s, &s->body, &len);
    if (rc) {
        backoff(f, FAIL_TRANSIENT, tm_strerror(rc));
        f->retry_pending = true;
        slot_clear(f, s);
        return 0;
    }
    start_req(f, s, idx, SLOT_SALES, req);
    req->kind = TM_FWD_REQ_SALES;
    req->body = s->body;
    req->len = len;
    req->n_sales = s->n;
    tm_strlcpy(req->key, s->key, sizeof req->key);
    remember(f->sent, SENT_MAX, &f->sent_next, s->key);
    tm_log_debug(f->log, "ERP: sending %zu sale(s), key %s, epoch %llu", s->n, s->key,
                 (unsigned long long)s->epoch);
    return 1;
}

static bool any_acked(tm_fwd_core_t *f, const slot_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (tm_store_is_acked(f->store, s->ids[i]) == 1)
            return true;
    return false;
}

int tm_fwd_core_next(tm_fwd_core_t *f, const tm_fwd_in_t *in, tm_fwd_req_t *req)
{
    tm_forwarder_t who;
    uint32_t idx;
    memset(req, 0, sizeof *req);
    take_input(f, in);
    tm_engine_forwarder(f->engine, &who);
    /* Planted (docs/sim.md): a forwarder that never steps down once it sent. */
    bool active = (who.is_self || (TM_PLANTED("no-step-down") && f->epoch_seen)) &&
                  f->now_ms >= who.active_from_ms && in->uplink_up;
    /* A batch the ERP was asked about and holds none of goes first: the
     * question was its first step. */
    for (idx = 0; idx < TM_FWD_MAX_IN_FLIGHT; idx++) {
        slot_t *s = &f->slot[idx];
        if (s->kind != SLOT_READY)
            continue;
        /* A successor forms it again from the log; so do we when a sale of
         * it was acknowledged since the ERP said it held none (a forwarder
         * across a split booked it): asked again, not re-delivered under
         * this new key (tm-sim --seed 256 --erp). */
        if (!active || who.epoch != s->epoch || any_acked(f, s)) {
            slot_clear(f, s);
            continue;
        }
        return post_batch(f, s, idx, req);
    }
    if (f->now_ms < f->st.backoff_until_ms)
        return 0;
    if (!active) {
        f->cat_ready = false;
        f->uplink_seen = in->uplink_up;
        return 0;
    }
    bool split;
    size_t alive = alive_peers(f, &split);
    if (who.epoch != f->epoch_seen || alive != f->alive_seen || !f->uplink_seen || split) {
        /* We take the role (what our predecessor sent may be booked), the
         * store split or healed, or our uplink is back: ask before sending
         * until the ERP holds none of a batch. While a peer is lately down,
         * ask before every batch: a forwarder on the other side may be
         * sending the same sales (a question is cheaper than a re-delivery). */
        f->epoch_seen = who.epoch;
        f->alive_seen = alive;
        f->verify_new = true;
    }
    f->uplink_seen = true;
    slot_t *s = free_slot(f, &idx);
    if (!s)
        return 0;
    s->epoch = who.epoch;
    if (f->busy == 0) {
        /* Elected, or the uplink is back: prices first thing, then as due. */
        if (!f->cat_ready)
            tm_fwd__cat_due_now(&f->cat);
        f->cat_ready = true;
        tm_fwd__cat_env_t env = {f->store, f->engine, f->outbox, f->log,    f->till,
                                 &f->st,   f->random, f->now_ms, f->wall_ms};
        if (tm_fwd__cat_step(&f->cat, &env, req)) {
            start_req(f, s, idx, SLOT_CATALOGUE, req);
            return 1;
        }
        /* Reconcile between batches, when nothing waits to be re-sent. */
        if (f->cfg.reconcile_interval_ms && !f->st.reconcile_off && !f->retry_pending &&
            f->now_ms >= f->next_reconcile_ms) {
            if (!f->next_reconcile_ms) {
                f->next_reconcile_ms = f->now_ms + f->cfg.reconcile_interval_ms; /* not at once */
            } else if (start_reconcile(f, s) && (s->body = status_body(s)) != NULL) {
                start_req(f, s, idx, SLOT_RECONCILE, req);
                req->kind = TM_FWD_REQ_STATUS;
                req->body = s->body;
                req->len = strlen(s->body);
                req->n_sales = s->n;
                return 1;
            } else {
                slot_clear(f, s);
                s->epoch = who.epoch;
            }
        }
    } else {
        /* More than one batch in flight only while batches flow plainly:
         * not during a split, a question to the ERP, or another request. */
        if (in_flight(f) >= f->cfg.max_in_flight || f->split.key[0] || f->retry_pending)
            return 0;
        for (size_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++)
            if (f->slot[i].kind != SLOT_FREE && f->slot[i].kind != SLOT_SALES)
                return 0;
    }
    /* Called on every turn of the main loop: skip the queries while the
     * store has not changed since they last found nothing. */
    if (f->idle && ops_held(f) == f->idle_ops)
        return 0;
    f->idle = false;
    bool ask = false;
    int rc = pick_batch(f, s, &ask);
    if (rc == TM_ENOTFOUND) {
        free(s->ids);
        s->ids = NULL;
        s->n = 0;
        if (f->busy == 0 && pick_customer(f, s, req)) {
            start_req(f, s, idx, SLOT_CUSTOMER, req);
            return 1;
        }
        /* No intent, no sale (beside those in flight), no customer to send:
         * not again until the store changes or an answer comes. */
        f->idle = true;
        f->idle_ops = ops_held(f);
        return 0;
    }
    if (rc == TM_OK)
        rc = record_intent(f, s);
    if (rc) {
        free(s->ids);
        s->ids = NULL;
        s->n = 0;
        backoff(f, FAIL_TRANSIENT, "could not form the next batch locally");
        return 0;
    }
    if (!ask)
        return post_batch(f, s, idx, req);
    if (!(s->body = status_body(s))) {
        slot_clear(f, s);
        return 0;
    }
    start_req(f, s, idx, SLOT_VERIFY, req);
    req->kind = TM_FWD_REQ_STATUS;
    req->body = s->body;
    req->len = strlen(s->body);
    req->n_sales = s->n;
    return 1;
}

static void on_sales_done(tm_fwd_core_t *f, slot_t *s, const tm_fwd_result_t *r,
                          tm_fwd_effects_t *fx)
{
    char why[400];
    long st = r->outcome == TM_FWD_OUT_HTTP ? r->status : 0;
    if (st >= 200 && st < 300) {
        on_2xx(f, s, r);
        return;
    }
    if (refusal(st)) {
        on_refused(f, s, r);
        return;
    }
    /* Everything else: the same sales again, under the same key, later
     * (the intent stays open). */
    fail_t kind = FAIL_TRANSIENT;
    if (st == 0) {
        snprintf(why, sizeof why, "no answer: %s", r->error ? r->error : "?");
    } else if (config_error(r, "POST /sales", why, sizeof why)) {
        kind = FAIL_CONFIG;
    } else if (st < 200) {
        kind = FAIL_PROTOCOL;
        snprintf(why, sizeof why, "the ERP answered HTTP %ld, which the contract does not know",
                 st);
    } else {
        snprintf(why, sizeof why, "HTTP %ld", st);
    }
    backoff(f, kind, why);
    fx->probe_now = true;
    f->retry_pending = true;
    f->verify_new = true; /* the ERP may have booked it: ask before the re-send */
}

void tm_fwd_on_result(tm_fwd_core_t *f, const tm_fwd_result_t *r, const tm_fwd_in_t *in,
                      tm_fwd_effects_t *fx)
{
    memset(fx, 0, sizeof *fx);
    if (r->slot >= TM_FWD_MAX_IN_FLIGHT)
        return;
    slot_t *s = &f->slot[r->slot];
    take_input(f, in);
    f->idle = false; /* a failed batch waits again, a split goes on */
    switch (s->kind) {
    case SLOT_CATALOGUE: {
        tm_fwd__cat_env_t env = {f->store, f->engine, f->outbox, f->log,    f->till,
                                 &f->st,   f->random, f->now_ms, f->wall_ms};
        tm_fwd__cat_done(&f->cat, &env, r);
        break;
    }
    case SLOT_RECONCILE: on_reconcile_done(f, s, r); break;
    case SLOT_VERIFY: on_verify_done(f, s, r); return; /* it keeps or clears the slot itself */
    case SLOT_CUSTOMER: on_customer_done(f, s, r, fx); break;
    case SLOT_SALES: on_sales_done(f, s, r, fx); break;
    default: return; /* no request in flight there */
    }
    slot_clear(f, s);
}
