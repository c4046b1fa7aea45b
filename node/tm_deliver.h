/*
 * tm_deliver.h - carries out what the engine queued in an outbox (frames to
 * send, peers to connect) on the mesh (node/deliver.c). Shared by the daemon
 * loop and the parts that make the engine queue work (backend: a local
 * write is pushed at once), so that none of them calls back into daemon.c.
 */
#ifndef TM_DELIVER_H
#define TM_DELIVER_H

#include "tm_engine.h"
#include "tm_mesh.h"

/* Sends and connects whatever is in outbox, then empties it. */
void tm_deliver(tm_mesh_t *mesh, tm_outbox_t *outbox);

#endif
