/*
 * money.c - exact decimal money: ISO 4217 minor units, parsing decimals
 * into integer minor units, JSON doubles through their shortest decimal
 * form, and formatting back.
 *
 * No floating-point arithmetic touches an amount: a double is only turned
 * into the decimal text a person would have written, and that text is
 * parsed like any other.
 */
#include "money.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ currencies */

typedef struct {
    char code[4];
    int digits;
} currency_t;

/* Minor units per ISO 4217 (list one, as published by SIX). Kept sorted
 * only for readability; lookups are linear over a few dozen entries. */
static const currency_t currencies[] = {
    {"AED", 2}, {"AUD", 2}, {"BHD", 3}, {"BRL", 2}, {"CAD", 2}, {"CHF", 2},
    {"CLP", 0}, {"CNY", 2}, {"CZK", 2}, {"DKK", 2}, {"EUR", 2}, {"GBP", 2},
    {"HKD", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"ISK", 0},
    {"JOD", 3}, {"JPY", 0}, {"KRW", 0}, {"KWD", 3}, {"MXN", 2}, {"MYR", 2},
    {"NOK", 2}, {"NZD", 2}, {"OMR", 3}, {"PHP", 2}, {"PLN", 2}, {"RUB", 2},
    {"SAR", 2}, {"SEK", 2}, {"SGD", 2}, {"THB", 2}, {"TND", 3}, {"TRY", 2},
    {"TWD", 2}, {"USD", 2}, {"VND", 0}, {"ZAR", 2},
};

int cp_currency_digits(const char *code)
{
    if (code == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++) {
        if (strcmp(currencies[i].code, code) == 0)
            return currencies[i].digits;
    }
    return -1;
}

/* --------------------------------------------------------------- parsing */

/* 10^i for i = 0..18, written by the powers' exponent for easy checking. */
/* clang-format off */
static const int64_t pow10_i64[] = {
    1LL,                    /* 0 */
    10LL,
    100LL,
    1000LL,
    10000LL,
    100000LL,               /* 5 */
    1000000LL,
    10000000LL,
    100000000LL,
    1000000000LL,
    10000000000LL,          /* 10 */
    100000000000LL,
    1000000000000LL,
    10000000000000LL,
    100000000000000LL,
    1000000000000000LL,     /* 15 */
    10000000000000000LL,
    100000000000000000LL,
    1000000000000000000LL,  /* 18 */
};
/* clang-format on */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Number of digits at s[0..len), stopping at the first non-digit. */
static size_t span_digits(const char *s, size_t len)
{
    size_t n = 0;

    while (n < len && is_digit(s[n]))
        n++;
    return n;
}

/* Value of n decimal digits; the caller guarantees n <= 18 (no overflow). */
static int64_t digits_value(const char *s, size_t n)
{
    int64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

cp_err_t cp_money_parse(const char *s, size_t len, int digits,
                        int64_t *minor_out)
{
    size_t int_len, frac_len = 0;
    const char *frac = NULL;

    if (digits < 0 || digits > CP_MONEY_MAX_DIGITS)
        return CP_EINVAL;
    int_len = span_digits(s, len);
    if (int_len == 0)
        return CP_EPARSE; /* empty, sign, '.5', spaces, ... */
    if (int_len < len) {
        if (s[int_len] != '.')
            return CP_EPARSE;
        frac = s + int_len + 1;
        frac_len = span_digits(frac, len - int_len - 1);
        if (frac_len == 0 || int_len + 1 + frac_len != len)
            return CP_EPARSE; /* '5.', '1.2e3', '1.2.3' */
    }
    if (frac_len > (size_t)digits)
        return CP_EPRECISION;

    /* Leading zeros carry no value; past 16 significant integer digits
     * the amount is above 10^15 whatever follows, and checking that before
     * multiplying keeps the arithmetic below 2^63. */
    while (int_len > 1 && *s == '0') {
        s++;
        int_len--;
    }
    if (int_len > 16)
        return CP_ERANGE;

    int64_t minor = digits_value(s, int_len) * pow10_i64[digits];
    if (frac_len > 0)
        minor += digits_value(frac, frac_len) * pow10_i64[digits - frac_len];
    if (minor > CP_MONEY_MAX_MAJOR * pow10_i64[digits])
        return CP_ERANGE;
    *minor_out = minor;
    return CP_OK;
}

/* ----------------------------------------------------- doubles (JSON) */

/* Shortest "%.*e" form of v (1..17 significant digits) that strtod reads
 * back as exactly v: the decimal a JSON producer most likely wrote. */
static void shortest_e(double v, char *buf, size_t size)
{
    for (int prec = 0; prec < 17; prec++) {
        snprintf(buf, size, "%.*e", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
    /* 17 significant digits always round-trip an IEEE double. */
    snprintf(buf, size, "%.16e", v);
}

/* Expands "d.ddde[+-]XX" into plain "ddd.ddd" in out. Returns CP_OK, or
 * CP_ERANGE / CP_EPRECISION when the plain form would be absurdly long:
 * those amounts fail the exact parse anyway (more than 10^15, or more than
 * CP_MONEY_MAX_DIGITS decimals), so the answer is the same. */
static cp_err_t expand_exponent(const char *e_form, char *out, size_t size)
{
    char mant[24];
    size_t n = 0, o = 0;
    const char *e = strchr(e_form, 'e');
    long exp10 = strtol(e + 1, NULL, 10);

    for (const char *p = e_form; p < e; p++) {
        if (is_digit(*p))
            mant[n++] = *p;
    }
    while (n > 1 && mant[n - 1] == '0')
        n--; /* "1.500000e+00" -> "15" */
    if (exp10 > 20)
        return CP_ERANGE;
    if (exp10 < -20)
        return CP_EPRECISION;

    if (exp10 < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (long i = 0; i < -exp10 - 1; i++)
            out[o++] = '0';
        memcpy(out + o, mant, n);
        o += n;
    } else {
        size_t int_digits = (size_t)exp10 + 1;

        for (size_t i = 0; i < int_digits; i++)
            out[o++] = i < n ? mant[i] : '0';
        if (n > int_digits) {
            out[o++] = '.';
            memcpy(out + o, mant + int_digits, n - int_digits);
            o += n - int_digits;
        }
    }
    (void)size; /* sized by the caller for 20 + 1 + 20 + 17 characters */
    out[o] = '\0';
    return CP_OK;
}

cp_err_t cp_money_from_double(double v, int digits, int64_t *minor_out)
{
    char e_form[40], plain[64];
    cp_err_t err;

    if (digits < 0 || digits > CP_MONEY_MAX_DIGITS)
        return CP_EINVAL;
    if (isnan(v) || isinf(v))
        return CP_EPARSE;
    if (v < 0)
        return CP_ERANGE;
    if (v == 0)
        v = 0.0; /* -0.0 is zero, not a negative amount */

    shortest_e(v, e_form, sizeof(e_form));
    err = expand_exponent(e_form, plain, sizeof(plain));
    if (err != CP_OK)
        return err;
    return cp_money_parse(plain, strlen(plain), digits, minor_out);
}

/* ------------------------------------------------------------ formatting */

size_t cp_money_format(int64_t minor, int digits, char *buf, size_t size)
{
    char tmp[48];
    int n;

    if (digits < 0 || digits > 18)
        return 0;
    /* The magnitude as unsigned so INT64_MIN has one too. */
    uint64_t mag = minor < 0 ? 0 - (uint64_t)minor : (uint64_t)minor;
    uint64_t scale = (uint64_t)pow10_i64[digits];
    const char *sign = minor < 0 ? "-" : "";

    if (digits == 0)
        n = snprintf(tmp, sizeof(tmp), "%s%llu", sign, (unsigned long long)mag);
    else
        n = snprintf(tmp, sizeof(tmp), "%s%llu.%0*llu", sign,
                     (unsigned long long)(mag / scale), digits,
                     (unsigned long long)(mag % scale));
    if (n < 0 || (size_t)n >= size)
        return 0;
    memcpy(buf, tmp, (size_t)n + 1);
    return (size_t)n;
}
