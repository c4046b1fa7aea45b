/* libFuzzer target: a mesh frame from a peer. */
#include <stddef.h>
#include <stdint.h>

#include "tm_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Tillmesh__Envelope *env;
    if (tm_wire_envelope_decode(data, size, &env) == TM_OK)
        tm_wire_envelope_free(env);
    return 0;
}
