/*
 * engagement.h - the engagement model: a decayed score of browsing events
 * and its level (docs/models.md, "Engagement").
 *
 * Pure computation: times are parameters.
 */
#ifndef CP_ENGAGEMENT_H
#define CP_ENGAGEMENT_H

#include <stdint.h>

#include "decay.h"

/* The browsing event kinds, each with its own weight. */
typedef enum {
    CP_BROWSE_SESSION = 0,  /* session.started */
    CP_BROWSE_PAGE,         /* page.viewed */
    CP_BROWSE_PRODUCT,      /* product.viewed */
    CP_BROWSE_SEARCH,       /* search.performed */
    CP_BROWSE_CART_ADD,     /* cart.item_added */
    CP_BROWSE_CART_ABANDON, /* cart.abandoned */
    CP_BROWSE__COUNT
} cp_browse_t;

typedef enum {
    CP_ENG_NONE = 0, /* no browsing event yet */
    CP_ENG_DORMANT,
    CP_ENG_LOW,
    CP_ENG_MEDIUM,
    CP_ENG_HIGH,
    CP_ENG__COUNT
} cp_engagement_t;

typedef struct cp_engagement_params_s {
    double half_life_ms;             /* > 0 */
    double weight[CP_BROWSE__COUNT]; /* >= 0 */
    double high;                     /* score >= high: high */
    double medium;                   /* >= medium: medium */
    double low;                      /* >= low: low; below: dormant */
} cp_engagement_params_t;

/* Adds a browsing event of kind k at t_ms to the score d. */
void cp_engagement_add(cp_decay_t *d, cp_browse_t k, int64_t t_ms,
                       const cp_engagement_params_t *p);

/* The score at now_ms (cp_decay_at). */
double cp_engagement_score(const cp_decay_t *d, int64_t now_ms,
                           const cp_engagement_params_t *p);

/* The level of d at now_ms; CP_ENG_NONE while d is empty. */
cp_engagement_t cp_engagement_level(const cp_decay_t *d, int64_t now_ms,
                                    const cp_engagement_params_t *p);

/* "high", "medium", "low", "dormant"; NULL for CP_ENG_NONE. */
const char *cp_engagement_code(cp_engagement_t e);

#endif
