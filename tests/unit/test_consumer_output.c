/*
 * test_consumer_output.c - exact CloudEvent text of segment changes and
 * the derived event ids (vectors computed independently with Python's
 * mmh3.hash64, see docs/contracts.md section 4).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "output.h"

static void test_event_ids(void **state)
{
    (void)state;
    char id[37];
    cp_output_event_id("c1", 2, "rfm8", 1, id);
    assert_string_equal(id, "f6fe1d5a-7d60-84be-a452-807be503d02a");
    cp_output_event_id("c1", 2, "rfm8", 2, id);
    assert_string_equal(id, "07350ad8-0c55-8e8f-9b36-db502ce1673a");
}

static void test_fixed_change(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    char err[128];
    assert_int_equal(
        cp_config_set(cfg, "rfm.reference", "fixed", err, sizeof(err)), CP_OK);
    assert_int_equal(cp_config_finalize(cfg, err, sizeof(err)), CP_OK);
    cp_seg_change_t c = {.customer_id = "c1",
                         .customer_id_len = 2,
                         .from = CP_RFM8_NONE,
                         .to = CP_RFM8_IMPORTANT_RETAIN,
                         .seq = 1,
                         .recency_days = 997,
                         .frequency = 1,
                         .monetary = 15000,
                         .ref_mode = CP_REF_FIXED,
                         .time_ms = 1709287200000LL,
                         .event_id = "e\"1",
                         .topic = "customer.orders",
                         .partition = 2,
                         .offset = 0};
    cp_buf_t b;
    cp_buf_init(&b);
    cp_output_segment_change(&b, &c, cfg);
    assert_string_equal(
        b.data,
        "{\"specversion\":\"1.0\",\"id\":\"f6fe1d5a-7d60-84be-a452-"
        "807be503d02a\",\"source\":\"custpulse\",\"type\":\"com.custpulse."
        "segment.changed\",\"subject\":\"c1\",\"time\":\"2024-03-01T10:00:00."
        "000Z\",\"datacontenttype\":\"application/json\",\"data\":{\"model\":"
        "\"rfm8\",\"from\":null,\"to\":\"important_retain\",\"seq\":1,"
        "\"recency_days\":997,\"frequency\":1,\"monetary\":\"150.00\","
        "\"currency\":\"USD\",\"reference\":{\"mode\":\"fixed\","
        "\"recency_days\":90,\"frequency\":2,\"monetary\":\"100.00\"},"
        "\"cause\":{\"event_id\":\"e\\\"1\",\"topic\":\"customer.orders\","
        "\"partition\":2,\"offset\":0}}}");
    cp_buf_free(&b);
    cp_config_free(cfg);
}

static void test_live_change_to_none(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    char err[128];
    assert_int_equal(cp_config_finalize(cfg, err, sizeof(err)), CP_OK);
    cp_seg_change_t c = {.customer_id = "c9",
                         .customer_id_len = 2,
                         .from = CP_RFM8_GENERAL_VALUE,
                         .to = CP_RFM8_NONE,
                         .seq = 3,
                         .ref_mode = CP_REF_LIVE,
                         .ref = {12.5, 2.0, 1234.5},
                         .time_ms = 0,
                         .event_id = "x",
                         .topic = "t",
                         .partition = 0,
                         .offset = 7};
    cp_buf_t b;
    cp_buf_init(&b);
    cp_output_segment_change(&b, &c, cfg);
    assert_non_null(strstr(b.data, "\"from\":\"general_value\",\"to\":null,"));
    assert_non_null(strstr(b.data, "\"reference\":{\"mode\":\"live\","
                                   "\"recency_days\":12.5,\"frequency\":2,"
                                   "\"monetary\":\"12.35\"}"));
    assert_non_null(strstr(b.data, "\"time\":\"1970-01-01T00:00:00.000Z\""));
    cp_buf_free(&b);
    cp_config_free(cfg);
}

/* A time-caused change (no event): cause kind "time" with the due
 * instant, which is also the CloudEvent's time. */
static void test_time_cause(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    char err[128];
    assert_int_equal(cp_config_finalize(cfg, err, sizeof(err)), CP_OK);
    cp_seg_change_t c = {.customer_id = "c9",
                         .customer_id_len = 2,
                         .from = CP_RFM8_IMPORTANT_DEVELOP,
                         .to = CP_RFM8_IMPORTANT_RETAIN,
                         .seq = 4,
                         .ref_mode = CP_REF_FIXED,
                         .time_ms = 1712361600000, /* 2024-04-06 */
                         .event_id = NULL};
    cp_buf_t b;
    cp_buf_init(&b);
    cp_output_segment_change(&b, &c, cfg);
    const char *tail = "\"cause\":{\"kind\":\"time\",\"evaluated_at\":"
                       "\"2024-04-06T00:00:00.000Z\"}}}";
    assert_true(b.len > strlen(tail));
    assert_string_equal(b.data + b.len - strlen(tail), tail);
    assert_non_null(strstr(b.data, "\"time\":\"2024-04-06T00:00:00.000Z\""));
    cp_buf_free(&b);
    cp_config_free(cfg);
}

/* Churn CloudEvents: a recovery and an escalation with two reasons (the
 * figures of docs/churn.md's overdue and service_risk rules), exact text;
 * the id is (customer, "churn", seq)'s. */
static void test_churn_events(void **state)
{
    (void)state;
    cp_config_t *cfg = cp_config_new();
    char err[128];
    assert_int_equal(cp_config_finalize(cfg, err, sizeof(err)), CP_OK);
    cp_churn_params_t cp = {.weight = {0.5, 0.5, 0.25, 0.4, 0.3},
                            .service_complaints = 0.5,
                            .p_alive_low = 0.3};
    cp_churn_eval_t ev = {.reasons = 1u << CP_CHURN_OVERDUE |
                                     1u << CP_CHURN_SERVICE_RISK,
                          .score = 0.7,
                          .days_since_last = 70,
                          .gap_days = 30,
                          .gap_own = 1,
                          .overdue_days = 60,
                          .p_alive = NAN,
                          .complaints = 1.2,
                          .csat_last = 0,
                          .csat_age_days = NAN};
    cp_state_t st;
    cp_state_init(&st);
    st.stage = CP_LC_ACTIVE;
    cp_models_t mo = {.has_btyd = 0, .clv = NAN};
    cp_churn_out_t c = {.customer_id = "c1",
                        .customer_id_len = 2,
                        .action = CP_CHURN_ACT_ESCALATE,
                        .seq = 4,
                        .level = CP_CHURN_LEVEL_HIGH,
                        .previous_level = CP_CHURN_LEVEL_LOW,
                        .episode_ms = 1709287200000LL,
                        .ev = &ev,
                        .cp = &cp,
                        .st = &st,
                        .mo = &mo,
                        .time_ms = 1712750400000LL,
                        .event_id = "e-9",
                        .topic = "customer.support",
                        .partition = 0,
                        .offset = 3};
    char id[37];
    cp_output_event_id("c1", 2, "churn", 4, id);
    cp_buf_t b;
    cp_buf_init(&b);
    cp_output_churn(&b, &c, cfg);
    assert_non_null(strstr(b.data, id));
    assert_string_equal(
        strstr(b.data, "\"type\""),
        "\"type\":\"com.custpulse.churn.warning\",\"subject\":\"c1\","
        "\"time\":\"2024-04-10T12:00:00.000Z\",\"datacontenttype\":"
        "\"application/json\",\"data\":{\"action\":\"escalate\",\"seq\":4,"
        "\"episode_started_at\":\"2024-03-01T10:00:00.000Z\",\"level\":"
        "\"high\",\"previous_level\":\"low\",\"score\":0.7,\"reasons\":[{"
        "\"code\":\"overdue\",\"weight\":0.5,\"figures\":{"
        "\"days_since_last_order\":70,\"gap_days\":30,\"gap_source\":\"own\","
        "\"threshold_days\":60}},{\"code\":\"service_risk\",\"weight\":0.4,"
        "\"figures\":{\"complaints\":1.2,\"complaints_threshold\":0.5,"
        "\"csat_last\":null,\"csat_age_days\":null}}],\"p_alive\":null,"
        "\"expected_purchases\":{\"30d\":null,\"90d\":null,\"365d\":null},"
        "\"days_since_last_order\":70,\"segment\":null,\"rfm_segment\":null,"
        "\"lifecycle\":\"active\",\"value_tier\":null,\"value_at_risk\":null,"
        "\"currency\":\"USD\",\"cause\":{\"event_id\":\"e-9\",\"topic\":"
        "\"customer.support\",\"partition\":0,\"offset\":3}}}");

    cp_buf_reset(&b);
    c.action = CP_CHURN_ACT_RECOVER;
    c.seq = 5;
    c.recovered_by_order = 1;
    ev.reasons = 0;
    ev.score = 0;
    cp_output_churn(&b, &c, cfg);
    assert_string_equal(
        strstr(b.data, "\"type\""),
        "\"type\":\"com.custpulse.churn.recovered\",\"subject\":\"c1\","
        "\"time\":\"2024-04-10T12:00:00.000Z\",\"datacontenttype\":"
        "\"application/json\",\"data\":{\"action\":\"recovered\",\"seq\":5,"
        "\"episode_started_at\":\"2024-03-01T10:00:00.000Z\",\"level\":"
        "\"high\",\"recovered_by\":\"order\",\"score\":0,\"cause\":{"
        "\"event_id\":\"e-9\",\"topic\":\"customer.support\",\"partition\":0,"
        "\"offset\":3}}}");
    cp_buf_free(&b);
    cp_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_ids),
        cmocka_unit_test(test_fixed_change),
        cmocka_unit_test(test_live_change_to_none),
        cmocka_unit_test(test_time_cause),
        cmocka_unit_test(test_churn_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
