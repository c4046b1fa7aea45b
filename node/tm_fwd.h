/*
 * tm_fwd.h - the forwarder: while the election names this till, send every
 * unacknowledged sale to the ERP, in batches, and record what the ERP
 * accepted as ERP_ACK ops that replicate to every till (so a successor
 * continues where we stopped).
 *
 * Exactly once (promise P3): batches are formed from unacknowledged sales in
 * (hlc, origin, seq) order - the same on every till - and carry an
 * idempotency key derived from the batch's sale ids, and are written as a
 * replicated intent (ids under key) before they are sent. If we die after
 * the ERP booked a batch but before our ERP_ACK op reached the others, the
 * successor finds the open intent, asks the ERP which of its sales it holds
 * (POST /sales/status) and acknowledges those without sending them again;
 * a batch the ERP holds none of goes under its original key (a replay if
 * the ERP saw it). Without that route the intent is re-sent as is. Either
 * way each sale is booked once. Up to max_in_flight batches are in flight,
 * each with its own intent and key; an answer acknowledges only its own.
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
 *
 * Split: the decisions are the pure core in core/tm_fwd_core.h (no clock,
 * no randomness, no socket); this is its shell, which reads the uplink
 * verdict and random bits, runs the requests the core asks for on the
 * libcurl client (tm_erp.h) and hands each outcome back.
 */
#ifndef TM_FWD_H
#define TM_FWD_H

#include <stdint.h>

#include "tm_engine.h"
#include "tm_erp.h"
#include "tm_fwd_core.h"
#include "tm_store.h"

typedef struct tm_fwd tm_fwd_t;

/* The same settings as the core's (tm_fwd_core.h). */
typedef tm_fwd_core_cfg_t tm_fwd_cfg_t;

int tm_fwd_new(const tm_fwd_cfg_t *cfg, tm_store_t *store, tm_engine_t *engine, tm_erp_t *erp,
               tm_outbox_t *outbox, const tm_log_t *log, tm_fwd_t **out);
void tm_fwd_destroy(tm_fwd_t **self_p);

/* Starts what the core asks for (batches, questions, customers, catalogue
 * pages) while it asks. Call every loop iteration, after tm_erp_run. */
void tm_fwd_step(tm_fwd_t *self, uint64_t now_ms, uint64_t wall_ms);
/* Something changed that the op count does not show (an operator's retry
 * of a parked sale): look for work at the next tm_fwd_step. */
void tm_fwd_wake(tm_fwd_t *self);
/* Milliseconds until tm_fwd_step has something to do (-1: only on input). */
long tm_fwd_timeout_ms(const tm_fwd_t *self, uint64_t now_ms);

void tm_fwd_stats(const tm_fwd_t *self, tm_fwd_stats_t *out);

#endif
