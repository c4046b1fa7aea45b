/*
 * tm_common.h - error codes, logging and small helpers shared by every module.
 *
 * Every tillmesh function that can fail returns an int: 0 (TM_OK) or one of
 * the negative TM_E* codes below. tm_strerror() turns a code into a sentence
 * fit for a log line or an API error body.
 *
 * Logging goes to stderr (journald picks it up under systemd). The level is
 * a property of a tm_log_t owned by whoever creates it; there is no global
 * mutable state. A NULL logger is valid and logs at "info" to stderr.
 * The logger reads no clock: the time printed in a line comes from the
 * tm_log_t's now_ms (the daemon passes tm_log_wall_ms, tm-sim its simulated
 * time), so the core can log and stay pure (scripts/check-purity.sh).
 */
#ifndef TM_COMMON_H
#define TM_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* X(name, value, message): the one table of error codes. */
#define TM_ERRORS(X)                                                                               \
    X(TM_OK, 0, "success")                                                                         \
    X(TM_ENOMEM, -1, "out of memory")                                                              \
    X(TM_EINVAL, -2, "invalid argument")                                                           \
    X(TM_EIO, -3, "input/output error")                                                            \
    X(TM_ECORRUPT, -4, "file is corrupt or is not a tillmesh store")                               \
    X(TM_EFULL, -5, "disk full: nothing was written")                                              \
    X(TM_ENOTFOUND, -6, "not found")                                                               \
    X(TM_EEXIST, -7, "already exists")                                                             \
    X(TM_EVALIDATE, -8, "record failed validation")                                                \
    X(TM_EJSON, -9, "malformed JSON")                                                              \
    X(TM_EDRIFT, -10, "remote clock is too far ahead of ours")                                     \
    X(TM_EPROTO, -11, "malformed or unsupported protocol message")                                 \
    X(TM_ETOOBIG, -12, "message or body too large")                                                \
    X(TM_EVERSION, -13, "store was written by a newer tillmesh")                                   \
    X(TM_ECONFIG, -14, "configuration error")                                                      \
    X(TM_EPERM, -15, "permission denied")                                                          \
    X(TM_ECONFLICT, -16, "conflicts with an existing record")                                      \
    X(TM_ESTATE, -17, "operation not allowed in the current state")                                \
    X(TM_ELOST, -24, "the store's database file was deleted or replaced while open")

enum tm_err {
#define TM_ERR_ENUM(name, value, msg) name = value,
    TM_ERRORS(TM_ERR_ENUM)
#undef TM_ERR_ENUM
};

/* A sentence for an error code; never NULL. */
const char *tm_strerror(int rc);
/* The symbolic name ("TM_EFULL") of an error code; never NULL. */
const char *tm_errname(int rc);

/* ---- logging ---------------------------------------------------------- */

typedef enum {
    TM_LOG_ERROR = 0,
    TM_LOG_WARN = 1,
    TM_LOG_INFO = 2,
    TM_LOG_DEBUG = 3
} tm_log_level_t;

typedef struct tm_log {
    tm_log_level_t level;
    char tag[32]; /* printed in every line, e.g. the node name */
    /* The time printed in every line, ms since the epoch; NULL: no time. */
    uint64_t (*now_ms)(void *ctx);
    void *now_ctx;
} tm_log_t;

/* The wall clock, for tm_log_t.now_ms in the shell (common/clock_wall.c). */
uint64_t tm_log_wall_ms(void *ctx);

/* Parses "error", "warn", "info", "debug"; TM_EINVAL otherwise. */
int tm_log_level_parse(const char *s, tm_log_level_t *out);

void tm_log_msg(const tm_log_t *log, tm_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define tm_log_error(l, ...) tm_log_msg((l), TM_LOG_ERROR, __VA_ARGS__)
#define tm_log_warn(l, ...)  tm_log_msg((l), TM_LOG_WARN, __VA_ARGS__)
#define tm_log_info(l, ...)  tm_log_msg((l), TM_LOG_INFO, __VA_ARGS__)
#define tm_log_debug(l, ...) tm_log_msg((l), TM_LOG_DEBUG, __VA_ARGS__)

/* ---- node ids --------------------------------------------------------- */

#define TM_NODE_ID_LEN  16
#define TM_NODE_HEX_LEN (2 * TM_NODE_ID_LEN + 1)

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void tm_hex(const uint8_t *in, size_t n, char *out);
/* Parses exactly 2n hex digits; TM_EINVAL otherwise. */
int tm_unhex(const char *in, uint8_t *out, size_t n);

/* ---- UUIDs ------------------------------------------------------------ */

#define TM_UUID_LEN 37 /* 36 characters and a NUL */

/* A random (version 4) UUID in canonical lower-case form (common/random.c,
 * like tm_random: the shell's, never the core's). */
void tm_uuid_new(char out[TM_UUID_LEN]);
/* True when s is a canonical 8-4-4-4-12 hex UUID (either case). */
int tm_uuid_valid(const char *s);

/* Fills buf with n cryptographically random bytes. */
void tm_random(void *buf, size_t n);

/* Copies at most dstsz-1 bytes and always terminates; returns strlen(src). */
size_t tm_strlcpy(char *dst, const char *src, size_t dstsz);

#endif
