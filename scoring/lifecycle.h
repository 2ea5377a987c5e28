/*
 * lifecycle.h - the lifecycle stage: prospect -> new -> active / loyal ->
 * at_risk -> churned -> won_back (docs/models.md, "Lifecycle").
 *
 * Pure computation: "today" is a parameter (a local day number, as for
 * RFM recency).
 */
#ifndef CP_LIFECYCLE_H
#define CP_LIFECYCLE_H

#include <stdint.h>

typedef enum {
    CP_LC_NONE = 0, /* nothing known of the customer */
    CP_LC_PROSPECT,
    CP_LC_NEW,
    CP_LC_ACTIVE,
    CP_LC_LOYAL,
    CP_LC_AT_RISK,
    CP_LC_CHURNED,
    CP_LC_WON_BACK,
    CP_LC__COUNT
} cp_lifecycle_t;

typedef struct cp_lifecycle_params_s {
    int64_t new_days;      /* first order fewer days ago: new */
    int64_t loyal_orders;  /* at least this many orders (and recent): loyal */
    int64_t at_risk_days;  /* last order at least this many days ago */
    int64_t churn_days;    /* > at_risk_days */
    int64_t won_back_days; /* won_back lasts this many days */
} cp_lifecycle_params_t;

/* What the stage depends on. */
typedef struct cp_lifecycle_in_s {
    int64_t orders;       /* counted orders */
    int has_activity;     /* any event applied (browsing, support, orders) */
    int64_t first_day;    /* local day of the first order (orders >= 1) */
    int64_t last_day;     /* local day of the last order (orders >= 1) */
    int64_t won_back_day; /* day of the order that ended a churn; -1 none */
} cp_lifecycle_in_t;

/* The stage on day `today`, by the first rule that holds:
 *   none       no activity;
 *   prospect   no counted order;
 *   churned    today - last_day >= churn_days;
 *   at_risk    today - last_day >= at_risk_days;
 *   won_back   won_back_day >= 0 and today - won_back_day < won_back_days;
 *   new        today - first_day < new_days;
 *   loyal      orders >= loyal_orders;
 *   active     otherwise. */
cp_lifecycle_t cp_lifecycle_eval(const cp_lifecycle_in_t *in, int64_t today,
                                 const cp_lifecycle_params_t *p);

/* A counted order placed on `day` by a customer whose stage just before
 * it was `before`: the won_back_day to keep afterwards (day when it ends a
 * churn, else the one held). */
int64_t cp_lifecycle_won_back_day(cp_lifecycle_t before, int64_t day,
                                  int64_t won_back_day);

/* "prospect", "new", "active", "loyal", "at_risk", "churned", "won_back";
 * NULL for CP_LC_NONE. */
const char *cp_lifecycle_code(cp_lifecycle_t s);

#endif
