/* customer.c - customer ids (Chilean RUT, DNI/foreign ids) and e-mail syntax. */
#include "tm_record.h"

#include <ctype.h>
#include <string.h>

/* A RUT body has at most 9 significant digits (people are below 30
 * million, companies 76-99 million); some exports zero-pad it, so up to
 * RUT_RAW_MAX digits are read before the leading zeros are stripped. */
#define RUT_BODY_MAX 9
#define RUT_RAW_MAX  12

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

char tm_rut_check_digit(const char *digits)
{
    if (!digits || !digits[0])
        return '\0';
    unsigned sum = 0, factor = 2;
    size_t n = strlen(digits);
    for (size_t i = n; i-- > 0;) {
        if (!is_digit(digits[i]))
            return '\0';
        sum += (unsigned)(digits[i] - '0') * factor;
        factor = factor == 7 ? 2 : factor + 1;
    }
    unsigned r = 11 - sum % 11;
    if (r == 11)
        return '0';
    if (r == 10)
        return 'K';
    return (char)('0' + r);
}

/*
 * Copies the digits of a RUT body into out, accepting either no dots at all
 * or dots exactly between groups of three counted from the right
 * ("12.345.678", not "12.34.5678"). Returns the number of digits, or 0 when
 * the body is malformed or has more than RUT_RAW_MAX digits.
 */
static size_t rut_body_digits(const char *body, size_t len, char out[RUT_RAW_MAX + 1])
{
    bool dotted = memchr(body, '.', len) != NULL;
    /* With len % 4 == 0 the first character would sit where a dot belongs:
     * a leading group of four digits, or a leading dot. */
    if (dotted && len % 4 == 0)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        /* Position counted from the right: in "12.345.678" the dots sit
         * where 4, 8, ... characters follow. */
        size_t from_right = len - i;
        bool dot_here = dotted && from_right % 4 == 0;
        if (dot_here) {
            if (body[i] != '.')
                return 0;
            continue;
        }
        if (!is_digit(body[i]) || n >= RUT_RAW_MAX)
            return 0;
        out[n++] = body[i];
    }
    out[n] = '\0';
    return n;
}

int tm_rut_normalise(const char *in, char *out, size_t outsz)
{
    if (!out || outsz == 0)
        return TM_EINVAL;
    out[0] = '\0';
    if (!in)
        return TM_EINVAL;
    size_t len = strlen(in);
    if (len < 2)
        return TM_EVALIDATE;
    char dv = (char)toupper((unsigned char)in[len - 1]);
    if (!is_digit(dv) && dv != 'K')
        return TM_EVALIDATE;
    size_t body_len = len - 1;
    bool dashed = in[body_len - 1] == '-';
    if (dashed)
        body_len--;
    /* Dots only make sense in the written form, which has the dash. */
    if (body_len == 0 || (!dashed && memchr(in, '.', body_len)))
        return TM_EVALIDATE;
    char digits[RUT_RAW_MAX + 1];
    if (rut_body_digits(in, body_len, digits) == 0)
        return TM_EVALIDATE;
    const char *body = digits;
    while (*body == '0')
        body++;
    if (!*body || strlen(body) > RUT_BODY_MAX)
        return TM_EVALIDATE; /* a RUT of zero, or too long to be one */
    if (tm_rut_check_digit(body) != dv)
        return TM_EVALIDATE;
    size_t n = strlen(body);
    if (n + 2 > outsz)
        return TM_EINVAL;
    memcpy(out, body, n);
    out[n] = dv;
    out[n + 1] = '\0';
    return TM_OK;
}

static int dni_normalise(const char *in, char *out, size_t outsz)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.' || c == '-' || c == ' ')
            continue;
        if (!isascii(c) || !isalnum(c))
            return TM_EVALIDATE;
        if (n + 1 >= TM_CUST_ID_MAX)
            return TM_EVALIDATE;
        if (n + 1 >= outsz)
            return TM_EINVAL;
        out[n++] = (char)toupper(c);
    }
    out[n] = '\0';
    return n ? TM_OK : TM_EVALIDATE;
}

int tm_customer_id_normalise(const char *in, tm_id_type_t type, char *out, size_t outsz)
{
    if (!in || !out || outsz == 0)
        return TM_EINVAL;
    out[0] = '\0';
    int rc;
    switch (type) {
    case TM_IDTYPE_RUT: rc = tm_rut_normalise(in, out, outsz); break;
    case TM_IDTYPE_DNI: rc = dni_normalise(in, out, outsz); break;
    default: return TM_EINVAL;
    }
    if (rc)
        out[0] = '\0';
    return rc;
}

/* ---- e-mail ----------------------------------------------------------- */

/* RFC 5322 "atext" plus the dot, which local_ok() places. */
static bool local_char_ok(unsigned char c)
{
    return isascii(c) && (isalnum(c) || strchr("!#$%&'*+/=?^_`{|}~-.", c));
}

static bool local_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!local_char_ok((unsigned char)s[i]) || (s[i] == '.' && s[i + 1] == '.'))
            return false;
    }
    return true;
}

/* Letters, digits and inner hyphens; 1..63 characters (RFC 1035). */
static bool label_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isascii(c) || !(isalnum(c) || c == '-'))
            return false;
    }
    return true;
}

static bool domain_ok(const char *s)
{
    size_t labels = 0;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        if (!label_ok(s, len))
            return false;
        labels++;
        if (!dot)
            break;
        s = dot + 1;
    }
    /* "user@localhost" is valid SMTP but never what a customer meant. */
    return labels >= 2;
}

bool tm_email_valid(const char *s)
{
    if (!s)
        return false;
    size_t len = strlen(s);
    if (len == 0 || len > 254)
        return false;
    const char *at = strchr(s, '@');
    if (!at || strchr(at + 1, '@'))
        return false;
    return local_ok(s, (size_t)(at - s)) && domain_ok(at + 1);
}
