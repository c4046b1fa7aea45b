/* avahi.c - the Avahi backend behind tm_disc.h.
 *
 * Threading: every Avahi object, and everything in struct tm_disc below the
 * "actor state" line, is touched only by the avahi_threaded_poll thread
 * (callbacks run there with the poll lock held), except in tm_disc_new before
 * the thread starts and in tm_disc_destroy after it has stopped. The main
 * thread sees only the read end of the event pipe and the `connected` atomic.
 *
 * Peers: a peer may show up as several browse entries (one per interface and
 * protocol). Each entry gets its own long-lived resolver, which reports again
 * whenever the peer's SRV/TXT/address change. After every change the
 * instance's wanted state is recomputed from all its entries and compared
 * with what was last reported (s_reconcile), so the main thread gets UP only
 * when something changed and DOWN only when the last entry went.
 */
#define _GNU_SOURCE /* pipe2: close-on-exec set atomically, before any fork */
#include "tm_disc.h"

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/thread-watch.h>
#include <avahi-common/timeval.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SERVICE_TYPE "_tillmesh._tcp"
/* After a reconnect, instances not seen again within this time are gone. */
#define SWEEP_MS 5000
/* Retry delay when the client could not even be created (no system bus). */
#define RETRY_MS 3000
/* Events queued while the main thread does not drain the pipe. A store has a
 * few dozen tills; this bound only stops a runaway. */
#define BACKLOG_MAX 4096

_Static_assert(sizeof(tm_disc_event_t) < PIPE_BUF, "event writes must be atomic");

typedef struct {
    char name[64], store[64], node[33], key[TM_DISC_FP_HEX];
    uint32_t pmin, pmax;
} txt_t;

typedef struct entry {
    struct entry *next;
    AvahiIfIndex ifindex;
    AvahiProtocol proto;
    char domain[256];
    AvahiServiceResolver *res;
    int resolved, txt_ok;
    unsigned seq; /* when resolved last, to pick the freshest TXT */
    int family;   /* AVAHI_PROTO_INET or _INET6 of addr */
    int linklocal;
    char addr[64]; /* printable, with %ifname for IPv6 link-local */
    uint16_t port;
    txt_t txt;
} entry_t;

typedef struct inst {
    struct inst *next;
    char name[64];
    entry_t *entries;
    int up;        /* an UP was reported and no DOWN since */
    int stale;     /* survived a reconnect; re-report UP when seen again */
    int warned;    /* bad TXT already logged */
    tm_disc_event_t last;
} inst_t;

typedef struct pending {
    struct pending *next;
    tm_disc_event_t ev;
} pending_t;

struct tm_disc {
    int rfd, wfd;
    atomic_int connected;
    tm_log_t log;
    AvahiThreadedPoll *tp;
    const AvahiPoll *api;
    /* ---- actor state: Avahi thread only ---- */
    char name[64], store[64], node[33], key[TM_DISC_FP_HEX];
    uint16_t port;
    uint32_t pmin, pmax;
    AvahiClient *client;
    AvahiEntryGroup *group;
    AvahiServiceBrowser *browser;
    char *svc_name;    /* current instance name, may be an alternative */
    int avail;         /* -1 never known, 0 unreachable, 1 reachable */
    AvahiTimeout *retry, *sweep;
    AvahiWatch *wwatch;
    pending_t *q_head, *q_tail;
    size_t q_len;
    unsigned seq;
    inst_t *insts;
};

static void s_client_cb(AvahiClient *c, AvahiClientState state, void *ud);

/* ---- events to the main thread ------------------------------------------- */

/* Writes queued events while the pipe takes them; 0 when the queue is empty. */
static int s_flush(tm_disc_t *self)
{
    while (self->q_head) {
        ssize_t n = write(self->wfd, &self->q_head->ev, sizeof self->q_head->ev);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return -1;
        if (n != (ssize_t)sizeof self->q_head->ev)
            tm_log_error(&self->log, "mDNS: event pipe write failed: %s", strerror(errno));
        pending_t *p = self->q_head;
        self->q_head = p->next;
        if (!self->q_head)
            self->q_tail = NULL;
        self->q_len--;
        free(p);
    }
    return 0;
}

static void s_update_wwatch(tm_disc_t *self)
{
    /* Watch for writability only while something waits, or poll would spin. */
    self->api->watch_update(self->wwatch, self->q_head ? AVAHI_WATCH_OUT : 0);
}

static void s_wwatch_cb(AvahiWatch *w, int fd, AvahiWatchEvent ev, void *ud)
{
    (void)w, (void)fd, (void)ev;
    tm_disc_t *self = ud;
    s_flush(self);
    s_update_wwatch(self);
}

/* Queues then flushes, so that events keep their order even when the main
 * thread is slow and the pipe is full; the Avahi thread never blocks. */
static void s_emit(tm_disc_t *self, const tm_disc_event_t *ev)
{
    if (self->q_len >= BACKLOG_MAX) {
        tm_log_error(&self->log, "mDNS: main loop not draining events; dropped %s %s",
                     ev->kind == TM_DISC_UP ? "UP" : "DOWN", ev->instance);
        return;
    }
    pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        tm_log_error(&self->log, "mDNS: out of memory; dropped event for %s", ev->instance);
        return;
    }
    p->ev = *ev;
    if (self->q_tail)
        self->q_tail->next = p;
    else
        self->q_head = p;
    self->q_tail = p;
    self->q_len++;
    s_flush(self);
    s_update_wwatch(self);
}

/* ---- TXT parsing ---------------------------------------------------------- */

static int s_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

static void s_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'F')
            *s = (char)(*s - 'A' + 'a');
}

static int s_parse_proto(const char *v, uint32_t *lo, uint32_t *hi)
{
    char *end;
    errno = 0;
    unsigned long a = strtoul(v, &end, 10);
    if (end == v || *end != '-' || errno)
        return -1;
    const char *v2 = end + 1;
    unsigned long b = strtoul(v2, &end, 10);
    if (end == v2 || *end || errno || a > b || b > UINT32_MAX)
        return -1;
    *lo = (uint32_t)a;
    *hi = (uint32_t)b;
    return 0;
}

/* Copies value v (length n) into dst if it fits and is not empty. */
static int s_take(char *dst, size_t dstsz, const char *v, size_t n)
{
    if (n == 0 || n >= dstsz || memchr(v, '\0', n))
        return -1;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return 0;
}

/* 0 and *t filled when every required key is present and well formed;
 * otherwise -1 and *why names the first problem (for the debug log). */
static int s_parse_txt(AvahiStringList *l, txt_t *t, const char **why)
{
    unsigned have = 0;
    memset(t, 0, sizeof *t);
    *why = NULL;
    for (; l; l = avahi_string_list_get_next(l)) {
        const char *s = (const char *)avahi_string_list_get_text(l);
        size_t len = avahi_string_list_get_size(l);
        const char *eq = memchr(s, '=', len);
        if (!eq)
            continue;
        size_t kl = (size_t)(eq - s), vl = len - kl - 1;
        const char *v = eq + 1;
        char pv[32];
        if (kl == 5 && !memcmp(s, "store", 5)) {
            if (s_take(t->store, sizeof t->store, v, vl) < 0)
                *why = "bad store=";
            have |= 1;
        } else if (kl == 4 && !memcmp(s, "node", 4)) {
            if (vl != 32 || !s_is_hex(v, vl) || s_take(t->node, sizeof t->node, v, vl) < 0)
                *why = "node= is not 32 hex digits";
            have |= 2;
        } else if (kl == 4 && !memcmp(s, "name", 4)) {
            if (s_take(t->name, sizeof t->name, v, vl) < 0)
                *why = "bad name=";
            have |= 4;
        } else if (kl == 5 && !memcmp(s, "proto", 5)) {
            if (s_take(pv, sizeof pv, v, vl) < 0 || s_parse_proto(pv, &t->pmin, &t->pmax) < 0)
                *why = "proto= is not MIN-MAX";
            have |= 8;
        } else if (kl == 3 && !memcmp(s, "key", 3)) {
            if (vl != TM_DISC_FP_HEX - 1 || !s_is_hex(v, vl) ||
                s_take(t->key, sizeof t->key, v, vl) < 0)
                *why = "key= is not a 16-hex-digit fingerprint";
            have |= 16;
        }
    }
    if (!*why && have != 31)
        *why = "missing one of store=, node=, name=, proto=, key=";
    s_lower(t->node);
    s_lower(t->key);
    return *why ? -1 : 0;
}

/* ---- instances and their aggregate state --------------------------------- */

static inst_t *s_inst_find(tm_disc_t *self, const char *name, int create)
{
    for (inst_t *i = self->insts; i; i = i->next)
        if (!strcmp(i->name, name))
            return i;
    if (!create)
        return NULL;
    inst_t *i = calloc(1, sizeof *i);
    if (!i)
        return NULL;
    tm_strlcpy(i->name, name, sizeof i->name);
    i->next = self->insts;
    self->insts = i;
    return i;
}

static void s_inst_free_if_unused(tm_disc_t *self, inst_t *inst)
{
    if (inst->entries || inst->up)
        return;
    for (inst_t **pp = &self->insts; *pp; pp = &(*pp)->next) {
        if (*pp == inst) {
            *pp = inst->next;
            free(inst);
            return;
        }
    }
}

static entry_t *s_entry_find(inst_t *inst, AvahiIfIndex ifi, AvahiProtocol proto,
                             const char *domain, entry_t ***link)
{
    for (entry_t **pp = &inst->entries; *pp; pp = &(*pp)->next) {
        entry_t *e = *pp;
        if (e->ifindex == ifi && e->proto == proto && !strcmp(e->domain, domain)) {
            if (link)
                *link = pp;
            return e;
        }
    }
    return NULL;
}

/* IPv4 first, then routable IPv6, then link-local IPv6 (needs a scope). */
static int s_rank(const entry_t *e)
{
    return e->family == AVAHI_PROTO_INET ? 0 : e->linklocal ? 2 : 1;
}

static void s_append_addr(char *buf, size_t sz, const char *a)
{
    size_t used = strlen(buf), al = strlen(a);
    /* Skip duplicates: one address can arrive on several entries. */
    for (const char *p = buf; (p = strstr(p, a)) != NULL; p += al)
        if ((p == buf || p[-1] == ',') && (p[al] == ',' || p[al] == '\0'))
            return;
    if (used + al + 2 > sz)
        return; /* the list is informational; the endpoint is what matters */
    if (used)
        buf[used++] = ',';
    memcpy(buf + used, a, al + 1);
}

/* 1 and *ev filled when the instance should be reported UP. */
static int s_wanted(const tm_disc_t *self, const inst_t *inst, tm_disc_event_t *ev)
{
    const entry_t *txt = NULL, *best = NULL;
    for (const entry_t *e = inst->entries; e; e = e->next) {
        if (!e->resolved || !e->txt_ok)
            continue;
        if (!txt || e->seq > txt->seq)
            txt = e;
        if (!best || s_rank(e) < s_rank(best))
            best = e;
    }
    if (!txt || !strcmp(txt->txt.node, self->node))
        return 0;
    memset(ev, 0, sizeof *ev);
    ev->kind = TM_DISC_UP;
    tm_strlcpy(ev->instance, inst->name, sizeof ev->instance);
    tm_strlcpy(ev->name, txt->txt.name, sizeof ev->name);
    tm_strlcpy(ev->store_id, txt->txt.store, sizeof ev->store_id);
    tm_strlcpy(ev->node_id, txt->txt.node, sizeof ev->node_id);
    tm_strlcpy(ev->key_fp, txt->txt.key, sizeof ev->key_fp);
    ev->proto_min = txt->txt.pmin;
    ev->proto_max = txt->txt.pmax;
    if (best->family == AVAHI_PROTO_INET)
        snprintf(ev->endpoint, sizeof ev->endpoint, "tcp://%s:%u", best->addr, best->port);
    else
        snprintf(ev->endpoint, sizeof ev->endpoint, "tcp://[%s]:%u", best->addr, best->port);
    for (int rank = 0; rank < 3; rank++)
        for (const entry_t *e = inst->entries; e; e = e->next)
            if (e->resolved && e->txt_ok && s_rank(e) == rank)
                s_append_addr(ev->addresses, sizeof ev->addresses, e->addr);
    return 1;
}

static void s_emit_down(tm_disc_t *self, inst_t *inst)
{
    tm_disc_event_t ev = inst->last;
    ev.kind = TM_DISC_DOWN;
    s_emit(self, &ev);
    inst->up = 0;
    tm_log_info(&self->log, "mDNS: peer %s (%s) gone", inst->name, inst->last.endpoint);
}

/* Reports the difference between what the entries say now and what the
 * main thread was last told. */
static void s_reconcile(tm_disc_t *self, inst_t *inst)
{
    tm_disc_event_t want;
    if (!s_wanted(self, inst, &want)) {
        if (inst->up)
            s_emit_down(self, inst);
        return;
    }
    if (inst->up && !inst->stale && !memcmp(&want, &inst->last, sizeof want))
        return;
    /* Another till took over this instance name: the old one is gone. */
    if (inst->up && strcmp(want.node_id, inst->last.node_id))
        s_emit_down(self, inst);
    s_emit(self, &want);
    tm_log_info(&self->log, "mDNS: peer %s store=%s at %s", inst->name, want.store_id,
                want.endpoint);
    inst->last = want;
    inst->up = 1;
    inst->stale = 0;
}

/* ---- resolve and browse --------------------------------------------------- */

static void s_fill_addr(entry_t *e, AvahiIfIndex ifi, const AvahiAddress *a)
{
    char buf[AVAHI_ADDRESS_STR_MAX], ifn[IF_NAMESIZE];
    avahi_address_snprint(buf, sizeof buf, a);
    e->family = a->proto;
    e->linklocal = a->proto == AVAHI_PROTO_INET6 && a->data.ipv6.address[0] == 0xfe &&
                   (a->data.ipv6.address[1] & 0xc0) == 0x80;
    if (e->linklocal && if_indextoname((unsigned)ifi, ifn))
        snprintf(e->addr, sizeof e->addr, "%s%%%s", buf, ifn);
    else
        tm_strlcpy(e->addr, buf, sizeof e->addr);
}

static void s_resolve_cb(AvahiServiceResolver *r, AvahiIfIndex ifi, AvahiProtocol proto,
                         AvahiResolverEvent event, const char *name, const char *type,
                         const char *domain, const char *host, const AvahiAddress *a,
                         uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
                         void *ud)
{
    (void)type, (void)host, (void)flags;
    tm_disc_t *self = ud;
    inst_t *inst = s_inst_find(self, name, 0);
    entry_t *e = inst ? s_entry_find(inst, ifi, proto, domain, NULL) : NULL;
    if (!e || e->res != r)
        return; /* a late report for an entry already removed */
    if (event == AVAHI_RESOLVER_FAILURE) {
        tm_log_debug(&self->log, "mDNS: cannot resolve %s: %s", name,
                     avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));
        /* The resolver is finished; a new browse entry will start another. */
        avahi_service_resolver_free(r);
        e->res = NULL;
        e->resolved = 0;
        s_reconcile(self, inst);
        return;
    }
    const char *why;
    e->resolved = 1;
    e->seq = ++self->seq;
    e->port = port;
    s_fill_addr(e, ifi, a);
    e->txt_ok = s_parse_txt(txt, &e->txt, &why) == 0;
    if (!e->txt_ok && !inst->warned) {
        inst->warned = 1;
        tm_log_debug(&self->log, "mDNS: ignoring %s at %s: %s", name, e->addr, why);
    }
    s_reconcile(self, inst);
}

static void s_browse_new(tm_disc_t *self, AvahiServiceBrowser *b, AvahiIfIndex ifi,
                         AvahiProtocol proto, const char *name, const char *type,
                         const char *domain)
{
    inst_t *inst = s_inst_find(self, name, 1);
    if (!inst || s_entry_find(inst, ifi, proto, domain, NULL))
        goto fail;
    entry_t *e = calloc(1, sizeof *e);
    if (!e)
        goto fail;
    e->ifindex = ifi;
    e->proto = proto;
    tm_strlcpy(e->domain, domain, sizeof e->domain);
    e->next = inst->entries;
    inst->entries = e;
    /* Ask for the address family the entry was seen on, so one peer seen on
     * IPv4 and IPv6 yields both addresses. Kept open: it reports changes. */
    e->res = avahi_service_resolver_new(avahi_service_browser_get_client(b), ifi, proto, name,
                                        type, domain, proto, 0, s_resolve_cb, self);
    if (!e->res)
        tm_log_warn(&self->log, "mDNS: cannot resolve %s: %s", name,
                    avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
    return;
fail:
    if (inst)
        s_inst_free_if_unused(self, inst);
}

static void s_browse_remove(tm_disc_t *self, AvahiIfIndex ifi, AvahiProtocol proto,
                            const char *name, const char *domain)
{
    entry_t **link = NULL;
    inst_t *inst = s_inst_find(self, name, 0);
    entry_t *e = inst ? s_entry_find(inst, ifi, proto, domain, &link) : NULL;
    if (!e)
        return;
    *link = e->next;
    if (e->res)
        avahi_service_resolver_free(e->res);
    free(e);
    s_reconcile(self, inst);
    s_inst_free_if_unused(self, inst);
}

static void s_browse_cb(AvahiServiceBrowser *b, AvahiIfIndex ifi, AvahiProtocol proto,
                        AvahiBrowserEvent event, const char *name, const char *type,
                        const char *domain, AvahiLookupResultFlags flags, void *ud)
{
    (void)flags;
    tm_disc_t *self = ud;
    switch (event) {
    case AVAHI_BROWSER_NEW:
        s_browse_new(self, b, ifi, proto, name, type, domain);
        break;
    case AVAHI_BROWSER_REMOVE:
        s_browse_remove(self, ifi, proto, name, domain);
        break;
    case AVAHI_BROWSER_FAILURE:
        /* A disconnect also lands here; the client callback recovers. */
        tm_log_warn(&self->log, "mDNS: browsing failed: %s",
                    avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
        break;
    case AVAHI_BROWSER_ALL_FOR_NOW:
    case AVAHI_BROWSER_CACHE_EXHAUSTED:
        break;
    }
}

/* After a reconnect: report DOWN for peers that did not come back. */
static void s_sweep_cb(AvahiTimeout *t, void *ud)
{
    tm_disc_t *self = ud;
    self->api->timeout_update(t, NULL);
    inst_t *next;
    for (inst_t *i = self->insts; i; i = next) {
        next = i->next;
        if (!i->stale || i->entries)
            continue;
        i->stale = 0;
        if (i->up)
            s_emit_down(self, i);
        s_inst_free_if_unused(self, i);
    }
}

/* ---- publishing ----------------------------------------------------------- */

static void s_group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *ud);

static int s_add_service(tm_disc_t *self, AvahiEntryGroup *g)
{
    char store[80], node[48], name[80], proto[48], key[32];
    snprintf(store, sizeof store, "store=%s", self->store);
    snprintf(node, sizeof node, "node=%s", self->node);
    snprintf(name, sizeof name, "name=%s", self->name);
    snprintf(proto, sizeof proto, "proto=%u-%u", self->pmin, self->pmax);
    snprintf(key, sizeof key, "key=%s", self->key);
    return avahi_entry_group_add_service(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0,
                                         self->svc_name, SERVICE_TYPE, NULL, NULL, self->port,
                                         store, node, name, proto, key, NULL);
}

static void s_next_name(tm_disc_t *self)
{
    char *alt = avahi_alternative_service_name(self->svc_name);
    if (!alt)
        return;
    tm_log_warn(&self->log, "mDNS: service name '%s' is taken on this LAN; publishing as '%s'",
                self->svc_name, alt);
    avahi_free(self->svc_name);
    self->svc_name = alt;
}

/* (Re)publishes our service on client c; safe to call from callbacks that
 * fire inside avahi_client_new, before self->client is set. */
static void s_publish(tm_disc_t *self, AvahiClient *c)
{
    int rc;
    if (!self->group && !(self->group = avahi_entry_group_new(c, s_group_cb, self))) {
        rc = avahi_client_errno(c);
        goto fail;
    }
    avahi_entry_group_reset(self->group);
    for (int tries = 0; (rc = s_add_service(self, self->group)) == AVAHI_ERR_COLLISION;) {
        if (++tries > 16)
            goto fail;
        s_next_name(self);
    }
    if (rc < 0 || (rc = avahi_entry_group_commit(self->group)) < 0)
        goto fail;
    return;
fail:
    tm_log_error(&self->log, "mDNS: cannot publish '%s': %s", self->svc_name, avahi_strerror(rc));
}

static void s_group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *ud)
{
    tm_disc_t *self = ud;
    switch (state) {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
        tm_log_info(&self->log, "mDNS: published '%s' %s port %u", self->svc_name,
                    SERVICE_TYPE, self->port);
        break;
    case AVAHI_ENTRY_GROUP_COLLISION:
        /* Another till already uses this instance name (two "till-1"s). */
        s_next_name(self);
        s_publish(self, avahi_entry_group_get_client(g));
        break;
    case AVAHI_ENTRY_GROUP_FAILURE:
        tm_log_error(&self->log, "mDNS: publishing failed: %s",
                     avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
        break;
    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
}

/* ---- the client and its recovery ------------------------------------------ */

static void s_unavailable(tm_disc_t *self, const char *why)
{
    atomic_store(&self->connected, 0);
    if (self->avail != 0)
        tm_log_warn(&self->log,
                    "avahi-daemon not reachable: mDNS discovery paused; static peers still "
                    "work (%s)", why);
    self->avail = 0;
}

/* Our Avahi objects die with the client; keep what the main thread was told
 * and mark it stale, so that a reconnect re-reports live peers and the sweep
 * reports the ones that went meanwhile. */
static void s_forget_objects(tm_disc_t *self)
{
    self->group = NULL;
    self->browser = NULL;
    for (inst_t *i = self->insts; i; i = i->next) {
        while (i->entries) {
            entry_t *e = i->entries;
            i->entries = e->next;
            free(e);
        }
        i->stale = 1;
    }
}

static void s_client_start(tm_disc_t *self)
{
    int err = 0;
    self->client = avahi_client_new(self->api, AVAHI_CLIENT_NO_FAIL, s_client_cb, self, &err);
    if (!self->client) {
        /* NO_FAIL covers a missing avahi-daemon but not a missing bus. */
        s_unavailable(self, avahi_strerror(err));
        struct timeval tv;
        self->api->timeout_update(self->retry, avahi_elapse_time(&tv, RETRY_MS, 0));
    }
}

static void s_retry_cb(AvahiTimeout *t, void *ud)
{
    tm_disc_t *self = ud;
    self->api->timeout_update(t, NULL);
    if (self->client) {
        s_forget_objects(self);
        avahi_client_free(self->client);
        self->client = NULL;
    }
    s_client_start(self);
}

static void s_running(tm_disc_t *self, AvahiClient *c)
{
    atomic_store(&self->connected, 1);
    if (self->avail == 0)
        tm_log_info(&self->log, "avahi-daemon is back: publishing as %s", self->svc_name);
    else if (self->avail < 0)
        tm_log_info(&self->log, "mDNS: publishing as %s", self->svc_name);
    self->avail = 1;
    s_publish(self, c);
    if (!self->browser) {
        self->browser = avahi_service_browser_new(c, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                                  SERVICE_TYPE, NULL, 0, s_browse_cb, self);
        if (!self->browser)
            tm_log_error(&self->log, "mDNS: cannot browse %s: %s", SERVICE_TYPE,
                         avahi_strerror(avahi_client_errno(c)));
    }
    for (inst_t *i = self->insts; i; i = i->next) {
        if (i->stale) {
            struct timeval tv;
            self->api->timeout_update(self->sweep, avahi_elapse_time(&tv, SWEEP_MS, 0));
            break;
        }
    }
}

/* Runs in the Avahi thread, and the first time inside avahi_client_new()
 * where self->client is not yet set: use c, never self->client. */
static void s_client_cb(AvahiClient *c, AvahiClientState state, void *ud)
{
    tm_disc_t *self = ud;
    struct timeval tv;
    switch (state) {
    case AVAHI_CLIENT_S_RUNNING:
        s_running(self, c);
        break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
        /* The daemon is (re)choosing its host name; our records name the
         * host, so withdraw them and publish again once it is RUNNING. The
         * service name itself did not collide, so it stays. */
        if (self->group)
            avahi_entry_group_reset(self->group);
        break;
    case AVAHI_CLIENT_CONNECTING:
        s_unavailable(self, "waiting for it to start");
        break;
    case AVAHI_CLIENT_FAILURE:
        s_unavailable(self, avahi_strerror(avahi_client_errno(c)));
        /* Replace the client from a timer, not from inside its own callback.
         * After a disconnect the new client waits (NO_FAIL) for the daemon,
         * so retry at once; anything else gets a pause to avoid spinning. */
        self->api->timeout_update(
            self->retry,
            avahi_elapse_time(&tv, avahi_client_errno(c) == AVAHI_ERR_DISCONNECTED ? 0 : RETRY_MS,
                              0));
        break;
    }
}

/* ---- public API ----------------------------------------------------------- */

static int s_cfg_check(const tm_disc_cfg_t *cfg)
{
    if (!cfg || !cfg->name || !cfg->store_id || !cfg->node_id_hex || !cfg->key_fp)
        return TM_EINVAL;
    if (!*cfg->name || strlen(cfg->name) >= 64 || !*cfg->store_id ||
        strlen(cfg->store_id) >= 64)
        return TM_EINVAL;
    if (strlen(cfg->node_id_hex) != 32 || !s_is_hex(cfg->node_id_hex, 32))
        return TM_EINVAL;
    if (strlen(cfg->key_fp) != TM_DISC_FP_HEX - 1 || !s_is_hex(cfg->key_fp, TM_DISC_FP_HEX - 1))
        return TM_EINVAL;
    if (cfg->port == 0 || cfg->proto_min > cfg->proto_max)
        return TM_EINVAL;
    return TM_OK;
}

static void s_copy_cfg(tm_disc_t *self, const tm_disc_cfg_t *cfg)
{
    tm_strlcpy(self->name, cfg->name, sizeof self->name);
    tm_strlcpy(self->store, cfg->store_id, sizeof self->store);
    tm_strlcpy(self->node, cfg->node_id_hex, sizeof self->node);
    tm_strlcpy(self->key, cfg->key_fp, sizeof self->key);
    s_lower(self->node);
    s_lower(self->key);
    self->port = cfg->port;
    self->pmin = cfg->proto_min;
    self->pmax = cfg->proto_max;
}

int tm_disc_new(const tm_disc_cfg_t *cfg, const tm_log_t *log, tm_disc_t **out)
{
    int rc = s_cfg_check(cfg);
    *out = NULL;
    if (rc)
        return rc;
    tm_disc_t *self = calloc(1, sizeof *self);
    if (!self)
        return TM_ENOMEM;
    self->rfd = self->wfd = -1;
    atomic_init(&self->connected, 0);
    self->avail = -1;
    if (log)
        self->log = *log;
    else
        self->log.level = TM_LOG_INFO;
    s_copy_cfg(self, cfg);
    rc = TM_ENOMEM;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = TM_EIO;
        goto fail;
    }
    self->rfd = fds[0];
    self->wfd = fds[1];
    if (!(self->svc_name = avahi_strdup(self->name)) || !(self->tp = avahi_threaded_poll_new()))
        goto fail;
    self->api = avahi_threaded_poll_get(self->tp);
    self->retry = self->api->timeout_new(self->api, NULL, s_retry_cb, self);
    self->sweep = self->api->timeout_new(self->api, NULL, s_sweep_cb, self);
    self->wwatch = self->api->watch_new(self->api, self->wfd, 0, s_wwatch_cb, self);
    if (!self->retry || !self->sweep || !self->wwatch)
        goto fail;
    /* The thread is not running yet, so no lock is needed here. */
    s_client_start(self);
    if (avahi_threaded_poll_start(self->tp) < 0) {
        rc = TM_EIO;
        goto fail;
    }
    *out = self;
    return TM_OK;
fail:
    tm_disc_destroy(&self);
    return rc;
}

void tm_disc_destroy(tm_disc_t **self_p)
{
    tm_disc_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->tp) {
        /* Joins the thread (a no-op if it never started); from here on this
         * thread owns every Avahi object. */
        avahi_threaded_poll_stop(self->tp);
        if (self->client)
            avahi_client_free(self->client); /* frees group, browser, resolvers */
        if (self->retry)
            self->api->timeout_free(self->retry);
        if (self->sweep)
            self->api->timeout_free(self->sweep);
        if (self->wwatch)
            self->api->watch_free(self->wwatch);
        avahi_threaded_poll_free(self->tp);
    }
    s_forget_objects(self);
    while (self->insts) {
        inst_t *i = self->insts;
        self->insts = i->next;
        free(i);
    }
    while (self->q_head) {
        pending_t *p = self->q_head;
        self->q_head = p->next;
        free(p);
    }
    avahi_free(self->svc_name);
    if (self->rfd >= 0)
        close(self->rfd);
    if (self->wfd >= 0)
        close(self->wfd);
    free(self);
    *self_p = NULL;
}

int tm_disc_fd(const tm_disc_t *self)
{
    return self->rfd;
}

int tm_disc_next(tm_disc_t *self, tm_disc_event_t *ev)
{
    for (;;) {
        ssize_t n = read(self->rfd, ev, sizeof *ev);
        if (n == (ssize_t)sizeof *ev)
            return 1;
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) /* cannot happen: writes are whole and atomic */
            tm_log_error(&self->log, "mDNS: short event read (%zd bytes)", n);
        return 0;
    }
}

int tm_disc_connected(const tm_disc_t *self)
{
    return atomic_load(&self->connected);
}
