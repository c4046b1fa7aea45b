/* sd_systemd.c - tm_sd.h over libsystemd's sd_notify(3). */
#include "tm_sd.h"

#include <systemd/sd-daemon.h>

#include "tm_common.h"

int tm_sd_notify(const char *state)
{
    /* 0: no NOTIFY_SOCKET, nobody to tell. */
    return sd_notify(0, state) >= 0 ? TM_OK : TM_EIO;
}

bool tm_sd_watchdog(uint64_t *usec)
{
    uint64_t u = 0;
    /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is us. */
    if (sd_watchdog_enabled(0, &u) <= 0 || u == 0)
        return false;
    *usec = u;
    return true;
}

bool tm_sd_available(void)
{
    return true;
}
