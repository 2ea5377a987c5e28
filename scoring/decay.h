/*
 * decay.h - an exponentially time-decayed sum of weighted events, kept so
 * that its value does not depend on the order in which the events arrive
 * (beyond floating-point rounding) and never overflows (docs/models.md,
 * "Decayed scores").
 *
 * The sum is held at a reference time, the latest event time seen: a newer
 * event decays the sum forward to its own time and adds its weight; an
 * older (late) event adds its weight decayed to the reference time. Every
 * exponent is <= 0, so no term grows however far apart events are.
 *
 * Pure computation: times are parameters (epoch milliseconds).
 */
#ifndef CP_DECAY_H
#define CP_DECAY_H

#include <stdint.h>

typedef struct cp_decay_s {
    double score;   /* the sum at ref_ms */
    int64_t ref_ms; /* latest event time added; meaningless while empty */
    int n;          /* 0 = empty (no event added yet); saturates at 1 */
} cp_decay_t;

/* An empty sum. */
void cp_decay_init(cp_decay_t *d);

/* Adds weight w (>= 0) of an event at t_ms; half_life_ms > 0. */
void cp_decay_add(cp_decay_t *d, double w, int64_t t_ms, double half_life_ms);

/* The sum decayed to now_ms: score * 2^(-(now_ms - ref_ms) / half_life).
 * A now_ms before ref_ms (event time runs behind the latest event seen)
 * gives the sum at ref_ms: the score never grows. 0 while empty. */
double cp_decay_at(const cp_decay_t *d, int64_t now_ms, double half_life_ms);

#endif
