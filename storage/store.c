/*
 * store.c - opening the store, the op log, the version vector, reading ops
 * back for peers, and the digest. Materialising records is materialise.c's.
 */
#include "store_int.h"

#include "tm_sign.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Another process holding the write lock (e.g. the CLI) gets this long. */
#define BUSY_TIMEOUT_MS 5000

static const char *const store_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* ON CONFLICT names the key so that a CHECK failure is still an error
     * (OR IGNORE would silently drop it). */
    [ST_OP_INSERT] = "INSERT INTO ops (origin, seq, hlc, kind, body, hash, compacted, sig, prev)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                     " ON CONFLICT (origin, seq) DO NOTHING",
    [ST_OP_EXISTS] = "SELECT 1 FROM ops WHERE origin = ?1 AND seq = ?2",
    [ST_OP_MAX_SEQ] = "SELECT max(seq) FROM ops WHERE origin = ?1",
    [ST_VV_GET] = "SELECT seq FROM vv WHERE origin = ?1",
    [ST_VV_PUT] = "INSERT INTO vv (origin, seq) VALUES (?1, ?2)"
                  " ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq",
    [ST_VV_ALL] = "SELECT origin, seq FROM vv WHERE seq > 0 ORDER BY origin",
    [ST_READ_RANGE] = "SELECT seq, hlc, kind, body, hash, compacted, sig, prev FROM ops"
                      " WHERE origin = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
    [ST_MAX_HLC] = "SELECT max(hlc) FROM ops WHERE origin = ?1",
};

static sqlite3_stmt *s_stmt(tm_store_t *self, int id, int *rc)
{
    return tm_store__stmt(self, id, store_sql[id], rc);
}

/* ---- internal helpers shared with schema.c and materialise.c ---------- */

int tm_store__err(tm_store_t *self, int src)
{
    if (src == SQLITE_OK || src == SQLITE_ROW || src == SQLITE_DONE)
        return TM_OK;
    snprintf(self->errmsg, sizeof self->errmsg, "%s (%s)",
             self->db ? sqlite3_errmsg(self->db) : "no database", sqlite3_errstr(src));
    switch (src & 0xff) {
    case SQLITE_FULL: return TM_EFULL;
    case SQLITE_NOMEM: return TM_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return TM_ECORRUPT;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH: return TM_EPERM;
    case SQLITE_CANTOPEN:
        return self->db && sqlite3_system_errno(self->db) == EACCES ? TM_EPERM : TM_EIO;
    default: return TM_EIO;
    }
}

sqlite3_stmt *tm_store__stmt(tm_store_t *self, int id, const char *sql, int *rc)
{
    if (!self->st[id]) {
        /* PERSISTENT: these live as long as the connection. */
        int src =
            sqlite3_prepare_v3(self->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &self->st[id], NULL);
        if (src != SQLITE_OK) {
            *rc = tm_store__err(self, src);
            sqlite3_finalize(self->st[id]);
            self->st[id] = NULL;
            return NULL;
        }
    }
    return self->st[id];
}

int tm_store__exec(tm_store_t *self, sqlite3_stmt *st)
{
    int src = sqlite3_step(st);
    int rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

static int s_exec_id(tm_store_t *self, int id)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, id, &rc);
    return st ? tm_store__exec(self, st) : rc;
}

/* ---- transactions ----------------------------------------------------- */

/* Every write starts here: whatever happens next, the cached digest and
 * counts no longer describe the store. */
static int s_begin(tm_store_t *self)
{
    self->counts_ok = false;
    self->writes++;
    self->trimmed = false;
    /* Two stat() calls against an fsync per write: never acknowledge a
     * write that went to a file nobody will open again. */
    int rc = tm_store_check_file(self);
    return rc ? rc : s_exec_id(self, ST_BEGIN);
}

/* SQLite rolls some errors (SQLITE_FULL among them) back by itself; only
 * roll back what is still open, and always end with no transaction. */
static void s_rollback(tm_store_t *self)
{
    if (!sqlite3_get_autocommit(self->db) && s_exec_id(self, ST_ROLLBACK) != TM_OK)
        (void)sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- open and close --------------------------------------------------- */

static int s_exec_sql(tm_store_t *self, const char *sql)
{
    return tm_store__err(self, sqlite3_exec(self->db, sql, NULL, NULL, NULL));
}

/* quick_check answers one row "ok", or rows describing the damage. */
static int s_quick_check(tm_store_t *self)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(self->db, "PRAGMA quick_check(1)", -1, &st, NULL);
    int rc = tm_store__err(self, src);
    if (rc)
        goto cleanup;
    src = sqlite3_step(st);
    if ((rc = tm_store__err(self, src)))
        goto cleanup;
    const unsigned char *res = sqlite3_column_text(st, 0);
    if (src != SQLITE_ROW || !res || strcmp((const char *)res, "ok") != 0) {
        snprintf(self->errmsg, sizeof self->errmsg, "quick_check: %s",
                 res ? (const char *)res : "no answer");
        rc = TM_ECORRUPT;
    }
cleanup:
    sqlite3_finalize(st);
    return rc;
}

/* Beyond durability. A catch-up batch (1,000 sales) dirties about 900
 * pages, most of them leaves of the sale_id index, which a random UUID hits
 * anywhere: with SQLite's default 2 MiB cache the batch spilled to the WAL
 * before its commit and every insert read its leaf back (a pread per sale).
 * 8 MiB holds a batch and the index of ~150,000 sales; it fills only as far
 * as the store is used. A checkpoint every 4,000 WAL pages (16 MiB) instead
 * of 1,000 writes each hot page back once per four batches, not once per
 * batch, with a quarter of the database fsyncs; the WAL is cut back to 32
 * MiB after a checkpoint that let it grow past. Together: 36 % fewer
 * writes, 80 % fewer reads, 30 % fewer fsyncs per op (bench/sqlite_raw). */
static const char tuning_sql[] = "PRAGMA foreign_keys = ON;"
                                 "PRAGMA cache_size = -8192;"
                                 "PRAGMA wal_autocheckpoint = 4000;"
                                 "PRAGMA journal_size_limit = 33554432;";

const char *tm_store_tuning_sql(void)
{
    return tuning_sql;
}

static int s_pragmas(tm_store_t *self, const tm_store_opts_t *opts)
{
    int rc;
    /* WAL + synchronous=FULL: a returned write has been fsync'd (P1). */
    if ((rc = s_exec_sql(self, "PRAGMA journal_mode = WAL")) ||
        (rc = s_exec_sql(self, "PRAGMA synchronous = FULL")) || (rc = s_exec_sql(self, tuning_sql)))
        return rc;
    if (opts && opts->max_pages) {
        char sql[64];
        /* PRAGMA takes no bound parameters; the number is configuration. */
        snprintf(sql, sizeof sql, "PRAGMA max_page_count = %llu",
                 (unsigned long long)opts->max_pages);
        rc = s_exec_sql(self, sql);
    }
    return rc;
}

/* The node id is made once, on first open, and kept for life. */
static int s_node_id(tm_store_t *self)
{
    static const uint8_t zero[TM_NODE_ID_LEN] = {0};
    sqlite3_stmt *st = NULL;
    int rc = tm_store__err(self, sqlite3_prepare_v2(self->db,
                                                    "SELECT value FROM meta WHERE key = 'node_id'",
                                                    -1, &st, NULL));
    if (rc)
        goto cleanup;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != TM_NODE_ID_LEN) {
            snprintf(self->errmsg, sizeof self->errmsg, "node id has the wrong length");
            rc = TM_ECORRUPT;
            goto cleanup;
        }
        memcpy(self->node_id, sqlite3_column_blob(st, 0), TM_NODE_ID_LEN);
        goto cleanup;
    }
    if ((rc = tm_store__err(self, src)))
        goto cleanup;
    sqlite3_finalize(st);
    st = NULL;
    do /* all zeroes is the one id ops may not carry */
        tm_random(self->node_id, sizeof self->node_id);
    while (memcmp(self->node_id, zero, sizeof zero) == 0);
    rc = tm_store__err(
        self, sqlite3_prepare_v2(self->db, "INSERT INTO meta (key, value) VALUES ('node_id', ?1)",
                                 -1, &st, NULL));
    if (rc)
        goto cleanup;
    sqlite3_bind_blob(st, 1, self->node_id, TM_NODE_ID_LEN, SQLITE_STATIC);
    rc = tm_store__err(self, sqlite3_step(st));
cleanup:
    sqlite3_finalize(st);
    return rc;
}

int tm_store__open_db(tm_store_t *self)
{
    tm_store_opts_t opts = {.max_pages = self->file.max_pages};
    self->voided_any = 0;
    /* NOMUTEX: a store (its connection and statements) is used by one
     * thread at a time, its owner's (tm_store.h); the connection's mutex
     * was a lock and an unlock around every step and bind (8 % of a
     * catch-up's time). */
    int src =
        sqlite3_open_v2(self->file.path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    int rc = TM_ENOMEM;
    if (!self->db)
        return rc;
    if ((rc = tm_store__err(self, src)))
        goto fail;
    sqlite3_extended_result_codes(self->db, 1);
    sqlite3_busy_timeout(self->db, BUSY_TIMEOUT_MS);
    /* Check, and refuse files that are not ours, before anything writes
     * (switching to WAL rewrites the header). Migrations then run with the
     * default rollback journal, which is as durable. */
    if ((rc = s_quick_check(self)) || (rc = tm_store__migrate(self, &self->schema_version)) ||
        (rc = s_pragmas(self, &opts)) || (rc = s_node_id(self)) ||
        (rc = tm_store__digest_load(self)) || (rc = tm_store__file_note(self)))
        goto fail;
    return TM_OK;
fail:
    /* A store that failed its checks is left as found, -wal included, for
     * tm_store_quarantine and tm_store_salvage: no checkpoint into it. */
    sqlite3_db_config(self->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    if (tm_store__close_db(self) != TM_OK) {
        sqlite3_close_v2(self->db);
        self->db = NULL;
    }
    return rc;
}

int tm_store__close_db(tm_store_t *self)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(self->st[i]);
        self->st[i] = NULL;
    }
    self->counts_ok = false;
    self->backlog_ok = false; /* a new connection counts changes from 0 */
    /* SQLITE_BUSY: a statement outside the cache is still open; the
     * connection stays as it is. */
    if (sqlite3_close(self->db) != SQLITE_OK)
        return TM_ESTATE;
    self->db = NULL;
    return TM_OK;
}

int tm_store_open(const char *path, const tm_store_opts_t *opts, tm_store_t **out)
{
    *out = NULL;
    if (sodium_init() < 0)
        return TM_EIO;
    if (strlen(path) >= sizeof((tm_store_t *)0)->file.path - 16) /* room for suffixes */
        return TM_EINVAL;
    /* SQLite's memory statistics take a global mutex around every
     * allocation, a dozen per op in a catch-up; nothing here reads them.
     * Takes effect only before SQLite's first use in the process, and is
     * refused harmlessly (SQLITE_MISUSE) after. */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    tm_store_t *self = calloc(1, sizeof *self);
    if (!self)
        return TM_ENOMEM;
    tm_strlcpy(self->file.path, path, sizeof self->file.path);
    self->file.max_pages = opts ? opts->max_pages : 0;
    int rc = tm_store__open_db(self);
    if (rc) {
        tm_store_destroy(&self);
        return rc;
    }
    *out = self;
    return TM_OK;
}

void tm_store_destroy(tm_store_t **self_p)
{
    tm_store_t *self = *self_p;
    if (!self)
        return;
    if (tm_store__close_db(self) != TM_OK)
        sqlite3_close_v2(self->db); /* closes once the last statement goes */
    sodium_memzero(self->sign_sk, sizeof self->sign_sk);
    free(self->trusted);
    free(self->trusted_ids);
    free(self);
    *self_p = NULL;
}

bool tm_store_trim(tm_store_t *self)
{
    bool idle = self->writes == self->writes_at_trim;
    self->writes_at_trim = self->writes;
    if (!idle || self->trimmed)
        return false;
    self->trimmed = true; /* once per idle stretch */
    sqlite3_db_release_memory(self->db);
    return true;
}

const char *tm_store_errmsg(const tm_store_t *self)
{
    return self->errmsg[0] ? self->errmsg : "no error";
}

void tm_store_node_id(const tm_store_t *self, uint8_t out[TM_NODE_ID_LEN])
{
    memcpy(out, self->node_id, TM_NODE_ID_LEN);
}

int tm_store_schema_version(const tm_store_t *self)
{
    return self->schema_version;
}

int tm_store_schema_latest(void)
{
    return tm_store__schema_latest();
}

/* ---- the op log ------------------------------------------------------- */

static bool s_origin_ok(const uint8_t origin[TM_NODE_ID_LEN])
{
    for (size_t i = 0; i < TM_NODE_ID_LEN; i++)
        if (origin[i])
            return true;
    return false;
}

/* Checks an op's header and decodes its body. SQLite integers are signed,
 * so seq and hlc must fit in 63 bits (an HLC does until the year 4 million). */
static int s_check_op(const tm_op_t *op, tm_store__rec_t *rec)
{
    if (!s_origin_ok(op->origin) || op->seq == 0 || op->seq > INT64_MAX || op->hlc > INT64_MAX ||
        (op->body_len && !op->body))
        return TM_EPROTO;
    if (op->compacted) {
        /* A stub: nothing to decode or materialise. */
        memset(rec, 0, sizeof *rec);
        return op->body_len ? TM_EPROTO : TM_OK;
    }
    return tm_store__rec_decode(op->kind, op->body, op->body_len, rec);
}

/* Inserts an op with its hash h; *fresh says whether it was new. */
static int s_op_insert(tm_store_t *self, const tm_op_t *op, const uint8_t h[32], bool *fresh)
{
    int rc = TM_OK;
    *fresh = false;
    sqlite3_stmt *st = s_stmt(self, ST_OP_INSERT, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)op->seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)op->hlc);
    sqlite3_bind_int64(st, 4, op->kind);
    /* A NULL pointer would bind SQL NULL, not an empty body. */
    if (op->body_len)
        sqlite3_bind_blob64(st, 5, op->body, op->body_len, SQLITE_STATIC);
    else
        sqlite3_bind_zeroblob(st, 5, 0);
    sqlite3_bind_blob(st, 6, h, 32, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, op->compacted);
    if (op->has_sig) {
        sqlite3_bind_blob(st, 8, op->sig, 64, SQLITE_STATIC);
        sqlite3_bind_blob(st, 9, op->prev, 32, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 8);
        sqlite3_bind_null(st, 9);
    }
    rc = tm_store__exec(self, st);
    *fresh = rc == TM_OK && sqlite3_changes(self->db) == 1;
    return rc;
}

/* One int64 from a cached statement bound to origin and, for statements
 * with a second parameter, seq; *found says whether a non-NULL value came
 * back. */
static int s_get_i64(tm_store_t *self, int id, const uint8_t origin[TM_NODE_ID_LEN], int64_t seq,
                     int64_t *out, bool *found)
{
    int rc = TM_OK;
    *out = 0;
    *found = false;
    sqlite3_stmt *st = s_stmt(self, id, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, seq);
    int src = sqlite3_step(st);
    *found = src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    *out = *found ? sqlite3_column_int64(st, 0) : 0;
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

static int s_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Raises origin's vector entry over every op now held without a gap,
 * including ops that arrived early and waited for the gap to fill. held
 * (sorted, n_held) are seqs of origin known to be in the ops table now (the
 * batch just written): the vector walks over them in memory and asks the
 * table only past their end, once per origin instead of once per op. */
static int s_vv_advance(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN],
                        const uint64_t *held, size_t n_held)
{
    int64_t cur = 0, one;
    bool found;
    int rc = s_get_i64(self, ST_VV_GET, origin, 0, &cur, &found);
    int64_t start = cur;
    for (size_t i = 0; rc == TM_OK && i < n_held && held[i] <= (uint64_t)cur + 1; i++)
        if (held[i] == (uint64_t)cur + 1)
            cur++;
    while (rc == TM_OK) {
        if ((rc = s_get_i64(self, ST_OP_EXISTS, origin, cur + 1, &one, &found)) || !found)
            break;
        cur++;
    }
    if (rc || cur == start)
        return rc;
    sqlite3_stmt *st = s_stmt(self, ST_VV_PUT, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, cur);
    return tm_store__exec(self, st);
}

/* A batch to write, with what was worked out before the transaction. */
typedef struct {
    const tm_op_t *ops;
    tm_store__rec_t *recs;
    size_t n;
    const uint8_t (*hash)[32]; /* each op's hash (tm_store__op_hash); NULL: computed here */
    const uint8_t (*link)[32]; /* signed ops' chain values (authenticate_runs), or NULL */
    const bool *bad;           /* op i's body did not decode (NULL: none) */
    const bool *authentic;     /* op i's signature is known good (NULL: none) */
} batch_t;

/* Inside a transaction: stores the ops not yet held, materialises them,
 * then advances the vector of every origin that got something new. With
 * rep (ops from peers, verification on), each op is first judged by
 * tm_store__verify. */
static int s_write_ops(tm_store_t *self, const batch_t *b, size_t *n_new, uint8_t acc[32],
                       tm_apply_report_t *rep)
{
    const tm_op_t *ops = b->ops;
    size_t n = b->n;
    const uint8_t **origins = calloc(n, sizeof *origins);
    bool *held = calloc(n, sizeof *held);
    uint64_t *seqs = malloc(n * sizeof *seqs);
    size_t n_origins = 0;
    bool reissued = false;
    int rc = TM_ENOMEM;
    *n_new = 0;
    if (!origins || !held || !seqs)
        goto cleanup;
    tm_store__vctx_t vctx = {0};
    for (size_t i = 0; i < n; i++) {
        bool fresh;
        uint8_t hbuf[32];
        const uint8_t *h = b->hash ? b->hash[i] : hbuf;
        if (!b->hash)
            tm_store__op_hash(&ops[i], hbuf);
        if (rep) {
            if ((rc = tm_store__verify(self, &ops[i], h, b->link ? b->link[i] : NULL,
                                       !b->bad || !b->bad[i], b->authentic && b->authentic[i], rep,
                                       &vctx)) < 0)
                goto cleanup;
            if (rc == 1)
                continue;
        } else if (b->bad && b->bad[i]) {
            continue;
        }
        if ((rc = s_op_insert(self, &ops[i], h, &fresh)))
            goto cleanup;
        held[i] = true; /* inserted now, or the same (origin, seq) was there */
        if (!fresh)
            continue;
        (*n_new)++;
        tm_store__digest_add_hash(acc, h);
        if (!ops[i].compacted && (rc = tm_store__materialise(self, &ops[i], &b->recs[i])))
            goto cleanup;
        if (!ops[i].compacted && ops[i].kind == TM_OP_REISSUE) {
            uint64_t aside = 0;
            if ((rc = tm_store__reissue_apply(self, &ops[i], &b->recs[i].u.reissue, acc, &aside)))
                goto cleanup;
            self->reissued_aside += aside;
            if (rep)
                rep->set_aside += (size_t)aside;
            if (aside)
                reissued = true;
        }
        size_t j = 0;
        while (j < n_origins && memcmp(origins[j], ops[i].origin, TM_NODE_ID_LEN) != 0)
            j++;
        if (j == n_origins)
            origins[n_origins++] = ops[i].origin;
    }
    rc = *n_new ? tm_store__digest_save(self, acc) : TM_OK;
    for (size_t j = 0; j < n_origins && rc == TM_OK; j++) {
        size_t k = 0;
        /* Ops set aside by a re-issue may be among those written: then the
         * table says what is held. */
        for (size_t i = 0; i < n && !reissued; i++)
            if (held[i] && memcmp(ops[i].origin, origins[j], TM_NODE_ID_LEN) == 0)
                seqs[k++] = ops[i].seq;
        qsort(seqs, k, sizeof *seqs, s_u64_cmp);
        rc = s_vv_advance(self, origins[j], seqs, k);
    }
cleanup:
    free(origins);
    free(held);
    free(seqs);
    return rc;
}

int tm_store_append_local(tm_store_t *self, uint32_t kind, uint64_t hlc, const uint8_t *body,
                          size_t body_len, uint64_t *seq_out)
{
    /* The op struct is not const-correct; the body is only read. */
    tm_op_t op = {.seq = 1,
                  .hlc = hlc,
                  .kind = kind,
                  .body = (uint8_t *)(uintptr_t)body,
                  .body_len = body_len};
    tm_store__rec_t rec;
    uint8_t acc[32];
    size_t n_new = 0;
    int64_t max_seq = 0;
    bool found;
    memcpy(op.origin, self->node_id, TM_NODE_ID_LEN);
    int rc = s_check_op(&op, &rec);
    if (rc)
        return rc;
    if ((rc = s_begin(self)))
        goto cleanup;
    /* Next after the highest we hold, not after the vector: peers may have
     * handed back ops of ours past a gap (a store restored from backup). */
    if ((rc = s_get_i64(self, ST_OP_MAX_SEQ, self->node_id, 0, &max_seq, &found)))
        goto cleanup;
    op.seq = (uint64_t)max_seq + 1;
    uint8_t h[32];
    tm_store__op_hash(&op, h);
    if ((rc = tm_store__sign(self, &op, h)))
        goto cleanup;
    memcpy(acc, self->acc, sizeof acc);
    batch_t b = {.ops = &op, .recs = &rec, .n = 1};
    if ((rc = s_write_ops(self, &b, &n_new, acc, NULL)))
        goto cleanup;
    if (n_new != 1) {
        rc = TM_EIO; /* cannot happen: seq was past the last one held */
        goto cleanup;
    }
    if ((rc = s_exec_id(self, ST_COMMIT)) == TM_OK)
        memcpy(self->acc, acc, sizeof acc); /* only what was committed */
cleanup:
    if (rc)
        s_rollback(self);
    else if (seq_out)
        *seq_out = op.seq;
    tm_store__rec_free(&rec);
    return rc;
}

int tm_store_apply_report(tm_store_t *self, const tm_op_t *ops, size_t n, size_t *n_new,
                          tm_apply_report_t *rep)
{
    size_t fresh = 0;
    uint8_t acc[32];
    int rc = TM_OK;
    bool verify = self->n_trusted > 0;
    if (n_new)
        *n_new = 0;
    if (rep)
        memset(rep, 0, sizeof *rep);
    if (n == 0)
        return TM_OK;
    tm_apply_report_t scratch;
    if (!rep)
        rep = &scratch;
    tm_store__rec_t *recs = calloc(n, sizeof *recs);
    bool *bad = calloc(n, sizeof *bad), *authentic = calloc(n, sizeof *authentic);
    /* Each op's hash and chain value are worked out once, here: the
     * signature check, the chain, the ops row and the digest all use them
     * (three SHA-256 per op were half the CPU of a catch-up). */
    uint8_t(*hash)[32] = malloc(n * sizeof *hash);
    uint8_t(*link)[32] = verify ? malloc(n * sizeof *link) : NULL;
    if (!recs || !bad || !authentic || !hash || (verify && !link)) {
        rc = TM_ENOMEM;
        goto cleanup;
    }
    /* Decode everything first. Unverified (tools, tests): one bad op
     * refuses the batch unwritten. Verified: a bad body is judged with its
     * op - evidence if its origin signed it - so that one op cannot hold
     * back the others a peer relays with it. */
    for (size_t i = 0; i < n && rc == TM_OK; i++) {
        rc = s_check_op(&ops[i], &recs[i]);
        if (rc == TM_EPROTO && verify && s_origin_ok(ops[i].origin) && ops[i].seq &&
            ops[i].seq <= INT64_MAX && ops[i].hlc <= INT64_MAX) {
            bad[i] = true;
            rc = TM_OK;
        }
        if (rc == TM_OK)
            tm_store__op_hash(&ops[i], hash[i]);
    }
    if (rc)
        goto cleanup;
    if (verify)
        tm_store__authenticate_runs(self, ops, n, (const uint8_t(*)[32])hash, link, authentic);
    if ((rc = s_begin(self)))
        goto cleanup;
    memcpy(acc, self->acc, sizeof acc);
    batch_t b = {.ops = ops,
                 .recs = recs,
                 .n = n,
                 .hash = (const uint8_t(*)[32])hash,
                 .link = (const uint8_t(*)[32])link,
                 .bad = bad,
                 .authentic = authentic};
    if ((rc = s_write_ops(self, &b, &fresh, acc, verify ? rep : NULL)) ||
        (rc = s_exec_id(self, ST_COMMIT)))
        goto cleanup;
    memcpy(self->acc, acc, sizeof acc); /* only what was committed */
    if (n_new)
        *n_new = fresh;
cleanup:
    if (rc)
        s_rollback(self);
    for (size_t i = 0; recs && i < n; i++)
        tm_store__rec_free(&recs[i]);
    free(recs);
    free(bad);
    free(authentic);
    free(hash);
    free(link);
    return rc;
}

int tm_store_apply(tm_store_t *self, const tm_op_t *ops, size_t n, size_t *n_new)
{
    return tm_store_apply_report(self, ops, n, n_new, NULL);
}

/* One OP_REISSUE (inside reincarnate's transaction, under the new origin
 * at seq): ops of origin `was` said again under the new one. */
static int s_reissue_write(tm_store_t *self, const uint8_t was[TM_NODE_ID_LEN],
                           const tm_store__void_t *v, size_t k, uint64_t seq, uint64_t hlc,
                           uint8_t acc[32])
{
    uint8_t *body = NULL, h[32];
    size_t len = 0, fresh = 0;
    tm_store__rec_t rec;
    memset(&rec, 0, sizeof rec);
    int rc = tm_store__reissue_encode(was, v, k, &body, &len);
    if (rc)
        return rc;
    tm_op_t op = {.seq = seq, .hlc = hlc, .kind = TM_OP_REISSUE, .body = body, .body_len = len};
    memcpy(op.origin, self->node_id, TM_NODE_ID_LEN);
    if ((rc = s_check_op(&op, &rec)) == TM_OK) {
        tm_store__op_hash(&op, h);
        if ((rc = tm_store__sign(self, &op, h)) == TM_OK)
            rc = s_write_ops(self, &(batch_t){.ops = &op, .recs = &rec, .n = 1}, &fresh, acc, NULL);
    }
    tm_store__rec_free(&rec);
    free(body);
    return rc;
}

/* meta 'self_check': the origin it is for, then the seq, big-endian. */
#define SELF_CHECK_LEN (TM_NODE_ID_LEN + 8)

int tm_store_self_check_mark(tm_store_t *self, uint64_t *seq, bool *have)
{
    sqlite3_stmt *st = NULL;
    *have = false;
    *seq = 0;
    int rc = tm_store__err(
        self, sqlite3_prepare_v2(self->db, "SELECT value FROM meta WHERE key = 'self_check'", -1,
                                 &st, NULL));
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(st, 0);
        /* A mark of another origin is from before a move to a new one. */
        if (sqlite3_column_bytes(st, 0) == SELF_CHECK_LEN &&
            memcmp(v, self->node_id, TM_NODE_ID_LEN) == 0) {
            for (int i = 0; i < 8; i++)
                *seq = *seq << 8 | v[TM_NODE_ID_LEN + i];
            *have = true;
        }
    } else if (src != SQLITE_DONE) {
        rc = tm_store__err(self, src);
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_store_set_self_check_mark(tm_store_t *self, const uint64_t *seq)
{
    sqlite3_stmt *st = NULL;
    uint8_t v[SELF_CHECK_LEN];
    int rc = tm_store__err(
        self,
        sqlite3_prepare_v2(self->db,
                           seq ? "INSERT OR REPLACE INTO meta(key, value) VALUES('self_check', ?1)"
                               : "DELETE FROM meta WHERE key = 'self_check'",
                           -1, &st, NULL));
    if (rc)
        return rc;
    if (seq) {
        memcpy(v, self->node_id, TM_NODE_ID_LEN);
        for (int i = 0; i < 8; i++)
            v[TM_NODE_ID_LEN + i] = (uint8_t)(*seq >> (56 - 8 * i));
        sqlite3_bind_blob(st, 1, v, sizeof v, SQLITE_STATIC);
    }
    rc = tm_store__exec(self, st);
    sqlite3_finalize(st);
    return rc;
}

int tm_store_reincarnate(tm_store_t *self, uint64_t keep, size_t *n_moved)
{
    tm_range_t r = {.from = keep + 1, .to = INT64_MAX};
    tm_op_t *old = NULL;
    size_t n = 0;
    uint8_t acc[32], id[TM_NODE_ID_LEN], was[TM_NODE_ID_LEN];
    *n_moved = 0;
    if (!self->signer)
        return TM_ESTATE;
    memcpy(r.origin, self->node_id, TM_NODE_ID_LEN);
    memcpy(was, self->node_id, TM_NODE_ID_LEN);
    int rc = tm_store_read_ops(self, &r, 1, 0, 0, &old, &n);
    if (rc)
        return rc;
    uint32_t inc = 0;
    while (inc == 0)
        tm_random(&inc, sizeof inc);
    tm_sign_node_id(self->sign_pk, inc, id);
    tm_store__rec_t *recs = calloc(n + 1, sizeof *recs);
    tm_store__void_t *voids = calloc(n < TM_REISSUE_MAX ? n + 1 : TM_REISSUE_MAX, sizeof *voids);
    if (!recs || !voids) {
        rc = TM_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n && rc == TM_OK; i++)
        rc = old[i].compacted ? TM_OK : s_check_op(&old[i], &recs[i]);
    if (rc || (rc = s_begin(self)))
        goto cleanup;
    memcpy(acc, self->acc, sizeof acc);
    /* The forked ops leave the old origin (whose real ops come back from
     * the peers), and the store takes the new origin... */
    static const char del[] = "DELETE FROM ops WHERE origin = ?1 AND seq > ?2;"
                              "UPDATE vv SET seq = min(seq, ?2) WHERE origin = ?1;"
                              "UPDATE meta SET value = ?3 WHERE key = 'node_id';";
    const char *tail = del;
    while (rc == TM_OK && *tail) {
        sqlite3_stmt *st = NULL;
        rc = tm_store__err(self, sqlite3_prepare_v2(self->db, tail, -1, &st, &tail));
        if (rc || !st)
            break;
        sqlite3_bind_blob(st, 1, was, TM_NODE_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, keep > INT64_MAX ? INT64_MAX : (sqlite3_int64)keep);
        if (sqlite3_bind_parameter_count(st) >= 3)
            sqlite3_bind_blob(st, 3, id, TM_NODE_ID_LEN, SQLITE_STATIC);
        rc = tm_store__err(self, sqlite3_step(st));
        sqlite3_finalize(st);
    }
    memcpy(self->node_id, id, TM_NODE_ID_LEN);
    /* ... first saying which ops of the old origin it says again (every
     * till then sets those aside, or skips them, and takes the ones its
     * peers held at those seqs: trust.c)... */
    uint64_t seq = 0;
    for (size_t from = 0; from < n && rc == TM_OK;) {
        size_t k = 0;
        uint64_t hlc = 0;
        for (; from < n && k < TM_REISSUE_MAX; from++) {
            if (old[from].compacted)
                continue;
            voids[k].seq = old[from].seq;
            tm_store__op_hash(&old[from], voids[k++].hash);
            if (old[from].hlc > hlc)
                hlc = old[from].hlc;
        }
        if (k)
            rc = s_reissue_write(self, was, voids, k, ++seq, hlc, acc);
    }
    /* ... under which they are said again, re-signed. */
    for (size_t i = 0; i < n && rc == TM_OK; i++) {
        size_t fresh = 0;
        tm_store__digest_sub(acc, &old[i]);
        if (old[i].compacted)
            continue; /* a booked sale: nothing to say again */
        tm_op_t op = old[i];
        memcpy(op.origin, id, TM_NODE_ID_LEN);
        op.seq = ++seq;
        ++*n_moved;
        op.has_sig = false;
        uint8_t h[32];
        tm_store__op_hash(&op, h);
        if ((rc = tm_store__sign(self, &op, h)) == TM_OK)
            rc = s_write_ops(self, &(batch_t){.ops = &op, .recs = &recs[i], .n = 1}, &fresh, acc,
                             NULL);
    }
    if (rc == TM_OK && (rc = tm_store__digest_save(self, acc)) == TM_OK &&
        (rc = s_exec_id(self, ST_COMMIT)) == TM_OK)
        memcpy(self->acc, acc, sizeof acc);
cleanup:
    if (rc) {
        s_rollback(self);
        memcpy(self->node_id, was, TM_NODE_ID_LEN);
        *n_moved = 0;
    }
    for (size_t i = 0; recs && i < n; i++)
        tm_store__rec_free(&recs[i]);
    free(recs);
    free(voids);
    tm_store_ops_free(old, n);
    return rc;
}

int tm_store_set_signer(tm_store_t *self, const uint8_t pk[32], const uint8_t sk[64], bool *sealed)
{
    uint8_t id[TM_NODE_ID_LEN];
    bool dummy;
    sealed = sealed ? sealed : &dummy;
    *sealed = false;
    memcpy(self->sign_pk, pk, 32);
    memcpy(self->sign_sk, sk, 64);
    self->signer = true;
    if (tm_sign_owns(pk, self->node_id))
        return TM_OK; /* signing under this key already */
    /* A random incarnation per store: a store made afresh for the same key
     * (a corrupt one moved aside, a wiped data_dir) writes as a new origin,
     * and never re-uses a seq that peers hold from the old one. */
    uint32_t inc = 0;
    while (inc == 0)
        tm_random(&inc, sizeof inc);
    tm_sign_node_id(pk, inc, id);
    /* Take the key's origin and vouch for the unsigned history held: one
     * transaction, so a crash leaves the old origin and no seal, or both. */
    tm_vv_t vv = {0};
    tm_seal_entry_t *e = NULL;
    uint8_t *body = NULL;
    size_t len = 0, k = 0;
    int rc = tm_store_vv(self, &vv);
    if (rc)
        return rc;
    if (!(e = calloc(vv.n + 1, sizeof *e))) {
        rc = TM_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < vv.n; i++) {
        if (vv.e[i].seq == 0 || tm_sign_owns(pk, vv.e[i].origin))
            continue;
        memcpy(e[k].origin, vv.e[i].origin, TM_NODE_ID_LEN);
        e[k++].seq = vv.e[i].seq;
    }
    if ((rc = tm_wire_seal_encode(e, k, &body, &len)))
        goto cleanup;
    /* The seal first, under the new origin, then the origin is recorded: a
     * crash between the two writes the seal again on the next start (a
     * second seal changes nothing); the other order could lose the seal. */
    uint8_t old[TM_NODE_ID_LEN];
    memcpy(old, self->node_id, sizeof old);
    memcpy(self->node_id, id, TM_NODE_ID_LEN);
    self->counts_ok = false;
    /* Nothing unsigned held (a new store): no seal to write. */
    rc = k ? tm_store_append_local(self, TM_OP_SEAL, 0, body, len, NULL) : TM_OK;
    sqlite3_stmt *st = NULL;
    if (rc == TM_OK) {
        rc = tm_store__err(
            self, sqlite3_prepare_v2(self->db, "UPDATE meta SET value = ?1 WHERE key = 'node_id'",
                                     -1, &st, NULL));
        if (rc == TM_OK) {
            sqlite3_bind_blob(st, 1, id, TM_NODE_ID_LEN, SQLITE_STATIC);
            rc = tm_store__err(self, sqlite3_step(st));
        }
        sqlite3_finalize(st);
    }
    if (rc) {
        memcpy(self->node_id, old, TM_NODE_ID_LEN);
        self->signer = false;
        goto cleanup;
    }
    *sealed = k > 0;
cleanup:
    free(body);
    free(e);
    tm_vv_free(&vv);
    return rc;
}

/* ---- version vectors -------------------------------------------------- */

int tm_store_vv(tm_store_t *self, tm_vv_t *out)
{
    size_t cap = 0;
    int rc = TM_OK, src;
    out->e = NULL;
    out->n = 0;
    sqlite3_stmt *st = s_stmt(self, ST_VV_ALL, &rc);
    if (!st)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != TM_NODE_ID_LEN)
            continue; /* the schema's CHECK on ops makes this impossible */
        if (out->n == cap) {
            cap = cap ? 2 * cap : 8;
            tm_vv_entry_t *e = realloc(out->e, cap * sizeof *e);
            if (!e) {
                rc = TM_ENOMEM;
                goto cleanup;
            }
            out->e = e;
        }
        memcpy(out->e[out->n].origin, sqlite3_column_blob(st, 0), TM_NODE_ID_LEN);
        out->e[out->n++].seq = (uint64_t)sqlite3_column_int64(st, 1);
    }
    rc = tm_store__err(self, src);
cleanup:
    sqlite3_reset(st);
    if (rc)
        tm_vv_free(out);
    return rc;
}

void tm_vv_free(tm_vv_t *vv)
{
    if (!vv)
        return;
    free(vv->e);
    vv->e = NULL;
    vv->n = 0;
}

/* Linear: a vector has one entry per till, and callers may build theirs in
 * any order. */
uint64_t tm_vv_get(const tm_vv_t *vv, const uint8_t origin[TM_NODE_ID_LEN])
{
    for (size_t i = 0; vv && i < vv->n; i++)
        if (memcmp(vv->e[i].origin, origin, TM_NODE_ID_LEN) == 0)
            return vv->e[i].seq;
    return 0;
}

static int s_range_cmp(const void *a, const void *b)
{
    const tm_range_t *x = a, *y = b;
    int c = memcmp(x->origin, y->origin, TM_NODE_ID_LEN);
    if (c)
        return c;
    return x->from < y->from ? -1 : x->from > y->from;
}

int tm_vv_missing(const tm_vv_t *mine, const tm_vv_t *theirs, tm_range_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!theirs || theirs->n == 0)
        return TM_OK;
    tm_range_t *r = malloc(theirs->n * sizeof *r);
    if (!r)
        return TM_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < theirs->n; i++) {
        uint64_t have = tm_vv_get(mine, theirs->e[i].origin);
        if (theirs->e[i].seq <= have)
            continue;
        /* A vector naming an origin twice still yields one range for it. */
        size_t j = 0;
        while (j < k && memcmp(r[j].origin, theirs->e[i].origin, TM_NODE_ID_LEN) != 0)
            j++;
        if (j < k) {
            if (r[j].to < theirs->e[i].seq)
                r[j].to = theirs->e[i].seq;
            continue;
        }
        memcpy(r[k].origin, theirs->e[i].origin, TM_NODE_ID_LEN);
        r[k].from = have + 1;
        r[k].to = theirs->e[i].seq;
        k++;
    }
    if (k == 0) {
        free(r);
        return TM_OK;
    }
    qsort(r, k, sizeof *r, s_range_cmp);
    *out = r;
    *n = k;
    return TM_OK;
}

/* ---- reading ops for peers -------------------------------------------- */

void tm_store_ops_free(tm_op_t *ops, size_t n)
{
    for (size_t i = 0; ops && i < n; i++)
        free(ops[i].body);
    free(ops);
}

typedef struct {
    tm_op_t *ops;
    size_t n, cap;
    size_t bytes;
    size_t max_ops, max_bytes;
} read_acc_t;

/* Appends the current row of ST_READ_RANGE unless a bound says stop
 * (*full). The first op is always taken, however big. */
static int s_read_row(sqlite3_stmt *st, const uint8_t origin[TM_NODE_ID_LEN], read_acc_t *a,
                      bool *full)
{
    size_t len = (size_t)sqlite3_column_bytes(st, 3);
    if (a->n > 0 && a->max_bytes && a->bytes + len > a->max_bytes) {
        *full = true;
        return TM_OK;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        tm_op_t *o = realloc(a->ops, cap * sizeof *o);
        if (!o)
            return TM_ENOMEM;
        a->ops = o;
        a->cap = cap;
    }
    tm_op_t *op = &a->ops[a->n];
    memset(op, 0, sizeof *op);
    if (len && !(op->body = malloc(len)))
        return TM_ENOMEM;
    if (len)
        memcpy(op->body, sqlite3_column_blob(st, 3), len);
    memcpy(op->origin, origin, TM_NODE_ID_LEN);
    op->seq = (uint64_t)sqlite3_column_int64(st, 0);
    op->hlc = (uint64_t)sqlite3_column_int64(st, 1);
    op->kind = (uint32_t)sqlite3_column_int64(st, 2);
    op->body_len = len;
    if (sqlite3_column_int(st, 5) && sqlite3_column_bytes(st, 4) == 32) {
        op->compacted = true;
        memcpy(op->hash, sqlite3_column_blob(st, 4), 32);
    }
    if (sqlite3_column_bytes(st, 6) == 64 && sqlite3_column_bytes(st, 7) == 32) {
        op->has_sig = true;
        memcpy(op->sig, sqlite3_column_blob(st, 6), 64);
        memcpy(op->prev, sqlite3_column_blob(st, 7), 32);
    }
    a->n++;
    a->bytes += len;
    *full = a->max_ops && a->n >= a->max_ops;
    return TM_OK;
}

/* r->to has been capped at INT64_MAX. */
static int s_read_range(tm_store_t *self, const tm_range_t *r, uint64_t from, read_acc_t *a,
                        bool *full)
{
    int rc = TM_OK, src = SQLITE_DONE;
    sqlite3_stmt *st = s_stmt(self, ST_READ_RANGE, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, r->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)from);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->to);
    while (!*full && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = s_read_row(st, r->origin, a, full)))
            goto cleanup;
    }
    if (!*full)
        rc = tm_store__err(self, src);
cleanup:
    sqlite3_reset(st);
    return rc;
}

int tm_store_read_ops(tm_store_t *self, const tm_range_t *ranges, size_t n_ranges, size_t max_ops,
                      size_t max_bytes, tm_op_t **ops, size_t *n)
{
    read_acc_t a = {.max_ops = max_ops, .max_bytes = max_bytes};
    bool full = false;
    int rc = TM_OK;
    *ops = NULL;
    *n = 0;
    if (n_ranges == 0)
        return TM_OK;
    /* Ranges come from a peer: sort a copy so the answer is in (origin,
     * seq) order, and never send an op twice for overlapping ranges. */
    tm_range_t *r = malloc(n_ranges * sizeof *r);
    if (!r)
        return TM_ENOMEM;
    memcpy(r, ranges, n_ranges * sizeof *r);
    for (size_t i = 0; i < n_ranges; i++) /* no seq past this is ever stored */
        if (r[i].to > INT64_MAX)
            r[i].to = INT64_MAX;
    qsort(r, n_ranges, sizeof *r, s_range_cmp);
    uint64_t done = 0; /* highest seq already read from r[i - 1].origin */
    for (size_t i = 0; i < n_ranges && !full && rc == TM_OK; i++) {
        if (i == 0 || memcmp(r[i].origin, r[i - 1].origin, TM_NODE_ID_LEN) != 0)
            done = 0;
        uint64_t from = r[i].from > done ? r[i].from : done + 1;
        if (from == 0)
            from = 1;
        if (from <= r[i].to)
            rc = s_read_range(self, &r[i], from, &a, &full);
        if (r[i].to > done)
            done = r[i].to;
    }
    free(r);
    if (rc) {
        tm_store_ops_free(a.ops, a.n);
        return rc;
    }
    *ops = a.ops;
    *n = a.n;
    return TM_OK;
}

/* ---- digest, counts --------------------------------------------------- */

int tm_store_counts(tm_store_t *self, tm_store_counts_t *out)
{
    static const char sql[] = "SELECT (SELECT count(*) FROM ops),"
                              " (SELECT count(*) FROM ops WHERE origin = ?1),"
                              " (SELECT count(*) FROM sales),"
                              " (SELECT count(*) FROM customers),"
                              " (SELECT count(*) FROM sales WHERE acked = 1)";
    sqlite3_stmt *st = NULL;
    int rc = TM_OK;
    if (self->counts_ok)
        goto done;
    /* Not cached: the answer is, until the next write. */
    if ((rc = tm_store__err(self, sqlite3_prepare_v2(self->db, sql, -1, &st, NULL))))
        goto cleanup;
    sqlite3_bind_blob(st, 1, self->node_id, TM_NODE_ID_LEN, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? TM_EIO : tm_store__err(self, src);
        goto cleanup;
    }
    self->counts.ops = (uint64_t)sqlite3_column_int64(st, 0);
    self->counts.local_ops = (uint64_t)sqlite3_column_int64(st, 1);
    self->counts.sales = (uint64_t)sqlite3_column_int64(st, 2);
    self->counts.customers = (uint64_t)sqlite3_column_int64(st, 3);
    self->counts.erp_acked = (uint64_t)sqlite3_column_int64(st, 4);
    self->counts_ok = true;
done:
    *out = self->counts;
cleanup:
    sqlite3_finalize(st);
    return rc;
}

int tm_store_max_hlc(tm_store_t *self, uint64_t *out)
{
    int rc = TM_OK;
    *out = 0;
    sqlite3_stmt *st = s_stmt(self, ST_MAX_HLC, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, self->node_id, TM_NODE_ID_LEN, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}
