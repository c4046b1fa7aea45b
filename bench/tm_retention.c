/* tm_retention - bench helper: disk per N sales before and after retention.
 *
 * Fills a fresh store with N two-line sales from one synthetic origin (the
 * path a catch-up takes), acknowledges them all as the forwarder would
 * (ERP_ACK ops of 500 ids), then compacts everything (tm_store_compact with
 * a cutoff past the last sale). Prints the bytes in use of the store before
 * and after, and the file's size on disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tm_store.h"
#include "tm_wire.h"

static int sale_body(uint64_t k, char id[TM_UUID_LEN], uint8_t **body, size_t *len)
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
    memcpy(id, s.sale_id, TM_UUID_LEN);
    return tm_wire_sale_encode(&s, body, len);
}

static uint64_t in_use(tm_store_t *st)
{
    uint64_t used = 0, freep = 0, psz = 0;
    tm_store_pages(st, &used, &freep, &psz);
    return used * psz;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tm_retention STORE.db N\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10), batch = 500;
    tm_store_t *st;
    if (tm_store_open(argv[1], NULL, &st))
        return 1;
    uint8_t origin[TM_NODE_ID_LEN], fwd[TM_NODE_ID_LEN];
    tm_random(origin, sizeof origin);
    tm_random(fwd, sizeof fwd);
    tm_op_t *ops = calloc(batch, sizeof *ops);
    char(*ids)[TM_UUID_LEN] = calloc(batch, TM_UUID_LEN);
    uint64_t hlc = (uint64_t)1763900000000 << 16;
    for (uint64_t done = 0, acks = 0; done < n; acks++) {
        size_t k = 0;
        for (; k < batch && done + k < n; k++) {
            memcpy(ops[k].origin, origin, TM_NODE_ID_LEN);
            ops[k].seq = done + k + 1;
            ops[k].hlc = hlc++;
            ops[k].kind = TM_OP_SALE;
            if (sale_body(done + k, ids[k], &ops[k].body, &ops[k].body_len))
                return 1;
        }
        int rc = tm_store_apply(st, ops, k, NULL);
        for (size_t i = 0; i < k; i++)
            free(ops[i].body);
        tm_erp_ack_t a = {.sale_ids = ids, .n = k, .epoch = 1};
        snprintf(a.idempotency_key, sizeof a.idempotency_key, "bench-%llu",
                 (unsigned long long)acks);
        tm_op_t ack = {.seq = acks + 1, .hlc = hlc++, .kind = TM_OP_ERP_ACK};
        memcpy(ack.origin, fwd, TM_NODE_ID_LEN);
        if (rc || tm_wire_ack_encode(&a, &ack.body, &ack.body_len) ||
            tm_store_apply(st, &ack, 1, NULL)) {
            fprintf(stderr, "tm_retention: fill failed\n");
            return 1;
        }
        free(ack.body);
        done += k;
    }
    uint64_t before = in_use(st), file_before = file_size(argv[1]);
    size_t got, total = 0;
    do {
        if (tm_store_compact(st, hlc, 5000, &got))
            return 1;
        total += got;
    } while (got == 5000);
    uint64_t after = in_use(st);
    tm_store_destroy(&st); /* checkpoints the WAL into the file */
    printf("retention n=%llu compacted=%zu bytes_in_use_before=%llu bytes_in_use_after=%llu "
           "file_before=%llu file_after=%llu\n",
           (unsigned long long)n, total, (unsigned long long)before, (unsigned long long)after,
           (unsigned long long)file_before, (unsigned long long)file_size(argv[1]));
    free(ops);
    free(ids);
    return 0;
}
