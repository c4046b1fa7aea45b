/* tm_fill - bench helper: fills a store with N sale ops from one origin, in
 * batches of B ops per transaction, through tm_store_apply (the same path a
 * catch-up takes). Prints the rate of the apply calls alone (making and
 * signing the ops is not counted).
 *
 * With KEYFILE (a till's CurveZMQ secret key, as `tillmesh keygen` writes
 * it) the ops are that till's: signed and chained under its key (an earlier
 * incarnation of its origin), and the store trusts the key, so every op is
 * verified as a peer's would be (one signature check per batch, the chain
 * op by op). Without it the ops are unsigned and unverified, from a random
 * origin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <zmq.h>

#include "tm_sign.h"
#include "tm_store.h"
#include "tm_wire.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process (user + system), to tell work from waiting. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int make_body(uint64_t k, uint8_t **body, size_t *len, char last_id[TM_UUID_LEN])
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
    memcpy(last_id, s.sale_id, TM_UUID_LEN);
    return tm_wire_sale_encode(&s, body, len);
}

/* Reads a Curve secret key file (Z85, one line) into a signing keypair. */
static int load_key(const char *path, uint8_t pk[TM_SIGN_PK_LEN], uint8_t sk[TM_SIGN_SK_LEN])
{
    char line[128] = "";
    uint8_t secret[32];
    FILE *f = fopen(path, "r");
    if (!f || !fgets(line, sizeof line, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    if (strlen(line) != 40 || !zmq_z85_decode(secret, line))
        return -1;
    tm_sign_keypair(secret, pk, sk);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tm_fill STORE.db N [BATCH [KEYFILE]]\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10);
    size_t batch = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
    const char *keyfile = argc > 4 ? argv[4] : NULL;
    uint8_t pk[TM_SIGN_PK_LEN], sk[TM_SIGN_SK_LEN], origin[TM_NODE_ID_LEN], chain[32] = {0};
    char last_id[TM_UUID_LEN] = "", first_id[TM_UUID_LEN] = "";
    if (batch == 0) {
        fprintf(stderr, "tm_fill: BATCH must be > 0\n");
        return 2;
    }
    if (keyfile && load_key(keyfile, pk, sk)) {
        fprintf(stderr, "tm_fill: %s: not a secret key file\n", keyfile);
        return 1;
    }
    tm_store_t *st;
    int rc = tm_store_open(argv[1], NULL, &st);
    if (rc) {
        fprintf(stderr, "tm_fill: %s: %s\n", argv[1], tm_strerror(rc));
        return 1;
    }
    if (keyfile) {
        /* Incarnation 1: the till that starts on this store later takes
         * another, so these are its earlier ops, as after a reinstall. */
        tm_sign_node_id(pk, 1, origin);
        if ((rc = tm_store_set_trusted(st, (const uint8_t(*)[32])pk, 1))) {
            fprintf(stderr, "tm_fill: trust: %s\n", tm_strerror(rc));
            return 1;
        }
    } else {
        tm_random(origin, sizeof origin);
    }
    tm_op_t *ops = calloc(batch, sizeof *ops);
    double spent = 0, cpu = 0;
    for (uint64_t done = 0; done < n;) {
        size_t k = 0;
        for (; k < batch && done + k < n; k++) {
            tm_op_t *op = &ops[k];
            memset(op, 0, sizeof *op);
            memcpy(op->origin, origin, TM_NODE_ID_LEN);
            op->seq = done + k + 1;
            op->hlc = ((uint64_t)1763900000000 + done + k) << 16;
            op->kind = TM_OP_SALE;
            if (make_body(done + k, &op->body, &op->body_len, last_id))
                return 1;
            if (done + k == 0)
                memcpy(first_id, last_id, TM_UUID_LEN);
            if (keyfile) {
                uint8_t h[32];
                tm_sign_op_hash(op->origin, op->seq, op->hlc, op->kind, op->body, op->body_len, h);
                memcpy(op->prev, chain, 32);
                tm_sign_op(sk, h, op->prev, op->sig);
                op->has_sig = true;
                tm_sign_chain(h, op->prev, chain);
            }
        }
        size_t fresh = 0;
        double t0 = now_s(), c0 = cpu_s();
        rc = tm_store_apply(st, ops, k, &fresh);
        spent += now_s() - t0;
        cpu += cpu_s() - c0;
        for (size_t i = 0; i < k; i++)
            free(ops[i].body);
        if (rc || fresh != k) {
            fprintf(stderr, "tm_fill: apply: %s (%zu of %zu new)\n", tm_strerror(rc), fresh, k);
            return 1;
        }
        done += k;
    }
    /* The last sale's id: a till catching up holds it once it holds all;
     * the first: once its catch-up has begun. */
    printf("store_apply_ops_per_s %.0f n=%llu batch=%zu verified=%d cpu_us_per_op=%.1f "
           "last_sale=%s first_sale=%s\n",
           (double)n / spent, (unsigned long long)n, batch, keyfile != NULL, cpu / (double)n * 1e6,
           last_id, first_id);
    free(ops);
    tm_store_destroy(&st);
    return 0;
}
