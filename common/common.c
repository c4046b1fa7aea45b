/* common.c - error table, logging, hex, UUID checks. Reads no clock and
 * draws no randomness (random.c, clock_wall.c do): the core calls these. */
#include "tm_common.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *tm_strerror(int rc)
{
    switch (rc) {
#define TM_ERR_MSG(name, value, msg)                                                               \
    case value: return msg;
        TM_ERRORS(TM_ERR_MSG)
#undef TM_ERR_MSG
    }
    return "unknown error";
}

const char *tm_errname(int rc)
{
    switch (rc) {
#define TM_ERR_NAME(name, value, msg)                                                              \
    case value: return #name;
        TM_ERRORS(TM_ERR_NAME)
#undef TM_ERR_NAME
    }
    return "TM_E?";
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int tm_log_level_parse(const char *s, tm_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (tm_log_level_t)i;
            return TM_OK;
        }
    }
    return TM_EINVAL;
}

void tm_log_msg(const tm_log_t *log, tm_log_level_t level, const char *fmt, ...)
{
    tm_log_level_t max = log ? log->level : TM_LOG_INFO;
    if (level > max)
        return;
    char when[40] = "";
    if (log && log->now_ms) {
        uint64_t ms = log->now_ms(log->now_ctx);
        time_t secs = (time_t)(ms / 1000);
        struct tm tmv;
        if (gmtime_r(&secs, &tmv)) {
            size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tmv);
            snprintf(when + n, sizeof when - n, ".%03uZ ", (unsigned)(ms % 1000));
        }
    }
    /* One fprintf per line so that lines from several processes sharing a
     * log file do not interleave mid-line. */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s%s%s%s: %s\n", when, log && log->tag[0] ? "[" : "",
            log && log->tag[0] ? log->tag : "", log && log->tag[0] ? "] " : "", level_names[level],
            msg);
}

void tm_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int tm_unhex(const char *in, uint8_t *out, size_t n)
{
    if (!in || strlen(in) != 2 * n)
        return TM_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)in[2 * i]);
        int lo = hexval((unsigned char)in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return TM_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return TM_OK;
}

int tm_uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (hexval((unsigned char)s[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

size_t tm_strlcpy(char *dst, const char *src, size_t dstsz)
{
    size_t len = strlen(src);
    if (dstsz) {
        size_t n = len < dstsz - 1 ? len : dstsz - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}
