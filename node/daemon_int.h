/* daemon_int.h - the tm_daemon struct, shared by daemon.c (loop) and
 * backend.c (what the HTTP API asks of the node). Not a public header. */
#ifndef TM_DAEMON_INT_H
#define TM_DAEMON_INT_H

#include <stdbool.h>
#include <stdio.h>

#include "tm_api.h"
#include "tm_daemon.h"
#include "tm_disc.h"
#include "tm_engine.h"
#include "tm_erp.h"
#include "tm_fwd.h"
#include "tm_mesh.h"
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
    /* housekeep.c: disk watermark and retention. */
    uint64_t disk_next, compact_next; /* monotonic deadlines */
    uint64_t disk_free;               /* bytes free for data_dir, last read */
    bool compact_more;                /* a full batch was compacted: more is due */
    uint64_t compacted_pass, compacted_total;
    /* The store's file watch (daemon.c). */
    char store_path[600];
    uint64_t store_check_at;     /* monotonic ms of the next check */
    uint64_t store_lost_wall_ms; /* when the store was found lost; 0 if not lost */
    uint64_t store_restored;     /* times it was written back while running */
    char store_restore_error[256];
    uint64_t store_restore_logged_ms;
    /* A corrupt store moved aside at start (store_healed). */
    bool store_healed;
    char store_corrupt_dir[700];
    tm_salvage_t salvage;
    /* notify.c: systemd's notification socket. */
    bool sd_on, sd_warned;         /* NOTIFY_SOCKET set; a send failed once */
    uint64_t wd_every_ms, wd_next; /* watchdog pings; 0: not asked for */
    uint64_t sd_status_next;       /* monotonic ms of the next STATUS check */
    char sd_status[200];           /* the STATUS line last sent */
};

uint64_t tm_daemon_mono_ms(void);
uint64_t tm_daemon_wall_ms(void);
/* Sends and connects whatever the engine queued. */
void tm_daemon_flush(tm_daemon_t *d);

/* discover.c */
int tm_daemon_start_disc(tm_daemon_t *d);
void tm_daemon_disc_events(tm_daemon_t *d);

/* housekeep.c */
void tm_daemon_housekeep(tm_daemon_t *d, uint64_t now);
long tm_daemon_housekeep_timeout(const tm_daemon_t *d, uint64_t now);
/* daemon.c: the "store" object of GET /v1/status (docs/api.md). */
struct json_t;
struct json_t *tm_daemon_store_json(tm_daemon_t *d);
/* backend.c: a wall time as RFC 3339 JSON text, or null for 0. */
struct json_t *tm_daemon_wall_json(uint64_t wall_ms);
/* The catalogue in status and metrics (catalogue_status.c). */
struct json_t *tm_daemon_catalogue_json(tm_daemon_t *d);
void tm_daemon_catalogue_metrics(tm_daemon_t *d, FILE *f);
/* A peer's catalogue as its heartbeats say (peers[] in status). */
void tm_daemon_catalogue_peer(tm_daemon_t *d, struct json_t *jp, const tm_peer_info_t *p);

/* notify.c: READY, STATUS, WATCHDOG, RELOADING, STOPPING (tm_sd.h). */
void tm_daemon_notify_ready(tm_daemon_t *d);
void tm_daemon_notify_reloading(tm_daemon_t *d);
void tm_daemon_notify_stopping(tm_daemon_t *d);
void tm_daemon_notify_tick(tm_daemon_t *d, uint64_t now);
long tm_daemon_notify_timeout(const tm_daemon_t *d, uint64_t now);
/* "peers 2/3 up; forwarder till-1; backlog 4 (oldest 2m)" */
void tm_daemon_status_line(tm_daemon_t *d, char *buf, size_t n);

/* backend.c */
void tm_daemon_backend(tm_daemon_t *d, tm_api_backend_t *be);

#endif
