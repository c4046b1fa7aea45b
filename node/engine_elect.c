/* engine_elect.c - our uplink, what peers advertise, and the forwarder
 * election run over them (the rules are in tm_elect.h). */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

static const char *const uplink_names[] = {"unknown", "up", "down"};

const char *tm_uplink_name(tm_uplink_t u)
{
    return (unsigned)u < 3 ? uplink_names[u] : "?";
}

bool tm_engine__self_complete(const tm_engine_t *e)
{
    for (size_t i = 0; i < e->n_peers; i++)
        if (e->peers[i].info.state == TM_PEER_ALIVE &&
            tm_engine__sum_ahead(&e->peers[i].vv, &e->vv) > 0)
            return false;
    return true;
}

static const char *name_of(const tm_engine_t *e, const uint8_t id[TM_NODE_ID_LEN])
{
    if (memcmp(id, e->node_id, TM_NODE_ID_LEN) == 0)
        return e->name;
    for (size_t i = 0; i < e->n_peers; i++)
        if (e->peers[i].info.have_node_id &&
            memcmp(e->peers[i].info.node_id, id, TM_NODE_ID_LEN) == 0)
            return e->peers[i].info.name;
    return "";
}

/* Right after start we have heard nobody yet; electing then would make
 * every till with an uplink its own forwarder for a moment (safe, but it
 * sends the same sales twice). So wait until every known peer has been heard
 * from, or a peer timeout has passed. */
static bool in_startup_grace(tm_engine_t *e, uint64_t now_ms)
{
    if (!e->started) {
        e->started = true;
        e->started_ms = now_ms;
    }
    if (now_ms - e->started_ms >= e->cfg.peer_timeout_ms)
        return false;
    for (size_t i = 0; i < e->n_peers; i++)
        if (e->peers[i].info.state == TM_PEER_CONNECTING)
            return true;
    return false;
}

void tm_engine__elect(tm_engine_t *e, uint64_t now_ms)
{
    if (in_startup_grace(e, now_ms))
        return;
    tm_elect_node_t *nodes = calloc(e->n_peers + 1, sizeof *nodes);
    if (!nodes)
        return; /* keep the previous result; the next tick retries */
    size_t n = 0;
    tm_elect_node_t *me = &nodes[n++];
    memcpy(me->node_id, e->node_id, TM_NODE_ID_LEN);
    me->alive = true;
    me->uplink_up = e->uplink == TM_UPLINK_UP;
    me->priority = e->cfg.priority;
    me->complete = tm_engine__self_complete(e);
    me->claims = e->elect.have && memcmp(e->elect.node_id, e->node_id, TM_NODE_ID_LEN) == 0;
    me->epoch = me->claims ? e->elect.epoch : 0;
    for (size_t i = 0; i < e->n_peers; i++) {
        const tm_peer_info_t *p = &e->peers[i].info;
        if (!p->have_node_id || p->state == TM_PEER_FOREIGN || p->state == TM_PEER_UNTRUSTED ||
            p->state == TM_PEER_REVOKED)
            continue;
        tm_elect_node_t *x = &nodes[n++];
        memcpy(x->node_id, p->node_id, TM_NODE_ID_LEN);
        x->alive = p->state == TM_PEER_ALIVE;
        x->uplink_up = p->uplink_up;
        x->priority = p->priority;
        x->complete = p->complete;
        x->claims = p->claims;
        x->epoch = p->epoch;
    }
    tm_elect_result_t r;
    tm_elect(nodes, n, &e->elect, &r);
    free(nodes);
    bool changed = r.have != e->elect.have || r.epoch != e->elect.epoch ||
                   (r.have && memcmp(r.node_id, e->elect.node_id, TM_NODE_ID_LEN) != 0);
    if (!changed)
        return;
    if (r.have)
        tm_log_info(e->log, "forwarder: %s (epoch %llu)%s", name_of(e, r.node_id),
                    (unsigned long long)r.epoch,
                    memcmp(r.node_id, e->node_id, TM_NODE_ID_LEN) == 0 ? " - that is us" : "");
    else
        tm_log_info(e->log, "forwarder: none (no live till has a working uplink)");
    bool was_self = e->elect.have && memcmp(e->elect.node_id, e->node_id, TM_NODE_ID_LEN) == 0;
    bool is_self = r.have && memcmp(r.node_id, e->node_id, TM_NODE_ID_LEN) == 0;
    if (is_self && !was_self)
        e->claim_since_ms = now_ms;
    e->elect = r;
    e->next_heartbeat = now_ms; /* tell everyone at once */
}

void tm_engine_set_uplink(tm_engine_t *e, tm_uplink_t state, uint64_t since_wall_ms,
                          uint64_t now_ms)
{
    if (state == e->uplink)
        return;
    tm_log_info(e->log, "uplink: %s -> %s", tm_uplink_name(e->uplink), tm_uplink_name(state));
    e->uplink = state;
    e->uplink_since = since_wall_ms;
    e->next_heartbeat = now_ms;
    tm_engine__elect(e, now_ms);
}

void tm_engine_forwarder(const tm_engine_t *e, tm_forwarder_t *out)
{
    memset(out, 0, sizeof *out);
    out->have = e->elect.have;
    out->epoch = e->elect.epoch;
    if (!e->elect.have)
        return;
    memcpy(out->node_id, e->elect.node_id, TM_NODE_ID_LEN);
    tm_strlcpy(out->name, name_of(e, e->elect.node_id), sizeof out->name);
    out->is_self = memcmp(e->elect.node_id, e->node_id, TM_NODE_ID_LEN) == 0;
    out->active_from_ms = e->claim_since_ms + e->cfg.heartbeat_ms;
}
