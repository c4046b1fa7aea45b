/*
 * tm_engine.h - the replication engine: a functional core.
 *
 * The engine decides what to say to which peer. It takes inputs - a frame
 * from a peer, a timer tick, a local write - each with the current monotonic
 * and wall-clock time passed in, and appends its outputs to a tm_outbox_t:
 * frames to send to a named peer, peers to connect to. It never reads a
 * clock or touches a socket; the daemon shell (tm_mesh) does the I/O. It does
 * use the store, which is deterministic local state. So unit tests and a
 * simulator can drive many engines against each other with no sockets.
 *
 * Peers are named by the name their CurveZMQ key has in the store's trusted
 * keys file: the shell only delivers frames from authenticated peers and
 * tells the engine which key sent them.
 *
 * Protocol (see README "Replication"):
 *  - every heartbeat_ms, a Heartbeat with our version vector and digest goes
 *    to every peer;
 *  - a local op is pushed at once to every live peer;
 *  - when a peer's vector shows ops we lack, we send it a PullRequest for the
 *    missing ranges; it answers with one bounded OpBatch, and we pull again
 *    until we have caught up. One pull is in flight at a time, so memory
 *    stays flat however far behind we are. Because vectors cover every
 *    origin, a till catches up through any third till.
 *  - no op is ever refused for its timestamp: clocks are measured and
 *    reported (tm_engine_clock), never trusted for ordering beyond the HLC;
 *  - Peer sessions are a state machine (connecting -> alive -> down ->
 *    alive ...); every transition is logged.
 *
 * Ownership: the engine borrows the store; the caller keeps it open for the
 * engine's lifetime. Frames in an outbox are owned by the outbox.
 */
#ifndef TM_ENGINE_H
#define TM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_common.h"
#include "tm_store.h"

#define TM_PEER_NAME_MAX 64
#define TM_ENDPOINT_MAX  128
#define TM_STORE_ID_MAX  64

typedef struct tm_engine tm_engine_t;

typedef struct {
    const char *name;          /* this till's name */
    const char *store_id;      /* frames of other stores are dropped */
    const char *mesh_endpoint; /* advertised to peers so they can connect back */
    uint32_t heartbeat_ms;     /* default 500, at most TM_ENGINE_HEARTBEAT_MAX_MS */
    uint32_t peer_timeout_ms;  /* a peer silent this long is down; default 3 heartbeats */
    uint32_t pull_timeout_ms;  /* an unanswered pull is given up after this; default 2000 */
    uint32_t batch_max_ops;    /* ops per pull reply; default 1000 */
    uint32_t batch_max_bytes;  /* body bytes per pull reply; default 1 MiB */
    /* Clocks never gate replication; these only bound what a wrong clock
     * does to ours and say when to report one (see tm_hlc.h, tm_clock.h). */
    uint64_t hlc_adopt_ms;  /* a peer stamp this far ahead is adopted; default 60 s */
    uint64_t clock_warn_ms; /* a clock this far from the store's is reported; default 5 s */
    uint32_t priority;      /* uplink election priority (advertised) */
    /* How many new ops one origin may make this till store per hour (a
     * token bucket of that size refilled over the hour); ops past it wait
     * and are pulled again when the bucket allows. Default 20000. */
    uint32_t origin_quota_ops_per_hour;
    /* A forwarder under which the oldest unsent sale stays the oldest this
     * long is passed over (0: never; default off). */
    uint32_t forwarder_stall_ms;
} tm_engine_cfg_t;

typedef enum { TM_OUT_SEND = 1, TM_OUT_CONNECT = 2 } tm_out_kind_t;

typedef struct {
    tm_out_kind_t kind;
    char peer[TM_PEER_NAME_MAX];
    char endpoint[TM_ENDPOINT_MAX]; /* CONNECT */
    uint8_t *frame;                 /* SEND: encoded Envelope, malloc'd */
    size_t len;
} tm_out_t;

typedef struct {
    tm_out_t *v;
    size_t n, cap;
} tm_outbox_t;

/* Frees every frame and empties the box (keeps its capacity). */
void tm_outbox_clear(tm_outbox_t *box);
/* Frees everything. */
void tm_outbox_free(tm_outbox_t *box);

typedef enum {
    TM_PEER_CONNECTING = 0, /* known, nothing heard yet */
    TM_PEER_ALIVE,
    TM_PEER_DOWN,      /* silent for longer than peer_timeout_ms */
    TM_PEER_FOREIGN,   /* speaks for another store id: ignored */
    TM_PEER_UNTRUSTED, /* discovered, but its key is not in our trusted keys */
    TM_PEER_REVOKED    /* its key was removed from the trusted keys: cut off */
} tm_peer_state_t;

typedef enum { TM_SRC_STATIC = 0, TM_SRC_MDNS, TM_SRC_LEARNED } tm_peer_source_t;

const char *tm_peer_state_name(tm_peer_state_t s);
const char *tm_peer_source_name(tm_peer_source_t s);

/* A snapshot of one peer, for status. */
typedef struct {
    char name[TM_PEER_NAME_MAX];
    char endpoint[TM_ENDPOINT_MAX];
    char store_id[TM_STORE_ID_MAX]; /* "" until heard */
    tm_peer_source_t source;
    tm_peer_state_t state;
    bool have_node_id;
    uint8_t node_id[TM_NODE_ID_LEN];
    bool heard;            /* false until the first frame */
    uint64_t last_seen_ms; /* monotonic */
    bool have_digest;
    uint8_t digest[32];
    uint64_t they_lack; /* ops we hold that the peer's vector lacks */
    uint64_t we_lack;   /* ops the peer's vector has that we lack */
    uint64_t frames_in, frames_bad, ops_in;
    uint64_t frames_over_bound; /* frames with more entries than allowed (dropped) */
    /* Discovery (mDNS): where it was announced, and when. */
    char addresses[256];
    bool announced;             /* currently announced */
    uint64_t announced_wall_ms; /* last announcement (0: never) */
    /* What it advertises for the forwarder election. */
    bool uplink_up;
    uint64_t uplink_since_ms; /* wall */
    uint32_t priority;
    uint32_t heartbeat_ms; /* its heartbeat interval as it says (0: it does not) */
    bool complete;
    bool claims; /* it says it is the forwarder */
    /* Its catalogue: greatest ERP version held, and the wall ms of its
     * newest page (0: none, or a build without catalogue). */
    uint64_t catalogue_version, catalogue_synced_ms;
    bool catalogue_capable; /* its heartbeats carry them: it reads OP_CATALOGUE */
    uint64_t epoch;
    /* When it last heard the forwarder it names (our monotonic ms, from
     * forwarder_heard_ms in its heartbeat); fwd_heard false if it did not
     * say. Lets us keep a forwarder alive that only we stopped hearing. */
    bool fwd_heard;
    uint8_t fwd_node[TM_NODE_ID_LEN];
    uint64_t fwd_heard_at_ms;
    /* Its wall clock minus ours, estimated from heartbeats (tm_clock.h). */
    bool clock_known;
    int64_t clock_offset_ms;
    uint64_t clock_rtt_ms;
    uint64_t stamps_far_ahead; /* its op stamps too far ahead to adopt */
    uint64_t ops_refused;      /* its ops that failed verification (evidence) */
    uint64_t ops_deferred;     /* its ops we could not verify yet */
} tm_peer_info_t;

int tm_engine_new(const tm_engine_cfg_t *cfg, tm_store_t *store, const tm_log_t *log,
                  tm_engine_t **out);
void tm_engine_destroy(tm_engine_t **self_p);

/* Adds a peer we should talk to (static config or discovery) and queues a
 * CONNECT. Adding a known name updates its endpoint (and reconnects if it
 * changed). */
int tm_engine_add_peer(tm_engine_t *self, const char *name, const char *endpoint,
                       tm_peer_source_t source, tm_outbox_t *out);

/* A frame from the authenticated peer `peer`. Malformed frames are logged,
 * counted and dropped: TM_EPROTO is returned but nothing else happens. */
int tm_engine_on_frame(tm_engine_t *self, const char *peer, const uint8_t *frame, size_t len,
                       uint64_t now_ms, uint64_t wall_ms, tm_outbox_t *out);

/* Timers: heartbeats, peer timeouts, pull timeouts. Call at or after
 * tm_engine_next_deadline(). */
int tm_engine_tick(tm_engine_t *self, uint64_t now_ms, uint64_t wall_ms, tm_outbox_t *out);
uint64_t tm_engine_next_deadline(const tm_engine_t *self);

/* A stamp for a local edit. */
uint64_t tm_engine_hlc_now(tm_engine_t *self, uint64_t wall_ms);
/* A stamp for a local edit of a record whose greatest stamp is floor: it
 * orders after floor whatever the clocks say (tm_hlc_after). */
uint64_t tm_engine_hlc_after(tm_engine_t *self, uint64_t floor, uint64_t wall_ms);

/* Store time: our clock against the median of every clock we measure. */
typedef struct {
    size_t measured;        /* peers alive with an estimate (0: nothing to compare) */
    int64_t offset_ms;      /* our clock minus the store's median (0 if none measured) */
    bool skewed;            /* |offset_ms| > clock_warn_ms */
    uint64_t warn_ms;       /* the bound */
    size_t peers_skewed;    /* peers whose clock is off the median by more */
    uint64_t stamp_lead_ms; /* how far our HLC runs ahead of our wall clock */
} tm_clock_status_t;

void tm_engine_clock(const tm_engine_t *self, uint64_t wall_ms, tm_clock_status_t *out);

/* Stores a local op durably (one transaction, fsynced) and queues a push of
 * it to every live peer. Returns the store's error (TM_EFULL, TM_EPROTO...)
 * and queues nothing on failure. */
int tm_engine_local_op(tm_engine_t *self, uint32_t kind, uint64_t hlc, const uint8_t *body,
                       size_t len, uint64_t now_ms, tm_outbox_t *out);

/* Disk watermark: while intake is off, ops from peers (pushes and pull
 * answers) are dropped unapplied and nothing is pulled, so that the space
 * left goes to this till's own sales; heartbeats go on, and once intake is
 * back the normal pull fetches what was missed. */
void tm_engine_set_intake(tm_engine_t *self, bool accept);
bool tm_engine_intake(const tm_engine_t *self);

/* ---- uplink and forwarder election (tm_elect.h) -------------------- */

typedef enum { TM_UPLINK_UNKNOWN = 0, TM_UPLINK_UP = 1, TM_UPLINK_DOWN = 2 } tm_uplink_t;

const char *tm_uplink_name(tm_uplink_t u);

/* Our own uplink, as the probe sees it after hysteresis. A change is
 * advertised at once (an immediate heartbeat) and re-runs the election. */
void tm_engine_set_uplink(tm_engine_t *self, tm_uplink_t state, uint64_t since_wall_ms,
                          uint64_t now_ms);

typedef struct {
    bool have; /* false: nobody can reach the ERP */
    uint8_t node_id[TM_NODE_ID_LEN];
    char name[TM_PEER_NAME_MAX]; /* "" if unknown */
    uint64_t epoch;
    bool is_self; /* we are chosen */
    /* Monotonic ms from which we may forward: a newly chosen till first
     * claims the role for one heartbeat, so that two tills that chose
     * themselves (their views differed) settle it before either sends. */
    uint64_t active_from_ms;
    /* The standby: next in line, the only other till that probes the ERP
     * fast (tm_elect_standby). */
    bool have_standby;
    char standby_name[TM_PEER_NAME_MAX];
    bool standby_is_self;
} tm_forwarder_t;

/* The current election result. */
void tm_engine_forwarder(const tm_engine_t *self, tm_forwarder_t *out);
/* Whether this till should probe the ERP at the fast pace: it is the
 * forwarder or the standby, or no election has settled yet. The others
 * probe slowly and learn the store's state from heartbeats. */
bool tm_engine_probe_fast(const tm_engine_t *self);

/* A till seen by discovery that we must not talk to: its key is not
 * trusted, or it belongs to another store. Shown in status with that state;
 * never connected. */
int tm_engine_note_peer(tm_engine_t *self, const char *name, const char *endpoint,
                        tm_peer_state_t state, const char *store_id);
/* Records an mDNS announcement (or its end) for status. */
void tm_engine_peer_announced(tm_engine_t *self, const char *name, const char *addresses, bool up,
                              uint64_t wall_ms);

size_t tm_engine_peer_count(const tm_engine_t *self);
/* Fills *info for peer i (0 <= i < count); TM_EINVAL out of range. */
int tm_engine_peer_info(const tm_engine_t *self, size_t i, tm_peer_info_t *info);

typedef struct {
    uint64_t frames_in, frames_out, frames_bad;
    uint64_t ops_pushed, ops_pulled, ops_applied;
    uint64_t pulls_sent, pulls_timed_out;
    uint64_t stamps_far_ahead;       /* peer op stamps too far ahead to adopt */
    uint64_t ops_dropped_disk;       /* peer ops dropped while intake was off */
    uint64_t ops_refused;            /* failed verification: kept as evidence */
    uint64_t ops_deferred;           /* not verifiable yet */
    uint64_t frames_over_bound;      /* frames with more entries than allowed (dropped) */
    uint64_t frames_revoked;         /* frames from a revoked peer (dropped) */
    uint64_t ops_over_quota;         /* peer ops not taken (yet) for their origin's quota */
    uint64_t ops_kept_aside;         /* peer ops kept in the log but not shown (conflicts) */
    uint64_t forwarders_passed_over; /* forwarders whose backlog did not shrink in time */
    uint64_t claims_implausible;     /* heartbeats with priority or epoch out of range */
    uint64_t links_greeted;          /* heartbeat rounds sent as a peer's link came up */
} tm_engine_stats_t;

void tm_engine_stats(const tm_engine_t *self, tm_engine_stats_t *out);
/* The mesh finished a handshake with peer `name`: what we sent it before
 * was dropped, so a heartbeat round (a hello to a peer not heard yet) goes
 * out at the next tick. */
void tm_engine_link_up(tm_engine_t *self, const char *name, uint64_t now_ms);

/* ---- bounds, quota, revocation ------------------------------------- */

/*
 * Every count in a frame is bounded before any work is done on it:
 *  - version vector entries and pull ranges: at most what we hold plus
 *    TM_ENGINE_ORIGINS_PER_KEY per trusted key (a till gets a new origin
 *    when its store is rebuilt) plus a slack for a store's history of
 *    rebuilt tills (a new till holds nothing yet and must still take its
 *    peers' vectors);
 *  - ops per batch: at most batch_max_ops (a pull answer never holds more
 *    than we asked for; a push holds one).
 * A frame over a bound is dropped whole, counted (frames_over_bound) and
 * logged at most once a minute per peer.
 */
#define TM_ENGINE_ORIGINS_PER_KEY 4
#define TM_ENGINE_ORIGINS_SLACK   256
/* The number of keys in the trusted keys file (the daemon sets it at start
 * and on reload); the bounds above are derived from it. */
void tm_engine_set_trusted_count(tm_engine_t *self, size_t n);
/* Each trusted till's signing key (the third field of its trusted keys
 * line), by name, replacing what was set before. A node id a peer
 * presents is bound to it only if its key owns that id (tm_sign_owns):
 * another till's id is refused even from a till heard first. A peer with
 * no key here is bound first come, as before. */
int tm_engine_set_peer_keys(tm_engine_t *self, const char *const *names,
                            const uint8_t (*sign_pks)[32], size_t n);
/* The largest vector (or pull request) a peer may send us now. */
size_t tm_engine_max_entries(const tm_engine_t *self);

/* A peer whose key left the trusted keys (revoked = true): state revoked,
 * nothing more is sent to it or taken from it (its frames are dropped and
 * counted), it takes no part in the election. revoked = false undoes it
 * (its key came back) and queues a CONNECT. TM_ENOTFOUND if unknown. */
int tm_engine_revoke(tm_engine_t *self, const char *name, bool revoked, tm_outbox_t *out);

/* Origins whose quota is spent: their ops are not taken until it refills. */
typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    char name[TM_PEER_NAME_MAX]; /* the peer with that node id, "" if none */
    uint64_t refused;            /* ops not taken (yet) since it was hit */
    uint64_t since_wall_ms;      /* when it was hit */
} tm_quota_info_t;

/* Fills up to max entries; returns how many origins are limited now. */
size_t tm_engine_quota_limited(const tm_engine_t *self, uint64_t now_ms, tm_quota_info_t *out,
                               size_t max);
uint32_t tm_engine_quota_per_hour(const tm_engine_t *self);

/* Entries for tills discovered with an untrusted key are forgotten once
 * unannounced for this long, and at most this many are kept (the oldest
 * goes first): anyone on the LAN can announce fingerprints. */
#define TM_ENGINE_UNTRUSTED_EXPIRE_MS (10u * 60u * 1000u)
#define TM_ENGINE_UNTRUSTED_MAX       32
/* The slowest heartbeat a till may have (config) or announce (a peer's
 * announced interval is cut to it). */
#define TM_ENGINE_HEARTBEAT_MAX_MS 60000

#endif
