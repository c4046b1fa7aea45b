/* test_engine.c - several engines, real stores, no sockets: the network is
 * this file's deliver() loop and time is a variable. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_engine.h"
#include "tm_wire.h"

#define MAXN 4

typedef struct {
    char dir[64];
    int n;
    const char *names[MAXN];
    tm_store_t *store[MAXN];
    tm_engine_t *eng[MAXN];
    tm_outbox_t box[MAXN];
    int link[MAXN][MAXN]; /* 1 = frames from i reach j */
    uint64_t now;         /* monotonic ms */
    uint64_t wall;        /* true wall-clock ms */
    int64_t skew[MAXN];   /* how wrong each till's wall clock is */
    size_t max_batch_seen;
} net_t;

static tm_log_t quiet = {.level = TM_LOG_ERROR};

static void net_init(net_t *net, int n, uint32_t batch)
{
    static const char *names[MAXN] = {"a", "b", "c", "d"};
    memset(net, 0, sizeof *net);
    strcpy(net->dir, "/tmp/tm-engine-XXXXXX");
    cr_assert_not_null(mkdtemp(net->dir));
    net->n = n;
    net->now = 1000;
    net->wall = 1700000000000ULL;
    for (int i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s.db", net->dir, names[i]);
        net->names[i] = names[i];
        cr_assert_eq(tm_store_open(path, NULL, &net->store[i]), TM_OK);
        tm_engine_cfg_t cfg = {.name = names[i],
                               .store_id = "store-1",
                               .mesh_endpoint = "tcp://127.0.0.1:1",
                               .heartbeat_ms = 100,
                               .batch_max_ops = batch};
        cr_assert_eq(tm_engine_new(&cfg, net->store[i], &quiet, &net->eng[i]), TM_OK);
    }
}

static void net_free(net_t *net)
{
    for (int i = 0; i < net->n; i++) {
        tm_engine_destroy(&net->eng[i]);
        tm_store_destroy(&net->store[i]);
        tm_outbox_free(&net->box[i]);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", net->dir);
    cr_assert_eq(system(cmd), 0);
}

static void net_link(net_t *net, int a, int b, int up)
{
    net->link[a][b] = net->link[b][a] = up;
    if (up) {
        cr_assert_eq(tm_engine_add_peer(net->eng[a], net->names[b], "tcp://x:1", TM_SRC_STATIC,
                                        &net->box[a]),
                     TM_OK);
        cr_assert_eq(tm_engine_add_peer(net->eng[b], net->names[a], "tcp://x:1", TM_SRC_STATIC,
                                        &net->box[b]),
                     TM_OK);
    }
}

/* What till i's wall clock reads. */
static uint64_t wall_of(const net_t *net, int i)
{
    return (uint64_t)((int64_t)net->wall + net->skew[i]);
}

static int index_of(net_t *net, const char *name)
{
    for (int i = 0; i < net->n; i++)
        if (strcmp(net->names[i], name) == 0)
            return i;
    return -1;
}

static size_t ops_in_frame(const tm_out_t *o)
{
    Tillmesh__Envelope *env;
    size_t n = 0;
    if (tm_wire_envelope_decode(o->frame, o->len, &env) == TM_OK) {
        if (env->msg_case == TILLMESH__ENVELOPE__MSG_OPS)
            n = env->ops->n_ops;
        tm_wire_envelope_free(env);
    }
    return n;
}

/* Delivers queued frames until every outbox is empty. */
static void deliver(net_t *net)
{
    for (int round = 0; round < 100000; round++) {
        int moved = 0;
        for (int i = 0; i < net->n; i++) {
            tm_outbox_t box = net->box[i];
            memset(&net->box[i], 0, sizeof net->box[i]);
            for (size_t k = 0; k < box.n; k++) {
                const tm_out_t *o = &box.v[k];
                int j = index_of(net, o->peer);
                if (o->kind != TM_OUT_SEND || j < 0 || !net->link[i][j])
                    continue;
                size_t nops = ops_in_frame(o);
                if (nops > net->max_batch_seen)
                    net->max_batch_seen = nops;
                tm_engine_on_frame(net->eng[j], net->names[i], o->frame, o->len, net->now,
                                   wall_of(net, j), &net->box[j]);
                moved = 1;
            }
            tm_outbox_free(&box);
        }
        if (!moved)
            return;
    }
    cr_assert_fail("network never went quiet");
}

/* Advances time by ms in heartbeat-sized steps, ticking and delivering. */
static void run_for(net_t *net, uint64_t ms)
{
    for (uint64_t t = 0; t < ms; t += 50) {
        net->now += 50;
        net->wall += 50;
        for (int i = 0; i < net->n; i++)
            tm_engine_tick(net->eng[i], net->now, wall_of(net, i), &net->box[i]);
        deliver(net);
    }
}

static void local_sale(net_t *net, int i, int k)
{
    tm_sale_line_t line = {.sku = "1", .name = "x", .qty = 1000, .unit_price = 100 + k};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = 100 + k};
    tm_sale_t s = {.till = "t",
                   .receipt_no = (uint64_t)k + 1,
                   .created_at = "2026-01-01T00:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = 100 + k,
                   .payments = &pay,
                   .n_payments = 1};
    tm_uuid_new(s.sale_id);
    uint8_t *body;
    size_t len;
    cr_assert_eq(tm_wire_sale_encode(&s, &body, &len), TM_OK);
    uint64_t hlc = tm_engine_hlc_now(net->eng[i], wall_of(net, i));
    cr_assert_eq(
        tm_engine_local_op(net->eng[i], TM_OP_SALE, hlc, body, len, net->now, &net->box[i]), TM_OK);
    free(body);
}

static void digest_of(net_t *net, int i, uint8_t out[32])
{
    cr_assert_eq(tm_store_digest(net->store[i], out), TM_OK);
}

static void assert_converged(net_t *net)
{
    uint8_t d0[32], di[32];
    digest_of(net, 0, d0);
    for (int i = 1; i < net->n; i++) {
        digest_of(net, i, di);
        cr_assert_arr_eq(d0, di, 32, "till %s differs from a", net->names[i]);
    }
}

static uint64_t ops_held(net_t *net, int i)
{
    tm_store_counts_t c;
    cr_assert_eq(tm_store_counts(net->store[i], &c), TM_OK);
    return c.ops;
}

Test(engine, a_local_op_is_pushed_to_every_live_peer_at_once)
{
    net_t net;
    net_init(&net, 3, 1000);
    net_link(&net, 0, 1, 1);
    net_link(&net, 0, 2, 1);
    net_link(&net, 1, 2, 1);
    run_for(&net, 300); /* hellos and heartbeats: everyone alive */
    local_sale(&net, 0, 1);
    deliver(&net); /* no time passes: this is the push, not a pull */
    cr_assert_eq(ops_held(&net, 1), 1);
    cr_assert_eq(ops_held(&net, 2), 1);
    assert_converged(&net);
    net_free(&net);
}

Test(engine, a_till_that_missed_2500_ops_catches_up_in_bounded_batches)
{
    net_t net;
    net_init(&net, 2, 100);
    net_link(&net, 0, 1, 1);
    run_for(&net, 300);
    net.link[0][1] = net.link[1][0] = 0; /* cable pulled */
    for (int k = 0; k < 2500; k++)
        local_sale(&net, 0, k);
    deliver(&net);
    cr_assert_eq(ops_held(&net, 1), 0);
    net.link[0][1] = net.link[1][0] = 1;
    net.max_batch_seen = 0;
    run_for(&net, 2000);
    cr_assert_eq(ops_held(&net, 1), 2500);
    cr_assert_leq(net.max_batch_seen, 100, "a pull answer carried %zu ops", net.max_batch_seen);
    assert_converged(&net);
    net_free(&net);
}

Test(engine, a_and_c_converge_through_b_without_a_direct_link)
{
    net_t net;
    net_init(&net, 3, 1000);
    net_link(&net, 0, 1, 1);
    net_link(&net, 1, 2, 1);
    for (int k = 0; k < 30; k++) {
        local_sale(&net, 0, k);
        local_sale(&net, 2, 100 + k);
    }
    run_for(&net, 1500);
    cr_assert_eq(ops_held(&net, 0), 60);
    cr_assert_eq(ops_held(&net, 2), 60);
    assert_converged(&net);
    net_free(&net);
}

Test(engine, malformed_frames_are_counted_and_change_nothing)
{
    net_t net;
    net_init(&net, 2, 1000);
    net_link(&net, 0, 1, 1);
    run_for(&net, 300);
    uint8_t before[32], after[32];
    digest_of(&net, 1, before);
    uint8_t junk[64];
    memset(junk, 0xff, sizeof junk);
    for (int k = 0; k < 10; k++)
        cr_assert_neq(tm_engine_on_frame(net.eng[1], "a", junk, sizeof junk - (size_t)k, net.now,
                                         net.wall, &net.box[1]),
                      TM_OK);
    digest_of(&net, 1, after);
    cr_assert_arr_eq(before, after, 32);
    tm_peer_info_t p;
    cr_assert_eq(tm_engine_peer_info(net.eng[1], 0, &p), TM_OK);
    cr_assert_eq(p.frames_bad, 10);
    tm_engine_stats_t st;
    tm_engine_stats(net.eng[1], &st);
    cr_assert_eq(st.frames_bad, 10);
    net_free(&net);
}

Test(engine, a_silent_peer_goes_down_and_comes_back_alive)
{
    net_t net;
    net_init(&net, 2, 1000);
    net_link(&net, 0, 1, 1);
    run_for(&net, 300);
    tm_peer_info_t p;
    tm_engine_peer_info(net.eng[0], 0, &p);
    cr_assert_eq(p.state, TM_PEER_ALIVE);
    net.link[0][1] = net.link[1][0] = 0;
    run_for(&net, 1000);
    tm_engine_peer_info(net.eng[0], 0, &p);
    cr_assert_eq(p.state, TM_PEER_DOWN);
    net.link[0][1] = net.link[1][0] = 1;
    run_for(&net, 300);
    tm_engine_peer_info(net.eng[0], 0, &p);
    cr_assert_eq(p.state, TM_PEER_ALIVE);
    net_free(&net);
}

Test(engine, a_till_of_another_store_is_ignored)
{
    net_t net;
    net_init(&net, 2, 1000);
    /* Re-create b's engine with another store id. */
    tm_engine_destroy(&net.eng[1]);
    tm_engine_cfg_t cfg = {.name = "b", .store_id = "store-2", .heartbeat_ms = 100};
    cr_assert_eq(tm_engine_new(&cfg, net.store[1], &quiet, &net.eng[1]), TM_OK);
    net_link(&net, 0, 1, 1);
    local_sale(&net, 0, 1);
    local_sale(&net, 1, 2);
    run_for(&net, 1000);
    cr_assert_eq(ops_held(&net, 0), 1);
    cr_assert_eq(ops_held(&net, 1), 1);
    tm_peer_info_t p;
    tm_engine_peer_info(net.eng[0], 0, &p);
    cr_assert_eq(p.state, TM_PEER_FOREIGN);
    cr_assert_str_eq(p.store_id, "store-2");
    net_free(&net);
}

Test(engine, no_op_is_refused_for_its_timestamp)
{
    /* a is a day ahead, b is at 2000-01-01, c is right: every op reaches
     * every till, and the stores converge. */
    net_t net;
    net_init(&net, 3, 1000);
    net.skew[0] = 86400000LL;
    net.skew[1] = (int64_t)946684800000LL - (int64_t)net.wall;
    net_link(&net, 0, 1, 1);
    net_link(&net, 0, 2, 1);
    net_link(&net, 1, 2, 1);
    run_for(&net, 300);
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < 3; i++)
            local_sale(&net, i, 10 * i + k);
    run_for(&net, 500);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ops_held(&net, i), 15, "till %s holds %llu ops", net.names[i],
                     (unsigned long long)ops_held(&net, i));
    assert_converged(&net);
    tm_engine_stats_t st;
    tm_engine_stats(net.eng[2], &st);
    cr_assert_geq(st.stamps_far_ahead, 5, "c counts a's stamps as too far ahead to adopt");
    /* c's clock was not dragged a day ahead. */
    uint64_t h = tm_engine_hlc_now(net.eng[2], wall_of(&net, 2));
    cr_assert_eq(h >> 16, wall_of(&net, 2));
    net_free(&net);
}

Test(engine, a_relayed_batch_with_a_far_future_op_delivers_the_others_too)
{
    /* a (a year ahead) reaches only b; c learns everything through b. */
    net_t net;
    net_init(&net, 3, 1000);
    net.skew[0] = 365LL * 86400000LL;
    net_link(&net, 0, 1, 1);
    net_link(&net, 1, 2, 1);
    run_for(&net, 300);
    net.link[1][2] = net.link[2][1] = 0;
    local_sale(&net, 0, 1);
    local_sale(&net, 1, 2);
    local_sale(&net, 0, 3);
    run_for(&net, 200);
    net.link[1][2] = net.link[2][1] = 1;
    run_for(&net, 1000);
    cr_assert_eq(ops_held(&net, 2), 3);
    assert_converged(&net);
    net_free(&net);
}

Test(engine, each_till_measures_the_others_clocks_and_the_wrong_one_knows)
{
    net_t net;
    net_init(&net, 3, 1000);
    net.skew[1] = -600000; /* b is 10 minutes behind */
    net.skew[2] = 1500;    /* c is 1.5 s ahead: inside the 5 s bound */
    net_link(&net, 0, 1, 1);
    net_link(&net, 0, 2, 1);
    net_link(&net, 1, 2, 1);
    run_for(&net, 1000);
    tm_clock_status_t cs;
    tm_engine_clock(net.eng[1], wall_of(&net, 1), &cs);
    cr_assert_eq(cs.measured, 2);
    cr_assert(cs.skewed, "b must know its clock is wrong");
    cr_assert_eq(cs.offset_ms, -600000);
    tm_engine_clock(net.eng[0], wall_of(&net, 0), &cs);
    cr_assert_not(cs.skewed, "a is right");
    cr_assert_eq(cs.offset_ms, 0, "median of {a 0, b -600 s, c +1.5 s} is a's");
    cr_assert_eq(cs.peers_skewed, 1);
    tm_engine_clock(net.eng[2], wall_of(&net, 2), &cs);
    cr_assert_not(cs.skewed, "c is inside the bound");
    cr_assert_eq(cs.offset_ms, 1500);
    /* Per peer, as status shows it. */
    tm_peer_info_t p;
    for (size_t k = 0; k < tm_engine_peer_count(net.eng[0]); k++) {
        cr_assert_eq(tm_engine_peer_info(net.eng[0], k, &p), TM_OK);
        cr_assert(p.clock_known);
        cr_assert_eq(p.clock_offset_ms, strcmp(p.name, "b") == 0 ? -600000 : 1500);
    }
    /* b's clock is fixed (NTP steps it): within a few heartbeats it agrees. */
    net.skew[1] = 0;
    run_for(&net, 1000);
    tm_engine_clock(net.eng[1], wall_of(&net, 1), &cs);
    cr_assert_not(cs.skewed);
    net_free(&net);
}

Test(engine, a_lone_till_measures_nothing_and_reports_no_skew)
{
    net_t net;
    net_init(&net, 1, 1000);
    net.skew[0] = -600000;
    run_for(&net, 500);
    tm_clock_status_t cs;
    tm_engine_clock(net.eng[0], wall_of(&net, 0), &cs);
    cr_assert_eq(cs.measured, 0);
    cr_assert_not(cs.skewed);
    net_free(&net);
}

Test(engine, status_lag_counts_what_each_side_lacks)
{
    net_t net;
    net_init(&net, 2, 1000);
    net_link(&net, 0, 1, 1);
    run_for(&net, 300);
    net.link[0][1] = 0; /* a cannot reach b; b still reaches a */
    for (int k = 0; k < 5; k++)
        local_sale(&net, 0, k);
    run_for(&net, 200);
    tm_peer_info_t p;
    tm_engine_peer_info(net.eng[0], 0, &p);
    cr_assert_eq(p.they_lack, 5);
    cr_assert_eq(p.we_lack, 0);
    net_free(&net);
}
