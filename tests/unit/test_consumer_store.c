/*
 * test_consumer_store.c - the customer hash encoding: parsing every field,
 * the write script's argument layout, and refusal of corrupt fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

static cp_tz_t *tz;

static cp_err_t put(cp_stored_t *s, cp_arena_t *a, const char *f, const char *v)
{
    char err[128];
    return cp_store_parse_field(s, f, strlen(f), v, strlen(v), tz, a, err,
                                sizeof(err));
}

/* Index of the argument equal to s, or -1. */
static int find_arg(const cp_argv_t *av, const char *s)
{
    for (int i = 0; i < av->argc; i++)
        if (av->argvlen[i] == strlen(s) && !memcmp(av->argv[i], s, strlen(s)))
            return i;
    return -1;
}

static void assert_pair(const cp_argv_t *av, const char *f, const char *v)
{
    int i = find_arg(av, f);
    if (i < 0)
        fail_msg("field %s not written", f);
    assert_int_equal(av->argvlen[i + 1], strlen(v));
    assert_memory_equal(av->argv[i + 1], v, strlen(v));
}

static void test_parse_and_write(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "v", "7"), CP_OK);
    assert_int_equal(put(&s, &a, "o", "2"), CP_OK);
    assert_int_equal(put(&s, &a, "m", "17000"), CP_OK);
    assert_int_equal(put(&s, &a, "f", "1709287200000"), CP_OK);
    assert_int_equal(put(&s, &a, "l", "1709373600000"), CP_OK);
    assert_int_equal(put(&s, &a, "s", "important_keep"), CP_OK);
    assert_int_equal(put(&s, &a, "q", "2"), CP_OK);
    assert_int_equal(put(&s, &a, "e", "00000000000000ff0123456789abcdef"),
                     CP_OK);
    assert_int_equal(put(&s, &a, "r",
                         "00000000000000aa:15000,"
                         "00000000000000bb:0:c"),
                     CP_OK);
    assert_int_equal(put(&s, &a, "w:customer.orders:2", "41"), CP_OK);
    assert_int_equal(put(&s, &a, "future_field", "ignored"), CP_OK);

    assert_true(s.exists);
    assert_int_equal(s.st.version, 7);
    assert_int_equal(s.st.orders, 2);
    assert_int_equal(s.st.monetary, 17000);
    assert_int_equal(s.st.last_day, 19784); /* 2024-03-02 */
    assert_int_equal(s.st.segment, CP_RFM8_IMPORTANT_KEEP);
    assert_int_equal(s.st.n_event_ids, 2);
    assert_true(s.st.event_ids[1] == 0x0123456789abcdefULL);
    assert_int_equal(s.st.n_orders_mem, 2);
    assert_true(s.st.orders_mem[0].id_hash == 0xaa);
    assert_int_equal(s.st.orders_mem[0].net, 15000);
    assert_int_equal(s.st.orders_mem[1].cancelled, 1);
    cp_wm_t *wm = cp_store_wm(&s, "customer.orders", 2);
    assert_non_null(wm);
    assert_int_equal(wm->offset, 41);
    assert_int_equal(wm->dirty, 0);

    assert_int_equal(cp_store_wm_set(&s, "customer.orders", 2, 42, &a), CP_OK);
    assert_int_equal(
        cp_store_outbox_add(&s, CP_OUTBOX_SEGMENTS, "{}", 2, 3, &a), CP_OK);
    cp_pop_t delta = {0, 1, 500, 0};
    cp_argv_t av = {0};
    char fp[CP_FP_SIZE];
    /* FNV-1a 64 of "{}": the fingerprint a message with that value and
     * timestamp 1700000000000 gets. */
    cp_store_fingerprint(1700000000000, "{}", 2, fp);
    assert_string_equal(fp, "1700000000000:08f44b07b5901a25");
    cp_store_fingerprint(-1, "", 0, fp);
    assert_string_equal(fp, "-1:cbf29ce484222325");
    cp_epoch_ref_t eps[2] = {
        {"cp:ep:customer.orders:2", 1700000000123, 42, "1:00000000000000aa"},
        {"cp:ep:customer.browsing:0", 5, 7, "2:00000000000000bb"}};
    assert_int_equal(cp_store_write_args(&s, "sha", "cp:c:{k}", 8, eps, 2,
                                         "cp:pop", &delta, &a, &av),
                     CP_OK);
    const char *head[] = {"EVALSHA",
                          "sha",
                          "4",
                          "cp:c:{k}",
                          "cp:ep:customer.orders:2",
                          "cp:ep:customer.browsing:0",
                          "cp:pop",
                          "7",
                          "2",
                          "1700000000123",
                          "42",
                          "1:00000000000000aa",
                          "5",
                          "7",
                          "2:00000000000000bb",
                          "4",
                          "0",
                          "1",
                          "500",
                          "0",
                          "0"};
    for (int i = 0; i < 21; i++) {
        assert_int_equal(av.argvlen[i], strlen(head[i]));
        assert_memory_equal(av.argv[i], head[i], strlen(head[i]));
    }
    assert_pair(&av, "v", "8");
    assert_pair(&av, "o", "2");
    assert_pair(&av, "m", "17000");
    assert_pair(&av, "f", "1709287200000");
    assert_pair(&av, "l", "1709373600000");
    assert_pair(&av, "s", "important_keep");
    assert_pair(&av, "q", "2");
    assert_pair(&av, "e", "00000000000000ff0123456789abcdef");
    assert_pair(&av, "r", "00000000000000aa:15000,00000000000000bb:0:c");
    assert_pair(&av, "w:customer.orders:2", "42");
    assert_pair(&av, "x", "s\t{}\n");
    assert_pair(&av, "xq", "3");
    cp_arena_free(&a);
}

static void test_fixed_mode_and_no_segment(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_stored_init(&s);
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, "sha", "k", 1, NULL, 0, "cp:pop",
                                         NULL, &a, &av),
                     CP_OK);
    /* numkeys 1, expected version 0, no epoch, no population, delete s */
    const char *head[] = {"EVALSHA", "sha", "1", "k", "0", "0", "0", "1", "s"};
    for (int i = 0; i < 9; i++)
        assert_memory_equal(av.argv[i], head[i], strlen(head[i]));
    assert_int_equal(find_arg(&av, "f"), -1);
    assert_int_equal(find_arg(&av, "x"), -1);
    cp_arena_free(&a);
}

static void test_corrupt_fields(void **state)
{
    (void)state;
    const char *bad[][2] = {{"v", "x"},      {"o", "-1"},
                            {"m", "1.5"},    {"s", "vip"},
                            {"e", "0123"},   {"e", "zz00000000000000"},
                            {"r", "00aa:1"}, {"r", "00000000000000aa:-5"},
                            {"w:t", "1"},    {"w:t:x", "1"},
                            {"q", ""},       {"l", "99999999999999999999"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cp_arena_t a;
        cp_arena_init(&a, 0);
        static cp_stored_t s;
        cp_stored_init(&s);
        char err[128];
        cp_err_t rc =
            cp_store_parse_field(&s, bad[i][0], strlen(bad[i][0]), bad[i][1],
                                 strlen(bad[i][1]), tz, &a, err, sizeof(err));
        if (rc != CP_EPARSE)
            fail_msg("field %s=%s accepted", bad[i][0], bad[i][1]);
        assert_non_null(strstr(err, bad[i][0]));
        cp_arena_free(&a);
    }
}

static void test_key(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    size_t len = 0;
    char *k = cp_store_key("cp:", "c-{x}-9", 7, &a, &len);
    assert_string_equal(k, "cp:c:{c-{x}-9}");
    assert_int_equal(len, 14);
    k = cp_store_key("", "\xe5\xae\xa2", 3, &a, &len); /* 客 */
    assert_string_equal(k, "c:{\xe5\xae\xa2}");
    assert_int_equal(len, 7);
    cp_arena_free(&a);
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
        cmocka_unit_test(test_parse_and_write),
        cmocka_unit_test(test_fixed_mode_and_no_segment),
        cmocka_unit_test(test_corrupt_fields),
        cmocka_unit_test(test_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
