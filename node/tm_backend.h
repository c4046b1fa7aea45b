/*
 * tm_backend.h - what the local API asks of the node (node/backend.c):
 * durable local writes (stamped, stored, pushed to peers) and the status,
 * metrics and parked-sales views.
 *
 * The daemon owns every part named here and lends them through a
 * tm_backend_ctx_t that lives as long as the API does; the backend calls
 * the parts (store, engine, mesh, ERP, forwarder) and never back into the
 * daemon (daemon.c -> backend.c, not the other way: issue 14).
 */
#ifndef TM_BACKEND_H
#define TM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "tm_api.h"
#include "tm_config.h"
#include "tm_engine.h"
#include "tm_erp.h"
#include "tm_fwd.h"
#include "tm_mesh.h"
#include "tm_store.h"

/* What the daemon learns about the store's file and the disk, for the
 * status and the metrics. Written by daemon.c (the store's file watch, a
 * corrupt store moved aside at start) and housekeep.c (disk, retention). */
typedef struct {
    uint64_t disk_free;       /* bytes free for data_dir, last read */
    uint64_t compacted_total; /* sales forgotten by retention since start */
    char store_path[600];
    uint64_t store_lost_wall_ms; /* when the store was found lost; 0 if not lost */
    uint64_t store_restored;     /* times it was written back while running */
    char store_restore_error[256];
    /* A corrupt store moved aside at start (store_healed). */
    bool store_healed;
    char store_corrupt_dir[700];
    tm_salvage_t salvage;
} tm_node_health_t;

/* The daemon's parts as the backend sees them; all owned by the daemon. */
typedef struct {
    const tm_config_t *cfg;
    tm_log_t *log;
    tm_store_t *store;
    tm_engine_t *engine;
    tm_mesh_t *mesh;
    tm_erp_t *erp;        /* NULL when no [erp] url is configured */
    tm_fwd_t *fwd;        /* NULL when no [erp] url is configured */
    tm_api_t *const *api; /* the local API, for its counters; made after us */
    tm_outbox_t *outbox;  /* a write's pushes, delivered before it is answered */
    const char *advertise;
    uint64_t started_ms; /* monotonic */
    const tm_node_health_t *health;
} tm_backend_ctx_t;

/* Fills be with the backend's functions over ctx (be->ctx = ctx), for
 * tm_api_new. ctx must outlive the API. */
void tm_backend_api(tm_backend_ctx_t *ctx, tm_api_backend_t *be);

#endif
