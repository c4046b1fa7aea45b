/* api.c - the local HTTP/JSON API on libmicrohttpd: the daemon and the life of
 * a request (routes and handlers: api_routes.c; answers: api_reply.c;
 * connection deadlines and caps: api_conn.c). */
#include "api_int.h"

#include <arpa/inet.h>
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

/* Connections MHD may hold beyond our own cap: a new connection is accepted
 * before it evicts another, and an evicted one is reaped on MHD's next turn
 * (MHD accepts up to 10 per turn). Without headroom MHD would stop accepting
 * at its limit and leave the POS waiting in the listen backlog. */
#define API_MHD_HEADROOM 32
/* First allocation for a body; it then doubles as bytes arrive. */
#define API_BODY_FIRST 4096
/* A chunked body that passes max_body is read and dropped so that the
 * client still gets its 413; one that goes on this many times longer is
 * cut off instead, so it cannot keep the connection forever. */
#define API_DISCARD_FACTOR 4

/* ---- small helpers ---------------------------------------------------- */

/* Copies untrusted text for a log line: bounded, control bytes and
 * non-ASCII replaced, so a request cannot forge or break log lines. */
static void s_log_copy(char *dst, size_t dstsz, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < dstsz; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x20 || c >= 0x7f)
            dst[i] = '?';
        else
            dst[i] = src[i];
    }
    dst[i] = '\0';
}

/* "application/json", optionally with parameters ("; charset=utf-8"). */
static bool s_is_json_type(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(TM_API_CT_JSON);
    if (strncasecmp(v, TM_API_CT_JSON, n) != 0)
        return false;
    char c = v[n];
    return c == '\0' || c == ';' || c == ' ' || c == '\t';
}

static double s_ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---- request lifecycle ------------------------------------------------ */

/*
 * First call for a request (headers in, no body yet). Refuses at once what
 * is wrong before any body: a remote client without the token, unknown
 * route, wrong method, wrong media type, a declared length over the limit
 * (the client is spared sending it). MHD closes the connection after such an
 * early answer, which is fine for an error; everything else is answered in
 * the last call, once the request is complete, so that the connection stays
 * open for the next request.
 */
static enum MHD_Result s_begin(tm_api_t *self, struct MHD_Connection *conn, tm_api_req_t *req,
                               const char *url, const char *method)
{
    /* The metrics listener knows one route: the rest of the API is not
     * there at all, whatever the method or the client. */
    if (self->metrics_only && tm_api__route(url, req) != R_METRICS) {
        req->route = R_NONE;
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found",
                             "this listener serves only GET /metrics");
    }
    /* Before routing, so that a stranger learns nothing, not even routes. */
    const char *auth = tm_api__auth_problem(self, conn);
    if (auth)
        return tm_api__error_hdr(conn, req, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                 MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"tillmesh\"",
                                 "%s", auth);
    req->route = tm_api__route(url, req);
    if (req->route == R_NONE)
        return tm_api__error(conn, req, MHD_HTTP_NOT_FOUND, "not_found", "no such route");
    const char *allow = tm_api__allow(req->route, method);
    if (allow)
        return tm_api__error_hdr(conn, req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                 MHD_HTTP_HEADER_ALLOW, allow, "%s is not allowed here; use %s",
                                 req->method, allow);
    if (tm_api__is_get(method))
        return MHD_YES;

    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && !s_is_json_type(ct))
        return tm_api__error(conn, req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                             "the body must be application/json");
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t declared = 0;
    if (cl && tm_api__parse_u64(cl, &declared)) {
        if (declared > self->max_body) {
            req->too_large = true;
            return tm_api__dispatch(&self->routes, conn, req, method);
        }
        /* Nothing is allocated yet: a declared length costs nothing until
         * its bytes arrive (a client may announce 1 MiB and send a byte
         * every few seconds). It only bounds how far the buffer grows. */
        req->limit = (size_t)declared + 1;
    }
    return MHD_YES;
}

/* Adds a piece of body; false means "close the connection". The buffer
 * doubles as bytes arrive, so memory follows what was received. */
static bool s_body_add(tm_api_t *self, tm_api_req_t *req, const char *data, size_t n)
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
        size_t cap = req->cap ? req->cap : API_BODY_FIRST;
        while (cap < req->len + n + 1)
            cap *= 2;
        if (cap > req->limit)
            cap = req->limit;
        /* MHD never passes more than the declared length; if it ever did,
         * the buffer still holds what was accepted (n is within max_body). */
        if (cap < req->len + n + 1)
            cap = req->len + n + 1;
        char *p = realloc(req->body, cap);
        if (!p) {
            tm_log_warn(self->log, "api: %s %s: out of memory for the body", req->method,
                        req->path);
            return false;
        }
        self->stats.body_bytes += cap - req->cap;
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
    tm_api_req_t *req = *con_cls;
    (void)version;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &req->t0);
        req->limit = self->max_body + 1;
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
    return tm_api__dispatch(&self->routes, conn, req, method);
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
    tm_api_req_t *req = *con_cls;
    /* The answer is out (or the request failed): the connection is back to
     * waiting, and its next request gets a full deadline of its own. */
    tm_api_conn_t *c = tm_api__conn_of(conn);
    bool ours = c && c->closing;
    if (c) {
        c->in_request = false;
        c->since_ms = c->cycle_ms = tm_api__now_ms();
    }
    if (!req)
        return;
    double ms = s_ms_since(&req->t0);
    /* Closed by us for a deadline or the cap: tm_api__log_closings sums
     * those up, one line per connection would let a flood flood the log. */
    if (ours)
        tm_log_debug(self->log,
                     "api: %s %s: connection closed by the deadline or the cap after "
                     "%.1f ms",
                     req->method, req->path, ms);
    else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        tm_log_warn(self->log, "api: %s %s %u: connection closed (%s) after %.1f ms", req->method,
                    req->path, req->status, s_toe_name(toe), ms);
    /* A 404 is an answer (no such sale yet), not a fault worth a warning. */
    else if (req->status >= 400 && req->status != MHD_HTTP_NOT_FOUND)
        tm_log_warn(self->log, "api: %s %s %u %s %.1f ms", req->method, req->path, req->status,
                    req->err ? req->err : "", ms);
    else
        tm_log_debug(self->log, "api: %s %s %u %.1f ms", req->method, req->path, req->status, ms);
    self->stats.body_bytes -= req->cap;
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
    /* MHD says "Connection ..." once per connection closed early, which a
     * flood turns into a flood of lines; tm_api__log_closings sums those
     * up instead. */
    if (strncmp(msg, "Connection ", 11) == 0)
        tm_log_debug(self->log, "api: libmicrohttpd: %s", msg);
    else
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

static void s_apply_cfg(tm_api_t *self, const tm_api_cfg_t *cfg)
{
    self->max_body = cfg->max_body ? cfg->max_body : (size_t)TM_API_MAX_BODY_DEFAULT;
    self->request_timeout_ms =
        cfg->request_timeout_ms ? cfg->request_timeout_ms : TM_API_REQUEST_TIMEOUT_MS_DEFAULT;
    self->idle_timeout_ms =
        cfg->idle_timeout_ms ? cfg->idle_timeout_ms : TM_API_IDLE_TIMEOUT_MS_DEFAULT;
    self->max_conns = cfg->max_conns ? cfg->max_conns : TM_API_MAX_CONNS_DEFAULT;
    self->remote_max_conns =
        cfg->remote_max_conns ? cfg->remote_max_conns : TM_API_REMOTE_MAX_CONNS_DEFAULT;
    if (self->remote_max_conns > self->max_conns)
        self->remote_max_conns = self->max_conns;
    self->remote_per_ip = cfg->remote_per_ip ? cfg->remote_per_ip : TM_API_REMOTE_PER_IP_DEFAULT;
    if (cfg->token && !cfg->metrics_only)
        tm_strlcpy(self->token, cfg->token, sizeof self->token);
    self->metrics_only = cfg->metrics_only;
}

int tm_api_new(const tm_api_cfg_t *cfg, const tm_api_backend_t *be, const tm_log_t *log,
               tm_api_t **out)
{
    *out = NULL;
    if (!cfg || !cfg->addr || !be || !be->store || !be->post_sale || !be->put_customer ||
        !be->status_json || !be->metrics_text)
        return TM_EINVAL;
    if (cfg->token && cfg->token[0] &&
        (strlen(cfg->token) < TM_API_TOKEN_MIN || strlen(cfg->token) > TM_API_TOKEN_MAX)) {
        tm_log_error(log, "api: the token must be %d to %d characters", TM_API_TOKEN_MIN,
                     TM_API_TOKEN_MAX);
        return TM_EINVAL;
    }
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (s_sockaddr(cfg->addr, cfg->port, &ss, &flags) != TM_OK) {
        tm_log_error(log, "api: \"%s\" is not a numeric IPv4 or IPv6 address", cfg->addr);
        return TM_EINVAL;
    }
    tm_api_t *self = calloc(1, sizeof *self);
    if (!self)
        return TM_ENOMEM;
    self->be = *be;
    self->log = log;
    s_apply_cfg(self, cfg);
    self->routes = (tm_api_routes_t){.be = &self->be, .log = log, .max_body = self->max_body};
    /* The logger goes first so that MHD's complaints about the other
     * options reach our log too. MHD's own idle timeout stays as a backstop;
     * the deadlines that trickled bytes cannot move are ours (tm_api__sweep). */
    self->mhd = MHD_start_daemon(
        flags, cfg->port, tm_api__accept_policy, self, s_access, self, MHD_OPTION_EXTERNAL_LOGGER,
        s_mhd_log, self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)(self->max_conns + API_MHD_HEADROOM), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)((self->idle_timeout_ms + 999) / 1000), MHD_OPTION_NOTIFY_COMPLETED,
        s_completed, self, MHD_OPTION_NOTIFY_CONNECTION, tm_api__notify_conn, self,
        MHD_OPTION_URI_LOG_CALLBACK, tm_api__uri_log, self, MHD_OPTION_END);
    if (!self->mhd) {
        tm_log_error(log, "api: cannot listen on %s port %u (in use, or not our address?)",
                     cfg->addr, (unsigned)cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *fdi = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (!fdi || !pi)
        goto fail;
    self->fd = fdi->epoll_fd;
    self->port = pi->port;
    tm_log_info(log,
                "api: listening on %s port %u (%s; at most %u connections, %u remote, "
                "a request must be done within %u ms)",
                cfg->addr, (unsigned)self->port,
                self->metrics_only ? "GET /metrics only, any client"
                : self->token[0]   ? "remote clients need the bearer token"
                                   : "loopback clients only",
                self->max_conns, self->token[0] || self->metrics_only ? self->remote_max_conns : 0,
                self->request_timeout_ms);
    *out = self;
    return TM_OK;
fail:
    if (self->mhd)
        MHD_stop_daemon(self->mhd);
    explicit_bzero(self->token, sizeof self->token);
    free(self);
    return TM_EIO;
}

void tm_api_destroy(tm_api_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tm_api_t *self = *self_p;
    MHD_stop_daemon(self->mhd); /* completes (and frees) open requests */
    explicit_bzero(self->token, sizeof self->token);
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
    int64_t out = -1;
    if (MHD_get_timeout(self->mhd, &t) == MHD_YES)
        out = t > INT64_MAX ? INT64_MAX : (int64_t)t;
    uint64_t now = tm_api__now_ms();
    for (const tm_api_conn_t *c = self->conns; c; c = c->next) {
        if (c->closing)
            continue;
        uint64_t dl = tm_api__deadline(self, c);
        int64_t left = dl > now ? (int64_t)(dl - now) : 0;
        if (out < 0 || left < out)
            out = left;
    }
    return out;
}

void tm_api_run(tm_api_t *self)
{
    MHD_run(self->mhd);
    uint64_t now = tm_api__now_ms();
    /* Reap what was just shut down now rather than on the next wake-up, so
     * that the slots are free for whoever comes next. */
    if (tm_api__sweep(self, now) > 0)
        MHD_run(self->mhd);
    tm_api__log_closings(self, now);
}

void tm_api_stats(const tm_api_t *self, tm_api_stats_t *out)
{
    *out = self->stats;
    out->in_request = 0;
    for (const tm_api_conn_t *c = self->conns; c; c = c->next)
        out->in_request += !c->closing && c->in_request;
}
