/* test_intake.c - the POS intake rules (core/intake.c) over a real store
 * in a temporary file and a real engine: ids and created_at from the
 * arguments, the till's name, resends, receipt numbers, clock flags,
 * returns of sales not held, and edits stamped after what the till shows. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_intake.h"
#include "tm_wire.h"

static tm_log_t quiet = {.level = TM_LOG_ERROR};

typedef struct {
    char dir[64];
    tm_store_t *store;
    tm_engine_t *eng;
    tm_outbox_t box;
} fix_t;

static fix_t F;

static void setup(void)
{
    memset(&F, 0, sizeof F);
    strcpy(F.dir, "/tmp/tm-intake-XXXXXX");
    cr_assert_not_null(mkdtemp(F.dir));
    char path[128];
    snprintf(path, sizeof path, "%s/t.db", F.dir);
    cr_assert_eq(tm_store_open(path, NULL, &F.store), TM_OK);
    tm_engine_cfg_t cfg = {.name = "till-1",
                           .store_id = "s",
                           .mesh_endpoint = "tcp://127.0.0.1:1",
                           .heartbeat_ms = 100,
                           .batch_max_ops = 10};
    cr_assert_eq(tm_engine_new(&cfg, F.store, &quiet, &F.eng), TM_OK);
}

static void teardown(void)
{
    tm_engine_destroy(&F.eng);
    tm_store_destroy(&F.store);
    tm_outbox_free(&F.box);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", F.dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(intake, .init = setup, .fini = teardown);

static tm_sale_line_t line = {.sku = "A1", .name = "apple", .qty = 2000, .unit_price = 500};
static tm_payment_t pay = {.method = TM_PAY_CASH, .amount = 1000};

static tm_sale_t sale(void)
{
    tm_sale_t s = {.currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = 1000,
                   .payments = &pay,
                   .n_payments = 1};
    return s;
}

static const tm_intake_ctx_t ctx0 = {.till = "till-1",
                                     .wall_ms = 1788220800250ULL, /* 2026-09-01T00:00:00.250Z */
                                     .random = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

static void store_it(tm_sale_t *s)
{
    cr_assert_eq(tm_intake_commit_sale(F.eng, s, ctx0.wall_ms, 5000, &F.box), TM_OK);
    tm_outbox_clear(&F.box);
}

Test(intake, new_sale_takes_id_time_and_receipt_from_arguments)
{
    tm_sale_t s = sale();
    tm_field_errors_t errs = {0};
    int review = -1;
    cr_assert_eq(tm_intake_sale(F.store, &ctx0, &s, &review, &errs), TM_OK);
    /* The given bytes, with the version 4 and RFC 4122 variant bits. */
    cr_assert_str_eq(s.sale_id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    cr_assert_str_eq(s.till, "till-1");
    cr_assert_str_eq(s.created_at, "2026-09-01T00:00:00.250Z");
    cr_assert_eq(s.receipt_no, 1);
    cr_assert_eq(review, TM_REVIEW_NONE);
    cr_assert(!s.has_clock, "no store time measured: not flagged");
    store_it(&s);
    tm_sale_t t;
    tm_intake_ctx_t c2 = ctx0;
    c2.random[0] = 0;
    t = sale();
    cr_assert_eq(tm_intake_sale(F.store, &c2, &t, &review, &errs), TM_OK);
    cr_assert_eq(t.receipt_no, 2, "receipt numbers follow the store");
}

Test(intake, sale_for_another_till_is_a_field_error)
{
    tm_sale_t s = sale();
    tm_strlcpy(s.till, "till-9", sizeof s.till);
    tm_field_errors_t errs = {0};
    int review;
    cr_assert_eq(tm_intake_sale(F.store, &ctx0, &s, &review, &errs), TM_EVALIDATE);
    cr_assert_eq(errs.n, 1);
    cr_assert_str_eq(errs.e[0].field, "till");
}

Test(intake, resend_is_filled_from_the_stored_sale)
{
    tm_sale_t s = sale();
    tm_field_errors_t errs = {0};
    int review;
    tm_strlcpy(s.sale_id, "0b0b0b0b-0000-4000-8000-000000000001", sizeof s.sale_id);
    cr_assert_eq(tm_intake_sale(F.store, &ctx0, &s, &review, &errs), TM_OK);
    store_it(&s);
    /* The POS retries later without created_at or receipt_no. */
    tm_intake_ctx_t later = ctx0;
    later.wall_ms += 60000;
    tm_sale_t r = sale();
    tm_strlcpy(r.sale_id, s.sale_id, sizeof r.sale_id);
    cr_assert_eq(tm_intake_sale(F.store, &later, &r, &review, &errs), TM_EEXIST);
    cr_assert_str_eq(r.created_at, "2026-09-01T00:00:00.250Z", "the first answer's time");
    cr_assert_eq(r.receipt_no, 1);
    /* The same id with another total is not the same sale. */
    tm_sale_line_t l2 = line;
    l2.unit_price = 600;
    tm_payment_t p2 = {.method = TM_PAY_CASH, .amount = 1200};
    tm_sale_t c = sale();
    c.lines = &l2;
    c.total = 1200;
    c.payments = &p2;
    tm_strlcpy(c.sale_id, s.sale_id, sizeof c.sale_id);
    cr_assert_eq(tm_intake_sale(F.store, &later, &c, &review, &errs), TM_ECONFLICT);
}

Test(intake, clock_fields_are_the_tills_never_the_pos)
{
    tm_clock_status_t cs = {.measured = 2, .offset_ms = -600000, .skewed = true};
    tm_intake_ctx_t c = ctx0;
    c.clock = &cs;
    tm_sale_t s = sale();
    s.has_clock = true;
    s.clock_offset_ms = 5;
    s.clock_skewed = false;
    tm_field_errors_t errs = {0};
    int review;
    cr_assert_eq(tm_intake_sale(F.store, &c, &s, &review, &errs), TM_OK);
    cr_assert(s.has_clock);
    cr_assert_eq(s.clock_offset_ms, -600000);
    cr_assert(s.clock_skewed);
    cs.measured = 0;
    tm_sale_t t = sale();
    t.has_clock = true;
    t.clock_offset_ms = 5;
    c.random[0] = 1;
    cr_assert_eq(tm_intake_sale(F.store, &c, &t, &review, &errs), TM_OK);
    cr_assert(!t.has_clock, "nothing measured: no flag, whatever the POS sent");
}

Test(intake, return_of_a_sale_not_held_is_taken_and_flagged)
{
    tm_sale_line_t back = line;
    back.qty = -1000;
    tm_payment_t p = {.method = TM_PAY_CASH, .amount = -500};
    tm_sale_t s = sale();
    s.lines = &back;
    s.total = -500;
    s.payments = &p;
    tm_strlcpy(s.refund_of, "0c0c0c0c-0000-4000-8000-000000000001", sizeof s.refund_of);
    tm_field_errors_t errs = {0};
    int review = -1;
    cr_assert_eq(tm_intake_sale(F.store, &ctx0, &s, &review, &errs), TM_OK);
    cr_assert_eq(review, TM_REVIEW_ORIGINAL_UNKNOWN);
}

Test(intake, edit_is_stamped_after_what_the_till_shows)
{
    /* A record last written by a till whose clock ran an hour ahead: an
     * edit here, with our clock behind it, must still order after it. */
    tm_customer_t p;
    memset(&p, 0, sizeof p);
    tm_strlcpy(p.id, "D1", sizeof p.id);
    p.id_type = TM_IDTYPE_DNI;
    p.f[TM_CF_NAME].set = true;
    tm_strlcpy(p.f[TM_CF_NAME].value, "first", sizeof p.f[TM_CF_NAME].value);
    cr_assert_eq(
        tm_intake_commit_customer(F.eng, F.store, &p, ctx0.wall_ms + 3600000, 5000, &F.box), TM_OK);
    uint64_t first = 0;
    cr_assert_eq(tm_store_customer_stamp(F.store, "D1", &first), TM_OK);
    tm_strlcpy(p.f[TM_CF_NAME].value, "second", sizeof p.f[TM_CF_NAME].value);
    cr_assert_eq(tm_intake_commit_customer(F.eng, F.store, &p, ctx0.wall_ms, 5001, &F.box), TM_OK);
    uint64_t second = 0;
    cr_assert_eq(tm_store_customer_stamp(F.store, "D1", &second), TM_OK);
    cr_assert_gt(second, first);
    tm_customer_t got;
    cr_assert_eq(tm_store_get_customer(F.store, "D1", &got), TM_OK);
    cr_assert_str_eq(got.f[TM_CF_NAME].value, "second");
}
