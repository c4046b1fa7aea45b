/*
 * test_api.c - the local HTTP API over real HTTP.
 *
 * tm_api runs on 127.0.0.1 (free port) in a thread of the test process that
 * polls its fd, as the daemon's loop does; libcurl on the test's main
 * thread is the client. The backend is a test double that stores into a real
 * tm_store in a temporary directory, so reads go through the real store.
 * Only the API thread touches the store while the server runs.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tm_api.h"
#include "tm_wire.h"

#define MAX_BODY 4096

/* ---- the backend double ----------------------------------------------- */

typedef struct {
    tm_store_t *store;
    uint64_t hlc;
    uint64_t receipt;
    atomic_bool full; /* answer TM_EFULL, as a full disk would */
} fake_t;

static bool same_sale(const tm_sale_t *a, const tm_sale_t *b)
{
    char *ja = tm_sale_to_json(a);
    char *jb = tm_sale_to_json(b);
    bool same = ja && jb && strcmp(ja, jb) == 0;
    free(ja);
    free(jb);
    return same;
}

static int fake_post_sale(void *ctx, tm_sale_t *sale, tm_field_errors_t *errs)
{
    fake_t *f = ctx;
    if (atomic_load(&f->full))
        return TM_EFULL;
    if (!sale->sale_id[0])
        tm_uuid_new(sale->sale_id);
    if (!sale->till[0])
        tm_strlcpy(sale->till, "till-1", sizeof sale->till);
    if (!sale->receipt_no)
        sale->receipt_no = ++f->receipt;
    if (!sale->created_at[0])
        tm_strlcpy(sale->created_at, "2026-11-23T12:00:00Z", sizeof sale->created_at);
    int rc = tm_sale_validate(sale, errs);
    if (rc != TM_OK)
        return rc;
    tm_sale_t old;
    memset(&old, 0, sizeof old);
    if (tm_store_get_sale(f->store, sale->sale_id, &old) == TM_OK) {
        if (!same_sale(sale, &old)) {
            tm_sale_free(&old);
            return TM_ECONFLICT;
        }
        tm_sale_free(sale);
        *sale = old;
        return TM_EEXIST;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = tm_wire_sale_encode(sale, &buf, &len);
    if (rc == TM_OK)
        rc = tm_store_append_local(f->store, TM_OP_SALE, ++f->hlc, buf, len, NULL);
    free(buf);
    return rc;
}

static int fake_put_customer(void *ctx, const tm_customer_t *patch, tm_customer_t *merged,
                             tm_field_errors_t *errs)
{
    fake_t *f = ctx;
    (void)errs;
    if (atomic_load(&f->full))
        return TM_EFULL;
    tm_customer_t p = *patch;
    uint8_t node[TM_NODE_ID_LEN];
    tm_store_node_id(f->store, node);
    tm_customer_stamp(&p, ++f->hlc, node);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = tm_wire_customer_encode(&p, &buf, &len);
    if (rc == TM_OK)
        rc = tm_store_append_local(f->store, TM_OP_CUSTOMER, f->hlc, buf, len, NULL);
    free(buf);
    if (rc == TM_OK)
        rc = tm_store_get_customer(f->store, p.id, merged);
    return rc;
}

static char *fake_status(void *ctx)
{
    (void)ctx;
    return strdup("{\"api_version\":1,\"node\":{\"name\":\"till-1\"}}");
}

static char *fake_metrics(void *ctx)
{
    (void)ctx;
    return strdup("# TYPE tillmesh_sales counter\ntillmesh_sales 0\n");
}

/* ---- server thread ---------------------------------------------------- */

static struct {
    char dir[64];
    tm_log_t log;
    fake_t fake;
    tm_api_t *api;
    pthread_t thread;
    atomic_bool stop;
    char base[64];
} T;

static void *serve(void *arg)
{
    (void)arg;
    while (!atomic_load(&T.stop)) {
        int64_t to = tm_api_timeout_ms(T.api);
        if (to < 0 || to > 20)
            to = 20; /* wake up now and then to see T.stop */
        struct pollfd p = {.fd = tm_api_fd(T.api), .events = POLLIN};
        poll(&p, 1, (int)to);
        tm_api_run(T.api);
    }
    return NULL;
}

static void setup(void)
{
    memset(&T, 0, sizeof T);
    T.log.level = getenv("TM_TEST_DEBUG") ? TM_LOG_DEBUG : TM_LOG_ERROR;
    tm_strlcpy(T.log.tag, "test_api", sizeof T.log.tag);
    tm_strlcpy(T.dir, "/tmp/tm_api_XXXXXX", sizeof T.dir);
    cr_assert_not_null(mkdtemp(T.dir));
    char path[128];
    snprintf(path, sizeof path, "%s/store.db", T.dir);
    cr_assert_eq(tm_store_open(path, NULL, &T.fake.store), TM_OK);
    tm_api_backend_t be = {
        .ctx = &T.fake,
        .store = T.fake.store,
        .post_sale = fake_post_sale,
        .put_customer = fake_put_customer,
        .status_json = fake_status,
        .metrics_text = fake_metrics,
    };
    tm_api_cfg_t cfg = {.addr = "127.0.0.1", .max_body = MAX_BODY};
    cr_assert_eq(tm_api_new(&cfg, &be, &T.log, &T.api), TM_OK);
    cr_assert_neq(tm_api_port(T.api), 0);
    snprintf(T.base, sizeof T.base, "http://127.0.0.1:%u", (unsigned)tm_api_port(T.api));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cr_assert_eq(pthread_create(&T.thread, NULL, serve, NULL), 0);
}

static void teardown(void)
{
    atomic_store(&T.stop, true);
    pthread_join(T.thread, NULL);
    tm_api_destroy(&T.api);
    tm_store_destroy(&T.fake.store);
    curl_global_cleanup();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T.dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the client ------------------------------------------------------- */

typedef struct {
    long status;
    char *body;
    size_t len;
    char ctype[128];
    char location[128];
    char allow[64];
    char cache[64];
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    resp_t *r = arg;
    size_t add = size * n;
    char *b = realloc(r->body, r->len + add + 1);
    cr_assert_not_null(b);
    memcpy(b + r->len, p, add);
    r->body = b;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* Keeps the value of header `name` (case-insensitive) in dst. */
static void keep_header(const char *line, size_t len, const char *name, char *dst, size_t dstsz)
{
    size_t n = strlen(name);
    if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    const char *v = line + n + 1;
    while (*v == ' ')
        v++;
    size_t vl = (size_t)(line + len - v);
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
        vl--;
    if (vl >= dstsz)
        vl = dstsz - 1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    resp_t *r = arg;
    size_t len = size * n;
    keep_header(p, len, "Content-Type", r->ctype, sizeof r->ctype);
    keep_header(p, len, "Location", r->location, sizeof r->location);
    keep_header(p, len, "Allow", r->allow, sizeof r->allow);
    keep_header(p, len, "Cache-Control", r->cache, sizeof r->cache);
    return len;
}

typedef struct {
    size_t left; /* bytes of chunked body still to send */
} chunked_t;

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    chunked_t *c = arg;
    size_t k = size * n < c->left ? size * n : c->left;
    memset(buf, ' ', k);
    c->left -= k;
    return k;
}

/*
 * One request. ctype NULL sends no Content-Type; body NULL sends none.
 * chunked > 0 sends that many bytes with Transfer-Encoding: chunked.
 */
static resp_t http_ex(const char *method, const char *path, const char *ctype, const char *body,
                      size_t chunked)
{
    resp_t r;
    memset(&r, 0, sizeof r);
    char url[512];
    snprintf(url, sizeof url, "%s%s", T.base, path);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    char cth[128];
    if (ctype) {
        snprintf(cth, sizeof cth, "Content-Type: %s", ctype);
        h = curl_slist_append(h, cth);
    } else {
        h = curl_slist_append(h, "Content-Type:"); /* curl adds one for POST */
    }
    chunked_t ch = {chunked};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (chunked) {
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &ch);
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    CURLcode rc = curl_easy_perform(c);
    cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r.body)
        r.body = strdup("");
    return r;
}

static resp_t http(const char *method, const char *path, const char *body)
{
    return http_ex(method, path, body ? "application/json" : NULL, body, 0);
}

static void resp_free(resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* Parses the body as JSON; the caller decrefs. */
static json_t *body_json(const resp_t *r)
{
    json_error_t err;
    json_t *j = json_loads(r->body, 0, &err);
    cr_assert_not_null(j, "body is not JSON (%s): %s", err.text, r->body);
    return j;
}

/* Every error body: {"error": code, "message": "..."}, JSON, no-store. */
static void expect_error(const resp_t *r, long status, const char *code)
{
    cr_expect_eq(r->status, status, "status %ld, want %ld: %s", r->status, status, r->body);
    cr_expect_str_eq(r->ctype, "application/json");
    cr_expect_str_eq(r->cache, "no-store");
    json_t *j = body_json(r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "error")), code, "%s", r->body);
    if (strcmp(code, "validation") != 0) {
        const char *msg = json_string_value(json_object_get(j, "message"));
        cr_expect(msg && *msg, "no message in %s", r->body);
    }
    json_decref(j);
}

static char *sale_json(const char *sale_id, long receipt, long total)
{
    char *s = malloc(1024);
    cr_assert_not_null(s);
    int n = snprintf(s, 1024,
                     "{\"sale_id\":\"%s\",\"till\":\"till-1\",\"receipt_no\":%ld,"
                     "\"created_at\":\"2026-11-23T12:00:00Z\",\"currency\":\"CLP\","
                     "\"lines\":[{\"sku\":\"A1\",\"name\":\"Pan\",\"qty\":1000,"
                     "\"unit_price\":%ld,\"discount\":0,\"tax_rate\":1900}],"
                     "\"total\":%ld,\"payments\":[{\"method\":\"cash\",\"amount\":%ld}]}",
                     sale_id, receipt, total, total, total);
    cr_assert(n > 0 && n < 1024);
    return s;
}

#define SALE1 "3f2c1a9e-8b7d-4c6e-9f01-23456789abcd"

/* ---- tests ------------------------------------------------------------ */

Test(api, post_sale_201_then_idempotent_200_then_409)
{
    char *body = sale_json(SALE1, 7, 1500);
    resp_t r = http("POST", "/v1/sales", body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_expect_str_eq(r.location, "/v1/sales/" SALE1);
    cr_expect_str_eq(r.ctype, "application/json");
    cr_expect_str_eq(r.cache, "no-store");
    json_t *j = body_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "sale_id")), SALE1);
    cr_expect_eq(json_integer_value(json_object_get(j, "total")), 1500);
    json_decref(j);
    char *first = strdup(r.body);
    resp_free(&r);

    /* A POS retry: same sale, same answer, 200. */
    r = http("POST", "/v1/sales", body);
    cr_expect_eq(r.status, 200, "%s", r.body);
    cr_expect_str_eq(r.body, first);
    resp_free(&r);

    /* Same sale_id, other content. */
    char *other = sale_json(SALE1, 7, 2000);
    r = http("POST", "/v1/sales", other);
    expect_error(&r, 409, "conflict");
    resp_free(&r);

    r = http("GET", "/v1/sales/" SALE1, NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, first);
    resp_free(&r);
    free(other);
    free(first);
    free(body);
}

Test(api, post_sale_fills_in_id_and_location)
{
    const char *body = "{\"currency\":\"CLP\",\"lines\":[{\"sku\":\"A1\",\"name\":\"Pan\","
                       "\"qty\":2000,\"unit_price\":700,\"discount\":0,\"tax_rate\":1900}],"
                       "\"total\":1400,\"payments\":[{\"method\":\"card\",\"amount\":1400}]}";
    resp_t r = http_ex("POST", "/v1/sales", "application/json; charset=utf-8", body, 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = body_json(&r);
    const char *id = json_string_value(json_object_get(j, "sale_id"));
    cr_assert(id && tm_uuid_valid(id));
    char want[128];
    snprintf(want, sizeof want, "/v1/sales/%s", id);
    cr_expect_str_eq(r.location, want);
    json_decref(j);
    resp_free(&r);
}

Test(api, post_sale_422_lists_fields)
{
    /* total disagrees with the lines; payments disagree with the total. */
    char *body = sale_json(SALE1, 1, 1500);
    char *p = strstr(body, "\"total\":1500");
    cr_assert_not_null(p);
    memcpy(p, "\"total\":1499", 12);
    resp_t r = http("POST", "/v1/sales", body);
    expect_error(&r, 422, "validation");
    json_t *j = body_json(&r);
    json_t *fields = json_object_get(j, "fields");
    cr_assert(json_is_array(fields) && json_array_size(fields) >= 1, "%s", r.body);
    bool named_total = false;
    for (size_t i = 0; i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i);
        const char *name = json_string_value(json_object_get(f, "field"));
        cr_expect_not_null(json_string_value(json_object_get(f, "rule")));
        cr_expect_not_null(json_string_value(json_object_get(f, "message")));
        if (name && strcmp(name, "total") == 0)
            named_total = true;
    }
    cr_expect(named_total, "no error names \"total\": %s", r.body);
    json_decref(j);
    resp_free(&r);

    /* Wrong type is also a field error, not a 400. */
    r = http("POST", "/v1/sales", "{\"currency\":\"CLP\",\"lines\":\"many\"}");
    expect_error(&r, 422, "validation");
    resp_free(&r);
    free(body);
}

/* Error texts quote client keys cut to a fixed size, possibly inside a
 * multi-byte character; the answer must still be a clean 422 in JSON. */
Test(api, long_unicode_keys_still_422)
{
    char key[400] = "";
    for (int i = 0; i < 100; i++)
        strcat(key, "\xc3\xa9"); /* é */
    char body[600];
    snprintf(body, sizeof body, "{\"%s\":\"x\"}", key);
    resp_t r = http("PUT", "/v1/customers/123456785", body);
    expect_error(&r, 422, "validation");
    cr_expect(strstr(r.body, "unknown") != NULL, "%s", r.body);
    resp_free(&r);
    r = http("POST", "/v1/sales", body);
    expect_error(&r, 422, "validation");
    resp_free(&r);

    /* jansson quotes the bad token; cut short, it must not become a 500. */
    snprintf(body, sizeof body, "{\"a\": x%s", key);
    r = http("POST", "/v1/sales", body);
    expect_error(&r, 400, "malformed_json");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"a\": \"%s", key);
    r = http("POST", "/v1/sales", body);
    expect_error(&r, 400, "malformed_json");
    resp_free(&r);
}

Test(api, post_sale_400_malformed_json_says_where)
{
    resp_t r = http("POST", "/v1/sales", "{\"currency\": \"CLP\",\n \"lines\": [}");
    expect_error(&r, 400, "malformed_json");
    json_t *j = body_json(&r);
    const char *msg = json_string_value(json_object_get(j, "message"));
    cr_expect(msg && strstr(msg, "line"), "no line in: %s", r.body);
    cr_expect(msg && strstr(msg, "column"), "no column in: %s", r.body);
    json_decref(j);
    resp_free(&r);

    r = http("POST", "/v1/sales", "");
    expect_error(&r, 400, "malformed_json");
    resp_free(&r);
}

Test(api, post_sale_413_oversize_and_limit_exactly)
{
    char *big = malloc(MAX_BODY + 2);
    cr_assert_not_null(big);
    memset(big, ' ', MAX_BODY + 1);
    big[MAX_BODY + 1] = '\0';
    big[0] = '{';
    big[MAX_BODY] = '}';
    resp_t r = http("POST", "/v1/sales", big);
    expect_error(&r, 413, "too_large");
    resp_free(&r);

    /* max_body itself is accepted (and read as JSON). */
    big[MAX_BODY - 1] = '}';
    big[MAX_BODY] = '\0';
    r = http("POST", "/v1/sales", big);
    expect_error(&r, 422, "validation");
    resp_free(&r);
    free(big);

    /* Without a Content-Length (chunked): read, dropped, then 413. */
    r = http_ex("POST", "/v1/sales", "application/json", NULL, 3 * MAX_BODY);
    expect_error(&r, 413, "too_large");
    resp_free(&r);
}

Test(api, disk_full_is_507)
{
    atomic_store(&T.fake.full, true);
    char *body = sale_json(SALE1, 1, 1500);
    resp_t r = http("POST", "/v1/sales", body);
    expect_error(&r, 507, "disk_full");
    resp_free(&r);
    free(body);
}

Test(api, unknown_sale_and_route_404)
{
    resp_t r = http("GET", "/v1/sales/" SALE1, NULL);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    r = http("GET", "/v1/sales/not-a-uuid", NULL);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    r = http("GET", "/v1/nothing", NULL);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    r = http("GET", "/v1/sales/" SALE1 "/x", NULL);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    r = http("GET", "/", NULL);
    expect_error(&r, 404, "not_found");
    resp_free(&r);

    /* A very long id is bounded, not copied. */
    char path[1200] = "/v1/sales/";
    memset(path + strlen(path), 'a', 1000);
    path[1010] = '\0';
    r = http("GET", path, NULL);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
}

Test(api, wrong_method_405_with_allow)
{
    resp_t r = http("DELETE", "/v1/sales/" SALE1, NULL);
    expect_error(&r, 405, "method_not_allowed");
    cr_expect_str_eq(r.allow, "GET, HEAD");
    resp_free(&r);
    r = http("PUT", "/v1/sales", "{}");
    expect_error(&r, 405, "method_not_allowed");
    cr_expect_str_eq(r.allow, "GET, HEAD, POST");
    resp_free(&r);
    r = http("POST", "/v1/status", "{}");
    expect_error(&r, 405, "method_not_allowed");
    resp_free(&r);
}

Test(api, wrong_media_type_415)
{
    char *body = sale_json(SALE1, 1, 1500);
    resp_t r = http_ex("POST", "/v1/sales", "text/plain", body, 0);
    expect_error(&r, 415, "unsupported_media_type");
    resp_free(&r);
    r = http_ex("POST", "/v1/sales", "application/jsonx", body, 0);
    expect_error(&r, 415, "unsupported_media_type");
    resp_free(&r);
    /* No Content-Type at all is taken as JSON. */
    r = http_ex("POST", "/v1/sales", NULL, body, 0);
    cr_expect_eq(r.status, 201, "%s", r.body);
    resp_free(&r);
    free(body);
}

/* Pages through GET /v1/sales; returns how many sales were seen. */
static size_t list_all(size_t limit, char ids[][TM_UUID_LEN], size_t max)
{
    size_t seen = 0;
    json_int_t since = 0;
    for (int page = 0; page < 20; page++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/sales?since=%lld&limit=%zu", (long long)since, limit);
        resp_t r = http("GET", path, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_expect_str_eq(r.ctype, "application/json");
        json_t *j = body_json(&r);
        json_t *sales = json_object_get(j, "sales");
        json_t *next = json_object_get(j, "next");
        cr_assert(json_is_array(sales) && json_is_integer(next), "%s", r.body);
        cr_assert_leq(json_array_size(sales), limit);
        size_t n = json_array_size(sales);
        for (size_t i = 0; i < n && seen < max; i++, seen++)
            tm_strlcpy(ids[seen],
                       json_string_value(json_object_get(json_array_get(sales, i), "sale_id")),
                       TM_UUID_LEN);
        since = json_integer_value(next);
        json_decref(j);
        resp_free(&r);
        if (n == 0)
            return seen;
    }
    cr_assert_fail("paging did not end");
    return seen;
}

Test(api, list_sales_pages_in_order)
{
    char posted[5][TM_UUID_LEN];
    for (int i = 0; i < 5; i++) {
        tm_uuid_new(posted[i]);
        char *body = sale_json(posted[i], i + 1, 100 * (i + 1));
        resp_t r = http("POST", "/v1/sales", body);
        cr_assert_eq(r.status, 201, "%s", r.body);
        resp_free(&r);
        free(body);
    }
    char seen[8][TM_UUID_LEN];
    cr_assert_eq(list_all(2, seen, 8), 5);
    for (int i = 0; i < 5; i++)
        cr_expect_str_eq(seen[i], posted[i]);

    /* Default limit takes them all at once. */
    resp_t r = http("GET", "/v1/sales", NULL);
    cr_assert_eq(r.status, 200);
    json_t *j = body_json(&r);
    cr_expect_eq(json_array_size(json_object_get(j, "sales")), 5);
    json_decref(j);
    resp_free(&r);
}

Test(api, list_sales_bad_parameters_400)
{
    const char *bad[] = {"/v1/sales?limit=abc",
                         "/v1/sales?limit=0",
                         "/v1/sales?limit=-1",
                         "/v1/sales?since=-1",
                         "/v1/sales?since=1x",
                         "/v1/sales?since=",
                         "/v1/sales?since=99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp_t r = http("GET", bad[i], NULL);
        expect_error(&r, 400, "bad_parameter");
        resp_free(&r);
    }
    /* Above the maximum is capped, not refused. */
    resp_t r = http("GET", "/v1/sales?limit=5000", NULL);
    cr_expect_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
}

Test(api, put_then_get_customer)
{
    resp_t r = http("PUT", "/v1/customers/12.345.678-5",
                    "{\"name\":\"Ana\",\"email\":\"ana@example.cl\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = body_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "id")), "123456785");
    cr_expect_str_eq(json_string_value(json_object_get(j, "name")), "Ana");
    json_decref(j);
    resp_free(&r);

    /* A partial update keeps the other fields. */
    r = http("PUT", "/v1/customers/123456785", "{\"phone\":\"+56911112222\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);

    /* The path id is normalised before lookup; %2D is a '-'. */
    r = http("GET", "/v1/customers/12345678%2D5", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect_str_eq(r.ctype, "application/json");
    j = body_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "name")), "Ana");
    cr_expect_str_eq(json_string_value(json_object_get(j, "email")), "ana@example.cl");
    cr_expect_str_eq(json_string_value(json_object_get(j, "phone")), "+56911112222");
    json_decref(j);
    resp_free(&r);
}

Test(api, customer_dni_and_errors)
{
    resp_t r = http("PUT", "/v1/customers/x-123.45", "{\"id_type\":\"dni\",\"name\":\"Bo\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    r = http("GET", "/v1/customers/X12345?id_type=dni", NULL);
    cr_expect_eq(r.status, 200, "%s", r.body);
    resp_free(&r);

    /* Valid RUT, no such customer. */
    r = http("GET", "/v1/customers/11111111-1", NULL);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    /* A mistyped check digit is told apart from a malformed id, alike on
     * GET and PUT. */
    const char *bad[][3] = {
        {"GET", "/v1/customers/12345678-9", NULL},
        {"PUT", "/v1/customers/12345678-9", "{\"name\":\"Ana\"}"},
    };
    for (size_t i = 0; i < 2; i++) {
        r = http(bad[i][0], bad[i][1], bad[i][2]);
        expect_error(&r, 422, "validation");
        json_t *j = body_json(&r);
        json_t *f0 = json_array_get(json_object_get(j, "fields"), 0);
        cr_expect_str_eq(json_string_value(json_object_get(f0, "field")), "id", "%s", r.body);
        cr_expect_str_eq(json_string_value(json_object_get(f0, "rule")), "check_digit", "%s",
                         r.body);
        json_decref(j);
        resp_free(&r);
    }
    r = http("GET", "/v1/customers/12.34x", NULL);
    expect_error(&r, 422, "validation");
    cr_expect(strstr(r.body, "\"format\"") != NULL, "%s", r.body);
    resp_free(&r);
    char path[400] = "/v1/customers/";
    memset(path + strlen(path), '1', 300);
    path[314] = '\0';
    r = http("GET", path, NULL);
    expect_error(&r, 422, "validation");
    cr_expect(strstr(r.body, "\"length\"") != NULL, "%s", r.body);
    resp_free(&r);
    r = http("GET", "/v1/customers/X12345?id_type=passport", NULL);
    expect_error(&r, 400, "bad_parameter");
    resp_free(&r);
    r = http("PUT", "/v1/customers/123456785", "{\"nmae\":\"typo\"}");
    expect_error(&r, 422, "validation");
    resp_free(&r);
    r = http("PUT", "/v1/customers/123456785", "{\"name\":");
    expect_error(&r, 400, "malformed_json");
    resp_free(&r);
}

Test(api, status_and_metrics_content_types)
{
    resp_t r = http("GET", "/v1/status", NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.ctype, "application/json");
    cr_expect_str_eq(r.cache, "no-store");
    json_t *j = body_json(&r);
    cr_expect_eq(json_integer_value(json_object_get(j, "api_version")), 1);
    json_decref(j);
    resp_free(&r);

    r = http("GET", "/metrics", NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.ctype, "text/plain; version=0.0.4");
    cr_expect_str_eq(r.cache, "no-store");
    cr_expect(strstr(r.body, "tillmesh_sales 0") != NULL);
    resp_free(&r);

    r = http("HEAD", "/v1/status", NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "");
    resp_free(&r);
}

Test(api, refuses_bad_address)
{
    tm_api_backend_t be = {
        .ctx = &T.fake,
        .store = T.fake.store,
        .post_sale = fake_post_sale,
        .put_customer = fake_put_customer,
        .status_json = fake_status,
        .metrics_text = fake_metrics,
    };
    tm_api_t *api = NULL;
    tm_api_cfg_t cfg = {.addr = "localhost"};
    cr_expect_eq(tm_api_new(&cfg, &be, &T.log, &api), TM_EINVAL);
    cr_expect_null(api);
    /* The port the fixture holds is taken. */
    cfg.addr = "127.0.0.1";
    cfg.port = tm_api_port(T.api);
    cr_expect_eq(tm_api_new(&cfg, &be, &T.log, &api), TM_EIO);
    cr_expect_null(api);
    /* A token too short to be one. */
    cfg.port = 0;
    cfg.token = "short";
    cr_expect_eq(tm_api_new(&cfg, &be, &T.log, &api), TM_EINVAL);
    cr_expect_null(api);
    /* IPv6 loopback works where the host has it. */
    cfg = (tm_api_cfg_t){.addr = "::1"};
    if (tm_api_new(&cfg, &be, &T.log, &api) == TM_OK) {
        cr_expect_neq(tm_api_port(api), 0);
        tm_api_destroy(&api);
    }
}
