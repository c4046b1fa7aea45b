/*
 * test_merge.c - the convergence property: any order of the same ops, with
 * any duplicates and any batch boundaries, gives the same store.
 *
 * ~200 ops from 4 origins (sales, competing customer patches on a few shared
 * customers, ERP acks, and sale ids reused by a second origin) are applied
 * to fresh stores in random orders; every store must match a reference
 * built in (origin, seq) order: digest, version vector, counts, every
 * materialised sale and customer, every ack.
 *
 * The PRNG is seeded; the seed is printed, and TM_MERGE_SEED / TM_MERGE_ITERS
 * reproduce a failure. Stores live in /dev/shm when it exists: the test is
 * about ordering, not durability, and tmpfs makes fsync free.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tm_store.h"
#include "tm_wire.h"

#define N_ORIGINS     4
#define PER_ORIGIN    50
#define N_OPS         ((size_t)N_ORIGINS * PER_ORIGIN)
#define N_CUST        5
#define N_PARTS       4    /* Criterion tests the iterations are split over */
#define DEFAULT_ITERS 1000 /* in total, over all parts */
#define DEFAULT_SEED  20261123u

/* ---- a seeded PRNG (splitmix64) --------------------------------------- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t rng_below(rng_t *r, size_t n)
{
    return (size_t)(rng_next(r) % n);
}

/* ---- the op set -------------------------------------------------------- */

static const char *const cust_ids[N_CUST] = {"123456785", "1000005K", "76543210K", "X1234567",
                                             "22222222"};

typedef struct {
    tm_op_t op[N_OPS];
    tm_sale_t sale[N_OPS];        /* for sale ops */
    tm_customer_t patch[N_OPS];   /* for customer ops (unstamped) */
    tm_erp_ack_t ack[N_OPS];      /* for ack ops */
    char ids[N_OPS][TM_UUID_LEN]; /* every sale id, in op order (dups once) */
    size_t n_ids;
} world_t;

static void rand_uuid(rng_t *r, char out[TM_UUID_LEN])
{
    uint64_t a = rng_next(r), b = rng_next(r);
    snprintf(out, TM_UUID_LEN, "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff, (unsigned)(b >> 48) & 0xfff,
             (unsigned long long)(b & 0xffffffffffffull));
}

static void make_sale(rng_t *r, tm_sale_t *s, int origin, uint64_t seq)
{
    rand_uuid(r, s->sale_id);
    snprintf(s->till, sizeof s->till, "till-%d", origin);
    s->receipt_no = seq;
    tm_strlcpy(s->created_at, "2026-11-23T12:00:00Z", sizeof s->created_at);
    tm_strlcpy(s->currency, "CLP", sizeof s->currency);
    s->n_lines = 1 + rng_below(r, 3);
    s->lines = calloc(s->n_lines, sizeof *s->lines);
    cr_assert_not_null(s->lines);
    for (size_t i = 0; i < s->n_lines; i++) {
        snprintf(s->lines[i].sku, sizeof s->lines[i].sku, "SKU%zu", rng_below(r, 100));
        tm_strlcpy(s->lines[i].name, "thing", sizeof s->lines[i].name);
        s->lines[i].qty = 1000;
        s->lines[i].unit_price = 100 + (int64_t)rng_below(r, 5000);
        s->total += s->lines[i].unit_price;
    }
    s->n_payments = 1;
    s->payments = calloc(1, sizeof *s->payments);
    cr_assert_not_null(s->payments);
    s->payments[0].method = TM_PAY_CARD;
    s->payments[0].amount = s->total;
    if (rng_below(r, 3) == 0) {
        s->has_customer = true;
        tm_strlcpy(s->customer_id, cust_ids[rng_below(r, N_CUST)], sizeof s->customer_id);
        /* These ids are not real RUTs (check digit): a received sale must
         * pass the API's rules to be shown. */
        s->customer_id_type = TM_IDTYPE_DNI;
    }
}

static void make_patch(rng_t *r, tm_customer_t *p, int origin, uint64_t seq)
{
    tm_strlcpy(p->id, cust_ids[rng_below(r, N_CUST)], sizeof p->id);
    p->id_type = rng_below(r, 4) ? TM_IDTYPE_RUT : TM_IDTYPE_DNI;
    size_t nf = 1 + rng_below(r, 3);
    for (size_t k = 0; k < nf; k++) {
        /* Few fields, so that patches compete for the same registers. */
        int f = (int)rng_below(r, 4) == 3 ? TM_CF_OFFERS_OPT_IN : (int)rng_below(r, 3);
        p->f[f].set = true;
        if (f == TM_CF_OFFERS_OPT_IN)
            tm_strlcpy(p->f[f].value, rng_below(r, 2) ? "true" : "false", sizeof p->f[f].value);
        else
            snprintf(p->f[f].value, sizeof p->f[f].value, "v%d.%llu.%d", origin,
                     (unsigned long long)seq, f);
    }
}

static void encode_op(world_t *w, size_t i)
{
    tm_op_t *op = &w->op[i];
    int rc = op->kind == TM_OP_SALE ? tm_wire_sale_encode(&w->sale[i], &op->body, &op->body_len)
             : op->kind == TM_OP_CUSTOMER
                 ? tm_wire_customer_encode(&w->patch[i], &op->body, &op->body_len)
                 : tm_wire_ack_encode(&w->ack[i], &op->body, &op->body_len);
    cr_assert_eq(rc, TM_OK);
}

/* Sale ops whose id another origin's sale op reuses: the second op of
 * each pair takes the first's id. */
static void reuse_sale_ids(rng_t *r, world_t *w)
{
    int done = 0;
    for (int tries = 0; done < 3 && tries < 10000; tries++) {
        size_t a = rng_below(r, N_OPS), b = rng_below(r, N_OPS);
        if (w->op[a].kind != TM_OP_SALE || w->op[b].kind != TM_OP_SALE ||
            a / PER_ORIGIN == b / PER_ORIGIN || strcmp(w->sale[a].sale_id, w->sale[b].sale_id) == 0)
            continue;
        memcpy(w->sale[b].sale_id, w->sale[a].sale_id, TM_UUID_LEN);
        done++;
    }
    cr_assert_eq(done, 3);
}

static void world_build(world_t *w, uint64_t seed)
{
    rng_t r = {seed};
    memset(w, 0, sizeof *w);
    for (size_t i = 0; i < N_OPS; i++) {
        tm_op_t *op = &w->op[i];
        int o = (int)(i / PER_ORIGIN);
        memset(op->origin, 0x11 * (o + 1), TM_NODE_ID_LEN);
        op->origin[TM_NODE_ID_LEN - 1] = (uint8_t)o;
        op->seq = i % PER_ORIGIN + 1;
        /* Rising per origin, as an HLC does, but colliding across origins
         * so that ties are broken by node id. */
        op->hlc = 1000 + op->seq * 4 + rng_below(&r, 3);
        size_t k = rng_below(&r, 10);
        op->kind = k < 5   ? TM_OP_SALE
                   : k < 8 ? TM_OP_CUSTOMER
                   : k < 9 ? TM_OP_ERP_INTENT
                           : TM_OP_ERP_ACK;
        if (op->kind == TM_OP_SALE)
            make_sale(&r, &w->sale[i], o, op->seq);
        else if (op->kind == TM_OP_CUSTOMER)
            make_patch(&r, &w->patch[i], o, op->seq);
    }
    reuse_sale_ids(&r, w);
    for (size_t i = 0; i < N_OPS; i++) {
        bool dup = false;
        for (size_t j = 0; w->op[i].kind == TM_OP_SALE && j < w->n_ids && !dup; j++)
            dup = strcmp(w->ids[j], w->sale[i].sale_id) == 0;
        if (w->op[i].kind == TM_OP_SALE && !dup)
            memcpy(w->ids[w->n_ids++], w->sale[i].sale_id, TM_UUID_LEN);
    }
    /* Intents and acks name sales from anywhere, often before those sales
     * arrive; an ack counts only for ids an intent of its origin named
     * under its key, which may arrive before or after it. Acks copy the
     * ids of an intent of their origin most of the time. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < N_OPS; i++) {
            bool intent = w->op[i].kind == TM_OP_ERP_INTENT;
            if ((pass == 0) != intent || (!intent && w->op[i].kind != TM_OP_ERP_ACK))
                continue;
            tm_erp_ack_t *a = &w->ack[i];
            size_t o = i / PER_ORIGIN, src = N_OPS;
            for (size_t j = o * PER_ORIGIN; !intent && j < (o + 1) * PER_ORIGIN; j++)
                if (w->op[j].kind == TM_OP_ERP_INTENT && rng_below(&r, 2))
                    src = j;
            a->n = src < N_OPS ? w->ack[src].n : 1 + rng_below(&r, 4);
            a->sale_ids = calloc(a->n, sizeof *a->sale_ids);
            cr_assert_not_null(a->sale_ids);
            for (size_t k = 0; k < a->n; k++)
                memcpy(a->sale_ids[k],
                       src < N_OPS ? w->ack[src].sale_ids[k] : w->ids[rng_below(&r, w->n_ids)],
                       TM_UUID_LEN);
            a->epoch = 1;
            snprintf(a->idempotency_key, sizeof a->idempotency_key, "k%zu", src < N_OPS ? src : o);
            if (intent)
                snprintf(a->idempotency_key, sizeof a->idempotency_key, "k%zu", i);
        }
    }
    for (size_t i = 0; i < N_OPS; i++)
        encode_op(w, i);
}

static void world_free(world_t *w)
{
    for (size_t i = 0; i < N_OPS; i++) {
        free(w->op[i].body);
        tm_sale_free(&w->sale[i]);
        tm_erp_ack_free(&w->ack[i]);
    }
}

/* ---- what every store must agree on ------------------------------------ */

typedef struct {
    uint8_t digest[32];
    tm_vv_t vv;
    tm_store_counts_t counts;
    uint8_t *sale_enc[N_OPS]; /* per w->ids entry: encoded materialised sale */
    size_t sale_len[N_OPS];
    int acked[N_OPS];
    tm_customer_t cust[N_CUST];
    int cust_rc[N_CUST];
} snapshot_t;

static void snapshot(tm_store_t *st, const world_t *w, snapshot_t *s)
{
    memset(s, 0, sizeof *s);
    cr_assert_eq(tm_store_digest(st, s->digest), TM_OK);
    cr_assert_eq(tm_store_vv(st, &s->vv), TM_OK);
    cr_assert_eq(tm_store_counts(st, &s->counts), TM_OK);
    for (size_t i = 0; i < w->n_ids; i++) {
        tm_sale_t sale;
        cr_assert_eq(tm_store_get_sale(st, w->ids[i], &sale), TM_OK);
        cr_assert_eq(tm_wire_sale_encode(&sale, &s->sale_enc[i], &s->sale_len[i]), TM_OK);
        tm_sale_free(&sale);
        s->acked[i] = tm_store_is_acked(st, w->ids[i]);
    }
    for (int c = 0; c < N_CUST; c++)
        s->cust_rc[c] = tm_store_get_customer(st, cust_ids[c], &s->cust[c]);
}

static void snapshot_free(snapshot_t *s)
{
    tm_vv_free(&s->vv);
    for (size_t i = 0; i < N_OPS; i++)
        free(s->sale_enc[i]);
}

static bool cust_eq(const tm_customer_t *a, const tm_customer_t *b)
{
    if (strcmp(a->id, b->id) != 0 || a->id_type != b->id_type)
        return false;
    for (int f = 0; f < TM_CF_COUNT; f++) {
        const tm_cust_value_t *x = &a->f[f], *y = &b->f[f];
        if (x->set != y->set)
            return false;
        if (x->set && (strcmp(x->value, y->value) != 0 || x->hlc != y->hlc ||
                       memcmp(x->node, y->node, TM_NODE_ID_LEN) != 0))
            return false;
    }
    return true;
}

static void snapshot_expect_eq(const snapshot_t *ref, const snapshot_t *s, const world_t *w,
                               uint64_t seed, int iter)
{
    cr_assert_eq(memcmp(ref->digest, s->digest, 32), 0, "seed %llu iter %d: digest differs",
                 (unsigned long long)seed, iter);
    cr_assert_eq(ref->vv.n, s->vv.n, "seed %llu iter %d: vv size", (unsigned long long)seed, iter);
    cr_assert_eq(memcmp(ref->vv.e, s->vv.e, s->vv.n * sizeof *s->vv.e), 0,
                 "seed %llu iter %d: vv differs", (unsigned long long)seed, iter);
    cr_assert_eq(memcmp(&ref->counts, &s->counts, sizeof s->counts), 0,
                 "seed %llu iter %d: counts differ", (unsigned long long)seed, iter);
    for (size_t i = 0; i < w->n_ids; i++) {
        cr_assert(ref->sale_len[i] == s->sale_len[i] &&
                      memcmp(ref->sale_enc[i], s->sale_enc[i], s->sale_len[i]) == 0,
                  "seed %llu iter %d: sale %s differs", (unsigned long long)seed, iter, w->ids[i]);
        cr_assert_eq(ref->acked[i], s->acked[i], "seed %llu iter %d: ack of %s",
                     (unsigned long long)seed, iter, w->ids[i]);
    }
    for (int c = 0; c < N_CUST; c++) {
        cr_assert_eq(ref->cust_rc[c], s->cust_rc[c]);
        cr_assert(cust_eq(&ref->cust[c], &s->cust[c]), "seed %llu iter %d: customer %s differs",
                  (unsigned long long)seed, iter, cust_ids[c]);
    }
}

/* The reference must also be right, not merely agreed on: check it
 * against the rules computed here without the store. */
static void expect_reference_right(const world_t *w, const snapshot_t *ref)
{
    cr_assert_eq(ref->counts.ops, N_OPS);
    cr_assert_eq(ref->counts.sales, w->n_ids);
    cr_assert_eq(ref->vv.n, N_ORIGINS);
    for (size_t i = 0; i < ref->vv.n; i++)
        cr_assert_eq(ref->vv.e[i].seq, PER_ORIGIN);
    for (size_t k = 0; k < w->n_ids; k++) {
        /* The winner of a reused id is the op with the smallest (origin,
         * seq); stamps play no part (every sale here passes the rules). */
        size_t win = N_OPS;
        for (size_t i = 0; i < N_OPS; i++) {
            if (w->op[i].kind != TM_OP_SALE || strcmp(w->sale[i].sale_id, w->ids[k]) != 0)
                continue;
            int c = win == N_OPS ? -1 : memcmp(w->op[i].origin, w->op[win].origin, TM_NODE_ID_LEN);
            if (c < 0 || (c == 0 && w->op[i].seq < w->op[win].seq))
                win = i;
        }
        cr_assert(ref->sale_len[k] == w->op[win].body_len &&
                      memcmp(ref->sale_enc[k], w->op[win].body, w->op[win].body_len) == 0,
                  "sale %s: the wrong op won", w->ids[k]);
    }
    for (int c = 0; c < N_CUST; c++) {
        tm_customer_t want = {0};
        bool any = false;
        tm_strlcpy(want.id, cust_ids[c], sizeof want.id);
        for (size_t i = 0; i < N_OPS; i++) {
            if (w->op[i].kind != TM_OP_CUSTOMER || strcmp(w->patch[i].id, cust_ids[c]) != 0)
                continue;
            tm_customer_t p = w->patch[i];
            tm_customer_stamp(&p, w->op[i].hlc, w->op[i].origin);
            tm_customer_merge(&want, &p);
            any = true;
        }
        cr_assert_eq(ref->cust_rc[c], any ? TM_OK : TM_ENOTFOUND);
        for (int f = 0; any && f < TM_CF_COUNT; f++) {
            tm_cust_value_t *x = &want.f[f];
            const tm_cust_value_t *y = &ref->cust[c].f[f];
            cr_assert(x->set == y->set &&
                          (!x->set || (strcmp(x->value, y->value) == 0 && x->hlc == y->hlc)),
                      "customer %s field %d", cust_ids[c], f);
        }
    }
}

/* ---- running it -------------------------------------------------------- */

static const char *scratch_dir(void)
{
    struct stat sb;
    if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0)
        return "/dev/shm";
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

static void remove_store(const char *path)
{
    char p[256];
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
}

/* Applies w's ops in order[0..n) in random batches. */
static void apply_in_batches(tm_store_t *st, const world_t *w, const size_t *order, size_t n,
                             rng_t *r)
{
    tm_op_t batch[N_OPS * 2];
    size_t at = 0;
    while (at < n) {
        size_t len = 1 + rng_below(r, rng_below(r, 4) == 0 ? 60 : 8);
        if (len > n - at)
            len = n - at;
        for (size_t i = 0; i < len; i++)
            batch[i] = w->op[order[at + i]];
        int rc = tm_store_apply(st, batch, len, NULL);
        cr_assert_eq(rc, TM_OK, "apply: %s (%s)", tm_strerror(rc), tm_store_errmsg(st));
        at += len;
    }
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static void run_part(int part)
{
    uint64_t seed = env_u64("TM_MERGE_SEED", DEFAULT_SEED) + (uint64_t)part;
    int iters = (int)(env_u64("TM_MERGE_ITERS", DEFAULT_ITERS) / N_PARTS);
    fprintf(stderr, "test_merge part %d: seed %llu, %d orders (TM_MERGE_SEED=%llu to repeat)\n",
            part, (unsigned long long)seed, iters, (unsigned long long)(seed - (uint64_t)part));
    static world_t w; /* big; one per test process */
    world_build(&w, seed);

    char dir[128], path[192];
    snprintf(dir, sizeof dir, "%s/tm_merge_XXXXXX", scratch_dir());
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.db", dir);

    size_t order[N_OPS * 2];
    for (size_t i = 0; i < N_OPS; i++)
        order[i] = i;
    tm_store_t *st = NULL;
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    size_t n_new = 0;
    cr_assert_eq(tm_store_apply(st, w.op, N_OPS, &n_new), TM_OK);
    cr_assert_eq(n_new, N_OPS);
    static snapshot_t ref, got;
    snapshot(st, &w, &ref);
    tm_store_destroy(&st);
    remove_store(path);
    expect_reference_right(&w, &ref);

    rng_t r = {seed ^ 0xA5A5A5A5u};
    for (int it = 0; it < iters; it++) {
        size_t n = N_OPS + rng_below(&r, N_OPS / 5); /* some ops twice or more */
        for (size_t i = N_OPS; i < n; i++)
            order[i] = rng_below(&r, N_OPS);
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = rng_below(&r, i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
        apply_in_batches(st, &w, order, n, &r);
        snapshot(st, &w, &got);
        tm_store_destroy(&st);
        remove_store(path);
        snapshot_expect_eq(&ref, &got, &w, seed, it);
        snapshot_free(&got);
        for (size_t i = 0; i < N_OPS; i++) /* the shuffle must not lose any op */
            order[i] = i;
    }
    snapshot_free(&ref);
    world_free(&w);
    rmdir(dir);
}

Test(merge, any_order_converges_0)
{
    run_part(0);
}
Test(merge, any_order_converges_1)
{
    run_part(1);
}
Test(merge, any_order_converges_2)
{
    run_part(2);
}
Test(merge, any_order_converges_3)
{
    run_part(3);
}
