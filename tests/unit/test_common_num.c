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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
