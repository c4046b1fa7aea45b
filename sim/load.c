/* load.c - the POS: sales on random tills, returns of sales rung up
 * elsewhere, and customers edited on several tills, each edit made after
 * reading what the till holds (as the API does: tm_store_customer_stamp,
 * then tm_engine_hlc_after). Every acknowledged operation goes into the
 * ledger that check.c holds the tills to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"
#include "tm_intake.h"
#include "tm_wire.h"

static int s_ledger_sale(sim_t *s, const char *id, int till, int64_t total)
{
    if (s->n_sales == s->cap_sales) {
        size_t cap = s->cap_sales ? 2 * s->cap_sales : 64;
        sim_sale_t *v = realloc(s->sales, cap * sizeof *v);
        if (!v)
            return TM_ENOMEM;
        s->sales = v;
        s->cap_sales = cap;
    }
    sim_sale_t *e = &s->sales[s->n_sales++];
    tm_strlcpy(e->id, id, sizeof e->id);
    e->till = till;
    e->at = s->now;
    e->total = total;
    e->held_elsewhere = false;
    return TM_OK;
}

/* Stores a local op as the daemon does and sends its push. A till that
 * refuses a valid operation breaks "always sells" (P5). */
static int s_local(sim_t *s, int i, uint32_t kind, uint64_t hlc, const uint8_t *body, size_t len)
{
    if (sim_planted(s, "ack-before-commit")) {
        /* The planted shell answers the POS first and stores a moment
         * later: a crash in between loses an acknowledged op. */
        uint8_t *buf = malloc(len + 8);
        if (!buf)
            return TM_ENOMEM;
        memcpy(buf, &hlc, 8);
        memcpy(buf + 8, body, len);
        sim_push(s, s->now + 1 + sim_rng_below(&s->rng, 1000), EV_COMMIT, i, (int)kind,
                 s->t[i].incarnation, buf, len + 8);
        return TM_OK;
    }
    int rc = tm_engine_local_op(s->t[i].eng, kind, hlc, body, len, sim_mono(s, i), &s->box);
    sim_hash_u64(s, hlc);
    sim_hash_u64(s, (uint64_t)rc);
    if (rc)
        sim_violation(s, "always-sells", "till %s refused a valid %s: %s", s->t[i].name,
                      kind == TM_OP_SALE ? "sale" : "customer edit", tm_strerror(rc));
    sim_flush(s, i);
    return rc;
}

void sim_load_commit(sim_t *s, int i, uint32_t kind, uint64_t hlc, const uint8_t *body, size_t len)
{
    int rc = tm_engine_local_op(s->t[i].eng, kind, hlc, body, len, sim_mono(s, i), &s->box);
    sim_hash_u64(s, (uint64_t)rc);
    sim_flush(s, i);
}

/* After the intake stored (or refused) an op: a till that refuses a valid
 * operation breaks "always sells" (P5). Sends its push. */
static void s_committed(sim_t *s, int i, uint32_t kind, int rc)
{
    sim_hash_u64(s, (uint64_t)rc);
    if (rc)
        sim_violation(s, "always-sells", "till %s refused a valid %s: %s", s->t[i].name,
                      kind == TM_OP_SALE ? "sale" : "customer edit", tm_strerror(rc));
    sim_flush(s, i);
}

static void s_sale(sim_t *s, int i, const tm_sale_t *orig)
{
    sim_till_t *t = &s->t[i];
    tm_sale_line_t lines[3];
    tm_payment_t pay = {.method = TM_PAY_CASH};
    tm_sale_t sale = {.currency = "CLP", .lines = lines, .payments = &pay, .n_payments = 1};
    memset(lines, 0, sizeof lines);
    /* What the daemon's API backend does: the wall clock, 16 random bytes
     * and the store time go to the intake rules (core/intake.c), which
     * fill sale_id, till, created_at and receipt_no as for a POS that
     * leaves them out. */
    tm_clock_status_t cs;
    tm_intake_ctx_t in = {.till = t->name, .wall_ms = sim_wall(s, i), .clock = &cs};
    tm_engine_clock(t->eng, in.wall_ms, &cs);
    for (int b = 0; b < 16; b += 8) {
        uint64_t v = sim_rng_next(&s->rng);
        memcpy(in.random + b, &v, 8);
    }
    if (orig) {
        /* Return one unit of the original's first line. */
        tm_strlcpy(sale.refund_of, orig->sale_id, sizeof sale.refund_of);
        lines[0] = orig->lines[0];
        lines[0].qty = -1000;
        lines[0].discount = 0;
        sale.n_lines = 1;
    } else {
        sale.n_lines = 1 + sim_rng_below(&s->rng, 3);
        for (size_t l = 0; l < sale.n_lines; l++) {
            unsigned long long sku = (unsigned long long)sim_rng_below(&s->rng, 50);
            snprintf(lines[l].sku, sizeof lines[l].sku, "SKU%llu", sku);
            snprintf(lines[l].name, sizeof lines[l].name, "item %llu", sku);
            lines[l].qty = 1000 * (int64_t)sim_rng_range(&s->rng, 1, 5);
            lines[l].unit_price = sim_rng_range(&s->rng, 100, 20000);
            lines[l].tax_rate = 1900;
        }
    }
    for (size_t l = 0; l < sale.n_lines; l++)
        sale.total += tm_sale_line_amount(&lines[l]);
    pay.amount = sale.total;
    tm_field_errors_t errs;
    memset(&errs, 0, sizeof errs);
    int review = 0;
    int rc = tm_intake_sale(t->store, &in, &sale, &review, &errs);
    if (rc) {
        /* What the API answers 422 to: the POS was told no, nothing to hold. */
        sim_trace(s, "pos %s: %s refused (%s: %s)", t->name, orig ? "return" : "sale",
                  errs.n ? errs.e[0].field : "?", errs.n ? errs.e[0].message : tm_strerror(rc));
        sim_hash_u64(s, 422);
        return;
    }
    uint8_t *body = NULL;
    size_t len = 0;
    if (sim_planted(s, "ack-before-commit")) {
        if ((rc = tm_wire_sale_encode(&sale, &body, &len))) {
            sim_violation(s, "simulator", "cannot encode a sale: %s", tm_strerror(rc));
            return;
        }
        rc = s_local(s, i, TM_OP_SALE, tm_engine_hlc_now(t->eng, sim_wall(s, i)), body, len);
    } else {
        rc = tm_intake_commit_sale(t->eng, &sale, sim_wall(s, i), sim_mono(s, i), &s->box);
        s_committed(s, i, TM_OP_SALE, rc);
    }
    if (rc == TM_OK) {
        sim_trace(s, "pos %s: %s %s total %lld", t->name, orig ? "return" : "sale", sale.sale_id,
                  (long long)sale.total);
        if (s_ledger_sale(s, sale.sale_id, i, sale.total))
            sim_violation(s, "simulator", "out of memory for the ledger");
        s->res->sales++;
    }
    free(body);
}

/* A return at till i of a sale the ledger holds, wherever it was rung up;
 * a plain sale when there is none yet. */
static void s_return(sim_t *s, int i)
{
    if (!s->n_sales) {
        s_sale(s, i, NULL);
        return;
    }
    const sim_sale_t *e = &s->sales[sim_rng_below(&s->rng, s->n_sales)];
    tm_sale_t orig;
    int rc = tm_store_get_sale(s->t[i].store, e->id, &orig);
    if (rc == TM_ENOTFOUND) {
        /* Not here yet: the POS cannot show it to return it. */
        sim_trace(s, "pos %s: cannot return %s, not held yet", s->t[i].name, e->id);
        return;
    }
    if (rc) {
        sim_violation(s, "store", "till %s: reading sale %s: %s", s->t[i].name, e->id,
                      tm_strerror(rc));
        return;
    }
    if (!orig.refund_of[0] && orig.n_lines > 0 && orig.lines[0].qty > 0)
        s_sale(s, i, &orig);
    tm_sale_free(&orig);
}

static int s_write_slot(sim_t *s, uint32_t w)
{
    if (w < s->cap_writes)
        return TM_OK;
    size_t cap = s->cap_writes ? 2 * s->cap_writes : 256;
    while (cap <= w)
        cap *= 2;
    uint32_t *o = realloc(s->overwritten_by, cap * sizeof *o);
    if (!o)
        return TM_ENOMEM;
    s->overwritten_by = o;
    int *wt = realloc(s->write_till, cap * sizeof *wt);
    if (!wt)
        return TM_ENOMEM;
    s->write_till = wt;
    memset(o + s->cap_writes, 0, (cap - s->cap_writes) * sizeof *o);
    memset(wt + s->cap_writes, 0, (cap - s->cap_writes) * sizeof *wt);
    s->cap_writes = cap;
    return TM_OK;
}

/* The write number a value of ours carries ("w17", "w17@sim.example"). */
uint32_t sim_write_of(const char *value);
uint32_t sim_write_of(const char *value)
{
    if (value[0] != 'w')
        return 0;
    return (uint32_t)strtoul(value + 1, NULL, 10);
}

static void s_edit(sim_t *s, int i, bool stamped, uint64_t stamp)
{
    sim_till_t *t = &s->t[i];
    tm_customer_t cur, patch;
    memset(&patch, 0, sizeof patch);
    snprintf(patch.id, sizeof patch.id, "SIM%02llu",
             (unsigned long long)sim_rng_below(&s->rng, (uint64_t)s->n_customers));
    patch.id_type = TM_IDTYPE_DNI;
    tm_cust_field_t f = sim_rng_below(&s->rng, 2) ? TM_CF_NAME : TM_CF_EMAIL;
    uint32_t w = ++s->writes;
    if (s_write_slot(s, w)) {
        sim_violation(s, "simulator", "out of memory for the ledger");
        return;
    }
    s->write_till[w] = i;
    patch.f[f].set = true;
    if (f == TM_CF_NAME)
        snprintf(patch.f[f].value, sizeof patch.f[f].value, "w%u", w);
    else
        snprintf(patch.f[f].value, sizeof patch.f[f].value, "w%u@sim.example", w);
    /* Read, then overwrite: whatever this till shows now, the edit comes
     * after it and must win over it on every till. */
    uint32_t seen = 0;
    int rc = tm_store_get_customer(t->store, patch.id, &cur);
    if (rc == TM_OK && cur.f[f].set)
        seen = sim_write_of(cur.f[f].value);
    else if (rc && rc != TM_ENOTFOUND) {
        sim_violation(s, "store", "till %s: reading customer %s: %s", t->name, patch.id,
                      tm_strerror(rc));
        return;
    }
    uint8_t *body = NULL;
    size_t len = 0;
    if ((rc = tm_wire_customer_encode(&patch, &body, &len))) {
        sim_violation(s, "simulator", "cannot encode a customer: %s", tm_strerror(rc));
        return;
    }
    uint64_t floor = 0;
    if ((rc = tm_store_customer_stamp(t->store, patch.id, &floor))) {
        free(body);
        sim_violation(s, "store", "till %s: customer stamp: %s", t->name, tm_strerror(rc));
        return;
    }
    if (stamped || sim_planted(s, "ignore-floor") || sim_planted(s, "ack-before-commit")) {
        uint64_t hlc = stamped ? stamp
                       : sim_planted(s, "ignore-floor")
                           ? tm_engine_hlc_now(t->eng, sim_wall(s, i))
                           : tm_engine_hlc_after(t->eng, floor, sim_wall(s, i));
        if (stamped && hlc <= floor)
            hlc = floor + 1; /* still after what it read: the test is the others' next edit */
        rc = s_local(s, i, TM_OP_CUSTOMER, hlc, body, len);
    } else {
        /* The daemon's path: stamped after what the till shows. */
        rc = tm_intake_commit_customer(t->eng, t->store, &patch, sim_wall(s, i), sim_mono(s, i),
                                       &s->box);
        s_committed(s, i, TM_OP_CUSTOMER, rc);
    }
    if (rc == TM_OK) {
        sim_trace(s, "pos %s: customer %s %s = %s (after w%u)", t->name, patch.id,
                  tm_cust_field_name(f), patch.f[f].value, seen);
        if (seen && !s->overwritten_by[seen])
            s->overwritten_by[seen] = w;
        s->res->edits++;
    }
    free(body);
}

void sim_load_step(sim_t *s)
{
    int i = (int)sim_rng_below(&s->rng, (uint64_t)s->k);
    uint64_t what = sim_rng_below(&s->rng, 100);
    /* The POS of a crashed till is stopped too: nothing to ring up there. */
    if (!s->t[i].up) {
        sim_trace(s, "pos %s: till down, customer goes elsewhere", s->t[i].name);
        return;
    }
    if (what < 65)
        s_sale(s, i, NULL);
    else if (what < 75)
        s_return(s, i);
    else
        s_edit(s, i, false, 0);
}

void sim_load_edit_stamped(sim_t *s, int i, uint64_t stamp)
{
    s_edit(s, i, true, stamp);
}

void sim_load_free(sim_t *s)
{
    free(s->sales);
    free(s->overwritten_by);
    free(s->write_till);
    s->sales = NULL;
    s->overwritten_by = NULL;
    s->write_till = NULL;
}
