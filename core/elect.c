/* elect.c - forwarder election (see tm_elect.h). */
#include "tm_elect.h"

#include <string.h>

/* >0 when a is a better forwarder than b. */
static int better(const tm_elect_node_t *a, const tm_elect_node_t *b, bool use_complete)
{
    if (a->priority != b->priority)
        return a->priority > b->priority ? 1 : -1;
    if (use_complete && a->complete != b->complete)
        return a->complete ? 1 : -1;
    return memcmp(a->node_id, b->node_id, TM_NODE_ID_LEN);
}

bool tm_elect_plausible(const tm_elect_node_t *n)
{
    return n->priority <= TM_ELECT_PRIORITY_MAX && n->epoch <= TM_ELECT_EPOCH_MAX;
}

/* Between claimants the oldest claim (lowest epoch) wins: a higher epoch
 * was taken by a till that lost sight of the forwarder (a lossy LAN that
 * delayed heartbeats past the peer timeout, or a partition), while the
 * others still heard it; letting the better priority win there handed the
 * role over on every such blip (bench_failover, 20 % LAN loss). Equal
 * epochs (two sides of a partition chose at once): (priority, node id). */
static int older_claim(const tm_elect_node_t *a, const tm_elect_node_t *b)
{
    if (a->epoch != b->epoch)
        return a->epoch < b->epoch ? 1 : -1;
    return better(a, b, false);
}

static const tm_elect_node_t *best(const tm_elect_node_t *nodes, size_t n, bool claimants)
{
    const tm_elect_node_t *b = NULL;
    for (size_t i = 0; i < n; i++) {
        const tm_elect_node_t *c = &nodes[i];
        if (!c->alive || !c->uplink_up || (claimants && !c->claims) || c->passed_over ||
            !tm_elect_plausible(c))
            continue;
        if (!b || (claimants ? older_claim(c, b) : better(c, b, true)) > 0)
            b = c;
    }
    return b;
}

void tm_elect(const tm_elect_node_t *nodes, size_t n, const tm_elect_result_t *prev,
              tm_elect_result_t *out)
{
    uint64_t max_epoch = prev->epoch > prev->epoch_seen ? prev->epoch : prev->epoch_seen;
    for (size_t i = 0; i < n; i++)
        if (nodes[i].epoch > max_epoch && tm_elect_plausible(&nodes[i]))
            max_epoch = nodes[i].epoch;
    memset(out, 0, sizeof *out);
    out->epoch = max_epoch;
    out->epoch_seen = max_epoch;
    const tm_elect_node_t *w = best(nodes, n, true);
    if (w && w->epoch) {
        out->have = true;
        memcpy(out->node_id, w->node_id, TM_NODE_ID_LEN);
        out->epoch = w->epoch;
        return;
    }
    if (!(w = best(nodes, n, false)))
        return; /* nobody can reach the ERP */
    out->have = true;
    memcpy(out->node_id, w->node_id, TM_NODE_ID_LEN);
    /* The same forwarder keeps its epoch (its claim may not have reached
     * us yet); a new one gets the next. */
    if (prev->have && memcmp(prev->node_id, w->node_id, TM_NODE_ID_LEN) == 0)
        out->epoch = prev->epoch;
    else
        out->epoch = max_epoch + 1;
    if (out->epoch > out->epoch_seen)
        out->epoch_seen = out->epoch;
}

/* The standby: the best live till other than the forwarder by (priority,
 * node id). `complete` is left out on purpose: it changes with every sale
 * in flight, and the standby probes fast, so a standby that moved with
 * every sale would move the ERP's probe load with it. */
static const tm_elect_node_t *next_best(const tm_elect_node_t *nodes, size_t n,
                                        const tm_elect_result_t *fwd, bool need_uplink)
{
    const tm_elect_node_t *b = NULL;
    for (size_t i = 0; i < n; i++) {
        const tm_elect_node_t *c = &nodes[i];
        if (!c->alive || (need_uplink && !c->uplink_up) || c->passed_over ||
            !tm_elect_plausible(c) ||
            (fwd->have && memcmp(c->node_id, fwd->node_id, TM_NODE_ID_LEN) == 0))
            continue;
        if (!b || better(c, b, false) > 0)
            b = c;
    }
    return b;
}

bool tm_elect_standby(const tm_elect_node_t *nodes, size_t n, const tm_elect_result_t *fwd,
                      uint8_t out[TM_NODE_ID_LEN])
{
    const tm_elect_node_t *s = next_best(nodes, n, fwd, true);
    if (!s)
        s = next_best(nodes, n, fwd, false);
    if (s)
        memcpy(out, s->node_id, TM_NODE_ID_LEN);
    return s != NULL;
}
