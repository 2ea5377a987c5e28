/*
 * test_scoring_quantile.c - quantile RFM (docs/models.md): buckets,
 * quintile thresholds from histograms (even, skewed, ties, empty), scores
 * and the whole R x F grid of named segments.
 *
 * Pure unit tests, no services.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "quantile.h"

static void test_buckets(void **state)
{
    (void)state;
    assert_int_equal(cp_q_bucket_r(19800), 19800);
    assert_int_equal(cp_q_bucket_f(1), 1);
    assert_int_equal(cp_q_bucket_f(64), 64);
    assert_int_equal(cp_q_bucket_f(65), 64);   /* 8*log2(65/64) = 0.179 */
    assert_int_equal(cp_q_bucket_f(128), 72);  /* one doubling: +8 */
    assert_int_equal(cp_q_bucket_f(1024), 96); /* four doublings */
    assert_int_equal(cp_q_bucket_m(0), -1);
    assert_int_equal(cp_q_bucket_m(1), 0);
    assert_int_equal(cp_q_bucket_m(2), 8);
    assert_int_equal(cp_q_bucket_m(1000), 79); /* 8*9.9658 = 79.73 */
    assert_int_equal(cp_q_bucket_m(1024), 80);
    assert_int_equal(cp_q_bucket_m(INT64_MAX), 504); /* 8*63 */
    /* monotone */
    for (int64_t m = 1, prev = -1; m < 5000000; m = m * 3 / 2 + 1) {
        assert_true(cp_q_bucket_m(m) >= prev);
        prev = cp_q_bucket_m(m);
    }
}

static void test_thresholds_even(void **state)
{
    (void)state;
    /* 10 customers, 2 per bucket 1..5 */
    cp_q_bin_t bins[] = {{1, 2}, {2, 2}, {3, 2}, {4, 2}, {5, 2}};
    int64_t t[4];
    assert_int_equal(cp_q_thresholds(bins, 5, t), 10);
    assert_int_equal(t[0], 2);
    assert_int_equal(t[1], 3);
    assert_int_equal(t[2], 4);
    assert_int_equal(t[3], 5);
    for (int b = 1; b <= 5; b++)
        assert_int_equal(cp_q_score(b, t), b);
    /* buckets between and beyond bins */
    assert_int_equal(cp_q_score(0, t), 1);
    assert_int_equal(cp_q_score(99, t), 5);
}

static void test_thresholds_skewed_and_ties(void **state)
{
    (void)state;
    int64_t t[4];
    /* 9 customers in bucket 10, one in 20: every threshold at 20 */
    cp_q_bin_t skew[] = {{10, 9}, {20, 1}};
    assert_int_equal(cp_q_thresholds(skew, 2, t), 10);
    for (int k = 0; k < 4; k++)
        assert_int_equal(t[k], 20);
    assert_int_equal(cp_q_score(10, t), 1);
    assert_int_equal(cp_q_score(20, t), 5);
    /* 7 customers: 1,1,1 | 2 | 3,3 | 4 with an empty bin and a negative
     * count (ignored). Below 2: 3 >= 1.4, 2.8 -> t1 = t2 = 2; below 3: 4
     * < 4.2; below 4: 6 >= 4.2, 5.6 -> t3 = t4 = 4. */
    cp_q_bin_t ties[] = {{1, 3}, {2, 1}, {3, 2}, {4, 1}, {5, 0}, {6, -3}};
    assert_int_equal(cp_q_thresholds(ties, 6, t), 7);
    assert_int_equal(t[0], 2);
    assert_int_equal(t[1], 2);
    assert_int_equal(t[2], 4);
    assert_int_equal(t[3], 4);
    assert_int_equal(cp_q_score(1, t), 1);
    assert_int_equal(cp_q_score(2, t), 3);
    assert_int_equal(cp_q_score(3, t), 3);
    assert_int_equal(cp_q_score(4, t), 5);
    /* exactly k/5 below counts (5 customers, one per bucket) */
    cp_q_bin_t five[] = {{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}};
    cp_q_thresholds(five, 5, t);
    assert_int_equal(t[0], 2);
    assert_int_equal(t[3], 5);
    /* one bucket, or nobody: no thresholds, everybody scores 1 */
    cp_q_bin_t one[] = {{7, 100}};
    assert_int_equal(cp_q_thresholds(one, 1, t), 100);
    for (int k = 0; k < 4; k++)
        assert_true(t[k] == CP_Q_NONE);
    assert_int_equal(cp_q_score(7, t), 1);
    assert_int_equal(cp_q_thresholds(NULL, 0, t), 0);
    assert_true(t[0] == CP_Q_NONE);
}

static void test_named_grid(void **state)
{
    (void)state;
    /* the whole grid, row R = 1..5, columns F = 1..5 */
    static const char *want[5][5] = {
        {"lost", "hibernating", "at_risk", "at_risk", "cant_lose"},
        {"hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"},
        {"about_to_sleep", "about_to_sleep", "need_attention", "loyal",
         "loyal"},
        {"promising", "potential_loyalist", "potential_loyalist", "loyal",
         "loyal"},
        {"new", "potential_loyalist", "potential_loyalist", "champions",
         "champions"},
    };
    int seen[CP_RFMSEG__COUNT] = {0};
    for (int r = 1; r <= 5; r++)
        for (int f = 1; f <= 5; f++) {
            cp_rfmseg_t s = cp_rfmseg(r, f);
            assert_string_equal(cp_rfmseg_code(s), want[r - 1][f - 1]);
            seen[s] = 1;
        }
    for (int s = 1; s < CP_RFMSEG__COUNT; s++)
        assert_true(seen[s]); /* all 11 named segments are reachable */
    assert_int_equal(cp_rfmseg(0, 3), CP_RFMSEG_NONE);
    assert_int_equal(cp_rfmseg(3, 6), CP_RFMSEG_NONE);
    assert_null(cp_rfmseg_code(CP_RFMSEG_NONE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_thresholds_even),
        cmocka_unit_test(test_thresholds_skewed_and_ties),
        cmocka_unit_test(test_named_grid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
