/*
 * quantile.c - quantile RFM scores and named segments; see quantile.h.
 */
#include "quantile.h"

#include <math.h>
#include <stddef.h>

int64_t cp_q_bucket_r(int64_t last_day)
{
    return last_day;
}

int64_t cp_q_bucket_f(int64_t orders)
{
    if (orders <= 64)
        return orders;
    return 64 + (int64_t)floor(8.0 * log2((double)orders / 64.0));
}

int64_t cp_q_bucket_m(int64_t monetary)
{
    if (monetary <= 0)
        return -1;
    return (int64_t)floor(8.0 * log2((double)monetary));
}

int64_t cp_q_thresholds(const cp_q_bin_t *bins, int n, int64_t t[4])
{
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        if (bins[i].count > 0)
            total += bins[i].count;
    int k = 1;
    int64_t below = 0;
    for (int i = 0; i < n && k <= 4; i++) {
        if (bins[i].count <= 0)
            continue;
        /* below / total >= k / 5, in integers */
        while (k <= 4 && below * 5 >= (int64_t)k * total)
            t[k++ - 1] = bins[i].bucket;
        below += bins[i].count;
    }
    while (k <= 4)
        t[k++ - 1] = CP_Q_NONE;
    return total;
}

int cp_q_score(int64_t b, const int64_t t[4])
{
    int s = 1;
    for (int k = 0; k < 4; k++)
        s += t[k] != CP_Q_NONE && b >= t[k];
    return s;
}

/* Rows: R 1..5; columns: F 1..5. */
static const cp_rfmseg_t grid[5][5] = {
    /* R1 */ {CP_RFMSEG_LOST, CP_RFMSEG_HIBERNATING, CP_RFMSEG_AT_RISK,
              CP_RFMSEG_AT_RISK, CP_RFMSEG_CANT_LOSE},
    /* R2 */
    {CP_RFMSEG_HIBERNATING, CP_RFMSEG_HIBERNATING, CP_RFMSEG_AT_RISK,
     CP_RFMSEG_AT_RISK, CP_RFMSEG_CANT_LOSE},
    /* R3 */
    {CP_RFMSEG_ABOUT_TO_SLEEP, CP_RFMSEG_ABOUT_TO_SLEEP,
     CP_RFMSEG_NEED_ATTENTION, CP_RFMSEG_LOYAL, CP_RFMSEG_LOYAL},
    /* R4 */
    {CP_RFMSEG_PROMISING, CP_RFMSEG_POTENTIAL_LOYALIST,
     CP_RFMSEG_POTENTIAL_LOYALIST, CP_RFMSEG_LOYAL, CP_RFMSEG_LOYAL},
    /* R5 */
    {CP_RFMSEG_NEW, CP_RFMSEG_POTENTIAL_LOYALIST, CP_RFMSEG_POTENTIAL_LOYALIST,
     CP_RFMSEG_CHAMPIONS, CP_RFMSEG_CHAMPIONS},
};

cp_rfmseg_t cp_rfmseg(int r, int f)
{
    if (r < 1 || r > 5 || f < 1 || f > 5)
        return CP_RFMSEG_NONE;
    return grid[r - 1][f - 1];
}

const char *cp_rfmseg_code(cp_rfmseg_t s)
{
    static const char *codes[CP_RFMSEG__COUNT] = {
        NULL,      "champions", "loyal",          "potential_loyalist",
        "new",     "promising", "need_attention", "about_to_sleep",
        "at_risk", "cant_lose", "hibernating",    "lost"};
    return (unsigned)s < CP_RFMSEG__COUNT ? codes[s] : NULL;
}
