/* engine.c - replication engine (functional core; see tm_engine.h). */
#include "tm_engine.h"

#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "tm_plant.h"
#include "tm_sign.h"

static const char *const state_names[] = {"connecting", "alive",     "down",
                                          "foreign",    "untrusted", "revoked"};
static const char *const source_names[] = {"static", "mdns", "learned"};

const char *tm_peer_state_name(tm_peer_state_t s)
{
    return (unsigned)s < 6 ? state_names[s] : "?";
}

const char *tm_peer_source_name(tm_peer_source_t s)
{
    return (unsigned)s < 3 ? source_names[s] : "?";
}

/* ---- outbox ----------------------------------------------------------- */

void tm_outbox_clear(tm_outbox_t *box)
{
    for (size_t i = 0; i < box->n; i++)
        free(box->v[i].frame);
    box->n = 0;
}

void tm_outbox_free(tm_outbox_t *box)
{
    tm_outbox_clear(box);
    free(box->v);
    memset(box, 0, sizeof *box);
}

static tm_out_t *outbox_push(tm_outbox_t *box)
{
    if (box->n == box->cap) {
        size_t cap = box->cap ? 2 * box->cap : 16;
        tm_out_t *v = realloc(box->v, cap * sizeof *v);
        if (!v)
            return NULL;
        box->v = v;
        box->cap = cap;
    }
    tm_out_t *o = &box->v[box->n++];
    memset(o, 0, sizeof *o);
    return o;
}

/* ---- lifecycle -------------------------------------------------------- */

static void cfg_defaults(tm_engine_cfg_t *c)
{
    if (!c->heartbeat_ms)
        c->heartbeat_ms = 500;
    if (!c->peer_timeout_ms)
        c->peer_timeout_ms = 3 * c->heartbeat_ms;
    if (!c->pull_timeout_ms)
        c->pull_timeout_ms = 2000;
    if (!c->batch_max_ops)
        c->batch_max_ops = 1000;
    if (!c->batch_max_bytes)
        c->batch_max_bytes = 1024 * 1024;
    if (!c->hlc_adopt_ms)
        c->hlc_adopt_ms = 60 * 1000;
    if (!c->clock_warn_ms)
        c->clock_warn_ms = 5000;
    if (!c->origin_quota_ops_per_hour)
        c->origin_quota_ops_per_hour = 20000;
}

/* Where the ops we made since we started begin (the restore check of
 * pull_from and check_own_copy): the seq of our origin we hold now, unless
 * the store's mark says an earlier start was never checked by every peer.
 * Then the mark stands: a till restored from a backup that crashed before
 * it noticed would otherwise count the ops it made since the restore as
 * its history, never re-issue them, and stay split from its peers at
 * those seqs (docs/security.md). A mark that cannot be written costs only
 * that case: the till sells on. */
static void own_seq_mark(tm_engine_t *e)
{
    uint64_t held = tm_vv_get(&e->vv, e->node_id), mark = 0;
    bool have = false;
    e->own_seq_at_start = e->held_at_start = held;
    if (TM_PLANTED("no-self-check"))
        return;
    int rc = tm_store_self_check_mark(e->store, &mark, &have);
    if (rc == TM_OK && have && mark <= held) {
        e->own_seq_at_start = mark;
        if (mark < held)
            tm_log_info(e->log,
                        "the peers have not all confirmed this till's ops %llu..%llu (made "
                        "before this start): they are checked again, as ops made since",
                        (unsigned long long)mark + 1, (unsigned long long)held);
        return;
    }
    if (rc == TM_OK)
        rc = tm_store_set_self_check_mark(e->store, &held);
    if (rc)
        tm_log_warn(e->log, "cannot keep the restore check's mark in the store: %s",
                    tm_strerror(rc));
}

/* Every peer has shown us its copies of the ops we made since we started,
 * and none was another op: they are our history, the mark goes. */
static void own_seq_checked(tm_engine_t *e)
{
    if (e->self_check_done)
        return;
    /* Tills of another store, untrusted or revoked ones never answer a
     * pull and hold none of our ops: only our store's tills count. */
    for (size_t i = 0; i < e->n_peers; i++) {
        tm_peer_state_t st = e->peers[i].info.state;
        if (st != TM_PEER_REVOKED && st != TM_PEER_FOREIGN && st != TM_PEER_UNTRUSTED &&
            !e->peers[i].self_checked)
            return;
    }
    e->self_check_done = true;
    int rc = tm_store_set_self_check_mark(e->store, NULL);
    if (rc)
        tm_log_warn(e->log, "cannot clear the restore check's mark in the store: %s",
                    tm_strerror(rc));
    else
        tm_log_debug(e->log, "self-check: every peer holds the ops this till made since seq %llu",
                     (unsigned long long)e->own_seq_at_start);
}

int tm_engine_new(const tm_engine_cfg_t *cfg, tm_store_t *store, const tm_log_t *log,
                  tm_engine_t **out)
{
    *out = NULL;
    if (!cfg->name || !cfg->store_id || !store)
        return TM_EINVAL;
    tm_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return TM_ENOMEM;
    e->cfg = *cfg;
    cfg_defaults(&e->cfg);
    tm_strlcpy(e->name, cfg->name, sizeof e->name);
    tm_strlcpy(e->store_id, cfg->store_id, sizeof e->store_id);
    tm_strlcpy(e->endpoint, cfg->mesh_endpoint ? cfg->mesh_endpoint : "", sizeof e->endpoint);
    e->cfg.name = e->name;
    e->cfg.store_id = e->store_id;
    e->cfg.mesh_endpoint = e->endpoint;
    e->log = log;
    e->store = store;
    tm_store_node_id(store, e->node_id);
    tm_hlc_init(&e->hlc, e->cfg.hlc_adopt_ms);
    /* Never stamp below what we stamped before a restart, even if the wall
     * clock has since gone backwards. */
    uint64_t max_hlc = 0;
    if (tm_store_max_hlc(store, &max_hlc) == TM_OK)
        e->hlc.last = max_hlc;
    e->log = log;
    /* Our own sales name us: a data folder made by a till of another name
     * would have every new sale kept aside as naming the wrong till. */
    int rc = tm_engine__bind_origin(e, e->node_id, e->name);
    if (rc == TM_ECONFLICT) {
        tm_log_error(log, "this data folder belongs to another till name: give this till its old "
                          "name back, or a new data_dir");
        rc = TM_ECONFIG;
    }
    if (rc == TM_OK)
        rc = tm_store_vv(store, &e->vv);
    if (rc) {
        free(e);
        return rc;
    }
    own_seq_mark(e);
    *out = e;
    return TM_OK;
}

void tm_engine_destroy(tm_engine_t **self_p)
{
    tm_engine_t *e = *self_p;
    if (!e)
        return;
    for (size_t i = 0; i < e->n_peers; i++)
        tm_vv_free(&e->peers[i].vv);
    tm_wire_envelope_free(e->pending);
    free(e->quota);
    free(e->keys);
    free(e->peers);
    tm_vv_free(&e->vv);
    free(e);
    *self_p = NULL;
}

/* ---- peers ------------------------------------------------------------ */

static peer_t *find_peer(tm_engine_t *e, const char *name, size_t *idx)
{
    for (size_t i = 0; i < e->n_peers; i++) {
        if (strcmp(e->peers[i].info.name, name) == 0) {
            if (idx)
                *idx = i;
            return &e->peers[i];
        }
    }
    return NULL;
}

static peer_t *new_peer(tm_engine_t *e, const char *name, tm_peer_source_t source)
{
    if (e->n_peers == e->cap_peers) {
        size_t cap = e->cap_peers ? 2 * e->cap_peers : 8;
        peer_t *v = realloc(e->peers, cap * sizeof *v);
        if (!v)
            return NULL;
        e->peers = v;
        e->cap_peers = cap;
    }
    peer_t *p = &e->peers[e->n_peers++];
    memset(p, 0, sizeof *p);
    tm_strlcpy(p->info.name, name, sizeof p->info.name);
    p->info.source = source;
    p->info.state = TM_PEER_CONNECTING;
    return p;
}

static void set_state(tm_engine_t *e, peer_t *p, tm_peer_state_t s, const char *why)
{
    if (p->info.state == s)
        return;
    tm_log_info(e->log, "peer %s: %s -> %s (%s)", p->info.name, tm_peer_state_name(p->info.state),
                tm_peer_state_name(s), why);
    p->info.state = s;
}

/* Removes peer idx, keeping the indices the engine holds right. */
static void remove_peer(tm_engine_t *e, size_t idx)
{
    if (e->pull_busy && e->pull_peer == idx)
        e->pull_busy = false;
    else if (e->pull_busy && e->pull_peer > idx)
        e->pull_peer--;
    if (e->pending && e->pending_idx == idx) {
        tm_wire_envelope_free(e->pending);
        e->pending = NULL;
    } else if (e->pending && e->pending_idx > idx) {
        e->pending_idx--;
    }
    tm_vv_free(&e->peers[idx].vv);
    memmove(&e->peers[idx], &e->peers[idx + 1], (e->n_peers - idx - 1) * sizeof *e->peers);
    e->n_peers--;
}

/* Forgets the least recently seen untrusted entries until at most keep
 * remain. */
static void evict_untrusted(tm_engine_t *e, size_t keep)
{
    for (;;) {
        size_t n = 0, oldest = 0;
        for (size_t i = 0; i < e->n_peers; i++) {
            if (e->peers[i].info.state != TM_PEER_UNTRUSTED)
                continue;
            if (n++ == 0 || e->peers[i].seen_wall_ms < e->peers[oldest].seen_wall_ms)
                oldest = i;
        }
        if (n <= keep)
            return;
        tm_log_info(e->log, "peer %s: forgotten (more than %u untrusted tills announced)",
                    e->peers[oldest].info.name, TM_ENGINE_UNTRUSTED_MAX);
        remove_peer(e, oldest);
    }
}

/* Untrusted entries unannounced for TM_ENGINE_UNTRUSTED_EXPIRE_MS go. */
static void expire_untrusted(tm_engine_t *e, uint64_t wall_ms)
{
    for (size_t i = e->n_peers; i-- > 0;) {
        const peer_t *p = &e->peers[i];
        if (p->info.state == TM_PEER_UNTRUSTED && !p->info.announced &&
            wall_ms - p->seen_wall_ms >= TM_ENGINE_UNTRUSTED_EXPIRE_MS &&
            wall_ms >= p->seen_wall_ms) {
            tm_log_info(e->log, "peer %s: forgotten (untrusted, not announced for %u min)",
                        p->info.name, TM_ENGINE_UNTRUSTED_EXPIRE_MS / 60000);
            remove_peer(e, i);
        }
    }
}

static int queue_connect(tm_outbox_t *out, const peer_t *p)
{
    tm_out_t *o = outbox_push(out);
    if (!o)
        return TM_ENOMEM;
    o->kind = TM_OUT_CONNECT;
    tm_strlcpy(o->peer, p->info.name, sizeof o->peer);
    tm_strlcpy(o->endpoint, p->info.endpoint, sizeof o->endpoint);
    return TM_OK;
}

int tm_engine_add_peer(tm_engine_t *e, const char *name, const char *endpoint,
                       tm_peer_source_t source, tm_outbox_t *out)
{
    if (!name || !*name || strlen(name) >= TM_PEER_NAME_MAX || !endpoint ||
        strlen(endpoint) >= TM_ENDPOINT_MAX)
        return TM_EINVAL;
    if (strcmp(name, e->name) == 0)
        return TM_OK; /* ourselves */
    peer_t *p = find_peer(e, name, NULL);
    if (p && p->info.state == TM_PEER_REVOKED)
        return TM_EPERM; /* until its key is trusted again */
    if (p && strcmp(p->info.endpoint, endpoint) == 0)
        return TM_OK;
    if (!p && !(p = new_peer(e, name, source)))
        return TM_ENOMEM;
    tm_strlcpy(p->info.endpoint, endpoint, sizeof p->info.endpoint);
    tm_log_info(e->log, "peer %s: %s at %s", name, tm_peer_source_name(source), endpoint);
    return queue_connect(out, p);
}

int tm_engine_note_peer(tm_engine_t *e, const char *name, const char *endpoint,
                        tm_peer_state_t state, const char *store_id)
{
    if (!name || !*name || strlen(name) >= TM_PEER_NAME_MAX)
        return TM_EINVAL;
    peer_t *p = find_peer(e, name, NULL);
    if (!p && state == TM_PEER_UNTRUSTED)
        evict_untrusted(e, TM_ENGINE_UNTRUSTED_MAX - 1);
    if (!p && !(p = new_peer(e, name, TM_SRC_MDNS)))
        return TM_ENOMEM;
    if (p->info.state == TM_PEER_REVOKED)
        return TM_OK; /* stays cut off whatever discovery says */
    tm_strlcpy(p->info.endpoint, endpoint ? endpoint : "", sizeof p->info.endpoint);
    if (store_id)
        tm_strlcpy(p->info.store_id, store_id, sizeof p->info.store_id);
    set_state(e, p, state,
              state == TM_PEER_UNTRUSTED ? "key not in trusted keys"
                                         : "announced for another store");
    return TM_OK;
}

void tm_engine_peer_announced(tm_engine_t *e, const char *name, const char *addresses, bool up,
                              uint64_t wall_ms)
{
    peer_t *p = find_peer(e, name, NULL);
    if (!p)
        return;
    p->info.announced = up;
    p->seen_wall_ms = wall_ms;
    if (up) {
        p->info.announced_wall_ms = wall_ms;
        tm_strlcpy(p->info.addresses, addresses ? addresses : "", sizeof p->info.addresses);
        if (p->info.source == TM_SRC_LEARNED)
            p->info.source = TM_SRC_MDNS;
    }
}

size_t tm_engine_peer_count(const tm_engine_t *e)
{
    return e->n_peers;
}

static uint64_t vv_find(const tm_vv_t *vv, const uint8_t origin[TM_NODE_ID_LEN])
{
    return tm_vv_find(vv, origin);
}

int tm_engine_peer_info(const tm_engine_t *e, size_t i, tm_peer_info_t *info)
{
    if (i >= e->n_peers)
        return TM_EINVAL;
    const peer_t *p = &e->peers[i];
    *info = p->info;
    info->clock_known = tm_clock_filter_best(&p->clk, &info->clock_offset_ms, &info->clock_rtt_ms);
    if (info->heard) {
        info->they_lack = tm_vv_ahead(&e->vv, &e->peers[i].vv);
        info->we_lack = tm_vv_ahead(&e->peers[i].vv, &e->vv);
    }
    return TM_OK;
}

void tm_engine_stats(const tm_engine_t *e, tm_engine_stats_t *out)
{
    *out = e->stats;
}

uint64_t tm_engine_hlc_now(tm_engine_t *e, uint64_t wall_ms)
{
    return tm_hlc_now(&e->hlc, wall_ms);
}

void tm_engine_set_intake(tm_engine_t *e, bool accept)
{
    if (e->intake_off == !accept)
        return;
    e->intake_off = !accept;
    if (accept)
        tm_log_info(e->log, "taking peers' ops again");
    else
        tm_log_error(e->log, "disk space below the watermark: no longer taking peers' ops, so "
                             "that this till keeps room for its own sales");
}

bool tm_engine_intake(const tm_engine_t *e)
{
    return !e->intake_off;
}

uint64_t tm_engine_hlc_after(tm_engine_t *e, uint64_t floor, uint64_t wall_ms)
{
    return tm_hlc_after(&e->hlc, floor, wall_ms);
}

/* ---- store time ------------------------------------------------------- */

/* Offsets (peer minus us) of the alive peers we have an estimate for, and
 * our own (0), in v[0..*n); v holds n_peers + 1. */
static void clock_offsets(const tm_engine_t *e, int64_t *v, size_t *n)
{
    *n = 0;
    v[(*n)++] = 0;
    for (size_t i = 0; i < e->n_peers; i++) {
        const peer_t *p = &e->peers[i];
        uint64_t rtt;
        if (p->info.state == TM_PEER_ALIVE && tm_clock_filter_best(&p->clk, &v[*n], &rtt))
            (*n)++;
    }
}

static uint64_t abs64(int64_t x)
{
    return x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
}

void tm_engine_clock(const tm_engine_t *e, uint64_t wall_ms, tm_clock_status_t *out)
{
    memset(out, 0, sizeof *out);
    out->warn_ms = e->cfg.clock_warn_ms;
    if (TM_HLC_MS(e->hlc.last) > wall_ms)
        out->stamp_lead_ms = TM_HLC_MS(e->hlc.last) - wall_ms;
    int64_t *v = malloc((e->n_peers + 1) * sizeof *v);
    size_t n;
    if (!v)
        return;
    clock_offsets(e, v, &n);
    out->measured = n - 1;
    if (n > 1) {
        int64_t median = tm_clock_median(v, n);
        out->offset_ms = -median;
        out->skewed = abs64(out->offset_ms) > e->cfg.clock_warn_ms;
        for (size_t i = 0; i < e->n_peers; i++) {
            const peer_t *p = &e->peers[i];
            int64_t off;
            uint64_t rtt;
            if (p->info.state == TM_PEER_ALIVE && tm_clock_filter_best(&p->clk, &off, &rtt) &&
                abs64(off - median) > e->cfg.clock_warn_ms)
                out->peers_skewed++;
        }
    }
    free(v);
}

/* Says so in the log when our clock, or a peer's, leaves or rejoins the
 * store's time; while ours stays off, again every 10 minutes. */
static void clock_report(tm_engine_t *e, uint64_t now_ms, uint64_t wall_ms)
{
    tm_clock_status_t cs;
    tm_engine_clock(e, wall_ms, &cs);
    if (cs.measured && cs.skewed &&
        (!e->clock_reported || now_ms - e->clock_logged_ms >= 10 * 60 * 1000)) {
        tm_log_error(e->log,
                     "this till's clock is %.1f s %s the store's (median of %zu clocks; "
                     "bound %.1f s)%s: sales and replication go on, created_at is flagged; "
                     "check NTP and the RTC",
                     (double)abs64(cs.offset_ms) / 1000, cs.offset_ms < 0 ? "behind" : "ahead of",
                     cs.measured + 1, (double)cs.warn_ms / 1000,
                     cs.measured == 1 ? " - with two clocks either may be wrong, check both" : "");
        e->clock_reported = true;
        e->clock_logged_ms = now_ms;
    } else if (e->clock_reported && cs.measured && !cs.skewed) {
        tm_log_info(e->log, "this till's clock agrees with the store's again (%+.3f s)",
                    (double)cs.offset_ms / 1000);
        e->clock_reported = false;
    }
    if (!cs.measured)
        return;
    int64_t *v = malloc((e->n_peers + 1) * sizeof *v);
    size_t n;
    if (!v)
        return;
    clock_offsets(e, v, &n);
    int64_t median = tm_clock_median(v, n);
    free(v);
    for (size_t i = 0; i < e->n_peers; i++) {
        peer_t *p = &e->peers[i];
        int64_t off;
        uint64_t rtt;
        if (p->info.state != TM_PEER_ALIVE || !tm_clock_filter_best(&p->clk, &off, &rtt))
            continue;
        bool off_store = abs64(off - median) > e->cfg.clock_warn_ms;
        if (off_store && !p->clock_reported)
            tm_log_warn(e->log,
                        "peer %s: its clock is %+.1f s from the store's (round trip %llu ms)",
                        p->info.name, (double)(off - median) / 1000, (unsigned long long)rtt);
        else if (!off_store && p->clock_reported)
            tm_log_info(e->log, "peer %s: its clock agrees with the store's again", p->info.name);
        p->clock_reported = off_store;
    }
}

/* ---- sending ---------------------------------------------------------- */

static void env_init(tm_engine_t *e, Tillmesh__Envelope *env)
{
    tillmesh__envelope__init(env);
    env->store_id = e->store_id;
    env->has_sender = 1;
    env->sender.data = e->node_id;
    env->sender.len = TM_NODE_ID_LEN;
}

static int send_env(tm_engine_t *e, tm_outbox_t *out, const peer_t *p, Tillmesh__Envelope *env)
{
    tm_out_t *o = outbox_push(out);
    if (!o)
        return TM_ENOMEM;
    int rc = tm_wire_envelope_encode(env, &o->frame, &o->len);
    if (rc) {
        out->n--;
        return rc;
    }
    o->kind = TM_OUT_SEND;
    tm_strlcpy(o->peer, p->info.name, sizeof o->peer);
    e->stats.frames_out++;
    return TM_OK;
}

static int refresh_vv(tm_engine_t *e)
{
    tm_vv_t vv;
    int rc = tm_store_vv(e->store, &vv);
    if (rc)
        return rc;
    tm_vv_free(&e->vv);
    e->vv = vv;
    return TM_OK;
}

/* Builds our NodeInfo; entries point into e and into the arrays given. */
static int fill_info(tm_engine_t *e, Tillmesh__NodeInfo *ni, Tillmesh__VersionEntry *ents,
                     Tillmesh__VersionEntry **ptrs, uint8_t digest[32])
{
    tm_store_counts_t counts;
    int rc = tm_store_digest(e->store, digest);
    if (rc == TM_OK)
        rc = tm_store_counts(e->store, &counts);
    if (rc)
        return rc;
    tillmesh__node_info__init(ni);
    ni->has_node_id = 1;
    ni->node_id.data = e->node_id;
    ni->node_id.len = TM_NODE_ID_LEN;
    ni->store_id = e->store_id;
    ni->name = e->name;
    for (size_t i = 0; i < e->vv.n; i++) {
        tillmesh__version_entry__init(&ents[i]);
        ents[i].has_origin = ents[i].has_seq = 1;
        ents[i].origin.data = e->vv.e[i].origin;
        ents[i].origin.len = TM_NODE_ID_LEN;
        ents[i].seq = e->vv.e[i].seq;
        ptrs[i] = &ents[i];
    }
    ni->n_vv = e->vv.n;
    ni->vv = ptrs;
    ni->has_priority = 1;
    ni->priority = e->cfg.priority;
    ni->has_heartbeat_ms = 1;
    ni->heartbeat_ms = e->cfg.heartbeat_ms;
    ni->has_digest = 1;
    ni->digest.data = digest;
    ni->digest.len = 32;
    ni->has_op_count = 1;
    ni->op_count = counts.ops;
    ni->mesh_endpoint = e->endpoint[0] ? e->endpoint : NULL;
    ni->has_uplink = 1;
    ni->uplink = (Tillmesh__UplinkState)e->uplink;
    ni->has_uplink_since_ms = 1;
    ni->uplink_since_ms = e->uplink_since;
    ni->has_complete = 1;
    ni->complete = tm_engine__self_complete(e);
    uint64_t cv = 0, csync = 0;
    if (tm_store_catalogue_stamp(e->store, &cv, &csync) == TM_OK) {
        ni->has_catalogue_version = ni->has_catalogue_synced_ms = 1;
        ni->catalogue_version = cv;
        ni->catalogue_synced_ms = csync;
    }
    if (e->elect.have) {
        ni->has_forwarder = ni->has_forwarder_epoch = 1;
        ni->forwarder.data = e->elect.node_id;
        ni->forwarder.len = TM_NODE_ID_LEN;
        ni->forwarder_epoch = e->elect.epoch;
    }
    return TM_OK;
}

static int send_heartbeats(tm_engine_t *e, uint64_t now_ms, uint64_t wall_ms, tm_outbox_t *out)
{
    Tillmesh__Envelope env;
    Tillmesh__NodeInfo ni;
    Tillmesh__Timing tm;
    Tillmesh__Hello hello = TILLMESH__HELLO__INIT;
    Tillmesh__Heartbeat hb = TILLMESH__HEARTBEAT__INIT;
    Tillmesh__VersionEntry *ents = calloc(e->vv.n + 1, sizeof *ents);
    Tillmesh__VersionEntry **ptrs = calloc(e->vv.n + 1, sizeof *ptrs);
    uint8_t digest[32];
    int rc = TM_ENOMEM;

    if (!ents || !ptrs)
        goto cleanup;
    if ((rc = fill_info(e, &ni, ents, ptrs, digest)))
        goto cleanup;
    ni.has_forwarder_heard_ms = tm_engine__forwarder_heard(e, now_ms, &ni.forwarder_heard_ms);
    hello.info = hb.info = &ni;
    for (size_t i = 0; i < e->n_peers; i++) {
        peer_t *p = &e->peers[i];
        /* Foreign peers still hear who we are, so that each side can tell
         * the other is of another store; they get no ops and no answers. */
        if (p->info.state == TM_PEER_UNTRUSTED || p->info.state == TM_PEER_REVOKED)
            continue;
        env_init(e, &env);
        tillmesh__timing__init(&tm);
        tm.has_wall_ms = tm.has_tx_mono_ms = 1;
        tm.wall_ms = wall_ms;
        tm.tx_mono_ms = now_ms;
        if (p->echo_tx_mono && now_ms >= p->echo_rx_mono) {
            tm.has_echo_mono_ms = tm.has_echo_hold_ms = 1;
            tm.echo_mono_ms = p->echo_tx_mono;
            tm.echo_hold_ms = now_ms - p->echo_rx_mono;
        }
        hello.timing = hb.timing = &tm;
        /* Until we have heard from a peer we introduce ourselves. */
        if (p->info.heard) {
            env.msg_case = TILLMESH__ENVELOPE__MSG_HEARTBEAT;
            env.heartbeat = &hb;
        } else {
            env.msg_case = TILLMESH__ENVELOPE__MSG_HELLO;
            env.hello = &hello;
        }
        if ((rc = send_env(e, out, p, &env)))
            goto cleanup;
    }
    rc = TM_OK;
cleanup:
    free(ents);
    free(ptrs);
    return rc;
}

static bool deferred(const peer_t *p, const uint8_t origin[TM_NODE_ID_LEN], uint64_t now_ms)
{
    for (size_t i = 0; i < TM_APPLY_REPORT_ORIGINS; i++)
        if (p->defer[i].until > now_ms && memcmp(p->defer[i].origin, origin, TM_NODE_ID_LEN) == 0)
            return true;
    return false;
}

#define DEFER_MS 10000

static void defer_origin(peer_t *p, const uint8_t origin[TM_NODE_ID_LEN], uint64_t now_ms)
{
    size_t slot = 0;
    for (size_t i = 0; i < TM_APPLY_REPORT_ORIGINS; i++) {
        if (memcmp(p->defer[i].origin, origin, TM_NODE_ID_LEN) == 0) {
            slot = i;
            break;
        }
        if (p->defer[i].until < p->defer[slot].until)
            slot = i; /* the oldest entry goes */
    }
    memcpy(p->defer[slot].origin, origin, TM_NODE_ID_LEN);
    p->defer[slot].until = now_ms + DEFER_MS;
}

static bool quota_limited(tm_engine_t *e, const uint8_t origin[TM_NODE_ID_LEN], uint64_t now_ms);
static uint64_t vouched_seq(const tm_engine_t *e, size_t sender,
                            const uint8_t origin[TM_NODE_ID_LEN]);

/* How many of the ops we made since we started are compared with each
 * peer's copies (the restore check of pull_from). */
#define SELF_CHECK_OPS 64
/* How far past the mark a peer's copies are compared at most, per start:
 * a mark a long-gone peer keeps must not make every start pull all the
 * ops made since (docs/security.md, limits). */
#define SELF_CHECK_MAX 4096

/* How often a pull that would carry only the self-check goes to one peer
 * while it has not answered it yet (a peer that holds none of the ops we
 * made since we started has nothing to compare; it soon will). */
#define SELF_CHECK_RETRY_MS 1000

/* How often one peer is asked past our vector while the vectors agree and
 * the digests do not (gap_probe). */
#define GAP_PROBE_MS 5000
/* How many ops held past the vector gap_probe reads (and their bytes) to
 * leave them out of its ranges, and how many holes between them it asks
 * for apart: a peer takes some hundred ranges more than our vector has
 * entries (tm_engine_max_entries), the self-check adds two. */
#define GAP_PROBE_HELD       1024
#define GAP_PROBE_HELD_BYTES (4u << 20)
#define GAP_PROBE_HOLES      64

/* Equal vectors and different digests: one of us holds ops past a gap of
 * an origin, which no vector shows (compared only while the peer's vector
 * is the one its digest came with, not raised by its pushes since). A gap
 * can be for good: a till restored
 * from a backup loses the ops it made since the backup, and a peer may
 * hold later ones of its old origin (a frame lost on the way; the old
 * origin never writes again to fill it). Then only a pull past the vector
 * brings them: (origin, seq + 1 .. end) of every origin but ours, whatever
 * the peer's vector says (not an origin past its quota or deferred), at
 * most every GAP_PROBE_MS per peer, less the ops we hold past the vector
 * already: the answer is cut at a batch bound in (origin, seq) order, and
 * an answer that holds only ops we have never moves the vector, so asking
 * for them again would bring the same ones for ever (seed 24 --restore: a
 * till pulling 5 ops at a time held 10..14 past a gap at 8 and never got
 * 15..16). *ranges is empty (k == 0) on entry and freed by the caller. */
static int gap_probe(tm_engine_t *e, peer_t *p, const tm_vv_t *mine, uint64_t now_ms,
                     tm_range_t **ranges, size_t *k)
{
    tm_range_t *ahead = NULL, *past = NULL;
    size_t n_ahead = 0, n_past = 0, n_held = 0;
    tm_op_t *held = NULL;
    uint8_t digest[32];
    if (!p->info.have_digest || p->vv_raised || now_ms < p->gap_probe_at || mine->n == 0)
        return TM_OK;
    int rc = tm_vv_missing(&p->vv, mine, &ahead, &n_ahead);
    free(ahead);
    if (rc || n_ahead) /* it lacks ours: it pulls, and the digests follow */
        return rc;
    if ((rc = tm_store_digest(e->store, digest)) ||
        memcmp(digest, p->info.digest, sizeof digest) == 0)
        return rc;
    rc = TM_ENOMEM;
    if (!(past = calloc(mine->n, sizeof *past)))
        goto cleanup;
    for (size_t i = 0; i < mine->n; i++) {
        if (memcmp(mine->e[i].origin, e->node_id, TM_NODE_ID_LEN) == 0 ||
            mine->e[i].seq >= INT64_MAX || deferred(p, mine->e[i].origin, now_ms) ||
            quota_limited(e, mine->e[i].origin, now_ms))
            continue;
        memcpy(past[n_past].origin, mine->e[i].origin, TM_NODE_ID_LEN);
        past[n_past].from = mine->e[i].seq + 1;
        past[n_past++].to = INT64_MAX;
    }
    /* What we hold past the vector, in (origin, seq) order; a read cut at
     * its bound leaves the origins after its last op asked from the
     * vector, as before. */
    if (n_past && (rc = tm_store_read_ops(e->store, past, n_past, GAP_PROBE_HELD,
                                          GAP_PROBE_HELD_BYTES, &held, &n_held)))
        goto cleanup;
    rc = TM_ENOMEM;
    tm_range_t *r = realloc(*ranges, (n_past + GAP_PROBE_HOLES) * sizeof *r);
    if (!r)
        goto cleanup;
    *ranges = r;
    size_t holes = 0;
    for (size_t i = 0; i < n_past; i++) {
        uint64_t from = past[i].from;
        for (size_t j = 0; j < n_held; j++) {
            if (memcmp(held[j].origin, past[i].origin, TM_NODE_ID_LEN) != 0 || held[j].seq < from)
                continue;
            if (held[j].seq > from) { /* a hole: asked alone, while the budget lasts */
                if (holes == GAP_PROBE_HOLES)
                    break; /* the rest of the origin in one range, held ops too */
                memcpy(r[*k].origin, past[i].origin, TM_NODE_ID_LEN);
                r[*k].from = from;
                r[(*k)++].to = held[j].seq - 1;
                holes++;
            }
            from = held[j].seq + 1;
        }
        memcpy(r[*k].origin, past[i].origin, TM_NODE_ID_LEN);
        r[*k].from = from;
        r[(*k)++].to = INT64_MAX;
    }
    p->gap_probe_at = now_ms + GAP_PROBE_MS;
    if (*k)
        tm_log_debug(e->log,
                     "pull from %s: equal vectors, other digest: asking past them (%zu op(s) "
                     "held past them left out)",
                     p->info.name, n_held);
    rc = TM_OK;
cleanup:
    tm_store_ops_free(held, n_held);
    free(past);
    return rc;
}

/* Asks p for what its vector shows `mine` lacks, unless a pull is in
 * flight. */
static int pull_from(tm_engine_t *e, size_t idx, const tm_vv_t *mine, uint64_t now_ms,
                     tm_outbox_t *out)
{
    peer_t *p = &e->peers[idx];
    tm_range_t *ranges = NULL;
    size_t n = 0;
    int rc;

    if (e->pull_busy || e->intake_off || p->info.state != TM_PEER_ALIVE)
        return TM_OK;
    if ((rc = tm_vv_missing(mine, &p->vv, &ranges, &n)))
        return rc;
    /* An origin past its quota is asked only for what another till
     * vouches for (see quota_filter); an origin whose ops this peer sent
     * us and we refused is not asked of it for a while (defer_origin). */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (deferred(p, ranges[i].origin, now_ms))
            continue;
        if (quota_limited(e, ranges[i].origin, now_ms)) {
            uint64_t v = vouched_seq(e, idx, ranges[i].origin);
            if (v < ranges[i].from)
                continue;
            if (v < ranges[i].to)
                ranges[i].to = v;
        }
        ranges[k++] = ranges[i];
    }
    if (n == 0 && k == 0 && (rc = gap_probe(e, p, mine, now_ms, &ranges, &k))) {
        free(ranges);
        return rc;
    }
    /* Once per start and peer: its copies of the first ops we made since,
     * which must be ours; a fork of them signed by our key means this
     * store was restored. Asked whatever its vector says: a till may hold
     * ops we made before the restore past a gap (a lost frame), which its
     * vector does not show. Asked again with every pull to it until an
     * answer holds one of them (check_own_copy): an answer is cut at the
     * answerer's batch bound in (origin, seq) order, not ours, so ranges
     * of other origins can fill it before ours is read; it can be dropped
     * (disk below the watermark) or lost; and a peer that holds none of
     * them has nothing to compare yet. */
    uint64_t first = e->own_seq_at_start + 1, ours = tm_vv_get(&e->vv, e->node_id);
    uint64_t now_first = e->held_at_start + 1; /* this start's own ops */
    if (p->checked_to >= first) /* asked again past what it showed (check_restored) */
        first = p->checked_to + 1;
    bool self_check = !p->self_checked && !e->reincarnated && !TM_PLANTED("no-self-check") &&
                      ours >= first && !deferred(p, e->node_id, now_ms);
    if (self_check && k == 0) { /* it alone: not every heartbeat */
        if (now_ms < p->self_check_at)
            self_check = false;
        else
            p->self_check_at = now_ms + SELF_CHECK_RETRY_MS;
    }
    if (self_check) {
        /* From the mark, and from this start if that is further on. */
        tm_range_t *r = realloc(ranges, (k + 2) * sizeof *r);
        if (!r) {
            free(ranges);
            return TM_ENOMEM;
        }
        ranges = r;
        memcpy(ranges[k].origin, e->node_id, TM_NODE_ID_LEN);
        ranges[k].from = first;
        ranges[k].to = ours - first < SELF_CHECK_OPS ? ours : first + SELF_CHECK_OPS - 1;
        if (ranges[k].to < now_first && now_first <= ours && first < now_first) {
            ranges[k + 1] = ranges[k];
            ranges[++k].from = now_first;
            ranges[k].to =
                ours - now_first < SELF_CHECK_OPS ? ours : now_first + SELF_CHECK_OPS - 1;
        }
        k++;
        p->self_check_sent = true;
    }
    if ((n = k) == 0) {
        free(ranges);
        return TM_OK;
    }

    Tillmesh__Envelope env;
    Tillmesh__PullRequest pull = TILLMESH__PULL_REQUEST__INIT;
    Tillmesh__Range *rs = calloc(n, sizeof *rs);
    Tillmesh__Range **rp = calloc(n, sizeof *rp);
    rc = TM_ENOMEM;
    if (!rs || !rp)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        tillmesh__range__init(&rs[i]);
        rs[i].has_origin = rs[i].has_from_seq = rs[i].has_to_seq = 1;
        rs[i].origin.data = ranges[i].origin;
        rs[i].origin.len = TM_NODE_ID_LEN;
        rs[i].from_seq = ranges[i].from;
        rs[i].to_seq = ranges[i].to;
        rp[i] = &rs[i];
    }
    pull.n_ranges = n;
    pull.ranges = rp;
    pull.has_max_ops = 1;
    pull.max_ops = e->cfg.batch_max_ops;
    env_init(e, &env);
    env.msg_case = TILLMESH__ENVELOPE__MSG_PULL;
    env.pull = &pull;
    if ((rc = send_env(e, out, p, &env)))
        goto cleanup;
    e->pull_busy = true;
    e->pull_peer = idx;
    e->pull_deadline = now_ms + e->cfg.pull_timeout_ms;
    e->stats.pulls_sent++;
    tm_log_debug(e->log, "pull from %s: %zu range(s)", p->info.name, n);
cleanup:
    free(rs);
    free(rp);
    free(ranges);
    return rc;
}

static int maybe_pull(tm_engine_t *e, size_t idx, uint64_t now_ms, tm_outbox_t *out)
{
    return pull_from(e, idx, &e->vv, now_ms, out);
}

static void vv_raise(tm_vv_t *vv, const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq);

/*
 * Catch-up pipelining: on a pull answer, ask for the next batch *before*
 * applying this one, as if it were applied already (a pull answer holds,
 * per origin, a dense run from the seq we asked for), and keep the answer
 * pending until the next tick. The shell sends the request in between, so
 * the peer reads the next batch while we write this one. If the guess was
 * wrong (the apply failed), the next answer overlaps what we hold, which is
 * harmless.
 */
static int prefetch_pull(tm_engine_t *e, size_t idx, const Tillmesh__OpBatch *b, uint64_t now_ms,
                         tm_outbox_t *out)
{
    tm_vv_t guess = {calloc(e->vv.n + 1, sizeof(tm_vv_entry_t)), e->vv.n};
    if (!guess.e)
        return TM_ENOMEM;
    if (e->vv.n)
        memcpy(guess.e, e->vv.e, e->vv.n * sizeof(tm_vv_entry_t));
    for (size_t i = 0; i < b->n_ops; i++)
        vv_raise(&guess, b->ops[i]->origin.data, b->ops[i]->seq);
    int rc = pull_from(e, idx, &guess, now_ms, out);
    tm_vv_free(&guess);
    return rc;
}

/* Answers a pull with one bounded batch (possibly empty, so that the
 * requester knows it may ask again). */
static int answer_pull(tm_engine_t *e, const peer_t *p, const Tillmesh__PullRequest *req,
                       tm_outbox_t *out)
{
    size_t nr = req->n_ranges, n_ops = 0;
    tm_range_t *ranges = calloc(nr ? nr : 1, sizeof *ranges);
    tm_op_t *ops = NULL;
    Tillmesh__Op *pbs = NULL, **pp = NULL;
    int rc = TM_ENOMEM;

    if (!ranges)
        goto cleanup;
    for (size_t i = 0; i < nr; i++) {
        memcpy(ranges[i].origin, req->ranges[i]->origin.data, TM_NODE_ID_LEN);
        ranges[i].from = req->ranges[i]->from_seq;
        ranges[i].to = req->ranges[i]->to_seq;
    }
    size_t max_ops = e->cfg.batch_max_ops;
    if (req->has_max_ops && req->max_ops && req->max_ops < max_ops)
        max_ops = req->max_ops;
    if (nr && (rc = tm_store_read_ops(e->store, ranges, nr, max_ops, e->cfg.batch_max_bytes, &ops,
                                      &n_ops)))
        goto cleanup;
    rc = TM_ENOMEM;
    if (!(pbs = calloc(n_ops + 1, sizeof *pbs)) || !(pp = calloc(n_ops + 1, sizeof *pp)))
        goto cleanup;
    for (size_t i = 0; i < n_ops; i++) {
        tillmesh__op__init(&pbs[i]);
        pbs[i].has_origin = pbs[i].has_seq = pbs[i].has_hlc = pbs[i].has_kind = 1;
        pbs[i].has_body = 1;
        pbs[i].origin.data = ops[i].origin;
        pbs[i].origin.len = TM_NODE_ID_LEN;
        pbs[i].seq = ops[i].seq;
        pbs[i].hlc = ops[i].hlc;
        pbs[i].kind = (Tillmesh__OpKind)ops[i].kind;
        pbs[i].body.data = ops[i].body;
        pbs[i].body.len = ops[i].body_len;
        if (ops[i].compacted) {
            pbs[i].has_body = 0;
            pbs[i].has_hash = 1;
            pbs[i].hash.data = ops[i].hash;
            pbs[i].hash.len = 32;
        }
        if (ops[i].has_sig) {
            pbs[i].has_sig = pbs[i].has_prev = 1;
            pbs[i].sig.data = ops[i].sig;
            pbs[i].sig.len = 64;
            pbs[i].prev.data = ops[i].prev;
            pbs[i].prev.len = 32;
        }
        pp[i] = &pbs[i];
    }
    Tillmesh__Envelope env;
    Tillmesh__OpBatch batch = TILLMESH__OP_BATCH__INIT;
    batch.n_ops = n_ops;
    batch.ops = pp;
    batch.has_is_reply = 1;
    batch.is_reply = 1;
    env_init(e, &env);
    env.msg_case = TILLMESH__ENVELOPE__MSG_OPS;
    env.ops = &batch;
    rc = send_env(e, out, p, &env);
    tm_log_debug(e->log, "pull by %s: sent %zu op(s)", p->info.name, n_ops);
cleanup:
    free(pbs);
    free(pp);
    tm_store_ops_free(ops, n_ops);
    free(ranges);
    return rc;
}

static void vv_raise(tm_vv_t *vv, const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq)
{
    /* Binary search: the vector is sorted by origin, as the store returns
     * it; only a new origin costs a move. */
    size_t at = 0, hi = vv->n;
    while (at < hi) {
        size_t mid = at + (hi - at) / 2;
        int c = memcmp(vv->e[mid].origin, origin, TM_NODE_ID_LEN);
        if (c == 0) {
            if (vv->e[mid].seq < seq)
                vv->e[mid].seq = seq;
            return;
        }
        if (c < 0)
            at = mid + 1;
        else
            hi = mid;
    }
    tm_vv_entry_t *v = realloc(vv->e, (vv->n + 1) * sizeof *v);
    if (!v)
        return; /* only an optimisation; the next heartbeat corrects it */
    memmove(&v[at + 1], &v[at], (vv->n - at) * sizeof *v);
    memcpy(v[at].origin, origin, TM_NODE_ID_LEN);
    v[at].seq = seq;
    vv->e = v;
    vv->n++;
}

/* A peer holds more of our own chain than we do: our store is older than
 * what we once wrote - restored from a backup, or copied from another
 * till. Ops we made since we started may then reuse seqs the peers hold
 * with other content (a fork they refuse), and more would: move to a new
 * origin now, taking those ops with us (tm_store_reincarnate). Once. */
static void check_restored(tm_engine_t *e, peer_t *p)
{
    uint64_t theirs = tm_vv_get(&p->vv, e->node_id), ours = tm_vv_get(&e->vv, e->node_id);
    if (e->reincarnated || TM_PLANTED("no-reincarnate"))
        return;
    /* Once seen behind, restored: it stays so while the compare below
     * waits, even once our old ops came back from the peers. */
    e->behind |= theirs > ours;
    if (!e->behind && !e->own_fork)
        return;
    /* What moves: the ops this run made (all of them), and before those
     * the ops from the lowest seq a peer holds another op at. Up to there
     * they are history the restored copy shares with its peers (ops made
     * before a mark older than this start, ops taken back from a peer), and
     * moving those would leave a hole in the old origin on every till. With
     * an older mark and no other op seen, this peer's copies since the mark
     * are compared first. */
    uint64_t keep = e->own_seq_at_start;
    if (!TM_PLANTED("no-self-check")) {
        if (e->fork_seq)
            keep = e->fork_seq - 1;
        else if (keep < e->held_at_start) {
            /* Only a peer that holds ops of ours we never made (past what
             * we held at start, past what we hold if we made any since)
             * holds the other copy's chain: its copies up to where we
             * started settle it, one more with each answer. One that
             * holds what we made (pushed before a crash) proves nothing. */
            if (theirs <= e->held_at_start || (e->first_made && theirs <= ours))
                return;
            if (p->checked_to < e->held_at_start && p->checked_to < keep + SELF_CHECK_MAX) {
                p->self_checked = false;
                return;
            }
            keep = ours;
        } else
            keep = ours;
        if (e->first_made && keep >= e->first_made)
            keep = e->first_made - 1;
    }
    size_t moved = 0;
    char was[TM_NODE_HEX_LEN], now[TM_NODE_HEX_LEN];
    tm_hex(e->node_id, TM_NODE_ID_LEN, was);
    int rc = tm_store_reincarnate(e->store, keep, &moved);
    if (rc) {
        tm_log_error(e->log,
                     "peer %s holds %llu ops of ours, we hold %llu, and taking a new "
                     "origin failed: %s",
                     p->info.name, (unsigned long long)theirs, (unsigned long long)ours,
                     tm_strerror(rc));
        return;
    }
    e->reincarnated = true;
    tm_store_node_id(e->store, e->node_id);
    (void)refresh_vv(e);
    tm_hex(e->node_id, TM_NODE_ID_LEN, now);
    tm_log_error(e->log,
                 "peer %s holds %llu ops of this till's own origin, the store %llu%s: it was "
                 "restored from a backup (or copied). This till now writes as origin %s (was "
                 "%s) and re-issued the %zu op(s) it made since it started; its older ops come "
                 "back from its peers",
                 p->info.name, (unsigned long long)theirs, (unsigned long long)ours,
                 e->own_fork ? ", and other ones than this store at the same seqs" : " only", now,
                 was, moved);
}

/* Whether our store holds another op than `o` at its (our origin) seq; an
 * op we do not hold, or a summary of a compacted one, compares as the same. */
static bool own_op_differs(tm_engine_t *e, const Tillmesh__Op *o)
{
    tm_range_t r = {.from = o->seq, .to = o->seq};
    tm_op_t *held = NULL;
    size_t n = 0;
    memcpy(r.origin, e->node_id, TM_NODE_ID_LEN);
    if (tm_store_read_ops(e->store, &r, 1, 1, 0, &held, &n) != TM_OK || n != 1 ||
        held[0].seq != o->seq || held[0].compacted || o->has_hash) {
        tm_store_ops_free(held, n);
        return false;
    }
    bool differs;
    if (held[0].has_sig && o->has_sig && o->sig.len == 64)
        differs = memcmp(held[0].sig, o->sig.data, 64) != 0; /* one key: same op, same sig */
    else
        differs = held[0].hlc != o->hlc || held[0].kind != (uint32_t)o->kind ||
                  held[0].body_len != o->body.len ||
                  (o->body.len && memcmp(held[0].body, o->body.data, o->body.len) != 0);
    tm_store_ops_free(held, n);
    return differs;
}

/* The answer to the self-check of pull_from: the peer's copies of the
 * ops we made since we started (since the mark). A fork of our own origin
 * signed by our key (which only another copy of this store can have made)
 * means we were restored; taken as duplicates, the peer holds what we
 * made. Checked only by an answer that holds one of them: it is read in
 * seq order from the first we made since, so the copies we compare are
 * the peer's lowest there. An answer without one (cut at its batch bound
 * before our origin, or an answer to another pull) says nothing, and the
 * next pull asks again. Each copy is compared with ours, so that what
 * moves to a new origin starts at the lowest seq that differs: ops past
 * the mark that the peers hold as they are stay ours. */
static void check_own_copy(tm_engine_t *e, peer_t *p, const Tillmesh__OpBatch *b)
{
    if (TM_PLANTED("no-self-check"))
        return;
    /* Not the store's fork report: a peer's op of ours past what we hold
     * is reported too, and says nothing of where our copy parts. */
    bool seen = false;
    if (p->checked_to < e->own_seq_at_start)
        p->checked_to = e->own_seq_at_start;
    uint64_t was = p->checked_to;
    for (size_t i = 0; i < b->n_ops; i++) {
        const Tillmesh__Op *o = b->ops[i];
        if (o->seq <= e->own_seq_at_start || memcmp(o->origin.data, e->node_id, TM_NODE_ID_LEN))
            continue;
        seen = true;
        if (own_op_differs(e, o)) {
            if (!e->fork_seq || o->seq < e->fork_seq)
                e->fork_seq = o->seq;
        } else if (o->seq > p->checked_to) {
            /* Answers are in seq order from what we asked: a seq it
             * skipped is one it does not hold, nothing to compare. */
            p->checked_to = o->seq;
        }
    }
    if (!seen)
        return;
    bool forked = e->fork_seq != 0;
    /* Up to the last we hold, not the last its vector shows: a heartbeat
     * can be old (or replayed), and a peer behind on ours takes them from
     * us soon; its copies are then compared as they come. */
    uint64_t upto = tm_vv_get(&e->vv, e->node_id);
    if (e->own_seq_at_start + SELF_CHECK_MAX < upto)
        upto = e->own_seq_at_start + SELF_CHECK_MAX;
    if (!forked && p->checked_to < upto) {
        /* Cut at its batch bound before the last it holds of ours (from a
         * mark, that can be before this start's own ops): on from there. */
        if (p->checked_to > was)
            p->self_check_at = 0; /* at once while it shows more */
        return;
    }
    p->self_checked = true;
    tm_log_debug(e->log, "self-check: %s holds the ops this till made since seq %llu%s",
                 p->info.name, (unsigned long long)e->own_seq_at_start,
                 forked ? ", other ones (a fork)" : "");
    if (!forked) {
        own_seq_checked(e);
        check_restored(e, p); /* it may hold more of ours: we waited for this */
        return;
    }
    e->own_fork = true;
    check_restored(e, p);
}

static int vv_entry_cmp(const void *a, const void *b)
{
    const tm_vv_entry_t *x = a, *y = b;
    int c = memcmp(x->origin, y->origin, TM_NODE_ID_LEN);
    if (c)
        return c;
    return x->seq > y->seq ? -1 : x->seq < y->seq; /* highest seq first */
}

/* A peer's vector as a sorted vector without duplicate origins (the
 * highest seq wins): one sort, O(n log n), whatever order it came in. */
static int vv_from_wire(Tillmesh__VersionEntry **ents, size_t n, tm_vv_t *out)
{
    tm_vv_t vv = {calloc(n + 1, sizeof(tm_vv_entry_t)), 0};
    if (!vv.e)
        return TM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        memcpy(vv.e[i].origin, ents[i]->origin.data, TM_NODE_ID_LEN);
        vv.e[i].seq = ents[i]->seq;
    }
    qsort(vv.e, n, sizeof *vv.e, vv_entry_cmp);
    for (size_t i = 0; i < n; i++)
        if (vv.n == 0 || memcmp(vv.e[vv.n - 1].origin, vv.e[i].origin, TM_NODE_ID_LEN) != 0)
            vv.e[vv.n++] = vv.e[i];
    *out = vv;
    return TM_OK;
}

static int on_info(tm_engine_t *e, size_t idx, const Tillmesh__NodeInfo *ni, tm_outbox_t *out)
{
    peer_t *p = &e->peers[idx];
    tm_vv_t vv;
    int vrc = vv_from_wire(ni->vv, ni->n_vv, &vv);
    if (vrc)
        return vrc;
    tm_vv_free(&p->vv);
    p->vv = vv;
    p->vv_raised = false;
    check_restored(e, p);
    p->info.uplink_up = ni->has_uplink && ni->uplink == TILLMESH__UPLINK_STATE__UPLINK_UP;
    p->info.uplink_since_ms = ni->uplink_since_ms;
    p->info.priority = ni->priority;
    /* Bounded like our own setting (config: 20..60000 ms): a till cannot
     * stay "alive" for hours by announcing a slow heartbeat. */
    p->info.heartbeat_ms = 0;
    if (ni->has_heartbeat_ms && ni->heartbeat_ms > 0)
        p->info.heartbeat_ms = ni->heartbeat_ms > TM_ENGINE_HEARTBEAT_MAX_MS
                                   ? TM_ENGINE_HEARTBEAT_MAX_MS
                                   : ni->heartbeat_ms;
    p->info.complete = ni->has_complete ? ni->complete : true;
    p->info.catalogue_version = ni->catalogue_version;
    p->info.catalogue_synced_ms = ni->catalogue_synced_ms;
    p->info.catalogue_capable = ni->has_catalogue_version;
    /* A claim is about the node id the key speaks for (note_sender), not
     * whatever node_id the body names. */
    p->info.claims =
        ni->has_forwarder && memcmp(ni->forwarder.data, p->info.node_id, TM_NODE_ID_LEN) == 0;
    p->info.epoch = p->info.claims ? ni->forwarder_epoch : 0;
    p->info.fwd_heard = ni->has_forwarder && ni->has_forwarder_heard_ms &&
                        ni->forwarder_heard_ms <= p->info.last_seen_ms;
    if (p->info.fwd_heard) {
        memcpy(p->info.fwd_node, ni->forwarder.data, TM_NODE_ID_LEN);
        p->info.fwd_heard_at_ms = p->info.last_seen_ms - ni->forwarder_heard_ms;
    }
    if (ni->has_digest) {
        memcpy(p->info.digest, ni->digest.data, 32);
        p->info.have_digest = true;
    }
    /* A peer that connected to us but that we did not know: connect back,
     * so that pushes and pull answers reach it. */
    /* A learned peer that moved (restarted on another port, new address)
     * is followed; static and mDNS endpoints come from their own source. */
    if (ni->mesh_endpoint && ni->mesh_endpoint[0] && strlen(ni->mesh_endpoint) < TM_ENDPOINT_MAX &&
        (!p->info.endpoint[0] ||
         (p->info.source == TM_SRC_LEARNED && strcmp(p->info.endpoint, ni->mesh_endpoint) != 0))) {
        tm_strlcpy(p->info.endpoint, ni->mesh_endpoint, sizeof p->info.endpoint);
        tm_log_info(e->log, "peer %s: learned endpoint %s", p->info.name, p->info.endpoint);
        int rc = queue_connect(out, p);
        if (rc)
            return rc;
    }
    return TM_OK;
}

/* What the store would not take from p: not pulled from p again for a
 * while, counted, and said in the log (at most every 10 s per peer: a
 * hostile peer must not fill the disk with our log). */
static void note_refusals(tm_engine_t *e, peer_t *p, const tm_apply_report_t *rep, uint64_t now_ms)
{
    for (size_t i = 0; i < rep->n_origins; i++)
        defer_origin(p, rep->origins[i], now_ms);
    /* A fork signed by its origin's key is its owner's doing (a restored
     * till, or one that equivocates), not the relay's. */
    p->info.ops_refused += rep->refused - rep->forks;
    for (size_t i = 0; i < rep->n_fork_origins; i++) {
        peer_t *owner = NULL;
        for (size_t k = 0; k < e->n_peers && !owner; k++)
            if (e->peers[k].info.have_node_id &&
                memcmp(e->peers[k].info.node_id, rep->fork_origins[i], TM_SIGN_ID_KEYB) == 0)
                owner = &e->peers[k];
        /* Several origins: charged once per batch, to the first owner. */
        if (owner) {
            owner->info.ops_refused += rep->forks;
            break;
        }
    }
    p->info.ops_deferred += rep->deferred;
    e->stats.ops_refused += rep->refused;
    e->stats.ops_deferred += rep->deferred;
    if (p->refused_logged && now_ms - p->refused_logged < 10000)
        return;
    p->refused_logged = now_ms;
    if (rep->refused)
        tm_log_error(e->log,
                     "peer %s sent %zu op(s) that fail verification, kept as evidence, not "
                     "applied: %s",
                     p->info.name, rep->refused, rep->reason);
    if (rep->deferred)
        tm_log_warn(e->log,
                    "peer %s sent %zu op(s) this till cannot verify yet (a signing key missing "
                    "from trusted_keys, or unsigned history no seal covers): not stored, asked "
                    "again later",
                    p->info.name, rep->deferred);
}

/* ---- quota: what one origin may make us store ------------------------- */

#define TM_ENGINE_QUOTA_ORIGINS 1024

static const char *origin_name(const tm_engine_t *e, const uint8_t origin[TM_NODE_ID_LEN])
{
    for (size_t i = 0; i < e->n_peers; i++)
        if (e->peers[i].info.have_node_id &&
            memcmp(e->peers[i].info.node_id, origin, TM_NODE_ID_LEN) == 0)
            return e->peers[i].info.name;
    return "";
}

/* Brings q's tokens up to now; an origin limited takes ops again once a
 * minute's worth is back, so that a pull fetches a useful batch. */
static void quota_refill(tm_engine_t *e, quota_t *q, uint64_t now_ms)
{
    double per_hour = e->cfg.origin_quota_ops_per_hour;
    if (now_ms > q->at_ms) {
        q->tokens += (double)(now_ms - q->at_ms) * per_hour / 3600000.0;
        if (q->tokens > per_hour)
            q->tokens = per_hour;
    }
    q->at_ms = now_ms;
    double resume = per_hour / 60 > 1 ? per_hour / 60 : 1;
    if (q->limited && q->tokens >= resume) {
        char hex[TM_NODE_HEX_LEN];
        tm_hex(q->origin, TM_NODE_ID_LEN, hex);
        tm_log_info(e->log,
                    "origin %s (%s): quota refilled; taking its ops again (%llu waited and are "
                    "pulled again now)",
                    hex, origin_name(e, q->origin)[0] ? origin_name(e, q->origin) : "no peer",
                    (unsigned long long)q->refused);
        q->limited = false;
        q->refused = 0;
    }
}

static quota_t *quota_find(const tm_engine_t *e, const uint8_t origin[TM_NODE_ID_LEN])
{
    for (size_t i = 0; i < e->n_quota; i++)
        if (memcmp(e->quota[i].origin, origin, TM_NODE_ID_LEN) == 0)
            return &e->quota[i];
    return NULL;
}

/* The bucket for origin, made full if new; NULL when the table is full of
 * origins that all spent some of their quota (then their ops wait). */
static quota_t *quota_get(tm_engine_t *e, const uint8_t origin[TM_NODE_ID_LEN], uint64_t now_ms)
{
    quota_t *q = quota_find(e, origin);
    if (q) {
        quota_refill(e, q, now_ms);
        return q;
    }
    if (!e->quota && !(e->quota = calloc(TM_ENGINE_QUOTA_ORIGINS, sizeof *e->quota)))
        return NULL;
    if (e->n_quota == TM_ENGINE_QUOTA_ORIGINS) {
        /* A full bucket says nothing a new one would not. */
        size_t k = 0;
        for (size_t i = 0; i < e->n_quota; i++) {
            quota_refill(e, &e->quota[i], now_ms);
            if (e->quota[i].limited || e->quota[i].tokens < e->cfg.origin_quota_ops_per_hour)
                e->quota[k++] = e->quota[i];
        }
        e->n_quota = k;
        if (k == TM_ENGINE_QUOTA_ORIGINS)
            return NULL;
    }
    q = &e->quota[e->n_quota++];
    memset(q, 0, sizeof *q);
    memcpy(q->origin, origin, TM_NODE_ID_LEN);
    q->tokens = e->cfg.origin_quota_ops_per_hour;
    q->at_ms = now_ms;
    return q;
}

static bool quota_limited(tm_engine_t *e, const uint8_t origin[TM_NODE_ID_LEN], uint64_t now_ms)
{
    quota_t *q = quota_find(e, origin);
    if (!q)
        return false;
    quota_refill(e, q, now_ms);
    return q->limited;
}

/* True when a live peer other than the sender and the origin itself says
 * it holds the op: that till took it already (within its own quota), so
 * storing it here adds nothing an origin alone could force. This keeps a
 * new till's catch-up of history unthrottled. */
static uint64_t vouched_seq(const tm_engine_t *e, size_t sender,
                            const uint8_t origin[TM_NODE_ID_LEN])
{
    uint64_t best = 0;
    for (size_t j = 0; j < e->n_peers; j++) {
        const peer_t *q = &e->peers[j];
        if (j == sender || q->info.state != TM_PEER_ALIVE || !q->info.have_node_id ||
            memcmp(q->info.node_id, origin, TM_NODE_ID_LEN) == 0)
            continue;
        uint64_t s = vv_find(&q->vv, origin);
        if (s > best)
            best = s;
    }
    return best;
}

static bool vouched(const tm_engine_t *e, size_t sender, const tm_op_t *op)
{
    return vouched_seq(e, sender, op->origin) >= op->seq;
}

/* Keeps, in order, the ops the quota lets in; returns how many. Ops held
 * already cost nothing. Once an origin is limited, all its further ops
 * wait (its run stays contiguous) and pull_from leaves it out until the
 * bucket refills. */
static size_t quota_filter(tm_engine_t *e, size_t sender, tm_op_t *ops, size_t n, uint64_t now_ms,
                           uint64_t wall_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const tm_op_t *op = &ops[i];
        bool keep = op->seq <= vv_find(&e->vv, op->origin) ||
                    memcmp(op->origin, e->node_id, TM_NODE_ID_LEN) == 0 || vouched(e, sender, op);
        if (!keep) {
            quota_t *q = quota_get(e, op->origin, now_ms);
            if (q && !q->limited && q->tokens >= 1) {
                q->tokens -= 1;
                keep = true;
            } else if (q && !q->limited) {
                char hex[TM_NODE_HEX_LEN];
                tm_hex(q->origin, TM_NODE_ID_LEN, hex);
                const char *nm = origin_name(e, q->origin);
                tm_log_error(e->log,
                             "origin %s (%s) made this till store more than its quota of %u ops "
                             "an hour: its further ops wait (not stored, pulled again when the "
                             "quota refills); received from %s",
                             hex, nm[0] ? nm : "no peer", e->cfg.origin_quota_ops_per_hour,
                             e->peers[sender].info.name);
                q->limited = true;
                q->since_wall_ms = wall_ms;
            }
            if (!keep) {
                if (q)
                    q->refused++;
                e->stats.ops_over_quota++;
                continue;
            }
        }
        ops[k++] = *op;
    }
    return k;
}

size_t tm_engine_quota_limited(const tm_engine_t *e, uint64_t now_ms, tm_quota_info_t *out,
                               size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n_quota; i++) {
        quota_t *q = &e->quota[i];
        quota_refill((tm_engine_t *)(uintptr_t)e, q, now_ms); /* status sees the present */
        if (!q->limited)
            continue;
        if (n < max) {
            memcpy(out[n].origin, q->origin, TM_NODE_ID_LEN);
            tm_strlcpy(out[n].name, origin_name(e, q->origin), sizeof out[n].name);
            out[n].refused = q->refused;
            out[n].since_wall_ms = q->since_wall_ms;
        }
        n++;
    }
    return n;
}

uint32_t tm_engine_quota_per_hour(const tm_engine_t *e)
{
    return e->cfg.origin_quota_ops_per_hour;
}

static int apply_ops(tm_engine_t *e, size_t idx, const Tillmesh__OpBatch *b, uint64_t now_ms,
                     uint64_t wall_ms)
{
    peer_t *p = &e->peers[idx];
    tm_op_t *ops = calloc(b->n_ops + 1, sizeof *ops);
    if (!ops)
        return TM_ENOMEM;
    int rc = TM_OK;
    for (size_t i = 0; i < b->n_ops; i++) {
        const Tillmesh__Op *o = b->ops[i];
        memcpy(ops[i].origin, o->origin.data, TM_NODE_ID_LEN);
        ops[i].seq = o->seq;
        ops[i].hlc = o->hlc;
        ops[i].kind = (uint32_t)o->kind;
        ops[i].body = o->body.data;
        ops[i].body_len = o->body.len;
        if (o->has_hash) {
            ops[i].compacted = true;
            memcpy(ops[i].hash, o->hash.data, 32);
        }
        if (o->has_sig) {
            ops[i].has_sig = true;
            memcpy(ops[i].sig, o->sig.data, 64);
            memcpy(ops[i].prev, o->prev.data, 32);
        }
    }
    size_t n_new = 0, n_ops = quota_filter(e, idx, ops, b->n_ops, now_ms, wall_ms);
    uint64_t kept_before = tm_store_kept_aside(e->store);
    tm_apply_report_t rep;
    memset(&rep, 0, sizeof rep);
    rc = n_ops ? tm_store_apply_report(e->store, ops, n_ops, &n_new, &rep) : TM_OK;
    if (rc == TM_OK && (rep.refused || rep.deferred))
        note_refusals(e, p, &rep, now_ms);
    if (rc == TM_OK && rep.set_aside)
        tm_log_warn(e->log,
                    "a till of the store was restored from a backup and re-issued its ops under a "
                    "new origin (relayed by %s): %zu copies held here under its old origin set "
                    "aside (kept as evidence, the sales stay); the ops its peers held at those "
                    "seqs are taken instead",
                    p->info.name, rep.set_aside);
    if (rc) {
        if (rc == TM_EPROTO)
            p->info.frames_bad++;
        /* A lost store is the daemon's to report, once, not per batch. */
        if (rc != TM_ELOST)
            tm_log_warn(e->log, "ops from %s not applied: %s", p->info.name, tm_strerror(rc));
        goto cleanup;
    }
    /* Clocks never gate replication: every op is applied whatever its
     * stamp; a stamp too far ahead is only not adopted by our clock (see
     * tm_hlc.h), and counted, so that status can say which peer sends
     * them. The peer's clock itself is reported from its heartbeats. */
    for (size_t i = 0; i < n_ops; i++) {
        if (!tm_hlc_recv(&e->hlc, ops[i].hlc, wall_ms)) {
            e->stats.stamps_far_ahead++;
            p->info.stamps_far_ahead++;
        }
    }
    p->info.ops_in += b->n_ops;
    e->stats.ops_applied += n_new;
    uint64_t kept = tm_store_kept_aside(e->store) - kept_before;
    if (kept) {
        /* Kept in the log (the vector advances), not shown as sales. */
        e->stats.ops_kept_aside += kept;
        tm_log_warn(e->log,
                    "%llu op(s) received from %s kept aside, not shown as sales (a second body "
                    "for a sale id, a sale naming another till, or one that breaks the sale "
                    "rules): see `conflicts` in status",
                    (unsigned long long)kept, p->info.name);
    }
    if (b->is_reply)
        e->stats.ops_pulled += n_new;
    for (size_t i = 0; i < n_ops; i++)
        if (memcmp(ops[i].origin, p->info.node_id, TM_NODE_ID_LEN) == 0) {
            vv_raise(&p->vv, ops[i].origin, ops[i].seq); /* its own ops are dense */
            p->vv_raised = true;
        }
    rc = refresh_vv(e);
    /* After the vector: ops of ours it held past ours may have extended it
     * (a restored copy that made nothing yet takes its old ops back). */
    if (rc == TM_OK && b->is_reply && !p->self_checked && !e->reincarnated)
        check_own_copy(e, p, b);
cleanup:
    free(ops);
    return rc;
}

/* A heartbeat's timing: remember what to echo, and take a clock sample
 * from its echo of ours. Implausible echoes are ignored (tm_clock.h). */
static void on_timing(tm_engine_t *e, peer_t *p, const Tillmesh__Timing *t, uint64_t now_ms,
                      uint64_t wall_ms)
{
    (void)e;
    if (!t || !t->has_wall_ms)
        return;
    if (t->has_tx_mono_ms && t->tx_mono_ms) {
        p->echo_tx_mono = t->tx_mono_ms;
        p->echo_rx_mono = now_ms;
    }
    int64_t off;
    uint64_t rtt;
    if (t->has_echo_mono_ms && t->has_echo_hold_ms &&
        tm_clock_sample(t->wall_ms, t->echo_mono_ms, t->echo_hold_ms, now_ms, wall_ms, &off, &rtt))
        tm_clock_filter_add(&p->clk, off, rtt);
}

void tm_engine_set_trusted_count(tm_engine_t *e, size_t n)
{
    e->n_trusted = n;
}

size_t tm_engine_max_entries(const tm_engine_t *e)
{
    size_t keys = e->n_trusted > e->n_peers ? e->n_trusted : e->n_peers;
    return e->vv.n + TM_ENGINE_ORIGINS_PER_KEY * (keys + 1) + TM_ENGINE_ORIGINS_SLACK;
}

/* True (and counted, and logged at most once a minute per peer) when a
 * count in the frame is past its bound (tm_engine.h): checked right after
 * decoding, before any work that grows with the count. */
static bool over_bound(tm_engine_t *e, peer_t *p, const Tillmesh__Envelope *env, size_t len,
                       uint64_t now_ms)
{
    size_t n = 0, max = tm_engine_max_entries(e);
    const char *what = "";
    switch (env->msg_case) {
    case TILLMESH__ENVELOPE__MSG_HELLO:
    case TILLMESH__ENVELOPE__MSG_HEARTBEAT: {
        const Tillmesh__NodeInfo *ni = env->msg_case == TILLMESH__ENVELOPE__MSG_HELLO
                                           ? env->hello->info
                                           : env->heartbeat->info;
        n = ni ? ni->n_vv : 0;
        what = "version vector entries";
        break;
    }
    case TILLMESH__ENVELOPE__MSG_PULL:
        n = env->pull->n_ranges;
        what = "pull ranges";
        break;
    case TILLMESH__ENVELOPE__MSG_OPS:
        n = env->ops->n_ops;
        max = e->cfg.batch_max_ops;
        what = "ops in one batch";
        break;
    default: return false;
    }
    if (n <= max)
        return false;
    e->stats.frames_over_bound++;
    p->info.frames_over_bound++;
    if (p->bound_logged_ms == 0 || now_ms - p->bound_logged_ms >= 60000) {
        tm_log_error(e->log,
                     "peer %s: dropped a %zu-byte frame with %zu %s (bound %zu: %zu trusted "
                     "keys); %llu more dropped since the last report",
                     p->info.name, len, n, what, max, e->n_trusted,
                     (unsigned long long)p->bound_unlogged);
        p->bound_logged_ms = now_ms ? now_ms : 1;
        p->bound_unlogged = 0;
    } else {
        p->bound_unlogged++;
    }
    return true;
}

int tm_engine_revoke(tm_engine_t *e, const char *name, bool revoked, tm_outbox_t *out)
{
    size_t idx;
    peer_t *p = find_peer(e, name, &idx);
    if (!p)
        return TM_ENOTFOUND;
    if (revoked == (p->info.state == TM_PEER_REVOKED))
        return TM_OK;
    if (!revoked) {
        set_state(e, p, TM_PEER_CONNECTING, "its key is trusted again");
        p->info.heard = false;
        return p->info.endpoint[0] ? queue_connect(out, p) : TM_OK;
    }
    tm_log_error(e->log,
                 "peer %s: its key is no longer in the trusted keys: revoked (connections "
                 "closed; nothing more is sent to it or taken from it)",
                 p->info.name);
    set_state(e, p, TM_PEER_REVOKED, "key revoked");
    if (e->pull_busy && e->pull_peer == idx)
        e->pull_busy = false;
    if (e->pending && e->pending_idx == idx) {
        tm_wire_envelope_free(e->pending);
        e->pending = NULL;
    }
    return TM_OK; /* the next tick re-runs the election without it */
}

/* The name a node id speaks for: the key that first spoke for it over an
 * authenticated connection (bound in the store, so that every sale of that
 * origin is judged against it). The one place that decides it: op
 * signatures will bind an origin to its signing key here instead. */
int tm_engine_set_peer_keys(tm_engine_t *e, const char *const *names, const uint8_t (*sign_pks)[32],
                            size_t n)
{
    void *keys = n ? calloc(n, sizeof *e->keys) : NULL;
    if (n && !keys)
        return TM_ENOMEM;
    free(e->keys);
    e->keys = keys;
    e->n_keys = n;
    for (size_t i = 0; i < n; i++) {
        tm_strlcpy(e->keys[i].name, names[i], sizeof e->keys[i].name);
        memcpy(e->keys[i].pk, sign_pks[i], 32);
    }
    return TM_OK;
}

/* Whether name's signing key, if we know it, owns node_id. */
static bool key_owns(const tm_engine_t *e, const char *name, const uint8_t node_id[TM_NODE_ID_LEN])
{
    for (size_t i = 0; i < e->n_keys; i++)
        if (strcmp(e->keys[i].name, name) == 0)
            return tm_sign_owns(e->keys[i].pk, node_id);
    return true;
}

int tm_engine__bind_origin(tm_engine_t *e, const uint8_t node_id[TM_NODE_ID_LEN], const char *name)
{
    if (!key_owns(e, name, node_id)) {
        /* Bound first come, another till's id would stay this key's for
         * good, and that till's own frames be refused (tm-sim
         * --impersonate). */
        char hex[2 * TM_NODE_ID_LEN + 1];
        tm_hex(node_id, TM_NODE_ID_LEN, hex);
        tm_log_error(e->log,
                     "key %s speaks for node %s, which its signing key does not own: its frames "
                     "are refused (a forged node id)",
                     name, hex);
        return TM_ECONFLICT;
    }
    int rc = tm_store_bind_origin(e->store, node_id, name);
    if (rc == TM_ECONFLICT) {
        char bound[TM_TILL_MAX], hex[2 * TM_NODE_ID_LEN + 1];
        tm_hex(node_id, TM_NODE_ID_LEN, hex);
        if (tm_store_origin_name(e->store, node_id, bound) != TM_OK)
            bound[0] = '\0';
        tm_log_error(e->log,
                     "key %s speaks for node %s, which belongs to till %s: its frames are refused "
                     "(a copied data folder, or a forged node id)",
                     name, hex, bound);
    } else if (rc) {
        tm_log_warn(e->log, "could not record that node id of %s: %s", name, tm_strerror(rc));
    }
    return rc;
}

static int note_sender(tm_engine_t *e, peer_t *p, const Tillmesh__Envelope *env, uint64_t now_ms)
{
    if (strcmp(env->store_id, e->store_id) != 0) {
        if (p->info.state != TM_PEER_FOREIGN)
            tm_log_warn(e->log, "peer %s belongs to store \"%.63s\", we are \"%s\": ignoring it",
                        p->info.name, env->store_id, e->store_id);
        tm_strlcpy(p->info.store_id, env->store_id, sizeof p->info.store_id);
        set_state(e, p, TM_PEER_FOREIGN, "other store");
        return TM_EPERM;
    }
    if (memcmp(env->sender.data, e->node_id, TM_NODE_ID_LEN) == 0)
        return TM_EPERM; /* our own echo (a loop in the config) */
    bool known =
        p->info.have_node_id && memcmp(p->info.node_id, env->sender.data, TM_NODE_ID_LEN) == 0;
    /* A key speaks only for the node id bound to it: another till's id is
     * refused (what it says of uplink, priority or acks would be taken as
     * that till's). Checked once per node id a peer presents. */
    if (!known && p->refused && memcmp(p->refused_id, env->sender.data, TM_NODE_ID_LEN) == 0) {
        p->info.frames_bad++;
        return TM_EPERM;
    }
    if (!known && tm_engine__bind_origin(e, env->sender.data, p->info.name) == TM_ECONFLICT) {
        p->refused = true;
        memcpy(p->refused_id, env->sender.data, TM_NODE_ID_LEN);
        p->info.frames_bad++;
        return TM_EPERM;
    }
    if (p->info.have_node_id && !known)
        tm_log_warn(e->log, "peer %s now has another node id (store wiped?)", p->info.name);
    memcpy(p->info.node_id, env->sender.data, TM_NODE_ID_LEN);
    p->info.have_node_id = true;
    tm_strlcpy(p->info.store_id, env->store_id, sizeof p->info.store_id);
    p->info.heard = true;
    p->info.last_seen_ms = now_ms;
    set_state(e, p, TM_PEER_ALIVE, "heard from it");
    return TM_OK;
}

static int run_pending(tm_engine_t *e, uint64_t now_ms, uint64_t wall_ms, tm_outbox_t *out)
{
    if (!e->pending)
        return TM_OK;
    Tillmesh__Envelope *env = e->pending;
    size_t idx = e->pending_idx;
    e->pending = NULL;
    if (e->intake_off) { /* the disk filled up since it arrived */
        e->stats.ops_dropped_disk += env->ops->n_ops;
        tm_wire_envelope_free(env);
        return TM_OK;
    }
    int rc = apply_ops(e, idx, env->ops, now_ms, wall_ms);
    if (rc == TM_OK)
        rc = maybe_pull(e, idx, now_ms, out);
    tm_wire_envelope_free(env);
    return rc;
}

int tm_engine_on_frame(tm_engine_t *e, const char *peer, const uint8_t *frame, size_t len,
                       uint64_t now_ms, uint64_t wall_ms, tm_outbox_t *out)
{
    Tillmesh__Envelope *env = NULL;
    size_t idx;
    peer_t *p = find_peer(e, peer, &idx);
    if (!p) {
        if (!(p = new_peer(e, peer, TM_SRC_LEARNED)))
            return TM_ENOMEM;
        idx = e->n_peers - 1;
        tm_log_info(e->log, "peer %s: learned (it connected to us)", peer);
    }
    (void)run_pending(e, now_ms, wall_ms, out); /* keep the order of arrival */
    p = &e->peers[idx];
    if (p->info.state == TM_PEER_REVOKED) {
        /* The shell drops them too; this covers what was already queued. */
        e->stats.frames_revoked++;
        return TM_EPERM;
    }
    e->stats.frames_in++;
    p->info.frames_in++;
    int rc = tm_wire_envelope_decode(frame, len, &env);
    if (rc) {
        e->stats.frames_bad++;
        p->info.frames_bad++;
        /* Log the first few, then every 100th: a broken peer must not be
         * able to fill the disk with our logs. */
        if (p->info.frames_bad <= 5 || p->info.frames_bad % 100 == 0)
            tm_log_warn(e->log, "peer %s: dropped a %zu-byte frame: %s (%llu so far)", peer, len,
                        tm_strerror(rc), (unsigned long long)p->info.frames_bad);
        return rc;
    }
    if (over_bound(e, p, env, len, now_ms))
        goto cleanup;
    if (note_sender(e, p, env, now_ms) != TM_OK)
        goto cleanup;
    switch (env->msg_case) {
    case TILLMESH__ENVELOPE__MSG_HELLO:
    case TILLMESH__ENVELOPE__MSG_HEARTBEAT: {
        const Tillmesh__NodeInfo *ni = env->msg_case == TILLMESH__ENVELOPE__MSG_HELLO
                                           ? env->hello->info
                                           : env->heartbeat->info;
        on_timing(e, p,
                  env->msg_case == TILLMESH__ENVELOPE__MSG_HELLO ? env->hello->timing
                                                                 : env->heartbeat->timing,
                  now_ms, wall_ms);
        if ((rc = on_info(e, idx, ni, out)) == TM_OK)
            rc = maybe_pull(e, idx, now_ms, out);
        tm_engine__elect(e, now_ms);
        /* A hello: it has not heard from us. Our vector goes out now, not
         * at the next round (a till back from a day off waited up to a
         * heartbeat for it before its catch-up began); at most one early
         * round per half interval, whoever says hello. */
        if (env->msg_case == TILLMESH__ENVELOPE__MSG_HELLO &&
            now_ms + e->cfg.heartbeat_ms / 2 < e->next_heartbeat)
            e->next_heartbeat = now_ms;
        break;
    }
    case TILLMESH__ENVELOPE__MSG_OPS:
        if (e->intake_off) {
            if (env->ops->is_reply && e->pull_busy && e->pull_peer == idx)
                e->pull_busy = false; /* a self-check in it is asked again */
            e->stats.ops_dropped_disk += env->ops->n_ops;
            break;
        }
        if (env->ops->is_reply && e->pull_busy && e->pull_peer == idx) {
            e->pull_busy = false;
            if (env->ops->n_ops && prefetch_pull(e, idx, env->ops, now_ms, out) == TM_OK &&
                e->pull_busy) {
                e->pending = env; /* applied by the next tm_engine_tick */
                e->pending_idx = idx;
                return TM_OK;
            }
        }
        rc = apply_ops(e, idx, env->ops, now_ms, wall_ms);
        if (rc == TM_OK)
            rc = maybe_pull(e, idx, now_ms, out);
        break;
    case TILLMESH__ENVELOPE__MSG_PULL: rc = answer_pull(e, p, env->pull, out); break;
    default: break;
    }
cleanup:
    tm_wire_envelope_free(env);
    return rc;
}

int tm_engine_local_op(tm_engine_t *e, uint32_t kind, uint64_t hlc, const uint8_t *body, size_t len,
                       uint64_t now_ms, tm_outbox_t *out)
{
    (void)now_ms;
    uint64_t seq;
    int rc = tm_store_append_local(e->store, kind, hlc, body, len, &seq);
    if (rc)
        return rc;
    if (!e->first_made && !e->reincarnated)
        e->first_made = seq;
    if ((rc = refresh_vv(e)))
        return rc;
    Tillmesh__Op op = TILLMESH__OP__INIT, *opp = &op;
    op.has_origin = op.has_seq = op.has_hlc = op.has_kind = op.has_body = 1;
    op.origin.data = e->node_id;
    op.origin.len = TM_NODE_ID_LEN;
    op.seq = seq;
    op.hlc = hlc;
    op.kind = (Tillmesh__OpKind)kind;
    op.body.data = (uint8_t *)(uintptr_t)body;
    op.body.len = len;
    /* The signature and chain link the store made with it. */
    tm_range_t r = {.from = seq, .to = seq};
    tm_op_t *held = NULL;
    size_t n_held = 0;
    memcpy(r.origin, e->node_id, TM_NODE_ID_LEN);
    if (tm_store_read_ops(e->store, &r, 1, 1, 0, &held, &n_held) == TM_OK && n_held == 1 &&
        held[0].has_sig) {
        op.has_sig = op.has_prev = 1;
        op.sig.data = held[0].sig;
        op.sig.len = 64;
        op.prev.data = held[0].prev;
        op.prev.len = 32;
    }
    Tillmesh__OpBatch batch = TILLMESH__OP_BATCH__INIT;
    batch.n_ops = 1;
    batch.ops = &opp;
    Tillmesh__Envelope env;
    env_init(e, &env);
    env.msg_case = TILLMESH__ENVELOPE__MSG_OPS;
    env.ops = &batch;
    /* The op is durable already; a failed push is repaired by pull. */
    for (size_t i = 0; i < e->n_peers; i++) {
        if (e->peers[i].info.state == TM_PEER_ALIVE &&
            send_env(e, out, &e->peers[i], &env) == TM_OK)
            e->stats.ops_pushed++;
    }
    tm_store_ops_free(held, n_held);
    return TM_OK;
}

int tm_engine_tick(tm_engine_t *e, uint64_t now_ms, uint64_t wall_ms, tm_outbox_t *out)
{
    (void)run_pending(e, now_ms, wall_ms, out);
    expire_untrusted(e, wall_ms);
    for (size_t i = 0; i < e->n_peers; i++) {
        peer_t *p = &e->peers[i];
        if (p->info.state == TM_PEER_ALIVE &&
            now_ms - p->info.last_seen_ms > tm_engine__peer_timeout(e, &p->info))
            set_state(e, p, TM_PEER_DOWN, "no heartbeat");
    }
    if (e->pull_busy && now_ms >= e->pull_deadline) {
        e->stats.pulls_timed_out++;
        tm_log_info(e->log, "pull from %s unanswered after %u ms; asking again",
                    e->peers[e->pull_peer].info.name, e->cfg.pull_timeout_ms);
        e->pull_busy = false;
        /* Now, not at its next heartbeat (up to 60 s away): a pull sent
         * just before our link to it was up is dropped by the transport,
         * and its hello, which would have started another, came while this
         * one was in flight (it_mesh_greet). A peer that never answers is
         * asked once per pull timeout. */
        int rc = maybe_pull(e, e->pull_peer, now_ms, out);
        if (rc)
            return rc;
    }
    tm_engine__watch_forwarder(e, now_ms);
    tm_engine__elect(e, now_ms);
    if (now_ms >= e->next_heartbeat) {
        e->next_heartbeat = now_ms + e->cfg.heartbeat_ms;
        clock_report(e, now_ms, wall_ms);
        return send_heartbeats(e, now_ms, wall_ms, out);
    }
    return TM_OK;
}

uint64_t tm_engine_next_deadline(const tm_engine_t *e)
{
    if (e->pending)
        return 0; /* work to do now */
    uint64_t d = e->next_heartbeat;
    if (e->pull_busy && e->pull_deadline < d)
        d = e->pull_deadline;
    for (size_t i = 0; i < e->n_peers; i++) {
        const peer_t *p = &e->peers[i];
        uint64_t t = p->info.last_seen_ms + tm_engine__peer_timeout(e, &p->info) + 1;
        if (p->info.state == TM_PEER_ALIVE && t < d)
            d = t;
    }
    return d;
}
