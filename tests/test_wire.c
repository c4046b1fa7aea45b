/* test_wire.c - record codecs: round trips, golden bytes, hostile input. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm_wire.h"

static void sample_sale(tm_sale_t *s, tm_sale_line_t *lines, tm_payment_t *pays)
{
    memset(s, 0, sizeof *s);
    memset(lines, 0, 2 * sizeof *lines);
    memset(pays, 0, 2 * sizeof *pays);
    strcpy(s->sale_id, "0b7f4a52-3c1e-4d2a-9a61-5f0f2b8c9d10");
    strcpy(s->till, "till-1");
    s->receipt_no = 42;
    strcpy(s->created_at, "2026-11-23T12:00:00Z");
    strcpy(s->currency, "CLP");
    strcpy(lines[0].sku, "7801234");
    strcpy(lines[0].name, "Pan amasado");
    lines[0].qty = 2000;
    lines[0].unit_price = 990;
    lines[0].tax_rate = 1900;
    strcpy(lines[1].sku, "7805678");
    strcpy(lines[1].name, "Queso");
    lines[1].qty = 250;
    lines[1].unit_price = 12000;
    lines[1].discount = 100;
    s->lines = lines;
    s->n_lines = 2;
    s->total = 1980 + 2900;
    pays[0].method = TM_PAY_CARD;
    pays[0].amount = 4000;
    strcpy(pays[0].reference, "AUTH123");
    pays[1].method = TM_PAY_CASH;
    pays[1].amount = 1000;
    s->payments = pays;
    s->n_payments = 2;
    s->has_customer = true;
    strcpy(s->customer_id, "123456785");
    s->customer_id_type = TM_IDTYPE_RUT;
    strcpy(s->customer_email, "ana@example.cl");
}

static void assert_sale_eq(const tm_sale_t *a, const tm_sale_t *b)
{
    cr_assert_str_eq(a->sale_id, b->sale_id);
    cr_assert_str_eq(a->till, b->till);
    cr_assert_eq(a->receipt_no, b->receipt_no);
    cr_assert_str_eq(a->created_at, b->created_at);
    cr_assert_str_eq(a->currency, b->currency);
    cr_assert_eq(a->total, b->total);
    cr_assert_eq(a->n_lines, b->n_lines);
    for (size_t i = 0; i < a->n_lines; i++) {
        cr_assert_str_eq(a->lines[i].sku, b->lines[i].sku);
        cr_assert_str_eq(a->lines[i].name, b->lines[i].name);
        cr_assert_eq(a->lines[i].qty, b->lines[i].qty);
        cr_assert_eq(a->lines[i].unit_price, b->lines[i].unit_price);
        cr_assert_eq(a->lines[i].discount, b->lines[i].discount);
        cr_assert_eq(a->lines[i].tax_rate, b->lines[i].tax_rate);
    }
    cr_assert_eq(a->n_payments, b->n_payments);
    for (size_t i = 0; i < a->n_payments; i++) {
        cr_assert_eq(a->payments[i].method, b->payments[i].method);
        cr_assert_eq(a->payments[i].amount, b->payments[i].amount);
        cr_assert_str_eq(a->payments[i].reference, b->payments[i].reference);
    }
    cr_assert_eq(a->has_customer, b->has_customer);
    cr_assert_str_eq(a->customer_id, b->customer_id);
    cr_assert_eq(a->customer_id_type, b->customer_id_type);
    cr_assert_str_eq(a->customer_email, b->customer_email);
    cr_assert_str_eq(a->refund_of, b->refund_of);
    cr_assert_eq(a->has_clock, b->has_clock);
    cr_assert_eq(a->clock_offset_ms, b->clock_offset_ms);
    cr_assert_eq(a->clock_skewed, b->clock_skewed);
}

Test(wire, sale_round_trip)
{
    tm_sale_t s, d;
    tm_sale_line_t lines[2];
    tm_payment_t pays[2];
    uint8_t *buf;
    size_t len;
    sample_sale(&s, lines, pays);
    cr_assert_eq(tm_wire_sale_encode(&s, &buf, &len), TM_OK);
    cr_assert_eq(tm_wire_sale_decode(buf, len, &d), TM_OK);
    assert_sale_eq(&s, &d);
    tm_sale_free(&d);
    free(buf);
}

Test(wire, sale_clock_flag_round_trip)
{
    tm_sale_t s, d;
    tm_sale_line_t lines[2];
    tm_payment_t pays[2];
    uint8_t *buf;
    size_t len;
    sample_sale(&s, lines, pays);
    s.has_clock = true;
    s.clock_offset_ms = -600012;
    s.clock_skewed = true;
    cr_assert_eq(tm_wire_sale_encode(&s, &buf, &len), TM_OK);
    cr_assert_eq(tm_wire_sale_decode(buf, len, &d), TM_OK);
    assert_sale_eq(&s, &d);
    tm_sale_free(&d);
    free(buf);
}

/* Golden bytes: tests/fixtures/sale_v1.bin was written by this codec at
 * protocol version 1. Every later build must still decode it the same way,
 * or tills of different versions could not share a store. */
Test(wire, golden_sale_v1_still_decodes)
{
    tm_sale_t s, d;
    tm_sale_line_t lines[2];
    tm_payment_t pays[2];
    uint8_t buf[4096];
    sample_sale(&s, lines, pays);
    FILE *f = fopen(TM_FIXTURES "/sale_v1.bin", "rb");
    cr_assert_not_null(f, "missing fixture %s", TM_FIXTURES "/sale_v1.bin");
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert_eq(tm_wire_sale_decode(buf, len, &d), TM_OK);
    assert_sale_eq(&s, &d);
    tm_sale_free(&d);
}

Test(wire, customer_patch_round_trip_carries_only_set_fields)
{
    tm_customer_t p, d;
    uint8_t *buf;
    size_t len;
    memset(&p, 0, sizeof p);
    strcpy(p.id, "123456785");
    p.id_type = TM_IDTYPE_RUT;
    p.f[TM_CF_NAME].set = true;
    strcpy(p.f[TM_CF_NAME].value, "Ana Pérez");
    p.f[TM_CF_OFFERS_OPT_IN].set = true;
    strcpy(p.f[TM_CF_OFFERS_OPT_IN].value, "true");
    cr_assert_eq(tm_wire_customer_encode(&p, &buf, &len), TM_OK);
    cr_assert_eq(tm_wire_customer_decode(buf, len, &d), TM_OK);
    cr_assert_str_eq(d.id, "123456785");
    cr_assert_eq(d.id_type, TM_IDTYPE_RUT);
    cr_assert(d.f[TM_CF_NAME].set);
    cr_assert_str_eq(d.f[TM_CF_NAME].value, "Ana Pérez");
    cr_assert(d.f[TM_CF_OFFERS_OPT_IN].set);
    cr_assert(!d.f[TM_CF_EMAIL].set);
    free(buf);
}

Test(wire, ack_round_trip_and_rejects_non_uuid)
{
    char ids[2][TM_UUID_LEN] = {"0b7f4a52-3c1e-4d2a-9a61-5f0f2b8c9d10",
                                "1b7f4a52-3c1e-4d2a-9a61-5f0f2b8c9d11"};
    tm_erp_ack_t a = {.sale_ids = ids, .n = 2, .epoch = 7}, d;
    strcpy(a.idempotency_key, "batch-1");
    uint8_t *buf;
    size_t len;
    cr_assert_eq(tm_wire_ack_encode(&a, &buf, &len), TM_OK);
    cr_assert_eq(tm_wire_ack_decode(buf, len, &d), TM_OK);
    cr_assert_eq(d.n, 2);
    cr_assert_str_eq(d.sale_ids[1], ids[1]);
    cr_assert_eq(d.epoch, 7);
    cr_assert_str_eq(d.idempotency_key, "batch-1");
    tm_erp_ack_free(&d);
    free(buf);
    strcpy(ids[1], "not-a-uuid");
    cr_assert_eq(tm_wire_ack_encode(&a, &buf, &len), TM_OK);
    cr_assert_eq(tm_wire_ack_decode(buf, len, &d), TM_EPROTO);
    free(buf);
}

Test(wire, oversize_strings_are_refused_not_truncated)
{
    Tillmesh__Sale m = TILLMESH__SALE__INIT;
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    m.sale_id = "0b7f4a52-3c1e-4d2a-9a61-5f0f2b8c9d10";
    m.till = big; /* TM_TILL_MAX is 64 */
    uint8_t buf[512];
    size_t len = tillmesh__sale__pack(&m, buf);
    tm_sale_t d;
    cr_assert_eq(tm_wire_sale_decode(buf, len, &d), TM_EPROTO);
    cr_assert_eq(d.lines, NULL);
}

Test(wire, every_truncation_of_a_valid_body_is_handled)
{
    tm_sale_t s, d;
    tm_sale_line_t lines[2];
    tm_payment_t pays[2];
    uint8_t *buf;
    size_t len;
    sample_sale(&s, lines, pays);
    cr_assert_eq(tm_wire_sale_encode(&s, &buf, &len), TM_OK);
    for (size_t cut = 0; cut < len; cut++) {
        int rc = tm_wire_sale_decode(buf, cut, &d);
        /* A prefix may happen to be a valid (shorter) message; what
         * matters is no crash, no leak, and a clean result either way. */
        if (rc == TM_OK)
            tm_sale_free(&d);
        else
            cr_assert(rc == TM_EPROTO, "cut %zu gave %s", cut, tm_errname(rc));
    }
    free(buf);
}

Test(wire, random_bytes_never_crash_any_decoder)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL; /* fixed seed: failures reproduce */
    uint8_t buf[256];
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        tm_sale_t s;
        tm_customer_t c;
        tm_erp_ack_t a;
        Tillmesh__Envelope *e;
        if (tm_wire_sale_decode(buf, len, &s) == TM_OK)
            tm_sale_free(&s);
        (void)tm_wire_customer_decode(buf, len, &c);
        if (tm_wire_ack_decode(buf, len, &a) == TM_OK)
            tm_erp_ack_free(&a);
        if (tm_wire_envelope_decode(buf, len, &e) == TM_OK)
            tm_wire_envelope_free(e);
    }
}

Test(wire, envelope_checks_version_range_and_ids)
{
    Tillmesh__Envelope env = TILLMESH__ENVELOPE__INIT;
    Tillmesh__PullRequest pull = TILLMESH__PULL_REQUEST__INIT;
    uint8_t sender[TM_NODE_ID_LEN] = {1};
    uint8_t *buf;
    size_t len;
    Tillmesh__Envelope *d;
    env.store_id = "store-1";
    env.has_sender = 1;
    env.sender.data = sender;
    env.sender.len = sizeof sender;
    env.msg_case = TILLMESH__ENVELOPE__MSG_PULL;
    env.pull = &pull;
    cr_assert_eq(tm_wire_envelope_encode(&env, &buf, &len), TM_OK);
    cr_assert_eq(tm_wire_envelope_decode(buf, len, &d), TM_OK);
    cr_assert_str_eq(d->store_id, "store-1");
    tm_wire_envelope_free(d);
    free(buf);

    /* A peer that only speaks versions 5..9 cannot talk to us. */
    env.proto_min = 5;
    env.proto_max = 9;
    uint8_t raw[256];
    len = tillmesh__envelope__pack(&env, raw);
    cr_assert_eq(tm_wire_envelope_decode(raw, len, &d), TM_EPROTO);

    /* A sender id of the wrong length is refused. */
    env.proto_min = env.proto_max = 1;
    env.sender.len = 3;
    len = tillmesh__envelope__pack(&env, raw);
    cr_assert_eq(tm_wire_envelope_decode(raw, len, &d), TM_EPROTO);
}

Test(wire, oversize_frame_is_refused_before_decoding)
{
    Tillmesh__Envelope *d;
    static uint8_t big[TM_WIRE_MAX_FRAME + 1];
    cr_assert_eq(tm_wire_envelope_decode(big, sizeof big, &d), TM_ETOOBIG);
    cr_assert_null(d);
}
