/*
 * cli_int.h - internals of the tillmesh ops CLI.
 *
 * render.c (library tm_cli) holds the pure functions: JSON text from the
 * daemon in, text for the terminal out. They never touch a socket, a file or
 * the clock, so tests/test_cli_render.c checks them with fixed input.
 * Rendering is robust: a field that is missing or has the wrong type shows
 * as "?", a field the API allows to be null shows as "never"/"none"/
 * "unknown", and text that came from the network is stripped of control
 * characters before it reaches the terminal.
 *
 * client.c does the I/O (libcurl, config file); help.c holds the help texts;
 * keygen.c makes CurveZMQ keys; tillmesh.c parses arguments and dispatches.
 */
#ifndef TM_CLI_INT_H
#define TM_CLI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef TM_VERSION
#define TM_VERSION "0.0.0-unknown"
#endif

/* Exit codes, documented in `tillmesh --help`. */
enum {
    TM_CLI_EXIT_OK = 0,          /* success */
    TM_CLI_EXIT_API = 1,         /* the daemon answered with an error (4xx/5xx) */
    TM_CLI_EXIT_USAGE = 2,       /* bad command line */
    TM_CLI_EXIT_UNREACHABLE = 3, /* cannot reach the daemon */
    TM_CLI_EXIT_LOCAL = 4        /* local error: file unreadable, out of memory, ... */
};

/* Results of the render functions that take JSON text. */
enum {
    TM_CLI_R_OK = 0,
    TM_CLI_R_NOMEM = -1,  /* *out is NULL */
    TM_CLI_R_BADJSON = -2 /* *out holds a one-line explanation */
};

/* ---- render.c: pure (library tm_cli) ----------------------------------- */

/* Writes all n bytes to fd (retrying short writes and EINTR); -1 on error
 * (errno set). keygen.c. */
int tm_cli_write_all(int fd, const char *s, size_t n);

/* The whole `tillmesh status` screen from the GET /v1/status body. */
int tm_cli_render_status(const char *json, size_t len, char **out);
/* Only the peers table (`tillmesh peers`). */
int tm_cli_render_peers(const char *json, size_t len, char **out);
/* A table of the GET /v1/sales body ({"sales":[...],"next":cursor}). */
int tm_cli_render_sales(const char *json, size_t len, char **out);
/* {"parked":[...]} from GET /v1/erp/parked as a table. */
int tm_cli_render_parked(const char *json, size_t len, char **out);

/* `tillmesh catalogue` (render_catalogue.c): the column header, then one
 * page of GET /v1/products ({"products":[...]}) as table rows or CSV lines
 * on f; *last gets the last sku (the next page starts after it), *n how
 * many were printed. TM_CLI_R_BADJSON when the body is not such a page. */
void tm_cli_catalogue_header(FILE *f, int csv);
int tm_cli_render_products(const char *json, size_t len, int csv, FILE *f, char *last,
                           size_t last_sz, size_t *n);

/*
 * The lines to print on stderr for an HTTP error answer: first
 * "tillmesh: <message> (HTTP <status>)", where message is the body's
 * "message", else its "error", else the (sanitised, shortened) body; then
 * one "<field>: <message> (<rule>)" line per entry of the body's "fields".
 * Malloc'd; NULL on out of memory.
 */
char *tm_cli_render_error(long status, const char *body, size_t len);

/* --json output: the body exactly as received, plus a final newline when it
 * has none. Malloc'd; NULL on out of memory. */
char *tm_cli_json_passthrough(const char *body, size_t len);

/* "12s", "5m 03s", "2h 05m", "3d 04h"; "?" for negative or absurd values. */
void tm_cli_fmt_duration(double seconds, char *buf, size_t n);
/* "0.4s ago", "12s ago", "5m 03s ago", ...; "?" for negative values. */
void tm_cli_fmt_ago_ms(double ms, char *buf, size_t n);
/* "+0.003s", "-10.0m", "+24.0h", "+365.0d": a clock offset, signed. */
void tm_cli_fmt_offset_ms(double ms, char *buf, size_t n);
/* Minor units as a decimal amount: (1299, "EUR") -> "12.99 EUR",
 * (12990, "CLP") -> "12990 CLP". Unknown currency: two decimals. */
void tm_cli_fmt_money(int64_t minor, const char *currency, char *buf, size_t n);
/* Unix time (seconds, or milliseconds when > 1e11) as "2026-11-23 12:00:00Z". */
void tm_cli_fmt_unix(double t, char *buf, size_t n);

/* ---- client.c: HTTP and the API address -------------------------------- */

#include <signal.h>

typedef struct {
    char api[300];          /* HOST:PORT */
    const char *api_source; /* where it came from, for messages */
    /* When set and *stop becomes non-zero, a call under way is abandoned
     * (within about a second) and fails as unreachable. */
    volatile sig_atomic_t *stop;
} tm_cli_t;

typedef struct {
    long status; /* HTTP status */
    char *body;  /* NUL-terminated (also when empty) */
    size_t len;
} tm_cli_resp_t;

/*
 * Chooses the API address: flag, else $TILLMESH_API, else api_listen in
 * [node] of config (or /etc/tillmesh/tillmeshd.conf when config is NULL and
 * that file is readable), else 127.0.0.1:7780. Prints a message and returns
 * an exit code on failure.
 */
int tm_cli_resolve_api(tm_cli_t *c, const char *flag, const char *config);

/* Normalises "HOST:PORT" (a bare PORT means 127.0.0.1; a wildcard address
 * means loopback) into out; -1 if malformed. */
int tm_cli_parse_api(const char *in, char *out, size_t outsz);

/*
 * One HTTP call to the daemon, with timeouts (connect 2 s, total 10 s).
 * body may be NULL. On success fills *resp (free with tm_cli_resp_free) and
 * returns 0 whatever the HTTP status; on a transport failure prints
 * "cannot reach tillmeshd ..." (unless quiet, then writes it into errbuf)
 * and returns TM_CLI_EXIT_UNREACHABLE (or another exit code).
 */
int tm_cli_http(const tm_cli_t *c, const char *method, const char *path, const char *body,
                size_t body_len, tm_cli_resp_t *resp, char *errbuf, size_t errsz);
void tm_cli_resp_free(tm_cli_resp_t *resp);
/* Percent-encodes one path segment or query value; malloc'd, NULL on OOM. */
char *tm_cli_escape(const char *s);

/* Reads a whole file ("-" or NULL: stdin); prints a message and returns an
 * exit code on failure. *out is NUL-terminated. */
int tm_cli_read_input(const char *path, char **out, size_t *len);

/* ---- help.c ------------------------------------------------------------- */

/* Prints the help of a command ("status", "sale", ...; NULL: the tool) to
 * stdout; returns 0, or -1 for an unknown topic. */
int tm_cli_help(const char *topic);
/* Prints "tillmesh: <message>" and the hint "Try 'tillmesh help <topic>'."
 * on stderr; returns TM_CLI_EXIT_USAGE. */
int tm_cli_usage_error(const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- keygen.c ----------------------------------------------------------- */

#define TM_CLI_Z85_LEN 40

/* out_prefix NULL: print both keys. name NULL: basename of out_prefix. */
int tm_cli_keygen(const char *out_prefix, const char *name);
/* The trusted keys line of an existing secret key file (keygen --from). */
int tm_cli_keygen_line(const char *key_path, const char *name);
/* A new keypair written to PREFIX.key (0600), .pub, .sign (0644), never
 * overwriting; pub and sign get the Z85 public keys. An exit code. */
int tm_cli_keypair_files(const char *prefix, char pub[TM_CLI_Z85_LEN + 1],
                         char sign[TM_CLI_Z85_LEN + 1]);
/* 0 if name can be a till's name in the trusted keys (one word, no '#'). */
int tm_cli_check_name(const char *name);
/* A 32-byte key in Z85 (40 characters). */
bool tm_cli_z85_key_ok(const char *s);

/* ---- setup.c: `tillmesh init`; trust.c: `tillmesh trust` ------------------ */

typedef struct {
    const char *store, *name, *dir, *data, *erp_url, *user;
    int force;
} tm_cli_init_t;
int tm_cli_init(const tm_cli_init_t *o);

/* The trusted keys file: file if given, else [mesh] trusted_keys of config
 * (NULL: /etc/tillmesh/tillmeshd.conf). An exit code. */
int tm_cli_trusted_path(const char *file, const char *config, char *out, size_t outsz);
/* quiet: no message on success (init uses them). */
int tm_cli_trust_add(const char *path, const char *name, const char *pub, const char *sign,
                     int quiet);
int tm_cli_trust_remove(const char *path, const char *name, int quiet);
/* 1 if the file (missing: none) names a till name, 0 if not, -1 unreadable. */
int tm_cli_trust_has(const char *path, const char *name);
int tm_cli_trust_list(const char *path);

#endif
