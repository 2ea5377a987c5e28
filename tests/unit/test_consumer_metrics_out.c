/*
 * test_consumer_metrics_out.c - the population metrics' Redis key names and
 * the exact text of the daily CloudEvent (docs/metrics.md). The expected
 * records are the files tests/cases/metrics/<name>.json (one line each),
 * which the integration test test_report.py validates against
 * schemas/customer-metrics.schema.json: what is compared here is what the
 * schema accepts.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "metrics_out.h"

#define CASES "../cases/metrics"

static void test_key_names(void **state)
{
    (void)state;
    char k[64];
    assert_int_equal(
        cp_metrics_key_name("cp:", CP_METRICS_DAY, 19783, k, sizeof(k)), 16);
    assert_string_equal(k, "cp:md:2024-03-01");
    assert_int_equal(
        cp_metrics_key_name("", CP_METRICS_COHORT, 0, k, sizeof(k)), 13);
    assert_string_equal(k, "mc:1970-01-01");
    /* exactly the room it needs, and one byte less */
    assert_int_equal(cp_metrics_key_name("cp:", CP_METRICS_DAY, 19783, k, 17),
                     16);
    assert_int_equal(cp_metrics_key_name("cp:", CP_METRICS_DAY, 19783, k, 16),
                     0);
    assert_string_equal(k, "");
    assert_int_equal(
        cp_metrics_key_name("cp:", (cp_metrics_key_t)2, 19783, k, sizeof(k)),
        0);
    assert_int_equal(
        cp_metrics_key_name("cp:", CP_METRICS_DAY, 2932897, k, sizeof(k)), 0);
}

/* The expected record: the first line of tests/cases/metrics/<name>.json. */
static void assert_case(const cp_buf_t *b, const char *name)
{
    char path[256], want[8192];
    snprintf(path, sizeof(path), "%s/%s.json", CASES, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(want, sizeof(want), f));
    fclose(f);
    want[strcspn(want, "\n")] = '\0';
    assert_false(cp_buf_failed(b));
    assert_string_equal(b->data, want);
}

static cp_config_t *config(const char *tz, const char *source)
{
    char err[128];
    cp_config_t *cfg = cp_config_new();
    assert_int_equal(cp_config_set(cfg, "timezone", tz, err, sizeof(err)),
                     CP_OK);
    assert_int_equal(
        cp_config_set(cfg, "output.source", source, err, sizeof(err)), CP_OK);
    assert_int_equal(cp_config_finalize(cfg, err, sizeof(err)), CP_OK);
    return cfg;
}

/* 2024-03-05 in +08:00: one churned of a base of 3, three cohorts in the
 * window (2024-02-05 complete at its 30th day, 2024-03-01 complete at
 * d2 only, 2024-03-05 empty), one just outside it (2024-02-04). */
static void test_daily(void **state)
{
    (void)state;
    cp_config_t *cfg = config("+08:00", "custpulse");
    cp_tz_t *tz = cp_tz_new("+08:00", NULL, 0);
    assert_non_null(tz);
    cp_metrics_daily_t r = {.day = 19787,
                            .active = 4,
                            .new_customers = 0,
                            .churned = 1,
                            .won_back = 1,
                            .at_risk_entered = 2,
                            .churn_base = 3,
                            .churn_rate = 1.0 / 3.0,
                            .stage = {0, 1, 1, 1, 0, 1, 1, 1},
                            .segment = {0, 0, 1, 0, 0, 0, 3, 0, 0}};
    const cp_metrics_cohort_t cohorts[] = {
        {19757, 5, {5, 5, 5, 5}},
        {19758, 3, {1, 2, 2, 3}},
        {19783, 2, {1, 2, 2, 2}},
        {19787, 0, {0, 0, 0, 0}},
    };
    cp_metrics_retention_t w[CP_METRICS_WINDOW];
    size_t n = cp_metrics_window(cohorts, 4, r.day, w);
    assert_int_equal(n, 3);
    cp_buf_t b;
    cp_buf_init(&b);
    cp_output_metrics(&b, &r, w, n, tz, cfg);
    assert_case(&b, "daily");
    /* the data object alone is what `custpulse report --json` prints */
    cp_buf_t d;
    cp_buf_init(&d);
    cp_output_metrics_data(&d, &r, w, n, cfg);
    const char *data = strstr(b.data, ",\"data\":");
    assert_non_null(data);
    data += strlen(",\"data\":");
    assert_int_equal(strlen(data), d.len + 1); /* the closing '}' */
    assert_memory_equal(data, d.data, d.len);
    cp_buf_free(&d);
    cp_buf_free(&b);
    cp_tz_free(tz);
    cp_config_free(cfg);
}

/* The first day: no base (churn_rate null), nothing complete yet, a
 * source that needs escaping, UTC. */
static void test_first_day(void **state)
{
    (void)state;
    cp_config_t *cfg = config("UTC", "cp \"test\"");
    cp_tz_t *tz = cp_tz_new("UTC", NULL, 0);
    cp_metrics_day_t day;
    cp_metrics_day_init(&day, 19783);
    day.lc[CP_LC_NEW] = 2;
    day.lc[CP_LC_PROSPECT] = 1;
    day.in[CP_LC_NEW] = 2;
    day.seg[CP_RFM8_GENERAL_DEVELOP] = 2;
    day.act = 3;
    cp_metrics_daily_t r;
    assert_int_equal(cp_metrics_daily(&day, 1, &r), 0);
    assert_true(isnan(r.churn_rate));
    cp_metrics_cohort_t c = {19783, 2, {0, 0, 0, 0}};
    cp_metrics_retention_t w[CP_METRICS_WINDOW];
    size_t n = cp_metrics_window(&c, 1, r.day, w);
    cp_buf_t b;
    cp_buf_init(&b);
    cp_output_metrics(&b, &r, w, n, tz, cfg);
    assert_case(&b, "first-day");
    /* the last day the output formats ends at the last instant */
    r.day = 2932896;
    cp_buf_reset(&b);
    cp_output_metrics(&b, &r, NULL, 0, tz, cfg);
    assert_non_null(strstr(b.data, "\"subject\":\"9999-12-31\",\"time\":"
                                   "\"9999-12-31T23:59:59.999Z\""));
    cp_buf_free(&b);
    cp_tz_free(tz);
    cp_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_daily),
        cmocka_unit_test(test_first_day),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
