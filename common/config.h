/*
 * config.h - custpulse configuration: one table is the single source of truth.
 *
 * Every key lives in one table in config.c (name, type, default, bounds,
 * description, offset into cp_config_t). The parser, `custpulse config
 * --list` and docs/config.md all come from it. Sources, later wins: defaults,
 * properties file, CUSTPULSE_* environment, -X key=value.
 *
 * `kafka.*` keys are not in the table: they are kept verbatim (without the
 * "kafka." prefix) in cp_config_t.kafka and passed to librdkafka, which
 * validates them. "consumer." / "producer." prefixed ones apply to one client.
 *
 * `segment.<name>.rule` keys are not in the table either: each names a
 * custom segment and carries its rule text (docs/segments.md), kept in
 * cp_config_t.segments. This layer checks only the name and the length;
 * the consumer compiles the rule (common/ does not include scoring/).
 */
#ifndef CP_CONFIG_H
#define CP_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cp_err.h"
#include "log.h"

typedef enum { CP_CLOCK_WALL = 0, CP_CLOCK_EVENT = 1 } cp_clock_mode_t;
typedef enum { CP_REF_LIVE = 0, CP_REF_FIXED = 1 } cp_ref_mode_t;

/* Limits of the custom segments (segment.<name>.rule). The rule length is
 * scoring's CP_EXPR_MAX_TEXT, repeated because common/ does not include
 * scoring/. */
#define CP_SEGMENTS_MAX 32
#define CP_SEGMENT_NAME_MAX 32 /* [a-z][a-z0-9_]{0,31} */
#define CP_SEGMENT_RULE_MAX 4096

/* engagement.weight.* in this order (scoring's cp_browse_t order):
 * session_started, page_viewed, product_viewed, search_performed,
 * cart_item_added, cart_abandoned. */
#define CP_ENGAGEMENT_WEIGHTS 6

/* Thresholds of one dimension in rfmq.fixed.* (scores 1..5). */
#define CP_RFMQ_THRESHOLDS 4

/* churn.weight.* in this order (scoring's cp_churn_reason_t order):
 * overdue, p_alive_low, engagement_drop, service_risk, value_drop. */
#define CP_CHURN_WEIGHTS 5

typedef struct cp_kv_s {
    char *key; /* without the "kafka." prefix, e.g. "bootstrap.servers" */
    char *value;
} cp_kv_t;

/* One custom segment: segment.<name>.rule = <rule>. */
typedef struct {
    char *name; /* [a-z][a-z0-9_]{0,31} */
    char *rule; /* 1..CP_SEGMENT_RULE_MAX bytes, not yet parsed */
} cp_segment_rule_t;

typedef struct cp_config_s {
    /* topics */
    char *topic_orders;
    char *topic_browsing; /* "": not consumed */
    char *topic_support;  /* "": not consumed */
    char *topic_profile;  /* "": not consumed */
    char *topic_segments;
    char *topic_churn;
    char *topic_metrics; /* "": population metrics off */
    char *topic_dlq;
    int topic_partitions;  /* for output/DLQ topics created at start-up */
    int topic_replication; /* -1: broker default */

    /* redis */
    char *redis_host;
    int redis_port;
    char *redis_password; /* secret: never printed */
    int redis_db;
    int redis_timeout_ms;
    char *redis_prefix;
    int redis_wait_replicas;   /* 0: do not WAIT */
    int redis_wait_timeout_ms; /* WAIT's own timeout */

    /* model */
    char *currency;
    int currency_digits; /* derived in cp_config_finalize; -1 before */
    char *timezone;
    cp_clock_mode_t clock;
    cp_ref_mode_t rfm_reference;
    int64_t rfm_fixed_recency_days;
    int64_t rfm_fixed_frequency;
    char *rfm_fixed_monetary;         /* decimal in currency units */
    int64_t rfm_fixed_monetary_minor; /* derived in cp_config_finalize;
                                         0 before */
    int dedup_event_ids;
    int dedup_orders;

    /* engagement (docs/models.md) */
    double engagement_half_life_days;
    double engagement_weight[CP_ENGAGEMENT_WEIGHTS];
    double engagement_high; /* >= engagement_medium >= engagement_low */
    double engagement_medium;
    double engagement_low;

    /* satisfaction */
    double satisfaction_complaint_half_life_days;
    double satisfaction_at_risk_complaints;
    int64_t satisfaction_at_risk_open_tickets;
    int satisfaction_at_risk_csat; /* < satisfaction_satisfied_csat */
    int satisfaction_satisfied_csat;

    /* lifecycle, in days or counted orders */
    int64_t lifecycle_new_days;
    int64_t lifecycle_loyal_orders;
    int64_t lifecycle_at_risk_days;
    int64_t lifecycle_churn_days; /* > lifecycle_at_risk_days */
    int64_t lifecycle_won_back_days;

    /* value; the three weights sum to > 0 */
    double value_w_historical;
    double value_w_predicted;
    double value_w_strategic;
    char *value_historical_ref;         /* decimal in currency units */
    int64_t value_historical_ref_minor; /* derived in cp_config_finalize
                                           (> 0); 0 before */
    char *value_predicted_ref;          /* decimal in currency units */
    int64_t value_predicted_ref_minor;  /* derived, as above */
    double value_high_score;
    double value_alive;

    /* btyd; enum fields are indexes into the key's values, not scoring's
     * enums: the consumer maps them */
    int btyd_model; /* 0 = mbgnbd, 1 = bgnbd; scoring's cp_btyd_model_t
                       has BGNBD = 0: map, do not cast */
    int btyd_unit;  /* 0 = weeks, 1 = days */
    int btyd_horizon_months;
    double btyd_monthly_discount;
    int btyd_refresh_ms;

    /* quantile RFM */
    int rfmq_mode; /* 0 = live, 1 = fixed */
    int rfmq_snapshot_ms;
    char *rfmq_fixed_recency_days; /* "14,30,90,180" as set */
    char *rfmq_fixed_frequency;    /* "2,3,5,8" as set */
    char *rfmq_fixed_monetary;     /* "50,100,250,500" as set */
    /* derived in cp_config_finalize (strictly increasing); 0 before */
    int64_t rfmq_fixed_r[CP_RFMQ_THRESHOLDS];       /* days since last order */
    int64_t rfmq_fixed_f[CP_RFMQ_THRESHOLDS];       /* counted orders */
    int64_t rfmq_fixed_m_minor[CP_RFMQ_THRESHOLDS]; /* minor units */

    /* churn warnings (docs/churn.md); days as given, the consumer converts
     * them to ms for scoring's cp_churn_params_t */
    double churn_overdue_k;
    double churn_overdue_floor_days;
    double churn_overdue_fallback_gap_days;
    double churn_p_alive_low;
    double churn_p_alive_recover;         /* >= churn_p_alive_low */
    double churn_eng_peak_half_life_days; /* > engagement_half_life_days */
    double churn_eng_fraction;
    double churn_eng_recover_fraction; /* >= churn_eng_fraction */
    double churn_eng_min_peak;
    double churn_service_complaints;
    double churn_service_recover_complaints; /* <= churn_service_complaints */
    int churn_service_csat_max;              /* 0: CSAT not used */
    double churn_service_csat_window_days;
    double churn_value_short_half_life_days;
    double churn_value_long_half_life_days; /* > the short one */
    double churn_value_fraction;
    double churn_value_recover_fraction; /* >= churn_value_fraction */
    double churn_weight[CP_CHURN_WEIGHTS];
    double churn_level_low; /* <= medium <= high */
    double churn_level_medium;
    double churn_level_high;
    int churn_min_level; /* 0 = low, 1 = medium, 2 = high (an index, not
                            scoring's cp_churn_level_t, which has NONE = 0) */

    /* due times */
    int64_t due_max_days;      /* 0: no upper bound */
    int due_sweep_ms;          /* 0: no time-driven evaluation */
    int due_sweep_batch;       /* most customers per sweep batch */
    int64_t clock_lateness_ms; /* clock = event: the sweep's "now" is the
                                  greatest event time seen less this */

    /* pipeline */
    int batch_size;
    int cache_mb;
    int input_max_bytes;
    char *output_source;
    cp_log_level_t log_level;
    char *log_id_key;      /* secret: key of the hash of logged customer ids */
    int stats_interval_ms; /* 0: only the final line */
    int shutdown_timeout_ms;

    /* kafka.* pass-through, in the order set (later duplicates win) */
    cp_kv_t *kafka;
    size_t kafka_cnt;

    /* segment.<name>.rule, in the order first set (at most
     * CP_SEGMENTS_MAX) */
    cp_segment_rule_t *segments;
    size_t segments_cnt;
} cp_config_t;

/* A config with every default set; NULL on allocation failure. */
cp_config_t *cp_config_new(void);
void cp_config_free(cp_config_t *cfg);

/* Sets one key from its text form. Returns CP_OK, CP_EUNKNOWNKEY (also for
 * "kafka." with nothing after it, and for a "segment." key not of the form
 * segment.<name>.rule), CP_EPARSE (not a whole decimal integer as strtoll
 * reads it; for a number type not [+-]digits[.digits][e[+-]digits], so no
 * blanks, NaN, inf or hex; not an enum value (exact, lower-case); "" for a
 * string that must not be empty; a segment name not [a-z][a-z0-9_]{0,31})
 * or CP_ERANGE (outside bounds, beyond int64 or a double; a rule longer
 * than CP_SEGMENT_RULE_MAX; a new segment beyond CP_SEGMENTS_MAX), with a
 * message naming the key in errstr (never the value of a secret key;
 * kafka.* values and rules are never echoed either). A string value
 * replaces and frees the previous one; a kafka.* key or segment set again
 * keeps its place with the new value; an empty rule removes its segment
 * (no error when there is none). List and decimal values are only checked
 * by cp_config_finalize. errstr may be NULL. */
cp_err_t cp_config_set(cp_config_t *cfg, const char *key, const char *value,
                       char *errstr, size_t errstr_size);

/* Reads a properties file: "key = value" lines, '#' comments and blank
 * lines; whitespace around key and value trimmed. A '#' is a comment only
 * as the first non-blank character of a line (values may contain '#').
 * Stops at the first error: CP_EIO (cannot open/read), CP_EPARSE (a line
 * without '=' or with an empty key) or an error of cp_config_set; errstr
 * starts with "file:line: ". */
cp_err_t cp_config_load_file(cp_config_t *cfg, const char *path, char *errstr,
                             size_t errstr_size);

/* Applies CUSTPULSE_* variables from envp (NULL-terminated "K=V" strings):
 * CUSTPULSE_REDIS_HOST -> redis.host (each table key upper-cased with '.'
 * -> '_'; names are case-sensitive); CUSTPULSE_KAFKA_X_Y -> kafka.x.y
 * (after KAFKA_, lower-cased with '_' -> '.'). Other variables and entries
 * without '=' are ignored. An unknown CUSTPULSE_ variable is an error
 * (CP_EUNKNOWNKEY, errstr names the variable); so is every
 * CUSTPULSE_SEGMENT_* variable: segment rules cannot be set through the
 * environment (a variable cannot spell a lower-case segment name). A bad
 * value gives cp_config_set's error with "VARIABLE: " in front. */
cp_err_t cp_config_load_env(cp_config_t *cfg, char *const *envp, char *errstr,
                            size_t errstr_size);

/* Parses "key=value" as given to -X: split at the first '=', nothing
 * trimmed. CP_EPARSE without '=' or with an empty key; else as
 * cp_config_set. */
cp_err_t cp_config_set_kv(cp_config_t *cfg, const char *kv, char *errstr,
                          size_t errstr_size);

/* Cross-key checks and derived values, called once after all sources, in
 * this order (the first error is returned):
 * - currency three upper-case letters known to cp_currency_digits (else
 *   CP_EINVAL);
 * - rfm.fixed.monetary, value.historical_ref and value.predicted_ref
 *   parsed with those digits into their *_minor fields (else
 *   cp_money_parse's error: CP_EPARSE, CP_EPRECISION or CP_ERANGE; a
 *   value.*_ref of 0 is CP_ERANGE);
 * - rfmq.fixed.* parsed into rfmq_fixed_r/_f/_m_minor: exactly
 *   CP_RFMQ_THRESHOLDS comma-separated items, blanks around an item
 *   allowed (else CP_EPARSE), each an integer within the key's bounds
 *   (CP_EPARSE, CP_ERANGE) or, for rfmq.fixed.monetary, an amount as
 *   above, strictly increasing (else CP_ERANGE);
 * - timezone valid for cp_tz_new (else CP_EINVAL; the zone is freed again,
 *   but an IANA zone has been made the process's TZ, see cp_time.h);
 * - engagement.high >= engagement.medium >= engagement.low,
 *   satisfaction.at_risk_csat < satisfaction.satisfied_csat,
 *   lifecycle.churn_days > lifecycle.at_risk_days, value.weight.*
 *   summing to more than 0, and the churn.* orderings: p_alive.recover >=
 *   p_alive.low, engagement.peak_half_life_days > engagement.half_life_days,
 *   engagement.recover_fraction >= engagement.fraction,
 *   service.recover_complaints <= service.complaints,
 *   value.long_half_life_days > value.short_half_life_days,
 *   value.recover_fraction >= value.fraction, level.high >= level.medium >=
 *   level.low (else CP_EINVAL).
 * A derived field is written only when its key parses. errstr names the
 * key. Segment rules are not looked at: the consumer compiles them. */
cp_err_t cp_config_finalize(cp_config_t *cfg, char *errstr, size_t errstr_size);

/* Writes the reference as a Markdown table (key, type, default,
 * range/values, description) after a short introduction, the kafka.* and
 * segment.* notes after it. docs/config.md is exactly this output (a unit test
 * checks it). A secret's default is never shown. */
void cp_config_list(FILE *out);

/* Value of a kafka.* key as set (prefix stripped), or NULL. */
const char *cp_config_kafka_get(const cp_config_t *cfg, const char *key);

#endif
