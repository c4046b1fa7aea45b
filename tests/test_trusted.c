/* test_trusted.c - the trusted keys file parser (tm_mesh_trusted_parse is
 * the loader's own code, fed from a buffer). */
#include <criterion/criterion.h>
#include <string.h>

#include "tm_mesh.h"

static tm_log_t quiet = {.level = TM_LOG_ERROR};

#define KEY1 "[&o!LC7e?0ARD)I=2ol7c/(4kOWV>cZ:yN:cQT7Y"
#define KEY2 "U4=@31?&9#pI3reo9#yfI@y[lo[HA*DAqucy>$g9"

static int parse(const char *text, size_t *n)
{
    return tm_mesh_trusted_parse(text, strlen(text), &quiet, n);
}

Test(trusted, names_keys_comments_and_blank_lines)
{
    size_t n = 99;
    cr_assert_eq(parse("# store 7\ntill-1 " KEY1 "\n\n  \ttill-2\t" KEY2 "  \n", &n), TM_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(parse("", &n), TM_OK);
    cr_assert_eq(n, 0);
}

Test(trusted, a_bad_line_refuses_the_whole_file)
{
    size_t n;
    cr_assert_eq(parse("till-1 " KEY1 "\ntill-2\n", &n), TM_ECONFIG, "no key");
    cr_assert_eq(parse("till-1 " KEY1 " extra\n", &n), TM_ECONFIG, "a third word");
    cr_assert_eq(parse("till-1 " KEY1 "x\n", &n), TM_ECONFIG, "41 characters");
    cr_assert_eq(parse("till-1 \x01" KEY1 "\n", &n), TM_ECONFIG, "not Z85");
}

/* A line longer than the reader's buffer used to be cut in two, its tail
 * read as a line of its own: a long comment made a good file fail, and a
 * long name could come back as a key line. */
Test(trusted, a_long_comment_is_a_comment)
{
    char text[2048];
    char dashes[1001];
    memset(dashes, '-', sizeof dashes - 1);
    dashes[sizeof dashes - 1] = '\0';
    snprintf(text, sizeof text, "# %s x y\ntill-1 " KEY1 "\n", dashes);
    size_t n = 0;
    cr_assert_eq(parse(text, &n), TM_OK);
    cr_assert_eq(n, 1);
}

Test(trusted, a_commented_out_key_stays_out_however_long_the_line)
{
    char text[2048];
    char pad[600];
    memset(pad, '-', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    /* 511 characters of comment, then a key line's words on the same line:
     * cut at the reader's buffer, the tail used to be trusted. */
    snprintf(text, sizeof text, "#%.*s till-2 " KEY2 "\n", 509, pad);
    size_t n = 99;
    cr_assert_eq(parse(text, &n), TM_OK);
    cr_assert_eq(n, 0, "a key on a comment line was trusted");
}

Test(trusted, an_over_long_line_is_refused)
{
    char text[2048];
    char pad[600];
    memset(pad, ' ', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    snprintf(text, sizeof text, "till-1 " KEY1 "%.*s\n", 550, pad);
    size_t n = 0;
    cr_assert_eq(parse(text, &n), TM_ECONFIG);
}
