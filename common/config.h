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

typedef struct cp_kv_s {
    char *key; /* without the "kafka." prefix, e.g. "bootstrap.servers" */
    char *value;
} cp_kv_t;

typedef struct cp_config_s {
    /* topics */
    char *topic_orders;
    char *topic_browsing;
    char *topic_support;
    char *topic_segments;
    char *topic_churn;
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

    /* pipeline */
    int batch_size;
    int input_max_bytes;
    char *output_source;
    cp_log_level_t log_level;
    char *log_id_key;      /* secret: key of the hash of logged customer ids */
    int stats_interval_ms; /* 0: only the final line */
    int shutdown_timeout_ms;

    /* kafka.* pass-through, in the order set (later duplicates win) */
    cp_kv_t *kafka;
    size_t kafka_cnt;
} cp_config_t;

/* A config with every default set; NULL on allocation failure. */
cp_config_t *cp_config_new(void);
void cp_config_free(cp_config_t *cfg);

/* Sets one key from its text form. Returns CP_OK, CP_EUNKNOWNKEY (also for
 * "kafka." with nothing after it), CP_EPARSE (not a whole decimal integer
 * as strtoll reads it, not an enum value (exact, lower-case), or "" for a
 * string that must not be empty) or CP_ERANGE (outside bounds, or beyond
 * int64), with a message naming the key in errstr (never the value of a
 * secret key; kafka.* values are never echoed either). A string value
 * replaces and frees the previous one; a kafka.* key set again keeps its
 * place with the new value. errstr may be NULL. */
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
 * (CP_EUNKNOWNKEY, errstr names the variable); a bad value gives
 * cp_config_set's error with "VARIABLE: " in front. */
cp_err_t cp_config_load_env(cp_config_t *cfg, char *const *envp, char *errstr,
                            size_t errstr_size);

/* Parses "key=value" as given to -X: split at the first '=', nothing
 * trimmed. CP_EPARSE without '=' or with an empty key; else as
 * cp_config_set. */
cp_err_t cp_config_set_kv(cp_config_t *cfg, const char *kv, char *errstr,
                          size_t errstr_size);

/* Cross-key checks and derived values, called once after all sources:
 * currency three upper-case letters known to cp_currency_digits (else
 * CP_EINVAL), rfm.fixed.monetary parsed with those digits (else
 * cp_money_parse's error: CP_EPARSE, CP_EPRECISION or CP_ERANGE),
 * timezone valid for cp_tz_new (else CP_EINVAL; the zone is freed again,
 * but an IANA zone has been made the process's TZ, see cp_time.h).
 * errstr names the key. */
cp_err_t cp_config_finalize(cp_config_t *cfg, char *errstr, size_t errstr_size);

/* Writes the reference as a Markdown table (key, type, default,
 * range/values, description) after a short introduction, the kafka.* note
 * after it. docs/config.md is exactly this output (a unit test checks it).
 * A secret's default is never shown. */
void cp_config_list(FILE *out);

/* Value of a kafka.* key as set (prefix stripped), or NULL. */
const char *cp_config_kafka_get(const cp_config_t *cfg, const char *key);

#endif
