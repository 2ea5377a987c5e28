/*
 * test_scoring_rfm.c - the RFM 8-type segment (docs/contracts.md section 3)
 * and the population figures (section 2): codes, names, classification
 * with every tie, population updates and the live reference.
 *
 * Pure unit tests, no services; every test asserts exact values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rfm.h"
#include "state.h"

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

#define TODAY 19100

/* Exact double equality, printing both values on failure. */
#define assert_double_exact(a, b)                                              \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        if (a_ != b_)                                                          \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                \
    } while (0)

/* A customer with orders/monetary whose last order was `days_ago` days
 * before TODAY. */
static cp_state_t customer(int64_t orders, int64_t monetary, int64_t days_ago)
{
    cp_state_t st;
    cp_state_init(&st);
    st.orders = orders;
    st.monetary = monetary;
    st.has_order_time = 1;
    st.last_day = TODAY - days_ago;
    st.first_ms = st.last_ms = st.last_day * 86400000LL;
    return st;
}

static const cp_rfm_ref_t ref30 = {30.0, 3.0, 10000.0};

static cp_rfm8_t classify(int64_t orders, int64_t monetary, int64_t days_ago,
                          const cp_rfm_ref_t *ref)
{
    cp_state_t st = customer(orders, monetary, days_ago);
    return cp_rfm8_classify(&st, TODAY, ref);
}

static void assert_pop(const cp_pop_t *pop, int64_t n, int64_t sf, int64_t sm,
                       int64_t sl)
{
    assert_int_equal(pop->n, n);
    assert_int_equal(pop->sf, sf);
    assert_int_equal(pop->sm, sm);
    assert_int_equal(pop->sl, sl);
}

/* ---------------------------------------------------------------------------
 * Codes and names
 * ------------------------------------------------------------------------ */

static const struct {
    cp_rfm8_t seg;
    const char *code;
    const char *zh;
} names[] = {
    {CP_RFM8_IMPORTANT_VALUE, "important_value", "重要价值客户"},
    {CP_RFM8_IMPORTANT_DEVELOP, "important_develop", "重要发展客户"},
    {CP_RFM8_IMPORTANT_KEEP, "important_keep", "重要保持客户"},
    {CP_RFM8_IMPORTANT_RETAIN, "important_retain", "重要挽留客户"},
    {CP_RFM8_GENERAL_VALUE, "general_value", "一般价值客户"},
    {CP_RFM8_GENERAL_DEVELOP, "general_develop", "一般发展客户"},
    {CP_RFM8_GENERAL_KEEP, "general_keep", "一般保持客户"},
    {CP_RFM8_GENERAL_RETAIN, "general_retain", "一般挽留客户"},
};

static void test_codes_and_names(void **unused)
{
    (void)unused;
    assert_int_equal(sizeof names / sizeof names[0], CP_RFM8__COUNT - 1);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_string_equal(cp_rfm8_code(names[i].seg), names[i].code);
        assert_string_equal(cp_rfm8_name_zh(names[i].seg), names[i].zh);
    }
    /* The UTF-8 bytes of one name, to catch an encoding slip. */
    assert_string_equal(cp_rfm8_name_zh(CP_RFM8_IMPORTANT_VALUE),
                        "\xe9\x87\x8d\xe8\xa6\x81\xe4\xbb\xb7"
                        "\xe5\x80\xbc\xe5\xae\xa2\xe6\x88\xb7");
}

static void test_none_and_out_of_range_have_no_name(void **unused)
{
    (void)unused;
    assert_null(cp_rfm8_code(CP_RFM8_NONE));
    assert_null(cp_rfm8_name_zh(CP_RFM8_NONE));
    assert_null(cp_rfm8_code(CP_RFM8__COUNT));
    assert_null(cp_rfm8_name_zh(CP_RFM8__COUNT));
    assert_null(cp_rfm8_code((cp_rfm8_t)-1));
    assert_null(cp_rfm8_name_zh((cp_rfm8_t)99));
}

static void test_parse(void **unused)
{
    (void)unused;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cp_rfm8_t seg = CP_RFM8_NONE;
        assert_int_equal(cp_rfm8_parse(names[i].code, &seg), 0);
        assert_int_equal(seg, names[i].seg);
    }
    const char *bad[] = {"",
                         "important",
                         "IMPORTANT_VALUE",
                         "important_value ",
                         "important_valuex",
                         "重要价值客户",
                         "none",
                         NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cp_rfm8_t seg = CP_RFM8_GENERAL_KEEP;
        assert_int_equal(cp_rfm8_parse(bad[i], &seg), -1);
        assert_int_equal(seg, CP_RFM8_GENERAL_KEEP); /* untouched */
    }
}

/* ---------------------------------------------------------------------------
 * Recency and classification
 * ------------------------------------------------------------------------ */

static void test_recency_days(void **unused)
{
    (void)unused;
    cp_state_t st = customer(1, 100, 12);
    assert_int_equal(cp_rfm_recency_days(&st, TODAY), 12);
    assert_int_equal(cp_rfm_recency_days(&st, TODAY - 12), 0);
    /* An order "in the future" (clock skew): never negative. */
    assert_int_equal(cp_rfm_recency_days(&st, TODAY - 13), 0);
    assert_int_equal(cp_rfm_recency_days(&st, TODAY - 20), 0);
    /* No order time yet: 0. */
    cp_state_init(&st);
    assert_int_equal(cp_rfm_recency_days(&st, TODAY), 0);
}

static void test_all_eight_segments(void **unused)
{
    (void)unused;
    /* R better = 10 days, worse = 60; F high = 5, low = 1;
     * M high = 20000, low = 500. */
    assert_int_equal(classify(5, 20000, 10, &ref30), CP_RFM8_IMPORTANT_VALUE);
    assert_int_equal(classify(1, 20000, 10, &ref30), CP_RFM8_IMPORTANT_DEVELOP);
    assert_int_equal(classify(5, 20000, 60, &ref30), CP_RFM8_IMPORTANT_KEEP);
    assert_int_equal(classify(1, 20000, 60, &ref30), CP_RFM8_IMPORTANT_RETAIN);
    assert_int_equal(classify(5, 500, 10, &ref30), CP_RFM8_GENERAL_VALUE);
    assert_int_equal(classify(1, 500, 10, &ref30), CP_RFM8_GENERAL_DEVELOP);
    assert_int_equal(classify(5, 500, 60, &ref30), CP_RFM8_GENERAL_KEEP);
    assert_int_equal(classify(1, 500, 60, &ref30), CP_RFM8_GENERAL_RETAIN);
}

static void test_no_orders_is_none(void **unused)
{
    (void)unused;
    /* Everything favourable except o = 0 (all orders cancelled). */
    assert_int_equal(classify(0, 20000, 0, &ref30), CP_RFM8_NONE);
    cp_state_t st;
    cp_state_init(&st);
    assert_int_equal(cp_rfm8_classify(&st, TODAY, &ref30), CP_RFM8_NONE);
}

static void test_recency_ties(void **unused)
{
    (void)unused;
    /* F high, M high: only R decides value (better) vs keep (worse). */
    assert_int_equal(classify(5, 20000, 29, &ref30), CP_RFM8_IMPORTANT_VALUE);
    assert_int_equal(classify(5, 20000, 30, &ref30), CP_RFM8_IMPORTANT_VALUE);
    assert_int_equal(classify(5, 20000, 31, &ref30), CP_RFM8_IMPORTANT_KEEP);
    /* Fractional reference (live averages). */
    const cp_rfm_ref_t frac = {2.5, 3.0, 10000.0};
    assert_int_equal(classify(5, 20000, 2, &frac), CP_RFM8_IMPORTANT_VALUE);
    assert_int_equal(classify(5, 20000, 3, &frac), CP_RFM8_IMPORTANT_KEEP);
    /* Reference 0: only an order today is better. */
    const cp_rfm_ref_t zero = {0.0, 3.0, 10000.0};
    assert_int_equal(classify(5, 20000, 0, &zero), CP_RFM8_IMPORTANT_VALUE);
    assert_int_equal(classify(5, 20000, 1, &zero), CP_RFM8_IMPORTANT_KEEP);
}

static void test_frequency_ties(void **unused)
{
    (void)unused;
    /* R better, M low: F decides general_value (high) vs develop (low). */
    assert_int_equal(classify(4, 500, 10, &ref30), CP_RFM8_GENERAL_VALUE);
    assert_int_equal(classify(3, 500, 10, &ref30), CP_RFM8_GENERAL_VALUE);
    assert_int_equal(classify(2, 500, 10, &ref30), CP_RFM8_GENERAL_DEVELOP);
    const cp_rfm_ref_t frac = {30.0, 1.5, 10000.0};
    assert_int_equal(classify(2, 500, 10, &frac), CP_RFM8_GENERAL_VALUE);
    assert_int_equal(classify(1, 500, 10, &frac), CP_RFM8_GENERAL_DEVELOP);
}

static void test_monetary_ties(void **unused)
{
    (void)unused;
    /* R worse, F low: M decides important_retain vs general_retain. */
    assert_int_equal(classify(1, 10001, 60, &ref30), CP_RFM8_IMPORTANT_RETAIN);
    assert_int_equal(classify(1, 10000, 60, &ref30), CP_RFM8_IMPORTANT_RETAIN);
    assert_int_equal(classify(1, 9999, 60, &ref30), CP_RFM8_GENERAL_RETAIN);
    const cp_rfm_ref_t frac = {30.0, 3.0, 2499.5};
    assert_int_equal(classify(1, 2500, 60, &frac), CP_RFM8_IMPORTANT_RETAIN);
    assert_int_equal(classify(1, 2499, 60, &frac), CP_RFM8_GENERAL_RETAIN);
    /* m = 0 against reference 0 (empty population) is a tie: high. */
    const cp_rfm_ref_t zero = {0.0, 0.0, 0.0};
    assert_int_equal(classify(1, 0, 0, &zero), CP_RFM8_IMPORTANT_VALUE);
}

static void test_all_ties_at_once(void **unused)
{
    (void)unused;
    assert_int_equal(classify(3, 10000, 30, &ref30), CP_RFM8_IMPORTANT_VALUE);
}

/* ---------------------------------------------------------------------------
 * Population
 * ------------------------------------------------------------------------ */

static void test_pop_add_move_remove(void **unused)
{
    (void)unused;
    cp_pop_t pop = {2, 7, 30000, 38000}; /* two other customers */
    cp_state_t none;
    cp_state_init(&none);

    /* add: a new customer's first order */
    cp_state_t a = customer(1, 1990, TODAY - 19050);
    cp_pop_update(&pop, &none, &a);
    assert_pop(&pop, 3, 8, 31990, 38000 + 19050);

    /* move: a second order, later day */
    cp_state_t b = customer(2, 2990, TODAY - 19060);
    cp_pop_update(&pop, &a, &b);
    assert_pop(&pop, 3, 9, 32990, 38000 + 19060);

    /* move within: a refund changes only m */
    cp_state_t c = b;
    c.monetary = 990;
    cp_pop_update(&pop, &b, &c);
    assert_pop(&pop, 3, 9, 30990, 38000 + 19060);

    /* remove: both orders cancelled; o = 0 leaves the population even
     * though m, f and l keep values */
    cp_state_t d = c;
    d.orders = 0;
    d.monetary = 0;
    cp_pop_update(&pop, &c, &d);
    assert_pop(&pop, 2, 7, 30000, 38000);

    /* still 0 orders (an unknown refund): no contribution either side */
    cp_state_t e = d;
    e.monetary = 0;
    cp_pop_update(&pop, &d, &e);
    assert_pop(&pop, 2, 7, 30000, 38000);
}

static void test_pop_remove_keeps_zero_money_customer(void **unused)
{
    (void)unused;
    /* A counted customer with m = 0 (fully refunded) still counts. */
    cp_pop_t pop = {0, 0, 0, 0};
    cp_state_t none;
    cp_state_init(&none);
    cp_state_t a = customer(1, 0, 0);
    cp_pop_update(&pop, &none, &a);
    assert_pop(&pop, 1, 1, 0, TODAY);
}

static void test_pop_null_and_delta(void **unused)
{
    (void)unused;
    cp_state_t a = customer(2, 500, 3);
    cp_state_t b = customer(3, 800, 1);
    cp_pop_t pop = {0, 0, 0, 0};
    cp_pop_update(&pop, NULL, &a);
    assert_pop(&pop, 1, 2, 500, TODAY - 3);

    cp_pop_t d = cp_pop_delta(&a, &b);
    assert_pop(&d, 0, 1, 300, 2);
    d = cp_pop_delta(NULL, &b);
    assert_pop(&d, 1, 3, 800, TODAY - 1);
    d = cp_pop_delta(&b, NULL);
    assert_pop(&d, -1, -3, -800, -(TODAY - 1));
    d = cp_pop_delta(NULL, NULL);
    assert_pop(&d, 0, 0, 0, 0);

    cp_pop_update(&pop, &a, NULL);
    assert_pop(&pop, 0, 0, 0, 0);
}

static void test_pop_wraps_and_restores(void **unused)
{
    (void)unused;
    cp_pop_t pop = {5, 10, INT64_MAX - 100, 0};
    cp_state_t none;
    cp_state_init(&none);
    cp_state_t big = customer(1, 1000, 0);
    cp_pop_update(&pop, &none, &big); /* sm passes INT64_MAX */
    cp_pop_update(&pop, &big, &none);
    assert_pop(&pop, 5, 10, INT64_MAX - 100, 0);
}

static void test_reference_empty(void **unused)
{
    (void)unused;
    const cp_pop_t pop = {0, 0, 0, 0};
    cp_rfm_ref_t ref = cp_pop_reference(&pop, TODAY);
    assert_double_exact(ref.recency_days, 0.0);
    assert_double_exact(ref.frequency, 0.0);
    assert_double_exact(ref.monetary, 0.0);
}

static void test_reference_known_sums(void **unused)
{
    (void)unused;
    /* 4 customers, last days 19090, 19091, 19093, 19096 (sum 76370):
     * mean 19092.5 -> recency 7.5; 10 orders -> 2.5; 10002 -> 2500.5. */
    const cp_pop_t pop = {4, 10, 10002, 76370};
    cp_rfm_ref_t ref = cp_pop_reference(&pop, TODAY);
    assert_double_exact(ref.recency_days, 7.5);
    assert_double_exact(ref.frequency, 2.5);
    assert_double_exact(ref.monetary, 2500.5);

    /* Inexact quotients are the plain double divisions. */
    const cp_pop_t thirds = {3, 4, 1000, 3 * 19090 + 1};
    ref = cp_pop_reference(&thirds, TODAY);
    assert_double_exact(ref.recency_days,
                        (double)TODAY - (double)(3 * 19090 + 1) / 3.0);
    assert_double_exact(ref.frequency, 4.0 / 3.0);
    assert_double_exact(ref.monetary, 1000.0 / 3.0);
}

static void test_reference_feeds_classification(void **unused)
{
    (void)unused;
    /* A population of one: that customer ties on everything. */
    cp_state_t st = customer(2, 4000, 5);
    cp_pop_t pop = {0, 0, 0, 0};
    cp_pop_update(&pop, NULL, &st);
    cp_rfm_ref_t ref = cp_pop_reference(&pop, TODAY);
    assert_double_exact(ref.recency_days, 5.0);
    assert_double_exact(ref.frequency, 2.0);
    assert_double_exact(ref.monetary, 4000.0);
    assert_int_equal(cp_rfm8_classify(&st, TODAY, &ref),
                     CP_RFM8_IMPORTANT_VALUE);
    /* A day later, against yesterday's reference R is worse; the
     * reference computed for the new today ties again. */
    assert_int_equal(cp_rfm8_classify(&st, TODAY + 1, &ref),
                     CP_RFM8_IMPORTANT_KEEP);
    ref = cp_pop_reference(&pop, TODAY + 1);
    assert_int_equal(cp_rfm8_classify(&st, TODAY + 1, &ref),
                     CP_RFM8_IMPORTANT_VALUE);
}

/* ---------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_and_names),
        cmocka_unit_test(test_none_and_out_of_range_have_no_name),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_recency_days),
        cmocka_unit_test(test_all_eight_segments),
        cmocka_unit_test(test_no_orders_is_none),
        cmocka_unit_test(test_recency_ties),
        cmocka_unit_test(test_frequency_ties),
        cmocka_unit_test(test_monetary_ties),
        cmocka_unit_test(test_all_ties_at_once),
        cmocka_unit_test(test_pop_add_move_remove),
        cmocka_unit_test(test_pop_remove_keeps_zero_money_customer),
        cmocka_unit_test(test_pop_null_and_delta),
        cmocka_unit_test(test_pop_wraps_and_restores),
        cmocka_unit_test(test_reference_empty),
        cmocka_unit_test(test_reference_known_sums),
        cmocka_unit_test(test_reference_feeds_classification),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
