/* tillmeshd - the tillmesh node daemon. A thin shell around tm_daemon. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm_config.h"
#include "tm_daemon.h"
#include "tm_mesh.h"

#define DEFAULT_CONFIG "/etc/tillmesh/tillmeshd.conf"

static volatile sig_atomic_t g_stop, g_reload; /* set only by signal handlers */

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    g_reload = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: tillmeshd [-c FILE] [-n] [-d]\n"
               "\n"
               "tillmeshd keeps a store selling when its link to head office fails. It runs on\n"
               "every till, copies every sale and customer record to the other tills of the\n"
               "store over an encrypted ZeroMQ mesh, and keeps them in SQLite.\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE  configuration file (default " DEFAULT_CONFIG ")\n"
               "  -n, --check        check the configuration and key files, print\n"
               "                     \"configuration OK\" and exit\n"
               "  -d, --debug        log at debug level whatever the file says\n"
               "  -h, --help         this text\n"
               "  -V, --version      print the version\n"
               "\n"
               "Signals: SIGTERM or SIGINT stop cleanly; SIGHUP re-reads the configuration\n"
               "(log level, peers, trusted keys).\n"
               "\n"
               "Exit status: 0 clean stop or configuration OK; 1 configuration error;\n"
               "2 usage error; 3 the node could not start (store, keys, ports);\n"
               "4 the store's file was deleted or replaced while running and could not be\n"
               "written back (systemd's Restart=on-failure starts it again).\n"
               "\n"
               "See deploy/tillmeshd.conf for every setting, docs/api.md for the local API.\n");
}

/* -n: everything that can be checked without starting. */
static int check_only(const tm_config_t *cfg, const tm_log_t *log)
{
    uint8_t key[32];
    int bad = 0, rc;
    if ((rc = tm_mesh_read_key(cfg->secret_key, 1, key))) {
        tm_log_error(log, "secret key %s: %s", cfg->secret_key,
                     rc == TM_EPERM ? "readable by group or others, or unreadable (chmod 600)"
                                    : "missing or not a Z85 key");
        bad = 1;
    }
    if (tm_mesh_read_key(cfg->public_key, 0, key)) {
        tm_log_error(log, "public key %s: missing or not a Z85 key", cfg->public_key);
        bad = 1;
    }
    FILE *f = fopen(cfg->trusted_keys, "r");
    if (!f) {
        tm_log_error(log, "trusted keys file %s: cannot open", cfg->trusted_keys);
        bad = 1;
    } else {
        fclose(f);
    }
    if (bad)
        return 1;
    printf("configuration OK\n");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'},
        {"debug", no_argument, NULL, 'd'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    const char *config = DEFAULT_CONFIG;
    int check = 0, debug = 0, c;
    while ((c = getopt_long(argc, argv, "c:ndhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'n': check = 1; break;
        case 'd': debug = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("tillmeshd 0.1.0\n"); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    tm_log_t log = {.level = TM_LOG_INFO, .now_ms = tm_log_wall_ms};
    tm_config_t cfg;
    if (tm_config_load(config, &log, &cfg) != TM_OK) {
        fprintf(stderr, "tillmeshd: %s has errors (see above); not starting\n", config);
        return 1;
    }
    log.level = debug ? TM_LOG_DEBUG : cfg.log_level;
    tm_strlcpy(log.tag, cfg.name, sizeof log.tag);
    if (check)
        return check_only(&cfg, &log);

    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    tm_daemon_t *d = NULL;
    if (tm_daemon_new(&cfg, config, &log, &d) != TM_OK)
        return 3;
    int rc = tm_daemon_run(d, &g_stop, &g_reload);
    tm_daemon_destroy(&d);
    tm_log_info(&log, "stopped");
    if (rc == TM_ELOST)
        return TM_DAEMON_EXIT_STORE_LOST;
    return rc ? 3 : 0;
}
