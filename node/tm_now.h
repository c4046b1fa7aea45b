/*
 * tm_now.h - the clocks of the shell (node/now.c): monotonic for deadlines,
 * wall for stamps and status. The daemon and its parts (backend, discover,
 * housekeep, notify) read time here, so none of them calls back into
 * daemon.c for it. The core never reads a clock: time is passed in.
 */
#ifndef TM_NOW_H
#define TM_NOW_H

#include <stdint.h>

/* CLOCK_MONOTONIC in ms. */
uint64_t tm_now_mono_ms(void);
/* CLOCK_REALTIME in ms since the epoch. */
uint64_t tm_now_wall_ms(void);

#endif
