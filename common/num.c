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
