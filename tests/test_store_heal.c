/* test_store_heal.c - the files under the store, on real SQLite files: a
 * database deleted or replaced while open, put back from the open copy; a
 * corrupt store moved aside and its op log salvaged. */
/* nftw() is X/Open. */
#define _XOPEN_SOURCE 700

#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tm_store.h"
#include "tm_wire.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tm_heal_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/store.db", dir);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void teardown(void)
{
    (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(heal, .init = setup, .fini = teardown);

/* ---- helpers ---------------------------------------------------------- */

static tm_store_t *open_store(void)
{
    tm_store_t *s = NULL;
    int rc = tm_store_open(path, NULL, &s);
    cr_assert_eq(rc, TM_OK, "open: %s", tm_strerror(rc));
    return s;
}

static void sale_body(int id, const char *till, uint64_t receipt, uint8_t **buf, size_t *len)
{
    tm_sale_t s;
    memset(&s, 0, sizeof s);
    snprintf(s.sale_id, sizeof s.sale_id, "00000000-0000-4000-8000-%012d", id);
    tm_strlcpy(s.till, till, sizeof s.till);
    s.receipt_no = receipt;
    tm_strlcpy(s.created_at, "2026-11-23T12:00:00Z", sizeof s.created_at);
    tm_strlcpy(s.currency, "CLP", sizeof s.currency);
    s.lines = calloc(1, sizeof *s.lines);
    s.n_lines = 1;
    snprintf(s.lines[0].sku, sizeof s.lines[0].sku, "SKU-%d", id);
    snprintf(s.lines[0].name, sizeof s.lines[0].name, "a product with a longish name %d", id);
    s.lines[0].qty = 1000;
    s.lines[0].unit_price = 990;
    s.lines[0].tax_rate = 1900;
    s.total = 990;
    s.payments = calloc(1, sizeof *s.payments);
    s.n_payments = 1;
    s.payments[0].method = TM_PAY_CASH;
    s.payments[0].amount = s.total;
    cr_assert_eq(tm_wire_sale_encode(&s, buf, len), TM_OK);
    tm_sale_free(&s);
}

static int append_sale(tm_store_t *st, int id)
{
    uint8_t *b;
    size_t n;
    sale_body(id, "till-1", (uint64_t)id, &b, &n);
    int rc = tm_store_append_local(st, TM_OP_SALE, (uint64_t)id << 16, b, n, NULL);
    free(b);
    return rc;
}

static int apply_peer_sale(tm_store_t *st, uint8_t origin, uint64_t seq, int id)
{
    tm_op_t op = {.seq = seq, .hlc = (uint64_t)id << 16, .kind = TM_OP_SALE};
    memset(op.origin, origin, TM_NODE_ID_LEN);
    sale_body(id, "till-2", seq, &op.body, &op.body_len);
    int rc = tm_store_apply(st, &op, 1, NULL);
    free(op.body);
    return rc;
}

static int has_sale(tm_store_t *st, int id)
{
    char sid[TM_UUID_LEN];
    tm_sale_t s;
    snprintf(sid, sizeof sid, "00000000-0000-4000-8000-%012d", id);
    if (tm_store_get_sale(st, sid, &s) != TM_OK)
        return 0;
    tm_sale_free(&s);
    return 1;
}

static uint64_t count_sales(tm_store_t *st)
{
    tm_store_counts_t c;
    cr_assert_eq(tm_store_counts(st, &c), TM_OK);
    return c.sales;
}

static void unlink_sfx(const char *sfx)
{
    char p[160];
    snprintf(p, sizeof p, "%s%s", path, sfx);
    unlink(p);
}

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* ---- deleted or replaced while open ----------------------------------- */

Test(heal, rm_under_an_open_store_refuses_writes_then_restores)
{
    uint8_t id1[TM_NODE_ID_LEN], id2[TM_NODE_ID_LEN];
    tm_store_t *st = open_store();
    tm_store_node_id(st, id1);
    for (int i = 1; i <= 50; i++)
        cr_assert_eq(append_sale(st, i), TM_OK);
    cr_assert_eq(tm_store_check_file(st), TM_OK);
    unlink_sfx("");
    unlink_sfx("-wal");
    unlink_sfx("-shm");
    /* The next write notices by itself, before any periodic check. */
    cr_assert_eq(append_sale(st, 51), TM_ELOST);
    cr_assert_eq(apply_peer_sale(st, 0x22, 1, 1000), TM_ELOST);
    cr_assert_eq(tm_store_is_lost(st), 1);
    cr_assert(strstr(tm_store_lost_reason(st), "was deleted"), "%s", tm_store_lost_reason(st));
    cr_assert(has_sale(st, 50), "reads answer from the open copy");
    char aside[256];
    int rc = tm_store_restore(st, time(NULL), aside, sizeof aside);
    cr_assert_eq(rc, TM_OK, "restore: %s (%s)", tm_strerror(rc), tm_store_errmsg(st));
    cr_assert_str_empty(aside);
    cr_assert_eq(tm_store_is_lost(st), 0);
    cr_assert_eq(tm_store_check_file(st), TM_OK);
    cr_assert_eq(append_sale(st, 51), TM_OK);
    cr_assert_eq(apply_peer_sale(st, 0x22, 1, 1000), TM_OK);
    tm_store_destroy(&st);
    /* What a restart sees: the real file holds everything, same node id. */
    st = open_store();
    tm_store_node_id(st, id2);
    cr_assert_eq(memcmp(id1, id2, sizeof id1), 0);
    cr_assert_eq(count_sales(st), 52);
    cr_assert(has_sale(st, 51) && has_sale(st, 1000));
    tm_store_destroy(&st);
}

Test(heal, deleted_wal_alone_is_noticed_and_its_commits_kept)
{
    tm_store_t *st = open_store();
    for (int i = 1; i <= 20; i++) /* far below the auto-checkpoint: all in the -wal */
        cr_assert_eq(append_sale(st, i), TM_OK);
    unlink_sfx("-wal");
    cr_assert_eq(tm_store_check_file(st), TM_ELOST);
    cr_assert(strstr(tm_store_lost_reason(st), "write-ahead log"), "%s", tm_store_lost_reason(st));
    char aside[256];
    cr_assert_eq(tm_store_restore(st, time(NULL), aside, sizeof aside), TM_OK, "%s",
                 tm_store_errmsg(st));
    cr_assert_str_empty(aside, "our own main file is not someone else's");
    tm_store_destroy(&st);
    st = open_store();
    cr_assert_eq(count_sales(st), 20);
    tm_store_destroy(&st);
}

Test(heal, replaced_file_is_moved_aside_not_overwritten)
{
    tm_store_t *st = open_store();
    for (int i = 1; i <= 5; i++)
        cr_assert_eq(append_sale(st, i), TM_OK);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    fputs("an old backup, say\n", f);
    fclose(f);
    cr_assert_eq(rename(tmp, path), 0);
    cr_assert_eq(append_sale(st, 6), TM_ELOST);
    cr_assert(strstr(tm_store_lost_reason(st), "replaced"), "%s", tm_store_lost_reason(st));
    char aside[256], moved[300];
    cr_assert_eq(tm_store_restore(st, 1764000000, aside, sizeof aside), TM_OK, "%s",
                 tm_store_errmsg(st));
    cr_assert(strstr(aside, "/replaced-20251124T"), "%s", aside);
    snprintf(moved, sizeof moved, "%s/store.db", aside);
    f = fopen(moved, "r");
    cr_assert_not_null(f, "the stranger's file is kept at %s", moved);
    char line[64] = "";
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cr_assert_str_eq(line, "an old backup, say\n");
    snprintf(moved, sizeof moved, "%s/store.db-wal", aside);
    cr_assert(!exists(moved), "our -wal must not go aside with the stranger's file");
    cr_assert_eq(append_sale(st, 6), TM_OK);
    cr_assert_eq(count_sales(st), 6);
    tm_store_destroy(&st);
    st = open_store();
    cr_assert_eq(count_sales(st), 6);
    tm_store_destroy(&st);
}

Test(heal, restore_waits_while_the_directory_cannot_be_made)
{
    tm_store_t *st = open_store();
    cr_assert_eq(append_sale(st, 1), TM_OK);
    unlink_sfx("");
    unlink_sfx("-wal");
    unlink_sfx("-shm");
    cr_assert_eq(rmdir(dir), 0);
    FILE *f = fopen(dir, "w"); /* the directory's name taken by a file */
    fclose(f);
    char aside[256];
    cr_assert_eq(tm_store_check_file(st), TM_ELOST);
    cr_assert_neq(tm_store_restore(st, time(NULL), aside, sizeof aside), TM_OK);
    cr_assert(strstr(tm_store_errmsg(st), "not a directory") ||
                  strstr(tm_store_errmsg(st), "no longer a directory"),
              "%s", tm_store_errmsg(st));
    cr_assert_eq(tm_store_is_lost(st), 1, "still lost, still open");
    cr_assert_eq(append_sale(st, 2), TM_ELOST);
    cr_assert(has_sale(st, 1));
    cr_assert_eq(unlink(dir), 0);
    cr_assert_eq(tm_store_restore(st, time(NULL), aside, sizeof aside), TM_OK, "%s",
                 tm_store_errmsg(st));
    cr_assert_eq(append_sale(st, 2), TM_OK);
    tm_store_destroy(&st);
    st = open_store();
    cr_assert_eq(count_sales(st), 2);
    tm_store_destroy(&st);
}

/* ---- corrupt at start: aside, salvage --------------------------------- */

/* A store of n_local sales of its own and n_peer of origin 0x22, closed
 * (checkpointed into the main file). */
static void build_store(int n_local, int n_peer, uint8_t node_id[TM_NODE_ID_LEN])
{
    tm_store_t *st = open_store();
    tm_store_node_id(st, node_id);
    for (int i = 1; i <= n_local; i++)
        cr_assert_eq(append_sale(st, i), TM_OK);
    for (int i = 1; i <= n_peer; i++)
        cr_assert_eq(apply_peer_sale(st, 0x22, (uint64_t)i, 10000 + i), TM_OK);
    tm_store_destroy(&st);
}

/* The ops table's leaf pages in key order and their row counts, from
 * SQLite's dbstat. */
static int ops_leaf_pages(int *pages, int *cells, int max)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    int n = 0;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(
            db,
            "SELECT pageno, ncell FROM dbstat WHERE name = 'ops' AND pagetype = 'leaf'"
            " ORDER BY path",
            -1, &q, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        cr_skip_test("SKIP: this SQLite has no dbstat table to find the op log's pages");
    }
    for (; n < max && sqlite3_step(q) == SQLITE_ROW; n++) {
        pages[n] = sqlite3_column_int(q, 0);
        cells[n] = sqlite3_column_int(q, 1);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static void smash_page(int pageno)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, (long)(pageno - 1) * 4096, SEEK_SET), 0);
    for (int i = 0; i < 4096; i++)
        fputc((i * 7919 + 13) & 0xff, f);
    fclose(f);
}

/* Moves the corrupt file aside, opens a fresh store, salvages into it. */
static tm_store_t *heal(tm_salvage_t *sv, char *aside, size_t aside_sz)
{
    tm_store_t *st = NULL;
    char old[300];
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_ECORRUPT);
    cr_assert_eq(tm_store_quarantine(path, "corrupt", time(NULL), aside, aside_sz), TM_OK);
    cr_assert(!exists(path), "moved, not copied");
    st = open_store();
    snprintf(old, sizeof old, "%s/store.db", aside);
    cr_assert(exists(old));
    int rc = tm_store_salvage(st, old, sv);
    cr_assert_eq(rc, TM_OK, "salvage: %s", tm_strerror(rc));
    return st;
}

Test(heal, corrupt_page_is_moved_aside_and_the_rest_salvaged)
{
    uint8_t old_id[TM_NODE_ID_LEN], new_id[TM_NODE_ID_LEN];
    build_store(300, 100, old_id);
    int pages[256], cells[256];
    int n = ops_leaf_pages(pages, cells, 256);
    cr_assert_gt(n, 6, "expected the op log to span pages, got %d", n);
    smash_page(pages[n / 2]); /* two leaves in the middle of the op log */
    smash_page(pages[n / 2 + 1]);
    tm_salvage_t sv;
    char aside[256];
    tm_store_t *st = heal(&sv, aside, sizeof aside);
    cr_assert(strstr(aside, "/corrupt-"), "%s", aside);
    cr_assert_eq(sv.old_node_id_known, 1);
    cr_assert_eq(memcmp(sv.old_node_id, old_id, sizeof old_id), 0);
    tm_store_node_id(st, new_id);
    cr_assert_neq(memcmp(new_id, old_id, sizeof old_id), 0, "a fresh store gets a new node id");
    cr_assert_geq(sv.read_errors, 1);
    /* Exactly the rows of the two smashed leaves are gone, not one more:
     * the rows right behind the damage are found again. */
    cr_assert_eq(sv.ops_new, (uint64_t)(400 - cells[n / 2] - cells[n / 2 + 1]),
                 "salvaged %llu of 400, smashed leaves held %d + %d",
                 (unsigned long long)sv.ops_new, cells[n / 2], cells[n / 2 + 1]);
    cr_assert_eq(sv.ops_new, sv.rows_read - sv.ops_refused);
    cr_assert_eq(count_sales(st), sv.ops_new);
    /* Old ops keep their origin: the vector names the old node id. */
    tm_vv_t vv;
    cr_assert_eq(tm_store_vv(st, &vv), TM_OK);
    cr_assert_gt(tm_vv_get(&vv, old_id), 0);
    tm_vv_free(&vv);
    /* Receipt numbers go on from the highest salvaged one. */
    uint64_t max = 0;
    cr_assert_eq(tm_store_max_receipt(st, "till-1", &max), TM_OK);
    cr_assert_geq(max, 290);
    /* Salvaging again adds nothing: applying is idempotent. */
    char old[300];
    tm_salvage_t again;
    snprintf(old, sizeof old, "%s/store.db", aside);
    cr_assert_eq(tm_store_salvage(st, old, &again), TM_OK);
    cr_assert_eq(again.ops_new, 0);
    cr_assert_eq(again.rows_read, sv.rows_read);
    tm_store_destroy(&st);
}

Test(heal, truncated_store_salvages_what_precedes_the_cut)
{
    uint8_t old_id[TM_NODE_ID_LEN];
    build_store(300, 0, old_id);
    /* Cut after the op log's middle leaf, wherever the schema's own pages
     * put the log in the file (a new table moves it). */
    int pages[256], cells[256];
    int n = ops_leaf_pages(pages, cells, 256);
    cr_assert_gt(n, 2, "expected the op log to span pages, got %d", n);
    cr_assert_eq(truncate(path, (off_t)pages[n / 2] * 4096), 0);
    tm_salvage_t sv;
    char aside[256];
    tm_store_t *st = heal(&sv, aside, sizeof aside);
    cr_assert_gt(sv.ops_new, 0, "the first half of the file holds ops (read %llu, errors %llu)",
                 (unsigned long long)sv.rows_read, (unsigned long long)sv.read_errors);
    cr_assert_lt(sv.ops_new, 300);
    cr_assert(has_sale(st, 1));
    tm_store_destroy(&st);
}

Test(heal, garbage_file_is_moved_aside_and_nothing_salvaged)
{
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8192; i++)
        fputc((i * 7919 + 13) & 0xff, f);
    fclose(f);
    tm_salvage_t sv;
    char aside[256];
    tm_store_t *st = heal(&sv, aside, sizeof aside);
    cr_assert_eq(sv.ops_new, 0);
    cr_assert_eq(sv.old_node_id_known, 0);
    cr_assert_geq(sv.read_errors, 1);
    cr_assert_eq(append_sale(st, 1), TM_OK, "the fresh store works");
    tm_store_destroy(&st);
}

Test(heal, orphaned_wal_is_salvaged_not_deleted)
{
    /* A till that crashed: its commits are in the -wal, not checkpointed. */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        tm_store_t *st = NULL;
        if (tm_store_open(path, NULL, &st) != TM_OK)
            _exit(1);
        for (int i = 1; i <= 30; i++)
            if (append_sale(st, i) != TM_OK)
                _exit(1);
        _exit(0); /* no close, no checkpoint */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unlink_sfx(""); /* then the database alone is deleted */
    char wal[160], aside[256], old[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    cr_assert(exists(wal));
    cr_assert_eq(tm_store_quarantine(path, "orphan-wal", time(NULL), aside, sizeof aside), TM_OK);
    tm_store_t *st = open_store();
    tm_salvage_t sv;
    snprintf(old, sizeof old, "%s/store.db", aside);
    cr_assert_eq(tm_store_salvage(st, old, &sv), TM_OK);
    cr_assert_eq(sv.wal_only, 1);
    cr_assert_eq(sv.ops_new, 30, "salvaged %llu of 30 from the -wal alone (%llu read errors)",
                 (unsigned long long)sv.ops_new, (unsigned long long)sv.read_errors);
    cr_assert_eq(count_sales(st), 30);
    snprintf(old, sizeof old, "%s/store.db-wal", aside);
    cr_assert(exists(old), "the log stays as found");
    tm_store_destroy(&st);
}

Test(heal, quarantine_twice_in_one_second_keeps_both)
{
    char a1[256], a2[256], p[300];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        FILE *f = fopen(p, "w");
        fclose(f);
    }
    cr_assert_eq(tm_store_quarantine(path, "corrupt", 1764000000, a1, sizeof a1), TM_OK);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        cr_assert(!exists(p), "%s left behind", p);
        snprintf(p, sizeof p, "%s/store.db%s", a1, sfx[i]);
        cr_assert(exists(p), "%s not moved", p);
    }
    FILE *f = fopen(path, "w");
    fclose(f);
    f = fopen(path, "w");
    fclose(f);
    cr_assert_eq(tm_store_quarantine(path, "corrupt", 1764000000, a2, sizeof a2), TM_OK);
    cr_assert_str_neq(a1, a2);
    cr_assert(strstr(a1, "/corrupt-20251124T160000"), "%s", a1);
    cr_assert(strstr(a2, "/corrupt-20251124T160000-2"), "%s", a2);
}
