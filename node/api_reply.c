/* api_reply.c - the answers of the local API: queuing a response, the
 * {"error","message"} body, and the small parsers the routes share. Calls
 * nothing else of tm_api (see api_reply.h). */
#include "api_reply.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool tm_api__parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Length of the valid UTF-8 sequence at s, 0 if there is none. */
static size_t s_utf8_len(const unsigned char *s)
{
    size_t n;
    unsigned min;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = c & (0x3fu >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/*
 * Replaces bytes that are not valid UTF-8 with '?', in place. Messages can
 * quote client input and are cut to fixed sizes, possibly inside a
 * character; jansson refuses such a string, which would turn a clear 400 or
 * 422 into a 500.
 */
static void s_utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = s_utf8_len(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

/* ---- responses -------------------------------------------------------- */

enum MHD_Result tm_api__reply(struct MHD_Connection *conn, tm_api_req_t *req, unsigned status,
                              const char *ctype, char *body, const char *hname, const char *hval)
{
    struct MHD_Response *resp = NULL;
    if (body) {
        resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(body);
    }
    if (!resp) {
        char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
        resp = MHD_create_response_from_buffer(sizeof oom - 1, oom, MHD_RESPMEM_MUST_COPY);
        if (!resp)
            return MHD_NO; /* nothing left to answer with: drop the connection */
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        ctype = TM_API_CT_JSON;
        hname = NULL;
        req->err = "internal";
    }
    enum MHD_Result ok = MHD_YES;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        (hname && MHD_add_response_header(resp, hname, hval) != MHD_YES))
        ok = MHD_NO;
    if (ok == MHD_YES)
        ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    req->status = status;
    return ok;
}

enum MHD_Result tm_api__error_hdr(struct MHD_Connection *conn, tm_api_req_t *req, unsigned status,
                                  const char *code, const char *hname, const char *hval,
                                  const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s_utf8_clean(msg);
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", msg);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    req->err = code;
    return tm_api__reply(conn, req, status, TM_API_CT_JSON, body, hname, hval);
}
