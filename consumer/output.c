/*
 * output.c - CloudEvents for segment changes; see output.h.
 */
#include "output.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_time.h"
#include "hash.h"
#include "money.h"

#define MODEL_RFM8 "rfm8"
/* customer id (<= 128) + model + seq + separators, with room to spare. */
#define CP_OUTPUT_ID_INPUT_MAX 512

void cp_output_event_id(const char *customer_id, size_t len, const char *model,
                        int64_t seq, char out[37])
{
    char buf[CP_OUTPUT_ID_INPUT_MAX];
    size_t mlen = strlen(model);
    int slen = snprintf(NULL, 0, "%" PRId64, seq);
    size_t n = len + 1 + mlen + 1 + (size_t)slen;
    if (n + 1 > sizeof(buf)) {
        /* The decoder caps ids at CP_ID_MAX (128) bytes; a truncated id
         * would hash to another customer's event id. */
        fputs("custpulse: customer id longer than the decoder allows\n",
              stderr);
        abort();
    }
    memcpy(buf, customer_id, len);
    buf[len] = '\0';
    memcpy(buf + len + 1, model, mlen);
    buf[len + 1 + mlen] = '\0';
    snprintf(buf + len + 2 + mlen, (size_t)slen + 1, "%" PRId64, seq);
    uint64_t h[2];
    cp_hash_murmur3_128(buf, n, 0, h);
    cp_uuid8_format(h, out);
}

static void put_segment(cp_buf_t *b, cp_rfm8_t seg)
{
    const char *code = cp_rfm8_code(seg);
    if (code)
        cp_buf_json_str(b, code, strlen(code));
    else
        cp_buf_puts(b, "null");
}

static void put_money(cp_buf_t *b, int64_t minor, int digits)
{
    char m[48];
    size_t n = cp_money_format(minor, digits, m, sizeof(m));
    cp_buf_json_str(b, m, n);
}

/* A double with up to 6 decimals, trailing zeros trimmed ("2.5", "3"). */
static void put_decimal6(cp_buf_t *b, double v)
{
    char d[64];
    int n = snprintf(d, sizeof(d), "%.6f", v);
    while (n > 1 && d[n - 1] == '0')
        n--;
    if (n > 0 && d[n - 1] == '.')
        n--;
    cp_buf_append(b, d, (size_t)n);
}

static void put_reference(cp_buf_t *b, const cp_seg_change_t *c,
                          const cp_config_t *cfg)
{
    if (c->ref_mode == CP_REF_FIXED) {
        cp_buf_printf(b,
                      "{\"mode\":\"fixed\",\"recency_days\":%" PRId64
                      ",\"frequency\":%" PRId64 ",\"monetary\":",
                      cfg->rfm_fixed_recency_days, cfg->rfm_fixed_frequency);
        put_money(b, cfg->rfm_fixed_monetary_minor, cfg->currency_digits);
    } else {
        cp_buf_puts(b, "{\"mode\":\"live\",\"recency_days\":");
        put_decimal6(b, c->ref.recency_days);
        cp_buf_puts(b, ",\"frequency\":");
        put_decimal6(b, c->ref.frequency);
        cp_buf_puts(b, ",\"monetary\":");
        /* Average in minor units, rounded half away from zero. */
        put_money(b, (int64_t)(c->ref.monetary + 0.5), cfg->currency_digits);
    }
    cp_buf_puts(b, "}");
}

/* The CloudEvent envelope of type `type` up to and including
 * `"data":{`; the id is (customer, model, seq)'s. */
static void put_head(cp_buf_t *b, const char *customer_id, size_t id_len,
                     const char *model, int64_t seq, int64_t time_ms,
                     const char *type, const cp_config_t *cfg)
{
    char id[37], ts[32];
    cp_output_event_id(customer_id, id_len, model, seq, id);
    cp_time_format_utc(time_ms, ts, sizeof(ts));
    cp_buf_puts(b, "{\"specversion\":\"1.0\",\"id\":\"");
    cp_buf_puts(b, id);
    cp_buf_puts(b, "\",\"source\":");
    cp_buf_json_str(b, cfg->output_source, strlen(cfg->output_source));
    cp_buf_printf(b, ",\"type\":\"%s\",\"subject\":", type);
    cp_buf_json_str(b, customer_id, id_len);
    cp_buf_printf(b,
                  ",\"time\":\"%s\",\"datacontenttype\":"
                  "\"application/json\",\"data\":{",
                  ts);
}

/* The segment-change envelope up to and including
 * `"data":{"model":<model>`. */
static void put_envelope(cp_buf_t *b, const char *customer_id, size_t id_len,
                         const char *model, int64_t seq, int64_t time_ms,
                         const cp_config_t *cfg)
{
    put_head(b, customer_id, id_len, model, seq, time_ms,
             "com.custpulse.segment.changed", cfg);
    cp_buf_puts(b, "\"model\":");
    cp_buf_json_str(b, model, strlen(model));
}

/* `,"cause":{...}}}`: the causing event, closing data and the event; a
 * time-caused change (event_id NULL) names the due instant it was
 * evaluated at. */
static void put_cause(cp_buf_t *b, const char *event_id, const char *topic,
                      int32_t partition, int64_t offset, int64_t time_ms)
{
    if (!event_id) {
        char ts[32];
        cp_time_format_utc(time_ms, ts, sizeof(ts));
        cp_buf_printf(
            b, ",\"cause\":{\"kind\":\"time\",\"evaluated_at\":\"%s\"}}}", ts);
        return;
    }
    cp_buf_puts(b, ",\"cause\":{\"event_id\":");
    cp_buf_json_str(b, event_id, strlen(event_id));
    cp_buf_puts(b, ",\"topic\":");
    cp_buf_json_str(b, topic, strlen(topic));
    cp_buf_printf(b, ",\"partition\":%d,\"offset\":%" PRId64 "}}}",
                  (int)partition, offset);
}

void cp_output_segment_change(cp_buf_t *b, const cp_seg_change_t *c,
                              const cp_config_t *cfg)
{
    put_envelope(b, c->customer_id, c->customer_id_len, MODEL_RFM8, c->seq,
                 c->time_ms, cfg);
    cp_buf_puts(b, ",\"from\":");
    put_segment(b, c->from);
    cp_buf_puts(b, ",\"to\":");
    put_segment(b, c->to);
    cp_buf_printf(b,
                  ",\"seq\":%" PRId64 ",\"recency_days\":%" PRId64
                  ",\"frequency\":%" PRId64 ",\"monetary\":",
                  c->seq, c->recency_days, c->frequency);
    put_money(b, c->monetary, cfg->currency_digits);
    cp_buf_puts(b, ",\"currency\":");
    cp_buf_json_str(b, cfg->currency, strlen(cfg->currency));
    cp_buf_puts(b, ",\"reference\":");
    put_reference(b, c, cfg);
    put_cause(b, c->event_id, c->topic, c->partition, c->offset, c->time_ms);
}

static const char *model_name(cp_model_t k)
{
    switch (k) {
    case CP_MODEL_RFM8:
        return MODEL_RFM8;
    case CP_MODEL_RFM:
        return "rfm";
    case CP_MODEL_LIFECYCLE:
        return "lifecycle";
    case CP_MODEL_ENGAGEMENT:
        return "engagement";
    case CP_MODEL_SATISFACTION:
        return "satisfaction";
    case CP_MODEL_VALUE:
        return "value";
    case CP_MODEL_CUSTOM:
        return "custom";
    }
    return "unknown";
}

static void put_code(cp_buf_t *b, const char *code)
{
    if (code)
        cp_buf_json_str(b, code, strlen(code));
    else
        cp_buf_puts(b, "null");
}

/* A number with up to 6 decimals, or null when not finite. */
static void put_num6(cp_buf_t *b, double v)
{
    if (isfinite(v))
        put_decimal6(b, v);
    else
        cp_buf_puts(b, "null");
}

static void put_scores(cp_buf_t *b, const cp_model_change_t *c,
                       const cp_config_t *cfg)
{
    const cp_state_t *st = c->st;
    const cp_models_t *mo = c->mo;
    const cp_support_t *k = &st->support;
    int ordered = st->orders > 0 && st->has_order_time;
    switch (c->kind) {
    case CP_MODEL_RFM:
        cp_buf_printf(b, "{\"r\":%d,\"f\":%d,\"m\":%d,\"snapshot\":", c->rq.r,
                      c->rq.f, c->rq.m);
        if (c->rq_snapshot > 0)
            cp_buf_printf(b, "%" PRId64 "}", c->rq_snapshot);
        else
            cp_buf_puts(b, "null}");
        break;
    case CP_MODEL_LIFECYCLE:
        cp_buf_printf(b, "{\"orders\":%" PRId64 ",\"days_since_last_order\":",
                      st->orders);
        if (ordered)
            cp_buf_printf(b, "%" PRId64 ",\"days_since_first_order\":%" PRId64,
                          c->today - st->last_day, c->today - st->first_day);
        else
            cp_buf_puts(b, "null,\"days_since_first_order\":null");
        cp_buf_puts(b, "}");
        break;
    case CP_MODEL_ENGAGEMENT:
        cp_buf_puts(b, "{\"score\":");
        put_num6(b, mo->engagement);
        cp_buf_puts(b, "}");
        break;
    case CP_MODEL_SATISFACTION:
        cp_buf_printf(b, "{\"open_tickets\":%" PRId64 ",\"complaints\":",
                      k->open_tickets);
        put_num6(b, mo->complaints);
        cp_buf_puts(b, ",\"csat_last\":");
        if (k->csat_last)
            cp_buf_printf(b, "%d", k->csat_last);
        else
            cp_buf_puts(b, "null");
        cp_buf_puts(b, ",\"csat_avg\":");
        put_num6(b, k->csat_n ? cp_support_csat_avg(k) : NAN);
        cp_buf_puts(b, ",\"nps_class\":");
        put_code(b, cp_nps_code(cp_nps_class(k->nps_last)));
        cp_buf_puts(b, "}");
        break;
    case CP_MODEL_VALUE:
        cp_buf_puts(b, "{\"score\":");
        put_num6(b, mo->value.score);
        cp_buf_puts(b, ",\"historical\":");
        put_num6(b, mo->value.historical);
        cp_buf_puts(b, ",\"predicted\":");
        put_num6(b, mo->value.predicted);
        cp_buf_puts(b, ",\"strategic\":");
        put_num6(b, mo->value.strategic);
        cp_buf_puts(b, ",\"p_alive\":");
        put_num6(b, mo->p_alive);
        cp_buf_puts(b, ",\"clv\":");
        if (isfinite(mo->clv))
            put_money(b,
                      (int64_t)llround(mo->clv * pow(10, cfg->currency_digits)),
                      cfg->currency_digits);
        else
            cp_buf_puts(b, "null");
        cp_buf_puts(b, "}");
        break;
    default:
        cp_buf_puts(b, "{}");
        break;
    }
}

void cp_output_model_change(cp_buf_t *b, const cp_model_change_t *c,
                            const cp_config_t *cfg)
{
    char model[80];
    if (c->kind == CP_MODEL_CUSTOM)
        snprintf(model, sizeof(model), "custom:%s", c->custom_name);
    else
        snprintf(model, sizeof(model), "%s", model_name(c->kind));
    put_envelope(b, c->customer_id, c->customer_id_len, model, c->seq,
                 c->time_ms, cfg);
    cp_buf_puts(b, ",\"from\":");
    put_code(b, c->from);
    cp_buf_puts(b, ",\"to\":");
    put_code(b, c->to);
    cp_buf_printf(b, ",\"seq\":%" PRId64 ",\"scores\":", c->seq);
    put_scores(b, c, cfg);
    put_cause(b, c->event_id, c->topic, c->partition, c->offset, c->time_ms);
}

/* ---- churn warnings -------------------------------------------------------
 */

static void put_time_str(cp_buf_t *b, int64_t ms)
{
    char ts[32];
    cp_time_format_utc(ms, ts, sizeof(ts));
    cp_buf_printf(b, "\"%s\"", ts);
}

/* A rate in minor units per day as currency units per day. */
static void put_rate(cp_buf_t *b, double minor_per_day, int digits)
{
    put_num6(b, minor_per_day / pow(10, digits));
}

static void put_reason_figures(cp_buf_t *b, cp_churn_reason_t r,
                               const cp_churn_out_t *c, int digits)
{
    const cp_churn_eval_t *ev = c->ev;
    const cp_churn_params_t *cp = c->cp;
    switch (r) {
    case CP_CHURN_OVERDUE:
        cp_buf_printf(b, "{\"days_since_last_order\":%" PRId64 ",\"gap_days\":",
                      ev->days_since_last);
        put_num6(b, ev->gap_days);
        cp_buf_printf(b, ",\"gap_source\":\"%s\",\"threshold_days\":",
                      ev->gap_own ? "own" : "population");
        put_num6(b, ev->overdue_days);
        break;
    case CP_CHURN_P_ALIVE_LOW:
        cp_buf_puts(b, "{\"p_alive\":");
        put_num6(b, ev->p_alive);
        cp_buf_puts(b, ",\"threshold\":");
        put_num6(b, cp->p_alive_low);
        break;
    case CP_CHURN_ENGAGEMENT_DROP:
        cp_buf_puts(b, "{\"engagement\":");
        put_num6(b, ev->engagement);
        cp_buf_puts(b, ",\"peak\":");
        put_num6(b, ev->eng_peak);
        cp_buf_puts(b, ",\"ratio\":");
        put_num6(b, ev->eng_ratio);
        cp_buf_puts(b, ",\"threshold\":");
        put_num6(b, cp->eng_fraction);
        break;
    case CP_CHURN_SERVICE_RISK:
        cp_buf_puts(b, "{\"complaints\":");
        put_num6(b, ev->complaints);
        cp_buf_puts(b, ",\"complaints_threshold\":");
        put_num6(b, cp->service_complaints);
        cp_buf_puts(b, ",\"csat_last\":");
        if (ev->csat_last)
            cp_buf_printf(b, "%d", ev->csat_last);
        else
            cp_buf_puts(b, "null");
        cp_buf_puts(b, ",\"csat_age_days\":");
        put_num6(b, ev->csat_age_days);
        break;
    default: /* CP_CHURN_VALUE_DROP */
        cp_buf_puts(b, "{\"spend_rate_short\":");
        put_rate(b, ev->spend_rate_short, digits);
        cp_buf_puts(b, ",\"spend_rate_long\":");
        put_rate(b, ev->spend_rate_long, digits);
        cp_buf_puts(b, ",\"ratio\":");
        put_num6(b, ev->spend_ratio);
        cp_buf_puts(b, ",\"threshold\":");
        put_num6(b, cp->value_fraction);
        break;
    }
    cp_buf_puts(b, "}");
}

static void put_reasons(cp_buf_t *b, const cp_churn_out_t *c, int digits)
{
    int first = 1;
    cp_buf_puts(b, ",\"reasons\":[");
    for (int r = 0; r < CP_CHURN_REASON__COUNT; r++) {
        if (!(c->ev->reasons >> r & 1))
            continue;
        cp_buf_printf(b, "%s{\"code\":\"%s\",\"weight\":", first ? "" : ",",
                      cp_churn_reason_code((cp_churn_reason_t)r));
        put_num6(b, c->cp->weight[r]);
        cp_buf_puts(b, ",\"figures\":");
        put_reason_figures(b, (cp_churn_reason_t)r, c, digits);
        cp_buf_puts(b, "}");
        first = 0;
    }
    cp_buf_puts(b, "]");
}

/* The customer's figures and levels behind a warning. */
static void put_warning_context(cp_buf_t *b, const cp_churn_out_t *c,
                                const cp_config_t *cfg)
{
    const cp_models_t *mo = c->mo;
    const cp_state_t *st = c->st;
    cp_buf_puts(b, ",\"p_alive\":");
    put_num6(b, c->ev->p_alive);
    cp_buf_puts(b, ",\"expected_purchases\":{\"30d\":");
    put_num6(b, mo->has_btyd ? mo->expected[0] : NAN);
    cp_buf_puts(b, ",\"90d\":");
    put_num6(b, mo->has_btyd ? mo->expected[1] : NAN);
    cp_buf_puts(b, ",\"365d\":");
    put_num6(b, mo->has_btyd ? mo->expected[2] : NAN);
    cp_buf_puts(b, "},\"days_since_last_order\":");
    if (c->ev->days_since_last >= 0)
        cp_buf_printf(b, "%" PRId64, c->ev->days_since_last);
    else
        cp_buf_puts(b, "null");
    cp_buf_puts(b, ",\"segment\":");
    put_segment(b, st->segment);
    cp_buf_puts(b, ",\"rfm_segment\":");
    put_code(b, cp_rfmseg_code(st->rfmq));
    cp_buf_puts(b, ",\"lifecycle\":");
    put_code(b, cp_lifecycle_code(st->stage));
    cp_buf_puts(b, ",\"value_tier\":");
    put_code(b, cp_tier_code(st->tier));
    cp_buf_puts(b, ",\"value_at_risk\":");
    if (isfinite(mo->clv))
        put_money(b, (int64_t)llround(mo->clv * pow(10, cfg->currency_digits)),
                  cfg->currency_digits);
    else
        cp_buf_puts(b, "null");
    cp_buf_puts(b, ",\"currency\":");
    cp_buf_json_str(b, cfg->currency, strlen(cfg->currency));
}

void cp_output_churn(cp_buf_t *b, const cp_churn_out_t *c,
                     const cp_config_t *cfg)
{
    const int rec = c->action == CP_CHURN_ACT_RECOVER;
    put_head(b, c->customer_id, c->customer_id_len, "churn", c->seq, c->time_ms,
             rec ? "com.custpulse.churn.recovered"
                 : "com.custpulse.churn.warning",
             cfg);
    cp_buf_printf(
        b, "\"action\":\"%s\",\"seq\":%" PRId64 ",\"episode_started_at\":",
        rec                                  ? "recovered"
        : c->action == CP_CHURN_ACT_ESCALATE ? "escalate"
                                             : "warn",
        c->seq);
    put_time_str(b, c->episode_ms);
    cp_buf_printf(b, ",\"level\":\"%s\"", cp_churn_level_code(c->level));
    if (rec) {
        cp_buf_printf(b, ",\"recovered_by\":\"%s\",\"score\":",
                      c->recovered_by_order ? "order" : "signals");
        put_num6(b, c->ev->score);
    } else {
        cp_buf_puts(b, ",\"previous_level\":");
        put_code(b, c->action == CP_CHURN_ACT_ESCALATE
                        ? cp_churn_level_code(c->previous_level)
                        : NULL);
        cp_buf_puts(b, ",\"score\":");
        put_num6(b, c->ev->score);
        put_reasons(b, c, cfg->currency_digits);
        put_warning_context(b, c, cfg);
    }
    put_cause(b, c->event_id, c->topic, c->partition, c->offset, c->time_ms);
}
