/*
 * satisfaction.h - the satisfaction model: support events reduced to open
 * tickets, decayed complaints, CSAT and NPS, and a level (docs/models.md,
 * "Satisfaction").
 *
 * Pure computation: times are parameters.
 */
#ifndef CP_SATISFACTION_H
#define CP_SATISFACTION_H

#include <stdint.h>

#include "decay.h"

typedef enum {
    CP_SUPPORT_TICKET_OPENED = 0,
    CP_SUPPORT_TICKET_RESOLVED,
    CP_SUPPORT_COMPLAINT,
    CP_SUPPORT_CSAT, /* score 1..5 */
    CP_SUPPORT_NPS   /* score 0..10 */
} cp_support_ev_t;

typedef enum {
    CP_SAT_NONE = 0, /* no support event yet */
    CP_SAT_SATISFIED,
    CP_SAT_NEUTRAL,
    CP_SAT_AT_RISK,
    CP_SAT__COUNT
} cp_satisfaction_t;

typedef enum {
    CP_NPS_NONE = 0,
    CP_NPS_DETRACTOR, /* 0..6 */
    CP_NPS_PASSIVE,   /* 7..8 */
    CP_NPS_PROMOTER   /* 9..10 */
} cp_nps_class_t;

/* One customer's support figures. "Latest" means latest by event time, so
 * a late survey does not replace a newer one. */
typedef struct cp_support_s {
    int64_t events;       /* support events applied */
    int64_t open_tickets; /* opened - resolved, never below 0 */
    int64_t resolved;     /* tickets resolved */
    double resolution_min_sum;
    cp_decay_t complaints; /* weight 1 per complaint */
    int csat_last;         /* 1..5; 0 = none */
    int64_t csat_last_ms;
    int64_t csat_sum;
    int64_t csat_n;
    int nps_last; /* 0..10; -1 = none */
    int64_t nps_last_ms;
} cp_support_t;

typedef struct cp_satisfaction_params_s {
    double complaint_half_life_ms; /* > 0 */
    double at_risk_complaints;     /* decayed complaints >= this: at risk */
    int64_t at_risk_open_tickets;  /* open tickets >= this: at risk */
    int at_risk_csat;              /* latest CSAT <= this: at risk */
    int satisfied_csat;            /* latest CSAT >= this: may be satisfied */
} cp_satisfaction_params_t;

void cp_support_init(cp_support_t *s);

/* Applies one support event at t_ms. score: the survey's (CSAT 1..5, NPS
 * 0..10, validated by the decoder), resolution_min: a resolved ticket's
 * resolution time; both ignored otherwise. */
void cp_support_apply(cp_support_t *s, cp_support_ev_t ev, int score,
                      double resolution_min, int64_t t_ms,
                      const cp_satisfaction_params_t *p);

/* Class of an NPS score; CP_NPS_NONE for -1. */
cp_nps_class_t cp_nps_class(int score);

/* Average CSAT, 0 when none. */
double cp_support_csat_avg(const cp_support_t *s);

/* Decayed complaints at now_ms. */
double cp_support_complaints(const cp_support_t *s, int64_t now_ms,
                             const cp_satisfaction_params_t *p);

/* The level at now_ms:
 *   none      no support event yet;
 *   at_risk   decayed complaints >= at_risk_complaints, or open tickets >=
 *             at_risk_open_tickets, or latest CSAT <= at_risk_csat, or the
 *             latest NPS is a detractor's;
 *   satisfied (latest CSAT >= satisfied_csat or latest NPS a promoter's),
 *             no open ticket and decayed complaints < 0.5;
 *   neutral   otherwise. */
cp_satisfaction_t cp_satisfaction_level(const cp_support_t *s, int64_t now_ms,
                                        const cp_satisfaction_params_t *p);

/* "satisfied", "neutral", "at_risk"; NULL for CP_SAT_NONE. */
const char *cp_satisfaction_code(cp_satisfaction_t l);
/* "promoter", "passive", "detractor"; NULL for CP_NPS_NONE. */
const char *cp_nps_code(cp_nps_class_t c);

#endif
