/* catalogue.c - the ERP's catalogue pages (GET /catalogue, docs/erp.md):
 * parsed and checked whole, so that a page with one bad product is refused
 * before anything of it reaches a till.
 *
 * Unknown keys are ignored here (unlike the POS API): an ERP that adds a
 * field must not stop every store's price updates. */
#include "tm_record.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MAX      64
#define PATH(buf, ...) snprintf((buf), sizeof(buf), __VA_ARGS__)

void tm_catalogue_page_free(tm_catalogue_page_t *p)
{
    if (!p)
        return;
    free(p->items);
    memset(p, 0, sizeof *p);
}

static bool s_printable_token(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

static bool s_barcode_ok(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s))
            return false;
    return true;
}

int tm_product_validate(const tm_product_t *p, const char *pre, tm_field_errors_t *errs)
{
    size_t before = errs->n + errs->n_dropped;
    char f[FIELD_MAX + 32]; /* room for PRE + ".barcodes[N]" */
    if (!p->sku[0] || !s_printable_token(p->sku)) {
        PATH(f, "%s.sku", pre);
        tm_field_errors_add(errs, f, "format", "sku must be 1..%d characters without spaces",
                            TM_SKU_MAX - 1);
    }
    if (p->version < 1) {
        PATH(f, "%s.version", pre);
        tm_field_errors_add(errs, f, "range", "version must be a positive integer");
    }
    if (p->deleted)
        return errs->n + errs->n_dropped > before ? TM_EVALIDATE : TM_OK;
    if (!p->name[0]) {
        PATH(f, "%s.name", pre);
        tm_field_errors_add(errs, f, "required", "name must not be empty");
    }
    if (p->unit_price < 0 || p->unit_price > TM_MONEY_MAX) {
        PATH(f, "%s.unit_price", pre);
        tm_field_errors_add(errs, f, "range", "unit_price must be 0..%lld minor units",
                            (long long)TM_MONEY_MAX);
    }
    if (p->tax_rate < 0 || p->tax_rate > TM_TAX_RATE_MAX) {
        PATH(f, "%s.tax_rate", pre);
        tm_field_errors_add(errs, f, "range", "tax_rate must be 0..%d basis points",
                            TM_TAX_RATE_MAX);
    }
    for (size_t i = 0; i < p->n_barcodes; i++) {
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup |= strcmp(p->barcodes[i], p->barcodes[j]) == 0;
        if (!p->barcodes[i][0] || !s_barcode_ok(p->barcodes[i]) || dup) {
            PATH(f, "%s.barcodes[%zu]", pre, i);
            tm_field_errors_add(errs, f, "format",
                                "a barcode is 1..%d letters or digits, once per product",
                                TM_BARCODE_MAX - 1);
        }
    }
    return errs->n + errs->n_dropped > before ? TM_EVALIDATE : TM_OK;
}

/* ---- parsing ---------------------------------------------------------- */

static bool s_str(json_t *o, const char *key, const char *pre, char *dst, size_t sz, bool required,
                  tm_field_errors_t *errs)
{
    char f[FIELD_MAX + 32]; /* room for PRE + ".barcodes[N]" */
    json_t *v = json_object_get(o, key);
    PATH(f, "%s.%s", pre, key);
    if (!v) {
        if (required)
            tm_field_errors_add(errs, f, "required", "%s is missing", f);
        return !required;
    }
    if (!json_is_string(v) || json_string_length(v) >= sz) {
        tm_field_errors_add(errs, f, "type", "%s must be a string of at most %zu bytes", f, sz - 1);
        return false;
    }
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    if (strlen(dst) != json_string_length(v)) {
        tm_field_errors_add(errs, f, "format", "%s holds a NUL byte", f);
        return false;
    }
    return true;
}

static bool s_int(json_t *o, const char *key, const char *pre, int64_t min, int64_t max,
                  int64_t *dst, tm_field_errors_t *errs)
{
    char f[FIELD_MAX + 32]; /* room for PRE + ".barcodes[N]" */
    json_t *v = json_object_get(o, key);
    PATH(f, "%s.%s", pre, key);
    if (!v || !json_is_integer(v)) {
        tm_field_errors_add(errs, f, v ? "type" : "required", "%s must be an integer", f);
        return false;
    }
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) {
        tm_field_errors_add(errs, f, "range", "%s must be %lld..%lld", f, (long long)min,
                            (long long)max);
        return false;
    }
    *dst = (int64_t)n;
    return true;
}

static void s_product(json_t *o, const char *pre, bool deleted, tm_product_t *p,
                      tm_field_errors_t *errs)
{
    int64_t n = 0;
    if (!json_is_object(o)) {
        tm_field_errors_add(errs, pre, "type", "%s must be an object", pre);
        return;
    }
    p->deleted = deleted;
    s_str(o, "sku", pre, p->sku, sizeof p->sku, true, errs);
    if (s_int(o, "version", pre, 1, INT64_MAX, &n, errs))
        p->version = (uint64_t)n;
    if (deleted)
        goto check;
    s_str(o, "name", pre, p->name, sizeof p->name, true, errs);
    s_str(o, "uom", pre, p->uom, sizeof p->uom, false, errs);
    if (s_int(o, "unit_price", pre, 0, TM_MONEY_MAX, &n, errs))
        p->unit_price = n;
    if (s_int(o, "tax_rate", pre, 0, TM_TAX_RATE_MAX, &n, errs))
        p->tax_rate = (int32_t)n;
    json_t *act = json_object_get(o, "active");
    char f[FIELD_MAX + 32]; /* room for PRE + ".barcodes[N]" */
    PATH(f, "%s.active", pre);
    if (!act)
        p->active = true;
    else if (json_is_boolean(act))
        p->active = json_is_true(act);
    else
        tm_field_errors_add(errs, f, "type", "%s must be a boolean", f);
    json_t *bc = json_object_get(o, "barcodes");
    PATH(f, "%s.barcodes", pre);
    if (bc && (!json_is_array(bc) || json_array_size(bc) > TM_PRODUCT_BARCODES)) {
        tm_field_errors_add(errs, f, "type", "%s must be an array of at most %d strings", f,
                            TM_PRODUCT_BARCODES);
    } else if (bc) {
        size_t i;
        json_t *b;
        json_array_foreach (bc, i, b) {
            if (!json_is_string(b) || json_string_length(b) >= TM_BARCODE_MAX) {
                PATH(f, "%s.barcodes[%zu]", pre, i);
                tm_field_errors_add(errs, f, "type", "%s must be a string of at most %d bytes", f,
                                    TM_BARCODE_MAX - 1);
                continue;
            }
            tm_strlcpy(p->barcodes[p->n_barcodes++], json_string_value(b), TM_BARCODE_MAX);
        }
    }
check:
    (void)tm_product_validate(p, pre, errs);
}

static int s_list(json_t *root, const char *key, bool deleted, tm_catalogue_page_t *out,
                  size_t max_items, tm_field_errors_t *errs)
{
    json_t *arr = json_object_get(root, key);
    if (!arr)
        return TM_OK; /* an empty list may be left out */
    if (!json_is_array(arr)) {
        tm_field_errors_add(errs, key, "type", "%s must be an array", key);
        return TM_OK;
    }
    if (out->n + json_array_size(arr) > max_items) {
        tm_field_errors_add(errs, key, "range", "the page holds more than the %zu items asked for",
                            max_items);
        return TM_OK;
    }
    size_t i;
    json_t *o;
    json_array_foreach (arr, i, o) {
        char pre[FIELD_MAX];
        PATH(pre, "%s[%zu]", key, i);
        tm_product_t *p = &out->items[out->n++];
        memset(p, 0, sizeof *p);
        s_product(o, pre, deleted, p, errs);
        if (p->version > out->version)
            out->version = p->version;
    }
    return TM_OK;
}

int tm_catalogue_page_from_json(const char *buf, size_t len, size_t max_items,
                                tm_catalogue_page_t *out, tm_field_errors_t *errs)
{
    int rc = TM_EVALIDATE;
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    tm_field_errors_init(errs);
    if (max_items == 0 || max_items > TM_CATALOGUE_PAGE_MAX)
        max_items = TM_CATALOGUE_PAGE_MAX;
    json_t *root = buf ? json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!root) {
        tm_field_errors_add(errs, "", "json", "line %d column %d: %s", buf ? jerr.line : 0,
                            buf ? jerr.column : 0, buf ? jerr.text : "no body");
        return TM_EJSON;
    }
    if (!json_is_object(root)) {
        tm_field_errors_add(errs, "", "type", "the answer must be a JSON object");
        goto done;
    }
    if (!(out->items = calloc(max_items, sizeof *out->items))) {
        rc = TM_ENOMEM;
        goto done;
    }
    s_list(root, "products", false, out, max_items, errs);
    s_list(root, "deletions", true, out, max_items, errs);
    s_str(root, "next_cursor", "page", out->cursor, sizeof out->cursor, true, errs);
    if (!out->cursor[0] && !errs->n)
        tm_field_errors_add(errs, "next_cursor", "required", "next_cursor must not be empty");
    json_t *more = json_object_get(root, "more");
    if (more && !json_is_boolean(more))
        tm_field_errors_add(errs, "more", "type", "more must be a boolean");
    out->more = more && json_is_true(more);
    /* One sku twice in a page: which one the ERP meant is a guess. */
    for (size_t i = 0; i < out->n && errs->n < TM_FIELD_ERRORS_MAX; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->items[i].sku, out->items[j].sku) == 0) {
                tm_field_errors_add(errs, "products", "duplicate", "sku %s appears twice",
                                    out->items[i].sku);
                break;
            }
    rc = errs->n || errs->n_dropped ? TM_EVALIDATE : TM_OK;
done:
    json_decref(root);
    if (rc)
        tm_catalogue_page_free(out);
    return rc;
}

char *tm_product_to_json(const tm_product_t *p)
{
    json_t *o = json_object(), *bc = json_array();
    char *s = NULL;
    if (!o || !bc)
        goto done;
    for (size_t i = 0; i < p->n_barcodes; i++)
        if (json_array_append_new(bc, json_string(p->barcodes[i])))
            goto done;
    int bad = json_object_set_new(o, "sku", json_string(p->sku));
    bad |= json_object_set_new(o, "name", json_string(p->name));
    bad |= json_object_set_new(o, "uom", json_string(p->uom));
    bad |= json_object_set_new(o, "unit_price", json_integer(p->unit_price));
    bad |= json_object_set_new(o, "tax_rate", json_integer(p->tax_rate));
    bad |= json_object_set(o, "barcodes", bc);
    bad |= json_object_set_new(o, "active", json_boolean(p->active));
    bad |= json_object_set_new(o, "version", json_integer((json_int_t)p->version));
    if (!bad)
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(bc);
    json_decref(o);
    return s;
}
