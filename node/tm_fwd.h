/*
 * tm_fwd.h - the forwarder: while the election names this till, send every
 * unacknowledged sale to the ERP, in batches, and record what the ERP
 * accepted as ERP_ACK ops that replicate to every till (so a successor
 * continues where we stopped).
 *
 * Exactly once (promise P3): batches are formed from unacknowledged sales in
 * (hlc, origin, seq) order - the same on every till - and carry an
 * idempotency key derived from the batch's sale ids. If we die after the ERP
 * booked a batch but before our ERP_ACK op reached the others, the successor
 * re-forms the same batch with the same key and the ERP answers with a
 * replay; a sale the ERP already booked comes back as a duplicate. Either
 * way it is acknowledged, and booked once.
 *
 * Failures never amplify: every failed request is followed by a capped
 * exponential backoff with jitter before the next one.
 *  - 5xx, 408, 429, 401/403/404 and transport errors: the ERP or its
 *    configuration is in trouble, not the sales. Retry the same batch with
 *    the same key.
 *  - 3xx (a login proxy, a moved URL; redirects are never followed): a
 *    configuration error, shown in stats.error; retried like a 5xx, nothing
 *    parked.
 *  - A 2xx whose body is not the contract's JSON, that leaves ids of the
 *    batch unaccounted for, or that names ids outside the batch: a protocol
 *    error, shown in stats.error; the same batch is sent again under the
 *    same key. Only ids of the batch are ever acknowledged; an answer that
 *    names foreign ids acknowledges nothing.
 *  - Another 4xx for a batch of several sales: that batch's intent is
 *    superseded by one-sale intents, taken in the batch's order, to find the
 *    culprit; a sale refused on its own (or listed in the answer's
 *    "rejected") is parked: shown in status, retried only on
 *    `tillmesh erp retry`.
 * Configuration and protocol errors are logged at most once a minute while
 * they repeat unchanged.
 *
 * Reconcile: an acknowledgement can be wrong (a forged one that slipped
 * through, an ERP restored from a backup). Every reconcile_interval_ms,
 * when no sale waits, the forwarder asks the ERP (POST /sales/status,
 * docs/erp.md) about a window of acknowledged sales; those the ERP says it
 * does not hold are revoked (an ERP_ACK op with revoked_ids, replicated)
 * and so sent again, under a new key. An ERP without the route (404) turns
 * reconcile off until restart, said once in the log and in stats.
 */
#ifndef TM_FWD_H
#define TM_FWD_H

#include <stdint.h>

#include "tm_engine.h"
#include "tm_erp.h"
#include "tm_store.h"

typedef struct tm_fwd tm_fwd_t;

/* Randomness seam for the backoff jitter: a uniform value in [0, upper]. */
typedef uint32_t (*tm_fwd_jitter_fn)(void *ctx, uint32_t upper);
/* The daemon's jitter: libsodium's randombytes_uniform. */
uint32_t tm_fwd_jitter_random(void *ctx, uint32_t upper);

typedef struct {
    uint32_t batch_max;      /* sales per POST, default 500 */
    uint32_t backoff_min_ms; /* default 200 */
    uint32_t backoff_max_ms; /* default 30000 */
    const char *till;        /* our name, sent as X-Tillmesh-Till */
    tm_fwd_jitter_fn jitter; /* NULL: tm_fwd_jitter_random */
    void *jitter_ctx;
    /* Reconcile: every interval (0: never), ask the ERP about this many
     * acknowledged sales (a window that walks over all of them). */
    uint32_t reconcile_interval_ms;
    uint32_t reconcile_batch; /* default 100 */
    /* Catalogue down-sync (docs/erp.md, GET /catalogue): pulled every
     * interval (default 60000), this many items a page (default 200). */
    uint32_t catalogue_interval_ms;
    uint32_t catalogue_page;
} tm_fwd_cfg_t;

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
    /* Reconcile: acknowledged sales asked about, found missing at the ERP
     * (and so sent again), and when it last got an answer (wall ms). */
    uint64_t reconcile_checked, reconcile_missing;
    uint64_t reconcile_last_wall_ms;
    bool reconcile_off; /* the ERP has no POST /sales/status (404) */
    /* Catalogue: pages taken and refused (a page breaking the contract is
     * refused whole), the last good pull (wall ms, 0: never) and why the
     * last one failed ("" when the last one worked). */
    uint64_t catalogue_pages, catalogue_refused;
    uint64_t catalogue_last_wall_ms;
    char catalogue_error[400];
} tm_fwd_stats_t;

int tm_fwd_new(const tm_fwd_cfg_t *cfg, tm_store_t *store, tm_engine_t *engine, tm_erp_t *erp,
               tm_outbox_t *outbox, const tm_log_t *log, tm_fwd_t **out);
void tm_fwd_destroy(tm_fwd_t **self_p);

/* Starts a batch if we are the forwarder, the uplink is up, nothing is in
 * flight and no backoff is running. Call every loop iteration. */
void tm_fwd_step(tm_fwd_t *self, uint64_t now_ms, uint64_t wall_ms);
/* Something changed that the op count does not show (an operator's retry
 * of a parked sale): look for work at the next tm_fwd_step. */
void tm_fwd_wake(tm_fwd_t *self);
/* Milliseconds until tm_fwd_step has something to do (-1: only on input). */
long tm_fwd_timeout_ms(const tm_fwd_t *self, uint64_t now_ms);

void tm_fwd_stats(const tm_fwd_t *self, tm_fwd_stats_t *out);

#endif
