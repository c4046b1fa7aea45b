/* test_store_batch.c - a catch-up batch on a real SQLite file: the vector
 * advances over exactly what is held, and a till killed (-9) inside or
 * between batches keeps whole batches only, each one it acknowledged. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tm_sign.h"
#include "tm_store.h"
#include "tm_wire.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/tm-batch-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(batch, .init = setup, .fini = teardown);

static tm_store_t *open_at(const char *name)
{
    char path[128];
    tm_store_t *st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = tm_store_open(path, NULL, &st);
    cr_assert_eq(rc, TM_OK, "open %s: %s", path, tm_strerror(rc));
    return st;
}

/* Sale k's id, the same in every process. */
static void sale_id(uint64_t k, char out[TM_UUID_LEN])
{
    snprintf(out, TM_UUID_LEN, "00000000-0000-4000-8000-%012llx", (unsigned long long)k);
}

static void sale_body(uint64_t k, uint8_t **body, size_t *len)
{
    tm_sale_line_t line = {.sku = "1", .name = "x", .qty = 1000, .unit_price = 100};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = 100};
    tm_sale_t s = {.till = "t",
                   .receipt_no = k,
                   .created_at = "2026-01-01T00:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = 100,
                   .payments = &pay,
                   .n_payments = 1};
    sale_id(k, s.sale_id);
    cr_assert_eq(tm_wire_sale_encode(&s, body, len), TM_OK);
}

/* The ops of one signing origin, seq 1..n, signed and chained as its till
 * would have: deterministic, so every process makes the same ones. */
typedef struct {
    uint8_t pk[32], sk[64], origin[TM_NODE_ID_LEN];
    tm_op_t *ops;
    size_t n;
} chain_t;

static void chain_make(chain_t *c, size_t n)
{
    uint8_t curve[32], link[32] = {0};
    memset(curve, 7, sizeof curve);
    tm_sign_keypair(curve, c->pk, c->sk);
    tm_sign_node_id(c->pk, 1, c->origin);
    c->ops = calloc(n, sizeof *c->ops);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        tm_op_t *op = &c->ops[i];
        uint8_t h[32];
        memcpy(op->origin, c->origin, TM_NODE_ID_LEN);
        op->seq = i + 1;
        op->hlc = (uint64_t)(1000 + i) << 16;
        op->kind = TM_OP_SALE;
        sale_body(op->seq, &op->body, &op->body_len);
        tm_sign_op_hash(op->origin, op->seq, op->hlc, op->kind, op->body, op->body_len, h);
        memcpy(op->prev, link, 32);
        tm_sign_op(c->sk, h, op->prev, op->sig);
        op->has_sig = true;
        tm_sign_chain(h, op->prev, link);
    }
}

static void chain_free(chain_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ops[i].body);
    free(c->ops);
}

static void trust(tm_store_t *st, const chain_t *c)
{
    cr_assert_eq(tm_store_set_trusted(st, &c->pk, 1), TM_OK);
}

static uint64_t vv_of(tm_store_t *st, const uint8_t origin[TM_NODE_ID_LEN])
{
    tm_vv_t vv;
    cr_assert_eq(tm_store_vv(st, &vv), TM_OK);
    uint64_t v = tm_vv_get(&vv, origin);
    tm_vv_free(&vv);
    return v;
}

static size_t apply_seqs(tm_store_t *st, const chain_t *c, const uint64_t *seqs, size_t n)
{
    tm_op_t *b = calloc(n, sizeof *b);
    for (size_t i = 0; i < n; i++)
        b[i] = c->ops[seqs[i] - 1];
    size_t fresh = 0;
    tm_apply_report_t rep;
    int rc = tm_store_apply_report(st, b, n, &fresh, &rep);
    cr_assert_eq(rc, TM_OK, "%s", tm_strerror(rc));
    cr_assert_eq(rep.refused, 0, "%s", rep.reason);
    free(b);
    return fresh;
}

Test(batch, the_vector_advances_over_the_batch_and_over_ops_held_before_in_any_order)
{
    chain_t c;
    chain_make(&c, 9);
    tm_store_t *st = open_at("v.db");
    trust(st, &c);
    /* 4 arrives alone, early: held, the vector waits for 1..3. */
    cr_assert_eq(apply_seqs(st, &c, (uint64_t[]){4}, 1), 1);
    cr_assert_eq(vv_of(st, c.origin), 0);
    /* A batch out of order, with a repeat, fills the gap and runs over 4
     * (held before) to 5. */
    cr_assert_eq(apply_seqs(st, &c, (uint64_t[]){5, 3, 1, 2, 2}, 5), 4);
    cr_assert_eq(vv_of(st, c.origin), 5);
    /* Past a gap the vector does not move... */
    cr_assert_eq(apply_seqs(st, &c, (uint64_t[]){9, 7}, 2), 2);
    cr_assert_eq(vv_of(st, c.origin), 5);
    /* ... until it fills, one op at a time. */
    cr_assert_eq(apply_seqs(st, &c, (uint64_t[]){6}, 1), 1);
    cr_assert_eq(vv_of(st, c.origin), 7);
    /* A batch of ops all held already changes nothing. */
    cr_assert_eq(apply_seqs(st, &c, (uint64_t[]){1, 2, 3, 9}, 4), 0);
    cr_assert_eq(vv_of(st, c.origin), 7);
    cr_assert_eq(apply_seqs(st, &c, (uint64_t[]){8}, 1), 1);
    cr_assert_eq(vv_of(st, c.origin), 9);
    /* The same digest as a store that took them in order, one batch. */
    tm_store_t *ref = open_at("ref.db");
    trust(ref, &c);
    cr_assert_eq(apply_seqs(ref, &c, (uint64_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, 9), 9);
    uint8_t d1[32], d2[32];
    tm_store_digest(st, d1);
    tm_store_digest(ref, d2);
    cr_assert_eq(memcmp(d1, d2, 32), 0);
    tm_store_destroy(&st);
    tm_store_destroy(&ref);
    chain_free(&c);
}

#define BATCH     200
#define N_BATCHES 40

/* The child: applies the chain batch by batch, and after each apply has
 * returned (committed, fsync'd) writes one byte to fd: an acknowledgement. */
static void s_child(const char *name, int fd)
{
    chain_t c;
    chain_make(&c, BATCH * N_BATCHES);
    tm_store_t *st = open_at(name);
    trust(st, &c);
    for (size_t b = 0; b < N_BATCHES; b++) {
        size_t fresh = 0;
        if (tm_store_apply(st, c.ops + b * BATCH, BATCH, &fresh) != TM_OK || fresh != BATCH)
            _exit(3);
        if (write(fd, "b", 1) != 1)
            _exit(4);
    }
    _exit(0);
}

Test(batch, a_kill9_inside_or_between_batches_keeps_whole_batches_and_every_acknowledged_one,
     .timeout = 240)
{
    chain_t c;
    chain_make(&c, BATCH * N_BATCHES);
    srand((unsigned)time(NULL));
    for (int round = 0; round < 3; round++) {
        char name[32];
        snprintf(name, sizeof name, "k%d.db", round);
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            close(fds[0]);
            s_child(name, fds[1]);
        }
        close(fds[1]);
        /* Kill it after a few acknowledged batches, at a random point of
         * whatever it does then (usually inside the next batch). */
        size_t acked = 0, want = 1 + (size_t)(rand() % 4);
        char ch;
        while (acked < want && read(fds[0], &ch, 1) == 1)
            acked++;
        cr_assert_eq(acked, want, "the child stopped early");
        usleep((useconds_t)(rand() % 20000));
        kill(pid, SIGKILL);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        while (read(fds[0], &ch, 1) == 1) /* acknowledged before the kill */
            acked++;
        close(fds[0]);
        cr_assert(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "the child failed (status %d)", status);

        tm_store_t *st = open_at(name);
        tm_store_counts_t n;
        cr_assert_eq(tm_store_counts(st, &n), TM_OK);
        cr_assert_eq(n.ops % BATCH, 0, "round %d: %llu ops, not whole batches of %d", round,
                     (unsigned long long)n.ops, BATCH);
        cr_assert_geq(n.ops, acked * BATCH, "round %d: an acknowledged batch is gone", round);
        cr_assert_eq(n.sales, n.ops);
        cr_assert_eq(vv_of(st, c.origin), n.ops);
        /* Exactly the first k batches: the digest of a store given them. */
        size_t k = (size_t)(n.ops / BATCH);
        char ref_name[32];
        snprintf(ref_name, sizeof ref_name, "r%d.db", round);
        tm_store_t *ref = open_at(ref_name);
        trust(ref, &c);
        size_t fresh = 0;
        if (k)
            cr_assert_eq(tm_store_apply(ref, c.ops, k * BATCH, &fresh), TM_OK);
        uint8_t d1[32], d2[32];
        tm_store_digest(st, d1);
        tm_store_digest(ref, d2);
        cr_assert_eq(memcmp(d1, d2, 32), 0, "round %d: the digest is not the first %zu batches'",
                     round, k);
        /* And it goes on from there: the rest applies, all of it new. */
        if (k < N_BATCHES) {
            cr_assert_eq(tm_store_apply(st, c.ops + k * BATCH, (N_BATCHES - k) * BATCH, &fresh),
                         TM_OK);
            cr_assert_eq(fresh, (N_BATCHES - k) * BATCH);
        }
        cr_assert_eq(vv_of(st, c.origin), (uint64_t)BATCH * N_BATCHES);
        tm_store_destroy(&st);
        tm_store_destroy(&ref);
    }
    chain_free(&c);
}

Test(batch, the_cache_goes_back_once_per_idle_stretch_and_the_store_still_reads)
{
    chain_t c;
    chain_make(&c, 2);
    tm_store_t *st = open_at("t.db");
    trust(st, &c);
    cr_assert_eq(apply_seqs(st, &c, (uint64_t[]){1}, 1), 1);
    cr_assert_not(tm_store_trim(st), "a write began since the last look");
    cr_assert(tm_store_trim(st), "a whole period without a write");
    cr_assert_not(tm_store_trim(st), "once per idle stretch");
    tm_sale_t s;
    char id[TM_UUID_LEN];
    sale_id(1, id);
    cr_assert_eq(tm_store_get_sale(st, id, &s), TM_OK);
    tm_sale_free(&s);
    cr_assert_not(tm_store_trim(st), "reads do not start a new stretch");
    cr_assert_eq(apply_seqs(st, &c, (uint64_t[]){2}, 1), 1);
    cr_assert_not(tm_store_trim(st));
    cr_assert(tm_store_trim(st));
    cr_assert_eq(vv_of(st, c.origin), 2);
    tm_store_destroy(&st);
    chain_free(&c);
}
