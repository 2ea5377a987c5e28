/*
 * test_scoring_models.c - decayed scores, engagement, satisfaction,
 * lifecycle and value (docs/models.md) with hand-computed cases: every
 * rule's boundary, out-of-order and equal-time events, extreme gaps.
 *
 * Pure unit tests, no services.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "decay.h"
#include "engagement.h"
#include "lifecycle.h"
#include "models.h"
#include "satisfaction.h"
#include "value.h"

#define DAY_MS 86400000LL
#define T0 1704067200000LL /* 2024-01-01T00:00:00Z */

/* |a - b| <= rel * max(|a|, |b|), printing both on failure. */
#define assert_rel(a, b, rel)                                                  \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        double m_ = fabs(a_) > fabs(b_) ? fabs(a_) : fabs(b_);                 \
        if (fabs(a_ - b_) > (rel)*m_)                                          \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                \
    } while (0)

/* ---- decay ----------------------------------------------------------------
 */

static const double H = 7.0 * DAY_MS; /* half-life: one week */

static void test_decay_hand_computed(void **state)
{
    (void)state;
    cp_decay_t d;
    cp_decay_init(&d);
    assert_true(cp_decay_at(&d, T0, H) == 0.0);
    cp_decay_add(&d, 4.0, T0, H);
    /* one half-life later: 2; two: 1 */
    assert_rel(cp_decay_at(&d, T0 + 7 * DAY_MS, H), 2.0, 1e-15);
    assert_rel(cp_decay_at(&d, T0 + 14 * DAY_MS, H), 1.0, 1e-15);
    /* before the reference: the score at the reference */
    assert_true(cp_decay_at(&d, T0 - DAY_MS, H) == 4.0);
    /* a newer event decays the sum forward: 4/2 + 1 = 3 at T0 + 7d */
    cp_decay_add(&d, 1.0, T0 + 7 * DAY_MS, H);
    assert_true(d.ref_ms == T0 + 7 * DAY_MS);
    assert_rel(d.score, 3.0, 1e-15);
    /* a late event adds its weight decayed to the reference: 3 + 8/4 */
    cp_decay_add(&d, 8.0, T0 - 7 * DAY_MS, H);
    assert_true(d.ref_ms == T0 + 7 * DAY_MS);
    assert_rel(d.score, 5.0, 1e-15);
    /* equal times add plainly */
    cp_decay_add(&d, 0.5, T0 + 7 * DAY_MS, H);
    assert_rel(d.score, 5.5, 1e-15);
}

/* Every order of the same events gives the same score (relative 1e-9). */
static void test_decay_order_independent(void **state)
{
    (void)state;
    const int64_t t[6] = {T0,
                          T0 + 3 * DAY_MS + 17,
                          T0 - 40 * DAY_MS,
                          T0 + 3 * DAY_MS + 17, /* equal time */
                          T0 + 365 * DAY_MS,
                          T0 + 1};
    const double w[6] = {1.0, 0.5, 3.0, 2.0, 1.25, 0.75};
    /* every permutation of 6 (720) via Heap's algorithm */
    int idx[6] = {0, 1, 2, 3, 4, 5}, c[6] = {0};
    double ref = -1.0;
    int64_t now = T0 + 400 * DAY_MS;
    int perms = 0;
    for (int i = 0;;) {
        cp_decay_t d;
        cp_decay_init(&d);
        for (int k = 0; k < 6; k++)
            cp_decay_add(&d, w[idx[k]], t[idx[k]], H);
        double s = cp_decay_at(&d, now, H);
        assert_true(d.ref_ms == T0 + 365 * DAY_MS);
        if (ref < 0)
            ref = s;
        assert_rel(s, ref, 1e-9);
        perms++;
        while (i < 6 && c[i] >= i) {
            c[i] = 0;
            i++;
        }
        if (i == 6)
            break;
        int j = i % 2 ? c[i] : 0;
        int tmp = idx[j];
        idx[j] = idx[i];
        idx[i] = tmp;
        c[i]++;
        i = 1;
    }
    assert_int_equal(perms, 720);
    /* and the value itself, summed directly */
    double direct = 0;
    for (int k = 0; k < 6; k++)
        direct += w[k] * exp2(-(double)(now - t[k]) / H);
    assert_rel(ref, direct, 1e-12);
}

/* Events thousands of years apart: no overflow, no NaN, old weight gone. */
static void test_decay_extreme_gaps(void **state)
{
    (void)state;
    const int64_t y1970 = 0, y9999 = 253402300799000LL;
    cp_decay_t d;
    cp_decay_init(&d);
    cp_decay_add(&d, 1e300, y1970, 1.0); /* half-life 1 ms */
    cp_decay_add(&d, 2.0, y9999, 1.0);
    assert_true(d.score == 2.0);
    cp_decay_add(&d, 1e300, y1970, 1.0); /* late by 8000 years */
    assert_true(d.score == 2.0);
    assert_true(cp_decay_at(&d, y9999 + 10, 1.0) > 0.0);
    assert_true(isfinite(cp_decay_at(&d, y9999, 1.0)));
    cp_decay_init(&d);
    cp_decay_add(&d, 1.0, y9999, 1e18);
    assert_true(isfinite(cp_decay_at(&d, y9999 + 1, 1e18)));
    assert_true(cp_decay_at(&d, y9999, 1.0) == 1.0);
}

/* ---- engagement -----------------------------------------------------------
 */

static cp_engagement_params_t eng_params(void)
{
    cp_engagement_params_t p = {
        14.0 * DAY_MS, {1.0, 0.5, 1.0, 1.0, 3.0, 2.0}, 20.0, 5.0, 1.0};
    return p;
}

static void test_engagement_levels(void **state)
{
    (void)state;
    cp_engagement_params_t p = eng_params();
    cp_decay_t d;
    cp_decay_init(&d);
    assert_int_equal(cp_engagement_level(&d, T0, &p), CP_ENG_NONE);
    assert_null(cp_engagement_code(CP_ENG_NONE));
    /* 5 cart adds at T0: 15 -> medium; 2 more sessions: 17; 1 more cart
     * add: 20 -> high (boundary is inclusive) */
    for (int i = 0; i < 5; i++)
        cp_engagement_add(&d, CP_BROWSE_CART_ADD, T0, &p);
    assert_int_equal(cp_engagement_level(&d, T0, &p), CP_ENG_MEDIUM);
    cp_engagement_add(&d, CP_BROWSE_SESSION, T0, &p);
    cp_engagement_add(&d, CP_BROWSE_SESSION, T0, &p);
    cp_engagement_add(&d, CP_BROWSE_CART_ADD, T0, &p);
    assert_rel(cp_engagement_score(&d, T0, &p), 20.0, 1e-15);
    assert_int_equal(cp_engagement_level(&d, T0, &p), CP_ENG_HIGH);
    assert_string_equal(cp_engagement_code(CP_ENG_HIGH), "high");
    /* one half-life: 10 -> medium; three: 2.5 -> low; five: 0.625 ->
     * dormant */
    assert_int_equal(cp_engagement_level(&d, T0 + 14 * DAY_MS, &p),
                     CP_ENG_MEDIUM);
    assert_int_equal(cp_engagement_level(&d, T0 + 42 * DAY_MS, &p), CP_ENG_LOW);
    assert_int_equal(cp_engagement_level(&d, T0 + 70 * DAY_MS, &p),
                     CP_ENG_DORMANT);
    assert_string_equal(cp_engagement_code(CP_ENG_DORMANT), "dormant");
    /* exactly at the low boundary: 20 * 2^-(ln2(20)) = 1 */
    cp_decay_t one;
    cp_decay_init(&one);
    cp_engagement_add(&one, CP_BROWSE_PRODUCT, T0, &p);
    assert_int_equal(cp_engagement_level(&one, T0, &p), CP_ENG_LOW);
    assert_int_equal(cp_engagement_level(&one, T0 + 1, &p), CP_ENG_DORMANT);
}

/* ---- satisfaction ---------------------------------------------------------
 */

static cp_satisfaction_params_t sat_params(void)
{
    cp_satisfaction_params_t p = {30.0 * DAY_MS, 2.0, 3, 2, 4};
    return p;
}

static void test_satisfaction_rules(void **state)
{
    (void)state;
    cp_satisfaction_params_t p = sat_params();
    cp_support_t s;
    cp_support_init(&s);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_NONE);
    /* an opened ticket alone: neutral */
    cp_support_apply(&s, CP_SUPPORT_TICKET_OPENED, 0, 0, T0, &p);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_NEUTRAL);
    /* CSAT 5 with a ticket open: still neutral; resolved: satisfied */
    cp_support_apply(&s, CP_SUPPORT_CSAT, 5, 0, T0 + 1000, &p);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_NEUTRAL);
    cp_support_apply(&s, CP_SUPPORT_TICKET_RESOLVED, 0, 90.0, T0 + 2000, &p);
    assert_int_equal(s.open_tickets, 0);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_SATISFIED);
    assert_string_equal(cp_satisfaction_code(CP_SAT_SATISFIED), "satisfied");
    /* a resolve without an open ticket never goes below 0 */
    cp_support_apply(&s, CP_SUPPORT_TICKET_RESOLVED, 0, 30.0, T0 + 3000, &p);
    assert_int_equal(s.open_tickets, 0);
    assert_int_equal(s.resolved, 2);
    assert_rel(s.resolution_min_sum, 120.0, 0);
    /* one complaint: decayed 1 >= 0.5 -> not satisfied, neutral */
    cp_support_apply(&s, CP_SUPPORT_COMPLAINT, 0, 0, T0, &p);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_NEUTRAL);
    /* one half-life later 0.5: still not satisfied; a bit later: yes */
    assert_int_equal(cp_satisfaction_level(&s, T0 + 30 * DAY_MS, &p),
                     CP_SAT_NEUTRAL);
    assert_int_equal(cp_satisfaction_level(&s, T0 + 30 * DAY_MS + 1, &p),
                     CP_SAT_SATISFIED);
    /* a second complaint the same day: 2 >= 2 -> at risk */
    cp_support_apply(&s, CP_SUPPORT_COMPLAINT, 0, 0, T0, &p);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_AT_RISK);
    assert_string_equal(cp_satisfaction_code(CP_SAT_AT_RISK), "at_risk");
}

static void test_satisfaction_latest_and_nps(void **state)
{
    (void)state;
    cp_satisfaction_params_t p = sat_params();
    cp_support_t s;
    cp_support_init(&s);
    cp_support_apply(&s, CP_SUPPORT_CSAT, 4, 0, T0 + 10, &p);
    cp_support_apply(&s, CP_SUPPORT_CSAT, 1, 0, T0, &p); /* late: older */
    assert_int_equal(s.csat_last, 4);
    assert_rel(cp_support_csat_avg(&s), 2.5, 0);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_SATISFIED);
    cp_support_apply(&s, CP_SUPPORT_CSAT, 2, 0, T0 + 10, &p); /* equal time */
    assert_int_equal(s.csat_last, 2);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_AT_RISK);
    cp_support_apply(&s, CP_SUPPORT_CSAT, 3, 0, T0 + 20, &p);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_NEUTRAL);
    /* NPS: classes and their effect */
    assert_int_equal(cp_nps_class(-1), CP_NPS_NONE);
    assert_int_equal(cp_nps_class(0), CP_NPS_DETRACTOR);
    assert_int_equal(cp_nps_class(6), CP_NPS_DETRACTOR);
    assert_int_equal(cp_nps_class(7), CP_NPS_PASSIVE);
    assert_int_equal(cp_nps_class(8), CP_NPS_PASSIVE);
    assert_int_equal(cp_nps_class(9), CP_NPS_PROMOTER);
    assert_int_equal(cp_nps_class(10), CP_NPS_PROMOTER);
    assert_string_equal(cp_nps_code(CP_NPS_PASSIVE), "passive");
    assert_null(cp_nps_code(CP_NPS_NONE));
    cp_support_apply(&s, CP_SUPPORT_NPS, 10, 0, T0, &p);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_SATISFIED);
    cp_support_apply(&s, CP_SUPPORT_NPS, 6, 0, T0 - 1, &p); /* late */
    assert_int_equal(s.nps_last, 10);
    cp_support_apply(&s, CP_SUPPORT_NPS, 6, 0, T0 + 1, &p);
    assert_int_equal(cp_satisfaction_level(&s, T0, &p), CP_SAT_AT_RISK);
    /* open tickets at the threshold */
    cp_support_t t;
    cp_support_init(&t);
    for (int i = 0; i < 2; i++)
        cp_support_apply(&t, CP_SUPPORT_TICKET_OPENED, 0, 0, T0, &p);
    assert_int_equal(cp_satisfaction_level(&t, T0, &p), CP_SAT_NEUTRAL);
    cp_support_apply(&t, CP_SUPPORT_TICKET_OPENED, 0, 0, T0, &p);
    assert_int_equal(cp_satisfaction_level(&t, T0, &p), CP_SAT_AT_RISK);
}

/* ---- lifecycle ------------------------------------------------------------
 */

static const cp_lifecycle_params_t LC = {30, 4, 90, 180, 30};

static cp_lifecycle_t lc(int64_t orders, int64_t first_day, int64_t last_day,
                         int64_t won_back_day, int64_t today)
{
    cp_lifecycle_in_t in = {orders, 1, first_day, last_day, won_back_day};
    return cp_lifecycle_eval(&in, today, &LC);
}

static void test_lifecycle_rules(void **state)
{
    (void)state;
    cp_lifecycle_in_t none = {0, 0, 0, 0, -1};
    assert_int_equal(cp_lifecycle_eval(&none, 100, &LC), CP_LC_NONE);
    assert_null(cp_lifecycle_code(CP_LC_NONE));
    assert_int_equal(lc(0, 0, 0, -1, 100), CP_LC_PROSPECT);
    /* new: first order fewer than 30 days ago */
    assert_int_equal(lc(1, 100, 100, -1, 129), CP_LC_NEW);
    assert_int_equal(lc(1, 100, 100, -1, 130), CP_LC_ACTIVE);
    /* loyal from 4 orders, once no longer new */
    assert_int_equal(lc(4, 100, 120, -1, 129), CP_LC_NEW);
    assert_int_equal(lc(4, 100, 120, -1, 130), CP_LC_LOYAL);
    assert_int_equal(lc(3, 100, 120, -1, 130), CP_LC_ACTIVE);
    /* at risk from 90 days since the last order, churned from 180, even
     * when loyal */
    assert_int_equal(lc(9, 100, 200, -1, 289), CP_LC_LOYAL);
    assert_int_equal(lc(9, 100, 200, -1, 290), CP_LC_AT_RISK);
    assert_int_equal(lc(9, 100, 200, -1, 379), CP_LC_AT_RISK);
    assert_int_equal(lc(9, 100, 200, -1, 380), CP_LC_CHURNED);
    assert_string_equal(cp_lifecycle_code(CP_LC_CHURNED), "churned");
    /* won back: for 30 days after the order that ended the churn */
    int64_t wb = cp_lifecycle_won_back_day(CP_LC_CHURNED, 400, -1);
    assert_int_equal(wb, 400);
    assert_int_equal(cp_lifecycle_won_back_day(CP_LC_AT_RISK, 400, -1), -1);
    assert_int_equal(cp_lifecycle_won_back_day(CP_LC_ACTIVE, 500, 400), 400);
    assert_int_equal(lc(10, 100, 400, wb, 400), CP_LC_WON_BACK);
    assert_int_equal(lc(10, 100, 400, wb, 429), CP_LC_WON_BACK);
    assert_int_equal(lc(10, 100, 400, wb, 430), CP_LC_LOYAL);
    assert_int_equal(lc(2, 100, 400, wb, 430), CP_LC_ACTIVE);
    assert_string_equal(cp_lifecycle_code(CP_LC_WON_BACK), "won_back");
    /* a won-back customer who lapses again is at risk, not won back */
    assert_int_equal(lc(10, 100, 400, 400, 490), CP_LC_AT_RISK);
}

/* ---- value ----------------------------------------------------------------
 */

static const cp_value_params_t VP = {0.4, 0.4, 0.2, 100.0, 200.0, 0.6, 0.5};

static cp_value_t val(double m, double clv, double p_alive, int strategic,
                      int lapsing)
{
    cp_value_in_t in = {1, m, clv, p_alive, strategic, lapsing};
    return cp_value_eval(&in, &VP);
}

static void test_value_score_and_tiers(void **state)
{
    (void)state;
    /* m = 300: H = 0.75; clv = 200: P = 0.5; strategic: S = 1;
     * score = 0.4*0.75 + 0.4*0.5 + 0.2*1 = 0.7 */
    cp_value_t v = val(300, 200, 0.9, 1, 0);
    assert_rel(v.historical, 0.75, 1e-15);
    assert_rel(v.predicted, 0.5, 1e-15);
    assert_rel(v.strategic, 1.0, 0);
    assert_rel(v.score, 0.7, 1e-15);
    assert_int_equal(v.tier, CP_TIER_HIGH_VALUE);
    assert_string_equal(cp_tier_code(v.tier), "high_value");
    /* same but lapsing or not alive: churn risk (H >= 0.5) */
    assert_int_equal(val(300, 200, 0.9, 1, 1).tier, CP_TIER_CHURN_RISK);
    assert_int_equal(val(300, 200, 0.49, 1, 0).tier, CP_TIER_CHURN_RISK);
    /* alive exactly at the threshold counts as alive */
    assert_int_equal(val(300, 200, 0.5, 1, 0).tier, CP_TIER_HIGH_VALUE);
    /* low history, high prediction, alive: potential (score 0.4*0.0909 +
     * 0.4*0.6 < 0.6) */
    cp_value_t p = val(10, 300, 0.8, 0, 0);
    assert_rel(p.score, 0.4 * (10.0 / 110.0) + 0.4 * 0.6, 1e-15);
    assert_int_equal(p.tier, CP_TIER_POTENTIAL);
    /* low everything: low value; history just below 0.5 while lapsing */
    assert_int_equal(val(10, 10, 0.9, 0, 0).tier, CP_TIER_LOW_VALUE);
    assert_int_equal(val(99.99, 10, 0.1, 0, 1).tier, CP_TIER_LOW_VALUE);
    assert_int_equal(val(100, 10, 0.1, 0, 1).tier, CP_TIER_CHURN_RISK);
    /* no orders: no tier; zero and negative inputs normalise to 0 */
    cp_value_in_t in = {0, 0, -5, 0, 0, 0};
    cp_value_t z = cp_value_eval(&in, &VP);
    assert_int_equal(z.tier, CP_TIER_NONE);
    assert_null(cp_tier_code(CP_TIER_NONE));
    assert_true(z.score == 0.0 && z.predicted == 0.0);
    /* weights are normalised: doubling all keeps the score */
    cp_value_params_t vp2 = VP;
    vp2.w_historical *= 2;
    vp2.w_predicted *= 2;
    vp2.w_strategic *= 2;
    cp_value_in_t in2 = {1, 300, 200, 0.9, 1, 0};
    assert_rel(cp_value_eval(&in2, &vp2).score, 0.7, 1e-15);
}

/* ---- all models of one customer (scoring/models.h) ----------------------- */

static cp_models_params_t default_params(void)
{
    cp_models_params_t p = {
        .engagement = {.half_life_ms = 14.0 * DAY_MS,
                       .weight = {1, 0.5, 1, 1, 3, 2},
                       .high = 20,
                       .medium = 5,
                       .low = 1},
        .satisfaction = {.complaint_half_life_ms = 30.0 * DAY_MS,
                         .at_risk_complaints = 2,
                         .at_risk_open_tickets = 3,
                         .at_risk_csat = 2,
                         .satisfied_csat = 4},
        .lifecycle = {30, 4, 90, 180, 30},
        .value = {0.4, 0.4, 0.2, 100.0, 200.0, 0.6, 0.5},
        .has_btyd = 0,
        .has_gg = 0,
        .btyd_model = CP_BTYD_BGNBD,
        .clv = {12, 0.01, CP_BTYD_WEEKS},
        .minor_per_unit = 100.0,
    };
    return p;
}

/* Two orders (days 1000 and 1010), 300.00 in total, one repeat day. */
static void two_orders(cp_state_t *st)
{
    cp_state_init(st);
    st->orders = 2;
    st->monetary = 30000;
    st->has_order_time = 1;
    st->first_ms = 1000 * DAY_MS;
    st->first_day = 1000;
    st->last_ms = 1010 * DAY_MS;
    st->last_day = 1010;
    st->repeat_days = 1;
    st->first_spend = 10000; /* 100.00 on day 1000, 200.00 on day 1010 */
    st->events = 2;
}

static void test_models_without_btyd(void **state)
{
    (void)state;
    cp_models_params_t p = default_params();
    cp_state_t st;
    cp_models_t mo;
    cp_state_init(&st);
    cp_models_eval(&st, 0, 0, &p, &mo);
    assert_int_equal(mo.stage, CP_LC_NONE);
    assert_int_equal(mo.eng, CP_ENG_NONE);
    assert_int_equal(mo.sat, CP_SAT_NONE);
    assert_int_equal(mo.value.tier, CP_TIER_NONE);
    assert_int_equal(mo.has_btyd, 0);

    two_orders(&st);
    cp_models_eval(&st, 1020 * DAY_MS, 1020, &p, &mo);
    assert_int_equal(mo.stage, CP_LC_NEW); /* first order 20 days ago */
    assert_true(isnan(mo.p_alive) && isnan(mo.clv));
    /* H = 300 / 400, P = 0 (no CLV yet), S = 0: 0.4 * 0.75 = 0.3 */
    assert_rel(mo.value.historical, 0.75, 1e-15);
    assert_rel(mo.value.score, 0.3, 1e-15);
    assert_int_equal(mo.value.tier, CP_TIER_LOW_VALUE);
    /* strategic adds 0.2 */
    st.strategic = 1;
    cp_models_eval(&st, 1020 * DAY_MS, 1020, &p, &mo);
    assert_rel(mo.value.score, 0.5, 1e-15);
    /* 90 days after the last order: at risk, lapsing -> churn_risk */
    cp_models_eval(&st, 1100 * DAY_MS, 1100, &p, &mo);
    assert_int_equal(mo.stage, CP_LC_AT_RISK);
    assert_int_equal(mo.value.tier, CP_TIER_CHURN_RISK);
    cp_models_eval(&st, 1190 * DAY_MS, 1190, &p, &mo);
    assert_int_equal(mo.stage, CP_LC_CHURNED);
    /* won back on day 1190 (the consumer sets yw), active 30 days */
    st.won_back_day = 1190;
    st.last_day = 1190;
    st.orders = 3;
    cp_models_eval(&st, 1200 * DAY_MS, 1200, &p, &mo);
    assert_int_equal(mo.stage, CP_LC_WON_BACK);
    cp_models_eval(&st, 1220 * DAY_MS, 1220, &p, &mo);
    assert_int_equal(mo.stage, CP_LC_ACTIVE);
    /* a browsing-only customer is a prospect with a level */
    cp_state_init(&st);
    st.events = 1;
    st.browse_n[CP_BROWSE_CART_ADD] = 1;
    cp_decay_add(&st.engagement, 3, T0, p.engagement.half_life_ms);
    cp_models_eval(&st, T0, 0, &p, &mo);
    assert_int_equal(mo.stage, CP_LC_PROSPECT);
    assert_int_equal(mo.eng, CP_ENG_LOW);
    /* "now" before the reference (event clock behind): no growth */
    cp_models_eval(&st, T0 - DAY_MS, 0, &p, &mo);
    assert_rel(mo.engagement, 3.0, 0);
}

static void test_models_btyd_plumbing(void **state)
{
    (void)state;
    cp_models_params_t p = default_params();
    p.has_btyd = 1;
    p.has_gg = 1;
    p.btyd = (cp_btyd_params_t){0.2426, 4.4135, 0.7929, 2.4258};
    p.gg = (cp_btyd_gg_params_t){6.25, 3.74, 15.44};
    cp_state_t st;
    cp_models_t mo;
    two_orders(&st);
    cp_models_eval(&st, 1024 * DAY_MS, 1024, &p, &mo);
    /* x = 1, t_x = 10 days, T = 24 days, in weeks */
    assert_int_equal(mo.has_btyd, 1);
    assert_rel(mo.x, 1.0, 0);
    assert_rel(mo.t_x, 10.0 / 7.0, 1e-15);
    assert_rel(mo.T, 24.0 / 7.0, 1e-15);
    double pa = cp_btyd_p_alive(CP_BTYD_BGNBD, &p.btyd, 1, 10.0 / 7, 24.0 / 7);
    assert_rel(mo.p_alive, pa, 1e-15);
    double e30;
    assert_int_equal(cp_btyd_expected_cond(CP_BTYD_BGNBD, &p.btyd, 1, 10.0 / 7,
                                           24.0 / 7, 30.0 / 7, &e30),
                     CP_BTYD_OK);
    assert_rel(mo.expected[0], e30, 1e-15);
    double clv;
    /* zbar = (m - z) / b = 200.00 currency units: the repeat day only */
    assert_rel(cp_models_zbar(&st), 20000.0, 0);
    assert_int_equal(cp_btyd_clv(CP_BTYD_BGNBD, &p.btyd, &p.gg, &p.clv, 1,
                                 10.0 / 7, 24.0 / 7, 200.0, &clv),
                     CP_BTYD_OK);
    assert_rel(mo.clv, clv, 1e-15);
    /* z unknown (a hash from before z): the mean order value m / o */
    st.first_spend = -1;
    assert_rel(cp_models_zbar(&st), 15000.0, 0);
    cp_models_t mo2;
    cp_models_eval(&st, 1024 * DAY_MS, 1024, &p, &mo2);
    double clv2;
    assert_int_equal(cp_btyd_clv(CP_BTYD_BGNBD, &p.btyd, &p.gg, &p.clv, 1,
                                 10.0 / 7, 24.0 / 7, 150.0, &clv2),
                     CP_BTYD_OK);
    assert_rel(mo2.clv, clv2, 1e-15);
    /* no repeat day: m / o */
    st.first_spend = 10000;
    st.repeat_days = 0;
    assert_rel(cp_models_zbar(&st), 15000.0, 0);
    st.repeat_days = 1;
    assert_true(clv > 0);
    assert_rel(mo.value.predicted, clv / (clv + 200.0), 1e-15);

    /* days as the unit */
    p.clv.unit = CP_BTYD_DAYS;
    cp_models_eval(&st, 1024 * DAY_MS, 1024, &p, &mo);
    assert_rel(mo.t_x, 10.0, 0);
    assert_rel(mo.T, 24.0, 0);

    /* x = 0: BG/NBD says alive forever, MBG/NBD fades with T */
    cp_state_init(&st);
    st.orders = 1;
    st.monetary = 5000;
    st.has_order_time = 1;
    st.first_day = st.last_day = 1000;
    p.clv.unit = CP_BTYD_WEEKS;
    cp_models_eval(&st, 0, 1000 + 700, &p, &mo);
    assert_rel(mo.p_alive, 1.0, 0);
    p.btyd_model = CP_BTYD_MBGNBD;
    cp_models_eval(&st, 0, 1000 + 700, &p, &mo);
    /* x = t_x = 0: 1 / (1 + a / b * ((alpha + T) / alpha)^r), T = 100 */
    assert_rel(mo.p_alive,
               1.0 / (1.0 + 0.7929 / 2.4258 * pow(104.4135 / 4.4135, 0.2426)),
               1e-12);
    double late = mo.p_alive;
    cp_models_eval(&st, 0, 1000 + 1400, &p, &mo);
    assert_true(mo.p_alive < late);
    /* "now" behind the last order: T = t_x, never negative */
    cp_models_eval(&st, 0, 990, &p, &mo);
    assert_rel(mo.T, 0.5 / 7.0, 1e-15);
    assert_false(isnan(mo.p_alive));
    /* extreme: a huge monetary stays finite */
    st.monetary = INT64_MAX;
    cp_models_eval(&st, 0, 1007, &p, &mo);
    assert_true(isfinite(mo.value.score) && mo.value.score <= 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decay_hand_computed),
        cmocka_unit_test(test_decay_order_independent),
        cmocka_unit_test(test_decay_extreme_gaps),
        cmocka_unit_test(test_engagement_levels),
        cmocka_unit_test(test_satisfaction_rules),
        cmocka_unit_test(test_satisfaction_latest_and_nps),
        cmocka_unit_test(test_lifecycle_rules),
        cmocka_unit_test(test_value_score_and_tiers),
        cmocka_unit_test(test_models_without_btyd),
        cmocka_unit_test(test_models_btyd_plumbing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
