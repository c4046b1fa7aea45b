/* discover.c - what the daemon does with mDNS announcements: a till of our
 * store whose key we trust becomes a peer (connected); an untrusted key or
 * another store is shown in status and never connected. Liveness still
 * comes from mesh heartbeats: mDNS has no goodbye when a cable is pulled
 * (a vanished till is withdrawn only when its record expires, ~2 minutes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm_deliver.h"
#include "tm_discover.h"
#include "tm_now.h"
#include "tm_wire.h"

static uint16_t port_of(const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    return colon ? (uint16_t)strtoul(colon + 1, NULL, 10) : 0;
}

int tm_discover_start(const tm_discover_ctx_t *c, tm_disc_t **out)
{
    if (!c->cfg->mdns) {
        tm_log_info(c->log, "mDNS discovery off ([discovery] mdns = no): static peers only");
        return TM_OK;
    }
    uint8_t id[TM_NODE_ID_LEN];
    char hex[TM_NODE_HEX_LEN], fp[TM_DISC_FP_HEX];
    tm_store_node_id(c->store, id);
    tm_hex(id, TM_NODE_ID_LEN, hex);
    tm_disc_fingerprint(tm_mesh_public_key(c->mesh), fp);
    tm_disc_cfg_t dc = {
        .name = c->cfg->name,
        .store_id = c->cfg->store_id,
        .node_id_hex = hex,
        .key_fp = fp,
        .port = port_of(c->advertise),
        .proto_min = TM_PROTO_VERSION_MIN,
        .proto_max = TM_PROTO_VERSION_MAX,
    };
    int rc = tm_disc_new(&dc, c->log, out);
    if (rc)
        tm_log_error(c->log, "mDNS discovery could not start: %s", tm_strerror(rc));
    return rc;
}

/* The trusted key with this fingerprint, or NULL. */
static const char *trusted_name(const tm_discover_ctx_t *c, const char *fp)
{
    const char *name;
    const uint8_t *pub;
    char f[TM_DISC_FP_HEX];
    for (size_t i = 0; tm_mesh_trusted_at(c->mesh, i, &name, &pub) == TM_OK; i++) {
        tm_disc_fingerprint(pub, f);
        if (strcmp(f, fp) == 0)
            return name;
    }
    return NULL;
}

static void on_up(const tm_discover_ctx_t *c, const tm_disc_event_t *ev, uint64_t wall)
{
    const char *name = trusted_name(c, ev->key_fp);
    char alias[TM_PEER_NAME_MAX];
    if (!name) {
        /* Named by fingerprint, so an untrusted till calling itself
         * "till-2" cannot take the place of the real till-2 in status. */
        snprintf(alias, sizeof alias, "untrusted:%s", ev->key_fp);
        if (tm_engine_note_peer(c->engine, alias, ev->endpoint, TM_PEER_UNTRUSTED, ev->store_id) ==
            TM_OK)
            tm_engine_peer_announced(c->engine, alias, ev->addresses, true, wall);
        return;
    }
    if (strcmp(ev->store_id, c->cfg->store_id) != 0) {
        (void)tm_engine_note_peer(c->engine, name, ev->endpoint, TM_PEER_FOREIGN, ev->store_id);
    } else if (ev->proto_max < TM_PROTO_VERSION_MIN || ev->proto_min > TM_PROTO_VERSION_MAX) {
        tm_log_warn(c->log, "till %s speaks protocol %u-%u, we speak %d-%d: not connecting", name,
                    ev->proto_min, ev->proto_max, TM_PROTO_VERSION_MIN, TM_PROTO_VERSION_MAX);
        return;
    } else {
        (void)tm_engine_add_peer(c->engine, name, ev->endpoint, TM_SRC_MDNS, c->outbox);
    }
    tm_engine_peer_announced(c->engine, name, ev->addresses, true, wall);
}

void tm_discover_events(const tm_discover_ctx_t *c, tm_disc_t *disc)
{
    tm_disc_event_t ev;
    if (!disc)
        return;
    while (tm_disc_next(disc, &ev) == 1) {
        uint64_t wall = tm_now_wall_ms();
        if (ev.kind == TM_DISC_UP) {
            on_up(c, &ev, wall);
        } else {
            const char *name = trusted_name(c, ev.key_fp);
            char alias[TM_PEER_NAME_MAX];
            if (!name) {
                snprintf(alias, sizeof alias, "untrusted:%s", ev.key_fp);
                name = alias;
            }
            tm_engine_peer_announced(c->engine, name, NULL, false, wall);
        }
    }
    tm_deliver(c->mesh, c->outbox);
}
