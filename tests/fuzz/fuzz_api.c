/*
 * libFuzzer target: the local HTTP API as a client reaches it - raw bytes on
 * a TCP connection to the real tm_api (libmicrohttpd, routing, headers,
 * query parameters, body limits, JSON handlers) over a real store.
 *
 * Everything runs on this thread: the input is written to a loopback
 * connection while tm_api_run is pumped, the write side is shut, and the
 * answer is read until the server closes. The API and its store (in a
 * temporary directory, on /dev/shm when there is one) live for the whole
 * run; sales posted by earlier inputs stay, as on a till.
 *
 * Besides not crashing, every answer must be one a POS can use: never a
 * 500 (nothing here fails inside), and a JSON content type means a body
 * that parses as JSON.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tm_api.h"
#include "tm_wire.h"

/* As the daemon's default, so that 413 and body handling are the real ones. */
#define MAX_BODY TM_API_MAX_BODY_DEFAULT

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    char dir[64];
    tm_log_t log;
    tm_store_t *store;
    tm_api_t *api;
    uint64_t hlc, receipt;
} fx_t;

static fx_t *G; /* the fixture of this fuzzing process */

/* ---- a backend that stores into the real store (as test_api.c's) ------ */

static int be_post_sale(void *ctx, tm_sale_t *sale, tm_field_errors_t *errs)
{
    fx_t *f = ctx;
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

static int be_put_customer(void *ctx, const tm_customer_t *patch, tm_customer_t *merged,
                           tm_field_errors_t *errs)
{
    fx_t *f = ctx;
    (void)errs;
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

static char *be_status(void *ctx)
{
    (void)ctx;
    return strdup("{\"api_version\":1,\"node\":{\"name\":\"till-1\"}}");
}

static char *be_metrics(void *ctx)
{
    (void)ctx;
    return strdup("# TYPE tillmesh_sales counter\ntillmesh_sales 0\n");
}

static char *be_parked(void *ctx)
{
    (void)ctx;
    return strdup("{\"parked\":[]}");
}

static int be_retry(void *ctx, const char *sale_id)
{
    (void)ctx;
    return strcmp(sale_id, "a3c1f0de-8a3e-4a51-9d4c-0c6f3b7f2a10") ? TM_ENOTFOUND : TM_OK;
}

static void fx_free(void)
{
    if (!G)
        return;
    tm_api_destroy(&G->api);
    tm_store_destroy(&G->store);
    char path[128];
    snprintf(path, sizeof path, "%s/store.db", G->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/store.db-wal", G->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/store.db-shm", G->dir);
    unlink(path);
    rmdir(G->dir);
    free(G);
    G = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    G = calloc(1, sizeof *G);
    if (!G)
        abort();
    G->log.level = getenv("TM_FUZZ_DEBUG") ? TM_LOG_DEBUG : TM_LOG_ERROR;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    snprintf(G->dir, sizeof G->dir, "%s/tm-fuzz-api-XXXXXX", base);
    char path[128];
    if (!mkdtemp(G->dir))
        abort();
    snprintf(path, sizeof path, "%s/store.db", G->dir);
    if (tm_store_open(path, NULL, &G->store) != TM_OK)
        abort();
    tm_api_backend_t be = {.ctx = G,
                           .store = G->store,
                           .post_sale = be_post_sale,
                           .put_customer = be_put_customer,
                           .status_json = be_status,
                           .metrics_text = be_metrics,
                           .parked_json = be_parked,
                           .erp_retry = be_retry};
    tm_api_cfg_t cfg = {.addr = "127.0.0.1", .port = 0, .max_body = MAX_BODY};
    if (tm_api_new(&cfg, &be, &G->log, &G->api) != TM_OK)
        abort();
    atexit(fx_free);
    return 0;
}

static int s_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        abort();
    /* Reset on close: thousands of connections a second must not leave
     * TIME_WAIT sockets behind to exhaust the ports. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(tm_api_port(G->api)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        abort();
    return fd;
}

/* The answers, as read from the socket. */
typedef struct {
    char *p;
    size_t n, cap;
} answer_t;

#define ANSWER_MAX (8 * 1024 * 1024)

static void answer_add(answer_t *a, const char *p, size_t n)
{
    if (a->n + n > ANSWER_MAX)
        n = ANSWER_MAX - a->n; /* enough to check; the rest is dropped */
    if (a->n + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 16384;
        while (cap < a->n + n + 1)
            cap *= 2;
        char *q = realloc(a->p, cap);
        if (!q)
            abort();
        a->p = q;
        a->cap = cap;
    }
    memcpy(a->p + a->n, p, n);
    a->n += n;
    a->p[a->n] = '\0';
}

/* Value of header name in the head [h, end), or NULL; *len its length. */
static const char *header(const char *h, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *l = h; l < end;) {
        const char *eol = memmem(l, (size_t)(end - l), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - l) > nl && l[nl] == ':' && !strncasecmp(l, name, nl)) {
            const char *v = l + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            *len = (size_t)(eol - v);
            return v;
        }
        l = eol + 2;
    }
    return NULL;
}

/* Checks each complete answer; a HEAD request's answers have no body. */
static void check_answers(const answer_t *a, bool head)
{
    if (!a->p)
        return; /* no answer at all (e.g. an incomplete request) */
    const char *p = a->p, *end = a->p + a->n;
    while (p && p < end && !head) {
        if (end - p < 12 || strncmp(p, "HTTP/1.", 7))
            return; /* cut short (our cap): nothing more to check */
        unsigned status = (unsigned)atoi(p + 9);
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend)
            return;
        if (status == 500) {
            fprintf(stderr, "fuzz_api: a 500 answer:\n%.*s\n", (int)(end - p), p);
            abort();
        }
        const char *body = hend + 4;
        if (status < 200) { /* 100 Continue: a head alone */
            p = body;
            continue;
        }
        size_t cl_len, ct_len;
        const char *cl = header(p, hend, "Content-Length", &cl_len);
        const char *ct = header(p, hend, "Content-Type", &ct_len);
        if (!cl)
            return;
        size_t blen = (size_t)strtoull(cl, NULL, 10);
        if (blen > (size_t)(end - body))
            return;
        if (ct && ct_len >= 16 && !strncmp(ct, "application/json", 16)) {
            json_error_t err;
            json_t *j = json_loadb(body, blen, 0, &err);
            if (!j) {
                fprintf(stderr, "fuzz_api: %u answer is not JSON (%s):\n%.*s\n", status, err.text,
                        (int)blen, body);
                abort();
            }
            json_decref(j);
        }
        p = body + blen;
    }
}

/* 1 when neither side has anything left to do: MHD ran after the last
 * bytes moved, its epoll fd has no new event and it asks for no immediate
 * call, and no answer bytes wait on our socket. Loopback delivers at once,
 * so this is a fact, not a guess about timing. */
static int s_quiet(int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
                          {.fd = tm_api_fd(G->api), .events = POLLIN}};
    return poll(p, 2, 0) == 0 && tm_api_timeout_ms(G->api) != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = s_connect();
    size_t sent = 0;
    int shut = 0, done = 0;
    char buf[16384];
    answer_t ans = {0};
    /* The API answers a complete request and then waits for the next one on
     * the same connection; an incomplete one waits for more bytes. Either
     * way, once everything is sent and all is quiet, the input is done. */
    while (!done) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN | (shut ? 0 : POLLOUT)},
                              {.fd = tm_api_fd(G->api), .events = POLLIN}};
        int64_t to = tm_api_timeout_ms(G->api);
        if (to < 0 || to > 100)
            to = 100;
        if (shut)
            to = 0; /* from here on nothing comes from outside */
        if (poll(p, 2, (int)to) < 0 && errno != EINTR)
            abort();
        tm_api_run(G->api);
        if (!shut && (p[0].revents & POLLOUT)) {
            ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                sent = size; /* the server closed early (e.g. a 413): stop sending */
            if (sent == size)
                shut = 1;
            continue;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n > 0)
                answer_add(&ans, buf, (size_t)n);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                done = 1;
            continue;
        }
        if (shut && s_quiet(fd))
            done = 1;
    }
    check_answers(&ans, memmem(data, size, "HEAD", 4) != NULL);
    free(ans.p);
    close(fd); /* a reset (SO_LINGER 0): MHD sees it at once */
    /* Let MHD notice and free its side, so connections never pile up. */
    for (int i = 0; i < 100; i++) {
        struct pollfd p = {.fd = tm_api_fd(G->api), .events = POLLIN};
        if (poll(&p, 1, 0) <= 0 && tm_api_timeout_ms(G->api) != 0)
            break;
        tm_api_run(G->api);
    }
    return 0;
}
