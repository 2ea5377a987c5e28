/*
 * value.c - the value model; see value.h.
 */
#include "value.h"

#include <stddef.h>

/* x / (x + ref): 0 at 0, 0.5 at ref, towards 1 above; 0 for x <= 0. */
static double saturate(double x, double ref)
{
    return x > 0.0 ? x / (x + ref) : 0.0;
}

cp_value_t cp_value_eval(const cp_value_in_t *in, const cp_value_params_t *p)
{
    cp_value_t v;
    v.historical = saturate(in->monetary, p->historical_ref);
    v.predicted = saturate(in->clv, p->predicted_ref);
    v.strategic = in->strategic ? 1.0 : 0.0;
    double w = p->w_historical + p->w_predicted + p->w_strategic;
    v.score = (p->w_historical * v.historical + p->w_predicted * v.predicted +
               p->w_strategic * v.strategic) /
              w;
    int alive = in->p_alive >= p->alive;
    if (!in->has_orders)
        v.tier = CP_TIER_NONE;
    else if (v.score >= p->high_score && alive && !in->lapsing)
        v.tier = CP_TIER_HIGH_VALUE;
    else if (v.historical >= 0.5 && (!alive || in->lapsing))
        v.tier = CP_TIER_CHURN_RISK;
    else if (v.predicted >= 0.5 && alive)
        v.tier = CP_TIER_POTENTIAL;
    else
        v.tier = CP_TIER_LOW_VALUE;
    return v;
}

const char *cp_tier_code(cp_tier_t t)
{
    static const char *codes[CP_TIER__COUNT] = {NULL, "high_value", "potential",
                                                "churn_risk", "low_value"};
    return (unsigned)t < CP_TIER__COUNT ? codes[t] : NULL;
}
