/* libFuzzer target: tillmeshd's configuration file (inih + our checks).
 * A config comes from the store's IT staff or a deployment tool, not from
 * an attacker, but a typo must give a clear error, never a crash; what is
 * accepted must hold what validation promises; and the same text with every
 * line commented out must set nothing at all. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tm_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t cap)
{
    if (!memchr(s, '\0', cap))
        abort(); /* a string field lost its terminator */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const tm_log_t quiet = {.level = TM_LOG_ERROR};
    tm_config_t *c = malloc(sizeof *c);
    if (!c)
        return 0;
    int rc = tm_config_parse((const char *)data, size, "/etc/tillmesh/tillmeshd.conf", &quiet, c);
    check_str(c->name, sizeof c->name);
    check_str(c->data_dir, sizeof c->data_dir);
    check_str(c->erp_url, sizeof c->erp_url);
    check_str(c->trusted_keys, sizeof c->trusted_keys);
    if (c->n_peers < 0 || c->n_peers > TM_CFG_MAX_PEERS)
        abort();
    if (rc == TM_OK) {
        /* What validate() promises the daemon. */
        char host[64];
        uint16_t port;
        if (!c->name[0] || !c->store_id[0] || !c->data_dir[0])
            abort();
        if (tm_config_split_hostport(c->api_listen, host, sizeof host, &port) != TM_OK)
            abort();
        if (strncmp(c->listen, "tcp://", 6) != 0)
            abort();
        for (int i = 0; i < c->n_peers; i++) {
            check_str(c->peers[i].name, sizeof c->peers[i].name);
            check_str(c->peers[i].endpoint, sizeof c->peers[i].endpoint);
            if (strncmp(c->peers[i].endpoint, "tcp://", 6) != 0)
                abort();
        }
    }
    /* Commented out, line by line, after a good config: exactly the good
     * config, accepted. */
    static const char good[] = "[node]\nname = till-1\nstore_id = s\ndata_dir = /d\n[mesh]\n"
                               "secret_key = /k\npublic_key = /p\ntrusted_keys = /t\n";
    char *text = malloc(sizeof good + 2 * size + 1);
    tm_config_t *empty = malloc(sizeof *empty);
    if (text && empty) {
        size_t m = sizeof good - 1;
        memcpy(text, good, m);
        text[m++] = '#';
        for (size_t i = 0; i < size; i++) {
            text[m++] = (char)data[i];
            if (data[i] == '\n' && i + 1 < size)
                text[m++] = '#';
        }
        const char *name = "/etc/tillmesh/tillmeshd.conf";
        if (tm_config_parse(good, sizeof good - 1, name, &quiet, empty) != TM_OK ||
            tm_config_parse(text, m, name, &quiet, c) != TM_OK || memcmp(c, empty, sizeof *c))
            abort(); /* a commented-out line set something, or was refused */
    }
    free(text);
    free(empty);
    free(c);
    return 0;
}
