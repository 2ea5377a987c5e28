/*
 * test_common_config.c - the configuration table: defaults, typed setters
 * and their errors (integers, numbers, enums, strings), kafka.* pass-through,
 * segment.<name>.rule keys, the properties file, CUSTPULSE_* environment,
 * finalize (derived values and cross-key checks), and docs/config.md ==
 * `config --list`.
 *
 * Runs with tests/unit as its working directory (see tests/CMakeLists.txt).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define DOCS_CONFIG_MD "../../docs/config.md"

/* ------------------------------------------------------------ fixture */

static int cfg_setup(void **state)
{
    *state = cp_config_new();
    return *state == NULL ? -1 : 0;
}

static int cfg_teardown(void **state)
{
    cp_config_free(*state);
    return 0;
}

/* Sets key=value expecting want; returns the error message. */
static const char *set_expect(cp_config_t *cfg, const char *key,
                              const char *value, cp_err_t want)
{
    static char err[256];
    cp_err_t got;

    err[0] = '\0';
    got = cp_config_set(cfg, key, value, err, sizeof(err));
    if (got != want)
        fail_msg("%s='%s': got %s (%s), want %s", key, value, cp_err_name(got),
                 err, cp_err_name(want));
    return err;
}

/* Writes text to a new temporary file; returns its path (caller frees). */
static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/cp_test_config_XXXXXX");
    int fd = mkstemp(path);
    size_t len = strlen(text);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static char *read_all(FILE *f, size_t *len)
{
    char *out = NULL;
    size_t cap = 0, n;
    char chunk[4096];

    *len = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (*len + n + 1 > cap) {
            cap = (*len + n + 1) * 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        memcpy(out + *len, chunk, n);
        *len += n;
    }
    if (out == NULL)
        out = calloc(1, 1);
    out[*len] = '\0';
    return out;
}

/* ----------------------------------------------------------- defaults */

static void test_defaults(void **state)
{
    cp_config_t *cfg = *state;

    assert_string_equal(cfg->topic_orders, "customer.orders");
    assert_string_equal(cfg->topic_browsing, "customer.browsing");
    assert_string_equal(cfg->topic_support, "customer.support");
    assert_string_equal(cfg->topic_segments, "customer.segment-changes");
    assert_string_equal(cfg->topic_churn, "customer.churn-warnings");
    assert_string_equal(cfg->topic_metrics, "customer.metrics");
    assert_string_equal(cfg->topic_dlq, "custpulse.dlq");
    assert_int_equal(cfg->topic_partitions, 3);
    assert_int_equal(cfg->topic_replication, -1);
    assert_string_equal(cfg->redis_host, "127.0.0.1");
    assert_int_equal(cfg->redis_port, 6379);
    assert_string_equal(cfg->redis_password, "");
    assert_int_equal(cfg->redis_db, 0);
    assert_int_equal(cfg->redis_timeout_ms, 2000);
    assert_string_equal(cfg->redis_prefix, "cp:");
    assert_string_equal(cfg->currency, "USD");
    assert_int_equal(cfg->currency_digits, -1); /* until finalize */
    assert_string_equal(cfg->timezone, "UTC");
    assert_int_equal(cfg->clock, CP_CLOCK_WALL);
    assert_int_equal(cfg->rfm_reference, CP_REF_LIVE);
    assert_int_equal(cfg->rfm_fixed_recency_days, 90);
    assert_int_equal(cfg->rfm_fixed_frequency, 2);
    assert_string_equal(cfg->rfm_fixed_monetary, "100");
    assert_int_equal(cfg->dedup_event_ids, 16);
    assert_int_equal(cfg->dedup_orders, 32);
    assert_int_equal(cfg->batch_size, 1000);
    assert_int_equal(cfg->input_max_bytes, 65536);
    assert_string_equal(cfg->output_source, "custpulse");
    assert_int_equal(cfg->log_level, CP_LOG_INFO);
    assert_int_equal(cfg->shutdown_timeout_ms, 10000);
    assert_int_equal(cfg->kafka_cnt, 0);
    assert_null(cp_config_kafka_get(cfg, "bootstrap.servers"));
    assert_int_equal(cfg->segments_cnt, 0);
    assert_null(cfg->segments);
}

static void test_defaults_models(void **state)
{
    cp_config_t *cfg = *state;
    static const double weights[CP_ENGAGEMENT_WEIGHTS] = {1, 0.5, 1, 1, 3, 2};

    assert_string_equal(cfg->topic_profile, "customer.profile");
    assert_true(cfg->engagement_half_life_days == 14);
    for (int i = 0; i < CP_ENGAGEMENT_WEIGHTS; i++)
        assert_true(cfg->engagement_weight[i] == weights[i]);
    assert_true(cfg->engagement_high == 20);
    assert_true(cfg->engagement_medium == 5);
    assert_true(cfg->engagement_low == 1);

    assert_true(cfg->satisfaction_complaint_half_life_days == 30);
    assert_true(cfg->satisfaction_at_risk_complaints == 2);
    assert_int_equal(cfg->satisfaction_at_risk_open_tickets, 3);
    assert_int_equal(cfg->satisfaction_at_risk_csat, 2);
    assert_int_equal(cfg->satisfaction_satisfied_csat, 4);

    assert_int_equal(cfg->lifecycle_new_days, 30);
    assert_int_equal(cfg->lifecycle_loyal_orders, 4);
    assert_int_equal(cfg->lifecycle_at_risk_days, 90);
    assert_int_equal(cfg->lifecycle_churn_days, 180);
    assert_int_equal(cfg->lifecycle_won_back_days, 30);

    assert_true(cfg->value_w_historical == 0.4);
    assert_true(cfg->value_w_predicted == 0.4);
    assert_true(cfg->value_w_strategic == 0.2);
    assert_string_equal(cfg->value_historical_ref, "100");
    assert_string_equal(cfg->value_predicted_ref, "200");
    assert_int_equal(cfg->value_historical_ref_minor, 0); /* until finalize */
    assert_int_equal(cfg->value_predicted_ref_minor, 0);
    assert_true(cfg->value_high_score == 0.6);
    assert_true(cfg->value_alive == 0.5);

    assert_int_equal(cfg->btyd_model, 0); /* mbgnbd */
    assert_int_equal(cfg->btyd_unit, 0);  /* weeks */
    assert_int_equal(cfg->btyd_horizon_months, 12);
    assert_true(cfg->btyd_monthly_discount == 0.01);
    assert_int_equal(cfg->btyd_refresh_ms, 60000);

    assert_int_equal(cfg->rfmq_mode, 0); /* live */
    assert_int_equal(cfg->rfmq_snapshot_ms, 60000);
    assert_string_equal(cfg->rfmq_fixed_recency_days, "14,30,90,180");
    assert_string_equal(cfg->rfmq_fixed_frequency, "2,3,5,8");
    assert_string_equal(cfg->rfmq_fixed_monetary, "50,100,250,500");
    for (int i = 0; i < CP_RFMQ_THRESHOLDS; i++) { /* until finalize */
        assert_int_equal(cfg->rfmq_fixed_r[i], 0);
        assert_int_equal(cfg->rfmq_fixed_f[i], 0);
        assert_int_equal(cfg->rfmq_fixed_m_minor[i], 0);
    }
}

/* ------------------------------------------------------------ setters */

static void test_set_strings(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    set_expect(cfg, "topic.orders", "orders.v2", CP_OK);
    set_expect(cfg, "topic.orders", "orders.v3", CP_OK); /* frees v2 */
    assert_string_equal(cfg->topic_orders, "orders.v3");
    set_expect(cfg, "redis.key_prefix", "", CP_OK);
    assert_string_equal(cfg->redis_prefix, "");
    set_expect(cfg, "redis.password", "s3cret", CP_OK);
    assert_string_equal(cfg->redis_password, "s3cret");
    set_expect(cfg, "redis.password", "", CP_OK);
    err = set_expect(cfg, "topic.orders", "", CP_EPARSE);
    assert_string_equal(err, "topic.orders: must not be empty");
    assert_string_equal(cfg->topic_orders, "orders.v3"); /* unchanged */
    set_expect(cfg, "rfm.fixed.monetary", "250.5", CP_OK);
    assert_string_equal(cfg->rfm_fixed_monetary, "250.5");
}

static void test_set_ints(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    set_expect(cfg, "redis.port", "6380", CP_OK);
    assert_int_equal(cfg->redis_port, 6380);
    set_expect(cfg, "redis.port", "65535", CP_OK);
    set_expect(cfg, "redis.port", "1", CP_OK);
    set_expect(cfg, "redis.port", "+2", CP_OK); /* strtoll's sign */
    assert_int_equal(cfg->redis_port, 2);
    err = set_expect(cfg, "redis.port", "0", CP_ERANGE);
    assert_string_equal(err, "redis.port: '0' is out of range 1..65535");
    set_expect(cfg, "redis.port", "65536", CP_ERANGE);
    err = set_expect(cfg, "redis.port", "abc", CP_EPARSE);
    assert_string_equal(err, "redis.port: 'abc' is not an integer");
    set_expect(cfg, "redis.port", "12x", CP_EPARSE);
    set_expect(cfg, "redis.port", "", CP_EPARSE);
    set_expect(cfg, "redis.port", " 1", CP_EPARSE);
    set_expect(cfg, "redis.port", "1 ", CP_EPARSE);
    set_expect(cfg, "redis.port", "0x10", CP_EPARSE);
    set_expect(cfg, "redis.port", "1.0", CP_EPARSE);
    set_expect(cfg, "redis.port", "99999999999999999999", CP_ERANGE);
    set_expect(cfg, "redis.port", "-99999999999999999999", CP_ERANGE);
    assert_int_equal(cfg->redis_port, 2); /* errors leave it alone */

    set_expect(cfg, "redis.db", "1000", CP_OK);
    set_expect(cfg, "redis.db", "1001", CP_ERANGE);
    set_expect(cfg, "batch.size", "100000", CP_OK);
    set_expect(cfg, "input.max_bytes", "63", CP_ERANGE);
    set_expect(cfg, "dedup.event_ids", "129", CP_ERANGE);
    set_expect(cfg, "dedup.orders", "128", CP_OK);
    set_expect(cfg, "rfm.fixed.recency_days", "0", CP_OK);
    assert_int_equal(cfg->rfm_fixed_recency_days, 0);
    set_expect(cfg, "rfm.fixed.frequency", "1000000000", CP_OK);
    assert_int_equal(cfg->rfm_fixed_frequency, 1000000000);
    set_expect(cfg, "rfm.fixed.frequency", "1000000001", CP_ERANGE);
    set_expect(cfg, "shutdown.timeout_ms", "99", CP_ERANGE);
}

static void test_set_model_ints(void **state)
{
    cp_config_t *cfg = *state;

    set_expect(cfg, "satisfaction.at_risk_open_tickets", "1000000", CP_OK);
    assert_int_equal(cfg->satisfaction_at_risk_open_tickets, 1000000);
    set_expect(cfg, "satisfaction.at_risk_open_tickets", "0", CP_ERANGE);
    set_expect(cfg, "satisfaction.at_risk_csat", "5", CP_OK);
    set_expect(cfg, "satisfaction.at_risk_csat", "6", CP_ERANGE);
    set_expect(cfg, "satisfaction.satisfied_csat", "0", CP_ERANGE);
    set_expect(cfg, "lifecycle.new_days", "36500", CP_OK);
    assert_int_equal(cfg->lifecycle_new_days, 36500);
    set_expect(cfg, "lifecycle.new_days", "36501", CP_ERANGE);
    set_expect(cfg, "lifecycle.churn_days", "2", CP_OK);
    set_expect(cfg, "lifecycle.churn_days", "1", CP_ERANGE);
    assert_int_equal(cfg->lifecycle_churn_days, 2);
    set_expect(cfg, "lifecycle.loyal_orders", "1000001", CP_ERANGE);
    set_expect(cfg, "lifecycle.won_back_days", "0", CP_ERANGE);
    set_expect(cfg, "lifecycle.at_risk_days", "1.5", CP_EPARSE);
    set_expect(cfg, "btyd.horizon_months", "0", CP_OK);
    assert_int_equal(cfg->btyd_horizon_months, 0);
    set_expect(cfg, "btyd.horizon_months", "1201", CP_ERANGE);
    set_expect(cfg, "btyd.refresh_ms", "999", CP_ERANGE);
    set_expect(cfg, "btyd.refresh_ms", "86400000", CP_OK);
    assert_int_equal(cfg->btyd_refresh_ms, 86400000);
    set_expect(cfg, "rfmq.snapshot_ms", "1000", CP_OK);
    assert_int_equal(cfg->rfmq_snapshot_ms, 1000);
    set_expect(cfg, "rfmq.snapshot_ms", "86400001", CP_ERANGE);
}

/* ------------------------------------------------------------ numbers */

static void test_set_doubles(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    set_expect(cfg, "engagement.high", "1e3", CP_OK);
    assert_true(cfg->engagement_high == 1000);
    set_expect(cfg, "engagement.high", "0.5", CP_OK);
    assert_true(cfg->engagement_high == 0.5);
    set_expect(cfg, "engagement.high", "+2.5E+1", CP_OK);
    assert_true(cfg->engagement_high == 25);
    set_expect(cfg, "engagement.high", "007", CP_OK);
    assert_true(cfg->engagement_high == 7);
    set_expect(cfg, "engagement.high", "1000000000", CP_OK); /* bound */
    set_expect(cfg, "engagement.high", "0", CP_OK);          /* bound */
    set_expect(cfg, "engagement.high", "-0", CP_OK);
    set_expect(cfg, "engagement.high", "12.25", CP_OK);

    /* like CT_INT, the whole string: no blanks, nothing after */
    err = set_expect(cfg, "engagement.high", " 1", CP_EPARSE);
    assert_string_equal(err, "engagement.high: ' 1' is not a decimal number");
    set_expect(cfg, "engagement.high", "1 ", CP_EPARSE);
    set_expect(cfg, "engagement.high", "", CP_EPARSE);
    set_expect(cfg, "engagement.high", "1x", CP_EPARSE);
    set_expect(cfg, "engagement.high", "1,5", CP_EPARSE);
    /* strtod would take all of these */
    set_expect(cfg, "engagement.high", "nan", CP_EPARSE);
    set_expect(cfg, "engagement.high", "NaN", CP_EPARSE);
    set_expect(cfg, "engagement.high", "inf", CP_EPARSE);
    set_expect(cfg, "engagement.high", "-Infinity", CP_EPARSE);
    set_expect(cfg, "engagement.high", "0x10", CP_EPARSE);
    set_expect(cfg, "engagement.high", "0x1p3", CP_EPARSE);
    set_expect(cfg, "engagement.high", ".5", CP_EPARSE);
    set_expect(cfg, "engagement.high", "5.", CP_EPARSE);
    set_expect(cfg, "engagement.high", "1e", CP_EPARSE);
    set_expect(cfg, "engagement.high", "1e+", CP_EPARSE);
    set_expect(cfg, "engagement.high", "+", CP_EPARSE);
    set_expect(cfg, "engagement.high", "--1", CP_EPARSE);

    err = set_expect(cfg, "engagement.high", "1e999", CP_ERANGE);
    assert_string_equal(err, "engagement.high: '1e999' is out of range "
                             "0 .. 1000000000");
    set_expect(cfg, "engagement.high", "-1e999", CP_ERANGE);
    set_expect(cfg, "engagement.high", "1000000000.5", CP_ERANGE);
    set_expect(cfg, "engagement.high", "-0.001", CP_ERANGE);
    assert_true(cfg->engagement_high == 12.25); /* errors leave it alone */

    set_expect(cfg, "value.alive", "1", CP_OK);
    set_expect(cfg, "value.alive", "1.0000001", CP_ERANGE);
    set_expect(cfg, "value.high_score", "0", CP_OK);
    set_expect(cfg, "btyd.monthly_discount", "0.05", CP_OK);
    assert_true(cfg->btyd_monthly_discount == 0.05);
    set_expect(cfg, "btyd.monthly_discount", "2", CP_ERANGE);
    set_expect(cfg, "value.weight.strategic", "1000", CP_OK);
    set_expect(cfg, "value.weight.strategic", "1001", CP_ERANGE);
    /* an underflow is the nearest double (here 0), then bounds apply */
    set_expect(cfg, "value.weight.predicted", "1e-400", CP_OK);
    assert_true(cfg->value_w_predicted == 0);
}

static void test_double_exclusive_min(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    err = set_expect(cfg, "engagement.half_life_days", "0", CP_ERANGE);
    assert_string_equal(err, "engagement.half_life_days: '0' is out of "
                             "range > 0 .. 36500");
    set_expect(cfg, "engagement.half_life_days", "0.0", CP_ERANGE);
    set_expect(cfg, "engagement.half_life_days", "-0", CP_ERANGE);
    set_expect(cfg, "engagement.half_life_days", "1e-400", CP_ERANGE);
    set_expect(cfg, "engagement.half_life_days", "1e-300", CP_OK);
    assert_true(cfg->engagement_half_life_days == 1e-300);
    set_expect(cfg, "engagement.half_life_days", "36500", CP_OK);
    set_expect(cfg, "engagement.half_life_days", "36500.001", CP_ERANGE);
    assert_true(cfg->engagement_half_life_days == 36500);

    set_expect(cfg, "satisfaction.complaint_half_life_days", "0", CP_ERANGE);
    set_expect(cfg, "satisfaction.complaint_half_life_days", "0.5", CP_OK);
    assert_true(cfg->satisfaction_complaint_half_life_days == 0.5);
    set_expect(cfg, "satisfaction.at_risk_complaints", "0", CP_ERANGE);
    set_expect(cfg, "satisfaction.at_risk_complaints", "1000000", CP_OK);
    set_expect(cfg, "satisfaction.at_risk_complaints", "1000001", CP_ERANGE);
}

/* Each engagement.weight.* key writes its own element, in cp_browse_t
 * order, and no other. */
static void test_engagement_weight_elements(void **state)
{
    static const char *const keys[CP_ENGAGEMENT_WEIGHTS] = {
        "engagement.weight.session_started",
        "engagement.weight.page_viewed",
        "engagement.weight.product_viewed",
        "engagement.weight.search_performed",
        "engagement.weight.cart_item_added",
        "engagement.weight.cart_abandoned",
    };
    cp_config_t *cfg = *state;
    char value[32];

    for (int i = 0; i < CP_ENGAGEMENT_WEIGHTS; i++) {
        snprintf(value, sizeof(value), "%d", 100 + i);
        set_expect(cfg, keys[i], value, CP_OK);
    }
    for (int i = 0; i < CP_ENGAGEMENT_WEIGHTS; i++)
        assert_true(cfg->engagement_weight[i] == 100 + i);
    assert_true(cfg->engagement_half_life_days == 14); /* neighbours */
    assert_true(cfg->engagement_high == 20);
    set_expect(cfg, "engagement.weight.cart_abandoned", "1000000", CP_OK);
    set_expect(cfg, "engagement.weight.cart_abandoned", "1000000.1", CP_ERANGE);
    set_expect(cfg, "engagement.weight.page_viewed", "-1", CP_ERANGE);
    set_expect(cfg, "engagement.weight.page_viewed", "0", CP_OK);
    assert_true(cfg->engagement_weight[1] == 0);
    set_expect(cfg, "engagement.weight.other", "1", CP_EUNKNOWNKEY);
}

static void test_replication_excludes_zero(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    set_expect(cfg, "topic.replication", "3", CP_OK);
    assert_int_equal(cfg->topic_replication, 3);
    set_expect(cfg, "topic.replication", "-1", CP_OK);
    assert_int_equal(cfg->topic_replication, -1);
    set_expect(cfg, "topic.replication", "32", CP_OK);
    err = set_expect(cfg, "topic.replication", "0", CP_ERANGE);
    assert_string_equal(err, "topic.replication: '0' is out of range -1..32 (0 "
                             "excluded)");
    set_expect(cfg, "topic.replication", "-2", CP_ERANGE);
    set_expect(cfg, "topic.replication", "33", CP_ERANGE);
    assert_int_equal(cfg->topic_replication, 32);
}

static void test_set_enums(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    set_expect(cfg, "clock", "event", CP_OK);
    assert_int_equal(cfg->clock, CP_CLOCK_EVENT);
    set_expect(cfg, "clock", "wall", CP_OK);
    assert_int_equal(cfg->clock, CP_CLOCK_WALL);
    set_expect(cfg, "rfm.reference", "fixed", CP_OK);
    assert_int_equal(cfg->rfm_reference, CP_REF_FIXED);
    set_expect(cfg, "log.level", "debug", CP_OK);
    assert_int_equal(cfg->log_level, CP_LOG_DEBUG);
    set_expect(cfg, "log.level", "error", CP_OK);
    assert_int_equal(cfg->log_level, CP_LOG_ERROR);
    err = set_expect(cfg, "clock", "Event", CP_EPARSE);
    assert_string_equal(err, "clock: 'Event' is not one of the allowed values");
    set_expect(cfg, "log.level", "warning", CP_EPARSE);
    set_expect(cfg, "rfm.reference", "", CP_EPARSE);
    assert_int_equal(cfg->rfm_reference, CP_REF_FIXED);

    set_expect(cfg, "btyd.model", "bgnbd", CP_OK);
    assert_int_equal(cfg->btyd_model, 1);
    set_expect(cfg, "btyd.model", "mbgnbd", CP_OK);
    assert_int_equal(cfg->btyd_model, 0);
    set_expect(cfg, "btyd.model", "BGNBD", CP_EPARSE);
    set_expect(cfg, "btyd.unit", "days", CP_OK);
    assert_int_equal(cfg->btyd_unit, 1);
    set_expect(cfg, "btyd.unit", "months", CP_EPARSE);
    assert_int_equal(cfg->btyd_unit, 1);
    set_expect(cfg, "rfmq.mode", "fixed", CP_OK);
    assert_int_equal(cfg->rfmq_mode, 1);
    set_expect(cfg, "rfmq.mode", "live", CP_OK);
    assert_int_equal(cfg->rfmq_mode, 0);
    set_expect(cfg, "rfmq.mode", "snapshot", CP_EPARSE);
}

static void test_optional_topics(void **state)
{
    cp_config_t *cfg = *state;

    set_expect(cfg, "topic.browsing", "", CP_OK);
    assert_string_equal(cfg->topic_browsing, "");
    set_expect(cfg, "topic.support", "", CP_OK);
    assert_string_equal(cfg->topic_support, "");
    set_expect(cfg, "topic.profile", "", CP_OK);
    assert_string_equal(cfg->topic_profile, "");
    set_expect(cfg, "topic.profile", "profiles.v2", CP_OK);
    assert_string_equal(cfg->topic_profile, "profiles.v2");
    set_expect(cfg, "topic.orders", "", CP_EPARSE); /* still required */
}

static void test_unknown_keys(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    err = set_expect(cfg, "no.such", "1", CP_EUNKNOWNKEY);
    assert_string_equal(err, "unknown configuration key 'no.such'");
    set_expect(cfg, "Topic.orders", "x", CP_EUNKNOWNKEY);
    set_expect(cfg, "topic.orders ", "x", CP_EUNKNOWNKEY);
    set_expect(cfg, "", "x", CP_EUNKNOWNKEY);
    err = set_expect(cfg, "kafka.", "x", CP_EUNKNOWNKEY);
    assert_string_equal(err, "unknown configuration key 'kafka.'");
    set_expect(cfg, "kafka", "x", CP_EUNKNOWNKEY);
    assert_int_equal(cfg->kafka_cnt, 0);
    assert_int_equal(cp_config_set(cfg, "redis.host", NULL, NULL, 0),
                     CP_EINVAL); /* errstr may be NULL */
}

static void test_kafka_pass_through(void **state)
{
    cp_config_t *cfg = *state;

    set_expect(cfg, "kafka.bootstrap.servers", "a:9092", CP_OK);
    set_expect(cfg, "kafka.consumer.fetch.wait.max.ms", "10", CP_OK);
    set_expect(cfg, "kafka.bootstrap.servers", "b:9092", CP_OK);
    set_expect(cfg, "kafka.sasl.password", "", CP_OK);
    assert_int_equal(cfg->kafka_cnt, 3);
    assert_string_equal(cfg->kafka[0].key, "bootstrap.servers");
    assert_string_equal(cfg->kafka[0].value, "b:9092");
    assert_string_equal(cfg->kafka[1].key, "consumer.fetch.wait.max.ms");
    assert_string_equal(cfg->kafka[2].key, "sasl.password");
    assert_string_equal(cp_config_kafka_get(cfg, "bootstrap.servers"),
                        "b:9092");
    assert_string_equal(cp_config_kafka_get(cfg, "sasl.password"), "");
    assert_null(cp_config_kafka_get(cfg, "kafka.bootstrap.servers"));
    assert_null(cp_config_kafka_get(cfg, "client.id"));
}

/* ------------------------------------------------------------ segments */

static void assert_segment(const cp_config_t *cfg, size_t i, const char *name,
                           const char *rule)
{
    assert_true(i < cfg->segments_cnt);
    assert_string_equal(cfg->segments[i].name, name);
    assert_string_equal(cfg->segments[i].rule, rule);
}

static void test_segments_set_replace_remove(void **state)
{
    cp_config_t *cfg = *state;

    set_expect(cfg, "segment.vip.rule", "rfm.m >= 500.00", CP_OK);
    set_expect(cfg, "segment.big_cart.rule", "browsing.cart_value > 100",
               CP_OK);
    set_expect(cfg, "segment.z9.rule", "true", CP_OK);
    assert_int_equal(cfg->segments_cnt, 3);
    assert_segment(cfg, 0, "vip", "rfm.m >= 500.00");
    assert_segment(cfg, 1, "big_cart", "browsing.cart_value > 100");
    assert_segment(cfg, 2, "z9", "true");

    /* set again: same place, new rule */
    set_expect(cfg, "segment.big_cart.rule", "false", CP_OK);
    assert_int_equal(cfg->segments_cnt, 3);
    assert_segment(cfg, 1, "big_cart", "false");

    /* empty removes; the others keep their order */
    set_expect(cfg, "segment.vip.rule", "", CP_OK);
    assert_int_equal(cfg->segments_cnt, 2);
    assert_segment(cfg, 0, "big_cart", "false");
    assert_segment(cfg, 1, "z9", "true");
    set_expect(cfg, "segment.never_set.rule", "", CP_OK); /* no-op */
    assert_int_equal(cfg->segments_cnt, 2);

    /* set after removal: appended */
    set_expect(cfg, "segment.vip.rule", "not true", CP_OK);
    assert_int_equal(cfg->segments_cnt, 3);
    assert_segment(cfg, 2, "vip", "not true");

    /* rules are not trimmed or checked here; the consumer compiles them */
    set_expect(cfg, "segment.raw.rule", " ( \n", CP_OK);
    assert_segment(cfg, 3, "raw", " ( \n");
}

static void test_segments_names(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    set_expect(cfg, "segment.a.rule", "true", CP_OK);
    set_expect(cfg, "segment.a_1_.rule", "true", CP_OK);
    set_expect(cfg, "segment.abcdefghijklmnopqrstuvwxyz012345.rule", "true",
               CP_OK); /* 32 characters */
    assert_int_equal(cfg->segments_cnt, 3);

    err = set_expect(cfg, "segment.x", "true", CP_EUNKNOWNKEY);
    assert_string_equal(err, "unknown configuration key 'segment.x' (a "
                             "custom segment is segment.<name>.rule)");
    set_expect(cfg, "segment.x.foo", "true", CP_EUNKNOWNKEY);
    set_expect(cfg, "segment.x.rules", "true", CP_EUNKNOWNKEY);
    set_expect(cfg, "segment.x.rule.", "true", CP_EUNKNOWNKEY);
    set_expect(cfg, "segment.", "true", CP_EUNKNOWNKEY);
    set_expect(cfg, "segment.rule", "true", CP_EUNKNOWNKEY);
    set_expect(cfg, "segment", "true", CP_EUNKNOWNKEY);
    set_expect(cfg, "segments.x.rule", "true", CP_EUNKNOWNKEY);
    set_expect(cfg, "Segment.x.rule", "true", CP_EUNKNOWNKEY);

    err = set_expect(cfg, "segment.X.rule", "true", CP_EPARSE);
    assert_string_equal(err, "segment.X.rule: segment name 'X' does not "
                             "match [a-z][a-z0-9_]{0,31}");
    set_expect(cfg, "segment..rule", "true", CP_EPARSE);
    set_expect(cfg, "segment.1a.rule", "true", CP_EPARSE);
    set_expect(cfg, "segment._a.rule", "true", CP_EPARSE);
    set_expect(cfg, "segment.a-b.rule", "true", CP_EPARSE);
    set_expect(cfg, "segment.a.b.rule", "true", CP_EPARSE);
    set_expect(cfg, "segment.vIp.rule", "true", CP_EPARSE);
    set_expect(cfg, "segment.a b.rule", "true", CP_EPARSE);
    set_expect(cfg, "segment.abcdefghijklmnopqrstuvwxyz0123456.rule", "true",
               CP_EPARSE); /* 33 characters */
    /* a bad name is refused even for the empty (removing) value */
    set_expect(cfg, "segment.X.rule", "", CP_EPARSE);
    assert_int_equal(cfg->segments_cnt, 3);
}

static void test_segments_rule_length(void **state)
{
    cp_config_t *cfg = *state;
    char *rule = malloc(CP_SEGMENT_RULE_MAX + 2);
    const char *err;

    assert_non_null(rule);
    memset(rule, 'x', CP_SEGMENT_RULE_MAX + 1);
    rule[CP_SEGMENT_RULE_MAX + 1] = '\0';
    err = set_expect(cfg, "segment.long.rule", rule, CP_ERANGE);
    assert_string_equal(err, "segment.long.rule: the rule is 4097 bytes, "
                             "more than 4096");
    assert_int_equal(cfg->segments_cnt, 0);
    rule[CP_SEGMENT_RULE_MAX] = '\0';
    set_expect(cfg, "segment.long.rule", rule, CP_OK);
    assert_int_equal(strlen(cfg->segments[0].rule), CP_SEGMENT_RULE_MAX);
    /* too long a replacement leaves the old rule */
    rule[CP_SEGMENT_RULE_MAX] = 'x';
    set_expect(cfg, "segment.long.rule", rule, CP_ERANGE);
    assert_int_equal(strlen(cfg->segments[0].rule), CP_SEGMENT_RULE_MAX);
    set_expect(cfg, "segment.one.rule", "x", CP_OK);
    assert_segment(cfg, 1, "one", "x");
    free(rule);
}

static void test_segments_max(void **state)
{
    cp_config_t *cfg = *state;
    char key[64];
    const char *err;

    for (int i = 0; i < CP_SEGMENTS_MAX; i++) {
        snprintf(key, sizeof(key), "segment.s%d.rule", i);
        set_expect(cfg, key, "true", CP_OK);
    }
    assert_int_equal(cfg->segments_cnt, CP_SEGMENTS_MAX);
    err = set_expect(cfg, "segment.one_more.rule", "true", CP_ERANGE);
    assert_string_equal(err, "segment.one_more.rule: more than 32 custom "
                             "segments");
    assert_int_equal(cfg->segments_cnt, CP_SEGMENTS_MAX);
    /* a full table still replaces and removes */
    set_expect(cfg, "segment.s31.rule", "false", CP_OK);
    assert_segment(cfg, 31, "s31", "false");
    set_expect(cfg, "segment.s0.rule", "", CP_OK);
    set_expect(cfg, "segment.one_more.rule", "true", CP_OK);
    assert_int_equal(cfg->segments_cnt, CP_SEGMENTS_MAX);
    assert_segment(cfg, 0, "s1", "true");
    assert_segment(cfg, 31, "one_more", "true");
}

/* cp_config_free frees every segment (valgrind checks this test). */
static void test_segments_free(void **state)
{
    cp_config_t *cfg = cp_config_new();
    char key[64];

    (void)state;
    assert_non_null(cfg);
    for (int i = 0; i < CP_SEGMENTS_MAX; i++) {
        snprintf(key, sizeof(key), "segment.s%d.rule", i);
        set_expect(cfg, key, "a", CP_OK);
        set_expect(cfg, key, "b", CP_OK);
    }
    set_expect(cfg, "segment.s3.rule", "", CP_OK);
    cp_config_free(cfg);
}

/* ---------------------------------------------------------------- -X */

static void test_set_kv(void **state)
{
    cp_config_t *cfg = *state;
    char err[256];

    assert_int_equal(cp_config_set_kv(cfg, "redis.port=6380", err, sizeof(err)),
                     CP_OK);
    assert_int_equal(cfg->redis_port, 6380);
    assert_int_equal(cp_config_set_kv(cfg, "redis.host=a=b", err, sizeof(err)),
                     CP_OK);
    assert_string_equal(cfg->redis_host, "a=b");
    assert_int_equal(
        cp_config_set_kv(cfg, "kafka.client.id=cp", err, sizeof(err)), CP_OK);
    assert_string_equal(cp_config_kafka_get(cfg, "client.id"), "cp");
    assert_int_equal(
        cp_config_set_kv(cfg, "redis.key_prefix=", err, sizeof(err)), CP_OK);
    assert_string_equal(cfg->redis_prefix, "");

    assert_int_equal(cp_config_set_kv(cfg, "redis.port", err, sizeof(err)),
                     CP_EPARSE);
    assert_string_equal(err, "expected key=value, got 'redis.port'");
    assert_int_equal(cp_config_set_kv(cfg, "=x", err, sizeof(err)), CP_EPARSE);
    assert_int_equal(cp_config_set_kv(cfg, "bogus=1", err, sizeof(err)),
                     CP_EUNKNOWNKEY);
    assert_string_equal(err, "unknown configuration key 'bogus'");
    assert_int_equal(cp_config_set_kv(cfg, "redis.port=x", err, sizeof(err)),
                     CP_EPARSE);
    assert_string_equal(err, "redis.port: 'x' is not an integer");

    /* split at the first '=': a rule keeps its own */
    assert_int_equal(cp_config_set_kv(cfg,
                                      "segment.de.rule=profile.country "
                                      "== \"DE\"",
                                      err, sizeof(err)),
                     CP_OK);
    assert_segment(cfg, 0, "de", "profile.country == \"DE\"");
    assert_int_equal(
        cp_config_set_kv(cfg, "segment.de.rule=", err, sizeof(err)), CP_OK);
    assert_int_equal(cfg->segments_cnt, 0);
}

/* ------------------------------------------------------ properties file */

static void test_load_file(void **state)
{
    cp_config_t *cfg = *state;
    char err[512];
    char *path = write_temp("# custpulse test\n"
                            "\n"
                            "   # indented comment\n"
                            "redis.host = redis.local\n"
                            "redis.port=7000\r\n"
                            "\tclock =  event  \n"
                            "output.source = a#b\n"
                            "redis.key_prefix =\n"
                            "kafka.bootstrap.servers = k1:9092,k2:9092\n"
                            "rfm.fixed.monetary = 12.5"); /* no final \n */

    assert_int_equal(cp_config_load_file(cfg, path, err, sizeof(err)), CP_OK);
    assert_string_equal(cfg->redis_host, "redis.local");
    assert_int_equal(cfg->redis_port, 7000);
    assert_int_equal(cfg->clock, CP_CLOCK_EVENT);
    assert_string_equal(cfg->output_source, "a#b");
    assert_string_equal(cfg->redis_prefix, "");
    assert_string_equal(cp_config_kafka_get(cfg, "bootstrap.servers"),
                        "k1:9092,k2:9092");
    assert_string_equal(cfg->rfm_fixed_monetary, "12.5");
    unlink(path);
    free(path);
}

/* A file's rule, disabled by -X segment.<name>.rule= afterwards. */
static void test_load_file_segments(void **state)
{
    cp_config_t *cfg = *state;
    char err[512];
    char *path = write_temp("segment.vip_de.rule = profile.country in "
                            "[\"DE\", \"AT\"] and rfm.m >= 500.00\n"
                            "segment.quiet.rule = engagement == \"dormant\"\n"
                            "engagement.weight.page_viewed = 0.25\n"
                            "rfmq.fixed.frequency = 1, 2, 4, 8\n");

    assert_int_equal(cp_config_load_file(cfg, path, err, sizeof(err)), CP_OK);
    assert_int_equal(cfg->segments_cnt, 2);
    assert_segment(cfg, 0, "vip_de",
                   "profile.country in [\"DE\", \"AT\"] and rfm.m >= 500.00");
    assert_segment(cfg, 1, "quiet", "engagement == \"dormant\"");
    assert_true(cfg->engagement_weight[1] == 0.25);
    assert_int_equal(
        cp_config_set_kv(cfg, "segment.vip_de.rule=", err, sizeof(err)), CP_OK);
    assert_int_equal(cfg->segments_cnt, 1);
    assert_segment(cfg, 0, "quiet", "engagement == \"dormant\"");
    unlink(path);
    free(path);

    path = write_temp("segment.Bad.rule = true\n");
    assert_int_equal(cp_config_load_file(cfg, path, err, sizeof(err)),
                     CP_EPARSE);
    assert_non_null(strstr(err, ":1: segment.Bad.rule: segment name 'Bad'"));
    unlink(path);
    free(path);
}

static void test_load_file_errors(void **state)
{
    cp_config_t *cfg = *state;
    char err[512], want[512];
    char *path = write_temp("redis.host = h\n"
                            "\n"
                            "bogus.key = 1\n"
                            "redis.port = 1\n");

    assert_int_equal(cp_config_load_file(cfg, path, err, sizeof(err)),
                     CP_EUNKNOWNKEY);
    snprintf(want, sizeof(want),
             "%s:3: unknown configuration key "
             "'bogus.key'",
             path);
    assert_string_equal(err, want);
    assert_int_equal(cfg->redis_port, 6379); /* stopped at the error */
    unlink(path);
    free(path);

    path = write_temp("redis.host = h\nno equals sign\n");
    assert_int_equal(cp_config_load_file(cfg, path, err, sizeof(err)),
                     CP_EPARSE);
    snprintf(want, sizeof(want), "%s:2: expected 'key = value'", path);
    assert_string_equal(err, want);
    unlink(path);
    free(path);

    path = write_temp(" = value\n");
    assert_int_equal(cp_config_load_file(cfg, path, err, sizeof(err)),
                     CP_EPARSE);
    unlink(path);
    free(path);

    path = write_temp("redis.port = 0\n");
    assert_int_equal(cp_config_load_file(cfg, path, err, sizeof(err)),
                     CP_ERANGE);
    snprintf(want, sizeof(want),
             "%s:1: redis.port: '0' is out of range 1..65535", path);
    assert_string_equal(err, want);
    unlink(path);
    free(path);

    assert_int_equal(cp_config_load_file(cfg, "/nonexistent/cp.properties", err,
                                         sizeof(err)),
                     CP_EIO);
    assert_string_equal(err, "cannot open '/nonexistent/cp.properties': No "
                             "such file or directory");
}

/* ---------------------------------------------------------- environment */

static void test_load_env(void **state)
{
    cp_config_t *cfg = *state;
    char *const envp[] = {
        "PATH=/usr/bin",
        "CUSTPULSE_REDIS_HOST=env-host",
        "CUSTPULSE_REDIS_TIMEOUT_MS=5000",
        "CUSTPULSE_RFM_FIXED_RECENCY_DAYS=30",
        "CUSTPULSE_REDIS_KEY_PREFIX=",
        "CUSTPULSE_LOG_LEVEL=debug",
        "CUSTPULSE_TOPIC_DLQ=dlq=x",
        "CUSTPULSE_KAFKA_BOOTSTRAP_SERVERS=b:9092",
        "CUSTPULSE_KAFKA_CONSUMER_FETCH_WAIT_MAX_MS=5",
        "CUSTPULSE_ENGAGEMENT_WEIGHT_CART_ITEM_ADDED=4.5",
        "CUSTPULSE_TOPIC_PROFILE=",
        "CUSTPULSE_BTYD_MODEL=bgnbd",
        "CUSTPULSE_RFMQ_FIXED_RECENCY_DAYS=7,14,28,56",
        "MY_CUSTPULSE_REDIS_PORT=1",
        "CUSTPULSE_NO_EQUALS_SIGN",
        /* test hooks, read by the consumer itself */
        "CUSTPULSE_FAILPOINT=after_redis_write:3",
        "CUSTPULSE_MOCK_FAULTS=produce:1:NOT_LEADER_FOR_PARTITION",
        NULL,
    };
    char err[256];

    assert_int_equal(cp_config_load_env(cfg, envp, err, sizeof(err)), CP_OK);
    assert_string_equal(cfg->redis_host, "env-host");
    assert_int_equal(cfg->redis_timeout_ms, 5000);
    assert_int_equal(cfg->rfm_fixed_recency_days, 30);
    assert_string_equal(cfg->redis_prefix, "");
    assert_int_equal(cfg->log_level, CP_LOG_DEBUG);
    assert_string_equal(cfg->topic_dlq, "dlq=x");
    assert_int_equal(cfg->redis_port, 6379);
    assert_string_equal(cp_config_kafka_get(cfg, "bootstrap.servers"),
                        "b:9092");
    assert_string_equal(cp_config_kafka_get(cfg, "consumer.fetch.wait.max.ms"),
                        "5");
    assert_true(cfg->engagement_weight[4] == 4.5);
    assert_string_equal(cfg->topic_profile, "");
    assert_int_equal(cfg->btyd_model, 1);
    assert_string_equal(cfg->rfmq_fixed_recency_days, "7,14,28,56");
    assert_int_equal(cp_config_load_env(cfg, NULL, err, sizeof(err)), CP_OK);
}

static void test_load_env_errors(void **state)
{
    cp_config_t *cfg = *state;
    char *const unknown[] = {"CUSTPULSE_REDIS_HOSTX=1", NULL};
    char *const lower[] = {"CUSTPULSE_redis_host=h", NULL};
    char *const kafka_empty[] = {"CUSTPULSE_KAFKA_=x", NULL};
    char *const bad_value[] = {"CUSTPULSE_REDIS_HOST=ok",
                               "CUSTPULSE_REDIS_PORT=abc", NULL};
    char err[256];

    assert_int_equal(cp_config_load_env(cfg, unknown, err, sizeof(err)),
                     CP_EUNKNOWNKEY);
    assert_string_equal(err,
                        "unknown environment variable 'CUSTPULSE_REDIS_HOSTX'");
    assert_int_equal(cp_config_load_env(cfg, lower, err, sizeof(err)),
                     CP_EUNKNOWNKEY);
    assert_int_equal(cp_config_load_env(cfg, kafka_empty, err, sizeof(err)),
                     CP_EUNKNOWNKEY);
    assert_string_equal(err, "unknown environment variable 'CUSTPULSE_KAFKA_'");
    assert_int_equal(cp_config_load_env(cfg, bad_value, err, sizeof(err)),
                     CP_EPARSE);
    assert_string_equal(err, "CUSTPULSE_REDIS_PORT: redis.port: 'abc' is "
                             "not an integer");
    assert_int_equal(cfg->kafka_cnt, 0);
}

static void test_load_env_segments_rejected(void **state)
{
    cp_config_t *cfg = *state;
    char *const rule[] = {"CUSTPULSE_SEGMENT_VIP_RULE=true", NULL};
    char *const empty[] = {"CUSTPULSE_SEGMENT_=", NULL};
    char *const bad_double[] = {"CUSTPULSE_VALUE_ALIVE=nan", NULL};
    char err[256];

    assert_int_equal(cp_config_load_env(cfg, rule, err, sizeof(err)),
                     CP_EUNKNOWNKEY);
    assert_string_equal(err, "unknown environment variable "
                             "'CUSTPULSE_SEGMENT_VIP_RULE': "
                             "segment.<name>.rule cannot be set through the "
                             "environment (use -c FILE or -X)");
    assert_int_equal(cp_config_load_env(cfg, empty, err, sizeof(err)),
                     CP_EUNKNOWNKEY);
    assert_int_equal(cfg->segments_cnt, 0);
    assert_int_equal(cp_config_load_env(cfg, bad_double, err, sizeof(err)),
                     CP_EPARSE);
    assert_string_equal(err, "CUSTPULSE_VALUE_ALIVE: value.alive: 'nan' is "
                             "not a decimal number");
}

/* ------------------------------------------------------------- finalize */

static cp_err_t finalize(cp_config_t *cfg, char *err, size_t size)
{
    err[0] = '\0';
    return cp_config_finalize(cfg, err, size);
}

static void assert_rfmq(const int64_t *v, int64_t a, int64_t b, int64_t c,
                        int64_t d)
{
    assert_int_equal(v[0], a);
    assert_int_equal(v[1], b);
    assert_int_equal(v[2], c);
    assert_int_equal(v[3], d);
}

/* Sets key=value, then expects finalize to give want; returns errstr. */
static const char *finalize_expect(cp_config_t *cfg, const char *key,
                                   const char *value, cp_err_t want)
{
    static char err[256];
    cp_err_t got;

    set_expect(cfg, key, value, CP_OK);
    got = finalize(cfg, err, sizeof(err));
    if (got != want)
        fail_msg("%s='%s': finalize got %s (%s), want %s", key, value,
                 cp_err_name(got), err, cp_err_name(want));
    return err;
}

static void test_finalize_defaults(void **state)
{
    cp_config_t *cfg = *state;
    char err[256];

    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_OK);
    assert_int_equal(cfg->currency_digits, 2);
    assert_int_equal(cfg->rfm_fixed_monetary_minor, 10000);
    assert_int_equal(cfg->value_historical_ref_minor, 10000);
    assert_int_equal(cfg->value_predicted_ref_minor, 20000);
    assert_rfmq(cfg->rfmq_fixed_r, 14, 30, 90, 180);
    assert_rfmq(cfg->rfmq_fixed_f, 2, 3, 5, 8);
    assert_rfmq(cfg->rfmq_fixed_m_minor, 5000, 10000, 25000, 50000);
}

static void test_finalize_currency(void **state)
{
    cp_config_t *cfg = *state;
    char err[256];

    set_expect(cfg, "currency", "KWD", CP_OK);
    set_expect(cfg, "rfm.fixed.monetary", "1.5", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_OK);
    assert_int_equal(cfg->currency_digits, 3);
    assert_int_equal(cfg->rfm_fixed_monetary_minor, 1500);

    set_expect(cfg, "currency", "usd", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EINVAL);
    assert_string_equal(err,
                        "currency: 'usd' is not a supported ISO 4217 code");
    set_expect(cfg, "currency", "XXX", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EINVAL);
    set_expect(cfg, "currency", "USDX", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EINVAL);
}

static void test_finalize_monetary(void **state)
{
    cp_config_t *cfg = *state;
    char err[256];

    /* The money defaults are whole units: valid in every currency. */
    set_expect(cfg, "currency", "JPY", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_OK);
    assert_int_equal(cfg->rfm_fixed_monetary_minor, 100);
    assert_int_equal(cfg->value_historical_ref_minor, 100);
    assert_int_equal(cfg->value_predicted_ref_minor, 200);
    assert_rfmq(cfg->rfmq_fixed_m_minor, 50, 100, 250, 500);
    set_expect(cfg, "rfm.fixed.monetary", "100.00", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EPRECISION);
    assert_string_equal(err, "rfm.fixed.monetary: '100.00' is not a valid "
                             "JPY amount: more decimals than the currency "
                             "allows");

    set_expect(cfg, "rfm.fixed.monetary", "1e3", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EPARSE);
    assert_non_null(strstr(err, "rfm.fixed.monetary: "));
    set_expect(cfg, "rfm.fixed.monetary", "1000000000000001", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_ERANGE);
    set_expect(cfg, "rfm.fixed.monetary", "-5", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EPARSE);
}

static void test_finalize_value_refs(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    err = finalize_expect(cfg, "value.historical_ref", "0", CP_ERANGE);
    assert_string_equal(err, "value.historical_ref: '0' must be more than 0");
    finalize_expect(cfg, "value.historical_ref", "0.00", CP_ERANGE);
    finalize_expect(cfg, "value.historical_ref", "0.01", CP_OK);
    assert_int_equal(cfg->value_historical_ref_minor, 1);
    err = finalize_expect(cfg, "value.predicted_ref", "0", CP_ERANGE);
    assert_string_equal(err, "value.predicted_ref: '0' must be more than 0");
    finalize_expect(cfg, "value.predicted_ref", "12.345", CP_EPRECISION);
    finalize_expect(cfg, "value.predicted_ref", "1e3", CP_EPARSE);
    finalize_expect(cfg, "value.predicted_ref", "-1", CP_EPARSE);
    assert_int_equal(cfg->value_predicted_ref_minor, 20000); /* last good */
    finalize_expect(cfg, "value.predicted_ref", "1000000000000000", CP_OK);
    assert_int_equal(cfg->value_predicted_ref_minor, 100000000000000000);
    set_expect(cfg, "value.predicted_ref", "", CP_EPARSE);
}

static void test_finalize_rfmq_lists(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    finalize_expect(cfg, "rfmq.fixed.recency_days", "0, 1 ,2,\t100000", CP_OK);
    assert_rfmq(cfg->rfmq_fixed_r, 0, 1, 2, 100000);
    finalize_expect(cfg, "rfmq.fixed.frequency", "1,+2,3,1000000000", CP_OK);
    assert_rfmq(cfg->rfmq_fixed_f, 1, 2, 3, 1000000000);
    finalize_expect(cfg, "rfmq.fixed.monetary", "0,0.5,1.25,2", CP_OK);
    assert_rfmq(cfg->rfmq_fixed_m_minor, 0, 50, 125, 200);

    /* wrong count, junk */
    err = finalize_expect(cfg, "rfmq.fixed.recency_days", "1,2,3", CP_EPARSE);
    assert_string_equal(err, "rfmq.fixed.recency_days: '1,2,3' is not 4 "
                             "comma-separated values");
    finalize_expect(cfg, "rfmq.fixed.recency_days", "1,2,3,4,5", CP_EPARSE);
    finalize_expect(cfg, "rfmq.fixed.recency_days", "1,2,3,4,", CP_EPARSE);
    finalize_expect(cfg, "rfmq.fixed.recency_days", "1", CP_EPARSE);
    err = finalize_expect(cfg, "rfmq.fixed.recency_days", "1,a,3,4", CP_EPARSE);
    assert_string_equal(err, "rfmq.fixed.recency_days: item 'a' is not an "
                             "integer");
    finalize_expect(cfg, "rfmq.fixed.recency_days", "1,,3,4", CP_EPARSE);
    finalize_expect(cfg, "rfmq.fixed.recency_days", "1,2.5,3,4", CP_EPARSE);
    finalize_expect(cfg, "rfmq.fixed.recency_days", "1;2;3;4", CP_EPARSE);
    finalize_expect(cfg, "rfmq.fixed.recency_days", "1 2,3,4,5", CP_EPARSE);
    set_expect(cfg, "rfmq.fixed.recency_days", "", CP_EPARSE);

    /* bounds, order */
    err = finalize_expect(cfg, "rfmq.fixed.recency_days", "1,2,3,100001",
                          CP_ERANGE);
    assert_string_equal(err, "rfmq.fixed.recency_days: item '100001' is out "
                             "of range 0..100000");
    finalize_expect(cfg, "rfmq.fixed.recency_days", "-1,2,3,4", CP_ERANGE);
    finalize_expect(cfg, "rfmq.fixed.recency_days",
                    "1,2,3,99999999999999999999", CP_ERANGE);
    err = finalize_expect(cfg, "rfmq.fixed.recency_days", "1,3,2,4", CP_ERANGE);
    assert_string_equal(err, "rfmq.fixed.recency_days: '1,3,2,4' is not "
                             "strictly increasing");
    finalize_expect(cfg, "rfmq.fixed.recency_days", "1,2,2,4", CP_ERANGE);
    assert_rfmq(cfg->rfmq_fixed_r, 0, 1, 2, 100000); /* last good */
    set_expect(cfg, "rfmq.fixed.recency_days", "14,30,90,180", CP_OK);

    finalize_expect(cfg, "rfmq.fixed.frequency", "0,1,2,3", CP_ERANGE);
    finalize_expect(cfg, "rfmq.fixed.frequency", "8,5,3,2", CP_ERANGE);
    finalize_expect(cfg, "rfmq.fixed.frequency", "1,2,3,1000000001", CP_ERANGE);
    set_expect(cfg, "rfmq.fixed.frequency", "2,3,5,8", CP_OK);

    /* amounts: the currency's digits, like rfm.fixed.monetary */
    err = finalize_expect(cfg, "rfmq.fixed.monetary", "1,2.005,3,4",
                          CP_EPRECISION);
    assert_string_equal(err, "rfmq.fixed.monetary: item '2.005' is not a "
                             "valid USD amount: more decimals than the "
                             "currency allows");
    finalize_expect(cfg, "rfmq.fixed.monetary", "1,2,3,x", CP_EPARSE);
    finalize_expect(cfg, "rfmq.fixed.monetary", "-1,2,3,4", CP_EPARSE);
    finalize_expect(cfg, "rfmq.fixed.monetary", "1,2,3,4e2", CP_EPARSE);
    finalize_expect(cfg, "rfmq.fixed.monetary", "1,2,3,1000000000000001",
                    CP_ERANGE);
    finalize_expect(cfg, "rfmq.fixed.monetary", "1,2.00,2,3", CP_ERANGE);
    finalize_expect(cfg, "rfmq.fixed.monetary", "1,2,3", CP_EPARSE);
    assert_rfmq(cfg->rfmq_fixed_m_minor, 0, 50, 125, 200);
    set_expect(cfg, "currency", "JPY", CP_OK);
    set_expect(cfg, "rfm.fixed.monetary", "100", CP_OK);
    set_expect(cfg, "value.historical_ref", "100", CP_OK);
    set_expect(cfg, "value.predicted_ref", "200", CP_OK);
    finalize_expect(cfg, "rfmq.fixed.monetary", "1,2,3,4.5", CP_EPRECISION);
    finalize_expect(cfg, "rfmq.fixed.monetary", "1000,2000,5000,10000", CP_OK);
    assert_rfmq(cfg->rfmq_fixed_m_minor, 1000, 2000, 5000, 10000);
}

static void test_finalize_engagement_order(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    err = finalize_expect(cfg, "engagement.medium", "20.5", CP_EINVAL);
    assert_string_equal(err, "engagement.high: 20 is less than "
                             "engagement.medium (20.5)");
    finalize_expect(cfg, "engagement.medium", "20", CP_OK); /* equal is ok */
    err = finalize_expect(cfg, "engagement.low", "21", CP_EINVAL);
    assert_string_equal(err, "engagement.medium: 20 is less than "
                             "engagement.low (21)");
    finalize_expect(cfg, "engagement.low", "20", CP_OK); /* all equal */
    finalize_expect(cfg, "engagement.high", "19.999", CP_EINVAL);
    finalize_expect(cfg, "engagement.high", "1e9", CP_OK);
    finalize_expect(cfg, "engagement.low", "0", CP_OK);
}

static void test_finalize_satisfaction_order(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    err = finalize_expect(cfg, "satisfaction.at_risk_csat", "4", CP_EINVAL);
    assert_string_equal(err, "satisfaction.at_risk_csat: 4 is not less than "
                             "satisfaction.satisfied_csat (4)");
    finalize_expect(cfg, "satisfaction.satisfied_csat", "5", CP_OK);
    finalize_expect(cfg, "satisfaction.satisfied_csat", "3", CP_EINVAL);
    finalize_expect(cfg, "satisfaction.at_risk_csat", "1", CP_OK);
}

static void test_finalize_lifecycle_order(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    err = finalize_expect(cfg, "lifecycle.churn_days", "90", CP_EINVAL);
    assert_string_equal(err, "lifecycle.churn_days: 90 is not greater than "
                             "lifecycle.at_risk_days (90)");
    finalize_expect(cfg, "lifecycle.churn_days", "91", CP_OK);
    finalize_expect(cfg, "lifecycle.at_risk_days", "200", CP_EINVAL);
    finalize_expect(cfg, "lifecycle.churn_days", "36500", CP_OK);
}

/* Input topics are told apart in the customer hash by FNV-1a 32 of their
 * names; "topic-82801" and "topic-699900" share 0x639f5980. */
static void test_finalize_topic_ids(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    finalize_expect(cfg, "topic.orders", "topic-82801", CP_OK);
    err = finalize_expect(cfg, "topic.support", "topic-699900", CP_EINVAL);
    assert_string_equal(err, "topic.orders, topic.support: the two topic "
                             "names have the same 32-bit id in the customer "
                             "state (FNV-1a); rename one");
    finalize_expect(cfg, "topic.support", "", CP_OK); /* not consumed */
    finalize_expect(cfg, "topic.profile", "topic-699900", CP_EINVAL);
    finalize_expect(cfg, "topic.profile", "topic-82801", CP_OK); /* same */
}

static void test_finalize_churn_order(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    /* the defaults (docs/churn.md) */
    assert_true(cfg->churn_overdue_k == 2);
    assert_true(cfg->churn_weight[0] == 0.5 && cfg->churn_weight[4] == 0.3);
    assert_int_equal(cfg->churn_min_level, 0);
    assert_int_equal(cfg->due_max_days, 0);
    err = finalize_expect(cfg, "churn.p_alive.recover", "0.29", CP_EINVAL);
    assert_string_equal(err, "churn.p_alive.recover: 0.29 is not at least "
                             "churn.p_alive.low (0.3)");
    finalize_expect(cfg, "churn.p_alive.recover", "0.3", CP_OK); /* equal */
    err = finalize_expect(cfg, "churn.engagement.peak_half_life_days", "14",
                          CP_EINVAL);
    assert_string_equal(err, "churn.engagement.peak_half_life_days: 14 is not "
                             "greater than engagement.half_life_days (14)");
    finalize_expect(cfg, "engagement.half_life_days", "13.5", CP_OK);
    finalize_expect(cfg, "churn.engagement.fraction", "0.6", CP_EINVAL);
    finalize_expect(cfg, "churn.engagement.recover_fraction", "0.6", CP_OK);
    finalize_expect(cfg, "churn.service.recover_complaints", "0.6", CP_EINVAL);
    finalize_expect(cfg, "churn.service.complaints", "0.6", CP_OK);
    finalize_expect(cfg, "churn.value.long_half_life_days", "30", CP_EINVAL);
    finalize_expect(cfg, "churn.value.long_half_life_days", "31", CP_OK);
    finalize_expect(cfg, "churn.value.fraction", "0.7", CP_EINVAL);
    finalize_expect(cfg, "churn.value.recover_fraction", "1", CP_OK);
    err = finalize_expect(cfg, "churn.level.medium", "0.8", CP_EINVAL);
    assert_string_equal(err, "churn.level.high: 0.7 is not at least "
                             "churn.level.medium (0.8)");
    finalize_expect(cfg, "churn.level.high", "0.8", CP_OK);
    finalize_expect(cfg, "churn.level.low", "0.81", CP_EINVAL);
    set_expect(cfg, "churn.level.low", "0", CP_ERANGE); /* > 0 */
    set_expect(cfg, "churn.min_level", "none", CP_EPARSE);
    set_expect(cfg, "churn.min_level", "high", CP_OK);
    assert_int_equal(cfg->churn_min_level, 2);
}

static void test_finalize_value_weights(void **state)
{
    cp_config_t *cfg = *state;
    const char *err;

    finalize_expect(cfg, "value.weight.historical", "0", CP_OK);
    finalize_expect(cfg, "value.weight.predicted", "0", CP_OK);
    err = finalize_expect(cfg, "value.weight.strategic", "0", CP_EINVAL);
    assert_string_equal(err, "value.weight.historical, value.weight.predicted, "
                             "value.weight.strategic: all 0; their sum must "
                             "be more than 0");
    finalize_expect(cfg, "value.weight.predicted", "1e-300", CP_OK);
}

static void test_finalize_timezone(void **state)
{
    cp_config_t *cfg = *state;
    char err[256];

    set_expect(cfg, "timezone", "+05:30", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_OK);
    set_expect(cfg, "timezone", "Europe/Berlin", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_OK);
    set_expect(cfg, "timezone", "Mars/Base", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EINVAL);
    assert_string_equal(err, "timezone: unknown time zone 'Mars/Base': not "
                             "found in /usr/share/zoneinfo");
}

/* ---------------------------------------------------------------- --list */

static char *list_text(size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    assert_non_null(f);
    cp_config_list(f);
    fclose(f);
    return text;
}

static void test_list_rows(void **state)
{
    size_t len;
    char *text = list_text(&len);

    (void)state;
    assert_non_null(strstr(text, "| key | type | default | range/values | "
                                 "description |\n|---|---|---|---|---|\n"));
    assert_non_null(strstr(text, "| `redis.port` | integer | `6379` | "
                                 "1..65535 | Redis port. |\n"));
    assert_non_null(strstr(text, "| `topic.replication` | integer | `-1` | "
                                 "-1..32, not 0 |"));
    assert_non_null(strstr(text, "| `clock` | enum | `wall` | `wall`, "
                                 "`event` |"));
    /* a secret shows no default */
    assert_non_null(strstr(text, "| `redis.password` | secret |  | "));
    assert_non_null(strstr(text, "## kafka.*\n"));
    assert_non_null(strstr(text, "| `engagement.half_life_days` | number | "
                                 "`14` | > 0 .. 36500 | "));
    assert_non_null(strstr(text, "| `engagement.weight.page_viewed` | number "
                                 "| `0.5` | 0 .. 1000000 | "));
    assert_non_null(strstr(text, "| `btyd.model` | enum | `mbgnbd` | "
                                 "`mbgnbd`, `bgnbd` |"));
    assert_non_null(strstr(text, "| `rfmq.fixed.frequency` | list | "
                                 "`2,3,5,8` | 4 strictly increasing "
                                 "integers, each 1..1000000000 |"));
    assert_non_null(strstr(text, "| `topic.profile` | string | "
                                 "`customer.profile` | may be empty |"));
    /* the segment.* note follows the kafka.* one */
    assert_true(strstr(text, "## segment.*\n") > strstr(text, "## kafka.*"));
    assert_non_null(strstr(text, "`CUSTPULSE_SEGMENT_*` is an error"));
    free(text);
}

static void test_docs_config_md_matches_list(void **state)
{
    size_t len, doc_len;
    char *text = list_text(&len);
    FILE *f = fopen(DOCS_CONFIG_MD, "r");
    char *doc;

    (void)state;
    if (f == NULL)
        fail_msg("cannot open %s (run from tests/unit)", DOCS_CONFIG_MD);
    doc = read_all(f, &doc_len);
    fclose(f);
    if (doc_len != len || memcmp(doc, text, len) != 0)
        fail_msg("docs/config.md differs from `custpulse config --list`; "
                 "regenerate it from cp_config_list()");
    free(doc);
    free(text);
}

static void test_free_null(void **state)
{
    (void)state;
    cp_config_free(NULL);
}

#define CFG_TEST(f) cmocka_unit_test_setup_teardown(f, cfg_setup, cfg_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CFG_TEST(test_defaults),
        CFG_TEST(test_defaults_models),
        CFG_TEST(test_set_strings),
        CFG_TEST(test_set_ints),
        CFG_TEST(test_set_model_ints),
        CFG_TEST(test_set_doubles),
        CFG_TEST(test_double_exclusive_min),
        CFG_TEST(test_engagement_weight_elements),
        CFG_TEST(test_replication_excludes_zero),
        CFG_TEST(test_set_enums),
        CFG_TEST(test_optional_topics),
        CFG_TEST(test_unknown_keys),
        CFG_TEST(test_kafka_pass_through),
        CFG_TEST(test_segments_set_replace_remove),
        CFG_TEST(test_segments_names),
        CFG_TEST(test_segments_rule_length),
        CFG_TEST(test_segments_max),
        cmocka_unit_test(test_segments_free),
        CFG_TEST(test_set_kv),
        CFG_TEST(test_load_file),
        CFG_TEST(test_load_file_segments),
        CFG_TEST(test_load_file_errors),
        CFG_TEST(test_load_env),
        CFG_TEST(test_load_env_errors),
        CFG_TEST(test_load_env_segments_rejected),
        CFG_TEST(test_finalize_defaults),
        CFG_TEST(test_finalize_currency),
        CFG_TEST(test_finalize_monetary),
        CFG_TEST(test_finalize_value_refs),
        CFG_TEST(test_finalize_rfmq_lists),
        CFG_TEST(test_finalize_engagement_order),
        CFG_TEST(test_finalize_satisfaction_order),
        CFG_TEST(test_finalize_lifecycle_order),
        CFG_TEST(test_finalize_topic_ids),
        CFG_TEST(test_finalize_churn_order),
        CFG_TEST(test_finalize_value_weights),
        CFG_TEST(test_finalize_timezone),
        cmocka_unit_test(test_list_rows),
        cmocka_unit_test(test_docs_config_md_matches_list),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
