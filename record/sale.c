/* sale.c - sale ownership, line amounts and the rules a sale must obey. */
#include "tm_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void tm_sale_free(tm_sale_t *s)
{
    if (!s)
        return;
    free(s->lines);
    free(s->payments);
    memset(s, 0, sizeof *s);
}

int tm_sale_copy(tm_sale_t *dst, const tm_sale_t *src)
{
    tm_sale_line_t *lines = NULL;
    tm_payment_t *payments = NULL;
    if (src->n_lines) {
        lines = malloc(src->n_lines * sizeof *lines);
        if (!lines)
            goto fail;
        memcpy(lines, src->lines, src->n_lines * sizeof *lines);
    }
    if (src->n_payments) {
        payments = malloc(src->n_payments * sizeof *payments);
        if (!payments)
            goto fail;
        memcpy(payments, src->payments, src->n_payments * sizeof *payments);
    }
    *dst = *src;
    dst->lines = lines;
    dst->payments = payments;
    return TM_OK;
fail:
    free(lines);
    memset(dst, 0, sizeof *dst);
    return TM_ENOMEM;
}

static int64_t abs64(int64_t v)
{
    return v < 0 ? -v : v;
}

/*
 * round_half_away(|qty| * unit_price / 1000) without forming the product,
 * which for the largest allowed qty and price (10^9 * 10^12) would not fit
 * in 64 bits: split qty into whole units and thousandths. Sets *ok to false
 * when even the split result overflows (inputs far outside the bounds).
 */
static int64_t line_gross(int64_t qty, int64_t unit_price, bool *ok)
{
    int64_t q = qty == INT64_MIN ? INT64_MAX : abs64(qty);
    int64_t p = unit_price < 0 ? 0 : unit_price;
    int64_t whole, part, gross;
    *ok = !__builtin_mul_overflow(q / 1000, p, &whole) &&
          !__builtin_mul_overflow(q % 1000, p, &part) &&
          !__builtin_add_overflow(whole, (part / 1000) + (part % 1000 >= 500), &gross);
    return *ok ? gross : INT64_MAX;
}

/*
 * The amount of a line, in minor units:
 *   qty > 0:  round_half_away(qty * unit_price / 1000) - discount
 *   qty < 0:  -(round_half_away(|qty| * unit_price / 1000) - discount)
 * so on a return the discount given on the original sale reduces the
 * refund, and rounding is symmetric: returning a line refunds exactly what
 * selling it charged. Meaningful for lines within the bounds that
 * tm_sale_validate() enforces; saturates at INT64_MAX/-INT64_MAX otherwise.
 */
int64_t tm_sale_line_amount(const tm_sale_line_t *l)
{
    bool ok;
    int64_t gross = line_gross(l->qty, l->unit_price, &ok);
    int64_t net;
    if (!ok || __builtin_sub_overflow(gross, l->discount, &net) || net == INT64_MIN)
        net = INT64_MAX;
    return l->qty < 0 ? -net : net;
}

/* ---- validation ------------------------------------------------------- */

static bool in_money_range(int64_t v)
{
    return v >= -TM_MONEY_MAX && v <= TM_MONEY_MAX;
}

/* Strings arriving from the wire may fill their buffer without a NUL. */
static bool terminated(const char *buf, size_t size)
{
    return memchr(buf, '\0', size) != NULL;
}

static bool digit2(const char *s, int lo, int hi, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return *out >= lo && *out <= hi;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), RFC 3339 section 5.6,
 * upper-case T and Z only. Second 60 is allowed for leap seconds. */
static bool rfc3339_valid(const char *s)
{
    int y1, y2, mo, d, h, mi, sec, oh, om;
    if (strlen(s) < 20 || !digit2(s, 0, 99, &y1) || !digit2(s + 2, 0, 99, &y2) || s[4] != '-' ||
        !digit2(s + 5, 1, 12, &mo) || s[7] != '-' || !digit2(s + 8, 1, 31, &d) || s[10] != 'T' ||
        !digit2(s + 11, 0, 23, &h) || s[13] != ':' || !digit2(s + 14, 0, 59, &mi) || s[16] != ':' ||
        !digit2(s + 17, 0, 60, &sec))
        return false;
    if (d > days_in_month(y1 * 100 + y2, mo))
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        const char *start = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == start)
            return false;
    }
    if (p[0] == 'Z')
        return p[1] == '\0';
    return (p[0] == '+' || p[0] == '-') && digit2(p + 1, 0, 23, &oh) && p[3] == ':' &&
           digit2(p + 4, 0, 59, &om) && p[6] == '\0';
}

static void check_header(const tm_sale_t *s, tm_field_errors_t *errs)
{
    if (!terminated(s->sale_id, sizeof s->sale_id) || !s->sale_id[0])
        tm_field_errors_add(errs, "sale_id", "required", "sale_id is missing");
    else if (!tm_uuid_valid(s->sale_id))
        tm_field_errors_add(errs, "sale_id", "format", "sale_id must be a UUID");
    if (!terminated(s->till, sizeof s->till) || !s->till[0])
        tm_field_errors_add(errs, "till", "required", "till is missing");
    if (s->receipt_no == 0)
        tm_field_errors_add(errs, "receipt_no", "required", "receipt_no must be 1 or more");
    else if (s->receipt_no > INT64_MAX)
        tm_field_errors_add(errs, "receipt_no", "range", "receipt_no is too large");
    if (!terminated(s->created_at, sizeof s->created_at) || !s->created_at[0])
        tm_field_errors_add(errs, "created_at", "required", "created_at is missing");
    else if (!rfc3339_valid(s->created_at))
        tm_field_errors_add(errs, "created_at", "format",
                            "created_at must be an RFC 3339 time such as 2026-11-23T12:00:00Z");
    const char *c = s->currency;
    bool upper3 = c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' && c[2] >= 'A' &&
                  c[2] <= 'Z' && c[3] == '\0';
    if (!c[0])
        tm_field_errors_add(errs, "currency", "required", "currency is missing");
    else if (!upper3)
        tm_field_errors_add(errs, "currency", "format",
                            "currency must be an ISO 4217 code such as CLP");
}

/* Checks one line; false when its amount cannot be computed meaningfully. */
static bool check_line(const tm_sale_line_t *l, size_t i, tm_field_errors_t *errs)
{
    char f[64];
    bool ok = true;
#define LINE_ERR(key, rule, ...)                                                                   \
    do {                                                                                           \
        snprintf(f, sizeof f, "lines[%zu].%s", i, key);                                            \
        tm_field_errors_add(errs, f, rule, __VA_ARGS__);                                           \
    } while (0)
    if (!terminated(l->sku, sizeof l->sku) || !l->sku[0])
        LINE_ERR("sku", "required", "every line needs a sku");
    if (!terminated(l->name, sizeof l->name))
        LINE_ERR("name", "length", "name is too long");
    if (l->qty == 0 || l->qty < -TM_QTY_MAX || l->qty > TM_QTY_MAX) {
        LINE_ERR("qty", "range", "qty must be non-zero and at most %lld units either way",
                 TM_QTY_MAX / 1000);
        ok = false;
    }
    if (l->unit_price < 0 || l->unit_price > TM_MONEY_MAX) {
        LINE_ERR("unit_price", "range", "unit_price must be 0..%lld", TM_MONEY_MAX);
        ok = false;
    }
    if (l->discount < 0) {
        LINE_ERR("discount", "range", "discount must not be negative");
        ok = false;
    } else if (ok) {
        bool fits;
        int64_t gross = line_gross(l->qty, l->unit_price, &fits);
        if (l->discount > gross) {
            LINE_ERR("discount", "range", "discount %" PRId64 " exceeds the line's %" PRId64,
                     l->discount, gross);
            ok = false;
        }
    }
    if (l->tax_rate < 0 || l->tax_rate > 10000)
        LINE_ERR("tax_rate", "range", "tax_rate must be 0..10000 basis points");
#undef LINE_ERR
    return ok;
}

static void check_lines(const tm_sale_t *s, tm_field_errors_t *errs)
{
    if (s->n_lines == 0 || !s->lines) {
        tm_field_errors_add(errs, "lines", "required", "a sale needs at least one line");
        return;
    }
    if (s->n_lines > TM_SALE_MAX_LINES) {
        tm_field_errors_add(errs, "lines", "range", "at most %d lines", TM_SALE_MAX_LINES);
        return;
    }
    bool all_ok = true, refund = false;
    int64_t sum = 0;
    for (size_t i = 0; i < s->n_lines; i++) {
        all_ok &= check_line(&s->lines[i], i, errs);
        refund |= s->lines[i].qty < 0;
        if (__builtin_add_overflow(sum, tm_sale_line_amount(&s->lines[i]), &sum))
            all_ok = false;
    }
    if (refund && !s->refund_of[0])
        tm_field_errors_add(errs, "refund_of", "required",
                            "a sale with a negative line is a return and must name refund_of");
    if (!in_money_range(s->total))
        tm_field_errors_add(errs, "total", "range", "total must be within +-%lld", TM_MONEY_MAX);
    /* A sum over lines already reported out of range would only add noise. */
    else if (all_ok && sum != s->total)
        tm_field_errors_add(errs, "total", "sum",
                            "total is %" PRId64 " but the lines add up to %" PRId64, s->total, sum);
}

static bool check_payment(const tm_payment_t *p, size_t i, int64_t total, tm_field_errors_t *errs)
{
    char f[64];
    bool ok = true;
    if (p->method != TM_PAY_CASH && p->method != TM_PAY_CARD && p->method != TM_PAY_OTHER) {
        snprintf(f, sizeof f, "payments[%zu].method", i);
        tm_field_errors_add(errs, f, "format", "method must be cash, card or other");
    }
    if (!terminated(p->reference, sizeof p->reference)) {
        snprintf(f, sizeof f, "payments[%zu].reference", i);
        tm_field_errors_add(errs, f, "length", "reference is too long");
    }
    snprintf(f, sizeof f, "payments[%zu].amount", i);
    if (p->amount == 0 || !in_money_range(p->amount)) {
        tm_field_errors_add(errs, f, "range", "amount must be non-zero and within +-%lld",
                            TM_MONEY_MAX);
        ok = false;
    } else if (total >= 0 && p->amount < 0) {
        tm_field_errors_add(errs, f, "range", "a sale's payments must be positive");
        ok = false;
    } else if (total < 0 && p->amount > 0) {
        tm_field_errors_add(errs, f, "range", "a return's payments must be negative");
        ok = false;
    }
    return ok;
}

static void check_payments(const tm_sale_t *s, tm_field_errors_t *errs)
{
    if (s->n_payments == 0 || !s->payments) {
        tm_field_errors_add(errs, "payments", "required", "a sale needs at least one payment");
        return;
    }
    if (s->n_payments > TM_SALE_MAX_PAYMENTS) {
        tm_field_errors_add(errs, "payments", "range", "at most %d payments", TM_SALE_MAX_PAYMENTS);
        return;
    }
    bool all_ok = in_money_range(s->total);
    int64_t paid = 0, cash = 0;
    for (size_t i = 0; i < s->n_payments; i++) {
        const tm_payment_t *p = &s->payments[i];
        all_ok &= check_payment(p, i, s->total, errs);
        if (__builtin_add_overflow(paid, p->amount, &paid))
            all_ok = false;
        if (p->method == TM_PAY_CASH && __builtin_add_overflow(cash, p->amount, &cash))
            all_ok = false;
    }
    if (!all_ok)
        return;
    if (s->total < 0 && paid != s->total)
        tm_field_errors_add(errs, "payments", "sum",
                            "a return of %" PRId64 " must pay back exactly that, not %" PRId64,
                            s->total, paid);
    else if (s->total >= 0 && paid < s->total)
        tm_field_errors_add(errs, "payments", "sum",
                            "payments add up to %" PRId64 ", less than the total %" PRId64, paid,
                            s->total);
    else if (s->total >= 0 && paid - s->total > cash)
        tm_field_errors_add(errs, "payments", "sum",
                            "overpaid by %" PRId64 " but only cash (%" PRId64
                            ") can be given back as change",
                            paid - s->total, cash);
}

static void check_refs(const tm_sale_t *s, tm_field_errors_t *errs)
{
    if (!terminated(s->refund_of, sizeof s->refund_of) ||
        (s->refund_of[0] && !tm_uuid_valid(s->refund_of)))
        tm_field_errors_add(errs, "refund_of", "format", "refund_of must be a UUID");
    else if (s->refund_of[0] && strcasecmp(s->refund_of, s->sale_id) == 0)
        tm_field_errors_add(errs, "refund_of", "self_reference", "a sale cannot refund itself");
    if (!s->has_customer)
        return;
    char canon[TM_CUST_ID_MAX];
    if (s->customer_id_type != TM_IDTYPE_RUT && s->customer_id_type != TM_IDTYPE_DNI)
        tm_field_errors_add(errs, "customer.id_type", "format", "id_type must be rut or dni");
    else if (!terminated(s->customer_id, sizeof s->customer_id) || !s->customer_id[0])
        tm_field_errors_add(errs, "customer.id", "required", "customer.id is missing");
    else if (tm_customer_id_normalise(s->customer_id, s->customer_id_type, canon, sizeof canon) ||
             strcmp(canon, s->customer_id) != 0)
        tm_field_errors_add(errs, "customer.id", "format",
                            "customer.id is not a valid, normalised %s",
                            tm_id_type_name(s->customer_id_type));
    if (!terminated(s->customer_email, sizeof s->customer_email) ||
        (s->customer_email[0] && !tm_email_valid(s->customer_email)))
        tm_field_errors_add(errs, "customer.email", "format", "not a valid e-mail address");
}

int tm_sale_validate(const tm_sale_t *s, tm_field_errors_t *errs)
{
    tm_field_errors_init(errs);
    check_header(s, errs);
    check_lines(s, errs);
    check_payments(s, errs);
    check_refs(s, errs);
    return errs->n || errs->n_dropped ? TM_EVALIDATE : TM_OK;
}
