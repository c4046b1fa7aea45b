/* api.c - the local HTTP/JSON API on libmicrohttpd (see tm_api.h, docs/api.md). */
#include "tm_api.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* A POS, the CLI and a metrics scraper share the API; 64 leaves room for a
 * misbehaving client without letting it exhaust file descriptors. */
#define API_CONN_LIMIT 64
/* Idle connections (a POS keeping a socket open, a stalled upload) are
 * closed after this long so that they cannot pin connection slots. */
#define API_CONN_TIMEOUT_S 30
/* Longest id taken from a path; real ids are far shorter (UUID: 36). */
#define API_ID_MAX       128
#define API_LIST_DEFAULT 100
#define API_LIST_MAX     1000
/* A chunked body that passes max_body is read and dropped so that the
 * client still gets its 413; one that goes on this many times longer is
 * cut off instead, so it cannot keep the connection forever. */
#define API_DISCARD_FACTOR 4

#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4"

struct tm_api {
    struct MHD_Daemon *mhd;
    tm_api_backend_t be;
    const tm_log_t *log; /* owned by the caller; must outlive us */
    size_t max_body;
    uint16_t port;
    int fd;
};

typedef enum { R_NONE, R_SALES, R_SALE, R_CUSTOMER, R_STATUS, R_METRICS } route_t;

/* Per-request state, MHD's con_cls; freed in s_completed. */
typedef struct {
    route_t route;
    char id[API_ID_MAX + 1]; /* path id, already percent-decoded by MHD */
    bool id_too_long;
    char method[12]; /* for the log line */
    char path[96];   /* for the log line, unprintables replaced */
    const char *err; /* error code word of the answer, for the log */
    unsigned status;
    struct timespec t0;
    char *body;
    size_t len, cap;
    size_t discarded;
    bool too_large;
} req_t;

typedef struct {
    const char *allow; /* value of the Allow header on 405 */
    route_t route;
    bool get, post, put;
} route_spec_t;

static const route_spec_t route_specs[] = {
    {"GET, HEAD, POST", R_SALES, true, true, false},   /* /v1/sales */
    {"GET, HEAD", R_SALE, true, false, false},         /* /v1/sales/{id} */
    {"GET, HEAD, PUT", R_CUSTOMER, true, false, true}, /* /v1/customers/{id} */
    {"GET, HEAD", R_STATUS, true, false, false},       /* /v1/status */
    {"GET, HEAD", R_METRICS, true, false, false},      /* /metrics */
};

/* ---- small helpers ---------------------------------------------------- */

static const route_spec_t *s_spec(route_t r)
{
    for (size_t i = 0; i < sizeof route_specs / sizeof route_specs[0]; i++)
        if (route_specs[i].route == r)
            return &route_specs[i];
    return NULL;
}

static const char *s_prefix(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* HEAD is a GET whose body MHD leaves out. */
static bool s_is_get(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* Maps a (decoded) path to a route and copies its id, if any, into req. */
static route_t s_route(const char *url, req_t *req)
{
    if (strcmp(url, "/v1/sales") == 0)
        return R_SALES;
    if (strcmp(url, "/v1/status") == 0)
        return R_STATUS;
    if (strcmp(url, "/metrics") == 0)
        return R_METRICS;
    route_t r;
    const char *rest;
    if ((rest = s_prefix(url, "/v1/sales/")) != NULL)
        r = R_SALE;
    else if ((rest = s_prefix(url, "/v1/customers/")) != NULL)
        r = R_CUSTOMER;
    else
        return R_NONE;
    /* An id never holds '/', so ".../x/y" (or a decoded %2F) is no route. */
    if (rest[0] == '\0' || strchr(rest, '/') != NULL)
        return R_NONE;
    size_t n = strlen(rest);
    if (n > API_ID_MAX)
        req->id_too_long = true;
    else
        memcpy(req->id, rest, n + 1);
    return r;
}

/* Copies untrusted text for a log line: bounded, control bytes and
 * non-ASCII replaced, so a request cannot forge or break log lines. */
static void s_log_copy(char *dst, size_t dstsz, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < dstsz; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c >= 0x7f) ? '?' : src[i];
    }
    dst[i] = '\0';
}

/* Strict unsigned decimal: digits only, no sign, no spaces, no overflow. */
static bool s_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* "application/json", optionally with parameters ("; charset=utf-8"). */
static bool s_is_json_type(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(CT_JSON);
    if (strncasecmp(v, CT_JSON, n) != 0)
        return false;
    char c = v[n];
    return c == '\0' || c == ';' || c == ' ' || c == '\t';
}

/* Length of the valid UTF-8 sequence at s, 0 if there is none. */
static size_t s_utf8_len(const unsigned char *s)
{
    size_t n;
    unsigned min;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = c & (0x3fu >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/*
 * Replaces bytes that are not valid UTF-8 with '?', in place. Messages can
 * quote client input and are cut to fixed sizes, possibly inside a
 * character; jansson refuses such a string, which would turn a clear 400 or
 * 422 into a 500.
 */
static void s_utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = s_utf8_len(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

static double s_ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---- responses -------------------------------------------------------- */

/*
 * Queues an answer. body is malloc'd text and ownership passes here; NULL
 * means building it ran out of memory, which becomes a 500. hname/hval add
 * one more header (Location, Allow) when not NULL.
 */
static enum MHD_Result s_reply(struct MHD_Connection *conn, req_t *req, unsigned status,
                               const char *ctype, char *body, const char *hname, const char *hval)
{
    struct MHD_Response *resp = NULL;
    if (body) {
        resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(body);
    }
    if (!resp) {
        char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
        resp = MHD_create_response_from_buffer(sizeof oom - 1, oom, MHD_RESPMEM_MUST_COPY);
        if (!resp)
            return MHD_NO; /* nothing left to answer with: drop the connection */
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        ctype = CT_JSON;
        hname = NULL;
        req->err = "internal";
    }
    enum MHD_Result ok = MHD_YES;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        (hname && MHD_add_response_header(resp, hname, hval) != MHD_YES))
        ok = MHD_NO;
    if (ok == MHD_YES)
        ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    req->status = status;
    return ok;
}

/* {"error":code,"message":...}, with an optional extra header. */
static enum MHD_Result s_error_hdr(struct MHD_Connection *conn, req_t *req, unsigned status,
                                   const char *code, const char *hname, const char *hval,
                                   const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static enum MHD_Result s_error_hdr(struct MHD_Connection *conn, req_t *req, unsigned status,
                                   const char *code, const char *hname, const char *hval,
                                   const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s_utf8_clean(msg);
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", msg);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    req->err = code;
    return s_reply(conn, req, status, CT_JSON, body, hname, hval);
}

#define s_error(conn, req, status, code, ...)                                                      \
    s_error_hdr((conn), (req), (status), (code), NULL, NULL, __VA_ARGS__)

/* 422 with the field list. */
static enum MHD_Result s_invalid(struct MHD_Connection *conn, req_t *req,
                                 const tm_field_errors_t *errs)
{
    req->err = "validation";
    return s_reply(conn, req, MHD_HTTP_UNPROCESSABLE_CONTENT, CT_JSON,
                   tm_field_errors_to_json(errs), NULL, NULL);
}

/* 400 with jansson's "line L column C: ..." from the record decoder. */
static enum MHD_Result s_malformed(struct MHD_Connection *conn, req_t *req,
                                   const tm_field_errors_t *errs)
{
    return s_error(conn, req, MHD_HTTP_BAD_REQUEST, "malformed_json", "malformed JSON: %s",
                   errs->n > 0 ? errs->e[0].message : tm_strerror(TM_EJSON));
}

/* The answer for a backend error that is not specific to one route. */
static enum MHD_Result s_backend_error(tm_api_t *self, struct MHD_Connection *conn, req_t *req,
                                       int rc)
{
    if (rc == TM_EFULL)
        return s_error(conn, req, MHD_HTTP_INSUFFICIENT_STORAGE, "disk_full",
                       "the till's disk is full: nothing was written");
    tm_log_warn(self->log, "api: %s %s: %s", req->method, req->path, tm_strerror(rc));
    return s_error(conn, req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "internal error: %s",
                   tm_strerror(rc));
}

/* ---- handlers --------------------------------------------------------- */

static enum MHD_Result s_reply_sale(struct MHD_Connection *conn, req_t *req, unsigned status,
                                    const tm_sale_t *sale)
{
    char location[sizeof "/v1/sales/" + TM_UUID_LEN];
    snprintf(location, sizeof location, "/v1/sales/%s", sale->sale_id);
    return s_reply(conn, req, status, CT_JSON, tm_sale_to_json(sale),
                   status == MHD_HTTP_CREATED ? MHD_HTTP_HEADER_LOCATION : NULL, location);
}

static enum MHD_Result s_post_sale(tm_api_t *self, struct MHD_Connection *conn, req_t *req)
{
    tm_sale_t sale;
    tm_field_errors_t errs;
    tm_field_errors_init(&errs);
    memset(&sale, 0, sizeof sale);
    int rc = tm_sale_from_json(req->body ? req->body : "", req->len, &sale, &errs);
    if (rc == TM_EJSON)
        return s_malformed(conn, req, &errs);
    if (rc == TM_EVALIDATE)
        return s_invalid(conn, req, &errs);
    if (rc != TM_OK)
        return s_backend_error(self, conn, req, rc);

    enum MHD_Result ret;
    rc = self->be.post_sale(self->be.ctx, &sale, &errs);
    switch (rc) {
    case TM_OK: ret = s_reply_sale(conn, req, MHD_HTTP_CREATED, &sale); break;
    /* A POS retrying after a lost answer gets the same sale back. */
    case TM_EEXIST: ret = s_reply_sale(conn, req, MHD_HTTP_OK, &sale); break;
    case TM_EVALIDATE: ret = s_invalid(conn, req, &errs); break;
    case TM_ECONFLICT:
        ret = s_error(conn, req, MHD_HTTP_CONFLICT, "conflict",
                      "a different sale with sale_id %s is already stored", sale.sale_id);
        break;
    default: ret = s_backend_error(self, conn, req, rc); break;
    }
    tm_sale_free(&sale);
    return ret;
}

static enum MHD_Result s_get_sale(tm_api_t *self, struct MHD_Connection *conn, req_t *req)
{
    /* Anything that is not a UUID cannot name a sale. */
    if (req->id_too_long || !tm_uuid_valid(req->id))
        return s_error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no such sale");
    tm_sale_t sale;
    memset(&sale, 0, sizeof sale);
    int rc = tm_store_get_sale(self->be.store, req->id, &sale);
    if (rc == TM_ENOTFOUND)
        return s_error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no sale %s", req->id);
    if (rc != TM_OK)
        return s_backend_error(self, conn, req, rc);
    enum MHD_Result ret = s_reply_sale(conn, req, MHD_HTTP_OK, &sale);
    tm_sale_free(&sale);
    return ret;
}

/* Reads ?since= and ?limit=; false after queuing a 400. */
static bool s_list_params(struct MHD_Connection *conn, req_t *req, uint64_t *since, size_t *limit,
                          enum MHD_Result *ret)
{
    const char *s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
    const char *l = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    uint64_t v = 0;
    *since = 0;
    *limit = API_LIST_DEFAULT;
    if (s && !s_parse_u64(s, since)) {
        *ret = s_error(conn, req, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                       "since must be a cursor: an unsigned integer from \"next\"");
        return false;
    }
    if (l && (!s_parse_u64(l, &v) || v == 0)) {
        *ret = s_error(conn, req, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                       "limit must be an integer from 1 to %d", API_LIST_MAX);
        return false;
    }
    if (l)
        *limit = v > API_LIST_MAX ? API_LIST_MAX : (size_t)v;
    return true;
}

/* {"sales":[...],"next":cursor}; NULL on out of memory. Each sale is
 * re-parsed so that the whole document is built by jansson. */
static char *s_list_json(const tm_sale_t *sales, size_t n, uint64_t next)
{
    char *out = NULL;
    json_t *root = json_object();
    json_t *arr = json_array();
    if (!root || !arr)
        goto done;
    for (size_t i = 0; i < n; i++) {
        char *text = tm_sale_to_json(&sales[i]);
        json_t *one = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        if (!one || json_array_append_new(arr, one) != 0)
            goto done;
    }
    if (json_object_set(root, "sales", arr) != 0 ||
        json_object_set_new(root, "next",
                            json_integer(next > INT64_MAX ? INT64_MAX : (json_int_t)next)) != 0)
        goto done;
    out = json_dumps(root, JSON_COMPACT);
done:
    json_decref(arr);
    json_decref(root);
    return out;
}

static enum MHD_Result s_list_sales(tm_api_t *self, struct MHD_Connection *conn, req_t *req)
{
    uint64_t since, next = 0;
    size_t limit, n = 0;
    enum MHD_Result ret = MHD_NO;
    if (!s_list_params(conn, req, &since, &limit, &ret))
        return ret;
    tm_sale_t *sales = NULL;
    int rc = tm_store_list_sales(self->be.store, since, limit, &sales, &n, &next);
    if (rc != TM_OK)
        return s_backend_error(self, conn, req, rc);
    char *body = s_list_json(sales, n, next);
    for (size_t i = 0; i < n; i++)
        tm_sale_free(&sales[i]);
    free(sales);
    return s_reply(conn, req, MHD_HTTP_OK, CT_JSON, body, NULL, NULL);
}

/*
 * 422 naming a path id that cannot be normalised. The errors come
 * from the patch decoder (with a patch that changes nothing) so that GET and
 * PUT tell a mistyped check digit from a malformed id in the same words.
 */
static enum MHD_Result s_bad_customer_id(struct MHD_Connection *conn, req_t *req, tm_id_type_t type)
{
    tm_field_errors_t errs;
    tm_field_errors_init(&errs);
    if (req->id_too_long) {
        /* Not even copied: the decoder would say the same of a shorter one. */
        tm_field_errors_add(&errs, "id", "length", "id is longer than %d bytes",
                            TM_CUST_ID_MAX - 1);
        return s_invalid(conn, req, &errs);
    }
    json_t *probe = json_pack("{s:s, s:s}", "id_type", tm_id_type_name(type), "name", "");
    char *text = probe ? json_dumps(probe, JSON_COMPACT) : NULL;
    json_decref(probe);
    tm_customer_t scratch;
    if (!text ||
        tm_customer_patch_from_json(req->id, text, strlen(text), &scratch, &errs) == TM_OK ||
        errs.n == 0) {
        tm_field_errors_init(&errs);
        tm_field_errors_add(&errs, "id", "format", "not a valid %s", tm_id_type_name(type));
    }
    free(text);
    return s_invalid(conn, req, &errs);
}

static enum MHD_Result s_put_customer(tm_api_t *self, struct MHD_Connection *conn, req_t *req)
{
    tm_customer_t patch, merged;
    tm_field_errors_t errs;
    tm_field_errors_init(&errs);
    memset(&patch, 0, sizeof patch);
    memset(&merged, 0, sizeof merged);
    if (req->id_too_long)
        return s_bad_customer_id(conn, req, TM_IDTYPE_RUT);
    int rc =
        tm_customer_patch_from_json(req->id, req->body ? req->body : "", req->len, &patch, &errs);
    if (rc == TM_EJSON)
        return s_malformed(conn, req, &errs);
    if (rc == TM_EVALIDATE)
        return s_invalid(conn, req, &errs);
    if (rc != TM_OK)
        return s_backend_error(self, conn, req, rc);
    rc = self->be.put_customer(self->be.ctx, &patch, &merged, &errs);
    if (rc == TM_EVALIDATE)
        return s_invalid(conn, req, &errs);
    if (rc != TM_OK)
        return s_backend_error(self, conn, req, rc);
    return s_reply(conn, req, MHD_HTTP_OK, CT_JSON, tm_customer_to_json(&merged), NULL, NULL);
}

static enum MHD_Result s_get_customer(tm_api_t *self, struct MHD_Connection *conn, req_t *req)
{
    tm_id_type_t type = TM_IDTYPE_RUT;
    const char *t = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "id_type");
    if (t && tm_id_type_parse(t, &type) != TM_OK)
        return s_error(conn, req, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                       "id_type must be \"rut\" or \"dni\"");
    char id[TM_CUST_ID_MAX];
    if (req->id_too_long || tm_customer_id_normalise(req->id, type, id, sizeof id) != TM_OK)
        return s_bad_customer_id(conn, req, type);
    tm_customer_t c;
    memset(&c, 0, sizeof c);
    int rc = tm_store_get_customer(self->be.store, id, &c);
    if (rc == TM_ENOTFOUND)
        return s_error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no customer %s", id);
    if (rc != TM_OK)
        return s_backend_error(self, conn, req, rc);
    return s_reply(conn, req, MHD_HTTP_OK, CT_JSON, tm_customer_to_json(&c), NULL, NULL);
}

static enum MHD_Result s_get_text(tm_api_t *self, struct MHD_Connection *conn, req_t *req,
                                  char *(*fn)(void *ctx), const char *ctype)
{
    char *body = fn(self->be.ctx);
    if (!body)
        return s_backend_error(self, conn, req, TM_ENOMEM);
    return s_reply(conn, req, MHD_HTTP_OK, ctype, body, NULL, NULL);
}

/* Runs the route once the whole request is in. */
static enum MHD_Result s_dispatch(tm_api_t *self, struct MHD_Connection *conn, req_t *req,
                                  const char *method)
{
    if (req->too_large)
        return s_error(conn, req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                       "request body is larger than %zu bytes", self->max_body);
    bool get = s_is_get(method);
    switch (req->route) {
    case R_SALES: return get ? s_list_sales(self, conn, req) : s_post_sale(self, conn, req);
    case R_SALE: return s_get_sale(self, conn, req);
    case R_CUSTOMER: return get ? s_get_customer(self, conn, req) : s_put_customer(self, conn, req);
    case R_STATUS: return s_get_text(self, conn, req, self->be.status_json, CT_JSON);
    case R_METRICS: return s_get_text(self, conn, req, self->be.metrics_text, CT_PROM);
    case R_NONE: break;
    }
    return s_error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no such route");
}

/* ---- request lifecycle ------------------------------------------------ */

/*
 * First call for a request (headers in, no body yet). Refuses at once what
 * is wrong before any body: unknown route, wrong method, wrong media type,
 * a declared length over the limit (the client is spared sending it). MHD
 * closes the connection after such an early answer, which is fine for an
 * error; everything else is answered in the last call, once the request is
 * complete, so that the connection stays open for the next request.
 */
static enum MHD_Result s_begin(tm_api_t *self, struct MHD_Connection *conn, req_t *req,
                               const char *url, const char *method)
{
    req->route = s_route(url, req);
    const route_spec_t *spec = s_spec(req->route);
    if (!spec)
        return s_error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no such route");
    bool get = s_is_get(method);
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    bool put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
    if (!((get && spec->get) || (post && spec->post) || (put && spec->put)))
        return s_error_hdr(conn, req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                           MHD_HTTP_HEADER_ALLOW, spec->allow, "%s is not allowed here; use %s",
                           req->method, spec->allow);
    if (get)
        return MHD_YES;

    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && !s_is_json_type(ct))
        return s_error(conn, req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                       "the body must be application/json");
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t declared = 0;
    if (cl && s_parse_u64(cl, &declared)) {
        if (declared > self->max_body) {
            req->too_large = true;
            return s_dispatch(self, conn, req, method);
        }
        /* Known length: one allocation of exactly that size. */
        req->body = malloc((size_t)declared + 1);
        if (!req->body)
            return s_backend_error(self, conn, req, TM_ENOMEM);
        req->cap = (size_t)declared + 1;
    }
    return MHD_YES;
}

/* Adds a piece of body; false means "close the connection". */
static bool s_body_add(tm_api_t *self, req_t *req, const char *data, size_t n)
{
    if (req->too_large || n > self->max_body - req->len) {
        req->too_large = true;
        req->discarded += n;
        if (req->discarded / API_DISCARD_FACTOR > self->max_body) {
            tm_log_warn(self->log, "api: %s %s: body far over the limit, closing", req->method,
                        req->path);
            return false;
        }
        return true;
    }
    if (req->len + n + 1 > req->cap) {
        size_t cap = req->cap ? req->cap : 4096;
        while (cap < req->len + n + 1)
            cap *= 2;
        if (cap > self->max_body + 1)
            cap = self->max_body + 1;
        char *p = realloc(req->body, cap);
        if (!p) {
            tm_log_warn(self->log, "api: %s %s: out of memory for the body", req->method,
                        req->path);
            return false;
        }
        req->body = p;
        req->cap = cap;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
    req->body[req->len] = '\0';
    return true;
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    tm_api_t *self = cls;
    req_t *req = *con_cls;
    (void)version;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &req->t0);
        s_log_copy(req->method, sizeof req->method, method);
        s_log_copy(req->path, sizeof req->path, url);
        *con_cls = req;
        return s_begin(self, conn, req, url, method);
    }
    if (*upload_data_size > 0) {
        bool ok = s_body_add(self, req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    return s_dispatch(self, conn, req, method);
}

static const char *s_toe_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "completed";
    case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error while handling it";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "idle timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutting down";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "read error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client went away";
    }
    return "unknown reason";
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    tm_api_t *self = cls;
    req_t *req = *con_cls;
    (void)conn;
    if (!req)
        return;
    double ms = s_ms_since(&req->t0);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        tm_log_warn(self->log, "api: %s %s %u: connection closed (%s) after %.1f ms", req->method,
                    req->path, req->status, s_toe_name(toe), ms);
    /* A 404 is an answer (no such sale yet), not a fault worth a warning. */
    else if (req->status >= 400 && req->status != MHD_HTTP_NOT_FOUND)
        tm_log_warn(self->log, "api: %s %s %u %s %.1f ms", req->method, req->path, req->status,
                    req->err ? req->err : "", ms);
    else
        tm_log_debug(self->log, "api: %s %s %u %.1f ms", req->method, req->path, req->status, ms);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    const tm_api_t *self = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    tm_log_warn(self->log, "api: libmicrohttpd: %s", msg);
}

/* ---- public ----------------------------------------------------------- */

static int s_sockaddr(const char *addr, uint16_t port, struct sockaddr_storage *ss, unsigned *flags)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        return TM_OK;
    }
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        /* MHD reads an IPv6 sockaddr only when told the family. */
        *flags |= MHD_USE_IPv6;
        return TM_OK;
    }
    return TM_EINVAL;
}

int tm_api_new(const char *addr, uint16_t port, size_t max_body, const tm_api_backend_t *be,
               const tm_log_t *log, tm_api_t **out)
{
    *out = NULL;
    if (!addr || !be || !be->store || !be->post_sale || !be->put_customer || !be->status_json ||
        !be->metrics_text)
        return TM_EINVAL;
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (s_sockaddr(addr, port, &ss, &flags) != TM_OK) {
        tm_log_error(log, "api: \"%s\" is not a numeric IPv4 or IPv6 address", addr);
        return TM_EINVAL;
    }
    tm_api_t *self = calloc(1, sizeof *self);
    if (!self)
        return TM_ENOMEM;
    self->be = *be;
    self->log = log;
    self->max_body = max_body ? max_body : (size_t)TM_API_MAX_BODY_DEFAULT;
    /* The logger goes first so that MHD's complaints about the other
     * options reach our log too. */
    self->mhd =
        MHD_start_daemon(flags, port, NULL, NULL, s_access, self, MHD_OPTION_EXTERNAL_LOGGER,
                         s_mhd_log, self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned int)API_CONN_LIMIT,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)API_CONN_TIMEOUT_S,
                         MHD_OPTION_NOTIFY_COMPLETED, s_completed, self, MHD_OPTION_END);
    if (!self->mhd) {
        tm_log_error(log, "api: cannot listen on %s port %u (in use, or not our address?)", addr,
                     (unsigned)port);
        free(self);
        return TM_EIO;
    }
    const union MHD_DaemonInfo *fdi = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (!fdi || !pi) {
        MHD_stop_daemon(self->mhd);
        free(self);
        return TM_EIO;
    }
    self->fd = fdi->epoll_fd;
    self->port = pi->port;
    tm_log_info(log, "api: listening on %s port %u", addr, (unsigned)self->port);
    *out = self;
    return TM_OK;
}

void tm_api_destroy(tm_api_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tm_api_t *self = *self_p;
    MHD_stop_daemon(self->mhd); /* completes (and frees) open requests */
    free(self);
    *self_p = NULL;
}

uint16_t tm_api_port(const tm_api_t *self)
{
    return self->port;
}

int tm_api_fd(const tm_api_t *self)
{
    return self->fd;
}

int64_t tm_api_timeout_ms(tm_api_t *self)
{
    MHD_UNSIGNED_LONG_LONG t = 0;
    if (MHD_get_timeout(self->mhd, &t) != MHD_YES)
        return -1;
    return t > INT64_MAX ? INT64_MAX : (int64_t)t;
}

void tm_api_run(tm_api_t *self)
{
    MHD_run(self->mhd);
}
