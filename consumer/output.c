/*
 * output.c - CloudEvents for segment changes; see output.h.
 */
#include "output.h"

#include <inttypes.h>
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

void cp_output_segment_change(cp_buf_t *b, const cp_seg_change_t *c,
                              const cp_config_t *cfg)
{
    char id[37], ts[32];
    cp_output_event_id(c->customer_id, c->customer_id_len, MODEL_RFM8, c->seq,
                       id);
    cp_time_format_utc(c->time_ms, ts, sizeof(ts));

    cp_buf_puts(b, "{\"specversion\":\"1.0\",\"id\":\"");
    cp_buf_puts(b, id);
    cp_buf_puts(b, "\",\"source\":");
    cp_buf_json_str(b, cfg->output_source, strlen(cfg->output_source));
    cp_buf_puts(b, ",\"type\":\"com.custpulse.segment.changed\",\"subject\":");
    cp_buf_json_str(b, c->customer_id, c->customer_id_len);
    cp_buf_printf(b,
                  ",\"time\":\"%s\",\"datacontenttype\":"
                  "\"application/json\",\"data\":{\"model\":\"" MODEL_RFM8
                  "\",\"from\":",
                  ts);
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
    cp_buf_puts(b, ",\"cause\":{\"event_id\":");
    cp_buf_json_str(b, c->event_id, strlen(c->event_id));
    cp_buf_puts(b, ",\"topic\":");
    cp_buf_json_str(b, c->topic, strlen(c->topic));
    cp_buf_printf(b, ",\"partition\":%d,\"offset\":%" PRId64 "}}}",
                  (int)c->partition, c->offset);
}
