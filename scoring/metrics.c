/*
 * metrics.c - population metrics: the increments of one customer's write,
 * their field names, and the daily report; see metrics.h and
 * docs/metrics.md.
 */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rfm.h"

const int cp_metrics_horizon_days[CP_METRICS_HORIZONS] = {2, 7, 14, 30};

/* ---------------------------------------------------------------------------
 * The accumulator
 * ------------------------------------------------------------------------ */

void cp_metrics_acc_init(cp_metrics_acc_t *acc)
{
    acc->n = 0;
}

int cp_metrics_room(const cp_metrics_acc_t *acc)
{
    return CP_METRICS_MAX - acc->n;
}

static int inc_find(const cp_metrics_acc_t *acc, const cp_metrics_inc_t *x)
{
    for (int i = 0; i < acc->n; i++) {
        const cp_metrics_inc_t *e = &acc->inc[i];
        if (e->key == x->key && e->field == x->field && e->day == x->day)
            return i;
    }
    return -1;
}

/* Adds the k increments of one change (distinct (key, day, field), so none
 * merges with another of the same call) all or nothing: first counts the
 * entries they need, then merges, then drops the entries that became 0,
 * keeping the order of the others. */
static int acc_add(cp_metrics_acc_t *acc, const cp_metrics_inc_t *x, int k)
{
    int need = 0;
    for (int j = 0; j < k; j++)
        need += inc_find(acc, &x[j]) < 0;
    if (need > cp_metrics_room(acc))
        return CP_METRICS_EFULL;
    int zeroed = 0;
    for (int j = 0; j < k; j++) {
        int i = inc_find(acc, &x[j]);
        if (i < 0) {
            acc->inc[acc->n++] = x[j];
            continue;
        }
        acc->inc[i].delta += x[j].delta;
        zeroed |= acc->inc[i].delta == 0;
    }
    if (!zeroed)
        return 0;
    int out = 0;
    for (int i = 0; i < acc->n; i++)
        if (acc->inc[i].delta != 0)
            acc->inc[out++] = acc->inc[i];
    acc->n = out;
    return 0;
}

/* |a - b|, exact for any two days (hostile ones included). */
static uint64_t day_distance(int64_t a, int64_t b)
{
    return a < b ? (uint64_t)b - (uint64_t)a : (uint64_t)a - (uint64_t)b;
}

static cp_metrics_inc_t inc(cp_metrics_key_t key, int64_t day, int field,
                            int64_t delta)
{
    cp_metrics_inc_t x = {
        .day = day, .key = (uint8_t)key, .field = (short)field, .delta = delta};
    return x;
}

/* Stages whose entries are reported as flows (in:<stage>). */
static int stage_is_flow(int s)
{
    return s == CP_LC_NEW || s == CP_LC_AT_RISK || s == CP_LC_CHURNED ||
           s == CP_LC_WON_BACK;
}

static int stage_valid(int s)
{
    return s > CP_LC_NONE && s < CP_LC__COUNT;
}

static int segment_valid(int g)
{
    return g > CP_RFM8_NONE && g < CP_RFM8__COUNT;
}

/* A customer moving from one counter of a day hash to another: from -1,
 * to +1, entry (a flow) +1; a field < 0 is left out. */
static int acc_move(cp_metrics_acc_t *acc, int64_t day, int from, int to,
                    int entry)
{
    const int fields[3] = {from, to, entry};
    const int64_t deltas[3] = {-1, 1, 1};
    cp_metrics_inc_t x[3];
    int k = 0;
    for (int i = 0; i < 3; i++)
        if (fields[i] >= 0)
            x[k++] = inc(CP_METRICS_DAY, day, fields[i], deltas[i]);
    return acc_add(acc, x, k);
}

int cp_metrics_on_stage(cp_metrics_acc_t *acc, cp_lifecycle_t from,
                        cp_lifecycle_t to, int64_t day)
{
    if (from == to)
        return 0;
    return acc_move(acc, day, stage_valid(from) ? CP_MF_LC + (int)from : -1,
                    stage_valid(to) ? CP_MF_LC + (int)to : -1,
                    stage_is_flow(to) ? CP_MF_IN + (int)to : -1);
}

int cp_metrics_on_segment(cp_metrics_acc_t *acc, cp_rfm8_t from, cp_rfm8_t to,
                          int64_t day)
{
    if (from == to)
        return 0;
    return acc_move(acc, day, segment_valid(from) ? CP_MF_SEG + (int)from : -1,
                    segment_valid(to) ? CP_MF_SEG + (int)to : -1, -1);
}

int cp_metrics_on_baseline(cp_metrics_acc_t *acc, cp_lifecycle_t stage,
                           cp_rfm8_t segment, int64_t day)
{
    cp_metrics_inc_t x[2];
    int k = 0;
    if (stage_valid((int)stage))
        x[k++] = inc(CP_METRICS_DAY, day, CP_MF_LC + (int)stage, 1);
    if (segment_valid((int)segment))
        x[k++] = inc(CP_METRICS_DAY, day, CP_MF_SEG + (int)segment, 1);
    return k ? acc_add(acc, x, k) : 0;
}

int cp_metrics_on_active(cp_metrics_acc_t *acc, int64_t day)
{
    cp_metrics_inc_t x = inc(CP_METRICS_DAY, day, CP_MF_ACT, 1);
    return acc_add(acc, &x, 1);
}

int cp_metrics_on_first_order(cp_metrics_acc_t *acc, int64_t first_day)
{
    cp_metrics_inc_t x = inc(CP_METRICS_COHORT, first_day, CP_MF_N, 1);
    return acc_add(acc, &x, 1);
}

int cp_metrics_on_first_repeat(cp_metrics_acc_t *acc, int64_t first_day,
                               int64_t repeat_day)
{
    cp_metrics_inc_t x[CP_METRICS_HORIZONS];
    int k = 0;
    for (int h = 0; h < CP_METRICS_HORIZONS; h++)
        if (day_distance(first_day, repeat_day) <=
            (uint64_t)cp_metrics_horizon_days[h] - 1)
            x[k++] = inc(CP_METRICS_COHORT, first_day, CP_MF_R + h, 1);
    return acc_add(acc, x, k);
}

/* ---------------------------------------------------------------------------
 * Field names
 * ------------------------------------------------------------------------ */

/* The prefix and the code of a day field; NULL when it has no name. */
static const char *day_field_parts(int field, const char **code)
{
    if (field == CP_MF_ACT) {
        *code = "";
        return "act";
    }
    if (field >= CP_MF_LC && field < CP_MF_IN) {
        *code = cp_lifecycle_code((cp_lifecycle_t)(field - CP_MF_LC));
        return *code ? "lc:" : NULL;
    }
    if (field >= CP_MF_IN && field < CP_MF_SEG) {
        int s = field - CP_MF_IN;
        *code = cp_lifecycle_code((cp_lifecycle_t)s);
        return stage_is_flow(s) ? "in:" : NULL;
    }
    if (field >= CP_MF_SEG && field < CP_MF_DAY__END) {
        *code = cp_rfm8_code((cp_rfm8_t)(field - CP_MF_SEG));
        return *code ? "seg:" : NULL;
    }
    return NULL;
}

size_t cp_metrics_field_name(cp_metrics_key_t key, int field, char *buf,
                             size_t size)
{
    const char *pre = NULL, *code = "";
    char r[8];
    if (key == CP_METRICS_DAY) {
        pre = day_field_parts(field, &code);
    } else if (key == CP_METRICS_COHORT && field == CP_MF_N) {
        pre = "n";
    } else if (key == CP_METRICS_COHORT && field >= CP_MF_R &&
               field < CP_MF_COHORT__END) {
        snprintf(r, sizeof(r), "r%d", cp_metrics_horizon_days[field - CP_MF_R]);
        pre = r;
    }
    size_t len = pre ? strlen(pre) + strlen(code) : 0;
    if (size > 0)
        buf[0] = '\0';
    if (!pre || len + 1 > size)
        return 0;
    snprintf(buf, size, "%s%s", pre, code);
    return len;
}

int cp_metrics_field_parse(cp_metrics_key_t key, const char *name, size_t len,
                           int *field)
{
    int end = key == CP_METRICS_DAY      ? CP_MF_DAY__END
              : key == CP_METRICS_COHORT ? CP_MF_COHORT__END
                                         : 0;
    char buf[32];
    /* A few dozen names: comparing with each is simpler than a second
     * table and cannot drift from cp_metrics_field_name. */
    for (int f = 0; f < end; f++) {
        size_t n = cp_metrics_field_name(key, f, buf, sizeof(buf));
        if (n > 0 && n == len && memcmp(buf, name, len) == 0) {
            *field = f;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------------------
 * The report
 * ------------------------------------------------------------------------ */

void cp_metrics_day_init(cp_metrics_day_t *d, int64_t day)
{
    memset(d, 0, sizeof(*d));
    d->day = day;
}

void cp_metrics_cohort_init(cp_metrics_cohort_t *c, int64_t day)
{
    memset(c, 0, sizeof(*c));
    c->day = day;
}

int cp_metrics_day_set(cp_metrics_day_t *d, int field, int64_t v)
{
    const char *code;
    if (!day_field_parts(field, &code))
        return -1;
    if (field == CP_MF_ACT)
        d->act = v;
    else if (field < CP_MF_IN)
        d->lc[field - CP_MF_LC] = v;
    else if (field < CP_MF_SEG)
        d->in[field - CP_MF_IN] = v;
    else
        d->seg[field - CP_MF_SEG] = v;
    return 0;
}

int cp_metrics_cohort_set(cp_metrics_cohort_t *c, int field, int64_t v)
{
    if (field == CP_MF_N)
        c->n = v;
    else if (field >= CP_MF_R && field < CP_MF_COHORT__END)
        c->r[field - CP_MF_R] = v;
    else
        return -1;
    return 0;
}

/* Two's complement addition: hostile counters wrap instead of being
 * undefined behaviour. */
static int64_t wrap_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

/* Customers a churn can come from: every stage with an order but churned. */
static int64_t churn_base(const int64_t stage[CP_LC__COUNT])
{
    static const cp_lifecycle_t from[] = {CP_LC_NEW, CP_LC_ACTIVE, CP_LC_LOYAL,
                                          CP_LC_AT_RISK, CP_LC_WON_BACK};
    int64_t n = 0;
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++)
        n = wrap_add(n, stage[from[i]]);
    return n;
}

int cp_metrics_daily(const cp_metrics_day_t *days, size_t n,
                     cp_metrics_daily_t *out)
{
    int64_t stage[CP_LC__COUNT] = {0}, segment[CP_RFM8__COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        const cp_metrics_day_t *d = &days[i];
        cp_metrics_daily_t *o = &out[i];
        if (i > 0 && d->day <= days[i - 1].day)
            return -1;
        memset(o, 0, sizeof(*o));
        o->day = d->day;
        o->active = d->act;
        o->new_customers = d->in[CP_LC_NEW];
        o->churned = d->in[CP_LC_CHURNED];
        o->won_back = d->in[CP_LC_WON_BACK];
        o->at_risk_entered = d->in[CP_LC_AT_RISK];
        /* The gauges still hold the end of the previous listed day, which
         * is the end of the day before: no day between has counters. */
        o->churn_base = churn_base(stage);
        o->churn_rate = o->churn_base > 0
                            ? (double)o->churned / (double)o->churn_base
                            : NAN;
        for (int s = CP_LC_NONE + 1; s < CP_LC__COUNT; s++)
            o->stage[s] = stage[s] = wrap_add(stage[s], d->lc[s]);
        for (int g = CP_RFM8_NONE + 1; g < CP_RFM8__COUNT; g++)
            o->segment[g] = segment[g] = wrap_add(segment[g], d->seg[g]);
    }
    return 0;
}

void cp_metrics_retention(const cp_metrics_cohort_t *c, int64_t as_of,
                          cp_metrics_retention_t *out)
{
    out->cohort = c->day;
    out->size = c->n;
    for (int h = 0; h < CP_METRICS_HORIZONS; h++) {
        int64_t k = cp_metrics_horizon_days[h];
        out->retained[h] = c->r[h];
        out->rate[h] = c->n > 0 ? (double)c->r[h] / (double)c->n : NAN;
        out->complete[h] =
            as_of >= c->day && day_distance(as_of, c->day) >= (uint64_t)k - 1;
    }
}

size_t cp_metrics_window(const cp_metrics_cohort_t *cohorts, size_t n,
                         int64_t day,
                         cp_metrics_retention_t out[CP_METRICS_WINDOW])
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < CP_METRICS_WINDOW; i++) {
        int64_t c = cohorts[i].day;
        if (c <= day && day_distance(day, c) <= CP_METRICS_WINDOW - 1)
            cp_metrics_retention(&cohorts[i], day, &out[k++]);
    }
    return k;
}
