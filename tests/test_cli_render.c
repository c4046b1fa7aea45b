/* test_cli_render.c - the CLI's pure rendering: status JSON -> text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

#define NODE_ID "0123456789abcdef0123456789abcdef"
#define DIGEST  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static const char STATUS[] =
    "{\"api_version\":1,"
    "\"node\":{\"id\":\"" NODE_ID "\",\"name\":\"till-1\",\"store_id\":\"store-1\","
    "\"version\":\"0.1.0\",\"uptime_s\":3725,\"mesh_endpoint\":\"tcp://127.0.0.1:7701\","
    "\"api\":\"127.0.0.1:8081\"},"
    "\"state\":{\"ops\":123,\"local_ops\":40,\"sales\":100,\"customers\":3,\"erp_acked\":7,"
    "\"digest\":\"" DIGEST "\",\"vv\":[{\"origin\":\"" NODE_ID "\",\"seq\":12}]},"
    "\"peers\":["
    "{\"name\":\"till-2\",\"node_id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"source\":\"static\","
    "\"endpoint\":\"tcp://127.0.0.1:7702\",\"state\":\"alive\",\"last_seen_ms_ago\":420,"
    "\"they_lack_ops\":0,\"we_lack_ops\":5,\"digest\":null,\"store_id\":\"store-1\","
    "\"clock_offset_ms\":-600012,\"rtt_ms\":1},"
    "{\"name\":\"till-3\",\"node_id\":null,\"source\":\"mdns\","
    "\"endpoint\":\"tcp://10.0.0.3:7701\",\"state\":\"connecting\",\"last_seen_ms_ago\":null,"
    "\"they_lack_ops\":12,\"we_lack_ops\":0,\"digest\":null,\"store_id\":null}],"
    "\"clock\":{\"offset_ms\":3,\"skewed\":false,\"bound_ms\":5000,\"peers_measured\":2,"
    "\"message\":null},"
    "\"uplink\":{\"state\":\"unknown\",\"since\":null},"
    "\"forwarder\":{\"node_id\":null,\"name\":null,\"epoch\":0},"
    "\"erp\":{\"backlog\":93,\"oldest_unsent_age_s\":null,\"last_forward_at\":null,"
    "\"parked\":0}}";

static char *status_text(const char *json)
{
    char *out = NULL;
    cr_assert_eq(tm_cli_render_status(json, strlen(json), &out), TM_CLI_R_OK);
    cr_assert_not_null(out);
    return out;
}

/* True when text has a line equal to line. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    }
    return 0;
}

Test(cli_render, status_header_and_state_blocks)
{
    char *t = status_text(STATUS);
    cr_assert(has_line(t, "Node:       till-1"), "%s", t);
    cr_assert(has_line(t, "Node id:    0123456789ab"), "%s", t);
    cr_assert(has_line(t, "Store:      store-1"));
    cr_assert(has_line(t, "Version:    0.1.0"));
    cr_assert(has_line(t, "Uptime:     1h 02m"));
    cr_assert(has_line(t, "Mesh:       tcp://127.0.0.1:7701"));
    cr_assert(has_line(t, "Ops:        123"));
    cr_assert(has_line(t, "Local ops:  40"));
    cr_assert(has_line(t, "Sales:      100"));
    cr_assert(has_line(t, "Customers:  3"));
    cr_assert(has_line(t, "ERP acked:  7"));
    cr_assert(has_line(t, "Digest:     fedcba9876543210"));
    cr_assert_null(strstr(t, "warning"));
    free(t);
}

Test(cli_render, status_peers_table_is_aligned)
{
    char *t = status_text(STATUS);
    cr_assert(has_line(t, "  NAME    SOURCE  ENDPOINT              STATE       LAST SEEN  CLOCK   "
                          "LAG (THEY/WE)"),
              "%s", t);
    cr_assert(has_line(t, "  till-2  static  tcp://127.0.0.1:7702  alive       0.4s ago   -10.0m  "
                          "0/5"),
              "%s", t);
    cr_assert(has_line(t, "  till-3  mdns    tcp://10.0.0.3:7701   connecting  never      ?       "
                          "12/0"),
              "%s", t);
    free(t);
}

Test(cli_render, status_nulls_are_shown_honestly)
{
    char *t = status_text(STATUS);
    cr_assert(has_line(t, "Uplink:     unknown"), "%s", t);
    cr_assert(has_line(t, "Forwarder:  none (epoch 0)"), "%s", t);
    cr_assert(has_line(t, "ERP:        backlog 93, parked 0, oldest unsent none, "
                          "last forward never"),
              "%s", t);
    free(t);
}

Test(cli_render, status_the_whole_screen)
{
    char *t = status_text(STATUS);
    const char *want =
        "Node:       till-1\n"
        "Node id:    0123456789ab\n"
        "Store:      store-1\n"
        "Version:    0.1.0\n"
        "Uptime:     1h 02m\n"
        "Mesh:       tcp://127.0.0.1:7701\n"
        "API:        127.0.0.1:8081\n"
        "\n"
        "Ops:        123\n"
        "Local ops:  40\n"
        "Sales:      100\n"
        "Customers:  3\n"
        "ERP acked:  7\n"
        "Digest:     fedcba9876543210\n"
        "\n"
        "Peers:\n"
        "  NAME    SOURCE  ENDPOINT              STATE       LAST SEEN  CLOCK   LAG (THEY/WE)\n"
        "  till-2  static  tcp://127.0.0.1:7702  alive       0.4s ago   -10.0m  0/5\n"
        "  till-3  mdns    tcp://10.0.0.3:7701   connecting  never      ?       12/0\n"
        "\n"
        "Clock:      ok, +0.003s from the store's (median of 3 clocks)\n"
        "Uplink:     unknown\n"
        "Forwarder:  none (epoch 0)\n"
        "ERP:        backlog 93, parked 0, oldest unsent none, last forward never\n";
    cr_assert_str_eq(t, want);
    free(t);
}

Test(cli_render, a_wrong_clock_gets_a_banner_at_the_top)
{
    const char *json =
        "{\"api_version\":1,\"node\":{\"name\":\"till-2\"},"
        "\"clock\":{\"offset_ms\":-600012,\"skewed\":true,\"bound_ms\":5000,"
        "\"peers_measured\":2,\"message\":\"this till's clock is 600.0 s behind the store's\"}}";
    char *t = status_text(json);
    cr_assert_eq(strncmp(t, "WARNING: this till's clock is 600.0 s behind the store's\n\n", 58), 0,
                 "%s", t);
    cr_assert(has_line(t, "Clock:      WRONG, -10.0m from the store's (median of 3 clocks)"), "%s",
              t);
    free(t);
    t = status_text("{\"api_version\":1,\"clock\":{\"peers_measured\":0}}");
    cr_assert(has_line(t, "Clock:      no peer to compare with"), "%s", t);
    cr_assert_null(strstr(t, "WARNING"));
    free(t);
}

Test(cli_render, a_lost_or_healed_store_gets_a_banner)
{
    char *t = status_text(
        "{\"api_version\":1,\"store\":{\"state\":\"lost\",\"message\":\"the database file "
        "/x/tillmesh.db was deleted while open\",\"healed_at_start\":null}}");
    cr_assert(has_line(t, "WARNING: STORE LOST: the database file /x/tillmesh.db was deleted while "
                          "open"),
              "%s", t);
    free(t);
    t = status_text("{\"api_version\":1,\"store\":{\"state\":\"ok\",\"healed_at_start\":{"
                    "\"moved_to\":\"/d/corrupt-20261126T065244\",\"ops_salvaged\":31}}}");
    cr_assert(has_line(t, "NOTE: the store was rebuilt at start: old files moved to "
                          "/d/corrupt-20261126T065244, 31 ops salvaged, the rest re-seeded from "
                          "peers"),
              "%s", t);
    cr_assert_null(strstr(t, "WARNING"));
    free(t);
    t = status_text("{\"api_version\":1,\"store\":{\"state\":\"ok\",\"healed_at_start\":null}}");
    cr_assert_null(strstr(t, "STORE"));
    cr_assert_null(strstr(t, "NOTE"));
    free(t);
}

Test(cli_render, an_origin_over_its_quota_gets_a_banner_and_revoked_peers_show)
{
    const char *json = "{\"api_version\":1,\"node\":{\"name\":\"till-1\"},"
                       "\"peers\":[{\"name\":\"till-9\",\"state\":\"revoked\"}],"
                       "\"trust\":{\"quota_hit\":true,\"origins_over_quota\":1,"
                       "\"message\":\"1 till origin(s) sent more than 20000 ops this hour\"}}";
    char *t = status_text(json);
    const char *want = "WARNING: 1 till origin(s) sent more than 20000 ops this hour\n\n";
    cr_assert_eq(strncmp(t, want, strlen(want)), 0, "%s", t);
    cr_assert_not_null(strstr(t, "revoked"), "%s", t);
    free(t);
    t = status_text("{\"api_version\":1,\"trust\":{\"quota_hit\":false}}");
    cr_assert_null(strstr(t, "WARNING"), "%s", t);
    free(t);
}

Test(cli_render, clock_offsets_in_a_unit_a_person_reads)
{
    char b[32];
    tm_cli_fmt_offset_ms(3, b, sizeof b);
    cr_assert_str_eq(b, "+0.003s");
    tm_cli_fmt_offset_ms(-600000, b, sizeof b);
    cr_assert_str_eq(b, "-10.0m");
    tm_cli_fmt_offset_ms(86400000, b, sizeof b);
    cr_assert_str_eq(b, "+24.0h");
    tm_cli_fmt_offset_ms(-9.6e11, b, sizeof b);
    cr_assert_str_eq(b, "-11111.1d");
}

Test(cli_render, status_forwarder_uplink_and_erp_when_known)
{
    const char *json =
        "{\"api_version\":1,\"node\":{\"id\":\"" NODE_ID "\"},"
        "\"uplink\":{\"state\":\"up\",\"since\":1795435200},"
        "\"forwarder\":{\"node_id\":\"" NODE_ID "\",\"name\":\"till-1\",\"epoch\":3},"
        "\"erp\":{\"backlog\":2,\"oldest_unsent_age_s\":65,"
        "\"last_forward_at\":1795435200000,\"parked\":1}}";
    char *t = status_text(json);
    cr_assert(has_line(t, "Uplink:     up since 2026-11-23 12:00:00Z"), "%s", t);
    cr_assert(has_line(t, "Forwarder:  till-1 (this node), epoch 3"), "%s", t);
    cr_assert(has_line(t, "ERP:        backlog 2, parked 1, oldest unsent 1m 05s, "
                          "last forward 2026-11-23 12:00:00Z"),
              "%s", t);
    free(t);
    const char *other = "{\"api_version\":1,\"node\":{\"id\":\"" NODE_ID "\"},"
                        "\"forwarder\":{\"node_id\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\","
                        "\"name\":\"till-4\",\"epoch\":9},\"uplink\":{\"state\":\"down\","
                        "\"since\":\"2026-11-23T11:00:00Z\"}}";
    t = status_text(other);
    cr_assert(has_line(t, "Forwarder:  till-4 (bbbbbbbbbbbb), epoch 9"), "%s", t);
    cr_assert(has_line(t, "Uplink:     down since 2026-11-23T11:00:00Z"), "%s", t);
    cr_assert(!strstr(t, "Standby:"), "an old tillmeshd names no standby: no line\n%s", t);
    free(t);
}

Test(cli_render, status_names_the_standby)
{
    const char *json = "{\"api_version\":1,\"node\":{\"id\":\"" NODE_ID "\"},"
                       "\"forwarder\":{\"node_id\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\","
                       "\"name\":\"till-4\",\"epoch\":9,\"standby\":\"till-1\","
                       "\"standby_is_self\":true}}";
    char *t = status_text(json);
    cr_assert(has_line(t, "Standby:    till-1 (this node)"), "%s", t);
    free(t);
    t = status_text("{\"api_version\":1,\"forwarder\":{\"node_id\":null,\"name\":null,"
                    "\"epoch\":2,\"standby\":null,\"standby_is_self\":false}}");
    cr_assert(has_line(t, "Standby:    none"), "%s", t);
    free(t);
    t = status_text("{\"api_version\":1,\"forwarder\":{\"epoch\":2,\"standby\":\"t\\u001b[2J\","
                    "\"standby_is_self\":false}}");
    cr_assert(has_line(t, "Standby:    t?[2J"), "a name is printed safe\n%s", t);
    free(t);
}

Test(cli_render, ops_kept_aside_get_a_warning_banner)
{
    char *t = status_text("{\"api_version\":1,\"conflicts\":{\"total\":3}}");
    cr_assert(strstr(t, "WARNING: 3 op(s) from tills kept aside") == t, "%s", t);
    free(t);
    t = status_text("{\"api_version\":1,\"conflicts\":{\"total\":0}}");
    cr_assert(!strstr(t, "WARNING"), "%s", t);
    free(t);
}

Test(cli_render, missing_and_wrong_typed_fields_show_question_marks)
{
    const char *json = "{\"api_version\":1,\"node\":{\"id\":42,\"name\":[1],\"uptime_s\":\"x\"},"
                       "\"state\":{\"ops\":\"many\",\"sales\":1.5,\"digest\":false},"
                       "\"peers\":[7,{\"name\":null,\"last_seen_ms_ago\":\"soon\","
                       "\"they_lack_ops\":\"?\"}],"
                       "\"uplink\":5,\"forwarder\":[],\"erp\":\"none\"}";
    char *t = status_text(json);
    cr_assert(has_line(t, "Node:       ?"), "%s", t);
    cr_assert(has_line(t, "Node id:    ?"));
    cr_assert(has_line(t, "Store:      ?"));
    cr_assert(has_line(t, "Uptime:     ?"));
    cr_assert(has_line(t, "Ops:        ?"));
    cr_assert(has_line(t, "Sales:      ?"));
    cr_assert(has_line(t, "Digest:     ?"));
    cr_assert(has_line(t, "  ?     ?       ?         ?      ?          ?      ?/?"), "%s", t);
    cr_assert(has_line(t, "Uplink:     ?"), "%s", t);
    cr_assert(has_line(t, "Forwarder:  ?"), "%s", t);
    cr_assert(has_line(t, "ERP:        ?"), "%s", t);
    free(t);
}

Test(cli_render, any_json_value_renders_without_crashing)
{
    const char *inputs[] = {"{}",
                            "[]",
                            "null",
                            "0",
                            "\"x\"",
                            "{\"peers\":{}}",
                            "{\"peers\":[]}",
                            "{\"node\":null,\"state\":[]}",
                            "{\"api_version\":2}"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char *out = NULL;
        cr_assert_eq(tm_cli_render_status(inputs[i], strlen(inputs[i]), &out), TM_CLI_R_OK, "%s",
                     inputs[i]);
        free(out);
        cr_assert_eq(tm_cli_render_peers(inputs[i], strlen(inputs[i]), &out), TM_CLI_R_OK);
        free(out);
        cr_assert_eq(tm_cli_render_sales(inputs[i], strlen(inputs[i]), &out), TM_CLI_R_OK);
        free(out);
    }
    char *t = status_text("{\"api_version\":2}");
    cr_assert_not_null(strstr(t, "warning: tillmeshd speaks another status API version"));
    free(t);
    t = status_text("{\"peers\":[]}");
    cr_assert_not_null(strstr(t, "no peers"));
    free(t);
}

Test(cli_render, malformed_json_is_explained_not_rendered)
{
    char *out = NULL;
    cr_assert_eq(tm_cli_render_status("{\"node\":", 8, &out), TM_CLI_R_BADJSON);
    cr_assert_not_null(strstr(out, "malformed JSON"), "%s", out);
    cr_assert_null(strchr(out, '\n'));
    free(out);
    cr_assert_eq(tm_cli_render_peers("", 0, &out), TM_CLI_R_BADJSON);
    free(out);
}

Test(cli_render, control_characters_from_peers_never_reach_the_terminal)
{
    const char *json = "{\"peers\":[{\"name\":\"evil\\u001b[2Jx\\u0007\\u009b\","
                       "\"source\":\"mdns\",\"endpoint\":\"tcp://\\u00e9t\\u00e9:1\","
                       "\"state\":\"alive\",\"last_seen_ms_ago\":0,"
                       "\"they_lack_ops\":0,\"we_lack_ops\":0}]}";
    char *out = NULL;
    cr_assert_eq(tm_cli_render_peers(json, strlen(json), &out), TM_CLI_R_OK);
    cr_assert_null(strchr(out, '\033'));
    cr_assert_null(strchr(out, '\a'));
    cr_assert_null(strstr(out, "\xc2\x9b"));
    cr_assert_not_null(strstr(out, "evil?[2Jx??"), "%s", out);
    cr_assert_not_null(strstr(out, "tcp://\xc3\xa9t\xc3\xa9:1"), "%s", out); /* UTF-8 kept */
    free(out);
}

Test(cli_render, long_names_are_cut)
{
    char json[512];
    char name[201];
    memset(name, 'n', 200);
    name[200] = '\0';
    snprintf(json, sizeof json, "{\"peers\":[{\"name\":\"%s\"}]}", name);
    char *out = NULL;
    cr_assert_eq(tm_cli_render_peers(json, strlen(json), &out), TM_CLI_R_OK);
    cr_assert_not_null(strstr(out, "nnnnnnnnnn~"));
    cr_assert_lt(strlen(out), 250);
    free(out);
}

Test(cli_render, peers_only_is_the_table)
{
    char *out = NULL;
    cr_assert_eq(tm_cli_render_peers(STATUS, strlen(STATUS), &out), TM_CLI_R_OK);
    cr_assert_str_eq(out,
                     "NAME    SOURCE  ENDPOINT              STATE       LAST SEEN  CLOCK   "
                     "LAG (THEY/WE)\n"
                     "till-2  static  tcp://127.0.0.1:7702  alive       0.4s ago   -10.0m  0/5\n"
                     "till-3  mdns    tcp://10.0.0.3:7701   connecting  never      ?       12/0\n");
    free(out);
}

Test(cli_render, json_passthrough_is_byte_for_byte)
{
    char *out = tm_cli_json_passthrough(STATUS, strlen(STATUS));
    cr_assert_not_null(out);
    cr_assert_eq(strlen(out), strlen(STATUS) + 1);
    cr_assert_eq(strncmp(out, STATUS, strlen(STATUS)), 0);
    cr_assert_eq(out[strlen(STATUS)], '\n');
    free(out);
    /* Already ends in a newline: unchanged; key order and spacing kept. */
    const char *odd = "{ \"z\": 1,\n  \"a\": [ 2 ] }\n";
    out = tm_cli_json_passthrough(odd, strlen(odd));
    cr_assert_str_eq(out, odd);
    free(out);
    out = tm_cli_json_passthrough("", 0);
    cr_assert_str_eq(out, "\n");
    free(out);
}

Test(cli_render, validation_errors_one_line_per_field)
{
    const char *body = "{\"error\":\"validation\",\"fields\":["
                       "{\"field\":\"total\",\"rule\":\"sum\",\"message\":\"total 100 is not "
                       "the sum of the lines (90)\"},"
                       "{\"field\":\"lines[0].qty\",\"rule\":\"range\",\"message\":\"must not "
                       "be 0\"}]}";
    char *out = tm_cli_render_error(422, body, strlen(body));
    cr_assert_str_eq(out, "tillmesh: the request failed validation (HTTP 422)\n"
                          "total: total 100 is not the sum of the lines (90) (sum)\n"
                          "lines[0].qty: must not be 0 (range)\n");
    free(out);
}

Test(cli_render, error_message_then_fallbacks)
{
    const char *b = "{\"error\":\"not_found\",\"message\":\"no sale with that id\"}";
    char *out = tm_cli_render_error(404, b, strlen(b));
    cr_assert_str_eq(out, "tillmesh: no sale with that id (HTTP 404)\n");
    free(out);
    out = tm_cli_render_error(500, "{\"error\":\"internal\"}", 20);
    cr_assert_str_eq(out, "tillmesh: internal (HTTP 500)\n");
    free(out);
    out = tm_cli_render_error(502, "<html>Bad\ngateway</html>", 25);
    cr_assert_str_eq(out, "tillmesh: <html>Bad?gateway</html> (HTTP 502)\n");
    free(out);
    out = tm_cli_render_error(503, NULL, 0);
    cr_assert_str_eq(out, "tillmesh: tillmeshd answered with an error (HTTP 503)\n");
    free(out);
}

Test(cli_render, sales_table_and_next_cursor)
{
    const char *json =
        "{\"sales\":[{\"sale_id\":\"6f1c0b9e-1a2b-4c3d-8e4f-5a6b7c8d9e0f\",\"till\":\"till-1\","
        "\"receipt_no\":7,\"created_at\":\"2026-11-23T12:00:00Z\",\"currency\":\"CLP\","
        "\"total\":12990,\"customer\":{\"id\":\"123456785\",\"id_type\":\"rut\"}},"
        "{\"sale_id\":\"0a1b2c3d-1a2b-4c3d-8e4f-5a6b7c8d9e0f\",\"till\":\"till-2\","
        "\"receipt_no\":8,\"created_at\":\"2026-11-23T12:05:00Z\",\"currency\":\"EUR\","
        "\"total\":-1299,\"refund_of\":\"6f1c0b9e-1a2b-4c3d-8e4f-5a6b7c8d9e0f\"}],"
        "\"next\":42}";
    char *out = NULL;
    cr_assert_eq(tm_cli_render_sales(json, strlen(json), &out), TM_CLI_R_OK);
    cr_assert(has_line(out, "SALE ID                               TILL    RECEIPT  CREATED AT"
                            "            TOTAL       CUSTOMER/NOTE"),
              "%s", out);
    cr_assert(has_line(out, "6f1c0b9e-1a2b-4c3d-8e4f-5a6b7c8d9e0f  till-1  7        "
                            "2026-11-23T12:00:00Z  12990 CLP   123456785"),
              "%s", out);
    cr_assert(has_line(out, "0a1b2c3d-1a2b-4c3d-8e4f-5a6b7c8d9e0f  till-2  8        "
                            "2026-11-23T12:05:00Z  -12.99 EUR  refund of 6f1c0b9e"),
              "%s", out);
    cr_assert(has_line(out, "more: tillmesh sale list --since 42"), "%s", out);
    free(out);
}

Test(cli_render, number_formats)
{
    char b[64];
    tm_cli_fmt_duration(0, b, sizeof b);
    cr_assert_str_eq(b, "0s");
    tm_cli_fmt_duration(59.9, b, sizeof b);
    cr_assert_str_eq(b, "59s");
    tm_cli_fmt_duration(125, b, sizeof b);
    cr_assert_str_eq(b, "2m 05s");
    tm_cli_fmt_duration(90061, b, sizeof b);
    cr_assert_str_eq(b, "1d 01h");
    tm_cli_fmt_duration(-1, b, sizeof b);
    cr_assert_str_eq(b, "?");
    tm_cli_fmt_ago_ms(400, b, sizeof b);
    cr_assert_str_eq(b, "0.4s ago");
    tm_cli_fmt_ago_ms(12345, b, sizeof b);
    cr_assert_str_eq(b, "12s ago");
    tm_cli_fmt_ago_ms(-5, b, sizeof b);
    cr_assert_str_eq(b, "?");
    tm_cli_fmt_money(1299, "EUR", b, sizeof b);
    cr_assert_str_eq(b, "12.99 EUR");
    tm_cli_fmt_money(-5, "EUR", b, sizeof b);
    cr_assert_str_eq(b, "-0.05 EUR");
    tm_cli_fmt_money(12990, "CLP", b, sizeof b);
    cr_assert_str_eq(b, "12990 CLP");
    tm_cli_fmt_money(1234, "KWD", b, sizeof b);
    cr_assert_str_eq(b, "1.234 KWD");
    tm_cli_fmt_money(INT64_MIN, "P D", b, sizeof b);
    cr_assert_str_eq(b, "-92233720368547758.08 P D");
    tm_cli_fmt_unix(0, b, sizeof b);
    cr_assert_str_eq(b, "1970-01-01 00:00:00Z");
    tm_cli_fmt_unix(-1, b, sizeof b);
    cr_assert_str_eq(b, "?");
}

Test(catalogue, csv_quotes_and_defuses_formulas)
{
    static const char page[] =
        "{\"products\":[{\"sku\":\"A1\",\"name\":\"Pan, amasado \\\"grande\\\"\",\"uom\":\"unit\","
        "\"unit_price\":1500,\"tax_rate\":1900,\"barcodes\":[\"78\",\"79\"],\"active\":true,"
        "\"version\":7},{\"sku\":\"B2\",\"name\":\"=HYPERLINK(1)\",\"uom\":\"kg\","
        "\"unit_price\":0,\"tax_rate\":0,\"barcodes\":[],\"active\":false,\"version\":8}]}";
    char *buf = NULL, last[64] = "";
    size_t len = 0, n = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(tm_cli_render_products(page, strlen(page), 1, f, last, sizeof last, &n),
                 TM_CLI_R_OK);
    fclose(f);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(last, "B2", "the next page starts after the last sku");
    cr_assert_str_eq(buf, "A1,\"Pan, amasado \"\"grande\"\"\",unit,1500,1900,true,7,78 79\n"
                          "B2,\"'=HYPERLINK(1)\",kg,0,0,false,8,\n");
    free(buf);
    f = open_memstream(&buf, &len);
    cr_assert_eq(tm_cli_render_products("{}", 2, 0, f, last, sizeof last, &n), TM_CLI_R_BADJSON);
    fclose(f);
    free(buf);
}

Test(cli_render, a_restored_till_gets_a_note)
{
    char *t = status_text("{\"api_version\":1,\"trust\":{\"quota_hit\":false,\"restores\":1,"
                          "\"restore_message\":\"1 till(s) of this store were restored from a "
                          "backup\"}}");
    cr_assert_not_null(strstr(t, "NOTE: 1 till(s) of this store were restored from a backup\n"),
                       "%s", t);
    free(t);
    t = status_text("{\"api_version\":1,\"trust\":{\"restore_message\":null}}");
    cr_assert_null(strstr(t, "NOTE"), "%s", t);
    free(t);
}
