/*
 * btyd_fit.c - times the maximum likelihood fits of scoring/btyd on a
 * customer summary CSV `ID,x,t_x,T,zbar` (default: the CDNOW calibration
 * sample in tests/data/cdnow/, weeks) and the per-customer predictions.
 *
 * Usage: btyd_fit [summary.csv [repetitions]]
 *
 * Prints the estimates, the log-likelihood and the wall time of each fit
 * (best and median of the repetitions, CLOCK_MONOTONIC). A figure, not a
 * test: nothing here fails on a slow machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "btyd.h"

#ifndef CP_BTYD_DEFAULT_CSV
#define CP_BTYD_DEFAULT_CSV                                                    \
    "tests/data/cdnow/cdnow_customers_summary_with_transactions.csv"
#endif

#define MAX_REPS 101

typedef struct summary_s {
    double *x, *t_x, *T, *zbar;
    size_t n, cap;
} summary_t;

static void summary_free(summary_t *s)
{
    free(s->x);
    free(s->t_x);
    free(s->T);
    free(s->zbar);
    memset(s, 0, sizeof *s);
}

static int summary_grow(summary_t *s)
{
    size_t cap = s->cap ? 2 * s->cap : 4096;
    double **cols[] = {&s->x, &s->t_x, &s->T, &s->zbar};
    for (size_t i = 0; i < 4; i++) {
        double *p = realloc(*cols[i], cap * sizeof **cols[i]);
        if (p == NULL)
            return -1;
        *cols[i] = p;
    }
    s->cap = cap;
    return 0;
}

/* Reads the CSV; 0 on success, -1 (with a message) otherwise. */
static int summary_read(const char *path, summary_t *s)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    char line[512];
    int rc = 0;
    if (fgets(line, sizeof line, f) == NULL ||
        strncmp(line, "ID,x,t_x,T,zbar", 15) != 0) {
        fprintf(stderr, "%s: expected the header ID,x,t_x,T,zbar\n", path);
        rc = -1;
    }
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        if (s->n == s->cap && summary_grow(s) != 0) {
            fprintf(stderr, "out of memory\n");
            rc = -1;
            break;
        }
        char id[128];
        size_t i = s->n;
        if (sscanf(line, "%127[^,],%lf,%lf,%lf,%lf", id, &s->x[i], &s->t_x[i],
                   &s->T[i], &s->zbar[i]) != 5) {
            fprintf(stderr, "%s:%zu: bad line\n", path, s->n + 2);
            rc = -1;
        }
        s->n++;
    }
    fclose(f);
    return rc;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_times(const char *what, double *ms, int reps)
{
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    printf("  %-26s best %8.2f ms   median %8.2f ms   (%d runs)\n", what, ms[0],
           ms[reps / 2], reps);
}

static void bench_bg(cp_btyd_model_t model, const char *name,
                     const cp_btyd_data_t *data, int reps)
{
    double ms[MAX_REPS];
    cp_btyd_fit_t fit;
    cp_btyd_status_t st = CP_BTYD_OK;
    for (int i = 0; i < reps; i++) {
        double t0 = now_ms();
        st = cp_btyd_fit(model, data, NULL, &fit);
        ms[i] = now_ms() - t0;
    }
    printf("%s: %s\n  r = %.6f (se %.6f)  alpha = %.6f (se %.6f)\n"
           "  a = %.6f (se %.6f)  b = %.6f (se %.6f)\n"
           "  LL = %.4f  evaluations %ld  NM iterations %ld  restarts %d  "
           "Newton steps %d\n",
           name, cp_btyd_status_str(st), fit.par.r, fit.se.r, fit.par.alpha,
           fit.se.alpha, fit.par.a, fit.se.a, fit.par.b, fit.se.b,
           fit.info.loglik, fit.info.evaluations, fit.info.iterations,
           fit.info.restarts, fit.info.newton_steps);
    print_times("fit", ms, reps);
}

static void bench_gg(const cp_btyd_data_t *data, int reps)
{
    double ms[MAX_REPS];
    cp_btyd_gg_fit_t fit;
    cp_btyd_status_t st = CP_BTYD_OK;
    for (int i = 0; i < reps; i++) {
        double t0 = now_ms();
        st = cp_btyd_gg_fit(data, NULL, &fit);
        ms[i] = now_ms() - t0;
    }
    printf("Gamma-Gamma: %s (%zu customers with x >= 1)\n"
           "  p = %.6f (se %.6f)  q = %.6f (se %.6f)  v = %.6f (se %.6f)\n"
           "  LL = %.4f  evaluations %ld\n",
           cp_btyd_status_str(st), fit.info.n_used, fit.par.p, fit.se.p,
           fit.par.q, fit.se.q, fit.par.v, fit.se.v, fit.info.loglik,
           fit.info.evaluations);
    print_times("fit", ms, reps);
}

/* P(alive), E[Y(39)] and a 12-month CLV for every customer. */
static void bench_predict(const cp_btyd_data_t *d, int reps)
{
    cp_btyd_fit_t fit;
    cp_btyd_gg_fit_t gg;
    if (cp_btyd_fit(CP_BTYD_BGNBD, d, NULL, &fit) != CP_BTYD_OK ||
        cp_btyd_gg_fit(d, NULL, &gg) != CP_BTYD_OK)
        return;
    cp_btyd_clv_spec_t spec = {12, 0.01, CP_BTYD_WEEKS};
    double ms[MAX_REPS], ms_clv[MAX_REPS], total = 0.0, total_clv = 0.0;
    size_t failed = 0;
    for (int i = 0; i < reps; i++) {
        double t0 = now_ms();
        total = 0.0;
        for (size_t k = 0; k < d->n; k++) {
            double e;
            total += cp_btyd_p_alive(CP_BTYD_BGNBD, &fit.par, d->x[k],
                                     d->t_x[k], d->T[k]);
            if (cp_btyd_expected_cond(CP_BTYD_BGNBD, &fit.par, d->x[k],
                                      d->t_x[k], d->T[k], 39.0, &e) == 0)
                total += e;
        }
        double t1 = now_ms();
        total_clv = 0.0;
        failed = 0;
        for (size_t k = 0; k < d->n; k++) {
            double c;
            if (cp_btyd_clv(CP_BTYD_BGNBD, &fit.par, &gg.par, &spec, d->x[k],
                            d->t_x[k], d->T[k], d->zbar[k], &c) == 0)
                total_clv += c;
            else
                failed++;
        }
        ms[i] = t1 - t0;
        ms_clv[i] = now_ms() - t1;
    }
    printf("Predictions for %zu customers (BG/NBD, checksum %.4f)\n", d->n,
           total);
    print_times("P(alive) + E[Y(39)]", ms, reps);
    printf("  12-month CLV, d = 0.01: total %.2f, %zu failed\n", total_clv,
           failed);
    print_times("CLV (12 months)", ms_clv, reps);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : CP_BTYD_DEFAULT_CSV;
    int reps = argc > 2 ? atoi(argv[2]) : 11;
    if (reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "repetitions must be 1..%d\n", MAX_REPS);
        return 2;
    }
    summary_t s = {0};
    if (summary_read(path, &s) != 0) {
        summary_free(&s);
        return 1;
    }
    cp_btyd_data_t data = {s.x, s.t_x, s.T, s.zbar, s.n, NULL};
    printf("%s: %zu customers\n\n", path, s.n);
    bench_bg(CP_BTYD_BGNBD, "BG/NBD", &data, reps);
    bench_bg(CP_BTYD_MBGNBD, "MBG/NBD", &data, reps);
    bench_gg(&data, reps);
    bench_predict(&data, reps);
    summary_free(&s);
    return 0;
}
