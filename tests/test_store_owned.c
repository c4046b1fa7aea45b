/* test_store_owned.c - sales are owned and immutable; acknowledgements are
 * bound to the intent their origin wrote. Every case is run in every
 * arrival order: the tables must not depend on it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_store.h"
#include "tm_wire.h"

static char dir[64], path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/tm-store-owned-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.db", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(owned, .init = setup, .fini = teardown);

#define SALE_ID "5d6b3c1e-8f0a-4b2c-9d3e-1f2a3b4c5d6e"

static tm_store_t *fresh(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -f %s %s-wal %s-shm", path, path, path);
    cr_assert_eq(system(cmd), 0);
    tm_store_t *st = NULL;
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    return st;
}

static void node(uint8_t b, uint8_t out[TM_NODE_ID_LEN])
{
    memset(out, b, TM_NODE_ID_LEN);
}

/* A sale op of origin `o`: a valid sale of `till` for `total` unless
 * total_field differs (a sale whose lines do not add up). */
static tm_op_t sale_op(uint8_t o, uint64_t seq, uint64_t hlc, const char *id, const char *till,
                       uint64_t receipt, int64_t total, int64_t total_field)
{
    tm_sale_line_t line = {.sku = "1", .name = "x", .qty = 1000, .unit_price = total};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = total_field};
    tm_sale_t s = {.receipt_no = receipt,
                   .created_at = "2026-01-01T00:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = total_field,
                   .payments = &pay,
                   .n_payments = 1};
    strcpy(s.sale_id, id);
    strcpy(s.till, till);
    tm_op_t op = {.seq = seq, .hlc = hlc, .kind = TM_OP_SALE};
    node(o, op.origin);
    cr_assert_eq(tm_wire_sale_encode(&s, &op.body, &op.body_len), TM_OK);
    return op;
}

static void apply(tm_store_t *st, const tm_op_t *op)
{
    size_t n_new = 0;
    cr_assert_eq(tm_store_apply(st, op, 1, &n_new), TM_OK);
    cr_assert_eq(n_new, 1, "every op is kept in the log, shown or not");
}

static int64_t total_of(tm_store_t *st, const char *id)
{
    tm_sale_t s;
    int rc = tm_store_get_sale(st, id, &s);
    if (rc == TM_ENOTFOUND)
        return -1;
    cr_assert_eq(rc, TM_OK);
    int64_t t = s.total;
    tm_sale_free(&s);
    return t;
}

static tm_conflict_counts_t conflicts(tm_store_t *st, char reason[96])
{
    tm_sale_conflict_t *v = NULL;
    size_t n = 0;
    tm_conflict_counts_t c;
    cr_assert_eq(tm_store_conflicts(st, 10, &v, &n, &c), TM_OK);
    cr_assert_eq(n, c.total > 10 ? 10 : c.total);
    if (reason)
        strcpy(reason, n ? v[0].reason : "");
    free(v);
    return c;
}

/* Before: the op with the smaller (hlc, origin, seq) replaced the stored
 * sale, so this one op with hlc 1 rewrote the sale. Old APIs only. */
Test(owned, a_later_op_with_a_small_stamp_does_not_rewrite_a_sale)
{
    for (int order = 0; order < 2; order++) {
        tm_store_t *st = fresh();
        tm_op_t real = sale_op(0xA0, 1, 5000, SALE_ID, "till-a", 1, 1990, 1990);
        tm_op_t forged = sale_op(0xA0, 2, 1, SALE_ID, "till-a", 1, 1, 1);
        apply(st, order ? &forged : &real);
        apply(st, order ? &real : &forged);
        cr_assert_eq(total_of(st, SALE_ID), 1990, "order %d: the first word of the till stays",
                     order);
        free(real.body);
        free(forged.body);
        tm_store_destroy(&st);
    }
}

Test(owned, another_origin_cannot_rewrite_a_sale_and_is_kept_aside)
{
    uint8_t a[TM_NODE_ID_LEN], b[TM_NODE_ID_LEN];
    node(0xA0, a);
    node(0x0B, b); /* smaller: first by (origin, seq) if its claim were valid */
    for (int order = 0; order < 2; order++) {
        tm_store_t *st = fresh();
        cr_assert_eq(tm_store_bind_origin(st, a, "till-a"), TM_OK);
        cr_assert_eq(tm_store_bind_origin(st, b, "till-b"), TM_OK);
        cr_assert_eq(tm_store_bind_origin(st, b, "till-a"), TM_ECONFLICT);
        tm_op_t real = sale_op(0xA0, 1, 5000, SALE_ID, "till-a", 1, 1990, 1990);
        tm_op_t forged = sale_op(0x0B, 1, 1, SALE_ID, "till-a", 1, 1, 1);
        apply(st, order ? &forged : &real);
        apply(st, order ? &real : &forged);
        cr_assert_eq(total_of(st, SALE_ID), 1990, "order %d", order);
        char why[96];
        tm_conflict_counts_t c = conflicts(st, why);
        cr_assert_eq(c.total, 1);
        cr_assert_eq(c.till_not_origin, 1);
        cr_assert_str_eq(why, "till_not_origin");
        free(real.body);
        free(forged.body);
        tm_store_destroy(&st);
    }
}

Test(owned, a_received_sale_that_breaks_a_rule_is_logged_not_shown)
{
    tm_store_t *st = fresh();
    tm_op_t bad = sale_op(0xC0, 1, 10, SALE_ID, "till-c", 1, 1990, 5);
    apply(st, &bad);
    cr_assert_eq(total_of(st, SALE_ID), -1);
    tm_vv_t vv;
    cr_assert_eq(tm_store_vv(st, &vv), TM_OK);
    cr_assert_eq(tm_vv_get(&vv, bad.origin), 1, "the vector advances over it");
    tm_vv_free(&vv);
    char why[96];
    tm_conflict_counts_t c = conflicts(st, why);
    cr_assert_eq(c.invalid, 1);
    cr_assert_str_eq(why, "invalid:total:sum");
    /* A valid body for the same id from its owner is then the sale. */
    tm_op_t good = sale_op(0xC0, 2, 11, SALE_ID, "till-c", 1, 1990, 1990);
    apply(st, &good);
    cr_assert_eq(total_of(st, SALE_ID), 1990);
    free(bad.body);
    free(good.body);
    tm_store_destroy(&st);
}

Test(owned, a_name_bound_later_settles_the_sales_again)
{
    uint8_t c[TM_NODE_ID_LEN];
    node(0x0C, c);
    tm_store_t *st = fresh();
    /* Origin 0x0C (not bound yet) claims the sale as till-a's; till-a's own
     * op comes later in (origin, seq) order. */
    tm_op_t squat = sale_op(0x0C, 1, 1, SALE_ID, "till-a", 1, 1, 1);
    tm_op_t real = sale_op(0xA0, 1, 5000, SALE_ID, "till-a", 1, 1990, 1990);
    apply(st, &squat);
    apply(st, &real);
    cr_assert_eq(total_of(st, SALE_ID), 1, "unbound: not judged on its name yet");
    cr_assert_eq(tm_store_bind_origin(st, c, "till-c"), TM_OK);
    cr_assert_eq(total_of(st, SALE_ID), 1990);
    cr_assert_eq(conflicts(st, NULL).till_not_origin, 1);
    free(squat.body);
    free(real.body);
    tm_store_destroy(&st);
}

Test(owned, a_repeated_receipt_number_is_flagged_not_dropped)
{
    tm_store_t *st = fresh();
    tm_op_t x = sale_op(0xA0, 1, 10, SALE_ID, "till-a", 7, 100, 100);
    tm_op_t y = sale_op(0xA0, 2, 11, "6d6b3c1e-8f0a-4b2c-9d3e-1f2a3b4c5d6e", "till-a", 7, 200, 200);
    apply(st, &x);
    cr_assert_eq(conflicts(st, NULL).dup_receipt, 0);
    apply(st, &y);
    cr_assert_eq(total_of(st, SALE_ID), 100);
    cr_assert_eq(total_of(st, "6d6b3c1e-8f0a-4b2c-9d3e-1f2a3b4c5d6e"), 200);
    cr_assert_eq(conflicts(st, NULL).dup_receipt, 2);
    free(x.body);
    free(y.body);
    tm_store_destroy(&st);
}

static tm_op_t ack_op(uint8_t o, uint64_t seq, uint32_t kind, const char *key, const char *id)
{
    char ids[1][TM_UUID_LEN];
    strcpy(ids[0], id);
    tm_erp_ack_t a = {.sale_ids = ids, .n = 1, .epoch = 1};
    if (!key) { /* a revocation (reconcile) */
        a.n = 0;
        a.revoked = ids;
        a.n_revoked = 1;
        key = "";
    }
    strcpy(a.idempotency_key, key);
    tm_op_t op = {.seq = seq, .hlc = 100 + seq, .kind = kind};
    node(o, op.origin);
    cr_assert_eq(tm_wire_ack_encode(&a, &op.body, &op.body_len), TM_OK);
    return op;
}

Test(owned, an_ack_counts_only_for_an_intent_of_its_own_origin)
{
    tm_store_t *st = fresh();
    tm_op_t sale = sale_op(0xA0, 1, 10, SALE_ID, "till-a", 1, 100, 100);
    apply(st, &sale);
    /* A till that wrote no intent acknowledges the sale: nothing. */
    tm_op_t forged = ack_op(0x0F, 1, TM_OP_ERP_ACK, "k1", SALE_ID);
    apply(st, &forged);
    cr_assert_eq(tm_store_is_acked(st, SALE_ID), 0);
    /* The forwarder's intent under k1 does not make the other's ack count. */
    tm_op_t intent = ack_op(0xF0, 1, TM_OP_ERP_INTENT, "k1", SALE_ID);
    apply(st, &intent);
    cr_assert_eq(tm_store_is_acked(st, SALE_ID), 0);
    /* Its own ack does. */
    tm_op_t ack = ack_op(0xF0, 2, TM_OP_ERP_ACK, "k1", SALE_ID);
    apply(st, &ack);
    cr_assert_eq(tm_store_is_acked(st, SALE_ID), 1);
    tm_store_destroy(&st);

    /* Ack before its intent (it replicated first): counts once both are held. */
    st = fresh();
    apply(st, &sale);
    apply(st, &ack);
    cr_assert_eq(tm_store_is_acked(st, SALE_ID), 0);
    apply(st, &intent);
    cr_assert_eq(tm_store_is_acked(st, SALE_ID), 1);
    tm_store_destroy(&st);
    free(sale.body);
    free(forged.body);
    free(intent.body);
    free(ack.body);
}

Test(owned, a_revoked_ack_counts_again_only_after_a_later_ack)
{
    tm_op_t sale = sale_op(0xA0, 1, 10, SALE_ID, "till-a", 1, 100, 100);
    tm_op_t intent = ack_op(0xF0, 1, TM_OP_ERP_INTENT, "k1", SALE_ID);
    tm_op_t ack = ack_op(0xF0, 2, TM_OP_ERP_ACK, "k1", SALE_ID);        /* hlc 102 */
    tm_op_t revoke = ack_op(0xF0, 3, TM_OP_ERP_ACK, NULL, SALE_ID);     /* hlc 103 */
    tm_op_t intent2 = ack_op(0xF0, 4, TM_OP_ERP_INTENT, "k2", SALE_ID); /* hlc 104 */
    tm_op_t ack2 = ack_op(0xF0, 5, TM_OP_ERP_ACK, "k2", SALE_ID);       /* hlc 105 */
    const tm_op_t *in_order[] = {&sale, &intent, &ack, &revoke};
    const tm_op_t *reversed[] = {&revoke, &ack, &intent, &sale};
    for (int order = 0; order < 2; order++) {
        tm_store_t *st = fresh();
        for (int i = 0; i < 4; i++)
            apply(st, (order ? reversed : in_order)[i]);
        cr_assert_eq(tm_store_is_acked(st, SALE_ID), 0, "order %d", order);
        uint32_t gen = 0;
        cr_assert_eq(tm_store_retry_gen(st, SALE_ID, &gen), TM_OK);
        cr_assert_eq(gen, 1, "the re-send goes under a new key");
        char(*ids)[TM_UUID_LEN] = NULL;
        size_t n = 0;
        cr_assert_eq(tm_store_unacked_sales(st, 10, &ids, &n), TM_OK);
        cr_assert_eq(n, 1, "it is sent again");
        free(ids);
        apply(st, &intent2);
        apply(st, &ack2);
        cr_assert_eq(tm_store_is_acked(st, SALE_ID), 1);
        tm_store_destroy(&st);
    }
    tm_op_t *all[] = {&sale, &intent, &ack, &revoke, &intent2, &ack2};
    for (int i = 0; i < 6; i++)
        free(all[i]->body);
}
