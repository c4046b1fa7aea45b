/* libFuzzer target: the store's trusted keys file ("NAME Z85-KEY" lines),
 * which decides who may join the mesh. */
#include <stddef.h>
#include <stdint.h>

#include "tm_mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const tm_log_t quiet = {.level = TM_LOG_ERROR};
    size_t n;
    (void)tm_mesh_trusted_parse((const char *)data, size, &quiet, &n);
    return 0;
}
