/*
 * models.c - every model of one customer at one moment; see models.h.
 */
#include "models.h"

#include <math.h>

cp_lifecycle_t cp_models_stage(const cp_state_t *st, int64_t today,
                               const cp_lifecycle_params_t *p)
{
    cp_lifecycle_in_t in = {
        .orders = st->orders,
        .has_activity = st->events > 0 || st->orders > 0,
        .first_day = st->has_order_time ? st->first_day : 0,
        .last_day = st->has_order_time ? st->last_day : 0,
        .won_back_day = st->won_back_day,
    };
    if (!st->has_order_time && in.orders > 0)
        in.orders = 0; /* cannot place the orders in time: treat as none */
    return cp_lifecycle_eval(&in, today, p);
}

static double unit_days(cp_btyd_unit_t u)
{
    return u == CP_BTYD_WEEKS ? 7.0 : 1.0;
}

static void eval_btyd(const cp_state_t *st, int64_t today,
                      const cp_models_params_t *p, cp_models_t *out)
{
    out->has_btyd = 0;
    out->x = out->t_x = out->T = NAN;
    out->p_alive = NAN;
    out->expected[0] = out->expected[1] = out->expected[2] = NAN;
    out->clv = NAN;
    if (!p->has_btyd || st->orders < 1 || !st->has_order_time)
        return;
    double u = unit_days(p->clv.unit);
    int64_t span = st->last_day - st->first_day;
    int64_t age = today - st->first_day;
    if (span < 0)
        span = 0;
    if (age < span)
        age = span; /* "now" behind the last order (event clock) */
    out->x = (double)st->repeat_days;
    out->t_x = (double)span / u;
    /* First order today: T = 0 is outside the models' domain; the order
     * is on average half a day old. */
    out->T = age > 0 ? (double)age / u : 0.5 / u;
    if (out->x > 0 && out->t_x <= 0)
        out->x = 0; /* repeat days without a span: layout-1 remnants */
    out->has_btyd = 1;
    out->p_alive =
        cp_btyd_p_alive(p->btyd_model, &p->btyd, out->x, out->t_x, out->T);
    static const double horizon_days[3] = {30, 90, 365};
    for (int i = 0; i < 3; i++) {
        double e;
        if (cp_btyd_expected_cond(p->btyd_model, &p->btyd, out->x, out->t_x,
                                  out->T, horizon_days[i] / u,
                                  &e) == CP_BTYD_OK)
            out->expected[i] = e;
    }
    if (p->has_gg) {
        double zbar = cp_models_zbar(st) / p->minor_per_unit;
        double clv;
        if (cp_btyd_clv(p->btyd_model, &p->btyd, &p->gg, &p->clv, out->x,
                        out->t_x, out->T, zbar, &clv) == CP_BTYD_OK &&
            clv >= 0)
            out->clv = clv;
    }
}

double cp_models_zbar(const cp_state_t *st)
{
    if (st->repeat_days > 0 && st->first_spend >= 0 &&
        st->first_spend <= st->monetary)
        return (double)(st->monetary - st->first_spend) /
               (double)st->repeat_days;
    return st->orders > 0 ? (double)st->monetary / (double)st->orders : 0.0;
}

void cp_models_eval(const cp_state_t *st, int64_t now_ms, int64_t today,
                    const cp_models_params_t *p, cp_models_t *out)
{
    out->stage = cp_models_stage(st, today, &p->lifecycle);

    int browsed = 0;
    for (int k = 0; k < CP_BROWSE__COUNT; k++)
        browsed |= st->browse_n[k] > 0;
    out->engagement =
        cp_engagement_score(&st->engagement, now_ms, &p->engagement);
    out->eng =
        browsed ? cp_engagement_level(&st->engagement, now_ms, &p->engagement)
                : CP_ENG_NONE;

    out->complaints =
        cp_support_complaints(&st->support, now_ms, &p->satisfaction);
    out->sat = cp_satisfaction_level(&st->support, now_ms, &p->satisfaction);

    eval_btyd(st, today, p, out);

    cp_value_in_t vin = {
        .has_orders = st->orders > 0,
        .monetary = (double)st->monetary / p->minor_per_unit,
        .clv = isnan(out->clv) ? 0.0 : out->clv,
        .p_alive = isnan(out->p_alive) ? 1.0 : out->p_alive,
        .strategic = st->strategic,
        .lapsing = out->stage == CP_LC_AT_RISK || out->stage == CP_LC_CHURNED,
    };
    out->value = cp_value_eval(&vin, &p->value);
}
