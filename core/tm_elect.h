/*
 * tm_elect.h - who forwards to the ERP: a pure function of what this till
 * has heard, so that every till computes the same answer from the same
 * heartbeats.
 *
 * Candidates are the live tills whose uplink is up. Then:
 *  1. if some candidates claim to be the forwarder (they advertise it in
 *     their heartbeats), the oldest claim (lowest epoch; then priority,
 *     node id) wins: the current forwarder keeps the role while it stays
 *     healthy (sticky, no flapping, even when a better till appears, and
 *     when a till that lost its heartbeats for a moment claimed it), and
 *     after a partition heals, one of the two forwarders steps down;
 *  2. otherwise the best candidate by (priority, complete, node id) wins;
 *     that till sees itself chosen and starts to claim.
 * Every input is what the tills advertise about themselves (`complete`: the
 * till's own view that it lacks no op its peers hold), so tills that heard
 * the same heartbeats agree; a disagreement lasts at most until the next
 * heartbeats, and claims settle it. Claimants are compared without
 * `complete`, which changes with every sale in flight, so that they never
 * disagree about which one steps down.
 * A till whose own uplink fails is no longer a candidate and so stops
 * forwarding at once. Hysteresis against a flapping uplink lives in the
 * probe (rise/fall counts), before this.
 *
 * What a till advertises is bounded before it counts: a priority above
 * TM_ELECT_PRIORITY_MAX (the configured range) or an epoch above
 * TM_ELECT_EPOCH_MAX makes it no candidate (a heartbeat claiming priority
 * 0xFFFFFFFF and epoch 2^40 used to win for good). A till the caller has
 * passed over (`passed_over`: it was forwarder and the backlog did not
 * shrink within the deadline, see tm_engine) is no candidate either, so a
 * stuck forwarder with an "up" uplink loses the role.
 *
 * Each new forwarder gets an epoch one above every epoch seen; a claimant
 * keeps the epoch it advertises. The epoch goes with every ERP batch and is
 * shown in status. Two forwarders for a moment (a partition) are safe: the
 * ERP deduplicates by sale_id and idempotency key (promise P3).
 */
#ifndef TM_ELECT_H
#define TM_ELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_common.h"

/* The configured priority range is 0..TM_ELECT_PRIORITY_MAX. */
#define TM_ELECT_PRIORITY_MAX 1000000u
/* An epoch rises by one per forwarder change: 2^32 is a change a second
 * for 136 years. Anything above is a forgery (and would overflow). */
#define TM_ELECT_EPOCH_MAX (UINT64_C(1) << 32)

typedef struct {
    uint8_t node_id[TM_NODE_ID_LEN];
    bool alive;     /* heard within the peer timeout (ourselves: always) */
    bool uplink_up; /* after the probe's rise/fall hysteresis */
    uint32_t priority;
    bool complete;    /* lacks no op we know of */
    bool claims;      /* advertises itself as the forwarder */
    uint64_t epoch;   /* the forwarder epoch it advertises (0: none) */
    bool passed_over; /* stuck as forwarder: not a candidate for now */
} tm_elect_node_t;

/* Whether what n advertises is within bounds (it may then be a candidate). */
bool tm_elect_plausible(const tm_elect_node_t *n);

typedef struct {
    bool have;
    uint8_t node_id[TM_NODE_ID_LEN];
    uint64_t epoch;
    /* The highest epoch ever seen: a claim that lost to an older one is not
     * advertised any more, and its epoch must not be handed out again. */
    uint64_t epoch_seen;
} tm_elect_result_t;

/* Computes the forwarder from nodes[0..n) (ourselves included) and the
 * previous result (zeroed at start). */
void tm_elect(const tm_elect_node_t *nodes, size_t n, const tm_elect_result_t *prev,
              tm_elect_result_t *out);

/* The standby (docs/erp.md, "Probe schedule"): the till next in line, the
 * best live candidate other than the forwarder by (priority, node id); if
 * no other till has a working uplink, the best live one all the same (it
 * probes fast, so it notices first when the ERP is back). Only the
 * forwarder and the standby probe the ERP fast: the ERP's probe load is
 * O(1) per store. Every till computes the same standby from the same
 * heartbeats. With no forwarder, fwd->have is false and the standby is
 * simply the best live till. False if there is no other live till. */
bool tm_elect_standby(const tm_elect_node_t *nodes, size_t n, const tm_elect_result_t *fwd,
                      uint8_t out[TM_NODE_ID_LEN]);

#endif
