/*
 * keygen.c - `tillmesh keygen`: a CurveZMQ keypair for a till, and the
 * trusted keys line that names it: "NAME CURVE-PUBLIC SIGNING-PUBLIC". The
 * till's op-signing key derives from its Curve secret key (tm_sign.h), so
 * it needs no file of its own; its public half is written to PREFIX.sign.
 * `--from KEY` prints the line again for an existing key (upgrading a store
 * from before signed ops).
 *
 * The secret key file is created with O_EXCL under umask 077 and mode 0600,
 * so it is never readable by others, not even for a moment, and an existing
 * key is never overwritten. Both files hold one line of Z85 text.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "cli_int.h"
#include "tm_sign.h"

#define Z85_KEY_LEN 40

int tm_cli_write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Creates path (which must not exist) holding "line\n" with the given mode. */
static int write_new_file(const char *path, const char *line, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "tillmesh: cannot create %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (refusing to overwrite a key)" : "");
        return -1;
    }
    char buf[Z85_KEY_LEN + 2];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    int bad = fchmod(fd, mode) != 0 || tm_cli_write_all(fd, buf, (size_t)n) != 0 || fsync(fd) != 0;
    int err = errno;
    explicit_bzero(buf, sizeof buf);
    if (close(fd) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        fprintf(stderr, "tillmesh: cannot write %s: %s\n", path, strerror(err));
        unlink(path);
        return -1;
    }
    return 0;
}

/* mkdir -p of the directory part of prefix; new directories get 0700. */
static int make_parent_dirs(const char *prefix)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", prefix);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "tillmesh: cannot create directory %s: %s\n", dir, strerror(errno));
            return -1;
        }
        *p = c;
        if (c == '\0')
            return 0;
    }
}

static int refuse_existing(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        fprintf(stderr,
                "tillmesh: %s already exists; refusing to overwrite a key "
                "(move it away first)\n",
                path);
        return -1;
    }
    return 0;
}

int tm_cli_check_name(const char *name)
{
    if (!*name)
        return -1;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '#')
            return -1;
    return 0;
}

/* The Z85 op-signing public key of the till whose Curve secret is sec. */
static int sign_pub_z85(const char *sec, char out[Z85_KEY_LEN + 1])
{
    uint8_t secret[32], pk[TM_SIGN_PK_LEN], sk[TM_SIGN_SK_LEN];
    if (strlen(sec) != Z85_KEY_LEN || !zmq_z85_decode(secret, sec))
        return -1;
    tm_sign_keypair(secret, pk, sk);
    explicit_bzero(secret, sizeof secret);
    explicit_bzero(sk, sizeof sk);
    return zmq_z85_encode(out, pk, sizeof pk) ? 0 : -1;
}

/* Writes PREFIX.key (0600), PREFIX.pub and PREFIX.sign (0644), creating
 * missing parent directories and never overwriting; sign gets the Z85
 * signing public key. An exit code; nothing is left half-written. */
static int write_files(const char *prefix, const char *pub, const char *sec,
                       char sign[Z85_KEY_LEN + 1])
{
    char key_path[PATH_MAX], pub_path[PATH_MAX], sign_path[PATH_MAX];
    if (snprintf(key_path, sizeof key_path, "%s.key", prefix) >= (int)sizeof key_path ||
        snprintf(pub_path, sizeof pub_path, "%s.pub", prefix) >= (int)sizeof pub_path ||
        snprintf(sign_path, sizeof sign_path, "%s.sign", prefix) >= (int)sizeof sign_path) {
        fprintf(stderr, "tillmesh: --out path is too long\n");
        return TM_CLI_EXIT_LOCAL;
    }
    if (sign_pub_z85(sec, sign) != 0)
        return TM_CLI_EXIT_LOCAL;
    if (refuse_existing(key_path) || refuse_existing(pub_path) || refuse_existing(sign_path) ||
        make_parent_dirs(prefix))
        return TM_CLI_EXIT_LOCAL;
    mode_t old = umask(077);
    int rc = TM_CLI_EXIT_LOCAL;
    if (write_new_file(key_path, sec, 0600) != 0)
        goto cleanup;
    if (write_new_file(pub_path, pub, 0644) != 0 || write_new_file(sign_path, sign, 0644) != 0) {
        unlink(key_path);
        unlink(pub_path);
        goto cleanup;
    }
    rc = TM_CLI_EXIT_OK;
cleanup:
    umask(old);
    return rc;
}

static int write_pair(const char *prefix, const char *name, const char *pub, const char *sec)
{
    char sign[Z85_KEY_LEN + 1];
    int rc = write_files(prefix, pub, sec, sign);
    if (rc != TM_CLI_EXIT_OK)
        return rc;
    printf("secret key: %s.key (mode 0600; keep it on this till only)\n"
           "public key: %s.pub\n"
           "signing key (public): %s.sign\n"
           "public key (Z85): %s\n\n"
           "Add this line to the store's trusted keys file on every till:\n"
           "%s %s %s\n",
           prefix, prefix, prefix, pub, name, pub, sign);
    return rc;
}

int tm_cli_keypair_files(const char *prefix, char pub[TM_CLI_Z85_LEN + 1],
                         char sign[TM_CLI_Z85_LEN + 1])
{
    char sec[Z85_KEY_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0) {
        fprintf(stderr, "tillmesh: cannot make a CurveZMQ keypair: %s\n", zmq_strerror(errno));
        return TM_CLI_EXIT_LOCAL;
    }
    int rc = write_files(prefix, pub, sec, sign);
    explicit_bzero(sec, sizeof sec);
    return rc;
}

bool tm_cli_z85_key_ok(const char *s)
{
    uint8_t k[32];
    return strlen(s) == Z85_KEY_LEN && zmq_z85_decode(k, s) != NULL;
}

int tm_cli_keygen(const char *prefix, const char *name)
{
    char pub[Z85_KEY_LEN + 1], sec[Z85_KEY_LEN + 1];
    int rc = TM_CLI_EXIT_LOCAL;
    if (prefix && (!*prefix || prefix[strlen(prefix) - 1] == '/'))
        return tm_cli_usage_error("keygen", "keygen: --out needs a file prefix such as "
                                            "/etc/tillmesh/keys/till-1, not a directory");
    if (!name && prefix)
        name = strrchr(prefix, '/') ? strrchr(prefix, '/') + 1 : prefix;
    if (name && tm_cli_check_name(name) != 0)
        return tm_cli_usage_error("keygen",
                                  "keygen: the key name '%s' must be one word without "
                                  "spaces or '#'",
                                  name);
    if (zmq_curve_keypair(pub, sec) != 0) {
        fprintf(stderr,
                "tillmesh: cannot make a CurveZMQ keypair: %s (libzmq without CURVE "
                "support?)\n",
                zmq_strerror(errno));
        goto cleanup;
    }
    if (prefix) {
        rc = write_pair(prefix, name, pub, sec);
        goto cleanup;
    }
    char sign[Z85_KEY_LEN + 1];
    if (sign_pub_z85(sec, sign) != 0)
        goto cleanup;
    printf("public-key: %s\nsecret-key: %s\nsigning-key: %s\n", pub, sec, sign);
    if (name)
        printf("\nAdd this line to the store's trusted keys file on every till:\n%s %s %s\n", name,
               pub, sign);
    rc = TM_CLI_EXIT_OK;
cleanup:
    explicit_bzero(sec, sizeof sec);
    return rc;
}

int tm_cli_keygen_line(const char *key_path, const char *name)
{
    char line[128], pub[Z85_KEY_LEN + 1], sign[Z85_KEY_LEN + 1];
    uint8_t secret[32];
    int rc = TM_CLI_EXIT_LOCAL;
    FILE *f = fopen(key_path, "r");
    if (!f) {
        fprintf(stderr, "tillmesh: cannot read %s: %s\n", key_path, strerror(errno));
        return rc;
    }
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, " \t\r\n")] = '\0';
    if (strlen(line) != Z85_KEY_LEN || !zmq_z85_decode(secret, line) ||
        zmq_curve_public(pub, line) != 0 || sign_pub_z85(line, sign) != 0) {
        fprintf(stderr, "tillmesh: %s does not hold a Z85 CurveZMQ secret key\n", key_path);
        goto cleanup;
    }
    if (!name) {
        const char *base = strrchr(key_path, '/') ? strrchr(key_path, '/') + 1 : key_path;
        snprintf(line, sizeof line, "%s", base);
        char *dot = strrchr(line, '.');
        if (dot && strcmp(dot, ".key") == 0)
            *dot = '\0';
        name = line;
    }
    if (tm_cli_check_name(name) != 0) {
        rc = tm_cli_usage_error("keygen", "keygen: the key name '%s' must be one word", name);
        goto cleanup;
    }
    printf("%s %s %s\n", name, pub, sign);
    rc = TM_CLI_EXIT_OK;
cleanup:
    explicit_bzero(secret, sizeof secret);
    return rc;
}
