/*
 * tm_erp.h - the HTTP client side of the ERP contract (docs/erp.md), on the
 * libcurl multi interface so that it never blocks the main loop.
 *
 * Two jobs:
 *  - the uplink probe: GET {url}/health every probe interval; `rise`
 *    consecutive successes make the uplink UP, `fall` consecutive failures
 *    make it DOWN (hysteresis: one lost probe does not move the forwarder);
 *    one probe in flight at a time;
 *  - the forwarder's writes (POST /sales, ...), up to TM_ERP_MAX_WRITES in
 *    flight, each on an easy handle kept between requests so that curl
 *    reuses the connection (keep-alive).
 *
 * The main loop adds tm_erp_pollitems() to its zmq_poll, bounds its timeout
 * by tm_erp_timeout_ms(), and calls tm_erp_run() every iteration; finished
 * POSTs are handed to the callback from inside tm_erp_run().
 *
 * TLS certificates are verified unless tls_verify is off (tests only). The
 * bearer token is read from a file that must not be group- or
 * world-readable; with a plain http:// URL it would travel in clear, so the
 * config refuses that pair unless allow_insecure_http is set (tm_config.h).
 * Redirects are never followed: the token must not go where the URL does
 * not say.
 */
#ifndef TM_ERP_H
#define TM_ERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "tm_common.h"
#include "tm_engine.h"

typedef struct tm_erp tm_erp_t;

#define TM_ERP_MAX_WRITES 8

/* Why a request got no answer. */
typedef enum {
    TM_ERP_FAIL_NONE = 0, /* an answer (status) */
    TM_ERP_FAIL_TIMEOUT,
    TM_ERP_FAIL_REFUSED, /* could not connect */
    TM_ERP_FAIL_OTHER,
} tm_erp_fail_t;

typedef struct {
    const char *url;             /* base URL, e.g. https://erp.example.com/tillmesh */
    const char *token_file;      /* NULL or "": no Authorization header */
    uint32_t probe_interval_ms;  /* default 250 */
    uint32_t probe_timeout_ms;   /* default 1000 */
    uint32_t rise, fall;         /* default 2 and 2 */
    uint32_t request_timeout_ms; /* POST timeout, default 10000 */
    bool tls_verify;
} tm_erp_cfg_t;

typedef struct {
    long status;       /* HTTP status; 0 when no answer (transport error) */
    const char *error; /* curl's message when status == 0 */
    tm_erp_fail_t fail;
    const char *body; /* response body, NUL-terminated ("" if none) */
    size_t body_len;
    const char *location; /* a 3xx's Location, "" if none (never followed) */
    double seconds;       /* request duration */
} tm_erp_result_t;

typedef void (*tm_erp_done_fn)(void *ctx, const tm_erp_result_t *r);

/* TM_ECONFIG for a bad URL, TM_EPERM for a token file readable by others. */
int tm_erp_new(const tm_erp_cfg_t *cfg, const tm_log_t *log, tm_erp_t **out);
void tm_erp_destroy(tm_erp_t **self_p);

size_t tm_erp_pollitems(tm_erp_t *self, zmq_pollitem_t *items, size_t max);
/* Milliseconds until tm_erp_run is due (probe schedule, curl timers). */
long tm_erp_timeout_ms(tm_erp_t *self, uint64_t now_ms);
void tm_erp_run(tm_erp_t *self, uint64_t now_ms, uint64_t wall_ms);

/* The probe's verdict after hysteresis, and since when (wall ms). */
tm_uplink_t tm_erp_uplink(const tm_erp_t *self, uint64_t *since_wall_ms);
/* Why the probe fails when that is a configuration error a person must fix
 * (a redirect, a refused token, a wrong URL), else NULL. Cleared by the
 * next good probe. */
const char *tm_erp_error(const tm_erp_t *self);
/* Asks for a probe at the next tm_erp_run (e.g. after a failed POST). */
void tm_erp_probe_now(tm_erp_t *self);

/* Whether a write is in flight, and how many. */
bool tm_erp_busy(const tm_erp_t *self);
unsigned tm_erp_writes(const tm_erp_t *self);
/* Starts POST {url}/sales with the given body and idempotency key; done is
 * called once with the outcome (with ctx: one per request). TM_ESTATE if
 * TM_ERP_MAX_WRITES writes are in flight. */
int tm_erp_post_sales(tm_erp_t *self, const char *body, size_t len, const char *key, uint64_t epoch,
                      const char *till, tm_erp_done_fn done, void *ctx);

/* Starts POST {url}/sales/status with {"ids": [...]} (reconcile: which of
 * these acknowledged sales the ERP holds); same rules as a POST. */
int tm_erp_post_status(tm_erp_t *self, const char *body, size_t len, uint64_t epoch,
                       const char *till, tm_erp_done_fn done, void *ctx);
/* Starts PUT {url}/customers/{id} with the customer JSON; the version (its
 * greatest field stamp) goes in X-Tillmesh-Version so an ERP can ignore an
 * older PUT that arrives late. TM_ESTATE if no write slot is free. */
int tm_erp_put_customer(tm_erp_t *self, const char *id, const char *body, size_t len,
                        uint64_t version, uint64_t epoch, const char *till, tm_erp_done_fn done,
                        void *ctx);

/* Starts GET {url}/catalogue?since=SINCE&limit=LIMIT (docs/erp.md); uses
 * a write slot. TM_ESTATE if none is free. */
int tm_erp_get_catalogue(tm_erp_t *self, const char *since, uint32_t limit, uint64_t epoch,
                         const char *till, tm_erp_done_fn done, void *ctx);

#endif
