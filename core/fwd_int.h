/*
 * fwd_int.h - the forwarder core's internals shared by fwd.c,
 * fwd_catalogue.c and the unit test (tests/test_fwd.c).
 */
#ifndef TM_FWD_INT_H
#define TM_FWD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_fwd_core.h"
#include "tm_store.h"

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
 * random bits folded into [0, step / 2], so between half the step and the
 * step. */
uint64_t tm_fwd__backoff_ms(uint32_t failures, uint32_t min_ms, uint32_t max_ms, uint32_t random);

/* ---- catalogue down-sync (fwd_catalogue.c) ---------------------------- */

typedef struct {
    uint32_t interval_ms, page;
    uint64_t next_ms; /* monotonic: the next pull is due (0: at once) */
    uint32_t failures;
    bool busy;
    char since[TM_CURSOR_MAX]; /* the cursor of the pull in flight */
} tm_fwd__cat_t;

/* What a step and an answer need from the forwarder. */
typedef struct {
    tm_store_t *store;
    tm_engine_t *engine;
    tm_outbox_t *outbox;
    const tm_log_t *log;
    const char *till;
    tm_fwd_stats_t *st;
    uint32_t random;
    uint64_t now_ms, wall_ms;
} tm_fwd__cat_env_t;

void tm_fwd__cat_init(tm_fwd__cat_t *c, uint32_t interval_ms, uint32_t page);
/* Pull at the next step (we became the forwarder, the uplink came back). */
void tm_fwd__cat_due_now(tm_fwd__cat_t *c);
long tm_fwd__cat_timeout_ms(const tm_fwd__cat_t *c, uint64_t now_ms);
/* Fills req with GET /catalogue when due: 1 if it did (the request is then
 * in flight until tm_fwd__cat_done). */
int tm_fwd__cat_step(tm_fwd__cat_t *c, tm_fwd__cat_env_t *env, tm_fwd_req_t *req);
/* The answer of the request made by tm_fwd__cat_step. */
void tm_fwd__cat_done(tm_fwd__cat_t *c, tm_fwd__cat_env_t *env, const tm_fwd_result_t *r);

#endif
