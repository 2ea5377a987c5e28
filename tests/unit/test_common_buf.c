/*
 * test_common_buf.c - growable buffer: growth, printf, reset, the failed
 * state, integers and JSON string escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void test_init_is_empty_string(void **state)
{
    cp_buf_t b;

    (void)state;
    cp_buf_init(&b);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(cp_buf_failed(&b), 0);
    cp_buf_reset(&b); /* no allocation needed for either */
    cp_buf_free(&b);
    assert_string_equal(b.data, "");
}

static void test_append_grows(void **state)
{
    char expect[1001];
    cp_buf_t b;

    (void)state;
    cp_buf_init(&b);
    for (int i = 0; i < 1000; i++) {
        expect[i] = (char)('a' + i % 26);
        cp_buf_append(&b, &expect[i], 1);
    }
    expect[1000] = '\0';
    assert_int_equal(b.len, 1000);
    assert_true(b.cap > 1000);
    assert_string_equal(b.data, expect);
    cp_buf_append(&b, NULL, 0); /* nothing, and no crash */
    assert_int_equal(b.len, 1000);
    cp_buf_free(&b);
}

static void test_puts_and_embedded_nul(void **state)
{
    cp_buf_t b;

    (void)state;
    cp_buf_init(&b);
    cp_buf_puts(&b, "ab");
    cp_buf_append(&b, "c\0d", 3);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "abc\0d", 6); /* NUL after len too */
    cp_buf_free(&b);
}

static void test_printf(void **state)
{
    char big[300];
    cp_buf_t b;

    (void)state;
    cp_buf_init(&b);
    cp_buf_printf(&b, "%s=%d", "port", 6379);
    assert_string_equal(b.data, "port=6379");
    cp_buf_printf(&b, ",%05.1f", 2.25); /* fits the spare capacity */
    assert_string_equal(b.data, "port=6379,002.2");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cp_buf_printf(&b, "[%s]", big); /* needs a second pass after growing */
    assert_int_equal(b.len, 15 + 301);
    assert_int_equal(b.data[15], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    cp_buf_printf(&b, "%s", ""); /* empty output */
    assert_int_equal(b.len, 316);
    cp_buf_free(&b);
}

static void test_reset_keeps_capacity(void **state)
{
    cp_buf_t b;
    size_t cap;
    char *data;

    (void)state;
    cp_buf_init(&b);
    cp_buf_puts(&b, "some text that needs memory");
    cap = b.cap;
    data = b.data;
    cp_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(b.cap, cap);
    cp_buf_puts(&b, "again");
    assert_ptr_equal(b.data, data); /* warm buffer: no new allocation */
    assert_string_equal(b.data, "again");
    cp_buf_free(&b);
}

static void test_failed_state(void **state)
{
    cp_buf_t b;

    (void)state;
    cp_buf_init(&b);
    cp_buf_puts(&b, "kept");
    cp_buf_append(&b, "x", SIZE_MAX); /* cannot be satisfied */
    assert_int_equal(cp_buf_failed(&b), 1);
    assert_string_equal(b.data, "kept");
    cp_buf_puts(&b, "ignored");
    cp_buf_printf(&b, "%d", 42);
    cp_buf_json_str(&b, "q", 1);
    cp_buf_i64(&b, 7);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "kept");
    cp_buf_reset(&b);
    assert_int_equal(cp_buf_failed(&b), 0);
    cp_buf_puts(&b, "ok");
    assert_string_equal(b.data, "ok");
    cp_buf_free(&b);
}

static void test_i64(void **state)
{
    cp_buf_t b;

    (void)state;
    cp_buf_init(&b);
    cp_buf_i64(&b, 0);
    cp_buf_puts(&b, " ");
    cp_buf_i64(&b, INT64_MIN);
    cp_buf_puts(&b, " ");
    cp_buf_i64(&b, INT64_MAX);
    assert_string_equal(b.data, "0 -9223372036854775808 9223372036854775807");
    cp_buf_free(&b);
}

static void json(cp_buf_t *b, const char *s, size_t len)
{
    cp_buf_reset(b);
    cp_buf_json_str(b, s, len);
}

static void test_json_str_escapes(void **state)
{
    cp_buf_t b;

    (void)state;
    cp_buf_init(&b);
    json(&b, "plain", 5);
    assert_string_equal(b.data, "\"plain\"");
    json(&b, "a\"b\\c", 5);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\"");
    json(&b, "\b\f\n\r\t", 5);
    assert_string_equal(b.data, "\"\\b\\f\\n\\r\\t\"");
    json(&b, "\x01\x1f\x0b", 3);
    assert_string_equal(b.data, "\"\\u0001\\u001f\\u000b\"");
    json(&b, "a\0b", 3);
    assert_string_equal(b.data, "\"a\\u0000b\"");
    json(&b, "\x7f/", 2); /* DEL and '/' are left as they are */
    assert_string_equal(b.data, "\"\x7f/\"");
    cp_buf_free(&b);
}

static void test_json_str_utf8_and_empty(void **state)
{
    cp_buf_t b;

    (void)state;
    cp_buf_init(&b);
    json(&b, "重要价值客户 é", strlen("重要价值客户 é"));
    assert_string_equal(b.data, "\"重要价值客户 é\"");
    json(&b, "", 0);
    assert_string_equal(b.data, "\"\"");
    json(&b, NULL, 0);
    assert_string_equal(b.data, "\"\"");
    json(&b, "abcdef", 3); /* exactly len bytes */
    assert_string_equal(b.data, "\"abc\"");
    cp_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty_string),
        cmocka_unit_test(test_append_grows),
        cmocka_unit_test(test_puts_and_embedded_nul),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_reset_keeps_capacity),
        cmocka_unit_test(test_failed_state),
        cmocka_unit_test(test_i64),
        cmocka_unit_test(test_json_str_escapes),
        cmocka_unit_test(test_json_str_utf8_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
