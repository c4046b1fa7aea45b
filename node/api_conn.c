/* api_conn.c - what keeps the local API available to its POS: connection
 * caps with slots kept for loopback, eviction of the oldest idle or slow
 * connection, deadlines that trickled bytes cannot move, and the bearer
 * token that clients on other hosts must send (see tm_api.h, docs/api.md). */
#include "api_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How often at most the summary of closed connections is logged. */
#define API_LOG_EVERY_MS 10000

uint64_t tm_api__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only a process on this host
 * can connect from there. */
static bool s_addr_loopback(const struct sockaddr *sa)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        if (memcmp(b, v4mapped, sizeof v4mapped) == 0)
            return b[12] == 127;
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
    }
    return false;
}

/* The address bytes of sa (v4-mapped v6 as v4, so that one host counts
 * once) and its text for log lines. */
static void s_addr_key(const struct sockaddr *sa, int *family, uint8_t ip[16], char *text,
                       size_t textsz)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(ip, 0, 16);
    *family = AF_UNSPEC;
    tm_strlcpy(text, "?", textsz);
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
        *family = AF_INET;
        memcpy(ip, &in4->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (memcmp(in6->sin6_addr.s6_addr, v4mapped, sizeof v4mapped) == 0) {
            *family = AF_INET;
            memcpy(ip, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(ip, in6->sin6_addr.s6_addr, 16);
        }
    }
    if (*family != AF_UNSPEC)
        (void)inet_ntop(*family, ip, text, (socklen_t)textsz);
}

tm_api_conn_t *tm_api__conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

uint64_t tm_api__deadline(const tm_api_t *self, const tm_api_conn_t *c)
{
    return c->since_ms + (c->in_request ? self->request_timeout_ms : self->idle_timeout_ms);
}

typedef enum { CLOSE_EVICTED, CLOSE_TIMED_OUT, CLOSE_REFUSED } close_why_t;

static void s_count_close(tm_api_t *self, close_why_t why, const char *addr)
{
    if (why == CLOSE_EVICTED) {
        self->stats.evicted++;
        self->log_evicted++;
    } else if (why == CLOSE_TIMED_OUT) {
        self->stats.timed_out++;
        self->log_timed_out++;
    } else {
        self->stats.refused++;
        self->log_refused++;
    }
    tm_strlcpy(self->log_last_addr, addr, sizeof self->log_last_addr);
}

/*
 * Closes c from outside MHD: shutdown() makes its socket readable at EOF,
 * so MHD closes it on its next turn through its own code path (requests
 * completed, socket context freed). MHD has no call to close a connection
 * it is not currently handing us.
 */
static void s_close(tm_api_t *self, tm_api_conn_t *c, close_why_t why)
{
    if (c->closing)
        return;
    (void)shutdown(c->fd, SHUT_RDWR);
    c->closing = true;
    self->stats.open--;
    if (!c->loopback)
        self->stats.open_remote--;
    s_count_close(self, why, c->addr);
}

/* The connection that has gone longest without finishing a request: the
 * idlest or slowest. The list runs newest first, so "<=" makes the oldest
 * win a tie (many connections open within one millisecond in a flood). */
static tm_api_conn_t *s_oldest(tm_api_t *self, const tm_api_conn_t *except, bool remote_only)
{
    tm_api_conn_t *best = NULL;
    for (tm_api_conn_t *c = self->conns; c; c = c->next)
        if (c != except && !c->closing && !(remote_only && c->loopback) &&
            (!best || c->cycle_ms <= best->cycle_ms))
            best = c;
    return best;
}

/*
 * The cap policy, applied as each connection opens. A newcomer is never the
 * one turned away while an older idle or slow connection holds a slot: a
 * POS that connects during a slowloris gets in, and the slowloris's oldest
 * connection goes. Remote clients are held to fewer slots than the cap, so
 * the rest always stays for loopback, and a remote newcomer can only push
 * out another remote connection.
 */
static void s_make_room(tm_api_t *self, tm_api_conn_t *c)
{
    if (!c->loopback && self->stats.open_remote > self->remote_max_conns) {
        tm_api_conn_t *v = s_oldest(self, c, true);
        s_close(self, v ? v : c, v ? CLOSE_EVICTED : CLOSE_REFUSED);
    }
    /* The metrics listener has no POS to protect: there a scraper on the
     * LAN may push out an idle loopback connection like any other. */
    if (!c->closing && self->stats.open > self->max_conns) {
        tm_api_conn_t *v = s_oldest(self, c, !c->loopback && !self->metrics_only);
        s_close(self, v ? v : c, v ? CLOSE_EVICTED : CLOSE_REFUSED);
    }
}

static void s_conn_started(tm_api_t *self, struct MHD_Connection *conn, void **socket_context)
{
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    tm_api_conn_t *c = fi ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        /* Untracked, it would escape every cap and deadline. */
        tm_log_warn(self->log, "api: out of memory for a new connection; closing it");
        if (fi)
            (void)shutdown(fi->connect_fd, SHUT_RDWR);
        return;
    }
    c->mhd = conn;
    c->fd = fi->connect_fd;
    c->loopback = s_addr_loopback(ai ? ai->client_addr : NULL);
    s_addr_key(ai ? ai->client_addr : NULL, &c->family, c->ip, c->addr, sizeof c->addr);
    c->since_ms = c->cycle_ms = tm_api__now_ms();
    c->next = self->conns;
    if (self->conns)
        self->conns->prev = c;
    self->conns = c;
    *socket_context = c;
    self->stats.open++;
    if (!c->loopback)
        self->stats.open_remote++;
    s_make_room(self, c);
}

void tm_api__notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    tm_api_t *self = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        s_conn_started(self, conn, socket_context);
        return;
    }
    tm_api_conn_t *c = *socket_context;
    if (!c)
        return;
    if (!c->closing) {
        self->stats.open--;
        if (!c->loopback)
            self->stats.open_remote--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        self->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    *socket_context = NULL;
}

/* Before MHD allocates anything for a connection: remote clients only with
 * a token configured, and at most remote_per_ip from one address. */
enum MHD_Result tm_api__accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    tm_api_t *self = cls;
    (void)addrlen;
    if (s_addr_loopback(addr))
        return MHD_YES;
    int family;
    uint8_t ip[16];
    char text[48];
    s_addr_key(addr, &family, ip, text, sizeof text);
    unsigned same = 0;
    for (const tm_api_conn_t *c = self->conns; c; c = c->next)
        if (!c->closing && c->family == family && memcmp(c->ip, ip, 16) == 0)
            same++;
    if ((!self->token[0] && !self->metrics_only) || same >= self->remote_per_ip) {
        s_count_close(self, CLOSE_REFUSED, text);
        return MHD_NO;
    }
    return MHD_YES;
}

/* Marks the start of a request: its request line has arrived. */
void *tm_api__uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)uri;
    tm_api_conn_t *c = tm_api__conn_of(conn);
    if (c) {
        c->in_request = true;
        c->since_ms = tm_api__now_ms();
    }
    return NULL; /* the request state is made by s_access, as before */
}

/* Closes every connection past its deadline; returns how many. */
unsigned tm_api__sweep(tm_api_t *self, uint64_t now)
{
    unsigned n = 0;
    for (tm_api_conn_t *c = self->conns; c; c = c->next)
        if (!c->closing && now >= tm_api__deadline(self, c)) {
            s_close(self, c, CLOSE_TIMED_OUT);
            n++;
        }
    return n;
}

/* One line for what was closed since the last one, so that the store's IT
 * person sees that something holds connections open, and from where. */
void tm_api__log_closings(tm_api_t *self, uint64_t now)
{
    uint64_t total = self->log_evicted + self->log_timed_out + self->log_refused;
    if (total == 0 || (self->log_at_ms && now - self->log_at_ms < API_LOG_EVERY_MS))
        return;
    tm_log_warn(self->log,
                "api: closed %llu connections (the last from %s): %llu evicted (cap of %u "
                "full: oldest idle or slow first), %llu too slow (a request over %u ms or idle "
                "over %u ms), %llu remote refused; something may be holding connections open "
                "(a slowloris?)",
                (unsigned long long)total, self->log_last_addr,
                (unsigned long long)self->log_evicted, self->max_conns,
                (unsigned long long)self->log_timed_out, self->request_timeout_ms,
                self->idle_timeout_ms, (unsigned long long)self->log_refused);
    self->log_evicted = self->log_timed_out = self->log_refused = 0;
    self->log_at_ms = now;
}

/* ---- bearer token ------------------------------------------------------ */

/* Compares without an early exit, so that timing tells nothing about how
 * much of a guess was right. */
static bool s_token_equal(const char *want, const char *got)
{
    size_t wl = strlen(want), gl = strlen(got);
    unsigned char d = wl != gl;
    for (size_t i = 0; i < wl; i++)
        d |= (unsigned char)((unsigned char)want[i] ^ (unsigned char)(i < gl ? got[i] : 0));
    return d == 0;
}

/* NULL if conn may go on, else the message of the 401. */
const char *tm_api__auth_problem(tm_api_t *self, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (self->metrics_only || (ai && s_addr_loopback(ai->client_addr)))
        return NULL;
    if (!self->token[0])
        return "this API serves only clients on the till itself";
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h)
        return "requests from addresses other than loopback must send Authorization: Bearer "
               "<token>";
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return "the Authorization scheme must be Bearer";
    h += 7;
    while (*h == ' ')
        h++;
    return s_token_equal(self->token, h) ? NULL : "wrong token";
}

int tm_api_read_token(const char *path, const tm_log_t *log, char *buf, size_t bufsz)
{
    int rc = TM_EIO;
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        tm_log_error(log, "api token file %s: %s", path, strerror(errno));
        return TM_EIO;
    }
    char raw[TM_API_TOKEN_MAX + 4];
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        tm_log_error(log, "api token file %s: not a regular file", path);
        goto cleanup;
    }
    if (st.st_mode & 077) {
        tm_log_error(log,
                     "api token file %s is readable or writable by group or others: "
                     "chmod 600 it",
                     path);
        rc = TM_EPERM;
        goto cleanup;
    }
    ssize_t n = read(fd, raw, sizeof raw - 1);
    if (n < 0) {
        tm_log_error(log, "api token file %s: %s", path, strerror(errno));
        goto cleanup;
    }
    raw[n] = '\0';
    size_t len = strcspn(raw, "\r\n");
    /* Only one line, and nothing but an end of line after it. */
    bool tail_ok = raw[len + strspn(raw + len, "\r\n")] == '\0';
    bool chars_ok = true;
    for (size_t i = 0; i < len; i++)
        if (raw[i] <= ' ' || raw[i] > '~')
            chars_ok = false;
    rc = TM_ECONFIG;
    if (len < TM_API_TOKEN_MIN || len > TM_API_TOKEN_MAX || len >= bufsz || !tail_ok) {
        tm_log_error(log,
                     "api token file %s: must hold one line of %d to %d characters "
                     "(make one with: umask 077; head -c 32 /dev/urandom | base64 > FILE)",
                     path, TM_API_TOKEN_MIN, TM_API_TOKEN_MAX);
        goto cleanup;
    }
    if (!chars_ok) {
        tm_log_error(log, "api token file %s: the token must be printable ASCII without spaces",
                     path);
        goto cleanup;
    }
    memcpy(buf, raw, len);
    buf[len] = '\0';
    rc = TM_OK;
cleanup:
    explicit_bzero(raw, sizeof raw);
    close(fd);
    return rc;
}
