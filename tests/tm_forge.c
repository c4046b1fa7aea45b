/*
 * tm_forge - a hostile till for integration tests, built from the
 * project's own libraries: it holds a trusted key (so the mesh admits it)
 * and says what a misbehaving or compromised till could say.
 *
 *   tm_forge SPEC.json
 *
 * SPEC: {"secret_key", "public_key", "trusted_keys": paths of its keys and
 *        of the trusted keys file (as a till's config names them),
 *        "listen": "tcp://127.0.0.1:PORT", "store_id", "name",
 *        "sender": 32 hex digits (the node id it claims),
 *        "to": [{"name", "endpoint"}]  peers to talk to,
 *        "seconds": how long to keep talking (heartbeats every 100 ms),
 *        "heartbeat": {"uplink": "up"|"down", "priority": n, "epoch": n,
 *                      "claims": bool}   (optional),
 *        "ops": [{"origin": hex, "seq": n, "hlc": n,
 *                 "sale": {...sale JSON...} |
 *                 "ack"|"intent": {"ids": [...], "key": "...", "epoch": n}}]}
 * The ops are pushed once a second while it runs (a re-push is a no-op).
 * Exit 0 when it ran to the end, 2 on a bad spec.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "tm_mesh.h"
#include "tm_record.h"
#include "tm_sign.h"
#include "tm_wire.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int hex_id(const char *h, uint8_t out[TM_NODE_ID_LEN])
{
    return h ? tm_unhex(h, out, TM_NODE_ID_LEN) : TM_EINVAL;
}

static void on_frame(void *ctx, const char *peer, const uint8_t *frame, size_t len)
{
    (void)ctx;
    (void)peer;
    (void)frame;
    (void)len; /* what the tills say back does not matter here */
}

typedef struct {
    Tillmesh__Op *ops;
    Tillmesh__Op **ptrs;
    uint8_t (*origins)[TM_NODE_ID_LEN];
    size_t n;
} opset_t;

static int ack_body(json_t *j, uint8_t **body, size_t *len)
{
    json_t *ids = json_object_get(j, "ids"), *v;
    size_t i;
    tm_erp_ack_t a = {0};
    a.n = json_array_size(ids);
    a.sale_ids = calloc(a.n + 1, TM_UUID_LEN);
    if (!a.sale_ids)
        return TM_ENOMEM;
    json_array_foreach (ids, i, v)
        tm_strlcpy(a.sale_ids[i], json_string_value(v) ? json_string_value(v) : "", TM_UUID_LEN);
    a.epoch = (uint64_t)json_integer_value(json_object_get(j, "epoch"));
    const char *key = json_string_value(json_object_get(j, "key"));
    tm_strlcpy(a.idempotency_key, key ? key : "", sizeof a.idempotency_key);
    int rc = tm_wire_ack_encode(&a, body, len);
    free(a.sale_ids);
    return rc;
}

static int load_ops(json_t *arr, opset_t *s)
{
    size_t n = json_array_size(arr), i;
    json_t *o;
    s->ops = calloc(n + 1, sizeof *s->ops);
    s->ptrs = calloc(n + 1, sizeof *s->ptrs);
    s->origins = calloc(n + 1, TM_NODE_ID_LEN);
    if (!s->ops || !s->ptrs || !s->origins)
        return TM_ENOMEM;
    json_array_foreach (arr, i, o) {
        Tillmesh__Op *op = &s->ops[i];
        tillmesh__op__init(op);
        if (hex_id(json_string_value(json_object_get(o, "origin")), s->origins[i]))
            return TM_EINVAL;
        op->has_origin = op->has_seq = op->has_hlc = op->has_kind = op->has_body = 1;
        op->origin.data = s->origins[i];
        op->origin.len = TM_NODE_ID_LEN;
        op->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
        op->hlc = (uint64_t)json_integer_value(json_object_get(o, "hlc"));
        json_t *sale = json_object_get(o, "sale"), *ack = json_object_get(o, "ack");
        json_t *intent = json_object_get(o, "intent");
        int rc;
        if (sale) {
            char *txt = json_dumps(sale, 0);
            tm_sale_t sv;
            tm_field_errors_t errs;
            tm_field_errors_init(&errs);
            rc = txt ? tm_sale_from_json(txt, strlen(txt), &sv, &errs) : TM_ENOMEM;
            free(txt);
            if (rc == TM_OK) {
                rc = tm_wire_sale_encode(&sv, &op->body.data, &op->body.len);
                tm_sale_free(&sv);
            }
            op->kind = TILLMESH__OP_KIND__OP_SALE;
        } else if (ack || intent) {
            rc = ack_body(ack ? ack : intent, &op->body.data, &op->body.len);
            op->kind = ack ? TILLMESH__OP_KIND__OP_ERP_ACK : TILLMESH__OP_KIND__OP_ERP_INTENT;
        } else {
            rc = TM_EINVAL;
        }
        if (rc)
            return rc;
        s->ptrs[i] = op;
        s->n++;
    }
    return TM_OK;
}

/* Signs every op with our own key, chained to the op of the same origin
 * and seq - 1 when the spec has one (zeros otherwise): what a till with a
 * trusted key can do. Ops under our key's origin then pass signature
 * checks and meet the ownership rules; ops under another till's origin
 * fail them (tm_sign.h). */
static void sign_ops(opset_t *s, const uint8_t sk[64], uint8_t (*hashes)[32], uint8_t (*sigs)[64],
                     uint8_t (*prevs)[32])
{
    for (size_t i = 0; i < s->n; i++) {
        Tillmesh__Op *op = &s->ops[i];
        tm_sign_op_hash(op->origin.data, op->seq, op->hlc, (uint32_t)op->kind, op->body.data,
                        op->body.len, hashes[i]);
    }
    /* prev is the chain value of the op before (tm_sign_chain), found in
     * the spec: ops are listed in seq order per origin. */
    for (size_t i = 0; i < s->n; i++) {
        Tillmesh__Op *op = &s->ops[i];
        memset(prevs[i], 0, 32);
        for (size_t j = 0; j < i; j++)
            if (s->ops[j].seq + 1 == op->seq &&
                memcmp(s->ops[j].origin.data, op->origin.data, TM_NODE_ID_LEN) == 0)
                tm_sign_chain(hashes[j], prevs[j], prevs[i]);
        tm_sign_op(sk, hashes[i], prevs[i], sigs[i]);
        op->has_sig = op->has_prev = 1;
        op->sig.data = sigs[i];
        op->sig.len = 64;
        op->prev.data = prevs[i];
        op->prev.len = 32;
    }
}

typedef struct {
    json_t *spec;
    uint8_t sender[TM_NODE_ID_LEN];
    const char *store_id, *name, *listen;
    opset_t ops;
} forge_t;

static void send_all(tm_mesh_t *m, json_t *to, Tillmesh__Envelope *env)
{
    uint8_t *buf;
    size_t len, i;
    json_t *p;
    if (tm_wire_envelope_encode(env, &buf, &len) != TM_OK)
        return;
    json_array_foreach (to, i, p)
        (void)tm_mesh_send(m, json_string_value(json_object_get(p, "name")), buf, len);
    free(buf);
}

static void send_heartbeat(forge_t *f, tm_mesh_t *m, bool hello)
{
    json_t *hb = json_object_get(f->spec, "heartbeat");
    Tillmesh__Envelope env;
    Tillmesh__Heartbeat h;
    Tillmesh__Hello hl;
    Tillmesh__NodeInfo ni;
    Tillmesh__Timing t;
    tillmesh__envelope__init(&env);
    tillmesh__heartbeat__init(&h);
    tillmesh__hello__init(&hl);
    tillmesh__node_info__init(&ni);
    tillmesh__timing__init(&t);
    env.store_id = (char *)(uintptr_t)f->store_id;
    env.has_sender = 1;
    env.sender.data = f->sender;
    env.sender.len = TM_NODE_ID_LEN;
    ni.has_node_id = 1;
    ni.node_id = env.sender;
    ni.store_id = env.store_id;
    ni.name = (char *)(uintptr_t)f->name;
    ni.mesh_endpoint = (char *)(uintptr_t)f->listen;
    ni.has_complete = ni.complete = 1;
    t.has_wall_ms = 1;
    t.wall_ms = wall_ms();
    if (hb) {
        const char *up = json_string_value(json_object_get(hb, "uplink"));
        ni.has_uplink = 1;
        ni.uplink = up && strcmp(up, "up") == 0 ? TILLMESH__UPLINK_STATE__UPLINK_UP
                                                : TILLMESH__UPLINK_STATE__UPLINK_DOWN;
        ni.has_priority = 1;
        ni.priority = (uint32_t)json_integer_value(json_object_get(hb, "priority"));
        if (json_is_true(json_object_get(hb, "claims"))) {
            ni.has_forwarder = ni.has_forwarder_epoch = 1;
            ni.forwarder = env.sender;
            ni.forwarder_epoch = (uint64_t)json_integer_value(json_object_get(hb, "epoch"));
        }
    }
    if (hello) {
        hl.info = &ni;
        hl.timing = &t;
        env.msg_case = TILLMESH__ENVELOPE__MSG_HELLO;
        env.hello = &hl;
    } else {
        h.info = &ni;
        h.timing = &t;
        env.msg_case = TILLMESH__ENVELOPE__MSG_HEARTBEAT;
        env.heartbeat = &h;
    }
    send_all(m, json_object_get(f->spec, "to"), &env);
}

static void send_ops(forge_t *f, tm_mesh_t *m)
{
    Tillmesh__Envelope env;
    Tillmesh__OpBatch b;
    if (!f->ops.n)
        return;
    tillmesh__envelope__init(&env);
    tillmesh__op_batch__init(&b);
    env.store_id = (char *)(uintptr_t)f->store_id;
    env.has_sender = 1;
    env.sender.data = f->sender;
    env.sender.len = TM_NODE_ID_LEN;
    b.n_ops = f->ops.n;
    b.ops = f->ops.ptrs;
    env.msg_case = TILLMESH__ENVELOPE__MSG_OPS;
    env.ops = &b;
    send_all(m, json_object_get(f->spec, "to"), &env);
}

int main(int argc, char **argv)
{
    json_error_t err;
    forge_t f = {0};
    tm_mesh_t *m = NULL;
    tm_log_t log = {.level = TM_LOG_WARN, .tag = "tm_forge"};
    uint8_t secret[32], pk[32], sk[64];
    if (argc == 3 && strcmp(argv[1], "--whoami") == 0) {
        /* The origin a till with this secret key writes as (incarnation 1). */
        uint8_t id[TM_NODE_ID_LEN];
        char hex[TM_NODE_HEX_LEN];
        if (tm_mesh_read_key(argv[2], 1, secret) != TM_OK) {
            fprintf(stderr, "tm_forge: cannot read %s\n", argv[2]);
            return 2;
        }
        tm_sign_keypair(secret, pk, sk);
        tm_sign_node_id(pk, 1, id);
        tm_hex(id, TM_NODE_ID_LEN, hex);
        printf("%s\n", hex);
        return 0;
    }
    if (argc != 2 || !(f.spec = json_load_file(argv[1], 0, &err))) {
        fprintf(stderr, "usage: tm_forge SPEC.json (%s)\n", argc == 2 ? err.text : "");
        return 2;
    }
    f.store_id = json_string_value(json_object_get(f.spec, "store_id"));
    f.name = json_string_value(json_object_get(f.spec, "name"));
    f.listen = json_string_value(json_object_get(f.spec, "listen"));
    tm_mesh_cfg_t mc = {
        .listen = f.listen,
        .secret_key_file = json_string_value(json_object_get(f.spec, "secret_key")),
        .public_key_file = json_string_value(json_object_get(f.spec, "public_key")),
        .trusted_keys_file = json_string_value(json_object_get(f.spec, "trusted_keys")),
    };
    int rc = hex_id(json_string_value(json_object_get(f.spec, "sender")), f.sender);
    if (rc || !f.store_id || !f.name || !f.listen ||
        (rc = load_ops(json_object_get(f.spec, "ops"), &f.ops)) ||
        (rc = tm_mesh_new(&mc, &log, &m))) {
        fprintf(stderr, "tm_forge: bad spec or keys: %s\n", tm_strerror(rc ? rc : TM_EINVAL));
        return 2;
    }
    if (tm_mesh_read_key(mc.secret_key_file, 1, secret) != TM_OK) {
        fprintf(stderr, "tm_forge: cannot read the secret key\n");
        return 2;
    }
    tm_sign_keypair(secret, pk, sk);
    uint8_t(*hashes)[32] = calloc(f.ops.n + 1, 32), (*prevs)[32] = calloc(f.ops.n + 1, 32);
    uint8_t(*sigs)[64] = calloc(f.ops.n + 1, 64);
    if (!hashes || !prevs || !sigs)
        return 1;
    sign_ops(&f.ops, sk, hashes, sigs, prevs);
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get(f.spec, "to"), i, p)
        tm_mesh_connect(m, json_string_value(json_object_get(p, "name")),
                        json_string_value(json_object_get(p, "endpoint")));
    uint64_t start = now_ms(),
             end = start + (uint64_t)(json_number_value(json_object_get(f.spec, "seconds")) * 1000);
    uint64_t next_hb = start, next_ops = start + 300;
    bool hello = true;
    while (now_ms() < end) {
        zmq_pollitem_t items[4];
        size_t n = tm_mesh_pollitems(m, items, 4);
        zmq_poll(items, (int)n, 20);
        tm_mesh_process(m, on_frame, NULL);
        uint64_t t = now_ms();
        if (t >= next_hb) {
            send_heartbeat(&f, m, hello);
            hello = false;
            next_hb = t + 100;
        }
        if (t >= next_ops) {
            send_ops(&f, m);
            next_ops = t + 1000;
        }
    }
    for (size_t k = 0; k < f.ops.n; k++)
        free(f.ops.ops[k].body.data);
    free(f.ops.ops);
    free(f.ops.ptrs);
    free(f.ops.origins);
    free(hashes);
    free(prevs);
    free(sigs);
    tm_mesh_destroy(&m);
    json_decref(f.spec);
    return 0;
}
