/*
 * buf.h - a growable byte buffer for building output JSON without trees.
 *
 * A cp_buf_t is a value embedded by its user; cp_buf_reset keeps the memory
 * so a buffer reused per batch stops allocating once warm. On allocation
 * failure a buffer becomes "failed": later appends are no-ops and
 * cp_buf_failed() returns 1 until cp_buf_reset.
 */
#ifndef CP_BUF_H
#define CP_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct cp_buf_s {
    char *data; /* always NUL-terminated; a static "" (cap 0) until the
                   first append; after a failure it holds what was appended
                   before it */
    size_t len;
    size_t cap;
    int failed;
} cp_buf_t;

void cp_buf_init(cp_buf_t *b);
void cp_buf_free(cp_buf_t *b);  /* frees data; b may be reused after init */
void cp_buf_reset(cp_buf_t *b); /* len = 0, keeps capacity, clears failed */
int cp_buf_failed(const cp_buf_t *b);

void cp_buf_append(cp_buf_t *b, const void *data, size_t len);
void cp_buf_puts(cp_buf_t *b, const char *s);
void cp_buf_printf(cp_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal with quotes: escapes '"', '\\' and
 * control characters (\b \f \n \r \t, others < 0x20 as \u00xx with
 * lower-case hex); 0x7f and bytes >= 0x80 are copied as-is (inputs are
 * validated UTF-8). s may be NULL when len is 0. */
void cp_buf_json_str(cp_buf_t *b, const char *s, size_t len);
void cp_buf_i64(cp_buf_t *b, int64_t v);

#endif
