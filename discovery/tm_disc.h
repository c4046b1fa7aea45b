/*
 * tm_disc.h - finding the other tills of the store on the LAN by mDNS/DNS-SD
 * (Avahi): publish `_tillmesh._tcp` for this till, browse and resolve the
 * others.
 *
 * Avahi's client runs in its own thread (avahi_threaded_poll) - an actor: it
 * shares no memory with the engine thread and reports each peer that appears,
 * changes or goes as a fixed-size tm_disc_event_t written to a pipe. The main
 * loop polls tm_disc_fd() with its other sockets and drains events with
 * tm_disc_next(); it never blocks on Avahi.
 *
 * TXT records published (and required of a peer):
 *   store=STORE_ID  node=NODE_ID_HEX  name=TILL_NAME  proto=MIN-MAX
 *   key=FINGERPRINT (tm_disc_fingerprint of the till's CurveZMQ public key)
 *
 * The client is created with AVAHI_CLIENT_NO_FAIL: when avahi-daemon is not
 * running, or restarts, discovery says so in one log line, keeps the daemon
 * running (static peers still work) and publishes again when Avahi is back.
 * Our own announcement is recognised by node id and never reported.
 * A name collision (two tills called "till-1") is resolved by Avahi's
 * alternative name for the service instance; the TXT name= stays the till's
 * configured name.
 *
 * Owned by the main thread; tm_disc_destroy stops the Avahi thread.
 */
#ifndef TM_DISC_H
#define TM_DISC_H

#include <stdint.h>

#include "tm_common.h"

#define TM_DISC_FP_HEX 17 /* 16 hex digits and a NUL */

/* Events are per service instance: UP when an instance appears and again
 * whenever its TXT or addresses change, DOWN when its last record goes. Key
 * peers by `instance`: a till renamed after a name collision is UP under its
 * new instance before DOWN arrives for the old one, and an instance taken
 * over by another node gives DOWN (old node_id) then UP (new node_id). */
typedef enum { TM_DISC_UP = 1, TM_DISC_DOWN = 2 } tm_disc_kind_t;

typedef struct {
    tm_disc_kind_t kind;
    char instance[64]; /* the mDNS service instance name */
    char name[64];     /* TXT name= */
    char store_id[64]; /* TXT store= */
    char node_id[33];  /* TXT node= (32 hex) */
    char key_fp[TM_DISC_FP_HEX];
    uint32_t proto_min, proto_max;
    char endpoint[128];  /* tcp://ADDR:PORT to connect to (IPv4 preferred) */
    char addresses[256]; /* every resolved address, comma-separated */
} tm_disc_event_t;

typedef struct {
    const char *name; /* till name */
    const char *store_id;
    const char *node_id_hex;
    const char *key_fp; /* tm_disc_fingerprint of our public key */
    uint16_t port;      /* mesh port */
    uint32_t proto_min, proto_max;
} tm_disc_cfg_t;

typedef struct tm_disc tm_disc_t;

/* Starts the Avahi actor. Succeeds even when avahi-daemon is not running
 * (see above); fails only on resource errors. */
int tm_disc_new(const tm_disc_cfg_t *cfg, const tm_log_t *log, tm_disc_t **out);
void tm_disc_destroy(tm_disc_t **self_p);

/* Read end of the event pipe, to poll for input. */
int tm_disc_fd(const tm_disc_t *self);
/* 1 and *ev filled if an event was pending, 0 if none; never blocks. */
int tm_disc_next(tm_disc_t *self, tm_disc_event_t *ev);

/* 1 while connected to avahi-daemon, 0 otherwise (for status). */
int tm_disc_connected(const tm_disc_t *self);

/* Lower-case hex of the first 8 bytes of SHA-256(public key). */
void tm_disc_fingerprint(const uint8_t pub[32], char out[TM_DISC_FP_HEX]);

#endif
