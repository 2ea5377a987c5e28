/*
 * metrics_out.c - the counter keys and the daily metrics record; see
 * metrics_out.h and docs/metrics.md.
 */
#include "metrics_out.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lifecycle.h"
#include "output.h"
#include "rfm.h"

/* The last instant the output formats (9999-12-31T23:59:59.999Z). */
#define METRICS_MS_MAX INT64_C(253402300799999)

size_t cp_metrics_key_name(const char *prefix, cp_metrics_key_t key,
                           int64_t day, char *buf, size_t size)
{
    char date[16];
    const char *kind = key == CP_METRICS_DAY      ? "md:"
                       : key == CP_METRICS_COHORT ? "mc:"
                                                  : NULL;
    size_t len = strlen(prefix) + 3 + 10;
    if (size > 0)
        buf[0] = '\0';
    if (!kind || len + 1 > size ||
        cp_time_format_date(day, date, sizeof(date)) == 0)
        return 0;
    snprintf(buf, size, "%s%s%s", prefix, kind, date);
    return len;
}

/* A fraction with up to 6 decimals, trailing zeros dropped ("0.5", "1"),
 * or null when it is not a number. */
static void put_ratio(cp_buf_t *b, double v)
{
    char d[64];
    if (!isfinite(v)) {
        cp_buf_puts(b, "null");
        return;
    }
    size_t n = (size_t)snprintf(d, sizeof(d), "%.6f", v);
    n = n < sizeof(d) ? n : sizeof(d) - 1;
    while (n > 1 && d[n - 1] == '0')
        n--;
    n -= d[n - 1] == '.';
    cp_buf_append(b, d, n);
}

/* {"<code>":<count>,...} over codes[1..count) (entry 0 is NONE). */
static void put_counts(cp_buf_t *b, const char *(*code)(int), const int64_t *v,
                       int count)
{
    for (int i = 1; i < count; i++)
        cp_buf_printf(b, "%s\"%s\":%" PRId64, i == 1 ? "{" : ",", code(i),
                      v[i]);
    cp_buf_puts(b, "}");
}

static const char *stage_code(int s)
{
    return cp_lifecycle_code((cp_lifecycle_t)s);
}

static const char *segment_code(int g)
{
    return cp_rfm8_code((cp_rfm8_t)g);
}

static void put_cohort(cp_buf_t *b, const cp_metrics_retention_t *c)
{
    char date[16] = "";
    cp_time_format_date(c->cohort, date, sizeof(date));
    cp_buf_printf(b, "{\"cohort\":\"%s\",\"size\":%" PRId64 ",\"retention\":",
                  date, c->size);
    for (int h = 0; h < CP_METRICS_HORIZONS; h++) {
        cp_buf_printf(b, "%s\"d%d\":", h == 0 ? "{" : ",",
                      cp_metrics_horizon_days[h]);
        put_ratio(b, c->complete[h] ? c->rate[h] : NAN);
    }
    cp_buf_puts(b, "}}");
}

void cp_output_metrics_data(cp_buf_t *b, const cp_metrics_daily_t *r,
                            const cp_metrics_retention_t *cohorts,
                            size_t n_cohorts, const cp_config_t *cfg)
{
    char date[16] = "";
    cp_time_format_date(r->day, date, sizeof(date));
    cp_buf_printf(b, "{\"day\":\"%s\",\"timezone\":", date);
    cp_buf_json_str(b, cfg->timezone, strlen(cfg->timezone));
    cp_buf_printf(b,
                  ",\"active\":%" PRId64 ",\"new\":%" PRId64
                  ",\"churned\":%" PRId64 ",\"won_back\":%" PRId64
                  ",\"at_risk_entered\":%" PRId64 ",\"churn_rate\":",
                  r->active, r->new_customers, r->churned, r->won_back,
                  r->at_risk_entered);
    put_ratio(b, r->churn_rate);
    cp_buf_puts(b, ",\"lifecycle\":");
    put_counts(b, stage_code, r->stage, CP_LC__COUNT);
    cp_buf_puts(b, ",\"segments\":");
    put_counts(b, segment_code, r->segment, CP_RFM8__COUNT);
    cp_buf_puts(b, ",\"cohorts\":[");
    for (size_t i = 0; i < n_cohorts; i++) {
        if (i > 0)
            cp_buf_puts(b, ",");
        put_cohort(b, &cohorts[i]);
    }
    cp_buf_puts(b, "]}");
}

void cp_output_metrics(cp_buf_t *b, const cp_metrics_daily_t *r,
                       const cp_metrics_retention_t *cohorts, size_t n_cohorts,
                       const cp_tz_t *tz, const cp_config_t *cfg)
{
    char date[16] = "", id[37], ts[32];
    size_t len = cp_time_format_date(r->day, date, sizeof(date));
    cp_output_event_id(date, len, "metrics", r->day, id);
    int64_t end = cp_tz_day_start(tz, r->day + 1);
    cp_time_format_utc(end < METRICS_MS_MAX ? end : METRICS_MS_MAX, ts,
                       sizeof(ts));
    /* Only the source can need escaping: the id, the date and the time
     * are ASCII of a fixed form. */
    cp_buf_printf(b, "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":", id);
    cp_buf_json_str(b, cfg->output_source, strlen(cfg->output_source));
    cp_buf_printf(b,
                  ",\"type\":\"" CP_METRICS_EVENT_TYPE "\",\"subject\":\"%s\""
                  ",\"time\":\"%s\",\"datacontenttype\":\"application/json\""
                  ",\"data\":",
                  date, ts);
    cp_output_metrics_data(b, r, cohorts, n_cohorts, cfg);
    cp_buf_puts(b, "}");
}
