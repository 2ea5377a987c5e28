/*
 * models.h - every model of one customer evaluated at one moment
 * (docs/models.md): lifecycle stage, engagement, satisfaction, BTYD
 * (P(alive), expected purchases, CLV) and the composite value.
 *
 * Pure computation: "now" (epoch ms) and "today" (its local day number)
 * are parameters; the BTYD parameters are handed in (the consumer reads
 * them from Redis, where `custpulse fit` writes them).
 */
#ifndef CP_MODELS_H
#define CP_MODELS_H

#include <stdint.h>

#include "btyd.h"
#include "state.h"

typedef struct cp_models_params_s {
    cp_engagement_params_t engagement;
    cp_satisfaction_params_t satisfaction;
    cp_lifecycle_params_t lifecycle;
    cp_value_params_t value;
    /* BTYD: has_btyd 0 until parameters were fitted; has_gg 0 when the
     * Gamma-Gamma part is missing (then CLV is unknown). */
    int has_btyd;
    int has_gg;
    cp_btyd_model_t btyd_model;
    cp_btyd_params_t btyd;
    cp_btyd_gg_params_t gg;
    cp_btyd_clv_spec_t clv; /* horizon, discount and time unit */
    double minor_per_unit;  /* 10^currency digits: monetary -> units */
} cp_models_params_t;

typedef struct cp_models_s {
    cp_lifecycle_t stage;
    double engagement;     /* decayed score at now */
    cp_engagement_t eng;   /* CP_ENG_NONE before the first browsing event */
    double complaints;     /* decayed complaints at now */
    cp_satisfaction_t sat; /* CP_SAT_NONE before the first support event */
    /* BTYD, valid when has_btyd (else NaN): x, t_x and T in the unit of
     * the fit (T of a first order today is half a day); expected purchases
     * over the next 30 / 90 / 365 days. */
    int has_btyd;
    double x, t_x, T;
    double p_alive;
    double expected[3];
    double clv; /* currency units; NaN when unknown */
    cp_value_t value;
} cp_models_t;

/* Gamma-Gamma's mean repeat transaction value z-bar, in minor units: the
 * repeat spend m - z over the repeat days b; without repeat days, or
 * with z unknown (a hash written before z), the mean order value m / o
 * (0 without orders). */
double cp_models_zbar(const cp_state_t *st);

/* Evaluates every model of st at now_ms / today. A value of the value
 * model whose input is unknown counts as: P(alive) 1 (alive) and CLV 0
 * until BTYD parameters exist (docs/models.md "Value"). */
void cp_models_eval(const cp_state_t *st, int64_t now_ms, int64_t today,
                    const cp_models_params_t *p, cp_models_t *out);

/* The lifecycle stage of st on `today` (the lifecycle part of
 * cp_models_eval). */
cp_lifecycle_t cp_models_stage(const cp_state_t *st, int64_t today,
                               const cp_lifecycle_params_t *p);

#endif
