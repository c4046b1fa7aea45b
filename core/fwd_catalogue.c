/* fwd_catalogue.c - the forwarder's down-sync of the ERP's catalogue
 * (docs/erp.md, GET /catalogue): pulls pages, refuses a bad page whole,
 * and writes a good one as OP_CATALOGUE ops that replicate like any other.
 *
 * The cursor lives in the store (in the ops themselves), never here: it
 * moves only with the products it follows, and a new forwarder reads it
 * from the replicated catalogue and goes on from there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwd_int.h"
#include "tm_wire.h"

/* Items per op: fewer ops is fewer durable commits on every till, but a
 * page of 500 items of maximal size (about 630 bytes each encoded) would
 * not fit in one op body (TM_WIRE_MAX_BODY); 250 does, and s_write halves
 * a part that would not. */
#define ITEMS_PER_OP 250
/* With no change at the ERP, an empty page is written this often so that
 * every till's catalogue age says when it was last known to be current. */
#define CHECKPOINT_MS  (3600ULL * 1000)
#define BACKOFF_MIN_MS 5000U
#define BACKOFF_MAX_MS 300000U

void tm_fwd__cat_init(tm_fwd__cat_t *c, uint32_t interval_ms, uint32_t page)
{
    memset(c, 0, sizeof *c);
    c->interval_ms = interval_ms ? interval_ms : 60000;
    c->page = page && page <= TM_CATALOGUE_PAGE_MAX ? page : 200;
}

void tm_fwd__cat_due_now(tm_fwd__cat_t *c)
{
    c->next_ms = 0;
}

long tm_fwd__cat_timeout_ms(const tm_fwd__cat_t *c, uint64_t now_ms)
{
    return c->next_ms > now_ms ? (long)(c->next_ms - now_ms) : 0;
}

static void s_fail(tm_fwd__cat_t *c, tm_fwd__cat_env_t *env, const char *why)
{
    c->failures++;
    uint64_t d = tm_fwd__backoff_ms(c->failures, BACKOFF_MIN_MS, BACKOFF_MAX_MS, env->random);
    c->next_ms = env->now_ms + d;
    /* The same reason again is not logged again: an ERP serving one bad
     * page would otherwise fill the log every backoff. */
    if (strcmp(env->st->catalogue_error, why) != 0)
        tm_log_error(env->log, "catalogue: %s; nothing of it applied, asking again in %llu s", why,
                     (unsigned long long)(d / 1000));
    tm_strlcpy(env->st->catalogue_error, why, sizeof env->st->catalogue_error);
}

/* Writes items[from, to) as one op; the cursor only on the last op of the
 * page, so that it never passes products not stored yet. */
static int s_write(tm_fwd__cat_env_t *env, const tm_catalogue_page_t *pg, size_t from, size_t to,
                   bool last, uint64_t held_version)
{
    tm_catalogue_page_t part = {.items = pg->items + from, .n = to - from};
    for (size_t i = from; i < to; i++)
        if (pg->items[i].version > part.version)
            part.version = pg->items[i].version;
    if (last) {
        tm_strlcpy(part.cursor, pg->cursor, sizeof part.cursor);
        if (held_version > part.version)
            part.version = held_version;
    }
    uint8_t *body = NULL;
    size_t len = 0;
    int rc = tm_wire_catalogue_encode(&part, &body, &len);
    if (rc == TM_OK && len > TM_WIRE_MAX_BODY && to - from > 1) {
        free(body);
        size_t mid = from + (to - from) / 2;
        rc = s_write(env, pg, from, mid, false, held_version);
        return rc ? rc : s_write(env, pg, mid, to, last, held_version);
    }
    if (rc == TM_OK) {
        uint64_t hlc = tm_engine_hlc_now(env->engine, env->wall_ms);
        rc = tm_engine_local_op(env->engine, TM_OP_CATALOGUE, hlc, body, len, env->now_ms,
                                env->outbox);
    }
    free(body);
    return rc;
}

static void s_on_page(tm_fwd__cat_t *c, tm_fwd__cat_env_t *env, const tm_fwd_result_t *r)
{
    tm_catalogue_page_t pg;
    tm_field_errors_t errs;
    char why[400];
    int rc = tm_catalogue_page_from_json(r->body, r->body_len, c->page, &pg, &errs);
    if (rc) {
        env->st->catalogue_refused++;
        snprintf(why, sizeof why, "page refused (since \"%.40s\"): %s%s%s%s", c->since,
                 errs.n ? errs.e[0].field : "", errs.n && errs.e[0].field[0] ? ": " : "",
                 errs.n ? errs.e[0].message : tm_strerror(rc),
                 errs.n + errs.n_dropped > 1 ? " (and more)" : "");
        s_fail(c, env, why);
        return;
    }
    tm_catalogue_state_t cs;
    if ((rc = tm_store_catalogue_state(env->store, &cs)) != TM_OK) {
        tm_catalogue_page_free(&pg);
        s_fail(c, env, "could not read the catalogue's state locally");
        return;
    }
    bool moved = strcmp(pg.cursor, cs.cursor) != 0;
    bool stale = env->wall_ms >= cs.synced_ms + CHECKPOINT_MS;
    if (pg.n || moved || stale) {
        size_t from = 0;
        do {
            size_t to = pg.n - from > ITEMS_PER_OP ? from + ITEMS_PER_OP : pg.n;
            rc = s_write(env, &pg, from, to, to == pg.n, cs.version);
            from = to;
        } while (rc == TM_OK && from < pg.n);
    }
    if (rc) {
        snprintf(why, sizeof why, "could not store a page: %s", tm_strerror(rc));
        tm_catalogue_page_free(&pg);
        s_fail(c, env, why);
        return;
    }
    if (pg.n)
        tm_log_info(env->log, "catalogue: %zu change(s) stored, version %llu%s", pg.n,
                    (unsigned long long)(pg.version > cs.version ? pg.version : cs.version),
                    pg.more ? ", more to come" : "");
    env->st->catalogue_pages++;
    env->st->catalogue_last_wall_ms = env->wall_ms;
    env->st->catalogue_error[0] = '\0';
    c->failures = 0;
    /* A page that says "more" but brings nothing and keeps the cursor
     * would loop: wait for the interval then. */
    c->next_ms = env->now_ms + (pg.more && (pg.n || moved) ? 0 : c->interval_ms);
    tm_catalogue_page_free(&pg);
}

void tm_fwd__cat_done(tm_fwd__cat_t *c, tm_fwd__cat_env_t *env, const tm_fwd_result_t *r)
{
    char why[400];
    c->busy = false;
    if (r->status == 200) {
        s_on_page(c, env, r);
    } else if (r->status == 404) {
        s_fail(c, env, "the ERP has no GET /catalogue (404): tills keep the catalogue they hold");
        c->next_ms = env->now_ms + c->interval_ms;
    } else if (r->outcome != TM_FWD_OUT_HTTP) {
        snprintf(why, sizeof why, "no answer: %s", r->error ? r->error : "?");
        s_fail(c, env, why);
    } else {
        snprintf(why, sizeof why, "the ERP answered %ld", r->status);
        s_fail(c, env, why);
    }
}

/* A till of this store running a tillmesh from before the catalogue
 * refuses an OP_CATALOGUE as malformed, and with it every later op of our
 * chain (our sales, the ERP's acknowledgements): no page is written while
 * a till heard in this run lacks it. Tills never heard do not hold it up. */
static bool s_old_peer(tm_fwd__cat_env_t *env, char *why, size_t sz)
{
    for (size_t i = 0; i < tm_engine_peer_count(env->engine); i++) {
        tm_peer_info_t p;
        if (tm_engine_peer_info(env->engine, i, &p) != TM_OK || !p.heard ||
            (p.state != TM_PEER_ALIVE && p.state != TM_PEER_DOWN) || p.catalogue_capable)
            continue;
        snprintf(why, sz,
                 "paused: till %.63s runs a tillmesh without the catalogue; upgrade it (it would "
                 "refuse catalogue ops and every later op of this till)",
                 p.name);
        return true;
    }
    return false;
}

int tm_fwd__cat_step(tm_fwd__cat_t *c, tm_fwd__cat_env_t *env, tm_fwd_req_t *req)
{
    char why[400];
    if (c->busy || env->now_ms < c->next_ms)
        return 0;
    if (s_old_peer(env, why, sizeof why)) {
        if (strcmp(env->st->catalogue_error, why) != 0)
            tm_log_warn(env->log, "catalogue: %s", why);
        tm_strlcpy(env->st->catalogue_error, why, sizeof env->st->catalogue_error);
        c->next_ms = env->now_ms + c->interval_ms;
        return 0;
    }
    tm_catalogue_state_t cs;
    if (tm_store_catalogue_state(env->store, &cs) != TM_OK)
        return 0;
    tm_strlcpy(c->since, cs.cursor, sizeof c->since);
    req->kind = TM_FWD_REQ_CATALOGUE;
    tm_strlcpy(req->since, c->since, sizeof req->since);
    req->limit = c->page;
    c->busy = true;
    return 1;
}
