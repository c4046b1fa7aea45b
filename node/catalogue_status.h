/*
 * catalogue_status.h - the catalogue in GET /v1/status and /metrics
 * (node/catalogue_status.c), for the backend. Reads the store and the
 * forwarder's counters; calls nothing of the backend or the daemon.
 */
#ifndef TM_CATALOGUE_STATUS_H
#define TM_CATALOGUE_STATUS_H

#include <stdio.h>

#include "tm_backend.h"

struct json_t;

/* The "catalogue" object of GET /v1/status (docs/api.md). */
struct json_t *tm_catstatus_json(const tm_backend_ctx_t *b);
/* The tillmesh_catalogue_* metrics. */
void tm_catstatus_metrics(const tm_backend_ctx_t *b, FILE *f);
/* A peer's catalogue as its heartbeats say (peers[] in status). */
void tm_catstatus_peer(const tm_backend_ctx_t *b, struct json_t *jp, const tm_peer_info_t *p);

#endif
