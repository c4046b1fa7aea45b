/* erp.c - the forwarder of every till and ONE simulated ERP (docs/sim.md,
 * "Forwarder and ERP"). Each till runs the real forwarder core
 * (core/tm_fwd_core.h) as node/forward.c does: stepped whenever its engine
 * ran (sim_flush), and at the core's own timeout, with the till's clocks
 * and seeded random bits. Its requests go through the till's simulated
 * route to the ERP (up, refused, silent, slow) to an ERP that follows
 * docs/erp.md: each sale_id booked once, a repeated Idempotency-Key with
 * the same body replayed, /sales/status answered from the bookings, and
 * faults from the seed (5xx, one sale refused, stalls, answers lost after
 * booking, slow answers, restarts that keep the bookings and lose what was
 * in flight). Its own generator: a seed without an ERP draws what it drew
 * before. The ERP checks what it receives as it receives it (same key,
 * same ids and body; a re-delivered sale, the same body; no acknowledged
 * sale sent under a new key; the hand-over overlap bound) and at the end
 * (every sale booked once, or parked). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim_int.h"

/* node/config.c's request_timeout_ms default: a request without an answer
 * by then is a timeout to the till (the ERP may still book it). */
#define ERP_TIMEOUT_MS 10000u
/* docs/erp.md "Two senders": an old forwarder's request in flight may
 * still reach the ERP until its request_timeout_ms runs out. */
#define ERP_OVERLAP_MS ERP_TIMEOUT_MS
/* After settling, who sends is watched this long. */
#define ERP_WATCH_AFTER_MS 1000u

typedef struct {
    char id[TM_UUID_LEN];
    uint64_t body;   /* the sale as first received, without "review" */
    uint32_t booked; /* bookings: must end at 1 (0 if refused) */
    bool refused;    /* the one sale this ERP refuses */
    char key[72];    /* the key that booked it */
} erp_sale_t;

typedef struct {
    char key[72];
    uint64_t ids, body; /* hash of the ids in order, of the body */
    long status;
    char *answer;
} erp_key_t;

typedef struct {
    uint64_t id;
    int till;
    uint64_t incarnation;
    uint32_t slot;
    tm_fwd_req_kind_t kind;
    char key[72];
    char *body;
    size_t len;
    uint64_t sent_at, epoch;
    bool pending; /* the till still waits for it */
    bool at_erp;  /* reached the ERP, not yet answered (lost by a restart) */
    long status;
    char *answer;
} erp_req_t;

struct sim_erp {
    sim_rng_t rng;
    /* faults (ppm per request), drawn per seed */
    uint32_t p5xx, pstall, plost, pslow, prefuse_mode_whole;
    int refuse_nth; /* the nth new sale seen is refused (0: none) */
    int new_seen;
    uint64_t down_until; /* restarting: connections refused */
    erp_sale_t *sale;
    size_t n_sale, cap_sale;
    erp_key_t *key;
    size_t n_key, cap_key;
    erp_req_t *req;
    size_t n_req, cap_req;
    /* hand-over: the last till whose sales reached us, since when the
     * current one sends, and the one before it */
    int sender, prev_sender;
    uint64_t sender_since;
    uint64_t max_overlap;
    /* after settling: which tills sent */
    bool watching;
    uint32_t sent_mask;
    uint64_t redelivered_new_key, replays, booked, asked;
};

static uint64_t s_fnv(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- setup ----------------------------------------------------------- */

void sim_erp_draw(sim_t *s)
{
    sim_rng_t r;
    sim_rng_seed(&r, s->seed ^ 0x45525020534d4cULL);
    /* Two seeds in three have an ERP; --erp forces it. */
    bool drawn = sim_rng_below(&r, 3) < 2; /* drawn always: --erp replays a CI seed */
    s->erp_on = s->cfg.force_erp || drawn;
    if (!s->erp_on || s->cfg.no_erp) {
        s->erp_on = false;
        return;
    }
    struct sim_erp *e = calloc(1, sizeof *e);
    if (!e) {
        s->erp_on = false;
        sim_violation(s, "simulator", "out of memory for the ERP");
        return;
    }
    e->rng = r;
    uint32_t mask = (uint32_t)sim_rng_below(&e->rng, 64);
    e->p5xx = mask & 1 ? (uint32_t)sim_rng_below(&e->rng, 200000) : 0;
    e->pstall = mask & 2 ? (uint32_t)sim_rng_below(&e->rng, 50000) : 0;
    e->plost = mask & 4 ? (uint32_t)sim_rng_below(&e->rng, 150000) : 0;
    e->pslow = mask & 8 ? (uint32_t)sim_rng_below(&e->rng, 200000) : 0;
    e->refuse_nth = mask & 16 ? (int)sim_rng_range(&e->rng, 1, 8) : 0;
    e->prefuse_mode_whole = (uint32_t)sim_rng_below(&e->rng, 2);
    s->erp_restarts = mask & 32 ? (int)sim_rng_range(&e->rng, 1, 2) : 0;
    e->sender = e->prev_sender = -1;
    s->erp = e;
    for (int i = 0; i < s->k; i++) {
        sim_till_t *t = &s->t[i];
        /* The route behind the probe's first verdict. */
        t->route = t->uplink == TM_UPLINK_UP
                       ? (sim_rng_below(&e->rng, 5) ? ROUTE_UP : ROUTE_SLOW)
                       : (sim_rng_below(&e->rng, 2) ? ROUTE_REFUSED : ROUTE_SILENT);
        t->route0 = t->route;
        t->fwd_batch = (uint32_t)sim_rng_log(&e->rng, 4, 200);
        t->fwd_inflight = (uint32_t)sim_rng_range(&e->rng, 1, 3);
        t->fwd_backoff_max = (uint32_t)sim_rng_log(&e->rng, 1000, 5000);
        t->fwd_reconcile =
            sim_rng_below(&e->rng, 2) ? (uint32_t)sim_rng_range(&e->rng, 1000, 8000) : 0;
    }
}

void sim_erp_start(sim_t *s)
{
    struct sim_erp *e = s->erp;
    if (!e)
        return;
    for (int n = 0; n < s->erp_restarts; n++)
        sim_push(s, sim_rng_below(&e->rng, s->load_ms), EV_ERP_RESTART, -1, -1, 0, NULL, 0);
    sim_trace(s,
              "erp: 5xx %u ppm, stalls %u ppm, lost answers %u ppm, slow %u ppm, refuses new sale "
              "#%d (%s), %d restart(s)",
              e->p5xx, e->pstall, e->plost, e->pslow, e->refuse_nth,
              e->prefuse_mode_whole ? "whole request" : "in the answer", s->erp_restarts);
}

void sim_erp_free(sim_t *s)
{
    struct sim_erp *e = s->erp;
    if (!e)
        return;
    s->res->erp_booked = e->booked;
    s->res->erp_requests = e->n_req;
    s->res->erp_replays = e->replays;
    s->res->erp_redelivered = e->redelivered_new_key;
    s->res->erp_max_overlap = e->max_overlap;
    for (size_t i = 0; i < e->n_key; i++)
        free(e->key[i].answer);
    for (size_t i = 0; i < e->n_req; i++) {
        free(e->req[i].body);
        free(e->req[i].answer);
    }
    free(e->key);
    free(e->req);
    free(e->sale);
    free(e);
    s->erp = NULL;
}

/* ---- the forwarder of each till --------------------------------------- */

int sim_fwd_open(sim_t *s, int i)
{
    sim_till_t *t = &s->t[i];
    if (!s->erp_on)
        return TM_OK;
    tm_fwd_core_cfg_t cfg = {.batch_max = t->fwd_batch,
                             .max_in_flight = t->fwd_inflight,
                             .backoff_min_ms = 200,
                             .backoff_max_ms = t->fwd_backoff_max,
                             .till = t->name,
                             .reconcile_interval_ms = t->fwd_reconcile,
                             .reconcile_batch = 20};
    int rc = tm_fwd_core_new(&cfg, t->store, t->eng, &s->box, &t->log, &t->fwd);
    if (rc)
        sim_violation(s, "engine-new", "till %s: forwarder: %s", t->name, tm_strerror(rc));
    t->fwd_gen++;
    t->fwd_at = 0;
    return rc;
}

void sim_fwd_close(sim_t *s, int i)
{
    sim_till_t *t = &s->t[i];
    tm_fwd_core_destroy(&t->fwd);
    t->fwd_gen++;
    t->fwd_at = 0;
    /* Requests of the dead process: their answers go nowhere. */
    if (s->erp)
        for (size_t r = 0; r < s->erp->n_req; r++)
            if (s->erp->req[r].till == i)
                s->erp->req[r].pending = false;
}

static tm_fwd_in_t s_in(sim_t *s, int i)
{
    return (tm_fwd_in_t){.now_ms = sim_mono(s, i),
                         .wall_ms = sim_wall(s, i),
                         .uplink_up = s->t[i].uplink == TM_UPLINK_UP,
                         .random = (uint32_t)sim_rng_next(&s->erp->rng)};
}

static erp_sale_t *s_sale(struct sim_erp *e, const char *id)
{
    for (size_t i = 0; i < e->n_sale; i++)
        if (strcasecmp(e->sale[i].id, id) == 0)
            return &e->sale[i];
    return NULL;
}

static bool s_attempted(const struct sim_erp *e, const char *key, uint64_t below)
{
    for (size_t i = 0; i < below; i++)
        if (e->req[i].kind == TM_FWD_REQ_SALES && strcmp(e->req[i].key, key) == 0)
            return true;
    return false;
}

/* A till that holds a sale as acknowledged never sends it under a key no
 * one sent before: only a replay of a batch intent may carry it again. */
static void s_check_ack_final(sim_t *s, int i, const erp_req_t *q)
{
    json_error_t err;
    json_t *root = json_loadb(q->body, q->len, 0, &err), *v;
    size_t k;
    if (s_attempted(s->erp, q->key, s->erp->n_req - 1)) {
        json_decref(root);
        return;
    }
    json_array_foreach (json_object_get(root, "sales"), k, v) {
        const char *id = json_string_value(json_object_get(v, "sale_id"));
        if (id && tm_store_is_acked(s->t[i].store, id) == 1) {
            sim_violation(s, "ack-final",
                          "%s sends sale %s, which it holds as acknowledged, under a new key %s",
                          s->t[i].name, id, q->key);
            break;
        }
    }
    json_decref(root);
}

static erp_req_t *s_new_req(sim_t *s)
{
    struct sim_erp *e = s->erp;
    if (e->n_req == e->cap_req) {
        size_t cap = e->cap_req ? 2 * e->cap_req : 64;
        erp_req_t *v = realloc(e->req, cap * sizeof *v);
        if (!v)
            return NULL;
        e->req = v;
        e->cap_req = cap;
    }
    erp_req_t *q = &e->req[e->n_req++];
    memset(q, 0, sizeof *q);
    q->id = e->n_req - 1;
    return q;
}

static void s_issue(sim_t *s, int i, const tm_fwd_req_t *r)
{
    struct sim_erp *e = s->erp;
    sim_till_t *t = &s->t[i];
    erp_req_t *q = s_new_req(s);
    char *body = r->body ? malloc(r->len + 1) : NULL;
    if (!q || (r->body && !body)) {
        free(body);
        sim_violation(s, "simulator", "out of memory for a request");
        return;
    }
    if (body) {
        memcpy(body, r->body, r->len);
        body[r->len] = '\0';
    }
    q->till = i;
    q->incarnation = t->incarnation;
    q->slot = r->slot;
    q->kind = r->kind;
    q->body = body;
    q->len = body ? r->len : 0;
    q->sent_at = s->now;
    q->epoch = r->epoch;
    q->pending = true;
    tm_strlcpy(q->key, r->kind == TM_FWD_REQ_SALES ? r->key : "", sizeof q->key);
    sim_hash_u64(s, ((uint64_t)i << 8) | (uint64_t)r->kind);
    sim_hash(s, q->key, strlen(q->key));
    if (q->body)
        sim_hash(s, q->body, q->len);
    tm_forwarder_t who;
    tm_engine_forwarder(t->eng, &who);
    sim_trace(s, "%s -> erp: %s %s n=%zu epoch %llu (route %d; it names %s, epoch %llu)", t->name,
              r->kind == TM_FWD_REQ_SALES      ? "POST /sales"
              : r->kind == TM_FWD_REQ_STATUS   ? "POST /sales/status"
              : r->kind == TM_FWD_REQ_CUSTOMER ? "PUT /customers"
                                               : "GET /catalogue",
              q->key, r->n_sales, (unsigned long long)r->epoch, (int)t->route,
              who.have ? who.name : "none", (unsigned long long)who.epoch);
    if (e->watching)
        e->sent_mask |= 1u << i;
    if (q->kind == TM_FWD_REQ_SALES)
        s_check_ack_final(s, i, q);
    /* A till sends sales only while its engine names it the forwarder: what
     * may overlap a hand-over is what it sent before it learnt of it. */
    if (q->kind == TM_FWD_REQ_SALES && (!who.is_self || who.epoch != q->epoch))
        sim_violation(s, "elected-sender",
                      "%s sends sales (epoch %llu) while it names %s (epoch %llu) the forwarder",
                      t->name, (unsigned long long)q->epoch, who.have ? who.name : "none",
                      (unsigned long long)who.epoch);
    uint64_t id = q->id;
    sim_push(s, s->now + ERP_TIMEOUT_MS, EV_ERP_TIMEOUT, i, -1, id, NULL, 0);
    switch (t->route) {
    case ROUTE_REFUSED:
        q->status = -TM_FWD_OUT_REFUSED;
        sim_push(s, s->now + 1, EV_ERP_ANSWER, i, -1, id, NULL, 0);
        break;
    case ROUTE_SILENT: break; /* vanishes: the timeout answers */
    case ROUTE_SLOW:
        sim_push(s, s->now + 100 + sim_rng_below(&e->rng, 1400), EV_ERP_ARRIVE, i, -1, id, NULL, 0);
        break;
    case ROUTE_UP:
        sim_push(s, s->now + 1 + sim_rng_below(&e->rng, 30), EV_ERP_ARRIVE, i, -1, id, NULL, 0);
        break;
    }
}

void sim_fwd_step(sim_t *s, int i)
{
    sim_till_t *t = &s->t[i];
    if (!s->erp_on || !t->up || !t->fwd)
        return;
    tm_fwd_in_t in = s_in(s, i);
    tm_fwd_req_t r;
    while (!s->res->violated && tm_fwd_core_next(t->fwd, &in, &r))
        s_issue(s, i, &r);
    long ms = tm_fwd_core_timeout_ms(t->fwd, &in);
    if (ms < 0)
        return;
    uint64_t at = s->now + (uint64_t)ms + 1;
    if (t->fwd_at && t->fwd_at <= at && t->fwd_at > s->now)
        return;
    t->fwd_at = at;
    sim_push(s, at, EV_FWD, i, -1, ++t->fwd_gen, NULL, 0);
}

/* ---- the ERP ------------------------------------------------------------ */

static int s_add_sale(struct sim_erp *e, const char *id, uint64_t body, erp_sale_t **out)
{
    if (e->n_sale == e->cap_sale) {
        size_t cap = e->cap_sale ? 2 * e->cap_sale : 64;
        erp_sale_t *v = realloc(e->sale, cap * sizeof *v);
        if (!v)
            return TM_ENOMEM;
        e->sale = v;
        e->cap_sale = cap;
    }
    erp_sale_t *x = &e->sale[e->n_sale++];
    memset(x, 0, sizeof *x);
    tm_strlcpy(x->id, id, sizeof x->id);
    x->body = body;
    x->refused = e->refuse_nth && ++e->new_seen == e->refuse_nth;
    *out = x;
    return TM_OK;
}

/* The sale without the fields the contract lets change between sends. */
static uint64_t s_sale_hash(json_t *sale)
{
    json_t *c = json_deep_copy(sale);
    json_object_del(c, "review");
    char *d = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t h = d ? s_fnv(d, strlen(d)) : 0;
    free(d);
    json_decref(c);
    return h;
}

static char *s_set_answer(erp_req_t *q, long status, json_t *j)
{
    q->status = status;
    q->answer = j ? json_dumps(j, JSON_COMPACT) : strdup("{}");
    json_decref(j);
    return q->answer;
}

static void s_post_sales(sim_t *s, erp_req_t *q)
{
    struct sim_erp *e = s->erp;
    json_error_t err;
    json_t *root = json_loadb(q->body, q->len, 0, &err), *v;
    json_t *sales = json_object_get(root, "sales");
    size_t k;
    uint64_t ids = 0xcbf29ce484222325ULL, body = s_fnv(q->body, q->len);
    if (!json_is_array(sales)) {
        sim_violation(s, "erp-contract", "%s sent a POST /sales body without sales",
                      s->t[q->till].name);
        json_decref(root);
        return;
    }
    /* Every sale as first seen: a re-delivery carries the same body. */
    bool whole_refusal = false;
    json_array_foreach (sales, k, v) {
        const char *id = json_string_value(json_object_get(v, "sale_id"));
        if (!id)
            continue;
        ids = (ids ^ s_fnv(id, strlen(id))) * 0x100000001b3ULL;
        uint64_t h = s_sale_hash(v);
        erp_sale_t *x = s_sale(e, id);
        if (!x && s_add_sale(e, id, h, &x)) {
            sim_violation(s, "simulator", "out of memory at the ERP");
            json_decref(root);
            return;
        }
        if (x->body != h)
            sim_violation(s, "same-body", "sale %s re-delivered by %s with another body (key %s)",
                          id, s->t[q->till].name, q->key);
        whole_refusal |= x->refused && e->prefuse_mode_whole;
    }
    for (size_t i = 0; i < e->n_key; i++) {
        erp_key_t *y = &e->key[i];
        if (strcmp(y->key, q->key) != 0)
            continue;
        if (y->ids != ids)
            sim_violation(s, "same-key", "key %s sent again by %s with other sales", q->key,
                          s->t[q->till].name);
        if (y->body == body) {
            e->replays++;
            q->status = y->status;
            q->answer = strdup(y->answer);
        } else {
            /* Same sales, a review flag changed (docs/erp.md): refused. */
            s_set_answer(q, 422, json_pack("{s:s}", "error", "idempotency_key_reused"));
        }
        json_decref(root);
        return;
    }
    if (!s->healed && sim_rng_ppm(&e->rng, e->p5xx)) {
        s_set_answer(q, 503, json_pack("{s:s}", "error", "busy"));
        json_decref(root);
        return;
    }
    json_t *acc = json_array(), *dup = json_array(), *rej = json_array();
    long status = 200;
    if (whole_refusal) {
        status = 422;
    } else {
        json_array_foreach (sales, k, v) {
            const char *id = json_string_value(json_object_get(v, "sale_id"));
            erp_sale_t *x = id ? s_sale(e, id) : NULL;
            if (!x)
                continue;
            if (x->refused) {
                json_array_append_new(rej, json_pack("{s:s,s:i,s:s}", "sale_id", id, "status", 422,
                                                     "message", "unknown SKU (simulated)"));
            } else if (x->booked) {
                json_array_append_new(dup, json_string(id));
                if (strcmp(x->key, q->key) != 0)
                    e->redelivered_new_key++;
            } else {
                x->booked++;
                e->booked++;
                tm_strlcpy(x->key, q->key, sizeof x->key);
                json_array_append_new(acc, json_string(id));
            }
        }
    }
    json_decref(root);
    json_t *ans = status == 200 ? json_pack("{s:o,s:o,s:o}", "accepted", acc, "duplicates", dup,
                                            "rejected", rej)
                                : (json_decref(acc), json_decref(dup), json_decref(rej),
                                   json_pack("{s:s}", "error", "sale refused (simulated)"));
    s_set_answer(q, status, ans);
    if (e->n_key == e->cap_key) {
        size_t cap = e->cap_key ? 2 * e->cap_key : 64;
        erp_key_t *nv = realloc(e->key, cap * sizeof *nv);
        if (!nv)
            return;
        e->key = nv;
        e->cap_key = cap;
    }
    erp_key_t *y = &e->key[e->n_key++];
    tm_strlcpy(y->key, q->key, sizeof y->key);
    y->ids = ids;
    y->body = body;
    y->status = status;
    y->answer = strdup(q->answer ? q->answer : "{}");
}

static void s_post_status(sim_t *s, erp_req_t *q)
{
    struct sim_erp *e = s->erp;
    json_error_t err;
    json_t *root = json_loadb(q->body, q->len, 0, &err), *v;
    json_t *booked = json_array(), *unknown = json_array();
    size_t k;
    json_array_foreach (json_object_get(root, "ids"), k, v) {
        const char *id = json_string_value(v);
        erp_sale_t *x = id ? s_sale(e, id) : NULL;
        json_array_append_new(x && x->booked ? booked : unknown, json_string(id ? id : ""));
    }
    json_decref(root);
    e->asked++;
    s_set_answer(q, 200, json_pack("{s:o,s:o}", "booked", booked, "unknown", unknown));
}

/* The ERP takes the request: books, answers (or stalls first). */
static void s_process(sim_t *s, erp_req_t *q)
{
    struct sim_erp *e = s->erp;
    q->at_erp = false;
    switch (q->kind) {
    case TM_FWD_REQ_SALES: s_post_sales(s, q); break;
    case TM_FWD_REQ_STATUS: s_post_status(s, q); break;
    case TM_FWD_REQ_CUSTOMER: s_set_answer(q, 200, json_object()); break;
    case TM_FWD_REQ_CATALOGUE:
        s_set_answer(q, 200,
                     json_pack("{s:[],s:[],s:s,s:b}", "products", "deletions", "next_cursor", "1",
                               "more", 0));
        break;
    }
    if (q->answer)
        sim_hash(s, q->answer, strlen(q->answer));
    sim_trace(s, "erp: %s from %s: %ld %.120s", q->key[0] ? q->key : "request", s->t[q->till].name,
              q->status, q->answer ? q->answer : "");
    if (!s->healed && sim_rng_ppm(&e->rng, e->plost)) {
        sim_trace(s, "erp: the answer to %s is lost", s->t[q->till].name);
        q->status = -TM_FWD_OUT_TRANSPORT;
        sim_push(s, s->now + 1, EV_ERP_ANSWER, q->till, -1, q->id, NULL, 0);
        return;
    }
    uint64_t back = 1 + sim_rng_below(&e->rng, 30);
    if (s->t[q->till].route == ROUTE_SLOW || (!s->healed && sim_rng_ppm(&e->rng, e->pslow)))
        back += 100 + sim_rng_below(&e->rng, s->healed ? 1400 : 4000);
    sim_push(s, s->now + back, EV_ERP_ANSWER, q->till, -1, q->id, NULL, 0);
}

/* The overlap of two senders in a connected store is bounded (docs/erp.md
 * "Two senders"): once a till sends in a newer epoch, a sale request of an
 * older (or the same) epoch from another till may still reach us for
 * request_timeout_ms, no longer, if the two tills heard each other all
 * along. Not across a split (each part may have a forwarder) or a lossy
 * spell (heartbeats lost move the role). */
static void s_watch_senders(sim_t *s, const erp_req_t *q)
{
    struct sim_erp *e = s->erp;
    if (q->kind != TM_FWD_REQ_SALES || q->till == e->sender)
        return;
    if (q->till != e->prev_sender) {
        /* A new sender: the hand-over starts now (epochs are not compared:
         * two tills that claimed apart may both hold epoch 1). */
        e->prev_sender = e->sender;
        e->sender = q->till;
        e->sender_since = s->now;
        return;
    }
    /* The one it replaced still sends. */
    if (s->pair_since[q->till][e->sender] > e->sender_since ||
        !sim_connected(s, q->till, e->sender))
        return;
    uint64_t overlap = s->now - e->sender_since;
    if (overlap > e->max_overlap)
        e->max_overlap = overlap;
    if (overlap > ERP_OVERLAP_MS)
        sim_violation(s, "two-senders",
                      "%s still sends (epoch %llu) %llu ms after %s took over in a connected "
                      "store (bound %u ms)",
                      s->t[q->till].name, (unsigned long long)q->epoch, (unsigned long long)overlap,
                      s->t[e->sender].name, ERP_OVERLAP_MS);
}

static void s_arrive(sim_t *s, erp_req_t *q)
{
    struct sim_erp *e = s->erp;
    s_watch_senders(s, q);
    if (s->now < e->down_until) {
        q->status = -TM_FWD_OUT_REFUSED;
        sim_push(s, s->now + 1, EV_ERP_ANSWER, q->till, -1, q->id, NULL, 0);
        return;
    }
    if (!s->healed && sim_rng_ppm(&e->rng, e->pstall)) {
        q->at_erp = true;
        sim_push(s, s->now + 2000 + sim_rng_below(&e->rng, 15000), EV_ERP_PROCESS, q->till, -1,
                 q->id, NULL, 0);
        return;
    }
    s_process(s, q);
}

/* A result for the till's core; then it steps (its answer may free a slot). */
static void s_result(sim_t *s, erp_req_t *q, tm_fwd_outcome_t out, const char *why)
{
    sim_till_t *t = &s->t[q->till];
    q->pending = false;
    if (!t->up || !t->fwd || t->incarnation != q->incarnation)
        return;
    tm_fwd_result_t r = {.slot = q->slot,
                         .outcome = out,
                         .status = out == TM_FWD_OUT_HTTP ? q->status : 0,
                         .error = out == TM_FWD_OUT_HTTP ? NULL : why,
                         .body = out == TM_FWD_OUT_HTTP && q->answer ? q->answer : "",
                         .body_len = out == TM_FWD_OUT_HTTP && q->answer ? strlen(q->answer) : 0,
                         .location = ""};
    tm_fwd_in_t in = s_in(s, q->till);
    tm_fwd_effects_t fx;
    tm_fwd_on_result(t->fwd, &r, &in, &fx);
    /* ack-true: what a till records as acknowledged, the ERP booked. */
    if (out == TM_FWD_OUT_HTTP && q->kind != TM_FWD_REQ_CUSTOMER &&
        q->kind != TM_FWD_REQ_CATALOGUE) {
        json_error_t err;
        json_t *root = json_loadb(q->body, q->len, 0, &err), *v;
        json_t *list = q->kind == TM_FWD_REQ_SALES ? json_object_get(root, "sales")
                                                   : json_object_get(root, "ids");
        size_t k;
        json_array_foreach (list, k, v) {
            const char *id = json_is_string(v) ? json_string_value(v)
                                               : json_string_value(json_object_get(v, "sale_id"));
            erp_sale_t *x = id ? s_sale(s->erp, id) : NULL;
            if (id && tm_store_is_acked(t->store, id) == 1 && (!x || !x->booked)) {
                sim_violation(s, "ack-true",
                              "%s holds sale %s as acknowledged; the ERP never "
                              "booked it",
                              t->name, id);
                break;
            }
        }
        json_decref(root);
    }
    sim_flush(s, q->till);
}

void sim_erp_event(sim_t *s, sim_ev_t *ev)
{
    struct sim_erp *e = s->erp;
    erp_req_t *q = e && ev->gen < e->n_req ? &e->req[ev->gen] : NULL;
    switch (ev->kind) {
    case EV_FWD:
        if (ev->gen == s->t[ev->a].fwd_gen) {
            s->t[ev->a].fwd_at = 0;
            sim_flush(s, ev->a);
        }
        break;
    case EV_ERP_ARRIVE:
        if (q)
            s_arrive(s, q);
        break;
    case EV_ERP_PROCESS:
        if (q && q->at_erp)
            s_process(s, q);
        break;
    case EV_ERP_ANSWER:
        if (!q || !q->pending)
            break;
        if (q->status == -TM_FWD_OUT_REFUSED)
            s_result(s, q, TM_FWD_OUT_REFUSED, "Connection refused");
        else if (q->status == -TM_FWD_OUT_TRANSPORT)
            s_result(s, q, TM_FWD_OUT_TRANSPORT, "Connection reset by peer");
        else if (s->t[q->till].route == ROUTE_SILENT || s->t[q->till].route == ROUTE_REFUSED)
            break; /* the line went while it travelled: the timeout answers */
        else
            s_result(s, q, TM_FWD_OUT_HTTP, NULL);
        break;
    case EV_ERP_TIMEOUT:
        if (q && q->pending)
            s_result(s, q, TM_FWD_OUT_TIMEOUT, "Operation timed out after 10000 milliseconds");
        break;
    case EV_ERP_RESTART: {
        if (s->healed)
            break;
        uint64_t d = sim_rng_log(&e->rng, 100, 8000);
        e->down_until = s->now + d;
        sim_trace(s, "erp: restarts, down for %llu ms (bookings kept)", (unsigned long long)d);
        /* What it was working on is lost with its connection. */
        for (size_t i = 0; i < e->n_req; i++)
            if (e->req[i].at_erp) {
                e->req[i].at_erp = false;
                e->req[i].status = -TM_FWD_OUT_TRANSPORT;
                sim_push(s, s->now + 1, EV_ERP_ANSWER, e->req[i].till, -1, e->req[i].id, NULL, 0);
            }
        break;
    }
    case EV_VERDICT:
        if (ev->gen == s->t[ev->a].verdict_gen) {
            sim_till_t *t = &s->t[ev->a];
            t->uplink =
                t->route == ROUTE_UP || t->route == ROUTE_SLOW ? TM_UPLINK_UP : TM_UPLINK_DOWN;
            sim_trace(s, "%s probe: uplink %s", t->name, tm_uplink_name(t->uplink));
            if (t->up) {
                tm_engine_set_uplink(t->eng, t->uplink, sim_wall(s, ev->a), sim_mono(s, ev->a));
                sim_flush(s, ev->a);
            }
        }
        break;
    default: break;
    }
}

/* The probe's verdict follows the route: simplified, a refused line is
 * seen in 20 ms (2 refusals in a burst), a silent one in 570 ms (the
 * silent_fall burst), a line back after 2..4 s (rise: 2 answers at the
 * fast probe interval). */
void sim_erp_route(sim_t *s, int i, sim_route_t route)
{
    sim_till_t *t = &s->t[i];
    t->route = route;
    bool up = route == ROUTE_UP || route == ROUTE_SLOW;
    uint64_t d = up ? 2000 + sim_rng_below(&s->erp->rng, 2000) : route == ROUTE_REFUSED ? 20 : 570;
    sim_push(s, s->now + d, EV_VERDICT, i, -1, ++t->verdict_gen, NULL, 0);
    sim_trace(s, "fault: %s route to the ERP %s", t->name,
              route == ROUTE_UP       ? "up"
              : route == ROUTE_SLOW   ? "slow"
              : route == ROUTE_SILENT ? "silent"
                                      : "refused");
}

void sim_erp_fault(sim_t *s, int i)
{
    sim_erp_route(s, i, (sim_route_t)sim_rng_below(&s->erp->rng, 4));
}

void sim_erp_heal(sim_t *s)
{
    bool any = false;
    for (int i = 0; i < s->k; i++)
        any |= s->t[i].route0 == ROUTE_UP || s->t[i].route0 == ROUTE_SLOW;
    for (int i = 0; i < s->k; i++) {
        sim_route_t r = s->t[i].route0;
        if (!any && i == 0)
            r = ROUTE_UP; /* the ERP is reachable from the store once healed */
        if (r != s->t[i].route)
            sim_erp_route(s, i, r);
    }
    s->erp->down_until = 0;
}

/* ---- settling and the final checks ---------------------------------------- */

/* Every sale the store holds is acknowledged on every till (the tills are
 * level, so on the first) or, the one the ERP refuses, parked on a till. */
bool sim_erp_settled(sim_t *s, char *why, size_t sz)
{
    if (!s->erp_on)
        return true;
    for (int i = 0; i < s->k; i++) {
        const sim_till_t *t = &s->t[i];
        bool up = t->route == ROUTE_UP || t->route == ROUTE_SLOW;
        if (up != (t->uplink == TM_UPLINK_UP)) {
            snprintf(why, sz, "%s's probe has not seen its route change yet", t->name);
            return false;
        }
    }
    tm_store_t *st = s->t[0].store;
    for (size_t i = 0; i < s->n_sales; i++) {
        tm_sale_t sale;
        const char *id = s->sales[i].id;
        if (tm_store_get_sale(st, id, &sale) != TM_OK)
            continue; /* lost with a restored store: no-loss speaks for it */
        tm_sale_free(&sale);
        if (tm_store_is_acked(st, id) == 1)
            continue;
        erp_sale_t *x = s_sale(s->erp, id);
        bool parked = false;
        for (int t = 0; x && x->refused && t < s->k && !parked; t++) {
            tm_parked_t *p = NULL;
            size_t n = 0;
            if (tm_store_parked(s->t[t].store, 64, &p, &n) == TM_OK)
                for (size_t j = 0; j < n; j++)
                    parked |= strcasecmp(p[j].sale_id, id) == 0;
            free(p);
        }
        if (!parked) {
            snprintf(why, sz, "sale %s (rung up on %s) %s", id, s->t[s->sales[i].till].name,
                     !x           ? "never reached the ERP"
                     : x->refused ? "was refused by the ERP and is parked on no till"
                     : x->booked  ? "is booked but not acknowledged"
                                  : "is not booked");
            return false;
        }
    }
    return true;
}

void sim_erp_settle(sim_t *s)
{
    if (!s->erp)
        return;
    s->erp->watching = true;
    s->erp->sent_mask = 0;
    sim_push(s, s->now + ERP_WATCH_AFTER_MS, EV_END, -1, -1, 0, NULL, 0);
}

void sim_erp_check_final(sim_t *s)
{
    struct sim_erp *e = s->erp;
    if (!e)
        return;
    int senders = 0;
    for (int i = 0; i < s->k; i++)
        senders += (e->sent_mask >> i) & 1;
    if (senders > 1) {
        sim_violation(s, "one-sender", "%d tills sent to the ERP after settling (mask %#x)",
                      senders, e->sent_mask);
        return;
    }
    for (size_t i = 0; i < e->n_sale; i++) {
        erp_sale_t *x = &e->sale[i];
        if (x->booked > 1 || (x->refused && x->booked)) {
            sim_violation(s, "exactly-once", "sale %s booked %u times", x->id, x->booked);
            return;
        }
        for (int t = 0; t < s->k; t++)
            if (tm_store_is_acked(s->t[t].store, x->id) == 1 && !x->booked) {
                sim_violation(s, "ack-true",
                              "%s holds sale %s as acknowledged; the ERP never "
                              "booked it",
                              s->t[t].name, x->id);
                return;
            }
    }
    char why[300];
    if (!sim_erp_settled(s, why, sizeof why))
        sim_violation(s, "exactly-once", "after settling: %s", why);
}
