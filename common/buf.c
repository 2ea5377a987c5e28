/*
 * buf.c - growable byte buffer with JSON string escaping.
 *
 * An unallocated buffer points at a shared static "" so that data is a
 * valid C string from cp_buf_init on, without allocating for it.
 */
#include "buf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char buf_empty[1] = "";

void cp_buf_init(cp_buf_t *b)
{
    b->data = buf_empty;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

void cp_buf_free(cp_buf_t *b)
{
    if (b->cap > 0)
        free(b->data);
    cp_buf_init(b);
}

void cp_buf_reset(cp_buf_t *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->cap > 0)
        b->data[0] = '\0';
}

int cp_buf_failed(const cp_buf_t *b)
{
    return b->failed;
}

/* Makes room for extra bytes plus the NUL; 0 on success. On failure the
 * buffer is marked failed and keeps its old contents. */
static int buf_reserve(cp_buf_t *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (b->failed)
        return -1;
    if (extra > SIZE_MAX - b->len - 1)
        goto fail;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->cap > 0 ? b->data : NULL, cap);
    if (p == NULL)
        goto fail;
    if (b->cap == 0)
        p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return -1;
}

void cp_buf_append(cp_buf_t *b, const void *data, size_t len)
{
    if (buf_reserve(b, len) != 0)
        return;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void cp_buf_puts(cp_buf_t *b, const char *s)
{
    cp_buf_append(b, s, strlen(s));
}

void cp_buf_printf(cp_buf_t *b, const char *fmt, ...)
{
    va_list ap, ap2;
    int n;

    if (b->failed)
        return;
    /* Try the spare capacity first; most appends fit and need one pass. */
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(b->cap > 0 ? b->data + b->len : NULL,
                  b->cap > 0 ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
    } else if (b->cap > 0 && (size_t)n < b->cap - b->len) {
        b->len += (size_t)n;
    } else if (buf_reserve(b, (size_t)n) == 0) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    if (b->failed && b->cap > 0)
        b->data[b->len] = '\0'; /* drop a partial first-pass write */
    va_end(ap2);
}

/* Escape for byte c, or NULL when c is copied as-is. */
static const char *json_escape(unsigned char c, char tmp[7])
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        break;
    }
    if (c >= 0x20)
        return NULL;
    snprintf(tmp, 7, "\\u%04x", c);
    return tmp;
}

void cp_buf_json_str(cp_buf_t *b, const char *s, size_t len)
{
    size_t run = 0; /* start of the pending unescaped run */
    char tmp[7];

    cp_buf_append(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        const char *esc = json_escape((unsigned char)s[i], tmp);

        if (esc == NULL)
            continue;
        if (i > run)
            cp_buf_append(b, s + run, i - run);
        cp_buf_puts(b, esc);
        run = i + 1;
    }
    if (len > run)
        cp_buf_append(b, s + run, len - run);
    cp_buf_append(b, "\"", 1);
}

void cp_buf_i64(cp_buf_t *b, int64_t v)
{
    cp_buf_printf(b, "%" PRId64, v);
}
