/* test_common.c - error table, hex and UUID helpers. */
#include <criterion/criterion.h>
#include <string.h>

#include "tm_common.h"

Test(common, every_error_code_has_a_message_and_a_name)
{
    int codes[] = {TM_OK,        TM_ENOMEM,   TM_EINVAL,    TM_EIO,   TM_ECORRUPT,  TM_EFULL,
                   TM_ENOTFOUND, TM_EEXIST,   TM_EVALIDATE, TM_EJSON, TM_EDRIFT,    TM_EPROTO,
                   TM_ETOOBIG,   TM_EVERSION, TM_ECONFIG,   TM_EPERM, TM_ECONFLICT, TM_ESTATE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cr_assert_str_neq(tm_strerror(codes[i]), "unknown error");
        cr_assert_eq(strncmp(tm_errname(codes[i]), "TM_", 3), 0);
    }
    cr_assert_str_eq(tm_strerror(-9999), "unknown error");
}

Test(common, hex_round_trip_and_rejects_bad_digits)
{
    uint8_t in[4] = {0x00, 0xab, 0x7f, 0xff}, out[4];
    char hex[9];
    tm_hex(in, 4, hex);
    cr_assert_str_eq(hex, "00ab7fff");
    cr_assert_eq(tm_unhex(hex, out, 4), TM_OK);
    cr_assert_arr_eq(in, out, 4);
    cr_assert_eq(tm_unhex("00ab7ffg", out, 4), TM_EINVAL);
    cr_assert_eq(tm_unhex("00ab7f", out, 4), TM_EINVAL);
}

Test(common, uuids_are_v4_valid_and_distinct)
{
    char a[TM_UUID_LEN], b[TM_UUID_LEN];
    tm_uuid_new(a);
    tm_uuid_new(b);
    cr_assert(tm_uuid_valid(a));
    cr_assert_str_neq(a, b);
    cr_assert_eq(a[14], '4');
    cr_assert(!tm_uuid_valid("not-a-uuid"));
    cr_assert(!tm_uuid_valid("0123456789abcdef0123456789abcdef0123"));
}

Test(common, strlcpy_truncates_and_terminates)
{
    char buf[4];
    cr_assert_eq(tm_strlcpy(buf, "abcdef", sizeof buf), 6);
    cr_assert_str_eq(buf, "abc");
}

Test(common, log_level_parse)
{
    tm_log_level_t l;
    cr_assert_eq(tm_log_level_parse("debug", &l), TM_OK);
    cr_assert_eq(l, TM_LOG_DEBUG);
    cr_assert_eq(tm_log_level_parse("loud", &l), TM_EINVAL);
}
