/*
 * churn.c - churn rules, risk score and the warning hysteresis; see
 * churn.h and docs/churn.md.
 */
#include "churn.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define DAY_MS 86400000.0
#define LN2 0.69314718055994530942

/* ---------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------ */

void cp_churn_state_init(cp_churn_state_t *cs)
{
    cp_decay_init(&cs->eng_peak);
    cp_decay_init(&cs->spend_short);
    cp_decay_init(&cs->spend_long);
    cs->spend_orders = 0;
    cs->warn.level = CP_CHURN_LEVEL_NONE;
    cs->warn.armed = 1;
    cs->warn.since_ms = 0;
}

void cp_churn_on_browse(cp_churn_state_t *cs, const cp_decay_t *engagement,
                        const cp_churn_params_t *p)
{
    if (!engagement->n)
        return;
    cp_decay_t *pk = &cs->eng_peak;
    /* The engagement reference never moves back, so the peak is decayed
     * forward (or kept, at an equal time) to it before the comparison. */
    double held =
        pk->n ? cp_decay_at(pk, engagement->ref_ms, p->eng_peak_half_life_ms)
              : 0.0;
    pk->score = held > engagement->score ? held : engagement->score;
    pk->ref_ms = engagement->ref_ms;
    pk->n = 1;
}

void cp_churn_on_order(cp_churn_state_t *cs, int64_t amount, int64_t t_ms,
                       const cp_churn_params_t *p)
{
    double w = amount > 0 ? (double)amount : 0.0;
    cp_decay_add(&cs->spend_short, w, t_ms, p->spend_short_half_life_ms);
    cp_decay_add(&cs->spend_long, w, t_ms, p->spend_long_half_life_ms);
    if (cs->spend_orders < 2)
        cs->spend_orders++;
}

/* ---------------------------------------------------------------------------
 * Rules
 * ------------------------------------------------------------------------ */

double cp_churn_p_alive(const cp_state_t *st, int64_t today,
                        const cp_models_params_t *mp)
{
    if (!mp->has_btyd || st->orders < 1 || !st->has_order_time)
        return NAN;
    /* The same x, t_x and T as models.c eval_btyd. */
    double u = mp->clv.unit == CP_BTYD_WEEKS ? 7.0 : 1.0;
    int64_t span = st->last_day - st->first_day;
    if (span < 0)
        span = 0;
    int64_t age = today - st->first_day;
    if (age < span)
        age = span;
    double x = (double)st->repeat_days;
    double t_x = (double)span / u;
    double T = age > 0 ? (double)age / u : 0.5 / u;
    if (x > 0 && t_x <= 0)
        x = 0;
    return cp_btyd_p_alive(mp->btyd_model, &mp->btyd, x, t_x, T);
}

static void rule_overdue(const cp_state_t *st, int64_t today,
                         const cp_churn_params_t *p, cp_churn_eval_t *out)
{
    out->days_since_last = -1;
    out->gap_days = out->overdue_days = NAN;
    out->gap_own = 0;
    if (st->orders < 1 || !st->has_order_time)
        return;
    int64_t since = today - st->last_day;
    out->days_since_last = since > 0 ? since : 0;
    int64_t span = st->last_day - st->first_day;
    out->gap_own = st->repeat_days >= 1 && span > 0;
    out->gap_days = out->gap_own ? (double)span / (double)st->repeat_days
                                 : p->overdue_fallback_gap_days;
    double thr = p->overdue_k * out->gap_days;
    out->overdue_days =
        thr > p->overdue_floor_days ? thr : p->overdue_floor_days;
    if ((double)out->days_since_last > out->overdue_days)
        out->conds |= CP_CHURN_C_OVERDUE;
}

static void rule_p_alive(double p_alive, const cp_churn_params_t *p,
                         cp_churn_eval_t *out)
{
    out->p_alive = p_alive;
    if (isnan(p_alive)) {
        out->conds |= CP_CHURN_C_PALIVE_OK;
        return;
    }
    if (p_alive < p->p_alive_low)
        out->conds |= CP_CHURN_C_PALIVE_LOW;
    if (p_alive >= p->p_alive_recover)
        out->conds |= CP_CHURN_C_PALIVE_OK;
}

/* a(t) / b(t) for two sums with the same reference (half-lives ha, hb):
 * (a / b) 2^(-(t - ref) (1/ha - 1/hb)), which neither sum's underflow
 * can turn into 0 / 0; NaN when either is empty or b is 0. */
static double decay_ratio(const cp_decay_t *a, double ha, const cp_decay_t *b,
                          double hb, int64_t now_ms)
{
    if (!a->n || !b->n || !(b->score > 0))
        return NAN;
    if (a->ref_ms != b->ref_ms)
        return cp_decay_at(a, now_ms, ha) / cp_decay_at(b, now_ms, hb);
    double dt = now_ms > a->ref_ms ? (double)(now_ms - a->ref_ms) : 0.0;
    return a->score / b->score * exp2(-dt * (1.0 / ha - 1.0 / hb));
}

static void rule_engagement(const cp_state_t *st, const cp_churn_state_t *cs,
                            int64_t now_ms, const cp_models_params_t *mp,
                            const cp_churn_params_t *p, cp_churn_eval_t *out)
{
    double hg = mp->engagement.half_life_ms, hp = p->eng_peak_half_life_ms;
    double e = cp_decay_at(&st->engagement, now_ms, hg);
    /* A hash written before the peak: the score is its own peak. */
    const cp_decay_t *peak = cs->eng_peak.n ? &cs->eng_peak : &st->engagement;
    double hpk = cs->eng_peak.n ? hp : hg;
    double pk = cp_decay_at(peak, now_ms, hpk);
    double ratio = decay_ratio(&st->engagement, hg, peak, hpk, now_ms);
    out->engagement = e;
    out->eng_peak = pk;
    out->eng_ratio = ratio;
    if (pk >= p->eng_min_peak)
        out->conds |= CP_CHURN_C_ENG_PEAK;
    if (ratio < p->eng_fraction)
        out->conds |= CP_CHURN_C_ENG_LOW;
    if (ratio >= p->eng_recover_fraction)
        out->conds |= CP_CHURN_C_ENG_OK;
}

static void rule_service(const cp_state_t *st, int64_t now_ms,
                         const cp_models_params_t *mp,
                         const cp_churn_params_t *p, cp_churn_eval_t *out)
{
    const cp_support_t *s = &st->support;
    double c = cp_support_complaints(s, now_ms, &mp->satisfaction);
    out->complaints = c;
    out->csat_last = s->csat_last;
    out->csat_age_days = NAN;
    if (c >= p->service_complaints)
        out->conds |= CP_CHURN_C_COMPLAINTS;
    if (c < p->service_recover_complaints)
        out->conds |= CP_CHURN_C_COMPLAINTS_OK;
    if (!s->csat_last)
        return;
    /* A survey "in the future" (event clock behind it) is age 0. */
    double age =
        now_ms > s->csat_last_ms ? (double)(now_ms - s->csat_last_ms) : 0.0;
    out->csat_age_days = age / DAY_MS;
    if (s->csat_last <= p->service_csat_max && age < p->service_csat_window_ms)
        out->conds |= CP_CHURN_C_CSAT_LOW;
}

static void rule_value(const cp_churn_state_t *cs, int64_t now_ms,
                       const cp_churn_params_t *p, cp_churn_eval_t *out)
{
    double hs = p->spend_short_half_life_ms, hl = p->spend_long_half_life_ms;
    double rs = cp_decay_at(&cs->spend_short, now_ms, hs) * LN2 / hs * DAY_MS;
    double rl = cp_decay_at(&cs->spend_long, now_ms, hl) * LN2 / hl * DAY_MS;
    out->spend_rate_short = rs;
    out->spend_rate_long = rl;
    /* rate ratio = sum ratio * hl / hs */
    double ratio =
        cs->spend_orders < 2
            ? NAN
            : decay_ratio(&cs->spend_short, hs, &cs->spend_long, hl, now_ms) *
                  (hl / hs);
    out->spend_ratio = ratio;
    if (isnan(ratio)) {
        out->conds |= CP_CHURN_C_VALUE_OK;
        return;
    }
    out->conds |= CP_CHURN_C_VALUE_NORM;
    if (ratio < p->value_fraction)
        out->conds |= CP_CHURN_C_VALUE_LOW;
    if (ratio >= p->value_recover_fraction)
        out->conds |= CP_CHURN_C_VALUE_OK;
}

/* The reasons and the recovery of a set of sub-conditions. */
static unsigned reasons_of(unsigned c)
{
    unsigned r = 0;
    if (c & CP_CHURN_C_OVERDUE)
        r |= 1u << CP_CHURN_OVERDUE;
    if (c & CP_CHURN_C_PALIVE_LOW)
        r |= 1u << CP_CHURN_P_ALIVE_LOW;
    if ((c & CP_CHURN_C_ENG_PEAK) && (c & CP_CHURN_C_ENG_LOW))
        r |= 1u << CP_CHURN_ENGAGEMENT_DROP;
    if (c & (CP_CHURN_C_COMPLAINTS | CP_CHURN_C_CSAT_LOW))
        r |= 1u << CP_CHURN_SERVICE_RISK;
    if ((c & CP_CHURN_C_VALUE_NORM) && (c & CP_CHURN_C_VALUE_LOW))
        r |= 1u << CP_CHURN_VALUE_DROP;
    return r;
}

static int recovered_of(unsigned c, unsigned reasons)
{
    return !reasons && (c & CP_CHURN_C_PALIVE_OK) &&
           (!(c & CP_CHURN_C_ENG_PEAK) || (c & CP_CHURN_C_ENG_OK)) &&
           (c & CP_CHURN_C_COMPLAINTS_OK) && !(c & CP_CHURN_C_CSAT_LOW) &&
           (c & CP_CHURN_C_VALUE_OK);
}

void cp_churn_eval_at(const cp_state_t *st, const cp_churn_state_t *cs,
                      double p_alive, int64_t now_ms, int64_t today,
                      const cp_models_params_t *mp, const cp_churn_params_t *p,
                      cp_churn_eval_t *out)
{
    memset(out, 0, sizeof(*out));
    rule_overdue(st, today, p, out);
    rule_p_alive(p_alive, p, out);
    rule_engagement(st, cs, now_ms, mp, p, out);
    rule_service(st, now_ms, mp, p, out);
    rule_value(cs, now_ms, p, out);
    out->reasons = reasons_of(out->conds);
    out->score = cp_churn_score(out->reasons, p);
    out->level = cp_churn_level(out->score, p);
    out->signals_recovered = recovered_of(out->conds, out->reasons);
}

void cp_churn_eval(const cp_state_t *st, const cp_churn_state_t *cs,
                   const cp_models_t *m, int64_t now_ms, int64_t today,
                   const cp_models_params_t *mp, const cp_churn_params_t *p,
                   cp_churn_eval_t *out)
{
    double pa =
        m != NULL && m->has_btyd ? m->p_alive : cp_churn_p_alive(st, today, mp);
    cp_churn_eval_at(st, cs, pa, now_ms, today, mp, p, out);
}

double cp_churn_score(unsigned reasons, const cp_churn_params_t *p)
{
    double keep = 1.0;
    for (int r = 0; r < CP_CHURN_REASON__COUNT; r++)
        if (reasons & (1u << r))
            keep *= 1.0 - p->weight[r];
    return 1.0 - keep;
}

cp_churn_level_t cp_churn_level(double score, const cp_churn_params_t *p)
{
    if (!(score > 0))
        return CP_CHURN_LEVEL_NONE;
    if (score >= p->level_high)
        return CP_CHURN_LEVEL_HIGH;
    if (score >= p->level_medium)
        return CP_CHURN_LEVEL_MEDIUM;
    return score >= p->level_low ? CP_CHURN_LEVEL_LOW : CP_CHURN_LEVEL_NONE;
}

/* ---------------------------------------------------------------------------
 * Hysteresis
 * ------------------------------------------------------------------------ */

cp_churn_action_t cp_churn_step(cp_churn_warn_t *warn, cp_churn_level_t level,
                                int ordered, int signals_recovered,
                                int64_t now_ms, const cp_churn_params_t *p)
{
    int warns = level >= p->min_level && level > CP_CHURN_LEVEL_NONE;
    if (warn->armed) {
        if (!warns)
            return CP_CHURN_ACT_NONE;
        warn->armed = 0;
        warn->level = level;
        warn->since_ms = now_ms;
        return CP_CHURN_ACT_WARN;
    }
    if (!warns && (ordered || signals_recovered)) {
        warn->armed = 1;
        warn->level = CP_CHURN_LEVEL_NONE;
        warn->since_ms = 0;
        return CP_CHURN_ACT_RECOVER;
    }
    if (level > warn->level) {
        warn->level = level;
        return CP_CHURN_ACT_ESCALATE;
    }
    return CP_CHURN_ACT_NONE;
}

int cp_churn_ordered_since(const cp_state_t *st, const cp_churn_warn_t *warn)
{
    return !warn->armed && st->orders >= 1 && st->has_order_time &&
           st->last_ms > warn->since_ms;
}

/* ---------------------------------------------------------------------------
 * Codes
 * ------------------------------------------------------------------------ */

const char *cp_churn_reason_code(cp_churn_reason_t r)
{
    static const char *codes[CP_CHURN_REASON__COUNT] = {
        "overdue", "p_alive_low", "engagement_drop", "service_risk",
        "value_drop"};
    return (unsigned)r < CP_CHURN_REASON__COUNT ? codes[r] : NULL;
}

static const char *const level_codes[CP_CHURN_LEVEL__COUNT] = {
    "none", "low", "medium", "high"};

const char *cp_churn_level_code(cp_churn_level_t l)
{
    if (l == CP_CHURN_LEVEL_NONE || (unsigned)l >= CP_CHURN_LEVEL__COUNT)
        return NULL;
    return level_codes[l];
}

int cp_churn_level_parse(const char *code, cp_churn_level_t *out)
{
    if (code == NULL)
        return -1;
    for (int i = 0; i < CP_CHURN_LEVEL__COUNT; i++) {
        if (strcmp(code, level_codes[i]) == 0) {
            *out = (cp_churn_level_t)i;
            return 0;
        }
    }
    return -1;
}
