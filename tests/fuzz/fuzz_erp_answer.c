/* fuzz_erp_answer - what the ERP (or a proxy, a captive portal, an adapter
 * bug) answers to POST /sales: any status, any body. The answer is checked
 * against the batch it answers (tm_fwd__read_answer); whatever comes, only
 * ids of the batch may be marked, each at most once, and an answer the
 * reader calls untrusted marks nothing. Input: 2 bytes of status, then the
 * body. */
#include <stdlib.h>
#include <string.h>

#include "fwd_int.h"

#define N 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char ids[N][TM_UUID_LEN] = {
        "3f2c1a9e-8b7d-4c6e-9f01-23456789abcd", "9a1d7c44-0e2b-4f7a-8c55-1b2c3d4e5f60",
        "c0ffee00-0e2b-4f7a-8c55-1b2c3d4e5f61", "00000000-0000-4000-8000-000000000001"};
    if (size < 2)
        return 0;
    long status = 100 + (long)((data[0] << 8 | data[1]) % 500);
    uint8_t what[N] = {0};
    int st[N] = {0};
    char msg[N][160];
    memset(msg, 0, sizeof msg);
    tm_fwd__answer_t a = {.what = what, .status = st, .msg = msg};
    tm_fwd__read_answer(ids, N, status, (const char *)data + 2, size - 2, &a);
    for (size_t i = 0; i < N; i++) {
        if (what[i] > TM_FWD__REJECTED)
            abort(); /* a verdict the forwarder does not know */
        if (a.untrusted && what[i] != TM_FWD__NONE && !a.problem[0])
            abort(); /* untrusted but no reason given to show in status */
        if (memchr(msg[i], '\0', sizeof msg[i]) == NULL)
            abort(); /* a reason without its end */
    }
    if (memchr(a.problem, '\0', sizeof a.problem) == NULL)
        abort();
    return 0;
}
