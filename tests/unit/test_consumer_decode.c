/*
 * test_consumer_decode.c - the decoder against every case in
 * tests/cases/decode/ (key, value, expected class), plus exact decoded
 * values of valid events and the oversize limit.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decode.h"
#include "hash.h"

#define CASES "../cases/decode"

static cp_tz_t *tz;

static cp_decode_params_t params(void)
{
    cp_decode_params_t p = {65536, "USD", 2, tz};
    return p;
}

/* Reads a whole file; returns NULL if it does not exist. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void run_case(const char *dir, int *checked)
{
    size_t klen = 0, vlen = 0, clen = 0;
    char *key = slurp(dir, "key", &klen);
    char *value = slurp(dir, "value", &vlen);
    char *cls = slurp(dir, "class", &clen);
    assert_non_null(value);
    assert_non_null(cls);
    while (clen && (cls[clen - 1] == '\n'))
        clen--;
    cls[clen] = '\0';

    cp_decode_params_t p = params();
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_order_in_t out;
    char msg[256];
    cp_reject_t r =
        cp_decode_order(&p, key, klen, value, vlen, &a, &out, msg, sizeof(msg));
    if (strcmp(cp_reject_class(r), cls) != 0)
        fail_msg("case %s: expected %s, got %s (%s)", dir, cls,
                 cp_reject_class(r), msg);
    if (r != CP_REJECT_NONE)
        assert_true(strlen(msg) > 0);
    cp_arena_free(&a);
    free(key);
    free(value);
    free(cls);
    (*checked)++;
}

static void test_all_cases(void **state)
{
    (void)state;
    DIR *d = opendir(CASES);
    assert_non_null(d);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", CASES, e->d_name);
        run_case(dir, &checked);
    }
    closedir(d);
    assert_true(checked >= 30);
}

static cp_reject_t decode_str(const char *key, const char *value,
                              cp_order_in_t *out, cp_arena_t *a)
{
    cp_decode_params_t p = params();
    char msg[256];
    return cp_decode_order(&p, key, key ? strlen(key) : 0, value, strlen(value),
                           a, out, msg, sizeof(msg));
}

static void test_valid_values(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_order_in_t out;
    assert_int_equal(
        decode_str("c-1",
                   "{\"event_id\":\"e-1\",\"type\":\"order.refunded\","
                   "\"customer_id\":\"c-1\",\"occurred_at\":"
                   "\"2024-03-01T00:15:00.999+01:00\",\"order_id\":\"o-1\","
                   "\"amount\":19.9,\"currency\":\"USD\"}",
                   &out, &a),
        CP_REJECT_NONE);
    assert_int_equal(out.ev.type, CP_EV_ORDER_REFUNDED);
    assert_int_equal(out.ev.amount, 1990);
    /* 2024-02-29T23:15:00.999Z */
    assert_int_equal(out.ev.occurred_ms, 1709248500999LL);
    assert_int_equal(out.ev.occurred_day, 19782); /* 2024-02-29 in UTC */
    assert_string_equal(out.customer_id, "c-1");
    assert_int_equal(out.customer_id_len, 3);
    assert_string_equal(out.event_id, "e-1");
    assert_true(out.ev.event_id_hash == cp_hash_fnv1a64("e-1", 3));
    assert_true(out.ev.order_id_hash == cp_hash_fnv1a64("o-1", 3));
    cp_arena_free(&a);
}

static void test_integer_amount_scaled(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_order_in_t out;
    assert_int_equal(
        decode_str("k",
                   "{\"event_id\":\"e\",\"type\":\"order.placed\","
                   "\"customer_id\":\"k\",\"occurred_at\":"
                   "\"1970-01-01T00:00:00Z\",\"order_id\":\"o\","
                   "\"amount\":1000000000000000,\"currency\":\"USD\"}",
                   &out, &a),
        CP_REJECT_NONE);
    assert_int_equal(out.ev.amount, 100000000000000000LL);
    assert_int_equal(out.ev.occurred_ms, 0);
    cp_arena_free(&a);
}

static void test_oversize(void **state)
{
    (void)state;
    cp_decode_params_t p = params();
    p.max_bytes = 32;
    const char *v = "{\"event_id\":\"e-1\",\"type\":\"order.placed\","
                    "\"customer_id\":\"c-1\"}";
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_order_in_t out;
    char msg[256];
    /* Checked first: even a null key does not change the class. */
    assert_int_equal(
        cp_decode_order(&p, NULL, 0, v, strlen(v), &a, &out, msg, sizeof(msg)),
        CP_REJECT_OVERSIZE);
    p.max_bytes = strlen(v);
    assert_int_equal(
        cp_decode_order(&p, "c-1", 3, v, strlen(v), &a, &out, msg, sizeof(msg)),
        CP_REJECT_MISSING_FIELD);
    cp_arena_free(&a);
}

static void test_class_names(void **state)
{
    (void)state;
    assert_string_equal(cp_reject_class(CP_REJECT_KEY_MISMATCH),
                        "key_mismatch");
    assert_string_equal(cp_reject_class(CP_REJECT_STATE_UNREADABLE),
                        "state_unreadable");
    assert_string_equal(cp_reject_class((cp_reject_t)999), "unknown");
}

static int setup(void **state)
{
    (void)state;
    char err[128];
    tz = cp_tz_new("UTC", err, sizeof(err));
    return tz ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cp_tz_free(tz);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_cases),
        cmocka_unit_test(test_valid_values),
        cmocka_unit_test(test_integer_amount_scaled),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_class_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
