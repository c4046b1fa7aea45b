/*
 * tm_fwd_core.h - the forwarder's decisions, with no clock, no randomness
 * and no socket (issue 14): what to send to the ERP next, and what an
 * answer means. The shell (node/forward.c) does the HTTP and hands back
 * each outcome; time and random bits come in as arguments (tm_fwd_in_t).
 *
 *     while (tm_fwd_core_next(core, &in, &req))   // "POST this body, key K"
 *         start the request (tm_erp_*), remembering req.slot;
 *     ... when it ends:
 *     tm_fwd_on_result(core, &result, &in, &fx);  // status + body, or none
 *
 * The store (SQLite) stays under the core: batches are read from it and
 * intents and acknowledgements written to it through the engine, as ops
 * that replicate. Exactly-once rules (promise P3) are in node/tm_fwd.h and
 * docs/erp.md; in short, every batch is written as a replicated intent
 * (its sale ids under its Idempotency-Key) before its POST, and only ids
 * of that batch are acknowledged by its answer. Several batches may be in
 * flight (max_in_flight), each with its own intent and key.
 *
 * Before it re-sends a batch it did not itself send in this run (a
 * predecessor's open intent, or its own from before a restart), and for
 * its first batches after it takes the role, the core asks the ERP which
 * of the sales it already holds (POST /sales/status): those are
 * acknowledged without being sent again; a batch the ERP holds none of is
 * sent whole under its original key.
 */
#ifndef TM_FWD_CORE_H
#define TM_FWD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_engine.h"
#include "tm_store.h"

typedef struct tm_fwd_core tm_fwd_core_t;

/* Requests in flight at most (sales batches; other requests go alone). */
#define TM_FWD_MAX_IN_FLIGHT 8

typedef struct {
    uint32_t batch_max;      /* sales per POST, default 500 */
    uint32_t max_in_flight;  /* sales batches in flight, default 2, at most 8 */
    uint32_t backoff_min_ms; /* default 200 */
    uint32_t backoff_max_ms; /* default 30000 */
    const char *till;        /* our name, sent as X-Tillmesh-Till */
    /* Reconcile: every interval (0: never), ask the ERP about this many
     * acknowledged sales (a window that walks over all of them). */
    uint32_t reconcile_interval_ms;
    uint32_t reconcile_batch; /* default 100 */
    /* Catalogue down-sync (docs/erp.md, GET /catalogue): pulled every
     * interval (default 60000), this many items a page (default 200). */
    uint32_t catalogue_interval_ms;
    uint32_t catalogue_page;
} tm_fwd_core_cfg_t;

typedef struct {
    uint64_t batches_ok, batches_failed, sales_acked, sales_parked;
    uint64_t last_forward_wall_ms; /* 0: never */
    uint64_t backoff_until_ms;     /* monotonic; 0: not backing off */
    uint32_t failures;             /* consecutive */
    char last_error[160];
    /* A configuration or protocol error (3xx, 401/403/404, an answer that
     * breaks the contract) that stops forwarding until someone fixes it;
     * "" when none. Cleared by the next good answer. */
    char error[400];
    uint64_t protocol_errors; /* answers that broke the contract, total */
    bool in_flight;
    uint32_t requests_in_flight;
    /* Reconcile: acknowledged sales asked about, found missing at the ERP
     * (and so sent again), and when it last got an answer (wall ms). */
    uint64_t reconcile_checked, reconcile_missing;
    uint64_t reconcile_last_wall_ms;
    bool reconcile_off; /* the ERP has no POST /sales/status (404) */
    /* Hand-over: sales asked about before a (re-)send, and those the ERP
     * already held, acknowledged without sending them again. */
    uint64_t verify_checked, verify_booked;
    /* Catalogue: pages taken and refused (a page breaking the contract is
     * refused whole), the last good pull (wall ms, 0: never) and why the
     * last one failed ("" when the last one worked). */
    uint64_t catalogue_pages, catalogue_refused;
    uint64_t catalogue_last_wall_ms;
    char catalogue_error[400];
} tm_fwd_stats_t;

/* What the shell tells the core on every call. */
typedef struct {
    uint64_t now_ms;  /* monotonic */
    uint64_t wall_ms; /* wall clock (stamps, status) */
    bool uplink_up;   /* the probe's verdict after hysteresis */
    uint32_t random;  /* fresh random bits (backoff jitter) */
} tm_fwd_in_t;

typedef enum {
    TM_FWD_REQ_SALES = 1, /* POST /sales, Idempotency-Key: key */
    TM_FWD_REQ_STATUS,    /* POST /sales/status */
    TM_FWD_REQ_CUSTOMER,  /* PUT /customers/{customer_id}, X-Tillmesh-Version */
    TM_FWD_REQ_CATALOGUE, /* GET /catalogue?since=since&limit=limit */
} tm_fwd_req_kind_t;

typedef struct {
    tm_fwd_req_kind_t kind;
    uint32_t slot;    /* handed back in the result */
    uint64_t epoch;   /* X-Tillmesh-Epoch */
    const char *till; /* X-Tillmesh-Till */
    /* The body (JSON), owned by the core until the slot's result. */
    const char *body;
    size_t len;
    char key[72];                     /* SALES */
    size_t n_sales;                   /* SALES, STATUS: ids in the body */
    char customer_id[TM_CUST_ID_MAX]; /* CUSTOMER */
    uint64_t version;                 /* CUSTOMER */
    char since[TM_CURSOR_MAX];        /* CATALOGUE */
    uint32_t limit;                   /* CATALOGUE */
} tm_fwd_req_t;

typedef enum {
    TM_FWD_OUT_HTTP = 0,  /* an answer: status and body */
    TM_FWD_OUT_TIMEOUT,   /* no answer in time */
    TM_FWD_OUT_REFUSED,   /* connection refused */
    TM_FWD_OUT_TRANSPORT, /* any other failure before an answer */
} tm_fwd_outcome_t;

typedef struct {
    uint32_t slot;
    tm_fwd_outcome_t outcome;
    long status;       /* HTTP status; 0 unless outcome is HTTP */
    const char *error; /* why there was no answer, or NULL */
    const char *body;  /* the answer's body, NUL-terminated ("" if none) */
    size_t body_len;
    const char *location; /* a 3xx's Location, "" or NULL if none */
} tm_fwd_result_t;

/* What the core asks of the shell besides requests. */
typedef struct {
    bool probe_now; /* a write failed: probe the uplink at once */
} tm_fwd_effects_t;

int tm_fwd_core_new(const tm_fwd_core_cfg_t *cfg, tm_store_t *store, tm_engine_t *engine,
                    tm_outbox_t *outbox, const tm_log_t *log, tm_fwd_core_t **out);
void tm_fwd_core_destroy(tm_fwd_core_t **self_p);

/* The next request to start, if any (1, *req filled; 0: none now). Call
 * until it returns 0. */
int tm_fwd_core_next(tm_fwd_core_t *self, const tm_fwd_in_t *in, tm_fwd_req_t *req);
/* The outcome of the request started from slot r->slot. */
void tm_fwd_on_result(tm_fwd_core_t *self, const tm_fwd_result_t *r, const tm_fwd_in_t *in,
                      tm_fwd_effects_t *fx);
/* Milliseconds until tm_fwd_core_next may have something to do (-1: only
 * on input). */
long tm_fwd_core_timeout_ms(const tm_fwd_core_t *self, const tm_fwd_in_t *in);
/* Something changed that the op count does not show (an operator's retry
 * of a parked sale): look for work at the next call. */
void tm_fwd_core_wake(tm_fwd_core_t *self);
void tm_fwd_core_stats(const tm_fwd_core_t *self, tm_fwd_stats_t *out);

#endif
