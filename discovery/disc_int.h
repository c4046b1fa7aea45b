/*
 * disc_int.h - internals of the discovery module shared by avahi.c (the
 * Avahi actor) and peers.c (TXT parsing and the per-instance aggregation,
 * which need no Avahi connection). Not a public header.
 *
 * All of this is owned by the Avahi thread; see avahi.c.
 */
#ifndef TM_DISC_INT_H
#define TM_DISC_INT_H

#include <avahi-client/lookup.h>
#include <avahi-common/strlst.h>

#include "tm_disc.h"

/* The TXT keys we require of a peer, parsed. */
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
    int up;     /* an UP was reported and no DOWN since */
    int stale;  /* survived a reconnect; re-report UP when seen again */
    int warned; /* bad TXT already logged */
    int dirty;  /* changed since the last reconcile */
    tm_disc_event_t last;
} inst_t;

/* Lower-case in place; only A-F matter (hex ids). */
void tm_disc__lower(char *s);
/* 1 when the n bytes at s are all hex digits. */
int tm_disc__is_hex(const char *s, size_t n);
/* 0 and *t filled when every required key is present and well formed;
 * otherwise -1 and *why names the first problem (for the debug log). */
int tm_disc__parse_txt(AvahiStringList *l, txt_t *t, const char **why);

/* The instance called name in *list; created if create (NULL on ENOMEM). */
inst_t *tm_disc__inst_find(inst_t **list, const char *name, int create);
/* Unlinks and frees inst once nothing refers to it any more. */
void tm_disc__inst_free_if_unused(inst_t **list, inst_t *inst);
/* The entry of inst seen on (ifi, proto, domain); *link (if given) is the
 * pointer that points to it, for unlinking. */
entry_t *tm_disc__entry_find(inst_t *inst, AvahiIfIndex ifi, AvahiProtocol proto,
                             const char *domain, entry_t ***link);
/* 1 and *ev filled when inst should be reported UP: some entry resolved with
 * valid TXT and it is not our own node. Endpoint: IPv4 first, then routable
 * IPv6, then link-local IPv6 with its %ifname scope. */
int tm_disc__wanted(const char *own_node, const inst_t *inst, tm_disc_event_t *ev);

#endif
