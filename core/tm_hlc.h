/*
 * tm_hlc.h - hybrid logical clock (Kulkarni et al.): 48 bits of wall-clock
 * milliseconds and a 16-bit counter in one uint64_t, so that stamps compare
 * as plain integers.
 *
 * It orders the edits of tills whose wall clocks disagree: a stamp is always
 * greater than every stamp this node made or adopted before, even when the
 * wall clock jumps backwards. The clock never reads the time itself; callers
 * pass the wall clock in (a seam for tests and the simulator).
 *
 * Clocks never gate replication: nothing here refuses a stamp. What a far
 * ahead peer can do to us is bounded instead:
 *  - A remote stamp at most adopt_ms ahead of our wall clock is adopted
 *    (classic HLC: our next stamps order after it). One further ahead is
 *    not adopted - counted in not_adopted - so that one till with its clock
 *    set to next year does not drag every till's clock (and the stamps they
 *    persist) a year ahead for good.
 *  - Causality where it matters - an edit made after seeing another edit of
 *    the same record must win over it - does not rely on adoption: the
 *    caller passes the greatest stamp of what the edit overwrites as a floor
 *    to tm_hlc_after(), which stamps above it whatever the clocks say.
 *  - The counter never wraps: 65,536 stamps within one millisecond borrow
 *    the next millisecond. The wall clock is clamped below year 6429
 *    (TM_HLC_WALL_MAX, so that stamps stay below 2^63 and sort the same as
 *    SQLite's signed integers), leaving 2^20 ms of headroom: 6.9e10 stamps
 *    before a clock stuck at the clamp could stop increasing. Only a stamp
 *    of UINT64_MAX (which no clock makes) saturates.
 *
 * tm_hlc_t is a small value type owned by its user (the engine).
 */
#ifndef TM_HLC_H
#define TM_HLC_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t last;        /* greatest stamp made or adopted so far */
    uint64_t adopt_ms;    /* how far ahead of our wall a remote stamp is adopted */
    uint64_t not_adopted; /* remote stamps too far ahead to adopt (for status) */
} tm_hlc_t;

#define TM_HLC_MS(h)       ((h) >> 16)
#define TM_HLC_COUNTER(h)  ((h)&0xffffu)
#define TM_HLC_MAKE(ms, c) (((uint64_t)(ms) << 16) | ((uint64_t)(c)&0xffffu))
#define TM_HLC_MS_MAX      ((UINT64_C(1) << 48) - 1)
/* Wall clocks beyond this are clamped (see above): about year 6429. */
#define TM_HLC_WALL_MAX ((UINT64_C(1) << 47) - (UINT64_C(1) << 20))

void tm_hlc_init(tm_hlc_t *c, uint64_t adopt_ms);

/* A stamp for a local event at wall time wall_ms; strictly greater than any
 * earlier result of tm_hlc_now and than any adopted stamp. */
uint64_t tm_hlc_now(tm_hlc_t *c, uint64_t wall_ms);

/* A stamp for a local edit that overwrites something stamped `floor`:
 * greater than floor and than tm_hlc_now would give. A floor within
 * adopt_ms of our wall clock is adopted; a further one is jumped over for
 * this stamp only, without moving the clock. */
uint64_t tm_hlc_after(tm_hlc_t *c, uint64_t floor, uint64_t wall_ms);

/* Takes a remote stamp into account. Returns false (and counts it) when it
 * is too far ahead to adopt; the op carrying it is applied all the same. */
bool tm_hlc_recv(tm_hlc_t *c, uint64_t remote, uint64_t wall_ms);

#endif
