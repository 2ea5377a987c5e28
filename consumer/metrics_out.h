/*
 * metrics_out.h - population metrics as Redis keys and as output
 * (docs/metrics.md): the names of the counter keys, and the daily record
 * of topic.metrics, a CloudEvent 1.0 in structured JSON
 * (schemas/customer-metrics.schema.json) whose data object is also what
 * `custpulse report --json` prints. Built into a cp_buf_t without JSON
 * trees.
 *
 * I/O-free (part of cp_consumer_core). Reentrant.
 */
#ifndef CP_METRICS_OUT_H
#define CP_METRICS_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "cp_time.h"
#include "metrics.h"

/* The sorted set of the days that have counters, after the prefix:
 * <prefix>mdays, member = score = the day number (decimal). */
#define CP_METRICS_DAYS_KEY "mdays"

/* The CloudEvent type of a day's record. */
#define CP_METRICS_EVENT_TYPE "com.custpulse.metrics.daily"

/* Writes the key of the counters of `day` with its NUL into buf:
 * "<prefix>md:YYYY-MM-DD" (CP_METRICS_DAY) or "<prefix>mc:YYYY-MM-DD"
 * (CP_METRICS_COHORT). Returns its length, or 0 when size is too small,
 * key is neither or the date is outside 0000..9999 (buf then holds ""
 * if size > 0). */
size_t cp_metrics_key_name(const char *prefix, cp_metrics_key_t key,
                           int64_t day, char *buf, size_t size);

/* Appends the data object of day r->day: {"day", "timezone" (cfg's),
 * "active", "new", "churned", "won_back", "at_risk_entered", "churn_rate"
 * (a number with up to 6 decimals, or null), "lifecycle" {stage: count}
 * and "segments" {rfm8 code: count} (every stage and segment, in enum
 * order), "cohorts" [{"cohort", "size", "retention" {"d2", "d7", "d14",
 * "d30"}}]}. cohorts[0..n_cohorts) are those reported on the day, as of
 * it (cp_metrics_window(..., r->day, ...)); a retention figure is null
 * while its horizon is not complete or the cohort is empty. r->day must
 * be a date in 1970..9999. */
void cp_output_metrics_data(cp_buf_t *b, const cp_metrics_daily_t *r,
                            const cp_metrics_retention_t *cohorts,
                            size_t n_cohorts, const cp_config_t *cfg);

/* Appends the CloudEvent of day r->day: type CP_METRICS_EVENT_TYPE,
 * subject the day "YYYY-MM-DD", id cp_output_event_id(day string,
 * "metrics", day number), time the end of the day (the first instant of
 * the next local day in tz, cp_tz_day_start; 9999-12-31T23:59:59.999Z at
 * the latest), data as cp_output_metrics_data. */
void cp_output_metrics(cp_buf_t *b, const cp_metrics_daily_t *r,
                       const cp_metrics_retention_t *cohorts, size_t n_cohorts,
                       const cp_tz_t *tz, const cp_config_t *cfg);

#endif
