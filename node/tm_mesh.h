/*
 * tm_mesh.h - the ZeroMQ transport between tills, encrypted and
 * authenticated with CurveZMQ.
 *
 * Each till binds one ROUTER socket (a CURVE server) and connects one DEALER
 * (a CURVE client) to every peer. All frames a till sends go out on its
 * DEALER to that peer; all frames it receives come in on its ROUTER. A ZAP
 * handler, served on this same thread, admits a connecting client only if
 * its public key is in the store's trusted keys file, and tags its frames
 * with that key; each frame is delivered under the key's name as the
 * trusted keys are when it arrives (a key revoked since is dropped): the
 * engine knows which till spoke without trusting what the frame claims.
 *
 * Keys are Z85 text, one key per file (`tillmesh keygen` writes them). The
 * trusted keys file has one line per till: "NAME Z85-PUBLIC-KEY
 * Z85-SIGNING-KEY" (the signing key verifies the till's ops, tm_sign.h; a
 * line without it is accepted but that till's ops cannot be verified, so
 * they are not taken); '#' starts a comment. Secret key files must not be readable by group or
 * others.
 *
 * Owned by the daemon's main thread; not thread-safe.
 */
#ifndef TM_MESH_H
#define TM_MESH_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "tm_common.h"

typedef struct tm_mesh tm_mesh_t;

typedef struct {
    const char *listen; /* e.g. "tcp://0.0.0.0:7700" */
    const char *secret_key_file;
    const char *public_key_file;
    const char *trusted_keys_file;
} tm_mesh_cfg_t;

/* Frame callback: peer is the trusted key's name. */
typedef void (*tm_mesh_frame_fn)(void *ctx, const char *peer, const uint8_t *frame, size_t len);

int tm_mesh_new(const tm_mesh_cfg_t *cfg, const tm_log_t *log, tm_mesh_t **out);
void tm_mesh_destroy(tm_mesh_t **self_p);

/* The endpoint actually bound (port resolved), e.g. "tcp://127.0.0.1:7701". */
const char *tm_mesh_endpoint(const tm_mesh_t *self);
/* Our public key, 32 bytes. */
const uint8_t *tm_mesh_public_key(const tm_mesh_t *self);

/* 1 if name is in the trusted keys, else 0. */
int tm_mesh_is_trusted(const tm_mesh_t *self, const char *name);
/* Name of the trusted key with this public key (NULL if none). */
const char *tm_mesh_key_name(const tm_mesh_t *self, const uint8_t pub[32]);

/* The trusted keys, for matching a discovered key fingerprint: entry i's
 * name and public key; TM_EINVAL past the end. */
int tm_mesh_trusted_at(const tm_mesh_t *self, size_t i, const char **name, const uint8_t **pub);

/* Entry i's op-signing public key (third field of its line): TM_ENOTFOUND
 * (and *sign NULL) when its line has none; TM_EINVAL past the end. */
int tm_mesh_trusted_sign_at(const tm_mesh_t *self, size_t i, const uint8_t **sign);
/* Our CurveZMQ secret key, 32 bytes (the op-signing key derives from it). */
const uint8_t *tm_mesh_secret_key(const tm_mesh_t *self);

/* Connects (or reconnects) the DEALER for peer `name` to endpoint.
 * TM_EPERM if name has no trusted key. */
int tm_mesh_connect(tm_mesh_t *self, const char *name, const char *endpoint);
/* Queues a frame for peer `name` without blocking; TM_ESTATE if there is no
 * live connection (the frame is dropped: the protocol repairs it). */
int tm_mesh_send(tm_mesh_t *self, const char *name, const uint8_t *frame, size_t len);

/* The sockets to poll (ROUTER, ZAP, then one per peer link while max
 * allows); returns how many were written (at most max). */
size_t tm_mesh_pollitems(tm_mesh_t *self, zmq_pollitem_t *items, size_t max);
/* Calls fn for each peer whose connection finished its handshake (as
 * tm_mesh_process found) since the last call: frames sent to it before
 * were dropped. Returns how many. */
typedef void (*tm_mesh_link_fn)(void *ctx, const char *peer);
size_t tm_mesh_links_up(tm_mesh_t *self, tm_mesh_link_fn fn, void *ctx);
/* Serves pending ZAP requests and delivers pending frames to fn; never
 * blocks. */
void tm_mesh_process(tm_mesh_t *self, tm_mesh_frame_fn fn, void *ctx);

/* Checks len bytes as the contents of a trusted keys file, as loading it
 * would (for the fuzzer); *n_keys is how many keys it names. */
int tm_mesh_trusted_parse(const char *text, size_t len, const tm_log_t *log, size_t *n_keys);

/* Re-reads the trusted keys file (SIGHUP). Revocation: our connection to
 * a name no longer trusted is closed (a name whose key changed is
 * reconnected with the new key); if any key was removed, every inbound
 * connection is closed (the other tills reconnect at once and pass the
 * ZAP check again; the removed key does not); and frames from a key no
 * longer trusted are dropped from then on, whatever connection they come
 * on (the frame's CURVE key is looked up for every frame). On a file with
 * errors nothing changes (TM_ECONFIG). */
int tm_mesh_reload_trusted(tm_mesh_t *self);
/* Frames dropped because their key is not trusted (any more). */
uint64_t tm_mesh_frames_refused(const tm_mesh_t *self);

/* Reads a Z85 key file into 32 bytes. TM_EPERM if `secret` and the file is
 * group/world readable; TM_ECONFIG if it does not hold one Z85 key. */
int tm_mesh_read_key(const char *path, int secret, uint8_t out[32]);

#endif
