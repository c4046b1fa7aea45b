/* faulty.c - a faulty till and a till restored from an old copy of its
 * store (docs/sim.md).
 *
 * The faulty till is one of the tills: it runs an honest engine (its own
 * sales are real sales) and, now and then, sends crafted frames to a peer
 * over the simulated LAN - the attacks of docs/security.md: ops signed by a
 * key no till trusts, ops squatting another till's origin, replayed frames
 * (as captured, or re-sent as its own), another till's chain reordered or
 * with a gap, oversized batches, heartbeats and frames, and customer edits
 * stamped at the end of the HLC counter. check.c then holds the honest
 * tills to: nothing of the others' hidden or rewritten, nothing forged
 * shown, every refusal and bad frame charged to the faulty till.
 *
 * The restored till: its store files are copied at one step, and at a
 * later one it crashes and starts again from the copy, as after restoring a
 * backup; its engine must move to a new incarnation (tm_store_reincarnate)
 * and lose nothing the others acknowledged.
 *
 * Both draw from their own generator (s->frng), so a seed without them
 * runs exactly what it ran before they existed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_int.h"
#include "tm_hlc.h"
#include "tm_sign.h"
#include "tm_wire.h"

/* ---- drawing ------------------------------------------------------------ */

void sim_faulty_draw(sim_t *s)
{
    sim_rng_t *r = &s->frng;
    sim_rng_seed(r, s->seed ^ 0x6661756c74790000ULL); /* "faulty" */
    s->faulty = s->restored = -1;
    /* A modest share of the seeds: the rest stay as they were. */
    bool hostile = sim_rng_below(r, 100) < 15 || s->cfg.force_faulty;
    /* A restored till in a modest share of the seeds too (every seed with
     * --restore); the draw was always made, so other draws are unchanged. */
    bool restore = sim_rng_below(r, 100) < 15 || s->cfg.force_restore;
    if (hostile) {
        s->faulty = (int)sim_rng_below(r, (uint64_t)s->k);
        s->attack_gap_ms = sim_rng_log(r, 100, 2000);
        uint8_t seed[32];
        for (int b = 0; b < 32; b += 8) {
            uint64_t v = sim_rng_next(r);
            memcpy(seed + b, &v, 8);
        }
        tm_sign_keypair(seed, s->evil_pk, s->evil_sk);
    }
    if (restore && s->k > 2) {
        do
            s->restored = (int)sim_rng_below(r, (uint64_t)s->k);
        while (s->restored == s->faulty);
        s->backup_at = s->load_ms / 10 + sim_rng_below(r, s->load_ms * 4 / 10);
        s->restore_at = s->backup_at + 1 + sim_rng_below(r, s->load_ms / 2);
    }
}

void sim_faulty_start(sim_t *s)
{
    if (s->faulty >= 0)
        sim_push(s, s->cfg.impersonate ? 0 : sim_rng_below(&s->frng, s->attack_gap_ms), EV_ATTACK,
                 s->faulty, -1, 0, NULL, 0);
    if (s->restored >= 0) {
        sim_push(s, s->backup_at, EV_BACKUP, s->restored, -1, 0, NULL, 0);
        sim_push(s, s->restore_at, EV_RESTORE, s->restored, -1, 0, NULL, 0);
    }
}

/* ---- frames the faulty till heard, for replays ---------------------------- */

void sim_capture(sim_t *s, int from, const uint8_t *buf, size_t len)
{
    if (len == 0 || len > 65536)
        return;
    int slot = (int)(s->n_captured++ % SIM_CAPTURED);
    uint8_t *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, buf, len);
    free(s->captured[slot].buf);
    s->captured[slot].buf = copy;
    s->captured[slot].len = len;
    s->captured[slot].from = from;
}

/* ---- sending -------------------------------------------------------------- */

/* Over the LAN like any frame: cut cables and links stop it too. */
static void s_send(sim_t *s, int from, int to, uint8_t *buf, size_t len, const char *what)
{
    s->res->attacks++;
    sim_hash(s, what, strlen(what));
    if (!(s->cable[from] && s->cable[to] && s->link[from][to])) {
        sim_trace(s, "attack %s->%s %s len=%zu: cut", s->t[from].name, s->t[to].name, what, len);
        free(buf);
        return;
    }
    sim_trace(s, "attack %s->%s %s len=%zu", s->t[from].name, s->t[to].name, what, len);
    sim_push(s, s->now + 1 + sim_rng_below(&s->frng, 20), EV_DELIVER, from, to, 0, buf, len);
}

static void s_env(sim_t *s, int f, Tillmesh__Envelope *env, uint8_t id[TM_NODE_ID_LEN])
{
    tillmesh__envelope__init(env);
    env->store_id = (char *)(uintptr_t) "sim-store";
    env->has_sender = 1;
    tm_store_node_id(s->t[f].store, id);
    env->sender.data = id;
    env->sender.len = TM_NODE_ID_LEN;
}

static int s_send_ops(sim_t *s, int f, int to, tm_op_t *ops, size_t n, const char *what)
{
    Tillmesh__Op *w = calloc(n + 1, sizeof *w), **pp = calloc(n + 1, sizeof *pp);
    if (!w || !pp) {
        free(w);
        free(pp);
        return TM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        tillmesh__op__init(&w[i]);
        w[i].has_origin = w[i].has_seq = w[i].has_hlc = w[i].has_kind = w[i].has_body = 1;
        w[i].origin.data = ops[i].origin;
        w[i].origin.len = TM_NODE_ID_LEN;
        w[i].seq = ops[i].seq;
        w[i].hlc = ops[i].hlc;
        w[i].kind = (Tillmesh__OpKind)ops[i].kind;
        w[i].body.data = ops[i].body;
        w[i].body.len = ops[i].body_len;
        if (ops[i].has_sig) {
            w[i].has_sig = w[i].has_prev = 1;
            w[i].sig.data = ops[i].sig;
            w[i].sig.len = 64;
            w[i].prev.data = ops[i].prev;
            w[i].prev.len = 32;
        }
        pp[i] = &w[i];
    }
    Tillmesh__OpBatch b = TILLMESH__OP_BATCH__INIT;
    b.n_ops = n;
    b.ops = pp;
    Tillmesh__Envelope env;
    uint8_t id[TM_NODE_ID_LEN], *buf = NULL;
    size_t len = 0;
    s_env(s, f, &env, id);
    env.msg_case = TILLMESH__ENVELOPE__MSG_OPS;
    env.ops = &b;
    int rc = tm_wire_envelope_encode(&env, &buf, &len);
    free(w);
    free(pp);
    if (rc == TM_OK)
        s_send(s, f, to, buf, len, what);
    return rc;
}

/* ---- the attacks ---------------------------------------------------------- */

/* A sale or a customer edit no POS made, as an op of `origin` at `seq`,
 * chained on `prev` and signed with sk (the untrusted key, or the faulty
 * till's own when it squats another's origin). */
static int s_forged_op(sim_t *s, const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq,
                       const uint8_t prev[32], const uint8_t *sk, tm_op_t *op)
{
    uint32_t n = ++s->forged;
    int rc;
    memset(op, 0, sizeof *op);
    memcpy(op->origin, origin, TM_NODE_ID_LEN);
    op->seq = seq;
    op->hlc = TM_HLC_MAKE(sim_wall(s, s->faulty), 0);
    if (sim_rng_below(&s->frng, 2)) {
        tm_sale_line_t line = {.sku = "FORGED", .name = "forged", .qty = 1000, .unit_price = 1};
        tm_payment_t pay = {.method = TM_PAY_CASH, .amount = 1};
        tm_sale_t sale = {.receipt_no = n,
                          .created_at = "2026-09-01T00:00:00Z",
                          .currency = "CLP",
                          .lines = &line,
                          .n_lines = 1,
                          .total = 1,
                          .payments = &pay,
                          .n_payments = 1};
        snprintf(sale.sale_id, sizeof sale.sale_id, "f0f0f0f0-0000-4000-8000-%012x", n);
        tm_strlcpy(sale.till, s->t[(int)sim_rng_below(&s->frng, (uint64_t)s->k)].name,
                   sizeof sale.till);
        op->kind = TM_OP_SALE;
        rc = tm_wire_sale_encode(&sale, &op->body, &op->body_len);
    } else {
        tm_customer_t c;
        memset(&c, 0, sizeof c);
        snprintf(c.id, sizeof c.id, "SIM%02llu",
                 (unsigned long long)sim_rng_below(&s->frng, (uint64_t)s->n_customers));
        c.id_type = TM_IDTYPE_DNI;
        c.f[TM_CF_NAME].set = true;
        snprintf(c.f[TM_CF_NAME].value, sizeof c.f[TM_CF_NAME].value, "forged%u", n);
        op->kind = TM_OP_CUSTOMER;
        rc = tm_wire_customer_encode(&c, &op->body, &op->body_len);
    }
    if (rc)
        return rc;
    uint8_t hash[32];
    tm_sign_op_hash(op->origin, op->seq, op->hlc, op->kind, op->body, op->body_len, hash);
    op->has_sig = true;
    memcpy(op->prev, prev, 32);
    tm_sign_op(sk, hash, prev, op->sig);
    return TM_OK;
}

/* Ops of the untrusted key's own origin, a chain of 1..3 from seq 1. */
static int s_attack_untrusted(sim_t *s, int f, int to)
{
    tm_op_t ops[3];
    uint8_t origin[TM_NODE_ID_LEN], prev[32] = {0}, hash[32];
    size_t n = 1 + sim_rng_below(&s->frng, 3);
    tm_sign_node_id(s->evil_pk, 1, origin);
    int rc = TM_OK;
    size_t made = 0;
    for (; made < n && rc == TM_OK; made++) {
        rc = s_forged_op(s, origin, made + 1, prev, s->evil_sk, &ops[made]);
        if (rc)
            break;
        tm_sign_op_hash(origin, ops[made].seq, ops[made].hlc, ops[made].kind, ops[made].body,
                        ops[made].body_len, hash);
        tm_sign_chain(hash, ops[made].prev, prev);
    }
    if (rc == TM_OK)
        rc = s_send_ops(s, f, to, ops, made, "untrusted-key");
    for (size_t i = 0; i < made; i++)
        free(ops[i].body);
    return rc;
}

/* One op claiming an honest till's origin at the seq after what the
 * faulty till holds of it, signed with the faulty till's key. */
static int s_attack_squat(sim_t *s, int f, int to)
{
    int victim = (int)sim_rng_below(&s->frng, (uint64_t)s->k);
    if (victim == f || !s->t[victim].store)
        return TM_OK;
    uint8_t origin[TM_NODE_ID_LEN], prev[32] = {0};
    tm_store_node_id(s->t[victim].store, origin);
    tm_vv_t vv;
    int rc = tm_store_vv(s->t[f].store, &vv);
    if (rc)
        return rc;
    uint64_t seq = tm_vv_get(&vv, origin) + 1;
    tm_vv_free(&vv);
    tm_op_t op;
    if ((rc = s_forged_op(s, origin, seq, prev, s->t[f].sk, &op)))
        return rc;
    rc = s_send_ops(s, f, to, &op, 1, "squat");
    free(op.body);
    return rc;
}

/* A run of another till's ops as the faulty till holds them, sent in the
 * wrong order or with a gap, or several times over. */
static int s_attack_chain(sim_t *s, int f, int to)
{
    tm_vv_t vv;
    int rc = tm_store_vv(s->t[f].store, &vv);
    if (rc)
        return rc;
    uint8_t me[TM_NODE_ID_LEN];
    tm_store_node_id(s->t[f].store, me);
    size_t pick = vv.n ? (size_t)sim_rng_below(&s->frng, vv.n) : 0;
    if (!vv.n || vv.e[pick].seq < 3 || memcmp(vv.e[pick].origin, me, TM_NODE_ID_LEN) == 0) {
        tm_vv_free(&vv);
        return TM_OK;
    }
    tm_range_t range;
    memcpy(range.origin, vv.e[pick].origin, TM_NODE_ID_LEN);
    uint64_t hi = vv.e[pick].seq, len = 3 + sim_rng_below(&s->frng, 6);
    range.from = hi > len ? 1 + sim_rng_below(&s->frng, hi - len + 1) : 1;
    range.to = range.from + len - 1 < hi ? range.from + len - 1 : hi;
    tm_vv_free(&vv);
    tm_op_t *ops = NULL;
    size_t n = 0;
    if ((rc = tm_store_read_ops(s->t[f].store, &range, 1, 0, 0, &ops, &n)))
        return rc;
    if (n >= 3) {
        uint64_t how = sim_rng_below(&s->frng, 3);
        if (how == 0) { /* reversed */
            for (size_t i = 0; i < n / 2; i++) {
                tm_op_t x = ops[i];
                ops[i] = ops[n - 1 - i];
                ops[n - 1 - i] = x;
            }
            rc = s_send_ops(s, f, to, ops, n, "chain-reversed");
        } else if (how == 1) { /* a gap: the middle op left out */
            tm_op_t x = ops[n / 2];
            memmove(&ops[n / 2], &ops[n / 2 + 1], (n - n / 2 - 1) * sizeof *ops);
            ops[n - 1] = x;
            rc = s_send_ops(s, f, to, ops, n - 1, "chain-gap");
        } else { /* the last op first, then all again */
            tm_op_t *twice = calloc(2 * n, sizeof *twice);
            if (!twice) {
                rc = TM_ENOMEM;
            } else {
                twice[0] = ops[n - 1];
                memcpy(twice + 1, ops, n * sizeof *ops);
                rc = s_send_ops(s, f, to, twice, n + 1, "chain-replayed");
                free(twice);
            }
        }
    }
    tm_store_ops_free(ops, n);
    return rc;
}

/* A captured frame as it was (it names its real sender: a replay of
 * another till's frame), or its ops re-sent as the faulty till's own. */
static int s_attack_replay(sim_t *s, int f, int to)
{
    size_t have = s->n_captured < SIM_CAPTURED ? s->n_captured : SIM_CAPTURED;
    if (!have)
        return TM_OK;
    const sim_frame_t *c = &s->captured[sim_rng_below(&s->frng, have)];
    if (sim_rng_below(&s->frng, 2)) {
        uint8_t *buf = malloc(c->len);
        if (!buf)
            return TM_ENOMEM;
        memcpy(buf, c->buf, c->len);
        s_send(s, f, to, buf, c->len, "replay-as-captured");
        return TM_OK;
    }
    Tillmesh__Envelope *env = NULL;
    if (tm_wire_envelope_decode(c->buf, c->len, &env) != TM_OK)
        return TM_OK;
    int rc = TM_OK;
    if (env->msg_case == TILLMESH__ENVELOPE__MSG_OPS) {
        uint8_t id[TM_NODE_ID_LEN], *buf = NULL;
        size_t len = 0;
        tm_store_node_id(s->t[f].store, id);
        Tillmesh__Envelope out;
        s_env(s, f, &out, id);
        out.msg_case = TILLMESH__ENVELOPE__MSG_OPS;
        out.ops = env->ops;
        if ((rc = tm_wire_envelope_encode(&out, &buf, &len)) == TM_OK)
            s_send(s, f, to, buf, len, "replay-as-own");
    }
    tm_wire_envelope_free(env);
    return rc;
}

/* Past a bound: more ops than a batch may hold, a heartbeat with more
 * vector entries than any store has origins, a frame past the size cap. */
static int s_attack_oversized(sim_t *s, int f, int to)
{
    uint64_t how = sim_rng_below(&s->frng, 3);
    uint8_t id[TM_NODE_ID_LEN], *buf = NULL;
    size_t len = 0;
    int rc = TM_OK;
    if (how == 0) {
        size_t n = s->t[to].batch + 1 + (size_t)sim_rng_below(&s->frng, 10);
        tm_op_t *ops = calloc(n, sizeof *ops), one;
        uint8_t prev[32] = {0}, origin[TM_NODE_ID_LEN];
        if (!ops)
            return TM_ENOMEM;
        tm_sign_node_id(s->evil_pk, 1, origin);
        if ((rc = s_forged_op(s, origin, 1, prev, s->evil_sk, &one)) == TM_OK) {
            for (size_t i = 0; i < n; i++)
                ops[i] = one;
            rc = s_send_ops(s, f, to, ops, n, "oversized-batch");
            free(one.body);
        }
        free(ops);
        return rc;
    }
    if (how == 1) {
        size_t n = tm_engine_max_entries(s->t[to].eng) + 1 + (size_t)sim_rng_below(&s->frng, 50);
        Tillmesh__VersionEntry *ents = calloc(n, sizeof *ents);
        Tillmesh__VersionEntry **pp = calloc(n, sizeof *pp);
        uint8_t *ids = calloc(n, TM_NODE_ID_LEN);
        if (!ents || !pp || !ids) {
            rc = TM_ENOMEM;
            goto hb_done;
        }
        for (size_t i = 0; i < n; i++) {
            tillmesh__version_entry__init(&ents[i]);
            ents[i].has_origin = ents[i].has_seq = 1;
            uint64_t v = sim_rng_next(&s->frng);
            memcpy(ids + i * TM_NODE_ID_LEN, &v, 8);
            memcpy(ids + i * TM_NODE_ID_LEN + 8, &i, sizeof i < 8 ? sizeof i : 8);
            ents[i].origin.data = ids + i * TM_NODE_ID_LEN;
            ents[i].origin.len = TM_NODE_ID_LEN;
            ents[i].seq = 1 + i % 100;
            pp[i] = &ents[i];
        }
        Tillmesh__NodeInfo ni = TILLMESH__NODE_INFO__INIT;
        Tillmesh__Heartbeat hb = TILLMESH__HEARTBEAT__INIT;
        Tillmesh__Envelope env;
        s_env(s, f, &env, id);
        ni.has_node_id = 1;
        ni.node_id.data = id;
        ni.node_id.len = TM_NODE_ID_LEN;
        ni.store_id = (char *)(uintptr_t) "sim-store";
        ni.name = s->t[f].name;
        ni.n_vv = n;
        ni.vv = pp;
        hb.info = &ni;
        env.msg_case = TILLMESH__ENVELOPE__MSG_HEARTBEAT;
        env.heartbeat = &hb;
        if ((rc = tm_wire_envelope_encode(&env, &buf, &len)) == TM_OK)
            s_send(s, f, to, buf, len, "oversized-heartbeat");
    hb_done:
        free(ents);
        free(pp);
        free(ids);
        return rc;
    }
    /* One op whose body is past TM_WIRE_MAX_BODY, in a frame under the
     * transport's cap (libzmq drops bigger frames before the engine). */
    tm_op_t op;
    uint8_t prev[32] = {0}, origin[TM_NODE_ID_LEN], hash[32];
    memset(&op, 0, sizeof op);
    tm_sign_node_id(s->evil_pk, 1, origin);
    memcpy(op.origin, origin, TM_NODE_ID_LEN);
    op.seq = 1;
    op.hlc = TM_HLC_MAKE(sim_wall(s, f), 0);
    op.kind = TM_OP_CUSTOMER;
    op.body_len = TM_WIRE_MAX_BODY + 1 + (size_t)sim_rng_below(&s->frng, 1024);
    if (!(op.body = malloc(op.body_len)))
        return TM_ENOMEM;
    for (size_t i = 0; i < op.body_len; i++)
        op.body[i] = (uint8_t)(i * 131u);
    tm_sign_op_hash(origin, 1, op.hlc, op.kind, op.body, op.body_len, hash);
    op.has_sig = true;
    tm_sign_op(s->evil_sk, hash, prev, op.sig);
    rc = s_send_ops(s, f, to, &op, 1, "oversized-op");
    free(op.body);
    return rc;
}

/* A heartbeat naming another till's node id as its sender: a key speaks
 * only for the node id bound to it, so the target must refuse it - unless
 * it has not heard that till yet and binds the id to the faulty till. */
static int s_attack_impersonate(sim_t *s, int f, int to)
{
    int victim = (int)sim_rng_below(&s->frng, (uint64_t)s->k);
    if (victim == f || victim == to || !s->t[victim].store)
        return TM_OK;
    uint8_t id[TM_NODE_ID_LEN], *buf = NULL;
    size_t len = 0;
    Tillmesh__NodeInfo ni = TILLMESH__NODE_INFO__INIT;
    Tillmesh__Heartbeat hb = TILLMESH__HEARTBEAT__INIT;
    Tillmesh__Envelope env;
    s_env(s, f, &env, id);
    tm_store_node_id(s->t[victim].store, id);
    ni.has_node_id = 1;
    ni.node_id.data = id;
    ni.node_id.len = TM_NODE_ID_LEN;
    ni.store_id = (char *)(uintptr_t) "sim-store";
    ni.name = s->t[f].name;
    hb.info = &ni;
    env.msg_case = TILLMESH__ENVELOPE__MSG_HEARTBEAT;
    env.heartbeat = &hb;
    int rc = tm_wire_envelope_encode(&env, &buf, &len);
    if (rc == TM_OK)
        s_send(s, f, to, buf, len, "impersonate");
    return rc;
}

/* A customer edit made on the faulty till, stamped at the very end of the
 * HLC counter a minute ahead of its clock: a valid, signed op of its own
 * (clocks never gate), which every till that reads the record must still
 * order its own later edit after. */
static void s_attack_stamp(sim_t *s, int f)
{
    uint64_t stamp = TM_HLC_MAKE(sim_wall(s, f) + 60000, 0xffff);
    sim_load_edit_stamped(s, f, stamp);
}

void sim_attack(sim_t *s)
{
    int f = s->faulty;
    if (s->healed || !s->t[f].up) {
        if (!s->healed)
            sim_push(s, s->now + s->attack_gap_ms, EV_ATTACK, f, -1, 0, NULL, 0);
        return;
    }
    int to = (int)sim_rng_below(&s->frng, (uint64_t)s->k - 1);
    to += to >= f;
    int rc = TM_OK;
    if (s->t[to].up) {
        /* --impersonate: the first attack, at once, claims another till's
         * node id (docs/sim.md "Open": it binds at a till that has not heard
         * that till yet). */
        uint64_t kind = s->cfg.impersonate && !s->impersonated ? 6 : sim_rng_below(&s->frng, 6);
        s->impersonated = true;
        switch (kind) {
        case 0: rc = s_attack_untrusted(s, f, to); break;
        case 1: rc = s_attack_squat(s, f, to); break;
        case 2: rc = s_attack_chain(s, f, to); break;
        case 3: rc = s_attack_replay(s, f, to); break;
        case 4: rc = s_attack_oversized(s, f, to); break;
        case 5: s_attack_stamp(s, f); break;
        default: rc = s_attack_impersonate(s, f, to); break;
        }
    }
    if (rc)
        sim_violation(s, "simulator", "faulty till %s: cannot build an attack: %s", s->t[f].name,
                      tm_strerror(rc));
    sim_push(s, s->now + 1 + sim_rng_below(&s->frng, 2 * s->attack_gap_ms), EV_ATTACK, f, -1, 0,
             NULL, 0);
}

/* ---- the restored till ---------------------------------------------------- */

static int s_copy(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return unlink(to) == 0 || errno == ENOENT ? TM_OK : TM_EIO;
    FILE *out = fopen(to, "wb");
    int rc = out ? TM_OK : TM_EIO;
    char buf[65536];
    size_t n;
    while (rc == TM_OK && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = TM_EIO;
    if (ferror(in))
        rc = TM_EIO;
    fclose(in);
    if (out && fclose(out))
        rc = TM_EIO;
    return rc;
}

/* The store's files as a backup of a running till takes them between two
 * transactions: the database and its WAL (the -shm is rebuilt on open). */
static int s_files(const char *from, const char *to)
{
    char a[600], b[600]; /* paths are under 300 bytes (sim_till_t.path + ".bak") */
    int rc = s_copy(from, to);
    snprintf(a, sizeof a, "%s-wal", from);
    snprintf(b, sizeof b, "%s-wal", to);
    if (rc == TM_OK)
        rc = s_copy(a, b);
    snprintf(b, sizeof b, "%s-shm", to);
    unlink(b);
    return rc;
}

void sim_backup(sim_t *s)
{
    sim_till_t *t = &s->t[s->restored];
    char bak[300];
    snprintf(bak, sizeof bak, "%s.bak", t->path);
    int rc = s_files(t->path, bak);
    if (rc) {
        sim_violation(s, "simulator", "cannot copy %s: %s", t->path, tm_strerror(rc));
        return;
    }
    s->have_backup = true;
    s->writes_at_backup = s->writes;
    sim_trace(s, "backup: %s's store copied", t->name);
}

void sim_restore(sim_t *s)
{
    int i = s->restored;
    sim_till_t *t = &s->t[i];
    char bak[300];
    if (!s->have_backup || s->healed)
        return;
    if (t->up)
        sim_till_crash(s, i);
    /* What it rang up since the backup and a peer holds must survive the
     * restore (the POS was told it was recorded); the rest goes back with
     * its store. */
    s->writes_at_restore = s->writes;
    for (size_t n = 0; n < s->n_sales; n++) {
        sim_sale_t *e = &s->sales[n];
        if (e->till != i || e->at < s->backup_at)
            continue;
        for (int k = 0; k < s->k && !e->held_elsewhere; k++) {
            tm_sale_t got;
            if (k == i || !s->t[k].up || tm_store_get_sale(s->t[k].store, e->id, &got) != TM_OK)
                continue;
            tm_sale_free(&got);
            e->held_elsewhere = true;
        }
    }
    snprintf(bak, sizeof bak, "%s.bak", t->path);
    int rc = s_files(bak, t->path);
    if (rc) {
        sim_violation(s, "simulator", "cannot restore %s: %s", t->path, tm_strerror(rc));
        return;
    }
    s->res->restores++;
    sim_trace(s, "restore: %s starts again from the copy of its store", t->name);
    if (sim_till_start(s, i) == TM_OK)
        sim_trace(s, "%s restarts from its restored store", t->name);
}

void sim_faulty_free(sim_t *s)
{
    for (int i = 0; i < SIM_CAPTURED; i++) {
        free(s->captured[i].buf);
        s->captured[i].buf = NULL;
    }
    if (s->restored >= 0 && !s->cfg.keep) {
        char p[300];
        static const char *const sfx[] = {".bak", ".bak-wal", ".bak-shm"};
        for (int x = 0; x < 3; x++) {
            snprintf(p, sizeof p, "%s%s", s->t[s->restored].path, sfx[x]);
            unlink(p);
        }
    }
}
