/*
 * test_consumer_rfmq.c - quantile RFM in the consumer: buckets of a
 * customer, histogram moves, thresholds of a snapshot read from the
 * histogram hash, scores in live and fixed mode (hand-computed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rfmq.h"

static cp_state_t customer(int64_t orders, int64_t monetary, int64_t last_day)
{
    cp_state_t st;
    cp_state_init(&st);
    st.orders = orders;
    st.monetary = monetary;
    if (orders > 0) {
        st.has_order_time = 1;
        st.first_day = st.last_day = last_day;
    }
    return st;
}

static void test_pos_and_moves(void **state)
{
    (void)state;
    cp_state_t st = customer(0, 0, 0);
    cp_rfmq_pos_t none = cp_rfmq_pos(&st);
    assert_int_equal(none.in, 0);
    st = customer(3, 2048, 19000);
    cp_rfmq_pos_t a = cp_rfmq_pos(&st);
    assert_int_equal(a.in, 1);
    assert_int_equal(a.b[0], 19000);
    assert_int_equal(a.b[1], 3);
    assert_int_equal(a.b[2], 88); /* floor(8 * log2(2048)) = 88 */

    char f[6][CP_RFMQ_FIELD_MAX];
    int d[6];
    /* entering the population: +1 in each dimension */
    assert_int_equal(cp_rfmq_moves(&none, &a, f, d), 3);
    assert_string_equal(f[0], "r:19000");
    assert_int_equal(d[0], 1);
    assert_string_equal(f[2], "m:88");
    /* one more order the same day, more money: F and M move, R stays */
    st = customer(4, 4096, 19000);
    cp_rfmq_pos_t b = cp_rfmq_pos(&st);
    assert_int_equal(cp_rfmq_moves(&a, &b, f, d), 4);
    assert_string_equal(f[0], "f:3");
    assert_int_equal(d[0], -1);
    assert_string_equal(f[1], "f:4");
    assert_int_equal(d[1], 1);
    assert_string_equal(f[2], "m:88");
    assert_string_equal(f[3], "m:96");
    /* no change, and leaving (every order cancelled) */
    assert_int_equal(cp_rfmq_moves(&b, &b, f, d), 0);
    assert_int_equal(cp_rfmq_moves(&b, &none, f, d), 3);
    assert_int_equal(d[0] + d[1] + d[2], -3);
    /* extreme buckets fit the field */
    st = customer(INT64_MAX, INT64_MAX, INT64_MIN + 1);
    cp_rfmq_pos_t x = cp_rfmq_pos(&st);
    assert_int_equal(cp_rfmq_moves(&none, &x, f, d), 3);
    assert_string_equal(f[0], "r:-9223372036854775807");
}

/* 10 customers: R buckets 1..10 (one each), F: 6 with 1 order, 4 with 2,
 * M: all in bucket 80. */
static void test_thresholds_and_live_scores(void **state)
{
    (void)state;
    const char *fields[32], *values[32];
    size_t fl[32], vl[32], n = 0;
    char fbuf[32][16], vbuf[32][16];
    for (int i = 1; i <= 10; i++) {
        snprintf(fbuf[n], 16, "r:%d", i);
        snprintf(vbuf[n], 16, "1");
        n++;
    }
    snprintf(fbuf[n], 16, "f:1");
    snprintf(vbuf[n++], 16, "6");
    snprintf(fbuf[n], 16, "f:2");
    snprintf(vbuf[n++], 16, "4");
    snprintf(fbuf[n], 16, "f:3");
    snprintf(vbuf[n++], 16, "0"); /* emptied by moves: ignored */
    snprintf(fbuf[n], 16, "m:80");
    snprintf(vbuf[n++], 16, "10");
    for (size_t i = 0; i < n; i++) {
        fields[i] = fbuf[i];
        fl[i] = strlen(fbuf[i]);
        values[i] = vbuf[i];
        vl[i] = strlen(vbuf[i]);
    }
    cp_rfmq_snap_t s = {0};
    char err[128];
    assert_int_equal(
        cp_rfmq_thresholds(fields, fl, values, vl, n, &s, err, sizeof(err)),
        CP_OK);
    assert_int_equal(s.n, 10);
    /* R: k/5 of 10 = 2, 4, 6, 8 customers below -> buckets 3, 5, 7, 9 */
    assert_int_equal(s.t[0][0], 3);
    assert_int_equal(s.t[0][1], 5);
    assert_int_equal(s.t[0][2], 7);
    assert_int_equal(s.t[0][3], 9);
    /* F: 6 below bucket 2 >= 2 and 4 and 6 of 10 -> 2, 2, 2; 8 never */
    assert_int_equal(s.t[1][0], 2);
    assert_int_equal(s.t[1][1], 2);
    assert_int_equal(s.t[1][2], 2);
    assert_true(s.t[1][3] == CP_Q_NONE);
    /* M: one bucket: no threshold at all */
    assert_true(s.t[2][0] == CP_Q_NONE);
    char text[CP_RFMQ_TEXT_MAX];
    cp_rfmq_thresholds_text(&s, text);
    assert_string_equal(text, "3,5,7,9;2,2,2,-;-,-,-,-");
    /* and back, as a snapshot adopted from Redis is read */
    cp_rfmq_snap_t back = {0};
    assert_int_equal(cp_rfmq_thresholds_parse(text, strlen(text), &back), 0);
    assert_memory_equal(back.t, s.t, sizeof(s.t));
    static const char *const bad[] = {
        "",
        "3,5,7,9;2,2,2,-;-,-,-",
        "3,5,7,9;2,2,2,-;-,-,-,-;",
        "3,5,7,9,2,2,2,-;-,-,-,-",
        "9,7,5,3;2,2,2,-;-,-,-,-",
        "3,5,7,09;2,2,2,-;-,-,-,-",
        "3,5,7,9;2,2,2,x;-,-,-,-",
        "3,5,7,9;2,2,2,--;-,-,-,-",
        "3,5,7,9;2,2,2,9223372036854775807;-,-,-,-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            cp_rfmq_thresholds_parse(bad[i], strlen(bad[i]), &back), -1);

    cp_state_t st = customer(2, 100000, 10);
    cp_rfmq_score_t sc = cp_rfmq_score_live(&st, &s);
    assert_int_equal(sc.r, 0); /* no snapshot version yet */
    s.version = 7;
    sc = cp_rfmq_score_live(&st, &s);
    assert_int_equal(sc.r, 5);
    assert_int_equal(sc.f, 4);
    assert_int_equal(sc.m, 1);
    assert_int_equal(sc.seg, CP_RFMSEG_CHAMPIONS);
    st = customer(1, 100, 2);
    sc = cp_rfmq_score_live(&st, &s);
    assert_int_equal(sc.r, 1);
    assert_int_equal(sc.f, 1);
    assert_int_equal(sc.seg, CP_RFMSEG_LOST);
    st = customer(0, 0, 0);
    sc = cp_rfmq_score_live(&st, &s);
    assert_int_equal(sc.seg, CP_RFMSEG_NONE);

    /* a hostile histogram */
    const char *bad_f[] = {"x:1", "r:", "r:1", "r:01"};
    const char *bad_v[] = {"1", "1", "z", "1"};
    for (int i = 0; i < 4; i++) {
        size_t bfl = strlen(bad_f[i]), bvl = strlen(bad_v[i]);
        if (cp_rfmq_thresholds(&bad_f[i], &bfl, &bad_v[i], &bvl, 1, &s, err,
                               sizeof(err)) != CP_EPARSE)
            fail_msg("%s=%s accepted", bad_f[i], bad_v[i]);
    }
    /* empty population */
    cp_rfmq_snap_t e = {0};
    assert_int_equal(
        cp_rfmq_thresholds(NULL, NULL, NULL, NULL, 0, &e, err, sizeof(err)),
        CP_OK);
    assert_int_equal(e.n, 0);
    e.version = 1;
    st = customer(1, 100, 2);
    assert_int_equal(cp_rfmq_score_live(&st, &e).seg, CP_RFMSEG_NONE);
}

static void test_fixed_scores(void **state)
{
    (void)state;
    const int64_t r[4] = {14, 30, 90, 180}, f[4] = {2, 3, 5, 8},
                  m[4] = {5000, 10000, 25000, 50000};
    cp_state_t st = customer(1, 4999, 100);
    cp_rfmq_score_t sc = cp_rfmq_score_fixed(&st, 113, r, f, m);
    assert_int_equal(sc.r, 5); /* 13 days < 14 */
    assert_int_equal(sc.f, 1);
    assert_int_equal(sc.m, 1);
    assert_int_equal(sc.seg, CP_RFMSEG_NEW);
    sc = cp_rfmq_score_fixed(&st, 114, r, f, m); /* 14 days: R 4 */
    assert_int_equal(sc.r, 4);
    assert_int_equal(sc.seg, CP_RFMSEG_PROMISING);
    sc = cp_rfmq_score_fixed(&st, 280, r, f, m); /* 180 days: R 1 */
    assert_int_equal(sc.r, 1);
    st = customer(8, 50000, 100);
    sc = cp_rfmq_score_fixed(&st, 100 + 89, r, f, m);
    assert_int_equal(sc.r, 3);
    assert_int_equal(sc.f, 5);
    assert_int_equal(sc.m, 5);
    assert_int_equal(sc.seg, CP_RFMSEG_LOYAL);
    /* "now" behind the last order: 0 days */
    sc = cp_rfmq_score_fixed(&st, 50, r, f, m);
    assert_int_equal(sc.r, 5);
    assert_int_equal(sc.seg, CP_RFMSEG_CHAMPIONS);
    st = customer(0, 0, 0);
    assert_int_equal(cp_rfmq_score_fixed(&st, 50, r, f, m).seg, CP_RFMSEG_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pos_and_moves),
        cmocka_unit_test(test_thresholds_and_live_scores),
        cmocka_unit_test(test_fixed_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
