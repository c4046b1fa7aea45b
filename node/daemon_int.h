/* daemon_int.h - the tm_daemon struct, shared by daemon.c (the loop) and the
 * two parts of the loop that keep state in it, housekeep.c and notify.c,
 * whose functions are declared here. Not a public header. Calls go one
 * way: daemon.c calls housekeep.c, notify.c, backend.c (tm_backend.h) and
 * discover.c (tm_discover.h); none of them calls daemon.c (issue 14). */
#ifndef TM_DAEMON_INT_H
#define TM_DAEMON_INT_H

#include <stdbool.h>
#include <stdio.h>

#include "tm_api.h"
#include "tm_backend.h"
#include "tm_daemon.h"
#include "tm_deliver.h"
#include "tm_disc.h"
#include "tm_discover.h"
#include "tm_engine.h"
#include "tm_erp.h"
#include "tm_fwd.h"
#include "tm_mesh.h"
#include "tm_now.h"
#include "tm_store.h"

struct tm_daemon {
    tm_config_t cfg;
    char config_path[512];
    tm_log_t *log;
    tm_store_t *store;
    tm_engine_t *engine;
    tm_mesh_t *mesh;
    tm_api_t *api;
    tm_api_t *metrics; /* [node] metrics_listen: GET /metrics only; NULL if unset */
    tm_erp_t *erp;     /* NULL when no [erp] url is configured */
    /* The forwarder epoch last seen by the probe: a change (a hand-over,
     * or nobody can forward) makes every till probe once (tm_erp_probe_once). */
    uint64_t probe_epoch;
    bool probe_fwd;
    tm_fwd_t *fwd;
    tm_disc_t *disc; /* NULL when [discovery] mdns = no */
    tm_outbox_t outbox;
    uint64_t started_ms; /* monotonic */
    char advertise[128];
    uint64_t api_requests_failed_full;
    /* The store's file and the disk as status shows them (tm_backend.h):
     * written here and by housekeep.c, read by the backend. */
    tm_node_health_t health;
    tm_backend_ctx_t backend; /* lent to the API: lives as long as it does */
    /* housekeep.c: disk watermark and retention. */
    uint64_t disk_next, compact_next; /* monotonic deadlines */
    bool compact_more;                /* a full batch was compacted: more is due */
    uint64_t compacted_pass;
    /* The store's file watch (daemon.c). */
    uint64_t store_check_at; /* monotonic ms of the next check */
    uint64_t store_restore_logged_ms;
    /* notify.c: systemd's notification socket. */
    bool sd_on, sd_warned;         /* NOTIFY_SOCKET set; a send failed once */
    uint64_t wd_every_ms, wd_next; /* watchdog pings; 0: not asked for */
    uint64_t sd_status_next;       /* monotonic ms of the next STATUS check */
    char sd_status[200];           /* the STATUS line last sent */
};

/* housekeep.c */
void tm_daemon_housekeep(tm_daemon_t *d, uint64_t now);
long tm_daemon_housekeep_timeout(const tm_daemon_t *d, uint64_t now);
/* notify.c: READY, STATUS, WATCHDOG, RELOADING, STOPPING (tm_sd.h). */
void tm_daemon_notify_ready(tm_daemon_t *d);
void tm_daemon_notify_reloading(tm_daemon_t *d);
void tm_daemon_notify_stopping(tm_daemon_t *d);
void tm_daemon_notify_tick(tm_daemon_t *d, uint64_t now);
long tm_daemon_notify_timeout(const tm_daemon_t *d, uint64_t now);
/* "peers 2/3 up; forwarder till-1; backlog 4 (oldest 2m)" */
void tm_daemon_status_line(tm_daemon_t *d, char *buf, size_t n);

#endif
