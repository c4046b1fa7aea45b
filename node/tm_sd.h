/*
 * tm_sd.h - the service manager's notification socket (sd_notify(3)).
 *
 * Two builds behind one header, chosen at CMake time: sd_systemd.c over
 * libsystemd, and sd_none.c where libsystemd is missing (every call a
 * no-op: a till started by hand or by another init never needs it).
 * Stateless: libsystemd reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
 * from the environment on every call.
 */
#ifndef TM_SD_H
#define TM_SD_H

#include <stdbool.h>
#include <stdint.h>

/* Sends state ("READY=1", "STATUS=...", lines joined by '\n'). TM_OK when
 * it was sent or there is no manager listening (no NOTIFY_SOCKET); TM_EIO
 * when the socket refused it. */
int tm_sd_notify(const char *state);

/* True when the manager expects WATCHDOG=1 at least every *usec. */
bool tm_sd_watchdog(uint64_t *usec);

/* True when this build can talk to systemd at all (for the log). */
bool tm_sd_available(void);

#endif
