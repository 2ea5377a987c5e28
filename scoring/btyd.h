/*
 * btyd.h - "buy till you die" customer-base models: BG/NBD and MBG/NBD for
 * the number of repeat purchases, Gamma-Gamma for their value, maximum
 * likelihood fits of both and the customer lifetime value they imply.
 *
 * Pure computation (docs/btyd.md has the formulas and references): no I/O,
 * no clock, no allocation. Every function is reentrant and may run on any
 * thread at the same time as any other.
 *
 * Conventions (Fader, Hardie & Lee 2005): for each customer
 *   x    number of repeat purchases (the first purchase is not counted),
 *        a whole number >= 0;
 *   t_x  time of the last purchase, measured from the first purchase
 *        (0 when x = 0), 0 <= t_x <= T;
 *   T    time from the first purchase to the end of the calibration
 *        period, > 0;
 *   zbar mean value of the x repeat purchases (Gamma-Gamma only).
 * Times are in one unit of the caller's choice (weeks in the papers); the
 * fitted alpha is in that unit, so predictions must use it too.
 */
#ifndef CP_BTYD_H
#define CP_BTYD_H

#include <stddef.h>

/* Status of the fallible functions. scoring/ links nothing but libm, so it
 * does not use common/'s cp_err_t; these values do not overlap its meaning
 * (ENOCONV still carries a usable result). */
#define CP_BTYD_STATUS_MAP(XX)                                                 \
    XX(OK, 0, "converged")                                                     \
    XX(ENOCONV, -1, "not converged within the evaluation budget")              \
    XX(EINVAL, -2, "invalid argument")                                         \
    XX(ENUMERIC, -3, "numerical failure (series did not converge)")

typedef enum {
#define CP__BTYD_STATUS_ENUM(name, val, msg) CP_BTYD_##name = (val),
    CP_BTYD_STATUS_MAP(CP__BTYD_STATUS_ENUM)
#undef CP__BTYD_STATUS_ENUM
} cp_btyd_status_t;

/* Static message for st; "unknown status" outside the map. */
const char *cp_btyd_status_str(cp_btyd_status_t st);

/* Which purchase/dropout model. */
typedef enum {
    /* BG/NBD (Fader, Hardie & Lee 2005): a customer may drop out after each
     * repeat purchase. A customer with x = 0 is always "alive". */
    CP_BTYD_BGNBD = 0,
    /* MBG/NBD (Batislam, Denizel & Filiztekin 2007; Wagner & Hoppe 2008):
     * also right after the first purchase, so x = 0 customers fade too. */
    CP_BTYD_MBGNBD = 1
} cp_btyd_model_t;

/* Time unit of the data and of the fitted alpha (for the CLV months). */
typedef enum { CP_BTYD_WEEKS = 0, CP_BTYD_DAYS = 1 } cp_btyd_unit_t;

/* Purchase rate lambda ~ Gamma(shape r, rate alpha); dropout probability
 * p ~ Beta(a, b). All four > 0. */
typedef struct cp_btyd_params_s {
    double r;
    double alpha;
    double a;
    double b;
} cp_btyd_params_t;

/* Gamma-Gamma: value of one purchase ~ Gamma(shape p, rate nu) with
 * nu ~ Gamma(shape q, rate v). All three > 0. */
typedef struct cp_btyd_gg_params_s {
    double p;
    double q;
    double v;
} cp_btyd_gg_params_t;

/* Customers as parallel arrays of n elements (borrowed, never written).
 * zbar is needed by the Gamma-Gamma functions only and may be NULL
 * otherwise. w, when not NULL, gives each row a weight: the number of
 * customers with that same summary (> 0), so a population is fitted from
 * its distinct (x, t_x, T) rows; every sum, mean and count is weighted
 * (n_used counts customers). NULL = weight 1 for every row. */
typedef struct cp_btyd_data_s {
    const double *x;
    const double *t_x;
    const double *T;
    const double *zbar;
    size_t n;
    const double *w;
} cp_btyd_data_t;

/* ---------------------------------------------------------------------------
 * BG/NBD and MBG/NBD
 * ------------------------------------------------------------------------ */

/* Log-likelihood of one customer's (x, t_x, T) under model with par,
 * computed in log space (no overflow for large x or T). NaN when an
 * argument is outside its domain (see the file comment; par all > 0). */
double cp_btyd_loglik(cp_btyd_model_t model, const cp_btyd_params_t *par,
                      double x, double t_x, double T);

/* Sum of cp_btyd_loglik over data (zbar unused). NaN if any term is. */
double cp_btyd_loglik_sum(cp_btyd_model_t model, const cp_btyd_params_t *par,
                          const cp_btyd_data_t *data);

/* P(alive | x, t_x, T): probability the customer has not dropped out by T.
 * Exactly 1 for x = 0 under BG/NBD; below 1 and falling with T under
 * MBG/NBD. In [0, 1], NaN for arguments outside the domain. */
double cp_btyd_p_alive(cp_btyd_model_t model, const cp_btyd_params_t *par,
                       double x, double t_x, double T);

/* E[Y(t) | x, t_x, T]: expected number of purchases in (T, T + t], t >= 0.
 * Writes *out and returns CP_BTYD_OK; CP_BTYD_EINVAL for arguments outside
 * the domain, CP_BTYD_ENUMERIC when the hypergeometric series cannot be
 * evaluated to full precision (docs/btyd.md); *out is NaN on error. */
cp_btyd_status_t cp_btyd_expected_cond(cp_btyd_model_t model,
                                       const cp_btyd_params_t *par, double x,
                                       double t_x, double T, double t,
                                       double *out);

/* E[X(t)]: expected number of repeat purchases in (0, t] of a new customer
 * (after the first purchase at 0). Status and *out as
 * cp_btyd_expected_cond. */
cp_btyd_status_t cp_btyd_expected_uncond(cp_btyd_model_t model,
                                         const cp_btyd_params_t *par, double t,
                                         double *out);

/* Gauss hypergeometric function 2F1(a, b; c; z) for z < 1: power series
 * for 0 <= z <= 0.9, Pfaff's transformation for z < 0, the 1 - z
 * transformation (Abramowitz & Stegun 15.3.6) or a long series for z near
 * 1. Every series stops on a bound of its remaining terms, not on a small
 * term. Returns CP_BTYD_OK and *out, or CP_BTYD_EINVAL (z >= 1, NaN) /
 * CP_BTYD_ENUMERIC (pole at c = 0, -1, ...; no convergence within the
 * iteration limit; cancellation lost the precision) with *out = NaN. */
cp_btyd_status_t cp_btyd_hyp2f1(double a, double b, double c, double z,
                                double *out);

/* ---------------------------------------------------------------------------
 * Gamma-Gamma spend model
 * ------------------------------------------------------------------------ */

/* Log-likelihood of the mean zbar of x >= 1 repeat purchases: the density
 * of zbar (Fader & Hardie, "The Gamma-Gamma Model of Monetary Value", eq.
 * 1a; the convention lifetimes uses too). NaN for x < 1, zbar <= 0 or
 * parameters <= 0. */
double cp_btyd_gg_loglik(const cp_btyd_gg_params_t *par, double x, double zbar);

/* Sum of cp_btyd_gg_loglik over the customers of data with x >= 1 (the
 * others carry no spend information and are skipped); data->zbar must be
 * set. NaN if any used term is. */
double cp_btyd_gg_loglik_sum(const cp_btyd_gg_params_t *par,
                             const cp_btyd_data_t *data);

/* E[M | x, zbar] = p (v + x zbar) / (p x + q - 1): expected value of the
 * customer's future purchases. x = 0 gives the population mean p v /
 * (q - 1). NaN when p x + q <= 1 (no finite mean). */
double cp_btyd_gg_expected_value(const cp_btyd_gg_params_t *par, double x,
                                 double zbar);

/* ---------------------------------------------------------------------------
 * Maximum likelihood fits
 * ------------------------------------------------------------------------ */

/* Optimiser settings; start from cp_btyd_fit_opts_default(). */
typedef struct cp_btyd_fit_opts_s {
    long max_evals;   /* likelihood evaluations for Nelder-Mead, all
                         restarts together (default 20000) */
    int max_restarts; /* Nelder-Mead restarts from the best point until one
                         improves by less than ftol (default 20) */
    double ftol;      /* relative tolerance on -LL (default 1e-11) */
    int newton_steps; /* Newton polish steps after Nelder-Mead (default 10,
                         0 = none) */
    int use_init;     /* 1: start from init below instead of the default
                         start (r = a = b = 1, alpha = mean T / 10;
                         p = q = v = 1 for Gamma-Gamma) */
    double init[4];   /* (r, alpha, a, b) or (p, q, v) when use_init */
} cp_btyd_fit_opts_t;

cp_btyd_fit_opts_t cp_btyd_fit_opts_default(void);

/* What a fit reports besides the parameters. */
typedef struct cp_btyd_fit_info_s {
    double loglik;           /* at the returned parameters */
    long evaluations;        /* likelihood evaluations, all phases */
    long iterations;         /* Nelder-Mead iterations, all restarts */
    int restarts;            /* Nelder-Mead restarts done */
    int newton_steps;        /* Newton steps accepted */
    size_t n_used;           /* customers in the likelihood */
    int se_ok;               /* 1: the Hessian was positive definite and the
                                standard errors are finite; 0: they are NaN */
    cp_btyd_status_t status; /* same as the fit's return value */
} cp_btyd_fit_info_t;

typedef struct cp_btyd_fit_s {
    cp_btyd_params_t par;
    cp_btyd_params_t se; /* standard errors of par, field by field */
    cp_btyd_fit_info_t info;
} cp_btyd_fit_t;

typedef struct cp_btyd_gg_fit_s {
    cp_btyd_gg_params_t par;
    cp_btyd_gg_params_t se;
    cp_btyd_fit_info_t info;
} cp_btyd_gg_fit_t;

/* Fits model to data by maximum likelihood: Nelder-Mead on the logs of the
 * parameters, restarted from the best point until a restart no longer
 * improves, then polished by Newton steps. The standard errors are the
 * square roots of the diagonal of the inverse numerical Hessian of -LL in
 * the natural parameters. opts may be NULL (defaults). Uses only the stack.
 * Returns CP_BTYD_OK (converged), CP_BTYD_ENOCONV (budget exhausted; *fit
 * holds the best point found), CP_BTYD_EINVAL (no customers, or one with x
 * < 0, T <= 0, t_x outside [0, T], t_x != 0 with x = 0, a non-finite
 * value; *fit is zeroed) or CP_BTYD_ENUMERIC (-LL not finite at the
 * start). */
cp_btyd_status_t cp_btyd_fit(cp_btyd_model_t model, const cp_btyd_data_t *data,
                             const cp_btyd_fit_opts_t *opts,
                             cp_btyd_fit_t *fit);

/* Fits the Gamma-Gamma model to the customers of data with x >= 1 (x and
 * zbar used; zbar must be > 0 and finite for them). As cp_btyd_fit
 * otherwise; CP_BTYD_EINVAL also when no customer has x >= 1. */
cp_btyd_status_t cp_btyd_gg_fit(const cp_btyd_data_t *data,
                                const cp_btyd_fit_opts_t *opts,
                                cp_btyd_gg_fit_t *fit);

/* ---------------------------------------------------------------------------
 * Customer lifetime value
 * ------------------------------------------------------------------------ */

/* Length of a month (365.25 / 12 = 30.4375 days) in unit. */
double cp_btyd_month_length(cp_btyd_unit_t unit);

typedef struct cp_btyd_clv_spec_s {
    int horizon_months;      /* H >= 0 */
    double monthly_discount; /* d >= 0 */
    cp_btyd_unit_t unit;     /* time unit of par and of x, t_x, T */
} cp_btyd_clv_spec_t;

/* CLV = sum over m = 1..H of
 *   (E[Y(m L)] - E[Y((m-1) L)]) * E[M | x, zbar] / (1 + d)^m
 * with L = cp_btyd_month_length(unit), E[Y] from cp_btyd_expected_cond and
 * E[M] from cp_btyd_gg_expected_value; in zbar's money unit. Returns
 * CP_BTYD_OK and *out; CP_BTYD_EINVAL for arguments outside the domain;
 * CP_BTYD_ENUMERIC when an expectation fails or E[M] is not finite (*out
 * NaN on error). */
cp_btyd_status_t cp_btyd_clv(cp_btyd_model_t model, const cp_btyd_params_t *par,
                             const cp_btyd_gg_params_t *gg,
                             const cp_btyd_clv_spec_t *spec, double x,
                             double t_x, double T, double zbar, double *out);

#endif
