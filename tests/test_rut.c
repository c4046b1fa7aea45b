/* test_rut.c - Chilean RUT check digit and customer id normalisation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tm_record.h"

static void assert_rut(const char *in, const char *want)
{
    char out[TM_CUST_ID_MAX];
    int rc = tm_rut_normalise(in, out, sizeof out);
    cr_assert_eq(rc, TM_OK, "%s: %s", in, tm_errname(rc));
    cr_assert_str_eq(out, want, "%s", in);
}

static void assert_bad_rut(const char *in)
{
    char out[TM_CUST_ID_MAX] = "junk";
    cr_assert_eq(tm_rut_normalise(in, out, sizeof out), TM_EVALIDATE, "%s accepted", in);
    cr_assert_str_eq(out, "", "%s: out not cleared", in);
}

Test(rut, check_digit_of_known_ruts)
{
    cr_assert_eq(tm_rut_check_digit("12345678"), '5');
    cr_assert_eq(tm_rut_check_digit("11111111"), '1');
    cr_assert_eq(tm_rut_check_digit("76086428"), '5');
    cr_assert_eq(tm_rut_check_digit("1000005"), 'K');
    cr_assert_eq(tm_rut_check_digit("1"), '9');
    cr_assert_eq(tm_rut_check_digit("14"), '0'); /* 11 - 0 -> '0' */
    cr_assert_eq(tm_rut_check_digit(""), '\0');
    cr_assert_eq(tm_rut_check_digit("12a"), '\0');
}

Test(rut, all_three_spellings_give_the_canonical_form)
{
    assert_rut("12.345.678-5", "123456785");
    assert_rut("12345678-5", "123456785");
    assert_rut("123456785", "123456785");
    assert_rut("11.111.111-1", "111111111");
    assert_rut("76.086.428-5", "760864285");
    assert_rut("1.000.005-K", "1000005K");
}

Test(rut, k_in_either_case)
{
    assert_rut("1000005-K", "1000005K");
    assert_rut("1000005-k", "1000005K");
    assert_rut("1000005k", "1000005K");
    assert_rut("6-k", "6K");
}

Test(rut, short_ruts)
{
    assert_rut("1-9", "19");
    assert_rut("19", "19");
    assert_rut("14-0", "140");
    assert_rut("123.456-0", "1234560");
    assert_rut("5-1", "51");
}

Test(rut, leading_zeros_are_stripped)
{
    assert_rut("012.345.678-5", "123456785");
    assert_rut("0012345678-5", "123456785");
    assert_bad_rut("0-0");
}

Test(rut, wrong_check_digit)
{
    assert_bad_rut("12.345.678-4");
    assert_bad_rut("12345678-K");
    assert_bad_rut("123456780");
    assert_bad_rut("1-8");
}

Test(rut, garbage)
{
    assert_bad_rut("");
    assert_bad_rut("5");
    assert_bad_rut("abc");
    assert_bad_rut("12.34.5678-5"); /* dots in the wrong places */
    assert_bad_rut("1234.567-8");
    assert_bad_rut(".123.456-0");
    assert_bad_rut("12.345678-5"); /* one dot missing */
    assert_bad_rut("12.345.6785"); /* dots but no dash */
    assert_bad_rut("1234567890123-1");
    assert_bad_rut("1234567890-1"); /* 10 significant digits */
    assert_bad_rut("12345678-");
    assert_bad_rut("-5");
    assert_bad_rut("12345678--5");
    assert_bad_rut(" 12345678-5");
    assert_bad_rut("12345678-X");
}

Test(rut, small_output_buffer_is_refused_not_overrun)
{
    char out[4];
    cr_assert_eq(tm_rut_normalise("12345678-5", out, sizeof out), TM_EINVAL);
    cr_assert_str_eq(out, "");
}

Test(customer_id, rut_type_uses_the_rut_rules)
{
    char out[TM_CUST_ID_MAX];
    cr_assert_eq(tm_customer_id_normalise("12.345.678-5", TM_IDTYPE_RUT, out, sizeof out), TM_OK);
    cr_assert_str_eq(out, "123456785");
    cr_assert_eq(tm_customer_id_normalise("12.345.678-4", TM_IDTYPE_RUT, out, sizeof out),
                 TM_EVALIDATE);
}

Test(customer_id, dni_drops_separators_and_upper_cases)
{
    char out[TM_CUST_ID_MAX];
    cr_assert_eq(tm_customer_id_normalise("12.345.678-z", TM_IDTYPE_DNI, out, sizeof out), TM_OK);
    cr_assert_str_eq(out, "12345678Z");
    cr_assert_eq(tm_customer_id_normalise("ab 123 456", TM_IDTYPE_DNI, out, sizeof out), TM_OK);
    cr_assert_str_eq(out, "AB123456");
    /* No check digit for foreign ids: a "wrong" RUT digit is fine here. */
    cr_assert_eq(tm_customer_id_normalise("12345678-4", TM_IDTYPE_DNI, out, sizeof out), TM_OK);
    cr_assert_str_eq(out, "123456784");
}

Test(customer_id, dni_rejects_bad_characters_and_lengths)
{
    char out[TM_CUST_ID_MAX];
    cr_assert_eq(tm_customer_id_normalise("", TM_IDTYPE_DNI, out, sizeof out), TM_EVALIDATE);
    cr_assert_eq(tm_customer_id_normalise(" .-", TM_IDTYPE_DNI, out, sizeof out), TM_EVALIDATE);
    cr_assert_eq(tm_customer_id_normalise("AB/12", TM_IDTYPE_DNI, out, sizeof out), TM_EVALIDATE);
    cr_assert_eq(tm_customer_id_normalise("N\xc3\x91"
                                          "123",
                                          TM_IDTYPE_DNI, out, sizeof out),
                 TM_EVALIDATE);
    char longid[TM_CUST_ID_MAX + 1];
    memset(longid, '7', TM_CUST_ID_MAX);
    longid[TM_CUST_ID_MAX] = '\0';
    cr_assert_eq(tm_customer_id_normalise(longid, TM_IDTYPE_DNI, out, sizeof out), TM_EVALIDATE);
    longid[TM_CUST_ID_MAX - 1] = '\0'; /* exactly TM_CUST_ID_MAX-1 fits */
    cr_assert_eq(tm_customer_id_normalise(longid, TM_IDTYPE_DNI, out, sizeof out), TM_OK);
}

Test(customer_id, unknown_type_is_an_argument_error)
{
    char out[TM_CUST_ID_MAX];
    cr_assert_eq(tm_customer_id_normalise("123", TM_IDTYPE_NONE, out, sizeof out), TM_EINVAL);
}

Test(email, practical_syntax)
{
    cr_assert(tm_email_valid("ana@example.cl"));
    cr_assert(tm_email_valid("ana.maria+recibos@mail.example.co"));
    cr_assert(tm_email_valid("o'hara@x-y.cl"));
    cr_assert_not(tm_email_valid(""));
    cr_assert_not(tm_email_valid("ana"));
    cr_assert_not(tm_email_valid("@example.cl"));
    cr_assert_not(tm_email_valid("ana@"));
    cr_assert_not(tm_email_valid("ana@localhost"));
    cr_assert_not(tm_email_valid("ana@@example.cl"));
    cr_assert_not(tm_email_valid("a@b@example.cl"));
    cr_assert_not(tm_email_valid("ana maria@example.cl"));
    cr_assert_not(tm_email_valid(".ana@example.cl"));
    cr_assert_not(tm_email_valid("ana..m@example.cl"));
    cr_assert_not(tm_email_valid("ana@-x.cl"));
    cr_assert_not(tm_email_valid("ana@x..cl"));
    cr_assert_not(tm_email_valid("ana@x.cl."));
}

/* 64 + 1 + 189 = 254 characters: the longest address accepted. */
static void make_email(char *s, size_t last_label)
{
    memset(s, 'a', 64);
    s[64] = '@';
    memset(s + 65, 'b', 63);
    s[128] = '.';
    memset(s + 129, 'c', 63);
    s[192] = '.';
    memset(s + 193, 'd', last_label);
    s[193 + last_label] = '\0';
}

Test(email, length_limit)
{
    char s[300];
    make_email(s, 61);
    cr_assert_eq(strlen(s), 254);
    cr_assert(tm_email_valid(s));
    make_email(s, 62);
    cr_assert_not(tm_email_valid(s));
}

static const char *long_run(char c)
{
    return c == 'a'
               ? "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               : "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
}

Test(email, local_part_and_label_limits)
{
    char s[300];
    snprintf(s, sizeof s, "%.65s@example.cl", long_run('a')); /* 65-character local part */
    cr_assert_not(tm_email_valid(s));
    snprintf(s, sizeof s, "%.64s@example.cl", long_run('a'));
    cr_assert(tm_email_valid(s));
    snprintf(s, sizeof s, "a@%.64s.cl", long_run('b')); /* 64-character label */
    cr_assert_not(tm_email_valid(s));
    snprintf(s, sizeof s, "a@%.63s.cl", long_run('b'));
    cr_assert(tm_email_valid(s));
}
