/* intake.c - the rules a sale or customer edit from the POS passes before
 * it is stored (tm_intake.h). Reads no clock and draws no randomness. */
#include "tm_intake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tm_wire.h"

void tm_intake_uuid(const uint8_t random[16], char out[TM_UUID_LEN])
{
    uint8_t b[16];
    char hex[33];
    memcpy(b, random, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    tm_hex(b, 16, hex);
    snprintf(out, TM_UUID_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

void tm_intake_rfc3339(uint64_t wall_ms, char *out, size_t outsz)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tmv;
    char base[32] = "1970-01-01T00:00:00";
    if (gmtime_r(&secs, &tmv))
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tmv);
    snprintf(out, outsz, "%s.%03uZ", base, (unsigned)(wall_ms % 1000));
}

/* A POS retry may leave out what the till filled in the first time. */
static void fill_from(tm_sale_t *s, const tm_sale_t *old)
{
    if (!s->till[0])
        tm_strlcpy(s->till, old->till, sizeof s->till);
    if (!s->receipt_no)
        s->receipt_no = old->receipt_no;
    if (!s->created_at[0])
        tm_strlcpy(s->created_at, old->created_at, sizeof s->created_at);
    s->has_clock = old->has_clock;
    s->clock_offset_ms = old->clock_offset_ms;
    s->clock_skewed = old->clock_skewed;
    /* Lines the till priced the first time keep that price, whatever the
     * catalogue says now: the retry is the same sale. */
    for (size_t i = 0; i < s->n_lines && i < old->n_lines; i++) {
        tm_sale_line_t *l = &s->lines[i];
        const tm_sale_line_t *o = &old->lines[i];
        if (!l->fill)
            continue;
        if (strcmp(l->sku, o->sku) != 0 && !o->catalogue_version)
            continue;
        tm_strlcpy(l->sku, o->sku, sizeof l->sku);
        if (l->fill & TM_LINE_FILL_NAME)
            tm_strlcpy(l->name, o->name, sizeof l->name);
        if (l->fill & TM_LINE_FILL_TAX)
            l->tax_rate = o->tax_rate;
        l->unit_price = o->unit_price;
        l->catalogue_version = o->catalogue_version;
        l->fill = 0;
    }
    if (s->fill_total) {
        s->total = old->total;
        s->fill_total = false;
    }
}

/* Lines without a price get it from this till's catalogue (name and tax
 * rate too when the POS left them out), and a sale without a total gets
 * the sum of its lines. The line records the catalogue version that priced
 * it. A sku (or barcode) the catalogue does not hold, or holds as inactive,
 * is a field error: the till never guesses a price. */
static int price_lines(tm_store_t *store, tm_sale_t *s, tm_field_errors_t *errs)
{
    char f[64];
    for (size_t i = 0; i < s->n_lines; i++) {
        tm_sale_line_t *l = &s->lines[i];
        tm_product_t p;
        if (!l->fill)
            continue;
        int rc = tm_store_product_get(store, l->sku, &p);
        snprintf(f, sizeof f, "lines[%zu].sku", i);
        if (rc == TM_ENOTFOUND) {
            tm_field_errors_add(errs, f, "unknown_sku",
                                "%.63s is not in this till's catalogue: give unit_price", l->sku);
            continue;
        }
        if (rc)
            return rc;
        if (!p.active) {
            tm_field_errors_add(errs, f, "inactive_sku",
                                "%.63s is inactive in the catalogue: give unit_price to sell it",
                                l->sku);
            continue;
        }
        tm_strlcpy(l->sku, p.sku, sizeof l->sku); /* a barcode becomes its sku */
        if (l->fill & TM_LINE_FILL_NAME)
            tm_strlcpy(l->name, p.name, sizeof l->name);
        if (l->fill & TM_LINE_FILL_TAX)
            l->tax_rate = p.tax_rate;
        l->unit_price = p.unit_price;
        l->catalogue_version = p.version;
        l->fill = 0;
    }
    if (errs->n || errs->n_dropped)
        return TM_EVALIDATE;
    if (s->fill_total) {
        int64_t t = 0;
        for (size_t i = 0; i < s->n_lines; i++)
            if (__builtin_add_overflow(t, tm_sale_line_amount(&s->lines[i]), &t))
                t = INT64_MAX; /* tm_sale_validate says which line is out of range */
        s->total = t;
        s->fill_total = false;
    }
    return TM_OK;
}

static int same_sale(const tm_sale_t *a, const tm_sale_t *b)
{
    char *ja = tm_sale_to_json(a), *jb = tm_sale_to_json(b);
    int same = ja && jb && strcmp(ja, jb) == 0;
    free(ja);
    free(jb);
    return same;
}

static int existing_sale(tm_store_t *store, tm_sale_t *s)
{
    tm_sale_t old;
    int rc = tm_store_get_sale(store, s->sale_id, &old);
    if (rc == TM_ENOTFOUND)
        return TM_OK;
    if (rc)
        return rc;
    fill_from(s, &old);
    s->review = old.review; /* the till's flag, not the POS's to set */
    rc = same_sale(s, &old) ? TM_EEXIST : TM_ECONFLICT;
    tm_sale_free(&old);
    return rc;
}

int tm_intake_sale(tm_store_t *store, const tm_intake_ctx_t *ctx, tm_sale_t *s, int *review,
                   tm_field_errors_t *errs)
{
    int rc;
    *review = TM_REVIEW_NONE;
    s->has_clock = false; /* never the POS's word (tm_sale_t) */
    s->clock_offset_ms = 0;
    s->clock_skewed = false;
    s->review = TM_REVIEW_NONE;
    if (!s->sale_id[0])
        tm_intake_uuid(ctx->random, s->sale_id);
    else if ((rc = existing_sale(store, s)))
        return rc;
    if (!s->has_clock && ctx->clock && ctx->clock->measured) {
        /* created_at stays this till's own clock (what the receipt shows);
         * the ERP gets our offset from the store's to judge it. */
        s->has_clock = true;
        s->clock_offset_ms = ctx->clock->offset_ms;
        s->clock_skewed = ctx->clock->skewed;
    }
    if (!s->till[0])
        tm_strlcpy(s->till, ctx->till, sizeof s->till);
    /* A sale belongs to the till that records it: every till judges a
     * received sale by whether its `till` names the till that made it, so
     * one taken here under another name would be shown nowhere. */
    if (strcmp(s->till, ctx->till) != 0) {
        tm_field_errors_add(errs, "till", "not_this_till",
                            "till must be this till's name (%.63s) or absent", ctx->till);
        return TM_EVALIDATE;
    }
    if (!s->created_at[0])
        tm_intake_rfc3339(ctx->wall_ms, s->created_at, sizeof s->created_at);
    if ((rc = price_lines(store, s, errs)))
        return rc;
    if (!s->receipt_no) {
        uint64_t max = 0;
        if ((rc = tm_store_max_receipt(store, s->till, &max)))
            return rc;
        s->receipt_no = max + 1;
    }
    if ((rc = tm_sale_validate(s, errs)))
        return rc;
    /* A return is bounded by its original and the returns of it held here.
     * One whose original has not reached this till (rung up on a till cut
     * off from this one) is taken, so the store can still serve the
     * customer, and flagged original_unknown until the original arrives. */
    return tm_store_refund_check(store, s, review, errs);
}

int tm_intake_commit_sale(tm_engine_t *e, const tm_sale_t *s, uint64_t wall_ms, uint64_t mono_ms,
                          tm_outbox_t *out)
{
    uint8_t *body = NULL;
    size_t len;
    int rc = tm_wire_sale_encode(s, &body, &len);
    if (rc)
        return rc;
    uint64_t hlc = tm_engine_hlc_now(e, wall_ms);
    rc = tm_engine_local_op(e, TM_OP_SALE, hlc, body, len, mono_ms, out);
    free(body);
    return rc;
}

int tm_intake_commit_customer(tm_engine_t *e, tm_store_t *store, const tm_customer_t *patch,
                              uint64_t wall_ms, uint64_t mono_ms, tm_outbox_t *out)
{
    uint8_t *body = NULL;
    size_t len;
    int rc = tm_wire_customer_encode(patch, &body, &len);
    if (rc)
        return rc;
    uint64_t floor = 0;
    if ((rc = tm_store_customer_stamp(store, patch->id, &floor)) == TM_OK) {
        uint64_t hlc = tm_engine_hlc_after(e, floor, wall_ms);
        rc = tm_engine_local_op(e, TM_OP_CUSTOMER, hlc, body, len, mono_ms, out);
    }
    free(body);
    return rc;
}
