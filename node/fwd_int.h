/*
 * fwd_int.h - the forwarder's pure parts (no store, no ERP, no clock), for
 * forward.c and its unit test (tests/test_fwd.c).
 */
#ifndef TM_FWD_INT_H
#define TM_FWD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_fwd.h"

/* What a 2xx answer says of each sale of the batch. */
enum { TM_FWD__NONE, TM_FWD__ACKED, TM_FWD__REJECTED };

typedef struct {
    uint8_t *what;     /* per batch index: TM_FWD__... */
    int *status;       /* rejected: the ERP's class of refusal (4xx) */
    char (*msg)[160];  /* rejected: its reason */
    char problem[200]; /* why the answer breaks the contract, "" if it does not */
    bool untrusted;    /* names ids outside the batch, or is malformed: use none of it */
} tm_fwd__answer_t;

/* Checks a 2xx answer against the contract and the batch ids[0..n). The
 * arrays of a must hold n zeroed entries. A problem with untrusted false
 * means only that some ids were not mentioned: the rest may be used. */
void tm_fwd__read_answer(char (*ids)[TM_UUID_LEN], size_t n, long status, const char *body,
                         size_t len, tm_fwd__answer_t *a);

/* The wait after the failures-th consecutive failure (failures >= 1): the
 * step doubles from min_ms up to max_ms; the wait is half the step plus
 * jitter(ctx, step / 2), so between half the step and the step. */
uint64_t tm_fwd__backoff_ms(uint32_t failures, uint32_t min_ms, uint32_t max_ms,
                            tm_fwd_jitter_fn jitter, void *ctx);

#endif
