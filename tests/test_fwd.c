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
