/*
 * tm_discover.h - what the daemon does with mDNS announcements
 * (node/discover.c): a till of our store whose key we trust becomes a peer;
 * others are shown in status and never connected.
 *
 * The daemon owns the parts named in tm_discover_ctx_t and the tm_disc_t
 * actor (discovery/tm_disc.h); discover.c acts on them and never calls back
 * into the daemon (daemon.c -> discover.c, not the other way: issue 14).
 */
#ifndef TM_DISCOVER_H
#define TM_DISCOVER_H

#include "tm_config.h"
#include "tm_disc.h"
#include "tm_engine.h"
#include "tm_mesh.h"
#include "tm_store.h"

/* The daemon's parts as discovery sees them; all owned by the daemon. */
typedef struct {
    const tm_config_t *cfg;
    tm_log_t *log;
    tm_store_t *store;
    tm_mesh_t *mesh;
    tm_engine_t *engine;
    tm_outbox_t *outbox;   /* connects to new peers, delivered on the mesh */
    const char *advertise; /* our mesh endpoint: the port we announce */
} tm_discover_ctx_t;

/* Starts publishing and browsing; *out stays NULL when [discovery] mdns =
 * no (TM_OK) or on an error (logged). The caller owns *out. */
int tm_discover_start(const tm_discover_ctx_t *c, tm_disc_t **out);
/* Acts on every announcement waiting in disc (NULL: nothing to do) and
 * delivers the connects it queued. */
void tm_discover_events(const tm_discover_ctx_t *c, tm_disc_t *disc);

#endif
