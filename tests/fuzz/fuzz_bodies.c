/* libFuzzer target: an op body from a peer, decoded as each record kind
 * (catalogue pages included),
 * and a decoded sale re-encoded and decoded again (must round-trip). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tm_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tm_sale_t s;
    tm_customer_t c;
    tm_erp_ack_t a;
    if (tm_wire_sale_decode(data, size, &s) == TM_OK) {
        uint8_t *buf;
        size_t len;
        tm_sale_t again;
        if (tm_wire_sale_encode(&s, &buf, &len) == TM_OK) {
            if (tm_wire_sale_decode(buf, len, &again) != TM_OK)
                abort(); /* our own encoding must always decode */
            tm_sale_free(&again);
            free(buf);
        }
        tm_sale_free(&s);
    }
    (void)tm_wire_customer_decode(data, size, &c);
    if (tm_wire_ack_decode(data, size, &a) == TM_OK)
        tm_erp_ack_free(&a);
    /* A catalogue page from a peer: a page that decodes was checked whole,
     * and our own encoding of it must decode again. */
    tm_catalogue_page_t pg, pg2;
    if (tm_wire_catalogue_decode(data, size, &pg) == TM_OK) {
        uint8_t *buf;
        size_t len;
        if (tm_wire_catalogue_encode(&pg, &buf, &len) == TM_OK) {
            if (tm_wire_catalogue_decode(buf, len, &pg2) != TM_OK)
                abort();
            tm_catalogue_page_free(&pg2);
            free(buf);
        }
        tm_catalogue_page_free(&pg);
    }
    return 0;
}
