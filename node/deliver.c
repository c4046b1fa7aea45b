/* deliver.c - an outbox carried out on the mesh (tm_deliver.h). */
#include "tm_deliver.h"

void tm_deliver(tm_mesh_t *mesh, tm_outbox_t *outbox)
{
    for (size_t i = 0; i < outbox->n; i++) {
        const tm_out_t *o = &outbox->v[i];
        if (o->kind == TM_OUT_SEND)
            (void)tm_mesh_send(mesh, o->peer, o->frame, o->len);
        else if (o->kind == TM_OUT_CONNECT)
            (void)tm_mesh_connect(mesh, o->peer, o->endpoint);
    }
    tm_outbox_clear(outbox);
}
