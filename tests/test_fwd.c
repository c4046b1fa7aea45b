/* test_fwd.c - the forwarder's pure parts: the backoff schedule (with the
 * jitter seam pinned) and the check of an ERP answer against its batch. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fwd_int.h"

Test(fwd_backoff, doubles_from_min_to_the_cap_and_keeps_within_half_to_full_step)
{
    const uint64_t steps[] = {200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    for (uint32_t k = 1; k <= 10; k++) {
        uint32_t half = (uint32_t)(steps[k - 1] / 2);
        uint64_t lo = tm_fwd__backoff_ms(k, 200, 30000, 0);
        uint64_t hi = tm_fwd__backoff_ms(k, 200, 30000, half);
        cr_assert_eq(lo, steps[k - 1] / 2, "failure %u: %llu", k, (unsigned long long)lo);
        cr_assert_eq(hi, steps[k - 1], "failure %u: %llu", k, (unsigned long long)hi);
        /* Any random bits stay within the step. */
        uint64_t any = tm_fwd__backoff_ms(k, 200, 30000, UINT32_MAX);
        cr_assert(any >= lo && any <= hi, "failure %u: %llu", k, (unsigned long long)any);
    }
    /* Many failures: still the cap, no overflow. */
    cr_assert_eq(tm_fwd__backoff_ms(4000000000u, 200, 30000, 15000), 30000);
    cr_assert_eq(tm_fwd__backoff_ms(1, 10, 10, 5), 10);
}

Test(fwd_backoff, random_bits_stay_in_range)
{
    for (int i = 0; i < 1000; i++) {
        uint64_t d = tm_fwd__backoff_ms(3, 200, 30000, randombytes_random());
        cr_assert(d >= 400 && d <= 800, "%llu", (unsigned long long)d);
    }
}

#define A "3f2c1a9e-8b7d-4c6e-9f01-23456789abcd"
#define B "9a1d7c44-0e2b-4f7a-8c55-1b2c3d4e5f60"
#define C "00000000-0000-4000-8000-000000000001"
#define X "11111111-2222-4333-8444-555555555555" /* never in the batch */

typedef struct {
    tm_fwd__answer_t a;
    uint8_t what[3];
    int status[3];
    char msg[3][160];
} ans_t;

static void check(const char *body, ans_t *out)
{
    char ids[3][TM_UUID_LEN] = {A, B, C};
    memset(out, 0, sizeof *out);
    out->a.what = out->what;
    out->a.status = out->status;
    out->a.msg = out->msg;
    tm_fwd__read_answer(ids, 3, 200, body, strlen(body), &out->a);
}

Test(fwd_answer, a_complete_answer_is_used)
{
    ans_t r;
    check("{\"accepted\":[\"" A "\"],\"duplicates\":[\"" B "\"],\"rejected\":[{\"sale_id\":\"" C
          "\",\"status\":409,\"message\":\"unknown SKU\"}]}",
          &r);
    cr_assert_str_empty(r.a.problem);
    cr_assert_not(r.a.untrusted);
    cr_assert_eq(r.what[0], TM_FWD__ACKED);
    cr_assert_eq(r.what[1], TM_FWD__ACKED);
    cr_assert_eq(r.what[2], TM_FWD__REJECTED);
    cr_assert_eq(r.status[2], 409);
    cr_assert_str_eq(r.msg[2], "unknown SKU");
}

Test(fwd_answer, ids_in_another_case_are_the_batch_s)
{
    ans_t r;
    check("{\"accepted\":[\"3F2C1A9E-8B7D-4C6E-9F01-23456789ABCD\",\"" B "\",\"" C
          "\"],\"duplicates\":[],\"rejected\":[]}",
          &r);
    cr_assert_str_empty(r.a.problem);
}

Test(fwd_answer, answers_that_break_the_contract_are_used_for_nothing)
{
    static const char *bad[] = {
        "{}",
        "<html><body>Please log in</body></html>",
        "",
        "[]",
        "{\"accepted\":[],\"duplicates\":[]}",
        "{\"accepted\":{},\"duplicates\":[],\"rejected\":[]}",
        /* a foreign id beside the batch's own */
        "{\"accepted\":[\"" A "\",\"" B "\",\"" C "\",\"" X
        "\"],\"duplicates\":[],\"rejected\":[]}",
        "{\"accepted\":[\"" A "\",\"" B "\"],\"duplicates\":[\"" X "\"],\"rejected\":[]}",
        "{\"accepted\":[\"" A "\",\"" B "\"],\"duplicates\":[],\"rejected\":[{\"sale_id\":\"" X
        "\"}]}",
        /* both booked and rejected */
        "{\"accepted\":[\"" A "\",\"" B "\",\"" C "\"],\"duplicates\":[],\"rejected\":[{"
        "\"sale_id\":\"" C "\"}]}",
        /* not ids */
        "{\"accepted\":[\"" A "\",\"" B "\",42],\"duplicates\":[],\"rejected\":[]}",
        "{\"accepted\":[\"" A "\",\"" B "\"],\"duplicates\":[],\"rejected\":[{\"sale_id\":null}]}",
        "{\"accepted\":[\"" A "\",\"" B "\"],\"duplicates\":[],\"rejected\":[\"" C "\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ans_t r;
        check(bad[i], &r);
        cr_assert(r.a.untrusted, "case %zu used: %s", i, bad[i]);
        cr_assert_str_not_empty(r.a.problem, "case %zu", i);
    }
    ans_t r;
    check("{\"accepted\":[\"" A "\",\"" X "\"],\"duplicates\":[],\"rejected\":[]}", &r);
    cr_assert(strstr(r.a.problem, X) && strstr(r.a.problem, "not in the batch"), "%s", r.a.problem);
}

Test(fwd_answer, ids_left_out_are_a_problem_but_the_rest_is_used)
{
    ans_t r;
    check("{\"accepted\":[\"" A "\"],\"duplicates\":[],\"rejected\":[]}", &r);
    cr_assert_not(r.a.untrusted);
    cr_assert(strstr(r.a.problem, "2 of the batch's 3"), "%s", r.a.problem);
    cr_assert_eq(r.what[0], TM_FWD__ACKED);
    cr_assert_eq(r.what[1], TM_FWD__NONE);
}

Test(fwd_answer, a_rejection_class_outside_4xx_becomes_422)
{
    ans_t r;
    check("{\"accepted\":[\"" A "\",\"" B "\"],\"duplicates\":[],\"rejected\":[{\"sale_id\":\"" C
          "\",\"status\":200}]}",
          &r);
    cr_assert_str_empty(r.a.problem);
    cr_assert_eq(r.status[2], 422);
    cr_assert_str_eq(r.msg[2], "rejected");
}

/* ---- the core driven with fake outcomes (no HTTP, no clock) ------------ */

#include <jansson.h>
#include <stdio.h>

#include "tm_wire.h"

typedef struct {
    char dir[64];
    tm_store_t *store;
    tm_engine_t *eng;
    tm_outbox_t box;
    tm_fwd_core_t *core;
    tm_fwd_in_t in;
} rig_t;

static tm_log_t quiet = {.level = TM_LOG_ERROR};

/* A till alone with its uplink up, elected forwarder, and a core over it. */
static void rig_init(rig_t *r, uint32_t batch_max, uint32_t max_in_flight)
{
    char path[128];
    memset(r, 0, sizeof *r);
    strcpy(r->dir, "/tmp/tm-fwd-XXXXXX");
    cr_assert_not_null(mkdtemp(r->dir));
    snprintf(path, sizeof path, "%s/a.db", r->dir);
    cr_assert_eq(tm_store_open(path, NULL, &r->store), TM_OK);
    tm_engine_cfg_t ec = {.name = "a", .store_id = "s", .heartbeat_ms = 100};
    cr_assert_eq(tm_engine_new(&ec, r->store, &quiet, &r->eng), TM_OK);
    r->in = (tm_fwd_in_t){.now_ms = 1000, .wall_ms = 1700000000000ULL, .uplink_up = true};
    tm_engine_set_uplink(r->eng, TM_UPLINK_UP, r->in.wall_ms, r->in.now_ms);
    tm_forwarder_t who = {0};
    for (int i = 0; i < 100 && !(who.is_self && r->in.now_ms >= who.active_from_ms); i++) {
        r->in.now_ms += 100;
        r->in.wall_ms += 100;
        cr_assert_eq(tm_engine_tick(r->eng, r->in.now_ms, r->in.wall_ms, &r->box), TM_OK);
        tm_engine_forwarder(r->eng, &who);
    }
    cr_assert(who.is_self, "a lone till with an uplink was not elected");
    tm_fwd_core_cfg_t fc = {.batch_max = batch_max,
                            .max_in_flight = max_in_flight,
                            .backoff_min_ms = 100,
                            .backoff_max_ms = 1000,
                            .till = "a",
                            .catalogue_interval_ms = 3600000};
    cr_assert_eq(tm_fwd_core_new(&fc, r->store, r->eng, &r->box, &quiet, &r->core), TM_OK);
    /* Prices come first when a till takes the role: an empty page. */
    tm_fwd_req_t q;
    cr_assert_eq(tm_fwd_core_next(r->core, &r->in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_CATALOGUE);
    const char *page = "{\"products\":[],\"deletions\":[],\"next_cursor\":\"0\",\"more\":false}";
    tm_fwd_result_t res = {.slot = q.slot,
                           .outcome = TM_FWD_OUT_HTTP,
                           .status = 200,
                           .body = page,
                           .body_len = strlen(page),
                           .location = ""};
    tm_fwd_effects_t fx;
    tm_fwd_on_result(r->core, &res, &r->in, &fx);
}

static void rig_free(rig_t *r)
{
    char cmd[128];
    tm_fwd_core_destroy(&r->core);
    tm_engine_destroy(&r->eng);
    tm_store_destroy(&r->store);
    tm_outbox_free(&r->box);
    snprintf(cmd, sizeof cmd, "rm -rf %s", r->dir);
    cr_assert_eq(system(cmd), 0);
}

/* A sale of another till (origin 0x22), applied as a peer's op would be. */
static void peer_sale(rig_t *r, uint64_t seq, char id[TM_UUID_LEN])
{
    tm_sale_line_t line = {.sku = "1", .name = "x", .qty = 1000, .unit_price = 100};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = 100};
    tm_sale_t s = {.till = "b",
                   .receipt_no = seq,
                   .created_at = "2026-01-01T00:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = 100,
                   .payments = &pay,
                   .n_payments = 1};
    snprintf(s.sale_id, sizeof s.sale_id, "00000000-0000-4000-8000-%012llu",
             (unsigned long long)seq);
    strcpy(id, s.sale_id);
    tm_op_t op = {.seq = seq, .hlc = 100 * seq, .kind = TM_OP_SALE};
    memset(op.origin, 0x22, TM_NODE_ID_LEN);
    cr_assert_eq(tm_wire_sale_encode(&s, &op.body, &op.body_len), TM_OK);
    cr_assert_eq(tm_store_apply(r->store, &op, 1, NULL), TM_OK);
    free(op.body);
}

/* A return of orig (all of it: 1 unit at 100) by another till, seq after
 * it. */
static void peer_return(rig_t *r, uint64_t seq, const char *orig, char id[TM_UUID_LEN])
{
    tm_sale_line_t line = {.sku = "1", .name = "x", .qty = -1000, .unit_price = 100};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = -100};
    tm_sale_t s = {.till = "b",
                   .receipt_no = seq,
                   .created_at = "2026-01-01T00:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = -100,
                   .payments = &pay,
                   .n_payments = 1};
    snprintf(s.sale_id, sizeof s.sale_id, "00000000-0000-4000-8000-%012llu",
             (unsigned long long)seq);
    strcpy(s.refund_of, orig);
    strcpy(id, s.sale_id);
    tm_op_t op = {.seq = seq, .hlc = 100 * seq, .kind = TM_OP_SALE};
    memset(op.origin, 0x22, TM_NODE_ID_LEN);
    cr_assert_eq(tm_wire_sale_encode(&s, &op.body, &op.body_len), TM_OK);
    cr_assert_eq(tm_store_apply(r->store, &op, 1, NULL), TM_OK);
    free(op.body);
}

/* A predecessor's (origin 0x33) batch intent: ids under key. */
static void peer_intent(rig_t *r, uint64_t seq, char (*ids)[TM_UUID_LEN], size_t n, const char *key)
{
    tm_erp_ack_t a = {.sale_ids = ids, .n = n, .epoch = 1};
    strcpy(a.idempotency_key, key);
    tm_op_t op = {.seq = seq, .hlc = 100000 + seq, .kind = TM_OP_ERP_INTENT};
    memset(op.origin, 0x33, TM_NODE_ID_LEN);
    cr_assert_eq(tm_wire_ack_encode(&a, &op.body, &op.body_len), TM_OK);
    cr_assert_eq(tm_store_apply(r->store, &op, 1, NULL), TM_OK);
    free(op.body);
}

/* The sale ids a request's body names, in order ("sales" or "ids"). */
static size_t body_ids(const tm_fwd_req_t *q, char out[][TM_UUID_LEN], size_t max)
{
    json_error_t e;
    json_t *root = json_loadb(q->body, q->len, 0, &e), *v;
    cr_assert_not_null(root, "request body is not JSON: %s", e.text);
    json_t *list = json_object_get(root, q->kind == TM_FWD_REQ_SALES ? "sales" : "ids");
    size_t i, n = 0;
    json_array_foreach (list, i, v) {
        const char *id =
            json_string_value(q->kind == TM_FWD_REQ_SALES ? json_object_get(v, "sale_id") : v);
        cr_assert_not_null(id);
        if (n < max)
            strcpy(out[n++], id);
    }
    json_decref(root);
    return n;
}

static void answer(rig_t *r, const tm_fwd_req_t *q, long status, const char *body)
{
    tm_fwd_result_t res = {.slot = q->slot,
                           .outcome = TM_FWD_OUT_HTTP,
                           .status = status,
                           .body = body,
                           .body_len = strlen(body),
                           .location = ""};
    tm_fwd_effects_t fx;
    tm_fwd_on_result(r->core, &res, &r->in, &fx);
}

/* 200 for a sales request: every id accepted. */
static void accept_all(rig_t *r, const tm_fwd_req_t *q)
{
    char ids[16][TM_UUID_LEN], body[2048];
    size_t n = body_ids(q, ids, 16), k = 0;
    k += (size_t)snprintf(body + k, sizeof body - k, "{\"accepted\":[");
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(body + k, sizeof body - k, "%s\"%s\"", i ? "," : "", ids[i]);
    snprintf(body + k, sizeof body - k, "],\"duplicates\":[],\"rejected\":[]}");
    answer(r, q, 200, body);
}

/* 200 for a status request: the first `booked` ids asked about are held. */
static void status_answer(rig_t *r, const tm_fwd_req_t *q, size_t booked)
{
    char ids[16][TM_UUID_LEN], body[2048];
    size_t n = body_ids(q, ids, 16), k = 0;
    k += (size_t)snprintf(body + k, sizeof body - k, "{\"booked\":[");
    for (size_t i = 0; i < booked && i < n; i++)
        k += (size_t)snprintf(body + k, sizeof body - k, "%s\"%s\"", i ? "," : "", ids[i]);
    k += (size_t)snprintf(body + k, sizeof body - k, "],\"unknown\":[");
    for (size_t i = booked; i < n; i++)
        k += (size_t)snprintf(body + k, sizeof body - k, "%s\"%s\"", i > booked ? "," : "", ids[i]);
    snprintf(body + k, sizeof body - k, "]}");
    answer(r, q, 200, body);
}

/* The first request after the election is a question about the first
 * batch (a new forwarder asks before it sends); the ERP holds none. */
static void first_question(rig_t *r, tm_fwd_req_t *q)
{
    cr_assert_eq(tm_fwd_core_next(r->core, &r->in, q), 1);
    cr_assert_eq(q->kind, TM_FWD_REQ_STATUS, "kind %d", q->kind);
    status_answer(r, q, 0);
}

Test(fwd_core, batches_pipeline_each_with_its_own_key_and_acks_only_for_its_sales)
{
    rig_t r;
    rig_init(&r, 3, 2);
    char id[7][TM_UUID_LEN], got[16][TM_UUID_LEN];
    for (uint64_t i = 0; i < 7; i++)
        peer_sale(&r, i + 1, id[i]);
    tm_fwd_req_t q1, q2, q3;
    first_question(&r, &q1);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q1), 1);
    cr_assert_eq(q1.kind, TM_FWD_REQ_SALES);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q2), 1, "no second batch in flight");
    cr_assert_eq(q2.kind, TM_FWD_REQ_SALES);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q3), 0, "more than max_in_flight");
    cr_assert_str_neq(q1.key, q2.key);
    cr_assert_eq(body_ids(&q1, got, 16), 3);
    cr_assert_str_eq(got[0], id[0]);
    cr_assert_str_eq(got[2], id[2]);
    cr_assert_eq(body_ids(&q2, got, 16), 3);
    cr_assert_str_eq(got[0], id[3], "the second batch repeats a sale in flight");
    /* The second answer comes first: only its sales are acknowledged. */
    accept_all(&r, &q2);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(tm_store_is_acked(r.store, id[i]), i >= 3 && i < 6, "sale %d", i);
    /* A new batch goes out beside the first: the last sale, alone. */
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q3), 1);
    cr_assert_eq(body_ids(&q3, got, 16), 1);
    cr_assert_str_eq(got[0], id[6]);
    accept_all(&r, &q1);
    accept_all(&r, &q3);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(tm_store_is_acked(r.store, id[i]), 1, "sale %d", i);
    tm_fwd_stats_t st;
    tm_fwd_core_stats(r.core, &st);
    cr_assert_eq(st.sales_acked, 7);
    cr_assert_eq(st.requests_in_flight, 0);
    rig_free(&r);
}

Test(fwd_core, a_batch_without_an_answer_goes_again_under_its_key_after_the_backoff)
{
    rig_t r;
    rig_init(&r, 5, 2);
    char id[3][TM_UUID_LEN];
    for (uint64_t i = 0; i < 3; i++)
        peer_sale(&r, i + 1, id[i]);
    tm_fwd_req_t q, again;
    first_question(&r, &q);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    char key[72];
    strcpy(key, q.key);
    tm_fwd_result_t res = {.slot = q.slot, .outcome = TM_FWD_OUT_TIMEOUT, .error = "timed out"};
    tm_fwd_effects_t fx;
    tm_fwd_on_result(r.core, &res, &r.in, &fx);
    cr_assert(fx.probe_now);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &again), 0, "sent again with no backoff");
    r.in.now_ms += 2000;
    /* The ERP may have booked it before the answer was lost: asked first. */
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &again), 1);
    cr_assert_eq(again.kind, TM_FWD_REQ_STATUS, "re-sent without asking: %d", again.kind);
    status_answer(&r, &again, 0);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &again), 1);
    cr_assert_eq(again.kind, TM_FWD_REQ_SALES);
    cr_assert_str_eq(again.key, key);
    accept_all(&r, &again);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tm_store_is_acked(r.store, id[i]), 1);
    rig_free(&r);
}

Test(fwd_core, a_batch_booked_before_its_answer_was_lost_is_not_sent_again)
{
    rig_t r;
    rig_init(&r, 5, 1);
    char id[3][TM_UUID_LEN];
    for (uint64_t i = 0; i < 3; i++)
        peer_sale(&r, i + 1, id[i]);
    tm_fwd_req_t q;
    first_question(&r, &q);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_SALES);
    tm_fwd_result_t res = {.slot = q.slot, .outcome = TM_FWD_OUT_TRANSPORT, .error = "reset"};
    tm_fwd_effects_t fx;
    tm_fwd_on_result(r.core, &res, &r.in, &fx);
    r.in.now_ms += 2000;
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_STATUS);
    status_answer(&r, &q, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tm_store_is_acked(r.store, id[i]), 1, "sale %d", i);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 0, "sent again: kind %d", q.kind);
    rig_free(&r);
}

Test(fwd_core, a_predecessors_batch_the_erp_booked_is_acknowledged_not_sent_again)
{
    rig_t r;
    rig_init(&r, 5, 2);
    char id[3][TM_UUID_LEN];
    for (uint64_t i = 0; i < 3; i++)
        peer_sale(&r, i + 1, id[i]);
    peer_intent(&r, 1, id, 3, "tm1-predecessor");
    tm_fwd_req_t q;
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_STATUS, "re-sent without asking the ERP first");
    status_answer(&r, &q, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tm_store_is_acked(r.store, id[i]), 1, "sale %d", i);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 0, "something was sent: kind %d", q.kind);
    tm_fwd_stats_t st;
    tm_fwd_core_stats(r.core, &st);
    cr_assert_eq(st.verify_booked, 3);
    rig_free(&r);
}

Test(fwd_core, a_predecessors_batch_the_erp_lacks_goes_whole_under_its_original_key)
{
    rig_t r;
    rig_init(&r, 5, 2);
    char id[3][TM_UUID_LEN], got[16][TM_UUID_LEN];
    for (uint64_t i = 0; i < 3; i++)
        peer_sale(&r, i + 1, id[i]);
    peer_intent(&r, 1, id, 3, "tm1-predecessor");
    tm_fwd_req_t q;
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_STATUS);
    status_answer(&r, &q, 0);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_SALES);
    cr_assert_str_eq(q.key, "tm1-predecessor");
    cr_assert_eq(body_ids(&q, got, 16), 3);
    accept_all(&r, &q);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tm_store_is_acked(r.store, id[i]), 1, "sale %d", i);
    rig_free(&r);
}

Test(fwd_core, part_booked_the_rest_goes_in_a_new_batch_and_booked_sales_never_again)
{
    rig_t r;
    rig_init(&r, 5, 2);
    char id[3][TM_UUID_LEN], got[16][TM_UUID_LEN];
    for (uint64_t i = 0; i < 3; i++)
        peer_sale(&r, i + 1, id[i]);
    peer_intent(&r, 1, id, 3, "tm1-predecessor");
    tm_fwd_req_t q;
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    status_answer(&r, &q, 1); /* the ERP holds the first sale only */
    cr_assert_eq(tm_store_is_acked(r.store, id[0]), 1);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_STATUS, "the new batch is asked about too");
    status_answer(&r, &q, 0);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_SALES);
    cr_assert_str_neq(q.key, "tm1-predecessor");
    cr_assert_eq(body_ids(&q, got, 16), 2);
    cr_assert_str_eq(got[0], id[1]);
    cr_assert_str_eq(got[1], id[2]);
    accept_all(&r, &q);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 0, "the old batch went again: %d", q.kind);
    rig_free(&r);
}

Test(fwd_core, without_sales_status_a_taken_over_batch_goes_under_its_key)
{
    rig_t r;
    rig_init(&r, 5, 2);
    char id[2][TM_UUID_LEN];
    for (uint64_t i = 0; i < 2; i++)
        peer_sale(&r, i + 1, id[i]);
    peer_intent(&r, 1, id, 2, "tm1-predecessor");
    tm_fwd_req_t q;
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_STATUS);
    answer(&r, &q, 404, "{\"error\":\"not_found\"}");
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    cr_assert_eq(q.kind, TM_FWD_REQ_SALES);
    cr_assert_str_eq(q.key, "tm1-predecessor");
    rig_free(&r);
}

Test(fwd_core, an_answer_naming_a_foreign_sale_acknowledges_nothing)
{
    rig_t r;
    rig_init(&r, 5, 1);
    char id[2][TM_UUID_LEN];
    for (uint64_t i = 0; i < 2; i++)
        peer_sale(&r, i + 1, id[i]);
    tm_fwd_req_t q;
    first_question(&r, &q);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q), 1);
    char body[512];
    snprintf(body, sizeof body,
             "{\"accepted\":[\"%s\",\"%s\",\"" X "\"],\"duplicates\":[],\"rejected\":[]}", id[0],
             id[1]);
    answer(&r, &q, 200, body);
    cr_assert_eq(tm_store_is_acked(r.store, id[0]), 0);
    tm_fwd_stats_t st;
    tm_fwd_core_stats(r.core, &st);
    cr_assert_eq(st.protocol_errors, 1);
    cr_assert_neq(st.backoff_until_ms, 0);
    rig_free(&r);
}

Test(fwd_core, a_return_waits_while_its_original_is_in_another_batch_in_flight)
{
    rig_t r;
    rig_init(&r, 2, 2);
    char id[4][TM_UUID_LEN], got[16][TM_UUID_LEN];
    peer_sale(&r, 1, id[0]);
    peer_sale(&r, 2, id[1]); /* the original */
    peer_sale(&r, 3, id[2]);
    peer_return(&r, 4, id[1], id[3]);
    tm_fwd_req_t q1, q2, q3;
    first_question(&r, &q1);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q1), 1);
    cr_assert_eq(body_ids(&q1, got, 16), 2);
    cr_assert_str_eq(got[1], id[1]);
    /* Beside it: the next sale, but not the return of a sale in flight. */
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q2), 1);
    cr_assert_eq(body_ids(&q2, got, 16), 1, "the return went beside its original");
    cr_assert_str_eq(got[0], id[2]);
    accept_all(&r, &q1);
    cr_assert_eq(tm_fwd_core_next(r.core, &r.in, &q3), 1);
    cr_assert_eq(body_ids(&q3, got, 16), 1);
    cr_assert_str_eq(got[0], id[3]);
    accept_all(&r, &q2);
    accept_all(&r, &q3);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tm_store_is_acked(r.store, id[i]), 1, "sale %d", i);
    rig_free(&r);
}
