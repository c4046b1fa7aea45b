/* tm_backlog - bench helper: times tm_store_backlog on an existing store
 * (fill it first with tm_fill). The forwarder watch calls it on every till
 * at each heartbeat and /metrics and GET /v1/status on each request, so its
 * cost with a big backlog is a cost paid all the time. Prints the mean time
 * per call, kept answers (nothing written between calls: the ERP out of
 * reach) and fresh ones (a row written before each call, not timed: a
 * parked entry for an id no sale has, which changes no figure), and the
 * figures it returned. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tm_store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: tm_backlog STORE.db [CALLS]\n");
        return 2;
    }
    long calls = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
    if (calls <= 0) {
        fprintf(stderr, "tm_backlog: CALLS must be > 0\n");
        return 2;
    }
    tm_store_t *st;
    int rc = tm_store_open(argv[1], NULL, &st);
    if (rc) {
        fprintf(stderr, "tm_backlog: %s: %s\n", argv[1], tm_strerror(rc));
        return 1;
    }
    tm_backlog_t bl = {0};
    /* The first call warms the page cache, as a running till's is. */
    if ((rc = tm_store_backlog(st, &bl))) {
        fprintf(stderr, "tm_backlog: %s\n", tm_strerror(rc));
        return 1;
    }
    double t0 = now_s();
    for (long i = 0; i < calls && rc == TM_OK; i++)
        rc = tm_store_backlog(st, &bl);
    double kept = now_s() - t0, fresh = 0;
    for (long i = 0; i < calls && rc == TM_OK; i++) {
        if ((rc = tm_store_park(st, "tm-backlog-bench", 0, "bench", (uint64_t)i)))
            break;
        t0 = now_s();
        rc = tm_store_backlog(st, &bl);
        fresh += now_s() - t0;
    }
    if (rc == TM_OK)
        rc = tm_store_unpark(st, "tm-backlog-bench");
    if (rc) {
        fprintf(stderr, "tm_backlog: %s\n", tm_strerror(rc));
        return 1;
    }
    printf("backlog_ms_per_call kept=%.4f fresh=%.4f calls=%ld unsent=%llu parked=%llu "
           "oldest_hlc=%llu\n",
           kept / (double)calls * 1e3, fresh / (double)calls * 1e3, calls,
           (unsigned long long)bl.unsent, (unsigned long long)bl.parked,
           (unsigned long long)bl.oldest_hlc);
    tm_store_destroy(&st);
    return 0;
}
