/*
 * test_scoring_churn.c - churn rules, risk score and level, and the whole
 * transition table of the warning hysteresis (docs/churn.md), with
 * hand-computed boundaries: each rule exactly at, just before and just
 * after its threshold, equal times and "now" before the latest event.
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

#include "churn.h"
#include "churn_fixtures.h"

#define T0 (1000 * DAY_MS)

static unsigned bit(cp_churn_reason_t r)
{
    return 1u << r;
}

static cp_churn_eval_t eval(const cp_state_t *st, const cp_churn_state_t *cs,
                            int64_t now_ms, int64_t today)
{
    cp_models_params_t mp = fx_models();
    cp_churn_params_t p = fx_churn();
    cp_churn_eval_t ev;
    cp_churn_eval(st, cs, NULL, now_ms, today, &mp, &p, &ev);
    return ev;
}

/* ---- overdue --------------------------------------------------------------
 */

static void test_overdue_own_gap(void **state)
{
    (void)state;
    cp_state_t st;
    cp_churn_state_t cs;
    cp_churn_state_init(&cs);
    /* days 100..130, 3 repeat days: gap 10, threshold max(14, 2 * 10) = 20 */
    fx_orders(&st, 4, 100, 130, 3);
    cp_churn_eval_t ev = eval(&st, &cs, 150 * DAY_MS, 150);
    assert_int_equal(ev.days_since_last, 20);
    assert_int_equal(ev.gap_own, 1);
    assert_rel(ev.gap_days, 10.0, 0);
    assert_rel(ev.overdue_days, 20.0, 0);
    assert_false(ev.reasons & bit(CP_CHURN_OVERDUE)); /* 20 > 20 is false */
    ev = eval(&st, &cs, 151 * DAY_MS, 151);
    assert_true(ev.reasons & bit(CP_CHURN_OVERDUE));
    assert_rel(ev.score, 0.5, 0);
    assert_int_equal(ev.level, CP_CHURN_LEVEL_MEDIUM);
    /* a fractional threshold: span 31, b 3 -> gap 10.33, threshold 20.67:
     * day 20 not yet, day 21 overdue */
    fx_orders(&st, 4, 99, 130, 3);
    assert_false(eval(&st, &cs, 0, 150).reasons & bit(CP_CHURN_OVERDUE));
    assert_true(eval(&st, &cs, 0, 151).reasons & bit(CP_CHURN_OVERDUE));
}

static void test_overdue_floor_and_fallback(void **state)
{
    (void)state;
    cp_state_t st;
    cp_churn_state_t cs;
    cp_churn_state_init(&cs);
    /* gap 2 (span 10, b 5): 2 * 2 = 4 < floor 14 */
    fx_orders(&st, 6, 120, 130, 5);
    cp_churn_eval_t ev = eval(&st, &cs, 0, 144);
    assert_rel(ev.overdue_days, 14.0, 0);
    assert_false(ev.conds & CP_CHURN_C_OVERDUE);
    assert_true(eval(&st, &cs, 0, 145).conds & CP_CHURN_C_OVERDUE);
    /* one order: the fallback gap 45 -> threshold 90 */
    fx_orders(&st, 1, 130, 130, 0);
    ev = eval(&st, &cs, 0, 220);
    assert_int_equal(ev.gap_own, 0);
    assert_rel(ev.gap_days, 45.0, 0);
    assert_false(ev.conds & CP_CHURN_C_OVERDUE);
    assert_true(eval(&st, &cs, 0, 221).conds & CP_CHURN_C_OVERDUE);
    /* repeat days without a span (layout-1 remnants): fallback too */
    fx_orders(&st, 2, 130, 130, 1);
    assert_int_equal(eval(&st, &cs, 0, 221).gap_own, 0);
    /* "today" before the last order (event clock behind): 0 days */
    ev = eval(&st, &cs, 0, 100);
    assert_int_equal(ev.days_since_last, 0);
    assert_false(ev.conds & CP_CHURN_C_OVERDUE);
    /* no order: no figure, no reason */
    cp_state_init(&st);
    ev = eval(&st, &cs, 0, 100);
    assert_int_equal(ev.days_since_last, -1);
    assert_true(isnan(ev.overdue_days));
    assert_int_equal(ev.reasons, 0);
    assert_int_equal(ev.level, CP_CHURN_LEVEL_NONE);
    assert_true(ev.signals_recovered);
}

/* ---- p_alive_low ----------------------------------------------------------
 */

static void test_p_alive_low(void **state)
{
    (void)state;
    cp_models_params_t mp = fx_models();
    cp_churn_params_t p = fx_churn();
    cp_state_t st;
    cp_churn_state_t cs;
    cp_churn_state_init(&cs);
    fx_orders(&st, 3, 1000, 1070, 2);
    /* no BTYD parameters: unknown, never a reason, counts as recovered */
    cp_churn_eval_t ev;
    cp_churn_eval(&st, &cs, NULL, 0, 1100, &mp, &p, &ev);
    assert_true(isnan(ev.p_alive));
    assert_true(ev.conds & CP_CHURN_C_PALIVE_OK);
    for (int m = 0; m < 2; m++) {
        fx_with_btyd(&mp, m ? CP_BTYD_MBGNBD : CP_BTYD_BGNBD);
        /* the same P(alive) as cp_models_eval, day by day */
        int64_t low_from = -1, ok_until = -1;
        double prev = 2;
        for (int64_t d = 1060; d <= 3000; d++) {
            cp_models_t mo;
            cp_models_eval(&st, d * DAY_MS, d, &mp, &mo);
            double pa = cp_churn_p_alive(&st, d, &mp);
            assert_true(pa == mo.p_alive);
            assert_true(pa <= prev); /* non-increasing in today */
            prev = pa;
            cp_churn_eval(&st, &cs, &mo, d * DAY_MS, d, &mp, &p, &ev);
            assert_true(ev.p_alive == pa);
            int low = (ev.reasons & bit(CP_CHURN_P_ALIVE_LOW)) != 0;
            assert_int_equal(low, pa < 0.3);
            assert_int_equal((ev.conds & CP_CHURN_C_PALIVE_OK) != 0, pa >= 0.5);
            if (low && low_from < 0)
                low_from = d;
            if (pa >= 0.5)
                ok_until = d;
        }
        /* both thresholds are crossed in that range, recovery first */
        assert_true(ok_until > 1070 && low_from > ok_until);
    }
}

/* ---- engagement_drop ------------------------------------------------------
 */

/* One browsing burst of score 20 at T0, peak half-life 60 d, engagement
 * half-life 14 d: ratio(t) = 2^(-t (1/14 - 1/60)) = 2^(-46 t / 840), so
 * ratio < 0.25 from t = 1680/46 = 36.52 d and >= 0.5 until 840/46 =
 * 18.26 d; the peak 20 * 2^(-t/60) stays >= 5 until exactly 120 d. */
static void burst(cp_state_t *st, cp_churn_state_t *cs, double score, int64_t t)
{
    cp_models_params_t mp = fx_models();
    cp_churn_params_t p = fx_churn();
    cp_decay_add(&st->engagement, score, t, mp.engagement.half_life_ms);
    st->browse_n[CP_BROWSE_CART_ADD]++;
    cp_churn_on_browse(cs, &st->engagement, &p);
}

static void test_engagement_drop(void **state)
{
    (void)state;
    cp_state_t st;
    cp_churn_state_t cs;
    cp_state_init(&st);
    cp_churn_state_init(&cs);
    burst(&st, &cs, 20, T0);
    assert_true(cs.eng_peak.ref_ms == T0 && cs.eng_peak.score == 20);
    cp_churn_eval_t ev = eval(&st, &cs, T0, 0);
    assert_rel(ev.eng_ratio, 1.0, 0);
    assert_true(ev.conds & CP_CHURN_C_ENG_PEAK);
    assert_true(ev.conds & CP_CHURN_C_ENG_OK);
    assert_int_equal(ev.reasons, 0);
    int64_t t_low = T0 + (int64_t)(1680.0 / 46.0 * DAY_MS);
    ev = eval(&st, &cs, t_low - 1000, 0);
    assert_false(ev.reasons & bit(CP_CHURN_ENGAGEMENT_DROP));
    ev = eval(&st, &cs, t_low + 1000, 0);
    assert_true(ev.reasons & bit(CP_CHURN_ENGAGEMENT_DROP));
    assert_rel(ev.eng_ratio, 0.25, 1e-6);
    assert_rel(ev.eng_peak, 20 * exp2(-(1680.0 / 46.0) / 60.0), 1e-6);
    assert_int_equal(ev.level, CP_CHURN_LEVEL_LOW); /* 0.25 */
    int64_t t_ok = T0 + (int64_t)(840.0 / 46.0 * DAY_MS);
    assert_true(eval(&st, &cs, t_ok - 1000, 0).conds & CP_CHURN_C_ENG_OK);
    assert_false(eval(&st, &cs, t_ok + 1000, 0).conds & CP_CHURN_C_ENG_OK);
    /* the peak is 5 exactly at 120 d (2^-2): still a peak; then not */
    ev = eval(&st, &cs, T0 + 120 * DAY_MS, 0);
    assert_true(ev.eng_peak == 5.0);
    assert_true(ev.reasons & bit(CP_CHURN_ENGAGEMENT_DROP));
    ev = eval(&st, &cs, T0 + 120 * DAY_MS + 1, 0);
    assert_false(ev.conds & CP_CHURN_C_ENG_PEAK);
    assert_int_equal(ev.reasons, 0);
    /* not recovered in between (engagement below half the peak), but
     * recovered once the peak is gone */
    assert_false(eval(&st, &cs, T0 + 60 * DAY_MS, 0).signals_recovered);
    assert_true(ev.signals_recovered);
}

static void test_engagement_peak_follows(void **state)
{
    (void)state;
    cp_state_t st;
    cp_churn_state_t cs;
    cp_state_init(&st);
    cp_churn_state_init(&cs);
    burst(&st, &cs, 16, T0);
    /* 14 d later: engagement 8 + 1 = 9; peak 16 * 2^(-14/60) > 9: held */
    burst(&st, &cs, 1, T0 + 14 * DAY_MS);
    assert_true(cs.eng_peak.ref_ms == st.engagement.ref_ms);
    assert_rel(cs.eng_peak.score, 16 * exp2(-14.0 / 60.0), 1e-15);
    /* a burst above the held peak raises it to the score */
    burst(&st, &cs, 40, T0 + 14 * DAY_MS);
    assert_rel(cs.eng_peak.score, 49.0, 1e-15);
    /* a late event (before the reference) keeps the reference */
    burst(&st, &cs, 2, T0);
    assert_true(cs.eng_peak.ref_ms == T0 + 14 * DAY_MS);
    assert_rel(cs.eng_peak.score, 50.0, 1e-15);
    /* a hash written before the peak: the score is its own peak */
    cp_churn_state_init(&cs);
    cp_churn_eval_t ev = eval(&st, &cs, T0 + 100 * DAY_MS, 0);
    assert_rel(ev.eng_ratio, 1.0, 0);
    assert_false(ev.conds & CP_CHURN_C_ENG_LOW);
    /* "now" before the reference: the values at the reference */
    burst(&st, &cs, 0, T0 + 14 * DAY_MS);
    ev = eval(&st, &cs, T0, 0);
    assert_rel(ev.engagement, 50.0, 1e-15);
    assert_rel(ev.eng_ratio, 1.0, 1e-15);
}

/* ---- service_risk ---------------------------------------------------------
 */

static void test_service_risk(void **state)
{
    (void)state;
    cp_models_params_t mp = fx_models();
    cp_state_t st;
    cp_churn_state_t cs;
    cp_state_init(&st);
    cp_churn_state_init(&cs);
    /* one complaint: 1 at T0, 0.5 at 30 d (exactly: 2^-1), 0.25 at 60 d */
    cp_support_apply(&st.support, CP_SUPPORT_COMPLAINT, 0, 0, T0,
                     &mp.satisfaction);
    cp_churn_eval_t ev = eval(&st, &cs, T0, 0);
    assert_true(ev.reasons == bit(CP_CHURN_SERVICE_RISK));
    assert_rel(ev.score, 0.4, 0);
    assert_int_equal(ev.level, CP_CHURN_LEVEL_LOW);
    ev = eval(&st, &cs, T0 + 30 * DAY_MS, 0);
    assert_true(ev.complaints == 0.5);
    assert_true(ev.reasons & bit(CP_CHURN_SERVICE_RISK));
    ev = eval(&st, &cs, T0 + 30 * DAY_MS + 1, 0);
    assert_int_equal(ev.reasons, 0);
    assert_false(ev.signals_recovered); /* 0.5 > 0.25 */
    ev = eval(&st, &cs, T0 + 60 * DAY_MS, 0);
    assert_false(ev.conds & CP_CHURN_C_COMPLAINTS_OK); /* 0.25 exactly */
    ev = eval(&st, &cs, T0 + 60 * DAY_MS + 1, 0);
    assert_true(ev.signals_recovered);
    /* a low CSAT (2) counts for 30 days: [T0, T0 + 30 d) */
    cp_support_init(&st.support);
    cp_support_apply(&st.support, CP_SUPPORT_CSAT, 2, 0, T0, &mp.satisfaction);
    ev = eval(&st, &cs, T0 + 30 * DAY_MS - 1, 0);
    assert_true(ev.reasons & bit(CP_CHURN_SERVICE_RISK));
    assert_int_equal(ev.csat_last, 2);
    ev = eval(&st, &cs, T0 + 30 * DAY_MS, 0);
    assert_int_equal(ev.reasons, 0);
    assert_rel(ev.csat_age_days, 30.0, 0);
    /* before the survey (event clock behind): age 0, in the window */
    ev = eval(&st, &cs, T0 - DAY_MS, 0);
    assert_true(ev.reasons & bit(CP_CHURN_SERVICE_RISK));
    assert_true(ev.csat_age_days == 0);
    /* a CSAT of 3 is not low */
    cp_support_apply(&st.support, CP_SUPPORT_CSAT, 3, 0, T0 + 1,
                     &mp.satisfaction);
    assert_int_equal(eval(&st, &cs, T0 + 2, 0).reasons, 0);
}

/* ---- value_drop -----------------------------------------------------------
 */

static void test_value_drop(void **state)
{
    (void)state;
    cp_churn_params_t p = fx_churn();
    cp_state_t st;
    cp_churn_state_t cs;
    cp_state_init(&st);
    cp_churn_state_init(&cs);
    /* one order: no norm, never a reason */
    cp_churn_on_order(&cs, 10000, T0, &p);
    cp_churn_eval_t ev = eval(&st, &cs, T0 + 1000 * DAY_MS, 0);
    assert_false(ev.conds & CP_CHURN_C_VALUE_NORM);
    assert_true(isnan(ev.spend_ratio));
    assert_true(ev.conds & CP_CHURN_C_VALUE_OK);
    /* 100.00 at T0 and at T0 + 30 d. At T0 + 30 d: short sum 150.00,
     * long 100 (2^(-1/6) + 1); rates sum * ln 2 / half-life per day;
     * ratio = (150 / 30) / (long / 180) = 900 / (2^(-1/6) + 1) / 100 ... */
    cp_churn_on_order(&cs, 10000, T0 + 30 * DAY_MS, &p);
    assert_int_equal(cs.spend_orders, 2);
    double sl = 10000 * (exp2(-1.0 / 6.0) + 1);
    double r0 = (15000.0 / 30.0) / (sl / 180.0);
    ev = eval(&st, &cs, T0 + 30 * DAY_MS, 0);
    assert_rel(ev.spend_rate_short, 15000 * log(2) / 30, 1e-12);
    assert_rel(ev.spend_rate_long, sl * log(2) / 180, 1e-12);
    assert_rel(ev.spend_ratio, r0, 1e-12);
    /* ... falling as 2^(-t (1/30 - 1/180)) = 2^(-t / 36): below 0.3 from
     * t = 36 log2(r0 / 0.3) days */
    double t_low = 36.0 * log2(r0 / 0.3);
    assert_true(t_low > 143 && t_low < 144);
    int64_t at = T0 + 30 * DAY_MS + (int64_t)(t_low * DAY_MS);
    assert_false(eval(&st, &cs, at - 1000, 0).reasons &
                 bit(CP_CHURN_VALUE_DROP));
    ev = eval(&st, &cs, at + 1000, 0);
    assert_true(ev.reasons & bit(CP_CHURN_VALUE_DROP));
    assert_rel(ev.spend_ratio, 0.3, 1e-6);
    /* recovery threshold 0.6: one doubling (36 d) before */
    int64_t ok = at - 36 * DAY_MS;
    assert_true(eval(&st, &cs, ok - 1000, 0).conds & CP_CHURN_C_VALUE_OK);
    assert_false(eval(&st, &cs, ok + 1000, 0).conds & CP_CHURN_C_VALUE_OK);
    /* both sums keep one reference: a late order does not move it */
    cp_churn_on_order(&cs, 500, T0, &p);
    assert_true(cs.spend_short.ref_ms == cs.spend_long.ref_ms);
    assert_int_equal(cs.spend_orders, 2); /* saturates */
}

/* ---- score and level ------------------------------------------------------
 */

static void test_score_and_level(void **state)
{
    (void)state;
    cp_churn_params_t p = fx_churn();
    assert_true(cp_churn_score(0, &p) == 0);
    assert_int_equal(cp_churn_level(0, &p), CP_CHURN_LEVEL_NONE);
    unsigned od = bit(CP_CHURN_OVERDUE), pa = bit(CP_CHURN_P_ALIVE_LOW),
             en = bit(CP_CHURN_ENGAGEMENT_DROP),
             sr = bit(CP_CHURN_SERVICE_RISK), vd = bit(CP_CHURN_VALUE_DROP);
    const struct {
        unsigned reasons;
        double score;
        cp_churn_level_t level;
    } cases[] = {
        {en, 0.25, CP_CHURN_LEVEL_LOW},
        {vd, 0.3, CP_CHURN_LEVEL_LOW},
        {sr, 0.4, CP_CHURN_LEVEL_LOW},
        {od, 0.5, CP_CHURN_LEVEL_MEDIUM},
        {pa, 0.5, CP_CHURN_LEVEL_MEDIUM},
        {en | vd, 1 - 0.75 * 0.7, CP_CHURN_LEVEL_MEDIUM}, /* 0.475 */
        {od | vd, 1 - 0.5 * 0.7, CP_CHURN_LEVEL_MEDIUM},  /* 0.65 */
        {od | sr, 1 - 0.5 * 0.6, CP_CHURN_LEVEL_HIGH},    /* 0.7 */
        {od | pa, 0.75, CP_CHURN_LEVEL_HIGH},
        {od | pa | en | sr | vd, 1 - 0.5 * 0.5 * 0.75 * 0.6 * 0.7,
         CP_CHURN_LEVEL_HIGH}, /* 0.92125 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double s = cp_churn_score(cases[i].reasons, &p);
        assert_rel(s, cases[i].score, 1e-15);
        assert_int_equal(cp_churn_level(s, &p), cases[i].level);
    }
    /* thresholds are inclusive; a weight of 0 adds nothing */
    assert_int_equal(cp_churn_level(0.2, &p), CP_CHURN_LEVEL_LOW);
    assert_int_equal(cp_churn_level(0.1999, &p), CP_CHURN_LEVEL_NONE);
    assert_int_equal(cp_churn_level(0.45, &p), CP_CHURN_LEVEL_MEDIUM);
    p.weight[CP_CHURN_OVERDUE] = 0;
    assert_true(cp_churn_score(od, &p) == 0);
    assert_int_equal(cp_churn_level(cp_churn_score(od, &p), &p),
                     CP_CHURN_LEVEL_NONE);
}

/* ---- hysteresis -----------------------------------------------------------
 */

enum { A = -1 }; /* "armed" as a from/to state in the table */

/* The whole table for min_level = low: from state (armed or the episode's
 * level), the evaluated level, ordered, signals recovered -> action, to. */
static const struct {
    int from;
    cp_churn_level_t level;
    int ordered, recovered;
    cp_churn_action_t act;
    int to;
} table[] = {
#define N CP_CHURN_LEVEL_NONE
#define L CP_CHURN_LEVEL_LOW
#define M CP_CHURN_LEVEL_MEDIUM
#define H CP_CHURN_LEVEL_HIGH
#define NO CP_CHURN_ACT_NONE
#define WA CP_CHURN_ACT_WARN
#define ES CP_CHURN_ACT_ESCALATE
#define RE CP_CHURN_ACT_RECOVER
    /* armed: any level from low warns; recovery signals do not matter */
    {A, N, 0, 0, NO, A},
    {A, N, 0, 1, NO, A},
    {A, N, 1, 0, NO, A},
    {A, N, 1, 1, NO, A},
    {A, L, 0, 0, WA, L},
    {A, L, 0, 1, WA, L},
    {A, L, 1, 0, WA, L},
    {A, L, 1, 1, WA, L},
    {A, M, 0, 0, WA, M},
    {A, M, 0, 1, WA, M},
    {A, M, 1, 0, WA, M},
    {A, M, 1, 1, WA, M},
    {A, H, 0, 0, WA, H},
    {A, H, 0, 1, WA, H},
    {A, H, 1, 0, WA, H},
    {A, H, 1, 1, WA, H},
    /* episode at low */
    {L, N, 0, 0, NO, L},
    {L, N, 0, 1, RE, A},
    {L, N, 1, 0, RE, A},
    {L, N, 1, 1, RE, A},
    {L, L, 0, 0, NO, L},
    {L, L, 0, 1, NO, L},
    {L, L, 1, 0, NO, L},
    {L, L, 1, 1, NO, L},
    {L, M, 0, 0, ES, M},
    {L, M, 0, 1, ES, M},
    {L, M, 1, 0, ES, M},
    {L, M, 1, 1, ES, M},
    {L, H, 0, 0, ES, H},
    {L, H, 0, 1, ES, H},
    {L, H, 1, 0, ES, H},
    {L, H, 1, 1, ES, H},
    /* episode at medium: lower levels change nothing */
    {M, N, 0, 0, NO, M},
    {M, N, 0, 1, RE, A},
    {M, N, 1, 0, RE, A},
    {M, N, 1, 1, RE, A},
    {M, L, 0, 0, NO, M},
    {M, L, 0, 1, NO, M},
    {M, L, 1, 0, NO, M},
    {M, L, 1, 1, NO, M},
    {M, M, 0, 0, NO, M},
    {M, M, 0, 1, NO, M},
    {M, M, 1, 0, NO, M},
    {M, M, 1, 1, NO, M},
    {M, H, 0, 0, ES, H},
    {M, H, 0, 1, ES, H},
    {M, H, 1, 0, ES, H},
    {M, H, 1, 1, ES, H},
    /* episode at high */
    {H, N, 0, 0, NO, H},
    {H, N, 0, 1, RE, A},
    {H, N, 1, 0, RE, A},
    {H, N, 1, 1, RE, A},
    {H, L, 0, 0, NO, H},
    {H, L, 0, 1, NO, H},
    {H, L, 1, 0, NO, H},
    {H, L, 1, 1, NO, H},
    {H, M, 0, 0, NO, H},
    {H, M, 0, 1, NO, H},
    {H, M, 1, 0, NO, H},
    {H, M, 1, 1, NO, H},
    {H, H, 0, 0, NO, H},
    {H, H, 0, 1, NO, H},
    {H, H, 1, 0, NO, H},
    {H, H, 1, 1, NO, H},
};

static cp_churn_warn_t warn_state(int s)
{
    cp_churn_warn_t w = {CP_CHURN_LEVEL_NONE, 1, 0};
    if (s != A) {
        w.armed = 0;
        w.level = (cp_churn_level_t)s;
        w.since_ms = T0;
    }
    return w;
}

static int state_of(const cp_churn_warn_t *w)
{
    return w->armed ? A : (int)w->level;
}

static void test_hysteresis_table(void **state)
{
    (void)state;
    cp_churn_params_t p = fx_churn();
    assert_int_equal(sizeof(table) / sizeof(table[0]), 64);
    for (size_t i = 0; i < 64; i++) {
        cp_churn_warn_t w = warn_state(table[i].from);
        cp_churn_action_t act =
            cp_churn_step(&w, table[i].level, table[i].ordered,
                          table[i].recovered, T0 + 5 * DAY_MS, &p);
        if (act != table[i].act || state_of(&w) != table[i].to)
            fail_msg("row %zu: action %d state %d, expected %d %d", i, (int)act,
                     state_of(&w), (int)table[i].act, table[i].to);
        /* an episode starts at the step's time and keeps it */
        if (!w.armed)
            assert_true(w.since_ms ==
                        (table[i].from == A ? T0 + 5 * DAY_MS : T0));
        else
            assert_int_equal(w.level, CP_CHURN_LEVEL_NONE);
    }
}

/* min_level = medium: low neither warns nor holds an episode open. */
static void test_hysteresis_min_level(void **state)
{
    (void)state;
    cp_churn_params_t p = fx_churn();
    p.min_level = CP_CHURN_LEVEL_MEDIUM;
    const struct {
        int from;
        cp_churn_level_t level;
        int ordered, recovered;
        cp_churn_action_t act;
        int to;
    } rows[] = {
        {A, L, 0, 0, NO, A}, {A, L, 1, 1, NO, A}, {A, M, 0, 0, WA, M},
        {M, L, 0, 0, NO, M}, {M, L, 1, 0, RE, A}, {M, L, 0, 1, RE, A},
        {M, H, 1, 1, ES, H}, {H, L, 0, 0, NO, H},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        cp_churn_warn_t w = warn_state(rows[i].from);
        assert_int_equal(cp_churn_step(&w, rows[i].level, rows[i].ordered,
                                       rows[i].recovered, T0, &p),
                         rows[i].act);
        assert_int_equal(state_of(&w), rows[i].to);
    }
#undef N
#undef L
#undef M
#undef H
#undef NO
#undef WA
#undef ES
#undef RE
}

/* A whole episode: warn, escalate, no flapping, recovery by an order,
 * re-armed, warned again. */
static void test_hysteresis_episode(void **state)
{
    (void)state;
    cp_churn_params_t p = fx_churn();
    cp_state_t st;
    fx_orders(&st, 2, 1000, 1010, 1);
    cp_churn_warn_t w = {CP_CHURN_LEVEL_NONE, 1, 0};
    assert_false(cp_churn_ordered_since(&st, &w)); /* armed */
    int64_t t = 1040 * DAY_MS;
    assert_int_equal(cp_churn_step(&w, CP_CHURN_LEVEL_LOW, 0, 0, t, &p),
                     CP_CHURN_ACT_WARN);
    assert_true(w.since_ms == t);
    assert_false(cp_churn_ordered_since(&st, &w));
    assert_int_equal(cp_churn_step(&w, CP_CHURN_LEVEL_MEDIUM, 0, 0, t + 1, &p),
                     CP_CHURN_ACT_ESCALATE);
    /* back and forth between low and medium: nothing more */
    for (int i = 0; i < 4; i++) {
        cp_churn_level_t lv =
            i % 2 ? CP_CHURN_LEVEL_MEDIUM : CP_CHURN_LEVEL_LOW;
        assert_int_equal(cp_churn_step(&w, lv, 0, 0, t + 2 + i, &p),
                         CP_CHURN_ACT_NONE);
    }
    /* risk gone but not recovered (signals short of the recovery
     * thresholds, no order): still in the episode */
    assert_int_equal(cp_churn_step(&w, CP_CHURN_LEVEL_NONE, 0, 0, t + 9, &p),
                     CP_CHURN_ACT_NONE);
    assert_int_equal(cp_churn_step(&w, CP_CHURN_LEVEL_HIGH, 0, 0, t + 10, &p),
                     CP_CHURN_ACT_ESCALATE);
    /* an order at the episode's start time does not count; a later one does */
    st.last_ms = t;
    assert_false(cp_churn_ordered_since(&st, &w));
    st.last_ms = t + 11;
    assert_true(cp_churn_ordered_since(&st, &w));
    assert_int_equal(cp_churn_step(&w, CP_CHURN_LEVEL_NONE,
                                   cp_churn_ordered_since(&st, &w), 0, t + 12,
                                   &p),
                     CP_CHURN_ACT_RECOVER);
    assert_true(w.armed);
    assert_int_equal(cp_churn_step(&w, CP_CHURN_LEVEL_LOW, 0, 0, t + 13, &p),
                     CP_CHURN_ACT_WARN);
    assert_true(w.since_ms == t + 13);
}

/* ---- codes ----------------------------------------------------------------
 */

static void test_codes(void **state)
{
    (void)state;
    const char *reasons[] = {"overdue", "p_alive_low", "engagement_drop",
                             "service_risk", "value_drop"};
    for (int r = 0; r < CP_CHURN_REASON__COUNT; r++)
        assert_string_equal(cp_churn_reason_code((cp_churn_reason_t)r),
                            reasons[r]);
    assert_null(cp_churn_reason_code(CP_CHURN_REASON__COUNT));
    assert_null(cp_churn_level_code(CP_CHURN_LEVEL_NONE));
    assert_null(cp_churn_level_code(CP_CHURN_LEVEL__COUNT));
    assert_string_equal(cp_churn_level_code(CP_CHURN_LEVEL_HIGH), "high");
    cp_churn_level_t l;
    assert_int_equal(cp_churn_level_parse("medium", &l), 0);
    assert_int_equal(l, CP_CHURN_LEVEL_MEDIUM);
    assert_int_equal(cp_churn_level_parse("none", &l), 0);
    assert_int_equal(l, CP_CHURN_LEVEL_NONE);
    assert_int_equal(cp_churn_level_parse("High", &l), -1);
    assert_int_equal(cp_churn_level_parse(NULL, &l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overdue_own_gap),
        cmocka_unit_test(test_overdue_floor_and_fallback),
        cmocka_unit_test(test_p_alive_low),
        cmocka_unit_test(test_engagement_drop),
        cmocka_unit_test(test_engagement_peak_follows),
        cmocka_unit_test(test_service_risk),
        cmocka_unit_test(test_value_drop),
        cmocka_unit_test(test_score_and_level),
        cmocka_unit_test(test_hysteresis_table),
        cmocka_unit_test(test_hysteresis_min_level),
        cmocka_unit_test(test_hysteresis_episode),
        cmocka_unit_test(test_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
