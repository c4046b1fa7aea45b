/* record.c - field errors, id types, customer field names and the
 * last-writer-wins merge of customers. */
#include "tm_record.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- field errors ----------------------------------------------------- */

void tm_field_errors_init(tm_field_errors_t *errs)
{
    memset(errs, 0, sizeof *errs);
}

void tm_field_errors_add(tm_field_errors_t *errs, const char *field, const char *rule,
                         const char *fmt, ...)
{
    /* A hostile body can break every rule at once; keep the first few and
     * count the rest rather than grow without bound. */
    if (errs->n >= TM_FIELD_ERRORS_MAX) {
        errs->n_dropped++;
        return;
    }
    tm_field_error_t *e = &errs->e[errs->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    tm_strlcpy(e->field, field ? field : "", sizeof e->field);
    tm_strlcpy(e->rule, rule ? rule : "", sizeof e->rule);
}

/* Field names and messages may quote user input cut at a byte boundary;
 * jansson refuses invalid UTF-8, so fall back to a placeholder rather than
 * lose the whole error list. */
static json_t *safe_string(const char *s)
{
    json_t *v = json_string(s);
    return v ? v : json_string("(not valid UTF-8)");
}

char *tm_field_errors_to_json(const tm_field_errors_t *errs)
{
    char *out = NULL;
    json_t *root = json_object();
    json_t *fields = json_array();
    if (!root || !fields)
        goto done;
    int bad = json_object_set_new(root, "error", json_string("validation"));
    for (size_t i = 0; i < errs->n && i < TM_FIELD_ERRORS_MAX; i++) {
        const tm_field_error_t *e = &errs->e[i];
        json_t *o = json_object();
        if (!o) {
            bad = -1;
            break;
        }
        bad |= json_object_set_new(o, "field", safe_string(e->field));
        bad |= json_object_set_new(o, "rule", safe_string(e->rule));
        bad |= json_object_set_new(o, "message", safe_string(e->message));
        bad |= json_array_append_new(fields, o);
    }
    bad |= json_object_set(root, "fields", fields);
    if (errs->n_dropped)
        bad |= json_object_set_new(root, "dropped", json_integer((json_int_t)errs->n_dropped));
    if (!bad)
        out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(fields);
    json_decref(root);
    return out;
}

/* ---- id types --------------------------------------------------------- */

int tm_id_type_parse(const char *s, tm_id_type_t *out)
{
    if (s && strcmp(s, "rut") == 0) {
        *out = TM_IDTYPE_RUT;
        return TM_OK;
    }
    if (s && strcmp(s, "dni") == 0) {
        *out = TM_IDTYPE_DNI;
        return TM_OK;
    }
    return TM_EINVAL;
}

const char *tm_id_type_name(tm_id_type_t t)
{
    switch (t) {
    case TM_IDTYPE_RUT: return "rut";
    case TM_IDTYPE_DNI: return "dni";
    case TM_IDTYPE_NONE: break;
    }
    return "none";
}

/* ---- customers -------------------------------------------------------- */

static const char *const cust_field_names[TM_CF_COUNT] = {
    [TM_CF_NAME] = "name",
    [TM_CF_EMAIL] = "email",
    [TM_CF_PHONE] = "phone",
    [TM_CF_OFFERS_OPT_IN] = "offers_opt_in",
    [TM_CF_LOYALTY_PROGRAM] = "loyalty_program",
    [TM_CF_LOYALTY_NUMBER] = "loyalty_number",
    [TM_CF_ERASED] = "erased",
};

const char *tm_cust_field_name(tm_cust_field_t f)
{
    if ((unsigned)f >= TM_CF_COUNT)
        return "?";
    return cust_field_names[f];
}

bool tm_cust_field_is_bool(tm_cust_field_t f)
{
    return f == TM_CF_OFFERS_OPT_IN || f == TM_CF_ERASED;
}

void tm_customer_stamp(tm_customer_t *patch, uint64_t hlc, const uint8_t node[TM_NODE_ID_LEN])
{
    for (int i = 0; i < TM_CF_COUNT; i++) {
        tm_cust_value_t *v = &patch->f[i];
        if (!v->set)
            continue;
        v->hlc = hlc;
        memcpy(v->node, node, TM_NODE_ID_LEN);
    }
}

/*
 * Total order on register values: (hlc, node id), then the value itself.
 * Two writes never share a stamp in a healthy mesh, but a buggy or replayed
 * peer could send one; comparing the value as well makes the merge a true
 * maximum, so every replica still picks the same winner.
 */
static int cust_value_cmp(const tm_cust_value_t *a, const tm_cust_value_t *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    int c = memcmp(a->node, b->node, TM_NODE_ID_LEN);
    if (c)
        return c;
    return strncmp(a->value, b->value, sizeof a->value);
}

void tm_customer_merge(tm_customer_t *cur, const tm_customer_t *patch)
{
    for (int i = 0; i < TM_CF_COUNT; i++) {
        const tm_cust_value_t *p = &patch->f[i];
        tm_cust_value_t *c = &cur->f[i];
        if (!p->set)
            continue;
        if (!c->set || cust_value_cmp(p, c) > 0)
            *c = *p;
    }
}
