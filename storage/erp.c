/* erp.c - parked sales and the ERP backlog (see tm_store.h). Writes here
 * touch only the local `parked` table: no op, nothing replicated. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

static int s_prepare(tm_store_t *self, const char *sql, sqlite3_stmt **st)
{
    return tm_store__err(self, sqlite3_prepare_v2(self->db, sql, -1, st, NULL));
}

int tm_store_park(tm_store_t *self, const char *sale_id, int status, const char *message,
                  uint64_t wall_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(self,
                       "INSERT INTO parked(sale_id, status, message, parked_at) VALUES(?1, ?2, ?3, ?4)"
                       " ON CONFLICT(sale_id) DO UPDATE SET status = ?2, message = ?3,"
                       " parked_at = ?4, active = 1",
                       &st);
    if (rc == TM_OK) {
        sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, status);
        sqlite3_bind_text(st, 3, message ? message : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)wall_ms);
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_store_unpark(tm_store_t *self, const char *sale_id)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(self, "UPDATE parked SET active = 0, retries = retries + 1"
                           " WHERE sale_id = ?1 AND active = 1", &st);
    if (rc == TM_OK) {
        sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
        rc = tm_store__exec(self, st);
        if (rc == TM_OK && sqlite3_changes(self->db) == 0)
            rc = TM_ENOTFOUND;
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_store_parked(tm_store_t *self, size_t max, tm_parked_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    tm_parked_t *v = NULL;
    size_t k = 0;
    int src;
    *out = NULL;
    *n = 0;
    int rc = s_prepare(self,
                       "SELECT sale_id, status, message, parked_at FROM parked WHERE active = 1"
                       " ORDER BY parked_at, sale_id LIMIT ?1",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        tm_parked_t *nv = realloc(v, (k + 1) * sizeof *nv);
        if (!nv) {
            rc = TM_ENOMEM;
            goto cleanup;
        }
        v = nv;
        const unsigned char *id = sqlite3_column_text(st, 0);
        const unsigned char *msg = sqlite3_column_text(st, 2);
        tm_strlcpy(v[k].sale_id, id ? (const char *)id : "", sizeof v[k].sale_id);
        v[k].status = sqlite3_column_int(st, 1);
        tm_strlcpy(v[k].message, msg ? (const char *)msg : "", sizeof v[k].message);
        v[k].parked_at = (uint64_t)sqlite3_column_int64(st, 3);
        k++;
    }
    rc = tm_store__err(self, src);
cleanup:
    sqlite3_finalize(st);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return TM_OK;
}

int tm_store_backlog(tm_store_t *self, tm_backlog_t *out)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    int rc = s_prepare(self,
                       "SELECT (SELECT count(*) FROM sales WHERE acked = 0"
                       "         AND sale_id NOT IN (SELECT sale_id FROM parked WHERE active = 1)),"
                       " (SELECT min(op_hlc) FROM sales WHERE acked = 0"
                       "         AND sale_id NOT IN (SELECT sale_id FROM parked WHERE active = 1)),"
                       " (SELECT count(*) FROM parked p JOIN sales s USING (sale_id)"
                       "         WHERE s.acked = 0 AND p.active = 1)",
                       &st);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        out->unsent = (uint64_t)sqlite3_column_int64(st, 0);
        out->oldest_hlc = (uint64_t)sqlite3_column_int64(st, 1);
        out->parked = (uint64_t)sqlite3_column_int64(st, 2);
    }
    rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    return rc;
}

int tm_store_retry_gen(tm_store_t *self, const char *sale_id, uint32_t *gen)
{
    sqlite3_stmt *st = NULL;
    *gen = 0;
    int rc = s_prepare(self, "SELECT retries FROM parked WHERE sale_id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *gen = (uint32_t)sqlite3_column_int64(st, 0);
    rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    return rc;
}

int tm_store__cust_acks_apply(tm_store_t *self, const tm_erp_ack_t *a)
{
    if (!a->n_customers)
        return TM_OK;
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(self,
                       "INSERT INTO erp_customer_acks(customer_id, version) VALUES(?1, ?2)"
                       " ON CONFLICT(customer_id) DO UPDATE SET version = max(version, ?2)",
                       &st);
    for (size_t i = 0; rc == TM_OK && i < a->n_customers; i++) {
        sqlite3_bind_text(st, 1, a->customers[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)(a->customers[i].version > INT64_MAX
                                                      ? INT64_MAX
                                                      : a->customers[i].version));
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_store_unacked_customers(tm_store_t *self, size_t max, tm_cust_version_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    tm_cust_version_t *v = NULL;
    size_t k = 0;
    int src;
    *out = NULL;
    *n = 0;
    int rc = s_prepare(self,
                       "SELECT c.id, max(c.type_hlc, coalesce((SELECT max(f.hlc) FROM"
                       "   customer_fields f WHERE f.customer_id = c.id), 0)) AS v"
                       " FROM customers c LEFT JOIN erp_customer_acks a ON a.customer_id = c.id"
                       " WHERE a.version IS NULL OR a.version < v ORDER BY c.id LIMIT ?1",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        tm_cust_version_t *nv = realloc(v, (k + 1) * sizeof *nv);
        if (!nv) {
            rc = TM_ENOMEM;
            goto cleanup;
        }
        v = nv;
        const unsigned char *id = sqlite3_column_text(st, 0);
        tm_strlcpy(v[k].id, id ? (const char *)id : "", sizeof v[k].id);
        v[k].version = (uint64_t)sqlite3_column_int64(st, 1);
        k++;
    }
    rc = tm_store__err(self, src);
cleanup:
    sqlite3_finalize(st);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return TM_OK;
}
