/* sim_int.h - the simulated store, shared by the files of sim/ (not public). */
#ifndef TM_SIM_INT_H
#define TM_SIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_engine.h"
#include "tm_fwd_core.h"
#include "tm_sim.h"
#include "tm_store.h"

/* ---- randomness: xoshiro256** seeded by splitmix64 (rng.c) ------------- */

typedef struct {
    uint64_t s[4];
} sim_rng_t;

void sim_rng_seed(sim_rng_t *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng_t *r);
/* Uniform in [0, n); n > 0. */
uint64_t sim_rng_below(sim_rng_t *r, uint64_t n);
/* Uniform in [lo, hi]. */
int64_t sim_rng_range(sim_rng_t *r, int64_t lo, int64_t hi);
/* True with probability ppm / 1e6. */
bool sim_rng_ppm(sim_rng_t *r, uint32_t ppm);
/* Log-uniform in [lo, hi] (lo > 0): as likely minutes as decades. */
uint64_t sim_rng_log(sim_rng_t *r, uint64_t lo, uint64_t hi);
/* Reseeds the bytes libsodium hands out (see tm_sim_entropy_install). */
void sim_entropy_seed(uint64_t seed);

/* ---- events ------------------------------------------------------------- */

typedef enum {
    EV_DELIVER = 1, /* a frame from a reaches b */
    EV_TICK,        /* till a's engine deadline */
    EV_POS,         /* the next POS operation */
    EV_FAULT,       /* the next fault */
    EV_LINK_UP,     /* a -> b passes frames again */
    EV_PLUG,        /* till a's cable is plugged back */
    EV_RESTART,     /* crashed till a starts again from its store */
    EV_NET_CALM,    /* loss and duplication end */
    EV_DISK_OK,     /* till a has disk space again */
    EV_HEAL,        /* the end of faults and load */
    EV_CHECK,       /* settle: are the tills level yet? */
    EV_WATCH,       /* during the load: the invariants that hold at all times */
    EV_ATTACK,      /* the faulty till a sends a crafted frame (faulty.c) */
    EV_BACKUP,      /* till a's store files are copied */
    EV_RESTORE,     /* till a crashes and starts again from that copy */
    EV_COMMIT,      /* plant ack-before-commit: the op the POS was told of is stored */
    EV_FWD,         /* till a's forwarder timeout (gen) */
    EV_ERP_ARRIVE,  /* request gen reaches the ERP (erp.c) */
    EV_ERP_PROCESS, /* a stalled request is taken at last */
    EV_ERP_ANSWER,  /* the answer to request gen reaches its till */
    EV_ERP_TIMEOUT, /* request gen: request_timeout_ms ran out */
    EV_ERP_RESTART, /* the ERP restarts: bookings kept, in-flight lost */
    EV_VERDICT,     /* till a's probe gives its verdict on its route (gen) */
    EV_END          /* the watch after settling is over */
} sim_ev_kind_t;

/* A till's route to the ERP (what its probe would see). */
typedef enum { ROUTE_UP = 0, ROUTE_SLOW, ROUTE_SILENT, ROUTE_REFUSED } sim_route_t;

typedef struct {
    uint64_t at, seq;
    sim_ev_kind_t kind;
    int a, b;
    uint64_t gen;
    uint8_t *buf;
    size_t len;
} sim_ev_t;

typedef struct {
    sim_ev_t *v;
    size_t n, cap;
} sim_queue_t;

/* ---- tills -------------------------------------------------------------- */

typedef struct {
    char name[8];
    char path[256];
    tm_store_t *store;
    tm_engine_t *eng;
    bool up;
    bool disk_low;      /* below the watermark: peers' ops are not taken */
    tm_log_t log;       /* its engine's log lines go to stderr, tagged seed/till */
    tm_uplink_t uplink; /* what its probe would say: its own route to the ERP */
    uint32_t priority;  /* election priority (config) */
    uint8_t pk[32], sk[64];
    uint64_t mono_base;    /* monotonic = sim time + this (new on every start) */
    int64_t wall_off;      /* wall clock = true time + this + drift */
    int32_t drift_ppm;     /* parts per million */
    uint32_t hb_ms;        /* heartbeat */
    uint32_t batch;        /* ops per pull answer */
    uint64_t tick_gen;     /* only the newest EV_TICK counts */
    uint64_t tick_at;      /* sim time of that tick (0: none) */
    tm_engine_stats_t acc; /* stats of earlier incarnations, summed */
    uint64_t incarnation;  /* starts so far: an op queued by a dead process is lost */
    /* erp.c: the forwarder, its config, and the route behind the uplink */
    tm_fwd_core_t *fwd;
    uint64_t fwd_gen, fwd_at, verdict_gen;
    sim_route_t route, route0;
    uint32_t fwd_batch, fwd_inflight, fwd_backoff_max, fwd_reconcile;
} sim_till_t;

/* What the POS was told, to check against at the end. */
typedef struct {
    char id[TM_UUID_LEN];
    int till;
    uint64_t at;
    int64_t total;
    bool held_elsewhere; /* the restored till's, made after its backup: a peer held it at the
                            restore */
} sim_sale_t;

/* A frame the faulty till heard, kept for replays. */
typedef struct {
    uint8_t *buf;
    size_t len;
    int from;
} sim_frame_t;

#define SIM_CAPTURED 8

#define SIM_MAX_CUSTOMERS 6

typedef struct {
    uint64_t seed;
    tm_sim_cfg_t cfg;
    tm_sim_result_t *res;
    sim_rng_t rng;
    sim_queue_t q;
    uint64_t now, seq;
    char dir[256];
    int k;
    sim_till_t t[TM_SIM_MAX_TILLS];
    /* network */
    bool link[TM_SIM_MAX_TILLS][TM_SIM_MAX_TILLS]; /* frames a -> b pass */
    bool cable[TM_SIM_MAX_TILLS];
    uint32_t loss_ppm, dup_ppm;
    uint32_t lat_min, lat_spread, spike_ppm; /* ms, ms, probability of a 0..300 ms spike */
    /* fault profile (per seed) */
    bool f_links, f_cables, f_crash, f_clocks, f_lossy, f_disk, f_uplink;
    uint64_t fault_gap_ms; /* mean gap between faults */
    /* load */
    int ops_left;
    uint64_t load_ms, heal_at, settle_deadline;
    bool healed, settled;
    sim_sale_t *sales;
    size_t n_sales, cap_sales;
    int n_customers;
    uint32_t writes;          /* unique value counter for customer edits */
    uint32_t *overwritten_by; /* [w] = the write that read w and replaced it, 0: none */
    int *write_till;          /* [w] = till that made write w */
    size_t cap_writes;
    tm_outbox_t box;
    uint64_t hash;
    /* faulty.c: its own generator, so seeds without these run as before */
    sim_rng_t frng;
    int faulty;   /* the faulty till, -1: none */
    int restored; /* the till restored from a copy of its store, -1: none */
    uint64_t attack_gap_ms, backup_at, restore_at;
    uint32_t writes_at_backup, writes_at_restore; /* edits made by then (s->writes) */
    bool have_backup;
    uint8_t evil_pk[32], evil_sk[64]; /* a key no till trusts */
    sim_frame_t captured[SIM_CAPTURED];
    size_t n_captured;
    uint32_t forged;
    bool impersonated; /* --impersonate: done */
    /* erp.c: the ERP (NULL in a seed without one) */
    bool erp_on;
    struct sim_erp *erp;
    int erp_restarts;
    /* [a][b]: no cut, pull, crash or loss between a and b since */
    uint64_t pair_since[TM_SIM_MAX_TILLS][TM_SIM_MAX_TILLS];
    bool ended;      /* the watch after settling is over */
    uint32_t hb_max; /* the slowest heartbeat: peer timeout 3 of them */
} sim_t;

/* sim.c */
void sim_push(sim_t *s, uint64_t at, sim_ev_kind_t kind, int a, int b, uint64_t gen, uint8_t *buf,
              size_t len);
uint64_t sim_mono(const sim_t *s, int i);
uint64_t sim_wall(const sim_t *s, int i);
void sim_flush(sim_t *s, int i);
void sim_hash(sim_t *s, const void *p, size_t n);
void sim_hash_u64(sim_t *s, uint64_t v);
void sim_trace(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a broken invariant (the first one wins) and stops the run. */
void sim_violation(sim_t *s, const char *invariant, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int sim_till_start(sim_t *s, int i);
bool sim_planted(const sim_t *s, const char *name);
void sim_till_crash(sim_t *s, int i);
void sim_disturb(sim_t *s, int a, int b);
/* a and b are up and hear each other now, without loss. */
bool sim_connected(const sim_t *s, int a, int b);

/* load.c: the POS */
void sim_load_step(sim_t *s);
/* A customer edit on till i stamped `stamp` instead of after what it
 * shows (the faulty till's counter-end stamps). */
void sim_load_edit_stamped(sim_t *s, int i, uint64_t stamp);
/* Plant ack-before-commit: the op that EV_COMMIT stores (buf: body). */
void sim_load_commit(sim_t *s, int i, uint32_t kind, uint64_t hlc, const uint8_t *body, size_t len);

/* faulty.c: the faulty till and the restored till */
void sim_faulty_draw(sim_t *s);
void sim_faulty_start(sim_t *s);
void sim_capture(sim_t *s, int from, const uint8_t *buf, size_t len);
void sim_attack(sim_t *s);
void sim_backup(sim_t *s);
void sim_restore(sim_t *s);
void sim_faulty_free(sim_t *s);
void sim_load_free(sim_t *s);

/* erp.c: the forwarders and the ERP */
void sim_erp_draw(sim_t *s);
void sim_erp_start(sim_t *s);
void sim_erp_free(sim_t *s);
int sim_fwd_open(sim_t *s, int i);
void sim_fwd_close(sim_t *s, int i);
void sim_fwd_step(sim_t *s, int i);
void sim_erp_event(sim_t *s, sim_ev_t *ev);
void sim_erp_fault(sim_t *s, int i);
void sim_erp_route(sim_t *s, int i, sim_route_t route);
void sim_erp_heal(sim_t *s);
bool sim_erp_settled(sim_t *s, char *why, size_t sz);
void sim_erp_settle(sim_t *s);
void sim_erp_check_final(sim_t *s);

/* check.c: invariants */
void sim_check_running(sim_t *s);
/* True when every till is up and holds the same ops (digest and vector). */
bool sim_level(sim_t *s);
/* After settling, with every till up and connected: every till names the
 * same forwarder, exactly one till thinks it is it, and it has a working
 * uplink (none when no till has one). False with why filled otherwise. */
bool sim_election_ok(sim_t *s, char *why, size_t sz);
/* Why the tills are not level: the first difference found, for the report. */
void sim_explain_unlevel(sim_t *s, char *out, size_t sz);
void sim_check_final(sim_t *s);

#endif
