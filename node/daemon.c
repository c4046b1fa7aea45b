/* daemon.c - the poll loop of tillmeshd (see tm_daemon.h). */
#include "daemon_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tm_sign.h"

#define VERSION_STR "0.1.0"

/* How often the store's path is compared with the open files. */
#define STORE_CHECK_MS 1000

static void on_link_up(void *ctx, const char *peer)
{
    tm_daemon_t *d = ctx;
    tm_engine_link_up(d->engine, peer, tm_now_mono_ms());
}

static void on_frame(void *ctx, const char *peer, const uint8_t *frame, size_t len)
{
    tm_daemon_t *d = ctx;
    (void)tm_engine_on_frame(d->engine, peer, frame, len, tm_now_mono_ms(), tm_now_wall_ms(),
                             &d->outbox);
}

/* A store that fails its checks at start (quick_check, "file is not a
 * database") is moved aside, not repaired in place and not left to keep the
 * till down: a fresh store with a new node id starts, peers re-seed it by
 * the normal pull, and whatever of the old op log can still be read is
 * applied with its old origins, so this till's own sales that no peer got
 * are kept where readable. A new node id rather than the old one: the old
 * id's highest seq is unknown (peers may hold seqs the salvage could not
 * read), and a reused seq would be a different op under a key peers
 * already hold. Old ops keep their origin and merge idempotently. */
static int heal_corrupt(tm_daemon_t *d, const char *why, const char *label)
{
    char old[sizeof d->health.store_corrupt_dir + 16], hex[TM_NODE_HEX_LEN] = "unknown";
    tm_log_error(d->log, "store %s cannot be used: %s", d->health.store_path, why);
    int rc = tm_store_quarantine(d->health.store_path, label, time(NULL),
                                 d->health.store_corrupt_dir, sizeof d->health.store_corrupt_dir);
    if (rc) {
        tm_log_error(d->log,
                     "cannot move the old store out of the way (%s): not starting; "
                     "move %s and its -wal and -shm files elsewhere by hand",
                     tm_strerror(rc), d->health.store_path);
        return rc;
    }
    tm_log_error(d->log,
                 "moved the old store to %s; starting with a fresh store (new node id), "
                 "re-seeding from peers and salvaging what can be read of the old one",
                 d->health.store_corrupt_dir);
    if ((rc = tm_store_open(d->health.store_path, NULL, &d->store))) {
        tm_log_error(d->log, "cannot create a fresh store %s: %s", d->health.store_path,
                     tm_strerror(rc));
        return rc;
    }
    d->health.store_healed = true;
    snprintf(old, sizeof old, "%s/tillmesh.db", d->health.store_corrupt_dir);
    rc = tm_store_salvage(d->store, old, &d->health.salvage);
    if (d->health.salvage.old_node_id_known)
        tm_hex(d->health.salvage.old_node_id, TM_NODE_ID_LEN, hex);
    tm_log_warn(d->log,
                "salvage: %llu ops kept of %llu rows read from the old %s (old node id %s); "
                "%llu unreadable places skipped, %llu rows not valid ops%s%s",
                (unsigned long long)d->health.salvage.ops_new,
                (unsigned long long)d->health.salvage.rows_read,
                d->health.salvage.wal_only ? "write-ahead log" : "store", hex,
                (unsigned long long)d->health.salvage.read_errors,
                (unsigned long long)d->health.salvage.ops_refused, rc ? "; stopped early: " : "",
                rc ? tm_strerror(rc) : "");
    return TM_OK; /* a partial salvage still leaves a working till */
}

static int open_store(tm_daemon_t *d)
{
    if (mkdir(d->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        tm_log_error(d->log, "cannot create data_dir %s: %s", d->cfg.data_dir, strerror(errno));
        return TM_EIO;
    }
    snprintf(d->health.store_path, sizeof d->health.store_path, "%s/tillmesh.db", d->cfg.data_dir);
    /* SQLite would delete a -wal found without its database, and with it
     * the latest commits (the database deleted after a crash). */
    char wal[sizeof d->health.store_path + 8];
    struct stat sb;
    snprintf(wal, sizeof wal, "%s-wal", d->health.store_path);
    int rc = TM_OK;
    if (stat(d->health.store_path, &sb) != 0 && errno == ENOENT && stat(wal, &sb) == 0 &&
        sb.st_size > 32)
        rc = heal_corrupt(d,
                          "the database file is gone but its write-ahead log (the latest "
                          "commits) is there: it was deleted while tillmeshd was stopped",
                          "orphan-wal");
    else if ((rc = tm_store_open(d->health.store_path, NULL, &d->store)) == TM_ECORRUPT)
        rc = heal_corrupt(d, tm_strerror(rc), "corrupt");
    if (rc) {
        if (!d->health.store_healed)
            tm_log_error(d->log, "cannot open store %s: %s", d->health.store_path, tm_strerror(rc));
        return rc;
    }
    uint8_t id[TM_NODE_ID_LEN];
    char hex[TM_NODE_HEX_LEN];
    tm_store_node_id(d->store, id);
    tm_hex(id, TM_NODE_ID_LEN, hex);
    tm_log_info(d->log, "store %s (node id %s, schema v%d)", d->health.store_path, hex,
                tm_store_schema_version(d->store));
    return TM_OK;
}

/* Gives the store the keys ops are signed and verified with: ours (from
 * our Curve secret key) and every trusted till's signing key. A trusted
 * line without one is said loudly: that till's new ops cannot be verified,
 * so they wait until the line is completed (SIGHUP picks it up). */
static int load_trust(tm_daemon_t *d)
{
    uint8_t pk[32], sk[64];
    size_t n = 0;
    const char *name;
    const uint8_t *pub, *sign;
    while (tm_mesh_trusted_at(d->mesh, n, &name, &pub) == TM_OK)
        n++;
    uint8_t(*pks)[32] = calloc(n + 1, sizeof *pks);
    if (!pks)
        return TM_ENOMEM;
    tm_sign_keypair(tm_mesh_secret_key(d->mesh), pk, sk);
    size_t k = 0;
    memcpy(pks[k++], pk, 32);
    for (size_t i = 0; i < n; i++) {
        tm_mesh_trusted_at(d->mesh, i, &name, &pub);
        if (tm_mesh_trusted_sign_at(d->mesh, i, &sign) == TM_OK)
            memcpy(pks[k++], sign, 32);
        else if (strcmp(name, d->cfg.name) != 0)
            tm_log_error(d->log,
                         "trusted keys: %s has no signing key (third field): its ops cannot be "
                         "verified and are not taken; add it from `tillmesh keygen --from` on "
                         "that till",
                         name);
    }
    int rc = tm_store_set_trusted(d->store, (const uint8_t(*)[32])pks, k);
    free(pks);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

static int start_trust(tm_daemon_t *d)
{
    uint8_t pk[32], sk[64];
    bool sealed = false;
    tm_sign_keypair(tm_mesh_secret_key(d->mesh), pk, sk);
    int rc = tm_store_set_signer(d->store, pk, sk, &sealed);
    sodium_memzero(sk, sizeof sk);
    if (rc) {
        tm_log_error(d->log, "cannot set up op signing: %s", tm_strerror(rc));
        return rc;
    }
    if (sealed) {
        uint8_t id[TM_NODE_ID_LEN];
        char hex[TM_NODE_HEX_LEN];
        tm_store_node_id(d->store, id);
        tm_hex(id, TM_NODE_ID_LEN, hex);
        tm_log_warn(d->log,
                    "first start with signed ops: this till now writes as origin %s and sealed "
                    "the unsigned history it holds (other tills accept that history up to the "
                    "seal)",
                    hex);
    }
    return load_trust(d);
}

/* Once a second: is the path still our file? A lost store is written back
 * from the open copy in place (same node id, nothing to re-seed); while it
 * cannot be, writes are refused (503 store_lost) and the attempt repeats.
 * Only when the open copy itself is unreadable, or the swap failed half
 * way, does the daemon stop (exit 4) for systemd to start it afresh. */
static int watch_store(tm_daemon_t *d, uint64_t now)
{
    d->store_check_at = now + STORE_CHECK_MS;
    if (!tm_store_is_lost(d->store) && tm_store_check_file(d->store) == TM_OK)
        return TM_OK;
    uint64_t wall = tm_now_wall_ms();
    if (!d->health.store_lost_wall_ms) {
        d->health.store_lost_wall_ms = wall;
        d->health.store_restore_error[0] = '\0';
        tm_log_error(d->log,
                     "store lost: %s. Sales and customer edits are refused (503 store_lost) "
                     "until it is back; writing it back from the copy still open. Never delete "
                     "or replace files under data_dir while tillmeshd runs",
                     tm_store_lost_reason(d->store));
    }
    char aside[700];
    int rc = tm_store_restore(d->store, time(NULL), aside, sizeof aside);
    if (rc == TM_OK) {
        d->health.store_restored++;
        if (aside[0])
            tm_log_warn(d->log, "the file found at %s was not ours: moved to %s",
                        d->health.store_path, aside);
        tm_log_warn(d->log,
                    "store restored at %s from the open copy after %llu ms: nothing lost, same "
                    "node id; sales are taken again",
                    d->health.store_path,
                    (unsigned long long)(wall - d->health.store_lost_wall_ms));
        d->health.store_lost_wall_ms = 0;
        return TM_OK;
    }
    const char *msg = tm_store_errmsg(d->store);
    if (rc == TM_ECORRUPT || rc == TM_ESTATE) {
        tm_log_error(d->log,
                     "cannot restore the store (%s): exiting with status %d so that systemd "
                     "starts tillmeshd again; it will open or re-create %s and re-seed from peers",
                     msg, TM_DAEMON_EXIT_STORE_LOST, d->health.store_path);
        return TM_ELOST;
    }
    /* Same trouble every second: say it when it changes, else every 30 s. */
    if (strcmp(msg, d->health.store_restore_error) != 0 ||
        now - d->store_restore_logged_ms >= 30000) {
        tm_log_error(d->log,
                     "cannot write the store back yet (%s): retrying every second; "
                     "sales stay refused until then",
                     msg);
        tm_strlcpy(d->health.store_restore_error, msg, sizeof d->health.store_restore_error);
        d->store_restore_logged_ms = now;
    }
    return TM_OK;
}

static size_t trusted_count(const tm_mesh_t *m)
{
    const char *name;
    const uint8_t *pub;
    size_t n = 0;
    while (tm_mesh_trusted_at(m, n, &name, &pub) == TM_OK)
        n++;
    return n;
}

/* Each trusted till's signing key by name, for the engine: it binds a node
 * id only to the till whose key owns it. */
static int engine_keys(tm_daemon_t *d)
{
    size_t n = 0, k = 0;
    const char *name;
    const uint8_t *pub, *sign;
    while (tm_mesh_trusted_at(d->mesh, n, &name, &pub) == TM_OK)
        n++;
    const char **names = calloc(n + 1, sizeof *names);
    uint8_t(*pks)[32] = calloc(n + 1, sizeof *pks);
    int rc = TM_ENOMEM;
    if (names && pks) {
        for (size_t i = 0; i < n; i++)
            if (tm_mesh_trusted_at(d->mesh, i, &name, &pub) == TM_OK &&
                tm_mesh_trusted_sign_at(d->mesh, i, &sign) == TM_OK) {
                names[k] = name;
                memcpy(pks[k++], sign, 32);
            }
        rc = tm_engine_set_peer_keys(d->engine, names, (const uint8_t(*)[32])pks, k);
    }
    free(names);
    free(pks);
    return rc;
}

/* After the trusted keys were re-read: peers whose key is gone are cut off
 * (tm_engine_revoke), peers whose key came back are let in again. Entries
 * named "untrusted:..." are discovery's and have no key to lose. */
static void apply_trust(tm_daemon_t *d)
{
    tm_engine_set_trusted_count(d->engine, trusted_count(d->mesh));
    if (engine_keys(d))
        tm_log_error(d->log, "out of memory for the trusted signing keys");
    for (size_t i = 0; i < tm_engine_peer_count(d->engine); i++) {
        tm_peer_info_t p;
        if (tm_engine_peer_info(d->engine, i, &p) || p.state == TM_PEER_UNTRUSTED)
            continue;
        bool trusted = tm_mesh_is_trusted(d->mesh, p.name);
        if (!trusted || p.state == TM_PEER_REVOKED)
            (void)tm_engine_revoke(d->engine, p.name, !trusted, &d->outbox);
    }
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
        .origin_quota_ops_per_hour = d->cfg.origin_quota_ops_per_hour,
        .forwarder_stall_ms = d->cfg.erp_url[0] ? d->cfg.erp_forwarder_stall_ms : 0,
    };
    int rc = tm_engine_new(&ec, d->store, d->log, &d->engine);
    if (rc == TM_OK) {
        tm_engine_set_trusted_count(d->engine, trusted_count(d->mesh));
        rc = engine_keys(d);
    }
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
        .till = c->name,
        .probe_interval_ms = c->erp_probe_interval_ms,
        .probe_slow_interval_ms = c->erp_probe_slow_interval_ms,
        .probe_timeout_ms = c->erp_probe_timeout_ms,
        .probe_suspect_ms = c->erp_probe_suspect_ms,
        .rise = c->erp_rise,
        .fall = c->erp_fall,
        .silent_fall = c->erp_silent_fall,
        .request_timeout_ms = c->erp_request_timeout_ms,
        .tls_verify = c->erp_tls_verify != 0,
    };
    int rc = tm_erp_new(&ec, d->log, &d->erp);
    if (rc) {
        tm_log_error(d->log, "ERP client: %s", tm_strerror(rc));
        return rc;
    }
    tm_fwd_cfg_t fc = {.batch_max = c->erp_batch_max,
                       .max_in_flight = c->erp_max_in_flight,
                       .backoff_min_ms = c->erp_backoff_min_ms,
                       .backoff_max_ms = c->erp_backoff_max_ms,
                       .till = c->name,
                       .reconcile_interval_ms = c->erp_reconcile_interval_ms,
                       .reconcile_batch = c->erp_reconcile_batch,
                       .catalogue_interval_ms = c->erp_catalogue_interval_s * 1000,
                       .catalogue_page = c->erp_catalogue_page};
    rc = tm_fwd_new(&fc, d->store, d->engine, d->erp, &d->outbox, d->log, &d->fwd);
    if (rc == TM_OK)
        tm_log_info(d->log, "ERP at %s (priority %u)", c->erp_url, c->priority);
    return rc;
}

/* What the backend works with, lent by the daemon for as long as the API
 * runs (tm_backend.h); filled once the ERP and the forwarder exist. */
static tm_backend_ctx_t *backend_ctx(tm_daemon_t *d)
{
    d->backend = (tm_backend_ctx_t){.cfg = &d->cfg,
                                    .log = d->log,
                                    .store = d->store,
                                    .engine = d->engine,
                                    .mesh = d->mesh,
                                    .erp = d->erp,
                                    .fwd = d->fwd,
                                    .api = &d->api,
                                    .outbox = &d->outbox,
                                    .advertise = d->advertise,
                                    .started_ms = d->started_ms,
                                    .health = &d->health};
    return &d->backend;
}

/* What discovery works with (tm_discover.h). */
static tm_discover_ctx_t disc_ctx(tm_daemon_t *d)
{
    return (tm_discover_ctx_t){.cfg = &d->cfg,
                               .log = d->log,
                               .store = d->store,
                               .mesh = d->mesh,
                               .engine = d->engine,
                               .outbox = &d->outbox,
                               .advertise = d->advertise};
}

static int start_disc(tm_daemon_t *d)
{
    tm_discover_ctx_t dc = disc_ctx(d);
    return tm_discover_start(&dc, &d->disc);
}

static int start_api(tm_daemon_t *d)
{
    char host[64], token[TM_API_TOKEN_MAX + 1] = "";
    uint16_t port;
    tm_api_backend_t be;
    if (tm_config_split_hostport(d->cfg.api_listen, host, sizeof host, &port))
        return TM_ECONFIG;
    int rc = TM_OK;
    if (d->cfg.api_token_file[0] &&
        (rc = tm_api_read_token(d->cfg.api_token_file, d->log, token, sizeof token)))
        return rc;
    tm_backend_api(backend_ctx(d), &be);
    tm_api_cfg_t ac = {.addr = host,
                       .port = port,
                       .request_timeout_ms = d->cfg.api_request_timeout_s * 1000u,
                       .token = token};
    rc = tm_api_new(&ac, &be, d->log, &d->api);
    explicit_bzero(token, sizeof token);
    if (rc)
        tm_log_error(d->log, "cannot start the local API on %s: %s", d->cfg.api_listen,
                     tm_strerror(rc));
    else
        tm_log_info(d->log, "local API on http://%s:%u/v1/", host, tm_api_port(d->api));
    return rc;
}

/* [node] metrics_listen: a second listener for Prometheus on the LAN that
 * serves GET /metrics and nothing else, so that a scrape never needs the
 * write API exposed (tm_api_cfg_t.metrics_only). */
static int start_metrics(tm_daemon_t *d)
{
    char host[64];
    uint16_t port;
    tm_api_backend_t be;
    if (!d->cfg.metrics_listen[0])
        return TM_OK;
    if (tm_config_split_hostport(d->cfg.metrics_listen, host, sizeof host, &port))
        return TM_ECONFIG;
    tm_backend_api(backend_ctx(d), &be);
    tm_api_cfg_t ac = {.addr = host,
                       .port = port,
                       .request_timeout_ms = d->cfg.api_request_timeout_s * 1000u,
                       .max_conns = 16,
                       .remote_max_conns = 16,
                       .remote_per_ip = 4,
                       .metrics_only = true};
    int rc = tm_api_new(&ac, &be, d->log, &d->metrics);
    if (rc)
        tm_log_error(d->log, "cannot start the metrics listener on %s: %s", d->cfg.metrics_listen,
                     tm_strerror(rc));
    else
        tm_log_info(d->log, "metrics (GET /metrics only, no token) on http://%s:%u/metrics", host,
                    tm_api_port(d->metrics));
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
    d->started_ms = tm_now_mono_ms();
    tm_mesh_cfg_t mc = {
        .listen = cfg->listen,
        .secret_key_file = cfg->secret_key,
        .public_key_file = cfg->public_key,
        .trusted_keys_file = cfg->trusted_keys,
    };
    int rc;
    if ((rc = open_store(d)) || (rc = tm_mesh_new(&mc, log, &d->mesh)) || (rc = start_trust(d)) ||
        (rc = start_engine(d)) || (rc = start_erp(d)) || (rc = start_api(d)) ||
        (rc = start_metrics(d)) || (rc = start_disc(d)))
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
    tm_api_destroy(&d->metrics);
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
        strcmp(nc.api_listen, d->cfg.api_listen) ||
        strcmp(nc.metrics_listen, d->cfg.metrics_listen) ||
        strcmp(nc.api_token_file, d->cfg.api_token_file) ||
        nc.api_allow_remote != d->cfg.api_allow_remote ||
        nc.api_request_timeout_s != d->cfg.api_request_timeout_s)
        tm_log_warn(d->log, "name, store_id, data_dir, listen addresses and the api_ settings "
                            "change only on restart; other settings applied");
    d->log->level = nc.log_level;
    /* TM_EIO: the keys were read but the listener could not be reset
     * (logged); the new keys apply all the same. */
    int trc = tm_mesh_reload_trusted(d->mesh);
    if (trc == TM_OK || trc == TM_EIO) {
        (void)load_trust(d);
        apply_trust(d);
    } else {
        tm_log_error(d->log, "trusted keys not reloaded (%s): still using the keys read before",
                     tm_strerror(trc));
    }
    /* A static peer whose key was not trusted at start was never
     * connected (tm_mesh_connect refused it) and the engine, which knows
     * it already, queues no new connect: connect it now that its key is in
     * (`tillmesh trust add` + reload). A link that exists is left as is. */
    for (int i = 0; i < nc.n_peers; i++)
        if (tm_engine_add_peer(d->engine, nc.peers[i].name, nc.peers[i].endpoint, TM_SRC_STATIC,
                               &d->outbox) == TM_OK &&
            tm_mesh_is_trusted(d->mesh, nc.peers[i].name))
            (void)tm_mesh_connect(d->mesh, nc.peers[i].name, nc.peers[i].endpoint);
    tm_deliver(d->mesh, &d->outbox);
}

static long poll_timeout(tm_daemon_t *d)
{
    uint64_t now = tm_now_mono_ms();
    uint64_t dl = tm_engine_next_deadline(d->engine);
    long t = dl > now ? (long)(dl - now) : 0;
    int64_t at = tm_api_timeout_ms(d->api);
    if (at >= 0 && at < t)
        t = (long)at;
    if (d->metrics && (at = tm_api_timeout_ms(d->metrics)) >= 0 && at < t)
        t = (long)at;
    long ht = tm_daemon_housekeep_timeout(d, now);
    if (ht < t)
        t = ht;
    long nt = tm_daemon_notify_timeout(d, now);
    if (nt < t)
        t = nt;
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
    uint64_t wall = tm_now_wall_ms(), since;
    tm_forwarder_t fw;
    tm_engine_forwarder(d->engine, &fw);
    if (fw.have != d->probe_fwd || fw.epoch != d->probe_epoch) {
        d->probe_fwd = fw.have;
        d->probe_epoch = fw.epoch;
        tm_erp_probe_once(d->erp); /* the slow tills' verdicts may be old: refresh them */
    }
    tm_erp_set_fast(d->erp, tm_engine_probe_fast(d->engine), now);
    tm_erp_run(d->erp, now, wall);
    tm_uplink_t u = tm_erp_uplink(d->erp, &since);
    tm_engine_set_uplink(d->engine, u, since, now);
    tm_fwd_step(d->fwd, now, wall);
    tm_deliver(d->mesh, &d->outbox);
}

int tm_daemon_run(tm_daemon_t *d, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload_p)
{
    zmq_pollitem_t items[64];
    tm_deliver(d->mesh, &d->outbox); /* connects to static peers */
    tm_daemon_notify_ready(d);
    while (!*stop) {
        if (*reload_p) {
            *reload_p = 0;
            tm_daemon_notify_reloading(d);
            reload(d);
            tm_daemon_notify_ready(d);
        }
        /* The rest of items is for the API, metrics, discovery, the ERP. */
        size_t n = tm_mesh_pollitems(d->mesh, items, 40);
        items[n++] =
            (zmq_pollitem_t){.socket = NULL, .fd = tm_api_fd(d->api), .events = ZMQ_POLLIN};
        if (d->metrics)
            items[n++] =
                (zmq_pollitem_t){.socket = NULL, .fd = tm_api_fd(d->metrics), .events = ZMQ_POLLIN};
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
        (void)tm_mesh_links_up(d->mesh, on_link_up, d);
        tm_deliver(d->mesh, &d->outbox);
        tm_discover_ctx_t dc = disc_ctx(d);
        tm_discover_events(&dc, d->disc);
        tm_api_run(d->api);
        if (d->metrics)
            tm_api_run(d->metrics);
        tm_deliver(d->mesh, &d->outbox);
        uint64_t now = tm_now_mono_ms();
        tm_daemon_notify_tick(d, now);
        if (d->erp)
            run_erp(d, now);
        tm_daemon_housekeep(d, now);
        /* A write that found the store lost is acted on at once; retries
         * then keep the one-second pace. */
        bool noticed = !d->health.store_lost_wall_ms && tm_store_is_lost(d->store);
        if ((noticed || now >= d->store_check_at) && watch_store(d, now) != TM_OK)
            return TM_ELOST;
        if (now >= tm_engine_next_deadline(d->engine)) {
            (void)tm_engine_tick(d->engine, now, tm_now_wall_ms(), &d->outbox);
            tm_deliver(d->mesh, &d->outbox);
        }
    }
    tm_daemon_notify_stopping(d);
    /* Files deleted just before a stop (rm, then a restart) are written
     * back first: the next start must find this till's sales and id. To
     * reset a till on purpose, stop it, then delete. */
    if (tm_store_check_file(d->store) != TM_OK && watch_store(d, tm_now_mono_ms()) != TM_OK)
        return TM_ELOST;
    if (tm_store_is_lost(d->store))
        tm_log_error(d->log,
                     "stopping with the store lost (%s): what only this till held is "
                     "gone; the next start re-seeds from peers",
                     tm_store_lost_reason(d->store));
    tm_log_info(d->log, "shutting down");
    return TM_OK;
}
