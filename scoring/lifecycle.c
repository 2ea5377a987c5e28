/*
 * lifecycle.c - the lifecycle stage; see lifecycle.h.
 */
#include "lifecycle.h"

#include <stddef.h>

cp_lifecycle_t cp_lifecycle_eval(const cp_lifecycle_in_t *in, int64_t today,
                                 const cp_lifecycle_params_t *p)
{
    if (!in->has_activity && in->orders < 1)
        return CP_LC_NONE;
    if (in->orders < 1)
        return CP_LC_PROSPECT;
    int64_t since_last = today - in->last_day;
    if (since_last >= p->churn_days)
        return CP_LC_CHURNED;
    if (since_last >= p->at_risk_days)
        return CP_LC_AT_RISK;
    if (in->won_back_day >= 0 && today - in->won_back_day < p->won_back_days)
        return CP_LC_WON_BACK;
    if (today - in->first_day < p->new_days)
        return CP_LC_NEW;
    return in->orders >= p->loyal_orders ? CP_LC_LOYAL : CP_LC_ACTIVE;
}

int64_t cp_lifecycle_won_back_day(cp_lifecycle_t before, int64_t day,
                                  int64_t won_back_day)
{
    return before == CP_LC_CHURNED ? day : won_back_day;
}

const char *cp_lifecycle_code(cp_lifecycle_t s)
{
    static const char *codes[CP_LC__COUNT] = {NULL,      "prospect", "new",
                                              "active",  "loyal",    "at_risk",
                                              "churned", "won_back"};
    return (unsigned)s < CP_LC__COUNT ? codes[s] : NULL;
}
