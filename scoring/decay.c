/*
 * decay.c - order-independent exponentially decayed sums; see decay.h.
 */
#include "decay.h"

#include <math.h>

void cp_decay_init(cp_decay_t *d)
{
    d->score = 0.0;
    d->ref_ms = 0;
    d->n = 0;
}

/* 2^(-dt / h) for dt >= 0: in (0, 1], underflowing to 0 for huge dt. */
static double factor(int64_t dt_ms, double half_life_ms)
{
    return exp2(-(double)dt_ms / half_life_ms);
}

void cp_decay_add(cp_decay_t *d, double w, int64_t t_ms, double half_life_ms)
{
    if (!d->n) {
        d->score = w;
        d->ref_ms = t_ms;
        d->n = 1;
    } else if (t_ms >= d->ref_ms) {
        d->score = d->score * factor(t_ms - d->ref_ms, half_life_ms) + w;
        d->ref_ms = t_ms;
    } else {
        d->score += w * factor(d->ref_ms - t_ms, half_life_ms);
    }
}

double cp_decay_at(const cp_decay_t *d, int64_t now_ms, double half_life_ms)
{
    if (!d->n)
        return 0.0;
    if (now_ms <= d->ref_ms)
        return d->score;
    return d->score * factor(now_ms - d->ref_ms, half_life_ms);
}
