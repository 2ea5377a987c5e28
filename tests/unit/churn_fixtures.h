/*
 * churn_fixtures.h - parameters and customers shared by the churn and due
 * unit tests (test_scoring_churn.c, test_scoring_due.c): the documented
 * defaults of docs/models.md and docs/churn.md, in ms.
 */
#ifndef CP_TEST_CHURN_FIXTURES_H
#define CP_TEST_CHURN_FIXTURES_H

#include <math.h>
#include <stdint.h>

#include "churn.h"
#include "models.h"
#include "state.h"

#define DAY_MS 86400000LL

/* |a - b| <= rel * max(|a|, |b|), printing both on failure. */
#define assert_rel(a, b, rel)                                                  \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        double m_ = fabs(a_) > fabs(b_) ? fabs(a_) : fabs(b_);                 \
        if (!(fabs(a_ - b_) <= (rel)*m_))                                      \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                \
    } while (0)

static inline cp_models_params_t fx_models(void)
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

/* FHL 2005's CDNOW BG/NBD estimates (weeks). */
static inline void fx_with_btyd(cp_models_params_t *p, cp_btyd_model_t m)
{
    p->has_btyd = 1;
    p->btyd_model = m;
    p->btyd = (cp_btyd_params_t){0.2426, 4.4135, 0.7929, 2.4258};
}

static inline cp_churn_params_t fx_churn(void)
{
    cp_churn_params_t p = {
        .overdue_k = 2,
        .overdue_floor_days = 14,
        .overdue_fallback_gap_days = 45,
        .p_alive_low = 0.3,
        .p_alive_recover = 0.5,
        .eng_peak_half_life_ms = 60.0 * DAY_MS,
        .eng_fraction = 0.25,
        .eng_recover_fraction = 0.5,
        .eng_min_peak = 5,
        .service_complaints = 0.5,
        .service_recover_complaints = 0.25,
        .service_csat_max = 2,
        .service_csat_window_ms = 30.0 * DAY_MS,
        .spend_short_half_life_ms = 30.0 * DAY_MS,
        .spend_long_half_life_ms = 180.0 * DAY_MS,
        .value_fraction = 0.3,
        .value_recover_fraction = 0.6,
        .weight = {0.5, 0.5, 0.25, 0.4, 0.3},
        .level_low = 0.2,
        .level_medium = 0.45,
        .level_high = 0.7,
        .min_level = CP_CHURN_LEVEL_LOW,
    };
    return p;
}

/* A customer with orders on days first..last, b repeat days; order times
 * at midnight UTC of those days. */
static inline void fx_orders(cp_state_t *st, int64_t orders, int64_t first,
                             int64_t last, int64_t b)
{
    cp_state_init(st);
    st->orders = orders;
    st->monetary = 10000 * orders;
    st->has_order_time = 1;
    st->first_day = first;
    st->first_ms = first * DAY_MS;
    st->last_day = last;
    st->last_ms = last * DAY_MS;
    st->repeat_days = b;
    st->first_spend = 10000;
    st->events = orders;
}

#endif
