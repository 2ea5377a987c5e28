/*
 * rfm.h - the RFM 8-type segment (docs/contracts.md section 3) and the
 * population figures it can be compared with.
 *
 * Pure computation: "today" is a parameter (a local day number).
 */
#ifndef CP_RFM_H
#define CP_RFM_H

#include <stdint.h>

#include "state.h"

/* Reference values a customer is compared with. */
typedef struct cp_rfm_ref_s {
    double recency_days;
    double frequency;
    double monetary; /* minor units */
} cp_rfm_ref_t;

/* Population sums kept in Redis (live mode). Customers with orders >= 1. */
typedef struct cp_pop_s {
    int64_t n;  /* customers */
    int64_t sf; /* sum of orders */
    int64_t sm; /* sum of monetary */
    int64_t sl; /* sum of last_day */
} cp_pop_t;

/* Stable code ("important_value", ...) of seg; NULL for CP_RFM8_NONE. */
const char *cp_rfm8_code(cp_rfm8_t seg);
/* Chinese name (重要价值客户 ...) of seg; NULL for CP_RFM8_NONE. */
const char *cp_rfm8_name_zh(cp_rfm8_t seg);
/* Inverse of cp_rfm8_code; returns 0 and sets *out, or -1 if unknown. */
int cp_rfm8_parse(const char *code, cp_rfm8_t *out);

/* Recency in days: today - st->last_day, never negative. 0 while st has no
 * order time (never had an order). */
int64_t cp_rfm_recency_days(const cp_state_t *st, int64_t today);

/* Segment of st against ref; CP_RFM8_NONE when st->orders < 1.
 * Ties count as the favourable side (R <= ref, F >= ref, M >= ref). */
cp_rfm8_t cp_rfm8_classify(const cp_state_t *st, int64_t today,
                           const cp_rfm_ref_t *ref);

/* Averages of pop at today: recency today - sl/n, sf/n, sm/n. With n = 0
 * all three are 0. */
cp_rfm_ref_t cp_pop_reference(const cp_pop_t *pop, int64_t today);

/* Moves st's contribution in pop from `before` to `after` (a customer
 * counts while orders >= 1, contributing orders, monetary, last_day).
 * Either may be NULL, meaning "no contribution" (same as orders = 0). The
 * sums wrap in two's complement instead of overflowing, so deltas that
 * cancel out always restore pop exactly. */
void cp_pop_update(cp_pop_t *pop, const cp_state_t *before,
                   const cp_state_t *after);

/* The change cp_pop_update would make to pop, as a delta (for the HINCRBY
 * of the write script): n, sf, sm, sl each after minus before. Either
 * state may be NULL as in cp_pop_update. */
cp_pop_t cp_pop_delta(const cp_state_t *before, const cp_state_t *after);

#endif
