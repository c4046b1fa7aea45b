/*
 * setup.c - `tillmesh init`: everything a new till needs before tillmeshd
 * can start, in one command: the config (deploy/tillmeshd.conf, compiled in,
 * with this till's values filled in, so every setting stays explained), the
 * CurveZMQ keypair (keygen.c), the trusted keys file holding this till's own
 * line, and the data directory. It prints the one command to run on every
 * other till of the store (`tillmesh trust add ...`).
 *
 * Nothing is overwritten without --force; with it, each replaced file is
 * kept as FILE.old. Run as root, the secret key and the data directory go to
 * the service user (--user, default "tillmesh" when that user exists) and
 * the config to its group, mode 0640; the secret key is 0600 either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_int.h"
#include "tm_conf_template.h"
#include "tm_config.h"

#define DEFAULT_DIR  "/etc/tillmesh"
#define DEFAULT_DATA "/var/lib/tillmesh"
#define SERVICE_USER "tillmesh"

typedef struct {
    char dir[PATH_MAX], data[PATH_MAX], conf[PATH_MAX], prefix[PATH_MAX];
    char key[PATH_MAX], pub_path[PATH_MAX], sign_path[PATH_MAX], trusted[PATH_MAX];
    int chown_to; /* 1: uid/gid below are the service user's */
    uid_t uid;
    gid_t gid;
    char user[64];
} paths_t;

/* A value written into the config: one line, no comment characters. */
static int plain_value(const char *what, const char *v, size_t max)
{
    if (!*v || strlen(v) > max) {
        fprintf(stderr, "tillmesh: init: %s must be 1 to %zu characters\n", what, max);
        return -1;
    }
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '#' || *p == ';') {
            fprintf(stderr,
                    "tillmesh: init: %s '%s' must be one word without spaces, control "
                    "characters, '#' or ';'\n",
                    what, v);
            return -1;
        }
    return 0;
}

/* mkdir -p path; the last component gets mode (existing ones are left). */
static int make_dirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, c ? 0755 : mode) != 0 && errno != EEXIST) {
            fprintf(stderr, "tillmesh: init: cannot create directory %s: %s\n", buf,
                    strerror(errno));
            return -1;
        }
        *p = c;
        if (!c)
            return 0;
    }
}

static int abs_dir(const char *in, mode_t mode, char *out)
{
    if (make_dirs(in, mode) != 0)
        return -1;
    if (!realpath(in, out)) {
        fprintf(stderr, "tillmesh: init: %s: %s\n", in, strerror(errno));
        return -1;
    }
    return 0;
}

static int fill_paths(const tm_cli_init_t *o, paths_t *p)
{
    if (abs_dir(o->dir ? o->dir : DEFAULT_DIR, 0755, p->dir) ||
        abs_dir(o->data ? o->data : DEFAULT_DATA, 0700, p->data))
        return -1;
    if (snprintf(p->conf, sizeof p->conf, "%s/tillmeshd.conf", p->dir) >= (int)sizeof p->conf ||
        snprintf(p->prefix, sizeof p->prefix, "%s/%s", p->dir, o->name) >= (int)sizeof p->prefix ||
        snprintf(p->key, sizeof p->key, "%s.key", p->prefix) >= (int)sizeof p->key ||
        snprintf(p->pub_path, sizeof p->pub_path, "%s.pub", p->prefix) >= (int)sizeof p->pub_path ||
        snprintf(p->sign_path, sizeof p->sign_path, "%s.sign", p->prefix) >=
            (int)sizeof p->sign_path ||
        snprintf(p->trusted, sizeof p->trusted, "%s/trusted_keys", p->dir) >=
            (int)sizeof p->trusted ||
        strlen(p->data) >= TM_CFG_STR || strlen(p->key) >= TM_CFG_STR) {
        fprintf(stderr, "tillmesh: init: paths are too long\n");
        return -1;
    }
    return 0;
}

/* Whose files these are: --user, else the service user when root. */
static int pick_user(const tm_cli_init_t *o, paths_t *p)
{
    const char *want = o->user;
    if (!want && geteuid() == 0)
        want = getpwnam(SERVICE_USER) ? SERVICE_USER : NULL;
    if (!want) {
        if (geteuid() == 0)
            fprintf(stderr,
                    "tillmesh: init: NOTE: no user '%s' here, so the files stay root's; "
                    "tillmeshd must then run as root, or give --user USER (the Debian "
                    "package creates '%s')\n",
                    SERVICE_USER, SERVICE_USER);
        return 0;
    }
    struct passwd *pw = getpwnam(want);
    if (!pw) {
        fprintf(stderr, "tillmesh: init: --user %s: no such user\n", want);
        return -1;
    }
    if (pw->pw_uid != geteuid() && geteuid() != 0) {
        fprintf(stderr, "tillmesh: init: --user %s needs root (files are given to that user)\n",
                want);
        return -1;
    }
    p->chown_to = 1;
    p->uid = pw->pw_uid;
    p->gid = pw->pw_gid;
    snprintf(p->user, sizeof p->user, "%s", want);
    return 0;
}

/* Without force: lists what exists and fails. With it: FILE -> FILE.old. */
static int clear_way(const tm_cli_init_t *o, const paths_t *p)
{
    const char *files[] = {p->conf, p->key, p->pub_path, p->sign_path};
    int clash = 0;
    struct stat st;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (lstat(files[i], &st) != 0)
            continue;
        if (!o->force) {
            fprintf(stderr, "tillmesh: init: %s exists\n", files[i]);
            clash = 1;
            continue;
        }
        char old[PATH_MAX + 8];
        snprintf(old, sizeof old, "%s.old", files[i]);
        if (rename(files[i], old) != 0) {
            fprintf(stderr, "tillmesh: init: cannot move %s aside: %s\n", files[i],
                    strerror(errno));
            return -1;
        }
        printf("moved %s to %s\n", files[i], old);
    }
    int has = tm_cli_trust_has(p->trusted, o->name);
    if (has < 0)
        return -1;
    if (has && !o->force) {
        fprintf(stderr, "tillmesh: init: %s already names a till %s\n", p->trusted, o->name);
        clash = 1;
    }
    if (clash) {
        fprintf(stderr,
                "tillmesh: init: refusing to overwrite (this till looks set up already). "
                "With --force the old files are kept as FILE.old and a NEW key is made: every "
                "other till must then trust the new key (`tillmesh trust remove %s`, then "
                "`trust add` with the new line)\n",
                o->name);
        return -1;
    }
    if (has && tm_cli_trust_remove(p->trusted, o->name, 1) != TM_CLI_EXIT_OK)
        return -1;
    return 0;
}

/* The example config with this till's values: a line "KEY = ..." or
 * "# KEY = ..." in the right section becomes "KEY = VALUE" (first only). */
typedef struct {
    const char *section, *key, *value;
    int done;
} subst_t;

static int write_config(FILE *f, const tm_cli_init_t *o, const paths_t *p)
{
    subst_t subs[] = {
        {"node", "name", o->name, 0},           {"node", "store_id", o->store, 0},
        {"node", "data_dir", p->data, 0},       {"mesh", "secret_key", p->key, 0},
        {"mesh", "public_key", p->pub_path, 0}, {"mesh", "trusted_keys", p->trusted, 0},
        {"erp", "url", o->erp_url, 0},
    };
    char section[32] = "";
    fprintf(f,
            "# Written by `tillmesh init` for till %s of store %s.\n"
            "# Check with: tillmeshd -n -c %s\n#\n",
            o->name, o->store, p->conf);
    const char *s = TM_CONF_TEMPLATE;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        if (s[0] == '[' && n < sizeof section) {
            const char *close = memchr(s, ']', n);
            if (close)
                snprintf(section, sizeof section, "%.*s", (int)(close - s - 1), s + 1);
        }
        const char *k = s;
        if (k[0] == '#' && k[1] == ' ')
            k += 2;
        int replaced = 0;
        for (size_t i = 0; i < sizeof subs / sizeof subs[0] && !replaced; i++) {
            size_t kl = strlen(subs[i].key);
            if (subs[i].value && !subs[i].done && strcmp(section, subs[i].section) == 0 &&
                strncmp(k, subs[i].key, kl) == 0 && strncmp(k + kl, " = ", 3) == 0) {
                fprintf(f, "%s = %s\n", subs[i].key, subs[i].value);
                subs[i].done = replaced = 1;
            }
        }
        if (!replaced)
            fprintf(f, "%.*s\n", (int)n, s);
        s += n + (nl != NULL);
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (subs[i].value && !subs[i].done) {
            fprintf(stderr, "tillmesh: init: the built-in config has no %s in [%s]\n", subs[i].key,
                    subs[i].section);
            return -1;
        }
    return 0;
}

/* The config, written whole to a temporary file and renamed into place. */
static int install_config(const tm_cli_init_t *o, const paths_t *p)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", p->conf);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "tillmesh: init: cannot create %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    int bad = !f || fchmod(fd, 0640) != 0;
    if (!bad && p->chown_to && geteuid() == 0)
        bad = fchown(fd, 0, p->gid) != 0;
    bad = bad || write_config(f, o, p) != 0 || fflush(f) != 0 || fsync(fd) != 0;
    if (f ? fclose(f) != 0 : close(fd) != 0)
        bad = 1;
    if (bad || rename(tmp, p->conf) != 0) {
        fprintf(stderr, "tillmesh: init: cannot write %s: %s\n", p->conf, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int give(const paths_t *p, const char *path)
{
    if (!p->chown_to || geteuid() != 0 || chown(path, p->uid, p->gid) == 0)
        return 0;
    fprintf(stderr, "tillmesh: init: cannot give %s to %s: %s\n", path, p->user, strerror(errno));
    return -1;
}

static int check_args(const tm_cli_init_t *o)
{
    if (!o->store || !o->name)
        return tm_cli_usage_error("init", "init: --store ID and --name NAME are required");
    if (tm_cli_check_name(o->name) != 0 || strlen(o->name) > 63)
        return tm_cli_usage_error("init",
                                  "init: the name '%s' must be one word of at most 63 "
                                  "characters, without spaces or '#'",
                                  o->name);
    if (plain_value("--store", o->store, 63) || plain_value("--name", o->name, 63))
        return TM_CLI_EXIT_USAGE;
    if (o->erp_url &&
        (plain_value("--erp-url", o->erp_url, 255) ||
         (strncmp(o->erp_url, "https://", 8) != 0 && strncmp(o->erp_url, "http://", 7) != 0)))
        return tm_cli_usage_error("init", "init: --erp-url must be an http:// or https:// URL");
    return -1;
}

int tm_cli_init(const tm_cli_init_t *o)
{
    int rc = check_args(o);
    if (rc >= 0)
        return rc;
    paths_t p = {0};
    char pub[TM_CLI_Z85_LEN + 1], sign[TM_CLI_Z85_LEN + 1];
    if (pick_user(o, &p) || fill_paths(o, &p) || clear_way(o, &p))
        return TM_CLI_EXIT_LOCAL;
    if ((rc = tm_cli_keypair_files(p.prefix, pub, sign)) != TM_CLI_EXIT_OK)
        return rc;
    if (give(&p, p.key) || give(&p, p.data) ||
        tm_cli_trust_add(p.trusted, o->name, pub, sign, 1) != TM_CLI_EXIT_OK ||
        install_config(o, &p))
        return TM_CLI_EXIT_LOCAL;
    /* What tillmeshd -n would say about the files just written. */
    tm_log_t log = {.level = TM_LOG_WARN};
    tm_config_t cfg;
    if (tm_config_load(p.conf, &log, &cfg) != TM_OK) {
        fprintf(stderr, "tillmesh: init: %s does not parse (a bug; see above)\n", p.conf);
        return TM_CLI_EXIT_LOCAL;
    }
    printf("Till %s of store %s is set up:\n"
           "  config        %s (mode 0640%s%s)\n"
           "  secret key    %s (mode 0600%s%s; never leaves this till)\n"
           "  public keys   %s, %s\n"
           "  trusted keys  %s (this till's own line)\n"
           "  data          %s\n",
           o->name, o->store, p.conf, p.chown_to ? ", group " : "", p.chown_to ? p.user : "", p.key,
           p.chown_to ? ", owner " : "", p.chown_to ? p.user : "", p.pub_path, p.sign_path,
           p.trusted, p.data);
    if (!o->erp_url)
        printf("No ERP given: set [erp] url (and token_file) in the config for this till to "
               "forward.\n");
    else
        printf("ERP %s: put its bearer token in a file (chmod 600) and set [erp] token_file "
               "if it needs one.\n",
               o->erp_url);
    printf("Next:\n"
           "  1. tillmeshd -n -c %s\n"
           "  2. On this till, trust each other till: run the `tillmesh trust add` line\n"
           "     that `tillmesh init` printed there.\n"
           "  3. systemctl enable --now tillmeshd  (after a trust change: systemctl reload "
           "tillmeshd)\n"
           "Run this on every other till of the store so that they trust this one:\n"
           "tillmesh trust add %s '%s' '%s'\n",
           p.conf, o->name, pub, sign);
    return TM_CLI_EXIT_OK;
}
