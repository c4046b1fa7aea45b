/* engine_elect.c - our uplink, what peers advertise, and the forwarder
 * election run over them (the rules are in tm_elect.h). */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "tm_plant.h"

static const char *const uplink_names[] = {"unknown", "up", "down"};

const char *tm_uplink_name(tm_uplink_t u)
{
    return (unsigned)u < 3 ? uplink_names[u] : "?";
}

bool tm_engine__self_complete(const tm_engine_t *e)
{
    for (size_t i = 0; i < e->n_peers; i++)
        if (e->peers[i].info.state == TM_PEER_ALIVE && tm_vv_ahead(&e->peers[i].vv, &e->vv) > 0)
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

/* Whether node is passed over now: its pass runs until until_ms, and on
 * while it still claims the role (a stuck till that keeps claiming is not
 * let back in by the clock alone). */
static bool passed_over(tm_engine_t *e, const uint8_t node[TM_NODE_ID_LEN], bool claims,
                        uint64_t now_ms)
{
    for (size_t i = 0; i < e->n_passed; i++) {
        if (memcmp(e->passed[i].node, node, TM_NODE_ID_LEN) != 0)
            continue;
        if (now_ms < e->passed[i].until_ms || claims)
            return true;
        tm_log_info(e->log, "forwarder %s is a candidate again", name_of(e, node));
        e->passed[i] = e->passed[--e->n_passed];
        return false;
    }
    return false;
}

static void pass_over(tm_engine_t *e, const uint8_t node[TM_NODE_ID_LEN], uint64_t until_ms)
{
    size_t i = 0;
    while (i < e->n_passed && memcmp(e->passed[i].node, node, TM_NODE_ID_LEN) != 0)
        i++;
    if (i == e->n_passed) {
        if (e->n_passed == sizeof e->passed / sizeof e->passed[0])
            i = 0; /* full: the oldest entry goes (more stuck tills than that is moot) */
        else
            e->n_passed++;
    }
    memcpy(e->passed[i].node, node, TM_NODE_ID_LEN);
    e->passed[i].until_ms = until_ms;
}

void tm_engine__watch_forwarder(tm_engine_t *e, uint64_t now_ms)
{
    tm_backlog_t bl;
    uint32_t stall = e->cfg.forwarder_stall_ms;
    if (!stall || !e->elect.have) {
        e->watch.have = false;
        return;
    }
    if (now_ms < e->watch.next_ms)
        return;
    e->watch.next_ms = now_ms + e->cfg.heartbeat_ms;
    if (tm_store_backlog(e->store, &bl) != TM_OK)
        return;
    bool same = e->watch.have && memcmp(e->watch.node, e->elect.node_id, TM_NODE_ID_LEN) == 0;
    if (!same || bl.unsent == 0 || bl.oldest_hlc != e->watch.oldest_hlc) {
        /* A new forwarder, nothing to send, or the oldest sale went out. */
        e->watch.have = true;
        memcpy(e->watch.node, e->elect.node_id, TM_NODE_ID_LEN);
        e->watch.oldest_hlc = bl.oldest_hlc;
        e->watch.since_ms = now_ms;
        return;
    }
    if (now_ms - e->watch.since_ms < stall)
        return;
    e->stats.forwarders_passed_over++;
    tm_log_warn(e->log,
                "forwarder %s%s has not sent the oldest of %llu waiting sale(s) for %llu ms: "
                "passed over for at least %llu ms (an uplink that says up but does not work, "
                "or a till that does not forward)",
                name_of(e, e->elect.node_id),
                memcmp(e->elect.node_id, e->node_id, TM_NODE_ID_LEN) == 0 ? " (us)" : "",
                (unsigned long long)bl.unsent, (unsigned long long)(now_ms - e->watch.since_ms),
                4ULL * stall);
    pass_over(e, e->elect.node_id, now_ms + 4ULL * stall);
    e->watch.have = false;
}

bool tm_engine__forwarder_heard(const tm_engine_t *e, uint64_t now_ms, uint32_t *ms)
{
    *ms = 0;
    if (!e->elect.have)
        return false;
    if (memcmp(e->elect.node_id, e->node_id, TM_NODE_ID_LEN) == 0)
        return true;
    for (size_t i = 0; i < e->n_peers; i++) {
        const tm_peer_info_t *p = &e->peers[i].info;
        if (!p->have_node_id || !p->heard ||
            memcmp(p->node_id, e->elect.node_id, TM_NODE_ID_LEN) != 0)
            continue;
        uint64_t age = now_ms > p->last_seen_ms ? now_ms - p->last_seen_ms : 0;
        *ms = age > UINT32_MAX ? UINT32_MAX : (uint32_t)age;
        return true;
    }
    return false;
}

uint64_t tm_engine__peer_timeout(const tm_engine_t *e, const tm_peer_info_t *p)
{
    uint64_t ours = e->cfg.peer_timeout_ms, theirs = 3 * (uint64_t)p->heartbeat_ms;
    if (TM_PLANTED("own-peer-timeout")) /* as before heartbeats said their interval */
        return ours;
    return theirs > ours ? theirs : ours;
}

/* Whether a peer we no longer hear (state down) is heard by another live
 * peer within the peer timeout: on a lossy LAN, TCP's retransmission
 * back-off holds one till's heartbeats for longer than the peer timeout now
 * and then (20 % loss: every few seconds somewhere in the store), and the
 * standby took the role from a forwarder that every other till still
 * heard. A till that is really gone (power, cable, kill -9) is heard by
 * nobody and times out as before, at most a heartbeat later. */
static bool heard_by_others(const tm_engine_t *e, const tm_peer_info_t *x, uint64_t now_ms)
{
    for (size_t i = 0; i < e->n_peers; i++) {
        const tm_peer_info_t *q = &e->peers[i].info;
        if (q == x || q->state != TM_PEER_ALIVE || !q->fwd_heard ||
            memcmp(q->fwd_node, x->node_id, TM_NODE_ID_LEN) != 0)
            continue;
        if (now_ms < q->fwd_heard_at_ms + tm_engine__peer_timeout(e, x))
            return true;
    }
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
    me->passed_over = passed_over(e, e->node_id, me->claims, now_ms);
    for (size_t i = 0; i < e->n_peers; i++) {
        const tm_peer_info_t *p = &e->peers[i].info;
        if (!p->have_node_id || p->state == TM_PEER_FOREIGN || p->state == TM_PEER_UNTRUSTED ||
            p->state == TM_PEER_REVOKED)
            continue;
        tm_elect_node_t *x = &nodes[n++];
        memcpy(x->node_id, p->node_id, TM_NODE_ID_LEN);
        x->alive = p->state == TM_PEER_ALIVE ||
                   (p->state == TM_PEER_DOWN && p->claims && heard_by_others(e, p, now_ms));
        x->uplink_up = p->uplink_up;
        x->priority = p->priority;
        x->complete = p->complete;
        x->claims = p->claims;
        x->epoch = p->epoch;
        x->passed_over = passed_over(e, p->node_id, p->claims, now_ms);
        if (x->alive && x->uplink_up && !tm_elect_plausible(x)) {
            e->stats.claims_implausible++;
            if (e->stats.claims_implausible == 1 || e->stats.claims_implausible % 1000 == 0)
                tm_log_warn(e->log,
                            "peer %s advertises priority %u and epoch %llu, outside the "
                            "configured range: not a forwarder candidate (%llu such heartbeats)",
                            p->name, x->priority, (unsigned long long)x->epoch,
                            (unsigned long long)e->stats.claims_implausible);
        }
    }
    tm_elect_result_t r;
    tm_elect(nodes, n, &e->elect, &r);
    uint8_t sb[TM_NODE_ID_LEN];
    bool have_sb = tm_elect_standby(nodes, n, &r, sb);
    free(nodes);
    bool was_standby = e->have_standby && memcmp(e->standby, e->node_id, TM_NODE_ID_LEN) == 0;
    if (have_sb != e->have_standby || (have_sb && memcmp(sb, e->standby, TM_NODE_ID_LEN) != 0)) {
        if (have_sb)
            tm_log_info(e->log, "standby: %s%s", name_of(e, sb),
                        memcmp(sb, e->node_id, TM_NODE_ID_LEN) == 0 ? " - that is us" : "");
        else
            tm_log_info(e->log, "standby: none (no other live till)");
        e->have_standby = have_sb;
        memcpy(e->standby, sb, TM_NODE_ID_LEN);
    }
    bool changed = r.have != e->elect.have || r.epoch != e->elect.epoch ||
                   (r.have && memcmp(r.node_id, e->elect.node_id, TM_NODE_ID_LEN) != 0);
    e->elect.epoch_seen = r.epoch_seen;
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
    if (is_self && !was_self) {
        e->claim_since_ms = now_ms;
        /* The settling wait is for tills that chose themselves from
         * different views. A standby that takes over was everyone's next in
         * line (the same heartbeats name the same standby), so it starts at
         * once: that wait was most of a hand-over after a silent cut. */
        e->claim_at_once = was_standby && e->elect.have;
    }
    e->elect = r;
    e->next_heartbeat = now_ms; /* tell everyone at once */
}

void tm_engine_link_up(tm_engine_t *e, const char *name, uint64_t now_ms)
{
    /* What we sent it before was dropped (libzmq queues nothing for a link
     * without a finished handshake): our hello, or the answer to its hello.
     * The round goes out now instead of at the next heartbeat, so that a
     * till back from a day off starts its catch-up as soon as it can. A
     * link comes up at a start, a peer's restart or a repaired cable: an
     * extra round then is cheap. */
    for (size_t i = 0; i < e->n_peers; i++)
        if (strcmp(e->peers[i].info.name, name) == 0) {
            e->next_heartbeat = now_ms;
            e->stats.links_greeted++;
            return;
        }
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
    out->active_from_ms = e->claim_since_ms + (e->claim_at_once ? 0 : e->cfg.heartbeat_ms);
    if (e->have_standby) {
        out->have_standby = true;
        tm_strlcpy(out->standby_name, name_of(e, e->standby), sizeof out->standby_name);
        out->standby_is_self = memcmp(e->standby, e->node_id, TM_NODE_ID_LEN) == 0;
    }
}

bool tm_engine_probe_fast(const tm_engine_t *e)
{
    if (!e->elect.have && !e->have_standby)
        return true; /* nothing settled yet (start-up): everyone finds out */
    if (e->elect.have && memcmp(e->elect.node_id, e->node_id, TM_NODE_ID_LEN) == 0)
        return true;
    return e->have_standby && memcmp(e->standby, e->node_id, TM_NODE_ID_LEN) == 0;
}
