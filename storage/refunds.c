/*
 * refunds.c - returns and the sale they return: the check the API makes
 * before a return is written, and the review flags kept on returns.
 *
 * A return names its original by refund_of. Sale ids are UUIDs, which a
 * POS may write in either case: returns are matched on lower(refund_of)
 * (indexed, for returns only). The original is looked up by the spellings
 * of refund_of its returns use, and in lower and upper case: a function of
 * the sales held (so every till finds the same one), with no index over
 * every sale.
 *
 * The flags are derived data, recomputed for a whole group (one original
 * and all its returns) whenever a sale of that group is written; replicated
 * ops are never refused for them (materialisation stays a CRDT) and every
 * till that holds the same sales holds the same flags.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* At most this many returns of one original are loaded (each may hold 500
 * lines: about 11 MB at worst); an original with more has its new returns
 * refused and the group flagged, since a hostile or broken till could send
 * any number of them. */
#define RETURNS_MAX 100

static const char *const ref_sql[ST_COUNT] = {
    [ST_ORIG_BY_ID] = "SELECT " TM_STORE__SALE_COLS " FROM sales WHERE sale_id IN"
                      " (SELECT refund_of FROM sales WHERE lower(refund_of) = lower(?1)"
                      " AND refund_of <> '' UNION SELECT lower(?1) UNION SELECT upper(?1)"
                      " UNION SELECT ?2) ORDER BY sale_id LIMIT 1",
    [ST_RETURNS_OF] = "SELECT " TM_STORE__SALE_COLS " FROM sales WHERE lower(refund_of) = lower(?1)"
                      " AND refund_of <> '' AND lower(sale_id) <> lower(?1) ORDER BY sale_id"
                      " LIMIT ?2",
    [ST_HAS_RETURNS] = "SELECT 1 FROM sales WHERE lower(refund_of) = lower(?1) AND refund_of <> ''"
                       " LIMIT 1",
    [ST_REVIEW_SET] = "UPDATE sales SET review = ?2 WHERE lower(refund_of) = lower(?1)"
                      " AND refund_of <> '' AND review <> ?2",
    [ST_REVIEW_COUNT] = "SELECT review, count(*) FROM sales WHERE review <> 0 GROUP BY review",
    [ST_REVIEW_LIST] = "SELECT sale_id, refund_of, review FROM sales WHERE review <> 0"
                       " ORDER BY review, refund_of, sale_id LIMIT ?1",
};

static sqlite3_stmt *s_stmt(tm_store_t *self, int id, int *rc)
{
    return tm_store__stmt(self, id, ref_sql[id], rc);
}

/* The original of the group of id; TM_ENOTFOUND if not held. `spelling`
 * (may be NULL) is one more way of writing it to try: that of a return
 * about to join the group. */
static int s_orig_load(tm_store_t *self, const char *id, const char *spelling, tm_sale_t *out)
{
    int rc = TM_OK;
    int64_t ins;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = s_stmt(self, ST_ORIG_BY_ID, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (spelling)
        sqlite3_bind_text(st, 2, spelling, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = tm_store__sale_from_row(self, st, out, &ins);
    else
        rc = src == SQLITE_DONE ? TM_ENOTFOUND : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

static void s_sales_free(tm_sale_t *arr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tm_sale_free(&arr[i]);
    free(arr);
}

/* The returns of orig_id held, except `skip` (a sale id, may be NULL), at
 * most RETURNS_MAX; *more is set when there were more. */
static int s_returns_load(tm_store_t *self, const char *orig_id, const char *skip, tm_sale_t **out,
                          size_t *n, bool *more)
{
    int rc = TM_OK, src;
    int64_t ins;
    tm_sale_t *arr = NULL;
    size_t k = 0;
    *out = NULL;
    *n = 0;
    *more = false;
    sqlite3_stmt *st = s_stmt(self, ST_RETURNS_OF, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, orig_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, RETURNS_MAX + 2); /* + skip, + one to see "more" */
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 1);
        if (skip && id && strcasecmp((const char *)id, skip) == 0)
            continue;
        if (k == RETURNS_MAX) {
            *more = true;
            break;
        }
        tm_sale_t *a = realloc(arr, (k + 1) * sizeof *a);
        if (!a) {
            rc = TM_ENOMEM;
            goto cleanup;
        }
        arr = a;
        if ((rc = tm_store__sale_from_row(self, st, &arr[k], &ins)))
            goto cleanup;
        k++;
    }
    rc = src == SQLITE_ROW ? TM_OK : tm_store__err(self, src);
cleanup:
    sqlite3_reset(st);
    if (rc) {
        s_sales_free(arr, k);
        return rc;
    }
    *out = arr;
    *n = k;
    return TM_OK;
}

int tm_store_refund_check(tm_store_t *self, const tm_sale_t *ret, int *review,
                          tm_field_errors_t *errs)
{
    tm_sale_t orig, *prior = NULL;
    size_t n = 0;
    bool more = false;
    tm_field_errors_init(errs);
    *review = TM_REVIEW_NONE;
    if (!ret->refund_of[0])
        return TM_OK;
    int rc = s_orig_load(self, ret->refund_of, ret->refund_of, &orig);
    if (rc == TM_ENOTFOUND) {
        *review = TM_REVIEW_ORIGINAL_UNKNOWN;
        return TM_OK;
    }
    if (rc)
        return rc;
    if ((rc = s_returns_load(self, ret->refund_of, ret->sale_id, &prior, &n, &more)))
        goto cleanup;
    if (more) {
        tm_field_errors_add(errs, "refund_of", "too_many_returns",
                            "sale %s already has more than %d returns", orig.sale_id, RETURNS_MAX);
        rc = TM_EVALIDATE;
        goto cleanup;
    }
    rc = tm_refund_check(&orig, prior, n, ret, errs);
cleanup:
    s_sales_free(prior, n);
    tm_sale_free(&orig);
    return rc;
}

int tm_store__has_returns(tm_store_t *self, const char *orig_id)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_HAS_RETURNS, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, orig_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? 1 : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store__review_group(tm_store_t *self, const char *orig_id)
{
    tm_sale_t orig, *rets = NULL;
    size_t n = 0;
    bool more = false;
    int review = TM_REVIEW_NONE;
    int rc = s_orig_load(self, orig_id, NULL, &orig);
    if (rc == TM_ENOTFOUND) {
        review = TM_REVIEW_ORIGINAL_UNKNOWN;
    } else if (rc) {
        return rc;
    } else {
        if ((rc = s_returns_load(self, orig_id, NULL, &rets, &n, &more)))
            goto cleanup;
        rc = more ? TM_EVALIDATE : tm_refund_check(&orig, rets, n, NULL, NULL);
        if (rc != TM_OK && rc != TM_EVALIDATE)
            goto cleanup;
        review = rc == TM_EVALIDATE ? TM_REVIEW_OVER_REFUND : TM_REVIEW_NONE;
    }
    sqlite3_stmt *st = s_stmt(self, ST_REVIEW_SET, &rc);
    if (st) {
        sqlite3_bind_text(st, 1, orig_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, review);
        rc = tm_store__exec(self, st);
    }
cleanup:
    s_sales_free(rets, n);
    tm_sale_free(&orig);
    return rc;
}

int tm_store__review_rebuild(tm_store_t *self)
{
    sqlite3_stmt *st = NULL;
    char(*ids)[TM_UUID_LEN] = NULL;
    size_t n = 0;
    int src = sqlite3_prepare_v2(
        self->db, "SELECT DISTINCT lower(refund_of) FROM sales WHERE refund_of <> ''", -1, &st,
        NULL);
    int rc = tm_store__err(self, src);
    /* Collected first: the groups are rewritten while this would still run. */
    while (rc == TM_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        char(*a)[TM_UUID_LEN] = realloc(ids, (n + 1) * sizeof *ids);
        if (!a) {
            rc = TM_ENOMEM;
            break;
        }
        ids = a;
        const unsigned char *t = sqlite3_column_text(st, 0);
        tm_strlcpy(ids[n++], t ? (const char *)t : "", TM_UUID_LEN);
    }
    if (rc == TM_OK)
        rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    for (size_t i = 0; rc == TM_OK && i < n; i++)
        rc = tm_store__review_group(self, ids[i]);
    free(ids);
    return rc;
}

int tm_store_reviews(tm_store_t *self, size_t max, tm_review_entry_t **out, size_t *n,
                     tm_review_counts_t *counts)
{
    int rc = TM_OK, src;
    tm_review_entry_t *arr = NULL;
    size_t k = 0;
    *out = NULL;
    *n = 0;
    memset(counts, 0, sizeof *counts);
    sqlite3_stmt *st = s_stmt(self, ST_REVIEW_COUNT, &rc);
    if (!st)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t c = (uint64_t)sqlite3_column_int64(st, 1);
        switch (sqlite3_column_int(st, 0)) {
        case TM_REVIEW_OVER_REFUND: counts->over_refund = c; break;
        case TM_REVIEW_ORIGINAL_UNKNOWN: counts->original_unknown = c; break;
        default: break;
        }
    }
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc || max == 0 || !(st = s_stmt(self, ST_REVIEW_LIST, &rc)))
        return rc;
    sqlite3_bind_int64(st, 1, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        tm_review_entry_t *a = realloc(arr, (k + 1) * sizeof *a);
        if (!a) {
            rc = TM_ENOMEM;
            goto cleanup;
        }
        arr = a;
        memset(&arr[k], 0, sizeof arr[k]);
        const unsigned char *id = sqlite3_column_text(st, 0), *ref = sqlite3_column_text(st, 1);
        tm_strlcpy(arr[k].sale_id, id ? (const char *)id : "", sizeof arr[k].sale_id);
        tm_strlcpy(arr[k].refund_of, ref ? (const char *)ref : "", sizeof arr[k].refund_of);
        arr[k].review = sqlite3_column_int(st, 2);
        k++;
    }
    rc = tm_store__err(self, src);
cleanup:
    sqlite3_reset(st);
    if (rc) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n = k;
    return TM_OK;
}
