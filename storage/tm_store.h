/*
 * tm_store.h - the SQLite store of one till: op log, version vector and the
 * records materialised from the ops.
 *
 * One tm_store_t owns one SQLite connection and must be used by one thread
 * (the engine thread). The file is in WAL mode with synchronous=FULL, so a
 * function that returned TM_OK after writing has made the write durable:
 * it survives kill -9 and power loss (promise P1).
 *
 * The op log holds, per origin node, ops numbered densely from 1. Ops may
 * arrive out of order; the version vector records, per origin, the highest
 * seq up to which the log has no gap. Applying an op that is already held is
 * a no-op, and materialisation is a CRDT (sales: grow-only set keyed by
 * sale_id, each sale immutable and owned by the till that made it - see
 * "Ownership" below; customers: last-writer-wins register per field; ERP
 * acks: grow-only set, each ack bound to an intent of the same origin), so
 * any order of any ops with any duplicates gives the same state and the same
 * digest.
 *
 * Every write is one transaction: on error nothing was written.
 */
#ifndef TM_STORE_H
#define TM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tm_common.h"
#include "tm_record.h"

typedef struct tm_store tm_store_t;

typedef enum {
    TM_OP_SALE = 1,
    TM_OP_CUSTOMER = 2,
    TM_OP_ERP_ACK = 3,
    TM_OP_ERP_INTENT = 4, /* a forwarder's batch, written before it is sent */
    TM_OP_SEAL = 5,       /* unsigned history this till vouches for (tm_store_set_signer) */
    TM_OP_CATALOGUE = 6,  /* a page of the ERP's catalogue, written by the forwarder */
    TM_OP_REISSUE = 7 /* ops of a restored till's old origin it said again (tm_store_reincarnate) */
} tm_op_kind_t;

/* An op. In results from the store, body points into memory owned by the
 * array it came in (see tm_store_ops_free).
 *
 * A compacted op (see tm_store_compact) has lost its body to retention: it
 * keeps its place in the log (origin, seq, hlc, kind) and the hash the
 * digest counts it by, so version vectors and digests stay what they were,
 * and a till that was away longer than the retention can still be brought
 * level by stubs instead of the records themselves. */
typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    uint64_t seq;
    uint64_t hlc;
    uint32_t kind; /* tm_op_kind_t */
    uint8_t *body;
    size_t body_len;
    bool compacted; /* body gone (body_len 0); hash is the op's hash */
    uint8_t hash[32];
    /* Signature of the origin over (op hash, prev) and the hash of the
     * origin's previous op (tm_sign.h); has_sig false on sealed history. */
    bool has_sig;
    uint8_t sig[64];
    uint8_t prev[32];
} tm_op_t;

typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    uint64_t seq; /* highest contiguous seq held */
} tm_vv_entry_t;

/* A version vector, sorted by origin. */
typedef struct {
    tm_vv_entry_t *e;
    size_t n;
} tm_vv_t;

typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    uint64_t from; /* inclusive */
    uint64_t to;   /* inclusive */
} tm_range_t;

typedef struct {
    /* Stop writes when the file would exceed this many pages (0 = no limit).
     * Used by tests to make "disk full" happen on demand. */
    uint64_t max_pages;
} tm_store_opts_t;

/*
 * Opens (creating if needed) the store at path, migrates its schema to the
 * current version, and makes the node id on first open. Errors: TM_ECORRUPT
 * for a file that is not a tillmesh store or fails SQLite's quick_check,
 * TM_EVERSION for a store from a newer tillmesh, TM_EIO, TM_EPERM.
 * opts may be NULL.
 */
int tm_store_open(const char *path, const tm_store_opts_t *opts, tm_store_t **out);
void tm_store_destroy(tm_store_t **self_p);

/* A sentence about the last SQLite error, for logs. */
const char *tm_store_errmsg(const tm_store_t *self);

void tm_store_node_id(const tm_store_t *self, uint8_t out[TM_NODE_ID_LEN]);
/* Schema version (PRAGMA user_version) the store is at. */
int tm_store_schema_version(const tm_store_t *self);
/* The schema version this build migrates to. */
int tm_store_schema_latest(void);

/* The pragmas every store connection takes beyond durability (WAL and
 * synchronous=FULL): foreign keys, cache and checkpoint sizes. For tools
 * that compare raw SQLite with the store on equal terms (bench/sqlite_raw). */
const char *tm_store_tuning_sql(void);

/* Called now and then (every few seconds) by the store's owner: the first
 * time no write began since the last call, the page cache (up to 8 MiB
 * after a catch-up) is handed back to the allocator, so that an idle till
 * does not keep it. Returns whether it did (once per idle stretch). Reads
 * and writes refill it as needed. */
bool tm_store_trim(tm_store_t *self);

/*
 * Appends a local op (origin = our node id, seq = next) and materialises it,
 * in one durable transaction. The body must be an encoded record of `kind`
 * (tm_wire.h); it is decoded and refused with TM_EPROTO if it is not.
 * TM_EFULL when the disk is full (nothing written).
 */
int tm_store_append_local(tm_store_t *self, uint32_t kind, uint64_t hlc, const uint8_t *body,
                          size_t body_len, uint64_t *seq_out);

/*
 * Applies ops from peers in one transaction. Ops already held are skipped;
 * *n_new (may be NULL) receives how many were new. Every body is decoded
 * first; if any op is malformed (bad id, seq 0, unknown kind, undecodable
 * body) the whole batch is refused with TM_EPROTO and nothing is written.
 */
int tm_store_apply(tm_store_t *self, const tm_op_t *ops, size_t n, size_t *n_new);

/* Our version vector; free with tm_vv_free(). */
int tm_store_vv(tm_store_t *self, tm_vv_t *out);
void tm_vv_free(tm_vv_t *vv);
/* Highest contiguous seq from origin (0 if none). */
uint64_t tm_vv_get(const tm_vv_t *vv, const uint8_t origin[TM_NODE_ID_LEN]);

/* Pure: the ranges `theirs` holds and `mine` lacks, one per origin, sorted
 * by origin. *out is malloc'd (NULL when *n == 0); caller frees. */
int tm_vv_missing(const tm_vv_t *mine, const tm_vv_t *theirs, tm_range_t **out, size_t *n);
/* tm_vv_get for a vector sorted by origin without duplicates (ours from
 * the store, peers' as the engine decodes them): O(log n) (storage/vv.c). */
uint64_t tm_vv_find(const tm_vv_t *sorted, const uint8_t origin[TM_NODE_ID_LEN]);
/* Ops that vector a covers and the sorted vector b does not. */
uint64_t tm_vv_ahead(const tm_vv_t *a, const tm_vv_t *b);

/*
 * Reads held ops in the given ranges, in (origin, seq) order, stopping after
 * max_ops ops or before the bodies would exceed max_bytes (at least one op is
 * returned if any is held; 0 means no bound). Ranges may come in any order
 * and overlap; no op is returned twice. Free with tm_store_ops_free().
 */
int tm_store_read_ops(tm_store_t *self, const tm_range_t *ranges, size_t n_ranges, size_t max_ops,
                      size_t max_bytes, tm_op_t **ops, size_t *n);
void tm_store_ops_free(tm_op_t *ops, size_t n);

/* SHA-256 over every held op's (origin, seq, hlc, kind, body) in (origin,
 * seq) order: equal on two stores exactly when they hold the same ops. */
int tm_store_digest(tm_store_t *self, uint8_t out[32]);

typedef struct {
    uint64_t ops;       /* ops held, all origins */
    uint64_t local_ops; /* ops made here */
    uint64_t sales;
    uint64_t customers;
    uint64_t erp_acked; /* sales the ERP has acknowledged */
} tm_store_counts_t;

int tm_store_counts(tm_store_t *self, tm_store_counts_t *out);

/* ---- the file under the store ----------------------------------------- */

/*
 * Whether the path still names the files the connection has open: the
 * database and its -wal (the -wal holds the latest commits until a
 * checkpoint). A file deleted (rm, a cleanup script) or replaced (a copy put
 * in its place) while open means that every write would go to an inode that
 * no later open will see. Then TM_ELOST, and every write is refused with
 * TM_ELOST (nothing written) until tm_store_restore() succeeds; reads still
 * answer from the open files. Every write transaction checks this first.
 * Two stat() calls; an error other than "no such file" counts as unchanged.
 */
int tm_store_check_file(tm_store_t *self);
/* 1 while lost (see tm_store_check_file), else 0. */
int tm_store_is_lost(const tm_store_t *self);
/* What was found by the check that lost the store, for logs and status
 * ("" if not lost). */
const char *tm_store_lost_reason(const tm_store_t *self);

/*
 * Puts a lost store back at its path from the files the connection still
 * has open (SQLite's online backup into PATH.restore, fsync, rename), then
 * reopens it in place: same node id, nothing lost, no re-seed needed. A
 * file put at the path by someone else is first moved aside into
 * DIR/replaced-YYYYmmddTHHMMSS/ (its name in aside, else aside = "").
 * The directory is made again if it is gone. Errors: TM_EIO, TM_EPERM,
 * TM_EFULL when the new file cannot be written (the store stays lost and
 * open; call again later); TM_ECORRUPT when the open copy cannot be read
 * (the store stays lost). TM_ESTATE when the old connection was closed and
 * the new file could not be put in place or opened (rare): the store is
 * then unusable (tm_store_is_lost stays 1) and the caller must stop.
 */
int tm_store_restore(tm_store_t *self, time_t now, char *aside, size_t aside_sz);

/*
 * Moves the store's files (PATH, -wal, -shm, -journal) out of the way into
 * DIR/LABEL-YYYYmmddTHHMMSS/ (UTC, a -N suffix if taken), -wal first so a
 * stray log is never applied to a new file. *dir_out receives the folder.
 * For a store that fails to open (TM_ECORRUPT), before opening a fresh one.
 */
int tm_store_quarantine(const char *path, const char *label, time_t now, char *dir_out,
                        size_t dir_sz);

typedef struct {
    uint64_t rows_read;    /* op rows read from the old file */
    uint64_t ops_new;      /* of those, new to this store */
    uint64_t ops_refused;  /* rows that were not a valid op */
    uint64_t read_errors;  /* places where reading failed and was skipped */
    int old_node_id_known; /* 1 if the old node id could be read */
    uint8_t old_node_id[TM_NODE_ID_LEN];
    int wal_only; /* the database was gone: read from its -wal alone */
} tm_salvage_t;

/*
 * Reads what can be read of the op log of an old (corrupt) store file and
 * applies it to self with tm_store_apply, keeping each op's origin and seq:
 * applying is idempotent, so what peers send later merges with it. Reading
 * goes by rowid in slices; a slice that fails is skipped (probing further
 * ahead, doubling) and counted in read_errors. The old file is opened
 * without checkpointing, so it stays as it was found. Returns TM_OK even if
 * nothing could be read (see *out); an error only when self refused writes.
 * If old_path is gone but old_path-wal is there (the database deleted after
 * a crash, its latest commits still in the log), an empty file of the size
 * the log names is made at old_path so that SQLite reads the pages the log
 * holds; the rest reads as damage and is skipped (wal_only = 1).
 */
int tm_store_salvage(tm_store_t *self, const char *old_path, tm_salvage_t *out);

/* ---- materialised records --------------------------------------------- */

/* TM_ENOTFOUND if absent. On success caller tm_sale_free()s *out. The sale
 * carries its review flag (tm_review_t) as this store holds it now. */
int tm_store_get_sale(tm_store_t *self, const char *sale_id, tm_sale_t *out);
/* TM_ENOTFOUND if absent. */
int tm_store_get_customer(tm_store_t *self, const char *id, tm_customer_t *out);

/*
 * Lists sales in the order this store first saw them. `since` is a cursor:
 * 0 for the start, else a value returned in *next. Returns at most `limit`
 * sales as a malloc'd array (free each with tm_sale_free, then the array).
 */
int tm_store_list_sales(tm_store_t *self, uint64_t since, size_t limit, tm_sale_t **sales,
                        size_t *n, uint64_t *next);

/* Greatest HLC stamp of this node's own ops (0 if none): a restarted node's
 * clock starts above it, whatever the wall clock says. Peers' stamps are not
 * counted: one far-ahead peer op must not drag our clock at every restart. */
int tm_store_max_hlc(tm_store_t *self, uint64_t *out);

/* Greatest stamp of anything held of customer id (its id type and every
 * field; 0 if unknown). A local edit is stamped above it, so that an edit
 * made after seeing another wins over it whatever the clocks say. */
int tm_store_customer_stamp(tm_store_t *self, const char *id, uint64_t *out);

/*
 * Retention: forgets sales the ERP has acknowledged whose op is stamped
 * before cutoff_hlc (an HLC stamp: ms << 16), at most max_sales of them in
 * one transaction. Their ops become compacted stubs (see tm_op_t), their
 * materialised rows go, and their sale ids are remembered so that a late
 * copy of the op does not bring them back. Never touches an
 * unacknowledged sale, a customer, or anything else. *n_done: how many were
 * compacted (fewer than max_sales: nothing more is due).
 */
int tm_store_compact(tm_store_t *self, uint64_t cutoff_hlc, size_t max_sales, size_t *n_done);

/* 1 if sale_id was forgotten by retention, 0 if not, <0 on error. */
int tm_store_is_compacted(tm_store_t *self, const char *sale_id);

/* Pages of the file in use and free (a compacted store reuses free pages
 * before it grows; a store made by this version also returns them to the
 * file system). */
int tm_store_pages(tm_store_t *self, uint64_t *used, uint64_t *free_pages, uint64_t *page_size);

/* ---- trust: signed, chained ops (storage/trust.c, common/tm_sign.h) ---- */

/*
 * Makes this store sign every local op with sk, under the origin pk names
 * (tm_sign_node_id; the incarnation is kept in the store). The first time
 * (a store from before signing, or a new key) the store takes that origin
 * and, in the same transaction, appends one OP_SEAL vouching for the
 * unsigned ops it holds: other tills go on accepting those without a
 * signature, up to the seal. *sealed (may be NULL) says whether it did.
 */
int tm_store_set_signer(tm_store_t *self, const uint8_t pk[32], const uint8_t sk[64], bool *sealed);

/* Ops from peers are verified against these signing keys from now on: an
 * op must come from an origin one of them owns, signed by it, and extend
 * its origin's chain; unsigned ops only within a seal. n == 0 turns
 * verification off (tools, and tests of other parts). */
int tm_store_set_trusted(tm_store_t *self, const uint8_t (*pks)[32], size_t n);

/*
 * Restored from a backup: peers hold more of this till's own chain than
 * its store does, so the ops it made since it started (seq > keep) fork
 * that chain and its peers refuse them. This takes a new origin (a new
 * incarnation of the same key) and, in one transaction, moves those ops
 * to it: first an OP_REISSUE naming (seq, hash) of each (every till then
 * sets its copies aside or skips them, whatever the order they arrive in,
 * and takes the ops the peers held at those seqs: trust.c), then the ops
 * re-signed under the new origin with the same stamp, kind and body (a
 * sale keeps its sale_id, so it is one sale whichever copy arrives); they
 * are taken out of the old origin, whose real ops then come back from the
 * peers. *n_moved: how many ops moved (the OP_REISSUE not counted).
 */
int tm_store_reincarnate(tm_store_t *self, uint64_t keep, size_t *n_moved);

/*
 * The restore check's mark (core/engine.c): the seq of this till's own
 * origin up to which its ops are its history, set when the till starts and
 * cleared once every peer has shown it holds the ops made since (or
 * nothing else at those seqs). A start that finds it set keeps it: a till
 * restored from a backup that crashes before it notices must still count
 * the ops it made since the restore as ops to check and re-issue, not as
 * its history. A mark of another origin (from before tm_store_reincarnate)
 * reads as none. seq NULL clears it.
 */
int tm_store_self_check_mark(tm_store_t *self, uint64_t *seq, bool *have);
int tm_store_set_self_check_mark(tm_store_t *self, const uint64_t *seq);

#define TM_APPLY_REPORT_ORIGINS 8

typedef struct {
    size_t refused;  /* bad signature, fork, broken chain, bad body: kept as evidence */
    size_t deferred; /* not verifiable yet (unknown key, unsealed history): not stored */
    size_t n_origins;
    uint8_t origins[TM_APPLY_REPORT_ORIGINS][TM_NODE_ID_LEN]; /* origins of those ops */
    char reason[96];                                          /* the last refusal's reason */
    /* Of refused: forks signed by the origin's own key. Whoever relayed one
     * is not at fault (it cannot sign for the origin): charge the till
     * that owns the key, fork_origins, not the relay. */
    size_t forks;
    size_t n_fork_origins;
    uint8_t fork_origins[TM_APPLY_REPORT_ORIGINS][TM_NODE_ID_LEN];
    /* Ops a restored till re-issued under a new origin (TM_OP_REISSUE):
     * skipped, not evidence, nobody's fault. */
    size_t superseded;
    /* Copies of such ops this store held, set aside (evidence) by an
     * OP_REISSUE of this batch. */
    size_t set_aside;
} tm_apply_report_t;

/* tm_store_apply, verifying (see tm_store_set_trusted): refused and
 * deferred ops are skipped and reported in *rep, the rest is applied. */
int tm_store_apply_report(tm_store_t *self, const tm_op_t *ops, size_t n, size_t *n_new,
                          tm_apply_report_t *rep);

typedef struct {
    uint64_t evidence;       /* ops kept as evidence (bounded table) */
    uint64_t refused_total;  /* since open */
    uint64_t deferred_total; /* since open */
    uint64_t reissued;       /* ops of restored tills' old origins, said again under a new one */
    uint64_t reissued_here;  /* of those, ops this store held and set aside (evidence) */
    uint64_t restores;       /* origins of restored tills, re-issued under a new one */
    char last_reason[96];
} tm_trust_stats_t;

int tm_store_trust_stats(tm_store_t *self, tm_trust_stats_t *out);

/* Highest receipt_no among sales made by this till name (0 if none). */
int tm_store_max_receipt(tm_store_t *self, const char *till, uint64_t *out);

/* 1 if the ERP has acknowledged sale_id, 0 if not, <0 on error. */
int tm_store_is_acked(tm_store_t *self, const char *sale_id);

/* Up to max ids of sales not yet acknowledged by the ERP and not parked,
 * oldest first by (hlc, origin, seq): the same order on every till, so a
 * new forwarder re-forms the batch its predecessor sent. */
int tm_store_unacked_sales(tm_store_t *self, size_t max, char (**ids)[TM_UUID_LEN], size_t *n);

/* ---- returns and review flags ----------------------------------------- */

/*
 * The API's check of a new return `ret` (a sale naming refund_of) against
 * its original and the other returns of it held here: tm_refund_check in
 * tm_record.h. TM_OK (and *review = TM_REVIEW_NONE) when ret is within the
 * bounds or is not a return; TM_EVALIDATE with errs filled when it is not.
 * When the original is not held here (yet), TM_OK with *review =
 * TM_REVIEW_ORIGINAL_UNKNOWN: the return may be taken and is flagged.
 */
int tm_store_refund_check(tm_store_t *self, const tm_sale_t *ret, int *review,
                          tm_field_errors_t *errs);

/* A return flagged for review (tm_review_t). */
typedef struct {
    char sale_id[TM_UUID_LEN];
    char refund_of[TM_UUID_LEN];
    int review;
} tm_review_entry_t;

typedef struct {
    uint64_t over_refund;      /* returns whose group breaks the bounds */
    uint64_t original_unknown; /* returns whose original is not held */
} tm_review_counts_t;

/* How many returns are flagged, and up to max of them, over_refund first,
 * by (refund_of, sale_id); *out malloc'd (NULL if none). */
int tm_store_reviews(tm_store_t *self, size_t max, tm_review_entry_t **out, size_t *n,
                     tm_review_counts_t *counts);

/* ---- Ownership: who made a sale, and sales kept aside ----------------

 * A sale is immutable and belongs to the till that made it: the op's
 * origin, whose name is bound by tm_store_bind_origin. Of the ops naming
 * one sale_id, the sales table shows the first by (origin, seq) that passes
 * the API's rules (tm_sale_validate) and whose `till` is its origin's name;
 * every other op with a different body is kept aside as a conflict. The
 * ops themselves stay in the log (vector and digest count them). Two sales
 * of one till with the same receipt_no are both shown and flagged. */

/* Binds an origin (node id) to the name of the till that speaks for it.
 * The first binding stays: TM_ECONFLICT if origin is bound to another
 * name (nothing changes). Binding a new name settles again the sales of
 * that origin that name another till. */
int tm_store_bind_origin(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN], const char *name);
/* The name bound to origin, "" if none. */
int tm_store_origin_name(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN],
                         char name[TM_TILL_MAX]);

/* An op kept aside. reason: "different_body" (a second, different body for
 * a sale_id), "till_not_origin" (names another till than its origin's),
 * "invalid:FIELD:RULE" (breaks a sale rule), "too_many_claims". */
typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    uint64_t seq;
    char sale_id[TM_UUID_LEN];
    char reason[96];
} tm_sale_conflict_t;

typedef struct {
    uint64_t total; /* ops kept aside, every reason */
    uint64_t different_body, till_not_origin, invalid;
    uint64_t dup_receipt; /* sales shown whose (till, receipt_no) is not unique */
} tm_conflict_counts_t;

/* New sale ops kept aside since the store was opened (cheap: for a log
 * line after each batch). */
uint64_t tm_store_kept_aside(const tm_store_t *self);

/* Counts, and up to max conflicts by (sale_id, origin, seq); *out malloc'd
 * (NULL if none). */
int tm_store_conflicts(tm_store_t *self, size_t max, tm_sale_conflict_t **out, size_t *n,
                       tm_conflict_counts_t *counts);

/* ---- ERP forwarding: parked sales and backlog ------------------------- */

/* A sale the ERP refused (4xx): kept aside, shown in status, retried only
 * when an operator says so. Parking is this till's own note and is not
 * replicated. */
typedef struct {
    char sale_id[TM_UUID_LEN];
    int status;         /* the ERP's HTTP status */
    char message[160];  /* the ERP's reason */
    uint64_t parked_at; /* wall ms */
} tm_parked_t;

int tm_store_park(tm_store_t *self, const char *sale_id, int status, const char *message,
                  uint64_t wall_ms);
/* An operator's retry: the sale leaves the parked list and is sent again.
 * TM_ENOTFOUND if the sale was not parked. */
int tm_store_unpark(tm_store_t *self, const char *sale_id);
/* How many times the sale was retried by an operator, plus how many times
 * reconcile found the ERP did not hold it (0 for most sales): part of the
 * idempotency key, so a retry is a new request to the ERP. */
int tm_store_retry_gen(tm_store_t *self, const char *sale_id, uint32_t *gen);
/* For each of ids[0..n), the sale its return refers to (refund_of), ""
 * when it is not a return or not held. */
int tm_store_refunds_of(tm_store_t *self, char (*ids)[TM_UUID_LEN], size_t n,
                        char (*refund_of)[TM_UUID_LEN]);
/* The same for ids[0..n) into gens[0..n), in one pass. */
int tm_store_retry_gens(tm_store_t *self, char (*ids)[TM_UUID_LEN], size_t n, uint32_t *gens);
/* Up to max parked sales, oldest first; *out malloc'd (NULL if none). */
int tm_store_parked(tm_store_t *self, size_t max, tm_parked_t **out, size_t *n);

typedef struct {
    uint64_t unsent;     /* sales neither acknowledged nor parked */
    uint64_t oldest_hlc; /* HLC of the oldest unsent sale (0 if none) */
    uint64_t parked;
} tm_backlog_t;

int tm_store_backlog(tm_store_t *self, tm_backlog_t *out);

/* The oldest batch intent (TM_OP_ERP_INTENT) still holding a sale neither
 * acknowledged nor parked: its sale ids (all of them, in order) and its
 * idempotency key. TM_ENOTFOUND if none. *ids malloc'd. A successor re-sends
 * exactly that batch under that key, so the ERP sees a replay. */
int tm_store_open_intent(tm_store_t *self, char (**ids)[TM_UUID_LEN], size_t *n, char key[64]);
/* The same, passing over the intents skip says yes to (a forwarder's
 * batches in flight, and those it has superseded). */
typedef bool (*tm_store_intent_skip_fn)(void *ctx, const char *key, char (*ids)[TM_UUID_LEN],
                                        size_t n);
int tm_store_open_intent_except(tm_store_t *self, tm_store_intent_skip_fn skip, void *ctx,
                                char (**ids)[TM_UUID_LEN], size_t *n, char key[64]);

/* Reconcile: up to max acknowledged sales after the row cursor after_ins,
 * in the order this store first saw them; *last_ins is the cursor for the
 * next window (0 and *n == 0: start again from the beginning). */
int tm_store_acked_window(tm_store_t *self, uint64_t after_ins, size_t max,
                          char (**ids)[TM_UUID_LEN], size_t *n, uint64_t *last_ins);

/* Marks the intent under key done (local, derived state: a forwarder that
 * saw every sale of it acknowledged or parked saves the next scan the
 * check). */
int tm_store_intent_close(tm_store_t *self, const char *key);

/* 1 if origin has written an intent under key, 0 if not, <0 on error. A
 * forwarder re-sending another till's open intent writes its own first:
 * its acks count only for intents it wrote. */
int tm_store_intent_written_by(tm_store_t *self, const char *key,
                               const uint8_t origin[TM_NODE_ID_LEN]);

/* Up to max customers whose current version (greatest field stamp) the ERP
 * does not have yet, by id; *out malloc'd (NULL if none). */
int tm_store_unacked_customers(tm_store_t *self, size_t max, tm_cust_version_t **out, size_t *n);

/* ---- catalogue (down-synced from the ERP) ---------------------------

 * Products are a last-writer-wins register per sku ordered by the ERP's
 * version (then the op's origin and seq, for two different bodies of one
 * version), never by a till's clock: any order of the same pages gives the
 * same catalogue. A deletion is a tombstone that a greater version may
 * overwrite. */

typedef struct {
    char cursor[TM_CURSOR_MAX]; /* where the next pull starts ("" before the first) */
    uint64_t version;           /* greatest ERP version held */
    uint64_t synced_ms;         /* wall ms of the newest catalogue op held (0: none) */
    uint64_t products;          /* products held, deletions not counted */
} tm_catalogue_state_t;

int tm_store_catalogue_state(tm_store_t *self, tm_catalogue_state_t *out);
/* Only version and synced_ms (no count): cheap enough for every heartbeat. */
int tm_store_catalogue_stamp(tm_store_t *self, uint64_t *version, uint64_t *synced_ms);
/* A product by sku, else by barcode; deleted products are TM_ENOTFOUND.
 * Inactive ones are returned (active false). */
int tm_store_product_get(tm_store_t *self, const char *sku_or_barcode, tm_product_t *out);
/* Up to limit products whose name starts with prefix (case-insensitive
 * for ASCII), by name then sku (after_sku is not used: a search is one
 * page); with prefix NULL, every product by sku after after_sku ("" for
 * the start). Deleted products are left out. *out malloc'd (NULL if none). */
int tm_store_products_find(tm_store_t *self, const char *prefix, const char *after_sku,
                           size_t limit, tm_product_t **out, size_t *n);

#endif
