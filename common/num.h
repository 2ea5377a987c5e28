/*
 * num.h - canonical decimal integers, as Redis stores what HINCRBY and the
 * write scripts wrote ("-?(0|[1-9][0-9]*)"), read back strictly at the
 * edge: " 7", "+7", "07", "7x" or an overflow is not 7.
 */
#ifndef CP_NUM_H
#define CP_NUM_H

#include <stddef.h>
#include <stdint.h>

#include "cp_err.h"

/* Parses exactly len bytes of s (need not be NUL-terminated) as a
 * canonical decimal int64: an optional '-', then "0" or digits without a
 * leading zero ("-0" reads as 0). Returns CP_OK, CP_EPARSE (empty, another
 * sign, a leading zero, a byte that is not a digit) or CP_ERANGE (digits
 * outside int64). *out is written only on CP_OK. */
cp_err_t cp_num_parse_i64(const char *s, size_t len, int64_t *out);

/* Unsigned LEB128: 7 bits a byte, least significant group first, the
 * high bit set on every byte but the last. cp_uvarint_put writes x at p
 * (cp_uvarint_size(x) <= 10 bytes) and returns the bytes written.
 * cp_uvarint_get reads a canonical value below 2^64 (the shortest form:
 * no final zero byte after the first; at most 10 bytes) from p[0..len)
 * and returns the bytes read, or 0 (truncated, overlong, too large):
 * canonical forms make decoding and encoding inverse. */
size_t cp_uvarint_size(uint64_t x);
size_t cp_uvarint_put(unsigned char *p, uint64_t x);
size_t cp_uvarint_get(const unsigned char *p, size_t len, uint64_t *out);

#endif
