/*
 * libFuzzer target, stateful: two replication engines ("a", "b") with real
 * SQLite stores, and a third, trusted peer "c" whose frames come from the
 * input. The input is a little program (one command byte, then its
 * arguments): local sales and customer edits on a or b, frames from c (raw bytes, or op batches
 * built from a few bytes), time passing, the a-b link cut and healed, frames
 * lost. At the end the link is healed, c pushes everything it ever spoke of,
 * and the engines run until they agree; the target aborts unless a and b
 * then hold the same ops (equal digests) and the same sales and customers.
 *
 * c is arbitrary but not a liar: any op it sends for (origin, seq) has one
 * fixed content, whatever frame carries it. A peer that signs two different
 * ops with one (origin, seq) cannot be reconciled without op signatures,
 * and that is not what this target looks for. Ops in c's frames are
 * rewritten to that content (their seq kept: seq 0 stays, and is refused);
 * everything else in a frame - hellos, heartbeats with any vector, pulls,
 * garbage - reaches the engine as sent.
 *
 * Stores live in a fresh temporary directory per input (on /dev/shm when
 * there is one: every write is fsynced). Time is a variable.
 */
#include <sanitizer/common_interface_defs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tm_engine.h"
#include "tm_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_ORIGINS  3  /* c speaks for these origins (c itself and two it relays) */
#define MAX_SEQ    24 /* c's seqs are folded into 1..MAX_SEQ */
#define N_SALE_IDS 5  /* few sale ids, so that ops collide on one sale */
#define N_CUST_IDS 2
#define MAX_CMDS   256 /* per input, to bound the run time */

static const char *const SALE_IDS[N_SALE_IDS] = {
    "0b7f4a52-3c1e-4d2a-9a61-5f0f2b8c9d10", "1c8e5b63-4d2f-4e3b-8b72-6a1a3c9d0e21",
    "2d9f6c74-5e3a-4f4c-9c83-7b2b4d0e1f32", "3ea07d85-6f4b-4a5d-8d94-8c3c5e1f2a43",
    "4fb18e96-7a5c-4b6e-9ea5-9d4d6f2a3b54"};
static const char *const CUST_IDS[N_CUST_IDS] = {"12.345.678-5", "11.111.111-1"};

typedef struct {
    const uint8_t *p;
    size_t n;
} rd_t;

static uint8_t rd_u8(rd_t *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

static uint16_t rd_u16(rd_t *r)
{
    uint16_t hi = rd_u8(r);
    return (uint16_t)(hi << 8 | rd_u8(r));
}

typedef struct {
    char dir[64];
    tm_log_t log;
    tm_store_t *store[2];
    tm_engine_t *eng[2];
    tm_outbox_t box[2];
    bool link; /* a and b reach each other */
    uint64_t now, wall;
    uint64_t max_seq[N_ORIGINS]; /* the highest seq c spoke of, per origin */
    uint8_t origins[N_ORIGINS][TM_NODE_ID_LEN];
    unsigned local_sales;
} sim_t;

static const char *const NAMES[2] = {"a", "b"};

static void origin_of(int i, uint8_t out[TM_NODE_ID_LEN])
{
    memset(out, 0xc0, TM_NODE_ID_LEN);
    out[TM_NODE_ID_LEN - 1] = (uint8_t)i;
}

static int origin_index(const uint8_t *id, size_t len)
{
    for (int i = 0; i < N_ORIGINS; i++) {
        uint8_t o[TM_NODE_ID_LEN];
        origin_of(i, o);
        if (len == TM_NODE_ID_LEN && !memcmp(id, o, TM_NODE_ID_LEN))
            return i;
    }
    return -1;
}

/* Says why on stderr and, as the fuzzer may have closed stderr
 * (-close_fd_mask), on the sanitizers' report descriptor too. */
static void fail(const char *why)
{
    char line[160];
    snprintf(line, sizeof line, "fuzz_engine: %s", why);
    fprintf(stderr, "%s\n", line);
    __sanitizer_report_error_summary(line);
    abort();
}

/* The one content c has for (origin i, seq): a sale or a customer patch on
 * a small pool of ids, stamps chosen so that they tie and cross. */
static int canonical_op(int i, uint64_t seq, uint64_t *hlc, uint32_t *kind, uint8_t **body,
                        size_t *len)
{
    *hlc = (1700000000000ULL << 16) + ((seq * 37 + (uint64_t)i * 11) % 13);
    if ((seq + (uint64_t)i) % 3 == 2) {
        tm_customer_t c;
        memset(&c, 0, sizeof c);
        tm_strlcpy(c.id, CUST_IDS[(seq + (uint64_t)i) % N_CUST_IDS], sizeof c.id);
        c.id_type = TM_IDTYPE_RUT;
        c.f[TM_CF_NAME].set = true;
        snprintf(c.f[TM_CF_NAME].value, sizeof c.f[TM_CF_NAME].value, "c%d-%llu", i,
                 (unsigned long long)seq);
        if (seq % 2) {
            c.f[TM_CF_EMAIL].set = true;
            snprintf(c.f[TM_CF_EMAIL].value, sizeof c.f[TM_CF_EMAIL].value, "c%d@x.cl", i);
        }
        *kind = TM_OP_CUSTOMER;
        return tm_wire_customer_encode(&c, body, len);
    }
    tm_sale_line_t line = {.sku = "7801", .name = "Pan", .qty = 1000, .unit_price = (int64_t)seq};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = (int64_t)seq};
    tm_sale_t s = {.till = "c",
                   .receipt_no = seq,
                   .created_at = "2026-11-23T12:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = (int64_t)seq,
                   .payments = &pay,
                   .n_payments = 1};
    tm_strlcpy(s.sale_id, SALE_IDS[(seq * 3 + (uint64_t)i) % N_SALE_IDS], sizeof s.sale_id);
    *kind = TM_OP_SALE;
    return tm_wire_sale_encode(&s, body, len);
}

static uint64_t fold_seq(uint64_t seq)
{
    return seq == 0 ? 0 : (seq - 1) % MAX_SEQ + 1;
}

/* Rewrites every op of a decoded batch to c's content; NULL-safe. Returns
 * false when the batch cannot be rewritten (out of memory). */
static bool canonicalise(sim_t *s, Tillmesh__OpBatch *b, uint8_t **bodies)
{
    for (size_t k = 0; k < b->n_ops; k++) {
        Tillmesh__Op *o = b->ops[k];
        int i = o->has_origin ? origin_index(o->origin.data, o->origin.len) : -1;
        if (i < 0)
            i = (int)(o->seq % N_ORIGINS); /* an origin c never spoke for: make it one */
        uint64_t seq = fold_seq(o->seq);
        uint32_t kind;
        size_t len;
        if (canonical_op(i, seq ? seq : 1, &o->hlc, &kind, &bodies[k], &len) != TM_OK)
            return false;
        o->has_origin = o->has_seq = o->has_hlc = o->has_kind = o->has_body = 1;
        o->origin.data = s->origins[i];
        o->origin.len = TM_NODE_ID_LEN;
        o->seq = seq;
        o->kind = (Tillmesh__OpKind)kind;
        o->body.data = bodies[k];
        o->body.len = len;
        if (seq > s->max_seq[i])
            s->max_seq[i] = seq;
    }
    return true;
}

/* A frame from c to engine j: ops rewritten to c's content, the rest as is. */
static void from_c(sim_t *s, int j, const uint8_t *frame, size_t len)
{
    Tillmesh__Envelope *env = NULL;
    if (tm_wire_envelope_decode(frame, len, &env) != TM_OK ||
        env->msg_case != TILLMESH__ENVELOPE__MSG_OPS) {
        tm_wire_envelope_free(env);
        (void)tm_engine_on_frame(s->eng[j], "c", frame, len, s->now, s->wall, &s->box[j]);
        return;
    }
    /* protobuf-c owns the unpacked bytes: keep them aside while the ops
     * point at c's content, and put them back before freeing env. */
    Tillmesh__OpBatch *b = env->ops;
    uint8_t **bodies = calloc(b->n_ops + 1, sizeof *bodies);
    uint8_t **keep = calloc(2 * b->n_ops + 1, sizeof *keep);
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (!bodies || !keep)
        fail("out of memory");
    for (size_t k = 0; k < b->n_ops; k++) {
        keep[2 * k] = b->ops[k]->origin.data;
        keep[2 * k + 1] = b->ops[k]->body.data;
    }
    if (canonicalise(s, b, bodies) && tm_wire_envelope_encode(env, &out, &out_len) == TM_OK)
        (void)tm_engine_on_frame(s->eng[j], "c", out, out_len, s->now, s->wall, &s->box[j]);
    for (size_t k = 0; k < b->n_ops; k++) {
        b->ops[k]->origin.data = keep[2 * k];
        b->ops[k]->body.data = keep[2 * k + 1];
        free(bodies[k]);
    }
    free(out);
    free(bodies);
    free(keep);
    tm_wire_envelope_free(env);
}

/* c sends engine j a batch of n ops (origin index, seq) with c's content. */
static void send_ops(sim_t *s, int j, const int *orig, const uint64_t *seq, size_t n, bool is_reply)
{
    Tillmesh__Op ops[8], *opp[8];
    uint8_t *bodies[8] = {0};
    if (n > 8)
        n = 8;
    for (size_t k = 0; k < n; k++) {
        tillmesh__op__init(&ops[k]);
        ops[k].has_origin = 1;
        ops[k].origin.data = s->origins[orig[k]];
        ops[k].origin.len = TM_NODE_ID_LEN;
        ops[k].has_seq = 1;
        ops[k].seq = seq[k];
        opp[k] = &ops[k];
    }
    Tillmesh__OpBatch b;
    tillmesh__op_batch__init(&b);
    b.n_ops = n;
    b.ops = opp;
    b.has_is_reply = 1;
    b.is_reply = is_reply;
    Tillmesh__Envelope env;
    tillmesh__envelope__init(&env);
    env.store_id = (char *)(uintptr_t) "store-1";
    env.has_sender = 1;
    env.sender.data = s->origins[0];
    env.sender.len = TM_NODE_ID_LEN;
    env.msg_case = TILLMESH__ENVELOPE__MSG_OPS;
    env.ops = &b;
    uint8_t *out = NULL;
    size_t len = 0;
    if (canonicalise(s, &b, bodies) && tm_wire_envelope_encode(&env, &out, &len) == TM_OK)
        (void)tm_engine_on_frame(s->eng[j], "c", out, len, s->now, s->wall, &s->box[j]);
    for (size_t k = 0; k < n; k++)
        free(bodies[k]);
    free(out);
}

/* A batch of 1 to 6 ops from c, made from a few input bytes. */
static void batch_from_c(sim_t *s, int j, rd_t *r, bool is_reply)
{
    size_t n = rd_u8(r) % 6 + 1;
    int orig[6];
    uint64_t seq[6];
    for (size_t k = 0; k < n; k++) {
        uint8_t x = rd_u8(r);
        orig[k] = x % N_ORIGINS;
        seq[k] = (uint64_t)(x / N_ORIGINS) % (MAX_SEQ + 1); /* 0 now and then: refused */
    }
    send_ops(s, j, orig, seq, n, is_reply);
}

static void local_sale(sim_t *s, int j, uint8_t x)
{
    char id[TM_UUID_LEN];
    /* Mostly fresh ids; now and then one of c's, so that they collide. */
    if (x % 4 == 0)
        tm_strlcpy(id, SALE_IDS[x / 4 % N_SALE_IDS], sizeof id);
    else
        snprintf(id, sizeof id, "%08x-0000-4000-8000-%012x", (unsigned)j, ++s->local_sales);
    tm_sale_line_t line = {.sku = "1", .name = "x", .qty = 1000, .unit_price = 100 + x};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = 100 + x};
    tm_sale_t sale = {.till = "t",
                      .receipt_no = s->local_sales,
                      .created_at = "2026-01-01T00:00:00Z",
                      .currency = "CLP",
                      .lines = &line,
                      .n_lines = 1,
                      .total = 100 + x,
                      .payments = &pay,
                      .n_payments = 1};
    tm_strlcpy(sale.sale_id, id, sizeof sale.sale_id);
    uint8_t *body;
    size_t len;
    if (tm_wire_sale_encode(&sale, &body, &len) != TM_OK)
        fail("cannot encode a sale");
    uint64_t hlc = tm_engine_hlc_now(s->eng[j], s->wall);
    if (tm_engine_local_op(s->eng[j], TM_OP_SALE, hlc, body, len, s->now, &s->box[j]) != TM_OK)
        fail("a local sale was refused");
    free(body);
}

/* A till's own edit of one of the pool's customers: races c's edits and
 * the other till's under last-writer-wins. */
static void local_customer(sim_t *s, int j, uint8_t x)
{
    tm_customer_t c;
    memset(&c, 0, sizeof c);
    tm_strlcpy(c.id, CUST_IDS[x % N_CUST_IDS], sizeof c.id);
    c.id_type = TM_IDTYPE_RUT;
    int f = x / N_CUST_IDS % 2 ? TM_CF_NAME : TM_CF_PHONE;
    c.f[f].set = true;
    snprintf(c.f[f].value, sizeof c.f[f].value, "%s-%u", NAMES[j], (unsigned)x);
    uint8_t *body;
    size_t len;
    if (tm_wire_customer_encode(&c, &body, &len) != TM_OK)
        fail("cannot encode a customer");
    uint64_t hlc = tm_engine_hlc_now(s->eng[j], s->wall);
    if (tm_engine_local_op(s->eng[j], TM_OP_CUSTOMER, hlc, body, len, s->now, &s->box[j]) != TM_OK)
        fail("a local customer edit was refused");
    free(body);
}

/* TM_FUZZ_DUMP_FRAMES=DIR writes every frame a and b exchange to DIR, one
 * file per message kind: how the seed corpora got real frames. */
static void dump_frame(const tm_out_t *o)
{
    const char *dir = getenv("TM_FUZZ_DUMP_FRAMES");
    Tillmesh__Envelope *env;
    if (!dir || tm_wire_envelope_decode(o->frame, o->len, &env) != TM_OK)
        return;
    static const char *const kinds[] = {"none", "hello", "heartbeat", "ops", "pull"};
    size_t k = env->msg_case >= 10 && env->msg_case <= 13 ? (size_t)env->msg_case - 9 : 0;
    char path[256];
    snprintf(path, sizeof path, "%s/%s.bin", dir, kinds[k]);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(o->frame, 1, o->len, f);
        fclose(f);
    }
    tm_wire_envelope_free(env);
}

/* Delivers what a and b queued for each other (frames to c are dropped).
 * Bounded: engines that never go quiet are a finding. */
static void deliver(sim_t *s)
{
    for (int round = 0; round < 10000; round++) {
        bool moved = false;
        for (int i = 0; i < 2; i++) {
            tm_outbox_t box = s->box[i];
            memset(&s->box[i], 0, sizeof s->box[i]);
            for (size_t k = 0; k < box.n; k++) {
                const tm_out_t *o = &box.v[k];
                int j = 1 - i;
                if (o->kind != TM_OUT_SEND || strcmp(o->peer, NAMES[j]) || !s->link)
                    continue;
                dump_frame(o);
                (void)tm_engine_on_frame(s->eng[j], NAMES[i], o->frame, o->len, s->now, s->wall,
                                         &s->box[j]);
                moved = true;
            }
            tm_outbox_free(&box);
        }
        if (!moved)
            return;
    }
    fail("a and b never went quiet");
}

static void step(sim_t *s, uint64_t ms)
{
    s->now += ms;
    s->wall += ms;
    for (int i = 0; i < 2; i++)
        (void)tm_engine_tick(s->eng[i], s->now, s->wall, &s->box[i]);
    deliver(s);
}

static bool sim_open(sim_t *s)
{
    memset(s, 0, sizeof *s);
    s->log.level = getenv("TM_FUZZ_DEBUG") ? TM_LOG_DEBUG : TM_LOG_ERROR;
    struct stat st;
    snprintf(s->dir, sizeof s->dir, "%s/tm-fuzz-engine-XXXXXX",
             stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(s->dir))
        return false;
    s->now = 1000;
    s->wall = 1700000000000ULL;
    s->link = true;
    for (int i = 0; i < N_ORIGINS; i++)
        origin_of(i, s->origins[i]);
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s.db", s->dir, NAMES[i]);
        if (tm_store_open(path, NULL, &s->store[i]) != TM_OK)
            return false;
        tm_engine_cfg_t cfg = {.name = NAMES[i],
                               .store_id = "store-1",
                               .mesh_endpoint = "tcp://127.0.0.1:1",
                               .heartbeat_ms = 100,
                               .batch_max_ops = 4};
        if (tm_engine_new(&cfg, s->store[i], &s->log, &s->eng[i]) != TM_OK)
            return false;
    }
    for (int i = 0; i < 2; i++) {
        if (tm_engine_add_peer(s->eng[i], NAMES[1 - i], "tcp://x:1", TM_SRC_STATIC, &s->box[i]) ||
            tm_engine_add_peer(s->eng[i], "c", "tcp://c:1", TM_SRC_STATIC, &s->box[i]))
            return false;
    }
    return true;
}

static void sim_close(sim_t *s)
{
    for (int i = 0; i < 2; i++) {
        tm_engine_destroy(&s->eng[i]);
        tm_store_destroy(&s->store[i]);
        tm_outbox_free(&s->box[i]);
        char path[160];
        static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
        for (size_t k = 0; k < sizeof sfx / sizeof sfx[0]; k++) {
            snprintf(path, sizeof path, "%s/%s.db%s", s->dir, NAMES[i], sfx[k]);
            unlink(path);
        }
    }
    if (s->dir[0])
        rmdir(s->dir);
}

/* Same ops, same sales, same customers. */
static bool same_state(sim_t *s, bool say)
{
    uint8_t d[2][32];
    for (int i = 0; i < 2; i++)
        if (tm_store_digest(s->store[i], d[i]) != TM_OK)
            fail("digest failed");
    if (memcmp(d[0], d[1], 32)) {
        if (say) {
            tm_store_counts_t c[2];
            tm_store_counts(s->store[0], &c[0]);
            tm_store_counts(s->store[1], &c[1]);
            fprintf(stderr, "fuzz_engine: digests differ: a holds %llu ops, b %llu\n",
                    (unsigned long long)c[0].ops, (unsigned long long)c[1].ops);
        }
        return false;
    }
    for (int k = 0; k < N_SALE_IDS; k++) {
        tm_sale_t x[2];
        char *j[2] = {NULL, NULL};
        int rc[2];
        for (int i = 0; i < 2; i++) {
            memset(&x[i], 0, sizeof x[i]);
            rc[i] = tm_store_get_sale(s->store[i], SALE_IDS[k], &x[i]);
            if (rc[i] == TM_OK)
                j[i] = tm_sale_to_json(&x[i]);
            tm_sale_free(&x[i]);
        }
        bool same = rc[0] == rc[1] && (!j[0] || (j[1] && !strcmp(j[0], j[1])));
        if (!same && say)
            fprintf(stderr, "fuzz_engine: same ops, but sale %s differs:\n a: %s\n b: %s\n",
                    SALE_IDS[k], j[0] ? j[0] : "(none)", j[1] ? j[1] : "(none)");
        free(j[0]);
        free(j[1]);
        if (!same)
            return false;
    }
    for (int k = 0; k < N_CUST_IDS; k++) {
        tm_customer_t c[2];
        int rc[2];
        for (int i = 0; i < 2; i++) {
            memset(&c[i], 0, sizeof c[i]);
            rc[i] = tm_store_get_customer(s->store[i], CUST_IDS[k], &c[i]);
        }
        char *j0 = rc[0] == TM_OK ? tm_customer_to_json(&c[0]) : NULL;
        char *j1 = rc[1] == TM_OK ? tm_customer_to_json(&c[1]) : NULL;
        bool same = rc[0] == rc[1] && (!j0 || (j1 && !strcmp(j0, j1)));
        if (!same && say)
            fprintf(stderr, "fuzz_engine: same ops, but customer %s differs:\n a: %s\n b: %s\n",
                    CUST_IDS[k], j0 ? j0 : "(none)", j1 ? j1 : "(none)");
        free(j0);
        free(j1);
        if (!same)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sim_t s;
    if (!sim_open(&s))
        fail("cannot open the stores");
    step(&s, 300); /* hellos: a and b alive to each other */
    rd_t r = {data, size};
    for (int cmds = 0; r.n && cmds < MAX_CMDS; cmds++) {
        uint8_t cmd = rd_u8(&r);
        int j = (cmd >> 4) & 1; /* which of a, b */
        switch (cmd & 7) {
        case 0:
            if (cmd & 0x20)
                local_customer(&s, j, rd_u8(&r));
            else
                local_sale(&s, j, rd_u8(&r));
            break;
        case 1: {
            size_t len = rd_u16(&r);
            if (len > r.n)
                len = r.n;
            from_c(&s, j, r.p, len);
            r.p += len;
            r.n -= len;
            break;
        }
        case 2: batch_from_c(&s, j, &r, (cmd >> 5) & 1); break;
        case 3: step(&s, 10 * ((uint64_t)rd_u8(&r) + 1)); break;
        case 4: s.link = !s.link; break;
        case 5: deliver(&s); break;
        case 6: tm_outbox_clear(&s.box[j]); break; /* j's queued frames are lost */
        case 7: step(&s, 50); break;
        }
    }
    /* The end: the link heals, c pushes to a everything it ever spoke of
     * (no gaps left), then goes silent; a and b must agree in the end. */
    s.link = true;
    for (int i = 0; i < N_ORIGINS; i++) {
        for (uint64_t seq = 1; seq <= s.max_seq[i]; seq++)
            send_ops(&s, 0, &i, &seq, 1, false);
    }
    bool ok = false;
    for (int t = 0; t < 400 && !ok; t++) { /* 20 s of store time */
        step(&s, 50);
        ok = t % 2 == 1 && same_state(&s, false);
    }
    if (!ok && !same_state(&s, true))
        fail("a and b did not converge");
    sim_close(&s);
    return 0;
}
