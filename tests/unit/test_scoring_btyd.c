/*
 * test_scoring_btyd.c - BG/NBD, MBG/NBD, Gamma-Gamma and CLV
 * (scoring/btyd.h, docs/btyd.md).
 *
 * Fits the CDNOW calibration sample (tests/data/cdnow/) and compares with
 * the published estimates; checks every closed form against a second,
 * deliberately naive implementation written here (plain lgamma/exp, long
 * double, the hypergeometric function by a long defining series, the
 * formulas as printed in the papers rather than in their log-space or
 * Euler-transformed forms); and checks that extreme inputs give finite
 * numbers or a reported error, never a silent NaN.
 *
 * Pure unit tests, no services. Run from tests/unit (the CSV path is
 * relative to it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "btyd.h"

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

#define CDNOW_CSV "../data/cdnow/cdnow_customers_summary_with_transactions.csv"
#define CDNOW_N 2357
#define CDNOW_REPEATERS 946

/* |a - b| <= tol, printing both on failure. */
#define assert_near(a, b, tol)                                                 \
    do {                                                                       \
        double a_ = (a), b_ = (b), t_ = (tol);                                 \
        if (!(fabs(a_ - b_) <= t_))                                            \
            fail_msg("%s = %.10g, expected %.10g +- %g", #a, a_, b_, t_);      \
    } while (0)

/* Relative closeness |a - b| <= tol * |b|. */
#define assert_rel(a, b, tol)                                                  \
    do {                                                                       \
        double a_ = (a), b_ = (b), t_ = (tol);                                 \
        if (!(fabs(a_ - b_) <= t_ * fabs(b_)))                                 \
            fail_msg("%s = %.17g, expected %.17g (rel %g)", #a, a_, b_, t_);   \
    } while (0)

#define assert_ok(expr) assert_int_equal((expr), CP_BTYD_OK)

static double cd_x[CDNOW_N], cd_tx[CDNOW_N], cd_T[CDNOW_N], cd_zbar[CDNOW_N];
static cp_btyd_data_t cdnow = {cd_x, cd_tx, cd_T, cd_zbar, 0, NULL};

/* Published estimates (Fader, Hardie & Lee 2005; Fader & Hardie note 025)
 * used where a test needs fixed parameters rather than a fit. */
static const cp_btyd_params_t fhl = {0.243, 4.414, 0.793, 2.426};
static const cp_btyd_gg_params_t fhl_gg = {6.25, 3.74, 15.44};

/* Group setup: reads the CDNOW summary `ID,x,t_x,T,zbar` (weeks). */
static int load_cdnow(void **unused)
{
    (void)unused;
    FILE *f = fopen(CDNOW_CSV, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s (run from tests/unit)\n", CDNOW_CSV);
        return -1;
    }
    char line[256];
    size_t n = 0;
    int ok = fgets(line, sizeof line, f) != NULL &&
             strncmp(line, "ID,x,t_x,T,zbar", 15) == 0;
    while (ok && fgets(line, sizeof line, f) != NULL) {
        int id;
        ok = n < CDNOW_N && sscanf(line, "%d,%lf,%lf,%lf,%lf", &id, &cd_x[n],
                                   &cd_tx[n], &cd_T[n], &cd_zbar[n]) == 5;
        n++;
    }
    fclose(f);
    cdnow.n = n;
    if (!ok || n != CDNOW_N) {
        fprintf(stderr, "%s: bad format or %zu rows\n", CDNOW_CSV, n);
        return -1;
    }
    return 0;
}

/* The fits are shared by several tests; each is done once. */
static const cp_btyd_fit_t *fitted(cp_btyd_model_t model)
{
    static cp_btyd_fit_t fits[2];
    static int done[2];
    if (!done[model]) {
        assert_ok(cp_btyd_fit(model, &cdnow, NULL, &fits[model]));
        done[model] = 1;
    }
    return &fits[model];
}

/* ---------------------------------------------------------------------------
 * The naive second implementation
 * ------------------------------------------------------------------------ */

/* 2F1 by its defining series, 20000 terms (|z| <= 0.9 only). */
static long double naive_2f1(long double a, long double b, long double c,
                             long double z)
{
    long double term = 1.0L, sum = 1.0L;
    for (int n = 0; n < 20000; n++) {
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
        sum += term;
    }
    return sum;
}

static long double naive_beta(long double a, long double b)
{
    return expl(lgammal(a) + lgammal(b) - lgammal(a + b));
}

/* The individual likelihood as printed: BG/NBD (FHL 2005 eq. 6) or, mbg,
 * MBG/NBD (Batislam et al. 2007). */
static double naive_loglik(int mbg, const cp_btyd_params_t *p, double x,
                           double t_x, double T)
{
    long double r = p->r, al = p->alpha, a = p->a, b = p->b;
    long double g = expl(lgammal(r + x) - lgammal(r)) * powl(al, r);
    long double b0 = naive_beta(a, b);
    long double l1 = naive_beta(a, b + x + mbg) / b0 * g / powl(al + T, r + x);
    long double l2 = 0.0L;
    if (mbg || x > 0)
        l2 =
            naive_beta(a + 1, b + x + mbg - 1) / b0 * g / powl(al + t_x, r + x);
    return (double)logl(l1 + l2);
}

static double naive_p_alive(int mbg, const cp_btyd_params_t *p, double x,
                            double t_x, double T)
{
    if (!mbg && x == 0)
        return 1.0;
    long double ratio = powl((p->alpha + (long double)T) / (p->alpha + t_x),
                             p->r + (long double)x);
    return (double)(1.0L / (1.0L + p->a / (p->b + x + mbg - 1.0L) * ratio));
}

/* E[Y(t) | x, t_x, T] as printed (FHL 2005 eq. 10; Wagner & Hoppe 2008 for
 * MBG/NBD): the original 2F1, no transformation. */
static double naive_expected(int mbg, const cp_btyd_params_t *p, double x,
                             double t_x, double T, double t)
{
    long double r = p->r, al = p->alpha, a = p->a, b = p->b;
    long double c = a + b + x + mbg - 1.0L;
    long double z = t / (al + T + t);
    long double f = naive_2f1(r + x, b + x + mbg, c, z);
    long double bracket = 1.0L - powl((al + T) / (al + T + t), r + x) * f;
    return (double)(c / (a - 1.0L) * bracket) *
           naive_p_alive(mbg, p, x, t_x, T);
}

/* E[X(t)] as printed: (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b;
 * a+b-1; t/(alpha+t))] and b/(a-1) [... 2F1(r, b+1; a+b; ...)]. */
static double naive_uncond(int mbg, const cp_btyd_params_t *p, double t)
{
    long double r = p->r, al = p->alpha, a = p->a, b = p->b;
    long double lead = mbg ? b / (a - 1.0L) : (a + b - 1.0L) / (a - 1.0L);
    long double f = mbg ? naive_2f1(r, b + 1.0L, a + b, t / (al + t))
                        : naive_2f1(r, b, a + b - 1.0L, t / (al + t));
    return (double)(lead * (1.0L - powl(al / (al + t), r) * f));
}

/* Gamma-Gamma density of zbar (note 025 eq. 1a), as a product. */
static double naive_gg_loglik(const cp_btyd_gg_params_t *g, double x,
                              double zbar)
{
    long double px = g->p * (long double)x, q = g->q, v = g->v;
    long double d = expl(lgammal(px + q) - lgammal(px) - lgammal(q)) *
                    powl(v, q) * powl(zbar, px - 1.0L) * powl(x, px) /
                    powl(v + x * (long double)zbar, px + q);
    return (double)logl(d);
}

/* E[M | x, zbar] as the note's weighted average of the population mean
 * and the customer's own mean. */
static double naive_gg_value(const cp_btyd_gg_params_t *g, double x,
                             double zbar)
{
    double w = g->p * x / (g->p * x + g->q - 1.0);
    return (1.0 - w) * (g->p * g->v / (g->q - 1.0)) + w * zbar;
}

/* Customers for the closed-form checks: x = 0, x = 1, the published
 * example, CDNOW's largest x, a large x, t_x = T, t_x = 0 with x > 0, a
 * young customer, an old x = 0 customer. */
static const struct {
    double x, t_x, T;
} custs[] = {
    {0, 0, 38.86},      {1, 1.71, 38.86},  {2, 30.43, 38.86},
    {29, 35.71, 38.86}, {50, 38.0, 38.86}, {5, 38.86, 38.86},
    {3, 0, 38.86},      {1, 0.5, 1.0},     {0, 0, 500.0},
};
#define N_CUSTS (sizeof custs / sizeof custs[0])

/* Parameters for the closed-form checks: the published ones (a < 1), a
 * set with a > 1 and r > 1, and a narrow dropout distribution (large a and
 * b). */
static const cp_btyd_params_t check_params[] = {
    {0.243, 4.414, 0.793, 2.426},
    {1.5, 10.0, 2.5, 4.0},
    {0.5, 5.0, 50.0, 500.0},
};
#define N_CHECK_PARAMS (sizeof check_params / sizeof check_params[0])

/* ---------------------------------------------------------------------------
 * Fits on CDNOW
 * ------------------------------------------------------------------------ */

static void print_fit(const char *name, const cp_btyd_fit_t *fit)
{
    print_message("%s: r = %.6f (%.6f)  alpha = %.6f (%.6f)  a = %.6f "
                  "(%.6f)  b = %.6f (%.6f)  LL = %.4f  [%ld evals, %ld "
                  "NM iterations, %d restarts, %d Newton]\n",
                  name, fit->par.r, fit->se.r, fit->par.alpha, fit->se.alpha,
                  fit->par.a, fit->se.a, fit->par.b, fit->se.b,
                  fit->info.loglik, fit->info.evaluations, fit->info.iterations,
                  fit->info.restarts, fit->info.newton_steps);
}

/* FHL 2005: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4. */
static void test_bgnbd_fit_reproduces_fhl(void **unused)
{
    (void)unused;
    const cp_btyd_fit_t *fit = fitted(CP_BTYD_BGNBD);
    print_fit("BG/NBD", fit);
    assert_int_equal(fit->info.status, CP_BTYD_OK);
    assert_int_equal(fit->info.n_used, CDNOW_N);
    assert_near(fit->par.r, 0.243, 0.01);
    assert_near(fit->par.alpha, 4.414, 0.01);
    assert_near(fit->par.a, 0.793, 0.01);
    assert_near(fit->par.b, 2.426, 0.01);
    assert_near(fit->info.loglik, -9582.4, 0.1);
    /* The optimum itself is found to far better than the published
     * rounding: the log-likelihood there matches the sum. */
    assert_rel(cp_btyd_loglik_sum(CP_BTYD_BGNBD, &fit->par, &cdnow),
               fit->info.loglik, 1e-15);
    /* Standard errors: inverse Hessian (lifetimes reports 0.0126, 0.378,
     * 0.186, 0.705 for the same data). */
    assert_int_equal(fit->info.se_ok, 1);
    assert_near(fit->se.r, 0.01256, 0.0002);
    assert_near(fit->se.alpha, 0.3782, 0.002);
    assert_near(fit->se.a, 0.1857, 0.002);
    assert_near(fit->se.b, 0.7053, 0.005);
}

/* BTYDplus (as quoted by lifetimes' tests): 0.525, 6.183, 0.891, 1.614. */
static void test_mbgnbd_fit_reproduces_btydplus(void **unused)
{
    (void)unused;
    const cp_btyd_fit_t *fit = fitted(CP_BTYD_MBGNBD);
    print_fit("MBG/NBD", fit);
    assert_int_equal(fit->info.status, CP_BTYD_OK);
    assert_near(fit->par.r, 0.525, 0.001);
    assert_near(fit->par.alpha, 6.183, 0.001);
    assert_near(fit->par.a, 0.891, 0.001);
    assert_near(fit->par.b, 1.614, 0.001);
    assert_near(fit->info.loglik, -9582.13, 0.01);
    assert_int_equal(fit->info.se_ok, 1);
}

/* Fader & Hardie note 025: p = 6.25, q = 3.74, v = 15.44, LL = -4055.9
 * with the density of zbar (no constant term). */
static void test_gg_fit_reproduces_note(void **unused)
{
    (void)unused;
    cp_btyd_gg_fit_t fit;
    assert_ok(cp_btyd_gg_fit(&cdnow, NULL, &fit));
    print_message("Gamma-Gamma: p = %.6f (%.6f)  q = %.6f (%.6f)  v = %.6f "
                  "(%.6f)  LL = %.4f  [%ld evals]\n",
                  fit.par.p, fit.se.p, fit.par.q, fit.se.q, fit.par.v, fit.se.v,
                  fit.info.loglik, fit.info.evaluations);
    assert_int_equal(fit.info.n_used, CDNOW_REPEATERS);
    assert_near(fit.par.p, 6.25, 0.01);
    assert_near(fit.par.q, 3.74, 0.01);
    assert_near(fit.par.v, 15.44, 0.01);
    assert_near(fit.info.loglik, -4055.9, 0.1);
    assert_int_equal(fit.info.se_ok, 1);
    assert_true(fit.se.p > 0.5 && fit.se.p < 2.0);
}

/* Time is a unit of the caller's choice: the same data in days gives the
 * same r, a, b, alpha times 7, and LL lower by log(7) per repeat purchase
 * (the purchase times are densities). */
static void test_fit_in_days(void **unused)
{
    (void)unused;
    static double tx_d[CDNOW_N], T_d[CDNOW_N];
    double sum_x = 0.0;
    for (size_t i = 0; i < CDNOW_N; i++) {
        tx_d[i] = cd_tx[i] * 7.0;
        T_d[i] = cd_T[i] * 7.0;
        sum_x += cd_x[i];
    }
    cp_btyd_data_t days = {cd_x, tx_d, T_d, NULL, CDNOW_N, NULL};
    cp_btyd_fit_t fit;
    assert_ok(cp_btyd_fit(CP_BTYD_BGNBD, &days, NULL, &fit));
    const cp_btyd_fit_t *weeks = fitted(CP_BTYD_BGNBD);
    assert_rel(fit.par.r, weeks->par.r, 1e-4);
    assert_rel(fit.par.alpha, 7.0 * weeks->par.alpha, 1e-4);
    assert_rel(fit.par.a, weeks->par.a, 1e-4);
    assert_rel(fit.par.b, weeks->par.b, 1e-4);
    assert_near(fit.info.loglik, weeks->info.loglik - sum_x * log(7.0), 1e-6);
}

static void test_fit_rejects_bad_data(void **unused)
{
    (void)unused;
    double x[] = {1, 0, 2}, tx[] = {3, 0, 4}, T[] = {5, 5, 5}, z[] = {1, 0, 2};
    cp_btyd_data_t d = {x, tx, T, z, 3, NULL};
    cp_btyd_fit_t fit;
    cp_btyd_gg_fit_t gg;

    d.n = 0;
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &d, NULL, &fit),
                     CP_BTYD_EINVAL);
    assert_int_equal(fit.info.status, CP_BTYD_EINVAL);
    d.n = 3;
    tx[0] = 6; /* t_x > T */
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &d, NULL, &fit),
                     CP_BTYD_EINVAL);
    tx[0] = 3;
    tx[1] = 1; /* t_x != 0 with x = 0 */
    assert_int_equal(cp_btyd_fit(CP_BTYD_MBGNBD, &d, NULL, &fit),
                     CP_BTYD_EINVAL);
    tx[1] = 0;
    x[2] = -1;
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &d, NULL, &fit),
                     CP_BTYD_EINVAL);
    x[2] = NAN;
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &d, NULL, &fit),
                     CP_BTYD_EINVAL);
    x[2] = 2;
    T[1] = 0;
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &d, NULL, &fit),
                     CP_BTYD_EINVAL);
    T[1] = 5;
    assert_int_equal(cp_btyd_fit((cp_btyd_model_t)7, &d, NULL, &fit),
                     CP_BTYD_EINVAL);

    z[2] = 0; /* a repeat buyer with zbar = 0 */
    assert_int_equal(cp_btyd_gg_fit(&d, NULL, &gg), CP_BTYD_EINVAL);
    z[2] = 2;
    d.zbar = NULL;
    assert_int_equal(cp_btyd_gg_fit(&d, NULL, &gg), CP_BTYD_EINVAL);
    double none[] = {0, 0};
    cp_btyd_data_t no_repeat = {none, none, T, none, 2, NULL};
    assert_int_equal(cp_btyd_gg_fit(&no_repeat, NULL, &gg), CP_BTYD_EINVAL);

    cp_btyd_fit_opts_t opts = cp_btyd_fit_opts_default();
    opts.use_init = 1; /* init left at 0 */
    d.zbar = z;
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &d, &opts, &fit),
                     CP_BTYD_EINVAL);
}

/* A budget too small to converge is reported, with the best point. */
static void test_fit_budget_exhausted(void **unused)
{
    (void)unused;
    cp_btyd_fit_opts_t opts = cp_btyd_fit_opts_default();
    opts.max_evals = 40;
    opts.newton_steps = 0;
    cp_btyd_fit_t fit;
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &cdnow, &opts, &fit),
                     CP_BTYD_ENOCONV);
    assert_int_equal(fit.info.status, CP_BTYD_ENOCONV);
    assert_true(isfinite(fit.info.loglik));
    assert_true(fit.info.loglik < -9582.4);
    assert_rel(cp_btyd_loglik_sum(CP_BTYD_BGNBD, &fit.par, &cdnow),
               fit.info.loglik, 1e-15);
}

/* Started from the published values the fit lands on the same optimum. */
static void test_fit_from_init(void **unused)
{
    (void)unused;
    cp_btyd_fit_opts_t opts = cp_btyd_fit_opts_default();
    opts.use_init = 1;
    opts.init[0] = 0.243;
    opts.init[1] = 4.414;
    opts.init[2] = 0.793;
    opts.init[3] = 2.426;
    cp_btyd_fit_t fit;
    assert_ok(cp_btyd_fit(CP_BTYD_BGNBD, &cdnow, &opts, &fit));
    const cp_btyd_fit_t *ref = fitted(CP_BTYD_BGNBD);
    assert_near(fit.info.loglik, ref->info.loglik, 1e-6);
    assert_rel(fit.par.alpha, ref->par.alpha, 1e-4);
}

/* ---------------------------------------------------------------------------
 * Closed forms against the naive implementation
 * ------------------------------------------------------------------------ */

static void test_loglik_matches_naive(void **unused)
{
    (void)unused;
    for (size_t k = 0; k < N_CHECK_PARAMS; k++) {
        const cp_btyd_params_t *p = &check_params[k];
        for (size_t i = 0; i < N_CUSTS; i++) {
            double x = custs[i].x, t_x = custs[i].t_x, T = custs[i].T;
            assert_rel(cp_btyd_loglik(CP_BTYD_BGNBD, p, x, t_x, T),
                       naive_loglik(0, p, x, t_x, T), 1e-11);
            assert_rel(cp_btyd_loglik(CP_BTYD_MBGNBD, p, x, t_x, T),
                       naive_loglik(1, p, x, t_x, T), 1e-11);
        }
    }
    /* Non-integer x takes the lgamma path. */
    assert_rel(cp_btyd_loglik(CP_BTYD_BGNBD, &fhl, 2.5, 20, 38.86),
               naive_loglik(0, &fhl, 2.5, 20, 38.86), 1e-11);
    assert_rel(cp_btyd_loglik(CP_BTYD_MBGNBD, &fhl, 70, 20, 38.86),
               naive_loglik(1, &fhl, 70, 20, 38.86), 1e-11);
}

/* The summed likelihood (tabulated log-gammas) is the sum of the
 * individual ones, bit for bit. */
static void test_loglik_sum_is_sum(void **unused)
{
    (void)unused;
    for (int model = 0; model < 2; model++) {
        double sum = 0.0;
        for (size_t i = 0; i < CDNOW_N; i++)
            sum += cp_btyd_loglik((cp_btyd_model_t)model, &fhl, cd_x[i],
                                  cd_tx[i], cd_T[i]);
        assert_true(sum ==
                    cp_btyd_loglik_sum((cp_btyd_model_t)model, &fhl, &cdnow));
    }
    double gsum = 0.0;
    for (size_t i = 0; i < CDNOW_N; i++)
        if (cd_x[i] >= 1)
            gsum += cp_btyd_gg_loglik(&fhl_gg, cd_x[i], cd_zbar[i]);
    assert_rel(cp_btyd_gg_loglik_sum(&fhl_gg, &cdnow), gsum, 1e-15);
    /* A bad customer poisons the sum. */
    double x = 1, tx = 5, T = 4;
    cp_btyd_data_t bad = {&x, &tx, &T, NULL, 1, NULL};
    assert_true(isnan(cp_btyd_loglik_sum(CP_BTYD_BGNBD, &fhl, &bad)));
}

static void test_p_alive_matches_naive(void **unused)
{
    (void)unused;
    for (size_t k = 0; k < N_CHECK_PARAMS; k++) {
        const cp_btyd_params_t *p = &check_params[k];
        for (size_t i = 0; i < N_CUSTS; i++) {
            double x = custs[i].x, t_x = custs[i].t_x, T = custs[i].T;
            for (int mbg = 0; mbg < 2; mbg++)
                assert_rel(cp_btyd_p_alive((cp_btyd_model_t)mbg, p, x, t_x, T),
                           naive_p_alive(mbg, p, x, t_x, T), 1e-12);
        }
    }
    /* t_x = T: nothing has happened since the last purchase. */
    assert_rel(cp_btyd_p_alive(CP_BTYD_BGNBD, &fhl, 5, 38.86, 38.86),
               1.0 / (1.0 + 0.793 / (2.426 + 4)), 1e-12);
}

static void test_expected_matches_naive(void **unused)
{
    (void)unused;
    const double ts[] = {1.0, 39.0, 200.0};
    for (size_t k = 0; k < N_CHECK_PARAMS; k++) {
        const cp_btyd_params_t *p = &check_params[k];
        for (size_t i = 0; i < N_CUSTS; i++) {
            double x = custs[i].x, t_x = custs[i].t_x, T = custs[i].T;
            for (size_t j = 0; j < 3; j++) {
                /* The naive series needs z = t/(alpha+T+t) <= 0.9. */
                if (ts[j] / (p->alpha + T + ts[j]) > 0.9)
                    continue;
                for (int mbg = 0; mbg < 2; mbg++) {
                    double e;
                    assert_ok(cp_btyd_expected_cond((cp_btyd_model_t)mbg, p, x,
                                                    t_x, T, ts[j], &e));
                    assert_rel(e, naive_expected(mbg, p, x, t_x, T, ts[j]),
                               1e-9);
                }
            }
        }
    }
    double e;
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &fhl, 2, 30, 38, 0, &e));
    assert_true(e == 0.0);
}

static void test_expected_uncond_matches_naive(void **unused)
{
    (void)unused;
    const double ts[] = {0.5, 1.0, 10.0, 39.0};
    for (size_t k = 0; k < N_CHECK_PARAMS; k++) {
        for (size_t j = 0; j < 4; j++) {
            for (int mbg = 0; mbg < 2; mbg++) {
                double e;
                assert_ok(cp_btyd_expected_uncond((cp_btyd_model_t)mbg,
                                                  &check_params[k], ts[j], &e));
                assert_rel(e, naive_uncond(mbg, &check_params[k], ts[j]), 1e-9);
            }
        }
    }
}

/* Published examples with the fitted parameters: FHL's customer (x = 2,
 * t_x = 30.43, T = 38.86) is expected to buy 1.226 times in the next 39
 * weeks; Fader & Hardie's spreadsheet gives E[X(t)] for a new customer
 * (the figures lifetimes' tests use). */
static void test_published_examples(void **unused)
{
    (void)unused;
    const cp_btyd_fit_t *fit = fitted(CP_BTYD_BGNBD);
    double e;
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &fit->par, 2, 30.43, 38.86,
                                    39, &e));
    double pa = cp_btyd_p_alive(CP_BTYD_BGNBD, &fit->par, 2, 30.43, 38.86);
    print_message("E[Y(39) | 2, 30.43, 38.86] = %.6f, P(alive) = %.6f\n", e,
                  pa);
    assert_near(e, 1.226, 0.001);
    assert_rel(pa, naive_p_alive(0, &fit->par, 2, 30.43, 38.86), 1e-12);
    assert_near(pa, 0.7266, 0.0001);

    const double ts[] = {0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0};
    const double published[] = {0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576};
    for (size_t i = 0; i < 6; i++) {
        assert_ok(cp_btyd_expected_uncond(CP_BTYD_BGNBD, &fit->par, ts[i], &e));
        /* 1.8580 at 78 weeks: the sheet rounds its parameters. */
        assert_near(e, published[i], 0.0005);
    }
    /* x = 0 under BG/NBD: P(alive) = 1 whatever T. */
    assert_true(cp_btyd_p_alive(CP_BTYD_BGNBD, &fit->par, 0, 0, 1000) == 1.0);
}

/* ---------------------------------------------------------------------------
 * Hypergeometric function
 * ------------------------------------------------------------------------ */

static void test_hyp2f1_closed_forms(void **unused)
{
    (void)unused;
    double f;
    /* 2F1(1,1;2;z) = -log(1-z)/z; c - a - b = 0 is an integer, so z near
     * 1 takes the long series. */
    const double zs[] = {0.1, 0.5, 0.9, 0.95, 0.999};
    for (size_t i = 0; i < 5; i++) {
        assert_ok(cp_btyd_hyp2f1(1, 1, 2, zs[i], &f));
        assert_rel(f, -log1p(-zs[i]) / zs[i], 1e-12);
    }
    /* 2F1(a,b;b;z) = (1-z)^-a: near 1 through A&S 15.3.6 (c-a-b = -0.7),
     * below 0 through Pfaff. */
    const double zs2[] = {0.3, 0.97, 0.99999, -0.5, -5.0, -1000.0};
    for (size_t i = 0; i < 6; i++) {
        assert_ok(cp_btyd_hyp2f1(0.7, 2.3, 2.3, zs2[i], &f));
        assert_rel(f, pow(1.0 - zs2[i], -0.7), 1e-12);
    }
    /* Gauss: 2F1(a,b;c;1) = G(c)G(c-a-b)/(G(c-a)G(c-b)) when c > a + b. */
    assert_ok(cp_btyd_hyp2f1(0.3, 0.7, 2.5, 1.0 - 1e-12, &f));
    assert_rel(f, tgamma(2.5) * tgamma(1.5) / (tgamma(2.2) * tgamma(1.8)),
               1e-9);
    /* A terminating series stops before the pole of c = -5. */
    assert_ok(cp_btyd_hyp2f1(-3, 2, -5, 0.5, &f));
    assert_rel(f, 1.875, 1e-15);
    assert_ok(cp_btyd_hyp2f1(1, 1, 2, 0.0, &f));
    assert_true(f == 1.0);
}

static void test_hyp2f1_matches_naive(void **unused)
{
    (void)unused;
    const double cases[][4] = {
        {0.243, 2.426, 2.219, 0.47}, {2.243, 4.426, 4.219, 0.8},
        {0.5, -0.2, 3.1, 0.9},       {1.7, 2.2, -2.5, 0.4},
        {30.2, 0.3, 31.1, 0.85},     {-0.5, 0.5, 0.25, 0.6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double f;
        assert_ok(cp_btyd_hyp2f1(cases[i][0], cases[i][1], cases[i][2],
                                 cases[i][3], &f));
        assert_rel(f,
                   (double)naive_2f1(cases[i][0], cases[i][1], cases[i][2],
                                     cases[i][3]),
                   1e-12);
    }
}

/* What cannot be computed to full precision is reported, not returned. */
static void test_hyp2f1_reports_failure(void **unused)
{
    (void)unused;
    double f = 0.0;
    /* c - a - b = 0 (no transformation) and 1 - z = 1e-6: the series
     * would need ~4e7 terms. */
    assert_int_equal(cp_btyd_hyp2f1(1, 1, 2, 1.0 - 1e-6, &f), CP_BTYD_ENUMERIC);
    assert_true(isnan(f));
    /* Pole: c = -2 with a non-terminating series. */
    assert_int_equal(cp_btyd_hyp2f1(1, 1, -2, 0.5, &f), CP_BTYD_ENUMERIC);
    assert_true(isnan(f));
    assert_int_equal(cp_btyd_hyp2f1(1, 1, 2, 1.0, &f), CP_BTYD_EINVAL);
    assert_int_equal(cp_btyd_hyp2f1(1, 1, 2, 1.5, &f), CP_BTYD_EINVAL);
    assert_int_equal(cp_btyd_hyp2f1(NAN, 1, 2, 0.5, &f), CP_BTYD_EINVAL);
    assert_int_equal(cp_btyd_hyp2f1(1, 1, INFINITY, 0.5, &f), CP_BTYD_EINVAL);
    assert_true(isnan(f));
    /* Alternating terms far larger than the sum: digits lost. */
    assert_int_equal(cp_btyd_hyp2f1(-60.5, 40, 1, 0.9, &f), CP_BTYD_ENUMERIC);
}

/* ---------------------------------------------------------------------------
 * Extreme values
 * ------------------------------------------------------------------------ */

/* Every function gives a finite value in range, or an error status with
 * NaN: never a silent NaN or inf. Errors are accepted only where z =
 * t / (alpha + T + t) > fail_z (1: never). */
static void check_extremes(const cp_btyd_params_t *p, double fail_z)
{
    static const struct {
        double x, t_x, T;
    } ext[] = {
        {0, 0, 1e9},  {1, 1, 1e9},      {1000, 38, 38.86}, {1000, 1e9, 1e9},
        {0, 0, 1e-9}, {1000, 0, 38.86}, {3, 1e-9, 1e-9},   {1, 0, 1e300},
    };
    const double ts[] = {1e-9, 39.0, 1e7};
    for (int mbg = 0; mbg < 2; mbg++) {
        cp_btyd_model_t model = (cp_btyd_model_t)mbg;
        for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
            double x = ext[i].x, t_x = ext[i].t_x, T = ext[i].T;
            double ll = cp_btyd_loglik(model, p, x, t_x, T);
            double pa = cp_btyd_p_alive(model, p, x, t_x, T);
            if (!isfinite(ll) || !(pa >= 0.0 && pa <= 1.0))
                fail_msg("model %d x=%g t_x=%g T=%g: LL %g P(alive) %g", mbg, x,
                         t_x, T, ll, pa);
            /* x = 0: LL is the log of a probability (up to rounding). */
            if (x == 0 && !(ll <= 1e-12))
                fail_msg("model %d T=%g: LL %g > 0", mbg, T, ll);
            for (size_t j = 0; j < 3; j++) {
                double e, z = ts[j] / (p->alpha + T + ts[j]);
                cp_btyd_status_t st =
                    cp_btyd_expected_cond(model, p, x, t_x, T, ts[j], &e);
                int good = st == CP_BTYD_OK && isfinite(e) && e >= 0.0;
                int reported = st == CP_BTYD_ENUMERIC && isnan(e);
                if (!good && !(reported && z > fail_z))
                    fail_msg("model %d x=%g t_x=%g T=%g t=%g: st %d E %g", mbg,
                             x, t_x, T, ts[j], st, e);
            }
        }
    }
}

/* Up to this z the long series always converges; above it only the 1 - z
 * transformation remains, which needs c - a - b off the integers (and a
 * != 1) and moderate parameters; otherwise the failure is reported
 * (docs/btyd.md). Ten years ahead of a new customer is z ~ 0.992. */
#define Z_SERIES_LIMIT 0.9995

static void test_extremes_at_fitted_params(void **unused)
{
    (void)unused;
    check_extremes(&fitted(CP_BTYD_BGNBD)->par, 1.0);
    check_extremes(&fitted(CP_BTYD_MBGNBD)->par, 1.0);
    check_extremes(&check_params[0], 1.0);
    /* r + 1 - a = 0: the 1 - z transformation does not apply. */
    check_extremes(&check_params[1], Z_SERIES_LIMIT);
    check_extremes(&check_params[2], Z_SERIES_LIMIT);
    /* a = 1 exactly: the (a-1) division is removable, but only the series
     * can do it. */
    cp_btyd_params_t one = {0.243, 4.414, 1.0, 2.426};
    check_extremes(&one, Z_SERIES_LIMIT);
    double e0, e1;
    assert_ok(
        cp_btyd_expected_cond(CP_BTYD_BGNBD, &one, 2, 30.43, 38.86, 39, &e0));
    one.a = 1.0 + 1e-7;
    assert_ok(
        cp_btyd_expected_cond(CP_BTYD_BGNBD, &one, 2, 30.43, 38.86, 39, &e1));
    assert_near(e0, e1, 1e-7);
    one.a = 1.001; /* compared with the naive form, which divides by a-1 */
    assert_ok(
        cp_btyd_expected_cond(CP_BTYD_BGNBD, &one, 2, 30.43, 38.86, 39, &e1));
    assert_rel(e1, naive_expected(0, &one, 2, 30.43, 38.86, 39), 1e-9);
    /* Ten years ahead in days of a customer fitted in days: z = 0.99. */
    cp_btyd_params_t days = check_params[0];
    days.alpha *= 7.0;
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &days, 2, 30.43 * 7,
                                    38.86 * 7, 3652.5 * 10, &e0));
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &check_params[0], 2, 30.43,
                                    38.86, 3652.5 * 10 / 7, &e1));
    assert_rel(e0, e1, 1e-12);
}

/* The degenerate case is reported, not returned: at t = 1e7, r + 1 - a = 0
 * leaves only a series that would need ~1e7 terms. A hair off the integer
 * the transformation applies again and agrees with the neighbours. */
static void test_expected_reports_degenerate_case(void **unused)
{
    (void)unused;
    cp_btyd_params_t p = check_params[1];
    double e = 0.0, lo, hi;
    assert_int_equal(
        cp_btyd_expected_cond(CP_BTYD_BGNBD, &p, 0, 0, 1e-9, 1e7, &e),
        CP_BTYD_ENUMERIC);
    assert_true(isnan(e));
    p.a = 2.5 + 1e-4;
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &p, 0, 0, 1e-9, 1e7, &lo));
    p.a = 2.5 + 2e-4;
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &p, 0, 0, 1e-9, 1e7, &hi));
    p.a = 2.5 + 3e-4;
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &p, 0, 0, 1e-9, 1e7, &e));
    /* Smooth in a: the middle value is the mean of its neighbours. */
    assert_rel(hi, (lo + e) / 2, 1e-6);
}

/* Parameters at the ends of what an optimiser on log-parameters can
 * reach: the likelihood stays finite; expectations may be reported as
 * failures when rounding would dominate. */
static void test_extremes_at_parameter_bounds(void **unused)
{
    (void)unused;
    const double lo = 1e-8, hi = 1e8;
    for (int mask = 0; mask < 16; mask++) {
        cp_btyd_params_t p = {mask & 1 ? hi : lo, mask & 2 ? hi : lo,
                              mask & 4 ? hi : lo, mask & 8 ? hi : lo};
        check_extremes(&p, 0.0);
    }
    /* No dropout in sight (b huge) with ordinary r: still computed. */
    cp_btyd_params_t nbd = {0.5, 5.0, 1.3, 1e8};
    check_extremes(&nbd, Z_SERIES_LIMIT);
    double e;
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &nbd, 2, 30, 38, 10, &e));
    /* Then BG/NBD is the NBD: E = (r + x) t / (alpha + T). */
    assert_rel(e, 2.5 * 10 / 43.0, 1e-6);
}

static void test_domain_errors(void **unused)
{
    (void)unused;
    cp_btyd_params_t bad = fhl;
    bad.a = 0;
    double e;
    assert_true(isnan(cp_btyd_loglik(CP_BTYD_BGNBD, &bad, 1, 1, 2)));
    assert_true(isnan(cp_btyd_p_alive(CP_BTYD_BGNBD, &bad, 1, 1, 2)));
    assert_int_equal(cp_btyd_expected_cond(CP_BTYD_BGNBD, &bad, 1, 1, 2, 1, &e),
                     CP_BTYD_EINVAL);
    assert_true(isnan(e));
    assert_true(isnan(cp_btyd_loglik(CP_BTYD_BGNBD, &fhl, 1, 3, 2)));
    assert_true(isnan(cp_btyd_loglik(CP_BTYD_BGNBD, &fhl, 0, 1, 2)));
    assert_true(isnan(cp_btyd_p_alive(CP_BTYD_MBGNBD, &fhl, -1, 0, 2)));
    assert_true(isnan(cp_btyd_loglik((cp_btyd_model_t)2, &fhl, 1, 1, 2)));
    assert_int_equal(
        cp_btyd_expected_cond(CP_BTYD_BGNBD, &fhl, 1, 1, 2, -1, &e),
        CP_BTYD_EINVAL);
    assert_int_equal(cp_btyd_expected_uncond(CP_BTYD_BGNBD, &fhl, NAN, &e),
                     CP_BTYD_EINVAL);
    assert_true(isnan(cp_btyd_gg_loglik(&fhl_gg, 0, 10)));
    assert_true(isnan(cp_btyd_gg_loglik(&fhl_gg, 1, 0)));
    cp_btyd_gg_params_t q_low = {6.25, 0.5, 15.44};
    assert_true(isnan(cp_btyd_gg_expected_value(&q_low, 0, 0)));
    assert_string_equal(cp_btyd_status_str(CP_BTYD_OK), "converged");
    assert_string_equal(cp_btyd_status_str(CP_BTYD_ENUMERIC),
                        "numerical failure (series did not converge)");
    assert_string_equal(cp_btyd_status_str((cp_btyd_status_t)42),
                        "unknown status");
}

/* ---------------------------------------------------------------------------
 * MBG/NBD: the single-purchase remedy
 * ------------------------------------------------------------------------ */

static void test_mbgnbd_single_purchase_fades(void **unused)
{
    (void)unused;
    const cp_btyd_params_t *p = &fitted(CP_BTYD_MBGNBD)->par;
    const double Ts[] = {0.5, 1, 5, 10, 38.86, 100, 1000, 1e6};
    double prev_pa = 1.0, prev_e = HUGE_VAL;
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        double pa = cp_btyd_p_alive(CP_BTYD_MBGNBD, p, 0, 0, Ts[i]);
        double e;
        assert_ok(
            cp_btyd_expected_cond(CP_BTYD_MBGNBD, p, 0, 0, Ts[i], 39, &e));
        if (!(pa < prev_pa) || !(e < prev_e))
            fail_msg("T = %g: P(alive) %g (before %g), E %g (before %g)", Ts[i],
                     pa, prev_pa, e, prev_e);
        prev_pa = pa;
        prev_e = e;
        /* BG/NBD keeps such a customer alive forever. */
        assert_true(cp_btyd_p_alive(CP_BTYD_BGNBD, p, 0, 0, Ts[i]) == 1.0);
    }
    /* Even at T = 0 the customer may already have left: b / (a + b). */
    assert_rel(cp_btyd_p_alive(CP_BTYD_MBGNBD, p, 0, 0, 1e-12),
               p->b / (p->a + p->b), 1e-9);
    /* CDNOW's typical one-off buyer. */
    double pa = cp_btyd_p_alive(CP_BTYD_MBGNBD, p, 0, 0, 38.86);
    print_message("MBG/NBD P(alive | x = 0, T = 38.86) = %.6f\n", pa);
    assert_true(pa < 0.5);
}

/* ---------------------------------------------------------------------------
 * Gamma-Gamma closed forms
 * ------------------------------------------------------------------------ */

static void test_gg_matches_naive(void **unused)
{
    (void)unused;
    /* The naive product must stay within double range: valgrind runs
     * long double at double precision and range. */
    const double cases[][2] = {{1, 11.77}, {2, 22.35}, {10, 41.2}, {5, 0.5}};
    for (size_t i = 0; i < 4; i++) {
        double x = cases[i][0], zbar = cases[i][1];
        assert_rel(cp_btyd_gg_loglik(&fhl_gg, x, zbar),
                   naive_gg_loglik(&fhl_gg, x, zbar), 1e-11);
        assert_rel(cp_btyd_gg_expected_value(&fhl_gg, x, zbar),
                   naive_gg_value(&fhl_gg, x, zbar), 1e-13);
    }
    /* x = 0: the population mean p v / (q - 1). */
    assert_rel(cp_btyd_gg_expected_value(&fhl_gg, 0, 0), 6.25 * 15.44 / 2.74,
               1e-14);
}

/* ---------------------------------------------------------------------------
 * CLV
 * ------------------------------------------------------------------------ */

static double clv(const cp_btyd_clv_spec_t *spec, double x, double t_x,
                  double T, double zbar)
{
    double out;
    assert_ok(
        cp_btyd_clv(CP_BTYD_BGNBD, &fhl, &fhl_gg, spec, x, t_x, T, zbar, &out));
    return out;
}

/* H = 1 and 2 by hand from the naive expectation. */
static void test_clv_small_horizon(void **unused)
{
    (void)unused;
    const double L = 30.4375 / 7.0, d = 0.01;
    for (size_t i = 0; i < 3; i++) {
        double x = custs[i].x, t_x = custs[i].t_x, T = custs[i].T;
        double zbar = x > 0 ? 20.0 : 0.0;
        double m = naive_gg_value(&fhl_gg, x, zbar);
        double e1 = naive_expected(0, &fhl, x, t_x, T, L);
        double e2 = naive_expected(0, &fhl, x, t_x, T, 2 * L);
        cp_btyd_clv_spec_t spec = {1, d, CP_BTYD_WEEKS};
        assert_rel(clv(&spec, x, t_x, T, zbar), e1 * m / (1 + d), 1e-9);
        spec.horizon_months = 2;
        assert_rel(clv(&spec, x, t_x, T, zbar),
                   e1 * m / (1 + d) + (e2 - e1) * m / ((1 + d) * (1 + d)),
                   1e-9);
        spec.horizon_months = 0;
        assert_true(clv(&spec, x, t_x, T, zbar) == 0.0);
    }
    assert_rel(cp_btyd_month_length(CP_BTYD_DAYS), 30.4375, 1e-15);
    assert_rel(cp_btyd_month_length(CP_BTYD_WEEKS), 30.4375 / 7, 1e-15);
}

static void test_clv_discount_and_horizon(void **unused)
{
    (void)unused;
    cp_btyd_clv_spec_t spec = {12, 0.0, CP_BTYD_WEEKS};
    double c0 = clv(&spec, 2, 30.43, 38.86, 22.35);
    spec.monthly_discount = 0.01;
    double c1 = clv(&spec, 2, 30.43, 38.86, 22.35);
    spec.monthly_discount = 0.1;
    double c10 = clv(&spec, 2, 30.43, 38.86, 22.35);
    print_message("CLV 12 months, d = 0 / 0.01 / 0.1: %.4f / %.4f / %.4f\n", c0,
                  c1, c10);
    assert_true(c0 > c1 && c1 > c10 && c10 > 0.0);
    /* Undiscounted: E[Y(12 L)] * E[M] exactly (the sum telescopes). */
    double e12;
    assert_ok(cp_btyd_expected_cond(CP_BTYD_BGNBD, &fhl, 2, 30.43, 38.86,
                                    12 * 30.4375 / 7, &e12));
    assert_rel(c0, e12 * cp_btyd_gg_expected_value(&fhl_gg, 2, 22.35), 1e-12);
    /* Longer horizon, more value; ten years still computes. */
    spec.monthly_discount = 0.01;
    spec.horizon_months = 120;
    assert_true(clv(&spec, 2, 30.43, 38.86, 22.35) > c1);

    /* The same model in days gives the same CLV. */
    cp_btyd_params_t days = fhl;
    days.alpha *= 7.0;
    spec.monthly_discount = 0.01;
    spec.horizon_months = 12;
    cp_btyd_clv_spec_t dspec = {12, 0.01, CP_BTYD_DAYS};
    double cd;
    assert_ok(cp_btyd_clv(CP_BTYD_BGNBD, &days, &fhl_gg, &dspec, 2, 30.43 * 7,
                          38.86 * 7, 22.35, &cd));
    assert_rel(cd, c1, 1e-12);

    /* Errors. */
    double out;
    spec.monthly_discount = -0.5;
    assert_int_equal(
        cp_btyd_clv(CP_BTYD_BGNBD, &fhl, &fhl_gg, &spec, 2, 30, 38, 20, &out),
        CP_BTYD_EINVAL);
    assert_true(isnan(out));
    spec.monthly_discount = 0.01;
    cp_btyd_gg_params_t q_low = {6.25, 0.5, 15.44};
    assert_int_equal(
        cp_btyd_clv(CP_BTYD_BGNBD, &fhl, &q_low, &spec, 0, 0, 38, 0, &out),
        CP_BTYD_ENUMERIC);
}

/* ---------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------ */

/* Weighted rows: the CDNOW customers grouped by equal (x, t_x, T) fit to
 * the same optimum as the customers one by one (what `custpulse fit` does
 * for a large population); weights must be positive and finite. */
static void test_weighted_rows_equal_customers(void **unused)
{
    (void)unused;
    static double gx[CDNOW_N], gtx[CDNOW_N], gT[CDNOW_N], gw[CDNOW_N];
    size_t n = 0;
    for (size_t i = 0; i < CDNOW_N; i++) {
        size_t j = 0;
        while (j < n &&
               !(gx[j] == cd_x[i] && gtx[j] == cd_tx[i] && gT[j] == cd_T[i]))
            j++;
        if (j == n) {
            gx[n] = cd_x[i];
            gtx[n] = cd_tx[i];
            gT[n] = cd_T[i];
            gw[n++] = 0.0;
        }
        gw[j] += 1.0;
    }
    assert_true(n < CDNOW_N); /* CDNOW has repeated summaries */
    cp_btyd_data_t grouped = {gx, gtx, gT, NULL, n, gw};
    assert_rel(cp_btyd_loglik_sum(CP_BTYD_BGNBD, &fhl, &grouped),
               cp_btyd_loglik_sum(CP_BTYD_BGNBD, &fhl, &cdnow), 1e-12);
    cp_btyd_fit_t fit;
    assert_ok(cp_btyd_fit(CP_BTYD_BGNBD, &grouped, NULL, &fit));
    const cp_btyd_fit_t *ref = fitted(CP_BTYD_BGNBD);
    printf("  grouped: %zu rows for %zu customers\n", n, (size_t)CDNOW_N);
    assert_int_equal(fit.info.n_used, CDNOW_N);
    assert_rel(fit.info.loglik, ref->info.loglik, 1e-12);
    assert_rel(fit.par.r, ref->par.r, 1e-5);
    assert_rel(fit.par.alpha, ref->par.alpha, 1e-5);
    assert_rel(fit.par.a, ref->par.a, 1e-5);
    assert_rel(fit.par.b, ref->par.b, 1e-5);
    assert_rel(fit.se.r, ref->se.r, 1e-3);
    gw[0] = 0.0;
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &grouped, NULL, &fit),
                     CP_BTYD_EINVAL);
    gw[0] = NAN;
    assert_int_equal(cp_btyd_fit(CP_BTYD_BGNBD, &grouped, NULL, &fit),
                     CP_BTYD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bgnbd_fit_reproduces_fhl),
        cmocka_unit_test(test_mbgnbd_fit_reproduces_btydplus),
        cmocka_unit_test(test_gg_fit_reproduces_note),
        cmocka_unit_test(test_fit_in_days),
        cmocka_unit_test(test_weighted_rows_equal_customers),
        cmocka_unit_test(test_fit_rejects_bad_data),
        cmocka_unit_test(test_fit_budget_exhausted),
        cmocka_unit_test(test_fit_from_init),
        cmocka_unit_test(test_loglik_matches_naive),
        cmocka_unit_test(test_loglik_sum_is_sum),
        cmocka_unit_test(test_p_alive_matches_naive),
        cmocka_unit_test(test_expected_matches_naive),
        cmocka_unit_test(test_expected_uncond_matches_naive),
        cmocka_unit_test(test_published_examples),
        cmocka_unit_test(test_hyp2f1_closed_forms),
        cmocka_unit_test(test_hyp2f1_matches_naive),
        cmocka_unit_test(test_hyp2f1_reports_failure),
        cmocka_unit_test(test_extremes_at_fitted_params),
        cmocka_unit_test(test_expected_reports_degenerate_case),
        cmocka_unit_test(test_extremes_at_parameter_bounds),
        cmocka_unit_test(test_domain_errors),
        cmocka_unit_test(test_mbgnbd_single_purchase_fades),
        cmocka_unit_test(test_gg_matches_naive),
        cmocka_unit_test(test_clv_small_horizon),
        cmocka_unit_test(test_clv_discount_and_horizon),
    };
    return cmocka_run_group_tests(tests, load_cdnow, NULL);
}
