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
 *
 * Staying available to the POS (docs/api.md, "Connections"): every request
 * has a total deadline, however slowly its bytes trickle in; past the
 * connection cap a new connection takes the slot of the oldest idle or slow
 * one instead of waiting in the listen backlog; remote clients get fewer
 * slots, a per-address cap and need a token; body memory grows with the
 * bytes that arrive, not with the Content-Length announced.
 */
#ifndef TM_API_H
#define TM_API_H

#include <stdbool.h>
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
/* A whole request (request line, headers, body, and the answer read back)
 * must be done within this; see tm_api_cfg_t.request_timeout_ms. */
#define TM_API_REQUEST_TIMEOUT_MS_DEFAULT 10000
/* A connection with no request under way (just opened, or kept alive after
 * an answer) is closed after this, however much it trickles. */
#define TM_API_IDLE_TIMEOUT_MS_DEFAULT 30000
/* Connections served at once; a new one past the cap takes the slot of the
 * oldest idle or slow connection. */
#define TM_API_MAX_CONNS_DEFAULT 64
/* Of those, at most this many from non-loopback addresses, so that at least
 * MAX_CONNS - REMOTE_MAX_CONNS slots stay for the POS on the till itself. */
#define TM_API_REMOTE_MAX_CONNS_DEFAULT 48
/* And at most this many from any one non-loopback address. */
#define TM_API_REMOTE_PER_IP_DEFAULT 8
/* Bytes of a bearer token, without the NUL. */
#define TM_API_TOKEN_MIN 16
#define TM_API_TOKEN_MAX 255

typedef struct {
    const char *addr; /* numeric IPv4 or IPv6 address */
    uint16_t port;    /* 0 picks a free port (see tm_api_port) */
    size_t max_body;  /* 0: TM_API_MAX_BODY_DEFAULT */
    /* 0 for any of these: the _DEFAULT above. */
    uint32_t request_timeout_ms, idle_timeout_ms;
    unsigned max_conns, remote_max_conns, remote_per_ip;
    /*
     * NULL or "": clients on other hosts are refused at connect. Else every
     * request from a non-loopback address must carry "Authorization: Bearer
     * <token>" (401 otherwise). Loopback clients (the POS, the CLI) need no
     * token, as a process on the till could reach a loopback-only API anyway.
     */
    const char *token;
    /*
     * A listener for Prometheus on the LAN: only GET/HEAD /metrics, every
     * other path 404 before anything else is looked at; no token, remote
     * clients admitted (within remote_max_conns and remote_per_ip); the
     * same deadlines and caps as the API. Never a write, never a record.
     */
    bool metrics_only;
} tm_api_cfg_t;

/* What the API has had to do to stay available; for tests and metrics. */
typedef struct {
    unsigned open;        /* connections being served */
    unsigned open_remote; /* of those, from non-loopback addresses */
    unsigned in_request;  /* of those, with a request under way */
    uint64_t evicted;     /* closed to make room for a new connection */
    uint64_t timed_out;   /* closed for not finishing a request in time */
    uint64_t refused;     /* remote connections refused at connect */
    size_t body_bytes;    /* memory held for request bodies under way */
} tm_api_stats_t;

/* Binds cfg->addr:port (the daemon refuses non-loopback addresses unless
 * told otherwise). cfg is copied; the token too. */
int tm_api_new(const tm_api_cfg_t *cfg, const tm_api_backend_t *be, const tm_log_t *log,
               tm_api_t **out);
void tm_api_destroy(tm_api_t **self_p);

uint16_t tm_api_port(const tm_api_t *self);
/* A file descriptor to poll for input (MHD's epoll fd). */
int tm_api_fd(const tm_api_t *self);
/* Milliseconds until tm_api_run must be called even without input; -1 none. */
int64_t tm_api_timeout_ms(tm_api_t *self);
/* Does whatever work is ready, and closes connections past their
 * deadline; never blocks. */
void tm_api_run(tm_api_t *self);
void tm_api_stats(const tm_api_t *self, tm_api_stats_t *out);

/*
 * Reads a bearer token from path: one line of TM_API_TOKEN_MIN to
 * TM_API_TOKEN_MAX printable ASCII bytes without spaces, in a file that
 * group and others cannot read. Problems are logged with the path and what
 * to do. TM_OK, TM_EPERM (mode), TM_ECONFIG (content), TM_EIO.
 */
int tm_api_read_token(const char *path, const tm_log_t *log, char *buf, size_t bufsz);

#endif
