/* hlc.c - hybrid logical clock. */
#include "tm_hlc.h"

#include "tm_common.h"

void tm_hlc_init(tm_hlc_t *c, uint64_t max_drift_ms)
{
    c->last = 0;
    c->max_drift_ms = max_drift_ms;
}

/* The next stamp after `floor` given wall time: the wall clock when it is
 * ahead, otherwise floor's millisecond with the counter bumped. When the
 * counter is exhausted we borrow the next millisecond; that can only happen
 * after 65536 events within one millisecond. */
static uint64_t next_after(uint64_t floor, uint64_t wall_ms)
{
    if (wall_ms > TM_HLC_MS_MAX)
        wall_ms = TM_HLC_MS_MAX;
    if (wall_ms > TM_HLC_MS(floor))
        return TM_HLC_MAKE(wall_ms, 0);
    return floor + 1;
}

uint64_t tm_hlc_now(tm_hlc_t *c, uint64_t wall_ms)
{
    c->last = next_after(c->last, wall_ms);
    return c->last;
}

int tm_hlc_recv(tm_hlc_t *c, uint64_t remote, uint64_t wall_ms)
{
    if (TM_HLC_MS(remote) > wall_ms + c->max_drift_ms)
        return TM_EDRIFT;
    if (remote > c->last)
        c->last = remote;
    c->last = next_after(c->last, wall_ms);
    return TM_OK;
}
