/*
 * num.c - canonical decimal integers; see num.h.
 */
#include "num.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

cp_err_t cp_num_parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[32];
    size_t neg = len > 0 && s[0] == '-';
    if (len == neg || (s[neg] == '0' && len > neg + 1))
        return CP_EPARSE;
    for (size_t i = neg; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return CP_EPARSE;
    if (len >= sizeof(buf))
        return CP_ERANGE;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    long long x = strtoll(buf, NULL, 10);
    if (errno)
        return CP_ERANGE;
    *out = x;
    return CP_OK;
}

size_t cp_uvarint_size(uint64_t x)
{
    size_t n = 1;
    while (x >= 0x80) {
        x >>= 7;
        n++;
    }
    return n;
}

size_t cp_uvarint_put(unsigned char *p, uint64_t x)
{
    size_t n = 0;
    while (x >= 0x80) {
        p[n++] = (unsigned char)(x | 0x80);
        x >>= 7;
    }
    p[n++] = (unsigned char)x;
    return n;
}

size_t cp_uvarint_get(const unsigned char *p, size_t len, uint64_t *out)
{
    uint64_t x = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        if (i == 9 && p[i] > 1)
            return 0;
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (p[i] == 0 && i > 0)
                return 0;
            *out = x;
            return i + 1;
        }
    }
    return 0;
}
