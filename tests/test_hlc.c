/* test_hlc.c - hybrid logical clock under skewed and backward clocks. */
#include <criterion/criterion.h>

#include "tm_common.h"
#include "tm_hlc.h"

Test(hlc, follows_the_wall_clock_when_it_moves_forward)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t a = tm_hlc_now(&c, 1000);
    uint64_t b = tm_hlc_now(&c, 2000);
    cr_assert_eq(TM_HLC_MS(a), 1000);
    cr_assert_eq(TM_HLC_COUNTER(a), 0);
    cr_assert_eq(TM_HLC_MS(b), 2000);
    cr_assert_eq(TM_HLC_COUNTER(b), 0);
}

Test(hlc, stays_monotonic_when_the_wall_clock_jumps_backwards)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t prev = tm_hlc_now(&c, 5000000);
    /* The wall clock is set back an hour, then creeps forward. */
    for (uint64_t wall = 5000000 - 3600000; wall < 5000000 - 3600000 + 500; wall++) {
        uint64_t s = tm_hlc_now(&c, wall);
        cr_assert_gt(s, prev, "stamp went backwards at wall=%llu", (unsigned long long)wall);
        cr_assert_eq(TM_HLC_MS(s), 5000000, "physical part must hold at the old maximum");
        prev = s;
    }
}

Test(hlc, same_millisecond_bumps_the_counter)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t a = tm_hlc_now(&c, 7);
    uint64_t b = tm_hlc_now(&c, 7);
    uint64_t d = tm_hlc_now(&c, 7);
    cr_assert_eq(TM_HLC_COUNTER(a), 0);
    cr_assert_eq(TM_HLC_COUNTER(b), 1);
    cr_assert_eq(TM_HLC_COUNTER(d), 2);
}

Test(hlc, counter_overflow_borrows_the_next_millisecond)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t prev = tm_hlc_now(&c, 10);
    for (int i = 0; i < 70000; i++) {
        uint64_t s = tm_hlc_now(&c, 10);
        cr_assert_gt(s, prev);
        prev = s;
    }
    cr_assert_eq(TM_HLC_MS(prev), 11);
}

Test(hlc, receiving_a_stamp_from_a_till_slightly_ahead_moves_us_past_it)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    tm_hlc_now(&c, 1000);
    uint64_t remote = TM_HLC_MAKE(1000 + 59000, 3); /* 59 s ahead: inside bound */
    cr_assert_eq(tm_hlc_recv(&c, remote, 1000), TM_OK);
    uint64_t s = tm_hlc_now(&c, 1001);
    cr_assert_gt(s, remote);
}

Test(hlc, refuses_a_stamp_beyond_the_drift_bound_and_stays_put)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t before = tm_hlc_now(&c, 1000);
    uint64_t remote = TM_HLC_MAKE(1000 + 60001, 0);
    cr_assert_eq(tm_hlc_recv(&c, remote, 1000), TM_EDRIFT);
    cr_assert_eq(c.last, before, "a refused stamp must not move the clock");
    cr_assert_str_eq(tm_errname(TM_EDRIFT), "TM_EDRIFT");
    /* Exactly at the bound is accepted. */
    cr_assert_eq(tm_hlc_recv(&c, TM_HLC_MAKE(1000 + 60000, 0), 1000), TM_OK);
}

Test(hlc, a_stamp_from_the_past_still_advances_the_clock)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t a = tm_hlc_now(&c, 9000);
    cr_assert_eq(tm_hlc_recv(&c, TM_HLC_MAKE(10, 0), 9000), TM_OK);
    cr_assert_gt(c.last, a);
}
