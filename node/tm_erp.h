/*
 * tm_erp.h - the HTTP client side of the ERP contract (docs/erp.md), on the
 * libcurl multi interface so that it never blocks the main loop.
 *
 * Two jobs:
 *  - the uplink probe (docs/erp.md, "Probe schedule"): GET {url}/health on a
 *    fresh connection, every probe_interval_ms on the forwarder and the
 *    standby (fast pace), every probe_slow_interval_ms on the other tills;
 *    an answered request counts as a probe, so none goes out while sales
 *    flow. A probe or request unanswered for probe_suspect_ms, or failed,
 *    starts a burst: a probe every 20 ms with a short timeout, until one
 *    answers. `rise` answers in a row make the uplink UP; `fall` refusals in
 *    a row (connection refused, unreachable, an HTTP error: nothing random
 *    loss can fake) or `silent_fall` probes in a row lost without any answer
 *    make it DOWN. So a silent cut is found in about
 *    probe_suspect_ms + silent_fall x 20 ms + 250 ms, while 20 % packet loss
 *    (which makes ~40 % of burst probes fail) almost never loses 12 in a row;
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
    const char *url;                 /* base URL, e.g. https://erp.example.com/tillmesh */
    const char *token_file;          /* NULL or "": no Authorization header */
    const char *till;                /* our name, sent with probes (X-Tillmesh-Till) */
    uint32_t probe_interval_ms;      /* fast pace, default 2000 */
    uint32_t probe_slow_interval_ms; /* slow pace, default 30000 */
    uint32_t probe_timeout_ms;       /* default 1000 */
    uint32_t probe_suspect_ms;       /* unanswered this long: burst, default 100 */
    uint32_t rise, fall;             /* default 2 and 2 */
    uint32_t silent_fall;            /* lost probes in a row: down, default 12 */
    uint32_t request_timeout_ms;     /* POST timeout, default 10000 */
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
/* Asks for a probe at the next tm_erp_run (e.g. after a failed POST); it
 * starts a burst unless the uplink is already down. */
void tm_erp_probe_now(tm_erp_t *self);
/* Asks for one probe at the next tm_erp_run, without a burst: when the
 * forwarder changes, a till on the slow pace refreshes its verdict (it may
 * be the next candidate, and its status should tell the truth). */
void tm_erp_probe_once(tm_erp_t *self);
/* The pace: fast for the forwarder and the standby (tm_engine_probe_fast),
 * slow for the others. */
void tm_erp_set_fast(tm_erp_t *self, bool fast, uint64_t now_ms);

typedef struct {
    bool fast;                   /* the pace */
    bool bursting;               /* something went unanswered: finding out */
    uint64_t health_requests;    /* GET /health sent since start */
    uint64_t bursts;             /* bursts started */
    uint64_t lost;               /* probes that got no answer at all */
    uint64_t requests_as_probes; /* answered requests that stood in for a probe */
    uint64_t last_ok_age_ms;     /* since the last answer (UINT64_MAX: none yet) */
} tm_erp_probe_stats_t;
void tm_erp_probe_stats(const tm_erp_t *self, uint64_t now_ms, tm_erp_probe_stats_t *out);

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
