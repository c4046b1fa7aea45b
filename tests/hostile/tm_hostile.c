/*
 * tm_hostile - a till that holds a valid trusted key and misbehaves, for the
 * trust tests (issue 13). It speaks the mesh protocol from the project's own
 * libraries (tm_wire, tm_mesh for keys, tm_record for bodies) over CurveZMQ,
 * exactly as a till does: a DEALER to the target's ROUTER, and a ROUTER of
 * its own that the target connects back to (we advertise it in our hello),
 * so that it also sees what the target sends it.
 *
 * It sends what it is told (see usage()), answers pulls from the ops it made,
 * and at the end prints one JSON line saying what it sent and received.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "tm_common.h"
#include "tm_mesh.h"
#include "tm_record.h"
#include "tm_sign.h"
#include "tm_store.h"
#include "tm_wire.h"
#include <sodium.h>

static void usage(FILE *f)
{
    fputs("usage: tm_hostile OPTIONS COMMAND [ARGS]\n"
          "\n"
          "Connects to a real tillmeshd like a till (CurveZMQ, a key the target\n"
          "trusts), does COMMAND, keeps heartbeating and answering pulls for\n"
          "--wait-ms, then prints one JSON line: what it sent and received.\n"
          "\n"
          "Options:\n"
          "  --target EP        the till's mesh endpoint, e.g. tcp://127.0.0.1:7700\n"
          "  --server-key FILE  the till's public key (Z85, as tillmesh keygen writes)\n"
          "  --key PREFIX       our keypair: PREFIX.key and PREFIX.pub\n"
          "  --store ID         store id to claim\n"
          "  --name NAME        name in our NodeInfo (default hostile)\n"
          "  --node-id HEX      our node id, 32 hex digits (default random)\n"
          "  --listen EP        where the till connects back (default tcp://127.0.0.1:0)\n"
          "  --wait-ms N        run this long after the command (default 2000)\n"
          "  --heartbeat-ms N   normal heartbeats this often (default 100; 0: none)\n"
          "  --pace-ms N        flood: wait N ms between batches (default 0: as fast as\n"
          "                     the socket takes them)\n"
          "\n"
          "Commands:\n"
          "  hello                      nothing more: heartbeats, answers pulls\n"
          "  heartbeat N [K [MS]]       K heartbeats (default 1) with N version vector\n"
          "                             entries of random origins, every MS ms (default 1000)\n"
          "  flood N [BATCH [BYTES]]    N valid customer ops of our origin, pushed BATCH per\n"
          "                             frame (default 1), each with a name of BYTES bytes\n"
          "                             (default 200); our vector advertises them, so a till\n"
          "                             that refused some pulls them again\n"
          "  pull N [FROM [TO]]         one pull request with N ranges: the target's own\n"
          "                             origin (once heard) and random ones, seqs FROM..TO\n"
          "                             (default 1..2^63)\n"
          "  squat ORIGIN SEQ           one sale op claiming origin ORIGIN (hex) and seq SEQ\n"
          "  raw FILE                   the bytes of FILE as one frame\n"
          "\n"
          "Output (stdout): {\"sent_frames\":..,\"sent_bytes\":..,\"send_failed\":..\n"
          " (frames not sent: no connection, e.g. the target closed it and refuses us),\n"
          " \"recv_frames\":..,\"node_id\":\"HEX\" (ours),\n"
          " \"recv_hello\":..,\"recv_heartbeats\":..,\"recv_pulls\":..,\"recv_ops\":..,\n"
          " \"recv_pushed_ops\":..,\"recv_bad\":..,\"recv_sale_ids\":[the first 64 sale ids\n"
          " received],\"target_node_id\":\"HEX\"|null,\n"
          " \"target_vv\":{\"HEX\":SEQ,..}}; errors on stderr, exit 2 on bad usage.\n",
          f);
}

typedef struct {
    const char *target, *server_key, *key, *store, *name, *listen;
    uint8_t node_id[TM_NODE_ID_LEN];
    long wait_ms, heartbeat_ms, pace_ms;
    int node_id_given; /* --node-id: else the origin our key names */
    void *ctx, *dealer, *router;
    char endpoint[256];
    /* ops we made (flood), answered from on pull */
    uint8_t **bodies;
    size_t *lens;
    /* Our ops are signed and chained like a till's (tm_sign.h): a hostile
     * till with a trusted key signs what it makes with its own key. */
    uint8_t sign_pk[32], sign_sk[64];
    uint64_t hlc0;         /* stamps of our ops: hlc0 + seq, fixed when made */
    uint8_t (*hashes)[32]; /* per seq - 1 */
    uint8_t (*prevs)[32];  /* per seq - 1: the chain value of the op before */
    uint8_t (*sigs)[64];
    uint64_t n_bodies; /* made */
    uint64_t n_ops;    /* pushed so far: what our vector advertises */
    /* what we saw */
    uint64_t send_failed; /* no connection to the target (closed, refused) */
    uint64_t sent_frames, sent_bytes, recv_frames, recv_hello, recv_hb, recv_pulls, recv_ops,
        recv_pushed, recv_bad;
    char sale_ids[64][TM_UUID_LEN]; /* sales the target sent us (first 64) */
    size_t n_sale_ids;
    int have_target;
    uint8_t target_id[TM_NODE_ID_LEN];
    tm_vv_t target_vv;
} hostile_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void rand_bytes(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(rand() >> 7);
}

static void env_init(hostile_t *h, Tillmesh__Envelope *env)
{
    tillmesh__envelope__init(env);
    env->store_id = (char *)(uintptr_t)h->store;
    env->has_sender = 1;
    env->sender.data = h->node_id;
    env->sender.len = TM_NODE_ID_LEN;
}

static int send_frame(hostile_t *h, const uint8_t *buf, size_t len)
{
    /* Blocking send (up to SNDTIMEO) while connected: a hostile peer does
     * not care about being polite, and the test wants every frame to
     * leave. Once a send found no connection (the target closed it and
     * refuses us), later ones do not wait: they are counted as failed. */
    if (zmq_send(h->dealer, buf, len, h->send_failed ? ZMQ_DONTWAIT : 0) < 0) {
        if (zmq_errno() == EAGAIN) {
            h->send_failed++;
            return TM_OK;
        }
        fprintf(stderr, "tm_hostile: send: %s\n", zmq_strerror(zmq_errno()));
        return TM_EIO;
    }
    h->sent_frames++;
    h->sent_bytes += len;
    return TM_OK;
}

static int send_env(hostile_t *h, Tillmesh__Envelope *env)
{
    uint8_t *buf;
    size_t len;
    int rc = tm_wire_envelope_encode(env, &buf, &len);
    if (rc) {
        fprintf(stderr, "tm_hostile: encode: %s\n", tm_strerror(rc));
        return rc;
    }
    rc = send_frame(h, buf, len);
    free(buf);
    return rc;
}

/* A heartbeat (or our first hello) whose vector holds our own origin (as
 * far as we made ops) and n_random random origins. */
static int send_info(hostile_t *h, size_t n_random, int hello)
{
    size_t n = n_random + (h->n_ops ? 1 : 0);
    Tillmesh__VersionEntry *ents = calloc(n + 1, sizeof *ents);
    Tillmesh__VersionEntry **pp = calloc(n + 1, sizeof *pp);
    uint8_t *ids = calloc(n + 1, TM_NODE_ID_LEN);
    int rc = TM_ENOMEM;
    if (!ents || !pp || !ids)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        uint8_t *id = ids + i * TM_NODE_ID_LEN;
        tillmesh__version_entry__init(&ents[i]);
        ents[i].has_origin = ents[i].has_seq = 1;
        if (i == n_random) {
            memcpy(id, h->node_id, TM_NODE_ID_LEN);
            ents[i].seq = h->n_ops;
        } else {
            rand_bytes(id, TM_NODE_ID_LEN);
            /* Small seqs: one varint byte, so 180,000 entries fit in the
             * 4 MB frame limit, as in the report. */
            ents[i].seq = (uint64_t)(i % 127) + 1;
        }
        ents[i].origin.data = id;
        ents[i].origin.len = TM_NODE_ID_LEN;
        pp[i] = &ents[i];
    }
    Tillmesh__NodeInfo ni = TILLMESH__NODE_INFO__INIT;
    ni.has_node_id = 1;
    ni.node_id.data = h->node_id;
    ni.node_id.len = TM_NODE_ID_LEN;
    ni.store_id = (char *)(uintptr_t)h->store;
    ni.name = (char *)(uintptr_t)h->name;
    ni.n_vv = n;
    ni.vv = pp;
    ni.mesh_endpoint = h->endpoint;
    ni.has_complete = 1;
    ni.complete = 1;
    Tillmesh__Timing tm = TILLMESH__TIMING__INIT;
    tm.has_wall_ms = tm.has_tx_mono_ms = 1;
    tm.wall_ms = wall_ms();
    tm.tx_mono_ms = mono_ms();
    Tillmesh__Hello he = TILLMESH__HELLO__INIT;
    Tillmesh__Heartbeat hb = TILLMESH__HEARTBEAT__INIT;
    he.info = hb.info = &ni;
    he.timing = hb.timing = &tm;
    Tillmesh__Envelope env;
    env_init(h, &env);
    if (hello) {
        env.msg_case = TILLMESH__ENVELOPE__MSG_HELLO;
        env.hello = &he;
    } else {
        env.msg_case = TILLMESH__ENVELOPE__MSG_HEARTBEAT;
        env.heartbeat = &hb;
    }
    rc = send_env(h, &env);
cleanup:
    free(ents);
    free(pp);
    free(ids);
    return rc;
}

/* Sends ops [from, to] (1-based seqs) of ours as one batch. */
static int send_ops(hostile_t *h, uint64_t from, uint64_t to, int is_reply)
{
    size_t n = to >= from ? (size_t)(to - from + 1) : 0;
    Tillmesh__Op *ops = calloc(n + 1, sizeof *ops), **pp = calloc(n + 1, sizeof *pp);
    if (!ops || !pp) {
        free(ops);
        free(pp);
        return TM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = from + i;
        tillmesh__op__init(&ops[i]);
        ops[i].has_origin = ops[i].has_seq = ops[i].has_hlc = ops[i].has_kind = 1;
        ops[i].has_body = 1;
        ops[i].origin.data = h->node_id;
        ops[i].origin.len = TM_NODE_ID_LEN;
        ops[i].seq = seq;
        ops[i].hlc = h->hlc0 + seq;
        ops[i].kind = TILLMESH__OP_KIND__OP_CUSTOMER;
        ops[i].body.data = h->bodies[seq - 1];
        ops[i].body.len = h->lens[seq - 1];
        ops[i].has_sig = ops[i].has_prev = 1;
        ops[i].sig.data = h->sigs[seq - 1];
        ops[i].sig.len = 64;
        ops[i].prev.data = h->prevs[seq - 1];
        ops[i].prev.len = 32;
        pp[i] = &ops[i];
    }
    Tillmesh__OpBatch b = TILLMESH__OP_BATCH__INIT;
    b.n_ops = n;
    b.ops = pp;
    b.has_is_reply = 1;
    b.is_reply = is_reply;
    Tillmesh__Envelope env;
    env_init(h, &env);
    env.msg_case = TILLMESH__ENVELOPE__MSG_OPS;
    env.ops = &b;
    int rc = send_env(h, &env);
    free(ops);
    free(pp);
    return rc;
}

static void answer_pull(hostile_t *h, const Tillmesh__PullRequest *req)
{
    /* Empty unless a range names our origin: a till asks every peer for
     * its own ops too (its restore check). */
    uint64_t from = 1, to = 0;
    for (size_t i = 0; i < req->n_ranges; i++) {
        const Tillmesh__Range *r = req->ranges[i];
        if (r->origin.len == TM_NODE_ID_LEN &&
            !memcmp(r->origin.data, h->node_id, TM_NODE_ID_LEN)) {
            from = r->from_seq ? r->from_seq : 1;
            to = r->to_seq < h->n_ops ? r->to_seq : h->n_ops;
        }
    }
    uint64_t max = req->has_max_ops && req->max_ops ? req->max_ops : 1000;
    if (to >= from && to - from + 1 > max)
        to = from + max - 1;
    (void)send_ops(h, from, to >= from ? to : from - 1, 1);
}

static void on_frame(hostile_t *h, const uint8_t *buf, size_t len)
{
    Tillmesh__Envelope *env;
    h->recv_frames++;
    if (tm_wire_envelope_decode(buf, len, &env) != TM_OK) {
        h->recv_bad++;
        return;
    }
    const Tillmesh__NodeInfo *ni = NULL;
    switch (env->msg_case) {
    case TILLMESH__ENVELOPE__MSG_HELLO:
        h->recv_hello++;
        ni = env->hello->info;
        break;
    case TILLMESH__ENVELOPE__MSG_HEARTBEAT:
        h->recv_hb++;
        ni = env->heartbeat->info;
        break;
    case TILLMESH__ENVELOPE__MSG_PULL:
        h->recv_pulls++;
        answer_pull(h, env->pull);
        break;
    case TILLMESH__ENVELOPE__MSG_OPS:
        h->recv_ops += env->ops->n_ops;
        if (!env->ops->is_reply)
            h->recv_pushed += env->ops->n_ops;
        for (size_t i = 0; i < env->ops->n_ops && h->n_sale_ids < 64; i++) {
            const Tillmesh__Op *o = env->ops->ops[i];
            tm_sale_t sale;
            if (o->kind != TILLMESH__OP_KIND__OP_SALE ||
                tm_wire_sale_decode(o->body.data, o->body.len, &sale) != TM_OK)
                continue;
            tm_strlcpy(h->sale_ids[h->n_sale_ids++], sale.sale_id, TM_UUID_LEN);
            tm_sale_free(&sale);
        }
        break;
    default: break;
    }
    if (ni && ni->has_node_id) {
        h->have_target = 1;
        memcpy(h->target_id, ni->node_id.data, TM_NODE_ID_LEN);
        tm_vv_free(&h->target_vv);
        h->target_vv.e = calloc(ni->n_vv + 1, sizeof *h->target_vv.e);
        for (size_t i = 0; h->target_vv.e && i < ni->n_vv && i < 64; i++) {
            memcpy(h->target_vv.e[i].origin, ni->vv[i]->origin.data, TM_NODE_ID_LEN);
            h->target_vv.e[i].seq = ni->vv[i]->seq;
            h->target_vv.n++;
        }
    }
    tm_wire_envelope_free(env);
}

/* Reads what arrived, heartbeats on time, for up to ms. */
static void pump(hostile_t *h, long ms)
{
    uint64_t end = mono_ms() + (uint64_t)(ms > 0 ? ms : 0), next_hb = 0;
    for (;;) {
        uint64_t now = mono_ms();
        if (h->heartbeat_ms > 0 && now >= next_hb) {
            (void)send_info(h, 0, h->recv_frames == 0);
            next_hb = now + (uint64_t)h->heartbeat_ms;
        }
        if (now >= end)
            break;
        long t = (long)(end - now);
        if (h->heartbeat_ms > 0 && (long)(next_hb - now) < t)
            t = (long)(next_hb - now);
        zmq_pollitem_t it = {.socket = h->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, t) <= 0)
            continue;
        for (;;) {
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&id, h->router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                zmq_msg_close(&body);
                break;
            }
            if (zmq_msg_more(&id) && zmq_msg_recv(&body, h->router, ZMQ_DONTWAIT) >= 0)
                on_frame(h, zmq_msg_data(&body), zmq_msg_size(&body));
            zmq_msg_close(&id);
            zmq_msg_close(&body);
        }
    }
}

static int make_bodies(hostile_t *h, uint64_t n, size_t name_bytes)
{
    h->bodies = calloc(n + 1, sizeof *h->bodies);
    h->lens = calloc(n + 1, sizeof *h->lens);
    if (!h->bodies || !h->lens)
        return TM_ENOMEM;
    if (name_bytes > TM_FIELD_VALUE_MAX - 1)
        name_bytes = TM_FIELD_VALUE_MAX - 1;
    if (name_bytes < 16)
        name_bytes = 16;
    h->n_bodies = n;
    h->hlc0 = wall_ms() << 16;
    h->hashes = calloc(n + 1, sizeof *h->hashes);
    h->sigs = calloc(n + 1, sizeof *h->sigs);
    h->prevs = calloc(n + 1, sizeof *h->prevs);
    if (!h->hashes || !h->sigs || !h->prevs)
        return TM_ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        tm_customer_t c;
        memset(&c, 0, sizeof c);
        c.id_type = TM_IDTYPE_DNI;
        snprintf(c.id, sizeof c.id, "%08" PRIu64, 10000000 + (i % 89999999));
        c.f[TM_CF_NAME].set = true;
        char *v = c.f[TM_CF_NAME].value;
        int k = snprintf(v, name_bytes + 1, "Flood %" PRIu64 " ", i);
        if (k > 0 && (size_t)k < name_bytes)
            memset(v + k, 'x', name_bytes - (size_t)k);
        v[name_bytes] = '\0';
        int rc = tm_wire_customer_encode(&c, &h->bodies[i], &h->lens[i]);
        if (rc) {
            fprintf(stderr, "tm_hostile: customer body: %s\n", tm_strerror(rc));
            return rc;
        }
        tm_sign_op_hash(h->node_id, i + 1, h->hlc0 + i + 1, TM_OP_CUSTOMER, h->bodies[i],
                        h->lens[i], h->hashes[i]);
        if (i)
            tm_sign_chain(h->hashes[i - 1], h->prevs[i - 1], h->prevs[i]);
        tm_sign_op(h->sign_sk, h->hashes[i], h->prevs[i], h->sigs[i]);
    }
    return TM_OK;
}

static int cmd_flood(hostile_t *h, uint64_t n, uint64_t batch, size_t name_bytes)
{
    int rc = make_bodies(h, n, name_bytes);
    if (rc)
        return rc;
    if (batch == 0)
        batch = 1;
    /* Pushed one batch at a time, as fast as the socket takes them; our
     * vector advertises every op only as it is pushed. */
    for (uint64_t s = 1; s <= n && rc == TM_OK; s += batch) {
        uint64_t to = s + batch - 1 < n ? s + batch - 1 : n;
        h->n_ops = to;
        rc = send_ops(h, s, to, 0);
        if (h->pace_ms > 0)
            pump(h, h->pace_ms);
    }
    return rc;
}

static int cmd_pull(hostile_t *h, size_t n, uint64_t from, uint64_t to)
{
    /* The first range names the target's own origin: wait to hear it. */
    for (int i = 0; i < 50 && !h->have_target; i++)
        pump(h, 100);
    Tillmesh__Range *rs = calloc(n + 1, sizeof *rs), **rp = calloc(n + 1, sizeof *rp);
    uint8_t *ids = calloc(n + 1, TM_NODE_ID_LEN);
    int rc = TM_ENOMEM;
    if (!rs || !rp || !ids)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        uint8_t *id = ids + i * TM_NODE_ID_LEN;
        if (i == 0 && h->have_target)
            memcpy(id, h->target_id, TM_NODE_ID_LEN);
        else
            rand_bytes(id, TM_NODE_ID_LEN);
        tillmesh__range__init(&rs[i]);
        rs[i].has_origin = rs[i].has_from_seq = rs[i].has_to_seq = 1;
        rs[i].origin.data = id;
        rs[i].origin.len = TM_NODE_ID_LEN;
        rs[i].from_seq = from;
        rs[i].to_seq = to;
        rp[i] = &rs[i];
    }
    Tillmesh__PullRequest pr = TILLMESH__PULL_REQUEST__INIT;
    pr.n_ranges = n;
    pr.ranges = rp;
    Tillmesh__Envelope env;
    env_init(h, &env);
    env.msg_case = TILLMESH__ENVELOPE__MSG_PULL;
    env.pull = &pr;
    rc = send_env(h, &env);
cleanup:
    free(rs);
    free(rp);
    free(ids);
    return rc;
}

static int cmd_squat(hostile_t *h, const char *origin_hex, uint64_t seq)
{
    uint8_t origin[TM_NODE_ID_LEN];
    if (strlen(origin_hex) != 2 * TM_NODE_ID_LEN || tm_unhex(origin_hex, origin, TM_NODE_ID_LEN)) {
        fprintf(stderr, "tm_hostile: squat: ORIGIN must be 32 hex digits\n");
        return TM_EINVAL;
    }
    tm_sale_line_t line = {.sku = "1", .name = "squat", .qty = 1000, .unit_price = 1};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = 1};
    tm_sale_t s = {.till = "hostile",
                   .receipt_no = seq,
                   .created_at = "2026-01-01T00:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = 1,
                   .payments = &pay,
                   .n_payments = 1};
    tm_uuid_new(s.sale_id);
    uint8_t *body;
    size_t len;
    int rc = tm_wire_sale_encode(&s, &body, &len);
    if (rc)
        return rc;
    Tillmesh__Op op = TILLMESH__OP__INIT, *pp = &op;
    op.has_origin = op.has_seq = op.has_hlc = op.has_kind = op.has_body = 1;
    op.origin.data = origin;
    op.origin.len = TM_NODE_ID_LEN;
    op.seq = seq;
    op.hlc = wall_ms() << 16;
    op.kind = TILLMESH__OP_KIND__OP_SALE;
    op.body.data = body;
    op.body.len = len;
    /* Signed, with our own key: the best a till that is not the origin can
     * do. (Its origin names another key, so every till must refuse it.) */
    uint8_t hash[32], prev[32] = {0}, sig[64];
    tm_sign_op_hash(origin, seq, op.hlc, TM_OP_SALE, body, len, hash);
    tm_sign_op(h->sign_sk, hash, prev, sig);
    op.has_sig = op.has_prev = 1;
    op.sig.data = sig;
    op.sig.len = 64;
    op.prev.data = prev;
    op.prev.len = 32;
    Tillmesh__OpBatch b = TILLMESH__OP_BATCH__INIT;
    b.n_ops = 1;
    b.ops = &pp;
    Tillmesh__Envelope env;
    env_init(h, &env);
    env.msg_case = TILLMESH__ENVELOPE__MSG_OPS;
    env.ops = &b;
    rc = send_env(h, &env);
    free(body);
    return rc;
}

static int cmd_raw(hostile_t *h, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tm_hostile: %s: %s\n", path, strerror(errno));
        return TM_EIO;
    }
    size_t cap = TM_WIRE_MAX_FRAME + 1024, n;
    uint8_t *buf = malloc(cap);
    int rc = TM_ENOMEM;
    if (buf) {
        n = fread(buf, 1, cap, f);
        rc = send_frame(h, buf, n);
    }
    free(buf);
    fclose(f);
    return rc;
}

static int connect_all(hostile_t *h)
{
    uint8_t sec[32], pub[32], srv[32];
    char path[600];
    snprintf(path, sizeof path, "%s.key", h->key);
    if (tm_mesh_read_key(path, 1, sec) == TM_OK) {
        tm_sign_keypair(sec, h->sign_pk, h->sign_sk);
        if (!h->node_id_given) {
            uint32_t inc = 0;
            while (!inc)
                rand_bytes((uint8_t *)&inc, sizeof inc);
            tm_sign_node_id(h->sign_pk, inc, h->node_id);
        }
    } else {
        fprintf(stderr, "tm_hostile: cannot read secret key %s\n", path);
        return TM_ECONFIG;
    }
    snprintf(path, sizeof path, "%s.pub", h->key);
    if (tm_mesh_read_key(path, 0, pub) || tm_mesh_read_key(h->server_key, 0, srv)) {
        fprintf(stderr, "tm_hostile: cannot read %s or %s\n", path, h->server_key);
        return TM_ECONFIG;
    }
    int one = 1, zero = 0;
    h->ctx = zmq_ctx_new();
    h->router = zmq_socket(h->ctx, ZMQ_ROUTER);
    h->dealer = zmq_socket(h->ctx, ZMQ_DEALER);
    zmq_setsockopt(h->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(h->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(h->router, ZMQ_CURVE_SECRETKEY, sec, 32);
    if (zmq_bind(h->router, h->listen) != 0) {
        fprintf(stderr, "tm_hostile: bind %s: %s\n", h->listen, zmq_strerror(zmq_errno()));
        return TM_EIO;
    }
    size_t len = sizeof h->endpoint;
    zmq_getsockopt(h->router, ZMQ_LAST_ENDPOINT, h->endpoint, &len);
    int linger = 2000, hwm = 100000;
    zmq_setsockopt(h->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(h->dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(h->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(h->dealer, ZMQ_CURVE_SERVERKEY, srv, 32);
    zmq_setsockopt(h->dealer, ZMQ_CURVE_PUBLICKEY, pub, 32);
    zmq_setsockopt(h->dealer, ZMQ_CURVE_SECRETKEY, sec, 32);
    if (zmq_connect(h->dealer, h->target) != 0) {
        fprintf(stderr, "tm_hostile: connect %s: %s\n", h->target, zmq_strerror(zmq_errno()));
        return TM_EIO;
    }
    /* Blocking sends on an IMMEDIATE dealer wait for the handshake; bound
     * that wait so that a refused key shows as "nothing sent". */
    int sndtimeo = 5000;
    zmq_setsockopt(h->dealer, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    return TM_OK;
}

static void report(hostile_t *h)
{
    char hex[TM_NODE_HEX_LEN];
    printf("{\"sent_frames\":%" PRIu64 ",\"sent_bytes\":%" PRIu64 ",\"recv_frames\":%" PRIu64
           ",\"recv_hello\":%" PRIu64 ",\"recv_heartbeats\":%" PRIu64 ",\"recv_pulls\":%" PRIu64
           ",\"recv_ops\":%" PRIu64 ",\"recv_pushed_ops\":%" PRIu64 ",\"recv_bad\":%" PRIu64,
           h->sent_frames, h->sent_bytes, h->recv_frames, h->recv_hello, h->recv_hb, h->recv_pulls,
           h->recv_ops, h->recv_pushed, h->recv_bad);
    tm_hex(h->node_id, TM_NODE_ID_LEN, hex);
    printf(",\"node_id\":\"%s\",\"send_failed\":%" PRIu64 ",\"recv_sale_ids\":[", hex,
           h->send_failed);
    for (size_t i = 0; i < h->n_sale_ids; i++)
        printf("%s\"%s\"", i ? "," : "", h->sale_ids[i]);
    printf("]");
    if (h->have_target) {
        tm_hex(h->target_id, TM_NODE_ID_LEN, hex);
        printf(",\"target_node_id\":\"%s\",\"target_vv\":{", hex);
        for (size_t i = 0; i < h->target_vv.n; i++) {
            tm_hex(h->target_vv.e[i].origin, TM_NODE_ID_LEN, hex);
            printf("%s\"%s\":%" PRIu64, i ? "," : "", hex, h->target_vv.e[i].seq);
        }
        printf("}");
    } else {
        printf(",\"target_node_id\":null,\"target_vv\":{}");
    }
    printf("}\n");
    fflush(stdout);
}

static uint64_t num(const char *s, uint64_t dflt)
{
    if (!s)
        return dflt;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || end == s) {
        fprintf(stderr, "tm_hostile: not a number: %s\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    hostile_t h = {
        .name = "hostile", .listen = "tcp://127.0.0.1:0", .wait_ms = 2000, .heartbeat_ms = 100};
    srand((unsigned)(wall_ms() ^ (uint64_t)getpid()));
    rand_bytes(h.node_id, TM_NODE_ID_LEN);
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "tm_hostile: %s needs a value\n", o);
            return 2;
        }
        i++;
        if (!strcmp(o, "--target"))
            h.target = v;
        else if (!strcmp(o, "--server-key"))
            h.server_key = v;
        else if (!strcmp(o, "--key"))
            h.key = v;
        else if (!strcmp(o, "--store"))
            h.store = v;
        else if (!strcmp(o, "--name"))
            h.name = v;
        else if (!strcmp(o, "--listen"))
            h.listen = v;
        else if (!strcmp(o, "--wait-ms"))
            h.wait_ms = (long)num(v, 0);
        else if (!strcmp(o, "--pace-ms"))
            h.pace_ms = (long)num(v, 0);
        else if (!strcmp(o, "--heartbeat-ms"))
            h.heartbeat_ms = (long)num(v, 0);
        else if (!strcmp(o, "--node-id")) {
            if (strlen(v) != 2 * TM_NODE_ID_LEN || tm_unhex(v, h.node_id, TM_NODE_ID_LEN)) {
                fprintf(stderr, "tm_hostile: --node-id needs 32 hex digits\n");
                return 2;
            }
            h.node_id_given = 1;
        } else {
            fprintf(stderr, "tm_hostile: unknown option %s\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc || !h.target || !h.server_key || !h.key || !h.store) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    const char *a1 = i + 1 < argc ? argv[i + 1] : NULL, *a2 = i + 2 < argc ? argv[i + 2] : NULL,
               *a3 = i + 3 < argc ? argv[i + 3] : NULL;
    if (connect_all(&h))
        return 1;
    /* Introduce ourselves first and learn the target's node id. */
    pump(&h, 300);
    int rc = TM_OK;
    if (!strcmp(cmd, "hello")) {
    } else if (!strcmp(cmd, "heartbeat") && a1) {
        uint64_t n = num(a1, 0), k = num(a2, 1), every = num(a3, 1000);
        for (uint64_t j = 0; j < k && rc == TM_OK; j++) {
            rc = send_info(&h, (size_t)n, 0);
            if (j + 1 < k)
                pump(&h, (long)every);
        }
    } else if (!strcmp(cmd, "flood") && a1) {
        rc = cmd_flood(&h, num(a1, 0), num(a2, 1), (size_t)num(a3, 200));
    } else if (!strcmp(cmd, "pull") && a1) {
        rc = cmd_pull(&h, (size_t)num(a1, 0), num(a2, 1), num(a3, (uint64_t)INT64_MAX));
    } else if (!strcmp(cmd, "squat") && a1 && a2) {
        rc = cmd_squat(&h, a1, num(a2, 0));
    } else if (!strcmp(cmd, "raw") && a1) {
        rc = cmd_raw(&h, a1);
    } else {
        fprintf(stderr, "tm_hostile: unknown command or missing argument: %s\n", cmd);
        usage(stderr);
        return 2;
    }
    if (rc == TM_OK)
        pump(&h, h.wait_ms);
    report(&h);
    for (uint64_t j = 0; h.bodies && j < h.n_bodies; j++)
        free(h.bodies[j]);
    free(h.bodies);
    free(h.lens);
    free(h.hashes);
    free(h.sigs);
    free(h.prevs);
    sodium_memzero(h.sign_sk, sizeof h.sign_sk);
    tm_vv_free(&h.target_vv);
    zmq_close(h.dealer);
    zmq_close(h.router);
    zmq_ctx_term(h.ctx);
    return rc == TM_OK ? 0 : 1;
}
