/*
 * config.c - the configuration table and everything derived from it.
 *
 * config_table[] is the single source of truth: cp_config_new() applies
 * its defaults through the same parser as user input, cp_config_set()
 * validates against it, and cp_config_list() prints it as the reference
 * (docs/config.md; a unit test keeps that file equal to the output).
 * `kafka.*` keys are not in the table: they are kept as given for
 * librdkafka, which validates them. Nor are `segment.<name>.rule` keys:
 * custom segments, kept by name in cfg->segments; their rules are compiled
 * by the consumer (common/ does not include scoring/).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cp_time.h"
#include "hash.h"
#include "money.h"

/* ------------------------------------------------------------- the table */

typedef enum {
    CT_STRING,  /* char *, non-empty unless CF_EMPTY_OK */
    CT_SECRET,  /* char *, never printed (not even its default) */
    CT_INT,     /* int or int64_t (by field size), min..max */
    CT_ENUM,    /* an int-sized enum, index into values[] */
    CT_DECIMAL, /* char *, a money amount: cp_config_finalize parses it
                   into the int64_t at `derived` (minor units) */
    CT_DOUBLE,  /* double, dmin..dmax */
    CT_LIST     /* char *, CP_RFMQ_THRESHOLDS comma-separated, strictly
                   increasing integers min..max (or amounts with
                   CF_MONEY): cp_config_finalize parses them into the
                   int64_t[] at `derived` */
} ctype_t;

#define CF_EMPTY_OK 0x1 /* CT_STRING: "" is a valid value */
#define CF_NOT_ZERO 0x2 /* CT_INT, CT_DECIMAL: 0 is excluded */
#define CF_EXCL_MIN 0x4 /* CT_DOUBLE: the lower bound is exclusive */
#define CF_MONEY 0x8    /* CT_LIST: amounts in currency units, >= 0 */

typedef struct {
    const char *name;
    ctype_t type;
    const char *def;   /* default, in the text form a user would write */
    int64_t min, max;  /* CT_INT; CT_LIST without CF_MONEY */
    double dmin, dmax; /* CT_DOUBLE */
    const char *const *values; /* CT_ENUM: NULL-terminated, index = value */
    size_t off, size;          /* the field in cp_config_t */
    size_t derived;            /* CT_DECIMAL, CT_LIST: the parsed field */
    int flags;
    const char *range_doc; /* overrides the generated range column */
    const char *desc;
} centry_t;

/* One line per entry kind; clang-format would spread them out. */
/* clang-format off */
#define FIELD(m) .off = offsetof(cp_config_t, m),                              \
                 .size = sizeof(((cp_config_t *)0)->m)
/* Element i of the array member m. */
#define FIELD_AT(m, i)                                                         \
    .off = offsetof(cp_config_t, m) + (i) * sizeof(((cp_config_t *)0)->m[0]), \
    .size = sizeof(((cp_config_t *)0)->m[0])
#define DERIVED(m) .derived = offsetof(cp_config_t, m)
#define E_STR(n, m, d, fl, rd, ds)                                             \
    {.name = n, .type = CT_STRING, .def = d, FIELD(m), .flags = fl,          \
     .range_doc = rd, .desc = ds}
#define E_SECRET(n, m, ds)                                                     \
    {.name = n, .type = CT_SECRET, .def = "", FIELD(m), .desc = ds}
#define E_INT(n, m, d, lo, hi, fl, ds)                                         \
    {.name = n, .type = CT_INT, .def = d, .min = lo, .max = hi, FIELD(m),    \
     .flags = fl, .desc = ds}
#define E_ENUM(n, m, d, v, ds)                                                 \
    {.name = n, .type = CT_ENUM, .def = d, .values = v, FIELD(m), .desc = ds}
#define E_DEC(n, m, dm, d, fl, rd, ds)                                         \
    {.name = n, .type = CT_DECIMAL, .def = d, FIELD(m), DERIVED(dm),         \
     .flags = fl, .range_doc = rd, .desc = ds}
#define E_DBL(n, m, d, lo, hi, fl, ds)                                         \
    {.name = n, .type = CT_DOUBLE, .def = d, .dmin = lo, .dmax = hi,         \
     FIELD(m), .flags = fl, .desc = ds}
#define E_DBL_AT(n, m, i, d, lo, hi, ds)                                       \
    {.name = n, .type = CT_DOUBLE, .def = d, .dmin = lo, .dmax = hi,         \
     FIELD_AT(m, i), .desc = ds}
#define E_LIST(n, m, dm, d, lo, hi, ds)                                        \
    {.name = n, .type = CT_LIST, .def = d, .min = lo, .max = hi, FIELD(m),   \
     DERIVED(dm), .desc = ds}
#define E_MLIST(n, m, dm, d, ds)                                               \
    {.name = n, .type = CT_LIST, .def = d, FIELD(m), DERIVED(dm),            \
     .flags = CF_MONEY, .desc = ds}
/* clang-format on */

static const char *const clock_values[] = {"wall", "event", NULL};
static const char *const ref_values[] = {"live", "fixed", NULL};
static const char *const level_values[] = {"error", "warn", "info", "debug",
                                           NULL};
/* Indexes, not scoring's enums (common/ does not include scoring/). */
static const char *const btyd_model_values[] = {"mbgnbd", "bgnbd", NULL};
static const char *const btyd_unit_values[] = {"weeks", "days", NULL};
static const char *const churn_level_values[] = {"low", "medium", "high", NULL};

/* dedup.* bounds are scoring's CP_DEDUP_MAX (128); common/ does not include
 * scoring/, so the number is repeated here. */
static const centry_t config_table[] = {
    E_STR("topic.orders", topic_orders, "customer.orders", 0, NULL,
          "Input topic of order events."),
    E_STR("topic.browsing", topic_browsing, "customer.browsing", CF_EMPTY_OK,
          NULL, "Input topic of browsing events; empty = not consumed."),
    E_STR("topic.support", topic_support, "customer.support", CF_EMPTY_OK, NULL,
          "Input topic of support events; empty = not consumed."),
    E_STR("topic.profile", topic_profile, "customer.profile", CF_EMPTY_OK, NULL,
          "Input topic of profile events; empty = not consumed."),
    E_STR("topic.segments", topic_segments, "customer.segment-changes", 0, NULL,
          "Output topic of segment changes."),
    E_STR("topic.churn", topic_churn, "customer.churn-warnings", CF_EMPTY_OK,
          NULL,
          "Output topic of churn warnings and recoveries (docs/churn.md); "
          "empty = churn warnings off."),
    E_STR("topic.metrics", topic_metrics, "customer.metrics", CF_EMPTY_OK, NULL,
          "Output topic of the daily population metrics (docs/metrics.md); "
          "empty = metrics off."),
    E_STR("topic.dlq", topic_dlq, "custpulse.dlq", 0, NULL,
          "Dead-letter topic for invalid input messages."),
    E_INT("topic.partitions", topic_partitions, "3", 1, 10000, 0,
          "Partitions of the output and DLQ topics created at start-up."),
    E_INT("topic.replication", topic_replication, "-1", -1, 32, CF_NOT_ZERO,
          "Replication factor of the topics created at start-up; -1 = "
          "broker default."),
    E_STR("redis.host", redis_host, "127.0.0.1", 0, NULL,
          "Redis host name or address."),
    E_INT("redis.port", redis_port, "6379", 1, 65535, 0, "Redis port."),
    E_SECRET("redis.password", redis_password,
             "Redis password (AUTH); empty for none. Never printed."),
    E_INT("redis.db", redis_db, "0", 0, 1000, 0,
          "Redis database number (SELECT)."),
    E_INT("redis.timeout_ms", redis_timeout_ms, "2000", 10, 600000, 0,
          "Deadline per Redis command, in milliseconds."),
    E_STR("redis.key_prefix", redis_prefix, "cp:", CF_EMPTY_OK, NULL,
          "Prefix of every Redis key."),
    E_INT("redis.wait_replicas", redis_wait_replicas, "0", 0, 100, 0,
          "Replicas that must acknowledge a batch's writes (WAIT) before "
          "its outputs are produced and its offsets committed; 0 = the "
          "primary's acknowledgement suffices."),
    E_INT("redis.wait_timeout_ms", redis_wait_timeout_ms, "1000", 1, 600000, 0,
          "Timeout of one WAIT; a batch short of replicas waits again "
          "until they acknowledge."),
    E_STR("currency", currency, "USD", 0,
          "ISO 4217 code with known minor units",
          "Reporting currency; orders in other currencies go to the DLQ."),
    E_STR("timezone", timezone, "UTC", 0,
          "`UTC`, `+hh:mm`, `-hh:mm` or an IANA name",
          "Time zone of day boundaries (recency in days)."),
    E_ENUM("clock", clock, "wall", clock_values,
           "Source of \"now\": `wall` = system clock, read once per batch; "
           "`event` = greatest event time seen."),
    E_INT("clock.lateness_ms", clock_lateness_ms, "0", 0, 31622400000LL, 0,
          "`clock = event`: allowed lateness. The due-time sweep runs "
          "customers due up to the greatest event time seen less this, so "
          "events up to this late still come before a time-caused change."),
    E_ENUM("rfm.reference", rfm_reference, "live", ref_values,
           "What the RFM segment compares with: live population averages "
           "or the `rfm.fixed.*` values."),
    E_INT("rfm.fixed.recency_days", rfm_fixed_recency_days, "90", 0, 100000, 0,
          "Fixed reference recency, in days (`rfm.reference = fixed`)."),
    E_INT("rfm.fixed.frequency", rfm_fixed_frequency, "2", 1, 1000000000, 0,
          "Fixed reference frequency, in orders (`rfm.reference = fixed`)."),
    E_DEC("rfm.fixed.monetary", rfm_fixed_monetary, rfm_fixed_monetary_minor,
          "100", 0, "decimal >= 0, at most the currency's minor digits",
          "Fixed reference monetary value, in currency units "
          "(`rfm.reference = fixed`)."),
    E_INT("dedup.event_ids", dedup_event_ids, "16", 1, 128, 0,
          "Recent event ids remembered per customer for de-duplication."),
    E_INT("dedup.orders", dedup_orders, "32", 1, 128, 0,
          "Recent orders remembered per customer for de-duplication."),

    /* engagement; engagement_weight[] is in cp_browse_t order */
    E_DBL("engagement.half_life_days", engagement_half_life_days, "14", 0,
          36500, CF_EXCL_MIN,
          "Half-life of the decayed engagement score, in days."),
    E_DBL_AT("engagement.weight.session_started", engagement_weight, 0, "1", 0,
             1e6, "Engagement weight of a `session.started` event."),
    E_DBL_AT("engagement.weight.page_viewed", engagement_weight, 1, "0.5", 0,
             1e6, "Engagement weight of a `page.viewed` event."),
    E_DBL_AT("engagement.weight.product_viewed", engagement_weight, 2, "1", 0,
             1e6, "Engagement weight of a `product.viewed` event."),
    E_DBL_AT("engagement.weight.search_performed", engagement_weight, 3, "1", 0,
             1e6, "Engagement weight of a `search.performed` event."),
    E_DBL_AT("engagement.weight.cart_item_added", engagement_weight, 4, "3", 0,
             1e6, "Engagement weight of a `cart.item_added` event."),
    E_DBL_AT("engagement.weight.cart_abandoned", engagement_weight, 5, "2", 0,
             1e6, "Engagement weight of a `cart.abandoned` event."),
    E_DBL("engagement.high", engagement_high, "20", 0, 1e9, 0,
          "Engagement score from which the level is `high`; at least "
          "`engagement.medium`."),
    E_DBL("engagement.medium", engagement_medium, "5", 0, 1e9, 0,
          "Engagement score from which the level is `medium`; at least "
          "`engagement.low`."),
    E_DBL("engagement.low", engagement_low, "1", 0, 1e9, 0,
          "Engagement score from which the level is `low`; below it the "
          "level is `dormant`."),

    /* satisfaction */
    E_DBL("satisfaction.complaint_half_life_days",
          satisfaction_complaint_half_life_days, "30", 0, 36500, CF_EXCL_MIN,
          "Half-life of the decayed complaint count, in days."),
    E_DBL("satisfaction.at_risk_complaints", satisfaction_at_risk_complaints,
          "2", 0, 1e6, CF_EXCL_MIN,
          "Decayed complaint count from which a customer is `at_risk`."),
    E_INT("satisfaction.at_risk_open_tickets",
          satisfaction_at_risk_open_tickets, "3", 1, 1000000, 0,
          "Open tickets from which a customer is `at_risk`."),
    E_INT("satisfaction.at_risk_csat", satisfaction_at_risk_csat, "2", 1, 5, 0,
          "Latest CSAT at or below which a customer is `at_risk`; less than "
          "`satisfaction.satisfied_csat`."),
    E_INT("satisfaction.satisfied_csat", satisfaction_satisfied_csat, "4", 1, 5,
          0, "Latest CSAT from which a customer can be `satisfied`."),

    /* lifecycle */
    E_INT("lifecycle.new_days", lifecycle_new_days, "30", 1, 36500, 0,
          "A customer whose first order is fewer than this many days ago is "
          "`new`."),
    E_INT("lifecycle.loyal_orders", lifecycle_loyal_orders, "4", 1, 1000000, 0,
          "Counted orders from which a customer is `loyal`."),
    E_INT("lifecycle.at_risk_days", lifecycle_at_risk_days, "90", 1, 36500, 0,
          "Days since the last order from which a customer is `at_risk`."),
    E_INT("lifecycle.churn_days", lifecycle_churn_days, "180", 2, 36500, 0,
          "Days since the last order from which a customer is `churned`; "
          "greater than `lifecycle.at_risk_days`."),
    E_INT("lifecycle.won_back_days", lifecycle_won_back_days, "30", 1, 36500, 0,
          "Days after the order that ended a churn during which a customer "
          "is `won_back`."),

    /* value */
    E_DBL("value.weight.historical", value_w_historical, "0.4", 0, 1000, 0,
          "Weight of the historical part (monetary) of the value score; the "
          "three `value.weight.*` must sum to more than 0."),
    E_DBL("value.weight.predicted", value_w_predicted, "0.4", 0, 1000, 0,
          "Weight of the predicted part (CLV) of the value score."),
    E_DBL("value.weight.strategic", value_w_strategic, "0.2", 0, 1000, 0,
          "Weight of the strategic part (profile `is_strategic`) of the value "
          "score."),
    E_DEC("value.historical_ref", value_historical_ref,
          value_historical_ref_minor, "100", CF_NOT_ZERO,
          "decimal > 0, at most the currency's minor digits",
          "Monetary value, in currency units, at which the historical part "
          "is one half."),
    E_DEC("value.predicted_ref", value_predicted_ref, value_predicted_ref_minor,
          "200", CF_NOT_ZERO,
          "decimal > 0, at most the currency's minor digits",
          "CLV, in currency units, at which the predicted part is one half."),
    E_DBL("value.high_score", value_high_score, "0.6", 0, 1, 0,
          "Value score from which an alive customer who is not lapsing is "
          "`high_value`."),
    E_DBL("value.alive", value_alive, "0.5", 0, 1, 0,
          "P(alive) from which a customer counts as alive for the value "
          "tier."),

    /* btyd */
    E_ENUM("btyd.model", btyd_model, "mbgnbd", btyd_model_values,
           "BTYD model of P(alive), expected purchases and CLV."),
    E_ENUM("btyd.unit", btyd_unit, "weeks", btyd_unit_values,
           "Time unit of the fitted BTYD parameters."),
    E_INT("btyd.horizon_months", btyd_horizon_months, "12", 0, 1200, 0,
          "Horizon of the CLV, in months."),
    E_DBL("btyd.monthly_discount", btyd_monthly_discount, "0.01", 0, 1, 0,
          "Monthly discount rate of the CLV."),
    E_INT("btyd.refresh_ms", btyd_refresh_ms, "60000", 1000, 86400000, 0,
          "How often the daemon re-reads the fitted BTYD parameters from "
          "Redis, in milliseconds."),

    /* quantile RFM */
    E_ENUM("rfmq.mode", rfmq_mode, "live", ref_values,
           "Where the quantile RFM thresholds come from: `live` population "
           "snapshots or the `rfmq.fixed.*` lists."),
    E_INT("rfmq.snapshot_ms", rfmq_snapshot_ms, "60000", 1000, 86400000, 0,
          "Period of the population snapshot of the quantile RFM "
          "thresholds, in milliseconds (`rfmq.mode = live`)."),
    E_LIST("rfmq.fixed.recency_days", rfmq_fixed_recency_days, rfmq_fixed_r,
           "14,30,90,180", 0, 100000,
           "Fixed recency thresholds, in days since the last order: R is 5 "
           "below the first, 1 from the last (`rfmq.mode = fixed`)."),
    E_LIST("rfmq.fixed.frequency", rfmq_fixed_frequency, rfmq_fixed_f,
           "2,3,5,8", 1, 1000000000,
           "Fixed frequency thresholds, in counted orders "
           "(`rfmq.mode = fixed`)."),
    E_MLIST("rfmq.fixed.monetary", rfmq_fixed_monetary, rfmq_fixed_m_minor,
            "50,100,250,500",
            "Fixed monetary thresholds, in currency units "
            "(`rfmq.mode = fixed`)."),

    /* churn warnings (docs/churn.md); churn_weight[] is in cp_churn_reason_t
     * order */
    E_DBL("churn.overdue.k", churn_overdue_k, "2", 0, 100, CF_EXCL_MIN,
          "`overdue`: days since the last order above this many mean "
          "inter-order gaps (at least `churn.overdue.floor_days`)."),
    E_DBL("churn.overdue.floor_days", churn_overdue_floor_days, "14", 0, 36500,
          0, "`overdue`: never before this many days since the last order."),
    E_DBL("churn.overdue.fallback_gap_days", churn_overdue_fallback_gap_days,
          "45", 0, 36500, CF_EXCL_MIN,
          "`overdue`: the mean inter-order gap, in days, of a customer "
          "without a repeat order day."),
    E_DBL("churn.p_alive.low", churn_p_alive_low, "0.3", 0, 1, 0,
          "`p_alive_low`: BTYD P(alive) below this (with fitted BTYD "
          "parameters)."),
    E_DBL("churn.p_alive.recover", churn_p_alive_recover, "0.5", 0, 1, 0,
          "P(alive) from which that signal has recovered; at least "
          "`churn.p_alive.low`."),
    E_DBL("churn.engagement.peak_half_life_days", churn_eng_peak_half_life_days,
          "60", 0, 36500, CF_EXCL_MIN,
          "`engagement_drop`: half-life of the recent engagement peak, in "
          "days; greater than `engagement.half_life_days`."),
    E_DBL("churn.engagement.fraction", churn_eng_fraction, "0.25", 0, 1,
          CF_EXCL_MIN,
          "`engagement_drop`: engagement below this fraction of its recent "
          "peak."),
    E_DBL("churn.engagement.recover_fraction", churn_eng_recover_fraction,
          "0.5", 0, 1, CF_EXCL_MIN,
          "Fraction of the peak from which engagement has recovered; at "
          "least `churn.engagement.fraction`."),
    E_DBL("churn.engagement.min_peak", churn_eng_min_peak, "5", 0, 1e9,
          CF_EXCL_MIN,
          "`engagement_drop` needs a recent peak of at least this score."),
    E_DBL("churn.service.complaints", churn_service_complaints, "0.5", 0, 1e6,
          CF_EXCL_MIN,
          "`service_risk`: decayed complaints from this (one complaint "
          "counts for one `satisfaction.complaint_half_life_days`)."),
    E_DBL("churn.service.recover_complaints", churn_service_recover_complaints,
          "0.25", 0, 1e6, CF_EXCL_MIN,
          "Decayed complaints below which that signal has recovered; at most "
          "`churn.service.complaints`."),
    E_INT("churn.service.csat_max", churn_service_csat_max, "2", 0, 5, 0,
          "`service_risk`: a latest CSAT at or below this within "
          "`churn.service.csat_window_days`; 0 = CSAT not used."),
    E_DBL("churn.service.csat_window_days", churn_service_csat_window_days,
          "30", 0, 36500, CF_EXCL_MIN,
          "How long a low CSAT counts for `service_risk`, in days."),
    E_DBL("churn.value.short_half_life_days", churn_value_short_half_life_days,
          "30", 0, 36500, CF_EXCL_MIN,
          "`value_drop`: half-life of the recent spend, in days."),
    E_DBL("churn.value.long_half_life_days", churn_value_long_half_life_days,
          "180", 0, 36500, CF_EXCL_MIN,
          "`value_drop`: half-life of the customer's spend norm, in days; "
          "greater than `churn.value.short_half_life_days`."),
    E_DBL("churn.value.fraction", churn_value_fraction, "0.3", 0, 1,
          CF_EXCL_MIN,
          "`value_drop`: recent spend rate below this fraction of the norm "
          "(customers with 2 or more orders)."),
    E_DBL("churn.value.recover_fraction", churn_value_recover_fraction, "0.6",
          0, 1, CF_EXCL_MIN,
          "Fraction of the norm from which spend has recovered; at least "
          "`churn.value.fraction`."),
    E_DBL_AT("churn.weight.overdue", churn_weight, 0, "0.5", 0, 1,
             "Risk weight of `overdue` (score = 1 - product of (1 - weight) "
             "over the active reasons)."),
    E_DBL_AT("churn.weight.p_alive_low", churn_weight, 1, "0.5", 0, 1,
             "Risk weight of `p_alive_low`."),
    E_DBL_AT("churn.weight.engagement_drop", churn_weight, 2, "0.25", 0, 1,
             "Risk weight of `engagement_drop`."),
    E_DBL_AT("churn.weight.service_risk", churn_weight, 3, "0.4", 0, 1,
             "Risk weight of `service_risk`."),
    E_DBL_AT("churn.weight.value_drop", churn_weight, 4, "0.3", 0, 1,
             "Risk weight of `value_drop`."),
    E_DBL("churn.level.low", churn_level_low, "0.2", 0, 1, CF_EXCL_MIN,
          "Risk score from which the level is `low`."),
    E_DBL("churn.level.medium", churn_level_medium, "0.45", 0, 1, CF_EXCL_MIN,
          "Risk score from which the level is `medium`; at least "
          "`churn.level.low`."),
    E_DBL("churn.level.high", churn_level_high, "0.7", 0, 1, CF_EXCL_MIN,
          "Risk score from which the level is `high`; at least "
          "`churn.level.medium`."),
    E_ENUM("churn.min_level", churn_min_level, "low", churn_level_values,
           "Lowest risk level that starts a warning episode."),
    E_INT("due.max_days", due_max_days, "0", 0, 36500, 0,
          "Evaluate every customer with orders at least once per this many "
          "days (so new population thresholds reach it); 0 = only when a "
          "result moves with time."),
    E_INT("due.sweep_ms", due_sweep_ms, "1000", 0, 3600000, 0,
          "Period of the due-time sweep: customers whose next evaluation "
          "time has passed are evaluated without an event (cause `time`); "
          "0 = off (results change only with events)."),
    E_INT("due.sweep_batch", due_sweep_batch, "500", 1, 100000, 0,
          "Most customers evaluated by one sweep batch (oldest due first); "
          "sweep and event batches alternate while both have work."),

    /* pipeline */
    E_INT("batch.size", batch_size, "1000", 1, 100000, 0,
          "Most input messages per batch."),
    E_INT("cache.mb", cache_mb, "64", 0, 65536, 0,
          "Memory for recently written customer states, in MiB: a cached "
          "customer is not read from Redis (its write's version check "
          "catches a stale entry); 0 = off."),
    E_INT("input.max_bytes", input_max_bytes, "65536", 64, 10485760, 0,
          "Largest input message value in bytes; larger ones go to the DLQ."),
    E_STR("output.source", output_source, "custpulse", 0, NULL,
          "CloudEvents `source` of output events."),
    E_ENUM("log.level", log_level, "info", level_values,
           "Log threshold; at `debug` customer ids are logged unhashed."),
    E_SECRET("log.id_key", log_id_key,
             "Key of the keyed hash (SipHash-2-4) of customer ids in logs; "
             "empty = a random key per process. Never printed."),
    E_INT("stats.interval_ms", stats_interval_ms, "60000", 0, 86400000, 0,
          "Period of the `stats` log line (counters), in milliseconds; "
          "0 = only the final line at exit."),
    E_INT("shutdown.timeout_ms", shutdown_timeout_ms, "10000", 100, 600000, 0,
          "Longest clean shutdown (drain, deliver, commit), in "
          "milliseconds."),
};

#define TABLE_LEN (sizeof(config_table) / sizeof(config_table[0]))
#define KAFKA_PREFIX "kafka."
#define SEGMENT_PREFIX "segment."
#define SEGMENT_SUFFIX ".rule"
#define ENV_PREFIX "CUSTPULSE_"
#define ENV_SEGMENT "SEGMENT_" /* after ENV_PREFIX */

/* -------------------------------------------------------------- helpers */

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...)
{
    va_list ap;

    if (errstr == NULL || size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

static const centry_t *table_find(const char *name)
{
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (strcmp(config_table[i].name, name) == 0)
            return &config_table[i];
    }
    return NULL;
}

static void *field_ptr(cp_config_t *cfg, const centry_t *e)
{
    return (char *)cfg + e->off;
}

static int is_string_type(ctype_t t)
{
    return t == CT_STRING || t == CT_SECRET || t == CT_DECIMAL || t == CT_LIST;
}

/* ------------------------------------------------------------- setters */

static cp_err_t set_string(cp_config_t *cfg, const centry_t *e,
                           const char *value, char *errstr, size_t size)
{
    char **slot = field_ptr(cfg, e);
    char *copy;

    if (value[0] == '\0' && e->type != CT_SECRET && !(e->flags & CF_EMPTY_OK)) {
        seterr(errstr, size, "%s: must not be empty", e->name);
        return CP_EPARSE;
    }
    copy = strdup(value);
    if (copy == NULL) {
        seterr(errstr, size, "%s: out of memory", e->name);
        return CP_ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return CP_OK;
}

/* Whole-string strtoll: no leading space, no trailing junk, no overflow. */
static cp_err_t parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s[0] == '\0' || isspace((unsigned char)s[0]))
        return CP_EPARSE;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end != '\0')
        return CP_EPARSE;
    if (errno == ERANGE)
        return CP_ERANGE;
    *out = v;
    return CP_OK;
}

static cp_err_t set_int(cp_config_t *cfg, const centry_t *e, const char *value,
                        char *errstr, size_t size)
{
    int64_t v;
    cp_err_t err = parse_i64(value, &v);

    if (err == CP_EPARSE) {
        seterr(errstr, size, "%s: '%s' is not an integer", e->name, value);
        return err;
    }
    if (err != CP_OK || v < e->min || v > e->max ||
        (v == 0 && (e->flags & CF_NOT_ZERO))) {
        seterr(errstr, size, "%s: '%s' is out of range %lld..%lld%s", e->name,
               value, (long long)e->min, (long long)e->max,
               (e->flags & CF_NOT_ZERO) ? " (0 excluded)" : "");
        return CP_ERANGE;
    }
    if (e->size == sizeof(int64_t)) {
        *(int64_t *)field_ptr(cfg, e) = v;
    } else {
        *(int *)field_ptr(cfg, e) = (int)v;
    }
    return CP_OK;
}

/* 1 when s is [+-]digits[.digits][(e|E)[+-]digits] and nothing else: the
 * decimal form only, so that strtod's "nan", "inf", hex floats ("0x1p3"),
 * ".5" and leading blanks are refused before strtod sees them. */
static int is_decimal_text(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!isdigit((unsigned char)*s))
        return 0;
    while (isdigit((unsigned char)*s))
        s++;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

/* Whole-string strtod of a decimal (is_decimal_text): CP_ERANGE when it
 * overflows a double; an underflow gives strtod's tiny value or 0. The
 * process never calls setlocale, so the decimal point is '.'. */
static cp_err_t parse_double(const char *s, double *out)
{
    char *end;
    double v;

    if (!is_decimal_text(s))
        return CP_EPARSE;
    v = strtod(s, &end);
    if (*end != '\0')
        return CP_EPARSE;
    if (isinf(v))
        return CP_ERANGE;
    *out = v;
    return CP_OK;
}

static cp_err_t set_double(cp_config_t *cfg, const centry_t *e,
                           const char *value, char *errstr, size_t size)
{
    int excl = (e->flags & CF_EXCL_MIN) != 0;
    double v;
    cp_err_t err = parse_double(value, &v);

    if (err == CP_EPARSE) {
        seterr(errstr, size, "%s: '%s' is not a decimal number", e->name,
               value);
        return err;
    }
    if (err != CP_OK || v < e->dmin || (excl && v == e->dmin) || v > e->dmax) {
        seterr(errstr, size, "%s: '%s' is out of range %s%.15g .. %.15g",
               e->name, value, excl ? "> " : "", e->dmin, e->dmax);
        return CP_ERANGE;
    }
    *(double *)field_ptr(cfg, e) = v;
    return CP_OK;
}

static cp_err_t set_enum(cp_config_t *cfg, const centry_t *e, const char *value,
                         char *errstr, size_t size)
{
    for (int i = 0; e->values[i] != NULL; i++) {
        if (strcmp(e->values[i], value) == 0) {
            /* The enum fields are int-sized (static_assert below). */
            memcpy(field_ptr(cfg, e), &i, sizeof(i));
            return CP_OK;
        }
    }
    seterr(errstr, size, "%s: '%s' is not one of the allowed values", e->name,
           value);
    return CP_EPARSE;
}

_Static_assert(sizeof(cp_clock_mode_t) == sizeof(int), "enum is int-sized");
_Static_assert(sizeof(cp_ref_mode_t) == sizeof(int), "enum is int-sized");
_Static_assert(sizeof(cp_log_level_t) == sizeof(int), "enum is int-sized");

static cp_err_t set_entry(cp_config_t *cfg, const centry_t *e,
                          const char *value, char *errstr, size_t size)
{
    switch (e->type) {
    case CT_INT:
        return set_int(cfg, e, value, errstr, size);
    case CT_ENUM:
        return set_enum(cfg, e, value, errstr, size);
    case CT_DOUBLE:
        return set_double(cfg, e, value, errstr, size);
    default:
        return set_string(cfg, e, value, errstr, size);
    }
}

/* Sets kafka.<name>; an existing name keeps its place, with the new value. */
static cp_err_t set_kafka(cp_config_t *cfg, const char *name, const char *value,
                          char *errstr, size_t size)
{
    char *v = strdup(value);
    cp_kv_t *grown;

    if (v == NULL)
        goto nomem;
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        if (strcmp(cfg->kafka[i].key, name) == 0) {
            free(cfg->kafka[i].value);
            cfg->kafka[i].value = v;
            return CP_OK;
        }
    }
    grown = realloc(cfg->kafka, (cfg->kafka_cnt + 1) * sizeof(*grown));
    if (grown == NULL)
        goto nomem;
    cfg->kafka = grown;
    grown[cfg->kafka_cnt].key = strdup(name);
    if (grown[cfg->kafka_cnt].key == NULL)
        goto nomem;
    grown[cfg->kafka_cnt].value = v;
    cfg->kafka_cnt++;
    return CP_OK;
nomem:
    free(v);
    seterr(errstr, size, "kafka.%s: out of memory", name);
    return CP_ENOMEM;
}

/* ------------------------------------------------------------ segments */

/* 1 when name (n bytes) is [a-z][a-z0-9_]{0,31}. */
static int segment_name_ok(const char *name, size_t n)
{
    if (n == 0 || n > CP_SEGMENT_NAME_MAX || name[0] < 'a' || name[0] > 'z')
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* Index of the segment called name (n bytes), or cfg->segments_cnt. */
static size_t segment_find(const cp_config_t *cfg, const char *name, size_t n)
{
    size_t i;

    for (i = 0; i < cfg->segments_cnt; i++) {
        if (strncmp(cfg->segments[i].name, name, n) == 0 &&
            cfg->segments[i].name[n] == '\0')
            break;
    }
    return i;
}

/* Removes segment i; the later ones keep their order. */
static void segment_remove(cp_config_t *cfg, size_t i)
{
    free(cfg->segments[i].name);
    free(cfg->segments[i].rule);
    memmove(&cfg->segments[i], &cfg->segments[i + 1],
            (cfg->segments_cnt - i - 1) * sizeof(cfg->segments[0]));
    cfg->segments_cnt--;
}

/* Appends segment name (n bytes) with rule, which it takes ownership of;
 * frees rule on failure. */
static cp_err_t segment_append(cp_config_t *cfg, const char *name, size_t n,
                               char *rule)
{
    cp_segment_rule_t *grown;
    char *copy = strndup(name, n);

    grown = copy != NULL ? realloc(cfg->segments,
                                   (cfg->segments_cnt + 1) * sizeof(*grown))
                         : NULL;
    if (grown == NULL) {
        free(copy);
        free(rule);
        return CP_ENOMEM;
    }
    cfg->segments = grown;
    grown[cfg->segments_cnt].name = copy;
    grown[cfg->segments_cnt].rule = rule;
    cfg->segments_cnt++;
    return CP_OK;
}

/* Sets segment.<name>.rule (key is the whole key). An empty value removes
 * the segment; a name set again keeps its place with the new rule. */
static cp_err_t set_segment(cp_config_t *cfg, const char *key,
                            const char *value, char *errstr, size_t size)
{
    size_t plen = strlen(SEGMENT_PREFIX), slen = strlen(SEGMENT_SUFFIX);
    size_t klen = strlen(key), vlen = strlen(value), n, i;
    const char *name = key + plen;
    char *rule;

    if (klen < plen + slen || strcmp(key + klen - slen, SEGMENT_SUFFIX) != 0) {
        seterr(errstr, size,
               "unknown configuration key '%s' (a custom segment is "
               "segment.<name>.rule)",
               key);
        return CP_EUNKNOWNKEY;
    }
    n = klen - plen - slen;
    if (!segment_name_ok(name, n)) {
        seterr(errstr, size,
               "%s: segment name '%.*s' does not match [a-z][a-z0-9_]{0,%d}",
               key, (int)n, name, CP_SEGMENT_NAME_MAX - 1);
        return CP_EPARSE;
    }
    i = segment_find(cfg, name, n);
    if (vlen == 0) {
        if (i < cfg->segments_cnt)
            segment_remove(cfg, i);
        return CP_OK;
    }
    if (vlen > CP_SEGMENT_RULE_MAX) {
        seterr(errstr, size, "%s: the rule is %zu bytes, more than %d", key,
               vlen, CP_SEGMENT_RULE_MAX);
        return CP_ERANGE;
    }
    if (i == cfg->segments_cnt && i >= CP_SEGMENTS_MAX) {
        seterr(errstr, size, "%s: more than %d custom segments", key,
               CP_SEGMENTS_MAX);
        return CP_ERANGE;
    }
    rule = strdup(value);
    if (rule == NULL)
        goto nomem;
    if (i < cfg->segments_cnt) {
        free(cfg->segments[i].rule);
        cfg->segments[i].rule = rule;
        return CP_OK;
    }
    if (segment_append(cfg, name, n, rule) != CP_OK)
        goto nomem; /* rule freed */
    return CP_OK;
nomem:
    seterr(errstr, size, "%s: out of memory", key);
    return CP_ENOMEM;
}

/* ------------------------------------------------------------- set */

cp_err_t cp_config_set(cp_config_t *cfg, const char *key, const char *value,
                       char *errstr, size_t errstr_size)
{
    const centry_t *e;

    if (key == NULL || value == NULL) {
        seterr(errstr, errstr_size, "configuration key or value missing");
        return CP_EINVAL;
    }
    if (strncmp(key, KAFKA_PREFIX, strlen(KAFKA_PREFIX)) == 0) {
        const char *name = key + strlen(KAFKA_PREFIX);

        if (name[0] != '\0')
            return set_kafka(cfg, name, value, errstr, errstr_size);
    } else if (strncmp(key, SEGMENT_PREFIX, strlen(SEGMENT_PREFIX)) == 0) {
        return set_segment(cfg, key, value, errstr, errstr_size);
    } else if ((e = table_find(key)) != NULL) {
        return set_entry(cfg, e, value, errstr, errstr_size);
    }
    seterr(errstr, errstr_size, "unknown configuration key '%s'", key);
    return CP_EUNKNOWNKEY;
}

/* -------------------------------------------------------- new and free */

cp_config_t *cp_config_new(void)
{
    cp_config_t *cfg = calloc(1, sizeof(*cfg));

    if (cfg == NULL)
        return NULL;
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (set_entry(cfg, &config_table[i], config_table[i].def, NULL, 0) !=
            CP_OK) {
            cp_config_free(cfg);
            return NULL;
        }
    }
    cfg->currency_digits = -1; /* until cp_config_finalize */
    return cfg;
}

void cp_config_free(cp_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (is_string_type(config_table[i].type))
            free(*(char **)field_ptr(cfg, &config_table[i]));
    }
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    for (size_t i = 0; i < cfg->segments_cnt; i++) {
        free(cfg->segments[i].name);
        free(cfg->segments[i].rule);
    }
    free(cfg->segments);
    free(cfg);
}

const char *cp_config_kafka_get(const cp_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        if (strcmp(cfg->kafka[i].key, key) == 0)
            return cfg->kafka[i].value;
    }
    return NULL;
}

/* ---------------------------------------------------------------- -X */

cp_err_t cp_config_set_kv(cp_config_t *cfg, const char *kv, char *errstr,
                          size_t errstr_size)
{
    const char *eq = kv != NULL ? strchr(kv, '=') : NULL;
    char *key;
    cp_err_t err;

    /* Without '=' there is no value, so echoing kv reveals no secret. */
    if (eq == NULL || eq == kv) {
        seterr(errstr, errstr_size, "expected key=value, got '%s'",
               kv != NULL ? kv : "");
        return CP_EPARSE;
    }
    key = strndup(kv, (size_t)(eq - kv));
    if (key == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        return CP_ENOMEM;
    }
    err = cp_config_set(cfg, key, eq + 1, errstr, errstr_size);
    free(key);
    return err;
}

/* ------------------------------------------------------ properties file */

/* Trims ASCII white space at both ends, in place. */
static char *trim(char *s)
{
    char *end = s + strlen(s);

    while (isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* One line of a properties file; errors get the file:line prefix. */
static cp_err_t load_line(cp_config_t *cfg, char *line, const char *where,
                          char *errstr, size_t size)
{
    char msg[512];
    char *key = trim(line), *eq;
    cp_err_t err;

    if (key[0] == '\0' || key[0] == '#')
        return CP_OK;
    eq = strchr(key, '=');
    if (eq == NULL || eq == key) {
        seterr(errstr, size, "%s: expected 'key = value'", where);
        return CP_EPARSE;
    }
    *eq = '\0';
    err = cp_config_set(cfg, trim(key), trim(eq + 1), msg, sizeof(msg));
    if (err != CP_OK)
        seterr(errstr, size, "%s: %s", where, msg);
    return err;
}

cp_err_t cp_config_load_file(cp_config_t *cfg, const char *path, char *errstr,
                             size_t errstr_size)
{
    char where[512];
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    cp_err_t err = CP_OK;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        seterr(errstr, errstr_size, "cannot open '%s': %s", path,
               strerror(errno));
        return CP_EIO;
    }
    while (err == CP_OK && getline(&line, &cap, f) != -1) {
        snprintf(where, sizeof(where), "%s:%ld", path, ++lineno);
        err = load_line(cfg, line, where, errstr, errstr_size);
    }
    if (err == CP_OK && ferror(f)) {
        seterr(errstr, errstr_size, "cannot read '%s'", path);
        err = CP_EIO;
    }
    free(line);
    fclose(f);
    return err;
}

/* ---------------------------------------------------------- environment */

/* 1 when the variable name (after CUSTPULSE_, n bytes) spells key
 * upper-cased with '.' -> '_'. */
static int env_matches(const char *name, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n && key[i] != '\0'; i++) {
        char want = key[i] == '.' ? '_' : (char)toupper((unsigned char)key[i]);

        if (name[i] != want)
            return 0;
    }
    return i == n && key[i] == '\0';
}

/* KAFKA_X_Y (n bytes) -> "kafka.x.y" in out; the caller checks the prefix. */
static char *env_kafka_key(const char *name, size_t n)
{
    size_t plen = strlen(KAFKA_PREFIX);
    char *key = malloc(plen + n + 1);

    if (key == NULL)
        return NULL;
    memcpy(key, KAFKA_PREFIX, plen);
    for (size_t i = 6; i < n; i++) /* skip "KAFKA_" */
        key[plen + i - 6] =
            name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
    key[plen + n - 6] = '\0';
    return key;
}

/* The table key for variable name (n bytes after CUSTPULSE_), as a new
 * string; NULL with *err set when there is none. */
static char *env_key(const char *name, size_t n, cp_err_t *err)
{
    *err = CP_EUNKNOWNKEY;
    if (n > 6 && strncmp(name, "KAFKA_", 6) == 0) {
        char *key = env_kafka_key(name, n);

        if (key == NULL)
            *err = CP_ENOMEM;
        return key;
    }
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (env_matches(name, n, config_table[i].name)) {
            char *key = strdup(config_table[i].name);

            if (key == NULL)
                *err = CP_ENOMEM;
            return key;
        }
    }
    return NULL;
}

static cp_err_t load_env_var(cp_config_t *cfg, const char *var, char *errstr,
                             size_t size)
{
    const char *name = var + strlen(ENV_PREFIX);
    const char *eq = strchr(name, '=');
    size_t vlen = (size_t)(eq - var);
    char msg[512];
    cp_err_t err;
    char *key;

    /* segment.<name>.rule has no variable: a variable name cannot spell
     * the lower-case <name> apart from the '.' around it. */
    if (strncmp(name, ENV_SEGMENT, strlen(ENV_SEGMENT)) == 0) {
        seterr(errstr, size,
               "unknown environment variable '%.*s': segment.<name>.rule "
               "cannot be set through the environment (use -c FILE or -X)",
               (int)vlen, var);
        return CP_EUNKNOWNKEY;
    }
    key = env_key(name, (size_t)(eq - name), &err);
    if (key == NULL) {
        seterr(errstr, size, "%s environment variable '%.*s'",
               err == CP_ENOMEM ? "out of memory for" : "unknown", (int)vlen,
               var);
        return err;
    }
    err = cp_config_set(cfg, key, eq + 1, msg, sizeof(msg));
    if (err != CP_OK)
        seterr(errstr, size, "%.*s: %s", (int)vlen, var, msg);
    free(key);
    return err;
}

cp_err_t cp_config_load_env(cp_config_t *cfg, char *const *envp, char *errstr,
                            size_t errstr_size)
{
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *var = envp[i];
        cp_err_t err;

        /* Entries without '=' are not variables; nothing to apply. The
         * test hooks (docs/fault-tolerance.md) are read where they act. */
        if (strncmp(var, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 ||
            strchr(var, '=') == NULL ||
            strncmp(var, "CUSTPULSE_FAILPOINT=", 20) == 0 ||
            strncmp(var, "CUSTPULSE_MOCK_FAULTS=", 22) == 0)
            continue;
        err = load_env_var(cfg, var, errstr, errstr_size);
        if (err != CP_OK)
            return err;
    }
    return CP_OK;
}

/* ------------------------------------------------------------- finalize */

static cp_err_t finalize_currency(cp_config_t *cfg, char *errstr, size_t size)
{
    const char *c = cfg->currency;
    int ok = strlen(c) == 3;

    for (int i = 0; ok && i < 3; i++)
        ok = c[i] >= 'A' && c[i] <= 'Z';
    cfg->currency_digits = ok ? cp_currency_digits(c) : -1;
    if (cfg->currency_digits < 0) {
        seterr(errstr, size, "currency: '%s' is not a supported ISO 4217 code",
               c);
        return CP_EINVAL;
    }
    return CP_OK;
}

/* Parses the CT_DECIMAL e into its derived minor units. */
static cp_err_t finalize_decimal(cp_config_t *cfg, const centry_t *e,
                                 char *errstr, size_t size)
{
    const char *s = *(char **)field_ptr(cfg, e);
    int64_t minor;
    cp_err_t err = cp_money_parse(s, strlen(s), cfg->currency_digits, &minor);

    if (err != CP_OK) {
        seterr(errstr, size, "%s: '%s' is not a valid %s amount: %s", e->name,
               s, cfg->currency, cp_err_str(err));
        return err;
    }
    if (minor == 0 && (e->flags & CF_NOT_ZERO)) {
        seterr(errstr, size, "%s: '%s' must be more than 0", e->name, s);
        return CP_ERANGE;
    }
    *(int64_t *)((char *)cfg + e->derived) = minor;
    return CP_OK;
}

/* One item of the CT_LIST e (trimmed, NUL-terminated) into *out. */
static cp_err_t list_item(const cp_config_t *cfg, const centry_t *e,
                          const char *item, int64_t *out, char *errstr,
                          size_t size)
{
    cp_err_t err;

    if (e->flags & CF_MONEY) {
        err = cp_money_parse(item, strlen(item), cfg->currency_digits, out);
        if (err != CP_OK)
            seterr(errstr, size, "%s: item '%s' is not a valid %s amount: %s",
                   e->name, item, cfg->currency, cp_err_str(err));
        return err;
    }
    err = parse_i64(item, out);
    if (err == CP_EPARSE) {
        seterr(errstr, size, "%s: item '%s' is not an integer", e->name, item);
        return err;
    }
    if (err != CP_OK || *out < e->min || *out > e->max) {
        seterr(errstr, size, "%s: item '%s' is out of range %lld..%lld",
               e->name, item, (long long)e->min, (long long)e->max);
        return CP_ERANGE;
    }
    return CP_OK;
}

/* Splits text, the value of the CT_LIST e, into exactly CP_RFMQ_THRESHOLDS
 * strictly increasing items; blanks around an item are allowed. copy is a
 * copy of text that it cuts up. */
static cp_err_t list_parse(const cp_config_t *cfg, const centry_t *e,
                           const char *text, char *copy, int64_t *v,
                           char *errstr, size_t size)
{
    char *item = copy;
    size_t n = 1;

    for (const char *p = text; *p != '\0'; p++)
        n += *p == ',';
    if (n != CP_RFMQ_THRESHOLDS) {
        seterr(errstr, size, "%s: '%s' is not %d comma-separated values",
               e->name, text, CP_RFMQ_THRESHOLDS);
        return CP_EPARSE;
    }
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(item, ',');
        cp_err_t err;

        if (comma != NULL)
            *comma = '\0';
        err = list_item(cfg, e, trim(item), &v[i], errstr, size);
        if (err != CP_OK)
            return err;
        if (i > 0 && v[i] <= v[i - 1]) {
            seterr(errstr, size, "%s: '%s' is not strictly increasing", e->name,
                   text);
            return CP_ERANGE;
        }
        if (comma != NULL)
            item = comma + 1;
    }
    return CP_OK;
}

/* Parses the CT_LIST e into its derived int64_t[CP_RFMQ_THRESHOLDS]; left
 * alone on error. */
static cp_err_t finalize_list(cp_config_t *cfg, const centry_t *e, char *errstr,
                              size_t size)
{
    int64_t v[CP_RFMQ_THRESHOLDS];
    const char *text = *(char **)field_ptr(cfg, e);
    char *copy = strdup(text);
    cp_err_t err;

    if (copy == NULL) {
        seterr(errstr, size, "%s: out of memory", e->name);
        return CP_ENOMEM;
    }
    err = list_parse(cfg, e, text, copy, v, errstr, size);
    if (err == CP_OK)
        memcpy((char *)cfg + e->derived, v, sizeof(v));
    free(copy);
    return err;
}

/* The CT_DECIMAL and CT_LIST entries, in table order. */
static cp_err_t finalize_derived(cp_config_t *cfg, char *errstr, size_t size)
{
    cp_err_t err = CP_OK;

    for (size_t i = 0; i < TABLE_LEN && err == CP_OK; i++) {
        const centry_t *e = &config_table[i];

        if (e->type == CT_DECIMAL)
            err = finalize_decimal(cfg, e, errstr, size);
        else if (e->type == CT_LIST)
            err = finalize_list(cfg, e, errstr, size);
    }
    return err;
}

static cp_err_t finalize_timezone(cp_config_t *cfg, char *errstr, size_t size)
{
    char msg[256];
    cp_tz_t *tz = cp_tz_new(cfg->timezone, msg, sizeof(msg));

    if (tz == NULL) {
        seterr(errstr, size, "timezone: %s", msg);
        return CP_EINVAL;
    }
    cp_tz_free(tz);
    return CP_OK;
}

/* hi >= lo (strict: hi > lo) between two double keys, else CP_EINVAL. */
static cp_err_t check_ge(const char *hi_name, double hi, const char *lo_name,
                         double lo, int strict, char *errstr, size_t size)
{
    if (strict ? hi > lo : hi >= lo)
        return CP_OK;
    seterr(errstr, size, "%s: %.15g is not %s %s (%.15g)", hi_name, hi,
           strict ? "greater than" : "at least", lo_name, lo);
    return CP_EINVAL;
}

/* The churn.* orderings, first failure returned. */
static cp_err_t finalize_churn_order(const cp_config_t *cfg, char *errstr,
                                     size_t size)
{
    const struct {
        const char *hi_name;
        double hi;
        const char *lo_name;
        double lo;
        int strict;
    } checks[] = {
        {"churn.p_alive.recover", cfg->churn_p_alive_recover,
         "churn.p_alive.low", cfg->churn_p_alive_low, 0},
        {"churn.engagement.peak_half_life_days",
         cfg->churn_eng_peak_half_life_days, "engagement.half_life_days",
         cfg->engagement_half_life_days, 1},
        {"churn.engagement.recover_fraction", cfg->churn_eng_recover_fraction,
         "churn.engagement.fraction", cfg->churn_eng_fraction, 0},
        {"churn.service.complaints", cfg->churn_service_complaints,
         "churn.service.recover_complaints",
         cfg->churn_service_recover_complaints, 0},
        {"churn.value.long_half_life_days",
         cfg->churn_value_long_half_life_days,
         "churn.value.short_half_life_days",
         cfg->churn_value_short_half_life_days, 1},
        {"churn.value.recover_fraction", cfg->churn_value_recover_fraction,
         "churn.value.fraction", cfg->churn_value_fraction, 0},
        {"churn.level.high", cfg->churn_level_high, "churn.level.medium",
         cfg->churn_level_medium, 0},
        {"churn.level.medium", cfg->churn_level_medium, "churn.level.low",
         cfg->churn_level_low, 0},
    };
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        cp_err_t err =
            check_ge(checks[i].hi_name, checks[i].hi, checks[i].lo_name,
                     checks[i].lo, checks[i].strict, errstr, size);
        if (err != CP_OK)
            return err;
    }
    return CP_OK;
}

/* Orderings between model keys, which one key's bounds cannot express. */
static cp_err_t finalize_order(const cp_config_t *cfg, char *errstr,
                               size_t size)
{
    if (cfg->engagement_high < cfg->engagement_medium) {
        seterr(errstr, size,
               "engagement.high: %.15g is less than engagement.medium (%.15g)",
               cfg->engagement_high, cfg->engagement_medium);
        return CP_EINVAL;
    }
    if (cfg->engagement_medium < cfg->engagement_low) {
        seterr(errstr, size,
               "engagement.medium: %.15g is less than engagement.low (%.15g)",
               cfg->engagement_medium, cfg->engagement_low);
        return CP_EINVAL;
    }
    if (cfg->satisfaction_at_risk_csat >= cfg->satisfaction_satisfied_csat) {
        seterr(errstr, size,
               "satisfaction.at_risk_csat: %d is not less than "
               "satisfaction.satisfied_csat (%d)",
               cfg->satisfaction_at_risk_csat,
               cfg->satisfaction_satisfied_csat);
        return CP_EINVAL;
    }
    if (cfg->lifecycle_churn_days <= cfg->lifecycle_at_risk_days) {
        seterr(errstr, size,
               "lifecycle.churn_days: %lld is not greater than "
               "lifecycle.at_risk_days (%lld)",
               (long long)cfg->lifecycle_churn_days,
               (long long)cfg->lifecycle_at_risk_days);
        return CP_EINVAL;
    }
    cp_err_t err = finalize_churn_order(cfg, errstr, size);
    if (err != CP_OK)
        return err;
    /* Each weight is >= 0, so the sum is 0 only when all three are. */
    if (cfg->value_w_historical + cfg->value_w_predicted +
            cfg->value_w_strategic <=
        0) {
        seterr(errstr, size,
               "value.weight.historical, value.weight.predicted, "
               "value.weight.strategic: all 0; their sum must be more than 0");
        return CP_EINVAL;
    }
    return CP_OK;
}

/* The customer hash keeps each input topic's watermarks under the FNV-1a
 * 32 of its name (docs/contracts.md section 2, "Encoding of w"): two
 * input topics must not share one, or each would skip the other's
 * offsets as re-deliveries. */
static cp_err_t finalize_topics(const cp_config_t *cfg, char *errstr,
                                size_t size)
{
    const struct {
        const char *key, *name;
    } in[] = {{"topic.orders", cfg->topic_orders},
              {"topic.browsing", cfg->topic_browsing},
              {"topic.support", cfg->topic_support},
              {"topic.profile", cfg->topic_profile}};
    const size_t n = sizeof(in) / sizeof(in[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            const char *a = in[i].name, *b = in[j].name;
            if (!a || !a[0] || !b || !b[0] || strcmp(a, b) == 0)
                continue;
            if (cp_hash_fnv1a32(a, strlen(a)) ==
                cp_hash_fnv1a32(b, strlen(b))) {
                seterr(errstr, size,
                       "%s, %s: the two topic names have the same 32-bit id "
                       "in the customer state (FNV-1a); rename one",
                       in[i].key, in[j].key);
                return CP_EINVAL;
            }
        }
    return CP_OK;
}

cp_err_t cp_config_finalize(cp_config_t *cfg, char *errstr, size_t errstr_size)
{
    cp_err_t err = finalize_currency(cfg, errstr, errstr_size);

    if (err == CP_OK)
        err = finalize_derived(cfg, errstr, errstr_size);
    if (err == CP_OK)
        err = finalize_timezone(cfg, errstr, errstr_size);
    if (err == CP_OK)
        err = finalize_order(cfg, errstr, errstr_size);
    if (err == CP_OK)
        err = finalize_topics(cfg, errstr, errstr_size);
    return err;
}

/* ---------------------------------------------------------------- --list */

static const char *type_name(ctype_t t)
{
    static const char *const names[] = {"string",  "secret", "integer", "enum",
                                        "decimal", "number", "list"};
    return names[t];
}

/* The range/values column of e. */
static void print_range(FILE *out, const centry_t *e)
{
    if (e->range_doc != NULL) {
        fputs(e->range_doc, out);
    } else if (e->type == CT_INT) {
        fprintf(out, "%lld..%lld%s", (long long)e->min, (long long)e->max,
                (e->flags & CF_NOT_ZERO) ? ", not 0" : "");
    } else if (e->type == CT_DOUBLE) {
        fprintf(out, "%s%.15g .. %.15g", (e->flags & CF_EXCL_MIN) ? "> " : "",
                e->dmin, e->dmax);
    } else if (e->type == CT_LIST && (e->flags & CF_MONEY)) {
        fprintf(out,
                "%d strictly increasing decimals >= 0, at most the "
                "currency's minor digits",
                CP_RFMQ_THRESHOLDS);
    } else if (e->type == CT_LIST) {
        fprintf(out, "%d strictly increasing integers, each %lld..%lld",
                CP_RFMQ_THRESHOLDS, (long long)e->min, (long long)e->max);
    } else if (e->type == CT_ENUM) {
        for (int i = 0; e->values[i] != NULL; i++)
            fprintf(out, "%s`%s`", i > 0 ? ", " : "", e->values[i]);
    } else if (e->type == CT_SECRET || (e->flags & CF_EMPTY_OK)) {
        fputs("may be empty", out);
    } else if (e->type == CT_STRING) {
        fputs("non-empty", out);
    }
}

static void print_entry(FILE *out, const centry_t *e)
{
    fprintf(out, "| `%s` | %s | ", e->name, type_name(e->type));
    /* A secret's default is not shown (it is empty, but the column must
     * never become the place where a secret appears). */
    if (e->type != CT_SECRET && e->def[0] != '\0')
        fprintf(out, "`%s`", e->def);
    fputs(" | ", out);
    print_range(out, e);
    fprintf(out, " | %s |\n", e->desc);
}

void cp_config_list(FILE *out)
{
    fputs("# custpulse configuration\n"
          "\n"
          "Generated from the table in `common/config.c` (the output of\n"
          "`custpulse config --list`); do not edit by hand.\n"
          "\n"
          "Sources, later wins: these defaults, the properties file (`-c "
          "FILE`:\n"
          "`key = value` lines, `#` comments), `CUSTPULSE_<KEY>` environment\n"
          "variables (key upper-cased, `.` -> `_`, e.g. "
          "`CUSTPULSE_REDIS_HOST`),\n"
          "then `-X key=value`. Unknown keys are an error.\n"
          "\n"
          "| key | type | default | range/values | description |\n"
          "|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < TABLE_LEN; i++)
        print_entry(out, &config_table[i]);
    fputs("\n"
          "## kafka.*\n"
          "\n"
          "Keys starting with `kafka.` are not in the table above: they are\n"
          "passed to librdkafka with the prefix removed "
          "(`kafka.bootstrap.servers`\n"
          "-> `bootstrap.servers`), and librdkafka validates them. "
          "`kafka.consumer.*`\n"
          "and `kafka.producer.*` apply to the consumer or the producer "
          "only. Setting\n"
          "a key again replaces its value. In the environment, "
          "`CUSTPULSE_KAFKA_X_Y`\n"
          "sets `kafka.x.y` (lower-cased, `_` -> `.`).\n",
          out);
    fprintf(out,
            "\n"
            "## segment.*\n"
            "\n"
            "Keys `segment.<name>.rule` are not in the table above either: "
            "each defines\n"
            "a custom segment, `<name>` matching `[a-z][a-z0-9_]{0,%d}`, and "
            "its value is\n"
            "the rule ([segments.md](segments.md)), 1 to %d bytes, compiled "
            "at start-up.\n"
            "At most %d segments, kept in the order first set. Setting a name "
            "again\n"
            "replaces its rule; an empty value removes the segment (`-X "
            "segment.<name>.rule=`\n"
            "disables a rule of the file). Rules are not secret. They cannot "
            "be set\n"
            "through the environment: `CUSTPULSE_SEGMENT_*` is an error.\n",
            CP_SEGMENT_NAME_MAX - 1, CP_SEGMENT_RULE_MAX, CP_SEGMENTS_MAX);
}
