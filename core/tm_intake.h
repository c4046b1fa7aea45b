/*
 * tm_intake.h - the rules a sale or a customer edit from this till's POS
 * passes before it is stored (issue 14: out of node/backend.c, so that the
 * daemon and tm-sim run the same rules).
 *
 * Pure: the wall time, the random bytes of a new sale_id and the store-time
 * estimate come in as arguments; the store is read (resend check, receipt
 * numbers, catalogue prices, returns) and, by tm_intake_commit_*, written
 * through the engine. The shell (node/backend.c) reads the clock and
 * libsodium and answers the HTTP request.
 */
#ifndef TM_INTAKE_H
#define TM_INTAKE_H

#include <stdint.h>

#include "tm_common.h"
#include "tm_engine.h"
#include "tm_record.h"
#include "tm_store.h"

typedef struct {
    const char *till;               /* this till's name */
    uint64_t wall_ms;               /* wall clock now: created_at of a sale without one */
    uint8_t random[16];             /* the sale_id of a sale without one (UUID v4) */
    const tm_clock_status_t *clock; /* store time now; NULL or unmeasured: not flagged */
} tm_intake_ctx_t;

/* A version 4 UUID made of 16 given bytes (the version and variant bits
 * are set). */
void tm_intake_uuid(const uint8_t random[16], char out[TM_UUID_LEN]);
/* RFC 3339 UTC with milliseconds, e.g. 2026-09-01T12:00:00.250Z. */
void tm_intake_rfc3339(uint64_t wall_ms, char *out, size_t outsz);

/*
 * Makes s (as the POS posted it) ready to store: the clock fields are the
 * till's, never the POS's; a sale without sale_id gets one; a sale whose id
 * is held already is a resend (what the POS left out is filled from the
 * stored one): TM_EEXIST when it is the same sale (s is then the stored
 * one), TM_ECONFLICT when it differs. Then: till (this till's, or a field
 * error), created_at, catalogue prices, receipt_no, the sale rules and, for
 * a return, its original (*review: TM_REVIEW_ORIGINAL_UNKNOWN when it is
 * not held here). TM_EVALIDATE with errs filled; a store error otherwise.
 */
int tm_intake_sale(tm_store_t *store, const tm_intake_ctx_t *ctx, tm_sale_t *s, int *review,
                   tm_field_errors_t *errs);

/* Stamps and stores a sale made ready by tm_intake_sale (durable when it
 * returns TM_OK) and queues its push. */
int tm_intake_commit_sale(tm_engine_t *e, const tm_sale_t *s, uint64_t wall_ms, uint64_t mono_ms,
                          tm_outbox_t *out);

/* Stores a customer edit stamped after everything held of that customer:
 * an edit made after seeing another wins over it, whatever the clocks. */
int tm_intake_commit_customer(tm_engine_t *e, tm_store_t *store, const tm_customer_t *patch,
                              uint64_t wall_ms, uint64_t mono_ms, tm_outbox_t *out);

#endif
