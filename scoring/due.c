/*
 * due.c - a customer's next evaluation time; see due.h and docs/churn.md.
 *
 * Day-based results are searched over local day numbers, ms-based ones
 * over epoch ms. Each search evaluates the result's own function, so the
 * due time agrees with what an evaluation at that time computes.
 */
#include "due.h"

#include <math.h>
#include <stddef.h>

#include "rfm.h"

/* ---------------------------------------------------------------------------
 * Search
 * ------------------------------------------------------------------------ */

static int differs(int (*pred)(int64_t, void *), void *ctx, int64_t t, int base)
{
    return (pred(t, ctx) != 0) != base;
}

int64_t cp_due_first_change(int (*pred)(int64_t t, void *ctx), void *ctx,
                            int64_t from, int64_t guess, int64_t limit)
{
    if (from >= limit)
        return CP_DUE_NEVER;
    int base = pred(from, ctx) != 0;
    if (guess <= from)
        guess = from + 1;
    if (guess > limit)
        guess = limit;
    int64_t lo, hi; /* pred(lo) == base, pred(hi) != base */
    if (differs(pred, ctx, guess, base)) {
        /* Gallop down from the guess, usually a step or two. */
        lo = from;
        hi = guess;
        for (int64_t step = 1; hi - lo > 1; step *= 2) {
            int64_t m = hi - step;
            if (m <= lo)
                break;
            if (!differs(pred, ctx, m, base)) {
                lo = m;
                break;
            }
            hi = m;
        }
    } else {
        /* Gallop up until it changes or the limit is reached. */
        lo = guess;
        for (int64_t step = 1;; step *= 2) {
            if (lo >= limit)
                return CP_DUE_NEVER;
            int64_t m = limit - lo > step ? lo + step : limit;
            if (differs(pred, ctx, m, base)) {
                hi = m;
                break;
            }
            lo = m;
        }
    }
    while (hi - lo > 1) {
        int64_t m = lo + (hi - lo) / 2;
        if (differs(pred, ctx, m, base))
            hi = m;
        else
            lo = m;
    }
    return hi;
}

/* A double time guess as an int64 in [from + 1, limit]; NaN: from + 1. */
static int64_t clamp_guess(double t, int64_t from, int64_t limit)
{
    if (!(t > (double)from + 1))
        return from + 1;
    if (t >= (double)limit)
        return limit;
    return (int64_t)ceil(t);
}

/* Closed-form instant at which a decayed sum d (half-life h) reaches c:
 * ref + h * log2(score / c). NaN when it never does from above. */
static double decay_cross(const cp_decay_t *d, double h, double c)
{
    if (!d->n || !(d->score > 0) || !(c > 0))
        return NAN;
    return (double)d->ref_ms + h * log2(d->score / c);
}

/* Instant at which a(t) = f * b(t) for two sums with the same reference
 * and half-lives ha, hb: (t - ref) (1/ha - 1/hb) = log2(a / (f b)). */
static double ratio_cross(const cp_decay_t *a, double ha, const cp_decay_t *b,
                          double hb, double f)
{
    double k = 1.0 / ha - 1.0 / hb;
    if (!a->n || !b->n || !(a->score > 0) || !(b->score > 0) || !(f > 0) ||
        k == 0)
        return NAN;
    return (double)a->ref_ms + log2(a->score / (f * b->score)) / k;
}

/* a + b for b >= 0, saturating at INT64_MAX. */
static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* The running minimum of one kind (day or ms). */
typedef struct {
    int64_t at;
    unsigned why;
} due_min_t;

static void take(due_min_t *m, int64_t at, unsigned why)
{
    if (at == CP_DUE_NEVER)
        return;
    if (at < m->at) {
        m->at = at;
        m->why = why;
    } else if (at == m->at) {
        m->why |= why;
    }
}

/* ---------------------------------------------------------------------------
 * Day-based results
 * ------------------------------------------------------------------------ */

typedef struct {
    const cp_state_t *st;
    const cp_churn_state_t *cs;
    const cp_due_params_t *p;
    int64_t now_ms;
    int64_t today;
    unsigned bit; /* churn sub-condition */
    int level;    /* engagement level at now_ms */
} ctx_t;

/* The result of each day-based model, compared at two days. */
static int rfm8_of(const ctx_t *c, int64_t day)
{
    cp_rfm_ref_t ref = {(double)c->p->rfm8_recency_days, 0.0, 0.0};
    return (int)cp_rfm8_classify(c->st, day, &ref);
}

static int rfmq_r_of(const ctx_t *c, int64_t day)
{
    /* consumer/rfmq.c cp_rfmq_score_fixed: 5 - thresholds reached. */
    int64_t days = day - c->st->last_day;
    int r = 5;
    for (int k = 0; k < 4; k++)
        r -= (days < 0 ? 0 : days) >= c->p->rfmq_recency_days[k];
    return r;
}

static int stage_of(const ctx_t *c, int64_t day)
{
    return (int)cp_models_stage(c->st, day, &c->p->models->lifecycle);
}

/* The first of n candidate days after today at which of() differs from
 * its value today (the result is constant between candidates). */
static int64_t first_candidate(const ctx_t *c,
                               int (*of)(const ctx_t *, int64_t),
                               const int64_t *cand, int n)
{
    int64_t best = CP_DUE_NEVER;
    int now = of(c, c->today);
    for (int i = 0; i < n; i++)
        if (cand[i] > c->today && cand[i] <= CP_DUE_DAY_MAX && cand[i] < best &&
            of(c, cand[i]) != now)
            best = cand[i];
    return best;
}

static int pred_value_alive(int64_t day, void *v)
{
    const ctx_t *c = v;
    double pa = cp_churn_p_alive(c->st, day, c->p->models);
    return pa >= c->p->models->value.alive;
}

static int pred_churn_day(int64_t day, void *v)
{
    const ctx_t *c = v;
    double pa = c->bit == CP_CHURN_C_OVERDUE
                    ? NAN
                    : cp_churn_p_alive(c->st, day, c->p->models);
    cp_churn_eval_t ev;
    cp_churn_eval_at(c->st, c->cs, pa, c->now_ms, day, c->p->models,
                     c->p->churn, &ev);
    return (ev.conds & c->bit) != 0;
}

/* The day the overdue threshold is passed: last_day + floor(thr) + 1. */
static int64_t overdue_guess(const ctx_t *c)
{
    cp_churn_eval_t ev;
    cp_churn_eval_at(c->st, c->cs, NAN, c->now_ms, c->today, c->p->models,
                     c->p->churn, &ev);
    if (isnan(ev.overdue_days))
        return c->today + 1;
    double d = (double)c->st->last_day + floor(ev.overdue_days) + 1.0;
    return clamp_guess(d, c->today, CP_DUE_DAY_MAX);
}

static void due_days(ctx_t *c, due_min_t *m)
{
    const cp_state_t *st = c->st;
    const cp_due_params_t *p = c->p;
    int ordered = st->orders >= 1 && st->has_order_time;
    if (ordered && p->rfm8_fixed) {
        int64_t cand = add_sat(st->last_day, add_sat(p->rfm8_recency_days, 1));
        take(m, first_candidate(c, rfm8_of, &cand, 1), CP_DUE_RFM8);
    }
    if (ordered && p->rfmq_fixed) {
        int64_t cand[4];
        for (int k = 0; k < 4; k++)
            cand[k] = add_sat(st->last_day, p->rfmq_recency_days[k]);
        take(m, first_candidate(c, rfmq_r_of, cand, 4), CP_DUE_RFMQ);
    }
    if (ordered) {
        const cp_lifecycle_params_t *lp = &p->models->lifecycle;
        int64_t cand[4] = {add_sat(st->last_day, lp->at_risk_days),
                           add_sat(st->last_day, lp->churn_days),
                           add_sat(st->first_day, lp->new_days),
                           st->won_back_day >= 0
                               ? add_sat(st->won_back_day, lp->won_back_days)
                               : CP_DUE_NEVER};
        take(m, first_candidate(c, stage_of, cand, 4), CP_DUE_LIFECYCLE);
    }
    /* P(alive) only falls as the days pass: alive can only end. */
    if (ordered && p->models->has_btyd && pred_value_alive(c->today, c))
        take(m,
             cp_due_first_change(pred_value_alive, c, c->today, c->today + 1,
                                 CP_DUE_DAY_MAX),
             CP_DUE_VALUE);
    if (ordered && p->churn != NULL) {
        unsigned bits[3] = {CP_CHURN_C_OVERDUE, CP_CHURN_C_PALIVE_LOW,
                            CP_CHURN_C_PALIVE_OK};
        int n = p->models->has_btyd ? 3 : 1;
        if (c->cs->warn.armed && n == 3)
            n = 2; /* recovery thresholds matter only in an episode */
        for (int i = 0; i < n; i++) {
            c->bit = bits[i];
            /* overdue and P(alive) low only begin, P(alive) ok only ends */
            if (pred_churn_day(c->today, c) ==
                (bits[i] != CP_CHURN_C_PALIVE_OK))
                continue;
            int64_t guess = i == 0 ? overdue_guess(c) : c->today + 1;
            take(m,
                 cp_due_first_change(pred_churn_day, c, c->today, guess,
                                     CP_DUE_DAY_MAX),
                 CP_DUE_CHURN);
        }
    }
    if (p->custom_daily && c->today < CP_DUE_DAY_MAX)
        take(m, c->today + 1, CP_DUE_CUSTOM);
    if (p->max_days > 0) {
        int64_t d = add_sat(c->today, p->max_days);
        take(m, d <= CP_DUE_DAY_MAX ? d : CP_DUE_NEVER, CP_DUE_HEARTBEAT);
    }
}

/* ---------------------------------------------------------------------------
 * ms-based results
 * ------------------------------------------------------------------------ */

static int pred_eng_level(int64_t t, void *v)
{
    const ctx_t *c = v;
    return (int)cp_engagement_level(&c->st->engagement, t,
                                    &c->p->models->engagement) == c->level;
}

/* A monotone search from a closed-form guess g; NaN or a time clearly
 * before from (the crossing is behind: a monotone condition does not
 * change again) is never. */
static int64_t search(int (*pred)(int64_t, void *), void *ctx, int64_t from,
                      double g, int64_t limit)
{
    if (isnan(g) || g < (double)from - 1.0)
        return CP_DUE_NEVER;
    return cp_due_first_change(pred, ctx, from, clamp_guess(g, from, limit),
                               limit);
}

/* When the level falls: it only falls while no event arrives. */
static int64_t engagement_due(ctx_t *c)
{
    const cp_engagement_params_t *ep = &c->p->models->engagement;
    int browsed = 0;
    for (int k = 0; k < CP_BROWSE__COUNT; k++)
        browsed |= c->st->browse_n[k] > 0;
    cp_engagement_t lv = cp_engagement_level(&c->st->engagement, c->now_ms, ep);
    if (!browsed || lv <= CP_ENG_DORMANT)
        return CP_DUE_NEVER;
    double thr = lv == CP_ENG_HIGH     ? ep->high
                 : lv == CP_ENG_MEDIUM ? ep->medium
                                       : ep->low;
    if (!(thr > 0))
        return CP_DUE_NEVER; /* a score never falls below 0 */
    c->level = (int)lv;
    double g = decay_cross(&c->st->engagement, ep->half_life_ms, thr);
    return search(pred_eng_level, c, c->now_ms, g, CP_DUE_MS_MAX);
}

typedef struct {
    const cp_decay_t *d;
    double h;
    double c;
} decay_ctx_t;

static int pred_decay_ge(int64_t t, void *v)
{
    const decay_ctx_t *x = v;
    return cp_decay_at(x->d, t, x->h) >= x->c;
}

/* When the decayed complaints fall below the satisfaction thresholds
 * (at_risk_complaints, and 0.5 for satisfied). */
static int64_t satisfaction_due(const ctx_t *c)
{
    const cp_satisfaction_params_t *sp = &c->p->models->satisfaction;
    const cp_support_t *s = &c->st->support;
    int64_t best = CP_DUE_NEVER;
    double thr[2] = {sp->at_risk_complaints, 0.5};
    if (!s->events || !s->complaints.n)
        return best;
    for (int i = 0; i < 2; i++) {
        decay_ctx_t x = {&s->complaints, sp->complaint_half_life_ms, thr[i]};
        if (!(thr[i] > 0) || !pred_decay_ge(c->now_ms, &x))
            continue; /* below already: it only falls */
        double g = decay_cross(x.d, x.h, x.c);
        int64_t t = search(pred_decay_ge, &x, c->now_ms, g, CP_DUE_MS_MAX);
        best = t < best ? t : best;
    }
    return best;
}

static int pred_churn_ms(int64_t t, void *v)
{
    const ctx_t *c = v;
    cp_churn_eval_t ev;
    cp_churn_eval_at(c->st, c->cs, NAN, t, c->today, c->p->models, c->p->churn,
                     &ev);
    return (ev.conds & c->bit) != 0;
}

/* The closed-form instant at which churn sub-condition bit changes. */
static double churn_guess(const ctx_t *c, unsigned bit)
{
    const cp_churn_params_t *cp = c->p->churn;
    const cp_churn_state_t *cs = c->cs;
    double hg = c->p->models->engagement.half_life_ms;
    double hp = cp->eng_peak_half_life_ms;
    double hc = c->p->models->satisfaction.complaint_half_life_ms;
    double hs = cp->spend_short_half_life_ms, hl = cp->spend_long_half_life_ms;
    const cp_decay_t *g = &c->st->engagement, *cm = &c->st->support.complaints;
    switch (bit) {
    case CP_CHURN_C_ENG_PEAK: /* no peak yet: the score is its own */
        return cs->eng_peak.n ? decay_cross(&cs->eng_peak, hp, cp->eng_min_peak)
                              : decay_cross(g, hg, cp->eng_min_peak);
    case CP_CHURN_C_ENG_LOW:
        return ratio_cross(g, hg, &cs->eng_peak, hp, cp->eng_fraction);
    case CP_CHURN_C_ENG_OK:
        return ratio_cross(g, hg, &cs->eng_peak, hp, cp->eng_recover_fraction);
    case CP_CHURN_C_COMPLAINTS:
        return decay_cross(cm, hc, cp->service_complaints);
    case CP_CHURN_C_COMPLAINTS_OK:
        return decay_cross(cm, hc, cp->service_recover_complaints);
    case CP_CHURN_C_CSAT_LOW:
        if (!c->st->support.csat_last)
            return NAN;
        return (double)c->st->support.csat_last_ms + cp->service_csat_window_ms;
    case CP_CHURN_C_VALUE_LOW:
        return ratio_cross(&cs->spend_short, hs, &cs->spend_long, hl,
                           cp->value_fraction * hs / hl);
    default: /* CP_CHURN_C_VALUE_OK */
        return ratio_cross(&cs->spend_short, hs, &cs->spend_long, hl,
                           cp->value_recover_fraction * hs / hl);
    }
}

static void due_ms(ctx_t *c, due_min_t *m)
{
    take(m, engagement_due(c), CP_DUE_ENGAGEMENT);
    take(m, satisfaction_due(c), CP_DUE_SATISFACTION);
    if (c->p->churn == NULL)
        return;
    static const unsigned bits[] = {
        CP_CHURN_C_ENG_PEAK,      CP_CHURN_C_ENG_LOW,   CP_CHURN_C_COMPLAINTS,
        CP_CHURN_C_CSAT_LOW,      CP_CHURN_C_VALUE_LOW, CP_CHURN_C_ENG_OK,
        CP_CHURN_C_COMPLAINTS_OK, CP_CHURN_C_VALUE_OK};
    /* The last three are recovery thresholds: only in an episode. */
    int n = c->cs->warn.armed ? 5 : 8;
    for (int i = 0; i < n; i++) {
        c->bit = bits[i];
        double g = churn_guess(c, bits[i]);
        take(m, search(pred_churn_ms, c, c->now_ms, g, CP_DUE_MS_MAX),
             CP_DUE_CHURN);
    }
}

/* ---------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------ */

cp_due_t cp_due_next(const cp_state_t *st, const cp_churn_state_t *cs,
                     int64_t now_ms, int64_t today, const cp_due_params_t *p)
{
    cp_churn_state_t empty;
    if (cs == NULL) {
        cp_churn_state_init(&empty);
        cs = &empty;
    }
    ctx_t c = {st, cs, p, now_ms, today, 0, 0};
    due_min_t day = {CP_DUE_NEVER, 0}, ms = {CP_DUE_NEVER, 0};
    due_days(&c, &day);
    due_ms(&c, &ms);
    cp_due_t d = {day.at, ms.at, day.why, ms.why};
    return d;
}

int64_t cp_due_instant(const cp_due_t *d, int64_t day_start_ms)
{
    if (d->day == CP_DUE_NEVER)
        return d->ms;
    return day_start_ms < d->ms ? day_start_ms : d->ms;
}
