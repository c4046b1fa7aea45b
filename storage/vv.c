/* vv.c - comparing version vectors (tm_store.h): shared by the engine's
 * replication and its election, so that neither calls into the other. */
#include <string.h>

#include "tm_store.h"

uint64_t tm_vv_find(const tm_vv_t *vv, const uint8_t origin[TM_NODE_ID_LEN])
{
    size_t lo = 0, hi = vv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(vv->e[mid].origin, origin, TM_NODE_ID_LEN);
        if (c == 0)
            return vv->e[mid].seq;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

uint64_t tm_vv_ahead(const tm_vv_t *a, const tm_vv_t *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t s = tm_vv_find(b, a->e[i].origin);
        if (a->e[i].seq > s)
            n += a->e[i].seq - s;
    }
    return n;
}
