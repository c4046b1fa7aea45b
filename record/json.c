/* json.c - sales and customer patches from and to JSON (jansson).
 *
 * Decoding is strict on purpose: a POS integration that sends 10.5 for a
 * price, a misspelt key or an over-long string gets told so, field by field,
 * instead of having the value rounded, dropped or cut. */
#include "tm_record.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MAX 64 /* sizeof tm_field_error_t.field */

/* ---- decoding helpers ------------------------------------------------- */

/*
 * Parses buf into an object. Duplicate keys are refused: with two "total"s
 * the till and the ERP could each believe a different one. Any top-level
 * value is decoded so that `[1]` or `"x"` is reported as a wrong type, not as
 * malformed JSON.
 */
static json_t *load_object(const char *buf, size_t len, tm_field_errors_t *errs, int *rc)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        tm_field_errors_add(errs, "", "json", "line %d column %d: %s", jerr.line, jerr.column,
                            jerr.text);
        *rc = TM_EJSON;
        return NULL;
    }
    if (!json_is_object(root)) {
        tm_field_errors_add(errs, "", "type", "the body must be a JSON object");
        json_decref(root);
        *rc = TM_EVALIDATE;
        return NULL;
    }
    *rc = TM_OK;
    return root;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a decimal number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Copies a JSON string into dst; never truncates. */
static bool get_string(const json_t *v, const char *field, char *dst, size_t size,
                       tm_field_errors_t *errs)
{
    if (!json_is_string(v)) {
        tm_field_errors_add(errs, field, "type", "%s must be a string, not %s", field,
                            type_name(v));
        return false;
    }
    size_t len = json_string_length(v);
    if (len >= size) {
        tm_field_errors_add(errs, field, "length", "%s is longer than %zu bytes", field, size - 1);
        return false;
    }
    memcpy(dst, json_string_value(v), len + 1);
    return true;
}

/* Reads a JSON integer within [min, max]. Decimals are refused rather than
 * rounded: money is counted in minor units and quantities in thousandths. */
static bool get_int(const json_t *v, const char *field, int64_t min, int64_t max, int64_t *dst,
                    tm_field_errors_t *errs)
{
    if (!json_is_integer(v)) {
        tm_field_errors_add(errs, field, "type", "%s must be an integer, not %s", field,
                            type_name(v));
        return false;
    }
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) {
        tm_field_errors_add(errs, field, "range", "%s must be %lld..%lld", field, (long long)min,
                            (long long)max);
        return false;
    }
    *dst = (int64_t)n;
    return true;
}

static void unknown_key(const char *field, tm_field_errors_t *errs)
{
    tm_field_errors_add(errs, field, "unknown", "unknown field %s", field);
}

static void missing(const char *field, tm_field_errors_t *errs)
{
    tm_field_errors_add(errs, field, "required", "%s is missing", field);
}

/* Builds "prefix.key" or "prefix[i].key" paths; cut to FIELD_MAX-1 bytes
 * when a client sends an absurdly long unknown key. */
#define PATH(buf, ...) snprintf((buf), sizeof(buf), __VA_ARGS__)

/*
 * Whether a bad customer id failed on its shape or only on its check digit,
 * so the cashier is told "mistyped" rather than "malformed". The public API
 * only says TM_EVALIDATE; an id whose last character, replaced by some
 * check digit, normalises, is well formed.
 */
static const char *id_error_rule(const char *raw, tm_id_type_t type)
{
    char probe[64], canon[TM_CUST_ID_MAX];
    size_t len = strlen(raw);
    if (type != TM_IDTYPE_RUT || len == 0 || len >= sizeof probe)
        return "format";
    memcpy(probe, raw, len + 1);
    for (const char *dv = "0123456789K"; *dv; dv++) {
        probe[len - 1] = *dv;
        if (tm_rut_normalise(probe, canon, sizeof canon) == TM_OK)
            return "check_digit";
    }
    return "format";
}

/* ---- sales: decoding -------------------------------------------------- */

enum { LINE_SKU = 1, LINE_NAME = 2, LINE_QTY = 4, LINE_PRICE = 8, LINE_TAX = 16 };

static void parse_line(json_t *o, size_t i, tm_sale_line_t *l, tm_field_errors_t *errs)
{
    char f[FIELD_MAX];
    if (!json_is_object(o)) {
        PATH(f, "lines[%zu]", i);
        tm_field_errors_add(errs, f, "type", "%s must be an object", f);
        return;
    }
    const char *key;
    json_t *v;
    unsigned seen = 0;
    int64_t rate;
    json_object_foreach (o, key, v) {
        PATH(f, "lines[%zu].%s", i, key);
        if (strcmp(key, "sku") == 0) {
            seen |= LINE_SKU;
            get_string(v, f, l->sku, sizeof l->sku, errs);
        } else if (strcmp(key, "name") == 0) {
            seen |= LINE_NAME;
            get_string(v, f, l->name, sizeof l->name, errs);
        } else if (strcmp(key, "qty") == 0) {
            seen |= LINE_QTY;
            get_int(v, f, INT64_MIN, INT64_MAX, &l->qty, errs);
        } else if (strcmp(key, "unit_price") == 0) {
            seen |= LINE_PRICE;
            get_int(v, f, INT64_MIN, INT64_MAX, &l->unit_price, errs);
        } else if (strcmp(key, "discount") == 0) {
            get_int(v, f, INT64_MIN, INT64_MAX, &l->discount, errs);
        } else if (strcmp(key, "tax_rate") == 0) {
            seen |= LINE_TAX;
            if (get_int(v, f, INT32_MIN, INT32_MAX, &rate, errs))
                l->tax_rate = (int32_t)rate;
        } else if (strcmp(key, "catalogue_version") == 0) {
            /* Set by the till that priced the line, never taken from the
             * POS; read so that a sale read back round-trips. */
        } else {
            unknown_key(f, errs);
        }
    }
    /* No price: the till prices the line from its catalogue, and fills
     * what else the line leaves out. */
    if (!(seen & LINE_PRICE)) {
        l->fill = TM_LINE_FILL_PRICE | (seen & LINE_NAME ? 0 : TM_LINE_FILL_NAME) |
                  (seen & LINE_TAX ? 0 : TM_LINE_FILL_TAX);
        seen |= LINE_PRICE | LINE_NAME;
    }
    static const struct {
        unsigned bit;
        const char *key;
    } required[] = {
        {LINE_SKU, "sku"}, {LINE_NAME, "name"}, {LINE_QTY, "qty"}, {LINE_PRICE, "unit_price"}};
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
        if (!(seen & required[k].bit)) {
            PATH(f, "lines[%zu].%s", i, required[k].key);
            missing(f, errs);
        }
    }
}

static bool parse_method(const json_t *v, const char *field, tm_pay_method_t *out,
                         tm_field_errors_t *errs)
{
    char m[8];
    if (!get_string(v, field, m, sizeof m, errs))
        return false;
    if (strcmp(m, "cash") == 0)
        *out = TM_PAY_CASH;
    else if (strcmp(m, "card") == 0)
        *out = TM_PAY_CARD;
    else if (strcmp(m, "other") == 0)
        *out = TM_PAY_OTHER;
    else {
        tm_field_errors_add(errs, field, "format", "method must be cash, card or other");
        return false;
    }
    return true;
}

static void parse_payment(json_t *o, size_t i, tm_payment_t *p, tm_field_errors_t *errs)
{
    char f[FIELD_MAX];
    if (!json_is_object(o)) {
        PATH(f, "payments[%zu]", i);
        tm_field_errors_add(errs, f, "type", "%s must be an object", f);
        return;
    }
    const char *key;
    json_t *v;
    bool has_method = false, has_amount = false;
    json_object_foreach (o, key, v) {
        PATH(f, "payments[%zu].%s", i, key);
        if (strcmp(key, "method") == 0) {
            has_method = true;
            parse_method(v, f, &p->method, errs);
        } else if (strcmp(key, "amount") == 0) {
            has_amount = true;
            get_int(v, f, INT64_MIN, INT64_MAX, &p->amount, errs);
        } else if (strcmp(key, "reference") == 0) {
            get_string(v, f, p->reference, sizeof p->reference, errs);
        } else {
            unknown_key(f, errs);
        }
    }
    if (!has_method) {
        PATH(f, "payments[%zu].method", i);
        missing(f, errs);
    }
    if (!has_amount) {
        PATH(f, "payments[%zu].amount", i);
        missing(f, errs);
    }
}

/* Reads a bounded array: checks the type and size before allocating. */
static void *parse_array(const json_t *v, const char *field, size_t max, size_t elem_size,
                         size_t *n, tm_field_errors_t *errs, int *rc)
{
    *n = 0;
    if (!json_is_array(v)) {
        tm_field_errors_add(errs, field, "type", "%s must be an array, not %s", field,
                            type_name(v));
        return NULL;
    }
    size_t size = json_array_size(v);
    if (size > max) {
        tm_field_errors_add(errs, field, "range", "%s has %zu entries; at most %zu allowed", field,
                            size, max);
        return NULL;
    }
    if (size == 0)
        return NULL;
    void *arr = calloc(size, elem_size);
    if (!arr) {
        *rc = TM_ENOMEM;
        return NULL;
    }
    *n = size;
    return arr;
}

static int parse_lines(const json_t *v, tm_sale_t *out, tm_field_errors_t *errs)
{
    int rc = TM_OK;
    out->lines =
        parse_array(v, "lines", TM_SALE_MAX_LINES, sizeof *out->lines, &out->n_lines, errs, &rc);
    for (size_t i = 0; i < out->n_lines; i++)
        parse_line(json_array_get(v, i), i, &out->lines[i], errs);
    return rc;
}

static int parse_payments(const json_t *v, tm_sale_t *out, tm_field_errors_t *errs)
{
    int rc = TM_OK;
    out->payments = parse_array(v, "payments", TM_SALE_MAX_PAYMENTS, sizeof *out->payments,
                                &out->n_payments, errs, &rc);
    for (size_t i = 0; i < out->n_payments; i++)
        parse_payment(json_array_get(v, i), i, &out->payments[i], errs);
    return rc;
}

/* Normalises a customer id read from JSON in place, reporting under field. */
static void normalise_id(char *id, size_t idsz, tm_id_type_t type, const char *field,
                         tm_field_errors_t *errs)
{
    char canon[TM_CUST_ID_MAX];
    if (tm_customer_id_normalise(id, type, canon, sizeof canon) == TM_OK) {
        tm_strlcpy(id, canon, idsz);
        return;
    }
    const char *rule = id_error_rule(id, type);
    if (strcmp(rule, "check_digit") == 0)
        tm_field_errors_add(errs, field, rule,
                            "the RUT check digit does not match; was it mistyped?");
    else
        tm_field_errors_add(errs, field, rule, "not a valid %s", tm_id_type_name(type));
}

static void parse_customer(json_t *o, tm_sale_t *out, tm_field_errors_t *errs)
{
    if (!json_is_object(o)) {
        tm_field_errors_add(errs, "customer", "type", "customer must be an object, not %s",
                            type_name(o));
        return;
    }
    const json_t *id = json_object_get(o, "id");
    const json_t *type = json_object_get(o, "id_type");
    const json_t *email = json_object_get(o, "email");
    const char *key;
    json_t *v;
    char f[FIELD_MAX];
    json_object_foreach (o, key, v) {
        if (strcmp(key, "id") != 0 && strcmp(key, "id_type") != 0 && strcmp(key, "email") != 0) {
            PATH(f, "customer.%s", key);
            unknown_key(f, errs);
        }
    }
    out->has_customer = true;
    out->customer_id_type = TM_IDTYPE_RUT;
    char tname[32];
    bool type_ok = true;
    if (type && (type_ok = get_string(type, "customer.id_type", tname, sizeof tname, errs)) &&
        tm_id_type_parse(tname, &out->customer_id_type) != TM_OK) {
        tm_field_errors_add(errs, "customer.id_type", "format", "id_type must be rut or dni");
        type_ok = false;
    }
    if (!id)
        missing("customer.id", errs);
    else if (get_string(id, "customer.id", out->customer_id, sizeof out->customer_id, errs) &&
             type_ok)
        normalise_id(out->customer_id, sizeof out->customer_id, out->customer_id_type,
                     "customer.id", errs);
    if (email &&
        get_string(email, "customer.email", out->customer_email, sizeof out->customer_email,
                   errs) &&
        !tm_email_valid(out->customer_email))
        tm_field_errors_add(errs, "customer.email", "format", "not a valid e-mail address");
}

enum { SALE_CURRENCY = 1, SALE_LINES = 2, SALE_TOTAL = 4, SALE_PAYMENTS = 8 };

/* One top-level key; returns TM_ENOMEM or TM_OK, recording errors in errs. */
static int parse_sale_key(const char *key, json_t *v, tm_sale_t *out, unsigned *seen,
                          tm_field_errors_t *errs)
{
    int64_t n;
    if (strcmp(key, "sale_id") == 0) {
        get_string(v, key, out->sale_id, sizeof out->sale_id, errs);
    } else if (strcmp(key, "till") == 0) {
        get_string(v, key, out->till, sizeof out->till, errs);
    } else if (strcmp(key, "receipt_no") == 0) {
        if (get_int(v, key, 1, INT64_MAX, &n, errs))
            out->receipt_no = (uint64_t)n;
    } else if (strcmp(key, "created_at") == 0) {
        get_string(v, key, out->created_at, sizeof out->created_at, errs);
    } else if (strcmp(key, "currency") == 0) {
        *seen |= SALE_CURRENCY;
        get_string(v, key, out->currency, sizeof out->currency, errs);
    } else if (strcmp(key, "lines") == 0) {
        *seen |= SALE_LINES;
        return parse_lines(v, out, errs);
    } else if (strcmp(key, "total") == 0) {
        *seen |= SALE_TOTAL;
        get_int(v, key, INT64_MIN, INT64_MAX, &out->total, errs);
    } else if (strcmp(key, "payments") == 0) {
        *seen |= SALE_PAYMENTS;
        return parse_payments(v, out, errs);
    } else if (strcmp(key, "customer") == 0) {
        parse_customer(v, out, errs);
    } else if (strcmp(key, "refund_of") == 0) {
        get_string(v, key, out->refund_of, sizeof out->refund_of, errs);
    } else if (strcmp(key, "clock") == 0) {
        /* The till's own judgement of its clock: set by the till, so a POS
         * that sends back a sale it read is not refused, but not believed. */
    } else if (strcmp(key, "review") == 0) {
        /* Read so that a sale read back from a till round-trips; the till
         * that stores a sale sets the flag itself. */
        char name[24];
        if (get_string(v, key, name, sizeof name, errs) &&
            tm_review_parse(name, &out->review) != TM_OK)
            tm_field_errors_add(errs, key, "format",
                                "review must be \"over_refund\" or \"original_unknown\"");
    } else {
        char f[FIELD_MAX];
        PATH(f, "%s", key);
        unknown_key(f, errs);
    }
    return TM_OK;
}

int tm_sale_from_json(const char *buf, size_t len, tm_sale_t *out, tm_field_errors_t *errs)
{
    int rc;
    memset(out, 0, sizeof *out);
    tm_field_errors_init(errs);
    if (!buf)
        return TM_EINVAL;
    json_t *root = load_object(buf, len, errs, &rc);
    if (!root)
        return rc;
    const char *key;
    json_t *v;
    unsigned seen = 0;
    json_object_foreach (root, key, v) {
        if ((rc = parse_sale_key(key, v, out, &seen, errs)))
            goto done;
    }
    if (!(seen & SALE_CURRENCY))
        missing("currency", errs);
    if (!(seen & SALE_LINES))
        missing("lines", errs);
    bool priced_here = false;
    for (size_t i = 0; i < out->n_lines; i++)
        priced_here |= (out->lines[i].fill & TM_LINE_FILL_PRICE) != 0;
    /* A POS that leaves a price to the till cannot know the total. */
    if (!(seen & SALE_TOTAL) && priced_here)
        out->fill_total = true;
    else if (!(seen & SALE_TOTAL))
        missing("total", errs);
    if (!(seen & SALE_PAYMENTS))
        missing("payments", errs);
    rc = errs->n || errs->n_dropped ? TM_EVALIDATE : TM_OK;
done:
    json_decref(root);
    if (rc)
        tm_sale_free(out);
    return rc;
}

/* ---- sales: encoding -------------------------------------------------- */

static const char *method_name(tm_pay_method_t m)
{
    switch (m) {
    case TM_PAY_CASH: return "cash";
    case TM_PAY_CARD: return "card";
    case TM_PAY_OTHER: return "other";
    }
    return NULL; /* json_string(NULL) fails, and so does the encoding */
}

/* json_object_set_new() takes ownership even when it fails (it decrefs a
 * non-NULL value), so chains of `bad |= set(...)` never leak. */
static int set(json_t *o, const char *key, json_t *v)
{
    return json_object_set_new(o, key, v);
}

static json_t *line_to_json(const tm_sale_line_t *l)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = set(o, "sku", json_string(l->sku));
    bad |= set(o, "name", json_string(l->name));
    bad |= set(o, "qty", json_integer(l->qty));
    bad |= set(o, "unit_price", json_integer(l->unit_price));
    bad |= set(o, "discount", json_integer(l->discount));
    bad |= set(o, "tax_rate", json_integer(l->tax_rate));
    if (l->catalogue_version)
        bad |= set(o, "catalogue_version", json_integer((json_int_t)l->catalogue_version));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *payment_to_json(const tm_payment_t *p)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = set(o, "method", json_string(method_name(p->method)));
    bad |= set(o, "amount", json_integer(p->amount));
    if (p->reference[0])
        bad |= set(o, "reference", json_string(p->reference));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *customer_ref_to_json(const tm_sale_t *s)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = set(o, "id", json_string(s->customer_id));
    bad |= set(o, "id_type", json_string(tm_id_type_name(s->customer_id_type)));
    if (s->customer_email[0])
        bad |= set(o, "email", json_string(s->customer_email));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Fields the till fills in are left out while still empty, so that a
 * partial sale round-trips through tm_sale_from_json(). */
static int header_to_json(json_t *o, const tm_sale_t *s)
{
    int bad = 0;
    if (s->sale_id[0])
        bad |= set(o, "sale_id", json_string(s->sale_id));
    if (s->till[0])
        bad |= set(o, "till", json_string(s->till));
    if (s->receipt_no > (uint64_t)INT64_MAX)
        return -1; /* not representable as a JSON integer here */
    if (s->receipt_no)
        bad |= set(o, "receipt_no", json_integer((json_int_t)s->receipt_no));
    if (s->created_at[0])
        bad |= set(o, "created_at", json_string(s->created_at));
    bad |= set(o, "currency", json_string(s->currency));
    return bad;
}

char *tm_sale_to_json(const tm_sale_t *s)
{
    char *out = NULL;
    json_t *o = json_object();
    json_t *lines = json_array();
    json_t *pays = json_array();
    if (!o || !lines || !pays)
        goto done;
    int bad = header_to_json(o, s);
    for (size_t i = 0; i < s->n_lines; i++)
        bad |= json_array_append_new(lines, line_to_json(&s->lines[i]));
    bad |= json_object_set(o, "lines", lines);
    bad |= set(o, "total", json_integer(s->total));
    for (size_t i = 0; i < s->n_payments; i++)
        bad |= json_array_append_new(pays, payment_to_json(&s->payments[i]));
    bad |= json_object_set(o, "payments", pays);
    if (s->has_customer)
        bad |= set(o, "customer", customer_ref_to_json(s));
    if (s->refund_of[0])
        bad |= set(o, "refund_of", json_string(s->refund_of));
    if (tm_review_name(s->review)[0])
        bad |= set(o, "review", json_string(tm_review_name(s->review)));
    if (s->has_clock)
        bad |= set(o, "clock",
                   json_pack("{s:I, s:b}", "offset_ms", (json_int_t)s->clock_offset_ms, "skewed",
                             s->clock_skewed));
    if (!bad)
        out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(pays);
    json_decref(lines);
    json_decref(o);
    return out;
}

/* ---- customers -------------------------------------------------------- */

/* Digits, spaces, + - ( ); 6..20 characters: "+56 9 1234 5678". */
static bool phone_valid(const char *s)
{
    size_t len = strlen(s);
    if (len < 6 || len > 20)
        return false;
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || strchr(" +-()", *s)))
            return false;
    }
    return true;
}

/* Free text (names, loyalty ids) may be any UTF-8 but no control
 * characters, which would corrupt receipts, logs and CSV exports. */
static bool text_valid(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

static void parse_cust_field(tm_cust_field_t f, const json_t *v, tm_cust_value_t *out,
                             tm_field_errors_t *errs)
{
    const char *name = tm_cust_field_name(f);
    if (tm_cust_field_is_bool(f)) {
        if (!json_is_boolean(v)) {
            tm_field_errors_add(errs, name, "type", "%s must be true or false, not %s", name,
                                type_name(v));
            return;
        }
        tm_strlcpy(out->value, json_is_true(v) ? "true" : "false", sizeof out->value);
        out->set = true;
        return;
    }
    if (!get_string(v, name, out->value, sizeof out->value, errs))
        return;
    if (f == TM_CF_EMAIL && !tm_email_valid(out->value))
        tm_field_errors_add(errs, name, "format", "not a valid e-mail address");
    else if (f == TM_CF_PHONE && !phone_valid(out->value))
        tm_field_errors_add(errs, name, "format",
                            "phone must be 6..20 digits, spaces, +, -, ( or )");
    else if (!text_valid(out->value))
        tm_field_errors_add(errs, name, "format", "%s must not contain control characters", name);
    else
        out->set = true;
}

/* Reads "id_type" (default rut) and normalises the id from the URL. */
static void patch_id(const char *path_id, const json_t *root, tm_customer_t *out,
                     tm_field_errors_t *errs)
{
    const json_t *t = json_object_get(root, "id_type");
    char tname[32];
    out->id_type = TM_IDTYPE_RUT;
    if (t) {
        if (!get_string(t, "id_type", tname, sizeof tname, errs))
            return;
        if (tm_id_type_parse(tname, &out->id_type) != TM_OK) {
            tm_field_errors_add(errs, "id_type", "format", "id_type must be rut or dni");
            return;
        }
    }
    if (strlen(path_id) >= sizeof out->id) {
        tm_field_errors_add(errs, "id", "length", "id is longer than %zu bytes",
                            sizeof out->id - 1);
        return;
    }
    tm_strlcpy(out->id, path_id, sizeof out->id);
    normalise_id(out->id, sizeof out->id, out->id_type, "id", errs);
}

int tm_customer_patch_from_json(const char *path_id, const char *buf, size_t len,
                                tm_customer_t *out, tm_field_errors_t *errs)
{
    int rc;
    memset(out, 0, sizeof *out);
    tm_field_errors_init(errs);
    if (!path_id || !buf)
        return TM_EINVAL;
    json_t *root = load_object(buf, len, errs, &rc);
    if (!root)
        return rc;
    patch_id(path_id, root, out, errs);
    const char *key;
    json_t *v;
    size_t fields = 0;
    json_object_foreach (root, key, v) {
        if (strcmp(key, "id_type") == 0)
            continue;
        int f = 0;
        while (f < TM_CF_COUNT && strcmp(key, tm_cust_field_name((tm_cust_field_t)f)) != 0)
            f++;
        char path[FIELD_MAX];
        PATH(path, "%s", key);
        if (f == TM_CF_COUNT) {
            unknown_key(path, errs);
            continue;
        }
        fields++;
        parse_cust_field((tm_cust_field_t)f, v, &out->f[f], errs);
    }
    if (fields == 0)
        tm_field_errors_add(errs, "", "required", "nothing to update");
    rc = errs->n || errs->n_dropped ? TM_EVALIDATE : TM_OK;
    json_decref(root);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

char *tm_customer_to_json(const tm_customer_t *c)
{
    char *out = NULL;
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = set(o, "id", json_string(c->id));
    bad |= set(o, "id_type", json_string(tm_id_type_name(c->id_type)));
    for (int f = 0; f < TM_CF_COUNT; f++) {
        const tm_cust_value_t *v = &c->f[f];
        if (!v->set)
            continue;
        json_t *jv = tm_cust_field_is_bool((tm_cust_field_t)f)
                         ? json_boolean(strcmp(v->value, "true") == 0)
                         : json_string(v->value);
        bad |= set(o, tm_cust_field_name((tm_cust_field_t)f), jv);
    }
    if (!bad)
        out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return out;
}
