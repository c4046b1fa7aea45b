/* test_record.c - sale rules, sale and customer JSON, field errors and the
 * customer merge laws. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm_record.h"

#define SALE_ID  "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
#define OTHER_ID "0b9a8c7d-6e5f-4a3b-9c2d-1e0f2a3b4c5d"

/* 2 x 1500 + 0.25 x 9990 (2497.5 -> 2498) = 5498, paid 6000 cash. */
static const char valid_sale[] =
    "{\"sale_id\":\"" SALE_ID "\",\"till\":\"till-1\",\"receipt_no\":42,"
    "\"created_at\":\"2026-11-23T12:00:00Z\",\"currency\":\"CLP\","
    "\"lines\":[{\"sku\":\"A1\",\"name\":\"Pan\",\"qty\":2000,\"unit_price\":1500,"
    "\"discount\":0,\"tax_rate\":1900},"
    "{\"sku\":\"B2\",\"name\":\"Queso\",\"qty\":250,\"unit_price\":9990}],"
    "\"total\":5498,\"payments\":[{\"method\":\"cash\",\"amount\":6000}],"
    "\"customer\":{\"id\":\"12.345.678-5\",\"email\":\"ana@example.cl\"}}";

/* ---- helpers ---------------------------------------------------------- */

static bool has_error(const tm_field_errors_t *errs, const char *field, const char *rule)
{
    for (size_t i = 0; i < errs->n; i++) {
        if (strcmp(errs->e[i].field, field) == 0 && strcmp(errs->e[i].rule, rule) == 0)
            return true;
    }
    return false;
}

static void dump_errors(const tm_field_errors_t *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        cr_log_info("  %s [%s] %s", errs->e[i].field, errs->e[i].rule, errs->e[i].message);
}

#define assert_error(errs, field, rule)                                                            \
    do {                                                                                           \
        if (!has_error((errs), (field), (rule)))                                                   \
            dump_errors(errs);                                                                     \
        cr_assert(has_error((errs), (field), (rule)), "expected %s [%s]", (field), (rule));        \
    } while (0)

static void parse_ok(const char *json, tm_sale_t *s)
{
    tm_field_errors_t errs;
    int rc = tm_sale_from_json(json, strlen(json), s, &errs);
    if (rc)
        dump_errors(&errs);
    cr_assert_eq(rc, TM_OK, "parse: %s", tm_errname(rc));
}

/* Parses valid_sale, lets `mutate` break it, validates, and returns the
 * result; errs holds the errors. */
static int validate_mutated(void (*mutate)(tm_sale_t *), tm_field_errors_t *errs)
{
    tm_sale_t s;
    parse_ok(valid_sale, &s);
    if (mutate)
        mutate(&s);
    int rc = tm_sale_validate(&s, errs);
    tm_sale_free(&s);
    return rc;
}

/* "Zeroed" as memset() leaves it, padding included. */
static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i])
            return false;
    }
    return true;
}

/* Parses json expecting failure; checks *out was left zeroed. */
static int parse_bad(const char *json, tm_field_errors_t *errs)
{
    tm_sale_t s;
    memset(&s, 0xa5, sizeof s); /* so that "left zeroed" means zeroed by the decoder */
    int rc = tm_sale_from_json(json, strlen(json), &s, errs);
    cr_assert_neq(rc, TM_OK, "accepted: %s", json);
    cr_assert(all_zero(&s, sizeof s), "out not zeroed");
    return rc;
}

/* valid_sale with `from` replaced by `to` (once). */
static char *sale_with(const char *from, const char *to)
{
    const char *at = strstr(valid_sale, from);
    cr_assert_not_null(at, "%s not in the sale", from);
    size_t n = strlen(valid_sale) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    cr_assert_not_null(out);
    snprintf(out, n, "%.*s%s%s", (int)(at - valid_sale), valid_sale, to, at + strlen(from));
    return out;
}

static void expect_parse_error(const char *from, const char *to, const char *field,
                               const char *rule)
{
    char *json = sale_with(from, to);
    tm_field_errors_t errs;
    cr_assert_eq(parse_bad(json, &errs), TM_EVALIDATE, "%s", json);
    assert_error(&errs, field, rule);
    free(json);
}

static void assert_sale_eq(const tm_sale_t *a, const tm_sale_t *b)
{
    cr_assert_str_eq(a->sale_id, b->sale_id);
    cr_assert_str_eq(a->till, b->till);
    cr_assert_eq(a->receipt_no, b->receipt_no);
    cr_assert_str_eq(a->created_at, b->created_at);
    cr_assert_str_eq(a->currency, b->currency);
    cr_assert_eq(a->total, b->total);
    cr_assert_eq(a->has_customer, b->has_customer);
    cr_assert_str_eq(a->customer_id, b->customer_id);
    cr_assert_eq(a->customer_id_type, b->customer_id_type);
    cr_assert_str_eq(a->customer_email, b->customer_email);
    cr_assert_str_eq(a->refund_of, b->refund_of);
    cr_assert_eq(a->n_lines, b->n_lines);
    for (size_t i = 0; i < a->n_lines; i++) {
        const tm_sale_line_t *x = &a->lines[i], *y = &b->lines[i];
        cr_assert_str_eq(x->sku, y->sku);
        cr_assert_str_eq(x->name, y->name);
        cr_assert_eq(x->qty, y->qty);
        cr_assert_eq(x->unit_price, y->unit_price);
        cr_assert_eq(x->discount, y->discount);
        cr_assert_eq(x->tax_rate, y->tax_rate);
    }
    cr_assert_eq(a->n_payments, b->n_payments);
    for (size_t i = 0; i < a->n_payments; i++) {
        cr_assert_eq(a->payments[i].method, b->payments[i].method);
        cr_assert_eq(a->payments[i].amount, b->payments[i].amount);
        cr_assert_str_eq(a->payments[i].reference, b->payments[i].reference);
    }
}

/* ---- parsing a valid sale --------------------------------------------- */

Test(sale_json, valid_sale_parses_and_validates)
{
    tm_sale_t s;
    tm_field_errors_t errs;
    parse_ok(valid_sale, &s);
    cr_assert_str_eq(s.sale_id, SALE_ID);
    cr_assert_eq(s.receipt_no, 42);
    cr_assert_eq(s.n_lines, 2);
    cr_assert_eq(s.lines[1].qty, 250);
    cr_assert_eq(s.lines[1].discount, 0);
    cr_assert_eq(s.lines[1].tax_rate, 0);
    cr_assert_eq(s.payments[0].method, TM_PAY_CASH);
    cr_assert(s.has_customer);
    cr_assert_str_eq(s.customer_id, "123456785"); /* normalised */
    cr_assert_eq(s.customer_id_type, TM_IDTYPE_RUT);
    int rc = tm_sale_validate(&s, &errs);
    dump_errors(&errs);
    cr_assert_eq(rc, TM_OK);
    cr_assert_eq(errs.n, 0);
    tm_sale_free(&s);
}

Test(sale_json, till_filled_fields_may_be_missing)
{
    const char *json = "{\"currency\":\"CLP\",\"lines\":[{\"sku\":\"A\",\"name\":\"x\","
                       "\"qty\":1000,\"unit_price\":100}],\"total\":100,"
                       "\"payments\":[{\"method\":\"card\",\"amount\":100}]}";
    tm_sale_t s;
    parse_ok(json, &s);
    cr_assert_str_eq(s.sale_id, "");
    cr_assert_eq(s.receipt_no, 0);
    cr_assert_not(s.has_customer);
    tm_sale_free(&s);
}

/* ---- parse errors ----------------------------------------------------- */

Test(sale_json, malformed_json_names_line_and_column)
{
    const char *json = "{\"currency\":\"CLP\",\n \"lines\": [,]}";
    tm_field_errors_t errs;
    cr_assert_eq(parse_bad(json, &errs), TM_EJSON);
    cr_assert_eq(errs.n, 1);
    cr_assert_str_eq(errs.e[0].field, "");
    cr_assert_str_eq(errs.e[0].rule, "json");
    cr_assert_not_null(strstr(errs.e[0].message, "line 2"), "%s", errs.e[0].message);
    cr_assert_not_null(strstr(errs.e[0].message, "column"), "%s", errs.e[0].message);
}

Test(sale_json, empty_and_truncated_bodies_are_malformed)
{
    tm_field_errors_t errs;
    tm_sale_t s;
    cr_assert_eq(tm_sale_from_json("", 0, &s, &errs), TM_EJSON);
    cr_assert_eq(tm_sale_from_json(valid_sale, 40, &s, &errs), TM_EJSON);
}

Test(sale_json, duplicate_keys_are_refused)
{
    char *json = sale_with("\"total\":5498", "\"total\":5498,\"total\":1");
    tm_field_errors_t errs;
    cr_assert_eq(parse_bad(json, &errs), TM_EJSON);
    free(json);
}

Test(sale_json, top_level_must_be_an_object)
{
    tm_field_errors_t errs;
    cr_assert_eq(parse_bad("[1,2]", &errs), TM_EVALIDATE);
    assert_error(&errs, "", "type");
    cr_assert_eq(parse_bad("\"sale\"", &errs), TM_EVALIDATE);
    assert_error(&errs, "", "type");
}

Test(sale_json, float_money_is_a_type_error)
{
    expect_parse_error("\"unit_price\":1500", "\"unit_price\":10.5", "lines[0].unit_price", "type");
    expect_parse_error("\"total\":5498", "\"total\":5498.0", "total", "type");
    expect_parse_error("\"amount\":6000", "\"amount\":6000.5", "payments[0].amount", "type");
    expect_parse_error("\"qty\":250", "\"qty\":0.25", "lines[1].qty", "type");
}

Test(sale_json, wrong_types_and_null)
{
    expect_parse_error("\"qty\":2000", "\"qty\":\"2000\"", "lines[0].qty", "type");
    expect_parse_error("\"till\":\"till-1\"", "\"till\":1", "till", "type");
    expect_parse_error("\"till\":\"till-1\"", "\"till\":null", "till", "type");
    expect_parse_error("\"lines\":[", "\"lines\":{\"a\":1},\"x\":[", "lines", "type");
    expect_parse_error("{\"sku\":\"A1\"", "7,{\"sku\":\"A1\"", "lines[0]", "type");
    expect_parse_error("\"customer\":{", "\"customer\":5,\"c\":{", "customer", "type");
}

Test(sale_json, unknown_keys_are_errors)
{
    expect_parse_error("\"till\":", "\"tilll\":\"x\",\"till\":", "tilll", "unknown");
    expect_parse_error("\"discount\":0", "\"discont\":0", "lines[0].discont", "unknown");
    expect_parse_error("\"amount\":6000", "\"amount\":6000,\"tip\":1", "payments[0].tip",
                       "unknown");
    expect_parse_error("\"email\":", "\"mail\":\"a@b.cl\",\"email\":", "customer.mail", "unknown");
}

Test(sale_json, missing_keys_are_required)
{
    expect_parse_error("\"total\":5498,", "", "total", "required");
    expect_parse_error("\"currency\":\"CLP\",", "", "currency", "required");
    expect_parse_error("\"sku\":\"A1\",", "", "lines[0].sku", "required");
    /* A line with its own price must name itself; one without a price is
     * priced (and named) from the till's catalogue (sale_json below). */
    expect_parse_error("\"name\":\"Queso\",", "", "lines[1].name", "required");
    expect_parse_error("\"method\":\"cash\",", "", "payments[0].method", "required");
    expect_parse_error("{\"id\":\"12.345.678-5\",", "{", "customer.id", "required");
}

Test(sale_json, a_line_without_price_is_left_for_the_catalogue)
{
    /* sku and qty only: the till fills name, price and tax; the POS cannot
     * know the total, so it may leave it out. */
    char *json = sale_with("{\"sku\":\"B2\",\"name\":\"Queso\",\"qty\":250,\"unit_price\":9990}],"
                           "\"total\":5498,",
                           "{\"sku\":\"B2\",\"qty\":250}],");
    tm_sale_t s;
    parse_ok(json, &s);
    cr_assert_eq(s.lines[0].fill, 0, "a priced line keeps its own price");
    cr_assert_eq(s.lines[1].fill, TM_LINE_FILL_NAME | TM_LINE_FILL_PRICE | TM_LINE_FILL_TAX);
    cr_assert(s.fill_total);
    tm_sale_free(&s);
    free(json);
    /* A name or tax rate given by the POS stays its own. */
    json = sale_with("\"name\":\"Queso\",\"qty\":250,\"unit_price\":9990}",
                     "\"name\":\"Queso\",\"qty\":250,\"tax_rate\":0}");
    parse_ok(json, &s);
    cr_assert_eq(s.lines[1].fill, TM_LINE_FILL_PRICE);
    cr_assert_not(s.fill_total, "the total was given");
    tm_sale_free(&s);
    free(json);
}

Test(sale_json, long_strings_are_length_errors_not_truncated)
{
    char till[TM_TILL_MAX + 16];
    memset(till, 't', TM_TILL_MAX);
    till[TM_TILL_MAX] = '\0';
    char repl[TM_TILL_MAX + 32];
    snprintf(repl, sizeof repl, "\"till\":\"%s\"", till);
    expect_parse_error("\"till\":\"till-1\"", repl, "till", "length");
    /* One byte shorter fits exactly. */
    till[TM_TILL_MAX - 1] = '\0';
    snprintf(repl, sizeof repl, "\"till\":\"%s\"", till);
    char *json = sale_with("\"till\":\"till-1\"", repl);
    tm_sale_t s;
    parse_ok(json, &s);
    cr_assert_eq(strlen(s.till), TM_TILL_MAX - 1);
    tm_sale_free(&s);
    free(json);
    expect_parse_error("\"CLP\"", "\"CLPX\"", "currency", "length");
}

Test(sale_json, bad_enum_values)
{
    expect_parse_error("\"method\":\"cash\"", "\"method\":\"cheque\"", "payments[0].method",
                       "format");
    expect_parse_error("\"email\":", "\"id_type\":\"passport\",\"email\":", "customer.id_type",
                       "format");
    expect_parse_error("\"receipt_no\":42", "\"receipt_no\":0", "receipt_no", "range");
    expect_parse_error("\"tax_rate\":1900", "\"tax_rate\":3000000000", "lines[0].tax_rate",
                       "range");
}

Test(sale_json, customer_id_and_email_are_checked)
{
    expect_parse_error("12.345.678-5", "12.345.678-4", "customer.id", "check_digit");
    expect_parse_error("12.345.678-5", "12.34.5678-5", "customer.id", "format");
    expect_parse_error("12.345.678-5", "hello", "customer.id", "format");
    expect_parse_error("ana@example.cl", "ana@example", "customer.email", "format");
}

Test(sale_json, dni_customer_is_normalised_without_check_digit)
{
    char *json = sale_with("\"id\":\"12.345.678-5\"", "\"id\":\"x-12.345\",\"id_type\":\"dni\"");
    tm_sale_t s;
    parse_ok(json, &s);
    cr_assert_eq(s.customer_id_type, TM_IDTYPE_DNI);
    cr_assert_str_eq(s.customer_id, "X12345");
    tm_sale_free(&s);
    free(json);
}

/* {"currency":"CLP","lines":[n x line],"total":0,"payments":[m x pay]} */
static char *sale_with_counts(size_t n_lines, size_t n_pays)
{
    static const char line[] = "{\"sku\":\"A\",\"name\":\"x\",\"qty\":1000,\"unit_price\":1},";
    static const char pay[] = "{\"method\":\"cash\",\"amount\":1},";
    size_t cap = 128 + n_lines * sizeof line + n_pays * sizeof pay;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t pos = (size_t)sprintf(buf, "{\"currency\":\"CLP\",\"lines\":[");
    for (size_t i = 0; i < n_lines; i++)
        pos += (size_t)sprintf(buf + pos, "%s", line);
    pos -= n_lines > 0;
    pos += (size_t)sprintf(buf + pos, "],\"total\":%zu,\"payments\":[", n_lines);
    for (size_t i = 0; i < n_pays; i++)
        pos += (size_t)sprintf(buf + pos, "%s", pay);
    pos -= n_pays > 0;
    sprintf(buf + pos, "]}");
    return buf;
}

Test(sale_json, too_many_lines_or_payments_is_a_range_error)
{
    tm_field_errors_t errs;
    tm_sale_t s;
    char *json = sale_with_counts(TM_SALE_MAX_LINES, TM_SALE_MAX_PAYMENTS);
    parse_ok(json, &s);
    cr_assert_eq(s.n_lines, TM_SALE_MAX_LINES);
    tm_sale_free(&s);
    free(json);

    json = sale_with_counts(TM_SALE_MAX_LINES + 1, 1);
    parse_bad(json, &errs);
    assert_error(&errs, "lines", "range");
    free(json);

    json = sale_with_counts(1, TM_SALE_MAX_PAYMENTS + 1);
    parse_bad(json, &errs);
    assert_error(&errs, "payments", "range");
    free(json);
}

Test(sale_json, every_parse_error_is_collected)
{
    char *a = sale_with("\"till\":\"till-1\"", "\"till\":1,\"bogus\":true");
    char *b = NULL;
    size_t n = strlen(a) + 16;
    b = malloc(n);
    cr_assert_not_null(b);
    /* Also make the first price a decimal. */
    const char *at = strstr(a, "\"unit_price\":1500");
    snprintf(b, n, "%.*s\"unit_price\":1.5%s", (int)(at - a), a,
             at + strlen("\"unit_price\":1500"));
    tm_field_errors_t errs;
    parse_bad(b, &errs);
    assert_error(&errs, "till", "type");
    assert_error(&errs, "bogus", "unknown");
    assert_error(&errs, "lines[0].unit_price", "type");
    free(a);
    free(b);
}

/* ---- round trip ------------------------------------------------------- */

static void assert_round_trip(const char *json)
{
    tm_sale_t a, b;
    parse_ok(json, &a);
    char *text = tm_sale_to_json(&a);
    cr_assert_not_null(text);
    parse_ok(text, &b);
    assert_sale_eq(&a, &b);
    char *again = tm_sale_to_json(&b);
    cr_assert_str_eq(text, again); /* canonical: same sale, same bytes */
    free(text);
    free(again);
    tm_sale_free(&a);
    tm_sale_free(&b);
}

Test(sale_json, round_trip)
{
    assert_round_trip(valid_sale);
    char *refund = sale_with("\"customer\":{\"id\":\"12.345.678-5\",\"email\":\"ana@example.cl\"}",
                             "\"refund_of\":\"" OTHER_ID "\"");
    assert_round_trip(refund);
    free(refund);
    char *ref = sale_with("\"amount\":6000", "\"amount\":6000,\"reference\":\"auth 123\"");
    assert_round_trip(ref);
    free(ref);
}

Test(sale_json, the_clock_flag_is_written_for_the_erp_but_never_taken_from_the_pos)
{
    tm_sale_t s;
    parse_ok(valid_sale, &s);
    s.has_clock = true;
    s.clock_offset_ms = -600012;
    s.clock_skewed = true;
    char *text = tm_sale_to_json(&s);
    cr_assert_not_null(strstr(text, "\"clock\":{\"offset_ms\":-600012,\"skewed\":true}"), "%s",
                       text);
    /* A POS that sends back what it read is not refused, but the till's
     * own judgement is not replaced by the POS's. */
    tm_sale_t back;
    parse_ok(text, &back);
    cr_assert_not(back.has_clock);
    tm_sale_free(&back);
    free(text);
    tm_sale_free(&s);
}

Test(sale_json, output_has_a_fixed_key_order_and_omits_absent_parts)
{
    char *json =
        sale_with(",\"customer\":{\"id\":\"12.345.678-5\",\"email\":\"ana@example.cl\"}", "");
    tm_sale_t s;
    parse_ok(json, &s);
    char *text = tm_sale_to_json(&s);
    cr_assert_not_null(text);
    cr_assert_eq(strncmp(text,
                         "{\"sale_id\":\"" SALE_ID "\",\"till\":\"till-1\",\"receipt_no\":42,"
                         "\"created_at\":",
                         60),
                 0, "%s", text);
    cr_assert_not_null(strstr(text, "\"total\":5498,\"payments\":[{\"method\":\"cash\","
                                    "\"amount\":6000}]}"),
                       "%s", text);
    cr_assert_null(strstr(text, "customer"));
    cr_assert_null(strstr(text, "refund_of"));
    cr_assert_null(strstr(text, "clock"));
    cr_assert_null(strchr(text, ' ')); /* compact */
    free(text);
    tm_sale_free(&s);
    free(json);
}

Test(sale, copy_is_deep)
{
    tm_sale_t a, b;
    parse_ok(valid_sale, &a);
    cr_assert_eq(tm_sale_copy(&b, &a), TM_OK);
    assert_sale_eq(&a, &b);
    cr_assert_neq(a.lines, b.lines);
    cr_assert_neq(a.payments, b.payments);
    b.lines[0].qty = 1;
    cr_assert_eq(a.lines[0].qty, 2000);
    tm_sale_free(&a);
    tm_sale_free(&b);
    tm_sale_free(NULL);
    cr_assert_null(b.lines);
}

/* ---- line amounts ----------------------------------------------------- */

static int64_t amount(int64_t qty, int64_t price, int64_t discount)
{
    tm_sale_line_t l = {.qty = qty, .unit_price = price, .discount = discount};
    return tm_sale_line_amount(&l);
}

Test(sale, line_amount_rounds_half_away_from_zero)
{
    cr_assert_eq(amount(1000, 1500, 0), 1500);
    cr_assert_eq(amount(500, 3, 0), 2);   /* 1.5 -> 2 */
    cr_assert_eq(amount(499, 3, 0), 1);   /* 1.497 -> 1 */
    cr_assert_eq(amount(-500, 3, 0), -2); /* -1.5 -> -2 */
    cr_assert_eq(amount(250, 9990, 0), 2498);
    cr_assert_eq(amount(-250, 9990, 0), -2498);
}

Test(sale, discount_reduces_a_refund)
{
    cr_assert_eq(amount(2000, 1000, 300), 1700);
    cr_assert_eq(amount(-2000, 1000, 300), -1700);
}

Test(sale, line_amount_at_the_bounds_does_not_overflow)
{
    cr_assert_eq(amount(TM_QTY_MAX, TM_MONEY_MAX, 0), 1000000000000000000LL);
    cr_assert_eq(amount(-TM_QTY_MAX, TM_MONEY_MAX, 1), -999999999999999999LL);
    cr_assert_eq(amount(TM_QTY_MAX - 1, TM_MONEY_MAX, 0), 999999999000000000LL);
}

/* ---- validation: one failing case per rule ---------------------------- */

#define MUTATION(name, body)                                                                       \
    static void name(tm_sale_t *s)                                                                 \
    {                                                                                              \
        body;                                                                                      \
    }

MUTATION(no_sale_id, s->sale_id[0] = '\0')
MUTATION(bad_sale_id,
         tm_strlcpy(s->sale_id, "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5g", sizeof s->sale_id))
MUTATION(no_till, s->till[0] = '\0')
MUTATION(no_receipt, s->receipt_no = 0)
MUTATION(no_created_at, s->created_at[0] = '\0')
MUTATION(lower_currency, tm_strlcpy(s->currency, "clp", sizeof s->currency))
MUTATION(no_currency, s->currency[0] = '\0')
MUTATION(no_lines, s->n_lines = 0)
MUTATION(too_many_lines, s->n_lines = TM_SALE_MAX_LINES + 1)
MUTATION(no_sku, s->lines[1].sku[0] = '\0')
MUTATION(zero_qty, s->lines[0].qty = 0)
MUTATION(huge_qty, s->lines[0].qty = TM_QTY_MAX + 1)
MUTATION(negative_price, s->lines[0].unit_price = -1)
MUTATION(huge_price, s->lines[0].unit_price = TM_MONEY_MAX + 1)
MUTATION(negative_discount, s->lines[0].discount = -1)
MUTATION(big_discount, s->lines[0].discount = 3001)
MUTATION(bad_tax, s->lines[0].tax_rate = 10001)
MUTATION(negative_tax, s->lines[0].tax_rate = -1)
MUTATION(wrong_total, s->total = 5499)
MUTATION(huge_total, s->total = TM_MONEY_MAX + 1)
MUTATION(no_payments, s->n_payments = 0)
MUTATION(too_many_payments, s->n_payments = TM_SALE_MAX_PAYMENTS + 1)
MUTATION(zero_payment, s->payments[0].amount = 0)
MUTATION(huge_payment, s->payments[0].amount = TM_MONEY_MAX + 1)
MUTATION(bad_method, s->payments[0].method = (tm_pay_method_t)9)
MUTATION(underpaid, s->payments[0].amount = 5000)
MUTATION(card_overpaid, s->payments[0].method = TM_PAY_CARD)
MUTATION(cash_exact, s->payments[0].amount = 5498)
MUTATION(card_exact, s->payments[0].method = TM_PAY_CARD; s->payments[0].amount = 5498)
MUTATION(negative_payment, s->payments[0].amount = -6000)
MUTATION(refund_without_ref, s->lines[1].qty = -250; s->total = 3000 - 2498)
MUTATION(bad_refund_of, tm_strlcpy(s->refund_of, "nope", sizeof s->refund_of))
MUTATION(self_refund, tm_strlcpy(s->refund_of, SALE_ID, sizeof s->refund_of))
MUTATION(bad_customer_email, tm_strlcpy(s->customer_email, "ana@", sizeof s->customer_email))
MUTATION(raw_customer_id, tm_strlcpy(s->customer_id, "12.345.678-5", sizeof s->customer_id))
MUTATION(bad_customer_type, s->customer_id_type = TM_IDTYPE_NONE)

static void expect_invalid(void (*mutate)(tm_sale_t *), const char *field, const char *rule)
{
    tm_field_errors_t errs;
    cr_assert_eq(validate_mutated(mutate, &errs), TM_EVALIDATE, "%s [%s] not caught", field, rule);
    assert_error(&errs, field, rule);
}

static void expect_valid(void (*mutate)(tm_sale_t *))
{
    tm_field_errors_t errs;
    int rc = validate_mutated(mutate, &errs);
    dump_errors(&errs);
    cr_assert_eq(rc, TM_OK);
}

Test(sale_rules, header_fields)
{
    expect_invalid(no_sale_id, "sale_id", "required");
    expect_invalid(bad_sale_id, "sale_id", "format");
    expect_invalid(no_till, "till", "required");
    expect_invalid(no_receipt, "receipt_no", "required");
    expect_invalid(no_created_at, "created_at", "required");
    expect_invalid(lower_currency, "currency", "format");
    expect_invalid(no_currency, "currency", "required");
}

static const char *const bad_times[] = {
    "2026-11-23",
    "2026-11-23 12:00:00Z",
    "2026-11-23t12:00:00Z",
    "2026-11-23T12:00:00",
    "2026-13-01T00:00:00Z",
    "2026-00-01T00:00:00Z",
    "2026-02-29T00:00:00Z", /* not a leap year */
    "2026-04-31T00:00:00Z",
    "2026-11-23T24:00:00Z",
    "2026-11-23T12:60:00Z",
    "2026-11-23T12:00:61Z",
    "2026-11-23T12:00:00.Z",
    "2026-11-23T12:00:00+24:00",
    "2026-11-23T12:00:00+03:60",
    "2026-11-23T12:00:00+0300",
    "2026-11-23T12:00:00Zjunk",
    "26-11-23T12:00:00Z",
};

static const char *const good_times[] = {
    "2026-11-23T12:00:00Z",        "2024-02-29T23:59:59Z",
    "2026-12-31T23:59:60Z", /* leap second */
    "2026-11-23T12:00:00.123456Z", "2026-11-23T09:00:00-03:00",
    "2026-11-23T17:30:00+05:30",
};

Test(sale_rules, created_at_is_rfc3339)
{
    tm_sale_t s;
    tm_field_errors_t errs;
    parse_ok(valid_sale, &s);
    for (size_t i = 0; i < sizeof bad_times / sizeof bad_times[0]; i++) {
        tm_strlcpy(s.created_at, bad_times[i], sizeof s.created_at);
        cr_assert_eq(tm_sale_validate(&s, &errs), TM_EVALIDATE, "%s accepted", bad_times[i]);
        assert_error(&errs, "created_at", "format");
    }
    for (size_t i = 0; i < sizeof good_times / sizeof good_times[0]; i++) {
        tm_strlcpy(s.created_at, good_times[i], sizeof s.created_at);
        cr_assert_eq(tm_sale_validate(&s, &errs), TM_OK, "%s refused", good_times[i]);
    }
    tm_sale_free(&s);
}

Test(sale_rules, lines)
{
    expect_invalid(no_lines, "lines", "required");
    expect_invalid(too_many_lines, "lines", "range");
    expect_invalid(no_sku, "lines[1].sku", "required");
    expect_invalid(zero_qty, "lines[0].qty", "range");
    expect_invalid(huge_qty, "lines[0].qty", "range");
    expect_invalid(negative_price, "lines[0].unit_price", "range");
    expect_invalid(huge_price, "lines[0].unit_price", "range");
    expect_invalid(negative_discount, "lines[0].discount", "range");
    expect_invalid(big_discount, "lines[0].discount", "range");
    expect_invalid(bad_tax, "lines[0].tax_rate", "range");
    expect_invalid(negative_tax, "lines[0].tax_rate", "range");
}

Test(sale_rules, total_must_equal_the_lines)
{
    tm_field_errors_t errs;
    cr_assert_eq(validate_mutated(wrong_total, &errs), TM_EVALIDATE);
    assert_error(&errs, "total", "sum");
    const char *msg = NULL;
    for (size_t i = 0; i < errs.n; i++) {
        if (strcmp(errs.e[i].field, "total") == 0)
            msg = errs.e[i].message;
    }
    cr_assert_not_null(msg);
    cr_assert_not_null(strstr(msg, "5499"), "%s", msg);
    cr_assert_not_null(strstr(msg, "5498"), "%s", msg);
    expect_invalid(huge_total, "total", "range");
}

Test(sale_rules, payments)
{
    expect_invalid(no_payments, "payments", "required");
    expect_invalid(too_many_payments, "payments", "range");
    expect_invalid(zero_payment, "payments[0].amount", "range");
    expect_invalid(huge_payment, "payments[0].amount", "range");
    expect_invalid(bad_method, "payments[0].method", "format");
    expect_invalid(underpaid, "payments", "sum");
    expect_invalid(negative_payment, "payments[0].amount", "range");
}

Test(sale_rules, only_cash_can_be_overpaid)
{
    expect_valid(NULL); /* 6000 cash for 5498: 502 change */
    expect_valid(cash_exact);
    expect_valid(card_exact);
    expect_invalid(card_overpaid, "payments", "sum");
}

static void card_plus_change(tm_sale_t *s)
{
    /* 5000 card + 1000 cash for 5498: the 502 change fits in the cash. */
    s->n_payments = 2;
    s->payments = realloc(s->payments, 2 * sizeof *s->payments);
    cr_assert_not_null(s->payments);
    s->payments[0] = (tm_payment_t){.method = TM_PAY_CARD, .amount = 5000};
    s->payments[1] = (tm_payment_t){.method = TM_PAY_CASH, .amount = 1000};
}

static void card_overpays_past_cash(tm_sale_t *s)
{
    /* 5500 card + 100 cash: 102 change, but only 100 of it was cash. */
    card_plus_change(s);
    s->payments[0].amount = 5500;
    s->payments[1].amount = 100;
}

Test(sale_rules, change_comes_only_from_cash)
{
    expect_valid(card_plus_change);
    expect_invalid(card_overpays_past_cash, "payments", "sum");
}

/* A full return of line 1 of the valid sale: -2498 paid back in cash. */
static void make_return(tm_sale_t *s)
{
    s->n_lines = 1;
    s->lines[0] = s->lines[1];
    s->lines[0].qty = -250;
    s->total = -2498;
    s->payments[0].amount = -2498;
    tm_strlcpy(s->refund_of, OTHER_ID, sizeof s->refund_of);
}

static void return_underpaid(tm_sale_t *s)
{
    make_return(s);
    s->payments[0].amount = -2000;
}

static void return_overpaid(tm_sale_t *s)
{
    make_return(s);
    s->payments[0].amount = -3000;
}

static void return_positive_payment(tm_sale_t *s)
{
    make_return(s);
    s->payments = realloc(s->payments, 2 * sizeof *s->payments);
    cr_assert_not_null(s->payments);
    s->n_payments = 2;
    s->payments[0].amount = -2500;
    s->payments[1] = (tm_payment_t){.method = TM_PAY_CASH, .amount = 2};
}

static void return_without_ref(tm_sale_t *s)
{
    make_return(s);
    s->refund_of[0] = '\0';
}

Test(sale_rules, returns)
{
    expect_valid(make_return);
    expect_invalid(refund_without_ref, "refund_of", "required");
    expect_invalid(return_without_ref, "refund_of", "required");
    expect_invalid(bad_refund_of, "refund_of", "format");
    expect_invalid(self_refund, "refund_of", "self_reference");
    expect_invalid(return_underpaid, "payments", "sum");
    expect_invalid(return_overpaid, "payments", "sum");
    expect_invalid(return_positive_payment, "payments[1].amount", "range");
}

Test(sale_rules, customer_reference)
{
    expect_invalid(bad_customer_email, "customer.email", "format");
    expect_invalid(raw_customer_id, "customer.id", "format");
    expect_invalid(bad_customer_type, "customer.id_type", "format");
}

static void many_wrongs(tm_sale_t *s)
{
    s->till[0] = '\0';
    s->lines[0].qty = 0;
    s->lines[1].tax_rate = 20000;
    s->payments[0].method = TM_PAY_CARD;
    tm_strlcpy(s->currency, "clp", sizeof s->currency);
}

Test(sale_rules, all_errors_are_collected)
{
    tm_field_errors_t errs;
    cr_assert_eq(validate_mutated(many_wrongs, &errs), TM_EVALIDATE);
    assert_error(&errs, "till", "required");
    assert_error(&errs, "currency", "format");
    assert_error(&errs, "lines[0].qty", "range");
    assert_error(&errs, "lines[1].tax_rate", "range");
    cr_assert_geq(errs.n, 4);
}

/* ---- field errors ----------------------------------------------------- */

/* ---- returns bounded by the original ---------------------------------- */

/* The original: 2 x A1 at 1500 (3000) and 0.25 x B2 at 9990 (2498), CLP. */
static void orig_make(tm_sale_t *o)
{
    parse_ok(valid_sale, o);
    tm_strlcpy(o->sale_id, OTHER_ID, sizeof o->sale_id);
}

/* A return of OTHER_ID with up to 4 lines given as (sku, qty, unit_price). */
typedef struct {
    const char *sku;
    int64_t qty, price;
} rl_t;

static void ret_make(tm_sale_t *r, const char *id, const rl_t *lines, size_t n)
{
    memset(r, 0, sizeof *r);
    tm_strlcpy(r->sale_id, id, sizeof r->sale_id);
    tm_strlcpy(r->currency, "CLP", sizeof r->currency);
    tm_strlcpy(r->refund_of, OTHER_ID, sizeof r->refund_of);
    r->lines = calloc(n, sizeof *r->lines);
    cr_assert_not_null(r->lines);
    r->n_lines = n;
    for (size_t i = 0; i < n; i++) {
        tm_strlcpy(r->lines[i].sku, lines[i].sku, sizeof r->lines[i].sku);
        r->lines[i].qty = lines[i].qty;
        r->lines[i].unit_price = lines[i].price;
        r->total += tm_sale_line_amount(&r->lines[i]);
    }
}

#define RET(r, id, ...)                                                                            \
    do {                                                                                           \
        const rl_t l_[] = {__VA_ARGS__};                                                           \
        ret_make((r), (id), l_, sizeof l_ / sizeof l_[0]);                                         \
    } while (0)

#define R1 "11111111-1111-4111-8111-111111111111"
#define R2 "22222222-2222-4222-8222-222222222222"
#define R3 "33333333-3333-4333-8333-333333333333"

static int check(const tm_sale_t *o, const tm_sale_t *prior, size_t n, const tm_sale_t *r,
                 tm_field_errors_t *errs)
{
    int rc = tm_refund_check(o, prior, n, r, errs);
    if (rc == TM_EVALIDATE)
        dump_errors(errs);
    return rc;
}

Test(refund, whole_sale_back_is_fine)
{
    tm_sale_t o, r;
    tm_field_errors_t errs;
    orig_make(&o);
    RET(&r, R1, {"A1", -2000, 1500}, {"B2", -250, 9990});
    cr_assert_eq(r.total, -5498);
    cr_assert_eq(check(&o, NULL, 0, &r, &errs), TM_OK);
    tm_sale_free(&r);
    tm_sale_free(&o);
}

/* The issue's example: 1,000 CLP sold, returns of 5,000, and 999,999 USD
 * for a SKU the sale did not have. */
Test(refund, issue_example_refused)
{
    tm_sale_t o, r;
    tm_field_errors_t errs;
    memset(&o, 0, sizeof o);
    parse_ok("{\"sale_id\":\"" OTHER_ID "\",\"currency\":\"CLP\",\"lines\":[{\"sku\":\"7801\","
             "\"name\":\"Pan\",\"qty\":1000,\"unit_price\":1000}],\"total\":1000,"
             "\"payments\":[{\"method\":\"cash\",\"amount\":1000}]}",
             &o);
    RET(&r, R1, {"7801", -1000, 5000});
    cr_assert_eq(tm_refund_check(&o, NULL, 0, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[0].unit_price", "exceeds_original");
    cr_assert_eq(errs.n, 1, "quantity 1 of 1 is within bounds");
    tm_sale_free(&r);

    RET(&r, R2, {"9999", -1000, 999999});
    tm_strlcpy(r.currency, "USD", sizeof r.currency);
    cr_assert_eq(tm_refund_check(&o, NULL, 0, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "currency", "currency_mismatch");
    tm_strlcpy(r.currency, "CLP", sizeof r.currency);
    cr_assert_eq(tm_refund_check(&o, NULL, 0, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[0].sku", "not_in_original");
    tm_sale_free(&r);
    tm_sale_free(&o);
}

Test(refund, quantity_and_amount_per_sku)
{
    tm_sale_t o, r;
    tm_field_errors_t errs;
    orig_make(&o);
    RET(&r, R1, {"B2", -251, 9990});
    cr_assert_eq(tm_refund_check(&o, NULL, 0, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[0].qty", "exceeds_original");
    cr_assert_str_eq(errs.e[0].message,
                     "SKU B2: 0.25 sold, 0 already returned, 0.251 more is too many");
    tm_sale_free(&r);
    /* Within A1's quantity but over what A1 was sold for (3000): the bound
     * holds per SKU even though the whole sale's total (5498) covers it. */
    RET(&r, R1, {"B2", -250, 9990}, {"A1", -1000, 3100});
    cr_assert_eq(tm_refund_check(&o, NULL, 0, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[1].unit_price", "exceeds_original");
    cr_assert_eq(errs.n, 1);
    tm_sale_free(&r);
    /* Two lines of one SKU count together. */
    RET(&r, R1, {"A1", -1500, 1500}, {"B2", -100, 9990}, {"A1", -1000, 1500});
    cr_assert_eq(tm_refund_check(&o, NULL, 0, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[0].qty", "exceeds_original");
    tm_sale_free(&r);
    tm_sale_free(&o);
}

Test(refund, earlier_returns_count)
{
    tm_sale_t o, r, prior[2];
    tm_field_errors_t errs;
    orig_make(&o);
    RET(&prior[0], R1, {"A1", -1000, 1500});
    RET(&prior[1], R2, {"A1", -500, 1500}, {"B2", -250, 9990});
    RET(&r, R3, {"A1", -500, 1500});
    cr_assert_eq(check(&o, prior, 2, &r, &errs), TM_OK);
    r.lines[0].qty = -501;
    cr_assert_eq(tm_refund_check(&o, prior, 2, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[0].qty", "exceeds_original");
    cr_assert_str_eq(errs.e[0].message,
                     "SKU A1: 2 sold, 1.5 already returned, 0.501 more is too many");
    tm_sale_free(&r);
    RET(&r, R3, {"B2", -1, 9990});
    cr_assert_eq(tm_refund_check(&o, prior, 2, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[0].qty", "exceeds_original");
    tm_sale_free(&r);
    tm_sale_free(&prior[0]);
    tm_sale_free(&prior[1]);
    tm_sale_free(&o);
}

/* A discount given on the sale is not refunded twice: returning the line
 * at full price asks for more than was paid. */
Test(refund, discount_bounds_the_refund)
{
    tm_sale_t o, r;
    tm_field_errors_t errs;
    orig_make(&o);
    o.lines[0].discount = 300; /* A1 sold for 2700 */
    RET(&r, R1, {"A1", -2000, 1500});
    cr_assert_eq(tm_refund_check(&o, NULL, 0, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[0].unit_price", "exceeds_original");
    r.lines[0].discount = 300;
    cr_assert_eq(check(&o, NULL, 0, &r, &errs), TM_OK);
    tm_sale_free(&r);
    tm_sale_free(&o);
}

/* An exchange: B2 back, C3 bought. Only what comes back is bounded. */
Test(refund, exchange_line_is_not_bounded)
{
    tm_sale_t o, r;
    tm_field_errors_t errs;
    orig_make(&o);
    RET(&r, R1, {"B2", -250, 9990}, {"C3", 5000, 100000});
    cr_assert_eq(check(&o, NULL, 0, &r, &errs), TM_OK);
    tm_sale_free(&r);
    tm_sale_free(&o);
}

Test(refund, refund_of_a_refund)
{
    tm_sale_t o, r;
    tm_field_errors_t errs;
    RET(&o, R1, {"A1", -1000, 1500});
    RET(&r, R2, {"A1", -1000, 1500});
    tm_strlcpy(r.refund_of, R1, sizeof r.refund_of);
    cr_assert_eq(tm_refund_check(&o, NULL, 0, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "refund_of", "refund_of_refund");
    /* As a group (returns replicated from elsewhere): flagged. */
    cr_assert_eq(tm_refund_check(&o, &r, 1, NULL, NULL), TM_EVALIDATE);
    tm_sale_free(&r);
    tm_sale_free(&o);
}

/* Group mode: the returns a till holds, with no new one: what decides
 * the over_refund flag after a merge. */
Test(refund, group_over_bounds)
{
    tm_sale_t o, g[3];
    orig_make(&o);
    /* Two tills each returned 1.5 of 2 A1 during a split. */
    RET(&g[0], R1, {"A1", -1500, 1500});
    RET(&g[1], R2, {"A1", -1500, 1500});
    cr_assert_eq(tm_refund_check(&o, g, 1, NULL, NULL), TM_OK);
    cr_assert_eq(tm_refund_check(&o, &g[1], 1, NULL, NULL), TM_OK);
    cr_assert_eq(tm_refund_check(&o, g, 2, NULL, NULL), TM_EVALIDATE);
    /* Order does not matter. */
    tm_sale_t swapped[2] = {g[1], g[0]};
    cr_assert_eq(tm_refund_check(&o, swapped, 2, NULL, NULL), TM_EVALIDATE);
    /* Another currency or a SKU not sold, from a peer: flagged too. */
    RET(&g[2], R3, {"B2", -100, 9990});
    cr_assert_eq(tm_refund_check(&o, &g[2], 1, NULL, NULL), TM_OK);
    tm_strlcpy(g[2].currency, "EUR", sizeof g[2].currency);
    cr_assert_eq(tm_refund_check(&o, &g[2], 1, NULL, NULL), TM_EVALIDATE);
    tm_strlcpy(g[2].currency, "CLP", sizeof g[2].currency);
    tm_strlcpy(g[2].lines[0].sku, "Z9", sizeof g[2].lines[0].sku);
    cr_assert_eq(tm_refund_check(&o, &g[2], 1, NULL, NULL), TM_EVALIDATE);
    for (int i = 0; i < 3; i++)
        tm_sale_free(&g[i]);
    tm_sale_free(&o);
}

/* A flagged return already held is not held against a new one of other
 * goods: the bounds count what matches the original. */
Test(refund, broken_prior_does_not_block)
{
    tm_sale_t o, p, r;
    tm_field_errors_t errs;
    orig_make(&o);
    RET(&p, R1, {"Z9", -1000, 99999});
    RET(&r, R2, {"A1", -1000, 1500});
    cr_assert_eq(check(&o, &p, 1, &r, &errs), TM_OK);
    tm_sale_free(&p);
    tm_sale_free(&r);
    tm_sale_free(&o);
}

/* A hostile peer's quantities near INT64_MAX must not wrap below a bound. */
Test(refund, sums_saturate)
{
    tm_sale_t o, g[2], r;
    tm_field_errors_t errs;
    orig_make(&o);
    RET(&g[0], R1, {"A1", -INT64_MAX, 1});
    RET(&g[1], R2, {"A1", -INT64_MAX, 1});
    cr_assert_eq(tm_refund_check(&o, g, 2, NULL, NULL), TM_EVALIDATE);
    RET(&r, R3, {"A1", -1, 0});
    cr_assert_eq(tm_refund_check(&o, g, 2, &r, &errs), TM_EVALIDATE);
    assert_error(&errs, "lines[0].qty", "exceeds_original");
    tm_sale_free(&g[0]);
    tm_sale_free(&g[1]);
    tm_sale_free(&r);
    tm_sale_free(&o);
}

Test(refund, review_in_json)
{
    tm_sale_t s, back;
    tm_field_errors_t errs;
    parse_ok(valid_sale, &s);
    s.review = TM_REVIEW_OVER_REFUND;
    char *text = tm_sale_to_json(&s);
    cr_assert_not_null(strstr(text, "\"review\":\"over_refund\""), "%s", text);
    parse_ok(text, &back);
    cr_assert_eq(back.review, TM_REVIEW_OVER_REFUND);
    free(text);
    tm_sale_free(&back);
    s.review = TM_REVIEW_NONE;
    text = tm_sale_to_json(&s);
    cr_assert_null(strstr(text, "review"), "%s", text);
    free(text);
    tm_sale_free(&s);
    expect_parse_error("\"total\"", "\"review\":\"maybe\",\"total\"", "review", "format");
    expect_parse_error("\"total\"", "\"review\":1,\"total\"", "review", "type");
    cr_assert_str_eq(tm_review_name(TM_REVIEW_ORIGINAL_UNKNOWN), "original_unknown");
    cr_assert_str_eq(tm_review_name(99), "");
    (void)errs;
}
