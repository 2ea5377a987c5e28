/*
 * money.h - money as integer minor units, parsed exactly from decimals.
 */
#ifndef CP_MONEY_H
#define CP_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "cp_err.h"

/* Largest accepted amount in major units (10^15). */
#define CP_MONEY_MAX_MAJOR 1000000000000000LL
/* Most minor-unit digits cp_money_parse / cp_money_from_double accept (so
 * that CP_MONEY_MAX_MAJOR in minor units fits an int64_t); other values of
 * `digits` give CP_EINVAL. */
#define CP_MONEY_MAX_DIGITS 3

/* Minor-unit digits of an ISO 4217 code from a built-in table (USD 2, EUR 2,
 * JPY 0, KWD 3, ...); -1 when the code is not in the table. */
int cp_currency_digits(const char *code);

/* Parses a non-negative decimal "123", "123.4", "0.05" (no sign, no
 * exponent, no spaces, at least one digit before an optional '.', at least
 * one after it) into minor units with `digits` decimals.
 * Returns CP_OK, CP_EPARSE (malformed, including a leading '-' or '+'),
 * CP_EPRECISION (more decimals than digits; trailing zeros beyond digits are
 * also refused: "1.230" with digits 2 is over-precise) or CP_ERANGE (more
 * than CP_MONEY_MAX_MAJOR major units; exactly 10^15 is accepted).
 * Leading zeros are accepted ("01.5"). When several apply, CP_EPARSE wins
 * over CP_EPRECISION, which wins over CP_ERANGE. Exactly len bytes are read;
 * s need not be NUL-terminated. *minor_out is written only on CP_OK. */
cp_err_t cp_money_parse(const char *s, size_t len, int digits,
                        int64_t *minor_out);

/* Converts a JSON number (double) through its shortest round-tripping
 * decimal form ("%.*g" with the fewest digits, 1..17, for which strtod gives
 * back v; computed as "%.*e", which has the same significant digits), then
 * as cp_money_parse; exponent forms are expanded first (1e2 -> "100",
 * 1.5e-1 -> "0.15"). Negative values give CP_ERANGE (-0.0 is 0); NaN/inf
 * CP_EPARSE; 0.30000000000000004 with digits 2 is CP_EPRECISION. */
cp_err_t cp_money_from_double(double v, int digits, int64_t *minor_out);

/* Writes minor as a decimal with `digits` decimals ("19.90", "-0.05" for a
 * negative value, "1500" for digits 0); returns the length written (not
 * counting NUL) or 0 when size is too small or digits is outside 0..18. */
size_t cp_money_format(int64_t minor, int digits, char *buf, size_t size);

#endif
