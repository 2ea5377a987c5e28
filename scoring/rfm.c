/*
 * rfm.c - the RFM 8-type segment and the population figures behind the
 * live reference.
 *
 * Implements docs/contracts.md section 3 (classification, codes, Chinese
 * names) and the `pop` sums of section 2. Pure: "today" is a local day
 * number given by the caller; nothing here reads a clock or does I/O.
 */
#include <stdint.h>
#include <string.h>

#include "rfm.h"

/* ---------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

/* Indexed by cp_rfm8_t; entry 0 (NONE) has no name. The codes are part of
 * the output contract and must never change. */
static const char *const rfm8_codes[CP_RFM8__COUNT] = {
    [CP_RFM8_NONE] = NULL,
    [CP_RFM8_IMPORTANT_VALUE] = "important_value",
    [CP_RFM8_IMPORTANT_DEVELOP] = "important_develop",
    [CP_RFM8_IMPORTANT_KEEP] = "important_keep",
    [CP_RFM8_IMPORTANT_RETAIN] = "important_retain",
    [CP_RFM8_GENERAL_VALUE] = "general_value",
    [CP_RFM8_GENERAL_DEVELOP] = "general_develop",
    [CP_RFM8_GENERAL_KEEP] = "general_keep",
    [CP_RFM8_GENERAL_RETAIN] = "general_retain",
};

static const char *const rfm8_names_zh[CP_RFM8__COUNT] = {
    [CP_RFM8_NONE] = NULL,
    [CP_RFM8_IMPORTANT_VALUE] = "重要价值客户",
    [CP_RFM8_IMPORTANT_DEVELOP] = "重要发展客户",
    [CP_RFM8_IMPORTANT_KEEP] = "重要保持客户",
    [CP_RFM8_IMPORTANT_RETAIN] = "重要挽留客户",
    [CP_RFM8_GENERAL_VALUE] = "一般价值客户",
    [CP_RFM8_GENERAL_DEVELOP] = "一般发展客户",
    [CP_RFM8_GENERAL_KEEP] = "一般保持客户",
    [CP_RFM8_GENERAL_RETAIN] = "一般挽留客户",
};

static int rfm8_valid(cp_rfm8_t seg)
{
    return seg > CP_RFM8_NONE && seg < CP_RFM8__COUNT;
}

const char *cp_rfm8_code(cp_rfm8_t seg)
{
    return rfm8_valid(seg) ? rfm8_codes[seg] : NULL;
}

const char *cp_rfm8_name_zh(cp_rfm8_t seg)
{
    return rfm8_valid(seg) ? rfm8_names_zh[seg] : NULL;
}

int cp_rfm8_parse(const char *code, cp_rfm8_t *out)
{
    if (code == NULL)
        return -1;
    for (int i = CP_RFM8_NONE + 1; i < CP_RFM8__COUNT; i++) {
        if (strcmp(code, rfm8_codes[i]) == 0) {
            *out = (cp_rfm8_t)i;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------------------
 * Classification
 * ------------------------------------------------------------------------ */

/* The contracts table as [M high][R better][F high]. */
/* clang-format off */
static const cp_rfm8_t rfm8_table[2][2][2] = {
    [0][0][0] = CP_RFM8_GENERAL_RETAIN,
    [0][0][1] = CP_RFM8_GENERAL_KEEP,
    [0][1][0] = CP_RFM8_GENERAL_DEVELOP,
    [0][1][1] = CP_RFM8_GENERAL_VALUE,
    [1][0][0] = CP_RFM8_IMPORTANT_RETAIN,
    [1][0][1] = CP_RFM8_IMPORTANT_KEEP,
    [1][1][0] = CP_RFM8_IMPORTANT_DEVELOP,
    [1][1][1] = CP_RFM8_IMPORTANT_VALUE,
};
/* clang-format on */

int64_t cp_rfm_recency_days(const cp_state_t *st, int64_t today)
{
    if (!st->has_order_time || today <= st->last_day)
        return 0;
    return today - st->last_day;
}

cp_rfm8_t cp_rfm8_classify(const cp_state_t *st, int64_t today,
                           const cp_rfm_ref_t *ref)
{
    if (st->orders < 1)
        return CP_RFM8_NONE;

    /* Equal to the reference is the favourable side. */
    int r_better = (double)cp_rfm_recency_days(st, today) <= ref->recency_days;
    int f_high = (double)st->orders >= ref->frequency;
    int m_high = (double)st->monetary >= ref->monetary;
    return rfm8_table[m_high][r_better][f_high];
}

/* ---------------------------------------------------------------------------
 * Population figures
 * ------------------------------------------------------------------------ */

cp_rfm_ref_t cp_pop_reference(const cp_pop_t *pop, int64_t today)
{
    cp_rfm_ref_t ref = {0.0, 0.0, 0.0};
    if (pop->n == 0)
        return ref;

    double n = (double)pop->n;
    ref.recency_days = (double)today - (double)pop->sl / n;
    ref.frequency = (double)pop->sf / n;
    ref.monetary = (double)pop->sm / n;
    return ref;
}

/* a + sign * b in two's complement: deltas that cancel out restore the sums
 * exactly even if an intermediate value wrapped (no signed overflow UB). */
static int64_t add_wrap(int64_t a, int sign, int64_t b)
{
    uint64_t ub = (uint64_t)b;
    uint64_t r = sign > 0 ? (uint64_t)a + ub : (uint64_t)a - ub;
    return (int64_t)r;
}

/* Adds (sign = 1) or removes (sign = -1) st's contribution to pop. */
static void pop_contribute(cp_pop_t *pop, const cp_state_t *st, int sign)
{
    if (st == NULL || st->orders < 1)
        return;
    pop->n = add_wrap(pop->n, sign, 1);
    pop->sf = add_wrap(pop->sf, sign, st->orders);
    pop->sm = add_wrap(pop->sm, sign, st->monetary);
    pop->sl = add_wrap(pop->sl, sign, st->last_day);
}

cp_pop_t cp_pop_delta(const cp_state_t *before, const cp_state_t *after)
{
    cp_pop_t d = {0, 0, 0, 0};
    cp_pop_update(&d, before, after);
    return d;
}

void cp_pop_update(cp_pop_t *pop, const cp_state_t *before,
                   const cp_state_t *after)
{
    pop_contribute(pop, before, -1);
    pop_contribute(pop, after, 1);
}
