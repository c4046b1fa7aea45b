/* forward.c - the forwarder's shell (see tm_fwd.h): the core decides
 * (core/tm_fwd_core.h), this runs its requests on the ERP client and
 * hands the outcomes back, with the time and random bits it needs. */
#include "tm_fwd.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The callback context of one request: which core slot it answers, and its
 * outcome once it ends. Outcomes are kept until tm_fwd_step hands them to
 * the core with the time of the turn (curl reports them from inside
 * tm_erp_run). */
typedef struct {
    struct tm_fwd *f;
    uint32_t slot;
    uint64_t done_seq; /* 0: no outcome waiting */
    tm_fwd_result_t res;
    char *body;
    char error[256];
    char location[256];
} pending_t;

struct tm_fwd {
    tm_fwd_core_t *core;
    tm_erp_t *erp;
    const tm_log_t *log;
    pending_t pending[TM_FWD_MAX_IN_FLIGHT];
    uint64_t seq;             /* outcomes are handed back in the order they came */
    uint64_t now_ms, wall_ms; /* of the current turn */
};

int tm_fwd_new(const tm_fwd_cfg_t *cfg, tm_store_t *store, tm_engine_t *engine, tm_erp_t *erp,
               tm_outbox_t *outbox, const tm_log_t *log, tm_fwd_t **out)
{
    tm_fwd_t *f = calloc(1, sizeof *f);
    *out = NULL;
    if (!f)
        return TM_ENOMEM;
    int rc = tm_fwd_core_new(cfg, store, engine, outbox, log, &f->core);
    if (rc) {
        free(f);
        return rc;
    }
    f->erp = erp;
    f->log = log;
    for (uint32_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++)
        f->pending[i] = (pending_t){.f = f, .slot = i};
    *out = f;
    return TM_OK;
}

void tm_fwd_destroy(tm_fwd_t **self_p)
{
    tm_fwd_t *f = *self_p;
    if (!f)
        return;
    tm_fwd_core_destroy(&f->core);
    for (uint32_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++)
        free(f->pending[i].body);
    free(f);
    *self_p = NULL;
}

static tm_fwd_in_t input(const tm_fwd_t *f)
{
    return (tm_fwd_in_t){.now_ms = f->now_ms,
                         .wall_ms = f->wall_ms,
                         .uplink_up = tm_erp_uplink(f->erp, NULL) == TM_UPLINK_UP,
                         .random = randombytes_random()};
}

static void on_done(void *ctx, const tm_erp_result_t *r)
{
    pending_t *p = ctx;
    free(p->body);
    p->body = malloc(r->body_len + 1);
    tm_strlcpy(p->error, r->error ? r->error : "", sizeof p->error);
    tm_strlcpy(p->location, r->location ? r->location : "", sizeof p->location);
    p->res = (tm_fwd_result_t){.slot = p->slot,
                               .outcome = r->fail == TM_ERP_FAIL_NONE      ? TM_FWD_OUT_HTTP
                                          : r->fail == TM_ERP_FAIL_TIMEOUT ? TM_FWD_OUT_TIMEOUT
                                          : r->fail == TM_ERP_FAIL_REFUSED ? TM_FWD_OUT_REFUSED
                                                                           : TM_FWD_OUT_TRANSPORT,
                               .status = r->status,
                               .error = r->error ? p->error : NULL,
                               .body = "",
                               .location = p->location};
    if (p->body) {
        memcpy(p->body, r->body, r->body_len);
        p->body[r->body_len] = '\0';
        p->res.body = p->body;
        p->res.body_len = r->body_len;
    } else if (p->res.outcome == TM_FWD_OUT_HTTP) {
        /* No memory for the answer: to the core it never came. */
        p->res.outcome = TM_FWD_OUT_TRANSPORT;
        p->res.status = 0;
        p->res.error = "out of memory for the ERP's answer";
    }
    p->done_seq = ++p->f->seq;
}

/* Hands the outcomes that came in since the last turn to the core, oldest
 * first. */
static void deliver(tm_fwd_t *f, const tm_fwd_in_t *in)
{
    for (;;) {
        pending_t *next = NULL;
        for (uint32_t i = 0; i < TM_FWD_MAX_IN_FLIGHT; i++) {
            pending_t *p = &f->pending[i];
            if (p->done_seq && (!next || p->done_seq < next->done_seq))
                next = p;
        }
        if (!next)
            return;
        next->done_seq = 0;
        tm_fwd_effects_t fx;
        tm_fwd_on_result(f->core, &next->res, in, &fx);
        free(next->body);
        next->body = NULL;
        if (fx.probe_now)
            tm_erp_probe_now(f->erp);
    }
}

static int start(tm_fwd_t *f, const tm_fwd_req_t *q)
{
    pending_t *p = &f->pending[q->slot];
    switch (q->kind) {
    case TM_FWD_REQ_SALES:
        return tm_erp_post_sales(f->erp, q->body, q->len, q->key, q->epoch, q->till, on_done, p);
    case TM_FWD_REQ_STATUS:
        return tm_erp_post_status(f->erp, q->body, q->len, q->epoch, q->till, on_done, p);
    case TM_FWD_REQ_CUSTOMER:
        return tm_erp_put_customer(f->erp, q->customer_id, q->body, q->len, q->version, q->epoch,
                                   q->till, on_done, p);
    case TM_FWD_REQ_CATALOGUE:
        return tm_erp_get_catalogue(f->erp, q->since, q->limit, q->epoch, q->till, on_done, p);
    }
    return TM_EINVAL;
}

void tm_fwd_step(tm_fwd_t *f, uint64_t now_ms, uint64_t wall_ms)
{
    tm_fwd_req_t q;
    f->now_ms = now_ms;
    f->wall_ms = wall_ms;
    tm_fwd_in_t in = input(f);
    deliver(f, &in);
    while (tm_fwd_core_next(f->core, &in, &q)) {
        int rc = start(f, &q);
        if (rc == TM_OK)
            continue;
        /* Not started: to the core it is a request that got no answer. */
        tm_fwd_result_t res = {.slot = q.slot,
                               .outcome = TM_FWD_OUT_TRANSPORT,
                               .error = tm_strerror(rc),
                               .body = "",
                               .location = ""};
        tm_fwd_effects_t fx;
        tm_fwd_on_result(f->core, &res, &in, &fx);
        break;
    }
}

void tm_fwd_wake(tm_fwd_t *f)
{
    tm_fwd_core_wake(f->core);
}

long tm_fwd_timeout_ms(const tm_fwd_t *f, uint64_t now_ms)
{
    tm_fwd_in_t in = {.now_ms = now_ms,
                      .wall_ms = f->wall_ms,
                      .uplink_up = tm_erp_uplink(f->erp, NULL) == TM_UPLINK_UP};
    return tm_fwd_core_timeout_ms(f->core, &in);
}

void tm_fwd_stats(const tm_fwd_t *f, tm_fwd_stats_t *out)
{
    tm_fwd_core_stats(f->core, out);
}
