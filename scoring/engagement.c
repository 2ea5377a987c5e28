/*
 * engagement.c - the engagement model; see engagement.h.
 */
#include "engagement.h"

#include <stddef.h>

void cp_engagement_add(cp_decay_t *d, cp_browse_t k, int64_t t_ms,
                       const cp_engagement_params_t *p)
{
    cp_decay_add(d, p->weight[k], t_ms, p->half_life_ms);
}

double cp_engagement_score(const cp_decay_t *d, int64_t now_ms,
                           const cp_engagement_params_t *p)
{
    return cp_decay_at(d, now_ms, p->half_life_ms);
}

cp_engagement_t cp_engagement_level(const cp_decay_t *d, int64_t now_ms,
                                    const cp_engagement_params_t *p)
{
    if (!d->n)
        return CP_ENG_NONE;
    double s = cp_engagement_score(d, now_ms, p);
    if (s >= p->high)
        return CP_ENG_HIGH;
    if (s >= p->medium)
        return CP_ENG_MEDIUM;
    if (s >= p->low)
        return CP_ENG_LOW;
    return CP_ENG_DORMANT;
}

const char *cp_engagement_code(cp_engagement_t e)
{
    static const char *codes[CP_ENG__COUNT] = {NULL, "dormant", "low", "medium",
                                               "high"};
    return (unsigned)e < CP_ENG__COUNT ? codes[e] : NULL;
}
