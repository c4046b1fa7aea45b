/* libFuzzer target: the store's trusted keys file ("NAME Z85-KEY" lines),
 * which decides who may join the mesh. Besides not crashing: the same text
 * with every line commented out must trust nobody. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tm_mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const tm_log_t quiet = {.level = TM_LOG_ERROR};
    size_t n;
    (void)tm_mesh_trusted_parse((const char *)data, size, &quiet, &n);

    char *c = malloc(2 * size + 1);
    if (!c)
        return 0;
    size_t m = 0;
    c[m++] = '#';
    for (size_t i = 0; i < size; i++) {
        c[m++] = (char)data[i];
        if (data[i] == '\n' && i + 1 < size)
            c[m++] = '#';
    }
    n = 0;
    if (tm_mesh_trusted_parse(c, m, &quiet, &n) != TM_OK || n != 0)
        abort(); /* a commented-out line was read as a key, or refused */
    free(c);
    return 0;
}
