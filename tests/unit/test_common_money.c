/*
 * test_common_money.c - currency table, exact decimal parsing, JSON doubles
 * through their shortest decimal form, and formatting.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "money.h"

/* ------------------------------------------------------------ helpers */

typedef struct {
    const char *s;
    int digits;
    cp_err_t err;
    int64_t minor; /* when err == CP_OK */
} parse_case_t;

static void run_parse_cases(const parse_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t minor = -777;
        cp_err_t err = cp_money_parse(cases[i].s, strlen(cases[i].s),
                                      cases[i].digits, &minor);

        if (err != cases[i].err)
            fail_msg("'%s' digits %d: got %s, want %s", cases[i].s,
                     cases[i].digits, cp_err_name(err),
                     cp_err_name(cases[i].err));
        if (err == CP_OK && minor != cases[i].minor)
            fail_msg("'%s' digits %d: got %lld, want %lld", cases[i].s,
                     cases[i].digits, (long long)minor,
                     (long long)cases[i].minor);
        if (err != CP_OK)
            assert_int_equal(minor, -777); /* untouched on error */
    }
}

static cp_err_t from_double(double v, int digits, int64_t *minor)
{
    *minor = -777;
    return cp_money_from_double(v, digits, minor);
}

static const char *fmt(int64_t minor, int digits, char *buf, size_t size)
{
    size_t n = cp_money_format(minor, digits, buf, size);

    assert_int_equal(n, strlen(buf));
    return buf;
}

/* ---------------------------------------------------------- currencies */

static void test_currency_digits_table(void **state)
{
    static const char *const two[] = {
        "USD", "EUR", "GBP", "CNY", "INR", "CHF", "CAD", "AUD", "NZD", "SEK",
        "NOK", "DKK", "PLN", "CZK", "HUF", "BRL", "MXN", "ZAR", "SGD", "HKD",
        "TWD", "RUB", "TRY", "AED", "SAR", "ILS", "THB", "IDR", "MYR", "PHP"};
    static const char *const zero[] = {"JPY", "KRW", "VND", "CLP", "ISK"};
    static const char *const three[] = {"KWD", "BHD", "OMR", "JOD", "TND"};

    (void)state;
    for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
        assert_int_equal(cp_currency_digits(two[i]), 2);
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
        assert_int_equal(cp_currency_digits(zero[i]), 0);
    for (size_t i = 0; i < sizeof(three) / sizeof(three[0]); i++)
        assert_int_equal(cp_currency_digits(three[i]), 3);
}

static void test_currency_unknown(void **state)
{
    (void)state;
    assert_int_equal(cp_currency_digits("XXX"), -1);
    assert_int_equal(cp_currency_digits("usd"), -1);
    assert_int_equal(cp_currency_digits("USDX"), -1);
    assert_int_equal(cp_currency_digits("US"), -1);
    assert_int_equal(cp_currency_digits(""), -1);
    assert_int_equal(cp_currency_digits(NULL), -1);
}

/* -------------------------------------------------------------- parse */

static void test_parse_valid(void **state)
{
    static const parse_case_t cases[] = {
        {"0", 2, CP_OK, 0},        {"0.5", 2, CP_OK, 50},
        {"19.90", 2, CP_OK, 1990}, {"19.9", 2, CP_OK, 1990},
        {"0.05", 2, CP_OK, 5},     {"123", 2, CP_OK, 12300},
        {"01.5", 2, CP_OK, 150},   {"00", 2, CP_OK, 0},
        {"0.00", 2, CP_OK, 0},     {"0000000000000000000001.5", 2, CP_OK, 150},
        {"1500", 0, CP_OK, 1500},  {"1.234", 3, CP_OK, 1234},
        {"0.001", 3, CP_OK, 1},    {"7", 3, CP_OK, 7000},
    };
    (void)state;
    run_parse_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_malformed(void **state)
{
    static const parse_case_t cases[] = {
        {"", 2, CP_EPARSE, 0},       {".5", 2, CP_EPARSE, 0},
        {"5.", 2, CP_EPARSE, 0},     {"-1", 2, CP_EPARSE, 0},
        {"+1", 2, CP_EPARSE, 0},     {"-0", 2, CP_EPARSE, 0},
        {"1e3", 2, CP_EPARSE, 0},    {"1.5e3", 2, CP_EPARSE, 0},
        {"1E3", 2, CP_EPARSE, 0},    {" 1", 2, CP_EPARSE, 0},
        {"1 ", 2, CP_EPARSE, 0},     {"1.2.3", 2, CP_EPARSE, 0},
        {"1,50", 2, CP_EPARSE, 0},   {"0x10", 2, CP_EPARSE, 0},
        {".", 2, CP_EPARSE, 0},      {"abc", 2, CP_EPARSE, 0},
        {"1.", 0, CP_EPARSE, 0},     {"NaN", 2, CP_EPARSE, 0},
        {"1.234x", 2, CP_EPARSE, 0}, /* malformed beats over-precise */
    };
    (void)state;
    run_parse_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_over_precise(void **state)
{
    static const parse_case_t cases[] = {
        {"1.230", 2, CP_EPRECISION, 0}, /* trailing zero still counts */
        {"19.999", 2, CP_EPRECISION, 0},
        {"0.001", 2, CP_EPRECISION, 0},
        {"1.0", 0, CP_EPRECISION, 0},
        {"1.5", 0, CP_EPRECISION, 0},
        {"0.0001", 3, CP_EPRECISION, 0},
        /* over-precise beats too large */
        {"99999999999999999.999", 2, CP_EPRECISION, 0},
    };
    (void)state;
    run_parse_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_range_boundary(void **state)
{
    static const parse_case_t cases[] = {
        {"1000000000000000", 2, CP_OK, 100000000000000000LL},
        {"1000000000000000.00", 2, CP_OK, 100000000000000000LL},
        {"999999999999999.99", 2, CP_OK, 99999999999999999LL},
        {"1000000000000000.000", 3, CP_OK, 1000000000000000000LL},
        {"1000000000000000", 0, CP_OK, 1000000000000000LL},
        {"0001000000000000000", 2, CP_OK, 100000000000000000LL},
        {"1000000000000000.01", 2, CP_ERANGE, 0},
        {"1000000000000000.001", 3, CP_ERANGE, 0},
        {"1000000000000001", 2, CP_ERANGE, 0},
        {"9999999999999999", 0, CP_ERANGE, 0},
        {"99999999999999999999999999", 2, CP_ERANGE, 0},
    };
    (void)state;
    run_parse_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_reads_exactly_len(void **state)
{
    int64_t minor = 0;

    (void)state;
    assert_int_equal(cp_money_parse("19.90xyz", 5, 2, &minor), CP_OK);
    assert_int_equal(minor, 1990);
    assert_int_equal(cp_money_parse("12345", 2, 2, &minor), CP_OK);
    assert_int_equal(minor, 1200);
    assert_int_equal(cp_money_parse("19.", 3, 2, &minor), CP_EPARSE);
    assert_int_equal(cp_money_parse("5", 0, 2, &minor), CP_EPARSE);
}

static void test_parse_bad_digits(void **state)
{
    int64_t minor = 0;

    (void)state;
    assert_int_equal(cp_money_parse("1", 1, -1, &minor), CP_EINVAL);
    assert_int_equal(cp_money_parse("1", 1, CP_MONEY_MAX_DIGITS + 1, &minor),
                     CP_EINVAL);
    assert_int_equal(cp_money_from_double(1.0, -1, &minor), CP_EINVAL);
    assert_int_equal(cp_money_from_double(1.0, 4, &minor), CP_EINVAL);
}

/* ------------------------------------------------------------- doubles */

static void test_from_double_exact(void **state)
{
    int64_t m;

    (void)state;
    assert_int_equal(from_double(19.9, 2, &m), CP_OK);
    assert_int_equal(m, 1990);
    assert_int_equal(from_double(19.90, 2, &m), CP_OK);
    assert_int_equal(m, 1990);
    assert_int_equal(from_double(0.0, 2, &m), CP_OK);
    assert_int_equal(m, 0);
    assert_int_equal(from_double(0.05, 2, &m), CP_OK);
    assert_int_equal(m, 5);
    assert_int_equal(from_double(123456.78, 2, &m), CP_OK);
    assert_int_equal(m, 12345678);
    assert_int_equal(from_double(1234567890123.45, 2, &m), CP_OK);
    assert_int_equal(m, 123456789012345LL);
    assert_int_equal(from_double(12, 0, &m), CP_OK);
    assert_int_equal(m, 12);
    assert_int_equal(from_double(0.001, 3, &m), CP_OK);
    assert_int_equal(m, 1);
}

static void test_from_double_exponents_expanded(void **state)
{
    int64_t m;

    (void)state;
    assert_int_equal(from_double(1e2, 2, &m), CP_OK); /* "100" */
    assert_int_equal(m, 10000);
    assert_int_equal(from_double(1.5e-1, 2, &m), CP_OK); /* "0.15" */
    assert_int_equal(m, 15);
    assert_int_equal(from_double(1e-2, 2, &m), CP_OK); /* "0.01" */
    assert_int_equal(m, 1);
    assert_int_equal(from_double(2.5e10, 0, &m), CP_OK);
    assert_int_equal(m, 25000000000LL);
    assert_int_equal(from_double(1e15, 2, &m), CP_OK);
    assert_int_equal(m, 100000000000000000LL);
    assert_int_equal(from_double(1e15, 3, &m), CP_OK);
    assert_int_equal(m, 1000000000000000000LL);
}

static void test_from_double_over_precise(void **state)
{
    volatile double a = 0.1, b = 0.2; /* computed at run time */
    int64_t m;

    (void)state;
    assert_int_equal(from_double(0.30000000000000004, 2, &m), CP_EPRECISION);
    assert_int_equal(from_double(a + b, 2, &m), CP_EPRECISION);
    assert_int_equal(from_double(19.999, 2, &m), CP_EPRECISION);
    assert_int_equal(from_double(0.001, 2, &m), CP_EPRECISION);
    assert_int_equal(from_double(1.5, 0, &m), CP_EPRECISION);
    assert_int_equal(from_double(5e-324, 2, &m), CP_EPRECISION);
    assert_int_equal(from_double(1e-30, 3, &m), CP_EPRECISION);
    assert_int_equal(m, -777);
}

static void test_from_double_rejects(void **state)
{
    int64_t m;

    (void)state;
    assert_int_equal(from_double(-1.0, 2, &m), CP_ERANGE);
    assert_int_equal(from_double(-0.01, 2, &m), CP_ERANGE);
    assert_int_equal(from_double(NAN, 2, &m), CP_EPARSE);
    assert_int_equal(from_double(INFINITY, 2, &m), CP_EPARSE);
    assert_int_equal(from_double(-INFINITY, 2, &m), CP_EPARSE);
    assert_int_equal(from_double(1e15 + 0.25, 2, &m), CP_ERANGE);
    assert_int_equal(from_double(1e16, 2, &m), CP_ERANGE);
    assert_int_equal(from_double(1e300, 2, &m), CP_ERANGE);
    assert_int_equal(from_double(1.7976931348623157e308, 0, &m), CP_ERANGE);
    assert_int_equal(m, -777);
}

static void test_from_double_negative_zero(void **state)
{
    int64_t m;

    (void)state;
    assert_int_equal(from_double(-0.0, 2, &m), CP_OK);
    assert_int_equal(m, 0);
}

/* ---------------------------------------------------------- formatting */

static void test_format_values(void **state)
{
    char buf[32];

    (void)state;
    assert_string_equal(fmt(1990, 2, buf, sizeof(buf)), "19.90");
    assert_string_equal(fmt(-5, 2, buf, sizeof(buf)), "-0.05");
    assert_string_equal(fmt(1500, 0, buf, sizeof(buf)), "1500");
    assert_string_equal(fmt(-1500, 0, buf, sizeof(buf)), "-1500");
    assert_string_equal(fmt(0, 2, buf, sizeof(buf)), "0.00");
    assert_string_equal(fmt(0, 0, buf, sizeof(buf)), "0");
    assert_string_equal(fmt(1, 3, buf, sizeof(buf)), "0.001");
    assert_string_equal(fmt(10000, 2, buf, sizeof(buf)), "100.00");
    assert_string_equal(fmt(100000000000000000LL, 2, buf, sizeof(buf)),
                        "1000000000000000.00");
    assert_string_equal(fmt(INT64_MAX, 0, buf, sizeof(buf)),
                        "9223372036854775807");
    assert_string_equal(fmt(INT64_MIN, 2, buf, sizeof(buf)),
                        "-92233720368547758.08");
}

static void test_format_buffer_size(void **state)
{
    char buf[8];

    (void)state;
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(cp_money_format(1990, 2, buf, 5), 0);
    assert_int_equal(buf[0], 'x'); /* nothing written when too small */
    assert_int_equal(cp_money_format(1990, 2, buf, 6), 5);
    assert_string_equal(buf, "19.90");
    assert_int_equal(cp_money_format(1, 2, buf, 0), 0);
    assert_int_equal(cp_money_format(1, 19, buf, sizeof(buf)), 0);
    assert_int_equal(cp_money_format(1, -1, buf, sizeof(buf)), 0);
}

static void test_format_parse_round_trip(void **state)
{
    static const int64_t values[] = {
        0, 1, 9, 10, 99, 100, 1990, 123456789, 100000000000000000LL};
    char buf[32];

    (void)state;
    for (int digits = 0; digits <= CP_MONEY_MAX_DIGITS; digits++) {
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            int64_t back = -1;
            size_t n = cp_money_format(values[i], digits, buf, sizeof(buf));

            if (values[i] == 100000000000000000LL && digits < 2)
                continue; /* over 10^15 major units: out of range */
            assert_int_equal(cp_money_parse(buf, n, digits, &back), CP_OK);
            assert_int_equal(back, values[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_currency_digits_table),
        cmocka_unit_test(test_currency_unknown),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_over_precise),
        cmocka_unit_test(test_parse_range_boundary),
        cmocka_unit_test(test_parse_reads_exactly_len),
        cmocka_unit_test(test_parse_bad_digits),
        cmocka_unit_test(test_from_double_exact),
        cmocka_unit_test(test_from_double_exponents_expanded),
        cmocka_unit_test(test_from_double_over_precise),
        cmocka_unit_test(test_from_double_rejects),
        cmocka_unit_test(test_from_double_negative_zero),
        cmocka_unit_test(test_format_values),
        cmocka_unit_test(test_format_buffer_size),
        cmocka_unit_test(test_format_parse_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
