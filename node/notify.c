/*
 * notify.c - what tillmeshd tells systemd (Type=notify, tm_sd.h):
 *
 *   READY=1      when the loop starts: the store is open, the API listens
 *                and the first turn of the loop is about to answer it;
 *   STATUS=...   one line for `systemctl status`: peers, forwarder,
 *                backlog. Built at most once a second and sent only when
 *                it differs, so a quiet till sends nothing;
 *   WATCHDOG=1   from the loop itself, every half WATCHDOG_USEC, so that a
 *                loop stuck anywhere (a hung disk, a bug) stops the pings
 *                and systemd restarts the till (WatchdogSec in the unit);
 *   RELOADING=1 / READY=1 around a SIGHUP reload; STOPPING=1 on a stop.
 *
 * The backlog age is shown coarsely (minutes, then hours) so that a
 * waiting backlog does not change the line every second.
 */
#include "daemon_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tm_sd.h"

#define STATUS_EVERY_MS 1000

static void s_send(tm_daemon_t *d, const char *state)
{
    if (tm_sd_notify(state) != TM_OK && !d->sd_warned) {
        tm_log_warn(d->log, "systemd: cannot send to NOTIFY_SOCKET; the service manager may "
                            "think this till hangs");
        d->sd_warned = true;
    }
}

static void s_age(uint64_t s, char *buf, size_t n)
{
    if (s < 60)
        snprintf(buf, n, "<1m");
    else if (s < 3600)
        snprintf(buf, n, "%llum", (unsigned long long)(s / 60));
    else if (s < 172800)
        snprintf(buf, n, "%lluh", (unsigned long long)(s / 3600));
    else
        snprintf(buf, n, "%llud", (unsigned long long)(s / 86400));
}

void tm_daemon_status_line(tm_daemon_t *d, char *buf, size_t n)
{
    size_t up = 0, known = 0, npeers = tm_engine_peer_count(d->engine);
    for (size_t i = 0; i < npeers; i++) {
        tm_peer_info_t p;
        if (tm_engine_peer_info(d->engine, i, &p) != TM_OK || p.state == TM_PEER_UNTRUSTED ||
            p.state == TM_PEER_FOREIGN)
            continue;
        known++;
        up += p.state == TM_PEER_ALIVE;
    }
    tm_forwarder_t fw;
    tm_engine_forwarder(d->engine, &fw);
    char fwd[TM_PEER_NAME_MAX + sizeof d->cfg.name + 16];
    if (!fw.have)
        snprintf(fwd, sizeof fwd, "none");
    else if (fw.is_self)
        snprintf(fwd, sizeof fwd, "%s (this till)", d->cfg.name);
    else
        snprintf(fwd, sizeof fwd, "%s", fw.name[0] ? fw.name : "unknown");
    tm_backlog_t bl = {0};
    char backlog[64] = "?";
    if (tm_store_backlog(d->store, &bl) == TM_OK) {
        uint64_t wall = tm_now_wall_ms(), at = bl.oldest_hlc >> 16;
        char age[16];
        s_age(bl.unsent && wall > at ? (wall - at) / 1000 : 0, age, sizeof age);
        if (bl.unsent)
            snprintf(backlog, sizeof backlog, "%llu (oldest %s)", (unsigned long long)bl.unsent,
                     age);
        else
            snprintf(backlog, sizeof backlog, "0");
    }
    snprintf(buf, n, "peers %zu/%zu up; forwarder %s; backlog %s%s", up, known, fwd, backlog,
             tm_store_is_lost(d->store) ? "; STORE LOST" : "");
}

/* "STATUS=..." when the line changed since it was last sent; else "". */
static void s_status(tm_daemon_t *d, uint64_t now, char *out, size_t n)
{
    char line[sizeof d->sd_status];
    out[0] = '\0';
    d->sd_status_next = now + STATUS_EVERY_MS;
    tm_daemon_status_line(d, line, sizeof line);
    if (strcmp(line, d->sd_status) == 0)
        return;
    tm_strlcpy(d->sd_status, line, sizeof d->sd_status);
    snprintf(out, n, "STATUS=%s", line);
}

void tm_daemon_notify_ready(tm_daemon_t *d)
{
    uint64_t now = tm_now_mono_ms(), usec = 0;
    char status[sizeof d->sd_status + 16], msg[sizeof status + 64];
    d->sd_on = getenv("NOTIFY_SOCKET") != NULL;
    if (!d->sd_on)
        return;
    if (!tm_sd_available()) {
        tm_log_warn(d->log, "systemd: NOTIFY_SOCKET is set but this tillmeshd was built without "
                            "libsystemd: Type=notify will time out; rebuild with libsystemd-dev");
        d->sd_on = false;
        return;
    }
    if (!d->wd_every_ms && tm_sd_watchdog(&usec)) {
        /* Half the manager's timeout, as sd_watchdog_enabled(3) advises. */
        d->wd_every_ms = usec / 2000 ? usec / 2000 : 1;
        tm_log_info(d->log, "systemd watchdog: WATCHDOG=1 every %llu ms from the main loop",
                    (unsigned long long)d->wd_every_ms);
    }
    s_status(d, now, status, sizeof status);
    snprintf(msg, sizeof msg, "READY=1%s%s%s", status[0] ? "\n" : "", status,
             d->wd_every_ms ? "\nWATCHDOG=1" : "");
    d->wd_next = now + d->wd_every_ms;
    s_send(d, msg);
}

void tm_daemon_notify_reloading(tm_daemon_t *d)
{
    if (!d->sd_on)
        return;
    struct timespec ts;
    char msg[64];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* MONOTONIC_USEC: systemd 253+ (Type=notify-reload) wants to know
     * which reload this is; older ones ignore it. */
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    s_send(d, msg);
}

void tm_daemon_notify_stopping(tm_daemon_t *d)
{
    if (d->sd_on)
        s_send(d, "STOPPING=1\nSTATUS=stopping");
}

void tm_daemon_notify_tick(tm_daemon_t *d, uint64_t now)
{
    if (!d->sd_on)
        return;
    if (d->wd_every_ms && now >= d->wd_next) {
        d->wd_next = now + d->wd_every_ms;
        s_send(d, "WATCHDOG=1");
    }
    if (now >= d->sd_status_next) {
        char msg[sizeof d->sd_status + 16];
        s_status(d, now, msg, sizeof msg);
        if (msg[0])
            s_send(d, msg);
    }
}

long tm_daemon_notify_timeout(const tm_daemon_t *d, uint64_t now)
{
    if (!d->sd_on)
        return 1000;
    uint64_t next = d->sd_status_next;
    if (d->wd_every_ms && d->wd_next < next)
        next = d->wd_next;
    return next > now ? (long)(next - now) : 0;
}
