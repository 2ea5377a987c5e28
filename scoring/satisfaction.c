/*
 * satisfaction.c - the satisfaction model; see satisfaction.h.
 */
#include "satisfaction.h"

#include <stddef.h>

void cp_support_init(cp_support_t *s)
{
    s->events = 0;
    s->open_tickets = 0;
    s->resolved = 0;
    s->resolution_min_sum = 0.0;
    cp_decay_init(&s->complaints);
    s->csat_last = 0;
    s->csat_last_ms = 0;
    s->csat_sum = 0;
    s->csat_n = 0;
    s->nps_last = -1;
    s->nps_last_ms = 0;
}

void cp_support_apply(cp_support_t *s, cp_support_ev_t ev, int score,
                      double resolution_min, int64_t t_ms,
                      const cp_satisfaction_params_t *p)
{
    s->events++;
    switch (ev) {
    case CP_SUPPORT_TICKET_OPENED:
        s->open_tickets++;
        break;
    case CP_SUPPORT_TICKET_RESOLVED:
        if (s->open_tickets > 0)
            s->open_tickets--;
        s->resolved++;
        s->resolution_min_sum += resolution_min;
        break;
    case CP_SUPPORT_COMPLAINT:
        cp_decay_add(&s->complaints, 1.0, t_ms, p->complaint_half_life_ms);
        break;
    case CP_SUPPORT_CSAT:
        s->csat_sum += score;
        s->csat_n++;
        if (!s->csat_last || t_ms >= s->csat_last_ms) {
            s->csat_last = score;
            s->csat_last_ms = t_ms;
        }
        break;
    case CP_SUPPORT_NPS:
        if (s->nps_last < 0 || t_ms >= s->nps_last_ms) {
            s->nps_last = score;
            s->nps_last_ms = t_ms;
        }
        break;
    }
}

cp_nps_class_t cp_nps_class(int score)
{
    if (score < 0)
        return CP_NPS_NONE;
    if (score <= 6)
        return CP_NPS_DETRACTOR;
    return score <= 8 ? CP_NPS_PASSIVE : CP_NPS_PROMOTER;
}

double cp_support_csat_avg(const cp_support_t *s)
{
    return s->csat_n ? (double)s->csat_sum / (double)s->csat_n : 0.0;
}

double cp_support_complaints(const cp_support_t *s, int64_t now_ms,
                             const cp_satisfaction_params_t *p)
{
    return cp_decay_at(&s->complaints, now_ms, p->complaint_half_life_ms);
}

cp_satisfaction_t cp_satisfaction_level(const cp_support_t *s, int64_t now_ms,
                                        const cp_satisfaction_params_t *p)
{
    if (!s->events)
        return CP_SAT_NONE;
    double complaints = cp_support_complaints(s, now_ms, p);
    cp_nps_class_t nps = cp_nps_class(s->nps_last);
    if (complaints >= p->at_risk_complaints ||
        s->open_tickets >= p->at_risk_open_tickets ||
        (s->csat_last && s->csat_last <= p->at_risk_csat) ||
        nps == CP_NPS_DETRACTOR)
        return CP_SAT_AT_RISK;
    if ((s->csat_last >= p->satisfied_csat || nps == CP_NPS_PROMOTER) &&
        s->open_tickets == 0 && complaints < 0.5)
        return CP_SAT_SATISFIED;
    return CP_SAT_NEUTRAL;
}

const char *cp_satisfaction_code(cp_satisfaction_t l)
{
    static const char *codes[CP_SAT__COUNT] = {NULL, "satisfied", "neutral",
                                               "at_risk"};
    return (unsigned)l < CP_SAT__COUNT ? codes[l] : NULL;
}

const char *cp_nps_code(cp_nps_class_t c)
{
    switch (c) {
    case CP_NPS_DETRACTOR:
        return "detractor";
    case CP_NPS_PASSIVE:
        return "passive";
    case CP_NPS_PROMOTER:
        return "promoter";
    default:
        return NULL;
    }
}
