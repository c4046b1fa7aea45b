/*
 * housekeep.c - the disk watermark and retention, run from the daemon's
 * loop on the engine thread (they touch the store and the engine).
 *
 * Disk: every DISK_EVERY_MS the free space of data_dir's file system is read.
 * Below [node] min_free_mb the engine stops taking peers' ops: every till of
 * a store holds every till's ops, so without this a full disk anywhere came
 * from the others' sales and stopped this till selling (507). Own sales go
 * on until the disk is really full. Intake resumes 10 % above the mark, so
 * that a till hovering at the mark does not flap.
 *
 * Memory: a store idle for a whole DISK_EVERY_MS hands its page cache
 * back (tm_store_trim).
 *
 * Retention: every COMPACT_EVERY_MS, sales the ERP acknowledged and made
 * more than [node] retention_days ago are compacted (tm_store_compact), in
 * batches so that one pass never holds the loop for long. Not while this
 * till's own clock is known to be off the store's: a clock years ahead
 * would make everything look old.
 */
#include "daemon_int.h"

#include <string.h>
#include <sys/statvfs.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define DISK_EVERY_MS    2000
#define COMPACT_EVERY_MS (10 * 60 * 1000)
#define COMPACT_FIRST_MS 5000
#define COMPACT_BATCH    2000

static void check_disk(tm_daemon_t *d)
{
    struct statvfs sv;
    if (statvfs(d->cfg.data_dir, &sv) != 0)
        return; /* the store's own errors say more than we could here */
    d->health.disk_free = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    uint64_t mark = (uint64_t)d->cfg.min_free_mb * 1024 * 1024;
    if (!mark)
        return;
    bool intake = tm_engine_intake(d->engine);
    if (intake && d->health.disk_free < mark)
        tm_engine_set_intake(d->engine, false);
    else if (!intake && d->health.disk_free > mark + mark / 10)
        tm_engine_set_intake(d->engine, true);
}

static void compact(tm_daemon_t *d, uint64_t now)
{
    uint64_t wall = tm_now_wall_ms(), keep = (uint64_t)d->cfg.retention_days * 86400000u;
    tm_clock_status_t cs;
    tm_engine_clock(d->engine, wall, &cs);
    d->compact_more = false;
    d->compact_next = now + COMPACT_EVERY_MS;
    if (cs.skewed) {
        tm_log_warn(d->log, "retention postponed: this till's clock is off the store's");
        return;
    }
    if (wall <= keep)
        return;
    size_t n = 0;
    int rc = tm_store_compact(d->store, (wall - keep) << 16, COMPACT_BATCH, &n);
    if (rc) {
        tm_log_error(d->log, "retention: %s", tm_strerror(rc));
        return;
    }
    d->health.compacted_total += n;
    if (n == COMPACT_BATCH) {
        d->compact_more = true; /* next turn of the loop: let the POS in between */
    } else if (n || d->compacted_pass) {
        tm_log_info(d->log,
                    "retention: forgot %llu sale(s) booked by the ERP more than %u day(s) "
                    "ago",
                    (unsigned long long)(d->compacted_pass + n), d->cfg.retention_days);
    }
    d->compacted_pass = d->compact_more ? d->compacted_pass + n : 0;
}

void tm_daemon_housekeep(tm_daemon_t *d, uint64_t now)
{
    if (!d->disk_next) { /* first call */
        d->disk_next = now;
        d->compact_next = now + COMPACT_FIRST_MS;
    }
    if (now >= d->disk_next) {
        d->disk_next = now + DISK_EVERY_MS;
        check_disk(d);
        /* Idle for a whole period: the store's cache goes back, and the
         * allocator gives the freed pages to the system (glibc keeps them
         * otherwise), so that a till's memory after a catch-up falls back
         * to what it was before. */
        if (tm_store_trim(d->store)) {
#ifdef __GLIBC__
            malloc_trim(0);
#endif
        }
    }
    if (d->cfg.retention_days && (d->compact_more || now >= d->compact_next))
        compact(d, now);
}

long tm_daemon_housekeep_timeout(const tm_daemon_t *d, uint64_t now)
{
    if (d->compact_more)
        return 0;
    uint64_t next = d->disk_next;
    if (d->cfg.retention_days && d->compact_next < next)
        next = d->compact_next;
    return next > now ? (long)(next - now) : 0;
}
