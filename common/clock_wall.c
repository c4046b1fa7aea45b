/* clock_wall.c - the wall clock for log lines (tm_log_t.now_ms) in the
 * shell; the core and the simulator never link it in their checked set. */
#include <time.h>

#include "tm_common.h"

uint64_t tm_log_wall_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
