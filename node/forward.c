/* forward.c - forwarding batches of sales to the ERP (see tm_fwd.h). */
#include "tm_fwd.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm_wire.h"

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
    /* After a 4xx for a whole batch: send one sale at a time for a while. */
    uint32_t single_left;
    uint64_t now_ms, wall_ms;
};

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
    tm_strlcpy(f->till, cfg->till ? cfg->till : "", sizeof f->till);
    f->store = store;
    f->engine = engine;
    f->erp = erp;
    f->outbox = outbox;
    f->log = log;
    *out = f;
    return TM_OK;
}

void tm_fwd_destroy(tm_fwd_t **self_p)
{
    tm_fwd_t *f = *self_p;
    if (!f)
        return;
    free(f->ids);
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
    return -1;
}

/* ---- outcomes --------------------------------------------------------- */

static void backoff(tm_fwd_t *f, const char *why)
{
    f->st.failures++;
    f->st.batches_failed++;
    uint64_t d = f->cfg.backoff_min_ms;
    for (uint32_t i = 1; i < f->st.failures && d < f->cfg.backoff_max_ms; i++)
        d *= 2;
    if (d > f->cfg.backoff_max_ms)
        d = f->cfg.backoff_max_ms;
    /* Full jitter on the upper half: tills that failed together do not
     * retry together. */
    d = d / 2 + randombytes_uniform((uint32_t)(d / 2 + 1));
    f->st.backoff_until_ms = f->now_ms + d;
    tm_strlcpy(f->st.last_error, why, sizeof f->st.last_error);
    tm_log_warn(f->log, "ERP batch of %zu (key %s) failed: %s; retrying in %llu ms", f->n_ids,
                f->key, why, (unsigned long long)d);
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

/* Collects the valid uuids of a JSON array into ids (capacity cap). */
static size_t collect(json_t *arr, char (*ids)[TM_UUID_LEN], size_t k, size_t cap)
{
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v) {
        const char *s = json_string_value(v);
        if (s && tm_uuid_valid(s) && k < cap)
            tm_strlcpy(ids[k++], s, TM_UUID_LEN);
    }
    return k;
}

/* An id the ERP's answer does not mention would be re-sent with the same
 * key forever and get the same replayed answer: park it for a person.
 * answered[0..k) holds every id the answer listed. */
static void park_unanswered(tm_fwd_t *f, char (*answered)[TM_UUID_LEN], size_t k)
{
    for (size_t i = 0; i < f->n_ids; i++) {
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(f->ids[i], answered[j]) == 0;
        if (!seen && tm_store_is_acked(f->store, f->ids[i]) == 0)
            park(f, f->ids[i], 502, "the ERP's answer did not mention this sale");
    }
}

static void on_200(tm_fwd_t *f, const tm_erp_result_t *r)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        backoff(f, "ERP answered 200 without a JSON object");
        return;
    }
    /* Room for the acknowledged ids, then the rejected ones after them. */
    size_t cap = 2 * f->n_ids;
    char(*answered)[TM_UUID_LEN] = calloc(cap + 1, TM_UUID_LEN);
    size_t k = 0, n_answered;
    if (answered) {
        k = collect(json_object_get(root, "accepted"), answered, k, f->n_ids);
        k = collect(json_object_get(root, "duplicates"), answered, k, f->n_ids);
    }
    int rc = record_acks(f, answered, k);
    n_answered = k;
    size_t i;
    json_t *rej;
    json_array_foreach (json_object_get(root, "rejected"), i, rej) {
        const char *id = json_string_value(json_object_get(rej, "sale_id"));
        json_t *jst = json_object_get(rej, "status");
        const char *msg = json_string_value(json_object_get(rej, "message"));
        if (!id || !tm_uuid_valid(id))
            continue;
        park(f, id, json_is_integer(jst) ? (int)json_integer_value(jst) : 422,
             msg ? msg : "rejected");
        if (answered && n_answered < cap)
            tm_strlcpy(answered[n_answered++], id, TM_UUID_LEN);
    }
    json_decref(root);
    if (rc == TM_OK && answered)
        park_unanswered(f, answered, n_answered);
    free(answered);
    if (rc) {
        backoff(f, "could not record the acknowledgement locally");
        return;
    }
    f->st.failures = 0;
    f->st.backoff_until_ms = 0;
    f->st.batches_ok++;
    f->st.last_forward_wall_ms = f->wall_ms;
    f->st.last_error[0] = '\0';
}

static void on_customer_done(tm_fwd_t *f, const tm_erp_result_t *r)
{
    char why[200];
    f->customer = false;
    if (r->status == 200) {
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
        f->st.failures = 0;
        f->st.last_forward_wall_ms = f->wall_ms;
        return;
    }
    if (r->status >= 400 && r->status < 500 && r->status != 401 && r->status != 403 &&
        r->status != 404 && r->status != 408 && r->status != 429) {
        tm_cust_version_t *v = realloc(f->refused, (f->n_refused + 1) * sizeof *v);
        if (v) {
            f->refused = v;
            f->refused[f->n_refused++] = f->cust;
        }
        tm_log_warn(f->log,
                    "ERP refused customer %s (HTTP %ld: %.100s): not sent again until it "
                    "changes",
                    f->cust.id, r->status, r->body_len ? r->body : "");
        return;
    }
    if (r->status)
        snprintf(why, sizeof why, "HTTP %ld on customer %s", r->status, f->cust.id);
    else
        snprintf(why, sizeof why, "no answer on customer %s: %s", f->cust.id,
                 r->error ? r->error : "?");
    backoff(f, why);
    tm_erp_probe_now(f->erp);
}

static void on_done(void *ctx, const tm_erp_result_t *r)
{
    tm_fwd_t *f = ctx;
    char why[200];
    if (f->customer) {
        on_customer_done(f, r);
        return;
    }
    if (r->status == 200) {
        on_200(f, r);
    } else if (r->status == 0 || r->status >= 500 || r->status == 408 || r->status == 429 ||
               r->status == 401 || r->status == 403 || r->status == 404) {
        if (r->status == 0)
            snprintf(why, sizeof why, "no answer: %s", r->error ? r->error : "?");
        else
            snprintf(why, sizeof why, "HTTP %ld", r->status);
        if (r->status == 401 || r->status == 403)
            tm_log_error(f->log, "the ERP refused our credentials (HTTP %ld): check token_file",
                         r->status);
        backoff(f, why);
        tm_erp_probe_now(f->erp);
        /* A re-delivery carries the same sales and the same key. */
        f->resend = true;
        return;
    } else if (f->n_ids == 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "%.150s", r->body_len ? r->body : "refused");
        park(f, f->ids[0], (int)r->status, msg);
        f->st.failures = 0;
    } else {
        /* One bad sale must not hold back the rest: find it. */
        tm_log_warn(f->log, "ERP refused a batch of %zu (HTTP %ld): sending them one by one",
                    f->n_ids, r->status);
        f->single_left = (uint32_t)f->n_ids;
    }
    free(f->ids);
    f->ids = NULL;
    f->n_ids = 0;
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

/* Forms the next batch and records it as an intent op before it is sent:
 * the intent reaches the other tills ahead of the POST, so if we die after
 * the ERP booked the batch but before its acknowledgement is replicated, a
 * successor re-sends exactly this batch under this key and the ERP replays
 * its answer. TM_ENOTFOUND when no sale waits (a customer may be sent). */
static int new_batch(tm_fwd_t *f, const tm_forwarder_t *who)
{
    size_t max = f->single_left ? 1 : f->cfg.batch_max;
    int rc = tm_store_unacked_sales(f->store, max, &f->ids, &f->n_ids);
    if (rc)
        return rc;
    if (f->n_ids == 0) {
        step_customer(f, who);
        return TM_ENOTFOUND;
    }
    if (f->single_left)
        f->single_left--;
    batch_key(f, f->key);
    tm_erp_ack_t intent = {.sale_ids = f->ids, .n = f->n_ids, .epoch = who->epoch};
    tm_strlcpy(intent.idempotency_key, f->key, sizeof intent.idempotency_key);
    uint8_t *body;
    size_t len;
    if ((rc = tm_wire_ack_encode(&intent, &body, &len)))
        return rc;
    uint64_t hlc = tm_engine_hlc_now(f->engine, f->wall_ms);
    rc = tm_engine_local_op(f->engine, TM_OP_ERP_INTENT, hlc, body, len, f->now_ms, f->outbox);
    free(body);
    if (rc)
        tm_log_error(f->log, "could not record the batch intent: %s", tm_strerror(rc));
    return rc;
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
        return;
    }
    /* Called on every turn of the main loop: skip the queries while the
     * store has not changed since they last found nothing. */
    if (f->idle && ops_held(f) == f->idle_ops)
        return;
    f->idle = false;
    if (!f->resend || !f->n_ids) {
        free(f->ids);
        f->ids = NULL;
        f->n_ids = 0;
        int rc = tm_store_open_intent(f->store, &f->ids, &f->n_ids, f->key);
        if (rc == TM_OK) {
            tm_log_debug(f->log, "ERP: re-sending batch %s (%zu sales) from an open intent", f->key,
                         f->n_ids);
        } else if (rc != TM_ENOTFOUND || (rc = new_batch(f, &who)) != TM_OK) {
            if (rc == TM_ENOTFOUND && !tm_erp_busy(f->erp)) {
                f->idle = true; /* no intent, no sale, no customer to send */
                f->idle_ops = ops_held(f);
            }
            return;
        }
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
        backoff(f, tm_strerror(rc));
        return;
    }
    tm_log_debug(f->log, "ERP: sending %zu sale(s), key %s, epoch %llu", f->n_ids, f->key,
                 (unsigned long long)f->epoch);
}
