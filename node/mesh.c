/* mesh.c - CurveZMQ transport with a ZAP handler (see tm_mesh.h). */
#include "tm_mesh.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tm_wire.h"

#define NAME_MAX_LEN              64
#define TM_MESH_PROCESS_BUDGET_MS 10
#define ZAP_ENDPOINT              "inproc://zeromq.zap.01"

typedef struct {
    char name[NAME_MAX_LEN];
    uint8_t pub[32];
    bool has_sign; /* third field: the till's op-signing key (tm_sign.h) */
    uint8_t sign[32];
} trusted_t;

typedef struct {
    char name[NAME_MAX_LEN];
    char endpoint[256];
    uint8_t server_pub[32]; /* the key it was connected with */
    void *dealer;
    void *mon;          /* PAIR: the dealer's handshakes and disconnections */
    bool up_pending;    /* a handshake finished, not yet reported (tm_mesh_links_up) */
    bool tcp;           /* TCP connected (handshake done or under way) */
    bool up;            /* handshake done and not disconnected since */
    uint64_t redial_ms; /* when it was last redialled (mono ms) */
} link_t;

struct tm_mesh {
    const tm_log_t *log;
    void *ctx;
    void *router;
    void *zap;
    char endpoint[256];
    char trusted_file[512];
    uint8_t secret[32], pub[32];
    char secret_z85[41], pub_z85[41];
    trusted_t *trusted;
    size_t n_trusted;
    link_t *links;
    size_t n_links;
    /* Frames from a key no longer trusted (revoked since it connected). */
    uint64_t frames_refused;
    uint64_t refused_logged; /* frames_refused when last logged */
    /* Connections refused by ZAP: logged once a minute at most, with the
     * count, so that a till retrying with a revoked key cannot fill the
     * disk with our logs. */
    uint64_t zap_refused, zap_refused_logged, zap_logged_at;
    unsigned mon_seq; /* names the monitor endpoints */
};

/* ---- keys ------------------------------------------------------------- */

int tm_mesh_read_key(const char *path, int secret, uint8_t out[32])
{
    struct stat st;
    char line[128];
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == EACCES ? TM_EPERM : TM_ECONFIG;
    if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        fclose(f);
        return TM_EPERM;
    }
    int rc = TM_ECONFIG;
    if (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, " \t\r\n");
        line[n] = '\0';
        if (n == 40 && zmq_z85_decode(out, line))
            rc = TM_OK;
    }
    fclose(f);
    return rc;
}

static int parse_trusted_line(char *line, trusted_t *t)
{
    char *name = strtok(line, " \t\r\n");
    char *key = name ? strtok(NULL, " \t\r\n") : NULL;
    char *sign = key ? strtok(NULL, " \t\r\n") : NULL;
    if (!name || name[0] == '#')
        return 1; /* blank or comment */
    memset(t, 0, sizeof *t);
    if (!key || strtok(NULL, " \t\r\n") || strlen(name) >= NAME_MAX_LEN || strlen(key) != 40 ||
        !zmq_z85_decode(t->pub, key))
        return -1;
    if (sign && (strlen(sign) != 40 || !zmq_z85_decode(t->sign, sign)))
        return -1;
    t->has_sign = sign != NULL;
    tm_strlcpy(t->name, name, sizeof t->name);
    return 0;
}

/* Reads one line of f (to '\n' or EOF, without it) into buf; what does
 * not fit is read and dropped (*too_long), so that the tail of a long line
 * is never taken for a line of its own - a commented-out key would then be
 * trusted. 0 at the end of the file. */
static int read_line(FILE *f, char *buf, size_t cap, bool *too_long, bool *nul)
{
    int ch;
    size_t n = 0;
    *too_long = *nul = false;
    while ((ch = fgetc(f)) != EOF && ch != '\n') {
        if (ch == '\0')
            *nul = true;
        if (n + 1 < cap)
            buf[n++] = (char)ch;
        else
            *too_long = true;
    }
    buf[n] = '\0';
    return ch != EOF || n > 0 || *too_long;
}

/* Reads every "NAME KEY" line of f; on error nothing is returned. */
static int parse_trusted(FILE *f, const char *fname, const tm_log_t *log, trusted_t **out,
                         size_t *n_out)
{
    trusted_t *v = NULL;
    size_t n = 0;
    char line[512];
    int lineno = 0, rc = TM_OK;
    bool too_long, nul;
    while (read_line(f, line, sizeof line, &too_long, &nul)) {
        lineno++;
        trusted_t t;
        int r;
        size_t lead = strspn(line, " \t\r");
        if ((too_long || nul) && line[lead] == '#')
            continue; /* a long comment is still a comment */
        if (too_long || nul) {
            tm_log_error(log, "%s:%d: %s", fname, lineno,
                         nul ? "a NUL byte in the line" : "line too long");
            rc = TM_ECONFIG;
            break;
        }
        r = parse_trusted_line(line, &t);
        if (r > 0)
            continue;
        if (r < 0) {
            tm_log_error(log, "%s:%d: expected \"NAME Z85-PUBLIC-KEY Z85-SIGNING-KEY\"", fname,
                         lineno);
            rc = TM_ECONFIG;
            break;
        }
        trusted_t *nv = realloc(v, (n + 1) * sizeof *nv);
        if (!nv) {
            rc = TM_ENOMEM;
            break;
        }
        v = nv;
        v[n++] = t;
    }
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return TM_OK;
}

static int load_trusted(tm_mesh_t *m)
{
    FILE *f = fopen(m->trusted_file, "r");
    if (!f) {
        tm_log_error(m->log, "cannot open trusted keys file %s: %s", m->trusted_file,
                     strerror(errno));
        return TM_ECONFIG;
    }
    trusted_t *v;
    size_t n;
    int rc = parse_trusted(f, m->trusted_file, m->log, &v, &n);
    fclose(f);
    if (rc)
        return rc;
    free(m->trusted);
    m->trusted = v;
    m->n_trusted = n;
    tm_log_info(m->log, "trusted keys: %zu till(s) from %s", n, m->trusted_file);
    return TM_OK;
}

int tm_mesh_trusted_parse(const char *text, size_t len, const tm_log_t *log, size_t *n_keys)
{
    *n_keys = 0;
    if (len == 0)
        return TM_OK; /* fmemopen refuses an empty buffer; an empty file has no keys */
    FILE *f = fmemopen((void *)(uintptr_t)text, len, "r");
    if (!f)
        return TM_ENOMEM;
    trusted_t *v;
    int rc = parse_trusted(f, "trusted keys", log, &v, n_keys);
    fclose(f);
    if (rc == TM_OK)
        free(v);
    return rc;
}

static const trusted_t *find_trusted_name(const tm_mesh_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_trusted; i++)
        if (strcmp(m->trusted[i].name, name) == 0)
            return &m->trusted[i];
    return NULL;
}

static void close_link(link_t *l)
{
    if (l->dealer) {
        (void)zmq_socket_monitor(l->dealer, NULL, 0);
        zmq_close(l->dealer);
    }
    if (l->mon)
        zmq_close(l->mon);
    l->dealer = l->mon = NULL;
    l->up_pending = l->up = l->tcp = false;
}

/* Reports each finished handshake of l's dealer on l->mon: a frame sent
 * before it was dropped (ZMQ_IMMEDIATE), the engine greets the peer then. */
static int watch_link(tm_mesh_t *m, link_t *l)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://tm-mesh-link-%u", ++m->mon_seq);
    if (zmq_socket_monitor(l->dealer, ep,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(l->mon = zmq_socket(m->ctx, ZMQ_PAIR)) || zmq_connect(l->mon, ep) != 0) {
        tm_log_warn(m->log, "peer %s: cannot watch the connection: %s", l->name,
                    zmq_strerror(zmq_errno()));
        return TM_EIO;
    }
    int zero = 0;
    zmq_setsockopt(l->mon, ZMQ_LINGER, &zero, sizeof zero);
    return TM_OK;
}

static void *new_dealer(tm_mesh_t *m, const uint8_t server_pub[32]);

/* After a reload: a link whose name left the trusted keys is closed (its
 * queued frames are discarded: LINGER 0); a link whose name now has
 * another key is reconnected with that key, so that we only ever talk to
 * the till holding it. */
static void revise_links(tm_mesh_t *m)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n_links; i++) {
        link_t *l = &m->links[i];
        const trusted_t *t = find_trusted_name(m, l->name);
        if (!t) {
            close_link(l);
            tm_log_warn(m->log, "peer %s: key removed from %s: connection to %s closed", l->name,
                        m->trusted_file, l->endpoint);
            continue;
        }
        if (memcmp(t->pub, l->server_pub, 32) != 0) {
            close_link(l);
            tm_log_warn(m->log, "peer %s: its key changed in %s: reconnecting with the new key",
                        l->name, m->trusted_file);
            memcpy(l->server_pub, t->pub, 32);
            l->dealer = new_dealer(m, t->pub);
            if (l->dealer)
                (void)watch_link(m, l);
            if (l->dealer && zmq_connect(l->dealer, l->endpoint) != 0)
                close_link(l);
        }
        m->links[k++] = *l;
    }
    m->n_links = k;
}

/* Closes every inbound connection by unbinding the ROUTER's listener (its
 * accepted connections go with it) and binding the same endpoint again.
 * libzmq has no call to drop one client of a ROUTER; the honest tills'
 * DEALERs reconnect within their reconnect interval and pass ZAP again,
 * a revoked key does not. Frames lost in between are repaired by pull. */
static int reset_router(tm_mesh_t *m)
{
    if (zmq_unbind(m->router, m->endpoint) != 0) {
        tm_log_error(m->log, "cannot close the inbound connections on %s: %s", m->endpoint,
                     zmq_strerror(zmq_errno()));
        return TM_EIO;
    }
    /* The listener closes on libzmq's I/O thread: retry briefly. */
    for (int i = 0; i < 100; i++) {
        if (zmq_bind(m->router, m->endpoint) == 0) {
            tm_log_info(m->log,
                        "inbound connections closed and %s listening again: every "
                        "till reconnects and its key is checked again",
                        m->endpoint);
            return TM_OK;
        }
        if (zmq_errno() != EADDRINUSE)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    tm_log_error(m->log,
                 "cannot listen on %s again: %s; peers cannot connect to this till "
                 "until tillmeshd is restarted",
                 m->endpoint, zmq_strerror(zmq_errno()));
    return TM_EIO;
}

/* True when a key of old[] is not in the trusted keys now. */
static int key_removed(const tm_mesh_t *m, const trusted_t *old, size_t n_old)
{
    for (size_t i = 0; i < n_old; i++)
        if (!tm_mesh_key_name(m, old[i].pub))
            return 1;
    return 0;
}

int tm_mesh_reload_trusted(tm_mesh_t *m)
{
    trusted_t *old = NULL;
    size_t n_old = m->n_trusted;
    if (n_old && !(old = malloc(n_old * sizeof *old)))
        return TM_ENOMEM;
    if (n_old)
        memcpy(old, m->trusted, n_old * sizeof *old);
    int rc = load_trusted(m);
    if (rc == TM_OK) {
        revise_links(m);
        if (key_removed(m, old, n_old))
            rc = reset_router(m);
    }
    free(old);
    return rc;
}

uint64_t tm_mesh_frames_refused(const tm_mesh_t *m)
{
    return m->frames_refused;
}

int tm_mesh_trusted_at(const tm_mesh_t *m, size_t i, const char **name, const uint8_t **pub)
{
    if (i >= m->n_trusted)
        return TM_EINVAL;
    *name = m->trusted[i].name;
    *pub = m->trusted[i].pub;
    return TM_OK;
}

int tm_mesh_trusted_sign_at(const tm_mesh_t *m, size_t i, const uint8_t **sign)
{
    if (i >= m->n_trusted)
        return TM_EINVAL;
    *sign = m->trusted[i].has_sign ? m->trusted[i].sign : NULL;
    return m->trusted[i].has_sign ? TM_OK : TM_ENOTFOUND;
}

const uint8_t *tm_mesh_secret_key(const tm_mesh_t *m)
{
    return m->secret;
}

int tm_mesh_is_trusted(const tm_mesh_t *m, const char *name)
{
    return find_trusted_name(m, name) != NULL;
}

const char *tm_mesh_key_name(const tm_mesh_t *m, const uint8_t pub[32])
{
    for (size_t i = 0; i < m->n_trusted; i++)
        if (memcmp(m->trusted[i].pub, pub, 32) == 0)
            return m->trusted[i].name;
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------- */

static int bind_router(tm_mesh_t *m, const char *listen)
{
    int one = 1, zero = 0;
    int64_t maxmsg = TM_WIRE_MAX_FRAME;
    m->router = zmq_socket(m->ctx, ZMQ_ROUTER);
    if (!m->router)
        return TM_EIO;
    /* Oversize frames are cut off by libzmq before they reach us. */
    zmq_setsockopt(m->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(m->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(m->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(m->router, ZMQ_CURVE_SECRETKEY, m->secret, 32);
    zmq_setsockopt(m->router, ZMQ_ZAP_DOMAIN, "tillmesh", 8);
    if (zmq_bind(m->router, listen) != 0) {
        tm_log_error(m->log, "cannot listen on %s: %s", listen, zmq_strerror(zmq_errno()));
        return TM_ECONFIG;
    }
    size_t len = sizeof m->endpoint;
    zmq_getsockopt(m->router, ZMQ_LAST_ENDPOINT, m->endpoint, &len);
    return TM_OK;
}

int tm_mesh_new(const tm_mesh_cfg_t *cfg, const tm_log_t *log, tm_mesh_t **out)
{
    *out = NULL;
    tm_mesh_t *m = calloc(1, sizeof *m);
    if (!m)
        return TM_ENOMEM;
    m->log = log;
    tm_strlcpy(m->trusted_file, cfg->trusted_keys_file, sizeof m->trusted_file);
    int rc = tm_mesh_read_key(cfg->secret_key_file, 1, m->secret);
    if (rc) {
        tm_log_error(m->log, "secret key %s: %s", cfg->secret_key_file,
                     rc == TM_EPERM ? "readable by group or others (chmod 600) or unreadable"
                                    : "missing or not one Z85 key (make one: tillmesh keygen)");
        goto fail;
    }
    if ((rc = tm_mesh_read_key(cfg->public_key_file, 0, m->pub))) {
        tm_log_error(m->log, "public key %s: missing or not one Z85 key", cfg->public_key_file);
        goto fail;
    }
    if ((rc = load_trusted(m)))
        goto fail;
    rc = TM_EIO;
    if (!(m->ctx = zmq_ctx_new()))
        goto fail;
    /* The ZAP handler must be bound before any CURVE server socket. */
    if (!(m->zap = zmq_socket(m->ctx, ZMQ_REP)) || zmq_bind(m->zap, ZAP_ENDPOINT) != 0)
        goto fail;
    if ((rc = bind_router(m, cfg->listen)))
        goto fail;
    tm_log_info(m->log, "mesh listening on %s", m->endpoint);
    *out = m;
    return TM_OK;
fail:
    tm_mesh_destroy(&m);
    return rc;
}

void tm_mesh_destroy(tm_mesh_t **self_p)
{
    tm_mesh_t *m = *self_p;
    if (!m)
        return;
    for (size_t i = 0; i < m->n_links; i++)
        close_link(&m->links[i]);
    if (m->router)
        zmq_close(m->router);
    if (m->zap)
        zmq_close(m->zap);
    if (m->ctx)
        zmq_ctx_term(m->ctx);
    free(m->links);
    free(m->trusted);
    free(m);
    *self_p = NULL;
}

const char *tm_mesh_endpoint(const tm_mesh_t *m)
{
    return m->endpoint;
}

const uint8_t *tm_mesh_public_key(const tm_mesh_t *m)
{
    return m->pub;
}

/* ---- links to peers --------------------------------------------------- */

static link_t *find_link(tm_mesh_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_links; i++)
        if (strcmp(m->links[i].name, name) == 0)
            return &m->links[i];
    return NULL;
}

static void *new_dealer(tm_mesh_t *m, const uint8_t server_pub[32])
{
    /* handshake: a peer that does not trust us (yet) answers our
     * handshake with silence (ZAP 300, zap_serve_one); past this we redial
     * instead of waiting libzmq's default 30 s. */
    int one = 1, zero = 0, hwm = 10000, ivl = 100, ivl_max = 2000, handshake = 3000;
    void *d = zmq_socket(m->ctx, ZMQ_DEALER);
    if (!d)
        return NULL;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    /* Queue only to a connection whose handshake is done: a frame for a
     * dead peer is dropped at once instead of piling up (pull repairs). */
    zmq_setsockopt(d, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(d, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(d, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(d, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(d, ZMQ_HANDSHAKE_IVL, &handshake, sizeof handshake);
    zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, server_pub, 32);
    zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, m->pub, 32);
    zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, m->secret, 32);
    return d;
}

int tm_mesh_connect(tm_mesh_t *m, const char *name, const char *endpoint)
{
    const trusted_t *t = find_trusted_name(m, name);
    if (!t) {
        tm_log_warn(m->log, "peer %s: no trusted key with that name; not connecting", name);
        return TM_EPERM;
    }
    link_t *l = find_link(m, name);
    if (l && strcmp(l->endpoint, endpoint) == 0)
        return TM_OK;
    if (!l) {
        link_t *v = realloc(m->links, (m->n_links + 1) * sizeof *v);
        if (!v)
            return TM_ENOMEM;
        m->links = v;
        l = &m->links[m->n_links++];
        memset(l, 0, sizeof *l);
        tm_strlcpy(l->name, name, sizeof l->name);
    } else {
        close_link(l);
    }
    tm_strlcpy(l->endpoint, endpoint, sizeof l->endpoint);
    memcpy(l->server_pub, t->pub, 32);
    if (!(l->dealer = new_dealer(m, t->pub)))
        return TM_EIO;
    /* Without the watch the peer is still greeted, a heartbeat later. */
    (void)watch_link(m, l);
    if (zmq_connect(l->dealer, endpoint) != 0) {
        tm_log_warn(m->log, "peer %s: cannot connect to %s: %s", name, endpoint,
                    zmq_strerror(zmq_errno()));
        return TM_ECONFIG;
    }
    tm_log_debug(m->log, "peer %s: connecting to %s", name, endpoint);
    return TM_OK;
}

int tm_mesh_send(tm_mesh_t *m, const char *name, const uint8_t *frame, size_t len)
{
    link_t *l = find_link(m, name);
    if (!l || !l->dealer)
        return TM_ESTATE;
    if (zmq_send(l->dealer, frame, len, ZMQ_DONTWAIT) < 0)
        return TM_ESTATE;
    return TM_OK;
}

size_t tm_mesh_pollitems(tm_mesh_t *m, zmq_pollitem_t *items, size_t max)
{
    if (max < 2)
        return 0;
    items[0] = (zmq_pollitem_t){.socket = m->router, .events = ZMQ_POLLIN};
    items[1] = (zmq_pollitem_t){.socket = m->zap, .events = ZMQ_POLLIN};
    size_t n = 2;
    for (size_t i = 0; i < m->n_links && n < max; i++) {
        link_t *l = &m->links[i];
        if (l->mon)
            items[n++] = (zmq_pollitem_t){.socket = l->mon, .events = ZMQ_POLLIN};
        /* Up but not yet writable (tm_mesh_links_up): wake when it is. */
        if (l->up_pending && l->dealer && n < max)
            items[n++] = (zmq_pollitem_t){.socket = l->dealer, .events = ZMQ_POLLOUT};
    }
    return n;
}

/* Reads l's monitor events; notes a finished handshake for
 * tm_mesh_links_up. Done in tm_mesh_process, so that a caller that does not
 * ask is not woken again and again by events nobody reads. */
static void drain_monitor(link_t *l)
{
    /* An event is two frames: 6 bytes (event, value), the endpoint. */
    for (int k = 0; l->mon && k < 16; k++) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        bool got = zmq_msg_recv(&ev, l->mon, ZMQ_DONTWAIT) >= 0;
        if (got && zmq_msg_more(&ev))
            (void)zmq_msg_recv(&addr, l->mon, ZMQ_DONTWAIT);
        uint16_t event = 0;
        if (got && zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), sizeof event);
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        if (!got)
            break;
        if (event == ZMQ_EVENT_CONNECTED)
            l->tcp = true;
        else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            l->up_pending = l->up = l->tcp = true;
        else if (event == ZMQ_EVENT_DISCONNECTED)
            l->up = l->tcp = false;
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define REDIAL_MIN_MS 1000

/* A frame came in from a peer our link to which is down: it is up now, but
 * our dealer may wait out its reconnect backoff (up to 2 s) before it
 * tries again, and our answer to its hello would be dropped meanwhile. A
 * new dealer dials at once: not while a connection is up or handshaking,
 * and at most every REDIAL_MIN_MS per peer. */
static void redial(tm_mesh_t *m, const char *name)
{
    link_t *l = find_link(m, name);
    if (!l || !l->dealer || l->tcp)
        return;
    uint64_t now = mono_ms();
    if (l->redial_ms && now - l->redial_ms < REDIAL_MIN_MS)
        return;
    l->redial_ms = now;
    close_link(l);
    if (!(l->dealer = new_dealer(m, l->server_pub)))
        return;
    (void)watch_link(m, l);
    if (zmq_connect(l->dealer, l->endpoint) != 0)
        close_link(l);
    else
        tm_log_debug(m->log, "peer %s: it spoke to us: dialling it again now", name);
}

size_t tm_mesh_links_up(tm_mesh_t *m, tm_mesh_link_fn fn, void *ctx)
{
    size_t up = 0;
    for (size_t i = 0; i < m->n_links; i++) {
        link_t *l = &m->links[i];
        int events = 0;
        size_t sz = sizeof events;
        if (!l->up_pending)
            continue;
        /* The monitor reports the handshake from libzmq's I/O thread; the
         * dealer takes the new connection when it next handles its commands
         * (ZMQ_EVENTS makes it), and a frame sent before is still dropped. */
        if (!l->dealer || zmq_getsockopt(l->dealer, ZMQ_EVENTS, &events, &sz) != 0 ||
            !(events & ZMQ_POLLOUT))
            continue;
        l->up_pending = false;
        tm_log_debug(m->log, "peer %s: connected", l->name);
        fn(ctx, l->name);
        up++;
    }
    return up;
}

/* ---- ZAP: who may connect --------------------------------------------- */

/* Reads the frames of one ZAP request (RFC 27): version, request id,
 * domain, address, identity, mechanism, credentials. */
static int zap_read(void *sock, zmq_msg_t *parts, int max)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_t *dst = n < max ? &parts[n] : &tmp;
        zmq_msg_init(dst);
        if (zmq_msg_recv(dst, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(dst);
            return n ? n : -1;
        }
        more = zmq_msg_more(dst);
        if (dst == &tmp)
            zmq_msg_close(&tmp);
        n++;
    }
    return n;
}

static void zap_reply(void *sock, zmq_msg_t *reqid, const char *code, const char *text,
                      const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data(reqid), zmq_msg_size(reqid), ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

static void zap_serve_one(tm_mesh_t *m)
{
    zmq_msg_t p[8];
    int n = zap_read(m->zap, p, 8);
    if (n < 0)
        return;
    const char *user = NULL;
    char user_z85[41];
    if (n >= 7 && zmq_msg_size(&p[5]) == 5 && memcmp(zmq_msg_data(&p[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&p[6]) == 32)
        user = tm_mesh_key_name(m, zmq_msg_data(&p[6]));
    if (n >= 2) {
        if (user) {
            /* The User-Id is the key itself, not its name: every frame is
             * checked against the trusted keys as they are when it
             * arrives, so a key revoked later is refused at once. */
            zmq_z85_encode(user_z85, zmq_msg_data(&p[6]), 32);
            zap_reply(m->zap, &p[1], "200", "OK", user_z85);
        } else {
            char z85[41] = "?";
            if (n >= 7 && zmq_msg_size(&p[6]) == 32)
                zmq_z85_encode(z85, zmq_msg_data(&p[6]), 32);
            char addr[64] = "";
            if (n >= 4)
                snprintf(addr, sizeof addr, "%.*s", (int)zmq_msg_size(&p[3]),
                         (const char *)zmq_msg_data(&p[3]));
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t now = (uint64_t)ts.tv_sec;
            m->zap_refused++;
            if (m->zap_refused == 1 || now - m->zap_logged_at >= 60) {
                tm_log_warn(m->log,
                            "refused a connection from %s: key %s is not trusted (%llu refused "
                            "since the last report)",
                            addr, z85,
                            (unsigned long long)(m->zap_refused - m->zap_refused_logged));
                m->zap_refused_logged = m->zap_refused;
                m->zap_logged_at = now;
            }
            /* 300 (temporary), not 400: libzmq then drops the connection
             * silently and the client redials every reconnect interval
             * (2 s at most), so a till that started before the others
             * trusted it joins once they reload (`tillmesh trust add`).
             * A 400 makes libzmq send ERROR, after which the client's
             * DEALER never dials again until that till restarts. */
            zap_reply(m->zap, &p[1], "300", "untrusted key", "");
        }
    }
    for (int i = 0; i < n && i < 8; i++)
        zmq_msg_close(&p[i]);
}

/* ---- inbound frames --------------------------------------------------- */

static void router_recv_one(tm_mesh_t *m, tm_mesh_frame_fn fn, void *ctx, int *got)
{
    zmq_msg_t ident, body;
    zmq_msg_init(&ident);
    zmq_msg_init(&body);
    *got = 0;
    if (zmq_msg_recv(&ident, m->router, ZMQ_DONTWAIT) < 0)
        goto cleanup;
    *got = 1;
    if (!zmq_msg_more(&ident) || zmq_msg_recv(&body, m->router, ZMQ_DONTWAIT) < 0)
        goto cleanup;
    /* Our peers send single-frame messages; drain anything more. */
    int extra = zmq_msg_more(&body);
    while (extra) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        extra = zmq_msg_recv(&x, m->router, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    const char *user = zmq_msg_gets(&body, "User-Id");
    uint8_t pub[32];
    const char *name = NULL;
    if (user && strlen(user) == 40 && zmq_z85_decode(pub, user))
        name = tm_mesh_key_name(m, pub);
    if (name) {
        redial(m, name);
        fn(ctx, name, zmq_msg_data(&body), zmq_msg_size(&body));
    } else {
        /* Its key left the trusted keys after it connected. libzmq cannot
         * close one peer's connection on a ROUTER; its frames go nowhere
         * and a reconnect is refused by the ZAP handler. */
        m->frames_refused++;
        if (m->frames_refused - m->refused_logged >= 1000 || m->refused_logged == 0) {
            tm_log_warn(m->log,
                        "dropped frames from key %.40s: not in the trusted keys "
                        "(revoked); %llu so far",
                        user ? user : "?", (unsigned long long)m->frames_refused);
            m->refused_logged = m->frames_refused;
        }
    }
cleanup:
    zmq_msg_close(&ident);
    zmq_msg_close(&body);
}

void tm_mesh_process(tm_mesh_t *m, tm_mesh_frame_fn fn, void *ctx)
{
    for (size_t i = 0; i < m->n_links; i++)
        drain_monitor(&m->links[i]);
    int events;
    size_t sz = sizeof events;
    /* Bounded rounds, and a time budget: every frame may be a fsynced
     * write, and a flooding peer must not keep the HTTP API waiting. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < 256; round++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (round && (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >=
                         TM_MESH_PROCESS_BUDGET_MS)
            break;
        int did = 0, got;
        if (zmq_getsockopt(m->zap, ZMQ_EVENTS, &events, &sz) == 0 && (events & ZMQ_POLLIN)) {
            zap_serve_one(m);
            did = 1;
        }
        router_recv_one(m, fn, ctx, &got);
        if (!did && !got)
            break;
    }
}
