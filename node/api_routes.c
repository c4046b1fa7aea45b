/* api_routes.c - the routes of the local API and their handlers (see
 * tm_api.h for the contract, docs/api.md for the examples). */
#include "api_routes.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_LIST_DEFAULT 100
#define API_LIST_MAX     1000

typedef struct {
    const char *allow; /* value of the Allow header on 405 */
    tm_api_route_t route;
    bool get, post, put;
} route_spec_t;

static const route_spec_t route_specs[] = {
    {"GET, HEAD, POST", R_SALES, true, true, false},   /* /v1/sales */
    {"GET, HEAD", R_SALE, true, false, false},         /* /v1/sales/{id} */
    {"GET, HEAD, PUT", R_CUSTOMER, true, false, true}, /* /v1/customers/{id} */
    {"GET, HEAD", R_STATUS, true, false, false},       /* /v1/status */
    {"GET, HEAD", R_METRICS, true, false, false},      /* /metrics */
    {"GET, HEAD", R_PARKED, true, false, false},       /* /v1/erp/parked */
    {"POST", R_RETRY, false, true, false},             /* /v1/erp/parked/{id}/retry */
    {"GET, HEAD", R_PRODUCTS, true, false, false},     /* /v1/products */
    {"GET, HEAD", R_PRODUCT, true, false, false},      /* /v1/products/{sku} */
};

/* ---- routing ---------------------------------------------------------- */

static const route_spec_t *s_spec(tm_api_route_t r)
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

bool tm_api__is_get(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

tm_api_route_t tm_api__route(const char *url, tm_api_req_t *req)
{
    if (strcmp(url, "/v1/sales") == 0)
        return R_SALES;
    if (strcmp(url, "/v1/status") == 0)
        return R_STATUS;
    if (strcmp(url, "/metrics") == 0)
        return R_METRICS;
    if (strcmp(url, "/v1/erp/parked") == 0)
        return R_PARKED;
    if (strcmp(url, "/v1/products") == 0)
        return R_PRODUCTS;
    tm_api_route_t r;
    const char *rest;
    char idbuf[TM_API_ID_MAX + 16];
    size_t rl;
    if ((rest = s_prefix(url, "/v1/erp/parked/")) != NULL && (rl = strlen(rest)) > 6 &&
        rl < sizeof idbuf && strcmp(rest + rl - 6, "/retry") == 0) {
        memcpy(idbuf, rest, rl - 6);
        idbuf[rl - 6] = '\0';
        rest = idbuf;
        r = R_RETRY;
    } else if ((rest = s_prefix(url, "/v1/sales/")) != NULL)
        r = R_SALE;
    else if ((rest = s_prefix(url, "/v1/customers/")) != NULL)
        r = R_CUSTOMER;
    else if ((rest = s_prefix(url, "/v1/products/")) != NULL)
        r = R_PRODUCT;
    else
        return R_NONE;
    /* An id never holds '/', so ".../x/y" (or a decoded %2F) is no route. */
    if (rest[0] == '\0' || strchr(rest, '/') != NULL)
        return R_NONE;
    size_t n = strlen(rest);
    if (n > TM_API_ID_MAX)
        req->id_too_long = true;
    else
        memcpy(req->id, rest, n + 1);
    return r;
}

const char *tm_api__allow(tm_api_route_t route, const char *method)
{
    const route_spec_t *spec = s_spec(route);
    if (!spec)
        return NULL;
    bool get = tm_api__is_get(method);
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    bool put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
    if ((get && spec->get) || (post && spec->post) || (put && spec->put))
        return NULL;
    return spec->allow;
}

/* ---- error answers ---------------------------------------------------- */

/* 422 with the field list. */
static enum MHD_Result s_invalid(struct MHD_Connection *conn, tm_api_req_t *req,
                                 const tm_field_errors_t *errs)
{
    req->err = "validation";
    return tm_api__reply(conn, req, MHD_HTTP_UNPROCESSABLE_CONTENT, TM_API_CT_JSON,
                         tm_field_errors_to_json(errs), NULL, NULL);
}

/* 400 with jansson's "line L column C: ..." from the record decoder. */
static enum MHD_Result s_malformed(struct MHD_Connection *conn, tm_api_req_t *req,
                                   const tm_field_errors_t *errs)
{
    return tm_api__error(conn, req, MHD_HTTP_BAD_REQUEST, "malformed_json", "malformed JSON: %s",
                         errs->n > 0 ? errs->e[0].message : tm_strerror(TM_EJSON));
}

/* The answer for a backend error that is not specific to one route. */
static enum MHD_Result s_backend_error(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                       tm_api_req_t *req, int rc)
{
    if (rc == TM_EFULL)
        return tm_api__error(conn, req, MHD_HTTP_INSUFFICIENT_STORAGE, "disk_full",
                             "the till's disk is full: nothing was written");
    if (rc == TM_ELOST)
        return tm_api__error_hdr(conn, req, MHD_HTTP_SERVICE_UNAVAILABLE, "store_lost",
                                 MHD_HTTP_HEADER_RETRY_AFTER, "2",
                                 "the till's database file was deleted or replaced: nothing was "
                                 "written; the till is putting it back (see GET /v1/status)");
    tm_log_warn(rt->log, "api: %s %s: %s", req->method, req->path, tm_strerror(rc));
    return tm_api__error(conn, req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                         "internal error: %s", tm_strerror(rc));
}

/* ---- handlers --------------------------------------------------------- */

static enum MHD_Result s_reply_sale(struct MHD_Connection *conn, tm_api_req_t *req, unsigned status,
                                    const tm_sale_t *sale)
{
    char location[sizeof "/v1/sales/" + TM_UUID_LEN];
    snprintf(location, sizeof location, "/v1/sales/%s", sale->sale_id);
    return tm_api__reply(conn, req, status, TM_API_CT_JSON, tm_sale_to_json(sale),
                         status == MHD_HTTP_CREATED ? MHD_HTTP_HEADER_LOCATION : NULL, location);
}

static enum MHD_Result s_post_sale(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                   tm_api_req_t *req)
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
        return s_backend_error(rt, conn, req, rc);

    enum MHD_Result ret;
    rc = rt->be->post_sale(rt->be->ctx, &sale, &errs);
    switch (rc) {
    case TM_OK: ret = s_reply_sale(conn, req, MHD_HTTP_CREATED, &sale); break;
    /* A POS retrying after a lost answer gets the same sale back. */
    case TM_EEXIST: ret = s_reply_sale(conn, req, MHD_HTTP_OK, &sale); break;
    case TM_EVALIDATE: ret = s_invalid(conn, req, &errs); break;
    case TM_ECONFLICT:
        ret = tm_api__error(conn, req, MHD_HTTP_CONFLICT, "conflict",
                            "a different sale with sale_id %s is already stored", sale.sale_id);
        break;
    default: ret = s_backend_error(rt, conn, req, rc); break;
    }
    tm_sale_free(&sale);
    return ret;
}

static enum MHD_Result s_get_sale(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                  tm_api_req_t *req)
{
    /* Anything that is not a UUID cannot name a sale. */
    if (req->id_too_long || !tm_uuid_valid(req->id))
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no such sale");
    tm_sale_t sale;
    memset(&sale, 0, sizeof sale);
    int rc = tm_store_get_sale(rt->be->store, req->id, &sale);
    if (rc == TM_ENOTFOUND)
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no sale %s", req->id);
    if (rc != TM_OK)
        return s_backend_error(rt, conn, req, rc);
    enum MHD_Result ret = s_reply_sale(conn, req, MHD_HTTP_OK, &sale);
    tm_sale_free(&sale);
    return ret;
}

/* Reads ?since= and ?limit=; false after queuing a 400. */
static bool s_list_params(struct MHD_Connection *conn, tm_api_req_t *req, uint64_t *since,
                          size_t *limit, enum MHD_Result *ret)
{
    const char *s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
    const char *l = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    uint64_t v = 0;
    *since = 0;
    *limit = API_LIST_DEFAULT;
    if (s && !tm_api__parse_u64(s, since)) {
        *ret = tm_api__error(conn, req, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                             "since must be a cursor: an unsigned integer from \"next\"");
        return false;
    }
    if (l && (!tm_api__parse_u64(l, &v) || v == 0)) {
        *ret = tm_api__error(conn, req, MHD_HTTP_BAD_REQUEST, "bad_parameter",
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

static enum MHD_Result s_list_sales(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                    tm_api_req_t *req)
{
    uint64_t since, next = 0;
    size_t limit, n = 0;
    enum MHD_Result ret = MHD_NO;
    if (!s_list_params(conn, req, &since, &limit, &ret))
        return ret;
    tm_sale_t *sales = NULL;
    int rc = tm_store_list_sales(rt->be->store, since, limit, &sales, &n, &next);
    if (rc != TM_OK)
        return s_backend_error(rt, conn, req, rc);
    char *body = s_list_json(sales, n, next);
    for (size_t i = 0; i < n; i++)
        tm_sale_free(&sales[i]);
    free(sales);
    return tm_api__reply(conn, req, MHD_HTTP_OK, TM_API_CT_JSON, body, NULL, NULL);
}

/*
 * 422 naming a path id that cannot be normalised. The errors come
 * from the patch decoder (with a patch that changes nothing) so that GET and
 * PUT tell a mistyped check digit from a malformed id in the same words.
 */
static enum MHD_Result s_bad_customer_id(struct MHD_Connection *conn, tm_api_req_t *req,
                                         tm_id_type_t type)
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

static enum MHD_Result s_put_customer(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                      tm_api_req_t *req)
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
        return s_backend_error(rt, conn, req, rc);
    rc = rt->be->put_customer(rt->be->ctx, &patch, &merged, &errs);
    if (rc == TM_EVALIDATE)
        return s_invalid(conn, req, &errs);
    if (rc != TM_OK)
        return s_backend_error(rt, conn, req, rc);
    return tm_api__reply(conn, req, MHD_HTTP_OK, TM_API_CT_JSON, tm_customer_to_json(&merged), NULL,
                         NULL);
}

static enum MHD_Result s_get_customer(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                      tm_api_req_t *req)
{
    tm_id_type_t type = TM_IDTYPE_RUT;
    const char *t = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "id_type");
    if (t && tm_id_type_parse(t, &type) != TM_OK)
        return tm_api__error(conn, req, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                             "id_type must be \"rut\" or \"dni\"");
    char id[TM_CUST_ID_MAX];
    if (req->id_too_long || tm_customer_id_normalise(req->id, type, id, sizeof id) != TM_OK)
        return s_bad_customer_id(conn, req, type);
    tm_customer_t c;
    memset(&c, 0, sizeof c);
    int rc = tm_store_get_customer(rt->be->store, id, &c);
    if (rc == TM_ENOTFOUND)
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no customer %s", id);
    if (rc != TM_OK)
        return s_backend_error(rt, conn, req, rc);
    return tm_api__reply(conn, req, MHD_HTTP_OK, TM_API_CT_JSON, tm_customer_to_json(&c), NULL,
                         NULL);
}

static enum MHD_Result s_get_text(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                  tm_api_req_t *req, char *(*fn)(void *ctx), const char *ctype)
{
    char *body = fn(rt->be->ctx);
    if (!body)
        return s_backend_error(rt, conn, req, TM_ENOMEM);
    return tm_api__reply(conn, req, MHD_HTTP_OK, ctype, body, NULL, NULL);
}

static enum MHD_Result s_erp_retry(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                   tm_api_req_t *req)
{
    if (!rt->be->erp_retry)
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no such route");
    int rc = rt->be->erp_retry(rt->be->ctx, req->id);
    if (rc == TM_ENOTFOUND)
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found",
                             "sale %.40s is not parked on this till", req->id);
    if (rc != TM_OK)
        return s_backend_error(rt, conn, req, rc);
    json_t *o = json_pack("{s:s, s:s}", "sale_id", req->id, "state", "queued");
    char *body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return tm_api__reply(conn, req, MHD_HTTP_OK, TM_API_CT_JSON, body, NULL, NULL);
}

/* ---- catalogue -------------------------------------------------------- */

static enum MHD_Result s_get_product(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                     tm_api_req_t *req)
{
    tm_product_t p;
    if (req->id_too_long)
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no such product");
    int rc = tm_store_product_get(rt->be->store, req->id, &p);
    if (rc == TM_ENOTFOUND)
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found",
                             "no product with sku or barcode %.64s in this till's catalogue",
                             req->id);
    if (rc != TM_OK)
        return s_backend_error(rt, conn, req, rc);
    return tm_api__reply(conn, req, MHD_HTTP_OK, TM_API_CT_JSON, tm_product_to_json(&p), NULL,
                         NULL);
}

/* {"products":[...]}: by name prefix (?q=, any case), else every product by
 * sku after ?after=; at most ?limit= (default 100, at most 1000). */
static enum MHD_Result s_find_products(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                       tm_api_req_t *req)
{
    const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "q");
    const char *after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
    const char *l = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    uint64_t v = API_LIST_DEFAULT;
    if (l && (!tm_api__parse_u64(l, &v) || v == 0))
        return tm_api__error(conn, req, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                             "limit must be an integer from 1 to %d", API_LIST_MAX);
    if ((q && strlen(q) >= TM_TEXT_MAX) || (after && strlen(after) >= TM_SKU_MAX))
        return tm_api__error(conn, req, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                             "q is at most %d bytes, after at most %d", TM_TEXT_MAX - 1,
                             TM_SKU_MAX - 1);
    tm_product_t *ps = NULL;
    size_t n = 0;
    int rc = tm_store_products_find(rt->be->store, q, after ? after : "",
                                    v > API_LIST_MAX ? API_LIST_MAX : (size_t)v, &ps, &n);
    if (rc != TM_OK)
        return s_backend_error(rt, conn, req, rc);
    json_t *root = json_object(), *arr = json_array();
    bool bad = !root || !arr || json_object_set(root, "products", arr);
    for (size_t i = 0; i < n && !bad; i++) {
        char *text = tm_product_to_json(&ps[i]);
        json_t *one = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        bad = !one || json_array_append_new(arr, one);
    }
    free(ps);
    char *body = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(arr);
    json_decref(root);
    if (!body)
        return s_backend_error(rt, conn, req, TM_ENOMEM);
    return tm_api__reply(conn, req, MHD_HTTP_OK, TM_API_CT_JSON, body, NULL, NULL);
}

enum MHD_Result tm_api__dispatch(const tm_api_routes_t *rt, struct MHD_Connection *conn,
                                 tm_api_req_t *req, const char *method)
{
    if (req->too_large)
        return tm_api__error(conn, req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                             "request body is larger than %zu bytes", rt->max_body);
    bool get = tm_api__is_get(method);
    switch (req->route) {
    case R_SALES: return get ? s_list_sales(rt, conn, req) : s_post_sale(rt, conn, req);
    case R_SALE: return s_get_sale(rt, conn, req);
    case R_CUSTOMER: return get ? s_get_customer(rt, conn, req) : s_put_customer(rt, conn, req);
    case R_STATUS: return s_get_text(rt, conn, req, rt->be->status_json, TM_API_CT_JSON);
    case R_METRICS: return s_get_text(rt, conn, req, rt->be->metrics_text, TM_API_CT_PROM);
    case R_PARKED:
        if (!rt->be->parked_json)
            break;
        return s_get_text(rt, conn, req, rt->be->parked_json, TM_API_CT_JSON);
    case R_RETRY: return s_erp_retry(rt, conn, req);
    case R_PRODUCT: return s_get_product(rt, conn, req);
    case R_PRODUCTS: return s_find_products(rt, conn, req);
    case R_NONE: break;
    }
    return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no such route");
}
