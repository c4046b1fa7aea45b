/* random.c - randomness for the shell (libsodium). The core never calls
 * these: it takes random bytes as arguments (scripts/check-purity.sh). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "tm_common.h"

void tm_random(void *buf, size_t n)
{
    /* sodium_init is idempotent and thread-safe; randombytes_buf never
     * fails once it has succeeded. */
    if (sodium_init() < 0) {
        fprintf(stderr, "tillmesh: libsodium failed to initialise\n");
        abort();
    }
    randombytes_buf(buf, n);
}

void tm_uuid_new(char out[TM_UUID_LEN])
{
    uint8_t b[16];
    char hex[33];
    tm_random(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    tm_hex(b, 16, hex);
    snprintf(out, TM_UUID_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}
