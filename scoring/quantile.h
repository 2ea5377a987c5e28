/*
 * quantile.h - quantile RFM: R, F and M scores 1-5 against population
 * quintiles kept as bucketed histograms, and the named RFM segments of the
 * R x F grid (docs/models.md, "Quantile RFM").
 *
 * The population is a histogram per dimension (bucket -> customers): a
 * customer moving from one bucket to another is a decrement and an
 * increment, never a scan. Quintile thresholds are computed from a
 * histogram once per snapshot; a score is then a comparison with four
 * thresholds. Higher buckets are better in all three dimensions (R buckets
 * the last order's day: later = more recent).
 *
 * Pure computation.
 */
#ifndef CP_QUANTILE_H
#define CP_QUANTILE_H

#include <stdint.h>

/* Bucket of a customer's last order day (local day number): the day. */
int64_t cp_q_bucket_r(int64_t last_day);
/* Bucket of a count of orders (>= 1): the count up to 64, then 8 buckets
 * per doubling. */
int64_t cp_q_bucket_f(int64_t orders);
/* Bucket of monetary (minor units, >= 0): -1 for 0, else
 * floor(8 * log2(m)) - 8 buckets per doubling, each about 9% wide. */
int64_t cp_q_bucket_m(int64_t monetary);

/* One histogram bin. */
typedef struct cp_q_bin_s {
    int64_t bucket;
    int64_t count; /* customers, >= 0 */
} cp_q_bin_t;

/* No threshold: nobody reaches it. */
#define CP_Q_NONE INT64_MAX

/* The four quintile thresholds of a histogram whose bins are sorted by
 * bucket (ascending, distinct): t[k-1] = the bucket of the first non-empty
 * bin (in bucket order) with at least k/5 of the customers in the bins
 * before it; CP_Q_NONE when no bin has (all customers in one bucket: every
 * score is 1). Bins with count <= 0 are ignored. Returns the population. */
int64_t cp_q_thresholds(const cp_q_bin_t *bins, int n, int64_t t[4]);

/* Score 1..5 of bucket b: 1 + the number of thresholds b reaches. */
int cp_q_score(int64_t b, const int64_t t[4]);

typedef enum {
    CP_RFMSEG_NONE = 0,
    CP_RFMSEG_CHAMPIONS,
    CP_RFMSEG_LOYAL,
    CP_RFMSEG_POTENTIAL_LOYALIST,
    CP_RFMSEG_NEW,
    CP_RFMSEG_PROMISING,
    CP_RFMSEG_NEED_ATTENTION,
    CP_RFMSEG_ABOUT_TO_SLEEP,
    CP_RFMSEG_AT_RISK,
    CP_RFMSEG_CANT_LOSE,
    CP_RFMSEG_HIBERNATING,
    CP_RFMSEG_LOST,
    CP_RFMSEG__COUNT
} cp_rfmseg_t;

/* The named segment of scores r and f (1..5) by the R x F grid of
 * docs/models.md; CP_RFMSEG_NONE when either is out of range. */
cp_rfmseg_t cp_rfmseg(int r, int f);

/* "champions", "loyal", ...; NULL for CP_RFMSEG_NONE. */
const char *cp_rfmseg_code(cp_rfmseg_t s);

#endif
