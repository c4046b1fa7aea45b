/* test_clock.c - store time: offset samples, the clock filter, the median. */
#include <criterion/criterion.h>

#include "tm_clock.h"

Test(clock, offset_of_a_peer_behind_us_from_one_echo)
{
    /* We sent at mono 1000; the peer held our heartbeat 30 ms and sent its
     * own when its wall read W - 600 s; it reached us at mono 1050, wall W.
     * Round trip 20 ms, so the peer read its clock 10 ms before we did. */
    uint64_t W = 1700000000000ULL;
    int64_t off;
    uint64_t rtt;
    cr_assert(tm_clock_sample(W - 600000 - 10, 1000, 30, 1050, W, &off, &rtt));
    cr_assert_eq(rtt, 20);
    cr_assert_eq(off, -600000);
}

Test(clock, offset_of_a_peer_decades_ahead)
{
    uint64_t W = 946684800000ULL; /* we think it is 2000-01-01 */
    uint64_t peer = 1795000000000ULL;
    int64_t off;
    uint64_t rtt;
    cr_assert(tm_clock_sample(peer, 5000, 0, 5004, W, &off, &rtt));
    cr_assert_eq(off, (int64_t)(peer - W) + 2);
}

Test(clock, implausible_echoes_give_no_sample)
{
    int64_t off;
    uint64_t rtt;
    uint64_t W = 1700000000000ULL;
    cr_assert_not(tm_clock_sample(W, 2000, 0, 1000, W, &off, &rtt), "echo from our future");
    cr_assert_not(tm_clock_sample(W, 1000, 60, 1050, W, &off, &rtt), "held longer than the trip");
    cr_assert_not(tm_clock_sample(W, 1000, 0, 1000 + TM_CLOCK_MAX_RTT_MS + 1, W, &off, &rtt),
                  "stale echo");
    cr_assert_not(tm_clock_sample(0, 1000, 0, 1001, W, &off, &rtt), "no wall clock");
    cr_assert_not(tm_clock_sample(UINT64_MAX, 1000, 0, 1001, W, &off, &rtt), "absurd wall");
    cr_assert_not(tm_clock_sample(W, 0, 0, 1001, W, &off, &rtt), "no echo");
}

Test(clock, the_filter_believes_the_shortest_round_trip)
{
    tm_clock_filter_t f = {0};
    int64_t off;
    uint64_t rtt;
    cr_assert_not(tm_clock_filter_best(&f, &off, &rtt));
    tm_clock_filter_add(&f, 900, 400); /* queued: the offset is off by up to 200 */
    tm_clock_filter_add(&f, 1000, 2);
    tm_clock_filter_add(&f, 1150, 300);
    cr_assert(tm_clock_filter_best(&f, &off, &rtt));
    cr_assert_eq(off, 1000);
    cr_assert_eq(rtt, 2);
    /* After TM_CLOCK_SAMPLES newer samples the old best is forgotten: a
     * clock that stepped is followed within a few heartbeats. */
    for (int i = 0; i < TM_CLOCK_SAMPLES; i++)
        tm_clock_filter_add(&f, -3600000, 5);
    cr_assert(tm_clock_filter_best(&f, &off, &rtt));
    cr_assert_eq(off, -3600000);
}

Test(clock, one_wrong_clock_among_three_does_not_move_the_median)
{
    int64_t v[] = {0, 3, -600000};
    cr_assert_eq(tm_clock_median(v, 3), 0);
    int64_t w[] = {0, 86400000, -1, 2, 5};
    cr_assert_eq(tm_clock_median(w, 5), 2);
}

Test(clock, two_clocks_meet_halfway)
{
    int64_t v[] = {0, -600000};
    cr_assert_eq(tm_clock_median(v, 2), -300000);
    int64_t x[] = {INT64_MAX, INT64_MAX - 2};
    cr_assert_eq(tm_clock_median(x, 2), INT64_MAX / 2 + (INT64_MAX - 2) / 2, "no overflow");
    int64_t one[] = {42};
    cr_assert_eq(tm_clock_median(one, 1), 42);
}
