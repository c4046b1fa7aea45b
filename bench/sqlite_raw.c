/* sqlite_raw - the physical limit for catch-up: the same rows a catch-up
 * writes per sale (op log row, version vector, sale, 2 lines, 1 payment),
 * inserted with plain prepared statements, 1,000 sales per transaction,
 * into the same schema (made by tm_store_open) with the same pragmas (WAL,
 * synchronous=FULL). No decoding, no checks, no digest. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tm_store.h"

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

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: sqlite_raw FILE.db N\n");
        return 2;
    }
    long n = atol(argv[2]);
    tm_store_t *st;
    if (tm_store_open(argv[1], NULL, &st) != TM_OK)
        return 1;
    tm_store_destroy(&st);
    sqlite3 *db;
    sqlite3_stmt *op, *vv, *sale, *line, *pay;
    CHECK(sqlite3_open(argv[1], &db));
    CHECK(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", 0, 0, 0));
    CHECK(sqlite3_prepare_v2(db, "INSERT INTO ops(origin,seq,hlc,kind,body) VALUES(?,?,?,1,?)", -1,
                             &op, 0));
    CHECK(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO vv(origin,seq) VALUES(?,?)", -1, &vv, 0));
    CHECK(sqlite3_prepare_v2(db,
                             "INSERT INTO sales(sale_id,till,receipt_no,created_at,currency,total,"
                             "customer_id,customer_id_type,customer_email,refund_of,op_origin,"
                             "op_seq,op_hlc) VALUES(?,'bench',?,'2026-11-23T12:00:00Z','CLP',4880,"
                             "NULL,0,'','',?,?,?)",
                             -1, &sale, 0));
    CHECK(sqlite3_prepare_v2(db,
                             "INSERT INTO sale_lines VALUES(?,?,'7801234','Pan amasado',"
                             "2000,990,0,1900)",
                             -1, &line, 0));
    CHECK(
        sqlite3_prepare_v2(db, "INSERT INTO sale_payments VALUES(?,0,2,4880,'AUTH')", -1, &pay, 0));
    uint8_t origin[16], body[160];
    tm_random(origin, sizeof origin);
    memset(body, 'b', sizeof body);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (i % 1000 == 0)
            CHECK(sqlite3_exec(db, "BEGIN", 0, 0, 0));
        char id[TM_UUID_LEN];
        tm_uuid_new(id);
        sqlite3_bind_blob(op, 1, origin, 16, SQLITE_STATIC);
        sqlite3_bind_int64(op, 2, i + 1);
        sqlite3_bind_int64(op, 3, (1763900000000LL + i) << 16);
        sqlite3_bind_blob(op, 4, body, sizeof body, SQLITE_STATIC);
        CHECK(sqlite3_step(op));
        sqlite3_reset(op);
        sqlite3_bind_blob(vv, 1, origin, 16, SQLITE_STATIC);
        sqlite3_bind_int64(vv, 2, i + 1);
        CHECK(sqlite3_step(vv));
        sqlite3_reset(vv);
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
        if (i % 1000 == 999 || i == n - 1)
            CHECK(sqlite3_exec(db, "COMMIT", 0, 0, 0));
    }
    double dt = now_s() - t0;
    printf("sqlite_raw_rows_per_s %.0f n=%ld batch=1000\n", (double)n / dt, n);
    sqlite3_finalize(op);
    sqlite3_finalize(vv);
    sqlite3_finalize(sale);
    sqlite3_finalize(line);
    sqlite3_finalize(pay);
    sqlite3_close(db);
    return 0;
}
