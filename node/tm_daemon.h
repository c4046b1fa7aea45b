/*
 * tm_daemon.h - the imperative shell of tillmeshd: owns the store, the
 * engine, the mesh sockets and the HTTP API, and runs the one poll loop.
 *
 * The loop (one thread, the only one that touches the store or the engine):
 *   1. poll the mesh sockets and the API's fd, with a timeout equal to the
 *      nearest deadline (engine timers, MHD timeouts);
 *   2. hand frames to the engine, run the API handlers, tick the engine;
 *   3. carry out what the engine put in the outbox (send, connect);
 *   4. act on the signal flags: stop (SIGTERM/SIGINT), reload (SIGHUP).
 */
#ifndef TM_DAEMON_H
#define TM_DAEMON_H

#include <signal.h>

#include "tm_common.h"
#include "tm_config.h"

typedef struct tm_daemon tm_daemon_t;

/* Opens the store in cfg->data_dir, binds the mesh and the API. The config
 * path is kept for reloads. */
int tm_daemon_new(const tm_config_t *cfg, const char *config_path, tm_log_t *log,
                  tm_daemon_t **out);
void tm_daemon_destroy(tm_daemon_t **self_p);

/* Exit status of tillmeshd when the store was lost while running and could
 * not be put back: systemd (Restart=on-failure) starts it again. */
#define TM_DAEMON_EXIT_STORE_LOST 4

/* Runs until *stop is set. *reload set means: re-read the config file and
 * apply what can change at run time (log level, peers, trusted keys).
 * Once a second the store's files are checked (tm_store_check_file); a
 * lost store is written back in place (tm_store_restore). Returns TM_OK
 * on a stop, TM_ELOST when the store was lost and could not be restored,
 * another error when polling failed. */
int tm_daemon_run(tm_daemon_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

#endif
