/*
 * test_common_num.c - canonical decimal integers (common/num.h): what
 * HINCRBY writes reads back, anything else is refused.
 *
 * Pure unit tests, no services.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "num.h"

static cp_err_t parse(const char *s, int64_t *v)
{
    return cp_num_parse_i64(s, strlen(s), v);
}

static void test_canonical(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(parse("0", &v), CP_OK);
    assert_int_equal(v, 0);
    assert_int_equal(parse("7", &v), CP_OK);
    assert_int_equal(v, 7);
    assert_int_equal(parse("-12", &v), CP_OK);
    assert_int_equal(v, -12);
    assert_int_equal(parse("-0", &v), CP_OK);
    assert_int_equal(v, 0);
    assert_int_equal(parse("9223372036854775807", &v), CP_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(parse("-9223372036854775808", &v), CP_OK);
    assert_true(v == INT64_MIN);
    /* exactly len bytes */
    assert_int_equal(cp_num_parse_i64("123abc", 3, &v), CP_OK);
    assert_int_equal(v, 123);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",   "-", "+7",  " 7",  "7 ",  "07",   "-07",         "00",
        "7x", "x", "1.5", "1e3", "--1", "0x10", "\xe4\xb8\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 42;
        assert_int_equal(parse(bad[i], &v), CP_EPARSE);
        assert_int_equal(v, 42); /* untouched */
    }
    int64_t v = 42;
    assert_int_equal(parse("9223372036854775808", &v), CP_ERANGE);
    assert_int_equal(parse("-9223372036854775809", &v), CP_ERANGE);
    assert_int_equal(parse("123456789012345678901234567890123", &v), CP_ERANGE);
    assert_int_equal(parse("12345678901234567890123456789012x", &v), CP_EPARSE);
    assert_int_equal(v, 42);
    assert_int_equal(cp_num_parse_i64("7", 0, &v), CP_EPARSE);
}

/* LEB128: sizes at the 7-bit boundaries, round trips, canonical forms
 * only. */
static void test_uvarint(void **state)
{
    (void)state;
    const uint64_t xs[] = {
        0, 1, 127, 128, 300, 16383, 16384, ((uint64_t)1 << 63) - 1, UINT64_MAX};
    const size_t sizes[] = {1, 1, 1, 2, 2, 2, 3, 9, 10};
    for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); i++) {
        unsigned char b[10];
        uint64_t got = 0;
        assert_int_equal(cp_uvarint_size(xs[i]), sizes[i]);
        assert_int_equal(cp_uvarint_put(b, xs[i]), sizes[i]);
        assert_int_equal(cp_uvarint_get(b, sizes[i], &got), sizes[i]);
        assert_true(got == xs[i]);
        /* truncated */
        assert_int_equal(cp_uvarint_get(b, sizes[i] - 1, &got), 0);
    }
    const unsigned char b300[] = {0xac, 0x02};
    uint64_t got = 0;
    assert_int_equal(cp_uvarint_get(b300, 2, &got), 2);
    assert_true(got == 300);
    const unsigned char overlong[] = {0x81, 0x00}; /* 1 in two bytes */
    assert_int_equal(cp_uvarint_get(overlong, 2, &got), 0);
    const unsigned char too_big[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff, 0x02};
    assert_int_equal(cp_uvarint_get(too_big, 10, &got), 0);
    const unsigned char eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                    0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(cp_uvarint_get(eleven, 11, &got), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_uvarint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
