/* test_elect.c - forwarder election, as tables of scenarios. */
#include <criterion/criterion.h>
#include <string.h>

#include "tm_elect.h"

/* Node k has id {k, 0, ...}: a larger k is a larger id. */
static tm_elect_node_t node(uint8_t k, bool alive, bool up, uint32_t prio, bool complete,
                            bool claims, uint64_t epoch)
{
    tm_elect_node_t n = {.alive = alive,
                         .uplink_up = up,
                         .priority = prio,
                         .complete = complete,
                         .claims = claims,
                         .epoch = epoch};
    n.node_id[0] = k;
    return n;
}

static tm_elect_result_t run(const tm_elect_node_t *nodes, size_t n, tm_elect_result_t prev)
{
    tm_elect_result_t out;
    tm_elect(nodes, n, &prev, &out);
    return out;
}

static tm_elect_result_t chose(uint8_t k, uint64_t epoch)
{
    tm_elect_result_t r = {.have = true, .epoch = epoch};
    r.node_id[0] = k;
    return r;
}

#define assert_forwarder(r, k, e)                                                                  \
    do {                                                                                           \
        cr_assert((r).have, "no forwarder chosen");                                                \
        cr_assert_eq((r).node_id[0], (k), "forwarder %d, expected %d", (r).node_id[0], (k));       \
        cr_assert_eq((r).epoch, (e), "epoch %llu, expected %d", (unsigned long long)(r).epoch,     \
                     (e));                                                                         \
    } while (0)

Test(elect, first_choice_is_highest_priority_then_complete_then_id)
{
    tm_elect_node_t a[] = {node(1, 1, 1, 100, 1, 0, 0), node(2, 1, 1, 200, 0, 0, 0),
                           node(3, 1, 1, 100, 1, 0, 0)};
    assert_forwarder(run(a, 3, (tm_elect_result_t){0}), 2, 1);
    tm_elect_node_t b[] = {node(1, 1, 1, 100, 1, 0, 0), node(2, 1, 1, 100, 0, 0, 0),
                           node(3, 1, 1, 100, 0, 0, 0)};
    assert_forwarder(run(b, 3, (tm_elect_result_t){0}), 1, 1); /* complete beats id */
    tm_elect_node_t c[] = {node(1, 1, 1, 100, 1, 0, 0), node(7, 1, 1, 100, 1, 0, 0),
                           node(3, 1, 1, 100, 1, 0, 0)};
    assert_forwarder(run(c, 3, (tm_elect_result_t){0}), 7, 1); /* equal: highest id */
}

Test(elect, nobody_forwards_when_no_live_till_has_an_uplink)
{
    tm_elect_node_t a[] = {node(1, 1, 0, 100, 1, 0, 0), node(2, 0, 1, 100, 1, 0, 0)};
    tm_elect_result_t r = run(a, 2, chose(2, 4));
    cr_assert(!r.have);
    cr_assert_eq(r.epoch, 4, "the epoch is remembered for the next forwarder");
}

Test(elect, the_current_forwarder_is_kept_while_healthy_even_if_a_better_one_appears)
{
    /* 1 forwards (claims, epoch 3); 9 with higher priority arrives. */
    tm_elect_node_t a[] = {node(1, 1, 1, 100, 1, 1, 3), node(9, 1, 1, 500, 1, 0, 0)};
    assert_forwarder(run(a, 2, chose(1, 3)), 1, 3);
    /* ...and 9 itself, having heard 1's claim, agrees. */
    assert_forwarder(run(a, 2, (tm_elect_result_t){0}), 1, 3);
}

Test(elect, claimants_are_compared_without_completeness_so_all_agree)
{
    /* Healing partition: 1 and 2 both claim; views of completeness differ
     * between tills, the answer must not. */
    tm_elect_node_t v1[] = {node(1, 1, 1, 100, 1, 1, 4), node(2, 1, 1, 100, 0, 1, 4)};
    tm_elect_node_t v2[] = {node(1, 1, 1, 100, 0, 1, 4), node(2, 1, 1, 100, 1, 1, 4)};
    assert_forwarder(run(v1, 2, chose(1, 4)), 2, 4);
    assert_forwarder(run(v2, 2, chose(2, 4)), 2, 4);
}

Test(elect, a_chosen_forwarder_keeps_its_epoch_until_its_claim_arrives)
{
    tm_elect_node_t a[] = {node(1, 1, 1, 100, 1, 0, 0), node(2, 1, 1, 50, 1, 0, 0)};
    tm_elect_result_t r = run(a, 2, (tm_elect_result_t){0});
    assert_forwarder(r, 1, 1);
    assert_forwarder(run(a, 2, r), 1, 1);
}

Test(elect, forwarder_uplink_failure_moves_the_role_with_a_new_epoch)
{
    tm_elect_node_t a[] = {node(1, 1, 0, 100, 1, 1, 3), node(2, 1, 1, 100, 1, 0, 0),
                           node(3, 1, 1, 50, 1, 0, 0)};
    assert_forwarder(run(a, 3, chose(1, 3)), 2, 4);
}

Test(elect, forwarder_death_moves_the_role)
{
    tm_elect_node_t a[] = {node(1, 0, 1, 100, 1, 1, 3), node(2, 1, 1, 100, 1, 0, 0)};
    assert_forwarder(run(a, 2, chose(1, 3)), 2, 4);
}

Test(elect, flapping_uplink_of_a_better_till_does_not_take_the_role)
{
    /* 9 (priority 500) comes and goes; 1 keeps forwarding throughout. */
    tm_elect_result_t prev = chose(1, 2);
    for (int round = 0; round < 20; round++) {
        tm_elect_node_t a[] = {node(1, 1, 1, 100, 1, 1, 2), node(9, 1, round % 2, 500, 1, 0, 0)};
        prev = run(a, 2, prev);
        assert_forwarder(prev, 1, 2);
    }
}

Test(elect, partition_gives_each_side_a_forwarder_and_healing_keeps_one)
{
    /* Side A sees only 1 and 2; side B only 3 and 4. */
    tm_elect_node_t sa[] = {node(1, 1, 1, 100, 1, 1, 5), node(2, 1, 1, 100, 1, 0, 0),
                            node(3, 0, 1, 100, 1, 0, 0), node(4, 0, 1, 100, 1, 0, 0)};
    tm_elect_node_t sb[] = {node(1, 0, 1, 100, 1, 1, 5), node(2, 0, 1, 100, 1, 0, 0),
                            node(3, 1, 1, 100, 1, 0, 0), node(4, 1, 1, 100, 1, 0, 0)};
    tm_elect_result_t ra = run(sa, 4, chose(1, 5));
    tm_elect_result_t rb = run(sb, 4, chose(1, 5));
    assert_forwarder(ra, 1, 5);
    assert_forwarder(rb, 4, 6);
    /* Healed: both 1 and 4 claim. Everyone, whatever its previous view,
     * picks the same one, the older claim, and the other steps down; the
     * epoch 4 took is never handed out again. */
    tm_elect_node_t h[] = {node(1, 1, 1, 100, 1, 1, 5), node(2, 1, 1, 100, 1, 0, 0),
                           node(3, 1, 1, 100, 1, 0, 0), node(4, 1, 1, 100, 1, 1, 6)};
    tm_elect_result_t x = run(h, 4, ra), y = run(h, 4, rb);
    assert_forwarder(x, 1, 5);
    assert_forwarder(y, 1, 5);
    cr_assert_eq(y.epoch_seen, 6);
    tm_elect_node_t later[] = {node(1, 1, 0, 100, 1, 1, 5), node(2, 1, 1, 100, 1, 0, 0),
                               node(3, 1, 1, 100, 1, 0, 0), node(4, 1, 1, 100, 1, 0, 0)};
    assert_forwarder(run(later, 4, y), 4, 7);
}

Test(elect, equal_priorities_and_completeness_are_decided_by_node_id_everywhere)
{
    tm_elect_node_t a[] = {node(5, 1, 1, 100, 1, 0, 0), node(6, 1, 1, 100, 1, 0, 0)};
    tm_elect_node_t b[] = {node(6, 1, 1, 100, 1, 0, 0), node(5, 1, 1, 100, 1, 0, 0)};
    assert_forwarder(run(a, 2, (tm_elect_result_t){0}), 6, 1);
    assert_forwarder(run(b, 2, (tm_elect_result_t){0}), 6, 1);
}

Test(elect, rejoin_after_partition_with_only_one_uplink)
{
    /* 4 forwarded for side B; after healing only side A's 1 has an uplink. */
    tm_elect_node_t h[] = {node(1, 1, 1, 100, 1, 0, 0), node(4, 1, 0, 100, 1, 1, 6)};
    assert_forwarder(run(h, 2, chose(4, 6)), 1, 7);
}

Test(elect, a_claim_beyond_the_configured_priority_or_epoch_range_wins_nothing)
{
    /* The forged heartbeat of issue 13: uplink up, priority 0xFFFFFFFF,
     * epoch 2^40, claiming the role. */
    tm_elect_node_t a[] = {node(1, 1, 1, 100, 1, 1, 3), node(9, 1, 1, 0xFFFFFFFFu, 1, 1, 0)};
    a[1].epoch = UINT64_C(1) << 40;
    assert_forwarder(run(a, 2, chose(1, 3)), 1, 3);
    /* Priority alone, no claim: not a candidate either. */
    tm_elect_node_t b[] = {node(1, 1, 1, 100, 1, 0, 0),
                           node(9, 1, 1, TM_ELECT_PRIORITY_MAX + 1, 1, 0, 0)};
    assert_forwarder(run(b, 2, (tm_elect_result_t){0}), 1, 1);
    /* An epoch near the top cannot wrap the next one to 0. */
    tm_elect_node_t c[] = {node(1, 1, 1, 100, 1, 0, 0), node(9, 1, 0, 100, 1, 1, UINT64_MAX)};
    assert_forwarder(run(c, 2, (tm_elect_result_t){0}), 1, 1);
    /* The top of the range itself is a fair priority. */
    tm_elect_node_t d[] = {node(1, 1, 1, 100, 1, 0, 0),
                           node(9, 1, 1, TM_ELECT_PRIORITY_MAX, 1, 0, 0)};
    assert_forwarder(run(d, 2, (tm_elect_result_t){0}), 9, 1);
}

Test(elect, a_forwarder_passed_over_loses_the_role_to_the_next_with_a_new_epoch)
{
    tm_elect_node_t a[] = {node(9, 1, 1, 500, 1, 1, 3), node(2, 1, 1, 100, 1, 0, 0),
                           node(1, 1, 1, 100, 1, 0, 0)};
    a[0].passed_over = true;
    assert_forwarder(run(a, 3, chose(9, 3)), 2, 4);
    /* Once 2 claims, 9 (still claiming) does not get it back while passed over. */
    a[1].claims = true;
    a[1].epoch = 4;
    assert_forwarder(run(a, 3, chose(2, 4)), 2, 4);
    /* When the pass runs out, 9 is a claimant again and the claim rule
     * (priority) settles it: the same everywhere. */
    a[0].passed_over = false;
    assert_forwarder(run(a, 3, chose(2, 4)), 9, 3);
}

static int standby_of(const tm_elect_node_t *nodes, size_t n, tm_elect_result_t fwd)
{
    uint8_t id[TM_NODE_ID_LEN];
    return tm_elect_standby(nodes, n, &fwd, id) ? id[0] : -1;
}

Test(elect, the_standby_is_the_best_other_live_till_with_an_uplink)
{
    /* 2 forwards; 3 has the best priority of the rest; completeness does
     * not move the standby (it would move the fast probe with every sale). */
    tm_elect_node_t a[] = {node(1, 1, 1, 100, 1, 0, 0), node(2, 1, 1, 300, 1, 1, 4),
                           node(3, 1, 1, 200, 0, 0, 0), node(4, 1, 1, 100, 1, 0, 0)};
    cr_assert_eq(standby_of(a, 4, chose(2, 4)), 3);
    /* dead, uplink down, passed over or implausible: not the standby */
    a[2].alive = false;
    cr_assert_eq(standby_of(a, 4, chose(2, 4)), 4);
    a[2].alive = true;
    a[2].uplink_up = false;
    cr_assert_eq(standby_of(a, 4, chose(2, 4)), 4);
    a[2].uplink_up = true;
    a[2].passed_over = true;
    cr_assert_eq(standby_of(a, 4, chose(2, 4)), 4);
    a[2].passed_over = false;
    a[2].priority = TM_ELECT_PRIORITY_MAX + 1;
    cr_assert_eq(standby_of(a, 4, chose(2, 4)), 4);
}

Test(elect, without_another_uplink_the_best_live_till_stands_by_and_alone_none)
{
    tm_elect_node_t a[] = {node(1, 1, 0, 100, 1, 0, 0), node(2, 1, 1, 100, 1, 1, 4),
                           node(3, 1, 0, 200, 1, 0, 0), node(4, 0, 1, 900, 1, 0, 0)};
    cr_assert_eq(standby_of(a, 4, chose(2, 4)), 3); /* probes fast: sees the ERP back first */
    a[1].uplink_up = false; /* nobody forwards: the best live till probes fast */
    cr_assert_eq(standby_of(a, 4, (tm_elect_result_t){0}), 3);
    cr_assert_eq(standby_of(a + 1, 1, chose(2, 4)), -1);
}

Test(elect, every_till_names_the_same_standby_whatever_the_order)
{
    tm_elect_node_t a[] = {node(5, 1, 1, 100, 1, 0, 0), node(9, 1, 1, 100, 0, 1, 2),
                           node(7, 1, 1, 100, 1, 0, 0), node(6, 1, 1, 100, 0, 0, 0)};
    tm_elect_node_t b[] = {a[3], a[2], a[1], a[0]};
    cr_assert_eq(standby_of(a, 4, chose(9, 2)), 7);
    cr_assert_eq(standby_of(b, 4, chose(9, 2)), 7);
}

Test(elect, a_till_that_lost_the_forwarders_heartbeats_for_a_moment_does_not_take_the_role)
{
    /* 1 forwards (epoch 3). 9, with a better priority, missed 1's
     * heartbeats on a lossy LAN past the peer timeout and claimed (epoch 4).
     * Tills that still hear 1 keep it; so does 9 once it hears 1 again. The
     * old rule (best priority among claimants) moved the role to 9. */
    tm_elect_node_t a[] = {node(1, 1, 1, 100, 1, 1, 3), node(9, 1, 1, 500, 1, 1, 4),
                           node(5, 1, 1, 100, 1, 0, 0)};
    assert_forwarder(run(a, 3, chose(1, 3)), 1, 3);
    assert_forwarder(run(a, 3, chose(9, 4)), 1, 3);
    /* equal epochs (both sides chose at once): priority, then node id */
    a[0].epoch = 4;
    assert_forwarder(run(a, 3, chose(1, 4)), 9, 4);
}
