/* sim.c - the simulated store: event queue, tills, LAN, clocks, faults, and
 * the run loop (see tm_sim.h, docs/sim.md). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim_int.h"
#include "tm_sign.h"

/* True time starts here (2026-09-01); tills' wall clocks are offsets of it. */
#define SIM_EPOCH_MS 1788220800000ULL
/* After healing, the tills must be level within this much simulated time. */
#define SIM_SETTLE_MAX_MS  (120u * 1000u)
#define SIM_CHECK_EVERY_MS 250u
#define SIM_WATCH_EVERY_MS 500u
#define SIM_EVENTS_MAX     (50u * 1000u * 1000u)

/* ---- planted bugs (tests only: docs/sim.md) ---------------------------- */

static const char *const plants[] = {
    "ignore-floor",      /* shell: edits stamped without reading the record's stamp */
    "ack-before-commit", /* shell: the POS is answered before the op is stored */
    "trust-forged",      /* shell: the forger's key left in the trusted keys */
#ifdef TM_PLANTS
    "hlc-wrap",         /* core/hlc.c: the counter wraps instead of carrying */
    "no-reincarnate",   /* core/engine.c: a restored till keeps its old origin */
    "no-self-check",    /* core/engine.c: restores told apart by seq only (the old rule) */
    "resend-acked",     /* core/fwd.c: a successor re-sends acknowledged sales, new key */
    "ack-unnamed",      /* core/fwd.c: a 200 acknowledges sales the ERP did not book */
    "no-step-down",     /* core/fwd.c: a forwarder keeps sending after a hand-over */
    "own-peer-timeout", /* core/engine_elect.c: a slower peer's heartbeat ignored */
#endif
};

bool tm_sim_plant_known(const char *name)
{
    for (size_t i = 0; i < sizeof plants / sizeof plants[0]; i++)
        if (strcmp(name, plants[i]) == 0)
            return true;
    return false;
}

bool sim_planted(const sim_t *s, const char *name)
{
    return s->cfg.plant && strcmp(s->cfg.plant, name) == 0;
}

/* ---- trace and hash ----------------------------------------------------- */

void sim_hash(sim_t *s, const void *p, size_t n)
{
    /* FNV-1a: not a cryptographic hash, a fingerprint of the run. */
    const uint8_t *b = p;
    uint64_t h = s->hash;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    s->hash = h;
}

void sim_hash_u64(sim_t *s, uint64_t v)
{
    sim_hash(s, &v, sizeof v);
}

void sim_trace(sim_t *s, const char *fmt, ...)
{
    if (!s->cfg.trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(s->cfg.trace, "%10llu.%03llu ", (unsigned long long)(s->now / 1000),
            (unsigned long long)(s->now % 1000));
    vfprintf(s->cfg.trace, fmt, ap);
    fputc('\n', s->cfg.trace);
    va_end(ap);
}

void sim_violation(sim_t *s, const char *invariant, const char *fmt, ...)
{
    if (s->res->violated)
        return;
    s->res->violated = true;
    snprintf(s->res->invariant, sizeof s->res->invariant, "%s", invariant);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->res->detail, sizeof s->res->detail, fmt, ap);
    va_end(ap);
    sim_trace(s, "VIOLATION %s: %s", invariant, s->res->detail);
}

/* ---- the event queue: a binary heap by (at, seq) -------------------------- */

static bool s_before(const sim_ev_t *x, const sim_ev_t *y)
{
    return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

void sim_push(sim_t *s, uint64_t at, sim_ev_kind_t kind, int a, int b, uint64_t gen, uint8_t *buf,
              size_t len)
{
    sim_queue_t *q = &s->q;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 1024;
        sim_ev_t *v = realloc(q->v, cap * sizeof *v);
        if (!v) {
            free(buf);
            sim_violation(s, "simulator", "out of memory for the event queue");
            return;
        }
        q->v = v;
        q->cap = cap;
    }
    sim_ev_t ev = {.at = at,
                   .seq = s->seq++,
                   .kind = kind,
                   .a = a,
                   .b = b,
                   .gen = gen,
                   .buf = buf,
                   .len = len};
    size_t i = q->n++;
    while (i > 0 && s_before(&ev, &q->v[(i - 1) / 2])) {
        q->v[i] = q->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->v[i] = ev;
}

static sim_ev_t s_pop(sim_queue_t *q)
{
    sim_ev_t top = q->v[0], last = q->v[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && s_before(&q->v[c + 1], &q->v[c]))
            c++;
        if (!s_before(&q->v[c], &last))
            break;
        q->v[i] = q->v[c];
        i = c;
    }
    if (q->n)
        q->v[i] = last;
    return top;
}

/* ---- clocks --------------------------------------------------------------- */

uint64_t sim_mono(const sim_t *s, int i)
{
    return s->now + s->t[i].mono_base;
}

uint64_t sim_wall(const sim_t *s, int i)
{
    const sim_till_t *t = &s->t[i];
    int64_t w =
        (int64_t)(SIM_EPOCH_MS + s->now) + t->wall_off + (int64_t)s->now * t->drift_ppm / 1000000;
    return w < 1 ? 1 : (uint64_t)w; /* a clock never reads before 1970 */
}

/* Log lines carry simulated time: a replay prints the same lines. */
static uint64_t s_log_now(void *ctx)
{
    const sim_t *s = ctx;
    return SIM_EPOCH_MS + s->now;
}

/* ---- the LAN -------------------------------------------------------------- */

static int s_index(const sim_t *s, const char *name)
{
    for (int i = 0; i < s->k; i++)
        if (strcmp(s->t[i].name, name) == 0)
            return i;
    return -1;
}

static bool s_passes(const sim_t *s, int a, int b)
{
    return s->cable[a] && s->cable[b] && s->link[a][b];
}

bool sim_connected(const sim_t *s, int a, int b)
{
    return s->t[a].up && s->t[b].up && s_passes(s, a, b) && s_passes(s, b, a) && !s->loss_ppm;
}

static uint64_t s_latency(sim_t *s)
{
    uint64_t l = s->lat_min + sim_rng_below(&s->rng, s->lat_spread + 1);
    if (sim_rng_ppm(&s->rng, s->spike_ppm))
        l += sim_rng_below(&s->rng, 300); /* a slow frame: others overtake it */
    return l;
}

static void s_schedule_tick(sim_t *s, int i)
{
    sim_till_t *t = &s->t[i];
    uint64_t d = tm_engine_next_deadline(t->eng);
    if (d == UINT64_MAX)
        return;
    /* 0: work to do now. One ms later, so a tick that leaves work pending
     * cannot stall simulated time. */
    uint64_t at = d > t->mono_base ? d - t->mono_base : 0;
    if (at <= s->now)
        at = s->now + 1;
    if (t->tick_at == at)
        return;
    t->tick_at = at;
    sim_push(s, at, EV_TICK, i, -1, ++t->tick_gen, NULL, 0);
}

/* Sends what till i's engine queued, then books its next tick. */
void sim_flush(sim_t *s, int i)
{
    tm_outbox_t *box = &s->box;
    /* The daemon steps its forwarder on every loop turn: here, whenever
     * the till's engine ran (its ops go out with the engine's). */
    sim_fwd_step(s, i);
    for (size_t k = 0; k < box->n; k++) {
        tm_out_t *o = &box->v[k];
        if (o->kind != TM_OUT_SEND)
            continue; /* CONNECT: every till knows every other from the start */
        int j = s_index(s, o->peer);
        if (j < 0) {
            sim_violation(s, "honest-run", "till %s sent to unknown peer %s", s->t[i].name,
                          o->peer);
            continue;
        }
        if (!s_passes(s, i, j)) {
            sim_trace(s, "drop %s->%s len=%zu (cut)", s->t[i].name, s->t[j].name, o->len);
            continue;
        }
        if (sim_rng_ppm(&s->rng, s->loss_ppm)) {
            sim_trace(s, "drop %s->%s len=%zu (loss)", s->t[i].name, s->t[j].name, o->len);
            continue;
        }
        int copies = sim_rng_ppm(&s->rng, s->dup_ppm) ? 2 : 1;
        for (int c = 0; c < copies; c++) {
            uint8_t *buf = c + 1 < copies ? malloc(o->len) : o->frame;
            if (!buf)
                continue;
            if (buf != o->frame)
                memcpy(buf, o->frame, o->len);
            else
                o->frame = NULL; /* the event owns it now */
            sim_push(s, s->now + s_latency(s), EV_DELIVER, i, j, 0, buf, o->len);
        }
    }
    tm_outbox_clear(box);
    if (s->t[i].up)
        s_schedule_tick(s, i);
}

/* Frames between a and b (b -1: a and every till; a -1: every pair) were
 * lost or could have been, from now: the two-senders bound restarts. */
void sim_disturb(sim_t *s, int a, int b)
{
    for (int i = 0; i < s->k; i++)
        for (int j = 0; j < s->k; j++)
            if (a < 0 || (i == a && (b < 0 || j == b)) || (j == a && (b < 0 || i == b)))
                s->pair_since[i][j] = s->now;
}

/* ---- tills ---------------------------------------------------------------- */

int sim_till_start(sim_t *s, int i)
{
    sim_till_t *t = &s->t[i];
    uint8_t pks[TM_SIM_MAX_TILLS + 1][32];
    int rc = tm_store_open(t->path, NULL, &t->store);
    if (rc) {
        sim_violation(s, "store-open", "till %s: %s (%s)", t->name, tm_strerror(rc), t->path);
        return rc;
    }
    size_t n_pks = (size_t)s->k;
    for (int j = 0; j < s->k; j++)
        memcpy(pks[j], s->t[j].pk, 32);
    if (s->faulty >= 0 && sim_planted(s, "trust-forged"))
        memcpy(pks[n_pks++], s->evil_pk, 32); /* a revocation never applied */
    if ((rc = tm_store_set_signer(t->store, t->pk, t->sk, NULL)) ||
        (rc = tm_store_set_trusted(t->store, (const uint8_t(*)[32])pks, n_pks))) {
        sim_violation(s, "store-open", "till %s: keys: %s", t->name, tm_strerror(rc));
        return rc;
    }
    tm_engine_cfg_t cfg = {.name = t->name,
                           .store_id = "sim-store",
                           .mesh_endpoint = "sim://lan",
                           .heartbeat_ms = t->hb_ms,
                           /* The default: 3 of its own heartbeats, and 3 of
                            * a slower peer's (heartbeats say their interval).
                            * Before they did, a slower peer flapped alive/down
                            * for good, and the election with it (docs/sim.md
                            * "Found while building it"). */
                           .peer_timeout_ms = 0,
                           .batch_max_ops = t->batch,
                           .priority = t->priority,
                           /* Wrong clocks are the point here, and reporting
                            * them (an error line per till and turn) is tested
                            * by test_engine; the sim checks they never gate. */
                           .clock_warn_ms = 1000ULL * 365 * 86400000ULL};
    t->log.level = getenv("TM_SIM_DEBUG") ? TM_LOG_DEBUG : TM_LOG_ERROR;
    t->log.now_ms = s_log_now;
    t->log.now_ctx = s;
    snprintf(t->log.tag, sizeof t->log.tag, "seed %llu t%u",
             (unsigned long long)(s->seed % 1000000000000ULL), (unsigned)i % 100u);
    if ((rc = tm_engine_new(&cfg, t->store, &t->log, &t->eng))) {
        sim_violation(s, "engine-new", "till %s: %s", t->name, tm_strerror(rc));
        return rc;
    }
    tm_engine_set_trusted_count(t->eng, (size_t)s->k);
    const char *names[TM_SIM_MAX_TILLS];
    for (int j = 0; j < s->k; j++)
        names[j] = s->t[j].name;
    if ((rc = tm_engine_set_peer_keys(t->eng, names, (const uint8_t(*)[32])pks, (size_t)s->k))) {
        sim_violation(s, "engine-new", "till %s: peer keys: %s", t->name, tm_strerror(rc));
        return rc;
    }
    if (t->disk_low)
        tm_engine_set_intake(t->eng, false); /* the daemon checks at start */
    /* A restart is a new process: monotonic time starts somewhere else. */
    t->mono_base = 1000 + sim_rng_below(&s->rng, 1000000000ULL);
    t->up = true;
    t->incarnation++;
    t->tick_at = 0;
    /* The probe's first answer, as if it came at once. */
    tm_engine_set_uplink(t->eng, t->uplink, sim_wall(s, i), sim_mono(s, i));
    for (int j = 0; j < s->k; j++)
        if (j != i &&
            (rc = tm_engine_add_peer(t->eng, s->t[j].name, "sim://lan", TM_SRC_STATIC, &s->box)))
            sim_violation(s, "engine-new", "till %s: add peer %s: %s", t->name, s->t[j].name,
                          tm_strerror(rc));
    if ((rc = sim_fwd_open(s, i)))
        return rc;
    sim_flush(s, i);
    return TM_OK;
}

static void s_stats_add(tm_engine_stats_t *acc, const tm_engine_stats_t *x)
{
    acc->frames_bad += x->frames_bad;
    acc->ops_refused += x->ops_refused;
    acc->ops_deferred += x->ops_deferred;
    acc->frames_over_bound += x->frames_over_bound;
    acc->ops_over_quota += x->ops_over_quota;
    acc->ops_applied += x->ops_applied;
}

/* kill -9: the engine and its memory go; the store keeps what it committed. */
void sim_till_crash(sim_t *s, int i)
{
    sim_till_t *t = &s->t[i];
    tm_engine_stats_t st;
    if (t->eng) {
        tm_engine_stats(t->eng, &st);
        s_stats_add(&t->acc, &st);
    }
    sim_fwd_close(s, i);
    tm_engine_destroy(&t->eng);
    tm_store_destroy(&t->store);
    t->up = false;
    t->tick_gen++; /* its pending tick is void */
    t->tick_at = 0;
}

/* ---- faults --------------------------------------------------------------- */

static void s_fault(sim_t *s)
{
    int kinds[7], nk = 0;
    if (s->f_links)
        kinds[nk++] = 0;
    if (s->f_cables)
        kinds[nk++] = 1;
    if (s->f_crash)
        kinds[nk++] = 2;
    if (s->f_clocks)
        kinds[nk++] = 3;
    if (s->f_lossy)
        kinds[nk++] = 4;
    if (s->f_disk)
        kinds[nk++] = 5;
    if (s->f_uplink)
        kinds[nk++] = 6;
    if (!nk)
        return;
    int kind = kinds[sim_rng_below(&s->rng, (uint64_t)nk)];
    int a = (int)sim_rng_below(&s->rng, (uint64_t)s->k);
    int b = (int)sim_rng_below(&s->rng, (uint64_t)s->k - 1);
    b += b >= a;
    uint64_t dur = sim_rng_log(&s->rng, 50, 10000);
    s->res->faults++;
    if (kind == 0)
        sim_disturb(s, a, b);
    else if (kind == 1 || kind == 2)
        sim_disturb(s, a, -1);
    else if (kind == 4)
        sim_disturb(s, -1, -1);
    switch (kind) {
    case 0: /* one direction only: a hears b, b does not hear a */
        s->link[a][b] = false;
        sim_push(s, s->now + dur, EV_LINK_UP, a, b, 0, NULL, 0);
        sim_trace(s, "fault: %s->%s cut for %llu ms", s->t[a].name, s->t[b].name,
                  (unsigned long long)dur);
        break;
    case 1:
        s->cable[a] = false;
        sim_push(s, s->now + dur, EV_PLUG, a, -1, 0, NULL, 0);
        sim_trace(s, "fault: %s cable pulled for %llu ms", s->t[a].name, (unsigned long long)dur);
        break;
    case 2:
        if (!s->t[a].up)
            break;
        sim_trace(s, "fault: %s crashes, down for %llu ms", s->t[a].name, (unsigned long long)dur);
        sim_till_crash(s, a);
        s->res->crashes++;
        sim_push(s, s->now + dur, EV_RESTART, a, -1, 0, NULL, 0);
        break;
    case 3: {
        /* NTP steps it, or a reboot without NTP: seconds to decades. */
        int64_t step = (int64_t)sim_rng_log(&s->rng, 500, 20ULL * 365 * 86400000ULL);
        if (sim_rng_below(&s->rng, 2))
            step = -step;
        if (sim_rng_below(&s->rng, 3) == 0)
            step = -s->t[a].wall_off; /* NTP puts it right */
        s->t[a].wall_off += step;
        sim_trace(s, "fault: %s clock steps %+lld ms (now off %+lld ms)", s->t[a].name,
                  (long long)step, (long long)s->t[a].wall_off);
        break;
    }
    case 4:
        s->loss_ppm = (uint32_t)sim_rng_below(&s->rng, 300000);
        s->dup_ppm = (uint32_t)sim_rng_below(&s->rng, 100000);
        sim_push(s, s->now + dur, EV_NET_CALM, -1, -1, 0, NULL, 0);
        sim_trace(s, "fault: loss %u ppm, duplicates %u ppm for %llu ms", s->loss_ppm, s->dup_ppm,
                  (unsigned long long)dur);
        break;
    case 5:
        /* Disk below the watermark: its own sales go on, peers' ops wait. */
        if (s->t[a].disk_low)
            break;
        s->t[a].disk_low = true;
        if (s->t[a].up)
            tm_engine_set_intake(s->t[a].eng, false);
        sim_push(s, s->now + dur, EV_DISK_OK, a, -1, 0, NULL, 0);
        sim_trace(s, "fault: %s disk low for %llu ms", s->t[a].name, (unsigned long long)dur);
        break;
    case 6:
        if (s->erp_on) {
            sim_erp_fault(s, a); /* its route: the probe's verdict follows */
            break;
        }
        /* Its uplink (router, 4G dongle) goes or comes back: the election
         * follows. Not healed at the end: an uplink is not the LAN. */
        s->t[a].uplink = s->t[a].uplink == TM_UPLINK_UP ? TM_UPLINK_DOWN : TM_UPLINK_UP;
        sim_trace(s, "fault: %s uplink %s", s->t[a].name, tm_uplink_name(s->t[a].uplink));
        if (s->t[a].up) {
            tm_engine_set_uplink(s->t[a].eng, s->t[a].uplink, sim_wall(s, a), sim_mono(s, a));
            sim_flush(s, a); /* it heartbeats at once: its next tick moved */
        }
        break;
    }
}

static void s_heal(sim_t *s)
{
    s->healed = true;
    s->heal_at = s->now;
    s->settle_deadline = s->now + SIM_SETTLE_MAX_MS;
    s->loss_ppm = s->dup_ppm = 0;
    for (int i = 0; i < s->k; i++) {
        s->cable[i] = true;
        for (int j = 0; j < s->k; j++)
            s->link[i][j] = true;
    }
    for (int i = 0; i < s->k; i++)
        s->t[i].disk_low = false;
    for (int i = 0; i < s->k; i++)
        if (s->t[i].up)
            tm_engine_set_intake(s->t[i].eng, true);
    for (int i = 0; i < s->k; i++)
        if (!s->t[i].up && sim_till_start(s, i) == TM_OK)
            sim_trace(s, "heal: %s restarts", s->t[i].name);
    if (s->erp_on)
        sim_erp_heal(s);
    sim_disturb(s, -1, -1);
    sim_trace(s, "heal: every cable plugged, every till up");
    sim_push(s, s->now + SIM_CHECK_EVERY_MS, EV_CHECK, -1, -1, 0, NULL, 0);
}

/* ---- the run -------------------------------------------------------------- */

static void s_deliver(sim_t *s, sim_ev_t *ev)
{
    sim_till_t *to = &s->t[ev->b];
    if (!to->up || !s_passes(s, ev->a, ev->b)) {
        sim_trace(s, "lost %s->%s len=%zu (%s)", s->t[ev->a].name, to->name, ev->len,
                  to->up ? "cable pulled in flight" : "till down");
        return;
    }
    sim_hash_u64(s, ((uint64_t)ev->a << 8) | (uint64_t)ev->b);
    sim_hash(s, ev->buf, ev->len);
    s->res->frames++;
    sim_trace(s, "deliver %s->%s len=%zu", s->t[ev->a].name, to->name, ev->len);
    if (ev->b == s->faulty)
        sim_capture(s, ev->a, ev->buf, ev->len);
    tm_engine_on_frame(to->eng, s->t[ev->a].name, ev->buf, ev->len, sim_mono(s, ev->b),
                       sim_wall(s, ev->b), &s->box);
    sim_flush(s, ev->b);
}

static void s_event(sim_t *s, sim_ev_t *ev)
{
    sim_till_t *t = ev->a >= 0 ? &s->t[ev->a] : NULL;
    sim_hash_u64(s, s->now);
    sim_hash_u64(s, (uint64_t)ev->kind);
    switch (ev->kind) {
    case EV_DELIVER: s_deliver(s, ev); break;
    case EV_TICK:
        if (!t->up || ev->gen != t->tick_gen)
            break;
        t->tick_at = 0;
        tm_engine_tick(t->eng, sim_mono(s, ev->a), sim_wall(s, ev->a), &s->box);
        sim_flush(s, ev->a);
        break;
    case EV_POS:
        if (s->healed || s->ops_left <= 0)
            break;
        sim_load_step(s);
        s->ops_left--;
        if (s->ops_left > 0)
            sim_push(s, s->now + sim_rng_below(&s->rng, 2 * s->load_ms / (uint64_t)s->res->ops + 1),
                     EV_POS, -1, -1, 0, NULL, 0);
        break;
    case EV_FAULT:
        if (s->healed)
            break;
        s_fault(s);
        sim_push(s, s->now + 1 + sim_rng_below(&s->rng, 2 * s->fault_gap_ms), EV_FAULT, -1, -1, 0,
                 NULL, 0);
        break;
    case EV_LINK_UP:
        s->link[ev->a][ev->b] = true;
        sim_disturb(s, ev->a, ev->b);
        break;
    case EV_PLUG:
        s->cable[ev->a] = true;
        sim_disturb(s, ev->a, -1);
        break;
    case EV_FWD:
    case EV_ERP_ARRIVE:
    case EV_ERP_PROCESS:
    case EV_ERP_ANSWER:
    case EV_ERP_TIMEOUT:
    case EV_ERP_RESTART:
    case EV_VERDICT: sim_erp_event(s, ev); break;
    case EV_END: s->ended = true; break;
    case EV_RESTART:
        sim_disturb(s, ev->a, -1);
        if (!t->up && sim_till_start(s, ev->a) == TM_OK)
            sim_trace(s, "%s restarts from its store", t->name);
        break;
    case EV_NET_CALM:
        s->loss_ppm = s->dup_ppm = 0;
        sim_disturb(s, -1, -1);
        break;
    case EV_DISK_OK:
        t->disk_low = false;
        if (t->up)
            tm_engine_set_intake(t->eng, true);
        break;
    case EV_HEAL: s_heal(s); break;
    case EV_ATTACK: sim_attack(s); break;
    case EV_BACKUP: sim_backup(s); break;
    case EV_RESTORE: sim_restore(s); break;
    case EV_COMMIT:
        if (t->up && ev->gen == t->incarnation && ev->len >= 8) {
            uint64_t hlc;
            memcpy(&hlc, ev->buf, 8);
            sim_load_commit(s, ev->a, (uint32_t)ev->b, hlc, ev->buf + 8, ev->len - 8);
        } else {
            sim_trace(s, "%s: an acknowledged op was never stored (the till crashed)", t->name);
        }
        break;
    case EV_WATCH:
        if (s->healed)
            break;
        sim_check_running(s);
        sim_push(s, s->now + SIM_WATCH_EVERY_MS, EV_WATCH, -1, -1, 0, NULL, 0);
        break;
    case EV_CHECK:
        sim_check_running(s);
        char why[400], erp_why[300] = "";
        bool level = sim_level(s), elected = level && sim_election_ok(s, why, sizeof why);
        if (elected && sim_erp_settled(s, erp_why, sizeof erp_why)) {
            s->settled = true;
            s->res->settle_ms = s->now - s->heal_at;
            sim_trace(s, "settled %llu ms after healing", (unsigned long long)s->res->settle_ms);
            sim_erp_settle(s);
        } else if (s->now >= s->settle_deadline) {
            if (elected) {
                sim_violation(s, "exactly-once", "%u s after healing: %s", SIM_SETTLE_MAX_MS / 1000,
                              erp_why);
            } else if (level) {
                sim_violation(s, "election", "%u s after healing: %s", SIM_SETTLE_MAX_MS / 1000,
                              why);
            } else {
                sim_explain_unlevel(s, why, sizeof why);
                sim_violation(s, "convergence", "tills not level %u s after healing: %s",
                              SIM_SETTLE_MAX_MS / 1000, why);
            }
        } else {
            sim_push(s, s->now + SIM_CHECK_EVERY_MS, EV_CHECK, -1, -1, 0, NULL, 0);
        }
        break;
    }
}

/* Draws the store for this seed: tills, clocks, network, fault profile. */
static void s_draw(sim_t *s)
{
    sim_rng_t *r = &s->rng;
    /* Drawn whether given or not, so --tills/--ops replay what --seeds ran. */
    int k = (int)sim_rng_range(r, 2, 8), ops = (int)sim_rng_range(r, 10, 60);
    s->k = s->cfg.tills ? s->cfg.tills : k;
    s->res->tills = s->k;
    s->res->ops = s->ops_left = s->cfg.ops ? s->cfg.ops : ops;
    s->load_ms = 5000 + 150 * (uint64_t)s->res->ops;
    s->lat_min = (uint32_t)sim_rng_range(r, 0, 2);
    s->lat_spread = (uint32_t)sim_rng_range(r, 0, 20);
    s->spike_ppm = (uint32_t)sim_rng_below(r, 50000);
    uint32_t mask = (uint32_t)sim_rng_below(r, 128); /* which faults this seed has */
    s->f_links = mask & 1;
    s->f_cables = mask & 2;
    s->f_crash = mask & 4;
    s->f_clocks = mask & 8;
    s->f_lossy = mask & 16;
    s->f_disk = mask & 32;
    s->f_uplink = mask & 64;
    s->fault_gap_ms = sim_rng_log(r, 200, 5000);
    s->n_customers = (int)sim_rng_range(r, 1, SIM_MAX_CUSTOMERS);
    for (int i = 0; i < s->k; i++) {
        sim_till_t *t = &s->t[i];
        snprintf(t->name, sizeof t->name, "t%u", (unsigned)i % 100u);
        snprintf(t->path, sizeof t->path, "%.200s/t%u.db", s->dir, (unsigned)i % 100u);
        uint8_t curve[32];
        for (int b = 0; b < 32; b += 8) {
            uint64_t v = sim_rng_next(r);
            memcpy(curve + b, &v, 8);
        }
        tm_sign_keypair(curve, t->pk, t->sk);
        /* Half the tills are right; the others are off by seconds to decades. */
        if (sim_rng_below(r, 2)) {
            t->wall_off = (int64_t)sim_rng_log(r, 1000, 25ULL * 365 * 86400000ULL);
            if (sim_rng_below(r, 2))
                t->wall_off = -t->wall_off;
        } else {
            t->wall_off = sim_rng_range(r, -500, 500);
        }
        t->drift_ppm = (int32_t)sim_rng_range(r, -200, 200);
        t->hb_ms = (uint32_t)sim_rng_range(r, 50, 500);
        if (t->hb_ms > s->hb_max)
            s->hb_max = t->hb_ms;
        t->batch = (uint32_t)sim_rng_log(r, 2, 1000);
        t->priority = (uint32_t)sim_rng_below(r, 3);
        t->uplink = sim_rng_below(r, 10) < 7 ? TM_UPLINK_UP : TM_UPLINK_DOWN;
        s->cable[i] = true;
        for (int j = 0; j < s->k; j++)
            s->link[i][j] = true;
    }
}

static void s_free(sim_t *s)
{
    for (int i = 0; i < s->k; i++)
        sim_till_crash(s, i);
    while (s->q.n) {
        sim_ev_t ev = s_pop(&s->q);
        free(ev.buf);
    }
    free(s->q.v);
    tm_outbox_free(&s->box);
    sim_load_free(s);
    sim_faulty_free(s);
    sim_erp_free(s);
    if (s->dir[0] && !s->cfg.keep) {
        char p[300];
        for (int i = 0; i < s->k; i++)
            for (int x = 0; x < 3; x++) {
                static const char *const sfx[] = {"", "-wal", "-shm"};
                snprintf(p, sizeof p, "%s%s", s->t[i].path, sfx[x]);
                unlink(p);
            }
        rmdir(s->dir);
    }
}

int tm_sim_run(const tm_sim_cfg_t *cfg, tm_sim_result_t *res)
{
    if (cfg->plant && !tm_sim_plant_known(cfg->plant))
        return TM_EINVAL;
    if ((cfg->tills && (cfg->tills < 2 || cfg->tills > TM_SIM_MAX_TILLS)) || cfg->ops < 0)
        return TM_EINVAL;
    memset(res, 0, sizeof *res);
    sim_t *s = calloc(1, sizeof *s);
    if (!s)
        return TM_ENOMEM;
    int rc = TM_OK;
    s->seed = cfg->seed;
    s->cfg = *cfg;
    s->res = res;
    s->hash = 0xcbf29ce484222325ULL;
    sim_rng_seed(&s->rng, cfg->seed);
    sim_entropy_seed(cfg->seed);
    snprintf(s->dir, sizeof s->dir, "%s/tm-sim-%llu-XXXXXX", cfg->dir ? cfg->dir : "/tmp",
             (unsigned long long)cfg->seed);
    if (!mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        rc = TM_EIO;
        goto cleanup;
    }
    s_draw(s);
    sim_faulty_draw(s);
    sim_erp_draw(s);
    res->erp = s->erp_on;
    res->faulty = s->faulty;
    res->restored = s->restored;
    sim_trace(s, "seed %llu: %d tills, %d ops, faults%s%s%s%s%s%s%s%s%s",
              (unsigned long long)cfg->seed, s->k, res->ops, s->f_links ? " links" : "",
              s->f_cables ? " cables" : "", s->f_crash ? " crashes" : "",
              s->f_clocks ? " clocks" : "", s->f_lossy ? " loss" : "", s->f_disk ? " disk" : "",
              s->f_uplink ? " uplinks" : "", s->faulty >= 0 ? " faulty-till" : "",
              s->restored >= 0 ? " restored-till" : "");
    for (int i = 0; i < s->k; i++) {
        if ((rc = sim_till_start(s, i)))
            goto cleanup;
        sim_trace(s,
                  "%s up: clock %+lld ms, drift %+d ppm, heartbeat %u ms, batch %u, uplink %s, "
                  "priority %u",
                  s->t[i].name, (long long)s->t[i].wall_off, s->t[i].drift_ppm, s->t[i].hb_ms,
                  s->t[i].batch, tm_uplink_name(s->t[i].uplink), s->t[i].priority);
    }
    sim_push(s, sim_rng_below(&s->rng, 200), EV_POS, -1, -1, 0, NULL, 0);
    sim_push(s, sim_rng_below(&s->rng, s->fault_gap_ms), EV_FAULT, -1, -1, 0, NULL, 0);
    sim_push(s, s->load_ms + 500, EV_HEAL, -1, -1, 0, NULL, 0);
    sim_push(s, SIM_WATCH_EVERY_MS, EV_WATCH, -1, -1, 0, NULL, 0);
    sim_faulty_start(s);
    sim_erp_start(s);
    while (s->q.n && !(s->settled && (!s->erp_on || s->ended)) && !res->violated) {
        sim_ev_t ev = s_pop(&s->q);
        s->now = ev.at;
        s_event(s, &ev);
        free(ev.buf);
        if (++res->events > SIM_EVENTS_MAX)
            sim_violation(s, "simulator", "more than %u events", SIM_EVENTS_MAX);
    }
    if (!res->violated && !s->settled)
        sim_violation(s, "convergence", "the event queue ran dry before the tills were level");
    if (!res->violated)
        sim_check_final(s);
    if (!res->violated)
        sim_erp_check_final(s);
cleanup:
    res->sim_ms = s->now;
    res->trace_hash = s->hash;
    s_free(s);
    free(s);
    return rc;
}
