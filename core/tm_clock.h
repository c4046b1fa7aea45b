/*
 * tm_clock.h - store time: how far each peer's wall clock is from ours, and
 * how far ours is from the store's.
 *
 * Every Hello and Heartbeat carries the sender's wall clock and echoes the
 * monotonic send time of the last heartbeat it got from the recipient, with
 * how long it held it (proto: Timing). From one such echo the recipient has
 * the four NTP timestamps: it sent at T0 (its monotonic clock), the peer
 * held it `hold` ms, and it came back at T3; the round trip is
 * T3 - T0 - hold, and the peer's clock read `peer_wall` half a round trip
 * before we read `our_wall`:
 *
 *     offset = peer_wall + rtt / 2 - our_wall      (peer minus us)
 *
 * The error is at most rtt / 2 (asymmetric paths). As NTP's clock filter
 * does, of the last TM_CLOCK_SAMPLES samples the one with the smallest round
 * trip is believed: a queue on the LAN only ever lengthens a round trip.
 *
 * The store's clock is the median of every clock we can measure, ours
 * included (offset 0): one wrong clock among three or more cannot move it.
 * With two tills there is no majority; both report the half-difference and
 * each is told to check both clocks.
 *
 * Pure functions, no clock read here: callers pass every time in.
 */
#ifndef TM_CLOCK_H
#define TM_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM_CLOCK_SAMPLES 8
/* A sample whose echo is older than this is not used (a stale echo would
 * count the whole wait as round trip). */
#define TM_CLOCK_MAX_RTT_MS 10000

typedef struct {
    int64_t offset_ms[TM_CLOCK_SAMPLES];
    uint64_t rtt_ms[TM_CLOCK_SAMPLES];
    size_t n, next;
} tm_clock_filter_t;

/* One sample from a Timing message received at (now_mono_ms, now_wall_ms).
 * False if the echo is implausible (from the future, a hold longer than the
 * round trip, older than TM_CLOCK_MAX_RTT_MS) or the wall clocks are 0. */
bool tm_clock_sample(uint64_t peer_wall_ms, uint64_t echo_mono_ms, uint64_t hold_ms,
                     uint64_t now_mono_ms, uint64_t now_wall_ms, int64_t *offset_ms,
                     uint64_t *rtt_ms);

void tm_clock_filter_add(tm_clock_filter_t *f, int64_t offset_ms, uint64_t rtt_ms);
/* The sample with the smallest round trip among the last few; false if
 * there is none. */
bool tm_clock_filter_best(const tm_clock_filter_t *f, int64_t *offset_ms, uint64_t *rtt_ms);

/* Median of v[0..n) (n >= 1; the mean of the two middle values when n is
 * even, rounded toward zero). Sorts v. */
int64_t tm_clock_median(int64_t *v, size_t n);

#endif
