/*
 * test_consumer_store.c - the customer hash encoding: parsing every field
 * (layouts 1 to 3), the binary de-duplication memories of layout 3, the
 * outbox key, the write script's argument layout, and refusal of corrupt
 * fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

static cp_tz_t *tz;
static const char *const seg_names[] = {"vip", "de_buyers", "idle"};
static cp_store_ctx_t ctx;

static cp_err_t putn(cp_stored_t *s, cp_arena_t *a, const char *f,
                     const char *v, size_t vlen)
{
    char err[128];
    return cp_store_parse_field(s, f, strlen(f), v, vlen, &ctx, a, err,
                                sizeof(err));
}

static cp_err_t put(cp_stored_t *s, cp_arena_t *a, const char *f, const char *v)
{
    return putn(s, a, f, v, strlen(v));
}

static cp_err_t end(cp_stored_t *s)
{
    char err[128];
    return cp_store_parse_end(s, err, sizeof(err));
}

static const cp_store_keys_t keys_k = {.key = "cp:c:{k}",
                                       .key_len = 8,
                                       .xkey = "cp:x:{k}",
                                       .xkey_len = 8,
                                       .dmark = -1,
                                       .id = "k",
                                       .id_len = 1};
static const cp_store_keys_t keys_z = {.key = "cp:c:{z}",
                                       .key_len = 8,
                                       .xkey = "cp:x:{z}",
                                       .xkey_len = 8,
                                       .dmark = -1,
                                       .id = "z",
                                       .id_len = 1};

/* Index of the argument equal to s, or -1. */
static int find_arg(const cp_argv_t *av, const char *s)
{
    for (int i = 0; i < av->argc; i++)
        if (av->argvlen[i] == strlen(s) && !memcmp(av->argv[i], s, strlen(s)))
            return i;
    return -1;
}

static void assert_pairn(const cp_argv_t *av, const char *f, const char *v,
                         size_t vlen)
{
    int i = find_arg(av, f);
    if (i < 0)
        fail_msg("field %s not written", f);
    assert_int_equal(av->argvlen[i + 1], vlen);
    assert_memory_equal(av->argv[i + 1], v, vlen);
}

static void assert_pair(const cp_argv_t *av, const char *f, const char *v)
{
    assert_pairn(av, f, v, strlen(v));
}

/* The first n arguments are want[]. */
static void assert_head(const cp_argv_t *av, const char *const *want, int n)
{
    assert_true(av->argc >= n);
    for (int i = 0; i < n; i++) {
        if (av->argvlen[i] != strlen(want[i]) ||
            memcmp(av->argv[i], want[i], av->argvlen[i]) != 0)
            fail_msg("argument %d is '%.*s', want '%s'", i, (int)av->argvlen[i],
                     av->argv[i], want[i]);
    }
}

#define LIT(s) s, sizeof(s) - 1

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
    /* an outbox inside the hash, as layout 2 and before kept it */
    assert_int_equal(put(&s, &a, "x", "s\t{\"a\":1}\n"), CP_OK);
    assert_int_equal(put(&s, &a, "xq", "2"), CP_OK);
    assert_int_equal(s.st.n_event_ids, 0); /* decoded at the end */
    assert_int_equal(end(&s), CP_OK);

    assert_true(s.exists);
    assert_int_equal(s.layout, 1);
    assert_true(s.outbox_legacy);
    assert_int_equal(s.outbox_seq, 2);
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
    /* quantile RFM: the customer leaves R bucket 19000 for 19001 */
    cp_store_hist_t hist = {.key = "cp:rq",
                            .n = 2,
                            .fields = {"r:19000", "r:19001"},
                            .deltas = {-1, 1}};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_k, eps, 2,
                                         "cp:pop", &delta, &hist, NULL, &a,
                                         &av),
                     CP_OK);
    /* The legacy outbox leaves the hash (ndel 2: x, xq) and goes, with
     * the new record, into the outbox key (nx 2: x, xq). */
    const char *head[] = {"EVALSHA",
                          "sha",
                          "6",
                          "cp:c:{k}",
                          "cp:x:{k}",
                          "cp:ep:customer.orders:2",
                          "cp:ep:customer.browsing:0",
                          "cp:pop",
                          "cp:rq",
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
                          "2",
                          "r:19000",
                          "-1",
                          "r:19001",
                          "1",
                          "0",
                          "0",
                          "3",
                          "w:customer.orders:2",
                          "x",
                          "xq",
                          "2",
                          "s\t{\"a\":1}\ns\t{}\n",
                          "3",
                          "v",
                          "8"};
    assert_head(&av, head, sizeof(head) / sizeof(head[0]));
    assert_pair(&av, "o", "2");
    assert_pair(&av, "m", "17000");
    assert_pair(&av, "f", "1709287200000");
    assert_pair(&av, "l", "1709373600000");
    assert_pair(&av, "s", "important_keep");
    assert_pair(&av, "q", "2");
    /* layout 3: binary; layout-1 order entries keep their unknown day */
    assert_pairn(&av, "e",
                 LIT("\xff\x00\x00\x00\x00\x00\x00\x00"
                     "\xef\xcd\xab\x89\x67\x45\x23\x01"));
    assert_pairn(&av, "r",
                 LIT("\xaa\x00\x00\x00\x00\x00\x00\x00\x98\x75\x00"
                     "\xbb\x00\x00\x00\x00\x00\x00\x00\x00\x01"));
    /* layout 4: the legacy watermark field deleted (above), its offset in
     * w: topic id 0xf415f85c (FNV-1a 32 of "customer.orders"), partition
     * 2, offset 42 */
    assert_pairn(&av, "w", LIT("\x5c\xf8\x15\xf4\x02\x2a"));
    assert_pair(&av, "lv", "4");
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
    assert_int_equal(end(&s), CP_OK);
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
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    for (size_t i = 0; i < nf; i++) {
        if (!strcmp(fields[i][0], "v") || !strcmp(fields[i][0], "a:country") ||
            !strcmp(fields[i][0], "lv") || !strcmp(fields[i][0], "e") ||
            !strcmp(fields[i][0], "r"))
            continue;
        if (!strcmp(fields[i][0], "a:is_strategic")) {
            /* not dirty: not written again */
            assert_int_equal(find_arg(&av, "a:is_strategic"), -1);
            continue;
        }
        assert_pair(&av, fields[i][0], fields[i][1]);
    }
    assert_pair(&av, "v", "4");
    assert_pair(&av, "lv", "4");
    assert_pairn(&av, "e", LIT("\xff\x00\x00\x00\x00\x00\x00\x00"));
    /* days 19783 (delta from 0) and 19784 (delta 1: one tag byte) */
    assert_pairn(&av, "r",
                 LIT("\xaa\x00\x00\x00\x00\x00\x00\x00\xdc\x0b\x9e\xea\x04"
                     "\xbb\x00\x00\x00\x00\x00\x00\x00\xe8\x07\x06"));
    /* deletions: ndel 1, a:country; no outbox */
    const char *head[] = {"EVALSHA",   "sha", "2", "cp:c:{z}", "cp:x:{z}", "3",
                          "0",         "0",   "0", "0",        "0",        "1",
                          "a:country", "0",   "v", "4"};
    assert_head(&av, head, sizeof(head) / sizeof(head[0]));

    /* levels and custom memberships gone: their fields are deleted */
    s.st.stage = CP_LC_NONE;
    s.st.custom = 0;
    s.st.repeat_days = 0;
    s.st.segment = CP_RFM8_NONE;
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    const char *head2[] = {
        "EVALSHA", "sha", "2", "cp:c:{z}",  "cp:x:{z}", "3", "0",  "0",  "0",
        "0",       "0",   "5", "a:country", "s",        "b", "sl", "sc", "0"};
    assert_head(&av, head2, sizeof(head2) / sizeof(head2[0]));
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
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    /* numkeys 2, expected version 0, no epoch, no population, nothing to
     * delete (a new customer had no s), no outbox */
    const char *head[] = {"EVALSHA", "sha", "2", "cp:c:{z}", "cp:x:{z}",
                          "0",       "0",   "0", "0",        "0",
                          "0",       "0",   "0", "v"};
    assert_head(&av, head, sizeof(head) / sizeof(head[0]));
    assert_int_equal(find_arg(&av, "f"), -1);
    /* empty de-duplication memories are not written */
    assert_int_equal(find_arg(&av, "e"), -1);
    assert_int_equal(find_arg(&av, "r"), -1);
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

/* h: the quantile RFM buckets a customer is counted in. A write that does
 * not track the histogram (fixed mode) leaves h as it is; one that does
 * writes the new buckets, or deletes h when the customer left. */
static void test_hist_field(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "v", "3"), CP_OK);
    assert_int_equal(put(&s, &a, "h", "19783,2,-1"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    assert_int_equal(s.h.in, 1);
    assert_true(s.h.b[0] == 19783 && s.h.b[1] == 2 && s.h.b[2] == -1);

    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_int_equal(find_arg(&av, "h"), -1); /* neither written nor deleted */

    s.h_track = 1;
    s.h_new.in = 1;
    s.h_new.b[0] = 19790;
    s.h_new.b[1] = 3;
    s.h_new.b[2] = 96;
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_pair(&av, "h", "19790,3,96");

    s.h_new.in = 0; /* e.g. the only order cancelled */
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    const char *head[] = {"EVALSHA", "sha", "2", "cp:c:{z}", "cp:x:{z}",
                          "3",       "0",   "0", "0",        "0",
                          "0",       "1",   "h"};
    assert_head(&av, head, sizeof(head) / sizeof(head[0]));
    cp_arena_free(&a);
}

/* z: the first order day's spend; a hash with orders but without z (written
 * before it) reads as unknown (-1) and is written without z. */
static void test_first_spend_field(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "o", "2"), CP_OK);
    assert_int_equal(put(&s, &a, "m", "3000"), CP_OK);
    assert_int_equal(put(&s, &a, "f", "1709287200000"), CP_OK);
    assert_int_equal(put(&s, &a, "l", "1709373600000"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    assert_int_equal(s.st.first_spend, -1);
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_int_equal(find_arg(&av, "z"), -1);

    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "o", "2"), CP_OK);
    assert_int_equal(put(&s, &a, "f", "1709287200000"), CP_OK);
    assert_int_equal(put(&s, &a, "l", "1709373600000"), CP_OK);
    assert_int_equal(put(&s, &a, "z", "1200"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    assert_int_equal(s.st.first_spend, 1200);
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_pair(&av, "z", "1200");
    /* a new customer has no order time: no z */
    cp_stored_init(&s);
    assert_int_equal(end(&s), CP_OK);
    assert_int_equal(s.st.first_spend, 0);
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_int_equal(find_arg(&av, "z"), -1);
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
                            {"r", "00000000000000aa:c"},
                            {"r", "00000000000000aa:5:1099511627777"},
                            {"x", "s\t{}"},
                            {"x", "q\t{}\n"},
                            {"xq", "-1"},
                            {"z", "-1"},
                            {"z", "1.5"},
                            {"h", "1,2"},
                            {"h", "1,2,03"},
                            {"h", "1,2,3,4"},
                            {"h", "1099511627777,1,1"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cp_arena_t a;
        cp_arena_init(&a, 0);
        static cp_stored_t s;
        cp_stored_init(&s);
        char err[128];
        /* e and r (text before layout 3) fail at the end of the hash */
        cp_err_t rc =
            cp_store_parse_field(&s, bad[i][0], strlen(bad[i][0]), bad[i][1],
                                 strlen(bad[i][1]), &ctx, &a, err, sizeof(err));
        if (rc == CP_OK)
            rc = cp_store_parse_end(&s, err, sizeof(err));
        if (rc != CP_EPARSE)
            fail_msg("field %s=%s accepted", bad[i][0], bad[i][1]);
        assert_non_null(strstr(err, bad[i][0]));
        cp_arena_free(&a);
    }
}

/* ---- layout 3: binary e and r ------------------------------------------ */

/* The test's own LEB128 writer, to build inputs independently of store.c. */
static size_t uv(unsigned char *p, uint64_t x)
{
    size_t n = 0;
    for (; x >= 0x80; x >>= 7)
        p[n++] = (unsigned char)(x | 0x80);
    p[n++] = (unsigned char)x;
    return n;
}

/* One r entry: id 0x0101..01 * k, net, tag. */
static size_t r_entry(unsigned char *p, unsigned k, uint64_t net, uint64_t tag)
{
    memset(p, (int)k, 8);
    size_t n = 8 + uv(p + 8, net);
    return n + uv(p + n, tag);
}

static uint64_t lcg(uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 11;
}

/* Random memories encode, decode and encode again to the same bytes:
 * unknown days between known ones, days going back, both day bounds,
 * nets up to INT64_MAX, the full CP_DEDUP_MAX. */
static void test_binary_roundtrip(void **state)
{
    (void)state;
    static cp_state_t st, back;
    static unsigned char buf[CP_DEDUP_MAX * CP_STORE_R_ENTRY_MAX],
        buf2[CP_DEDUP_MAX * CP_STORE_R_ENTRY_MAX];
    uint64_t x = 42;
    for (int round = 0; round < 2000; round++) {
        cp_state_init(&st);
        st.n_event_ids = (int)(lcg(&x) % (CP_DEDUP_MAX + 1));
        for (int i = 0; i < st.n_event_ids; i++)
            st.event_ids[i] = lcg(&x) << 11 ^ lcg(&x);
        st.n_orders_mem =
            round == 0 ? CP_DEDUP_MAX : (int)(lcg(&x) % (CP_DEDUP_MAX + 1));
        for (int i = 0; i < st.n_orders_mem; i++) {
            cp_order_mem_t *o = &st.orders_mem[i];
            uint64_t k = lcg(&x);
            o->id_hash = lcg(&x) << 11 ^ lcg(&x);
            o->net = k % 7 == 0   ? INT64_MAX
                     : k % 7 == 1 ? 0
                                  : (int64_t)(lcg(&x) % 100000);
            o->cancelled = (int)(k >> 3 & 1);
            o->day = k % 5 == 0   ? CP_DAY_UNKNOWN
                     : k % 5 == 1 ? (k & 16 ? 1 : -1) * CP_STORE_DAY_MAX
                                  : 19000 + (int64_t)(lcg(&x) % 2000) - 1000;
        }
        size_t ne = cp_store_encode_e(&st, buf);
        assert_int_equal(ne, (size_t)st.n_event_ids * 8);
        assert_int_equal(cp_store_decode_e(&back, buf, ne), 0);
        assert_int_equal(back.n_event_ids, st.n_event_ids);
        assert_memory_equal(back.event_ids, st.event_ids, ne);
        size_t nr = cp_store_encode_r(&st, buf);
        assert_true(nr <= (size_t)st.n_orders_mem * CP_STORE_R_ENTRY_MAX);
        assert_int_equal(cp_store_decode_r(&back, buf, nr), 0);
        assert_int_equal(back.n_orders_mem, st.n_orders_mem);
        for (int i = 0; i < st.n_orders_mem; i++) {
            assert_true(back.orders_mem[i].id_hash == st.orders_mem[i].id_hash);
            assert_int_equal(back.orders_mem[i].net, st.orders_mem[i].net);
            assert_int_equal(back.orders_mem[i].cancelled,
                             st.orders_mem[i].cancelled);
            assert_true(back.orders_mem[i].day == st.orders_mem[i].day);
        }
        assert_int_equal(cp_store_encode_r(&back, buf2), nr);
        assert_memory_equal(buf2, buf, nr);
    }
}

/* The size that matters for memory: five orders a few days apart with
 * amounts of a few hundred units fit well under Redis' default
 * hash-max-listpack-value (64). */
static void test_binary_size(void **state)
{
    (void)state;
    static cp_state_t st;
    static unsigned char buf[CP_DEDUP_MAX * CP_STORE_R_ENTRY_MAX];
    cp_state_init(&st);
    st.n_orders_mem = 5;
    for (int i = 0; i < 5; i++) {
        st.orders_mem[i].id_hash = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        st.orders_mem[i].net = 29999;
        st.orders_mem[i].day = 19723 + 9 * i;
    }
    /* 8 + 3 (net) + 3 (first day) + 4 * (8 + 3 + 1) */
    assert_int_equal(cp_store_encode_r(&st, buf), 62);
}

/* Layout 4's w: every watermark in one binary field, read back exactly;
 * legacy w:<topic>:<partition> fields merge into it (the greater offset)
 * and are deleted by the write; malformed values are refused. */
static void test_watermarks_w(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_stored_init(&s);
    /* customer.orders (0xf415f85c) partition 0 at 300 (ac 02), partition
     * 200 (c8 01) at 0; then "t" partition 1 at 2^63 - 1 */
    uint32_t t = cp_store_topic_id("t");
    unsigned char w[64] = {0x5c, 0xf8, 0x15, 0xf4, 0x00, 0xac, 0x02,
                           0x5c, 0xf8, 0x15, 0xf4, 0xc8, 0x01, 0x00};
    size_t n = 14;
    for (int b = 0; b < 4; b++)
        w[n++] = (unsigned char)(t >> (8 * b));
    w[n++] = 0x01;
    for (int b = 0; b < 8; b++)
        w[n++] = 0xff;
    w[n++] = 0x7f;
    assert_int_equal(putn(&s, &a, "w", (const char *)w, n), CP_OK);
    /* legacy fields of the same partitions: the greater offset counts */
    assert_int_equal(put(&s, &a, "w:customer.orders:0", "299"), CP_OK);
    assert_int_equal(put(&s, &a, "w:customer.orders:200", "5"), CP_OK);
    assert_int_equal(put(&s, &a, "w:customer.browsing:3", "9"), CP_OK);
    assert_int_equal(put(&s, &a, "lv", "3"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    assert_int_equal(s.n_wms, 4);
    assert_int_equal(cp_store_wm(&s, "customer.orders", 0)->offset, 300);
    assert_int_equal(cp_store_wm(&s, "customer.orders", 200)->offset, 5);
    assert_true(cp_store_wm(&s, "t", 1)->offset == INT64_MAX);
    assert_int_equal(cp_store_wm(&s, "customer.browsing", 3)->offset, 9);
    assert_null(cp_store_wm(&s, "customer.browsing", 0));

    unsigned char out[4 * CP_STORE_W_ENTRY_MAX];
    size_t len = cp_store_encode_w(&s, out);
    assert_int_equal(len, n + 4 + 1 + 1); /* and customer.browsing:3 */
    assert_int_equal(out[13], 0x05);      /* partition 200 at 5 */
    assert_int_equal(cp_store_wm_set(&s, "customer.orders", 200, 0, &a), CP_OK);
    assert_int_equal(cp_store_encode_w(&s, out), len);
    assert_memory_equal(out, w, n); /* read order kept */
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_pairn(&av, "w", (const char *)out, len);
    /* the three legacy fields are deleted */
    const char *head[] = {"EVALSHA",
                          "sha",
                          "2",
                          "cp:c:{z}",
                          "cp:x:{z}",
                          "0",
                          "0",
                          "0",
                          "0",
                          "0",
                          "0",
                          "3",
                          "w:customer.orders:0",
                          "w:customer.orders:200",
                          "w:customer.browsing:3",
                          "0"};
    assert_head(&av, head, sizeof(head) / sizeof(head[0]));

    /* refused: empty, truncated id, missing offset, non-canonical LEB128,
     * partition over INT32_MAX, offset over INT64_MAX, a partition twice */
    static const struct {
        const char *v;
        size_t len;
    } bad[] = {
        {"", 0},
        {"\x5c\xf8\x15", 3},
        {"\x5c\xf8\x15\xf4\x00", 5},
        {"\x5c\xf8\x15\xf4\x80\x00\x01", 7},
        {"\x5c\xf8\x15\xf4\x80\x80\x80\x80\x08\x01", 10},
        {"\x5c\xf8\x15\xf4\x00\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 15},
        {"\x5c\xf8\x15\xf4\x00\x01\x5c\xf8\x15\xf4\x00\x02", 12},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cp_stored_init(&s);
        if (putn(&s, &a, "w", bad[i].v, bad[i].len) != CP_EPARSE)
            fail_msg("bad w %zu accepted", i);
    }
    /* a partition twice in w is refused whatever the field order: here
     * after a legacy field of that partition */
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "w:customer.orders:0", "1"), CP_OK);
    assert_int_equal(putn(&s, &a, "w", bad[6].v, bad[6].len), CP_EPARSE);
    /* a legacy offset that is not a decimal >= 0 */
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "w:customer.orders:0", "-1"), CP_EPARSE);
    /* w holds Kafka positions only */
    assert_int_equal(cp_store_wm_set(&s, "t", -1, 0, &a), CP_EINVAL);
    assert_int_equal(cp_store_wm_set(&s, "t", 0, -1, &a), CP_EINVAL);
    assert_int_equal(s.n_wms, 0);
    cp_arena_free(&a);
}

/* HGETALL returns fields in any order: e and r are decoded by lv, even
 * when lv comes after them. */
static void test_binary_after_lv(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    /* 8 bytes: a binary id of layout 3, nothing a hex form could be */
    cp_stored_init(&s);
    assert_int_equal(putn(&s, &a, "e", LIT("\x01\x00\x00\x00\x00\x00\x00\x80")),
                     CP_OK);
    assert_int_equal(
        putn(&s, &a, "r", LIT("\x07\x00\x00\x00\x00\x00\x00\x00\x05\x00")),
        CP_OK);
    assert_int_equal(put(&s, &a, "lv", "3"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    assert_int_equal(s.st.n_event_ids, 1);
    assert_true(s.st.event_ids[0] == 0x8000000000000001ULL);
    assert_int_equal(s.st.n_orders_mem, 1);
    assert_true(s.st.orders_mem[0].id_hash == 7);
    assert_int_equal(s.st.orders_mem[0].net, 5);
    assert_true(s.st.orders_mem[0].day == CP_DAY_UNKNOWN);
    /* the same bytes in a layout-2 hash are (bad) text */
    cp_stored_init(&s);
    assert_int_equal(putn(&s, &a, "e", LIT("\x01\x00\x00\x00\x00\x00\x00\x80")),
                     CP_OK);
    assert_int_equal(put(&s, &a, "lv", "2"), CP_OK);
    assert_int_equal(end(&s), CP_EPARSE);
    /* a write needs the end of the parse */
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "v", "1"), CP_OK);
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_EINVAL);
    assert_int_equal(end(&s), CP_OK);
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    cp_arena_free(&a);
}

static void test_binary_corrupt(void **state)
{
    (void)state;
    static cp_state_t st;
    static unsigned char b[(CP_DEDUP_MAX + 1) * 16];
    size_t n;
    /* e: not whole ids, too many ids */
    assert_int_equal(cp_store_decode_e(&st, b, 7), -1);
    assert_int_equal(cp_store_decode_e(&st, b, 8 * (CP_DEDUP_MAX + 1)), -1);
    assert_int_equal(cp_store_decode_e(&st, b, 8 * CP_DEDUP_MAX), 0);
    assert_int_equal(cp_store_decode_e(&st, b, 0), 0);
    assert_int_equal(st.n_event_ids, 0);

    /* r: a valid entry, then each way to break one */
    n = r_entry(b, 1, 300, 2 * (2 * 19000 + 1));
    assert_int_equal(cp_store_decode_r(&st, b, n), 0);
    assert_int_equal(st.orders_mem[0].day, 19000);
    assert_int_equal(cp_store_decode_r(&st, b, n - 1), -1); /* no tag */
    b[n] = 0;
    assert_int_equal(cp_store_decode_r(&st, b, n + 1), -1); /* trailing */
    assert_int_equal(cp_store_decode_r(&st, b, 9), -1);     /* short id */
    struct {
        const char *what;
        unsigned char bytes[24];
        size_t len;
    } bad[] = {
        {"overlong net", {1, 1, 1, 1, 1, 1, 1, 1, 0x80, 0x00, 0x00}, 11},
        {"overlong tag", {1, 1, 1, 1, 1, 1, 1, 1, 0x05, 0x81, 0x00}, 11},
        {"truncated net", {1, 1, 1, 1, 1, 1, 1, 1, 0x80, 0x80}, 10},
        {"net 2^63",
         {1, 1, 1, 1, 1, 1, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
          0x80, 0x80, 0x01, 0x00},
         19},
        {"varint of 2^64",
         {1, 1, 1, 1, 1, 1, 1, 1, 0x05, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
          0x80, 0x80, 0x80, 0x02},
         19},
        {"varint of 11 bytes",
         {1,    1,    1,    1,    1,    1,    1,    1,    0x05, 0x80,
          0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00},
         20},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cp_store_decode_r(&st, bad[i].bytes, bad[i].len) != -1)
            fail_msg("r with %s accepted", bad[i].what);
    /* a day beyond the bound, directly and by a second delta; a delta
     * no two stored days have */
    uint64_t d_max = 2 * (uint64_t)CP_STORE_DAY_MAX + 1; /* zigzag + 1 */
    n = r_entry(b, 1, 0, 2 * d_max);
    assert_int_equal(cp_store_decode_r(&st, b, n), 0);
    assert_true(st.orders_mem[0].day == CP_STORE_DAY_MAX);
    n = r_entry(b, 1, 0, 2 * (d_max + 2));
    assert_int_equal(cp_store_decode_r(&st, b, n), -1);
    n = r_entry(b, 1, 0, 2 * d_max);
    n += r_entry(b + n, 2, 0, 2 * 3); /* +1 day */
    assert_int_equal(cp_store_decode_r(&st, b, n), -1);
    n = r_entry(b, 1, 0, (uint64_t)1 << 62);
    assert_int_equal(cp_store_decode_r(&st, b, n), -1);
    /* more than CP_DEDUP_MAX entries */
    n = 0;
    for (int i = 0; i < CP_DEDUP_MAX; i++)
        n += r_entry(b + n, 3, 1, 0);
    assert_int_equal(cp_store_decode_r(&st, b, n), 0);
    assert_int_equal(st.n_orders_mem, CP_DEDUP_MAX);
    n += r_entry(b + n, 3, 1, 0);
    assert_int_equal(cp_store_decode_r(&st, b, n), -1);
}

/* The outbox key: x appended after a legacy outbox, the higher xq kept,
 * nothing else accepted. */
static void test_outbox_key(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    char err[128];
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "x", "s\t{\"old\":1}\n"), CP_OK);
    assert_int_equal(put(&s, &a, "xq", "4"), CP_OK);
    assert_int_equal(put(&s, &a, "lv", "2"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    assert_int_equal(
        cp_store_parse_outbox_field(&s, "xq", 2, "9", 1, &a, err, sizeof(err)),
        CP_OK);
    const char *x = "s\t{\"new\":1}\n";
    assert_int_equal(cp_store_parse_outbox_field(&s, "x", 1, x, strlen(x), &a,
                                                 err, sizeof(err)),
                     CP_OK);
    assert_int_equal(s.outbox_seq, 9);
    assert_string_equal(s.outbox, "s\t{\"old\":1}\ns\t{\"new\":1}\n");
    assert_true(s.outbox_legacy);
    assert_int_equal(
        cp_store_parse_outbox_field(&s, "v", 1, "1", 1, &a, err, sizeof(err)),
        CP_EPARSE);
    assert_non_null(strstr(err, "outbox field 'v'"));
    assert_int_equal(cp_store_parse_outbox_field(&s, "x", 1, "s\t\n", 3, &a,
                                                 err, sizeof(err)),
                     CP_EPARSE);
    assert_int_equal(cp_store_parse_outbox_field(&s, "x", 1, "s\tab\0c\n", 7,
                                                 &a, err, sizeof(err)),
                     CP_EPARSE);
    assert_int_equal(
        cp_store_parse_outbox_field(&s, "xq", 2, "07", 2, &a, err, sizeof(err)),
        CP_EPARSE);
    /* written back: the hash's x and xq deleted, all of it in the key */
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    const char *head[] = {
        "EVALSHA",  "sha", "2", "cp:c:{z}",
        "cp:x:{z}", "0",   "0", "0",
        "0",        "0",   "0", "2",
        "x",        "xq",  "2", "s\t{\"old\":1}\ns\t{\"new\":1}\n",
        "9",        "v",   "1", "lv",
        "4"};
    assert_head(&av, head, sizeof(head) / sizeof(head[0]));
    cp_arena_free(&a);
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
    cp_store_keys_t keys;
    assert_int_equal(cp_store_keys("cp:", "c-9", 3, &a, &keys), CP_OK);
    assert_string_equal(keys.key, "cp:c:{c-9}");
    assert_int_equal(keys.key_len, 10);
    assert_string_equal(keys.xkey, "cp:x:{c-9}");
    assert_int_equal(keys.xkey_len, 10);
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

/* ---- churn fields (gp, sp, cw, dd) and the due index --------------------- */

static void test_churn_fields_round_trip(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s, back;
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "v", "4"), CP_OK);
    assert_int_equal(put(&s, &a, "g", "7.25:1717200000000"), CP_OK);
    assert_int_equal(put(&s, &a, "gp", "12.5"), CP_OK);
    assert_int_equal(put(&s, &a, "sp", "1000.5,2000.25,1717100000000,2"),
                     CP_OK);
    assert_int_equal(put(&s, &a, "cw", "medium,1717150000000"), CP_OK);
    assert_int_equal(put(&s, &a, "dd", "1719792000000"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    const cp_churn_state_t *cs = &s.cs;
    assert_true(cs->eng_peak.n == 1 && cs->eng_peak.score == 12.5);
    assert_int_equal(cs->eng_peak.ref_ms, 1717200000000LL); /* g's */
    assert_true(cs->spend_short.score == 1000.5);
    assert_true(cs->spend_long.score == 2000.25);
    assert_int_equal(cs->spend_short.ref_ms, 1717100000000LL);
    assert_int_equal(cs->spend_long.ref_ms, 1717100000000LL);
    assert_int_equal(cs->spend_orders, 2);
    assert_int_equal(cs->warn.armed, 0);
    assert_int_equal(cs->warn.level, CP_CHURN_LEVEL_MEDIUM);
    assert_int_equal(cs->warn.since_ms, 1717150000000LL);
    assert_int_equal(s.due_ms, 1719792000000LL);

    /* written as read, and read back equal */
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_pair(&av, "gp", "12.5");
    assert_pair(&av, "sp", "1000.5,2000.25,1717100000000,2");
    assert_pair(&av, "cw", "medium,1717150000000");
    assert_pair(&av, "dd", "1719792000000");
    cp_stored_init(&back);
    int i = find_arg(&av, "v");
    for (; i + 1 < av.argc; i += 2) {
        char err[128];
        assert_int_equal(cp_store_parse_field(&back, av.argv[i], av.argvlen[i],
                                              av.argv[i + 1], av.argvlen[i + 1],
                                              &ctx, &a, err, sizeof(err)),
                         CP_OK);
    }
    assert_int_equal(end(&back), CP_OK);
    assert_memory_equal(&back.cs, &s.cs, sizeof(s.cs));
    assert_int_equal(back.due_ms, s.due_ms);

    /* %.17g: doubles come back bit for bit */
    s.cs.eng_peak.score = 0.1 + 0.2;
    s.cs.spend_short.score = 1.0 / 3.0;
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_pair(&av, "gp", "0.30000000000000004");
    assert_pair(&av, "sp", "0.33333333333333331,2000.25,1717100000000,2");
    cp_arena_free(&a);
}

/* Absent fields: an empty churn state, armed, never due; a write of that
 * state writes none of them, and deletes those the hash had. */
static void test_churn_fields_absent(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    static cp_churn_state_t empty;
    cp_churn_state_init(&empty);
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "v", "1"), CP_OK);
    assert_int_equal(put(&s, &a, "g", "3:1000"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    assert_memory_equal(&s.cs, &empty, sizeof(empty));
    assert_true(s.due_ms == CP_STORE_DUE_NEVER);
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    const char *none[] = {"gp", "sp", "cw", "dd"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(find_arg(&av, none[i]), -1);

    /* had them all: an armed, empty, never-due state deletes them */
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "v", "1"), CP_OK);
    assert_int_equal(put(&s, &a, "g", "3:1000"), CP_OK);
    assert_int_equal(put(&s, &a, "gp", "3"), CP_OK);
    assert_int_equal(put(&s, &a, "sp", "1,2,1000,1"), CP_OK);
    assert_int_equal(put(&s, &a, "cw", "high,5"), CP_OK);
    assert_int_equal(put(&s, &a, "dd", "99"), CP_OK);
    assert_int_equal(end(&s), CP_OK);
    cp_churn_state_init(&s.cs);
    s.due_ms = CP_STORE_DUE_NEVER;
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys_z, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    /* ... v ne npop nh nz ndel gp sp cw dd */
    const char *head[] = {"EVALSHA", "sha", "2",  "cp:c:{z}", "cp:x:{z}", "1",
                          "0",       "0",   "0",  "0",        "0",        "4",
                          "gp",      "sp",  "cw", "dd"};
    assert_head(&av, head, sizeof(head) / sizeof(head[0]));
    cp_arena_free(&a);
}

static void test_churn_fields_corrupt(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    static const struct {
        const char *f, *v;
    } bad[] = {
        {"gp", ""},          {"gp", "-1"},
        {"gp", "nan"},       {"gp", "1x"},
        {"gp", " 1"},        {"sp", "1,2,3"},
        {"sp", "1,2,3,0"},   {"sp", "1,2,3,3"},
        {"sp", "1,2,3,1,0"}, {"sp", "-1,2,3,1"},
        {"sp", "1,inf,3,1"}, {"sp", "1,2,03,1"},
        {"cw", "medium"},    {"cw", "none,5"},
        {"cw", "urgent,5"},  {"cw", "low,"},
        {"cw", "low,5,6"},   {"cw", "low,+5"},
        {"dd", ""},          {"dd", "-1"},
        {"dd", "007"},       {"dd", "253402300800000"},
        {"dd", "never"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[128] = "";
        cp_stored_init(&s);
        assert_int_equal(put(&s, &a, "g", "1:1"), CP_OK);
        if (cp_store_parse_field(&s, bad[i].f, 2, bad[i].v, strlen(bad[i].v),
                                 &ctx, &a, err, sizeof(err)) != CP_EPARSE)
            fail_msg("%s = '%s' accepted", bad[i].f, bad[i].v);
        assert_non_null(strstr(err, bad[i].f));
    }
    /* a peak without the engagement score it follows */
    char err[128] = "";
    cp_stored_init(&s);
    assert_int_equal(put(&s, &a, "gp", "4"), CP_OK);
    assert_int_equal(cp_store_parse_end(&s, err, sizeof(err)), CP_EPARSE);
    assert_non_null(strstr(err, "'gp'"));
    cp_arena_free(&a);
}

/* The due index: ZADD dd id with a dd, ZREM id when dd went away, nothing
 * without a dkey or without a dd before and after. */
static void test_due_index_args(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_store_keys_t keys = keys_z;
    keys.dkey = "cp:due:3";
    cp_stored_init(&s);
    assert_int_equal(end(&s), CP_OK);
    s.due_ms = 1719792000000LL;
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    const char *add[] = {
        "EVALSHA", "sha", "3", "cp:c:{z}", "cp:x:{z}", "cp:due:3",
        "0",       "0",   "0", "0",        "2",        "1719792000000",
        "z",       "0",   "0", "0",        "v",        "1"};
    assert_head(&av, add, sizeof(add) / sizeof(add[0]));

    s.had |= CP_F_DD; /* read with a dd, now never */
    s.due_ms = CP_STORE_DUE_NEVER;
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    const char *rem[] = {"EVALSHA",  "sha", "3", "cp:c:{z}", "cp:x:{z}",
                         "cp:due:3", "0",   "0", "0",        "0",
                         "1",        "z",   "0", "1",        "dd",
                         "0",        "v",   "1"};
    assert_head(&av, rem, sizeof(rem) / sizeof(rem[0]));

    s.had = 0; /* never before and after: the index is not touched */
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    const char *none[] = {"EVALSHA", "sha", "2", "cp:c:{z}", "cp:x:{z}",
                          "0",       "0",   "0", "0",        "0",
                          "0",       "0",   "0", "v",        "1"};
    assert_head(&av, none, sizeof(none) / sizeof(none[0]));
    cp_arena_free(&a);
}

/* A sweep write that leaves an outbox is indexed at the mark (the sweep's
 * "now") while dd stays the truth in the hash; the metric increments go
 * after the due section: their keys after the due key, then nmk, nmi,
 * (key index, field, delta) per increment and each key's day. */
static void test_mark_and_metrics_args(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    static cp_stored_t s;
    cp_store_keys_t keys = keys_z;
    keys.dkey = "cp:due:3";
    keys.dmark = 1719700000000LL;
    cp_stored_init(&s);
    assert_int_equal(end(&s), CP_OK);
    s.due_ms = 1719792000000LL;
    assert_int_equal(
        cp_store_outbox_add(&s, CP_OUTBOX_SEGMENTS, "{}", 2, 1, &a), CP_OK);
    static cp_store_metrics_t m;
    m.days_key = "cp:mdays";
    m.keys[0] = "cp:md:2024-07-01";
    m.days[0] = 19905;
    m.keys[1] = "cp:mc:2024-06-30";
    m.days[1] = 19904;
    m.n_keys = 2;
    m.inc[0].key = 0;
    m.inc[0].field = "lc:active";
    m.inc[0].delta = 1;
    m.inc[1].key = 1;
    m.inc[1].field = "r2";
    m.inc[1].delta = 1;
    m.n_inc = 2;
    cp_argv_t av = {0};
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys, NULL, 0,
                                         "cp:pop", NULL, NULL, &m, &a, &av),
                     CP_OK);
    const char *want[] = {"EVALSHA",
                          "sha",
                          "6",
                          "cp:c:{z}",
                          "cp:x:{z}",
                          "cp:due:3",
                          "cp:md:2024-07-01",
                          "cp:mc:2024-06-30",
                          "cp:mdays",
                          "0",
                          "0",
                          "0",
                          "0",
                          "2",
                          "1719700000000",
                          "z",
                          "2",
                          "2",
                          "0",
                          "lc:active",
                          "1",
                          "1",
                          "r2",
                          "1",
                          "19905",
                          "19904"};
    assert_head(&av, want, sizeof(want) / sizeof(want[0]));
    assert_pair(&av, "dd", "1719792000000");

    keys.dmark = 1719800000000LL; /* a mark after dd: dd */
    av.argc = 0;
    assert_int_equal(cp_store_write_args(&s, &ctx, "sha", &keys, NULL, 0,
                                         "cp:pop", NULL, NULL, NULL, &a, &av),
                     CP_OK);
    assert_int_equal(find_arg(&av, "1719800000000"), -1);
    assert_true(find_arg(&av, "1719792000000") > 0);
    cp_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_write),
        cmocka_unit_test(test_fixed_mode_and_no_segment),
        cmocka_unit_test(test_layout2_roundtrip),
        cmocka_unit_test(test_attr_limit),
        cmocka_unit_test(test_corrupt_fields),
        cmocka_unit_test(test_binary_roundtrip),
        cmocka_unit_test(test_binary_size),
        cmocka_unit_test(test_binary_after_lv),
        cmocka_unit_test(test_watermarks_w),
        cmocka_unit_test(test_binary_corrupt),
        cmocka_unit_test(test_outbox_key),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_hist_field),
        cmocka_unit_test(test_first_spend_field),
        cmocka_unit_test(test_churn_fields_round_trip),
        cmocka_unit_test(test_churn_fields_absent),
        cmocka_unit_test(test_churn_fields_corrupt),
        cmocka_unit_test(test_due_index_args),
        cmocka_unit_test(test_mark_and_metrics_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
