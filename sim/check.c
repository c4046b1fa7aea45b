/* check.c - the invariants a seed is held to (docs/sim.md):
 *  honest-run    no frame refused as bad, no op refused or kept as evidence,
 *                none deferred: every till is honest and trusted;
 *  always-sells  no till refuses a valid sale or edit (load.c);
 *  convergence   after healing, every till holds the same ops (digest and
 *                version vector equal) within a bound;
 *  no-loss       every sale a till acknowledged is on every till;
 *  causality     an edit made after reading another's value wins on every
 *                till, and every till shows the same customer;
 *  no-forgery    every sale and customer value held was made by a POS, as
 *                it was made (a faulty till hides or rewrites nothing);
 *  with a faulty or restored till, honest-run becomes: every refusal is
 *                charged to that till, none to an honest peer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

uint32_t sim_write_of(const char *value);

/* With a faulty or restored till in the store, refusals are expected: each
 * must be charged to that till, never to an honest peer (an honest till
 * relays nothing it refused or could not verify). */
static void s_check_charged(sim_t *s)
{
    for (int i = 0; i < s->k; i++) {
        sim_till_t *t = &s->t[i];
        if (!t->up)
            continue;
        size_t n = tm_engine_peer_count(t->eng);
        for (size_t p = 0; p < n; p++) {
            tm_peer_info_t pi;
            if (tm_engine_peer_info(t->eng, p, &pi))
                continue;
            if ((s->faulty >= 0 && strcmp(pi.name, s->t[s->faulty].name) == 0) ||
                (s->restored >= 0 && strcmp(pi.name, s->t[s->restored].name) == 0))
                continue;
            if (pi.frames_bad || pi.frames_over_bound || pi.ops_refused || pi.ops_deferred) {
                sim_violation(s, "honest-run",
                              "till %s charges honest peer %s with %llu bad frames, %llu over a "
                              "bound, %llu ops refused, %llu deferred",
                              t->name, pi.name, (unsigned long long)pi.frames_bad,
                              (unsigned long long)pi.frames_over_bound,
                              (unsigned long long)pi.ops_refused,
                              (unsigned long long)pi.ops_deferred);
                return;
            }
        }
    }
}

void sim_check_running(sim_t *s)
{
    if (s->faulty >= 0 || s->restored >= 0) {
        s_check_charged(s);
        return;
    }
    for (int i = 0; i < s->k; i++) {
        sim_till_t *t = &s->t[i];
        if (!t->up)
            continue;
        tm_engine_stats_t st;
        tm_engine_stats(t->eng, &st);
        uint64_t bad = st.frames_bad + t->acc.frames_bad,
                 over = st.frames_over_bound + t->acc.frames_over_bound;
        uint64_t refused = st.ops_refused + t->acc.ops_refused;
        uint64_t deferred = st.ops_deferred + t->acc.ops_deferred;
        if (bad || over || refused || deferred) {
            sim_violation(s, "honest-run",
                          "till %s: %llu bad frames, %llu over a bound, %llu ops refused, "
                          "%llu deferred",
                          t->name, (unsigned long long)bad, (unsigned long long)over,
                          (unsigned long long)refused, (unsigned long long)deferred);
            return;
        }
        tm_trust_stats_t ts;
        if (tm_store_trust_stats(t->store, &ts) == TM_OK && (ts.evidence || ts.refused_total)) {
            sim_violation(s, "honest-run", "till %s keeps %llu ops as evidence: %s", t->name,
                          (unsigned long long)ts.evidence, ts.last_reason);
            return;
        }
    }
}

static bool s_vv_eq(const tm_vv_t *a, const tm_vv_t *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(a->e[i].origin, b->e[i].origin, TM_NODE_ID_LEN) || a->e[i].seq != b->e[i].seq)
            return false;
    return true;
}

bool sim_level(sim_t *s)
{
    uint8_t d0[32], d[32];
    tm_vv_t v0 = {0}, v = {0};
    bool level = true;
    for (int i = 0; i < s->k && level; i++)
        level = s->t[i].up;
    if (!level || tm_store_digest(s->t[0].store, d0) || tm_store_vv(s->t[0].store, &v0))
        return false;
    for (int i = 1; i < s->k && level; i++) {
        level = tm_store_digest(s->t[i].store, d) == TM_OK && memcmp(d, d0, 32) == 0 &&
                tm_store_vv(s->t[i].store, &v) == TM_OK && s_vv_eq(&v0, &v);
        tm_vv_free(&v);
    }
    tm_vv_free(&v0);
    return level;
}

bool sim_election_ok(sim_t *s, char *why, size_t sz)
{
    tm_forwarder_t f0, f;
    bool any_up = false;
    int selves = 0;
    for (int i = 0; i < s->k; i++)
        any_up |= s->t[i].uplink == TM_UPLINK_UP;
    tm_engine_forwarder(s->t[0].eng, &f0);
    for (int i = 0; i < s->k; i++) {
        tm_engine_forwarder(s->t[i].eng, &f);
        selves += f.have && f.is_self;
        if (f.have != f0.have || (f.have && memcmp(f.node_id, f0.node_id, TM_NODE_ID_LEN))) {
            snprintf(why, sz, "%s names forwarder %s, %s names %s", s->t[0].name,
                     f0.have ? f0.name : "none", s->t[i].name, f.have ? f.name : "none");
            return false;
        }
        if (f.is_self && s->t[i].uplink != TM_UPLINK_UP) {
            snprintf(why, sz, "%s is the forwarder with its uplink down", s->t[i].name);
            return false;
        }
    }
    if (f0.have != any_up) {
        snprintf(why, sz,
                 any_up ? "no forwarder though a till has a working uplink%s"
                        : "a forwarder (%s) though no till has a working uplink",
                 any_up ? "" : f0.name);
        return false;
    }
    if (f0.have && selves != 1) {
        snprintf(why, sz, "%d tills think they are the forwarder", selves);
        return false;
    }
    return true;
}

static const char *s_origin_name(sim_t *s, const uint8_t origin[TM_NODE_ID_LEN])
{
    uint8_t id[TM_NODE_ID_LEN];
    for (int j = 0; j < s->k; j++) {
        if (!s->t[j].store)
            continue;
        tm_store_node_id(s->t[j].store, id);
        if (memcmp(id, origin, TM_NODE_ID_LEN) == 0)
            return s->t[j].name;
    }
    return "an earlier incarnation";
}

void sim_explain_unlevel(sim_t *s, char *out, size_t sz)
{
    snprintf(out, sz, "some till is down");
    for (int i = 0; i < s->k; i++)
        if (!s->t[i].up)
            return;
    tm_vv_t v0 = {0}, v = {0};
    tm_store_counts_t c0, c;
    uint8_t d0[32], d[32];
    if (tm_store_vv(s->t[0].store, &v0) || tm_store_counts(s->t[0].store, &c0) ||
        tm_store_digest(s->t[0].store, d0)) {
        snprintf(out, sz, "cannot read %s's store", s->t[0].name);
        tm_vv_free(&v0);
        return;
    }
    snprintf(out, sz, "level after all");
    for (int i = 1; i < s->k; i++) {
        if (tm_store_vv(s->t[i].store, &v) || tm_store_counts(s->t[i].store, &c) ||
            tm_store_digest(s->t[i].store, d)) {
            snprintf(out, sz, "cannot read %s's store", s->t[i].name);
            break;
        }
        bool diff = false;
        for (size_t a = 0; a < v0.n && !diff; a++)
            if (tm_vv_get(&v, v0.e[a].origin) != v0.e[a].seq) {
                snprintf(out, sz,
                         "%s and %s differ on ops of %s: seq %llu vs %llu (%llu vs %llu ops held)",
                         s->t[0].name, s->t[i].name, s_origin_name(s, v0.e[a].origin),
                         (unsigned long long)v0.e[a].seq,
                         (unsigned long long)tm_vv_get(&v, v0.e[a].origin),
                         (unsigned long long)c0.ops, (unsigned long long)c.ops);
                diff = true;
            }
        for (size_t a = 0; a < v.n && !diff; a++)
            if (tm_vv_get(&v0, v.e[a].origin) != v.e[a].seq) {
                snprintf(out, sz,
                         "%s and %s differ on ops of %s: seq %llu vs %llu (%llu vs %llu ops held)",
                         s->t[0].name, s->t[i].name, s_origin_name(s, v.e[a].origin),
                         (unsigned long long)tm_vv_get(&v0, v.e[a].origin),
                         (unsigned long long)v.e[a].seq, (unsigned long long)c0.ops,
                         (unsigned long long)c.ops);
                diff = true;
            }
        if (!diff && memcmp(d0, d, 32) != 0) {
            snprintf(out, sz,
                     "%s and %s have equal version vectors but different digests (%llu vs %llu ops "
                     "held): a vector claims an op its store lacks",
                     s->t[0].name, s->t[i].name, (unsigned long long)c0.ops,
                     (unsigned long long)c.ops);
            diff = true;
        }
        tm_vv_free(&v);
        if (diff)
            break;
    }
    tm_vv_free(&v0);
}

static void s_check_sales(sim_t *s)
{
    for (size_t n = 0; n < s->n_sales; n++) {
        const sim_sale_t *e = &s->sales[n];
        /* What the restored till rang up between its backup and its restore
         * went back with its store: the invariant is that it loses nothing
         * the others acknowledged. */
        if (e->till == s->restored && e->at >= s->backup_at && e->at <= s->restore_at &&
            s->res->restores && !e->held_elsewhere)
            continue;
        for (int i = 0; i < s->k; i++) {
            tm_sale_t got;
            int rc = tm_store_get_sale(s->t[i].store, e->id, &got);
            if (rc) {
                sim_violation(
                    s, "no-loss", "sale %s acknowledged by %s at %llu ms is not on %s: %s", e->id,
                    s->t[e->till].name, (unsigned long long)e->at, s->t[i].name, tm_strerror(rc));
                return;
            }
            tm_sale_free(&got);
        }
    }
}

/* Nothing on any till that no POS rang up, and nothing rewritten: every
 * sale held is one the ledger has, with the till and total it was rung up
 * with (a faulty till hides or rewrites nothing of the others'). */
static void s_check_forgery(sim_t *s)
{
    for (int i = 0; i < s->k; i++) {
        uint64_t cur = 0, next = 0;
        for (;;) {
            tm_sale_t *v = NULL;
            size_t n = 0;
            int rc = tm_store_list_sales(s->t[i].store, cur, 256, &v, &n, &next);
            if (rc) {
                sim_violation(s, "store", "till %s: listing sales: %s", s->t[i].name,
                              tm_strerror(rc));
                return;
            }
            for (size_t k = 0; k < n; k++) {
                const sim_sale_t *e = NULL;
                for (size_t x = 0; x < s->n_sales && !e; x++)
                    if (strcmp(s->sales[x].id, v[k].sale_id) == 0)
                        e = &s->sales[x];
                if (!e)
                    sim_violation(s, "no-forgery",
                                  "till %s holds sale %s (till %s, total %lld) that no POS rang up",
                                  s->t[i].name, v[k].sale_id, v[k].till, (long long)v[k].total);
                else if (strcmp(v[k].till, s->t[e->till].name) != 0 || v[k].total != e->total)
                    sim_violation(s, "no-forgery",
                                  "till %s shows sale %s as till %s total %lld; %s rang it up "
                                  "with total %lld",
                                  s->t[i].name, v[k].sale_id, v[k].till, (long long)v[k].total,
                                  s->t[e->till].name, (long long)e->total);
                tm_sale_free(&v[k]);
            }
            free(v);
            if (n == 0 || s->res->violated)
                return;
            cur = next;
        }
    }
}

static void s_check_customers(sim_t *s)
{
    for (int c = 0; c < s->n_customers; c++) {
        char id[TM_CUST_ID_MAX];
        tm_customer_t c0, ci;
        snprintf(id, sizeof id, "SIM%02d", c);
        int rc0 = tm_store_get_customer(s->t[0].store, id, &c0);
        for (int i = 1; i < s->k; i++) {
            int rci = tm_store_get_customer(s->t[i].store, id, &ci);
            if (rci != rc0) {
                sim_violation(s, "convergence", "customer %s: %s on %s, %s on %s", id,
                              tm_errname(rc0), s->t[0].name, tm_errname(rci), s->t[i].name);
                return;
            }
            for (int f = 0; rc0 == TM_OK && f < TM_CF_COUNT; f++)
                if (c0.f[f].set != ci.f[f].set || strcmp(c0.f[f].value, ci.f[f].value) != 0) {
                    sim_violation(s, "convergence", "customer %s %s: \"%s\" on %s, \"%s\" on %s",
                                  id, tm_cust_field_name((tm_cust_field_t)f), c0.f[f].value,
                                  s->t[0].name, ci.f[f].value, s->t[i].name);
                    return;
                }
        }
        for (int f = 0; rc0 == TM_OK && f < TM_CF_COUNT; f++) {
            uint32_t w = c0.f[f].set ? sim_write_of(c0.f[f].value) : 0;
            char want[64];
            snprintf(want, sizeof want, f == TM_CF_EMAIL ? "w%u@sim.example" : "w%u", w);
            if (c0.f[f].set && (!w || w > s->writes || strcmp(want, c0.f[f].value) != 0)) {
                sim_violation(s, "no-forgery",
                              "customer %s %s is \"%s\" on every till: no POS wrote that", id,
                              tm_cust_field_name((tm_cust_field_t)f), c0.f[f].value);
                return;
            }
            uint32_t by = w && w < s->cap_writes ? s->overwritten_by[w] : 0;
            /* An edit the restored till made after its backup may have
             * gone back with its store. */
            if (by && s->res->restores && s->write_till[by] == s->restored &&
                by > s->writes_at_backup && by <= s->writes_at_restore)
                by = 0;
            if (by) {
                sim_violation(s, "causality",
                              "customer %s %s: w%u (by %s) wins, but w%u was made on %s after "
                              "reading it",
                              id, tm_cust_field_name((tm_cust_field_t)f), w,
                              s->t[s->write_till[w]].name, by, s->t[s->write_till[by]].name);
                return;
            }
        }
    }
}

void sim_check_final(sim_t *s)
{
    sim_check_running(s);
    if (!s->res->violated)
        s_check_sales(s);
    if (!s->res->violated)
        s_check_forgery(s);
    if (!s->res->violated)
        s_check_customers(s);
    for (int i = 0; i < s->k && !s->res->violated; i++) {
        uint8_t d[32];
        if (tm_store_digest(s->t[i].store, d) == TM_OK)
            sim_hash(s, d, sizeof d);
    }
}
