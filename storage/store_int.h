/*
 * store_int.h - what store.c, schema.c and materialise.c share. Not part of
 * the public API: nothing outside storage/ includes it.
 *
 * Naming: tm_store__ (two underscores) marks functions internal to the
 * module that have to be visible across its files.
 */
#ifndef TM_STORE_INT_H
#define TM_STORE_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <sys/types.h>

#include "tm_store.h"
#include "tm_wire.h"

/* Every cached prepared statement has a slot; each .c holds the SQL for its
 * own slots and prepares them on first use (tm_store__stmt). */
enum {
    /* store.c */
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_OP_INSERT,
    ST_OP_EXISTS,
    ST_OP_MAX_SEQ,
    ST_VV_GET,
    ST_VV_PUT,
    ST_VV_ALL,
    ST_READ_RANGE,
    ST_MAX_HLC,
    /* materialise.c */
    ST_SALE_DELETE,
    ST_SALE_INSERT,
    ST_SALE_UPDATE,
    ST_SALE_BY_ID,
    ST_SALE_LIST,
    ST_LINES_DELETE,
    ST_LINE_INSERT,
    ST_LINES_GET,
    ST_PAYS_DELETE,
    ST_PAY_INSERT,
    ST_PAYS_GET,
    ST_CUST_GET,
    ST_CUST_PUT,
    ST_CUST_FIELDS_GET,
    ST_CUST_FIELD_PUT,
    ST_ACK_IS,
    ST_UNACKED,
    ST_MAX_RECEIPT,
    ST_CUST_STAMP,
    /* compact.c */
    ST_COMPACT_PICK,
    ST_COMPACT_OP_GET,
    ST_COMPACT_OP_STUB,
    ST_COMPACT_SALE_DEL,
    ST_COMPACT_LINES_DEL,
    ST_COMPACT_PAYS_DEL,
    ST_COMPACT_REMEMBER,
    ST_COMPACT_IS,
    /* trust.c */
    ST_HELD_HASH,
    ST_SEAL_GET,
    ST_TRUST_MAX_SEQ,
    ST_SEAL_PUT,
    ST_EVIDENCE_PUT,
    ST_EVIDENCE_TRIM,
    ST_VOID_PUT,
    ST_VOID_GET,
    ST_VOID_ANY,
    ST_VOID_OP_GET,
    ST_VOID_OP_DEL,
    ST_VOID_SALE_GET,
    ST_VOID_CLAIMS_DEL,
    ST_VOID_VV_FIX,
    /* refunds.c */
    ST_ORIG_BY_ID,
    ST_RETURNS_OF,
    ST_HAS_RETURNS,
    ST_REVIEW_SET,
    ST_REVIEW_COUNT,
    ST_REVIEW_LIST,
    /* owned.c */
    ST_OWN_NAME_GET,
    ST_OWN_CLAIM_PUT,
    ST_OWN_CLAIMS,
    ST_OWN_ROW_GET,
    ST_OWN_CONFLICTS_DEL,
    ST_OWN_CONFLICT_PUT,
    ST_OWN_RECEIPT_N,
    ST_OWN_RECEIPT_SET,
    ST_OWN_CLAIMED,
    ST_OWN_BACKFILL,
    ST_OWN_IS_CONFLICT,
    /* catalogue.c */
    ST_CAT_PRODUCT_GET,
    ST_CAT_PRODUCT_PUT,
    ST_CAT_BARCODES_DEL,
    ST_CAT_BARCODE_PUT,
    ST_CAT_STATE_GET,
    ST_CAT_STATE_PUT,
    ST_CAT_BY_BARCODE,
    ST_CAT_FIND,
    ST_CAT_LIST,
    ST_CAT_COUNT,
    ST_COUNT
};

/* The files under the open connection (heal.c): what the path named when
 * the store was opened, so that a deleted or replaced file is noticed. */
typedef struct {
    char path[512];
    uint64_t max_pages; /* tm_store_opts_t, kept for a reopen */
    dev_t dev, wal_dev;
    ino_t ino, wal_ino;
    bool have_wal; /* the -wal existed when last looked at */
    bool lost;     /* sticky until tm_store_restore() */
    char why[700]; /* what the check found (tm_store_lost_reason) */
} tm_store__file_t;

struct tm_store {
    sqlite3 *db;
    tm_store__file_t file;
    uint8_t node_id[TM_NODE_ID_LEN];
    int schema_version;
    sqlite3_stmt *st[ST_COUNT];
    /* The digest accumulator (digest.c), as committed. */
    uint8_t acc[32];
    /* The counts cost a scan of the whole store; they are kept until the
     * next write, which clears this flag. */
    bool counts_ok;
    /* trust.c: our signing key, and the keys peers' ops must be signed by. */
    bool signer;
    uint8_t sign_pk[32], sign_sk[64];
    uint8_t (*trusted)[32];
    /* The origin prefix each trusted key owns (tm_sign_node_id), worked
     * out once: finding an op's key was two BLAKE2b per op and key. */
    uint8_t (*trusted_ids)[TM_NODE_ID_LEN];
    size_t n_trusted;
    uint64_t refused_total, deferred_total;
    uint64_t reissued_aside; /* ops set aside by OP_REISSUE since open */
    int voided_any;          /* 0: not looked yet (since open), 1: no voided op, 2: some */
    char last_reason[96];
    tm_store_counts_t counts;
    char errmsg[768];
    /* owned.c: the last origin name looked up (a catch-up brings many ops
     * of one origin in a row); cleared when a name is bound. */
    uint64_t kept_aside; /* new ops kept aside since open (tm_store_kept_aside) */
    /* Write transactions begun since open, and their number when the cache
     * was last looked at by tm_store_trim (a whole period without one). */
    uint64_t writes, writes_at_trim;
    bool trimmed;
    /* erp.c: the last backlog and the connection's change count it was
     * computed at (any row written since, here, makes it stale). */
    bool backlog_ok;
    int64_t backlog_changes;
    tm_backlog_t backlog;
    bool name_cached;
    uint8_t name_origin[TM_NODE_ID_LEN];
    char name[TM_TILL_MAX];
};

/* An OP_REISSUE body: which ops of an older origin of the same key its
 * till said again under this one (trust.c). */
#define TM_REISSUE_MAX 4096
typedef struct {
    uint64_t seq;
    uint8_t hash[32];
} tm_store__void_t;
typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    tm_store__void_t *e;
    size_t n;
} tm_store__reissue_t;

/* An op body, decoded once before the transaction starts so that a bad
 * batch is refused before anything is written. */
typedef struct {
    uint32_t kind;
    union {
        tm_sale_t sale;
        tm_customer_t cust;
        tm_erp_ack_t ack;
        struct {
            tm_seal_entry_t *e;
            size_t n;
        } seal;
        tm_catalogue_page_t page;
        tm_store__reissue_t reissue;
    } u;
} tm_store__rec_t;

/* ---- store.c ---------------------------------------------------------- */

/* Maps an SQLite result code to a TM_E* code and remembers the message for
 * tm_store_errmsg(). Returns TM_OK for SQLITE_OK/ROW/DONE. */
int tm_store__err(tm_store_t *self, int sqlite_rc);
/* The cached statement for slot id, prepared from sql on first use; NULL on
 * failure (*rc then holds the TM_E* code). */
sqlite3_stmt *tm_store__stmt(tm_store_t *self, int id, const char *sql, int *rc);
/* Steps a statement that returns no row (or whose rows are not wanted),
 * resets it and maps the result. */
int tm_store__exec(tm_store_t *self, sqlite3_stmt *st);

/* Opens self->file.path into self->db (self->db must be NULL): checks,
 * migrates, sets the pragmas, reads or makes the node id, loads the digest
 * and notes the files (tm_store__file_note). On error self->db is NULL. */
int tm_store__open_db(tm_store_t *self);
/* Finalizes the cached statements and closes the connection (self->db =
 * NULL). TM_ESTATE, connection left open, if another statement is open. */
int tm_store__close_db(tm_store_t *self);

/* ---- heal.c ----------------------------------------------------------- */

/* Notes which files the path names now (after an open or a restore). */
int tm_store__file_note(tm_store_t *self);

/* ---- digest.c --------------------------------------------------------- */

/* Adds one op to an accumulator. */
void tm_store__digest_add(uint8_t acc[32], const tm_op_t *op);
/* The same, from the op's hash (tm_store__op_hash) already at hand. */
void tm_store__digest_add_hash(uint8_t acc[32], const uint8_t h[32]);
/* Takes an op out of the accumulator (tm_store_reincarnate only). */
void tm_store__digest_sub(uint8_t acc[32], const tm_op_t *op);
/* The hash an op counts for in the digest (its stored hash if compacted). */
void tm_store__op_hash(const tm_op_t *op, uint8_t out[32]);
/* Writes an accumulator to the meta table (inside the caller's transaction). */
int tm_store__digest_save(tm_store_t *self, const uint8_t acc[32]);
/* Loads self->acc at open, rebuilding it once from the op log if absent. */
int tm_store__digest_load(tm_store_t *self);

/* ---- erp.c ------------------------------------------------------------ */

/* Raises the ERP's customer versions from an ack (inside a transaction). */
int tm_store__cust_acks_apply(tm_store_t *self, const tm_erp_ack_t *a);
/* The sale ids of an ack (intent: false) or intent (true) op: an ack of
 * origin O under key K counts for a sale only once O has written an intent
 * under K naming it, whichever arrives first (inside a transaction). */
int tm_store__sale_acks_apply(tm_store_t *self, const tm_op_t *op, const tm_erp_ack_t *a,
                              bool intent);
/* Records a batch intent (inside a transaction). */
int tm_store__intent_apply(tm_store_t *self, const tm_op_t *op, const tm_erp_ack_t *a);

/* ---- trust.c ---------------------------------------------------------- */

/* Decides an op from a peer, inside the write transaction, before it is
 * inserted: 0 = store it, 1 = skip it (already held, refused into
 * evidence, or deferred; *rep says which). h is the op's hash. */
typedef struct {
    bool have;
    uint8_t origin[TM_NODE_ID_LEN];
    uint64_t max_seq; /* highest seq of origin held (or just accepted) */
    bool have_last;   /* the last op accepted of origin in this batch */
    uint64_t last_seq;
    uint8_t last_chain[32]; /* its chain value (tm_sign_chain) */
} tm_store__vctx_t;

/* authentic: its signature is known good already (authenticate_runs);
 * chain: its chain value tm_sign_chain(h, op->prev) if known, or NULL. */
int tm_store__verify(tm_store_t *self, const tm_op_t *op, const uint8_t h[32], const uint8_t *chain,
                     bool body_ok, bool authentic, tm_apply_report_t *rep, tm_store__vctx_t *ctx);
/* Marks which ops of a batch are signed by their origin's key: one
 * signature check per run of consecutive ops of one origin (tm_sign_chain
 * binds the rest). A false mark proves nothing: verify checks again.
 * hash[k] is op k's hash; link[k] receives its chain value (signed ops). */
void tm_store__authenticate_runs(tm_store_t *self, const tm_op_t *ops, size_t n,
                                 const uint8_t (*hash)[32], uint8_t (*link)[32], bool *authentic);
/* Signs a local op about to be stored (seq set): fills has_sig, sig, prev. */
int tm_store__sign(tm_store_t *self, tm_op_t *op, const uint8_t h[32]);
/* The hash of (origin, seq) if held: 1 found, 0 not, <0 error. */
int tm_store__held_hash(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq,
                        uint8_t out[32], uint8_t prev[32], bool *has_prev);
/* Records a seal's entries (OP_SEAL materialised). */
int tm_store__seal_apply(tm_store_t *self, const tm_seal_entry_t *e, size_t n);
/* OP_REISSUE bodies (n entries, 1..TM_REISSUE_MAX; *buf malloc'd). */
int tm_store__reissue_encode(const uint8_t origin[TM_NODE_ID_LEN], const tm_store__void_t *e,
                             size_t n, uint8_t **buf, size_t *len);
int tm_store__reissue_decode(const uint8_t *buf, size_t len, tm_store__reissue_t *out);
/* An OP_REISSUE op stored (inside the write transaction, acc its digest):
 * its entries are voided, and the listed ops held set aside (*n_aside). */
int tm_store__reissue_apply(tm_store_t *self, const tm_op_t *op, const tm_store__reissue_t *r,
                            uint8_t acc[32], uint64_t *n_aside);

/* ---- owned.c --------------------------------------------------------- */

/* Records a sale op as a claim on its sale_id and settles which claim the
 * sales table shows (inside the caller's transaction; the op is already in
 * the ops table). A sale_id forgotten by retention is left alone. */
int tm_store__sale_claim(tm_store_t *self, const tm_op_t *op, const tm_sale_t *s);
/* The name bound to origin ("" if none yet). */
int tm_store__origin_name(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN],
                          char name[TM_TILL_MAX]);

/* ---- catalogue.c ---------------------------------------------------- */

/* Merges a catalogue page (OP_CATALOGUE) into the products: per sku, the
 * greatest (version, origin, seq) wins; inside a transaction. */
int tm_store__catalogue_apply(tm_store_t *self, const tm_op_t *op, const tm_catalogue_page_t *p);

/* ---- schema.c --------------------------------------------------------- */

/* Brings db to the latest schema, one transaction per step. TM_EVERSION
 * when the store is newer than this build, TM_ECORRUPT when it is some
 * other application's database. *version receives the version reached. */
int tm_store__migrate(tm_store_t *self, int *version);
int tm_store__schema_latest(void);

/* ---- materialise.c ---------------------------------------------------- */

/* Decodes and checks an op body of the given kind; TM_EPROTO if it is not
 * a well-formed record of that kind. Release with tm_store__rec_free. */
int tm_store__rec_decode(uint32_t kind, const uint8_t *body, size_t len, tm_store__rec_t *out);
void tm_store__rec_free(tm_store__rec_t *rec);
/* Applies one new op's record to the materialised tables; must be called
 * inside the caller's write transaction. May modify rec (stamps). */
int tm_store__materialise(tm_store_t *self, const tm_op_t *op, tm_store__rec_t *rec);

/* Writes sale s (made by op) as the row ins (0: a new row; *ins_out gets
 * its key), with its lines and payments. */
int tm_store__sale_put(tm_store_t *self, const tm_op_t *op, const tm_sale_t *s, int64_t ins,
                       int64_t *ins_out);
/* Removes the row ins and its lines and payments. */
int tm_store__sale_drop(tm_store_t *self, int64_t ins);
/* Recomputes the review flags touched by writing (or removing: s NULL)
 * sale_id whose row named old_ref before. */
int tm_store__sale_reviews(tm_store_t *self, const char *sale_id, const tm_sale_t *s,
                           const char *old_ref);

/* The columns tm_store__sale_from_row reads, in order. */
#define TM_STORE__SALE_COLS                                                                        \
    "ins, sale_id, till, receipt_no, created_at, currency, total, customer_id,"                    \
    " customer_id_type, customer_email, refund_of, review, clock_offset_ms, clock_skewed"

/* Builds a sale from the current row of a TM_STORE__SALE_COLS query; *ins
 * receives its row key. On error *out is freed. */
int tm_store__sale_from_row(tm_store_t *self, sqlite3_stmt *st, tm_sale_t *out, int64_t *ins);

/* ---- refunds.c -------------------------------------------------------- */

/* Recomputes the review flag of every return of sale orig_id from the
 * sales held now (inside the caller's transaction). Called whenever a sale
 * that is, or was, orig_id or one of its returns is written, so the flags
 * depend only on the set of sales held, not on the order ops arrived in. */
int tm_store__review_group(tm_store_t *self, const char *orig_id);
/* 1 if some held sale names orig_id as refund_of, 0 if none, <0 on error. */
int tm_store__has_returns(tm_store_t *self, const char *orig_id);
/* Recomputes every group: for a store migrated from before review flags
 * (inside the migration's transaction). */
int tm_store__review_rebuild(tm_store_t *self);

#endif
