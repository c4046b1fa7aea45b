/*
 * client.c - the I/O side of the CLI: where the daemon is, HTTP calls to it
 * (libcurl, with timeouts on every call) and reading request bodies.
 */
#include <curl/curl.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

#define DEFAULT_API        "127.0.0.1:7780"
#define DEFAULT_CONFIG     "/etc/tillmesh/tillmeshd.conf"
#define CONNECT_TIMEOUT_MS 2000L
#define TOTAL_TIMEOUT_MS   10000L
#define MAX_RESPONSE       ((size_t)64 * 1024 * 1024)
#define MAX_BODY_IN        ((size_t)64 * 1024 * 1024)

/* ---- the API address ----------------------------------------------------- */

int tm_cli_parse_api(const char *in, char *out, size_t outsz)
{
    const char *colon = strrchr(in, ':');
    const char *port = colon ? colon + 1 : in;
    char host[256];
    size_t hlen = colon ? (size_t)(colon - in) : 0;
    if (hlen >= sizeof host)
        return -1;
    memcpy(host, in, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || errno || p < 1 || p > 65535)
        return -1;
    if (hlen == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    else if (strcmp(host, "[::]") == 0)
        snprintf(host, sizeof host, "[::1]");
    else if (strchr(host, ':') && host[0] != '[')
        return -1; /* IPv6 needs brackets: [::1]:7780 */
    for (const char *h = host; *h; h++)
        if (*h <= ' ' || *h == '/' || *h == '@' || *h == '?' || *h == '#' || *h == 0x7f)
            return -1;
    int n = snprintf(out, outsz, "%s:%ld", host, p);
    return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

typedef struct {
    char value[300];
    int found;
} ini_find_t;

static int on_ini_line(void *user, const char *section, const char *name, const char *value)
{
    ini_find_t *f = user;
    if (strcmp(section, "node") == 0 && strcmp(name, "api_listen") == 0) {
        size_t n = strlen(value);
        if (n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n - 1] == value[0]) {
            value++;
            n -= 2;
        }
        if (n < sizeof f->value) {
            memcpy(f->value, value, n);
            f->value[n] = '\0';
            f->found = 1;
        }
    }
    return 1;
}

/* api_listen from a config file: 1 found, 0 not there, exit code on error. */
static int api_from_config(const char *path, int explicit_path, char *out, size_t outsz)
{
    ini_find_t f = {.found = 0};
    int rc = ini_parse(path, on_ini_line, &f);
    if (rc < 0 && !explicit_path)
        return 0; /* the default file is optional */
    if (rc == -1) {
        fprintf(stderr, "tillmesh: cannot read config %s: %s\n", path, strerror(errno));
        return -TM_CLI_EXIT_LOCAL;
    }
    if (rc < 0) {
        fprintf(stderr, "tillmesh: cannot read config %s: out of memory\n", path);
        return -TM_CLI_EXIT_LOCAL;
    }
    if (rc > 0 && !f.found && explicit_path)
        fprintf(stderr, "tillmesh: warning: %s line %d: syntax error\n", path, rc);
    if (!f.found)
        return 0;
    snprintf(out, outsz, "%s", f.value);
    return 1;
}

int tm_cli_resolve_api(tm_cli_t *c, const char *flag, const char *config)
{
    char raw[300] = "";
    const char *env = getenv("TILLMESH_API");
    if (flag) {
        snprintf(raw, sizeof raw, "%s", flag);
        c->api_source = "--api";
    } else if (env && *env) {
        snprintf(raw, sizeof raw, "%s", env);
        c->api_source = "TILLMESH_API";
    } else {
        const char *path = config ? config : DEFAULT_CONFIG;
        int rc = api_from_config(path, config != NULL, raw, sizeof raw);
        if (rc < 0)
            return -rc;
        c->api_source =
            rc ? (config ? "api_listen in --config file" : "api_listen in " DEFAULT_CONFIG)
               : "the default";
        if (!rc)
            snprintf(raw, sizeof raw, "%s", DEFAULT_API);
    }
    if (tm_cli_parse_api(raw, c->api, sizeof c->api) != 0) {
        fprintf(stderr,
                "tillmesh: bad API address '%s' from %s: expected HOST:PORT, "
                "e.g. 127.0.0.1:7780 or [::1]:7780\n",
                raw, c->api_source);
        return flag ? TM_CLI_EXIT_USAGE : TM_CLI_EXIT_LOCAL;
    }
    return TM_CLI_EXIT_OK;
}

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int too_big;
} growbuf_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    growbuf_t *g = user;
    size_t n = size * nmemb;
    if (g->len + n + 1 > MAX_RESPONSE) {
        g->too_big = 1;
        return 0;
    }
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 4096;
        while (cap < g->len + n + 1)
            cap *= 2;
        char *p = realloc(g->p, cap);
        if (!p)
            return 0;
        g->p = p;
        g->cap = cap;
    }
    memcpy(g->p + g->len, data, n);
    g->len += n;
    g->p[g->len] = '\0';
    return n;
}

typedef struct {
    volatile sig_atomic_t *stop;
} stop_ref_t;

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const stop_ref_t *r = user;
    return *r->stop ? 1 : 0;
}

static int setup(CURL *h, const tm_cli_t *c, stop_ref_t *stop, const char *method, const char *path,
                 const char *body, size_t body_len, char *url, size_t urlsz)
{
    snprintf(url, urlsz, "http://%s%s", c->api, path);
    int bad = curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK; /* never via a proxy */
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "tillmesh/" TM_VERSION) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    if (c->stop) {
        bad |= curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_XFERINFODATA, stop) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    }
    if (body) {
        bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK;
    }
    return bad ? -1 : 0;
}

int tm_cli_http(const tm_cli_t *c, const char *method, const char *path, const char *body,
                size_t body_len, tm_cli_resp_t *resp, char *errbuf, size_t errsz)
{
    int rc = TM_CLI_EXIT_LOCAL;
    char url[1024 + 320], cerr[CURL_ERROR_SIZE] = "", msg[CURL_ERROR_SIZE + 400];
    growbuf_t g = {0};
    stop_ref_t stop = {c->stop};
    struct curl_slist *hdrs = NULL;
    memset(resp, 0, sizeof *resp);
    CURL *h = curl_easy_init();
    if (!h || strlen(path) > 1024)
        goto cleanup;
    hdrs = curl_slist_append(NULL, "Accept: application/json");
    if (hdrs && body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (!hdrs || setup(h, c, &stop, method, path, body, body_len, url, sizeof url) != 0 ||
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &g) != CURLE_OK)
        goto cleanup;
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (g.too_big)
            snprintf(cerr, sizeof cerr, "answer larger than %zu bytes", MAX_RESPONSE);
        snprintf(msg, sizeof msg, "tillmesh: cannot reach tillmeshd at %s: %s — is it running?",
                 c->api, cerr[0] ? cerr : curl_easy_strerror(cc));
        if (errbuf)
            snprintf(errbuf, errsz, "%s", msg);
        else
            fprintf(stderr, "%s\n", msg);
        rc = TM_CLI_EXIT_UNREACHABLE;
        goto cleanup;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (!g.p && (g.p = calloc(1, 1)) == NULL)
        goto cleanup;
    resp->body = g.p;
    resp->len = g.len;
    g.p = NULL;
    rc = TM_CLI_EXIT_OK;
cleanup:
    if (rc == TM_CLI_EXIT_LOCAL && !errbuf)
        fprintf(stderr, "tillmesh: cannot make an HTTP request (out of memory?)\n");
    else if (rc == TM_CLI_EXIT_LOCAL)
        snprintf(errbuf, errsz, "tillmesh: cannot make an HTTP request (out of memory?)");
    free(g.p);
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    return rc;
}

void tm_cli_resp_free(tm_cli_resp_t *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

char *tm_cli_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = e ? strdup(e) : NULL;
    curl_free(e);
    return copy;
}

/* ---- request bodies ------------------------------------------------------ */

int tm_cli_read_input(const char *path, char **out, size_t *len)
{
    int rc = TM_CLI_EXIT_LOCAL;
    int is_stdin = !path || strcmp(path, "-") == 0;
    const char *name = is_stdin ? "standard input" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    growbuf_t g = {0};
    char chunk[65536];
    *out = NULL;
    *len = 0;
    if (!f) {
        fprintf(stderr, "tillmesh: cannot open %s: %s\n", name, strerror(errno));
        goto cleanup;
    }
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (g.len + n + 1 > MAX_BODY_IN) {
            fprintf(stderr, "tillmesh: %s is larger than %zu bytes\n", name, MAX_BODY_IN);
            goto cleanup;
        }
        if (on_body(chunk, 1, n, &g) != n) {
            fprintf(stderr, "tillmesh: out of memory reading %s\n", name);
            goto cleanup;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "tillmesh: cannot read %s: %s\n", name, strerror(errno));
        goto cleanup;
    }
    if (!g.p && (g.p = calloc(1, 1)) == NULL)
        goto cleanup;
    *out = g.p;
    *len = g.len;
    g.p = NULL;
    rc = TM_CLI_EXIT_OK;
cleanup:
    free(g.p);
    if (f && !is_stdin)
        fclose(f);
    return rc;
}
