/*
 * api_reply.h - the request record and the answers of the local API, shared
 * by api.c (the request's life) and api_routes.c (the handlers). Private to
 * tm_api. The bottom of the module: api_reply.c calls nothing else of it,
 * so that the handlers can answer without knowing the MHD daemon (one-way:
 * api.c -> api_routes.c -> api_reply.c; api.c -> api_conn.c).
 */
#ifndef TM_API_REPLY_H
#define TM_API_REPLY_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Longest id taken from a path; real ids are far shorter (UUID: 36). */
#define TM_API_ID_MAX 128

#define TM_API_CT_JSON "application/json"
#define TM_API_CT_PROM "text/plain; version=0.0.4"

typedef enum {
    R_NONE,
    R_SALES,
    R_SALE,
    R_CUSTOMER,
    R_STATUS,
    R_METRICS,
    R_PARKED,
    R_RETRY,
    R_PRODUCTS,
    R_PRODUCT
} tm_api_route_t;

/* Per-request state, MHD's con_cls; made on the first call for a request,
 * freed when MHD reports it completed. */
typedef struct {
    tm_api_route_t route;
    char id[TM_API_ID_MAX + 1]; /* path id, already percent-decoded by MHD */
    bool id_too_long;
    char method[12]; /* for the log line */
    char path[96];   /* for the log line, unprintables replaced */
    const char *err; /* error code word of the answer, for the log */
    unsigned status;
    struct timespec t0;
    char *body; /* NUL-terminated; len excludes the NUL */
    size_t len, cap;
    size_t limit; /* cap never grows past this: declared length + 1, or max_body + 1 */
    size_t discarded;
    bool too_large;
} tm_api_req_t;

/* Strict unsigned decimal: digits only, no sign, no spaces, no overflow. */
bool tm_api__parse_u64(const char *s, uint64_t *out);

/*
 * Queues an answer. body is malloc'd text and ownership passes here; NULL
 * means building it ran out of memory, which becomes a 500. hname/hval add
 * one more header (Location, Allow) when not NULL.
 */
enum MHD_Result tm_api__reply(struct MHD_Connection *conn, tm_api_req_t *req, unsigned status,
                              const char *ctype, char *body, const char *hname, const char *hval);

/* {"error":code,"message":...}, with an optional extra header. */
enum MHD_Result tm_api__error_hdr(struct MHD_Connection *conn, tm_api_req_t *req, unsigned status,
                                  const char *code, const char *hname, const char *hval,
                                  const char *fmt, ...) __attribute__((format(printf, 7, 8)));

#define tm_api__error(conn, req, status, code, ...)                                                \
    tm_api__error_hdr((conn), (req), (status), (code), NULL, NULL, __VA_ARGS__)

#endif
