/* tm_fill - bench helper: fills a store with N sale ops from one synthetic
 * origin, in batches of B ops per transaction, through tm_store_apply (the
 * same path a catch-up takes). Prints the rate it achieved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tm_store.h"
#include "tm_wire.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int make_body(uint64_t k, uint8_t **body, size_t *len)
{
    tm_sale_line_t lines[2] = {
        {.sku = "7801234", .name = "Pan amasado", .qty = 2000, .unit_price = 990, .tax_rate = 1900},
        {.sku = "7805678", .name = "Queso", .qty = 250, .unit_price = 12000, .discount = 100}};
    tm_payment_t pay = {.method = TM_PAY_CARD, .amount = 4880, .reference = "AUTH"};
    tm_sale_t s = {.till = "bench",
                   .receipt_no = k + 1,
                   .created_at = "2026-11-23T12:00:00Z",
                   .currency = "CLP",
                   .lines = lines,
                   .n_lines = 2,
                   .total = 4880,
                   .payments = &pay,
                   .n_payments = 1};
    tm_uuid_new(s.sale_id);
    return tm_wire_sale_encode(&s, body, len);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tm_fill STORE.db N [BATCH]\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10);
    size_t batch = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
    tm_store_t *st;
    int rc = tm_store_open(argv[1], NULL, &st);
    if (rc) {
        fprintf(stderr, "tm_fill: %s: %s\n", argv[1], tm_strerror(rc));
        return 1;
    }
    uint8_t origin[TM_NODE_ID_LEN];
    tm_random(origin, sizeof origin);
    tm_op_t *ops = calloc(batch, sizeof *ops);
    double t0 = now_s();
    for (uint64_t done = 0; done < n;) {
        size_t k = 0;
        for (; k < batch && done + k < n; k++) {
            memcpy(ops[k].origin, origin, TM_NODE_ID_LEN);
            ops[k].seq = done + k + 1;
            ops[k].hlc = ((uint64_t)1763900000000 + done + k) << 16;
            ops[k].kind = TM_OP_SALE;
            if (make_body(done + k, &ops[k].body, &ops[k].body_len))
                return 1;
        }
        rc = tm_store_apply(st, ops, k, NULL);
        for (size_t i = 0; i < k; i++)
            free(ops[i].body);
        if (rc) {
            fprintf(stderr, "tm_fill: apply: %s\n", tm_strerror(rc));
            return 1;
        }
        done += k;
    }
    double dt = now_s() - t0;
    printf("store_apply_ops_per_s %.0f n=%llu batch=%zu\n", (double)n / dt, (unsigned long long)n,
           batch);
    free(ops);
    tm_store_destroy(&st);
    return 0;
}
