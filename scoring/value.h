/*
 * value.h - the value model: a composite value score from historical,
 * predicted and strategic value, and the value tier (高价值 high_value /
 * 潜力 potential / 流失风险 churn_risk / 低价值 low_value; docs/models.md,
 * "Value").
 *
 * Pure computation.
 */
#ifndef CP_VALUE_H
#define CP_VALUE_H

typedef enum {
    CP_TIER_NONE = 0, /* no counted order */
    CP_TIER_HIGH_VALUE,
    CP_TIER_POTENTIAL,
    CP_TIER_CHURN_RISK,
    CP_TIER_LOW_VALUE,
    CP_TIER__COUNT
} cp_tier_t;

typedef struct cp_value_params_s {
    double w_historical; /* >= 0; the three weights sum to > 0 */
    double w_predicted;
    double w_strategic;
    double historical_ref; /* monetary (major units) normalised to 0.5 */
    double predicted_ref;  /* CLV (major units) normalised to 0.5 */
    double high_score;     /* score >= this (and alive): high_value */
    double alive;          /* P(alive) below this: not alive */
} cp_value_params_t;

typedef struct cp_value_in_s {
    int has_orders;  /* at least one counted order */
    double monetary; /* major units, >= 0 */
    double clv;      /* major units, >= 0 */
    double p_alive;  /* 0..1 */
    int strategic;   /* profile is_strategic */
    int lapsing;     /* lifecycle at_risk or churned */
} cp_value_in_t;

typedef struct cp_value_s {
    double historical; /* monetary / (monetary + historical_ref), 0..1 */
    double predicted;  /* clv / (clv + predicted_ref), 0..1 */
    double strategic;  /* 1 or 0 */
    double score;      /* weighted mean of the three, 0..1 */
    cp_tier_t tier;
} cp_value_t;

/* The value of in; the tier by the first rule that holds:
 *   none        no counted order;
 *   high_value  score >= high_score, p_alive >= alive, not lapsing;
 *   churn_risk  historical >= 0.5 and (p_alive < alive or lapsing);
 *   potential   predicted >= 0.5 and p_alive >= alive;
 *   low_value   otherwise. */
cp_value_t cp_value_eval(const cp_value_in_t *in, const cp_value_params_t *p);

/* "high_value", "potential", "churn_risk", "low_value"; NULL for NONE. */
const char *cp_tier_code(cp_tier_t t);

#endif
