/* engine_int.h - the engine's state, shared by engine.c (replication) and
 * engine_elect.c (uplink and forwarder election). Not a public header. */
#ifndef TM_ENGINE_INT_H
#define TM_ENGINE_INT_H

#include "tm_clock.h"
#include "tm_elect.h"
#include "tm_engine.h"
#include "tm_hlc.h"
#include "tm_wire.h"

typedef struct {
    tm_peer_info_t info;
    tm_vv_t vv; /* the peer's vector as last heard */
    /* Clock estimate: samples, and what to echo in our next heartbeat. */
    tm_clock_filter_t clk;
    uint64_t echo_tx_mono; /* its monotonic send time of its last heartbeat */
    uint64_t echo_rx_mono; /* our monotonic time when that arrived */
    bool clock_reported;   /* we logged its clock as off the store's */
    /* Origins whose ops this peer sent us that we refused or could not
     * verify yet: not pulled from it again until `until` (monotonic), so a
     * bad op cannot make us ask for it in a loop, and an honest peer can
     * bring the real op meanwhile. */
    struct {
        uint8_t origin[TM_NODE_ID_LEN];
        uint64_t until;
    } defer[TM_APPLY_REPORT_ORIGINS];
    uint64_t refused_logged; /* monotonic ms of the last refusal log line */
    uint64_t seen_wall_ms;   /* discovery: last announced or withdrawn (wall) */
    /* Over-bound frames: when we last logged one, and how many since. */
    uint64_t bound_logged_ms;
    uint64_t bound_unlogged;
    /* The last node id it presented that belongs to another till: its
     * frames are refused without asking the store (or logging) again. */
    bool refused;
    uint8_t refused_id[TM_NODE_ID_LEN];
    /* Since we started: asked for its copies of the ops we made since
     * (self_check_sent), and an answer held one of them (self_checked);
     * not before self_check_at (monotonic) in a pull of its own. Per peer:
     * a till may hold our pre-restore ops past a gap its vector hides. */
    bool self_check_sent, self_checked;
    uint64_t self_check_at;
    /* Its copies of our ops up to this seq, from the first we made since
     * we started, were ours: what may stay in our origin when it holds more
     * of it than we do (check_restored). */
    uint64_t checked_to;
    /* Not before then (monotonic): the next gap probe of pull_from; and
     * its vector was raised by its pushes since its last heartbeat (newer
     * than the digest that came with it). */
    uint64_t gap_probe_at;
    bool vv_raised;
} peer_t;

/* One origin's quota: a token bucket of cfg.origin_quota_ops_per_hour
 * ops, refilled over an hour (monotonic time). */
typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    double tokens;
    uint64_t at_ms; /* tokens as of this time */
    bool limited;   /* spent: taken again once a minute's worth is back */
    uint64_t refused;
    uint64_t since_wall_ms;
} quota_t;

struct tm_engine {
    tm_engine_cfg_t cfg;
    char name[TM_PEER_NAME_MAX];
    char store_id[TM_STORE_ID_MAX];
    char endpoint[TM_ENDPOINT_MAX];
    const tm_log_t *log;
    tm_store_t *store;
    uint8_t node_id[TM_NODE_ID_LEN];
    tm_hlc_t hlc;
    tm_vv_t vv; /* ours, refreshed after every write */
    peer_t *peers;
    size_t n_peers, cap_peers;
    uint64_t next_heartbeat;
    bool pull_busy;
    size_t pull_peer;
    uint64_t pull_deadline;
    /* Uplink and election. */
    tm_uplink_t uplink;
    uint64_t uplink_since;
    tm_elect_result_t elect;
    uint64_t claim_since_ms; /* when we last became the forwarder */
    uint64_t started_ms;     /* first tick: the start-up grace runs from here */
    bool started;
    /* A pull answer received but not yet applied (see prefetch_pull). */
    Tillmesh__Envelope *pending;
    size_t pending_idx;
    tm_engine_stats_t stats;
    /* Store time reporting: whether our clock was last reported as off,
     * and when (monotonic), so that the log says it again now and then but
     * not every heartbeat. */
    bool clock_reported;
    uint64_t clock_logged_ms;
    bool intake_off; /* disk watermark: peers' ops are not taken */
    /* Restore from backup: the highest seq of our own origin when we
     * started (held_at_start), or the store's older mark of a start whose
     * ops not every peer has checked yet (own_seq_at_start: our ops past
     * it are the ones checked and re-issued); and whether we already moved
     * to a new incarnation. */
    uint64_t own_seq_at_start, held_at_start;
    bool reincarnated;
    /* Whether a peer's copy of an op we made since we started was found
     * to differ (a fork signed by our key; peer_t.self_checked): a
     * restored store that made as many ops as it lost before hearing from
     * a peer is told apart only by content, not by seq. */
    bool own_fork;
    /* The lowest seq of ours, past own_seq_at_start, at which a peer's
     * copy was another op (0: none seen): what moves starts there. */
    uint64_t fork_seq;
    /* A peer held more of our origin than we did (check_restored). */
    bool behind;
    /* The first op of our origin this run made (0: none yet). */
    uint64_t first_made;
    /* Every peer checked them, none forked: the store's mark is cleared
     * (tm_store_self_check_mark). */
    bool self_check_done;
    size_t n_trusted; /* keys in the trusted keys file: frame bounds */
    /* Each trusted till's signing key by name (tm_engine_set_peer_keys): a
     * node id is bound only to the till whose key owns it. */
    struct {
        char name[TM_PEER_NAME_MAX];
        uint8_t pk[32];
    } * keys;
    size_t n_keys;
    quota_t *quota; /* per origin, bounded by TM_ENGINE_QUOTA_ORIGINS */
    size_t n_quota;
    /* The forwarder's progress as this till sees it: the oldest unsent
     * sale, and since when it has been the oldest under that forwarder. */
    struct {
        bool have;
        uint8_t node[TM_NODE_ID_LEN];
        uint64_t oldest_hlc, since_ms, next_ms;
    } watch;
    /* Forwarders passed over: not candidates before until_ms, nor while
     * they still claim the role. */
    struct {
        uint8_t node[TM_NODE_ID_LEN];
        uint64_t until_ms;
    } passed[8];
    size_t n_passed;
    /* The standby (tm_elect_standby): next in line, probes fast. */
    bool have_standby;
    uint8_t standby[TM_NODE_ID_LEN];
    /* We took over as the standby everyone agreed on: no settling wait. */
    bool claim_at_once;
};

/* Binds node_id to the till name that speaks for it (tm_store_bind_origin),
 * logging a refusal; TM_ECONFLICT when it belongs to another name. */
int tm_engine__bind_origin(tm_engine_t *e, const uint8_t node_id[TM_NODE_ID_LEN], const char *name);

/* Our own view that we lack no op a live peer advertises. */
bool tm_engine__self_complete(const tm_engine_t *e);
/* Checks that the forwarder shrinks the backlog (tm_engine_tick). */
void tm_engine__watch_forwarder(tm_engine_t *e, uint64_t now_ms);
/* Milliseconds since we last heard the forwarder we name (0: it is us);
 * false if we name none or never heard it. For our heartbeats. */
bool tm_engine__forwarder_heard(const tm_engine_t *e, uint64_t now_ms, uint32_t *ms);
/* Re-runs the election; logs a change and, if the result changed, makes
 * the next heartbeat go out now. */
void tm_engine__elect(tm_engine_t *e, uint64_t now_ms);
/* How long peer p may stay silent before it is down: our peer timeout, or
 * three of p's own heartbeat intervals, whichever is longer (a till
 * configured with a slower heartbeat is not timed out between two of its
 * heartbeats; the default timeout is three heartbeats too). */
uint64_t tm_engine__peer_timeout(const tm_engine_t *e, const tm_peer_info_t *p);

#endif
