/* disc_probe.c - tm-disc-probe: publish one till over mDNS and print what
 * discovery reports, one line per event, for the integration tests.
 *
 *   tm-disc-probe --name till-1 --store S --node HEX32 --port 5555
 *                 [--key-fp HEX16] [--proto 1-1] [--seconds N] [--log debug]
 *
 * Output (stdout, flushed per line):
 *   UP instance=... name=... store=... node=... key=... proto=A-B endpoint=... addrs=...
 *   DOWN instance=... name=... node=...
 *   AVAHI connected=0|1        (tm_disc_connected changed; first value too)
 * Log lines (including the avahi-daemon availability lines) go to stderr.
 * Runs until SIGTERM/SIGINT or --seconds elapse.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tm_disc.h"

/* The one piece of global mutable state: set by the signal handler only. */
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: tm-disc-probe --name NAME --store ID --node HEX32 --port N\n"
                    "         [--key-fp HEX16] [--proto MIN-MAX] [--seconds N]"
                    " [--log error|warn|info|debug]\n");
}

static void print_event(const tm_disc_event_t *ev)
{
    if (ev->kind == TM_DISC_UP)
        printf("UP instance=%s name=%s store=%s node=%s key=%s proto=%u-%u endpoint=%s "
               "addrs=%s\n",
               ev->instance, ev->name, ev->store_id, ev->node_id, ev->key_fp, ev->proto_min,
               ev->proto_max, ev->endpoint, ev->addresses);
    else
        printf("DOWN instance=%s name=%s node=%s\n", ev->instance, ev->name, ev->node_id);
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_args(int argc, char **argv, tm_disc_cfg_t *cfg, tm_log_t *log, double *secs)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"store", required_argument, NULL, 's'},
                                         {"node", required_argument, NULL, 'i'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"key-fp", required_argument, NULL, 'k'},
                                         {"proto", required_argument, NULL, 'P'},
                                         {"seconds", required_argument, NULL, 't'},
                                         {"log", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    unsigned lo = 1, hi = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': cfg->name = optarg; break;
        case 's': cfg->store_id = optarg; break;
        case 'i': cfg->node_id_hex = optarg; break;
        case 'k': cfg->key_fp = optarg; break;
        case 'p': cfg->port = (uint16_t)strtoul(optarg, NULL, 10); break;
        case 't': *secs = strtod(optarg, NULL); break;
        case 'P':
            if (sscanf(optarg, "%u-%u", &lo, &hi) != 2)
                return -1;
            break;
        case 'l':
            if (tm_log_level_parse(optarg, &log->level) < 0)
                return -1;
            break;
        default: return -1;
        }
    }
    cfg->proto_min = lo;
    cfg->proto_max = hi;
    return cfg->name && cfg->store_id && cfg->node_id_hex && cfg->port ? 0 : -1;
}

int main(int argc, char **argv)
{
    tm_disc_cfg_t cfg = {.key_fp = "0000000000000000"};
    tm_log_t log = {.level = TM_LOG_INFO};
    double secs = 0;
    tm_disc_t *disc = NULL;
    if (parse_args(argc, argv, &cfg, &log, &secs) < 0) {
        usage();
        return 2;
    }
    snprintf(log.tag, sizeof log.tag, "%s", cfg.name);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int rc = tm_disc_new(&cfg, &log, &disc);
    if (rc) {
        fprintf(stderr, "tm-disc-probe: %s\n", tm_strerror(rc));
        return 1;
    }
    double end = secs > 0 ? now_s() + secs : 0;
    int connected = -1;
    while (!g_stop && (!end || now_s() < end)) {
        if (tm_disc_connected(disc) != connected) {
            connected = tm_disc_connected(disc);
            printf("AVAHI connected=%d\n", connected);
            fflush(stdout);
        }
        struct pollfd p = {.fd = tm_disc_fd(disc), .events = POLLIN};
        if (poll(&p, 1, 200) < 0 && errno != EINTR)
            break;
        tm_disc_event_t ev;
        while (tm_disc_next(disc, &ev) == 1)
            print_event(&ev);
    }
    tm_disc_destroy(&disc);
    return 0;
}
