/*
 * test_api_limits.c - what keeps the local API available to its POS: the
 * whole-request and idle deadlines, the connection cap with eviction of the
 * oldest idle or slow connection, remote clients (token, per-address cap,
 * slots kept for loopback), body memory that follows the bytes received,
 * and the token file.
 *
 * tm_api runs in a thread of the test process that polls its fd as the
 * daemon's loop does; clients are raw sockets, so that a test can send a
 * request as slowly and as incompletely as a slowloris does. Every wait is a
 * poll for a condition with a deadline far above what it should take.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tm_api.h"

#define TOKEN   "0123456789abcdef-test-token"
#define WAIT_MS 10000 /* every wait; far above what each should take */
/* Deadlines for the cap tests: past any wait, so only the cap closes. */
#define LONG_MS 60000

/* ---- a backend that stores nothing ----------------------------------- */

static int fake_post_sale(void *ctx, tm_sale_t *sale, tm_field_errors_t *errs)
{
    (void)ctx;
    if (!sale->sale_id[0])
        tm_strlcpy(sale->sale_id, "3f2c1a9e-8b7d-4c6e-9f01-23456789abcd", sizeof sale->sale_id);
    if (!sale->till[0])
        tm_strlcpy(sale->till, "till-1", sizeof sale->till);
    if (!sale->receipt_no)
        sale->receipt_no = 1;
    if (!sale->created_at[0])
        tm_strlcpy(sale->created_at, "2026-11-23T12:00:00Z", sizeof sale->created_at);
    return tm_sale_validate(sale, errs);
}

static int fake_put_customer(void *ctx, const tm_customer_t *patch, tm_customer_t *merged,
                             tm_field_errors_t *errs)
{
    (void)ctx;
    (void)errs;
    *merged = *patch;
    return TM_OK;
}

static char *fake_status(void *ctx)
{
    (void)ctx;
    return strdup("{\"api_version\":1}");
}

static char *fake_metrics(void *ctx)
{
    (void)ctx;
    return strdup("tillmesh_sales 0\n");
}

/* ---- server thread ---------------------------------------------------- */

static struct {
    char dir[64];
    tm_log_t log;
    tm_store_t *store;
    tm_api_t *api;
    pthread_mutex_t mu; /* held around every call into api */
    pthread_t thread;
    bool running;
    atomic_bool stop;
} T;

static void *serve(void *arg)
{
    (void)arg;
    while (!atomic_load(&T.stop)) {
        pthread_mutex_lock(&T.mu);
        int64_t to = tm_api_timeout_ms(T.api);
        int fd = tm_api_fd(T.api);
        pthread_mutex_unlock(&T.mu);
        if (to < 0 || to > 20)
            to = 20; /* wake up now and then to see T.stop */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, (int)to);
        pthread_mutex_lock(&T.mu);
        tm_api_run(T.api);
        pthread_mutex_unlock(&T.mu);
    }
    return NULL;
}

static void setup(void)
{
    memset(&T, 0, sizeof T);
    pthread_mutex_init(&T.mu, NULL);
    T.log.level = getenv("TM_TEST_DEBUG") ? TM_LOG_DEBUG : TM_LOG_ERROR;
    tm_strlcpy(T.log.tag, "test_api_limits", sizeof T.log.tag);
    tm_strlcpy(T.dir, "/tmp/tm_apil_XXXXXX", sizeof T.dir);
    cr_assert_not_null(mkdtemp(T.dir));
    char path[128];
    snprintf(path, sizeof path, "%s/store.db", T.dir);
    cr_assert_eq(tm_store_open(path, NULL, &T.store), TM_OK);
}

/* Starts the API with cfg (addr defaults to 127.0.0.1). */
static void start(tm_api_cfg_t cfg)
{
    tm_api_backend_t be = {
        .store = T.store,
        .post_sale = fake_post_sale,
        .put_customer = fake_put_customer,
        .status_json = fake_status,
        .metrics_text = fake_metrics,
    };
    if (!cfg.addr)
        cfg.addr = "127.0.0.1";
    cr_assert_eq(tm_api_new(&cfg, &be, &T.log, &T.api), TM_OK);
    cr_assert_eq(pthread_create(&T.thread, NULL, serve, NULL), 0);
    T.running = true;
}

static void teardown(void)
{
    if (T.running) {
        atomic_store(&T.stop, true);
        pthread_join(T.thread, NULL);
    }
    tm_api_destroy(&T.api);
    tm_store_destroy(&T.store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T.dir);
    cr_expect_eq(system(cmd), 0);
    pthread_mutex_destroy(&T.mu);
}

TestSuite(api_limits, .init = setup, .fini = teardown, .timeout = 120);

static tm_api_stats_t stats(void)
{
    tm_api_stats_t s;
    pthread_mutex_lock(&T.mu);
    tm_api_stats(T.api, &s);
    pthread_mutex_unlock(&T.mu);
    return s;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls cond until true or WAIT_MS pass. */
#define WAIT_FOR(cond, what)                                                                       \
    do {                                                                                           \
        uint64_t dl_ = now_ms() + WAIT_MS;                                                         \
        while (!(cond) && now_ms() < dl_)                                                          \
            nap_ms(10);                                                                            \
        cr_assert((cond), "timed out after %d ms waiting for %s", WAIT_MS, what);                  \
    } while (0)

/* ---- raw clients ------------------------------------------------------ */

/* Connects to the API port at ip (from ip, as the kernel picks). */
static int dial(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(tm_api_port(T.api))};
    cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

static void say(int fd, const char *s)
{
    cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Has the server closed fd (EOF or reset)? Drains what was sent first. */
static bool closed_by_server(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return true;
        if (n < 0)
            return errno != EAGAIN && errno != EWOULDBLOCK;
    }
}

/* Opens a slowloris connection: a request line and one header, no more. */
static int slow_open(const char *ip)
{
    int fd = dial(ip);
    say(fd, "POST /v1/sales HTTP/1.1\r\nHost: till\r\n");
    return fd;
}

/* Sends a whole request on a new connection and returns the answer's
 * status (0: closed without an answer). */
static int whole_request(const char *ip, const char *req)
{
    int fd = dial(ip);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)send(fd, req, strlen(req), MSG_NOSIGNAL);
    char buf[256] = "";
    size_t got = 0;
    while (got < 12) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        status = 0;
    return status;
}

#define SALE_JSON                                                                                  \
    "{\"currency\":\"CLP\",\"lines\":[{\"sku\":\"1\",\"name\":\"Pan\",\"qty\":1000,"               \
    "\"unit_price\":100}],\"total\":100,\"payments\":[{\"method\":\"cash\",\"amount\":100}]}"

static int post_sale(const char *ip)
{
    char req[512];
    snprintf(req, sizeof req,
             "POST /v1/sales HTTP/1.1\r\nHost: till\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(SALE_JSON), SALE_JSON);
    return whole_request(ip, req);
}

static int get_status(const char *ip, const char *auth)
{
    char req[256];
    snprintf(req, sizeof req,
             "GET /v1/status HTTP/1.1\r\nHost: till\r\n%s%s%sConnection: close\r\n\r\n",
             auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    return whole_request(ip, req);
}

/* An IPv4 address of this host that is not loopback, for the remote
 * client tests; NULL (and the test skips, saying so) if there is none. */
static const char *remote_ip(void)
{
    static char ip[INET_ADDRSTRLEN];
    struct ifaddrs *ifs = NULL, *i;
    ip[0] = '\0';
    if (getifaddrs(&ifs) != 0)
        return NULL;
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)i->ifa_addr;
        if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
            continue;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        break;
    }
    freeifaddrs(ifs);
    if (!ip[0]) {
        fprintf(stderr, "SKIP: this host has no non-loopback IPv4 address to act as a remote "
                        "client from\n");
        return NULL;
    }
    return ip;
}

/* ---- deadlines -------------------------------------------------------- */

/* A header line every 100 ms keeps MHD's idle timer from ever firing; the
 * request deadline, counted from the request line, closes it anyway. */
Test(api_limits, trickled_headers_closed_at_request_deadline)
{
    start((tm_api_cfg_t){.request_timeout_ms = 1000});
    int fd = slow_open("127.0.0.1");
    uint64_t dl = now_ms() + WAIT_MS;
    bool closed = false;
    for (int i = 0; !closed && now_ms() < dl; i++) {
        char line[64];
        snprintf(line, sizeof line, "X-Trickle-%d: %d\r\n", i, i);
        (void)send(fd, line, strlen(line), MSG_NOSIGNAL);
        nap_ms(100);
        closed = closed_by_server(fd);
    }
    cr_assert(closed, "a trickling request was still open after %d ms", WAIT_MS);
    cr_expect_eq(stats().timed_out, 1);
    close(fd);
    /* The API itself goes on serving. */
    cr_expect_eq(post_sale("127.0.0.1"), 201);
}

/* Headers done, then a body a byte at a time: the same deadline, and the
 * body's memory is given back. */
Test(api_limits, trickled_body_closed_at_request_deadline)
{
    start((tm_api_cfg_t){.request_timeout_ms = 1000});
    int fd = dial("127.0.0.1");
    say(fd, "POST /v1/sales HTTP/1.1\r\nHost: till\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n");
    uint64_t dl = now_ms() + WAIT_MS;
    bool closed = false;
    while (!closed && now_ms() < dl) {
        (void)send(fd, " ", 1, MSG_NOSIGNAL);
        nap_ms(100);
        closed = closed_by_server(fd);
    }
    cr_assert(closed, "a trickling body was still open after %d ms", WAIT_MS);
    cr_expect_eq(stats().timed_out, 1);
    WAIT_FOR(stats().body_bytes == 0, "the body to be freed");
    close(fd);
}

/* Reads one answer on a kept-alive connection; returns its status. */
static int read_answer(int fd)
{
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int status = 0;
    return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

/* A POS that keeps its connection open between sales: each request has a
 * deadline of its own, so a pause longer than the request deadline (but
 * shorter than the idle one) costs nothing. */
Test(api_limits, kept_alive_connection_gets_a_deadline_per_request)
{
    start((tm_api_cfg_t){.request_timeout_ms = 500});
    int fd = dial("127.0.0.1");
    say(fd, "GET /v1/status HTTP/1.1\r\nHost: till\r\n\r\n");
    cr_assert_eq(read_answer(fd), 200);
    nap_ms(1000); /* twice the request deadline: time has to pass here */
    cr_assert_not(closed_by_server(fd), "an idle kept-alive connection was closed");
    say(fd, "GET /v1/status HTTP/1.1\r\nHost: till\r\n\r\n");
    cr_expect_eq(read_answer(fd), 200);
    cr_expect_eq(stats().timed_out, 0);
    close(fd);
}

/* A request line that never ends is no request yet: the idle deadline. */
Test(api_limits, trickled_request_line_closed_at_idle_deadline)
{
    start((tm_api_cfg_t){.idle_timeout_ms = 1500});
    int fd = dial("127.0.0.1");
    say(fd, "GET /v1/sta");
    uint64_t dl = now_ms() + WAIT_MS;
    bool closed = false;
    while (!closed && now_ms() < dl) {
        (void)send(fd, "a", 1, MSG_NOSIGNAL);
        nap_ms(100);
        closed = closed_by_server(fd);
    }
    cr_assert(closed, "a trickled request line was still open after %d ms", WAIT_MS);
    cr_expect_eq(stats().timed_out, 1);
    close(fd);
}

/* ---- the cap ---------------------------------------------------------- */

/* Full of slow connections, a POS still gets in: the oldest slow one goes,
 * the others stay. */
Test(api_limits, newcomer_evicts_the_oldest_slow_connection)
{
    enum { CAP = 8 };
    start((tm_api_cfg_t){
        .max_conns = CAP, .request_timeout_ms = LONG_MS, .idle_timeout_ms = LONG_MS});
    int slow[CAP];
    for (int i = 0; i < CAP; i++) {
        slow[i] = slow_open("127.0.0.1");
        WAIT_FOR(stats().open == (unsigned)i + 1, "the slow connection to be served");
        nap_ms(5); /* distinct start times: "oldest" is then well defined */
    }
    cr_assert_eq(post_sale("127.0.0.1"), 201);
    WAIT_FOR(closed_by_server(slow[0]), "the oldest slow connection to be closed");
    for (int i = 1; i < CAP; i++)
        cr_expect_not(closed_by_server(slow[i]), "slow connection %d was closed too", i);
    tm_api_stats_t s = stats();
    cr_expect_eq(s.evicted, 1);
    cr_expect_leq(s.open, CAP);
    for (int i = 0; i < CAP; i++)
        close(slow[i]);
}

/* The eviction order is by when a connection opened (or last finished a
 * request), not by when its request line was read: a connection that MHD
 * accepted but has not read yet must not look older than one that opened
 * before it and was read after it (in a flood, that was the POS). */
Test(api_limits, eviction_order_is_by_opening_not_by_request_line)
{
    start(
        (tm_api_cfg_t){.max_conns = 3, .request_timeout_ms = LONG_MS, .idle_timeout_ms = LONG_MS});
    int early = dial("127.0.0.1");
    WAIT_FOR(stats().open == 1, "the early connection to be served");
    nap_ms(5);
    int pos = dial("127.0.0.1");
    WAIT_FOR(stats().open == 2, "the POS connection to be served");
    nap_ms(5);
    say(early, "POST /v1/sales HTTP/1.1\r\nHost: till\r\n");
    WAIT_FOR(stats().in_request == 1, "the early request line to be read");
    nap_ms(5);
    int third = slow_open("127.0.0.1");
    WAIT_FOR(stats().open == 3, "the third connection to be served");
    int fourth = slow_open("127.0.0.1");
    WAIT_FOR(closed_by_server(early), "the earliest connection to be evicted");
    cr_expect_not(closed_by_server(pos), "the POS connection was evicted");
    cr_expect_not(closed_by_server(third));
    cr_expect_eq(stats().evicted, 1);
    close(early);
    close(pos);
    close(third);
    close(fourth);
}

/* ---- body memory ------------------------------------------------------ */

/* Eight clients each announce 1 MiB and send ten bytes: what is held is a
 * first small buffer each, not eight MiB. */
Test(api_limits, body_memory_follows_bytes_not_content_length)
{
    enum { N = 8 };
    start((tm_api_cfg_t){.max_body = 1024 * 1024});
    int fd[N];
    for (int i = 0; i < N; i++) {
        fd[i] = dial("127.0.0.1");
        say(fd[i], "POST /v1/sales HTTP/1.1\r\nHost: till\r\nContent-Type: application/json\r\n"
                   "Content-Length: 1048576\r\n\r\n{\"currency");
    }
    WAIT_FOR(stats().body_bytes >= N * 10, "every body to have started");
    WAIT_FOR(stats().open == N, "all connections to be served");
    size_t held = stats().body_bytes;
    cr_expect_leq(held, (size_t)N * 4096, "%zu bytes held for %d bodies of 10 bytes", held, N);
    for (int i = 0; i < N; i++)
        close(fd[i]);
    WAIT_FOR(stats().body_bytes == 0, "the bodies to be freed");
}

/* ---- remote clients --------------------------------------------------- */

Test(api_limits, remote_refused_without_token)
{
    const char *ip = remote_ip();
    if (!ip)
        cr_skip_test("no non-loopback IPv4 address on this host");
    start((tm_api_cfg_t){.addr = "0.0.0.0"});
    int fd = dial(ip);
    WAIT_FOR(closed_by_server(fd), "the remote connection to be refused");
    close(fd);
    cr_expect_eq(stats().refused, 1);
    cr_expect_eq(get_status("127.0.0.1", NULL), 200);
}

Test(api_limits, remote_needs_the_bearer_token)
{
    const char *ip = remote_ip();
    if (!ip)
        cr_skip_test("no non-loopback IPv4 address on this host");
    start((tm_api_cfg_t){.addr = "0.0.0.0", .token = TOKEN});
    cr_expect_eq(get_status(ip, NULL), 401);
    cr_expect_eq(get_status(ip, "Bearer wrong-token-of-some-length"), 401);
    cr_expect_eq(get_status(ip, "Basic " TOKEN), 401);
    cr_expect_eq(get_status(ip, "Bearer " TOKEN "x"), 401);
    cr_expect_eq(get_status(ip, "Bearer " TOKEN), 200);
    cr_expect_eq(get_status(ip, "bearer  " TOKEN), 200);
    /* The POS on the till itself: as before, no token. */
    cr_expect_eq(get_status("127.0.0.1", NULL), 200);
}

/* A remote newcomer past the cap pushes out a remote connection, never a
 * loopback one, even when the loopback ones are older. */
Test(api_limits, remote_newcomer_never_evicts_loopback)
{
    const char *ip = remote_ip();
    if (!ip)
        cr_skip_test("no non-loopback IPv4 address on this host");
    start((tm_api_cfg_t){.addr = "0.0.0.0",
                         .token = TOKEN,
                         .max_conns = 6,
                         .request_timeout_ms = LONG_MS,
                         .idle_timeout_ms = LONG_MS});
    int loop[4], rem[3];
    for (int i = 0; i < 4; i++) {
        loop[i] = slow_open("127.0.0.1");
        WAIT_FOR(stats().open == (unsigned)i + 1, "a loopback connection to be served");
        nap_ms(5);
    }
    for (int i = 0; i < 3; i++) {
        rem[i] = slow_open(ip);
        if (i < 2)
            WAIT_FOR(stats().open_remote == (unsigned)i + 1, "a remote connection to be served");
        nap_ms(5);
    }
    WAIT_FOR(closed_by_server(rem[0]), "the oldest remote connection to be evicted");
    for (int i = 0; i < 4; i++)
        cr_expect_not(closed_by_server(loop[i]), "loopback connection %d was evicted", i);
    cr_expect_not(closed_by_server(rem[1]));
    cr_expect_eq(stats().evicted, 1);
    cr_expect_eq(stats().open, 6);
    /* A loopback newcomer may take any slot: the oldest (loopback) goes. */
    int pos = slow_open("127.0.0.1");
    WAIT_FOR(closed_by_server(loop[0]), "the oldest connection to make room for loopback");
    close(pos);
    for (int i = 0; i < 4; i++)
        close(loop[i]);
    for (int i = 0; i < 3; i++)
        close(rem[i]);
}

/* Remote clients share remote_max_conns slots, remote_per_ip per address. */
Test(api_limits, remote_total_cap)
{
    const char *ip = remote_ip();
    if (!ip)
        cr_skip_test("no non-loopback IPv4 address on this host");
    start((tm_api_cfg_t){.addr = "0.0.0.0",
                         .token = TOKEN,
                         .remote_max_conns = 2,
                         .request_timeout_ms = LONG_MS,
                         .idle_timeout_ms = LONG_MS});
    int rem[3];
    for (int i = 0; i < 3; i++) {
        rem[i] = slow_open(ip);
        if (i < 2)
            WAIT_FOR(stats().open_remote == (unsigned)i + 1, "a remote connection to be served");
        nap_ms(5);
    }
    WAIT_FOR(closed_by_server(rem[0]), "the oldest remote connection to give up its slot");
    cr_expect_eq(stats().open_remote, 2);
    for (int i = 0; i < 3; i++)
        close(rem[i]);
}

Test(api_limits, remote_per_address_cap)
{
    const char *ip = remote_ip();
    if (!ip)
        cr_skip_test("no non-loopback IPv4 address on this host");
    start((tm_api_cfg_t){.addr = "0.0.0.0",
                         .token = TOKEN,
                         .remote_per_ip = 2,
                         .request_timeout_ms = LONG_MS,
                         .idle_timeout_ms = LONG_MS});
    int rem[2];
    for (int i = 0; i < 2; i++) {
        rem[i] = slow_open(ip);
        WAIT_FOR(stats().open_remote == (unsigned)i + 1, "a remote connection to be served");
    }
    int more = dial(ip);
    WAIT_FOR(closed_by_server(more), "a connection over the per-address cap to be refused");
    cr_expect_eq(stats().refused, 1);
    cr_expect_eq(stats().evicted, 0);
    cr_expect_not(closed_by_server(rem[0]));
    cr_expect_not(closed_by_server(rem[1]));
    /* Loopback is not an address among others: the POS still gets in. */
    cr_expect_eq(get_status("127.0.0.1", NULL), 200);
    close(more);
    for (int i = 0; i < 2; i++)
        close(rem[i]);
}

/* ---- the token file --------------------------------------------------- */

static const char *token_file(const char *content, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/api.token", T.dir);
    unlink(path);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

Test(api_limits, token_file_mode_and_content)
{
    char tok[TM_API_TOKEN_MAX + 1];
    cr_expect_eq(tm_api_read_token(token_file(TOKEN "\n", 0600), &T.log, tok, sizeof tok), TM_OK);
    cr_expect_str_eq(tok, TOKEN);
    cr_expect_eq(tm_api_read_token(token_file(TOKEN, 0400), &T.log, tok, sizeof tok), TM_OK);
    cr_expect_eq(tm_api_read_token(token_file(TOKEN "\n", 0640), &T.log, tok, sizeof tok),
                 TM_EPERM);
    cr_expect_eq(tm_api_read_token(token_file(TOKEN "\n", 0602), &T.log, tok, sizeof tok),
                 TM_EPERM);
    cr_expect_eq(tm_api_read_token(token_file("short\n", 0600), &T.log, tok, sizeof tok),
                 TM_ECONFIG);
    cr_expect_eq(tm_api_read_token(token_file("", 0600), &T.log, tok, sizeof tok), TM_ECONFIG);
    cr_expect_eq(tm_api_read_token(token_file(TOKEN "\nsecond\n", 0600), &T.log, tok, sizeof tok),
                 TM_ECONFIG);
    cr_expect_eq(
        tm_api_read_token(token_file("0123456789 abcdef0123\n", 0600), &T.log, tok, sizeof tok),
        TM_ECONFIG);
    char path[128];
    snprintf(path, sizeof path, "%s/none", T.dir);
    cr_expect_eq(tm_api_read_token(path, &T.log, tok, sizeof tok), TM_EIO);
}
