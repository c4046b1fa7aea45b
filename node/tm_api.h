/*
 * tm_api.h - the local HTTP/JSON API (libmicrohttpd), versioned under /v1.
 *
 * Routes (documented with examples in docs/api.md):
 *   POST /v1/sales               201 + sale JSON after the durable commit,
 *                                200 when the same sale (same sale_id, same
 *                                content) was already stored (a POS retry),
 *                                409 same sale_id with other content,
 *                                422 field errors, 400 malformed JSON,
 *                                413 body too large, 507 disk full
 *   GET  /v1/sales/{id}          200 / 404
 *   GET  /v1/sales?since=&limit= 200 {"sales":[...],"next":cursor}
 *   PUT  /v1/customers/{id}      200 + merged customer (partial update)
 *   GET  /v1/customers/{id}      200 / 404
 *   GET  /v1/status              200 status JSON (schema in docs/api.md)
 *   GET  /metrics                Prometheus text format
 *   GET  /v1/erp/parked          sales the ERP refused, parked on this till
 *   POST /v1/erp/parked/{id}/retry  unpark: the forwarder sends it again
 *
 * Threading: the daemon runs MHD without threads of its own. The main loop
 * polls tm_api_fd() together with the ZeroMQ sockets and calls tm_api_run()
 * when it is readable or tm_api_timeout_ms() has passed; every handler thus
 * runs on the engine thread and may use the store directly.
 *
 * Writes go through the backend (the node), which stamps, validates, stores
 * durably and pushes them to peers. Reads use the store.
 */
#ifndef TM_API_H
#define TM_API_H

#include <stddef.h>
#include <stdint.h>

#include "tm_common.h"
#include "tm_record.h"
#include "tm_store.h"

typedef struct tm_api tm_api_t;

typedef struct {
    void *ctx;
    tm_store_t *store; /* for reads */
    /*
     * Fills what the POS may leave out (sale_id, till, receipt_no,
     * created_at), validates, and stores durably. On TM_OK or TM_EEXIST the
     * sale as stored is left in *sale. Returns TM_OK (new), TM_EEXIST (same
     * sale already stored), TM_ECONFLICT (same sale_id, other content),
     * TM_EVALIDATE (errs filled), TM_EFULL, or another error.
     */
    int (*post_sale)(void *ctx, tm_sale_t *sale, tm_field_errors_t *errs);
    /* Stamps and stores a customer patch; on TM_OK *merged is the customer
     * after the merge. TM_EVALIDATE (errs filled), TM_EFULL, other errors. */
    int (*put_customer)(void *ctx, const tm_customer_t *patch, tm_customer_t *merged,
                        tm_field_errors_t *errs);
    /* malloc'd JSON / Prometheus text; NULL on out of memory. */
    char *(*status_json)(void *ctx);
    char *(*metrics_text)(void *ctx);
    /* {"parked":[{"sale_id","status","message","parked_at"}...]} */
    char *(*parked_json)(void *ctx);
    /* TM_OK, or TM_ENOTFOUND if the sale is not parked here. */
    int (*erp_retry)(void *ctx, const char *sale_id);
} tm_api_backend_t;

#define TM_API_MAX_BODY_DEFAULT (1024 * 1024)

/* Binds addr:port (addr must be a numeric IPv4 or IPv6 address; the daemon
 * refuses non-loopback addresses unless told otherwise). port 0 picks a free
 * port (see tm_api_port). */
int tm_api_new(const char *addr, uint16_t port, size_t max_body, const tm_api_backend_t *be,
               const tm_log_t *log, tm_api_t **out);
void tm_api_destroy(tm_api_t **self_p);

uint16_t tm_api_port(const tm_api_t *self);
/* A file descriptor to poll for input (MHD's epoll fd). */
int tm_api_fd(const tm_api_t *self);
/* Milliseconds until tm_api_run must be called even without input; -1 none. */
int64_t tm_api_timeout_ms(tm_api_t *self);
/* Does whatever work is ready; never blocks. */
void tm_api_run(tm_api_t *self);

#endif
