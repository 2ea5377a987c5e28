/*
 * evaluate.c - model parameters, custom segments and BTYD parameters for
 * the consumer; see evaluate.h.
 */
#include "evaluate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfm.h"

#define DAY_MS 86400000.0

/* ---- fields of custom segment rules --------------------------------------
 * Slot ids 0..CP_EVAL_FIXED_SLOTS-1 are these, in this order. */
typedef enum {
    F_RFM_R = 0,
    F_RFM_F,
    F_RFM_M,
    F_RFM8,
    F_LIFECYCLE,
    F_ENGAGEMENT,
    F_ENGAGEMENT_SCORE,
    F_BROWSE0, /* browsing.* counts, CP_BROWSE__COUNT of them */
    F_SATISFACTION = F_BROWSE0 + CP_BROWSE__COUNT,
    F_OPEN_TICKETS,
    F_COMPLAINTS,
    F_CSAT_LAST,
    F_CSAT_AVG,
    F_NPS,
    F_NPS_CLASS,
    F_VALUE,
    F_VALUE_SCORE,
    F_CLV,
    F_P_ALIVE,
    F_BTYD_X,
    F_EVENTS,
    F_STRATEGIC,
    CP_EVAL_FIXED_SLOTS
} field_t;

static const struct {
    const char *name;
    cp_expr_type_t type;
} fields[CP_EVAL_FIXED_SLOTS] = {
    [F_RFM_R] = {"rfm.r", CP_EXPR_NUM},
    [F_RFM_F] = {"rfm.f", CP_EXPR_NUM},
    [F_RFM_M] = {"rfm.m", CP_EXPR_NUM},
    [F_RFM8] = {"rfm8", CP_EXPR_STR},
    [F_LIFECYCLE] = {"lifecycle", CP_EXPR_STR},
    [F_ENGAGEMENT] = {"engagement", CP_EXPR_STR},
    [F_ENGAGEMENT_SCORE] = {"engagement.score", CP_EXPR_NUM},
    [F_BROWSE0 + 0] = {"browsing.sessions", CP_EXPR_NUM},
    [F_BROWSE0 + 1] = {"browsing.page_views", CP_EXPR_NUM},
    [F_BROWSE0 + 2] = {"browsing.product_views", CP_EXPR_NUM},
    [F_BROWSE0 + 3] = {"browsing.searches", CP_EXPR_NUM},
    [F_BROWSE0 + 4] = {"browsing.cart_adds", CP_EXPR_NUM},
    [F_BROWSE0 + 5] = {"browsing.cart_abandons", CP_EXPR_NUM},
    [F_SATISFACTION] = {"satisfaction", CP_EXPR_STR},
    [F_OPEN_TICKETS] = {"satisfaction.open_tickets", CP_EXPR_NUM},
    [F_COMPLAINTS] = {"satisfaction.complaints", CP_EXPR_NUM},
    [F_CSAT_LAST] = {"satisfaction.csat_last", CP_EXPR_NUM},
    [F_CSAT_AVG] = {"satisfaction.csat_avg", CP_EXPR_NUM},
    [F_NPS] = {"satisfaction.nps", CP_EXPR_NUM},
    [F_NPS_CLASS] = {"satisfaction.nps_class", CP_EXPR_STR},
    [F_VALUE] = {"value", CP_EXPR_STR},
    [F_VALUE_SCORE] = {"value.score", CP_EXPR_NUM},
    [F_CLV] = {"value.clv", CP_EXPR_NUM},
    [F_P_ALIVE] = {"btyd.p_alive", CP_EXPR_NUM},
    [F_BTYD_X] = {"btyd.x", CP_EXPR_NUM},
    [F_EVENTS] = {"events", CP_EXPR_NUM},
    [F_STRATEGIC] = {"strategic", CP_EXPR_BOOL},
};

size_t cp_eval_field_count(void)
{
    return CP_EVAL_FIXED_SLOTS;
}

const char *cp_eval_field_name(size_t i, cp_expr_type_t *type)
{
    if (i >= CP_EVAL_FIXED_SLOTS)
        return NULL;
    if (type)
        *type = fields[i].type;
    return fields[i].name;
}

/* Fields whose value can change with the clock alone (docs/churn.md,
 * custom_daily): such rules are re-evaluated at every local day start. */
static int moves_with_time(const char *name)
{
    static const char *const prefixes[] = {
        "rfm.r", "lifecycle", "engagement", "satisfaction", "value", "btyd."};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

static int resolve(void *ud, const char *name, size_t len, cp_expr_type_t *type)
{
    cp_eval_t *e = ud;
    for (int i = 0; i < CP_EVAL_FIXED_SLOTS; i++)
        if (strlen(fields[i].name) == len &&
            memcmp(fields[i].name, name, len) == 0) {
            *type = fields[i].type;
            e->custom_daily |= moves_with_time(fields[i].name);
            return i;
        }
    if (len > 8 && memcmp(name, "profile.", 8) == 0 && len - 8 <= 32) {
        const char *an = name + 8;
        size_t al = len - 8;
        for (size_t i = 0; i < al; i++)
            if (!((an[i] >= 'a' && an[i] <= 'z') ||
                  (an[i] >= '0' && an[i] <= '9') || an[i] == '_'))
                return -1;
        for (int i = 0; i < e->n_attr_names; i++)
            if (e->attr_lens[i] == al && !memcmp(e->attr_names[i], an, al))
                return CP_EVAL_FIXED_SLOTS + i;
        if (e->n_attr_names == CP_EVAL_ATTRS_MAX)
            return -1;
        char *copy = malloc(al + 1);
        if (!copy)
            return -1;
        memcpy(copy, an, al);
        copy[al] = '\0';
        e->attr_names[e->n_attr_names] = copy;
        e->attr_lens[e->n_attr_names] = al;
        return CP_EVAL_FIXED_SLOTS + e->n_attr_names++;
    }
    return -1;
}

/* ---- init ---------------------------------------------------------------- */

/* Churn and due-time parameters (docs/churn.md "Consumer integration"):
 * days to ms, churn.min_level's index + 1, weights in reason order. */
static void churn_params(cp_eval_t *e, const cp_config_t *cfg)
{
    cp_churn_params_t *c = &e->cp;
    c->overdue_k = cfg->churn_overdue_k;
    c->overdue_floor_days = cfg->churn_overdue_floor_days;
    c->overdue_fallback_gap_days = cfg->churn_overdue_fallback_gap_days;
    c->p_alive_low = cfg->churn_p_alive_low;
    c->p_alive_recover = cfg->churn_p_alive_recover;
    c->eng_peak_half_life_ms = cfg->churn_eng_peak_half_life_days * DAY_MS;
    c->eng_fraction = cfg->churn_eng_fraction;
    c->eng_recover_fraction = cfg->churn_eng_recover_fraction;
    c->eng_min_peak = cfg->churn_eng_min_peak;
    c->service_complaints = cfg->churn_service_complaints;
    c->service_recover_complaints = cfg->churn_service_recover_complaints;
    c->service_csat_max = cfg->churn_service_csat_max;
    c->service_csat_window_ms = cfg->churn_service_csat_window_days * DAY_MS;
    c->spend_short_half_life_ms =
        cfg->churn_value_short_half_life_days * DAY_MS;
    c->spend_long_half_life_ms = cfg->churn_value_long_half_life_days * DAY_MS;
    c->value_fraction = cfg->churn_value_fraction;
    c->value_recover_fraction = cfg->churn_value_recover_fraction;
    for (int i = 0; i < CP_CHURN_REASON__COUNT; i++)
        c->weight[i] = cfg->churn_weight[i];
    c->level_low = cfg->churn_level_low;
    c->level_medium = cfg->churn_level_medium;
    c->level_high = cfg->churn_level_high;
    c->min_level = (cp_churn_level_t)(cfg->churn_min_level + 1);
    e->churn_on = cfg->topic_churn[0] != '\0';

    cp_due_params_t *d = &e->dp;
    d->models = &e->p;
    d->churn = e->churn_on ? c : NULL;
    d->rfm8_fixed = cfg->rfm_reference == CP_REF_FIXED;
    d->rfm8_recency_days = cfg->rfm_fixed_recency_days;
    d->rfmq_fixed = cfg->rfmq_mode == 1;
    for (int i = 0; i < 4; i++)
        d->rfmq_recency_days[i] = cfg->rfmq_fixed_r[i];
    d->custom_daily = e->custom_daily;
    d->max_days = cfg->due_max_days;
}

cp_err_t cp_eval_init(cp_eval_t *e, const cp_config_t *cfg, const cp_tz_t *tz,
                      char *err, size_t err_size)
{
    memset(e, 0, sizeof(*e));
    cp_models_params_t *p = &e->p;
    p->engagement.half_life_ms = cfg->engagement_half_life_days * DAY_MS;
    for (int i = 0; i < CP_BROWSE__COUNT; i++)
        p->engagement.weight[i] = cfg->engagement_weight[i];
    p->engagement.high = cfg->engagement_high;
    p->engagement.medium = cfg->engagement_medium;
    p->engagement.low = cfg->engagement_low;
    p->satisfaction.complaint_half_life_ms =
        cfg->satisfaction_complaint_half_life_days * DAY_MS;
    p->satisfaction.at_risk_complaints = cfg->satisfaction_at_risk_complaints;
    p->satisfaction.at_risk_open_tickets =
        cfg->satisfaction_at_risk_open_tickets;
    p->satisfaction.at_risk_csat = cfg->satisfaction_at_risk_csat;
    p->satisfaction.satisfied_csat = cfg->satisfaction_satisfied_csat;
    p->lifecycle.new_days = cfg->lifecycle_new_days;
    p->lifecycle.loyal_orders = cfg->lifecycle_loyal_orders;
    p->lifecycle.at_risk_days = cfg->lifecycle_at_risk_days;
    p->lifecycle.churn_days = cfg->lifecycle_churn_days;
    p->lifecycle.won_back_days = cfg->lifecycle_won_back_days;
    p->minor_per_unit = pow(10.0, cfg->currency_digits);
    p->value.w_historical = cfg->value_w_historical;
    p->value.w_predicted = cfg->value_w_predicted;
    p->value.w_strategic = cfg->value_w_strategic;
    p->value.historical_ref =
        (double)cfg->value_historical_ref_minor / p->minor_per_unit;
    p->value.predicted_ref =
        (double)cfg->value_predicted_ref_minor / p->minor_per_unit;
    p->value.high_score = cfg->value_high_score;
    p->value.alive = cfg->value_alive;
    p->btyd_model = cfg->btyd_model == 1 ? CP_BTYD_BGNBD : CP_BTYD_MBGNBD;
    p->clv.unit = cfg->btyd_unit == 1 ? CP_BTYD_DAYS : CP_BTYD_WEEKS;
    p->clv.horizon_months = cfg->btyd_horizon_months;
    p->clv.monthly_discount = cfg->btyd_monthly_discount;

    for (size_t i = 0; i < cfg->segments_cnt && i < CP_SEGMENTS_MAX; i++) {
        const cp_segment_rule_t *r = &cfg->segments[i];
        cp_expr_err_t xe;
        cp_expr_t *x = cp_expr_parse(r->rule, strlen(r->rule), resolve, e, &xe);
        if (!x) {
            snprintf(err, err_size, "segment.%s.rule: %s", r->name, xe.message);
            cp_eval_free(e);
            return xe.line ? CP_EINVAL : CP_ENOMEM;
        }
        e->seg_names[e->n_segs] = r->name;
        e->seg_rules[e->n_segs++] = x;
        if (cp_expr_slots_used(x) > e->n_slots)
            e->n_slots = cp_expr_slots_used(x);
    }
    churn_params(e, cfg);
    e->sctx.tz = tz;
    e->sctx.segments = e->seg_names;
    e->sctx.n_segments = e->n_segs;
    return CP_OK;
}

void cp_eval_free(cp_eval_t *e)
{
    for (int i = 0; i < e->n_segs; i++)
        cp_expr_free(e->seg_rules[i]);
    for (int i = 0; i < e->n_attr_names; i++)
        free(e->attr_names[i]);
    e->n_segs = 0;
    e->n_attr_names = 0;
}

/* ---- BTYD parameters ------------------------------------------------------
 */

int cp_eval_load_btyd(cp_eval_t *e, const char *const *fields_,
                      const size_t *flens, const char *const *values,
                      const size_t *vlens, size_t n, char *err, size_t err_size)
{
    static const char *const names[] = {"version", "r", "alpha", "a",
                                        "b",       "p", "q",     "v"};
    enum { N_NUM = sizeof(names) / sizeof(names[0]) };
    double num[N_NUM];
    int have[N_NUM] = {0};
    const char *model = NULL, *unit = NULL;
    size_t model_len = 0, unit_len = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < N_NUM; j++)
            if (flens[i] == strlen(names[j]) &&
                !memcmp(fields_[i], names[j], flens[i])) {
                if (cp_store_parse_double(values[i], vlens[i], &num[j]) != 0) {
                    snprintf(err, err_size, "field %s is not a number",
                             names[j]);
                    return -1;
                }
                have[j] = 1;
            }
        if (flens[i] == 5 && !memcmp(fields_[i], "model", 5)) {
            model = values[i];
            model_len = vlens[i];
        } else if (flens[i] == 4 && !memcmp(fields_[i], "unit", 4)) {
            unit = values[i];
            unit_len = vlens[i];
        }
    }
    for (int j = 0; j < 5; j++)
        if (!have[j]) {
            snprintf(err, err_size, "field %s missing", names[j]);
            return -1;
        }
    const char *want_model =
        e->p.btyd_model == CP_BTYD_BGNBD ? "bgnbd" : "mbgnbd";
    const char *want_unit = e->p.clv.unit == CP_BTYD_DAYS ? "days" : "weeks";
    if (!model || model_len != strlen(want_model) ||
        memcmp(model, want_model, model_len)) {
        snprintf(err, err_size, "fitted model differs from btyd.model (%s)",
                 want_model);
        return -1;
    }
    if (!unit || unit_len != strlen(want_unit) ||
        memcmp(unit, want_unit, unit_len)) {
        snprintf(err, err_size, "fitted unit differs from btyd.unit (%s)",
                 want_unit);
        return -1;
    }
    for (int j = 1; j < 5; j++)
        if (!(num[j] > 0)) {
            snprintf(err, err_size, "parameter %s is not positive", names[j]);
            return -1;
        }
    int64_t version = (int64_t)num[0];
    if (version == e->btyd_version && e->p.has_btyd)
        return 0;
    e->p.btyd.r = num[1];
    e->p.btyd.alpha = num[2];
    e->p.btyd.a = num[3];
    e->p.btyd.b = num[4];
    e->p.has_btyd = 1;
    e->p.has_gg =
        have[5] && have[6] && have[7] && num[5] > 0 && num[6] > 1 && num[7] > 0;
    if (e->p.has_gg) {
        e->p.gg.p = num[5];
        e->p.gg.q = num[6];
        e->p.gg.v = num[7];
    }
    e->btyd_version = version;
    return 1;
}

/* ---- custom segments --------------------------------------------------------
 */

static cp_expr_value_t num_or_null(double x)
{
    return isfinite(x) ? cp_expr_num(x) : cp_expr_null();
}

static cp_expr_value_t code_or_null(const char *c)
{
    return c ? cp_expr_str(c, strlen(c)) : cp_expr_null();
}

uint64_t cp_eval_custom(const cp_eval_t *e, const cp_stored_t *s,
                        const cp_models_t *mo, int64_t today)
{
    if (e->n_segs == 0)
        return 0;
    const cp_state_t *st = &s->st;
    const cp_support_t *k = &st->support;
    cp_expr_value_t slots[CP_EVAL_FIXED_SLOTS + CP_EVAL_ATTRS_MAX];
    int ordered = st->orders > 0 && st->has_order_time;
    slots[F_RFM_R] =
        ordered ? cp_expr_num((double)(today - st->last_day)) : cp_expr_null();
    slots[F_RFM_F] = cp_expr_num((double)st->orders);
    slots[F_RFM_M] = cp_expr_num((double)st->monetary / e->p.minor_per_unit);
    slots[F_RFM8] = code_or_null(cp_rfm8_code(st->segment));
    slots[F_LIFECYCLE] = code_or_null(cp_lifecycle_code(mo->stage));
    slots[F_ENGAGEMENT] = code_or_null(cp_engagement_code(mo->eng));
    slots[F_ENGAGEMENT_SCORE] = cp_expr_num(mo->engagement);
    for (int i = 0; i < CP_BROWSE__COUNT; i++)
        slots[F_BROWSE0 + i] = cp_expr_num((double)st->browse_n[i]);
    slots[F_SATISFACTION] = code_or_null(cp_satisfaction_code(mo->sat));
    slots[F_OPEN_TICKETS] = cp_expr_num((double)k->open_tickets);
    slots[F_COMPLAINTS] = cp_expr_num(mo->complaints);
    slots[F_CSAT_LAST] =
        k->csat_last ? cp_expr_num(k->csat_last) : cp_expr_null();
    slots[F_CSAT_AVG] =
        k->csat_n ? cp_expr_num(cp_support_csat_avg(k)) : cp_expr_null();
    slots[F_NPS] = k->nps_last >= 0 ? cp_expr_num(k->nps_last) : cp_expr_null();
    slots[F_NPS_CLASS] = code_or_null(cp_nps_code(cp_nps_class(k->nps_last)));
    slots[F_VALUE] = code_or_null(cp_tier_code(mo->value.tier));
    slots[F_VALUE_SCORE] =
        st->orders > 0 ? cp_expr_num(mo->value.score) : cp_expr_null();
    slots[F_CLV] = num_or_null(mo->clv);
    slots[F_P_ALIVE] = num_or_null(mo->p_alive);
    slots[F_BTYD_X] = num_or_null(mo->x);
    slots[F_EVENTS] = cp_expr_num((double)st->events);
    slots[F_STRATEGIC] = cp_expr_bool(st->strategic);
    for (int i = 0; i < e->n_attr_names; i++) {
        const cp_sattr_t *at =
            cp_store_attr(s, e->attr_names[i], e->attr_lens[i]);
        slots[CP_EVAL_FIXED_SLOTS + i] =
            at && !at->removed ? cp_expr_str(at->value, at->value_len)
                               : cp_expr_null();
    }
    size_t n_slots = CP_EVAL_FIXED_SLOTS + (size_t)e->n_attr_names;
    uint64_t bits = 0;
    for (int i = 0; i < e->n_segs; i++)
        if (cp_expr_eval(e->seg_rules[i], slots, n_slots))
            bits |= (uint64_t)1 << i;
    return bits;
}
