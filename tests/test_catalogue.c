/* test_catalogue.c - the ERP's catalogue pages: a bad page is refused whole,
 * and catalogue ops merge to the same products in any order, ordered by the
 * ERP's version, never by the op's clock. Real SQLite files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_store.h"
#include "tm_wire.h"

static char dir[64];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tm_cat_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_store(const char *p)
{
    char f[200];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(f, sizeof f, "%s%s", p, suffix[i]);
        unlink(f);
    }
}

static void teardown(void)
{
    rmdir(dir);
}

TestSuite(catalogue, .init = setup, .fini = teardown);

/* ---- pages from the ERP ----------------------------------------------- */

static const char good_page[] =
    "{\"products\":[{\"sku\":\"A1\",\"name\":\"Pan\",\"uom\":\"unit\",\"unit_price\":1500,"
    "\"tax_rate\":1900,\"barcodes\":[\"7800001\"],\"active\":true,\"version\":11},"
    "{\"sku\":\"B2\",\"name\":\"Queso\",\"uom\":\"kg\",\"unit_price\":9990,\"tax_rate\":1900,"
    "\"barcodes\":[],\"active\":true,\"version\":12,\"future_field\":1}],"
    "\"deletions\":[{\"sku\":\"C3\",\"version\":13}],\"next_cursor\":\"13\",\"more\":false}";

Test(catalogue, good_page_parses)
{
    tm_catalogue_page_t p;
    tm_field_errors_t errs;
    cr_assert_eq(tm_catalogue_page_from_json(good_page, strlen(good_page), 100, &p, &errs), TM_OK);
    cr_assert_eq(p.n, 3);
    cr_assert_str_eq(p.items[0].barcodes[0], "7800001");
    cr_assert(p.items[2].deleted);
    cr_assert_eq(p.version, 13);
    cr_assert_str_eq(p.cursor, "13");
    tm_catalogue_page_free(&p);
}

/* good_page with `from` replaced by `to`, which must be refused whole. */
static void expect_refused(const char *from, const char *to, const char *field)
{
    const char *at = strstr(good_page, from);
    cr_assert_not_null(at, "%s", from);
    char buf[2048];
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good_page), good_page, to, at + strlen(from));
    tm_catalogue_page_t p;
    memset(&p, 0xa5, sizeof p);
    tm_field_errors_t errs;
    int rc = tm_catalogue_page_from_json(buf, strlen(buf), 100, &p, &errs);
    cr_assert_neq(rc, TM_OK, "accepted: %s", buf);
    cr_assert_null(p.items, "nothing of a refused page is handed out");
    cr_assert_eq(p.n, 0);
    bool found = false;
    for (size_t i = 0; i < errs.n; i++)
        found |= strcmp(errs.e[i].field, field) == 0;
    cr_assert(found, "no error on %s for %s (first: %s)", field, buf,
              errs.n ? errs.e[0].field : "none");
}

Test(catalogue, bad_pages_are_refused_whole)
{
    expect_refused("\"unit_price\":9990", "\"unit_price\":-1", "products[1].unit_price");
    expect_refused("\"unit_price\":9990", "\"unit_price\":99.9", "products[1].unit_price");
    expect_refused("\"tax_rate\":1900,\"barcodes\":[]", "\"tax_rate\":10001,\"barcodes\":[]",
                   "products[1].tax_rate");
    expect_refused("\"name\":\"Queso\",", "", "products[1].name");
    expect_refused("\"version\":12", "\"version\":0", "products[1].version");
    expect_refused("\"sku\":\"B2\"", "\"sku\":\"A1\"", "products");
    expect_refused("\"sku\":\"B2\"", "\"sku\":\"B 2\"", "products[1].sku");
    expect_refused("[\"7800001\"]", "[\"78-01\"]", "products[0].barcodes[0]");
    expect_refused("\"next_cursor\":\"13\",", "", "page.next_cursor");
    expect_refused("{\"sku\":\"C3\",\"version\":13}", "{\"sku\":\"C3\"}", "deletions[0].version");
    /* Not JSON at all. */
    tm_catalogue_page_t p;
    tm_field_errors_t errs;
    cr_assert_eq(tm_catalogue_page_from_json("<html>", 6, 100, &p, &errs), TM_EJSON);
    /* More than asked for: the ERP ignored limit. */
    cr_assert_eq(tm_catalogue_page_from_json(good_page, strlen(good_page), 2, &p, &errs),
                 TM_EVALIDATE);
}

/* ---- merge in the store ----------------------------------------------- */

static tm_product_t product(const char *sku, int64_t price, uint64_t version)
{
    tm_product_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.sku, sizeof p.sku, "%s", sku);
    snprintf(p.name, sizeof p.name, "Product %s", sku);
    snprintf(p.uom, sizeof p.uom, "unit");
    snprintf(p.barcodes[0], sizeof p.barcodes[0], "78%s", sku);
    p.n_barcodes = 1;
    p.unit_price = price;
    p.tax_rate = 1900;
    p.active = true;
    p.version = version;
    return p;
}

/* An op of origin o holding the given products, stamped hlc. */
static void page_op(tm_op_t *op, uint8_t o, uint64_t seq, uint64_t hlc, tm_product_t *items,
                    size_t n, const char *cursor)
{
    tm_catalogue_page_t pg = {.items = items, .n = n};
    snprintf(pg.cursor, sizeof pg.cursor, "%s", cursor);
    for (size_t i = 0; i < n; i++)
        if (items[i].version > pg.version)
            pg.version = items[i].version;
    memset(op, 0, sizeof *op);
    memset(op->origin, o, TM_NODE_ID_LEN);
    op->seq = seq;
    op->hlc = hlc;
    op->kind = TM_OP_CATALOGUE;
    cr_assert_eq(tm_wire_catalogue_encode(&pg, &op->body, &op->body_len), TM_OK);
}

/* What the catalogue of a store holds, as one string. */
static void snapshot(tm_store_t *st, char *out, size_t sz)
{
    tm_product_t *ps;
    size_t n;
    cr_assert_eq(tm_store_products_find(st, NULL, "", 100, &ps, &n), TM_OK);
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(out + off, sz - off, "%s=%lld@%llu;", ps[i].sku,
                                (long long)ps[i].unit_price, (unsigned long long)ps[i].version);
    tm_catalogue_state_t cs;
    cr_assert_eq(tm_store_catalogue_state(st, &cs), TM_OK);
    snprintf(out + off, sz - off, "cursor=%s v=%llu", cs.cursor, (unsigned long long)cs.version);
    free(ps);
}

Test(catalogue, ops_merge_by_erp_version_in_any_order)
{
    tm_op_t ops[4];
    tm_product_t a[3] = {product("A1", 100, 1), product("B2", 200, 2), product("C3", 300, 3)};
    page_op(&ops[0], 1, 1, 5000, a, 3, "3");
    /* A later price of A1, written with an OLDER clock by another till: the
     * ERP's version decides, not the stamp. */
    tm_product_t b[1] = {product("A1", 150, 4)};
    page_op(&ops[1], 2, 1, 10, b, 1, "4");
    /* C3 deleted at version 5, then B2 changed at 6. */
    tm_product_t c[2] = {product("C3", 0, 5), product("B2", 250, 6)};
    c[0].deleted = true;
    page_op(&ops[2], 1, 2, 6000, c, 2, "6");
    /* A stale copy of A1 (version 1 again) from a third till, stamped last. */
    tm_product_t d[1] = {product("A1", 100, 1)};
    page_op(&ops[3], 3, 1, 99999, d, 1, "1");
    static const int perms[][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}};
    char first[512] = "";
    for (size_t k = 0; k < sizeof perms / sizeof perms[0]; k++) {
        char p[160];
        snprintf(p, sizeof p, "%s/s%zu.db", dir, k);
        tm_store_t *st = NULL;
        cr_assert_eq(tm_store_open(p, NULL, &st), TM_OK);
        for (int i = 0; i < 4; i++) {
            cr_assert_eq(tm_store_apply(st, &ops[perms[k][i]], 1, NULL), TM_OK);
            /* Applying twice is a no-op. */
            cr_assert_eq(tm_store_apply(st, &ops[perms[k][i]], 1, NULL), TM_OK);
        }
        char snap[512];
        snapshot(st, snap, sizeof snap);
        cr_assert_str_eq(snap, "A1=150@4;B2=250@6;cursor=6 v=6", "order %zu", k);
        if (!first[0])
            snprintf(first, sizeof first, "%s", snap);
        tm_product_t got;
        cr_assert_eq(tm_store_product_get(st, "78A1", &got), TM_OK, "by barcode");
        cr_assert_str_eq(got.sku, "A1");
        cr_assert_eq(tm_store_product_get(st, "C3", &got), TM_ENOTFOUND, "deleted");
        cr_assert_eq(tm_store_product_get(st, "78C3", &got), TM_ENOTFOUND, "its barcode too");
        tm_product_t *found;
        size_t n;
        cr_assert_eq(tm_store_products_find(st, "product b", NULL, 10, &found, &n), TM_OK);
        cr_assert_eq(n, 1, "name prefix, any case");
        cr_assert_str_eq(found[0].sku, "B2");
        free(found);
        tm_store_destroy(&st);
        rm_store(p);
    }
    for (int i = 0; i < 4; i++)
        free(ops[i].body);
}

Test(catalogue, a_peer_page_breaking_a_rule_is_refused_whole)
{
    char p[160];
    snprintf(p, sizeof p, "%s/bad.db", dir);
    tm_store_t *st = NULL;
    cr_assert_eq(tm_store_open(p, NULL, &st), TM_OK);
    tm_product_t a[2] = {product("A1", 100, 1), product("B2", -5, 2)};
    tm_op_t op;
    page_op(&op, 1, 1, 5000, a, 2, "2");
    cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_EPROTO);
    tm_product_t got;
    cr_assert_eq(tm_store_product_get(st, "A1", &got), TM_ENOTFOUND, "nothing half-applied");
    free(op.body);
    tm_store_destroy(&st);
    rm_store(p);
}
