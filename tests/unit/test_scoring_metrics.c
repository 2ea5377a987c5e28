/*
 * test_scoring_metrics.c - population metrics (docs/metrics.md): the
 * accumulator of one customer's write (merging, dropping net zeros, all
 * or nothing when full), the field names and their inverse, and the daily
 * report on a hand-built five-day story whose every figure - gauges, flows,
 * churn rate, cohort retention and completeness - is worked out below.
 *
 * Pure unit tests, no services.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

#define D0 19783 /* 2024-03-01 */

/* ---- the accumulator ---------------------------------------------------- */

static void assert_inc(const cp_metrics_inc_t *x, cp_metrics_key_t key,
                       int64_t day, int field, int64_t delta)
{
    assert_int_equal(x->key, key);
    assert_int_equal(x->day, day);
    assert_int_equal(x->field, field);
    assert_int_equal(x->delta, delta);
}

static void test_acc_stage_and_segment(void **state)
{
    (void)state;
    cp_metrics_acc_t acc;
    cp_metrics_acc_init(&acc);
    assert_int_equal(cp_metrics_room(&acc), CP_METRICS_MAX);
    /* the first order: none -> new is an entry, without a from-field */
    assert_int_equal(cp_metrics_on_stage(&acc, CP_LC_NONE, CP_LC_NEW, D0), 0);
    assert_int_equal(acc.n, 2);
    assert_inc(&acc.inc[0], CP_METRICS_DAY, D0, CP_MF_LC + CP_LC_NEW, 1);
    assert_inc(&acc.inc[1], CP_METRICS_DAY, D0, CP_MF_IN + CP_LC_NEW, 1);
    /* equal stages and segments add nothing */
    assert_int_equal(cp_metrics_on_stage(&acc, CP_LC_NEW, CP_LC_NEW, D0), 0);
    assert_int_equal(
        cp_metrics_on_segment(&acc, CP_RFM8_NONE, CP_RFM8_NONE, D0), 0);
    assert_int_equal(acc.n, 2);
    /* new -> active (not a flow) -> loyal on one day: lc:active nets to 0
     * and is dropped; lc:new -1 merges with the +1 and is dropped too */
    assert_int_equal(cp_metrics_on_stage(&acc, CP_LC_NEW, CP_LC_ACTIVE, D0), 0);
    assert_int_equal(cp_metrics_on_stage(&acc, CP_LC_ACTIVE, CP_LC_LOYAL, D0),
                     0);
    assert_int_equal(acc.n, 2);
    assert_inc(&acc.inc[0], CP_METRICS_DAY, D0, CP_MF_IN + CP_LC_NEW, 1);
    assert_inc(&acc.inc[1], CP_METRICS_DAY, D0, CP_MF_LC + CP_LC_LOYAL, 1);
    /* at_risk and back on another day: the entry stays, the gauges net 0 */
    assert_int_equal(
        cp_metrics_on_stage(&acc, CP_LC_LOYAL, CP_LC_AT_RISK, D0 + 1), 0);
    assert_int_equal(
        cp_metrics_on_stage(&acc, CP_LC_AT_RISK, CP_LC_LOYAL, D0 + 1), 0);
    assert_int_equal(acc.n, 3);
    assert_inc(&acc.inc[2], CP_METRICS_DAY, D0 + 1, CP_MF_IN + CP_LC_AT_RISK,
               1);
    /* segments: -1 / +1, none has no field */
    cp_metrics_acc_init(&acc);
    assert_int_equal(
        cp_metrics_on_segment(&acc, CP_RFM8_NONE, CP_RFM8_GENERAL_DEVELOP, D0),
        0);
    assert_int_equal(cp_metrics_on_segment(&acc, CP_RFM8_GENERAL_DEVELOP,
                                           CP_RFM8_IMPORTANT_VALUE, D0 + 2),
                     0);
    assert_int_equal(acc.n, 3);
    assert_inc(&acc.inc[0], CP_METRICS_DAY, D0,
               CP_MF_SEG + CP_RFM8_GENERAL_DEVELOP, 1);
    assert_inc(&acc.inc[1], CP_METRICS_DAY, D0 + 2,
               CP_MF_SEG + CP_RFM8_GENERAL_DEVELOP, -1);
    assert_inc(&acc.inc[2], CP_METRICS_DAY, D0 + 2,
               CP_MF_SEG + CP_RFM8_IMPORTANT_VALUE, 1);
    /* a stage code outside the enum has no field (nothing written) */
    cp_metrics_acc_init(&acc);
    assert_int_equal(
        cp_metrics_on_stage(&acc, (cp_lifecycle_t)99, CP_LC_CHURNED, D0), 0);
    assert_int_equal(acc.n, 2);
}

static void test_acc_active_and_cohorts(void **state)
{
    (void)state;
    cp_metrics_acc_t acc;
    cp_metrics_acc_init(&acc);
    assert_int_equal(cp_metrics_on_active(&acc, D0), 0);
    assert_int_equal(cp_metrics_on_first_order(&acc, D0), 0);
    assert_int_equal(cp_metrics_on_active(&acc, D0), 0); /* merged: +2 */
    assert_int_equal(acc.n, 2);
    assert_inc(&acc.inc[0], CP_METRICS_DAY, D0, CP_MF_ACT, 2);
    assert_inc(&acc.inc[1], CP_METRICS_COHORT, D0, CP_MF_N, 1);
    /* the same day number in the other hash is another counter */
    assert_int_equal(acc.inc[0].day, acc.inc[1].day);

    /* first repeat: |R - C| <= k - 1 for k = 2, 7, 14, 30 */
    static const struct {
        int64_t gap;
        int want; /* bit h: r<k_h> counted */
    } cases[] = {{1, 0xf},  {2, 0xe},   {6, 0xe},  {7, 0xc},   {13, 0xc},
                 {14, 0x8}, {29, 0x8},  {30, 0x0}, {400, 0x0}, {-1, 0xf},
                 {-6, 0xe}, {-30, 0x0}, {0, 0xf}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp_metrics_acc_init(&acc);
        assert_int_equal(
            cp_metrics_on_first_repeat(&acc, D0, D0 + cases[i].gap), 0);
        int got = 0;
        for (int j = 0; j < acc.n; j++) {
            assert_int_equal(acc.inc[j].key, CP_METRICS_COHORT);
            assert_int_equal(acc.inc[j].day, D0); /* the cohort's hash */
            assert_int_equal(acc.inc[j].delta, 1);
            got |= 1 << (acc.inc[j].field - CP_MF_R);
        }
        assert_int_equal(got, cases[i].want);
    }
    /* extreme days neither overflow nor count */
    cp_metrics_acc_init(&acc);
    assert_int_equal(cp_metrics_on_first_repeat(&acc, INT64_MIN, INT64_MAX), 0);
    assert_int_equal(acc.n, 0);
    assert_int_equal(cp_metrics_on_first_repeat(&acc, INT64_MAX - 1, INT64_MAX),
                     0);
    assert_int_equal(acc.n, 4);
}

/* The entries of a and b, field by field (the unused slots and padding
 * are not compared). */
static void assert_acc_equal(const cp_metrics_acc_t *a,
                             const cp_metrics_acc_t *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++)
        assert_inc(&a->inc[i], (cp_metrics_key_t)b->inc[i].key, b->inc[i].day,
                   b->inc[i].field, b->inc[i].delta);
}

static void test_acc_full(void **state)
{
    (void)state;
    cp_metrics_acc_t acc;
    cp_metrics_acc_init(&acc);
    for (int i = 0; i < CP_METRICS_MAX - 2; i++)
        assert_int_equal(cp_metrics_on_active(&acc, D0 + i), 0);
    assert_int_equal(cp_metrics_room(&acc), 2);
    cp_metrics_acc_t before = acc;
    /* three new entries do not fit in two: nothing is added */
    assert_int_equal(
        cp_metrics_on_stage(&acc, CP_LC_NEW, CP_LC_AT_RISK, D0 - 1),
        CP_METRICS_EFULL);
    assert_acc_equal(&acc, &before);
    assert_int_equal(cp_metrics_on_first_repeat(&acc, D0 - 1, D0),
                     CP_METRICS_EFULL);
    assert_acc_equal(&acc, &before);
    /* two do */
    assert_int_equal(
        cp_metrics_on_stage(&acc, CP_LC_ACTIVE, CP_LC_LOYAL, D0 - 1), 0);
    assert_int_equal(cp_metrics_room(&acc), 0);
    /* full: what merges still fits, what needs an entry does not */
    assert_int_equal(cp_metrics_on_active(&acc, D0 + 3), 0);
    assert_int_equal(acc.inc[3].delta, 2);
    before = acc;
    assert_int_equal(cp_metrics_on_active(&acc, D0 - 2), CP_METRICS_EFULL);
    assert_int_equal(cp_metrics_on_first_order(&acc, D0), CP_METRICS_EFULL);
    assert_acc_equal(&acc, &before);
    /* a change that nets one entry to 0 but needs two others is refused
     * as a whole; moving back frees both entries */
    assert_int_equal(cp_metrics_on_stage(&acc, CP_LC_LOYAL, CP_LC_NEW, D0 - 1),
                     CP_METRICS_EFULL);
    assert_acc_equal(&acc, &before);
    assert_int_equal(
        cp_metrics_on_stage(&acc, CP_LC_LOYAL, CP_LC_ACTIVE, D0 - 1), 0);
    assert_int_equal(cp_metrics_room(&acc), 2);
    for (int i = 0; i < acc.n; i++)
        assert_int_equal(acc.inc[i].field, CP_MF_ACT);
    /* CP_METRICS_EVENT_MAX covers the largest single event */
    cp_metrics_acc_init(&acc);
    assert_int_equal(
        cp_metrics_on_stage(&acc, CP_LC_CHURNED, CP_LC_WON_BACK, D0), 0);
    assert_int_equal(cp_metrics_on_segment(&acc, CP_RFM8_GENERAL_RETAIN,
                                           CP_RFM8_IMPORTANT_VALUE, D0),
                     0);
    assert_int_equal(cp_metrics_on_active(&acc, D0), 0);
    assert_int_equal(cp_metrics_on_first_order(&acc, D0), 0);
    assert_int_equal(cp_metrics_on_first_repeat(&acc, D0, D0 + 1), 0);
    assert_int_equal(acc.n, CP_METRICS_EVENT_MAX);
}

/* ---- field names -------------------------------------------------------- */

static void test_field_names(void **state)
{
    (void)state;
    static const char *const day_names[] = {
        "act",
        "lc:prospect",
        "lc:new",
        "lc:active",
        "lc:loyal",
        "lc:at_risk",
        "lc:churned",
        "lc:won_back",
        "in:new",
        "in:at_risk",
        "in:churned",
        "in:won_back",
        "seg:important_value",
        "seg:important_develop",
        "seg:important_keep",
        "seg:important_retain",
        "seg:general_value",
        "seg:general_develop",
        "seg:general_keep",
        "seg:general_retain",
    };
    static const char *const cohort_names[] = {"n", "r2", "r7", "r14", "r30"};
    char buf[32];
    size_t n_day = 0;
    for (int f = -2; f < CP_MF_DAY__END + 3; f++) {
        size_t len = cp_metrics_field_name(CP_METRICS_DAY, f, buf, sizeof(buf));
        if (len == 0) {
            assert_string_equal(buf, "");
            continue;
        }
        assert_true(n_day < sizeof(day_names) / sizeof(day_names[0]));
        assert_string_equal(buf, day_names[n_day++]);
        assert_int_equal(len, strlen(buf));
        int back = -1;
        assert_int_equal(
            cp_metrics_field_parse(CP_METRICS_DAY, buf, len, &back), 0);
        assert_int_equal(back, f);
    }
    assert_int_equal(n_day, sizeof(day_names) / sizeof(day_names[0]));
    for (int f = 0; f < CP_MF_COHORT__END; f++) {
        size_t len =
            cp_metrics_field_name(CP_METRICS_COHORT, f, buf, sizeof(buf));
        assert_string_equal(buf, cohort_names[f]);
        int back = -1;
        assert_int_equal(
            cp_metrics_field_parse(CP_METRICS_COHORT, buf, len, &back), 0);
        assert_int_equal(back, f);
    }
    assert_int_equal(cp_metrics_field_name(CP_METRICS_COHORT, CP_MF_COHORT__END,
                                           buf, sizeof(buf)),
                     0);
    assert_int_equal(
        cp_metrics_field_name((cp_metrics_key_t)7, 0, buf, sizeof(buf)), 0);
    /* specific codes */
    cp_metrics_field_name(CP_METRICS_DAY, CP_MF_IN + CP_LC_CHURNED, buf,
                          sizeof(buf));
    assert_string_equal(buf, "in:churned");
    assert_int_equal(cp_metrics_field_name(CP_METRICS_DAY,
                                           CP_MF_IN + CP_LC_ACTIVE, buf,
                                           sizeof(buf)),
                     0);
    assert_int_equal(cp_metrics_field_name(CP_METRICS_DAY,
                                           CP_MF_LC + CP_LC_NONE, buf,
                                           sizeof(buf)),
                     0);
    /* a buffer too small: 0 and "" */
    assert_int_equal(
        cp_metrics_field_name(CP_METRICS_DAY, CP_MF_LC + CP_LC_NEW, buf, 6), 0);
    assert_string_equal(buf, "");
    assert_int_equal(
        cp_metrics_field_name(CP_METRICS_DAY, CP_MF_LC + CP_LC_NEW, buf, 7), 6);
    /* names the writer never writes */
    static const char *const bad[] = {"",          "lc:",      "lc:none",
                                      "in:active", "in:loyal", "in:prospect",
                                      "seg:",      "seg:none", "ACT",
                                      "act ",      "n",        "r2",
                                      "lc:new\n",  "lc:new:1", "seg:champions"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int f = 1234;
        assert_int_equal(
            cp_metrics_field_parse(CP_METRICS_DAY, bad[i], strlen(bad[i]), &f),
            -1);
        assert_int_equal(f, 1234);
    }
    int f = 1234;
    assert_int_equal(cp_metrics_field_parse(CP_METRICS_COHORT, "act", 3, &f),
                     -1);
    assert_int_equal(cp_metrics_field_parse(CP_METRICS_COHORT, "r3", 2, &f),
                     -1);
    assert_int_equal(cp_metrics_field_parse(CP_METRICS_COHORT, "r7", 1, &f),
                     -1);
    assert_int_equal(cp_metrics_field_parse(CP_METRICS_DAY, "act", 3, &f), 0);
    assert_int_equal(f, CP_MF_ACT);
}

/* ---- the five-day story ---------------------------------------------------
 *
 * Five customers over 2024-03-01 (D0) .. 2024-03-05 (D4):
 *   D0  A and B: first orders (none -> new, general_develop, cohort D0);
 *       C: browsing (none -> prospect). All three active.
 *   D1  A: a second order (segment -> important_develop; first repeat
 *       R - C = 1: r2 r7 r14 r30). D: first order (cohort D1). Both active.
 *   D2  B: new -> at_risk (time-caused: not active). C: first order
 *       (prospect -> new, general_develop, cohort D2), active.
 *   D3  B: at_risk -> churned, general_develop -> general_retain (time).
 *       A: new -> active (time). E: browsing (none -> prospect), active.
 *   D4  B orders again: churned -> won_back, general_retain ->
 *       general_develop, first repeat R - C = 4: r7 r14 r30; active.
 *       D: new -> at_risk (time).
 * Each customer's changes of a day are one write (one accumulator); the
 * writes are applied to the counters as HINCRBYs would. */

typedef struct redis_s {
    int64_t day[5][CP_MF_DAY__END];
    int64_t cohort[5][CP_MF_COHORT__END];
} redis_t;

static void hincrby(redis_t *r, const cp_metrics_acc_t *acc)
{
    for (int i = 0; i < acc->n; i++) {
        const cp_metrics_inc_t *x = &acc->inc[i];
        int64_t d = x->day - D0;
        assert_true(d >= 0 && d < 5);
        if (x->key == CP_METRICS_DAY)
            r->day[d][x->field] += x->delta;
        else
            r->cohort[d][x->field] += x->delta;
    }
}

typedef struct step_s {
    int day;
    cp_lifecycle_t lc_from, lc_to;
    cp_rfm8_t seg_from, seg_to;
    int active, first_order, repeat_cohort; /* repeat_cohort: -1 none */
} step_t;

#define NO_SEG CP_RFM8_NONE, CP_RFM8_NONE
#define GD CP_RFM8_GENERAL_DEVELOP

static const step_t story[] = {
    /* D0 */
    {0, CP_LC_NONE, CP_LC_NEW, CP_RFM8_NONE, GD, 1, 1, -1}, /* A */
    {0, CP_LC_NONE, CP_LC_NEW, CP_RFM8_NONE, GD, 1, 1, -1}, /* B */
    {0, CP_LC_NONE, CP_LC_PROSPECT, NO_SEG, 1, 0, -1},      /* C */
    /* D1 */
    {1, CP_LC_NEW, CP_LC_NEW, GD, CP_RFM8_IMPORTANT_DEVELOP, 1, 0, 0}, /* A */
    {1, CP_LC_NONE, CP_LC_NEW, CP_RFM8_NONE, GD, 1, 1, -1},            /* D */
    /* D2 */
    {2, CP_LC_NEW, CP_LC_AT_RISK, NO_SEG, 0, 0, -1},            /* B */
    {2, CP_LC_PROSPECT, CP_LC_NEW, CP_RFM8_NONE, GD, 1, 1, -1}, /* C */
    /* D3 */
    {3, CP_LC_AT_RISK, CP_LC_CHURNED, GD, CP_RFM8_GENERAL_RETAIN, 0, 0,
     -1},                                              /* B */
    {3, CP_LC_NEW, CP_LC_ACTIVE, NO_SEG, 0, 0, -1},    /* A */
    {3, CP_LC_NONE, CP_LC_PROSPECT, NO_SEG, 1, 0, -1}, /* E */
    /* D4 */
    {4, CP_LC_CHURNED, CP_LC_WON_BACK, CP_RFM8_GENERAL_RETAIN, GD, 1, 0,
     0},                                             /* B */
    {4, CP_LC_NEW, CP_LC_AT_RISK, NO_SEG, 0, 0, -1}, /* D */
};

static void run_story(redis_t *r)
{
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < sizeof(story) / sizeof(story[0]); i++) {
        const step_t *s = &story[i];
        int64_t day = D0 + s->day;
        cp_metrics_acc_t acc;
        cp_metrics_acc_init(&acc);
        assert_int_equal(cp_metrics_on_stage(&acc, s->lc_from, s->lc_to, day),
                         0);
        assert_int_equal(
            cp_metrics_on_segment(&acc, s->seg_from, s->seg_to, day), 0);
        if (s->active)
            assert_int_equal(cp_metrics_on_active(&acc, day), 0);
        if (s->first_order)
            assert_int_equal(cp_metrics_on_first_order(&acc, day), 0);
        if (s->repeat_cohort >= 0)
            assert_int_equal(
                cp_metrics_on_first_repeat(&acc, D0 + s->repeat_cohort, day),
                0);
        hincrby(r, &acc);
    }
}

/* The counters as the report reads them back: every named field. */
typedef struct story_s {
    redis_t r;
    cp_metrics_day_t days[5];
    cp_metrics_cohort_t cohorts[5];
} story_t;

static void read_back(const redis_t *r, cp_metrics_day_t days[5],
                      cp_metrics_cohort_t cohorts[5])
{
    char name[32];
    for (int d = 0; d < 5; d++) {
        cp_metrics_day_init(&days[d], D0 + d);
        cp_metrics_cohort_init(&cohorts[d], D0 + d);
        for (int f = 0; f < CP_MF_DAY__END; f++)
            if (cp_metrics_field_name(CP_METRICS_DAY, f, name, sizeof(name)))
                assert_int_equal(cp_metrics_day_set(&days[d], f, r->day[d][f]),
                                 0);
            else
                assert_int_equal(r->day[d][f], 0); /* never written */
        for (int f = 0; f < CP_MF_COHORT__END; f++)
            assert_int_equal(
                cp_metrics_cohort_set(&cohorts[d], f, r->cohort[d][f]), 0);
    }
}

/* The story, run afresh (static: too large for some test stacks). */
static story_t *story_load(void)
{
    static story_t st;
    run_story(&st.r);
    read_back(&st.r, st.days, st.cohorts);
    return &st;
}

static void test_story_counters(void **state)
{
    (void)state;
    story_t *st = story_load();
    /* D0: lc:new +2, lc:prospect +1, in:new 2, seg:general_develop +2,
     * act 3 */
    assert_int_equal(st->days[0].lc[CP_LC_NEW], 2);
    assert_int_equal(st->days[0].lc[CP_LC_PROSPECT], 1);
    assert_int_equal(st->days[0].in[CP_LC_NEW], 2);
    assert_int_equal(st->days[0].seg[GD], 2);
    assert_int_equal(st->days[0].act, 3);
    /* D3: lc:at_risk -1, churned +1, new -1, active +1, prospect +1 */
    assert_int_equal(st->days[3].lc[CP_LC_AT_RISK], -1);
    assert_int_equal(st->days[3].lc[CP_LC_CHURNED], 1);
    assert_int_equal(st->days[3].lc[CP_LC_NEW], -1);
    assert_int_equal(st->days[3].lc[CP_LC_ACTIVE], 1);
    assert_int_equal(st->days[3].lc[CP_LC_PROSPECT], 1);
    assert_int_equal(st->days[3].in[CP_LC_CHURNED], 1);
    assert_int_equal(st->days[3].act, 1);
    /* cohorts: D0 n 2, r2 1 (A), r7 = r14 = r30 = 2 (A, B); D1 and D2 one
     * customer each, no repeat */
    static const int64_t want_c[5][CP_MF_COHORT__END] = {
        {2, 1, 2, 2, 2}, {1, 0, 0, 0, 0}, {1, 0, 0, 0, 0}, {0}, {0}};
    for (int d = 0; d < 5; d++) {
        assert_int_equal(st->cohorts[d].n, want_c[d][0]);
        for (int h = 0; h < CP_METRICS_HORIZONS; h++)
            assert_int_equal(st->cohorts[d].r[h], want_c[d][1 + h]);
    }
    /* a field of no code is refused */
    assert_int_equal(cp_metrics_day_set(&st->days[0], CP_MF_LC + CP_LC_NONE, 1),
                     -1);
    assert_int_equal(
        cp_metrics_day_set(&st->days[0], CP_MF_IN + CP_LC_LOYAL, 1), -1);
    assert_int_equal(cp_metrics_day_set(&st->days[0], CP_MF_DAY__END, 1), -1);
    assert_int_equal(
        cp_metrics_cohort_set(&st->cohorts[0], CP_MF_COHORT__END, 1), -1);
    assert_int_equal(cp_metrics_cohort_set(&st->cohorts[0], -1, 1), -1);
}

static void test_story_daily(void **state)
{
    (void)state;
    cp_metrics_daily_t out[5];
    story_t *st = story_load();
    assert_int_equal(cp_metrics_daily(st->days, 5, out), 0);
    /* stages at the end of each day:
     *        prospect new active loyal at_risk churned won_back */
    static const int64_t stage[5][CP_LC__COUNT] = {
        {0, 1, 2, 0, 0, 0, 0, 0}, /* A B new, C prospect */
        {0, 1, 3, 0, 0, 0, 0, 0}, /* + D new */
        {0, 0, 3, 0, 0, 1, 0, 0}, /* B at_risk, C new */
        {0, 1, 2, 1, 0, 0, 1, 0}, /* B churned, A active, E prospect */
        {0, 1, 1, 1, 0, 1, 0, 1}, /* B won_back, D at_risk */
    };
    /* segments: general_develop, important_develop, general_retain */
    static const int64_t gd[5] = {2, 2, 3, 2, 3}, id[5] = {0, 1, 1, 1, 1},
                         gr[5] = {0, 0, 0, 1, 0};
    /* flows: active new churned won_back at_risk_entered */
    static const int64_t flows[5][5] = {{3, 2, 0, 0, 0},
                                        {2, 1, 0, 0, 0},
                                        {1, 1, 0, 0, 1},
                                        {1, 0, 1, 0, 0},
                                        {1, 0, 0, 1, 1}};
    /* the churn base: new + active + loyal + at_risk + won_back at the end
     * of the day before: 0, 2, 3, 3 + 1, 2 + 1 */
    static const int64_t base[5] = {0, 2, 3, 4, 3};
    for (int d = 0; d < 5; d++) {
        const cp_metrics_daily_t *o = &out[d];
        assert_int_equal(o->day, D0 + d);
        assert_memory_equal(o->stage, stage[d], sizeof(stage[d]));
        assert_int_equal(o->segment[CP_RFM8_NONE], 0);
        assert_int_equal(o->segment[GD], gd[d]);
        assert_int_equal(o->segment[CP_RFM8_IMPORTANT_DEVELOP], id[d]);
        assert_int_equal(o->segment[CP_RFM8_GENERAL_RETAIN], gr[d]);
        int64_t others = 0;
        for (int g = 0; g < CP_RFM8__COUNT; g++)
            others += o->segment[g];
        assert_int_equal(others, gd[d] + id[d] + gr[d]);
        assert_int_equal(o->active, flows[d][0]);
        assert_int_equal(o->new_customers, flows[d][1]);
        assert_int_equal(o->churned, flows[d][2]);
        assert_int_equal(o->won_back, flows[d][3]);
        assert_int_equal(o->at_risk_entered, flows[d][4]);
        assert_int_equal(o->churn_base, base[d]);
    }
    assert_true(isnan(out[0].churn_rate)); /* nobody could churn yet */
    assert_true(out[1].churn_rate == 0.0);
    assert_true(out[2].churn_rate == 0.0);
    assert_true(out[3].churn_rate == 0.25); /* B of A, B, C, D */
    assert_true(out[4].churn_rate == 0.0);

    /* a day without counters between two days: the gauges carry over and
     * the base of the later day is the earlier day's end */
    cp_metrics_day_t gap[2] = {st->days[0], st->days[3]};
    gap[1].day = D0 + 9;
    assert_int_equal(cp_metrics_daily(gap, 2, out), 0);
    assert_int_equal(out[1].churn_base, 2);
    assert_true(out[1].churn_rate == 0.5);
    assert_int_equal(out[1].stage[CP_LC_CHURNED], 1);
    assert_int_equal(out[1].stage[CP_LC_NEW], 1);
    /* unsorted or repeated days are refused */
    gap[1].day = D0;
    assert_int_equal(cp_metrics_daily(gap, 2, out), -1);
    gap[1].day = D0 - 1;
    assert_int_equal(cp_metrics_daily(gap, 2, out), -1);
    assert_int_equal(cp_metrics_daily(gap, 0, out), 0);
    /* hostile counters wrap instead of overflowing */
    cp_metrics_day_t big[2];
    cp_metrics_day_init(&big[0], D0);
    cp_metrics_day_init(&big[1], D0 + 1);
    big[0].lc[CP_LC_NEW] = INT64_MAX;
    big[0].lc[CP_LC_ACTIVE] = INT64_MAX;
    big[1].lc[CP_LC_NEW] = 1;
    big[1].in[CP_LC_CHURNED] = 5;
    assert_int_equal(cp_metrics_daily(big, 2, out), 0);
    assert_true(out[1].stage[CP_LC_NEW] == INT64_MIN);
    assert_int_equal(out[1].churn_base, -2);
    assert_true(isnan(out[1].churn_rate));
}

static void test_story_retention(void **state)
{
    (void)state;
    story_t *st = story_load();
    cp_metrics_retention_t ret;
    /* cohort D0 as of D4: d2 final (D4 >= D0 + 1): 1 of 2; d7 is 2 of 2 so
     * far but open until D0 + 6 */
    cp_metrics_retention(&st->cohorts[0], D0 + 4, &ret);
    assert_int_equal(ret.cohort, D0);
    assert_int_equal(ret.size, 2);
    assert_int_equal(ret.retained[0], 1);
    assert_int_equal(ret.retained[1], 2);
    assert_true(ret.rate[0] == 0.5);
    assert_true(ret.rate[1] == 1.0);
    assert_int_equal(ret.complete[0], 1);
    assert_int_equal(ret.complete[1], 0);
    assert_int_equal(ret.complete[2], 0);
    assert_int_equal(ret.complete[3], 0);
    /* the day each horizon becomes final: C + k - 1 */
    static const int64_t final_day[CP_METRICS_HORIZONS] = {1, 6, 13, 29};
    for (int h = 0; h < CP_METRICS_HORIZONS; h++) {
        cp_metrics_retention(&st->cohorts[0], D0 + final_day[h] - 1, &ret);
        assert_int_equal(ret.complete[h], 0);
        cp_metrics_retention(&st->cohorts[0], D0 + final_day[h], &ret);
        assert_int_equal(ret.complete[h], 1);
    }
    /* as of the cohort day itself nothing is final; before it, neither */
    cp_metrics_retention(&st->cohorts[0], D0, &ret);
    for (int h = 0; h < CP_METRICS_HORIZONS; h++)
        assert_int_equal(ret.complete[h], 0);
    cp_metrics_retention(&st->cohorts[0], D0 - 400, &ret);
    assert_int_equal(ret.complete[3], 0);
    /* an empty cohort has no rate */
    cp_metrics_retention(&st->cohorts[3], D0 + 100, &ret);
    assert_int_equal(ret.size, 0);
    assert_true(isnan(ret.rate[0]));
    assert_int_equal(ret.complete[3], 1);

    /* the window of a day: cohorts C <= day <= C + 29 */
    cp_metrics_retention_t w[CP_METRICS_WINDOW];
    cp_metrics_cohort_t three[3] = {st->cohorts[0], st->cohorts[1],
                                    st->cohorts[2]};
    assert_int_equal(cp_metrics_window(three, 3, D0, w), 1);
    assert_int_equal(w[0].cohort, D0);
    assert_int_equal(w[0].complete[0], 0);
    assert_int_equal(cp_metrics_window(three, 3, D0 + 4, w), 3);
    assert_int_equal(w[1].cohort, D0 + 1);
    assert_int_equal(w[1].complete[0], 1); /* D1's d2 final on D2 */
    assert_true(w[1].rate[0] == 0.0);
    assert_int_equal(w[2].cohort, D0 + 2);
    assert_int_equal(cp_metrics_window(three, 3, D0 + 29, w), 3);
    assert_int_equal(w[0].complete[3], 1);
    assert_int_equal(cp_metrics_window(three, 3, D0 + 30, w), 2);
    assert_int_equal(w[0].cohort, D0 + 1);
    assert_int_equal(cp_metrics_window(three, 3, D0 + 32, w), 0);
    assert_int_equal(cp_metrics_window(three, 3, D0 - 1, w), 0);
    /* never more than the window holds, whatever the input */
    cp_metrics_cohort_t same[CP_METRICS_WINDOW + 5];
    for (int i = 0; i < CP_METRICS_WINDOW + 5; i++)
        cp_metrics_cohort_init(&same[i], D0);
    assert_int_equal(cp_metrics_window(same, CP_METRICS_WINDOW + 5, D0, w),
                     CP_METRICS_WINDOW);
    cp_metrics_cohort_t far[2];
    cp_metrics_cohort_init(&far[0], INT64_MIN);
    cp_metrics_cohort_init(&far[1], INT64_MAX);
    assert_int_equal(cp_metrics_window(far, 2, INT64_MAX, w), 1);
    assert_true(w[0].cohort == INT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acc_stage_and_segment),
        cmocka_unit_test(test_acc_active_and_cohorts),
        cmocka_unit_test(test_acc_full),
        cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_story_counters),
        cmocka_unit_test(test_story_daily),
        cmocka_unit_test(test_story_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
