/* sqlite_raw - the physical limit for catch-up: the rows a catch-up leaves
 * per sale (op log row with its hash, signature and chain link, version
 * vector, sale, 2 lines, 1 payment; the digest once per batch), inserted
 * with plain prepared statements, 1,000 sales per transaction (a pull
 * answer's size), into the same schema (made by tm_store_open) with the
 * same durability (WAL, synchronous=FULL). No decoding, no checks, no
 * signature, no digest arithmetic.
 *
 * usage: sqlite_raw FILE.db N [tuned]: with "tuned", the connection also
 * takes the pragmas tm_store sets beyond durability (tm_store_tuning_sql:
 * foreign keys on, cache and checkpoint sizes), so that the two are
 * compared on equal terms; without, SQLite's defaults. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tm_store.h"

#define BATCH 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_ != SQLITE_OK && rc_ != SQLITE_DONE) {                                              \
            fprintf(stderr, "sqlite_raw: %s: %s\n", #x, sqlite3_errmsg(db));                       \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: sqlite_raw FILE.db N [tuned]\n");
        return 2;
    }
    long n = atol(argv[2]);
    int tuned = argc > 3 && strcmp(argv[3], "tuned") == 0;
    tm_store_t *st;
    if (tm_store_open(argv[1], NULL, &st) != TM_OK)
        return 1;
    tm_store_destroy(&st);
    sqlite3 *db;
    sqlite3_stmt *op, *vv, *sale, *line, *pay, *dig;
    CHECK(sqlite3_open(argv[1], &db));
    CHECK(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", 0, 0, 0));
    if (tuned)
        CHECK(sqlite3_exec(db, tm_store_tuning_sql(), 0, 0, 0));
    CHECK(sqlite3_prepare_v2(db,
                             "INSERT INTO ops(origin,seq,hlc,kind,body,hash,compacted,sig,prev)"
                             " VALUES(?,?,?,1,?,?,0,?,?)",
                             -1, &op, 0));
    CHECK(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO vv(origin,seq) VALUES(?,?)", -1, &vv, 0));
    CHECK(sqlite3_prepare_v2(db,
                             "INSERT INTO sales(sale_id,till,receipt_no,created_at,currency,total,"
                             "customer_id,customer_id_type,customer_email,refund_of,op_origin,"
                             "op_seq,op_hlc,clock_offset_ms,clock_skewed,acked) VALUES(?,'bench',?,"
                             "'2026-11-23T12:00:00Z','CLP',4880,NULL,0,'','',?,?,?,NULL,0,0)",
                             -1, &sale, 0));
    CHECK(sqlite3_prepare_v2(db,
                             "INSERT INTO sale_lines(sale_ins,idx,sku,name,qty,unit_price,discount,"
                             "tax_rate,catalogue_version) VALUES(?,?,'7801234','Pan amasado',"
                             "2000,990,0,1900,0)",
                             -1, &line, 0));
    CHECK(sqlite3_prepare_v2(db,
                             "INSERT INTO sale_payments(sale_ins,idx,method,amount,reference)"
                             " VALUES(?,0,2,4880,'AUTH')",
                             -1, &pay, 0));
    CHECK(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key,value) VALUES('digest_acc',?)",
                             -1, &dig, 0));
    /* A sale body is about 155 bytes; hash, signature and link are as
     * incompressible as the real ones. */
    uint8_t origin[16], body[155], hash[32], sig[64], prev[32];
    tm_random(origin, sizeof origin);
    tm_random(body, sizeof body);
    double t0 = now_s(), c0 = cpu_s();
    for (long i = 0; i < n; i++) {
        if (i % BATCH == 0)
            CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0));
        char id[TM_UUID_LEN];
        tm_uuid_new(id);
        tm_random(hash, sizeof hash);
        tm_random(sig, sizeof sig);
        tm_random(prev, sizeof prev);
        sqlite3_bind_blob(op, 1, origin, 16, SQLITE_STATIC);
        sqlite3_bind_int64(op, 2, i + 1);
        sqlite3_bind_int64(op, 3, (1763900000000LL + i) << 16);
        sqlite3_bind_blob(op, 4, body, sizeof body, SQLITE_STATIC);
        sqlite3_bind_blob(op, 5, hash, sizeof hash, SQLITE_STATIC);
        sqlite3_bind_blob(op, 6, sig, sizeof sig, SQLITE_STATIC);
        sqlite3_bind_blob(op, 7, prev, sizeof prev, SQLITE_STATIC);
        CHECK(sqlite3_step(op));
        sqlite3_reset(op);
        sqlite3_bind_text(sale, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(sale, 2, i + 1);
        sqlite3_bind_blob(sale, 3, origin, 16, SQLITE_STATIC);
        sqlite3_bind_int64(sale, 4, i + 1);
        sqlite3_bind_int64(sale, 5, (1763900000000LL + i) << 16);
        CHECK(sqlite3_step(sale));
        sqlite3_reset(sale);
        sqlite3_int64 ins = sqlite3_last_insert_rowid(db);
        for (int k = 0; k < 2; k++) {
            sqlite3_bind_int64(line, 1, ins);
            sqlite3_bind_int(line, 2, k);
            CHECK(sqlite3_step(line));
            sqlite3_reset(line);
        }
        sqlite3_bind_int64(pay, 1, ins);
        CHECK(sqlite3_step(pay));
        sqlite3_reset(pay);
        if (i % BATCH == BATCH - 1 || i == n - 1) {
            /* Once per batch, as the store does: the vector and the digest. */
            sqlite3_bind_blob(vv, 1, origin, 16, SQLITE_STATIC);
            sqlite3_bind_int64(vv, 2, i + 1);
            CHECK(sqlite3_step(vv));
            sqlite3_reset(vv);
            sqlite3_bind_blob(dig, 1, hash, sizeof hash, SQLITE_STATIC);
            CHECK(sqlite3_step(dig));
            sqlite3_reset(dig);
            CHECK(sqlite3_exec(db, "COMMIT", 0, 0, 0));
        }
    }
    double dt = now_s() - t0, cpu = cpu_s() - c0;
    printf("sqlite_raw_rows_per_s %.0f n=%ld batch=%d tuned=%d cpu_us_per_row=%.1f\n",
           (double)n / dt, n, BATCH, tuned, cpu / (double)n * 1e6);
    sqlite3_finalize(op);
    sqlite3_finalize(vv);
    sqlite3_finalize(sale);
    sqlite3_finalize(line);
    sqlite3_finalize(pay);
    sqlite3_finalize(dig);
    sqlite3_close(db);
    return 0;
}
