/* peers.c - what the browse entries of one service instance add up to:
 * TXT validation and the UP event (endpoint and address list) a peer's
 * entries describe. Pure data, no Avahi calls, so the rules sit in one place.
 */
#include "disc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tm_disc__is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

void tm_disc__lower(char *s)
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
int tm_disc__parse_txt(AvahiStringList *l, txt_t *t, const char **why)
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
            if (vl != 32 || !tm_disc__is_hex(v, vl) || s_take(t->node, sizeof t->node, v, vl) < 0)
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
            if (vl != TM_DISC_FP_HEX - 1 || !tm_disc__is_hex(v, vl) ||
                s_take(t->key, sizeof t->key, v, vl) < 0)
                *why = "key= is not a 16-hex-digit fingerprint";
            have |= 16;
        }
    }
    if (!*why && have != 31)
        *why = "missing one of store=, node=, name=, proto=, key=";
    tm_disc__lower(t->node);
    tm_disc__lower(t->key);
    return *why ? -1 : 0;
}

/* ---- instances and their aggregate state --------------------------------- */

inst_t *tm_disc__inst_find(inst_t **list, const char *name, int create)
{
    for (inst_t *i = *list; i; i = i->next)
        if (!strcmp(i->name, name))
            return i;
    if (!create)
        return NULL;
    inst_t *i = calloc(1, sizeof *i);
    if (!i)
        return NULL;
    tm_strlcpy(i->name, name, sizeof i->name);
    i->next = *list;
    *list = i;
    return i;
}

void tm_disc__inst_free_if_unused(inst_t **list, inst_t *inst)
{
    if (inst->entries || inst->up || inst->dirty)
        return;
    for (inst_t **pp = list; *pp; pp = &(*pp)->next) {
        if (*pp == inst) {
            *pp = inst->next;
            free(inst);
            return;
        }
    }
}

entry_t *tm_disc__entry_find(inst_t *inst, AvahiIfIndex ifi, AvahiProtocol proto,
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
int tm_disc__wanted(const char *own_node, const inst_t *inst, tm_disc_event_t *ev)
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
    if (!txt || !strcmp(txt->txt.node, own_node))
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
