/*
 * trust.c - `tillmesh trust add|remove|list`: edits the store's trusted
 * keys file ([mesh] trusted_keys, one "NAME CURVE-PUBLIC SIGNING-PUBLIC"
 * line per till; node/tm_mesh.h) so that nobody edits it by hand.
 *
 * The whole file is read and checked first (the daemon's rules: at most
 * 511 characters a line, a name and one or two 40-character Z85 keys,
 * '#' comments), then written whole to a temporary file in the same
 * directory with the old file's mode and owner, fsync'd and renamed over
 * it: a reader (tillmeshd on SIGHUP) sees the old file or the new one,
 * never half of one. Comments and blank lines are kept as they were.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_int.h"
#include "tm_config.h"

#define TRUST_MAX_FILE (1024 * 1024)
#define TRUST_LINE_MAX 511
#define TRUST_NAME_MAX 63

typedef struct {
    char *text; /* the whole file, NUL-terminated */
    size_t len;
    int exists;
    struct stat st;
} tfile_t;

typedef struct {
    char name[TRUST_NAME_MAX + 1];
    char pub[TM_CLI_Z85_LEN + 1];
    char sign[TM_CLI_Z85_LEN + 1]; /* "" when the line has none */
} tline_t;

static const char RELOAD_HINT[] =
    "tillmeshd reads this file at start and on SIGHUP: run `systemctl reload tillmeshd`\n"
    "(or `kill -HUP $(pidof tillmeshd)`) on this till for it to take effect.\n";

int tm_cli_trusted_path(const char *file, const char *config, char *out, size_t outsz)
{
    if (file) {
        snprintf(out, outsz, "%s", file);
        return TM_CLI_EXIT_OK;
    }
    const char *cfg = config ? config : "/etc/tillmesh/tillmeshd.conf";
    tm_log_t log = {.level = TM_LOG_ERROR};
    tm_config_t c;
    if (tm_config_load(cfg, &log, &c) != TM_OK) {
        fprintf(stderr,
                "tillmesh: cannot take [mesh] trusted_keys from %s (see above); name the file "
                "with --file PATH or the config with --config FILE\n",
                cfg);
        return TM_CLI_EXIT_LOCAL;
    }
    if (strlen(c.trusted_keys) >= outsz) {
        fprintf(stderr, "tillmesh: trusted_keys path is too long\n");
        return TM_CLI_EXIT_LOCAL;
    }
    snprintf(out, outsz, "%s", c.trusted_keys);
    return TM_CLI_EXIT_OK;
}

/* 1: a key line parsed into *t; 0: blank or comment; -1: malformed. */
static int parse_line(const char *line, size_t n, tline_t *t)
{
    char buf[TRUST_LINE_MAX + 2], *save = NULL;
    if (n > TRUST_LINE_MAX)
        return -1;
    memcpy(buf, line, n);
    buf[n] = '\0';
    char *name = strtok_r(buf, " \t\r", &save);
    if (!name || name[0] == '#')
        return 0;
    char *pub = strtok_r(NULL, " \t\r", &save);
    char *sign = pub ? strtok_r(NULL, " \t\r", &save) : NULL;
    if (!pub || strtok_r(NULL, " \t\r", &save) || strlen(name) > TRUST_NAME_MAX ||
        !tm_cli_z85_key_ok(pub) || (sign && !tm_cli_z85_key_ok(sign)))
        return -1;
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->pub, sizeof t->pub, "%s", pub);
    snprintf(t->sign, sizeof t->sign, "%s", sign ? sign : "");
    return 1;
}

/* Calls fn for every line (key lines with t filled, others with NULL);
 * stops at the first malformed line, saying where. An exit code. */
typedef int (*line_fn)(void *ctx, const char *line, size_t n, const tline_t *t);

static int each_line(const char *path, const tfile_t *f, line_fn fn, void *ctx)
{
    size_t at = 0;
    int lineno = 0;
    while (at < f->len) {
        const char *s = f->text + at;
        const char *nl = memchr(s, '\n', f->len - at);
        size_t n = nl ? (size_t)(nl - s) : f->len - at;
        at += n + (nl != NULL);
        lineno++;
        tline_t t;
        size_t lead = strspn(s, " \t\r");
        int r = lead < n && s[lead] == '#' ? 0 : parse_line(s, n, &t);
        if (r < 0 || memchr(s, '\0', n)) {
            fprintf(stderr,
                    "tillmesh: %s:%d: expected \"NAME Z85-PUBLIC-KEY Z85-SIGNING-KEY\"; fix the "
                    "line first (nothing was changed)\n",
                    path, lineno);
            return TM_CLI_EXIT_LOCAL;
        }
        if (fn && fn(ctx, s, n, r > 0 ? &t : NULL) != 0)
            return TM_CLI_EXIT_LOCAL;
    }
    return TM_CLI_EXIT_OK;
}

static int read_file(const char *path, int must_exist, tfile_t *f)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        if (errno == ENOENT && !must_exist) {
            f->text = calloc(1, 1);
            return f->text ? TM_CLI_EXIT_OK : TM_CLI_EXIT_LOCAL;
        }
        fprintf(stderr, "tillmesh: cannot read %s: %s\n", path, strerror(errno));
        return TM_CLI_EXIT_LOCAL;
    }
    f->exists = 1;
    int rc = TM_CLI_EXIT_LOCAL;
    if (fstat(fileno(fp), &f->st) != 0 || !S_ISREG(f->st.st_mode)) {
        fprintf(stderr, "tillmesh: %s is not a regular file\n", path);
        goto cleanup;
    }
    f->text = malloc(TRUST_MAX_FILE + 1);
    if (!f->text)
        goto cleanup;
    f->len = fread(f->text, 1, TRUST_MAX_FILE + 1, fp);
    if (ferror(fp) || f->len > TRUST_MAX_FILE) {
        fprintf(stderr, "tillmesh: cannot read %s (%s)\n", path,
                ferror(fp) ? strerror(errno) : "larger than 1 MiB");
        goto cleanup;
    }
    f->text[f->len] = '\0';
    rc = TM_CLI_EXIT_OK;
cleanup:
    fclose(fp);
    return rc;
}

/* Replaces path with text: temporary file, same mode and owner, fsync,
 * rename, fsync of the directory. An exit code. */
static int replace_file(const char *path, const tfile_t *old, const char *text, size_t len)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return TM_CLI_EXIT_LOCAL;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "tillmesh: cannot create a file next to %s: %s\n", path, strerror(errno));
        return TM_CLI_EXIT_LOCAL;
    }
    mode_t mode = old->exists ? old->st.st_mode & 07777 : 0644;
    int bad = fchmod(fd, mode) != 0;
    if (!bad && old->exists && geteuid() == 0)
        bad = fchown(fd, old->st.st_uid, old->st.st_gid) != 0;
    bad = bad || tm_cli_write_all(fd, text, len) != 0 || fsync(fd) != 0;
    int err = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        fprintf(stderr, "tillmesh: cannot write %s: %s (nothing was changed)\n", path,
                strerror(err));
        unlink(tmp);
        return TM_CLI_EXIT_LOCAL;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return TM_CLI_EXIT_OK;
}

/* ---- add ---------------------------------------------------------------- */

typedef struct {
    const char *path, *name, *pub, *sign;
    int same; /* the exact entry is already there */
} add_ctx_t;

static int add_check(void *ctx, const char *line, size_t n, const tline_t *t)
{
    add_ctx_t *a = ctx;
    (void)line;
    (void)n;
    if (!t)
        return 0;
    int name_eq = strcmp(t->name, a->name) == 0, pub_eq = strcmp(t->pub, a->pub) == 0;
    if (name_eq && pub_eq && strcmp(t->sign, a->sign ? a->sign : "") == 0) {
        a->same = 1;
        return 0;
    }
    if (name_eq) {
        fprintf(stderr,
                "tillmesh: %s already trusts a till named %s with other keys; refusing a "
                "second entry. To replace its keys (a re-installed till): `tillmesh trust "
                "remove %s`, then add again\n",
                a->path, a->name, a->name);
        return -1;
    }
    if (pub_eq) {
        fprintf(stderr,
                "tillmesh: %s already trusts this public key under the name %s; one key "
                "names one till (remove %s first to rename it)\n",
                a->path, t->name, t->name);
        return -1;
    }
    return 0;
}

int tm_cli_trust_add(const char *path, const char *name, const char *pub, const char *sign,
                     int quiet)
{
    if (tm_cli_check_name(name) != 0 || strlen(name) > TRUST_NAME_MAX)
        return tm_cli_usage_error("trust",
                                  "trust add: the name '%s' must be one word of at most %d "
                                  "characters, without spaces or '#'",
                                  name, TRUST_NAME_MAX);
    if (!tm_cli_z85_key_ok(pub) || (sign && !tm_cli_z85_key_ok(sign)))
        return tm_cli_usage_error("trust",
                                  "trust add: keys are 40 characters of Z85 text, as printed "
                                  "by `tillmesh init` or `tillmesh keygen` on that till");
    if (sign && strcmp(sign, pub) == 0)
        return tm_cli_usage_error("trust", "trust add: the signing key repeats the public key");
    tfile_t f;
    int rc = read_file(path, 0, &f);
    add_ctx_t a = {.path = path, .name = name, .pub = pub, .sign = sign};
    if (rc == TM_CLI_EXIT_OK)
        rc = each_line(path, &f, add_check, &a);
    if (rc != TM_CLI_EXIT_OK || a.same) {
        if (a.same && rc == TM_CLI_EXIT_OK && !quiet)
            printf("%s already trusts %s with these keys; nothing changed\n", path, name);
        free(f.text);
        return rc;
    }
    size_t cap = f.len + 256;
    char *text = malloc(cap);
    if (!text) {
        free(f.text);
        return TM_CLI_EXIT_LOCAL;
    }
    int n = snprintf(text, cap, "%s%s%s%s %s%s%s\n",
                     f.exists ? ""
                              : "# Trusted keys of the store: NAME CURVE-PUBLIC "
                                "SIGNING-PUBLIC,\n# one line per till, the same on every "
                                "till. Edit with `tillmesh trust`.\n",
                     f.text, f.len && f.text[f.len - 1] != '\n' ? "\n" : "", name, pub,
                     sign ? " " : "", sign ? sign : "");
    rc = replace_file(path, &f, text, (size_t)n);
    if (rc == TM_CLI_EXIT_OK && !quiet) {
        printf("%s: added %s%s\n%s", path, name,
               sign ? ""
                    : " (WARNING: without a signing key its sales cannot be verified and "
                      "are not taken; add the third key that `tillmesh init` printed)",
               RELOAD_HINT);
        printf("Every till of the store needs the same line: run the same `tillmesh trust "
               "add` on each.\n");
    }
    free(text);
    free(f.text);
    return rc;
}

/* ---- remove ------------------------------------------------------------- */

typedef struct {
    const char *name;
    char *out;
    size_t len;
    int removed;
} rm_ctx_t;

static int rm_copy(void *ctx, const char *line, size_t n, const tline_t *t)
{
    rm_ctx_t *r = ctx;
    if (t && strcmp(t->name, r->name) == 0) {
        r->removed++;
        return 0;
    }
    memcpy(r->out + r->len, line, n);
    r->len += n;
    r->out[r->len++] = '\n';
    return 0;
}

int tm_cli_trust_remove(const char *path, const char *name, int quiet)
{
    tfile_t f;
    int rc = read_file(path, 1, &f);
    if (rc != TM_CLI_EXIT_OK) {
        free(f.text);
        return rc;
    }
    rm_ctx_t r = {.name = name, .out = malloc(f.len + 2)};
    if (!r.out) {
        free(f.text);
        return TM_CLI_EXIT_LOCAL;
    }
    rc = each_line(path, &f, rm_copy, &r);
    if (rc == TM_CLI_EXIT_OK && !r.removed) {
        fprintf(stderr, "tillmesh: %s has no till named %s (see `tillmesh trust list`)\n", path,
                name);
        rc = TM_CLI_EXIT_LOCAL;
    }
    if (rc == TM_CLI_EXIT_OK)
        rc = replace_file(path, &f, r.out, r.len);
    if (rc == TM_CLI_EXIT_OK && !quiet)
        printf("%s: removed %s. Once reloaded, tillmeshd cuts that till off and drops "
               "its frames.\n%s"
               "Remove it on every till of the store.\n",
               path, name, RELOAD_HINT);
    free(r.out);
    free(f.text);
    return rc;
}

/* ---- has ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    int found;
} has_ctx_t;

static int has_one(void *ctx, const char *line, size_t n, const tline_t *t)
{
    has_ctx_t *h = ctx;
    (void)line;
    (void)n;
    h->found |= t && strcmp(t->name, h->name) == 0;
    return 0;
}

int tm_cli_trust_has(const char *path, const char *name)
{
    tfile_t f;
    has_ctx_t h = {.name = name};
    int rc = read_file(path, 0, &f);
    if (rc == TM_CLI_EXIT_OK)
        rc = each_line(path, &f, has_one, &h);
    free(f.text);
    return rc != TM_CLI_EXIT_OK ? -1 : h.found;
}

/* ---- list --------------------------------------------------------------- */

static int list_one(void *ctx, const char *line, size_t n, const tline_t *t)
{
    (void)line;
    (void)n;
    if (t) {
        (*(int *)ctx)++;
        printf("%-20s %s %s\n", t->name, t->pub, t->sign[0] ? t->sign : "(no signing key)");
    }
    return 0;
}

int tm_cli_trust_list(const char *path)
{
    tfile_t f;
    int n = 0, rc = read_file(path, 1, &f);
    if (rc == TM_CLI_EXIT_OK) {
        printf("# %s\n%-20s %-40s %s\n", path, "NAME", "CURVE-PUBLIC", "SIGNING-PUBLIC");
        rc = each_line(path, &f, list_one, &n);
    }
    if (rc == TM_CLI_EXIT_OK)
        printf("# %d till(s)\n", n);
    free(f.text);
    return rc;
}
