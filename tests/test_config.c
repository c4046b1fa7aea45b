/* test_config.c - the config file: defaults, every error reported, paths. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_config.h"

/* Errors are expected here; keep them out of the test output. */
static tm_log_t quiet = {.level = TM_LOG_ERROR};

static char *write_tmp(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/tm-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static const char *good =
    "[node]\nname = till-1\nstore_id = s1\ndata_dir = data\n"
    "[mesh]\nlisten = tcp://127.0.0.1:7700\nsecret_key = k.key\npublic_key = k.pub\n"
    "trusted_keys = /etc/tillmesh/trusted\n"
    "[peers]\ntill-2 = tcp://10.0.0.2:7700\n";

Test(config, a_good_file_loads_with_defaults_and_relative_paths)
{
    char *p = write_tmp(good);
    tm_config_t c;
    cr_assert_eq(tm_config_load(p, &quiet, &c), TM_OK);
    cr_assert_str_eq(c.name, "till-1");
    cr_assert_str_eq(c.api_listen, "127.0.0.1:7780");
    cr_assert_eq(c.priority, 100);
    cr_assert_eq(c.n_peers, 1);
    cr_assert_str_eq(c.peers[0].endpoint, "tcp://10.0.0.2:7700");
    cr_assert_str_eq(c.data_dir, "/tmp/data", "relative to the file's directory");
    cr_assert_str_eq(c.trusted_keys, "/etc/tillmesh/trusted");
    unlink(p);
}

Test(config, unknown_keys_bad_numbers_and_missing_fields_are_errors)
{
    const char *cases[] = {
        "[node]\nnme = x\n", /* typo, and required missing */
        "[node]\nname=a\nstore_id=s\ndata_dir=/d\n[mesh]\nlisten=tcp://x:1\n"
        "secret_key=a\npublic_key=b\ntrusted_keys=c\nheartbeat_ms=-5\n",
        "[node]\nname=a\nstore_id=s\ndata_dir=/d\napi_listen=0.0.0.0:80\n[mesh]\n"
        "listen=tcp://x:1\nsecret_key=a\npublic_key=b\ntrusted_keys=c\n", /* remote API */
        "[node]\nname=a\nstore_id=s\ndata_dir=/d\n[mesh]\nlisten=udp://x:1\n"
        "secret_key=a\npublic_key=b\ntrusted_keys=c\n",
        "[node]\nname=a\nstore_id=s\ndata_dir=/d\nlog_level=loud\n[mesh]\nlisten=tcp://x:1\n"
        "secret_key=a\npublic_key=b\ntrusted_keys=c\n",
        "this is not ini\n",
        "[node]\nname=a\nstore_id=s\ndata_dir=/d\n[mesh]\nlisten=tcp://x:1\n"
        "secret_key=a\npublic_key=b\ntrusted_keys=c\norigin_quota_ops_per_hour=0\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_tmp(cases[i]);
        tm_config_t c;
        cr_assert_eq(tm_config_load(p, &quiet, &c), TM_ECONFIG, "case %zu accepted", i);
        unlink(p);
    }
}

Test(config, origin_quota_is_read_and_defaults_to_the_engines)
{
    char text[512];
    const char *peers = strstr(good, "[peers]");
    cr_assert_not_null(peers);
    snprintf(text, sizeof text, "%.*s[mesh]\norigin_quota_ops_per_hour = 500\n%s",
             (int)(peers - good), good, peers);
    char *p = write_tmp(text);
    tm_config_t c;
    cr_assert_eq(tm_config_load(p, &quiet, &c), TM_OK);
    cr_assert_eq(c.origin_quota_ops_per_hour, 500);
    unlink(p);
    p = write_tmp(good);
    cr_assert_eq(tm_config_load(p, &quiet, &c), TM_OK);
    cr_assert_eq(c.origin_quota_ops_per_hour, 0, "0: the engine's default (20000)");
    unlink(p);
}

Test(config, catalogue_keys_are_read_with_defaults)
{
    char text[600];
    const char *peers = strstr(good, "[peers]");
    cr_assert_not_null(peers);
    snprintf(text, sizeof text,
             "%.*s[node]\ncatalogue_max_age_h = 6\n[erp]\nurl = http://127.0.0.1:1\n"
             "allow_insecure_http = yes\ncatalogue_interval_s = 5\ncatalogue_page = 500\n%s",
             (int)(peers - good), good, peers);
    char *p = write_tmp(text);
    tm_config_t c;
    cr_assert_eq(tm_config_load(p, &quiet, &c), TM_OK);
    cr_assert_eq(c.catalogue_max_age_h, 6);
    cr_assert_eq(c.erp_catalogue_interval_s, 5);
    cr_assert_eq(c.erp_catalogue_page, 500);
    unlink(p);
    p = write_tmp(good);
    cr_assert_eq(tm_config_load(p, &quiet, &c), TM_OK);
    cr_assert_eq(c.catalogue_max_age_h, 24, "a day by default");
    cr_assert_eq(c.erp_catalogue_interval_s, 60);
    unlink(p);
    /* 0 hours would make every catalogue stale; 501 a page over the limit. */
    snprintf(text, sizeof text, "%.*s[node]\ncatalogue_max_age_h = 0\n%s", (int)(peers - good),
             good, peers);
    p = write_tmp(text);
    cr_assert_eq(tm_config_load(p, &quiet, &c), TM_ECONFIG);
    unlink(p);
}

Test(config, a_missing_file_is_a_config_error)
{
    tm_config_t c;
    cr_assert_eq(tm_config_load("/nonexistent/tillmeshd.conf", &quiet, &c), TM_ECONFIG);
}

Test(config, hostport_split)
{
    char h[64];
    uint16_t port;
    cr_assert_eq(tm_config_split_hostport("127.0.0.1:7780", h, sizeof h, &port), TM_OK);
    cr_assert_str_eq(h, "127.0.0.1");
    cr_assert_eq(port, 7780);
    cr_assert_eq(tm_config_split_hostport("[::1]:80", h, sizeof h, &port), TM_OK);
    cr_assert_str_eq(h, "::1");
    cr_assert_eq(tm_config_split_hostport("nohost", h, sizeof h, &port), TM_EINVAL);
    cr_assert_eq(tm_config_split_hostport("h:99999", h, sizeof h, &port), TM_EINVAL);
    cr_assert_eq(tm_config_split_hostport(":80", h, sizeof h, &port), TM_EINVAL);
}

/* A bearer token over plain http:// travels in clear: refused unless the
 * file says allow_insecure_http = yes. */
Test(config, a_token_over_plain_http_needs_allow_insecure_http)
{
    static const char *base = "[node]\nname=a\nstore_id=s\ndata_dir=/d\n[mesh]\nlisten=tcp://x:1\n"
                              "secret_key=a\npublic_key=b\ntrusted_keys=c\n[erp]\n";
    static const struct {
        const char *erp;
        int rc;
    } cases[] = {
        {"url = http://erp.example/v1\ntoken_file = /etc/tillmesh/erp.token\n", TM_ECONFIG},
        {"url = http://erp.example/v1\ntoken_file = /t\nallow_insecure_http = no\n", TM_ECONFIG},
        {"url = http://erp.example/v1\ntoken_file = /t\nallow_insecure_http = yes\n", TM_OK},
        {"url = https://erp.example/v1\ntoken_file = /etc/tillmesh/erp.token\n", TM_OK},
        {"url = http://erp.example/v1\n", TM_OK}, /* no token: nothing to leak */
        {"url = http://erp.example/v1\ntoken_file = /t\nallow_insecure_http = maybe\n", TM_ECONFIG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", base, cases[i].erp);
        char *p = write_tmp(text);
        tm_config_t c;
        cr_expect_eq(tm_config_load(p, &quiet, &c), cases[i].rc, "case %zu: %s", i, cases[i].erp);
        unlink(p);
    }
}

/* The buffer entry point (the fuzzer's) is the file loader's code. */
Test(config, parse_from_a_buffer_is_load_from_a_file)
{
    char *p = write_tmp(good);
    tm_config_t a, b;
    cr_assert_eq(tm_config_load(p, &quiet, &a), TM_OK);
    cr_assert_eq(tm_config_parse(good, strlen(good), p, &quiet, &b), TM_OK);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    unlink(p);
    cr_assert_eq(tm_config_parse("[node]\nname = x\n", 16, "t.conf", &quiet, &b), TM_ECONFIG);
}

/* inih reads 200-byte lines: a longer one used to be cut in two and its
 * tail parsed as a line of its own, so a commented-out setting at the end
 * of a long comment took effect. */
Test(config, a_setting_at_the_end_of_a_long_comment_stays_commented_out)
{
    char text[2048];
    char pad[400];
    memset(pad, '-', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    snprintf(text, sizeof text, "%s[erp]\nurl = https://erp.example\n#%.*stls_verify = no\n", good,
             198, pad);
    tm_config_t c;
    cr_assert_eq(tm_config_parse(text, strlen(text), "t.conf", &quiet, &c), TM_OK);
    cr_assert_eq(c.erp_tls_verify, 1, "a commented-out tls_verify = no was applied");
}

Test(config, an_over_long_line_or_a_nul_is_an_error)
{
    char text[2048];
    char pad[400];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    tm_config_t c;
    snprintf(text, sizeof text, "%s[node]\nlog_level = info%.*s\n", good, 250, pad);
    cr_assert_eq(tm_config_parse(text, strlen(text), "t.conf", &quiet, &c), TM_ECONFIG);
    static const char nul[] = "[node]\nname = till-1\0 = x\n";
    snprintf(text, sizeof text, "%s", good);
    size_t n = strlen(text);
    memcpy(text + n, nul, sizeof nul - 1);
    cr_assert_eq(tm_config_parse(text, n + sizeof nul - 1, "t.conf", &quiet, &c), TM_ECONFIG);
}

/* Found by fuzz_config: the reader looked for the first non-blank byte past
 * the end of a text that ends in blanks without a newline. */
Test(config, a_text_ending_in_blanks_is_read_within_its_bounds)
{
    char *text = malloc(3);
    cr_assert_not_null(text);
    memcpy(text, "\n  ", 3); /* no NUL after it: ASan sees any read past it */
    tm_config_t c;
    cr_assert_eq(tm_config_parse(text, 3, "t.conf", &quiet, &c), TM_ECONFIG);
    free(text);
}

Test(config, metrics_listen_is_off_by_default_and_takes_a_numeric_lan_address)
{
    tm_config_t c;
    cr_assert_eq(tm_config_parse(good, strlen(good), "/tmp/t.conf", &quiet, &c), TM_OK);
    cr_assert_str_eq(c.metrics_listen, "", "off unless set");
#define METRICS_CFG                                                                                \
    "[node]\nname=a\nstore_id=s\ndata_dir=/d\nmetrics_listen=%s\n[mesh]\n"                         \
    "listen=tcp://x:1\nsecret_key=a\npublic_key=b\ntrusted_keys=c\n"
    const char *ok[] = {"192.168.1.11:9780", "0.0.0.0:9780", "[::]:9780", "127.0.0.1:9780"};
    const char *bad[] = {"localhost:9780", "9780", "0.0.0.0", "192.168.1.11:99999",
                         "127.0.0.1:7780" /* the API's own */};
    char text[512];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(text, sizeof text, METRICS_CFG, ok[i]);
        cr_assert_eq(tm_config_parse(text, strlen(text), "/tmp/t.conf", &quiet, &c), TM_OK, "%s",
                     ok[i]);
        cr_assert_str_eq(c.metrics_listen, ok[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, METRICS_CFG, bad[i]);
        cr_assert_eq(tm_config_parse(text, strlen(text), "/tmp/t.conf", &quiet, &c), TM_ECONFIG,
                     "%s", bad[i]);
    }
}

/* The shipped example, with every commented-out "# key = value" turned on:
 * what it shows as a default or an example must be a valid setting. */
Test(config, the_example_config_with_every_setting_uncommented_loads)
{
    FILE *f = fopen(TM_FIXTURES "/../../deploy/tillmeshd.conf", "r");
    cr_assert_not_null(f);
    static char text[64 * 1024];
    size_t len = 0;
    char line[1024];
    int uncommented = 0;
    while (fgets(line, sizeof line, f)) {
        const char *s = line;
        size_t k = 0;
        if (line[0] == '#' && line[1] == ' ') {
            while ((line[2 + k] >= 'a' && line[2 + k] <= 'z') || line[2 + k] == '_' ||
                   line[2 + k] == '-' || (line[2 + k] >= '0' && line[2 + k] <= '9'))
                k++;
            if (k && strncmp(line + 2 + k, " = ", 3) == 0) {
                s = line + 2;
                uncommented++;
            }
        }
        size_t n = strlen(s);
        cr_assert_lt(len + n, sizeof text);
        memcpy(text + len, s, n);
        len += n;
    }
    fclose(f);
    cr_assert_gt(uncommented, 20, "only %d settings found commented out", uncommented);
    tm_config_t c;
    cr_assert_eq(tm_config_parse(text, len, "/etc/tillmesh/tillmeshd.conf", &quiet, &c), TM_OK);
    cr_assert_str_eq(c.metrics_listen, "0.0.0.0:9780");
    cr_assert_str_eq(c.erp_url, "https://erp.example.com/tillmesh/v1");
    cr_assert_eq(c.n_peers, 2);
    cr_assert_eq(c.mdns, 1);
}

Test(config, probe_schedule_keys_are_read_and_bounded)
{
    char text[700];
    const char *peers = strstr(good, "[peers]");
    cr_assert_not_null(peers);
    snprintf(text, sizeof text,
             "%.*s[erp]\nurl = http://127.0.0.1:1\nallow_insecure_http = yes\n"
             "probe_slow_interval_ms = 20000\nprobe_suspect_ms = 250\nsilent_fall = 20\n%s",
             (int)(peers - good), good, peers);
    char *p = write_tmp(text);
    tm_config_t c;
    cr_assert_eq(tm_config_load(p, &quiet, &c), TM_OK);
    cr_assert_eq(c.erp_probe_slow_interval_ms, 20000);
    cr_assert_eq(c.erp_probe_suspect_ms, 250);
    cr_assert_eq(c.erp_silent_fall, 20);
    unlink(p);
    /* 0 is the ERP client's "default" (tm_erp.h): not settable; a silent_fall
     * of 0 would make every lost probe a down verdict */
    snprintf(text, sizeof text, "%.*s[erp]\nurl = http://127.0.0.1:1\nsilent_fall = 0\n%s",
             (int)(peers - good), good, peers);
    p = write_tmp(text);
    cr_assert_eq(tm_config_load(p, &quiet, &c), TM_ECONFIG);
    unlink(p);
}
