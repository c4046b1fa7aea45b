/* backend.c - what the local API asks of the node: durable local writes
 * (stamped, stored, pushed) and the status and metrics views. */
#include "tm_backend.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalogue_status.h"
#include "tm_deliver.h"
#include "tm_intake.h"
#include "tm_now.h"
#include "tm_wire.h"

static int post_sale(void *ctx, tm_sale_t *s, tm_field_errors_t *errs)
{
    tm_backend_ctx_t *b = ctx;
    tm_clock_status_t cs;
    tm_intake_ctx_t in = {.till = b->cfg->name, .wall_ms = tm_now_wall_ms(), .clock = &cs};
    tm_engine_clock(b->engine, in.wall_ms, &cs);
    tm_random(in.random, sizeof in.random);
    int review = TM_REVIEW_NONE;
    int rc = tm_intake_sale(b->store, &in, s, &review, errs);
    if (rc)
        return rc;
    if (review == TM_REVIEW_ORIGINAL_UNKNOWN)
        tm_log_warn(b->log,
                    "return %s names sale %s, not held here (yet): taken, flagged for review",
                    s->sale_id, s->refund_of);
    rc = tm_intake_commit_sale(b->engine, s, tm_now_wall_ms(), tm_now_mono_ms(), b->outbox);
    if (rc == TM_EFULL)
        tm_log_error(b->log, "disk full: sale %s refused (nothing written)", s->sale_id);
    tm_deliver(b->mesh, b->outbox);
    if (rc == TM_OK && s->refund_of[0]) {
        /* The answer shows the flag as stored (the group may already have
         * been over its bounds through returns replicated from peers). */
        tm_sale_t stored;
        if (tm_store_get_sale(b->store, s->sale_id, &stored) == TM_OK) {
            s->review = stored.review;
            tm_sale_free(&stored);
        }
    }
    return rc;
}

static int put_customer(void *ctx, const tm_customer_t *patch, tm_customer_t *merged,
                        tm_field_errors_t *errs)
{
    tm_backend_ctx_t *b = ctx;
    (void)errs;
    int rc = tm_intake_commit_customer(b->engine, b->store, patch, tm_now_wall_ms(),
                                       tm_now_mono_ms(), b->outbox);
    tm_deliver(b->mesh, b->outbox);
    if (rc)
        return rc;
    return tm_store_get_customer(b->store, patch->id, merged);
}

/* ---- status ----------------------------------------------------------- */

static json_t *hex_or_null(const uint8_t *b, size_t n, int have)
{
    char hex[65];
    if (!have)
        return json_null();
    tm_hex(b, n, hex);
    return json_string(hex);
}

/* A wall time as RFC 3339 JSON text, or null for 0. */
static json_t *wall_json(uint64_t wall_ms)
{
    char buf[40];
    if (!wall_ms)
        return json_null();
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tmv;
    gmtime_r(&secs, &tmv);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    return json_string(buf);
}

static json_t *status_node(tm_backend_ctx_t *b)
{
    uint8_t id[TM_NODE_ID_LEN];
    tm_store_node_id(b->store, id);
    return json_pack("{s:o, s:s, s:s, s:s, s:I, s:s, s:s}", "id", hex_or_null(id, sizeof id, 1),
                     "name", b->cfg->name, "store_id", b->cfg->store_id, "version", "0.1.0",
                     "uptime_s", (json_int_t)((tm_now_mono_ms() - b->started_ms) / 1000),
                     "mesh_endpoint", b->advertise, "api", b->cfg->api_listen);
}

static json_t *status_state(tm_backend_ctx_t *b)
{
    tm_store_counts_t c = {0};
    uint8_t digest[32];
    tm_vv_t vv = {0};
    json_t *jvv = json_array();
    int have_digest = tm_store_digest(b->store, digest) == TM_OK;
    (void)tm_store_counts(b->store, &c);
    if (tm_store_vv(b->store, &vv) == TM_OK) {
        for (size_t i = 0; i < vv.n; i++)
            json_array_append_new(jvv, json_pack("{s:o, s:I}", "origin",
                                                 hex_or_null(vv.e[i].origin, TM_NODE_ID_LEN, 1),
                                                 "seq", (json_int_t)vv.e[i].seq));
        tm_vv_free(&vv);
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "ops", (json_int_t)c.ops, "local_ops",
                     (json_int_t)c.local_ops, "sales", (json_int_t)c.sales, "customers",
                     (json_int_t)c.customers, "erp_acked", (json_int_t)c.erp_acked, "digest",
                     hex_or_null(digest, 32, have_digest), "vv", jvv);
}

static json_t *status_peers(tm_backend_ctx_t *b)
{
    json_t *arr = json_array();
    uint64_t now = tm_now_mono_ms();
    for (size_t i = 0; i < tm_engine_peer_count(b->engine); i++) {
        tm_peer_info_t p;
        if (tm_engine_peer_info(b->engine, i, &p))
            continue;
        json_t *seen = p.heard ? json_integer((json_int_t)(now - p.last_seen_ms)) : json_null();
        json_t *jp = json_pack(
            "{s:s, s:o, s:s, s:s, s:s, s:o, s:I, s:I, s:o, s:o, s:s, s:o, s:b}", "name", p.name,
            "node_id", hex_or_null(p.node_id, TM_NODE_ID_LEN, p.have_node_id), "source",
            tm_peer_source_name(p.source), "endpoint", p.endpoint, "state",
            tm_peer_state_name(p.state), "last_seen_ms_ago", seen, "they_lack_ops",
            (json_int_t)p.they_lack, "we_lack_ops", (json_int_t)p.we_lack, "digest",
            hex_or_null(p.digest, 32, p.have_digest), "store_id",
            p.store_id[0] ? json_string(p.store_id) : json_null(), "addresses", p.addresses,
            "last_announced", wall_json(p.announced_wall_ms), "announced", p.announced);
        if (!jp)
            continue;
        /* Its clock minus ours, and the round trip that bounds the error. */
        json_object_set_new(jp, "clock_offset_ms",
                            p.clock_known ? json_integer(p.clock_offset_ms) : json_null());
        json_object_set_new(jp, "rtt_ms",
                            p.clock_known ? json_integer((json_int_t)p.clock_rtt_ms) : json_null());
        json_object_set_new(jp, "stamps_far_ahead", json_integer((json_int_t)p.stamps_far_ahead));
        /* Its heartbeat as it says (null: a tillmeshd that does not say). */
        json_object_set_new(jp, "heartbeat_ms",
                            p.heartbeat_ms ? json_integer(p.heartbeat_ms) : json_null());
        json_object_set_new(jp, "ops_refused", json_integer((json_int_t)p.ops_refused));
        json_object_set_new(jp, "ops_deferred", json_integer((json_int_t)p.ops_deferred));
        json_object_set_new(jp, "frames_over_bound", json_integer((json_int_t)p.frames_over_bound));
        /* What it advertises for the election, as heard (bounds: tm_elect.h). */
        json_object_set_new(jp, "uplink_up", json_boolean(p.uplink_up));
        json_object_set_new(jp, "priority", json_integer((json_int_t)p.priority));
        json_object_set_new(jp, "claims_forwarder", json_boolean(p.claims));
        json_object_set_new(jp, "forwarder_epoch",
                            json_integer((json_int_t)(p.epoch > INT64_MAX ? INT64_MAX : p.epoch)));
        tm_catstatus_peer(b, jp, &p);
        json_array_append_new(arr, jp);
    }
    return arr;
}

/* Store time (tm_engine_clock): how far this till's clock is from the
 * median of the store's, and a sentence for the banner when it is off. */
static json_t *status_clock(tm_backend_ctx_t *b)
{
    tm_clock_status_t cs;
    uint64_t wall = tm_now_wall_ms();
    char msg[256] = "";
    tm_engine_clock(b->engine, wall, &cs);
    if (cs.skewed)
        snprintf(msg, sizeof msg,
                 "this till's clock is %.1f s %s the store's (median of %zu clocks)%s; sales "
                 "still flow and are flagged for the ERP; check NTP and the RTC",
                 (double)(cs.offset_ms < 0 ? -cs.offset_ms : cs.offset_ms) / 1000,
                 cs.offset_ms < 0 ? "behind" : "ahead of", cs.measured + 1,
                 cs.measured == 1 ? ": with two tills either clock may be wrong, check both" : "");
    return json_pack("{s:o, s:I, s:b, s:I, s:I, s:I, s:I, s:o}", "wall", wall_json(wall),
                     "offset_ms", (json_int_t)cs.offset_ms, "skewed", cs.skewed, "bound_ms",
                     (json_int_t)cs.warn_ms, "peers_measured", (json_int_t)cs.measured,
                     "peers_skewed", (json_int_t)cs.peers_skewed, "stamp_lead_ms",
                     (json_int_t)cs.stamp_lead_ms, "message",
                     msg[0] ? json_string(msg) : json_null());
}

/* Disk and retention: what is held, what is free, whether peers' ops are
 * being refused to keep room for our own sales. */
static json_t *status_disk(tm_backend_ctx_t *b)
{
    uint64_t used = 0, freep = 0, psz = 0;
    (void)tm_store_pages(b->store, &used, &freep, &psz);
    return json_pack("{s:I, s:I, s:I, s:b, s:I, s:I}", "store_bytes", (json_int_t)(used * psz),
                     "free_bytes", (json_int_t)b->health->disk_free, "min_free_bytes",
                     (json_int_t)((uint64_t)b->cfg->min_free_mb * 1024 * 1024), "peer_ops_paused",
                     !tm_engine_intake(b->engine), "retention_days",
                     (json_int_t)b->cfg->retention_days, "sales_compacted",
                     (json_int_t)b->health->compacted_total);
}

static json_t *status_uplink(tm_backend_ctx_t *b)
{
    uint64_t since = 0;
    tm_uplink_t u = b->erp ? tm_erp_uplink(b->erp, &since) : TM_UPLINK_UNKNOWN;
    json_t *probe = json_null();
    if (b->erp) {
        tm_erp_probe_stats_t ps;
        tm_erp_probe_stats(b->erp, tm_now_mono_ms(), &ps);
        probe = json_pack(
            "{s:s, s:b, s:I, s:I, s:I, s:I, s:o}", "pace", ps.fast ? "fast" : "slow", "bursting",
            ps.bursting, "health_requests", (json_int_t)ps.health_requests, "bursts",
            (json_int_t)ps.bursts, "lost", (json_int_t)ps.lost, "requests_as_probes",
            (json_int_t)ps.requests_as_probes, "last_answer_age_ms",
            ps.last_ok_age_ms == UINT64_MAX ? json_null()
                                            : json_integer((json_int_t)ps.last_ok_age_ms));
    }
    return json_pack("{s:s, s:o, s:b, s:o}", "state", tm_uplink_name(u), "since", wall_json(since),
                     "configured", b->erp != NULL, "probe", probe);
}

static json_t *status_forwarder(tm_backend_ctx_t *b)
{
    tm_forwarder_t f;
    tm_engine_forwarder(b->engine, &f);
    return json_pack(
        "{s:o, s:o, s:I, s:b, s:o, s:b}", "node_id", hex_or_null(f.node_id, TM_NODE_ID_LEN, f.have),
        "name", f.have && f.name[0] ? json_string(f.name) : json_null(), "epoch",
        (json_int_t)f.epoch, "is_self", f.is_self, "standby",
        f.have_standby && f.standby_name[0] ? json_string(f.standby_name) : json_null(),
        "standby_is_self", f.standby_is_self);
}

/* A configuration or protocol error that stops forwarding until a person
 * acts: the forwarder's (what /sales answered), else the probe's. */
static const char *erp_error(tm_backend_ctx_t *b, const tm_fwd_stats_t *fs)
{
    if (fs->error[0])
        return fs->error;
    return b->erp ? tm_erp_error(b->erp) : NULL;
}

static json_t *status_erp(tm_backend_ctx_t *b)
{
    tm_backlog_t bl = {0};
    tm_fwd_stats_t fs = {0};
    (void)tm_store_backlog(b->store, &bl);
    if (b->fwd)
        tm_fwd_stats(b->fwd, &fs);
    json_t *age = json_null();
    uint64_t wall = tm_now_wall_ms();
    if (bl.unsent && bl.oldest_hlc)
        age = json_integer(
            (json_int_t)(wall > (bl.oldest_hlc >> 16) ? (wall - (bl.oldest_hlc >> 16)) / 1000 : 0));
    const char *err = erp_error(b, &fs);
    json_t *rec = json_pack("{s:I, s:I, s:o, s:b}", "checked", (json_int_t)fs.reconcile_checked,
                            "missing", (json_int_t)fs.reconcile_missing, "last_at",
                            wall_json(fs.reconcile_last_wall_ms), "off", fs.reconcile_off);
    /* Hand-over: sales asked about before a re-send, and those the ERP
     * already held (acknowledged without being sent again). */
    json_t *verify = json_pack("{s:I, s:I}", "checked", (json_int_t)fs.verify_checked, "booked",
                               (json_int_t)fs.verify_booked);
    return json_pack("{s:I, s:o, s:o, s:I, s:b, s:I, s:I, s:s, s:I, s:I, s:o, s:I, s:o, s:o}",
                     "backlog", (json_int_t)bl.unsent, "oldest_unsent_age_s", age,
                     "last_forward_at", wall_json(fs.last_forward_wall_ms), "parked",
                     (json_int_t)bl.parked, "in_flight", fs.in_flight, "requests_in_flight",
                     (json_int_t)fs.requests_in_flight, "failures", (json_int_t)fs.failures,
                     "last_error", fs.last_error, "sales_acked_here", (json_int_t)fs.sales_acked,
                     "batches_ok", (json_int_t)fs.batches_ok, "error",
                     err ? json_string(err) : json_null(), "protocol_errors",
                     (json_int_t)fs.protocol_errors, "reconcile", rec, "verify", verify);
}

/* Returns flagged for review: counts, and the first few so that a person
 * knows which sales to look at. */
#define STATUS_REVIEW_MAX 100

static json_t *status_review(tm_backend_ctx_t *b)
{
    tm_review_entry_t *r = NULL;
    tm_review_counts_t c = {0};
    size_t n = 0;
    json_t *arr = json_array();
    if (tm_store_reviews(b->store, STATUS_REVIEW_MAX, &r, &n, &c) == TM_OK) {
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr,
                                  json_pack("{s:s, s:s, s:s}", "sale_id", r[i].sale_id, "refund_of",
                                            r[i].refund_of, "review", tm_review_name(r[i].review)));
        free(r);
    }
    return json_pack("{s:I, s:I, s:o}", "over_refund", (json_int_t)c.over_refund,
                     "original_unknown", (json_int_t)c.original_unknown, "sales", arr);
}

/* Bounds and quota (docs/security.md): origins whose ops wait for their
 * quota, frames dropped as over-bound or from revoked keys, and a sentence
 * for the banner while any origin is limited. */
static json_t *status_trust(tm_backend_ctx_t *b)
{
    tm_quota_info_t q[16];
    tm_engine_stats_t st;
    uint64_t now = tm_now_mono_ms();
    size_t n = tm_engine_quota_limited(b->engine, now, q, 16);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < 16; i++)
        json_array_append_new(arr, json_pack("{s:o, s:o, s:I, s:o}", "origin",
                                             hex_or_null(q[i].origin, TM_NODE_ID_LEN, 1), "name",
                                             q[i].name[0] ? json_string(q[i].name) : json_null(),
                                             "ops_waiting", (json_int_t)q[i].refused, "since",
                                             wall_json(q[i].since_wall_ms)));
    tm_engine_stats(b->engine, &st);
    char msg[256] = "";
    if (n)
        snprintf(msg, sizeof msg,
                 "%zu till origin(s) sent more than %u ops this hour: their further ops wait "
                 "and are pulled again as the quota refills; check that till (tillmesh status "
                 "there) for a fault or a compromise",
                 n, tm_engine_quota_per_hour(b->engine));
    /* Verification of peers' ops (storage/trust.c): what was refused and
     * kept as evidence, and what could not be verified yet. */
    tm_trust_stats_t ts;
    (void)tm_store_trust_stats(b->store, &ts);
    /* Tills restored from a backup (storage/trust.c, OP_REISSUE): each said
     * again, under a new origin, the ops it made before it noticed. */
    char restored[256] = "";
    if (ts.restores)
        snprintf(restored, sizeof restored,
                 "%llu till(s) of this store were restored from a backup and re-issued %llu "
                 "op(s) under a new origin (same sales); %llu copies held here were set aside "
                 "(evidence). Nothing to do unless it happens again",
                 (unsigned long long)ts.restores, (unsigned long long)ts.reissued,
                 (unsigned long long)ts.reissued_here);
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:o, s:I, s:b, s:I, s:o, s:I, s:I, s:I, s:o}", "evidence",
        (json_int_t)ts.evidence, "ops_refused", (json_int_t)ts.refused_total, "ops_deferred",
        (json_int_t)ts.deferred_total, "last_refusal",
        ts.last_reason[0] ? json_string(ts.last_reason) : json_null(), "quota_ops_per_hour",
        (json_int_t)tm_engine_quota_per_hour(b->engine), "quota_hit", n > 0, "origins_over_quota",
        (json_int_t)n, "over_quota", arr, "ops_over_quota", (json_int_t)st.ops_over_quota,
        "frames_over_bound", (json_int_t)st.frames_over_bound, "frames_revoked",
        (json_int_t)(st.frames_revoked + tm_mesh_frames_refused(b->mesh)), "message",
        msg[0] ? json_string(msg) : json_null());
    if (o && (json_object_set_new(o, "restores", json_integer((json_int_t)ts.restores)) ||
              json_object_set_new(o, "ops_reissued", json_integer((json_int_t)ts.reissued)) ||
              json_object_set_new(o, "ops_set_aside", json_integer((json_int_t)ts.reissued_here)) ||
              json_object_set_new(o, "restore_message",
                                  restored[0] ? json_string(restored) : json_null()))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Ops kept aside instead of shown as sales (records are owned), by
 * reason, and the first few so that a person can find them. */
static json_t *status_conflicts(tm_backend_ctx_t *b)
{
    tm_sale_conflict_t *v = NULL;
    tm_conflict_counts_t c = {0};
    size_t n = 0;
    json_t *arr = json_array();
    if (tm_store_conflicts(b->store, STATUS_REVIEW_MAX, &v, &n, &c) == TM_OK) {
        for (size_t i = 0; i < n; i++) {
            char hex[TM_NODE_HEX_LEN], name[TM_TILL_MAX];
            tm_hex(v[i].origin, TM_NODE_ID_LEN, hex);
            if (tm_store_origin_name(b->store, v[i].origin, name) != TM_OK)
                name[0] = '\0';
            json_array_append_new(arr,
                                  json_pack("{s:s, s:s, s:s?, s:I, s:s}", "sale_id", v[i].sale_id,
                                            "origin", hex, "origin_name", name[0] ? name : NULL,
                                            "seq", (json_int_t)v[i].seq, "reason", v[i].reason));
        }
        free(v);
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "total", (json_int_t)c.total,
                     "different_body", (json_int_t)c.different_body, "till_not_origin",
                     (json_int_t)c.till_not_origin, "invalid", (json_int_t)c.invalid,
                     "duplicate_receipts", (json_int_t)c.dup_receipt, "ops", arr);
}

/* The "store" object of GET /v1/status (docs/api.md): the file watch and
 * the salvage of a corrupt store at start, as daemon.c recorded them. */
static json_t *status_store(tm_backend_ctx_t *b)
{
    int lost = tm_store_is_lost(b->store);
    char msg[400] = "";
    if (lost)
        snprintf(msg, sizeof msg, "%s; sales are refused until the till writes it back%s%s",
                 tm_store_lost_reason(b->store), b->health->store_restore_error[0] ? ": " : "",
                 b->health->store_restore_error);
    json_t *healed = json_null();
    if (b->health->store_healed) {
        char hex[TM_NODE_HEX_LEN];
        tm_hex(b->health->salvage.old_node_id, TM_NODE_ID_LEN, hex);
        healed =
            json_pack("{s:s, s:I, s:I, s:I, s:I, s:o}", "moved_to", b->health->store_corrupt_dir,
                      "rows_read", (json_int_t)b->health->salvage.rows_read, "ops_salvaged",
                      (json_int_t)b->health->salvage.ops_new, "read_errors",
                      (json_int_t)b->health->salvage.read_errors, "rows_refused",
                      (json_int_t)b->health->salvage.ops_refused, "old_node_id",
                      b->health->salvage.old_node_id_known ? json_string(hex) : json_null());
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:I, s:o}", "state", lost ? "lost" : "ok", "path",
                     b->health->store_path, "message", lost ? json_string(msg) : json_null(),
                     "lost_since", wall_json(lost ? b->health->store_lost_wall_ms : 0), "restored",
                     (json_int_t)b->health->store_restored, "healed_at_start", healed);
}

static char *status_json(void *ctx)
{
    tm_backend_ctx_t *b = ctx;
    json_t *root =
        json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "api_version", 1,
                  "node", status_node(b), "state", status_state(b), "peers", status_peers(b),
                  "clock", status_clock(b), "disk", status_disk(b), "trust", status_trust(b),
                  "uplink", status_uplink(b), "forwarder", status_forwarder(b), "erp",
                  status_erp(b), "review", status_review(b), "conflicts", status_conflicts(b));
    if (!root)
        return NULL;
    json_object_set_new(root, "store", status_store(b));
    json_object_set_new(root, "catalogue", tm_catstatus_json(b));
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

static char *parked_json(void *ctx)
{
    tm_backend_ctx_t *b = ctx;
    tm_parked_t *p = NULL;
    size_t n = 0;
    json_t *arr = json_array();
    if (tm_store_parked(b->store, 1000, &p, &n) == TM_OK) {
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:o}", "sale_id", p[i].sale_id,
                                                 "status", p[i].status, "message", p[i].message,
                                                 "parked_at", wall_json(p[i].parked_at)));
        free(p);
    }
    json_t *root = json_pack("{s:o}", "parked", arr);
    char *s = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return s;
}

static int erp_retry(void *ctx, const char *sale_id)
{
    tm_backend_ctx_t *b = ctx;
    int rc = tm_store_unpark(b->store, sale_id);
    if (rc == TM_OK) {
        tm_log_info(b->log, "sale %s unparked by an operator: it will be sent again", sale_id);
        if (b->fwd)
            tm_fwd_wake(b->fwd);
    }
    return rc;
}

/* ---- metrics ---------------------------------------------------------- */

/* A Prometheus label value: backslash, quote and newline escaped. */
static void prom_label(const char *in, char *out, size_t outsz)
{
    size_t o = 0;
    for (; *in && o + 3 < outsz; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static char *metrics_text(void *ctx)
{
    tm_backend_ctx_t *b = ctx;
    tm_store_counts_t c = {0};
    tm_engine_stats_t st;
    (void)tm_store_counts(b->store, &c);
    tm_engine_stats(b->engine, &st);
    size_t alive = 0, npeers = tm_engine_peer_count(b->engine);
    for (size_t i = 0; i < npeers; i++) {
        tm_peer_info_t p;
        if (tm_engine_peer_info(b->engine, i, &p) == TM_OK && p.state == TM_PEER_ALIVE)
            alive++;
    }
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
#define GAUGE(name, help, val)                                                                     \
    fprintf(f,                                                                                     \
            "# HELP tillmesh_" name " " help "\n# TYPE tillmesh_" name " gauge\n"                  \
            "tillmesh_" name " %llu\n",                                                            \
            (unsigned long long)(val))
#define COUNTER(name, help, val)                                                                   \
    fprintf(f,                                                                                     \
            "# HELP tillmesh_" name " " help "\n# TYPE tillmesh_" name " counter\n"                \
            "tillmesh_" name " %llu\n",                                                            \
            (unsigned long long)(val))
    char till[2 * TM_PEER_NAME_MAX], store[2 * sizeof b->cfg->store_id];
    prom_label(b->cfg->name, till, sizeof till);
    prom_label(b->cfg->store_id, store, sizeof store);
    fprintf(f,
            "# HELP tillmesh_info This till's name and store, value 1.\n"
            "# TYPE tillmesh_info gauge\n"
            "tillmesh_info{till=\"%s\",store=\"%s\"} 1\n",
            till, store);
    GAUGE("erp_configured", "1 when [erp] url is set: this till may forward.", b->erp != NULL);
    tm_catstatus_metrics(b, f);
    GAUGE("ops", "Ops held in the op log, all origins.", c.ops);
    GAUGE("local_ops", "Ops made at this till.", c.local_ops);
    GAUGE("sales", "Sales held.", c.sales);
    GAUGE("customers", "Customers held.", c.customers);
    GAUGE("store_ok", "0 when the store's file was deleted or replaced and writes are refused.",
          !tm_store_is_lost(b->store));
    COUNTER("store_restored_total", "Times the store was written back after its file was lost.",
            b->health->store_restored);
    tm_backlog_t bl = {0};
    tm_fwd_stats_t fs = {0};
    tm_forwarder_t fw;
    uint64_t since = 0;
    (void)tm_store_backlog(b->store, &bl);
    if (b->fwd)
        tm_fwd_stats(b->fwd, &fs);
    tm_engine_forwarder(b->engine, &fw);
    tm_uplink_t up = b->erp ? tm_erp_uplink(b->erp, &since) : TM_UPLINK_UNKNOWN;
    tm_review_entry_t *rv = NULL;
    tm_review_counts_t rc = {0};
    size_t nrv = 0;
    if (tm_store_reviews(b->store, 0, &rv, &nrv, &rc) == TM_OK)
        free(rv);
    GAUGE("review_over_refund", "Returns whose original is over-refunded (flagged for review).",
          rc.over_refund);
    GAUGE("review_original_unknown", "Returns whose original sale is not held here (yet).",
          rc.original_unknown);
    tm_sale_conflict_t *cv = NULL;
    tm_conflict_counts_t cc = {0};
    size_t ncv = 0;
    if (tm_store_conflicts(b->store, 0, &cv, &ncv, &cc) == TM_OK)
        free(cv);
    GAUGE("ops_kept_aside",
          "Sale ops held but not shown: a second body for a sale id, a sale "
          "naming another till, or one breaking the sale rules.",
          cc.total);
    GAUGE("sales_duplicate_receipt", "Sales whose till and receipt number another sale has too.",
          cc.dup_receipt);
    tm_engine_stats_t es;
    tm_engine_stats(b->engine, &es);
    COUNTER("erp_reconcile_checked_total",
            "Acknowledged sales this till asked the ERP about (reconcile).", fs.reconcile_checked);
    COUNTER("erp_reconcile_missing_total",
            "Acknowledged sales the ERP did not hold, found by reconcile and sent again.",
            fs.reconcile_missing);
    GAUGE("erp_requests_in_flight",
          "Requests to the ERP sent and not yet answered (sales batches, status questions).",
          fs.requests_in_flight);
    COUNTER("erp_verify_checked_total",
            "Sales this till asked the ERP about before sending them again (hand-over).",
            fs.verify_checked);
    COUNTER("erp_verify_booked_total",
            "Of those, sales the ERP already held: acknowledged without sending them again.",
            fs.verify_booked);
    COUNTER("mesh_links_greeted_total",
            "Heartbeat rounds sent as soon as a connection to a peer came up (what was sent before "
            "it was dropped).",
            es.links_greeted);
    COUNTER("forwarders_passed_over_total",
            "Forwarders passed over because the backlog did not shrink in time.",
            es.forwarders_passed_over);
    COUNTER("election_implausible_total",
            "Heartbeats advertising a priority or epoch outside the configured range.",
            es.claims_implausible);
    GAUGE("erp_backlog", "Sales neither acknowledged by the ERP nor parked.", bl.unsent);
    GAUGE("erp_parked", "Sales the ERP refused, parked here.", bl.parked);
    GAUGE("uplink_up", "1 when this till's ERP health probe passes.", up == TM_UPLINK_UP);
    GAUGE("forwarder_is_self", "1 when this till forwards to the ERP.", fw.is_self);
    GAUGE("forwarder_present", "1 when some till of the store is chosen to forward to the ERP.",
          fw.have);
    uint64_t wall = tm_now_wall_ms(), oldest = bl.oldest_hlc >> 16;
    GAUGE("erp_backlog_oldest_age_seconds", "Age of the oldest sale waiting for the ERP (0: none).",
          bl.unsent && wall > oldest ? (wall - oldest) / 1000 : 0);
    GAUGE("standby_is_self", "1 when this till is the standby (next forwarder, probes fast).",
          fw.standby_is_self);
    if (b->erp) {
        tm_erp_probe_stats_t ps;
        tm_erp_probe_stats(b->erp, tm_now_mono_ms(), &ps);
        COUNTER("erp_health_requests_total", "GET /health probes sent to the ERP.",
                ps.health_requests);
        COUNTER("erp_probe_bursts_total",
                "Probe bursts: a request went unanswered or failed, the probe found out fast.",
                ps.bursts);
    }
    GAUGE("forwarder_epoch", "Epoch of the current forwarder.", fw.epoch);
    COUNTER("erp_batches_ok_total", "ERP batches answered 200.", fs.batches_ok);
    COUNTER("erp_batches_failed_total", "ERP batches that failed and were retried.",
            fs.batches_failed);
    COUNTER("erp_sales_acked_total", "Sales acknowledged through this till.", fs.sales_acked);
    GAUGE("erp_error",
          "1 while a configuration or protocol error stops forwarding (status: erp.error).",
          erp_error(b, &fs) != NULL);
    COUNTER("erp_protocol_errors_total", "ERP answers that broke the contract.",
            fs.protocol_errors);
    GAUGE("peers", "Peers known.", npeers);
    GAUGE("peers_alive", "Peers heard from within the timeout.", alive);
    tm_api_stats_t as = {0};
    if (*b->api)
        tm_api_stats(*b->api, &as);
    GAUGE("api_connections", "Local API connections open.", as.open);
    COUNTER("api_evicted_total", "API connections closed to make room (cap full).", as.evicted);
    COUNTER("api_timed_out_total", "API connections closed for a late request.", as.timed_out);
    COUNTER("api_refused_total", "Remote API connections refused at connect.", as.refused);
    GAUGE("uptime_seconds", "Seconds since start.", (tm_now_mono_ms() - b->started_ms) / 1000);
    COUNTER("frames_in_total", "Mesh frames received.", st.frames_in);
    COUNTER("frames_out_total", "Mesh frames queued for sending.", st.frames_out);
    COUNTER("frames_bad_total", "Mesh frames dropped as malformed.", st.frames_bad);
    COUNTER("ops_applied_total", "Ops from peers newly applied.", st.ops_applied);
    COUNTER("ops_pushed_total", "Local ops pushed to peers.", st.ops_pushed);
    COUNTER("pulls_sent_total", "Pull requests sent.", st.pulls_sent);
    COUNTER("pulls_timed_out_total", "Pull requests that got no answer.", st.pulls_timed_out);
    COUNTER("hlc_stamps_far_ahead_total",
            "Peer op stamps too far ahead of our clock to adopt (applied all the same).",
            st.stamps_far_ahead);
    uint64_t used = 0, freep = 0, psz = 0;
    (void)tm_store_pages(b->store, &used, &freep, &psz);
    GAUGE("store_bytes", "Bytes of the store file in use.", used * psz);
    GAUGE("disk_free_bytes", "Free bytes on data_dir's file system, as last read.",
          b->health->disk_free);
    GAUGE("disk_min_free_bytes", "min_free_mb in bytes: below it peers' ops are refused.",
          (uint64_t)b->cfg->min_free_mb * 1024 * 1024);
    GAUGE("peer_intake_paused", "1 while peers' ops are refused for lack of disk space.",
          !tm_engine_intake(b->engine));
    COUNTER("ops_dropped_disk_total", "Peer ops dropped while disk space was low.",
            st.ops_dropped_disk);
    COUNTER("sales_compacted_total", "Sales forgotten by retention since start.",
            b->health->compacted_total);
    tm_trust_stats_t ts;
    (void)tm_store_trust_stats(b->store, &ts);
    COUNTER("ops_refused_total",
            "Peer ops that failed verification (bad signature, fork, broken chain), kept as "
            "evidence.",
            ts.refused_total);
    COUNTER("ops_deferred_total",
            "Peer ops that could not be verified yet (key missing, "
            "unsealed history).",
            ts.deferred_total);
    GAUGE("evidence", "Refused ops kept as evidence (at most 1000).", ts.evidence);
    GAUGE("restores", "Tills of the store seen restored from a backup (re-issued origins).",
          ts.restores);
    GAUGE("ops_reissued", "Ops restored tills said again under a new origin.", ts.reissued);
    COUNTER("frames_over_bound_total",
            "Mesh frames dropped for holding more entries than the trusted keys allow.",
            st.frames_over_bound);
    COUNTER("frames_revoked_total", "Mesh frames dropped because their key was revoked.",
            st.frames_revoked + tm_mesh_frames_refused(b->mesh));
    COUNTER("ops_over_quota_total",
            "Peer ops not taken (yet) because their origin spent its hourly quota.",
            st.ops_over_quota);
    GAUGE("origins_over_quota", "Origins whose ops wait for their quota to refill.",
          tm_engine_quota_limited(b->engine, tm_now_mono_ms(), NULL, 0));
    size_t revoked = 0;
    for (size_t i = 0; i < npeers; i++) {
        tm_peer_info_t p;
        if (tm_engine_peer_info(b->engine, i, &p) == TM_OK && p.state == TM_PEER_REVOKED)
            revoked++;
    }
    GAUGE("peers_revoked", "Peers cut off because their key left the trusted keys.", revoked);
    tm_clock_status_t cs;
    tm_engine_clock(b->engine, tm_now_wall_ms(), &cs);
    fprintf(f,
            "# HELP tillmesh_clock_offset_seconds This till's clock minus the median of the "
            "store's clocks.\n# TYPE tillmesh_clock_offset_seconds gauge\n"
            "tillmesh_clock_offset_seconds %.3f\n",
            (double)cs.offset_ms / 1000);
    GAUGE("clock_skewed", "1 when this till's clock is further from the store's than the bound.",
          cs.skewed);
    GAUGE("clock_peers_measured", "Peers whose clock offset is known.", cs.measured);
    GAUGE("clock_peers_skewed", "Peers whose clock is further from the store's than the bound.",
          cs.peers_skewed);
    fprintf(f, "# HELP tillmesh_peer_clock_offset_seconds A peer's clock minus ours, from "
               "heartbeats.\n# TYPE tillmesh_peer_clock_offset_seconds gauge\n");
    for (size_t i = 0; i < npeers; i++) {
        tm_peer_info_t p;
        char label[2 * TM_PEER_NAME_MAX];
        if (tm_engine_peer_info(b->engine, i, &p) == TM_OK && p.clock_known) {
            prom_label(p.name, label, sizeof label);
            fprintf(f, "tillmesh_peer_clock_offset_seconds{peer=\"%s\"} %.3f\n", label,
                    (double)p.clock_offset_ms / 1000);
        }
    }
    fprintf(f, "# HELP tillmesh_peer_up 1 when a trusted peer was heard from within the "
               "timeout.\n# TYPE tillmesh_peer_up gauge\n");
    for (size_t i = 0; i < npeers; i++) {
        tm_peer_info_t p;
        char label[2 * TM_PEER_NAME_MAX];
        if (tm_engine_peer_info(b->engine, i, &p) == TM_OK && p.state != TM_PEER_UNTRUSTED &&
            p.state != TM_PEER_FOREIGN) {
            prom_label(p.name, label, sizeof label);
            fprintf(f, "tillmesh_peer_up{peer=\"%s\"} %d\n", label, p.state == TM_PEER_ALIVE);
        }
    }
    fprintf(f, "# HELP tillmesh_peer_rtt_seconds Round trip to a peer, from heartbeats.\n"
               "# TYPE tillmesh_peer_rtt_seconds gauge\n");
    for (size_t i = 0; i < npeers; i++) {
        tm_peer_info_t p;
        char label[2 * TM_PEER_NAME_MAX];
        if (tm_engine_peer_info(b->engine, i, &p) == TM_OK && p.clock_known) {
            prom_label(p.name, label, sizeof label);
            fprintf(f, "tillmesh_peer_rtt_seconds{peer=\"%s\"} %.3f\n", label,
                    (double)p.clock_rtt_ms / 1000);
        }
    }
#undef GAUGE
#undef COUNTER
    fclose(f);
    return out;
}

void tm_backend_api(tm_backend_ctx_t *b, tm_api_backend_t *be)
{
    be->ctx = b;
    be->store = b->store;
    be->post_sale = post_sale;
    be->put_customer = put_customer;
    be->status_json = status_json;
    be->metrics_text = metrics_text;
    be->parked_json = parked_json;
    be->erp_retry = erp_retry;
}
