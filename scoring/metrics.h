/*
 * metrics.h - population metrics (docs/metrics.md): the per-day counter
 * increments one customer's write adds, the names of their Redis hash
 * fields, and the daily report computed from the counters read back.
 *
 * Counters are per-day deltas: every change is stamped with the local day
 * of the time that caused it, so increments commute and a gauge ("how many
 * customers are in stage S at the end of day D") is the sum of the deltas
 * of the days up to D.
 *
 * Pure computation: no I/O, no clock, no allocation. Days are local day
 * numbers (days since 1970-01-01 of the local date in the configured
 * zone) given by the caller; scoring/ never turns instants into days.
 * Every function is reentrant.
 */
#ifndef CP_METRICS_H
#define CP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "lifecycle.h"
#include "state.h"

/* Increments one accumulator (one customer's write) can hold. */
#define CP_METRICS_MAX 64
/* The most increments one applied event (or one time-caused evaluation)
 * can add: a stage change (3), a segment change (2), activity (1), the
 * first order (1), the first repeat order (4). A caller that checks
 * cp_metrics_room() >= CP_METRICS_EVENT_MAX before each event never sees
 * CP_METRICS_EFULL. */
#define CP_METRICS_EVENT_MAX 11
/* Returned by the cp_metrics_on_* functions when the increments of the
 * call do not fit: nothing of that call was added. */
#define CP_METRICS_EFULL (-1)

/* Retention horizons k (days): 2, 7, 14, 30 (次日/7日/14日/30日留存). */
#define CP_METRICS_HORIZONS 4
extern const int cp_metrics_horizon_days[CP_METRICS_HORIZONS];
/* A cohort is reported on the days C .. C + CP_METRICS_WINDOW - 1 (the
 * longest horizon). */
#define CP_METRICS_WINDOW 30

/* Which hash an increment goes to. */
typedef enum {
    CP_METRICS_DAY = 0,   /* <prefix>md:<D>, D the day of the change */
    CP_METRICS_COHORT = 1 /* <prefix>mc:<C>, C the first-order day */
} cp_metrics_key_t;

/* Field codes of a day hash. Stages and segments are added to the base:
 * CP_MF_LC + CP_LC_ACTIVE is "lc:active". */
enum {
    CP_MF_ACT = 0,                       /* act */
    CP_MF_LC = 1,                        /* lc:<stage> (not NONE) */
    CP_MF_IN = CP_MF_LC + CP_LC__COUNT,  /* in:<new|at_risk|churned|
                                            won_back> */
    CP_MF_SEG = CP_MF_IN + CP_LC__COUNT, /* seg:<rfm8 code> (not NONE) */
    CP_MF_DAY__END = CP_MF_SEG + CP_RFM8__COUNT
};
/* Field codes of a cohort hash: n, then r2, r7, r14, r30 (CP_MF_R + the
 * horizon's index). */
enum {
    CP_MF_N = 0,
    CP_MF_R = 1,
    CP_MF_COHORT__END = CP_MF_R + CP_METRICS_HORIZONS
};

/* One counter increment: HINCRBY <key of (key, day)> <field> <delta>. */
typedef struct cp_metrics_inc_s {
    int64_t day;   /* D (day hash) or C (cohort hash) */
    uint8_t key;   /* cp_metrics_key_t */
    short field;   /* CP_MF_* of that hash */
    int64_t delta; /* never 0 */
} cp_metrics_inc_t;

/* The increments of one customer's write, in the order first made;
 * equal (key, day, field) are merged, a net zero is dropped. A value
 * embedded by the caller; cp_metrics_acc_init before use. */
typedef struct cp_metrics_acc_s {
    cp_metrics_inc_t inc[CP_METRICS_MAX];
    int n;
} cp_metrics_acc_t;

void cp_metrics_acc_init(cp_metrics_acc_t *acc);

/* Free entries: CP_METRICS_MAX - acc->n. */
int cp_metrics_room(const cp_metrics_acc_t *acc);

/* Each cp_metrics_on_* adds the increments of one change and returns 0, or
 * CP_METRICS_EFULL when they do not all fit (then acc is unchanged, so it
 * never holds half a change: every stage or segment move is a -1 / +1
 * pair). */

/* The customer's lifecycle stage went from `from` to `to` on `day`:
 * lc:<from> -1, lc:<to> +1 (CP_LC_NONE has no field) and, when `to` is
 * new, at_risk, churned or won_back, in:<to> +1. Nothing when from == to. */
int cp_metrics_on_stage(cp_metrics_acc_t *acc, cp_lifecycle_t from,
                        cp_lifecycle_t to, int64_t day);

/* The RFM8 segment went from `from` to `to` on `day`: seg:<from> -1,
 * seg:<to> +1 (CP_RFM8_NONE has no field). Nothing when from == to. */
int cp_metrics_on_segment(cp_metrics_acc_t *acc, cp_rfm8_t from, cp_rfm8_t to,
                          int64_t day);

/* A customer counted for the first time (its hash was written before
 * the metrics were kept): its stage and segment enter the gauges (lc: and
 * seg: +1 on day, no in: entry). */
int cp_metrics_on_baseline(cp_metrics_acc_t *acc, cp_lifecycle_t stage,
                           cp_rfm8_t segment, int64_t day);

/* act +1 on `day`. The caller calls it for an applied event whose local
 * day is later than the customer's latest activity day before it, so a
 * customer counts at most once a day (a late event on an earlier day is
 * not counted). */
int cp_metrics_on_active(cp_metrics_acc_t *acc, int64_t day);

/* The customer's first counted order (orders 0 -> 1, once per customer):
 * cohort first_day's n +1. */
int cp_metrics_on_first_order(cp_metrics_acc_t *acc, int64_t first_day);

/* The customer's first repeat order day (the BTYD repeat-day count b
 * 0 -> 1) is repeat_day, its cohort first_day: r<k> +1 in cohort
 * first_day for each horizon k with |repeat_day - first_day| <= k - 1
 * (bought again within k days, the first day counting as day 1; the
 * distance, because a late order before the cohort day is the other of
 * the first two order days). */
int cp_metrics_on_first_repeat(cp_metrics_acc_t *acc, int64_t first_day,
                               int64_t repeat_day);

/* Writes the name of field `field` of a `key` hash ("lc:active",
 * "in:churned", "seg:important_value", "act", "n", "r7") with its NUL into
 * buf. Returns its length, or 0 for a code without a field (lc:/seg: of
 * NONE, in: of a stage that is not a flow, out of range) or when size is
 * too small (buf then holds ""; 32 bytes are always enough). */
size_t cp_metrics_field_name(cp_metrics_key_t key, int field, char *buf,
                             size_t size);

/* Inverse of cp_metrics_field_name: the code of field name[0..len) of a
 * `key` hash into *field. Returns 0, or -1 for a name the writer never
 * writes (*field untouched). */
int cp_metrics_field_parse(cp_metrics_key_t key, const char *name, size_t len,
                           int *field);

/* ---- the report --------------------------------------------------------- */

/* A day hash as read back: every field absent is 0. */
typedef struct cp_metrics_day_s {
    int64_t day;
    int64_t lc[CP_LC__COUNT];    /* lc:<stage> net deltas; [NONE] unused */
    int64_t in[CP_LC__COUNT];    /* in:<stage> entries; flows only */
    int64_t seg[CP_RFM8__COUNT]; /* seg:<code> net deltas; [NONE] unused */
    int64_t act;
} cp_metrics_day_t;

/* A cohort hash as read back. */
typedef struct cp_metrics_cohort_s {
    int64_t day; /* C */
    int64_t n;
    int64_t r[CP_METRICS_HORIZONS];
} cp_metrics_cohort_t;

/* All counters 0. */
void cp_metrics_day_init(cp_metrics_day_t *d, int64_t day);
void cp_metrics_cohort_init(cp_metrics_cohort_t *c, int64_t day);

/* Sets the counter of field code `field` (cp_metrics_field_parse of a day,
 * resp. cohort, hash) to v. Returns 0, or -1 for a code without a field. */
int cp_metrics_day_set(cp_metrics_day_t *d, int field, int64_t v);
int cp_metrics_cohort_set(cp_metrics_cohort_t *c, int field, int64_t v);

/* The figures of one day. */
typedef struct cp_metrics_daily_s {
    int64_t day;
    int64_t active;          /* act: customers with activity that day */
    int64_t new_customers;   /* in:new */
    int64_t churned;         /* in:churned */
    int64_t won_back;        /* in:won_back */
    int64_t at_risk_entered; /* in:at_risk */
    /* customers in new, active, loyal, at_risk or won_back at the end of
     * the day before */
    int64_t churn_base;
    double churn_rate; /* churned / churn_base; NaN when churn_base <= 0 */
    /* customers per stage / segment at the end of the day (sums of the
     * deltas of every day up to it); [NONE] is 0 */
    int64_t stage[CP_LC__COUNT];
    int64_t segment[CP_RFM8__COUNT];
} cp_metrics_daily_t;

/* The figures of days[0..n), which must be sorted by day, strictly
 * ascending (a day missing from the list has no counters: deltas 0), into
 * out[0..n). Sums wrap in two's complement rather than overflow (hostile
 * counters cannot make it undefined). Returns 0, or -1 when the days are
 * not strictly ascending (out unspecified). */
int cp_metrics_daily(const cp_metrics_day_t *days, size_t n,
                     cp_metrics_daily_t *out);

/* A cohort's retention as of a day. */
typedef struct cp_metrics_retention_s {
    int64_t cohort; /* C */
    int64_t size;   /* n */
    int64_t retained[CP_METRICS_HORIZONS];
    /* retained / size; NaN when size <= 0 */
    double rate[CP_METRICS_HORIZONS];
    /* 1 once as_of >= C + k - 1: no later day can count for horizon k */
    int complete[CP_METRICS_HORIZONS];
} cp_metrics_retention_t;

void cp_metrics_retention(const cp_metrics_cohort_t *c, int64_t as_of,
                          cp_metrics_retention_t *out);

/* The cohorts reported on `day`: those of cohorts[0..n) with
 * C <= day <= C + CP_METRICS_WINDOW - 1, in their order, as of `day`.
 * Returns how many were written to out (at most CP_METRICS_WINDOW; with
 * distinct cohort days there are never more). */
size_t cp_metrics_window(const cp_metrics_cohort_t *cohorts, size_t n,
                         int64_t day,
                         cp_metrics_retention_t out[CP_METRICS_WINDOW]);

#endif
