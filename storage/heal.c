/*
 * heal.c - the files under the store: noticing a database deleted or
 * replaced while open, putting it back from the open copy, moving a corrupt
 * store aside and salvaging what can be read of its op log.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_MAX_TM   600
#define SALVAGE_SLICE 512

/* The files that go with a store, -wal first: a log moved last could be
 * applied to a fresh file created at the path meanwhile. */
static const char *const suffixes[] = {"-wal", "-shm", "-journal", ""};

static int s_errno_rc(int e)
{
    switch (e) {
    case EACCES:
    case EPERM:
    case EROFS: return TM_EPERM;
    case ENOSPC:
    case EDQUOT: return TM_EFULL;
    default: return TM_EIO;
    }
}

/* dirname() without touching its argument; "." for a bare name. */
static void s_dir_of(const char *path, char *out, size_t outsz)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        tm_strlcpy(out, ".", outsz);
    else if (slash == path)
        tm_strlcpy(out, "/", outsz);
    else
        snprintf(out, outsz, "%.*s", (int)(slash - path), path);
}

static const char *s_base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A rename is durable once its directory is. */
static int s_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return s_errno_rc(errno);
    int rc = fsync(fd) == 0 ? TM_OK : s_errno_rc(errno);
    close(fd);
    return rc;
}

/* A sentence for tm_store_errmsg(); paths may make it long, and a cut one
 * still says what happened. */
__attribute__((format(printf, 2, 3))) static void s_msg(tm_store_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->errmsg, sizeof self->errmsg, fmt, ap);
    va_end(ap);
}

/* ---- watching --------------------------------------------------------- */

int tm_store__file_note(tm_store_t *self)
{
    struct stat st;
    char wal[PATH_MAX_TM];
    if (stat(self->file.path, &st) != 0) {
        s_msg(self, "stat %s: %s", self->file.path, strerror(errno));
        return s_errno_rc(errno);
    }
    self->file.dev = st.st_dev;
    self->file.ino = st.st_ino;
    snprintf(wal, sizeof wal, "%s-wal", self->file.path);
    self->file.have_wal = stat(wal, &st) == 0;
    self->file.wal_dev = self->file.have_wal ? st.st_dev : 0;
    self->file.wal_ino = self->file.have_wal ? st.st_ino : 0;
    self->file.lost = false;
    self->file.why[0] = '\0';
    return TM_OK;
}

/* 1 (and why) when p no longer names the file (dev, ino); an error other
 * than "gone" tells nothing and counts as unchanged. */
static int s_moved(const char *p, dev_t dev, ino_t ino, const char **why)
{
    struct stat st;
    if (stat(p, &st) != 0) {
        *why = "was deleted";
        return errno == ENOENT || errno == ENOTDIR;
    }
    *why = "was replaced by another file";
    return st.st_dev != dev || st.st_ino != ino;
}

int tm_store_check_file(tm_store_t *self)
{
    char wal[PATH_MAX_TM];
    const char *why = NULL;
    if (self->file.lost || !self->db)
        return TM_ELOST;
    snprintf(wal, sizeof wal, "%s-wal", self->file.path);
    if (s_moved(self->file.path, self->file.dev, self->file.ino, &why)) {
        s_msg(self, "the database file %s %s while open", self->file.path, why);
    } else if (self->file.have_wal && s_moved(wal, self->file.wal_dev, self->file.wal_ino, &why)) {
        s_msg(self, "the write-ahead log %s (the latest commits) %s while open", wal, why);
    } else {
        struct stat st;
        /* SQLite makes the -wal on the first read after switching to WAL. */
        if (!self->file.have_wal && stat(wal, &st) == 0) {
            self->file.have_wal = true;
            self->file.wal_dev = st.st_dev;
            self->file.wal_ino = st.st_ino;
        }
        return TM_OK;
    }
    self->file.lost = true;
    tm_strlcpy(self->file.why, self->errmsg, sizeof self->file.why);
    return TM_ELOST;
}

int tm_store_is_lost(const tm_store_t *self)
{
    return self->file.lost || !self->db;
}

const char *tm_store_lost_reason(const tm_store_t *self)
{
    if (!tm_store_is_lost(self))
        return "";
    return self->file.why[0] ? self->file.why : "the store was closed after a failed restore";
}

/* ---- moving aside ----------------------------------------------------- */

int tm_store_quarantine(const char *path, const char *label, time_t now, char *dir_out,
                        size_t dir_sz)
{
    char dir[PATH_MAX_TM], stamp[32], from[PATH_MAX_TM], to[PATH_MAX_TM * 2];
    struct tm tmv;
    int rc = TM_OK;
    if (dir_sz)
        dir_out[0] = '\0';
    s_dir_of(path, dir, sizeof dir);
    gmtime_r(&now, &tmv);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tmv);
    /* Two starts in one second must not mix their files. */
    for (int n = 1;; n++) {
        if (n == 1)
            snprintf(to, sizeof to, "%s/%s-%s", dir, label, stamp);
        else
            snprintf(to, sizeof to, "%s/%s-%s-%d", dir, label, stamp, n);
        if (mkdir(to, 0700) == 0)
            break;
        if (errno != EEXIST || n >= 100)
            return s_errno_rc(errno);
    }
    tm_strlcpy(dir_out, to, dir_sz);
    size_t tolen = strlen(to);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(from, sizeof from, "%s%s", path, suffixes[i]);
        snprintf(to + tolen, sizeof to - tolen, "/%s%s", s_base_of(path), suffixes[i]);
        if (rename(from, to) != 0 && errno != ENOENT) {
            rc = s_errno_rc(errno);
            break;
        }
        to[tolen] = '\0';
    }
    to[tolen] = '\0';
    if (rc == TM_OK && (rc = s_fsync_dir(to)) == TM_OK)
        rc = s_fsync_dir(dir);
    return rc;
}

/* ---- putting a lost store back ---------------------------------------- */

/* The open connection's content into a new file at tmp, durably. */
static int s_backup_to(tm_store_t *self, const char *tmp)
{
    sqlite3 *dst = NULL;
    char j[PATH_MAX_TM + 16];
    snprintf(j, sizeof j, "%s-journal", tmp);
    (void)unlink(tmp); /* a leftover from an earlier attempt */
    (void)unlink(j);
    int src = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    int rc;
    if (src != SQLITE_OK) {
        s_msg(self, "cannot create %s: %s", tmp, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(src));
        rc = (src & 0xff) == SQLITE_CANTOPEN ? s_errno_rc(dst ? sqlite3_system_errno(dst) : EIO)
                                             : TM_EIO;
        goto cleanup;
    }
    (void)sqlite3_exec(dst, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", self->db, "main");
    if (!b) {
        s_msg(self, "backup to %s: %s", tmp, sqlite3_errmsg(dst));
        rc = TM_EIO;
        goto cleanup;
    }
    src = sqlite3_backup_step(b, -1);
    int fin = sqlite3_backup_finish(b);
    if (src == SQLITE_DONE)
        src = fin;
    if (src != SQLITE_OK && src != SQLITE_DONE) {
        s_msg(self, "copying the open store to %s: %s", tmp, sqlite3_errstr(src));
        switch (src & 0xff) {
        /* The open copy itself is unreadable: only a fresh start helps. */
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: rc = TM_ECORRUPT; break;
        case SQLITE_FULL: rc = TM_EFULL; break;
        default:
            rc = src == SQLITE_IOERR_READ || src == SQLITE_IOERR_SHORT_READ ? TM_ECORRUPT : TM_EIO;
        }
        goto cleanup;
    }
    rc = TM_OK;
cleanup:
    if (sqlite3_close(dst) != SQLITE_OK && rc == TM_OK)
        rc = TM_EIO;
    if (rc) {
        (void)unlink(tmp);
        (void)unlink(j);
    }
    return rc;
}

/* Makes the store's directory again if it went with the files. */
static int s_mkdir_for(tm_store_t *self, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return TM_OK;
        s_msg(self, "%s is no longer a directory; remove what is there", dir);
        return TM_EIO;
    }
    if (mkdir(dir, 0700) == 0) {
        char parent[PATH_MAX_TM];
        s_dir_of(dir, parent, sizeof parent);
        return s_fsync_dir(parent);
    }
    s_msg(self, "cannot make the directory %s again: %s", dir, strerror(errno));
    return s_errno_rc(errno);
}

int tm_store_restore(tm_store_t *self, time_t now, char *aside, size_t aside_sz)
{
    char dir[PATH_MAX_TM], tmp[PATH_MAX_TM], wal[PATH_MAX_TM];
    const char *path = self->file.path;
    uint8_t id[TM_NODE_ID_LEN];
    struct stat st;
    int rc;
    if (aside_sz)
        aside[0] = '\0';
    if (!self->db)
        return TM_ESTATE;
    if (!self->file.lost)
        return TM_OK;
    s_dir_of(path, dir, sizeof dir);
    snprintf(tmp, sizeof tmp, "%s.restore", path);
    if ((rc = s_mkdir_for(self, dir)) || (rc = s_backup_to(self, tmp)))
        return rc;
    /* Our own -wal, if still there, is in the copy now; it must not go
     * aside next to someone else's file, which it would then corrupt. */
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (self->file.have_wal && stat(wal, &st) == 0 && st.st_dev == self->file.wal_dev &&
        st.st_ino == self->file.wal_ino)
        (void)unlink(wal);
    /* Someone else's file at the path is kept, aside, not overwritten. Our
     * own (only the -wal went) is simply replaced. */
    if (stat(path, &st) == 0 && (st.st_dev != self->file.dev || st.st_ino != self->file.ino)) {
        if ((rc = tm_store_quarantine(path, "replaced", now, aside, aside_sz))) {
            s_msg(self, "cannot move the file found at %s aside: %s", path, tm_strerror(rc));
            (void)unlink(tmp);
            return rc;
        }
    }
    /* Close before the rename: closing checkpoints into the old inode and
     * deletes PATH-wal, which must not be a log of the new file by then. */
    memcpy(id, self->node_id, sizeof id);
    if (tm_store__close_db(self) != TM_OK) {
        /* A connection closing later would delete PATH-wal: the new file's. */
        s_msg(self, "the open store could not be closed (a statement is still open)");
        (void)unlink(tmp);
        return TM_EIO;
    }
    /* From here the old connection is gone: any failure leaves no store. */
    if (rename(tmp, path) != 0) {
        s_msg(self, "rename %s to %s: %s", tmp, path, strerror(errno));
        return TM_ESTATE;
    }
    if ((rc = s_fsync_dir(dir)) || (rc = tm_store__open_db(self)))
        return TM_ESTATE;
    if (memcmp(id, self->node_id, sizeof id) != 0) {
        s_msg(self, "the restored store has another node id");
        (void)tm_store__close_db(self);
        return TM_ESTATE;
    }
    return TM_OK;
}

/* ---- salvage ---------------------------------------------------------- */

static void s_old_node_id(sqlite3 *db, tm_salvage_t *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'node_id'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == TM_NODE_ID_LEN) {
        memcpy(out->old_node_id, sqlite3_column_blob(st, 0), TM_NODE_ID_LEN);
        out->old_node_id_known = 1;
    }
    sqlite3_finalize(st);
}

/* Applies a slice; if one op in it is malformed, the others one by one. */
static int s_apply_slice(tm_store_t *self, tm_op_t *ops, size_t n, tm_salvage_t *out)
{
    size_t fresh = 0;
    int rc = tm_store_apply(self, ops, n, &fresh);
    if (rc == TM_OK) {
        out->ops_new += fresh;
        return TM_OK;
    }
    if (rc != TM_EPROTO)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = tm_store_apply(self, &ops[i], 1, &fresh);
        if (rc == TM_EPROTO) {
            out->ops_refused++;
            continue;
        }
        if (rc)
            return rc;
        out->ops_new += fresh;
    }
    return TM_OK;
}

/* One row of the old op log into ops[*n]; a row of the wrong shape counts
 * as refused. */
static int s_take_row(sqlite3_stmt *st, tm_op_t *ops, size_t *n, tm_salvage_t *out)
{
    tm_op_t *op = &ops[*n];
    int len = sqlite3_column_bytes(st, 5);
    memset(op, 0, sizeof *op);
    if (sqlite3_column_bytes(st, 1) != TM_NODE_ID_LEN || sqlite3_column_int64(st, 2) <= 0 ||
        sqlite3_column_int64(st, 3) < 0 || len < 0) {
        out->ops_refused++;
        return TM_OK;
    }
    if (len && !(op->body = malloc((size_t)len)))
        return TM_ENOMEM;
    if (len)
        memcpy(op->body, sqlite3_column_blob(st, 5), (size_t)len);
    memcpy(op->origin, sqlite3_column_blob(st, 1), TM_NODE_ID_LEN);
    op->seq = (uint64_t)sqlite3_column_int64(st, 2);
    op->hlc = (uint64_t)sqlite3_column_int64(st, 3);
    op->kind = (uint32_t)sqlite3_column_int64(st, 4);
    op->body_len = (size_t)len;
    /* A store from after retention and signatures: keep what proves the
     * op (without its signature, peers would refuse it). */
    if (sqlite3_column_count(st) >= 10) {
        if (sqlite3_column_int(st, 7) && sqlite3_column_bytes(st, 6) == 32) {
            op->compacted = true;
            memcpy(op->hash, sqlite3_column_blob(st, 6), 32);
        }
        if (sqlite3_column_bytes(st, 8) == 64 && sqlite3_column_bytes(st, 9) == 32) {
            op->has_sig = true;
            memcpy(op->sig, sqlite3_column_blob(st, 8), 64);
            memcpy(op->prev, sqlite3_column_blob(st, 9), 32);
        }
    }
    (*n)++;
    return TM_OK;
}

static void s_free_slice(tm_op_t *ops, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(ops[i].body);
    *n = 0;
}

/* Reads one slice of rows with id >= *next into ops; *next moves past the
 * last row read. ">=": seeking to k lands on the leaf that would hold k, so
 * the first row behind a damaged leaf is reachable. *failed when reading
 * stopped on an error; *more when the slice was full. */
static int s_read_slice(sqlite3 *old, sqlite3_int64 *next, tm_op_t *ops, size_t *n, bool *failed,
                        bool *more, tm_salvage_t *out)
{
    /* The store may be from before retention and signatures (schema 7). */
    static const char sql[] = "SELECT id, origin, seq, hlc, kind, body, hash, compacted, sig, prev"
                              " FROM ops WHERE id >= ?1 ORDER BY id LIMIT ?2";
    static const char sql_old[] = "SELECT id, origin, seq, hlc, kind, body FROM ops"
                                  " WHERE id >= ?1 ORDER BY id LIMIT ?2";
    sqlite3_stmt *st = NULL;
    int src, rc = TM_OK;
    size_t rows = 0;
    *failed = *more = false;
    if (sqlite3_prepare_v2(old, sql, -1, &st, NULL) != SQLITE_OK &&
        sqlite3_prepare_v2(old, sql_old, -1, &st, NULL) != SQLITE_OK) {
        *failed = true;
        goto cleanup;
    }
    sqlite3_bind_int64(st, 1, *next);
    sqlite3_bind_int(st, 2, SALVAGE_SLICE);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 id = sqlite3_column_int64(st, 0);
        *next = id < INT64_MAX ? id + 1 : id;
        out->rows_read++;
        rows++;
        if ((rc = s_take_row(st, ops, n, out)))
            goto cleanup;
    }
    *failed = src != SQLITE_DONE;
    *more = !*failed && rows == SALVAGE_SLICE;
cleanup:
    sqlite3_finalize(st);
    return rc;
}

/* 1 if the first row with id >= k (or the end) can be reached. */
static bool s_probe(sqlite3 *old, sqlite3_int64 k)
{
    sqlite3_stmt *st = NULL;
    bool ok = false;
    if (sqlite3_prepare_v2(old, "SELECT id FROM ops WHERE id >= ?1 ORDER BY id LIMIT 1", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, k);
        int src = sqlite3_step(st);
        ok = src == SQLITE_ROW || src == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return ok;
}

/*
 * Reading rows with id >= bad failed (the row is behind a damaged page or
 * is damaged itself). Returns the smallest k > bad from which reading
 * works again: probes
 * further and further ahead until one works, then halves the gap back to
 * the first readable row, so the rows right behind the damage are kept.
 * *end when nothing past the damage can be reached.
 */
static sqlite3_int64 s_past_damage(sqlite3 *old, sqlite3_int64 bad, bool *end)
{
    sqlite3_int64 lo = bad, hi = bad, step = 1; /* lo: known to fail */
    *end = false;
    for (;;) {
        if (hi > INT64_MAX - step) {
            *end = true;
            return bad;
        }
        hi += step;
        if (s_probe(old, hi))
            break;
        lo = hi;
        if (step > INT64_MAX / 2) {
            *end = true;
            return bad;
        }
        step *= 2;
    }
    while (hi - lo > 1) {
        sqlite3_int64 mid = lo + (hi - lo) / 2;
        if (s_probe(old, mid))
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static int s_salvage_ops(tm_store_t *self, sqlite3 *old, tm_salvage_t *out)
{
    tm_op_t *ops = calloc(SALVAGE_SLICE, sizeof *ops);
    sqlite3_int64 next = 1;
    size_t n = 0;
    int rc = TM_OK;
    if (!ops)
        return TM_ENOMEM;
    for (;;) {
        bool failed, more, end;
        if ((rc = s_read_slice(old, &next, ops, &n, &failed, &more, out)))
            break;
        if (n && (rc = s_apply_slice(self, ops, n, out)))
            break;
        s_free_slice(ops, &n);
        if (!failed && !more)
            break;
        if (!failed)
            continue;
        out->read_errors++;
        next = s_past_damage(old, next, &end);
        if (end)
            break;
    }
    s_free_slice(ops, &n);
    free(ops);
    return rc;
}

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The pages a write-ahead log names: its page size and the highest page
 * number or database size in its frame headers (SQLite's WAL format: a
 * 32-byte header, then frames of a 24-byte header and one page). */
static int s_wal_extent(FILE *f, uint32_t *page_size, uint64_t *pages)
{
    uint8_t h[32];
    *pages = 0;
    if (fread(h, 1, sizeof h, f) != sizeof h)
        return TM_ECORRUPT;
    uint32_t magic = s_be32(h), ps = s_be32(h + 8);
    if ((magic != 0x377f0682 && magic != 0x377f0683) || ps < 512 || ps > 65536 || (ps & (ps - 1)))
        return TM_ECORRUPT;
    *page_size = ps;
    for (uint64_t off = sizeof h;; off += 24 + (uint64_t)ps) {
        uint8_t fh[24];
        if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(fh, 1, sizeof fh, f) != sizeof fh)
            break;
        uint32_t pgno = s_be32(fh), commit = s_be32(fh + 4);
        if (pgno > *pages)
            *pages = pgno;
        if (commit > *pages)
            *pages = commit;
    }
    return *pages ? TM_OK : TM_ECORRUPT;
}

/* Writes into fd the pages of a fresh, empty store made by this build (with
 * the log's page size); nothing if one cannot be made. */
static void s_template_base(const char *old_path, int fd, uint32_t ps)
{
    char tmpl[PATH_MAX_TM], side[PATH_MAX_TM + 8];
    snprintf(tmpl, sizeof tmpl, "%s.template", old_path);
    tm_store_t *t = NULL;
    if (tm_store_open(tmpl, NULL, &t) != TM_OK)
        goto cleanup;
    tm_store_destroy(&t); /* checkpoints: the whole template is in the file */
    FILE *f = fopen(tmpl, "rb");
    if (f) {
        uint8_t buf[65536];
        size_t n;
        uint8_t h[18];
        /* Only a template with the log's page size fits under it. */
        if (fread(h, 1, sizeof h, f) == sizeof h &&
            ((uint32_t)h[16] << 8 | h[17]) == (ps == 65536 ? 1 : ps) && fseek(f, 0, SEEK_SET) == 0)
            while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                if (write(fd, buf, n) != (ssize_t)n)
                    break;
        fclose(f);
    }
cleanup:
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(side, sizeof side, "%s%s", tmpl, suffixes[i]);
        (void)unlink(side);
    }
}

/* See tm_store_salvage: a sparse file of zeroes under an orphaned -wal. */
static int s_main_from_wal(const char *old_path, tm_salvage_t *out)
{
    char wal[PATH_MAX_TM];
    struct stat st;
    uint32_t ps = 0;
    uint64_t pages = 0;
    if (stat(old_path, &st) == 0 || errno != ENOENT)
        return TM_OK;
    snprintf(wal, sizeof wal, "%s-wal", old_path);
    FILE *f = fopen(wal, "rb");
    if (!f)
        return TM_OK; /* nothing at all: the open below says so */
    int rc = s_wal_extent(f, &ps, &pages);
    fclose(f);
    if (rc)
        return rc;
    int fd = open(old_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return s_errno_rc(errno);
    /* Pages the log does not hold were written before it: the schema that
     * migrations made, and tables never written since. An empty store made
     * by this build has them where a store made by this build put them, so
     * it is the base; the log's pages go over it as SQLite reads them. */
    s_template_base(old_path, fd, ps);
    rc = ftruncate(fd, (off_t)(pages * ps)) == 0 ? TM_OK : s_errno_rc(errno);
    close(fd);
    out->wal_only = rc == TM_OK;
    return rc;
}

int tm_store_salvage(tm_store_t *self, const char *old_path, tm_salvage_t *out)
{
    sqlite3 *old = NULL;
    memset(out, 0, sizeof *out);
    if (s_main_from_wal(old_path, out) != TM_OK) {
        out->read_errors++;
        return TM_OK;
    }
    /* Read-write only so that SQLite can read the -wal (it rebuilds the
     * -shm index); no checkpoint on close, so the main file is not
     * rewritten, and query_only: nothing else is either. */
    int src = sqlite3_open_v2(old_path, &old, SQLITE_OPEN_READWRITE, NULL);
    int rc = TM_OK;
    if (src != SQLITE_OK) {
        out->read_errors++;
        goto cleanup;
    }
    sqlite3_db_config(old, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    /* writable_schema also lets SQLite read a file shorter than its header
     * says (a truncated store), which it otherwise refuses outright. */
    (void)sqlite3_exec(old, "PRAGMA query_only = 1; PRAGMA writable_schema = 1", NULL, NULL, NULL);
    s_old_node_id(old, out);
    rc = s_salvage_ops(self, old, out);
cleanup:
    sqlite3_close(old);
    return rc;
}
