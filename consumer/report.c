/*
 * report.c - `custpulse report` (report.h): reads the population metrics'
 * counters from Redis, computes each day's figures with scoring/metrics.h
 * and prints them (docs/metrics.md, "custpulse report").
 *
 * This is an edge, so the input is validated here. One bad value must not
 * hide a year of good ones: a member of <prefix>mdays that is not a day
 * number, a counter hash of another type, a field the writer never writes
 * and a value that is not a canonical integer are each reported on stderr
 * (shown escaped and cut short) and skipped.
 */
#include "report.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cp_time.h"
#include "metrics.h"
#include "metrics_out.h"
#include "num.h"
#include "rfm.h"

#define DAY_MAX INT64_C(2932896) /* 9999-12-31 */
#define SHOWN_MAX 64             /* bytes of a hostile value shown */

int cp_report_arg(cp_report_args_t *args, const char *arg, const char *next)
{
    if (!strcmp(arg, "--json")) {
        args->json = 1;
        return 1;
    }
    int from = !strcmp(arg, "--from");
    if (!from && strcmp(arg, "--to"))
        return 0;
    int64_t day;
    if (!next) {
        fprintf(stderr, "custpulse: report: %s needs a value\n", arg);
        return -1;
    }
    if (cp_time_parse_date(next, strlen(next), &day) != CP_OK) {
        fprintf(stderr,
                "custpulse: report: %s: expected a date YYYY-MM-DD "
                "(1970..9999), got '%s'\n",
                arg, next);
        return -1;
    }
    if (from) {
        args->has_from = 1;
        args->from = day;
    } else {
        args->has_to = 1;
        args->to = day;
    }
    return 2;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct report_s {
    const cp_config_t *cfg;
    const cp_report_args_t *args;
    redisContext *c;
    int64_t from, to;             /* the days printed */
    int64_t *list;                /* the days of mdays up to `to`, ascending */
    size_t n;                     /* days in list */
    cp_metrics_day_t *days;       /* their counters */
    cp_metrics_cohort_t *cohorts; /* the cohorts read, ascending */
    size_t n_cohorts;
    char *key; /* a key name: the prefix + "md:YYYY-MM-DD" */
    size_t key_size;
    size_t skipped; /* values reported and skipped */
    size_t printed; /* days printed */
    /* cp_report_records: the daily CloudEvents are collected here instead
     * of printed, and skipped values are only counted. */
    const cp_tz_t *tz;
    cp_metrics_rec_t *recs;
    size_t n_recs;
    int quiet;
} report_t;

/* "custpulse: report: <where>: <what> '<s, escaped>'; skipped". */
static void skip(report_t *rep, const char *where, const char *what,
                 const char *s, size_t len)
{
    if (rep->quiet) {
        rep->skipped++;
        return;
    }
    fprintf(stderr, "custpulse: report: %s: %s '", where, what);
    for (size_t i = 0; i < len && i < SHOWN_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'')
            fputc(ch, stderr);
        else
            fprintf(stderr, "\\x%02x", ch);
    }
    fprintf(stderr, "%s'; skipped\n", len > SHOWN_MAX ? "..." : "");
    rep->skipped++;
}

static int redis_failed(const report_t *rep, const redisReply *r)
{
    if (rep->quiet)
        return 1;
    fprintf(stderr, "custpulse: redis: %s\n",
            r && r->type == REDIS_REPLY_ERROR ? r->str : rep->c->errstr);
    return 1;
}

static int by_day(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The members of mdays that are day numbers up to rep->to, ascending and
 * distinct, into rep->list. Returns 0 or the exit code. */
static int read_days(report_t *rep)
{
    const char *key = rep->key;
    snprintf(rep->key, rep->key_size, "%s" CP_METRICS_DAYS_KEY,
             rep->cfg->redis_prefix);
    redisReply *r = redisCommand(rep->c, "ZRANGE %s 0 -1", key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        int rc = redis_failed(rep, r);
        freeReplyObject(r);
        return rc;
    }
    rep->list = malloc((r->elements ? r->elements : 1) * sizeof(int64_t));
    if (!rep->list) {
        freeReplyObject(r);
        fputs("custpulse: report: out of memory\n", stderr);
        return 1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        int64_t day;
        if (e->type != REDIS_REPLY_STRING ||
            cp_num_parse_i64(e->str, e->len, &day) != CP_OK || day < 0 ||
            day > DAY_MAX)
            skip(rep, key, "member is not a day number (0..2932896)",
                 e->type == REDIS_REPLY_STRING ? e->str : "",
                 e->type == REDIS_REPLY_STRING ? e->len : 0);
        else if (day <= rep->to)
            rep->list[rep->n++] = day;
    }
    freeReplyObject(r);
    qsort(rep->list, rep->n, sizeof(int64_t), by_day);
    size_t out = 0; /* "-0" and "0" are one day */
    for (size_t i = 0; i < rep->n; i++)
        if (out == 0 || rep->list[i] != rep->list[out - 1])
            rep->list[out++] = rep->list[i];
    rep->n = out;
    return 0;
}

/* Sets the counters of one hash reply into dst (a cp_metrics_day_t or a
 * cp_metrics_cohort_t by kind). Returns the fields set. */
static size_t parse_hash(report_t *rep, const redisReply *r,
                         cp_metrics_key_t kind, const char *key, void *dst)
{
    size_t set = 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        skip(rep, key,
             "not a hash:", r->type == REDIS_REPLY_ERROR ? r->str : "",
             r->type == REDIS_REPLY_ERROR ? r->len : 0);
        return 0;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        int field;
        int64_t val;
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue; /* HGETALL answers strings only */
        if (cp_metrics_field_parse(kind, f->str, f->len, &field) != 0) {
            skip(rep, key, "unknown field", f->str, f->len);
            continue;
        }
        if (cp_num_parse_i64(v->str, v->len, &val) != CP_OK) {
            skip(rep, key, "value is not an integer:", v->str, v->len);
            continue;
        }
        if (kind == CP_METRICS_DAY)
            cp_metrics_day_set(dst, field, val);
        else
            cp_metrics_cohort_set(dst, field, val);
        set++;
    }
    return set;
}

/* Whether the cohort of day d is needed: its window meets [from, to]. */
static int cohort_needed(const report_t *rep, int64_t d)
{
    return d >= rep->from - (CP_METRICS_WINDOW - 1) && d <= rep->to;
}

/* Reads md:<d> of every listed day and mc:<d> of the cohorts needed, in
 * one pipeline. A cohort counts when its hash has a readable field. */
static int read_hashes(report_t *rep)
{
    char *key = rep->key;
    const cp_config_t *cfg = rep->cfg;
    rep->days = malloc((rep->n ? rep->n : 1) * sizeof(*rep->days));
    rep->cohorts = malloc((rep->n ? rep->n : 1) * sizeof(*rep->cohorts));
    if (!rep->days || !rep->cohorts) {
        fputs("custpulse: report: out of memory\n", stderr);
        return 1;
    }
    for (size_t i = 0; i < rep->n; i++) {
        for (int k = CP_METRICS_DAY; k <= CP_METRICS_COHORT; k++)
            if (k == CP_METRICS_DAY || cohort_needed(rep, rep->list[i])) {
                cp_metrics_key_name(cfg->redis_prefix, (cp_metrics_key_t)k,
                                    rep->list[i], key, rep->key_size);
                redisAppendCommand(rep->c, "HGETALL %s", key);
            }
    }
    for (size_t i = 0; i < rep->n; i++) {
        int64_t d = rep->list[i];
        cp_metrics_day_init(&rep->days[i], d);
        cp_metrics_cohort_t *c = &rep->cohorts[rep->n_cohorts];
        cp_metrics_cohort_init(c, d);
        for (int k = CP_METRICS_DAY; k <= CP_METRICS_COHORT; k++) {
            if (k == CP_METRICS_COHORT && !cohort_needed(rep, d))
                continue;
            void *dst = k == CP_METRICS_DAY ? (void *)&rep->days[i] : c;
            redisReply *r = NULL;
            if (redisGetReply(rep->c, (void **)&r) != REDIS_OK || !r)
                return redis_failed(rep, NULL);
            cp_metrics_key_name(cfg->redis_prefix, (cp_metrics_key_t)k, d, key,
                                rep->key_size);
            if (parse_hash(rep, r, (cp_metrics_key_t)k, key, dst) > 0 &&
                k == CP_METRICS_COHORT)
                rep->n_cohorts++;
            freeReplyObject(r);
        }
    }
    return 0;
}

/* ---- printing ----------------------------------------------------------- */

/* A fraction as a percentage with one decimal, or "-" when it has none. */
static void print_pct(double v, int width)
{
    if (isfinite(v))
        printf(" %*.1f%%", width - 1, 100.0 * v);
    else
        printf(" %*s", width, "-");
}

static void print_text(const cp_metrics_daily_t *r,
                       const cp_metrics_retention_t *w, size_t n,
                       const cp_config_t *cfg)
{
    char date[16] = "";
    cp_time_format_date(r->day, date, sizeof(date));
    printf("%s (%s)\n  active %" PRId64 "   new %" PRId64 "   churned %" PRId64
           "   won_back %" PRId64 "   at_risk_entered %" PRId64 "   churn_rate",
           date, cfg->timezone, r->active, r->new_customers, r->churned,
           r->won_back, r->at_risk_entered);
    print_pct(r->churn_rate, 1);
    printf(" (of %" PRId64 ")\n  lifecycle", r->churn_base);
    for (int s = CP_LC_NONE + 1; s < CP_LC__COUNT; s++)
        printf("  %s %" PRId64, cp_lifecycle_code((cp_lifecycle_t)s),
               r->stage[s]);
    printf("\n  segments ");
    for (int g = CP_RFM8_NONE + 1; g < CP_RFM8__COUNT; g++)
        printf("  %s %" PRId64, cp_rfm8_code((cp_rfm8_t)g), r->segment[g]);
    printf("\n");
    if (n == 0)
        return;
    printf("  cohort         size      d2      d7     d14     d30\n");
    for (size_t i = 0; i < n; i++) {
        cp_time_format_date(w[i].cohort, date, sizeof(date));
        printf("  %s %8" PRId64, date, w[i].size);
        for (int h = 0; h < CP_METRICS_HORIZONS; h++)
            print_pct(w[i].complete[h] ? w[i].rate[h] : NAN, 7);
        printf("\n");
    }
}

static int print_days(report_t *rep)
{
    cp_metrics_daily_t *out = malloc((rep->n ? rep->n : 1) * sizeof(*out));
    if (!out) {
        fputs("custpulse: report: out of memory\n", stderr);
        return 1;
    }
    cp_metrics_daily(rep->days, rep->n, out); /* the list is ascending */
    cp_buf_t b;
    cp_buf_init(&b);
    for (size_t i = 0; i < rep->n; i++) {
        if (out[i].day < rep->from)
            continue;
        cp_metrics_retention_t w[CP_METRICS_WINDOW];
        size_t n =
            cp_metrics_window(rep->cohorts, rep->n_cohorts, out[i].day, w);
        if (rep->recs) {
            cp_buf_reset(&b);
            cp_output_metrics(&b, &out[i], w, n, rep->tz, rep->cfg);
            cp_metrics_rec_t *rec = &rep->recs[rep->n_recs];
            rec->json = cp_buf_failed(&b) ? NULL : malloc(b.len + 1);
            if (!rec->json)
                break;
            memcpy(rec->json, b.data, b.len);
            rec->json[b.len] = '\0';
            rec->len = b.len;
            rec->day = out[i].day;
            rep->n_recs++;
            continue;
        }
        if (!rep->args->json) {
            print_text(&out[i], w, n, rep->cfg);
            rep->printed++;
            continue;
        }
        cp_buf_reset(&b);
        cp_output_metrics_data(&b, &out[i], w, n, rep->cfg);
        cp_buf_puts(&b, "\n");
        if (cp_buf_failed(&b))
            break;
        fwrite(b.data, 1, b.len, stdout);
        rep->printed++;
    }
    int failed = cp_buf_failed(&b);
    cp_buf_free(&b);
    free(out);
    if (failed && !rep->quiet)
        fputs("custpulse: report: out of memory\n", stderr);
    return failed;
}

int cp_report_records(redisContext *c, const cp_config_t *cfg,
                      const cp_tz_t *tz, int64_t from, int64_t to,
                      cp_metrics_rec_t **recs, size_t *n, size_t *skipped)
{
    static const cp_report_args_t args = {0};
    report_t rep = {.cfg = cfg,
                    .args = &args,
                    .c = c,
                    .from = from,
                    .to = to,
                    .tz = tz,
                    .quiet = 1};
    *recs = NULL;
    *n = 0;
    rep.key_size = strlen(cfg->redis_prefix) + 32;
    rep.key = malloc(rep.key_size);
    int rc = rep.key ? read_days(&rep) : 1;
    if (rc == 0)
        rc = read_hashes(&rep);
    if (rc == 0) {
        rep.recs = calloc(rep.n ? rep.n : 1, sizeof(*rep.recs));
        rc = rep.recs ? print_days(&rep) : 1;
    }
    if (rc == 0) {
        *recs = rep.recs;
        *n = rep.n_recs;
    } else {
        cp_report_records_free(rep.recs, rep.n_recs);
    }
    *skipped = rep.skipped;
    free(rep.list);
    free(rep.days);
    free(rep.cohorts);
    free(rep.key);
    return rc;
}

void cp_report_records_free(cp_metrics_rec_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(recs[i].json);
    free(recs);
}

int cp_report_run(const cp_config_t *cfg, const cp_report_args_t *args,
                  cp_fit_connect_fn *connect)
{
    report_t rep = {.cfg = cfg,
                    .args = args,
                    .from = args->has_from ? args->from : 0,
                    .to = args->has_to ? args->to : DAY_MAX};
    if (rep.from > rep.to) {
        fputs("custpulse: report: --from is after --to\n", stderr);
        return 2;
    }
    rep.key_size = strlen(cfg->redis_prefix) + 32;
    rep.key = malloc(rep.key_size);
    rep.c = rep.key ? connect(cfg) : NULL;
    int rc = rep.c ? read_days(&rep) : 1;
    if (rc == 0)
        rc = read_hashes(&rep);
    if (rc == 0)
        rc = print_days(&rep);
    if (rc == 0 && fflush(stdout) != 0) {
        fputs("custpulse: report: cannot write the report\n", stderr);
        rc = 1;
    }
    if (rc == 0 && rep.skipped > 0)
        fprintf(stderr, "custpulse: report: %zu values skipped\n", rep.skipped);
    if (rc == 0 && rep.printed == 0)
        fprintf(
            stderr,
            "custpulse: report: no day with metrics in %s" CP_METRICS_DAYS_KEY
            " within the dates asked\n",
            cfg->redis_prefix);
    free(rep.list);
    free(rep.days);
    free(rep.cohorts);
    free(rep.key);
    redisFree(rep.c);
    return rc;
}
