/* test_customer.c - customer patches from JSON, field error lists, and the
 * last-writer-wins merge laws. (Split from test_record.c to keep files small.) */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm_record.h"

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

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i])
            return false;
    }
    return true;
}

Test(field_errors, to_json_lists_every_field)
{
    tm_field_errors_t errs;
    tm_field_errors_init(&errs);
    tm_field_errors_add(&errs, "lines[0].qty", "range", "qty %d is zero", 0);
    tm_field_errors_add(&errs, "total", "sum", "total \"%s\"", "quoted");
    char *text = tm_field_errors_to_json(&errs);
    cr_assert_not_null(text);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", text, jerr.text);
    cr_assert_str_eq(json_string_value(json_object_get(root, "error")), "validation");
    json_t *fields = json_object_get(root, "fields");
    cr_assert_eq(json_array_size(fields), 2);
    json_t *f0 = json_array_get(fields, 0), *f1 = json_array_get(fields, 1);
    cr_assert_str_eq(json_string_value(json_object_get(f0, "field")), "lines[0].qty");
    cr_assert_str_eq(json_string_value(json_object_get(f0, "rule")), "range");
    cr_assert_str_eq(json_string_value(json_object_get(f0, "message")), "qty 0 is zero");
    cr_assert_str_eq(json_string_value(json_object_get(f1, "message")), "total \"quoted\"");
    cr_assert_null(json_object_get(root, "dropped"));
    json_decref(root);
    free(text);
}

Test(field_errors, overflow_is_counted)
{
    tm_field_errors_t errs;
    tm_field_errors_init(&errs);
    for (int i = 0; i < TM_FIELD_ERRORS_MAX + 5; i++)
        tm_field_errors_add(&errs, "x", "range", "error %d", i);
    cr_assert_eq(errs.n, TM_FIELD_ERRORS_MAX);
    cr_assert_eq(errs.n_dropped, 5);
    char *text = tm_field_errors_to_json(&errs);
    json_t *root = json_loads(text, 0, NULL);
    cr_assert_not_null(root);
    cr_assert_eq(json_array_size(json_object_get(root, "fields")), TM_FIELD_ERRORS_MAX);
    cr_assert_eq(json_integer_value(json_object_get(root, "dropped")), 5);
    json_decref(root);
    free(text);
}

Test(field_errors, empty_list_is_still_json)
{
    tm_field_errors_t errs;
    tm_field_errors_init(&errs);
    char *text = tm_field_errors_to_json(&errs);
    cr_assert_str_eq(text, "{\"error\":\"validation\",\"fields\":[]}");
    free(text);
}

/* ---- small tables ----------------------------------------------------- */

Test(names, id_types_and_customer_fields)
{
    tm_id_type_t t;
    cr_assert_eq(tm_id_type_parse("rut", &t), TM_OK);
    cr_assert_eq(t, TM_IDTYPE_RUT);
    cr_assert_eq(tm_id_type_parse("dni", &t), TM_OK);
    cr_assert_eq(t, TM_IDTYPE_DNI);
    cr_assert_eq(tm_id_type_parse("RUT", &t), TM_EINVAL);
    cr_assert_eq(tm_id_type_parse(NULL, &t), TM_EINVAL);
    cr_assert_str_eq(tm_id_type_name(TM_IDTYPE_DNI), "dni");
    cr_assert_str_eq(tm_cust_field_name(TM_CF_OFFERS_OPT_IN), "offers_opt_in");
    cr_assert_str_eq(tm_cust_field_name(TM_CF_LOYALTY_NUMBER), "loyalty_number");
    cr_assert(tm_cust_field_is_bool(TM_CF_ERASED));
    cr_assert_not(tm_cust_field_is_bool(TM_CF_EMAIL));
}

/* ---- customer patches ------------------------------------------------- */

static int patch(const char *path_id, const char *json, tm_customer_t *c, tm_field_errors_t *errs)
{
    return tm_customer_patch_from_json(path_id, json, strlen(json), c, errs);
}

static void expect_patch_error(const char *path_id, const char *json, int want_rc,
                               const char *field, const char *rule)
{
    tm_customer_t c;
    tm_field_errors_t errs;
    memset(&c, 0xa5, sizeof c);
    cr_assert_eq(patch(path_id, json, &c, &errs), want_rc, "%s", json);
    assert_error(&errs, field, rule);
    cr_assert(all_zero(&c, sizeof c), "out not zeroed");
}

Test(customer_json, valid_patch)
{
    tm_customer_t c;
    tm_field_errors_t errs;
    int rc = patch("12.345.678-5",
                   "{\"id_type\":\"rut\",\"name\":\"Ana Pérez\",\"email\":\"ana@example.cl\","
                   "\"phone\":\"+56 9 1234 5678\",\"offers_opt_in\":true}",
                   &c, &errs);
    dump_errors(&errs);
    cr_assert_eq(rc, TM_OK);
    cr_assert_str_eq(c.id, "123456785");
    cr_assert_eq(c.id_type, TM_IDTYPE_RUT);
    cr_assert(c.f[TM_CF_NAME].set);
    cr_assert_str_eq(c.f[TM_CF_NAME].value, "Ana Pérez");
    cr_assert_str_eq(c.f[TM_CF_EMAIL].value, "ana@example.cl");
    cr_assert_str_eq(c.f[TM_CF_OFFERS_OPT_IN].value, "true");
    cr_assert_not(c.f[TM_CF_ERASED].set);
    cr_assert_not(c.f[TM_CF_LOYALTY_PROGRAM].set);
    cr_assert_eq(c.f[TM_CF_NAME].hlc, 0);
}

Test(customer_json, dni_path_and_default_rut)
{
    tm_customer_t c;
    tm_field_errors_t errs;
    cr_assert_eq(patch("ab-123.456", "{\"id_type\":\"dni\",\"erased\":false}", &c, &errs), TM_OK);
    cr_assert_str_eq(c.id, "AB123456");
    cr_assert_str_eq(c.f[TM_CF_ERASED].value, "false");
    cr_assert_eq(patch("1000005-k", "{\"loyalty_number\":\"L-77\"}", &c, &errs), TM_OK);
    cr_assert_eq(c.id_type, TM_IDTYPE_RUT);
    cr_assert_str_eq(c.id, "1000005K");
}

Test(customer_json, patch_errors)
{
    expect_patch_error("12345678-5", "{\"email\":\"ana@\"}", TM_EVALIDATE, "email", "format");
    expect_patch_error("12345678-5", "{\"nmae\":\"Ana\"}", TM_EVALIDATE, "nmae", "unknown");
    expect_patch_error("12345678-5", "{}", TM_EVALIDATE, "", "required");
    expect_patch_error("12345678-5", "{\"id_type\":\"rut\"}", TM_EVALIDATE, "", "required");
    expect_patch_error("12345678-5", "{\"offers_opt_in\":\"yes\"}", TM_EVALIDATE, "offers_opt_in",
                       "type");
    expect_patch_error("12345678-5", "{\"erased\":1}", TM_EVALIDATE, "erased", "type");
    expect_patch_error("12345678-5", "{\"name\":null}", TM_EVALIDATE, "name", "type");
    expect_patch_error("12345678-5", "{\"name\":\"a\\nb\"}", TM_EVALIDATE, "name", "format");
    expect_patch_error("12345678-5", "{\"phone\":\"12345\"}", TM_EVALIDATE, "phone", "format");
    expect_patch_error("12345678-5", "{\"phone\":\"555-CALL-ME\"}", TM_EVALIDATE, "phone",
                       "format");
    expect_patch_error("12345678-4", "{\"name\":\"Ana\"}", TM_EVALIDATE, "id", "check_digit");
    expect_patch_error("12345678-5", "{\"id_type\":\"ssn\",\"name\":\"A\"}", TM_EVALIDATE,
                       "id_type", "format");
    expect_patch_error("12345678-5", "{\"name\":\"Ana\"", TM_EJSON, "", "json");
    expect_patch_error("12345678-5", "[]", TM_EVALIDATE, "", "type");
}

Test(customer_json, long_values_are_length_errors)
{
    char json[TM_FIELD_VALUE_MAX + 32];
    char name[TM_FIELD_VALUE_MAX + 1];
    memset(name, 'n', TM_FIELD_VALUE_MAX);
    name[TM_FIELD_VALUE_MAX] = '\0';
    snprintf(json, sizeof json, "{\"name\":\"%s\"}", name);
    expect_patch_error("12345678-5", json, TM_EVALIDATE, "name", "length");
    name[TM_FIELD_VALUE_MAX - 1] = '\0';
    snprintf(json, sizeof json, "{\"name\":\"%s\"}", name);
    tm_customer_t c;
    tm_field_errors_t errs;
    cr_assert_eq(patch("12345678-5", json, &c, &errs), TM_OK);
}

Test(customer_json, to_json_has_set_fields_and_real_booleans)
{
    tm_customer_t c;
    tm_field_errors_t errs;
    cr_assert_eq(patch("12345678-5", "{\"name\":\"Ana\",\"offers_opt_in\":false}", &c, &errs),
                 TM_OK);
    char *text = tm_customer_to_json(&c);
    cr_assert_str_eq(text, "{\"id\":\"123456785\",\"id_type\":\"rut\",\"name\":\"Ana\","
                           "\"offers_opt_in\":false}");
    free(text);
}

/* ---- customer merge laws ---------------------------------------------- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t xorshift(rng_t *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

/* Small ranges so that equal hlcs, equal nodes and unset fields are common. */
static void random_customer(rng_t *r, tm_customer_t *c)
{
    memset(c, 0, sizeof *c);
    tm_strlcpy(c->id, "123456785", sizeof c->id);
    c->id_type = TM_IDTYPE_RUT;
    for (int f = 0; f < TM_CF_COUNT; f++) {
        tm_cust_value_t *v = &c->f[f];
        if (xorshift(r) % 4 == 0)
            continue;
        v->set = true;
        v->hlc = xorshift(r) % 4;
        v->node[TM_NODE_ID_LEN - 1] = (uint8_t)(xorshift(r) % 3);
        snprintf(v->value, sizeof v->value, "v%u", (unsigned)(xorshift(r) % 3));
    }
}

static tm_customer_t merged(const tm_customer_t *a, const tm_customer_t *b)
{
    tm_customer_t out = *a;
    tm_customer_merge(&out, b);
    return out;
}

static bool customer_eq(const tm_customer_t *a, const tm_customer_t *b)
{
    if (strcmp(a->id, b->id) != 0 || a->id_type != b->id_type)
        return false;
    for (int f = 0; f < TM_CF_COUNT; f++) {
        const tm_cust_value_t *x = &a->f[f], *y = &b->f[f];
        if (x->set != y->set || strcmp(x->value, y->value) != 0 || x->hlc != y->hlc ||
            memcmp(x->node, y->node, TM_NODE_ID_LEN) != 0)
            return false;
    }
    return true;
}

#define assert_customer_eq(x, y) cr_assert(customer_eq(&(x), &(y)))

Test(customer_merge, commutative_associative_idempotent)
{
    rng_t r = {0x9e3779b97f4a7c15ULL};
    for (int i = 0; i < 1000; i++) {
        tm_customer_t a, b, c;
        random_customer(&r, &a);
        random_customer(&r, &b);
        random_customer(&r, &c);
        tm_customer_t ab = merged(&a, &b), ba = merged(&b, &a);
        assert_customer_eq(ab, ba);
        tm_customer_t aa = merged(&a, &a);
        assert_customer_eq(aa, a);
        tm_customer_t ab_c = merged(&ab, &c);
        tm_customer_t bc = merged(&b, &c);
        tm_customer_t a_bc = merged(&a, &bc);
        assert_customer_eq(ab_c, a_bc);
        tm_customer_t ab_b = merged(&ab, &b); /* re-delivery changes nothing */
        assert_customer_eq(ab_b, ab);
    }
}

static tm_customer_t one_name(const char *value, uint64_t hlc, uint8_t node_last)
{
    tm_customer_t c;
    uint8_t node[TM_NODE_ID_LEN] = {0};
    memset(&c, 0, sizeof c);
    node[TM_NODE_ID_LEN - 1] = node_last;
    c.f[TM_CF_NAME].set = true;
    tm_strlcpy(c.f[TM_CF_NAME].value, value, sizeof c.f[TM_CF_NAME].value);
    tm_customer_stamp(&c, hlc, node);
    return c;
}

Test(customer_merge, later_stamp_wins_and_node_id_breaks_ties)
{
    tm_customer_t old = one_name("old", 10, 9), newer = one_name("new", 11, 1);
    cr_assert_str_eq(merged(&old, &newer).f[TM_CF_NAME].value, "new");
    cr_assert_str_eq(merged(&newer, &old).f[TM_CF_NAME].value, "new");
    tm_customer_t lo = one_name("lo", 10, 1), hi = one_name("hi", 10, 2);
    cr_assert_str_eq(merged(&lo, &hi).f[TM_CF_NAME].value, "hi");
    cr_assert_str_eq(merged(&hi, &lo).f[TM_CF_NAME].value, "hi");
}

Test(customer_merge, unset_fields_do_not_clobber)
{
    tm_customer_t cur = one_name("Ana", 5, 1), p;
    memset(&p, 0, sizeof p);
    p.f[TM_CF_EMAIL].set = true;
    tm_strlcpy(p.f[TM_CF_EMAIL].value, "ana@example.cl", sizeof p.f[TM_CF_EMAIL].value);
    uint8_t node[TM_NODE_ID_LEN] = {7};
    tm_customer_stamp(&p, 99, node);
    cr_assert_eq(p.f[TM_CF_EMAIL].hlc, 99);
    cr_assert_eq(p.f[TM_CF_EMAIL].node[0], 7);
    cr_assert_eq(p.f[TM_CF_NAME].hlc, 0); /* unset fields are not stamped */
    tm_customer_merge(&cur, &p);
    cr_assert_str_eq(cur.f[TM_CF_NAME].value, "Ana");
    cr_assert_str_eq(cur.f[TM_CF_EMAIL].value, "ana@example.cl");
}
