/*
 * churn.h - churn warnings (docs/churn.md): five rules, each a reason code
 * with its figures, a risk score and level from the active reasons, the
 * per-customer state the rules need beyond cp_state_t, and the hysteresis
 * state machine that turns levels into warn / escalate / recover actions.
 *
 * Pure computation: no I/O, no clock. "Now" (epoch ms) and "today" (its
 * local day number) are parameters. Every function is reentrant.
 *
 * cp_churn_state_t is kept by the consumer beside cp_state_t (its own
 * hash fields, docs/churn.md "Consumer integration"): cp_state_t is not
 * extended, so a hash written before it reads as an empty churn state.
 */
#ifndef CP_CHURN_H
#define CP_CHURN_H

#include <stdint.h>

#include "decay.h"
#include "models.h"
#include "state.h"

/* Reasons, in output order. Values are stable (bit i of a reason set). */
typedef enum {
    CP_CHURN_OVERDUE = 0,
    CP_CHURN_P_ALIVE_LOW = 1,
    CP_CHURN_ENGAGEMENT_DROP = 2,
    CP_CHURN_SERVICE_RISK = 3,
    CP_CHURN_VALUE_DROP = 4,
    CP_CHURN_REASON__COUNT
} cp_churn_reason_t;

/* Risk levels; also the warning state of the hysteresis machine (the
 * highest level warned in the current episode). */
typedef enum {
    CP_CHURN_LEVEL_NONE = 0,
    CP_CHURN_LEVEL_LOW = 1,
    CP_CHURN_LEVEL_MEDIUM = 2,
    CP_CHURN_LEVEL_HIGH = 3,
    CP_CHURN_LEVEL__COUNT
} cp_churn_level_t;

/* Rule parameters; times in ms, spans in days as the config gives them.
 * The engagement and complaint half-lives are the models' own
 * (cp_models_params_t). */
typedef struct cp_churn_params_s {
    /* overdue: days since the last order > max(floor, k * gap) */
    double overdue_k;                 /* > 0 */
    double overdue_floor_days;        /* >= 0 */
    double overdue_fallback_gap_days; /* gap of a customer without a repeat
                                         order day (b = 0), > 0 */
    /* p_alive_low: P(alive) < p_alive_low; recovered at >= p_alive_recover */
    double p_alive_low;
    double p_alive_recover; /* >= p_alive_low */
    /* engagement_drop: peak >= eng_min_peak and engagement < eng_fraction
     * * peak; recovered at engagement >= eng_recover_fraction * peak */
    double eng_peak_half_life_ms; /* > the engagement half-life */
    double eng_fraction;          /* in (0, 1) */
    double eng_recover_fraction;  /* >= eng_fraction */
    double eng_min_peak;          /* > 0 */
    /* service_risk: decayed complaints >= service_complaints, or the
     * latest CSAT <= service_csat_max and younger than the window;
     * recovered at complaints < service_recover_complaints (and no low
     * CSAT in the window) */
    double service_complaints;         /* > 0 */
    double service_recover_complaints; /* in (0, service_complaints] */
    int service_csat_max;              /* 0..5; 0 = CSAT not used */
    double service_csat_window_ms;     /* > 0 */
    /* value_drop: with >= 2 orders in the sums, the short-term spend rate
     * < value_fraction * the long-term rate; recovered at
     * >= value_recover_fraction * it */
    double spend_short_half_life_ms; /* > 0 */
    double spend_long_half_life_ms;  /* > spend_short_half_life_ms */
    double value_fraction;           /* in (0, 1) */
    double value_recover_fraction;   /* >= value_fraction */
    /* score = 1 - prod over active reasons of (1 - weight), weights in
     * [0, 1]; level by the thresholds (high >= medium >= low > 0) */
    double weight[CP_CHURN_REASON__COUNT];
    double level_low;
    double level_medium;
    double level_high;
    cp_churn_level_t min_level; /* lowest level that warns (>= LOW) */
} cp_churn_params_t;

/* The hysteresis state. armed = 1: no episode (level NONE). armed = 0: in
 * an episode that started at since_ms, level = the highest level warned
 * in it (>= min_level). */
typedef struct cp_churn_warn_s {
    cp_churn_level_t level;
    int armed;
    int64_t since_ms; /* valid while !armed */
} cp_churn_warn_t;

/* What the rules keep per customer beyond cp_state_t. */
typedef struct cp_churn_state_s {
    /* Recent engagement peak: the engagement score followed upwards at
     * once and decayed with eng_peak_half_life_ms; its ref_ms is kept
     * equal to the engagement score's (cp_churn_on_browse). */
    cp_decay_t eng_peak;
    /* Spend of counted orders (minor units), decayed with the short and
     * the long half-life; both have the same ref_ms (the latest order). */
    cp_decay_t spend_short;
    cp_decay_t spend_long;
    int64_t spend_orders; /* orders added to the sums, saturating at 2 */
    cp_churn_warn_t warn;
} cp_churn_state_t;

/* An empty churn state: empty sums, armed, level NONE. */
void cp_churn_state_init(cp_churn_state_t *cs);

/* After a browsing event was applied to st (st->engagement updated):
 * raises the peak to the engagement score and moves it to the score's
 * reference time. An empty peak (a hash written before the churn fields)
 * starts at the score. */
void cp_churn_on_browse(cp_churn_state_t *cs, const cp_decay_t *engagement,
                        const cp_churn_params_t *p);

/* After a newly counted order.placed of amount (minor units, >= 0) at
 * t_ms: adds it to both spend sums. Refunds and cancellations do not
 * change them (docs/churn.md). */
void cp_churn_on_order(cp_churn_state_t *cs, int64_t amount, int64_t t_ms,
                       const cp_churn_params_t *p);

/* Sub-conditions of the rules (bits of cp_churn_eval_t.conds). Each is
 * monotone in time while no event arrives, which is what lets
 * scoring/due.c find the instant it changes by a bounded search. Those
 * marked "day" move with the local day, the others with the ms clock. */
enum {
    CP_CHURN_C_OVERDUE = 1u << 0,       /* day: days since last > thr */
    CP_CHURN_C_PALIVE_LOW = 1u << 1,    /* day: P(alive) < p_alive_low */
    CP_CHURN_C_PALIVE_OK = 1u << 2,     /* day: P(alive) >= recover, or none */
    CP_CHURN_C_ENG_PEAK = 1u << 3,      /* peak >= eng_min_peak */
    CP_CHURN_C_ENG_LOW = 1u << 4,       /* engagement < fraction * peak */
    CP_CHURN_C_ENG_OK = 1u << 5,        /* engagement >= recover * peak */
    CP_CHURN_C_COMPLAINTS = 1u << 6,    /* complaints >= service_complaints */
    CP_CHURN_C_COMPLAINTS_OK = 1u << 7, /* complaints < recover threshold */
    CP_CHURN_C_CSAT_LOW = 1u << 8,      /* low CSAT within the window */
    CP_CHURN_C_VALUE_NORM = 1u << 9,    /* >= 2 orders in the spend sums */
    CP_CHURN_C_VALUE_LOW = 1u << 10,    /* short rate < fraction * long */
    CP_CHURN_C_VALUE_OK = 1u << 11      /* short rate >= recover * long */
};
#define CP_CHURN_C_DAY_MASK                                                    \
    (CP_CHURN_C_OVERDUE | CP_CHURN_C_PALIVE_LOW | CP_CHURN_C_PALIVE_OK)

/* The rules evaluated at one moment, with their figures. A figure whose
 * input is missing is NaN (day counts: -1). */
typedef struct cp_churn_eval_s {
    unsigned conds;   /* CP_CHURN_C_* that hold */
    unsigned reasons; /* bit r set: reason r is active */
    double score;     /* in [0, 1] */
    cp_churn_level_t level;
    /* every signal past its recovery threshold: no reason active, P(alive)
     * none or >= p_alive_recover, engagement without a peak or >=
     * eng_recover_fraction * peak, complaints < service_recover_complaints,
     * no low CSAT in the window, spend without a norm or short rate >=
     * value_recover_fraction * long rate */
    int signals_recovered;
    /* overdue */
    int64_t days_since_last; /* -1 without an order */
    double gap_days;         /* own mean gap, or the fallback; NaN */
    int gap_own;             /* 1: own gap (b >= 1); 0: fallback */
    double overdue_days;     /* the threshold max(floor, k * gap); NaN */
    /* p_alive_low */
    double p_alive;
    /* engagement_drop */
    double engagement;
    double eng_peak;
    double eng_ratio; /* engagement / peak; NaN without a peak */
    /* service_risk */
    double complaints;
    int csat_last;        /* 0 = none */
    double csat_age_days; /* NaN without a CSAT */
    /* value_drop: rates in minor units per day (sum * ln 2 / half-life,
     * the steady-state rate a sum of that size stands for) */
    double spend_rate_short;
    double spend_rate_long;
    double spend_ratio; /* short / long; NaN without a norm */
} cp_churn_eval_t;

/* P(alive) of st on `today` under mp's BTYD parameters, computed as
 * cp_models_eval does (x = b, t_x and T from the order days); NaN without
 * parameters or orders. Non-increasing in today. */
double cp_churn_p_alive(const cp_state_t *st, int64_t today,
                        const cp_models_params_t *mp);

/* Evaluates every rule for st / cs at now_ms (local day today). p_alive
 * is taken from m when m->has_btyd (m = cp_models_eval at the same
 * moment; may be NULL: computed with cp_churn_p_alive). */
void cp_churn_eval(const cp_state_t *st, const cp_churn_state_t *cs,
                   const cp_models_t *m, int64_t now_ms, int64_t today,
                   const cp_models_params_t *mp, const cp_churn_params_t *p,
                   cp_churn_eval_t *out);

/* cp_churn_eval with P(alive) given (NaN: no BTYD parameters). */
void cp_churn_eval_at(const cp_state_t *st, const cp_churn_state_t *cs,
                      double p_alive, int64_t now_ms, int64_t today,
                      const cp_models_params_t *mp, const cp_churn_params_t *p,
                      cp_churn_eval_t *out);

/* Score of a reason set: 1 - prod_{r in reasons} (1 - weight[r]). */
double cp_churn_score(unsigned reasons, const cp_churn_params_t *p);

/* Level of a score: high >= level_high, medium >= level_medium, low >=
 * level_low (and > 0), else none. */
cp_churn_level_t cp_churn_level(double score, const cp_churn_params_t *p);

/* What one step of the hysteresis machine emits. */
typedef enum {
    CP_CHURN_ACT_NONE = 0,
    CP_CHURN_ACT_WARN,     /* a new episode: a customer.churn-warnings event */
    CP_CHURN_ACT_ESCALATE, /* a higher level in the episode: a warning */
    CP_CHURN_ACT_RECOVER   /* the episode ended: churn.recovered, re-armed */
} cp_churn_action_t;

/* One step at now_ms with the current level and recovery signals:
 *   armed, level >= min_level         -> WARN (episode starts at now_ms,
 *                                        warn->level = level);
 *   armed otherwise                   -> NONE;
 *   episode, level < min_level and (ordered or signals_recovered)
 *                                     -> RECOVER (armed, level NONE);
 *   episode, level > warn->level      -> ESCALATE (warn->level = level);
 *   episode otherwise                 -> NONE.
 * ordered: a counted order placed after the episode started
 * (cp_churn_ordered_since). Lower levels inside an episode change
 * nothing: one warning per episode and level. */
cp_churn_action_t cp_churn_step(cp_churn_warn_t *warn, cp_churn_level_t level,
                                int ordered, int signals_recovered,
                                int64_t now_ms, const cp_churn_params_t *p);

/* 1 when st has a counted order later than the start of warn's episode
 * (0 while armed). */
int cp_churn_ordered_since(const cp_state_t *st, const cp_churn_warn_t *warn);

/* "overdue", "p_alive_low", "engagement_drop", "service_risk",
 * "value_drop"; NULL outside the enum. */
const char *cp_churn_reason_code(cp_churn_reason_t r);
/* "low", "medium", "high"; NULL for NONE. */
const char *cp_churn_level_code(cp_churn_level_t l);
/* Inverse of cp_churn_level_code ("none" too); 0, or -1 if unknown. */
int cp_churn_level_parse(const char *code, cp_churn_level_t *out);

#endif
