/* hlc.c - hybrid logical clock (see tm_hlc.h for what a far-ahead peer can
 * and cannot do to it). */
#include "tm_hlc.h"
#include "tm_plant.h"

void tm_hlc_init(tm_hlc_t *c, uint64_t adopt_ms)
{
    c->last = 0;
    c->adopt_ms = adopt_ms;
    c->not_adopted = 0;
}

static uint64_t clamp_wall(uint64_t wall_ms)
{
    return wall_ms > TM_HLC_WALL_MAX ? TM_HLC_WALL_MAX : wall_ms;
}

/* The next stamp after `floor` given wall time: the wall clock when it is
 * ahead, otherwise floor + 1, which bumps the counter and, after 65,536
 * stamps in one millisecond, carries into the next millisecond. */
static uint64_t next_after(uint64_t floor, uint64_t wall_ms)
{
    wall_ms = clamp_wall(wall_ms);
    if (wall_ms > TM_HLC_MS(floor))
        return TM_HLC_MAKE(wall_ms, 0);
    if (TM_PLANTED("hlc-wrap")) /* the counter wraps within its millisecond */
        return TM_HLC_MAKE(TM_HLC_MS(floor), TM_HLC_COUNTER(floor) + 1);
    return floor == UINT64_MAX ? floor : floor + 1;
}

/* A stamp no more than adopt_ms ahead of our (clamped) wall clock. */
static bool adoptable(const tm_hlc_t *c, uint64_t stamp, uint64_t wall_ms)
{
    return TM_HLC_MS(stamp) <= clamp_wall(wall_ms) + c->adopt_ms;
}

uint64_t tm_hlc_now(tm_hlc_t *c, uint64_t wall_ms)
{
    c->last = next_after(c->last, wall_ms);
    return c->last;
}

uint64_t tm_hlc_after(tm_hlc_t *c, uint64_t floor, uint64_t wall_ms)
{
    if (floor <= c->last || adoptable(c, floor, wall_ms)) {
        if (floor > c->last)
            c->last = floor;
        return tm_hlc_now(c, wall_ms);
    }
    /* The record was last written by a till far ahead: order after it
     * without taking its clock. */
    uint64_t s = next_after(floor, wall_ms);
    uint64_t mine = next_after(c->last, wall_ms);
    return s > mine ? s : mine;
}

bool tm_hlc_recv(tm_hlc_t *c, uint64_t remote, uint64_t wall_ms)
{
    if (remote <= c->last)
        return true;
    if (!adoptable(c, remote, wall_ms)) {
        c->not_adopted++;
        return false;
    }
    c->last = remote;
    return true;
}
