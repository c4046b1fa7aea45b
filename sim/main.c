/* main.c - tm-sim, the command (see tm_sim.h, docs/sim.md). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tm_common.h"
#include "tm_sim.h"

#ifdef TM_PLANTS
const char *tm_plant; /* core/tm_plant.h: set once from --plant */
#endif

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: tm-sim --seed N [--tills K] [--ops M] [--trace]\n"
            "       tm-sim --seeds A..B [--tills K] [--ops M]\n"
            "options:\n"
            "  --seed N        run one seed (prints its trace hash)\n"
            "  --seeds A..B    run seeds A to B inclusive (soak); stops at nothing,\n"
            "                  reports every failing seed with the command to replay it\n"
            "  --tills K       2..%d tills (default: drawn from the seed, 2..8)\n"
            "  --ops M         POS operations (default: drawn from the seed, 10..60)\n"
            "  --trace         print every event of the run\n"
            "  --twice         run every seed twice and fail if the trace hashes differ\n"
            "  --dir D         where the stores go (default /dev/shm if present, else /tmp)\n"
            "  --keep          keep the stores of a single seed for a post-mortem\n"
            "  --faulty        every seed has a faulty till (else 15 %% of seeds)\n"
            "  --restore       every seed has a till restored from an old copy of its\n"
            "                  store (else 15 %% of seeds)\n"
            "  --impersonate   the faulty till's first frame claims another till's\n"
            "                  node id (an open issue: docs/sim.md)\n"
            "  --erp           every seed has the ERP and forwarders (else 2 in 3 seeds)\n"
            "  --no-erp        no seed has them\n"
            "  --plant BUG     plant a known bug to see the invariants bite (tests\n"
            "                  only): ignore-floor, ack-before-commit, trust-forged;\n"
            "                  tm-sim-plant also: hlc-wrap, no-reincarnate,\n"
            "                  no-self-check, resend-acked, ack-unnamed,\n"
            "                  no-step-down, own-peer-timeout\n"
            "exit: 0 every seed held its invariants, 1 a seed broke one, 2 usage or setup\n",
            TM_SIM_MAX_TILLS);
}

static int s_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static double s_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t first = 0, last = 0, v;
    bool have_seed = false, twice = false, trace = false, keep = false;
    tm_sim_cfg_t cfg = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--seed") == 0 && arg) {
            if (s_u64(arg, &first))
                goto usage;
            last = first;
            have_seed = true;
            i++;
        } else if (strcmp(a, "--seeds") == 0 && arg) {
            char buf[64];
            const char *dots = strstr(arg, "..");
            if (!dots || (size_t)(dots - arg) >= sizeof buf)
                goto usage;
            memcpy(buf, arg, (size_t)(dots - arg));
            buf[dots - arg] = '\0';
            if (s_u64(buf, &first) || s_u64(dots + 2, &last) || last < first)
                goto usage;
            have_seed = true;
            i++;
        } else if (strcmp(a, "--tills") == 0 && arg) {
            if (s_u64(arg, &v) || v < 2 || v > TM_SIM_MAX_TILLS)
                goto usage;
            cfg.tills = (int)v;
            i++;
        } else if (strcmp(a, "--ops") == 0 && arg) {
            if (s_u64(arg, &v) || v < 1 || v > 1000000)
                goto usage;
            cfg.ops = (int)v;
            i++;
        } else if (strcmp(a, "--dir") == 0 && arg) {
            cfg.dir = arg;
            i++;
        } else if (strcmp(a, "--plant") == 0 && arg) {
            if (!tm_sim_plant_known(arg))
                goto usage;
            cfg.plant = arg;
#ifdef TM_PLANTS
            tm_plant = arg;
#endif
            i++;
        } else if (strcmp(a, "--faulty") == 0) {
            cfg.force_faulty = true;
        } else if (strcmp(a, "--restore") == 0) {
            cfg.force_restore = true;
        } else if (strcmp(a, "--erp") == 0) {
            cfg.force_erp = true;
        } else if (strcmp(a, "--no-erp") == 0) {
            cfg.no_erp = true;
        } else if (strcmp(a, "--impersonate") == 0) {
            cfg.impersonate = true;
        } else if (strcmp(a, "--trace") == 0) {
            trace = true;
        } else if (strcmp(a, "--twice") == 0) {
            twice = true;
        } else if (strcmp(a, "--keep") == 0) {
            keep = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            s_usage(stdout);
            return 0;
        } else {
            goto usage;
        }
    }
    if (!have_seed)
        goto usage;
    if (!cfg.dir) {
        /* tmpfs: fsync is free there, and the stores die with the run. */
        FILE *f = fopen("/dev/shm/.tm-sim-probe", "w");
        cfg.dir = f ? "/dev/shm" : "/tmp";
        if (f) {
            fclose(f);
            remove("/dev/shm/.tm-sim-probe");
        }
    }
    if (tm_sim_entropy_install()) {
        fprintf(stderr, "tm-sim: cannot install the simulator's randomness into libsodium\n");
        return 2;
    }
    bool single = first == last;
    cfg.trace = trace ? stdout : NULL;
    cfg.keep = keep && single;
    uint64_t seeds = 0, failed = 0, events = 0, sim_ms = 0;
    double t0 = s_now_s();
    for (uint64_t seed = first;; seed++) {
        tm_sim_result_t r, r2;
        cfg.seed = seed;
        int rc = tm_sim_run(&cfg, &r);
        if (rc) {
            fprintf(stderr, "tm-sim: seed %" PRIu64 ": the simulator could not run: %s\n", seed,
                    tm_strerror(rc));
            return 2;
        }
        if (twice && !r.violated) {
            tm_sim_cfg_t c2 = cfg;
            c2.trace = NULL;
            if ((rc = tm_sim_run(&c2, &r2))) {
                fprintf(stderr, "tm-sim: seed %" PRIu64 ": %s\n", seed, tm_strerror(rc));
                return 2;
            }
            if (r2.trace_hash != r.trace_hash) {
                r.violated = true;
                snprintf(r.invariant, sizeof r.invariant, "determinism");
                snprintf(r.detail, sizeof r.detail,
                         "trace hash %016" PRIx64 " then %016" PRIx64 " for the same seed",
                         r.trace_hash, r2.trace_hash);
            }
        }
        seeds++;
        events += r.events;
        sim_ms += r.sim_ms;
        if (r.violated) {
            failed++;
            printf("FAIL seed %" PRIu64 ": invariant %s: %s\n", seed, r.invariant, r.detail);
            printf("  replay: %s --seed %" PRIu64 " --tills %d --ops %d%s%s%s%s%s --trace\n",
#ifdef TM_PLANTS
                   "tm-sim-plant",
#else
                   "tm-sim",
#endif
                   seed, r.tills, r.ops,
                   cfg.force_faulty ? (cfg.impersonate ? " --faulty --impersonate" : " --faulty")
                                    : "",
                   cfg.force_restore ? " --restore" : "",
                   cfg.force_erp ? " --erp"
                   : cfg.no_erp  ? " --no-erp"
                                 : "",
                   cfg.plant ? " --plant " : "", cfg.plant ? cfg.plant : "");
        }
        if (single)
            printf("seed %" PRIu64 ": %d tills, %d ops (%" PRIu64 " sales, %" PRIu64
                   " edits), %" PRIu64 " faults, %" PRIu64 " crashes, %" PRIu64 " events, %" PRIu64
                   " frames, %.1f s simulated, settled %" PRIu64 " ms after healing\n"
                   "faulty till: %s (%" PRIu64 " crafted frames); restored till: %s (%" PRIu64
                   " restores)\n"
                   "trace hash %016" PRIx64 "\n",
                   seed, r.tills, r.ops, r.sales, r.edits, r.faults, r.crashes, r.events, r.frames,
                   (double)r.sim_ms / 1000.0, r.settle_ms, r.faulty >= 0 ? "yes" : "none",
                   r.attacks, r.restored >= 0 ? "yes" : "none", r.restores, r.trace_hash);
        if (single && r.erp)
            printf("erp: %" PRIu64 " sales booked, %" PRIu64 " requests, %" PRIu64
                   " replays of a key, %" PRIu64 " sales re-delivered under another key, longest "
                   "overlap of two senders %" PRIu64 " ms\n",
                   r.erp_booked, r.erp_requests, r.erp_replays, r.erp_redelivered,
                   r.erp_max_overlap);
        fflush(stdout);
        if (seed == last)
            break;
    }
    double dt = s_now_s() - t0;
    if (!single)
        printf("%" PRIu64 " seeds, %" PRIu64 " failed; %" PRIu64
               " events in %.2f s: %.0f events/s, %.0f seeds/min, %.0f simulated s per s\n",
               seeds, failed, events, dt, dt > 0 ? (double)events / dt : 0.0,
               dt > 0 ? (double)seeds * 60.0 / dt : 0.0,
               dt > 0 ? (double)sim_ms / 1000.0 / dt : 0.0);
    return failed ? 1 : 0;
usage:
    s_usage(stderr);
    return 2;
}
