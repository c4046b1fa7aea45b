/* catalogue_status.c - the catalogue in GET /v1/status and /metrics: what
 * this till holds (version, products, age) and, on the forwarder, how the
 * pulls from the ERP go. The age is that of the newest catalogue op held:
 * the forwarder writes one at least hourly while the ERP answers, so an old
 * catalogue means no forwarder reached the ERP, or this till is cut off. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "catalogue_status.h"
#include "tm_now.h"

typedef struct {
    tm_catalogue_state_t cs;
    tm_fwd_stats_t fs;
    bool have;
    uint64_t age_s;
    bool stale;
} cat_view_t;

static void s_view(const tm_backend_ctx_t *b, cat_view_t *v)
{
    memset(v, 0, sizeof *v);
    v->have = tm_store_catalogue_state(b->store, &v->cs) == TM_OK && v->cs.synced_ms;
    if (b->fwd)
        tm_fwd_stats(b->fwd, &v->fs);
    uint64_t wall = tm_now_wall_ms();
    if (v->have)
        v->age_s = wall > v->cs.synced_ms ? (wall - v->cs.synced_ms) / 1000 : 0;
    uint64_t max_s = (uint64_t)b->cfg->catalogue_max_age_h * 3600;
    v->stale = !v->have || v->age_s > max_s;
}

static json_t *s_wall(uint64_t ms)
{
    if (!ms)
        return json_null();
    char buf[40];
    time_t t = (time_t)(ms / 1000);
    struct tm tmv;
    gmtime_r(&t, &tmv);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    return json_string(buf);
}

json_t *tm_catstatus_json(const tm_backend_ctx_t *b)
{
    cat_view_t v;
    s_view(b, &v);
    return json_pack("{s:I, s:I, s:o, s:o, s:i, s:b, s:s, s:I, s:I, s:o, s:s?}", "version",
                     (json_int_t)v.cs.version, "products", (json_int_t)v.cs.products, "synced_at",
                     s_wall(v.have ? v.cs.synced_ms : 0), "age_s",
                     v.have ? json_integer((json_int_t)v.age_s) : json_null(), "max_age_h",
                     (int)b->cfg->catalogue_max_age_h, "stale", v.stale, "cursor", v.cs.cursor,
                     "pages_pulled_here", (json_int_t)v.fs.catalogue_pages, "pages_refused_here",
                     (json_int_t)v.fs.catalogue_refused, "last_pull_at",
                     s_wall(v.fs.catalogue_last_wall_ms), "error",
                     v.fs.catalogue_error[0] ? v.fs.catalogue_error : NULL);
}

void tm_catstatus_metrics(const tm_backend_ctx_t *b, FILE *f)
{
    cat_view_t v;
    s_view(b, &v);
    fprintf(f,
            "# HELP tillmesh_catalogue_version Greatest ERP catalogue version held.\n"
            "# TYPE tillmesh_catalogue_version gauge\ntillmesh_catalogue_version %llu\n"
            "# HELP tillmesh_catalogue_products Products held (deletions not counted).\n"
            "# TYPE tillmesh_catalogue_products gauge\ntillmesh_catalogue_products %llu\n"
            "# HELP tillmesh_catalogue_age_seconds Age of the newest catalogue page held "
            "(-1: none).\n"
            "# TYPE tillmesh_catalogue_age_seconds gauge\ntillmesh_catalogue_age_seconds %lld\n"
            "# HELP tillmesh_catalogue_stale 1 when the catalogue is older than "
            "catalogue_max_age_h (or absent).\n"
            "# TYPE tillmesh_catalogue_stale gauge\ntillmesh_catalogue_stale %d\n"
            "# HELP tillmesh_catalogue_pages_total Catalogue pages pulled from the ERP here.\n"
            "# TYPE tillmesh_catalogue_pages_total counter\ntillmesh_catalogue_pages_total %llu\n"
            "# HELP tillmesh_catalogue_pages_refused_total Catalogue pages refused whole here.\n"
            "# TYPE tillmesh_catalogue_pages_refused_total counter\n"
            "tillmesh_catalogue_pages_refused_total %llu\n",
            (unsigned long long)v.cs.version, (unsigned long long)v.cs.products,
            v.have ? (long long)v.age_s : -1LL, v.stale, (unsigned long long)v.fs.catalogue_pages,
            (unsigned long long)v.fs.catalogue_refused);
}

void tm_catstatus_peer(const tm_backend_ctx_t *b, json_t *jp, const tm_peer_info_t *p)
{
    uint64_t wall = tm_now_wall_ms();
    bool have = p->catalogue_synced_ms != 0;
    uint64_t age =
        have && wall > p->catalogue_synced_ms ? (wall - p->catalogue_synced_ms) / 1000 : 0;
    json_object_set_new(jp, "catalogue_version", json_integer((json_int_t)p->catalogue_version));
    json_object_set_new(jp, "catalogue_age_s", have ? json_integer((json_int_t)age) : json_null());
    json_object_set_new(jp, "catalogue_stale",
                        json_boolean(!have || age > (uint64_t)b->cfg->catalogue_max_age_h * 3600));
}
