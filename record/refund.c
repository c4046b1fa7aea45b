/* refund.c - returns bounded by the sale they return (see tm_refund_check
 * in tm_record.h) and the names of the review flags. */
#include "tm_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const review_names[] = {
    [TM_REVIEW_NONE] = "",
    [TM_REVIEW_OVER_REFUND] = "over_refund",
    [TM_REVIEW_ORIGINAL_UNKNOWN] = "original_unknown",
};

#define N_REVIEW ((int)(sizeof review_names / sizeof review_names[0]))

const char *tm_review_name(int review)
{
    return review > 0 && review < N_REVIEW ? review_names[review] : "";
}

int tm_review_parse(const char *s, int *out)
{
    for (int i = 0; i < N_REVIEW; i++)
        if (strcmp(s, review_names[i]) == 0) {
            *out = i;
            return TM_OK;
        }
    return TM_EINVAL;
}

/* One SKU of the original: what was sold, what earlier returns took back,
 * and what the return being checked asks for. */
typedef struct {
    const char *sku;
    int64_t sold_qty, sold_amt;
    int64_t back_qty, back_amt;
    int64_t ask_qty, ask_amt;
    size_t first_line; /* ret's first line with this SKU */
} sku_t;

typedef struct {
    sku_t *s;
    size_t n;
    bool broken; /* some return breaks the rule (group mode) */
} tally_t;

/* Sums saturate: a hostile peer's op must not wrap a total below a bound. */
static void add_sat(int64_t *acc, int64_t v)
{
    if (__builtin_add_overflow(*acc, v, acc))
        *acc = v < 0 ? INT64_MIN : INT64_MAX;
}

static sku_t *find_sku(tally_t *t, const char *sku)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->s[i].sku, sku) == 0)
            return &t->s[i];
    return NULL;
}

static int tally_init(tally_t *t, const tm_sale_t *orig)
{
    memset(t, 0, sizeof *t);
    if (orig->n_lines && !(t->s = calloc(orig->n_lines, sizeof *t->s)))
        return TM_ENOMEM;
    for (size_t i = 0; i < orig->n_lines; i++) {
        const tm_sale_line_t *l = &orig->lines[i];
        if (l->qty <= 0)
            continue;
        sku_t *k = find_sku(t, l->sku);
        if (!k) {
            k = &t->s[t->n++];
            k->sku = l->sku;
        }
        add_sat(&k->sold_qty, l->qty);
        add_sat(&k->sold_amt, tm_sale_line_amount(l));
    }
    return TM_OK;
}

/* Adds the negative lines of one earlier return. */
static void tally_prior(tally_t *t, const tm_sale_t *orig, const tm_sale_t *p)
{
    if (strcmp(p->currency, orig->currency) != 0) {
        t->broken = true;
        return; /* amounts in another currency cannot be summed */
    }
    for (size_t i = 0; i < p->n_lines; i++) {
        const tm_sale_line_t *l = &p->lines[i];
        if (l->qty >= 0)
            continue;
        sku_t *k = find_sku(t, l->sku);
        if (!k) {
            t->broken = true;
            continue;
        }
        add_sat(&k->back_qty, l->qty == INT64_MIN ? INT64_MAX : -l->qty);
        add_sat(&k->back_amt, -tm_sale_line_amount(l));
    }
}

/* Thousandths as a decimal quantity: 1500 -> "1.5", 2000 -> "2". */
static const char *fmt_qty(int64_t q, char *buf, size_t sz)
{
    int64_t whole = q / 1000, part = q % 1000;
    if (part == 0) {
        snprintf(buf, sz, "%" PRId64, whole);
        return buf;
    }
    snprintf(buf, sz, "%" PRId64 ".%03" PRId64, whole, part < 0 ? -part : part);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '0')
        buf[--n] = '\0';
    return buf;
}

/* Errors on ret's own lines: SKUs not sold, then per SKU the bounds. */
static void check_ret(tally_t *t, const tm_sale_t *ret, tm_field_errors_t *errs)
{
    char f[48], a[32], b[32], c[32];
    for (size_t i = 0; i < ret->n_lines; i++) {
        const tm_sale_line_t *l = &ret->lines[i];
        if (l->qty >= 0)
            continue;
        sku_t *k = find_sku(t, l->sku);
        if (!k) {
            snprintf(f, sizeof f, "lines[%zu].sku", i);
            tm_field_errors_add(errs, f, "not_in_original", "SKU %s was not sold on sale %s",
                                l->sku, ret->refund_of);
            continue;
        }
        if (k->ask_qty == 0 && k->ask_amt == 0)
            k->first_line = i;
        add_sat(&k->ask_qty, l->qty == INT64_MIN ? INT64_MAX : -l->qty);
        add_sat(&k->ask_amt, -tm_sale_line_amount(l));
    }
    for (size_t j = 0; j < t->n; j++) {
        sku_t *k = &t->s[j];
        int64_t qty = k->back_qty, amt = k->back_amt;
        if (k->ask_qty == 0 && k->ask_amt == 0)
            continue;
        add_sat(&qty, k->ask_qty);
        add_sat(&amt, k->ask_amt);
        if (qty > k->sold_qty) {
            snprintf(f, sizeof f, "lines[%zu].qty", k->first_line);
            tm_field_errors_add(errs, f, "exceeds_original",
                                "SKU %s: %s sold, %s already returned, %s more is too many", k->sku,
                                fmt_qty(k->sold_qty, a, sizeof a),
                                fmt_qty(k->back_qty, b, sizeof b),
                                fmt_qty(k->ask_qty, c, sizeof c));
        }
        if (amt > k->sold_amt) {
            snprintf(f, sizeof f, "lines[%zu].unit_price", k->first_line);
            tm_field_errors_add(errs, f, "exceeds_original",
                                "SKU %s: sold for %" PRId64 " %s, %" PRId64
                                " already refunded, %" PRId64 " more is too much",
                                k->sku, k->sold_amt, ret->currency, k->back_amt, k->ask_amt);
        }
    }
}

int tm_refund_check(const tm_sale_t *orig, const tm_sale_t *prior, size_t n_prior,
                    const tm_sale_t *ret, tm_field_errors_t *errs)
{
    tm_field_errors_t scratch;
    tally_t t;
    if (!errs)
        errs = &scratch;
    tm_field_errors_init(errs);
    int rc = tally_init(&t, orig);
    if (rc)
        return rc;
    for (size_t i = 0; i < n_prior; i++)
        tally_prior(&t, orig, &prior[i]);
    if (!ret) {
        t.broken |= orig->refund_of[0] != '\0';
        for (size_t j = 0; j < t.n; j++)
            t.broken |= t.s[j].back_qty > t.s[j].sold_qty || t.s[j].back_amt > t.s[j].sold_amt;
        if (t.broken)
            tm_field_errors_add(errs, "refund_of", "exceeds_original",
                                "the returns of sale %s break its bounds", orig->sale_id);
    } else if (orig->refund_of[0]) {
        tm_field_errors_add(errs, "refund_of", "refund_of_refund",
                            "sale %s is itself a return (of %s): name the original sale",
                            orig->sale_id, orig->refund_of);
    } else if (strcmp(ret->currency, orig->currency) != 0) {
        tm_field_errors_add(errs, "currency", "currency_mismatch",
                            "sale %s was in %s: its return must be in %s too", orig->sale_id,
                            orig->currency, orig->currency);
    } else {
        check_ret(&t, ret, errs);
    }
    free(t.s);
    return errs->n || errs->n_dropped ? TM_EVALIDATE : TM_OK;
}
