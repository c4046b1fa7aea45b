/* daemon.c - the poll loop of tillmeshd (see tm_daemon.h). */
#include "daemon_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define VERSION_STR "0.1.0"

uint64_t tm_daemon_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t tm_daemon_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tm_daemon_flush(tm_daemon_t *d)
{
    for (size_t i = 0; i < d->outbox.n; i++) {
        const tm_out_t *o = &d->outbox.v[i];
        if (o->kind == TM_OUT_SEND)
            (void)tm_mesh_send(d->mesh, o->peer, o->frame, o->len);
        else if (o->kind == TM_OUT_CONNECT)
            (void)tm_mesh_connect(d->mesh, o->peer, o->endpoint);
    }
    tm_outbox_clear(&d->outbox);
}

static void on_frame(void *ctx, const char *peer, const uint8_t *frame, size_t len)
{
    tm_daemon_t *d = ctx;
    (void)tm_engine_on_frame(d->engine, peer, frame, len, tm_daemon_mono_ms(), tm_daemon_wall_ms(),
                             &d->outbox);
}

static int open_store(tm_daemon_t *d)
{
    char path[600];
    if (mkdir(d->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        tm_log_error(d->log, "cannot create data_dir %s: %s", d->cfg.data_dir, strerror(errno));
        return TM_EIO;
    }
    snprintf(path, sizeof path, "%s/tillmesh.db", d->cfg.data_dir);
    int rc = tm_store_open(path, NULL, &d->store);
    if (rc) {
        tm_log_error(d->log, "cannot open store %s: %s", path, tm_strerror(rc));
        return rc;
    }
    uint8_t id[TM_NODE_ID_LEN];
    char hex[TM_NODE_HEX_LEN];
    tm_store_node_id(d->store, id);
    tm_hex(id, TM_NODE_ID_LEN, hex);
    tm_log_info(d->log, "store %s (node id %s, schema v%d)", path, hex,
                tm_store_schema_version(d->store));
    return TM_OK;
}

static int start_engine(tm_daemon_t *d)
{
    const char *ep = d->cfg.advertise[0] ? d->cfg.advertise : tm_mesh_endpoint(d->mesh);
    tm_strlcpy(d->advertise, ep, sizeof d->advertise);
    if (strstr(d->advertise, "0.0.0.0") || strstr(d->advertise, "[::]"))
        tm_log_warn(d->log, "mesh listens on a wildcard address and [mesh] advertise is not set: "
                            "peers that learn of us cannot connect back");
    tm_engine_cfg_t ec = {
        .name = d->cfg.name,
        .store_id = d->cfg.store_id,
        .mesh_endpoint = d->advertise,
        .heartbeat_ms = d->cfg.heartbeat_ms,
        .peer_timeout_ms = d->cfg.peer_timeout_ms,
        .batch_max_ops = d->cfg.batch_max_ops,
        .clock_warn_ms = d->cfg.clock_warn_ms,
        .priority = d->cfg.priority,
        .forwarder_stall_ms = d->cfg.erp_url[0] ? d->cfg.erp_forwarder_stall_ms : 0,
    };
    int rc = tm_engine_new(&ec, d->store, d->log, &d->engine);
    for (int i = 0; rc == TM_OK && i < d->cfg.n_peers; i++)
        rc = tm_engine_add_peer(d->engine, d->cfg.peers[i].name, d->cfg.peers[i].endpoint,
                                TM_SRC_STATIC, &d->outbox);
    return rc;
}

static int start_erp(tm_daemon_t *d)
{
    const tm_config_t *c = &d->cfg;
    if (!c->erp_url[0]) {
        tm_log_info(d->log, "no [erp] url: this till will not forward to the ERP");
        return TM_OK;
    }
    tm_erp_cfg_t ec = {
        .url = c->erp_url,
        .token_file = c->erp_token_file,
        .probe_interval_ms = c->erp_probe_interval_ms,
        .probe_timeout_ms = c->erp_probe_timeout_ms,
        .rise = c->erp_rise,
        .fall = c->erp_fall,
        .request_timeout_ms = c->erp_request_timeout_ms,
        .tls_verify = c->erp_tls_verify != 0,
    };
    int rc = tm_erp_new(&ec, d->log, &d->erp);
    if (rc) {
        tm_log_error(d->log, "ERP client: %s", tm_strerror(rc));
        return rc;
    }
    tm_fwd_cfg_t fc = {.batch_max = c->erp_batch_max,
                       .backoff_min_ms = c->erp_backoff_min_ms,
                       .backoff_max_ms = c->erp_backoff_max_ms,
                       .till = c->name,
                       .reconcile_interval_ms = c->erp_reconcile_interval_ms,
                       .reconcile_batch = c->erp_reconcile_batch};
    rc = tm_fwd_new(&fc, d->store, d->engine, d->erp, &d->outbox, d->log, &d->fwd);
    if (rc == TM_OK)
        tm_log_info(d->log, "ERP at %s (priority %u)", c->erp_url, c->priority);
    return rc;
}

static int start_api(tm_daemon_t *d)
{
    char host[64];
    uint16_t port;
    tm_api_backend_t be;
    if (tm_config_split_hostport(d->cfg.api_listen, host, sizeof host, &port))
        return TM_ECONFIG;
    tm_daemon_backend(d, &be);
    int rc = tm_api_new(host, port, TM_API_MAX_BODY_DEFAULT, &be, d->log, &d->api);
    if (rc)
        tm_log_error(d->log, "cannot start the local API on %s: %s", d->cfg.api_listen,
                     tm_strerror(rc));
    else
        tm_log_info(d->log, "local API on http://%s:%u/v1/", host, tm_api_port(d->api));
    return rc;
}

int tm_daemon_new(const tm_config_t *cfg, const char *config_path, tm_log_t *log, tm_daemon_t **out)
{
    *out = NULL;
    tm_daemon_t *d = calloc(1, sizeof *d);
    if (!d)
        return TM_ENOMEM;
    d->cfg = *cfg;
    tm_strlcpy(d->config_path, config_path, sizeof d->config_path);
    d->log = log;
    d->started_ms = tm_daemon_mono_ms();
    tm_mesh_cfg_t mc = {
        .listen = cfg->listen,
        .secret_key_file = cfg->secret_key,
        .public_key_file = cfg->public_key,
        .trusted_keys_file = cfg->trusted_keys,
    };
    int rc;
    if ((rc = open_store(d)) || (rc = tm_mesh_new(&mc, log, &d->mesh)) || (rc = start_engine(d)) ||
        (rc = start_erp(d)) || (rc = start_api(d)) || (rc = tm_daemon_start_disc(d)))
        goto fail;
    tm_log_info(log, "tillmeshd %s: till %s of store %s is up", VERSION_STR, cfg->name,
                cfg->store_id);
    *out = d;
    return TM_OK;
fail:
    tm_daemon_destroy(&d);
    return rc;
}

void tm_daemon_destroy(tm_daemon_t **self_p)
{
    tm_daemon_t *d = *self_p;
    if (!d)
        return;
    tm_disc_destroy(&d->disc);
    tm_api_destroy(&d->api);
    tm_fwd_destroy(&d->fwd);
    tm_erp_destroy(&d->erp);
    tm_engine_destroy(&d->engine);
    tm_mesh_destroy(&d->mesh);
    tm_store_destroy(&d->store);
    tm_outbox_free(&d->outbox);
    free(d);
    *self_p = NULL;
}

static void reload(tm_daemon_t *d)
{
    tm_config_t nc;
    tm_log_info(d->log, "SIGHUP: reloading %s", d->config_path);
    if (tm_config_load(d->config_path, d->log, &nc) != TM_OK) {
        tm_log_error(d->log, "reload refused: the file has errors; still running on the old "
                             "configuration");
        return;
    }
    if (strcmp(nc.name, d->cfg.name) || strcmp(nc.store_id, d->cfg.store_id) ||
        strcmp(nc.data_dir, d->cfg.data_dir) || strcmp(nc.listen, d->cfg.listen) ||
        strcmp(nc.api_listen, d->cfg.api_listen))
        tm_log_warn(d->log, "name, store_id, data_dir and listen addresses change only on "
                            "restart; other settings applied");
    d->log->level = nc.log_level;
    (void)tm_mesh_reload_trusted(d->mesh);
    for (int i = 0; i < nc.n_peers; i++)
        (void)tm_engine_add_peer(d->engine, nc.peers[i].name, nc.peers[i].endpoint, TM_SRC_STATIC,
                                 &d->outbox);
    tm_daemon_flush(d);
}

static long poll_timeout(tm_daemon_t *d)
{
    uint64_t now = tm_daemon_mono_ms();
    uint64_t dl = tm_engine_next_deadline(d->engine);
    long t = dl > now ? (long)(dl - now) : 0;
    int64_t at = tm_api_timeout_ms(d->api);
    if (at >= 0 && at < t)
        t = (long)at;
    long ht = tm_daemon_housekeep_timeout(d, now);
    if (ht < t)
        t = ht;
    if (d->erp) {
        long et = tm_erp_timeout_ms(d->erp, now), ft = tm_fwd_timeout_ms(d->fwd, now);
        if (et >= 0 && et < t)
            t = et;
        if (ft >= 0 && ft < t)
            t = ft;
    }
    return t > 1000 ? 1000 : t;
}

/* Probe and POST progress, the uplink verdict into the election, and the
 * next batch if we are the forwarder. */
static void run_erp(tm_daemon_t *d, uint64_t now)
{
    uint64_t wall = tm_daemon_wall_ms(), since;
    tm_erp_run(d->erp, now, wall);
    tm_uplink_t u = tm_erp_uplink(d->erp, &since);
    tm_engine_set_uplink(d->engine, u, since, now);
    tm_fwd_step(d->fwd, now, wall);
    tm_daemon_flush(d);
}

int tm_daemon_run(tm_daemon_t *d, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload_p)
{
    zmq_pollitem_t items[64];
    tm_daemon_flush(d); /* connects to static peers */
    while (!*stop) {
        if (*reload_p) {
            *reload_p = 0;
            reload(d);
        }
        size_t n = tm_mesh_pollitems(d->mesh, items, 3);
        items[n++] =
            (zmq_pollitem_t){.socket = NULL, .fd = tm_api_fd(d->api), .events = ZMQ_POLLIN};
        if (d->disc)
            items[n++] =
                (zmq_pollitem_t){.socket = NULL, .fd = tm_disc_fd(d->disc), .events = ZMQ_POLLIN};
        if (d->erp)
            n += tm_erp_pollitems(d->erp, items + n, 64 - n);
        if (zmq_poll(items, (int)n, poll_timeout(d)) < 0 && zmq_errno() != EINTR) {
            tm_log_error(d->log, "zmq_poll: %s", zmq_strerror(zmq_errno()));
            return TM_EIO;
        }
        tm_mesh_process(d->mesh, on_frame, d);
        tm_daemon_flush(d);
        tm_daemon_disc_events(d);
        tm_api_run(d->api);
        tm_daemon_flush(d);
        uint64_t now = tm_daemon_mono_ms();
        if (d->erp)
            run_erp(d, now);
        tm_daemon_housekeep(d, now);
        if (now >= tm_engine_next_deadline(d->engine)) {
            (void)tm_engine_tick(d->engine, now, tm_daemon_wall_ms(), &d->outbox);
            tm_daemon_flush(d);
        }
    }
    tm_log_info(d->log, "shutting down");
    return TM_OK;
}
