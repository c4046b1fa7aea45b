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

Test(hlc, a_stamp_within_the_adopt_window_is_adopted)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    tm_hlc_now(&c, 1000);
    uint64_t remote = TM_HLC_MAKE(1000 + 59000, 3); /* 59 s ahead: adopted */
    cr_assert(tm_hlc_recv(&c, remote, 1000));
    uint64_t s = tm_hlc_now(&c, 1001);
    cr_assert_gt(s, remote);
    /* Exactly at the window is adopted too. */
    cr_assert(tm_hlc_recv(&c, TM_HLC_MAKE(2000 + 60000, 0), 2000));
    cr_assert_eq(c.not_adopted, 0);
}

Test(hlc, a_far_future_stamp_is_not_adopted_and_never_refused)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t before = tm_hlc_now(&c, 1000);
    /* A peer a day, a decade, and the end of time ahead. */
    uint64_t far[] = {TM_HLC_MAKE(1000 + 86400000ULL, 0), TM_HLC_MAKE(1000 + 315360000000ULL, 7),
                      TM_HLC_MAKE(TM_HLC_MS_MAX, 0xffff)};
    for (size_t i = 0; i < 3; i++)
        cr_assert_not(tm_hlc_recv(&c, far[i], 1000));
    cr_assert_eq(c.last, before, "a far stamp must not move the clock");
    cr_assert_eq(c.not_adopted, 3);
    /* Our own stamps keep following our wall clock. */
    cr_assert_eq(TM_HLC_MS(tm_hlc_now(&c, 2000)), 2000);
}

Test(hlc, an_edit_after_a_far_future_edit_orders_after_it_without_taking_its_clock)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t wall = 1700000000000ULL;
    uint64_t theirs = TM_HLC_MAKE(wall + 86400000ULL, 12); /* a till a day ahead */
    uint64_t mine = tm_hlc_after(&c, theirs, wall);
    cr_assert_gt(mine, theirs);
    cr_assert_lt(TM_HLC_MS(c.last), wall + 1, "the clock itself stays on our wall");
    /* Next edit of the same record, with that edit as floor: still above. */
    uint64_t again = tm_hlc_after(&c, mine, wall + 1);
    cr_assert_gt(again, mine);
    /* An edit of another record follows our own clock. */
    cr_assert_eq(TM_HLC_MS(tm_hlc_now(&c, wall + 2)), wall + 2);
}

Test(hlc, an_edit_after_a_near_edit_adopts_it)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t wall = 5000000;
    uint64_t theirs = TM_HLC_MAKE(wall + 1000, 0);
    uint64_t mine = tm_hlc_after(&c, theirs, wall);
    cr_assert_gt(mine, theirs);
    cr_assert_eq(c.last, mine);
    /* A floor below our clock changes nothing. */
    uint64_t next = tm_hlc_after(&c, 5, wall);
    cr_assert_gt(next, mine);
}

Test(hlc, an_edit_made_on_a_till_behind_after_seeing_one_ahead_wins)
{
    /* Till A is 10 minutes ahead, till B correct. A edits; B sees it and
     * edits the same field: B's stamp is greater, so B's edit wins on every
     * till (the property the integration test checks end to end). */
    tm_hlc_t a, b;
    tm_hlc_init(&a, 60000);
    tm_hlc_init(&b, 60000);
    uint64_t wall = 1700000000000ULL;
    uint64_t ea = tm_hlc_now(&a, wall + 600000);
    tm_hlc_recv(&b, ea, wall); /* not adopted: 10 min > window */
    uint64_t eb = tm_hlc_after(&b, ea, wall + 5);
    cr_assert_gt(eb, ea);
    /* And the other way round: B behind by a day. */
    uint64_t ea2 = tm_hlc_now(&a, wall + 600000 + 10);
    uint64_t eb2 = tm_hlc_after(&b, ea2, wall - 86400000ULL);
    cr_assert_gt(eb2, ea2);
}

Test(hlc, the_counter_never_wraps_or_stalls_however_long_a_bad_clock_lasts)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    /* A wall clock stuck far in the future (beyond the clamp) for a million
     * stamps: every stamp is greater than the last, none wraps to 0. */
    uint64_t prev = tm_hlc_now(&c, UINT64_MAX / 2);
    cr_assert_eq(TM_HLC_MS(prev), TM_HLC_WALL_MAX);
    cr_assert_lt(prev, (uint64_t)INT64_MAX, "stamps sort as SQLite integers");
    for (int i = 0; i < 1000000; i++) {
        uint64_t s = tm_hlc_now(&c, UINT64_MAX / 2);
        cr_assert_gt(s, prev);
        prev = s;
    }
    /* A floor of UINT64_MAX (no clock makes it) saturates rather than wraps. */
    cr_assert_eq(tm_hlc_after(&c, UINT64_MAX, 1000), UINT64_MAX);
}

Test(hlc, a_step_back_of_an_hour_mid_run_keeps_stamps_increasing)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t wall = 1700000000000ULL;
    uint64_t prev = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t w = i < 500 ? wall + (uint64_t)i : wall - 3600000ULL + (uint64_t)i;
        uint64_t s = tm_hlc_now(&c, w);
        cr_assert_gt(s, prev);
        prev = s;
    }
    /* The clock resumes following the wall once it passes the old stamps. */
    cr_assert_eq(TM_HLC_MS(tm_hlc_now(&c, wall + 10000)), wall + 10000);
}

Test(hlc, a_stamp_from_the_past_still_advances_the_clock)
{
    tm_hlc_t c;
    tm_hlc_init(&c, 60000);
    uint64_t a = tm_hlc_now(&c, 9000);
    cr_assert(tm_hlc_recv(&c, TM_HLC_MAKE(10, 0), 9000));
    cr_assert_gt(tm_hlc_now(&c, 9000), a);
}
