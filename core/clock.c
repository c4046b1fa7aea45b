/* clock.c - store time estimates (see tm_clock.h). */
#include "tm_clock.h"

#include <stdlib.h>

bool tm_clock_sample(uint64_t peer_wall_ms, uint64_t echo_mono_ms, uint64_t hold_ms,
                     uint64_t now_mono_ms, uint64_t now_wall_ms, int64_t *offset_ms,
                     uint64_t *rtt_ms)
{
    if (!peer_wall_ms || !now_wall_ms || !echo_mono_ms || echo_mono_ms > now_mono_ms)
        return false;
    uint64_t elapsed = now_mono_ms - echo_mono_ms;
    if (hold_ms > elapsed || elapsed > TM_CLOCK_MAX_RTT_MS)
        return false;
    /* Both walls are below 2^63 in any real clock; refuse anything else
     * rather than overflow the subtraction. */
    if (peer_wall_ms > INT64_MAX / 2 || now_wall_ms > INT64_MAX / 2)
        return false;
    uint64_t rtt = elapsed - hold_ms;
    *rtt_ms = rtt;
    *offset_ms = (int64_t)peer_wall_ms + (int64_t)(rtt / 2) - (int64_t)now_wall_ms;
    return true;
}

void tm_clock_filter_add(tm_clock_filter_t *f, int64_t offset_ms, uint64_t rtt_ms)
{
    f->offset_ms[f->next] = offset_ms;
    f->rtt_ms[f->next] = rtt_ms;
    f->next = (f->next + 1) % TM_CLOCK_SAMPLES;
    if (f->n < TM_CLOCK_SAMPLES)
        f->n++;
}

bool tm_clock_filter_best(const tm_clock_filter_t *f, int64_t *offset_ms, uint64_t *rtt_ms)
{
    if (!f->n)
        return false;
    size_t best = 0;
    for (size_t i = 1; i < f->n; i++)
        if (f->rtt_ms[i] < f->rtt_ms[best])
            best = i;
    *offset_ms = f->offset_ms[best];
    *rtt_ms = f->rtt_ms[best];
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t tm_clock_median(int64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_i64);
    if (n % 2)
        return v[n / 2];
    /* Halve each before adding: no overflow for any pair of offsets. */
    return v[n / 2 - 1] / 2 + v[n / 2] / 2;
}
