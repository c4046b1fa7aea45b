/*
 * tm_hlc.h - hybrid logical clock (Kulkarni et al.): 48 bits of wall-clock
 * milliseconds and a 16-bit counter in one uint64_t, so that stamps compare
 * as plain integers.
 *
 * It orders the edits of tills whose wall clocks disagree: a stamp is always
 * greater than every stamp this node made or received before, even when the
 * wall clock jumps backwards. The clock never reads the time itself; callers
 * pass the wall clock in (a seam for tests and the simulator).
 *
 * A remote stamp more than max_drift_ms ahead of our wall clock is refused
 * (TM_EDRIFT) instead of being adopted: one till with its clock set to next
 * year must not drag every other till's clock there with it.
 *
 * tm_hlc_t is a small value type owned by its user (the engine).
 */
#ifndef TM_HLC_H
#define TM_HLC_H

#include <stdint.h>

typedef struct {
    uint64_t last;         /* greatest stamp made or accepted so far */
    uint64_t max_drift_ms; /* bound on how far ahead a remote stamp may be */
} tm_hlc_t;

#define TM_HLC_MS(h)       ((h) >> 16)
#define TM_HLC_COUNTER(h)  ((h)&0xffffu)
#define TM_HLC_MAKE(ms, c) (((uint64_t)(ms) << 16) | ((uint64_t)(c)&0xffffu))
#define TM_HLC_MS_MAX      ((UINT64_C(1) << 48) - 1)

void tm_hlc_init(tm_hlc_t *c, uint64_t max_drift_ms);

/* A stamp for a local event at wall time wall_ms; strictly greater than any
 * earlier result or accepted remote stamp. */
uint64_t tm_hlc_now(tm_hlc_t *c, uint64_t wall_ms);

/* Takes a remote stamp into account. TM_EDRIFT (clock unchanged) if its
 * physical part is more than max_drift_ms ahead of wall_ms. */
int tm_hlc_recv(tm_hlc_t *c, uint64_t remote, uint64_t wall_ms);

#endif
