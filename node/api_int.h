/*
 * api_int.h - struct tm_api and the connection table, shared by node/api.c
 * (the MHD daemon and the request's life) and node/api_conn.c (deadlines,
 * caps, the accept policy), whose functions are declared here. Private to
 * tm_api. api.c calls api_conn.c, never the other way; the handlers
 * (api_routes.h) do not see this struct at all.
 */
#ifndef TM_API_INT_H
#define TM_API_INT_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "api_routes.h"
#include "tm_api.h"

/*
 * One open connection, MHD's socket context. Its phase is "waiting" (no
 * request line yet: just opened, or kept alive after an answer) or "in a
 * request" (from the request line until the answer is sent); each phase
 * has a deadline counted from its start, which trickled bytes do not move.
 */
typedef struct tm_api_conn {
    struct tm_api_conn *prev, *next;
    struct MHD_Connection *mhd;
    int fd;
    bool loopback;
    bool in_request;
    bool closing;      /* shut down by us; MHD reaps it on its next turn */
    uint64_t since_ms; /* start of the current phase (monotonic): its deadline */
    /* When the connection opened or last finished a request: its place in
     * the eviction order. Not moved by a request line, or a connection that
     * MHD has accepted but not yet read would look older than the flood
     * that it arrived behind. */
    uint64_t cycle_ms;
    int family; /* AF_INET / AF_INET6, for the per-address cap */
    uint8_t ip[16];
    char addr[48]; /* for log lines */
} tm_api_conn_t;

struct tm_api {
    struct MHD_Daemon *mhd;
    tm_api_backend_t be;
    tm_api_routes_t routes; /* what the handlers see: &be, log, max_body */
    const tm_log_t *log;    /* owned by the caller; must outlive us */
    size_t max_body;
    uint16_t port;
    int fd;
    uint32_t request_timeout_ms, idle_timeout_ms;
    unsigned max_conns, remote_max_conns, remote_per_ip;
    char token[TM_API_TOKEN_MAX + 1]; /* "" = no remote clients */
    bool metrics_only;                /* tm_api_cfg_t.metrics_only */
    tm_api_conn_t *conns;             /* every connection MHD holds */
    tm_api_stats_t stats;
    /* Closings not yet logged: one summary line at most every few seconds,
     * so that a flood cannot flood the log too. */
    uint64_t log_evicted, log_timed_out, log_refused, log_at_ms;
    char log_last_addr[48];
};

/* ---- api_conn.c -------------------------------------------------------- */

uint64_t tm_api__now_ms(void);
/* Our record of conn (its socket context); NULL if it could not be made. */
tm_api_conn_t *tm_api__conn_of(struct MHD_Connection *conn);
/* When c's current phase must be over (monotonic ms). */
uint64_t tm_api__deadline(const tm_api_t *self, const tm_api_conn_t *c);
/* MHD_OPTION_NOTIFY_CONNECTION: tracks c, applies the caps on STARTED. */
void tm_api__notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
/* MHD's accept policy: remote clients only with a token, per-address cap. */
enum MHD_Result tm_api__accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/* MHD_OPTION_URI_LOG_CALLBACK: a request line arrived, its deadline starts. */
void *tm_api__uri_log(void *cls, const char *uri, struct MHD_Connection *conn);
/* Closes every connection past its deadline; returns how many. */
unsigned tm_api__sweep(tm_api_t *self, uint64_t now);
/* Logs what was closed since the last summary, at most every 10 s. */
void tm_api__log_closings(tm_api_t *self, uint64_t now);
/* NULL if the client may go on, else the message of the 401. */
const char *tm_api__auth_problem(tm_api_t *self, struct MHD_Connection *conn);

#endif
