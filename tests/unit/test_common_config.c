/*
 * test_common_config.c - the configuration table: defaults, typed setters
 * and their errors, kafka.* pass-through, the properties file, CUSTPULSE_*
 * environment, finalize, and docs/config.md == `config --list`.
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
    assert_string_equal(cfg->rfm_fixed_monetary, "100.00");
    assert_int_equal(cfg->dedup_event_ids, 16);
    assert_int_equal(cfg->dedup_orders, 32);
    assert_int_equal(cfg->batch_size, 1000);
    assert_int_equal(cfg->input_max_bytes, 65536);
    assert_string_equal(cfg->output_source, "custpulse");
    assert_int_equal(cfg->log_level, CP_LOG_INFO);
    assert_int_equal(cfg->shutdown_timeout_ms, 10000);
    assert_int_equal(cfg->kafka_cnt, 0);
    assert_null(cp_config_kafka_get(cfg, "bootstrap.servers"));
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

/* ------------------------------------------------------------- finalize */

static cp_err_t finalize(cp_config_t *cfg, char *err, size_t size)
{
    err[0] = '\0';
    return cp_config_finalize(cfg, err, size);
}

static void test_finalize_defaults(void **state)
{
    cp_config_t *cfg = *state;
    char err[256];

    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_OK);
    assert_int_equal(cfg->currency_digits, 2);
    assert_int_equal(cfg->rfm_fixed_monetary_minor, 10000);
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

    set_expect(cfg, "currency", "JPY", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EPRECISION);
    assert_string_equal(err, "rfm.fixed.monetary: '100.00' is not a valid "
                             "JPY amount: more decimals than the currency "
                             "allows");
    set_expect(cfg, "rfm.fixed.monetary", "100", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_OK);
    assert_int_equal(cfg->rfm_fixed_monetary_minor, 100);

    set_expect(cfg, "rfm.fixed.monetary", "1e3", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EPARSE);
    assert_non_null(strstr(err, "rfm.fixed.monetary: "));
    set_expect(cfg, "rfm.fixed.monetary", "1000000000000001", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_ERANGE);
    set_expect(cfg, "rfm.fixed.monetary", "-5", CP_OK);
    assert_int_equal(finalize(cfg, err, sizeof(err)), CP_EPARSE);
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
        CFG_TEST(test_set_strings),
        CFG_TEST(test_set_ints),
        CFG_TEST(test_replication_excludes_zero),
        CFG_TEST(test_set_enums),
        CFG_TEST(test_unknown_keys),
        CFG_TEST(test_kafka_pass_through),
        CFG_TEST(test_set_kv),
        CFG_TEST(test_load_file),
        CFG_TEST(test_load_file_errors),
        CFG_TEST(test_load_env),
        CFG_TEST(test_load_env_errors),
        CFG_TEST(test_finalize_defaults),
        CFG_TEST(test_finalize_currency),
        CFG_TEST(test_finalize_monetary),
        CFG_TEST(test_finalize_timezone),
        cmocka_unit_test(test_list_rows),
        cmocka_unit_test(test_docs_config_md_matches_list),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
