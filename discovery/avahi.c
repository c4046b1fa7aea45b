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
 * whenever the peer's SRV/TXT/address change. Changes are gathered for
 * SETTLE_MS, then the instance's wanted state is recomputed from all its
 * entries and compared with what was last reported (s_reconcile), so the main
 * thread gets UP only when something changed, and DOWN when the last entry
 * went or no entry resolves any more (records expired: a pulled cable).
 */
#define _GNU_SOURCE /* pipe2: close-on-exec set atomically, before any fork */
#include "disc_int.h"

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
/* Changes to one peer are gathered this long before being reported: its
 * IPv6 and IPv4 entries resolve a few ms apart, and reporting the first alone
 * would hand the main loop a link-local endpoint it replaces at once. */
#define SETTLE_MS 250
/* A peer whose records expired (its cable was pulled: mDNS has no goodbye
 * then) keeps its browse entry, since the PTR record lives 75 minutes, but
 * its resolver fails after the SRV's 120 s. Resolve such entries again this
 * often, so the peer comes back soon after it is plugged in again. */
#define RERESOLVE_MS 10000
/* Retry delay when the client could not even be created (no system bus). */
#define RETRY_MS 3000
/* Events queued while the main thread does not drain the pipe. A store has a
 * few dozen tills; this bound only stops a runaway. */
#define BACKLOG_MAX 4096

_Static_assert(sizeof(tm_disc_event_t) < PIPE_BUF, "event writes must be atomic");

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
    char *svc_name; /* current instance name, may be an alternative */
    int avail;      /* -1 never known, 0 unreachable, 1 reachable */
    AvahiTimeout *retry, *sweep, *settle, *reresolve;
    AvahiWatch *wwatch;
    pending_t *q_head, *q_tail;
    size_t q_len;
    unsigned seq;
    inst_t *insts;
};

static void s_client_cb(AvahiClient *c, AvahiClientState state, void *ud);
static void s_arm_reresolve(tm_disc_t *self);
static void s_resolve_entry(tm_disc_t *self, AvahiClient *c, inst_t *inst, entry_t *e);

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

/* ---- reporting ------------------------------------------------------------ */

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
    if (!tm_disc__wanted(self->node, inst, &want)) {
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
    /* memcpy, not assignment: padding must match too for the memcmp above
     * (tm_disc__wanted zeroes the whole struct first). */
    memcpy(&inst->last, &want, sizeof want);
    inst->up = 1;
    inst->stale = 0;
}

/* Reconciles inst at the end of the settle window (which starts at the first
 * change, so a flapping peer cannot postpone reporting forever). */
static void s_touch(tm_disc_t *self, inst_t *inst)
{
    struct timeval tv;
    int armed = 0;
    for (inst_t *i = self->insts; i; i = i->next)
        armed |= i->dirty;
    inst->dirty = 1;
    if (!armed)
        self->api->timeout_update(self->settle, avahi_elapse_time(&tv, SETTLE_MS, 0));
}

static void s_settle_cb(AvahiTimeout *t, void *ud)
{
    tm_disc_t *self = ud;
    self->api->timeout_update(t, NULL);
    inst_t *next;
    for (inst_t *i = self->insts; i; i = next) {
        next = i->next;
        if (!i->dirty)
            continue;
        i->dirty = 0;
        s_reconcile(self, i);
        tm_disc__inst_free_if_unused(&self->insts, i);
    }
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
                         const char *domain, const char *host, const AvahiAddress *a, uint16_t port,
                         AvahiStringList *txt, AvahiLookupResultFlags flags, void *ud)
{
    (void)type, (void)host, (void)flags;
    tm_disc_t *self = ud;
    inst_t *inst = tm_disc__inst_find(&self->insts, name, 0);
    entry_t *e = inst ? tm_disc__entry_find(inst, ifi, proto, domain, NULL) : NULL;
    if (!e || e->res != r)
        return; /* a late report for an entry already removed */
    if (event == AVAHI_RESOLVER_FAILURE) {
        tm_log_debug(&self->log, "mDNS: cannot resolve %s: %s", name,
                     avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));
        /* The resolver is finished; s_reresolve_cb starts another. */
        avahi_service_resolver_free(r);
        e->res = NULL;
        e->resolved = 0;
        s_touch(self, inst);
        s_arm_reresolve(self);
        return;
    }
    const char *why;
    txt_t t;
    int ok = tm_disc__parse_txt(txt, &t, &why) == 0;
    if (e->resolved && e->txt_ok && ok && strcmp(t.node, e->txt.node)) {
        /* Another till took over this instance name (name collision, where
         * Avahi may rename the till that had it first). A kept-open resolver
         * then reports the new TXT with the old till's host and address
         * (seen in the lab, for good); a fresh one reads the cache anew. */
        tm_log_debug(&self->log, "mDNS: %s changed hands; resolving it again", name);
        AvahiClient *c = avahi_service_resolver_get_client(r);
        avahi_service_resolver_free(r);
        e->resolved = 0;
        s_resolve_entry(self, c, inst, e);
        s_touch(self, inst);
        return;
    }
    e->resolved = 1;
    e->seq = ++self->seq;
    e->port = port;
    s_fill_addr(e, ifi, a);
    e->txt = t;
    e->txt_ok = ok;
    if (!e->txt_ok && !inst->warned) {
        inst->warned = 1;
        tm_log_debug(&self->log, "mDNS: ignoring %s at %s: %s", name, e->addr, why);
    }
    s_touch(self, inst);
}

static void s_arm_reresolve(tm_disc_t *self)
{
    struct timeval tv;
    self->api->timeout_update(self->reresolve, avahi_elapse_time(&tv, RERESOLVE_MS, 0));
}

/* Starts the resolver of e. It asks for the address family the entry was
 * seen on, so a peer seen on IPv4 and IPv6 yields both addresses, and it is
 * kept open: it reports every change. */
static void s_resolve_entry(tm_disc_t *self, AvahiClient *c, inst_t *inst, entry_t *e)
{
    e->res = avahi_service_resolver_new(c, e->ifindex, e->proto, inst->name, SERVICE_TYPE,
                                        e->domain, e->proto, 0, s_resolve_cb, self);
    if (!e->res) {
        tm_log_warn(&self->log, "mDNS: cannot resolve %s: %s", inst->name,
                    avahi_strerror(avahi_client_errno(c)));
        s_arm_reresolve(self);
    }
}

static void s_reresolve_cb(AvahiTimeout *t, void *ud)
{
    tm_disc_t *self = ud;
    self->api->timeout_update(t, NULL);
    if (!self->client || avahi_client_get_state(self->client) != AVAHI_CLIENT_S_RUNNING)
        return; /* a reconnect starts everything afresh */
    for (inst_t *i = self->insts; i; i = i->next)
        for (entry_t *e = i->entries; e; e = e->next)
            if (!e->res)
                s_resolve_entry(self, self->client, i, e);
}

static void s_browse_new(tm_disc_t *self, AvahiServiceBrowser *b, AvahiIfIndex ifi,
                         AvahiProtocol proto, const char *name, const char *type,
                         const char *domain)
{
    inst_t *inst = tm_disc__inst_find(&self->insts, name, 1);
    if (!inst || tm_disc__entry_find(inst, ifi, proto, domain, NULL))
        goto fail;
    entry_t *e = calloc(1, sizeof *e);
    if (!e)
        goto fail;
    e->ifindex = ifi;
    e->proto = proto;
    tm_strlcpy(e->domain, domain, sizeof e->domain);
    e->next = inst->entries;
    inst->entries = e;
    (void)type; /* always ours */
    s_resolve_entry(self, avahi_service_browser_get_client(b), inst, e);
    return;
fail:
    if (inst)
        tm_disc__inst_free_if_unused(&self->insts, inst);
}

static void s_browse_remove(tm_disc_t *self, AvahiIfIndex ifi, AvahiProtocol proto,
                            const char *name, const char *domain)
{
    entry_t **link = NULL;
    inst_t *inst = tm_disc__inst_find(&self->insts, name, 0);
    entry_t *e = inst ? tm_disc__entry_find(inst, ifi, proto, domain, &link) : NULL;
    if (!e)
        return;
    *link = e->next;
    if (e->res)
        avahi_service_resolver_free(e->res);
    free(e);
    s_touch(self, inst);
}

static void s_browse_cb(AvahiServiceBrowser *b, AvahiIfIndex ifi, AvahiProtocol proto,
                        AvahiBrowserEvent event, const char *name, const char *type,
                        const char *domain, AvahiLookupResultFlags flags, void *ud)
{
    (void)flags;
    tm_disc_t *self = ud;
    switch (event) {
    case AVAHI_BROWSER_NEW: s_browse_new(self, b, ifi, proto, name, type, domain); break;
    case AVAHI_BROWSER_REMOVE: s_browse_remove(self, ifi, proto, name, domain); break;
    case AVAHI_BROWSER_FAILURE:
        /* A disconnect also lands here; the client callback recovers. */
        tm_log_warn(&self->log, "mDNS: browsing failed: %s",
                    avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
        break;
    case AVAHI_BROWSER_ALL_FOR_NOW:
    case AVAHI_BROWSER_CACHE_EXHAUSTED: break;
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
        tm_disc__inst_free_if_unused(&self->insts, i);
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
    return avahi_entry_group_add_service(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0, self->svc_name,
                                         SERVICE_TYPE, NULL, NULL, self->port, store, node, name,
                                         proto, key, NULL);
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
        tm_log_info(&self->log, "mDNS: published '%s' %s port %u", self->svc_name, SERVICE_TYPE,
                    self->port);
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
    case AVAHI_ENTRY_GROUP_REGISTERING: break;
    }
}

/* ---- the client and its recovery ------------------------------------------ */

static void s_unavailable(tm_disc_t *self, const char *why)
{
    atomic_store(&self->connected, 0);
    if (self->avail != 0)
        tm_log_warn(&self->log,
                    "avahi-daemon not reachable: mDNS discovery paused; static peers still "
                    "work (%s)",
                    why);
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
        i->dirty = 0; /* nothing to reconcile until the new client reports */
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
    case AVAHI_CLIENT_S_RUNNING: s_running(self, c); break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
        /* The daemon is (re)choosing its host name; our records name the
         * host, so withdraw them and publish again once it is RUNNING. The
         * service name itself did not collide, so it stays. */
        if (self->group)
            avahi_entry_group_reset(self->group);
        break;
    case AVAHI_CLIENT_CONNECTING: s_unavailable(self, "waiting for it to start"); break;
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
    if (!*cfg->name || strlen(cfg->name) >= 64 || !*cfg->store_id || strlen(cfg->store_id) >= 64)
        return TM_EINVAL;
    if (strlen(cfg->node_id_hex) != 32 || !tm_disc__is_hex(cfg->node_id_hex, 32))
        return TM_EINVAL;
    if (strlen(cfg->key_fp) != TM_DISC_FP_HEX - 1 ||
        !tm_disc__is_hex(cfg->key_fp, TM_DISC_FP_HEX - 1))
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
    tm_disc__lower(self->node);
    tm_disc__lower(self->key);
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
    self->settle = self->api->timeout_new(self->api, NULL, s_settle_cb, self);
    self->reresolve = self->api->timeout_new(self->api, NULL, s_reresolve_cb, self);
    self->wwatch = self->api->watch_new(self->api, self->wfd, 0, s_wwatch_cb, self);
    if (!self->retry || !self->sweep || !self->settle || !self->reresolve || !self->wwatch)
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
        if (self->settle)
            self->api->timeout_free(self->settle);
        if (self->reresolve)
            self->api->timeout_free(self->reresolve);
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
