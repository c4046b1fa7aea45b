/*
 * tm_record.h - the records tillmesh replicates, and the rules they obey.
 *
 * Pure functions only: nothing here touches a file, a socket or the clock.
 *
 *  - A sale is immutable once written. Money is an integer number of minor
 *    units of `currency` (CLP has none, EUR has cents); never a float.
 *    Quantities are in thousandths (1 unit = 1000, 0.25 kg = 250).
 *    Prices are tax-inclusive; tax_rate is informational, in basis points
 *    (1900 = 19 %).
 *    The amount of a line is round_half_away(qty * unit_price / 1000) - discount.
 *    Rules: total = sum of line amounts; sum of payments = total, except that
 *    cash may exceed it when total >= 0 (change is given). A sale with any
 *    negative line is a return and must name the sale it refunds (refund_of).
 *
 *  - A customer is a set of last-writer-wins registers, one per field, each
 *    stamped with (hlc, node id). tm_customer_merge keeps, per field, the
 *    value with the greater stamp, so merging is commutative, associative and
 *    idempotent.
 *
 * Errors found while reading or checking a record are collected in a
 * tm_field_errors_t: each names the field (a JSON path such as
 * "lines[2].qty"), the rule it broke ("required", "type", "range", "format",
 * "sum", "check_digit", ...) and a sentence for a human.
 *
 * Ownership: a tm_sale_t owns its lines and payments arrays; release them
 * with tm_sale_free(). tm_customer_t has no heap parts.
 */
#ifndef TM_RECORD_H
#define TM_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_common.h"

/* Bounds; every decoder enforces them before copying. */
#define TM_SALE_MAX_LINES    500
#define TM_SALE_MAX_PAYMENTS 20
#define TM_TILL_MAX          64 /* buffer sizes include the NUL */
#define TM_SKU_MAX           64
#define TM_TEXT_MAX          128 /* line name */
#define TM_REF_MAX           64  /* payment reference */
#define TM_TIME_MAX          40  /* RFC 3339 timestamp */
#define TM_CUST_ID_MAX       40  /* normalised customer id */
#define TM_EMAIL_MAX         255
#define TM_FIELD_VALUE_MAX   256 /* customer field value */
/* Bounds on amounts and quantities. tm_sale_line_amount splits qty into
 * whole units and thousandths, so qty * unit_price never overflows within
 * them. */
#define TM_MONEY_MAX 1000000000000LL /* 10^12 minor units */
#define TM_QTY_MAX   1000000000LL    /* 10^6 units, in thousandths */

/* ---- field errors ----------------------------------------------------- */

#define TM_FIELD_ERRORS_MAX 16

typedef struct {
    char field[64]; /* JSON path, e.g. "payments[0].amount" */
    char rule[24];  /* machine-readable rule name */
    char message[160];
} tm_field_error_t;

typedef struct {
    size_t n;         /* errors stored (at most TM_FIELD_ERRORS_MAX) */
    size_t n_dropped; /* further errors not stored */
    tm_field_error_t e[TM_FIELD_ERRORS_MAX];
} tm_field_errors_t;

void tm_field_errors_init(tm_field_errors_t *errs);
void tm_field_errors_add(tm_field_errors_t *errs, const char *field, const char *rule,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* {"error":"validation","fields":[{"field":..,"rule":..,"message":..}]};
 * malloc'd, caller frees; NULL on out of memory. */
char *tm_field_errors_to_json(const tm_field_errors_t *errs);

/* ---- sales ------------------------------------------------------------ */

typedef enum { TM_PAY_CASH = 1, TM_PAY_CARD = 2, TM_PAY_OTHER = 3 } tm_pay_method_t;

typedef enum { TM_IDTYPE_NONE = 0, TM_IDTYPE_RUT = 1, TM_IDTYPE_DNI = 2 } tm_id_type_t;

typedef struct {
    char sku[TM_SKU_MAX];
    char name[TM_TEXT_MAX];
    int64_t qty;        /* thousandths; negative on a return */
    int64_t unit_price; /* minor units */
    int64_t discount;   /* minor units, subtracted from the line */
    int32_t tax_rate;   /* basis points */
    /* The ERP version of the catalogue entry that priced the line; 0 when
     * the POS gave the price itself. Replicated with the sale. */
    uint64_t catalogue_version;
    /* Parse-time only, never stored: what the POS left out for the till to
     * fill from its catalogue (TM_LINE_FILL_*). */
    unsigned fill;
} tm_sale_line_t;

/* A line without unit_price is priced from the catalogue; name and
 * tax_rate come from it too when the line leaves them out. */
enum { TM_LINE_FILL_NAME = 1, TM_LINE_FILL_PRICE = 2, TM_LINE_FILL_TAX = 4 };

typedef struct {
    tm_pay_method_t method;
    int64_t amount;
    char reference[TM_REF_MAX];
} tm_payment_t;

typedef struct {
    char sale_id[TM_UUID_LEN];
    char till[TM_TILL_MAX];
    uint64_t receipt_no;
    char created_at[TM_TIME_MAX]; /* RFC 3339, e.g. 2026-11-23T12:00:00Z */
    char currency[4];             /* ISO 4217, upper case */
    tm_sale_line_t *lines;
    size_t n_lines;
    int64_t total;
    tm_payment_t *payments;
    size_t n_payments;
    bool has_customer;
    char customer_id[TM_CUST_ID_MAX]; /* normalised */
    tm_id_type_t customer_id_type;
    char customer_email[TM_EMAIL_MAX];
    char refund_of[TM_UUID_LEN]; /* "" unless a return */
    /* Set by the selling till, never taken from the POS: its clock minus
     * the median of the store's clocks when it made the sale, and whether
     * that was beyond its bound (created_at is then suspect). has_clock is
     * false when the till had no peer to compare with. */
    bool has_clock;
    int64_t clock_offset_ms;
    bool clock_skewed;
    /* Derived by the till that holds the sale, never replicated: see
     * tm_review_t. Not part of the op body, so not part of the digest. */
    int review; /* tm_review_t */
    /* Parse-time only: total was left out (allowed when a line is priced
     * from the catalogue); the till sets it to the sum of the lines. */
    bool fill_total;
} tm_sale_t;

/* Frees lines and payments and zeroes the struct. NULL-safe. */
void tm_sale_free(tm_sale_t *s);
/* Deep copy; TM_ENOMEM on failure (dst is then zeroed). */
int tm_sale_copy(tm_sale_t *dst, const tm_sale_t *src);

/* The amount of one line (see the top of this file). */
int64_t tm_sale_line_amount(const tm_sale_line_t *l);

/* Checks every rule; returns TM_OK or TM_EVALIDATE with errs filled. */
int tm_sale_validate(const tm_sale_t *s, tm_field_errors_t *errs);

/*
 * Parses a sale from JSON. Fields the till fills in when absent (sale_id,
 * till, receipt_no, created_at) may be missing: they are left empty/0.
 * The customer id is normalised. Returns TM_EJSON when buf is not JSON (errs
 * then holds one error with field "" and rule "json" giving line and column),
 * TM_EVALIDATE when the JSON has the wrong shape or types, TM_OK otherwise.
 * Does not run tm_sale_validate(). On error *out is left zeroed.
 */
int tm_sale_from_json(const char *buf, size_t len, tm_sale_t *out, tm_field_errors_t *errs);
/* Compact JSON, keys in a fixed order; malloc'd, NULL on out of memory (or
 * when a field cannot be encoded: invalid UTF-8, unknown payment method). */
char *tm_sale_to_json(const tm_sale_t *s);

/* ---- catalogue (down-synced from the ERP, docs/erp.md) ---------------- */

#define TM_UOM_MAX            16
#define TM_BARCODE_MAX        48
#define TM_PRODUCT_BARCODES   8
#define TM_CURSOR_MAX         256
#define TM_CATALOGUE_PAGE_MAX 500   /* products + deletions in one page (and one op) */
#define TM_TAX_RATE_MAX       10000 /* basis points: 100% */

/* A product as the ERP had it at `version`; a deletion (tombstone) has only
 * sku, version and deleted. */
typedef struct {
    char sku[TM_SKU_MAX];
    char name[TM_TEXT_MAX];
    char uom[TM_UOM_MAX];
    int64_t unit_price; /* minor units */
    int32_t tax_rate;   /* basis points */
    char barcodes[TM_PRODUCT_BARCODES][TM_BARCODE_MAX];
    size_t n_barcodes;
    bool active;
    bool deleted;
    uint64_t version; /* the ERP's, >= 1 */
} tm_product_t;

typedef struct {
    tm_product_t *items; /* malloc'd */
    size_t n;
    char cursor[TM_CURSOR_MAX]; /* the ERP's next cursor */
    bool more;                  /* the ERP has more after this page */
    uint64_t version;           /* greatest version in the page (0 if empty) */
} tm_catalogue_page_t;

void tm_catalogue_page_free(tm_catalogue_page_t *p);

/* Checks one product against the rules (sku 1..63 printable, no space;
 * name 1..127; uom 0..15; 0 <= unit_price <= TM_MONEY_MAX; 0 <= tax_rate
 * <= TM_TAX_RATE_MAX; barcodes unique, 1..47 digits or letters; version
 * >= 1). field_prefix names it in errors ("products[3]"). */
int tm_product_validate(const tm_product_t *p, const char *field_prefix, tm_field_errors_t *errs);

/*
 * Parses and checks a whole GET /catalogue answer (docs/erp.md). Any error
 * refuses the page whole (TM_EJSON or TM_EVALIDATE, errs says where), so
 * nothing of a bad page is ever applied. A sku appears at most once in a
 * page; at most max_items (<= TM_CATALOGUE_PAGE_MAX) products + deletions;
 * next_cursor is required and non-empty. On error *out is zeroed.
 */
int tm_catalogue_page_from_json(const char *buf, size_t len, size_t max_items,
                                tm_catalogue_page_t *out, tm_field_errors_t *errs);
/* {"sku":..,"name":..,"uom":..,"unit_price":..,"tax_rate":..,"barcodes":[..],
 * "active":..,"version":..}; malloc'd, NULL on out of memory. */
char *tm_product_to_json(const tm_product_t *p);

/* ---- returns bounded by the original --------------------------------- */

/*
 * Why a return is flagged for review. A function of the sales a till holds
 * (the original and every return naming it), so every till that holds the
 * same sales flags the same ones, whatever order they arrived in.
 *  - OVER_REFUND: the returns of one original, taken together, break
 *    tm_refund_check (typically two tills refunded the same sale while the
 *    store's network was split: each was within bounds alone).
 *  - ORIGINAL_UNKNOWN: the sale named by refund_of is not held here (yet).
 */
typedef enum {
    TM_REVIEW_NONE = 0,
    TM_REVIEW_OVER_REFUND = 1,
    TM_REVIEW_ORIGINAL_UNKNOWN = 2
} tm_review_t;

/* "over_refund", "original_unknown"; "" for NONE and anything unknown. */
const char *tm_review_name(int review);
/* The inverse; TM_EINVAL for an unknown name ("" is NONE). */
int tm_review_parse(const char *s, int *out);

/*
 * The rule for returns (sales naming refund_of): per original sale,
 * summed over all its returns,
 *  - the original is not itself a return (refund_of_refund),
 *  - a return is in the original's currency (currency_mismatch),
 *  - every SKU on a negative line was on the original (not_in_original),
 *  - the quantity returned per SKU is at most the quantity sold
 *    (exceeds_original on lines[i].qty),
 *  - the amount refunded per SKU is at most what that SKU was sold for, so
 *    the total refunded is at most the original's total (exceeds_original
 *    on lines[i].unit_price).
 * Only negative lines return something; positive lines on a return are an
 * exchange (a new purchase) and are not bounded by the original.
 *
 * `prior` holds the n_prior returns of orig already held (the new one must
 * not be among them). With ret != NULL the new return is checked on top of
 * them and errors name ret's fields; prior returns that break the rule
 * themselves are not held against ret (they are flagged, see above). With
 * ret == NULL the prior returns are checked as a whole (is the group over
 * the bounds?). errs may be NULL. TM_OK or TM_EVALIDATE. Pure.
 */
int tm_refund_check(const tm_sale_t *orig, const tm_sale_t *prior, size_t n_prior,
                    const tm_sale_t *ret, tm_field_errors_t *errs);

/* ---- customer ids and e-mail ------------------------------------------ */

/*
 * Normalises a Chilean RUT: accepts "12.345.678-5", "12345678-5" or
 * "123456785" (check digit K in either case), verifies the modulo-11 check
 * digit, and writes the canonical form: digits then check digit, no dots or
 * dash, K upper case ("123456785", "1000005K"). TM_EVALIDATE if malformed
 * or the check digit is wrong.
 */
int tm_rut_normalise(const char *in, char *out, size_t outsz);
/* The modulo-11 check digit ('0'..'9' or 'K') of a RUT body of digits;
 * '\0' when digits is empty or holds anything but digits. */
char tm_rut_check_digit(const char *digits);

/*
 * Normalises a customer id of the given type: RUT as above; DNI/foreign ids
 * have dots, dashes and spaces removed and letters upper-cased, and must then
 * be 1..TM_CUST_ID_MAX-1 characters of [A-Z0-9]. TM_EVALIDATE otherwise.
 */
int tm_customer_id_normalise(const char *in, tm_id_type_t type, char *out, size_t outsz);
/* "rut" / "dni" <-> enum; parse returns TM_EINVAL for anything else. */
int tm_id_type_parse(const char *s, tm_id_type_t *out);
const char *tm_id_type_name(tm_id_type_t t);

/* Practical e-mail syntax check: one '@', non-empty local part of allowed
 * characters, a domain of dot-separated labels with at least one dot, no
 * spaces, at most 254 characters. In detail: local part 1..64 ASCII
 * letters, digits and !#$%&'*+/=?^_`{|}~.- with no leading, trailing or
 * doubled dot (no quoted forms); domain labels 1..63 letters, digits and
 * inner hyphens (IDNs must be given in punycode); no IP literals. */
bool tm_email_valid(const char *s);

/* ---- customers -------------------------------------------------------- */

typedef enum {
    TM_CF_NAME = 0,
    TM_CF_EMAIL,
    TM_CF_PHONE,
    TM_CF_OFFERS_OPT_IN, /* "true" / "false" */
    TM_CF_LOYALTY_PROGRAM,
    TM_CF_LOYALTY_NUMBER,
    TM_CF_ERASED, /* "true" / "false" */
    TM_CF_COUNT
} tm_cust_field_t;

/* JSON name of a field ("name", "offers_opt_in", ...). */
const char *tm_cust_field_name(tm_cust_field_t f);
/* True for the fields whose value is "true"/"false". */
bool tm_cust_field_is_bool(tm_cust_field_t f);

typedef struct {
    bool set;
    char value[TM_FIELD_VALUE_MAX];
    uint64_t hlc;                 /* stamp: hybrid logical clock ... */
    uint8_t node[TM_NODE_ID_LEN]; /* ... then node id breaks ties */
} tm_cust_value_t;

typedef struct {
    char id[TM_CUST_ID_MAX]; /* normalised */
    tm_id_type_t id_type;
    tm_cust_value_t f[TM_CF_COUNT];
} tm_customer_t;

/* A customer version as the ERP has it: the greatest field stamp sent. */
typedef struct {
    char id[TM_CUST_ID_MAX];
    uint64_t version;
} tm_cust_version_t;

/* A patch is a tm_customer_t with only the changed fields set. Stamps every
 * set field with (hlc, node). */
void tm_customer_stamp(tm_customer_t *patch, uint64_t hlc, const uint8_t node[TM_NODE_ID_LEN]);

/* Per field: take patch's value when cur has none or patch's stamp is
 * greater. Commutative, associative, idempotent. Ids must already match. */
void tm_customer_merge(tm_customer_t *cur, const tm_customer_t *patch);

/*
 * Parses a partial update, e.g. {"id_type":"rut","name":"Ana","email":"a@b.cl"}.
 * path_id is the id from the URL; it is normalised according to id_type
 * (default "rut"). Unknown keys are an error (rule "unknown"), so a typo is
 * not silently dropped. A field given as null is not allowed (rule "type").
 * Stamps are left zero. Returns TM_EJSON, TM_EVALIDATE or TM_OK as
 * tm_sale_from_json does.
 */
int tm_customer_patch_from_json(const char *path_id, const char *buf, size_t len,
                                tm_customer_t *out, tm_field_errors_t *errs);
/* {"id":..,"id_type":..,"name":..,...}: set fields only, booleans as JSON
 * booleans; malloc'd, NULL on out of memory. */
char *tm_customer_to_json(const tm_customer_t *c);

#endif
