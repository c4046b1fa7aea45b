/* sd_none.c - tm_sd.h for a build without libsystemd: nothing to tell. */
#include "tm_sd.h"

#include "tm_common.h"

int tm_sd_notify(const char *state)
{
    (void)state;
    return TM_OK;
}

bool tm_sd_watchdog(uint64_t *usec)
{
    (void)usec;
    return false;
}

bool tm_sd_available(void)
{
    return false;
}
