/* libFuzzer target: the TXT record of a _tillmesh._tcp announcement, as DNS
 * rdata (length-prefixed strings). Any host on the LAN can announce one
 * before any key is checked; discovery parses it and builds the UP event
 * the daemon acts on. */
#include <avahi-common/address.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disc_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t cap)
{
    if (!memchr(s, '\0', cap))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    AvahiStringList *l = NULL;
    if (avahi_string_list_parse(data, size, &l) < 0)
        return 0;
    entry_t e;
    memset(&e, 0, sizeof e);
    const char *why;
    if (tm_disc__parse_txt(l, &e.txt, &why) == 0) {
        if (why)
            abort();
        check_str(e.txt.name, sizeof e.txt.name);
        check_str(e.txt.store, sizeof e.txt.store);
        if (strlen(e.txt.node) != 32 || strlen(e.txt.key) != TM_DISC_FP_HEX - 1 ||
            !tm_disc__is_hex(e.txt.node, 32) || e.txt.pmin > e.txt.pmax)
            abort();
        /* The UP event the daemon would get for it. */
        inst_t inst;
        memset(&inst, 0, sizeof inst);
        snprintf(inst.name, sizeof inst.name, "%s", e.txt.name);
        e.resolved = e.txt_ok = 1;
        e.family = AVAHI_PROTO_INET6;
        e.linklocal = 1;
        snprintf(e.addr, sizeof e.addr, "fe80::1%%eth0");
        e.port = 7700;
        inst.entries = &e;
        tm_disc_event_t ev;
        if (tm_disc__wanted("00000000000000000000000000000000", &inst, &ev)) {
            check_str(ev.endpoint, sizeof ev.endpoint);
            check_str(ev.addresses, sizeof ev.addresses);
            if (strcmp(ev.node_id, e.txt.node))
                abort();
        }
    } else if (!why) {
        abort(); /* refused without a reason for the log */
    }
    avahi_string_list_free(l);
    return 0;
}
