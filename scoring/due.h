/*
 * due.h - a customer's next evaluation time (docs/churn.md, "Due
 * times"): the earliest moment after "now" at which any result that moves
 * with the clock alone can change - a fixed recency threshold of rfm8 or
 * of the quantile RFM, a lifecycle boundary, engagement falling a level,
 * the complaints behind satisfaction fading, P(alive) crossing a
 * threshold (value tier, churn), each churn sub-condition - or never.
 *
 * Pure computation: no clock, no time zone. Results that move with the
 * local day (recency, lifecycle, BTYD) give a local day number; results
 * that move with the millisecond clock (decayed scores, windows) give an
 * epoch-ms instant. scoring/ links nothing but libm, so the caller turns
 * the day into the instant its local day starts (common/, with the
 * configured zone) and takes the earlier of the two (cp_due_instant).
 *
 * Between two events of the customer every one of those results is a
 * step function of time; each due time is found by evaluating the very
 * functions that compute the result (cp_churn_eval_at, cp_models_stage,
 * cp_engagement_level, ...), starting from a closed-form guess and
 * correcting it by a bounded galloping search and bisection, so that the
 * result differs at the due time and at no earlier time (for a monotone
 * sub-condition) - never by a rounding of the closed form.
 */
#ifndef CP_DUE_H
#define CP_DUE_H

#include <stdint.h>

#include "churn.h"
#include "models.h"
#include "state.h"

/* "Never" for both the day and the instant. */
#define CP_DUE_NEVER INT64_MAX
/* Nothing is scheduled beyond 9999-12-31 (the last instant the output
 * formats): a later due time is CP_DUE_NEVER. */
#define CP_DUE_MS_MAX 253402300799999LL
#define CP_DUE_DAY_MAX 2932896LL /* local day number of 9999-12-31 */

/* What a due time comes from (bits of cp_due_t.day_why / ms_why). */
enum {
    CP_DUE_RFM8 = 1u << 0,         /* rfm.reference = fixed: recency */
    CP_DUE_RFMQ = 1u << 1,         /* rfmq.mode = fixed: the R score */
    CP_DUE_LIFECYCLE = 1u << 2,    /* a stage boundary */
    CP_DUE_ENGAGEMENT = 1u << 3,   /* the engagement level falls */
    CP_DUE_SATISFACTION = 1u << 4, /* complaints fall below a threshold */
    CP_DUE_VALUE = 1u << 5,        /* P(alive) falls below value.alive */
    CP_DUE_CHURN = 1u << 6,        /* a churn sub-condition changes */
    CP_DUE_CUSTOM = 1u << 7,       /* custom segments: next local day */
    CP_DUE_HEARTBEAT = 1u << 8     /* due.max_days after today */
};

typedef struct cp_due_params_s {
    const cp_models_params_t *models; /* required */
    const cp_churn_params_t *churn;   /* NULL: no churn rules */
    int rfm8_fixed;                   /* rfm.reference = fixed */
    int64_t rfm8_recency_days;        /* rfm.fixed.recency_days */
    int rfmq_fixed;                   /* rfmq.mode = fixed */
    int64_t rfmq_recency_days[4];     /* rfmq.fixed.recency_days */
    /* Some custom segment rule reads a field that moves with time
     * (rfm.r, lifecycle, engagement*, satisfaction*, value*, btyd.*):
     * such rules are re-evaluated at the start of every local day. */
    int custom_daily;
    int64_t max_days; /* due.max_days: at most this many days ahead; 0 none */
} cp_due_params_t;

typedef struct cp_due_s {
    int64_t day;      /* first local day > today at whose start a result
                         can change; CP_DUE_NEVER */
    int64_t ms;       /* first instant > now_ms at which a result can
                         change; CP_DUE_NEVER */
    unsigned day_why; /* CP_DUE_* bits that gave day (0 when never) */
    unsigned ms_why;  /* CP_DUE_* bits that gave ms (0 when never) */
} cp_due_t;

/* The next evaluation time of st (and cs, may be NULL without churn rules)
 * after now_ms, whose local day is today. cs->warn decides whether the
 * recovery thresholds matter (only inside an episode). Every argument
 * may be far in the future or before the customer's latest event (event
 * clock behind): no overflow, the results stay > now_ms / > today. */
cp_due_t cp_due_next(const cp_state_t *st, const cp_churn_state_t *cs,
                     int64_t now_ms, int64_t today, const cp_due_params_t *p);

/* The single instant to schedule: min(day_start_ms, d->ms), where
 * day_start_ms is the first instant of local day d->day in the configured
 * zone (ignored when d->day is CP_DUE_NEVER). CP_DUE_NEVER when both are. */
int64_t cp_due_instant(const cp_due_t *d, int64_t day_start_ms);

/* Smallest t in (from, limit] at which pred(t, ctx) differs from
 * pred(from, ctx), for a pred monotone on [from, limit]; guess (any value)
 * is where the search starts. CP_DUE_NEVER when pred does not change up to
 * limit. At most about 4 * 64 calls of pred. Exposed for the unit tests. */
int64_t cp_due_first_change(int (*pred)(int64_t t, void *ctx), void *ctx,
                            int64_t from, int64_t guess, int64_t limit);

#endif
