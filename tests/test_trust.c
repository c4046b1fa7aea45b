/* test_trust.c - signed, chained ops on real SQLite stores: what one
 * misbehaving till (or a restored one) can no longer do to the others. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_sign.h"
#include "tm_store.h"
#include "tm_wire.h"

static char dir[64];
static int n_stores;

static void setup(void)
{
    strcpy(dir, "/tmp/tm-trust-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    n_stores = 0;
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(trust, .init = setup, .fini = teardown);

typedef struct {
    uint8_t pk[32], sk[64];
} key_t_;

static key_t_ key(uint8_t seed)
{
    uint8_t curve[32];
    memset(curve, seed, sizeof curve);
    key_t_ k;
    tm_sign_keypair(curve, k.pk, k.sk);
    return k;
}

static tm_store_t *open_store(void)
{
    char path[128];
    tm_store_t *st;
    snprintf(path, sizeof path, "%s/s%d.db", dir, n_stores++);
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    return st;
}

/* A store that signs with k and trusts every key in ks. */
static tm_store_t *till(const key_t_ *k, const key_t_ *ks, size_t n)
{
    tm_store_t *st = open_store();
    if (k)
        cr_assert_eq(tm_store_set_signer(st, k->pk, k->sk, NULL), TM_OK);
    uint8_t(*pks)[32] = calloc(n + 1, 32);
    for (size_t i = 0; i < n; i++)
        memcpy(pks[i], ks[i].pk, 32);
    cr_assert_eq(tm_store_set_trusted(st, (const uint8_t(*)[32])pks, n), TM_OK);
    free(pks);
    return st;
}

static void sale_body(int64_t total, uint8_t **body, size_t *len, char id[TM_UUID_LEN])
{
    tm_sale_line_t line = {.sku = "1", .name = "x", .qty = 1000, .unit_price = total};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = total};
    tm_sale_t s = {.till = "t",
                   .receipt_no = 1,
                   .created_at = "2026-01-01T00:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = total,
                   .payments = &pay,
                   .n_payments = 1};
    tm_uuid_new(s.sale_id);
    if (id)
        strcpy(id, s.sale_id);
    cr_assert_eq(tm_wire_sale_encode(&s, body, len), TM_OK);
}

static uint64_t sell(tm_store_t *st, int64_t total, char id[TM_UUID_LEN])
{
    uint8_t *body;
    size_t len;
    uint64_t seq;
    sale_body(total, &body, &len, id);
    cr_assert_eq(tm_store_append_local(st, TM_OP_SALE, 100, body, len, &seq), TM_OK);
    free(body);
    return seq;
}

/* Every op `from` holds of its own origin, as a pull answer carries them. */
static void own_ops(tm_store_t *from, tm_op_t **ops, size_t *n)
{
    tm_range_t r = {.from = 1, .to = 1000};
    tm_store_node_id(from, r.origin);
    cr_assert_eq(tm_store_read_ops(from, &r, 1, 1000, 0, ops, n), TM_OK);
}

static tm_apply_report_t apply(tm_store_t *to, const tm_op_t *ops, size_t n, size_t *fresh)
{
    tm_apply_report_t rep;
    size_t f = 0;
    cr_assert_eq(tm_store_apply_report(to, ops, n, &f, &rep), TM_OK);
    if (fresh)
        *fresh = f;
    return rep;
}

static void assert_same_digest(tm_store_t *a, tm_store_t *b)
{
    uint8_t da[32], db[32];
    tm_store_digest(a, da);
    tm_store_digest(b, db);
    cr_assert_arr_eq(da, db, 32);
}

Test(trust, a_till_signs_under_the_origin_its_key_names_and_others_verify)
{
    key_t_ ka = key(1), kb = key(2), ks[2] = {ka, kb};
    tm_store_t *a = till(&ka, ks, 2), *b = till(&kb, ks, 2);
    uint8_t id[TM_NODE_ID_LEN];
    tm_store_node_id(a, id);
    cr_assert(tm_sign_owns(ka.pk, id));
    cr_assert_not(tm_sign_owns(kb.pk, id));
    for (int i = 0; i < 3; i++)
        sell(a, 100 + i, NULL);
    tm_op_t *ops;
    size_t n, fresh;
    own_ops(a, &ops, &n);
    cr_assert_eq(n, 3);
    cr_assert(ops[0].has_sig && ops[2].has_sig);
    tm_apply_report_t rep = apply(b, ops, n, &fresh);
    cr_assert_eq(fresh, 3);
    cr_assert_eq(rep.refused + rep.deferred, 0);
    assert_same_digest(a, b);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
}

Test(trust, a_rewritten_body_is_refused_and_kept_as_evidence)
{
    /* The history rewrite of the issue: an existing sale's op with another
     * body (total 1) - relayed by anyone - under the real origin and seq. */
    key_t_ ka = key(1), kb = key(2), ks[2] = {ka, kb};
    tm_store_t *a = till(&ka, ks, 2), *b = till(&kb, ks, 2);
    char id[TM_UUID_LEN];
    sell(a, 1000, id);
    tm_op_t *ops;
    size_t n, fresh;
    own_ops(a, &ops, &n);
    tm_op_t forged = ops[0];
    uint8_t *body;
    size_t len;
    sale_body(1, &body, &len, NULL);
    forged.body = body;
    forged.body_len = len;
    tm_apply_report_t rep = apply(b, &forged, 1, &fresh);
    cr_assert_eq(fresh, 0);
    cr_assert_eq(rep.refused, 1);
    cr_assert_not_null(strstr(rep.reason, "bad signature"), "%s", rep.reason);
    tm_trust_stats_t ts;
    tm_store_trust_stats(b, &ts);
    cr_assert_eq(ts.evidence, 1);
    /* The real op still goes in afterwards, and wins nothing twice. */
    rep = apply(b, ops, n, &fresh);
    cr_assert_eq(fresh, 1);
    tm_sale_t s;
    cr_assert_eq(tm_store_get_sale(b, id, &s), TM_OK);
    cr_assert_eq(s.total, 1000);
    tm_sale_free(&s);
    /* Once the real op is held, the forgery is still refused as what it
     * is: not signed by its origin (a relay's, not the origin's, fault). */
    rep = apply(b, &forged, 1, &fresh);
    cr_assert_eq(rep.refused, 1);
    cr_assert_eq(rep.forks, 0);
    cr_assert_not_null(strstr(rep.reason, "bad signature"), "%s", rep.reason);
    cr_assert_eq(tm_store_get_sale(b, id, &s), TM_OK);
    cr_assert_eq(s.total, 1000);
    tm_sale_free(&s);
    free(body);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
}

Test(trust, a_trusted_till_cannot_write_as_another_origin)
{
    /* Origin squatting: c (trusted) signs an op with a's origin and a's next
     * seq. The key the origin names is a's, so c's signature fails. */
    key_t_ ka = key(1), kb = key(2), kc = key(3), ks[3] = {ka, kb, kc};
    tm_store_t *a = till(&ka, ks, 3), *b = till(&kb, ks, 3);
    sell(a, 100, NULL);
    tm_op_t *ops;
    size_t n, fresh;
    own_ops(a, &ops, &n);
    tm_op_t squat = ops[0];
    squat.seq = 2;
    uint8_t *body, h[32];
    size_t len;
    sale_body(5, &body, &len, NULL);
    squat.body = body;
    squat.body_len = len;
    /* Its hash as the store computes it (origin, seq, hlc, kind, body). */
    crypto_hash_sha256_state hs;
    uint8_t hdr[44] = {0};
    memcpy(hdr, squat.origin, 16);
    for (int i = 0; i < 8; i++) {
        hdr[16 + i] = (uint8_t)(squat.seq >> (56 - 8 * i));
        hdr[24 + i] = (uint8_t)(squat.hlc >> (56 - 8 * i));
        hdr[36 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    hdr[35] = (uint8_t)squat.kind;
    crypto_hash_sha256_init(&hs);
    crypto_hash_sha256_update(&hs, hdr, sizeof hdr);
    crypto_hash_sha256_update(&hs, body, len);
    crypto_hash_sha256_final(&hs, h);
    memcpy(squat.prev, h, 32); /* whatever: the signature is c's */
    tm_sign_op(kc.sk, h, squat.prev, squat.sig);
    tm_apply_report_t rep = apply(b, ops, n, &fresh);
    rep = apply(b, &squat, 1, &fresh);
    cr_assert_eq(fresh, 0);
    cr_assert_eq(rep.refused, 1);
    /* a's real seq 2 then goes in. */
    sell(a, 200, NULL);
    tm_store_ops_free(ops, n);
    own_ops(a, &ops, &n);
    rep = apply(b, ops, n, &fresh);
    cr_assert_eq(fresh, 1);
    assert_same_digest(a, b);
    free(body);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
}

Test(trust, a_till_restored_from_a_backup_forks_and_the_fork_is_refused)
{
    /* A copy of a's data folder taken after its first sale (a backup),
     * restored later as a2: same origin, and its seq 2 differs from the
     * live till's. b keeps the first it got and refuses the other. */
    key_t_ ka = key(1), kb = key(2), ks[2] = {ka, kb};
    tm_store_t *a = till(&ka, ks, 2), *b = till(&kb, ks, 2);
    sell(a, 100, NULL);
    tm_op_t *ops;
    size_t n, fresh;
    own_ops(a, &ops, &n);
    apply(b, ops, n, NULL);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a); /* checkpoints: the file is the whole store */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cp %s/s0.db %s/backup.db", dir, dir);
    cr_assert_eq(system(cmd), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/s0.db", dir);
    cr_assert_eq(tm_store_open(path, NULL, &a), TM_OK);
    cr_assert_eq(tm_store_set_signer(a, ka.pk, ka.sk, NULL), TM_OK);
    tm_store_t *a2;
    snprintf(path, sizeof path, "%s/backup.db", dir);
    cr_assert_eq(tm_store_open(path, NULL, &a2), TM_OK);
    cr_assert_eq(tm_store_set_signer(a2, ka.pk, ka.sk, NULL), TM_OK);
    sell(a, 200, NULL);  /* seq 2 on the live till */
    sell(a2, 300, NULL); /* seq 2 on the restored one */
    own_ops(a, &ops, &n);
    apply(b, ops, n, &fresh);
    cr_assert_eq(fresh, 1);
    tm_store_ops_free(ops, n);
    own_ops(a2, &ops, &n);
    tm_apply_report_t rep = apply(b, ops, n, &fresh);
    cr_assert_eq(fresh, 0);
    cr_assert_eq(rep.refused, 1);
    cr_assert_not_null(strstr(rep.reason, "fork"), "%s", rep.reason);
    assert_same_digest(a, b);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a);
    tm_store_destroy(&a2);
    tm_store_destroy(&b);
}

Test(trust, an_op_after_a_gap_must_extend_the_chain_when_the_gap_fills)
{
    key_t_ ka = key(1), kb = key(2), ks[2] = {ka, kb};
    tm_store_t *a = till(&ka, ks, 2), *b = till(&kb, ks, 2);
    for (int i = 0; i < 3; i++)
        sell(a, 100 + i, NULL);
    tm_op_t *ops;
    size_t n, fresh;
    own_ops(a, &ops, &n);
    /* seq 3 first, then 1 and 2: out of order is fine when the links match */
    apply(b, &ops[2], 1, &fresh);
    cr_assert_eq(fresh, 1);
    apply(b, ops, 2, &fresh);
    cr_assert_eq(fresh, 2);
    assert_same_digest(a, b);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
}

Test(trust, an_unknown_key_is_deferred_not_evidence)
{
    key_t_ ka = key(1), kb = key(2);
    tm_store_t *a = till(&ka, &ka, 1), *b = till(&kb, &kb, 1); /* b does not know a yet */
    sell(a, 100, NULL);
    tm_op_t *ops;
    size_t n, fresh;
    own_ops(a, &ops, &n);
    tm_apply_report_t rep = apply(b, ops, n, &fresh);
    cr_assert_eq(fresh, 0);
    cr_assert_eq(rep.deferred, 1);
    cr_assert_eq(rep.refused, 0);
    cr_assert_eq(rep.n_origins, 1);
    key_t_ ks[2] = {ka, kb};
    uint8_t pks[2][32];
    memcpy(pks[0], ks[0].pk, 32);
    memcpy(pks[1], ks[1].pk, 32);
    cr_assert_eq(tm_store_set_trusted(b, (const uint8_t(*)[32])pks, 2), TM_OK); /* SIGHUP */
    apply(b, ops, n, &fresh);
    cr_assert_eq(fresh, 1);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
}

Test(trust, one_bad_op_in_a_relayed_batch_does_not_hold_back_the_others)
{
    key_t_ ka = key(1), kb = key(2), kc = key(3), ks[3] = {ka, kb, kc};
    tm_store_t *a = till(&ka, ks, 3), *c = till(&kc, ks, 3), *b = till(&kb, ks, 3);
    sell(a, 100, NULL);
    sell(c, 200, NULL);
    tm_op_t *oa, *oc;
    size_t na, nc, fresh;
    own_ops(a, &oa, &na);
    own_ops(c, &oc, &nc);
    tm_op_t batch[3] = {oa[0], oc[0], oa[0]};
    batch[2].seq = 2; /* a forged seq 2 with seq 1's signature */
    tm_apply_report_t rep = apply(b, batch, 3, &fresh);
    cr_assert_eq(fresh, 2);
    cr_assert_eq(rep.refused, 1);
    tm_store_ops_free(oa, na);
    tm_store_ops_free(oc, nc);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
    tm_store_destroy(&c);
}

Test(trust, unsigned_history_is_taken_only_within_a_seal)
{
    /* old: a till from before signing, with two unsigned sales. It upgrades
     * (set_signer): its seal vouches for them. b, which never had them,
     * defers them until it holds the seal, then takes them; an unsigned op
     * past the seal stays out. */
    key_t_ ko = key(4), kb = key(2), ks[2] = {ko, kb};
    tm_store_t *old = open_store();
    sell(old, 100, NULL);
    sell(old, 200, NULL);
    tm_op_t *legacy;
    size_t nl, fresh;
    own_ops(old, &legacy, &nl);
    cr_assert_eq(nl, 2);
    cr_assert_not(legacy[0].has_sig);
    bool sealed = false;
    cr_assert_eq(tm_store_set_signer(old, ko.pk, ko.sk, &sealed), TM_OK);
    cr_assert(sealed);
    uint8_t pks[2][32];
    memcpy(pks[0], ko.pk, 32);
    memcpy(pks[1], kb.pk, 32);
    cr_assert_eq(tm_store_set_trusted(old, (const uint8_t(*)[32])pks, 2), TM_OK);
    tm_store_t *b = till(&kb, ks, 2);
    tm_apply_report_t rep = apply(b, legacy, nl, &fresh);
    cr_assert_eq(fresh, 0);
    cr_assert_eq(rep.deferred, 2, "no seal yet");
    tm_op_t *seal;
    size_t ns;
    own_ops(old, &seal, &ns); /* now under its new, key-bound origin */
    cr_assert_eq(ns, 1);
    cr_assert_eq(seal[0].kind, TM_OP_SEAL);
    apply(b, seal, ns, &fresh);
    cr_assert_eq(fresh, 1);
    apply(b, legacy, nl, &fresh);
    cr_assert_eq(fresh, 2);
    assert_same_digest(old, b);
    /* An unsigned op past the seal (a forgery of old history) stays out. */
    tm_op_t extra = legacy[1];
    extra.seq = 3;
    rep = apply(b, &extra, 1, &fresh);
    cr_assert_eq(fresh, 0);
    cr_assert_eq(rep.deferred, 1);
    /* Signing again with the same key seals nothing new. */
    cr_assert_eq(tm_store_set_signer(old, ko.pk, ko.sk, &sealed), TM_OK);
    cr_assert_not(sealed);
    tm_store_ops_free(legacy, nl);
    tm_store_ops_free(seal, ns);
    tm_store_destroy(&old);
    tm_store_destroy(&b);
}

Test(trust, evidence_is_bounded)
{
    key_t_ ka = key(1), kb = key(2), ks[2] = {ka, kb};
    tm_store_t *a = till(&ka, ks, 2), *b = till(&kb, ks, 2);
    sell(a, 100, NULL);
    tm_op_t *ops;
    size_t n;
    own_ops(a, &ops, &n);
    tm_op_t bad[200];
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 200; i++) {
            bad[i] = ops[0];
            bad[i].seq = (uint64_t)(round * 200 + i + 2);
        }
        apply(b, bad, 200, NULL);
    }
    tm_trust_stats_t ts;
    tm_store_trust_stats(b, &ts);
    cr_assert_eq(ts.refused_total, 1200);
    cr_assert_leq(ts.evidence, 1000);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
}

Test(trust, a_restored_till_moves_its_new_ops_to_a_new_origin_and_nothing_is_lost)
{
    /* a sells 1, is backed up, sells 2 and 3 (b gets them), is restored from
     * the backup as a2 and sells 4 (seq 2 again: a fork b refuses). a2 then
     * learns from b that it is behind on its own chain and reincarnates:
     * sale 4 moves to a new origin, b takes it, a2 gets back 2 and 3. */
    key_t_ ka = key(1), kb = key(2), ks[2] = {ka, kb};
    tm_store_t *a = till(&ka, ks, 2), *b = till(&kb, ks, 2);
    char ids[4][TM_UUID_LEN];
    sell(a, 100, ids[0]);
    tm_store_destroy(&a);
    char cmd[256], path[128];
    snprintf(cmd, sizeof cmd, "cp %s/s0.db %s/backup.db", dir, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/s0.db", dir);
    cr_assert_eq(tm_store_open(path, NULL, &a), TM_OK);
    cr_assert_eq(tm_store_set_signer(a, ka.pk, ka.sk, NULL), TM_OK);
    sell(a, 200, ids[1]);
    sell(a, 300, ids[2]);
    tm_op_t *ops;
    size_t n, fresh, moved;
    own_ops(a, &ops, &n);
    apply(b, ops, n, NULL);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a); /* the till dies; its folder is restored */
    tm_store_t *a2;
    snprintf(path, sizeof path, "%s/backup.db", dir);
    cr_assert_eq(tm_store_open(path, NULL, &a2), TM_OK);
    cr_assert_eq(tm_store_set_signer(a2, ka.pk, ka.sk, NULL), TM_OK);
    uint8_t pks[2][32];
    memcpy(pks[0], ka.pk, 32);
    memcpy(pks[1], kb.pk, 32);
    cr_assert_eq(tm_store_set_trusted(a2, (const uint8_t(*)[32])pks, 2), TM_OK);
    uint8_t old_id[TM_NODE_ID_LEN], new_id[TM_NODE_ID_LEN];
    tm_store_node_id(a2, old_id);
    sell(a2, 400, ids[3]); /* seq 2 again */
    own_ops(a2, &ops, &n);
    tm_apply_report_t rep = apply(b, ops, n, &fresh);
    cr_assert_eq(rep.refused, 1, "the restored till's seq 2 is a fork");
    cr_assert_eq(rep.forks, 1, "signed by its origin: charged to it, not the relay");
    tm_store_ops_free(ops, n);
    cr_assert_eq(tm_store_reincarnate(a2, 1, &moved), TM_OK);
    cr_assert_eq(moved, 1);
    tm_store_node_id(a2, new_id);
    cr_assert(memcmp(old_id, new_id, TM_NODE_ID_LEN) != 0);
    cr_assert(tm_sign_owns(ka.pk, new_id), "same key, new incarnation");
    own_ops(a2, &ops, &n); /* the new origin's ops: the re-issue, then sale 4 */
    cr_assert_eq(n, 2);
    cr_assert_eq(ops[0].kind, TM_OP_REISSUE);
    rep = apply(b, ops, n, &fresh);
    cr_assert_eq(fresh, 2);
    cr_assert_eq(rep.refused, 0);
    tm_store_ops_free(ops, n);
    /* b hands back the old origin's real seq 2 and 3. */
    tm_range_t r = {.from = 1, .to = 100};
    memcpy(r.origin, old_id, TM_NODE_ID_LEN);
    cr_assert_eq(tm_store_read_ops(b, &r, 1, 100, 0, &ops, &n), TM_OK);
    rep = apply(a2, ops, n, &fresh);
    cr_assert_eq(fresh, 2);
    cr_assert_eq(rep.refused, 0);
    tm_store_ops_free(ops, n);
    for (int i = 0; i < 4; i++) {
        tm_sale_t s;
        cr_assert_eq(tm_store_get_sale(b, ids[i], &s), TM_OK, "sale %d on b", i);
        tm_sale_free(&s);
        cr_assert_eq(tm_store_get_sale(a2, ids[i], &s), TM_OK, "sale %d on a2", i);
        tm_sale_free(&s);
    }
    assert_same_digest(a2, b);
    tm_store_destroy(&a2);
    tm_store_destroy(&b);
}

Test(trust, a_tampered_op_inside_a_run_is_caught_though_one_signature_checks_the_run)
{
    /* Only the last op of a run has its signature checked; the chain binds
     * the others. A body changed in the middle breaks the chain there, so
     * that op is checked on its own and refused; the ops after it still
     * go in (their own signatures hold). */
    key_t_ ka = key(1), kb = key(2), ks[2] = {ka, kb};
    tm_store_t *a = till(&ka, ks, 2), *b = till(&kb, ks, 2);
    for (int i = 0; i < 5; i++)
        sell(a, 100 + i, NULL);
    tm_op_t *ops;
    size_t n, fresh;
    own_ops(a, &ops, &n);
    uint8_t *body;
    size_t len;
    sale_body(1, &body, &len, NULL);
    uint8_t *orig = ops[2].body;
    size_t orig_len = ops[2].body_len;
    ops[2].body = body;
    ops[2].body_len = len;
    tm_apply_report_t rep = apply(b, ops, n, &fresh);
    cr_assert_eq(rep.refused, 1);
    cr_assert_not_null(strstr(rep.reason, "bad signature"), "%s", rep.reason);
    cr_assert_eq(fresh, 4, "3 is refused; 1, 2, 4 and 5 (signed, linked) go in");
    tm_vv_t vv;
    uint8_t origin[TM_NODE_ID_LEN];
    tm_store_node_id(a, origin);
    cr_assert_eq(tm_store_vv(b, &vv), TM_OK);
    cr_assert_eq(tm_vv_get(&vv, origin), 2, "the vector waits at the gap");
    tm_vv_free(&vv);
    ops[2].body = orig;
    ops[2].body_len = orig_len;
    apply(b, ops, n, &fresh);
    assert_same_digest(a, b);
    free(body);
    tm_store_ops_free(ops, n);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
}

/* The fork a restored till made before it noticed, held by some tills and
 * not others, in both arrival orders: every till ends with the ops its
 * peers held before the restore, the re-issued ones under the new origin,
 * the same digest, every sale, and no refusal charged to a relay. */
Test(trust, a_restored_tills_fork_converges_whatever_the_arrival_order)
{
    key_t_ ka = key(1), kb = key(2), kc = key(3), kd = key(4), ks[4] = {ka, kb, kc, kd};
    tm_store_t *a = till(&ka, ks, 4), *b = till(&kb, ks, 4), *c = till(&kc, ks, 4),
               *d = till(&kd, ks, 4);
    char ids[4][TM_UUID_LEN];
    sell(a, 100, ids[0]);
    tm_store_destroy(&a);
    char cmd[256], path[128];
    snprintf(cmd, sizeof cmd, "cp %s/s0.db %s/backup.db", dir, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/s0.db", dir);
    cr_assert_eq(tm_store_open(path, NULL, &a), TM_OK);
    cr_assert_eq(tm_store_set_signer(a, ka.pk, ka.sk, NULL), TM_OK);
    sell(a, 200, ids[1]); /* before the restore: only b gets these */
    sell(a, 300, ids[2]);
    tm_op_t *pre, *fork, *post;
    size_t n_pre, n_fork, n_post, fresh, moved;
    own_ops(a, &pre, &n_pre);
    apply(b, pre, n_pre, NULL);
    tm_store_destroy(&a);
    tm_store_t *a2;
    snprintf(path, sizeof path, "%s/backup.db", dir);
    cr_assert_eq(tm_store_open(path, NULL, &a2), TM_OK);
    cr_assert_eq(tm_store_set_signer(a2, ka.pk, ka.sk, NULL), TM_OK);
    uint8_t pks[4][32];
    for (int i = 0; i < 4; i++)
        memcpy(pks[i], ks[i].pk, 32);
    cr_assert_eq(tm_store_set_trusted(a2, (const uint8_t(*)[32])pks, 4), TM_OK);
    sell(a2, 400, ids[3]); /* seq 2 again: the fork */
    own_ops(a2, &fork, &n_fork);
    /* c takes the fork first (it held nothing of a's after seq 1). */
    apply(c, fork, n_fork, NULL);
    /* Relayed by b, the op a made before the restore is now a fork on c:
     * refused, but charged to a's key, not to b. */
    tm_apply_report_t rep = apply(c, pre, n_pre, &fresh);
    cr_assert_eq(fresh, 0);
    cr_assert_eq(rep.refused, rep.forks, "no refusal is the relay's");
    cr_assert_geq(rep.forks, 1);
    cr_assert_eq(tm_store_reincarnate(a2, 1, &moved), TM_OK);
    cr_assert_eq(moved, 1);
    own_ops(a2, &post, &n_post); /* the re-issue, then sale 4 again */
    cr_assert_eq(n_post, 2);
    /* c: the re-issue sets its copy of the fork aside; the real ops go in. */
    rep = apply(c, post, n_post, NULL);
    cr_assert_eq(rep.set_aside, 1);
    rep = apply(c, pre, n_pre, &fresh);
    cr_assert_eq(fresh, 2);
    cr_assert_eq(rep.refused, 0);
    tm_trust_stats_t ts;
    tm_store_trust_stats(c, &ts);
    cr_assert_eq(ts.restores, 1);
    cr_assert_eq(ts.reissued, 1);
    cr_assert_eq(ts.reissued_here, 1);
    /* d, the other order: the re-issue first, then the fork (skipped, not
     * refused), then the real ops. */
    apply(d, post, n_post, NULL);
    rep = apply(d, fork, n_fork, &fresh);
    cr_assert_eq(rep.refused, 0);
    cr_assert_geq(rep.superseded, 1);
    apply(d, pre, n_pre, NULL);
    /* b held the real ops: it refuses the fork, then skips it. */
    rep = apply(b, fork, n_fork, NULL);
    cr_assert_eq(rep.refused, rep.forks);
    apply(b, post, n_post, NULL);
    rep = apply(b, fork, n_fork, &fresh);
    cr_assert_eq(rep.refused, 0);
    cr_assert_eq(fresh, 0);
    /* a2 gets its old ops back. */
    apply(a2, pre, n_pre, NULL);
    tm_store_t *all[4] = {a2, b, c, d};
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 4; i++) {
            tm_sale_t s;
            cr_assert_eq(tm_store_get_sale(all[t], ids[i], &s), TM_OK, "sale %d on till %d", i, t);
            tm_sale_free(&s);
        }
    assert_same_digest(a2, b);
    assert_same_digest(b, c);
    assert_same_digest(c, d);
    tm_store_ops_free(pre, n_pre);
    tm_store_ops_free(fork, n_fork);
    tm_store_ops_free(post, n_post);
    for (int t = 0; t < 4; t++)
        tm_store_destroy(&all[t]);
}

/* The store's op hash (storage/digest.c): what an OP_REISSUE names. */
void tm_store__op_hash(const tm_op_t *op, uint8_t out[32]);

/* An OP_REISSUE body (storage/trust.c): version 1, the old origin, a count,
 * then per op its seq and hash. */
static void reissue_body(const tm_op_t *op, uint8_t out[1 + TM_NODE_ID_LEN + 4 + 40])
{
    uint8_t *p = out;
    *p++ = 1;
    memcpy(p, op->origin, TM_NODE_ID_LEN);
    p += TM_NODE_ID_LEN;
    *p++ = 0, *p++ = 0, *p++ = 0, *p++ = 1;
    for (int k = 7; k >= 0; k--)
        *p++ = (uint8_t)(op->seq >> (8 * k));
    tm_store__op_hash(op, p);
}

/* A till that equivocates on purpose cannot use a re-issue to erase
 * another till's ops: an OP_REISSUE counts only for its own key's origins. */
Test(trust, a_reissue_cannot_set_aside_another_tills_ops)
{
    key_t_ ka = key(1), kb = key(2), kc = key(3), ks[3] = {ka, kb, kc};
    tm_store_t *a = till(&ka, ks, 3), *b = till(&kb, ks, 3), *c = till(&kc, ks, 3);
    char id[TM_UUID_LEN];
    sell(a, 500, id);
    tm_op_t *ops, *evil;
    size_t n, n_evil, fresh;
    own_ops(a, &ops, &n);
    apply(c, ops, n, NULL);
    apply(b, ops, n, NULL);
    uint8_t body[1 + TM_NODE_ID_LEN + 4 + 40];
    reissue_body(&ops[0], body);
    cr_assert_eq(tm_store_append_local(b, TM_OP_REISSUE, 100, body, sizeof body, NULL), TM_OK);
    own_ops(b, &evil, &n_evil);
    cr_assert_eq(n_evil, 1);
    tm_apply_report_t rep = apply(c, evil, n_evil, &fresh);
    cr_assert_eq(fresh, 1, "a valid op of b's: stored");
    cr_assert_eq(rep.set_aside, 0);
    /* a's sale stays on b and c, and a's op is still taken when relayed. */
    tm_sale_t s;
    cr_assert_eq(tm_store_get_sale(c, id, &s), TM_OK);
    tm_sale_free(&s);
    cr_assert_eq(tm_store_get_sale(b, id, &s), TM_OK);
    tm_sale_free(&s);
    tm_store_t *d = till(&kc, ks, 3);
    apply(d, evil, n_evil, NULL);
    rep = apply(d, ops, n, &fresh);
    cr_assert_eq(fresh, 1);
    cr_assert_eq(rep.superseded, 0);
    tm_trust_stats_t ts;
    tm_store_trust_stats(c, &ts);
    cr_assert_eq(ts.restores, 0);
    tm_store_ops_free(ops, n);
    tm_store_ops_free(evil, n_evil);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
    tm_store_destroy(&c);
    tm_store_destroy(&d);
}

/* The restore check's mark outlives a restart (a till restored from a backup
 * that crashes before it notices must still check and re-issue what it made
 * since the restore), goes when cleared, and reads as none once the till
 * moved to a new origin (it was of the old one). */
Test(trust, the_self_check_mark_survives_a_restart_and_belongs_to_one_origin)
{
    key_t_ ka = key(1), kb = key(2), ks[2] = {ka, kb};
    tm_store_t *a = till(&ka, ks, 2);
    uint64_t seq = 99, three = 3;
    bool have = true;
    cr_assert_eq(tm_store_self_check_mark(a, &seq, &have), TM_OK);
    cr_assert(!have, "a new store has no mark");
    cr_assert_eq(seq, 0);
    sell(a, 100, NULL);
    cr_assert_eq(tm_store_set_self_check_mark(a, &three), TM_OK);
    tm_store_destroy(&a);
    char path[128];
    snprintf(path, sizeof path, "%s/s0.db", dir);
    cr_assert_eq(tm_store_open(path, NULL, &a), TM_OK);
    cr_assert_eq(tm_store_set_signer(a, ka.pk, ka.sk, NULL), TM_OK);
    cr_assert_eq(tm_store_self_check_mark(a, &seq, &have), TM_OK);
    cr_assert(have, "the mark is in the store, not in memory");
    cr_assert_eq(seq, 3);
    cr_assert_eq(tm_store_set_self_check_mark(a, NULL), TM_OK);
    cr_assert_eq(tm_store_self_check_mark(a, &seq, &have), TM_OK);
    cr_assert(!have, "cleared");
    uint64_t zero = 0;
    size_t moved;
    cr_assert_eq(tm_store_set_self_check_mark(a, &zero), TM_OK);
    cr_assert_eq(tm_store_reincarnate(a, 0, &moved), TM_OK);
    cr_assert_eq(moved, 1);
    cr_assert_eq(tm_store_self_check_mark(a, &seq, &have), TM_OK);
    cr_assert(!have, "a mark of the old origin is none for the new one");
    tm_store_destroy(&a);
}
