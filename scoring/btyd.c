/*
 * btyd.c - BG/NBD, MBG/NBD and Gamma-Gamma: likelihoods, predictions,
 * maximum likelihood fits and CLV.
 *
 * Formulas, numerics and references are in docs/btyd.md. BG/NBD and
 * MBG/NBD share one code path: MBG/NBD is BG/NBD with one more dropout
 * opportunity (right after the first purchase), so every Beta term uses
 * k = x + shift dropout opportunities with shift 0 (BG) or 1 (MBG).
 *
 * Everything is in log space where it can overflow; the hypergeometric
 * function is evaluated through Euler's transformation so that its
 * parameters stay small even for large x. Pure: no I/O, no clock, no
 * allocation (the optimiser keeps its simplex on the stack). lgamma_r is
 * used instead of lgamma, which writes the global signgam.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "btyd.h"

/* ---------------------------------------------------------------------------
 * Status
 * ------------------------------------------------------------------------ */

const char *cp_btyd_status_str(cp_btyd_status_t st)
{
    switch (st) {
#define CP__BTYD_STATUS_STR(name, val, msg)                                    \
    case CP_BTYD_##name:                                                       \
        return msg;
        CP_BTYD_STATUS_MAP(CP__BTYD_STATUS_STR)
#undef CP__BTYD_STATUS_STR
    }
    return "unknown status";
}

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static double lgam(double x)
{
    int sign;
    return lgamma_r(x, &sign);
}

/* log|Gamma(x)| and its sign; 0 at a pole (x = 0, -1, ...), where 1/Gamma
 * is 0. */
static int lgam_signed(double x, double *lg, int *sign)
{
    if (x <= 0.0 && x == floor(x))
        return 0;
    *lg = lgamma_r(x, sign);
    return 1;
}

static double logaddexp(double u, double v)
{
    double hi = u > v ? u : v;
    double lo = u > v ? v : u;
    return hi + log1p(exp(lo - hi));
}

/* expm1(d * l) / d, continuous at d = 0. */
static double expm1_ratio(double d, double l)
{
    return d == 0.0 ? l : expm1(d * l) / d;
}

static int pos_finite(double v)
{
    return isfinite(v) && v > 0.0;
}

static int params_ok(const cp_btyd_params_t *par)
{
    return par != NULL && pos_finite(par->r) && pos_finite(par->alpha) &&
           pos_finite(par->a) && pos_finite(par->b);
}

static int gg_params_ok(const cp_btyd_gg_params_t *par)
{
    return par != NULL && pos_finite(par->p) && pos_finite(par->q) &&
           pos_finite(par->v);
}

/* The domain of one customer's summary (see btyd.h). */
static int cust_ok(double x, double t_x, double T)
{
    if (!isfinite(x) || !isfinite(t_x) || !pos_finite(T) || x < 0.0)
        return 0;
    if (t_x < 0.0 || t_x > T)
        return 0;
    return x > 0.0 || t_x == 0.0;
}

static int model_ok(cp_btyd_model_t model)
{
    return model == CP_BTYD_BGNBD || model == CP_BTYD_MBGNBD;
}

/* Dropout opportunities before T beyond the x repeat purchases. */
static double model_shift(cp_btyd_model_t model)
{
    return model == CP_BTYD_MBGNBD ? 1.0 : 0.0;
}

/* ---------------------------------------------------------------------------
 * Gauss hypergeometric function
 * ------------------------------------------------------------------------ */

/* Relative size of the bound on the remaining terms at which a series
 * stops. */
#define HYP_EPS 1e-16
/* Largest term / |sum| a series may see before cancellation is deemed to
 * have cost too many digits (leaves about 8 correct). */
#define HYP_MAX_GROWTH (1e-8 / DBL_EPSILON)
/* Terms of one series: enough for z up to about 1 - 5e-4 at full
 * precision (docs/btyd.md, "Limits"). */
#define HYP_MAX_ITER 200000L
/* Terms tried before the transformation when z is near 1. */
#define HYP_SHORT_ITER 2000L
/* Up to here the plain series is used. */
#define HYP_Z_DIRECT 0.9
/* c - a - b closer than this to an integer: A&S 15.3.6 would cancel more
 * than 5 digits (its two terms grow like 1 / distance). */
#define HYP_NEAR_INT 1e-5
/* Largest (|t1| + |t2|) / |t1 + t2| accepted from the two terms of the
 * transformation. */
#define HYP_MAX_CANCEL 1e6

/* Power series of 2F1(a, b; c; z) (tail = 0), or of (2F1 - 1) / b
 * (tail = 1), which has the same term ratio and stays finite as b -> 0.
 * Stops when |term| * rho / (1 - rho), a bound on the rest once the factors
 * have settled (rho = max(|ratio|, |z|) < 1), is below HYP_EPS * |sum|. */
static cp_btyd_status_t hyp_series(double a, double b, double c, double z,
                                   int tail, long max_iter, double *out)
{
    double term = 1.0;
    long n = 0;
    if (tail) {
        if (c == 0.0)
            return CP_BTYD_ENUMERIC;
        term = a * z / c;
        n = 1;
    }
    double sum = term;
    double big = fabs(term);
    /* From here on a + n, b + n and c + n keep their signs. */
    double settle = fmax(fmax(-a, -b), fmax(-c, 0.0));
    int done = 0;
    for (; n < max_iter && !done; n++) {
        if (term == 0.0) {
            done = 1; /* terminating series, or underflow */
            break;
        }
        double cn = c + (double)n;
        if (cn == 0.0)
            return CP_BTYD_ENUMERIC; /* pole: c = 0, -1, -2, ... */
        double ratio =
            (a + (double)n) * (b + (double)n) / (cn * (double)(n + 1)) * z;
        term *= ratio;
        sum += term;
        big = fmax(big, fabs(term));
        if (!isfinite(sum))
            return CP_BTYD_ENUMERIC;
        double rho = fmax(fabs(ratio), fabs(z));
        if ((double)n + 1.0 > settle && rho < 1.0 &&
            fabs(term) * rho <= HYP_EPS * (1.0 - rho) * fabs(sum))
            done = 1;
    }
    if (!done && term != 0.0)
        return CP_BTYD_ENUMERIC; /* iteration limit */
    if (big > HYP_MAX_GROWTH * fabs(sum))
        return CP_BTYD_ENUMERIC; /* cancellation ate the digits */
    *out = sum;
    return CP_BTYD_OK;
}

/* One term coef * series of A&S 15.3.6: sign_c * exp(lg_c + log_pre) *
 * Gamma(g1) / (Gamma(d1) Gamma(d2)) * 2F1(a, b; c; w). 0 when a
 * denominator Gamma has a pole. */
static cp_btyd_status_t hyp_transform_term(double lg_c, int sign_c,
                                           double log_pre, double g1, double d1,
                                           double d2, double a, double b,
                                           double c, double w, double *out)
{
    double lg1, lgd1, lgd2;
    int s1, sd1, sd2;
    *out = 0.0;
    if (!lgam_signed(d1, &lgd1, &sd1) || !lgam_signed(d2, &lgd2, &sd2))
        return CP_BTYD_OK;
    if (!lgam_signed(g1, &lg1, &s1))
        return CP_BTYD_ENUMERIC;
    double f;
    cp_btyd_status_t st = hyp_series(a, b, c, w, 0, HYP_MAX_ITER, &f);
    if (st != CP_BTYD_OK)
        return st;
    if (f == 0.0)
        return CP_BTYD_OK;
    double lg = lg_c + log_pre + lg1 - lgd1 - lgd2 + log(fabs(f));
    int sign = sign_c * s1 * sd1 * sd2 * (f < 0.0 ? -1 : 1);
    *out = sign * exp(lg);
    return isfinite(*out) ? CP_BTYD_OK : CP_BTYD_ENUMERIC;
}

/* 2F1 for z near 1 through the 1 - z transformation (A&S 15.3.6):
 *   G(c)G(c-a-b)/(G(c-a)G(c-b)) F(a, b; a+b-c+1; 1-z)
 *   + (1-z)^(c-a-b) G(c)G(a+b-c)/(G(a)G(b)) F(c-a, c-b; c-a-b+1; 1-z).
 * Not applicable when c - a - b is (near) an integer. */
static cp_btyd_status_t hyp_transform(double a, double b, double c, double z,
                                      double *out)
{
    double m = c - a - b;
    if (fabs(m - nearbyint(m)) < HYP_NEAR_INT)
        return CP_BTYD_ENUMERIC;
    double lg_c;
    int sign_c;
    if (!lgam_signed(c, &lg_c, &sign_c))
        return CP_BTYD_ENUMERIC;
    double w = 1.0 - z;
    double t1, t2;
    cp_btyd_status_t st = hyp_transform_term(lg_c, sign_c, 0.0, m, c - a, c - b,
                                             a, b, 1.0 - m, w, &t1);
    if (st != CP_BTYD_OK)
        return st;
    st = hyp_transform_term(lg_c, sign_c, m * log(w), -m, a, b, c - a, c - b,
                            1.0 + m, w, &t2);
    if (st != CP_BTYD_OK)
        return st;
    double sum = t1 + t2;
    if (!isfinite(sum) || fabs(t1) + fabs(t2) > HYP_MAX_CANCEL * fabs(sum))
        return CP_BTYD_ENUMERIC;
    *out = sum;
    return CP_BTYD_OK;
}

/* 2F1 for 0 <= z < 1. */
static cp_btyd_status_t hyp_unit(double a, double b, double c, double z,
                                 double *out)
{
    if (z <= HYP_Z_DIRECT)
        return hyp_series(a, b, c, z, 0, HYP_MAX_ITER, out);
    /* Near 1: a short series when c is large next to a and b, else the
     * transformation, else a long series. */
    if (hyp_series(a, b, c, z, 0, HYP_SHORT_ITER, out) == CP_BTYD_OK)
        return CP_BTYD_OK;
    if (hyp_transform(a, b, c, z, out) == CP_BTYD_OK)
        return CP_BTYD_OK;
    return hyp_series(a, b, c, z, 0, HYP_MAX_ITER, out);
}

cp_btyd_status_t cp_btyd_hyp2f1(double a, double b, double c, double z,
                                double *out)
{
    *out = NAN;
    if (!isfinite(a) || !isfinite(b) || !isfinite(c) || !isfinite(z) ||
        z >= 1.0)
        return CP_BTYD_EINVAL;
    double f;
    cp_btyd_status_t st;
    if (z >= 0.0) {
        st = hyp_unit(a, b, c, z, &f);
    } else {
        /* Pfaff: (1-z)^-a F(a, c-b; c; z/(z-1)), argument in (0, 1). */
        st = hyp_unit(a, c - b, c, z / (z - 1.0), &f);
        f *= exp(-a * log1p(-z));
    }
    if (st != CP_BTYD_OK)
        return st;
    if (!isfinite(f))
        return CP_BTYD_ENUMERIC;
    *out = f;
    return CP_BTYD_OK;
}

/* ---------------------------------------------------------------------------
 * BG/NBD and MBG/NBD
 * ------------------------------------------------------------------------ */

/* Log-likelihood from its parts:
 *   lg_rx   = lgamma(r + x) - lgamma(r)
 *   lg_beta = log B(a, b + k) - log B(a, b),  k = x + shift.
 * L = B(a,b+k)/B(a,b) G(r+x)/G(r) alpha^r / (alpha+T)^(r+x)
 *   + [k > 0] B(a,b+k)/B(a,b) a/(b+k-1) G(r+x)/G(r) alpha^r
 *     / (alpha+t_x)^(r+x).
 * alpha^r / (alpha+T)^(r+x) is taken as exp(-r log1p(T/alpha) - x
 * log(alpha+T)): r log(alpha) and r log(alpha+T) cancel when r is large. */
static double bg_loglik_parts(const cp_btyd_params_t *par, double shift,
                              double x, double t_x, double T, double lg_rx,
                              double lg_beta)
{
    double k = x + shift;
    double r = par->r, alpha = par->alpha;
    double a3 = -r * log1p(T / alpha) - x * log(alpha + T);
    if (k <= 0.0)
        return lg_rx + lg_beta + a3;
    double a4 = log(par->a) - log(par->b + (k - 1.0)) - r * log1p(t_x / alpha) -
                x * log(alpha + t_x);
    return lg_rx + lg_beta + logaddexp(a3, a4);
}

/* Whole x below this use sums of logs (Gamma(y + 1) = y Gamma(y)) instead
 * of differences of lgamma: exact to rounding even where lgamma is huge
 * (a + b = 1e8), and cheap in the fit, which tabulates them once per
 * evaluation. */
#define LL_TABLE 64

static int small_whole(double k)
{
    return k < LL_TABLE && k == floor(k);
}

/* tab[i] = lgamma(y + i) - lgamma(y) for i = 0..LL_TABLE. */
static void lg_rising_table(double y, double *tab)
{
    tab[0] = 0.0;
    for (int i = 0; i < LL_TABLE; i++)
        tab[i + 1] = tab[i] + log(y + i);
}

/* lgamma(y + k) - lgamma(y), summed in the same order as the table. */
static double lg_rising(double y, double k)
{
    if (!small_whole(k))
        return lgam(y + k) - lgam(y);
    double s = 0.0;
    for (int i = 0; i < (int)k; i++)
        s += log(y + i);
    return s;
}

double cp_btyd_loglik(cp_btyd_model_t model, const cp_btyd_params_t *par,
                      double x, double t_x, double T)
{
    if (!model_ok(model) || !params_ok(par) || !cust_ok(x, t_x, T))
        return NAN;
    double k = x + model_shift(model);
    double lg_beta = lg_rising(par->b, k) - lg_rising(par->a + par->b, k);
    return bg_loglik_parts(par, model_shift(model), x, t_x, T,
                           lg_rising(par->r, x), lg_beta);
}

/* The weight of row i (1 without weights). */
static double weight(const cp_btyd_data_t *data, size_t i)
{
    return data->w ? data->w[i] : 1.0;
}

/* Weights, when given, are finite and > 0. */
static int weights_ok(const cp_btyd_data_t *data)
{
    for (size_t i = 0; data->w && i < data->n; i++)
        if (!(data->w[i] > 0.0) || !isfinite(data->w[i]))
            return 0;
    return 1;
}

double cp_btyd_loglik_sum(cp_btyd_model_t model, const cp_btyd_params_t *par,
                          const cp_btyd_data_t *data)
{
    if (!model_ok(model) || !params_ok(par) || data == NULL)
        return NAN;
    /* lgamma(r+i)-lgamma(r), lgamma(b+i)-lgamma(b), same for a+b. */
    double tr[LL_TABLE + 1], tb[LL_TABLE + 1], tab[LL_TABLE + 1];
    lg_rising_table(par->r, tr);
    lg_rising_table(par->b, tb);
    lg_rising_table(par->a + par->b, tab);
    double shift = model_shift(model);
    double sum = 0.0;
    for (size_t i = 0; i < data->n; i++) {
        double x = data->x[i], t_x = data->t_x[i], T = data->T[i];
        if (!cust_ok(x, t_x, T))
            return NAN;
        double k = x + shift, lg_rx, lg_beta;
        if (small_whole(k)) {
            lg_rx = tr[(int)x];
            lg_beta = tb[(int)k] - tab[(int)k];
        } else {
            lg_rx = lg_rising(par->r, x);
            lg_beta = lg_rising(par->b, k) - lg_rising(par->a + par->b, k);
        }
        sum += weight(data, i) *
               bg_loglik_parts(par, shift, x, t_x, T, lg_rx, lg_beta);
    }
    return sum;
}

/* P(alive) = 1 / (1 + [k > 0] a/(b+k-1) ((alpha+T)/(alpha+t_x))^(r+x)),
 * with the ratio in log space so that it may overflow to P = 0. */
static double p_alive(const cp_btyd_params_t *par, double shift, double x,
                      double t_x, double T)
{
    double k = x + shift;
    if (k <= 0.0)
        return 1.0;
    double lr = log(par->a) - log(par->b + (k - 1.0)) +
                (par->r + x) * log1p((T - t_x) / (par->alpha + t_x));
    return 1.0 / (1.0 + exp(lr));
}

double cp_btyd_p_alive(cp_btyd_model_t model, const cp_btyd_params_t *par,
                       double x, double t_x, double T)
{
    if (!model_ok(model) || !params_ok(par) || !cust_ok(x, t_x, T))
        return NAN;
    return p_alive(par, model_shift(model), x, t_x, T);
}

/* Below this |a - 1| the (1 - ...)/(a - 1) form would cancel; only the
 * series of (F - 1)/(a - 1) is used. */
#define A_NEAR_ONE 1e-6

/* Digits (as a factor) the difference in expected_g may cancel: beyond,
 * the result would be mostly rounding. Reached only at absurd parameters
 * (r + x ~ 1e-10 (a + b)); b = 1e8 with r ~ 0.5 still passes. */
#define G_MAX_CANCEL 1e10

/* *g = (u - v) / div unless that difference cancelled more than
 * G_MAX_CANCEL. */
static cp_btyd_status_t difference_ok(double u, double v, double div, double *g)
{
    double diff = u - v;
    if (fabs(diff) * G_MAX_CANCEL < fabs(u) + fabs(v))
        return CP_BTYD_ENUMERIC;
    *g = diff / div;
    return CP_BTYD_OK;
}

/* G = [1 - (1-z)^(a-1) F] / (a - 1) with F = 2F1(p1, a-1; c; z) and
 * log(1-z) = l. Prefers the series of the tail (F - 1)/(a - 1), which has
 * no cancellation and no singularity at a = 1; the transformation for z
 * near 1 needs F itself. */
static cp_btyd_status_t expected_g(double p1, double d1, double c, double z,
                                   double l, double *g)
{
    double tail, f;
    long budget = z <= HYP_Z_DIRECT ? HYP_MAX_ITER : HYP_SHORT_ITER;
    cp_btyd_status_t st = hyp_series(p1, d1, c, z, 1, budget, &tail);
    if (st != CP_BTYD_OK && budget != HYP_MAX_ITER) {
        if (fabs(d1) >= A_NEAR_ONE &&
            hyp_transform(p1, d1, c, z, &f) == CP_BTYD_OK) {
            double h = exp(d1 * l) * f;
            return difference_ok(1.0, h, d1, g);
        }
        st = hyp_series(p1, d1, c, z, 1, HYP_MAX_ITER, &tail);
    }
    if (st != CP_BTYD_OK)
        return st;
    return difference_ok(-expm1_ratio(d1, l), exp(d1 * l) * tail, 1.0, g);
}

/* E[Y(t) | x, t_x, T]
 *   = (a+b+k-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x)
 *       2F1(r+x, b+k; a+b+k-1; z)] * P(alive),   z = t/(alpha+T+t),
 * evaluated after Euler's transformation
 *   (1-z)^(r+x) 2F1(r+x, b+k; c; z) = (1-z)^(a-1) 2F1(c-r-x, a-1; c; z),
 * c = a+b+k-1, whose parameters do not grow with x. */
static cp_btyd_status_t expected_cond(const cp_btyd_params_t *par, double shift,
                                      double x, double t_x, double T, double t,
                                      double *out)
{
    if (t == 0.0) {
        *out = 0.0;
        return CP_BTYD_OK;
    }
    double k = x + shift;
    double c = par->a + par->b + (k - 1.0);
    double p1 = c - par->r - x;
    double d1 = par->a - 1.0;
    double z = t / (par->alpha + T + t);
    double l = -log1p(t / (par->alpha + T));
    double g;
    cp_btyd_status_t st = expected_g(p1, d1, c, z, l, &g);
    if (st != CP_BTYD_OK)
        return st;
    /* c * G > 0 for every t > 0 (c < 0 when x = 0 and a + b < 1 under
     * BG/NBD); 0 only by underflow (a cancellation to 0 was caught above).
     * Anything negative is rounding, never a prediction. */
    double e = c * g;
    if (!(e >= 0.0) || !isfinite(e))
        return CP_BTYD_ENUMERIC;
    e *= p_alive(par, shift, x, t_x, T);
    *out = e;
    return CP_BTYD_OK;
}

cp_btyd_status_t cp_btyd_expected_cond(cp_btyd_model_t model,
                                       const cp_btyd_params_t *par, double x,
                                       double t_x, double T, double t,
                                       double *out)
{
    *out = NAN;
    if (!model_ok(model) || !params_ok(par) || !cust_ok(x, t_x, T) ||
        !isfinite(t) || t < 0.0)
        return CP_BTYD_EINVAL;
    return expected_cond(par, model_shift(model), x, t_x, T, t, out);
}

/* A new customer is a customer with x = t_x = T = 0 (T = 0 is outside the
 * public domain only because no observed customer has it). */
cp_btyd_status_t cp_btyd_expected_uncond(cp_btyd_model_t model,
                                         const cp_btyd_params_t *par, double t,
                                         double *out)
{
    *out = NAN;
    if (!model_ok(model) || !params_ok(par) || !isfinite(t) || t < 0.0)
        return CP_BTYD_EINVAL;
    return expected_cond(par, model_shift(model), 0.0, 0.0, 0.0, t, out);
}

/* ---------------------------------------------------------------------------
 * Gamma-Gamma
 * ------------------------------------------------------------------------ */

/* Density of zbar given x (Fader & Hardie note 025, eq. 1a):
 *   G(px+q)/(G(px) G(q)) v^q zbar^(px-1) x^(px) / (v + x zbar)^(px+q). */
static double gg_loglik(const cp_btyd_gg_params_t *par, double lg_q, double x,
                        double zbar)
{
    double px = par->p * x;
    return lgam(px + par->q) - lgam(px) - lg_q + par->q * log(par->v) +
           (px - 1.0) * log(zbar) + px * log(x) -
           (px + par->q) * log(par->v + x * zbar);
}

static int gg_cust_ok(double x, double zbar)
{
    return isfinite(x) && x >= 1.0 && pos_finite(zbar);
}

double cp_btyd_gg_loglik(const cp_btyd_gg_params_t *par, double x, double zbar)
{
    if (!gg_params_ok(par) || !gg_cust_ok(x, zbar))
        return NAN;
    return gg_loglik(par, lgam(par->q), x, zbar);
}

double cp_btyd_gg_loglik_sum(const cp_btyd_gg_params_t *par,
                             const cp_btyd_data_t *data)
{
    if (!gg_params_ok(par) || data == NULL || data->zbar == NULL)
        return NAN;
    double lg_q = lgam(par->q);
    double sum = 0.0;
    for (size_t i = 0; i < data->n; i++) {
        double x = data->x[i], zbar = data->zbar[i];
        if (isfinite(x) && x < 1.0)
            continue;
        if (!gg_cust_ok(x, zbar))
            return NAN;
        sum += weight(data, i) * gg_loglik(par, lg_q, x, zbar);
    }
    return sum;
}

double cp_btyd_gg_expected_value(const cp_btyd_gg_params_t *par, double x,
                                 double zbar)
{
    if (!gg_params_ok(par) || !isfinite(x) || x < 0.0)
        return NAN;
    if (x > 0.0 && !(isfinite(zbar) && zbar >= 0.0))
        return NAN;
    double den = par->p * x + par->q - 1.0;
    if (!(den > 0.0))
        return NAN;
    double zx = x > 0.0 ? x * zbar : 0.0;
    return par->p * (par->v + zx) / den;
}

/* ---------------------------------------------------------------------------
 * Optimiser: Nelder-Mead on log-parameters, Newton polish, Hessian
 * ------------------------------------------------------------------------ */

#define OPT_MAX_DIM 4
/* Simplex size (log-parameters) below which Nelder-Mead may stop. */
#define OPT_XTOL 1e-7
/* Edge of the first simplex and of the restarts (log-parameters). */
#define OPT_STEP_FIRST 0.5
#define OPT_STEP_RESTART 0.1
/* Relative steps of the finite differences. */
#define OPT_H_GRAD 1e-5
#define OPT_H_HESS 1e-4

/* -LL at the log-parameters u. */
typedef double (*objective_fn)(const double *u, const void *ctx);

typedef struct opt_s {
    objective_fn f;
    const void *ctx;
    int n;
    long evals;
    long max_evals; /* for Nelder-Mead */
    long iterations;
} opt_t;

/* -LL at u; a non-finite value becomes +inf so every comparison rejects
 * it. */
static double opt_eval(opt_t *op, const double *u)
{
    op->evals++;
    double v = op->f(u, op->ctx);
    return isfinite(v) ? v : HUGE_VAL;
}

/* -LL at natural parameters theta > 0. */
static double opt_eval_nat(opt_t *op, const double *theta)
{
    double u[OPT_MAX_DIM];
    for (int i = 0; i < op->n; i++) {
        if (!(theta[i] > 0.0))
            return HUGE_VAL;
        u[i] = log(theta[i]);
    }
    return opt_eval(op, u);
}

static double opt_eval_in(opt_t *op, int natural, const double *p)
{
    return natural ? opt_eval_nat(op, p) : opt_eval(op, p);
}

static double ftol_abs(double ftol, double f)
{
    return ftol * (1.0 + fabs(f));
}

/* Simplex rows sorted by value, best first (n + 1 <= 5: insertion). */
static void simplex_sort(int n, double s[][OPT_MAX_DIM], double *fs)
{
    for (int i = 1; i <= n; i++) {
        double row[OPT_MAX_DIM], fv = fs[i];
        memcpy(row, s[i], sizeof row);
        int j = i - 1;
        for (; j >= 0 && fs[j] > fv; j--) {
            fs[j + 1] = fs[j];
            memcpy(s[j + 1], s[j], sizeof row);
        }
        fs[j + 1] = fv;
        memcpy(s[j + 1], row, sizeof row);
    }
}

static int simplex_converged(int n, double s[][OPT_MAX_DIM], const double *fs,
                             double ftol)
{
    if (fs[n] - fs[0] > ftol_abs(ftol, fs[0]))
        return 0;
    for (int i = 1; i <= n; i++)
        for (int j = 0; j < n; j++)
            if (fabs(s[i][j] - s[0][j]) > OPT_XTOL)
                return 0;
    return 1;
}

/* out = xb + coef * (xb - worst). */
static void simplex_point(int n, const double *xb, const double *worst,
                          double coef, double *out)
{
    for (int j = 0; j < n; j++)
        out[j] = xb[j] + coef * (xb[j] - worst[j]);
}

/* Moves every vertex half-way to the best one. */
static void simplex_shrink(opt_t *op, double s[][OPT_MAX_DIM], double *fs)
{
    for (int i = 1; i <= op->n; i++) {
        for (int j = 0; j < op->n; j++)
            s[i][j] = s[0][j] + 0.5 * (s[i][j] - s[0][j]);
        fs[i] = opt_eval(op, s[i]);
    }
}

/* One Nelder-Mead step (reflection 1, expansion 2, contractions 1/2,
 * shrink 1/2) on a sorted simplex. */
static void nm_step(opt_t *op, double s[][OPT_MAX_DIM], double *fs)
{
    int n = op->n;
    double xb[OPT_MAX_DIM] = {0}, xr[OPT_MAX_DIM], xt[OPT_MAX_DIM];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            xb[j] += s[i][j] / n;
    simplex_point(n, xb, s[n], 1.0, xr);
    double fr = opt_eval(op, xr), ft;
    if (fr < fs[0]) {
        simplex_point(n, xb, s[n], 2.0, xt);
        ft = opt_eval(op, xt);
        if (ft < fr) {
            memcpy(s[n], xt, sizeof xt);
            fs[n] = ft;
            return;
        }
    } else if (fr >= fs[n - 1]) {
        /* Contract outside (towards xr) or inside (towards the worst). */
        int outside = fr < fs[n];
        simplex_point(n, xb, s[n], outside ? 0.5 : -0.5, xt);
        ft = opt_eval(op, xt);
        if (outside ? ft <= fr : ft < fs[n]) {
            memcpy(s[n], xt, sizeof xt);
            fs[n] = ft;
        } else {
            simplex_shrink(op, s, fs);
        }
        return;
    }
    memcpy(s[n], xr, sizeof xr);
    fs[n] = fr;
}

/* Minimises from u (in/out, value *fu) with a simplex of edge step.
 * Returns 1 when the simplex has collapsed (ftol in value, OPT_XTOL in
 * position), 0 when the evaluation budget ran out. */
static int nelder_mead(opt_t *op, double *u, double *fu, double step,
                       double ftol)
{
    int n = op->n;
    double s[OPT_MAX_DIM + 1][OPT_MAX_DIM], fs[OPT_MAX_DIM + 1];
    memcpy(s[0], u, sizeof s[0]);
    fs[0] = *fu;
    for (int i = 1; i <= n; i++) {
        memcpy(s[i], u, sizeof s[i]);
        s[i][i - 1] += step;
        fs[i] = opt_eval(op, s[i]);
    }
    int converged = 0;
    for (;;) {
        simplex_sort(n, s, fs);
        if (simplex_converged(n, s, fs, ftol)) {
            converged = 1;
            break;
        }
        if (op->evals >= op->max_evals)
            break;
        op->iterations++;
        nm_step(op, s, fs);
    }
    if (fs[0] <= *fu) {
        memcpy(u, s[0], sizeof s[0]);
        *fu = fs[0];
    }
    return converged;
}

/* Central-difference gradient at p (log or natural coordinates), steps
 * OPT_H_GRAD relative to max(|p_i|, 1) in log space and to p_i in natural
 * space. */
static void num_gradient(opt_t *op, int natural, const double *p, double *g)
{
    double q[OPT_MAX_DIM];
    for (int i = 0; i < op->n; i++) {
        double h = OPT_H_GRAD * (natural ? p[i] : 1.0);
        memcpy(q, p, sizeof q);
        q[i] = p[i] + h;
        double fp = opt_eval_in(op, natural, q);
        q[i] = p[i] - h;
        double fm = opt_eval_in(op, natural, q);
        g[i] = (fp - fm) / (2.0 * h);
    }
}

/* f at p with p_i += si * hi and p_j += sj * hj. */
static double eval_shifted(opt_t *op, int natural, const double *p, int i,
                           double di, int j, double dj)
{
    double q[OPT_MAX_DIM];
    memcpy(q, p, sizeof q);
    q[i] += di;
    q[j] += dj;
    return opt_eval_in(op, natural, q);
}

/* Central-difference Hessian at p (value f0 there), steps OPT_H_HESS as in
 * num_gradient. */
static void num_hessian(opt_t *op, int natural, const double *p, double f0,
                        double H[][OPT_MAX_DIM])
{
    double h[OPT_MAX_DIM];
    for (int i = 0; i < op->n; i++)
        h[i] = OPT_H_HESS * (natural ? p[i] : 1.0);
    for (int i = 0; i < op->n; i++) {
        double fp = eval_shifted(op, natural, p, i, h[i], i, 0.0);
        double fm = eval_shifted(op, natural, p, i, -h[i], i, 0.0);
        H[i][i] = (fp - 2.0 * f0 + fm) / (h[i] * h[i]);
        for (int j = 0; j < i; j++) {
            double fpp = eval_shifted(op, natural, p, i, h[i], j, h[j]);
            double fpm = eval_shifted(op, natural, p, i, h[i], j, -h[j]);
            double fmp = eval_shifted(op, natural, p, i, -h[i], j, h[j]);
            double fmm = eval_shifted(op, natural, p, i, -h[i], j, -h[j]);
            H[i][j] = H[j][i] = (fpp - fpm - fmp + fmm) / (4.0 * h[i] * h[j]);
        }
    }
}

/* Cholesky factor L (lower) of the symmetric H; 0 unless H is finite and
 * positive definite. */
static int cholesky(int n, double H[][OPT_MAX_DIM], double L[][OPT_MAX_DIM])
{
    memset(L, 0, sizeof(double) * OPT_MAX_DIM * (size_t)n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j <= i; j++) {
            double s = H[i][j];
            for (int k = 0; k < j; k++)
                s -= L[i][k] * L[j][k];
            if (i == j) {
                if (!(s > 0.0) || !isfinite(s))
                    return 0;
                L[i][i] = sqrt(s);
            } else {
                L[i][j] = s / L[j][j];
            }
        }
    }
    return 1;
}

/* Solves L L^T x = b. */
static void cholesky_solve(int n, double L[][OPT_MAX_DIM], const double *b,
                           double *x)
{
    double y[OPT_MAX_DIM];
    for (int i = 0; i < n; i++) {
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= L[i][k] * y[k];
        y[i] = s / L[i][i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double s = y[i];
        for (int k = i + 1; k < n; k++)
            s -= L[k][i] * x[k];
        x[i] = s / L[i][i];
    }
}

/* Newton steps on the log-parameters with halving line search; stops when
 * the Hessian is not positive definite, no step lowers -LL, or the step is
 * negligible. Returns the number of accepted steps. */
static int newton_polish(opt_t *op, double *u, double *fu, int max_steps)
{
    int n = op->n, accepted = 0;
    for (int it = 0; it < max_steps; it++) {
        double g[OPT_MAX_DIM], d[OPT_MAX_DIM], ut[OPT_MAX_DIM];
        double H[OPT_MAX_DIM][OPT_MAX_DIM], L[OPT_MAX_DIM][OPT_MAX_DIM];
        num_gradient(op, 0, u, g);
        num_hessian(op, 0, u, *fu, H);
        if (!cholesky(n, H, L))
            break;
        cholesky_solve(n, L, g, d);
        double lambda = 1.0, ft = HUGE_VAL, dmax = 0.0;
        for (int half = 0; half < 30; half++, lambda *= 0.5) {
            for (int j = 0; j < n; j++)
                ut[j] = u[j] - lambda * d[j];
            ft = opt_eval(op, ut);
            if (ft < *fu)
                break;
        }
        if (!(ft < *fu))
            break;
        for (int j = 0; j < n; j++)
            dmax = fmax(dmax, fabs(ut[j] - u[j]));
        memcpy(u, ut, sizeof ut);
        *fu = ft;
        accepted++;
        if (dmax < 1e-10)
            break;
    }
    return accepted;
}

/* Standard errors of the natural parameters theta = exp(u): square roots of
 * the diagonal of the inverse Hessian of -LL in theta. Returns 0 (se all
 * NaN) if that Hessian is not positive definite. */
static int standard_errors(opt_t *op, const double *u, double fu, double *se)
{
    int n = op->n;
    double theta[OPT_MAX_DIM] = {0}, H[OPT_MAX_DIM][OPT_MAX_DIM];
    double L[OPT_MAX_DIM][OPT_MAX_DIM];
    for (int i = 0; i < n; i++) {
        theta[i] = exp(u[i]);
        se[i] = NAN;
    }
    num_hessian(op, 1, theta, fu, H);
    if (!cholesky(n, H, L))
        return 0;
    for (int i = 0; i < n; i++) {
        double e[OPT_MAX_DIM] = {0}, col[OPT_MAX_DIM];
        e[i] = 1.0;
        cholesky_solve(n, L, e, col);
        if (!(col[i] > 0.0) || !isfinite(col[i]))
            return 0;
        se[i] = sqrt(col[i]);
    }
    return 1;
}

/* The whole fit: Nelder-Mead, restarts, Newton, standard errors. theta is
 * the start on input and the estimate on output. */
static cp_btyd_status_t opt_run(opt_t *op, const cp_btyd_fit_opts_t *opts,
                                double *theta, double *se,
                                cp_btyd_fit_info_t *info)
{
    double u[OPT_MAX_DIM] = {0};
    for (int i = 0; i < op->n; i++)
        u[i] = log(theta[i]);
    double fu = opt_eval(op, u);
    if (fu == HUGE_VAL)
        return CP_BTYD_ENUMERIC;

    int converged = nelder_mead(op, u, &fu, OPT_STEP_FIRST, opts->ftol);
    /* A collapsed simplex can sit off the optimum; restart from the best
     * point until a restart gains nothing. */
    int restarts = 0, settled = opts->max_restarts == 0;
    while (converged && restarts < opts->max_restarts) {
        double before = fu;
        converged = nelder_mead(op, u, &fu, OPT_STEP_RESTART, opts->ftol);
        restarts++;
        if (before - fu <= ftol_abs(opts->ftol, fu)) {
            settled = 1;
            break;
        }
    }
    info->restarts = restarts;
    info->newton_steps = newton_polish(op, u, &fu, opts->newton_steps);
    info->se_ok = standard_errors(op, u, fu, se);
    for (int i = 0; i < op->n; i++)
        theta[i] = exp(u[i]);
    info->loglik = -fu;
    info->evaluations = op->evals;
    info->iterations = op->iterations;
    info->status = converged && settled ? CP_BTYD_OK : CP_BTYD_ENOCONV;
    return info->status;
}

cp_btyd_fit_opts_t cp_btyd_fit_opts_default(void)
{
    cp_btyd_fit_opts_t opts = {
        .max_evals = 20000,
        .max_restarts = 20,
        .ftol = 1e-11,
        .newton_steps = 10,
        .use_init = 0,
        .init = {0.0, 0.0, 0.0, 0.0},
    };
    return opts;
}

static int opts_ok(const cp_btyd_fit_opts_t *opts, int n_par)
{
    if (opts->max_evals < 1 || opts->max_restarts < 0 || opts->ftol < 0.0 ||
        !isfinite(opts->ftol) || opts->newton_steps < 0)
        return 0;
    if (!opts->use_init)
        return 1;
    for (int i = 0; i < n_par; i++)
        if (!pos_finite(opts->init[i]))
            return 0;
    return 1;
}

/* ---------------------------------------------------------------------------
 * Fits
 * ------------------------------------------------------------------------ */

typedef struct bg_ctx_s {
    cp_btyd_model_t model;
    const cp_btyd_data_t *data;
} bg_ctx_t;

static double bg_objective(const double *u, const void *ctx)
{
    const bg_ctx_t *bc = ctx;
    cp_btyd_params_t par = {exp(u[0]), exp(u[1]), exp(u[2]), exp(u[3])};
    return -cp_btyd_loglik_sum(bc->model, &par, bc->data);
}

static double gg_objective(const double *u, const void *ctx)
{
    cp_btyd_gg_params_t par = {exp(u[0]), exp(u[1]), exp(u[2])};
    return -cp_btyd_gg_loglik_sum(&par, ctx);
}

/* Mean T of valid data (n >= 1), or 0 if a customer is invalid. */
static double bg_data_check(const cp_btyd_data_t *data)
{
    if (data == NULL || data->n == 0 || data->x == NULL || data->t_x == NULL ||
        data->T == NULL || !weights_ok(data))
        return 0.0;
    double sum_t = 0.0, sum_w = 0.0;
    for (size_t i = 0; i < data->n; i++) {
        if (!cust_ok(data->x[i], data->t_x[i], data->T[i]))
            return 0.0;
        sum_t += weight(data, i) * data->T[i];
        sum_w += weight(data, i);
    }
    return sum_t / sum_w;
}

cp_btyd_status_t cp_btyd_fit(cp_btyd_model_t model, const cp_btyd_data_t *data,
                             const cp_btyd_fit_opts_t *opts, cp_btyd_fit_t *fit)
{
    memset(fit, 0, sizeof *fit);
    fit->info.status = CP_BTYD_EINVAL;
    cp_btyd_fit_opts_t dflt = cp_btyd_fit_opts_default();
    if (opts == NULL)
        opts = &dflt;
    double mean_t = bg_data_check(data);
    if (!model_ok(model) || !(mean_t > 0.0) || !opts_ok(opts, 4))
        return CP_BTYD_EINVAL;
    fit->info.n_used = 0;
    for (size_t i = 0; i < data->n; i++)
        fit->info.n_used += (size_t)llround(weight(data, i));

    /* alpha scales with the time unit: start it at a tenth of the mean
     * age (about 3 in weeks, 23 in days for CDNOW). */
    double theta[OPT_MAX_DIM] = {1.0, mean_t / 10.0, 1.0, 1.0}, se[4];
    if (opts->use_init)
        memcpy(theta, opts->init, sizeof theta);
    bg_ctx_t ctx = {model, data};
    opt_t op = {bg_objective, &ctx, 4, 0, opts->max_evals, 0};
    cp_btyd_status_t st = opt_run(&op, opts, theta, se, &fit->info);
    if (st == CP_BTYD_ENUMERIC) {
        fit->info.status = st;
        return st;
    }
    fit->par = (cp_btyd_params_t){theta[0], theta[1], theta[2], theta[3]};
    fit->se = (cp_btyd_params_t){se[0], se[1], se[2], se[3]};
    return st;
}

/* Customers with x >= 1, or 0 if one of them is invalid. */
static size_t gg_data_check(const cp_btyd_data_t *data)
{
    if (data == NULL || data->x == NULL || data->zbar == NULL ||
        !weights_ok(data))
        return 0;
    size_t used = 0;
    for (size_t i = 0; i < data->n; i++) {
        double x = data->x[i];
        if (!isfinite(x) || x < 0.0)
            return 0;
        if (x < 1.0)
            continue;
        if (!gg_cust_ok(x, data->zbar[i]))
            return 0;
        used += (size_t)llround(weight(data, i));
    }
    return used;
}

cp_btyd_status_t cp_btyd_gg_fit(const cp_btyd_data_t *data,
                                const cp_btyd_fit_opts_t *opts,
                                cp_btyd_gg_fit_t *fit)
{
    memset(fit, 0, sizeof *fit);
    fit->info.status = CP_BTYD_EINVAL;
    cp_btyd_fit_opts_t dflt = cp_btyd_fit_opts_default();
    if (opts == NULL)
        opts = &dflt;
    size_t used = gg_data_check(data);
    if (used == 0 || !opts_ok(opts, 3))
        return CP_BTYD_EINVAL;
    fit->info.n_used = used;

    double theta[OPT_MAX_DIM] = {1.0, 1.0, 1.0, 0.0}, se[3];
    if (opts->use_init)
        memcpy(theta, opts->init, sizeof theta);
    opt_t op = {gg_objective, data, 3, 0, opts->max_evals, 0};
    cp_btyd_status_t st = opt_run(&op, opts, theta, se, &fit->info);
    if (st == CP_BTYD_ENUMERIC) {
        fit->info.status = st;
        return st;
    }
    fit->par = (cp_btyd_gg_params_t){theta[0], theta[1], theta[2]};
    fit->se = (cp_btyd_gg_params_t){se[0], se[1], se[2]};
    return st;
}

/* ---------------------------------------------------------------------------
 * Customer lifetime value
 * ------------------------------------------------------------------------ */

/* Days in an average Gregorian month. */
#define DAYS_PER_MONTH 30.4375

double cp_btyd_month_length(cp_btyd_unit_t unit)
{
    return unit == CP_BTYD_DAYS ? DAYS_PER_MONTH : DAYS_PER_MONTH / 7.0;
}

static int clv_spec_ok(const cp_btyd_clv_spec_t *spec)
{
    return spec != NULL && spec->horizon_months >= 0 &&
           isfinite(spec->monthly_discount) && spec->monthly_discount >= 0.0 &&
           (spec->unit == CP_BTYD_WEEKS || spec->unit == CP_BTYD_DAYS);
}

cp_btyd_status_t cp_btyd_clv(cp_btyd_model_t model, const cp_btyd_params_t *par,
                             const cp_btyd_gg_params_t *gg,
                             const cp_btyd_clv_spec_t *spec, double x,
                             double t_x, double T, double zbar, double *out)
{
    *out = NAN;
    if (!model_ok(model) || !params_ok(par) || !gg_params_ok(gg) ||
        !clv_spec_ok(spec) || !cust_ok(x, t_x, T))
        return CP_BTYD_EINVAL;
    if (x > 0.0 && !(isfinite(zbar) && zbar >= 0.0))
        return CP_BTYD_EINVAL;
    double value = cp_btyd_gg_expected_value(gg, x, zbar);
    if (!isfinite(value))
        return CP_BTYD_ENUMERIC;

    double shift = model_shift(model);
    double month = cp_btyd_month_length(spec->unit);
    double prev = 0.0, sum = 0.0;
    for (int m = 1; m <= spec->horizon_months; m++) {
        double e;
        cp_btyd_status_t st =
            expected_cond(par, shift, x, t_x, T, m * month, &e);
        if (st != CP_BTYD_OK)
            return st;
        sum += (e - prev) / pow(1.0 + spec->monthly_discount, m);
        prev = e;
    }
    *out = sum * value;
    return CP_BTYD_OK;
}
