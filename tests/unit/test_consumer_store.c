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
static const char *const seg_names[] = {"vip", "de_buyers", "idle"};
static cp_store_ctx_t ctx;

static cp_err_t put(cp_stored_t *s, cp_arena_t *a, const char *f, const char *v)
{
    char err[128];
    return cp_store_parse_field(s, f, strlen(f), v, strlen(v), &ctx, a, err,
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
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", "cp:c:{k}", 8, eps, 2,
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
    assert_pair(&av, "lv", "2");
    /* layout-1 order entries keep their form (day unknown) */
    assert_int_equal(find_arg(&av, "b"), -1);
    cp_arena_free(&a);
}

/* Every layout-2 field reads back and is written back byte for byte. */
static void test_layout2_roundtrip(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_stored_init(&s);
    const char *fields[][2] = {
        {"v", "3"},
        {"lv", "2"},
        {"o", "2"},
        {"m", "2500"},
        {"q", "5"},
        {"n", "9"},
        {"f", "1709287200000"},
        {"l", "1709373600000"},
        {"b", "1"},
        {"s", "important_keep"},
        {"sq", "champions"},
        {"sl", "new"},
        {"se", "medium"},
        {"ss", "at_risk"},
        {"sv", "potential"},
        {"sc", "vip,idle"},
        {"g", "7.2500000000000009:1709370000000"},
        {"gc", "1,2,3,0,1,0"},
        {"k", "4,1,1,37.5,1,1.5,1709300000000,2,1709310000000,7,3,6,"
              "1709320000000"},
        {"yw", "19700"},
        {"a:country", "DE"},
        {"a:is_strategic", "true"},
        {"e", "00000000000000ff"},
        {"r", "00000000000000aa:1500:19783,00000000000000bb:1000:19784"},
    };
    size_t nf = sizeof(fields) / sizeof(fields[0]);
    for (size_t i = 0; i < nf; i++)
        if (put(&s, &a, fields[i][0], fields[i][1]) != CP_OK)
            fail_msg("field %s=%s refused", fields[i][0], fields[i][1]);
    assert_int_equal(s.layout, 2);
    assert_int_equal(s.st.events, 9);
    assert_int_equal(s.st.repeat_days, 1);
    assert_int_equal(s.st.first_day, 19783);
    assert_int_equal(s.st.rfmq, CP_RFMSEG_CHAMPIONS);
    assert_int_equal(s.st.stage, CP_LC_NEW);
    assert_int_equal(s.st.eng, CP_ENG_MEDIUM);
    assert_int_equal(s.st.sat, CP_SAT_AT_RISK);
    assert_int_equal(s.st.tier, CP_TIER_POTENTIAL);
    assert_true(s.st.custom == 5); /* vip (0) and idle (2) */
    assert_true(s.st.engagement.score == 7.2500000000000009);
    assert_int_equal(s.st.browse_n[2], 3);
    assert_int_equal(s.st.support.open_tickets, 1);
    assert_true(s.st.support.complaints.score == 1.5);
    assert_int_equal(s.st.support.csat_last, 2);
    assert_int_equal(s.st.support.nps_last, 6);
    assert_int_equal(s.st.won_back_day, 19700);
    assert_int_equal(s.st.strategic, 1);
    assert_int_equal(s.st.orders_mem[1].day, 19784);
    const cp_sattr_t *at = cp_store_attr(&s, "country", 7);
    assert_non_null(at);
    assert_int_equal(at->value_len, 2);

    /* an attribute removed, the custom segments left */
    assert_int_equal(cp_store_attr_set(&s, "country", 7, NULL, 0, &a), CP_OK);
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", "cp:c:{z}", 8, NULL,
                                         0, "cp:pop", NULL, &a, &av),
                     CP_OK);
    for (size_t i = 0; i < nf; i++) {
        if (!strcmp(fields[i][0], "v") || !strcmp(fields[i][0], "a:country"))
            continue;
        if (!strcmp(fields[i][0], "a:is_strategic")) {
            /* not dirty: not written again */
            assert_int_equal(find_arg(&av, "a:is_strategic"), -1);
            continue;
        }
        assert_pair(&av, fields[i][0], fields[i][1]);
    }
    assert_pair(&av, "v", "4");
    /* deletions: ndel 1, a:country */
    const char *head[] = {"EVALSHA", "sha", "1", "cp:c:{z}", "3",
                          "0",       "0",   "1", "a:country"};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(av.argvlen[i], strlen(head[i]));
        assert_memory_equal(av.argv[i], head[i], strlen(head[i]));
    }

    /* levels and custom memberships gone: their fields are deleted */
    s.st.stage = CP_LC_NONE;
    s.st.custom = 0;
    s.st.repeat_days = 0;
    s.st.segment = CP_RFM8_NONE;
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", "cp:c:{z}", 8, NULL,
                                         0, "cp:pop", NULL, &a, &av),
                     CP_OK);
    const char *head2[] = {"EVALSHA", "sha", "1", "cp:c:{z}",  "3",
                           "0",       "0",   "5", "a:country", "s",
                           "b",       "sl",  "sc"};
    for (int i = 0; i < 13; i++) {
        assert_int_equal(av.argvlen[i], strlen(head2[i]));
        assert_memory_equal(av.argv[i], head2[i], strlen(head2[i]));
    }
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
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", "cp:c:{z}", 8, NULL,
                                         0, "cp:pop", NULL, &a, &av),
                     CP_OK);
    /* numkeys 1, expected version 0, no epoch, no population, nothing to
     * delete (a new customer had no s) */
    const char *head[] = {"EVALSHA", "sha", "1", "cp:c:{z}", "0",
                          "0",       "0",   "0", "v"};
    for (int i = 0; i < 9; i++)
        assert_memory_equal(av.argv[i], head[i], strlen(head[i]));
    assert_int_equal(find_arg(&av, "f"), -1);
    assert_int_equal(find_arg(&av, "x"), -1);
    cp_arena_free(&a);
}

/* The attribute limit counts attributes held, not entries removed in the
 * batch; removing an unknown name adds nothing. */
static void test_attr_limit(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_stored_init(&s);
    char name[16];
    for (int i = 0; i < CP_STORE_ATTRS_MAX; i++) {
        int n = snprintf(name, sizeof(name), "a%02d", i);
        assert_int_equal(cp_store_attr_set(&s, name, (size_t)n, "v", 1, &a),
                         CP_OK);
    }
    assert_int_equal(cp_store_attr_set(&s, "zz", 2, "v", 1, &a), CP_ERANGE);
    assert_int_equal(cp_store_attr_set(&s, "nope", 4, NULL, 0, &a), CP_OK);
    assert_int_equal(s.n_attrs, CP_STORE_ATTRS_MAX);
    assert_int_equal(cp_store_attr_set(&s, "a00", 3, NULL, 0, &a), CP_OK);
    assert_int_equal(cp_store_attr_set(&s, "zz", 2, "new", 3, &a), CP_OK);
    assert_int_equal(cp_store_attr_set(&s, "yy", 2, "v", 1, &a), CP_ERANGE);
    /* a removed name set again reuses its entry */
    assert_int_equal(cp_store_attr_set(&s, "zz", 2, NULL, 0, &a), CP_OK);
    assert_int_equal(cp_store_attr_set(&s, "a00", 3, "back", 4, &a), CP_OK);
    assert_int_equal(s.n_attrs, CP_STORE_ATTRS_MAX + 1);
    cp_arena_free(&a);
}

static void test_corrupt_fields(void **state)
{
    (void)state;
    const char *bad[][2] = {{"v", "x"},
                            {"o", "-1"},
                            {"m", "1.5"},
                            {"s", "vip"},
                            {"e", "0123"},
                            {"e", "zz00000000000000"},
                            {"r", "00aa:1"},
                            {"r", "00000000000000aa:-5"},
                            {"w:t", "1"},
                            {"w:t:x", "1"},
                            {"q", ""},
                            {"l", "99999999999999999999"},
                            {"lv", "0"},
                            {"n", "-1"},
                            {"b", "x"},
                            {"sl", "vip"},
                            {"se", ""},
                            {"sc", ""},
                            {"sc", "a,,b"},
                            {"g", "1.5"},
                            {"g", "nan:5"},
                            {"g", "-1:5"},
                            {"gc", "1,2,3"},
                            {"gc", "1,2,3,4,5,-6"},
                            {"k", "1,0,0,0,0,0,0,0,0,0,0,-1"},
                            {"k", "0,0,0,0,0,0,0,0,0,0,0,-1,0"},
                            {"k", "1,0,0,0,0,0,0,9,0,0,0,-1,0"},
                            {"yw", "-1"},
                            {"r", "00000000000000aa:5:x"},
                            {"r", "00000000000000aa:c"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cp_arena_t a;
        cp_arena_init(&a, 0);
        static cp_stored_t s;
        cp_stored_init(&s);
        char err[128];
        cp_err_t rc =
            cp_store_parse_field(&s, bad[i][0], strlen(bad[i][0]), bad[i][1],
                                 strlen(bad[i][1]), &ctx, &a, err, sizeof(err));
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
    ctx.tz = tz;
    ctx.segments = seg_names;
    ctx.n_segments = 3;
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
        cmocka_unit_test(test_layout2_roundtrip),
        cmocka_unit_test(test_attr_limit),
        cmocka_unit_test(test_corrupt_fields),
        cmocka_unit_test(test_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
