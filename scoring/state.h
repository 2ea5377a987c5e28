/*
 * state.h - one customer's state and the pure application of an event.
 *
 * Pure computation: no I/O, no clock. "Now" and local day numbers are
 * parameters. Rules are those of docs/contracts.md section 2.
 */
#ifndef CP_STATE_H
#define CP_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "decay.h"
#include "engagement.h"
#include "lifecycle.h"
#include "quantile.h"
#include "satisfaction.h"
#include "value.h"

/* Upper bound of both de-duplication windows (config dedup.*). */
#define CP_DEDUP_MAX 128

/* Input event types, docs/contracts.md sections 1 and 1b. Values are
 * stable (they may be stored); new ones are appended. */
typedef enum {
    /* orders */
    CP_EV_ORDER_PLACED = 0,
    CP_EV_ORDER_REFUNDED = 1,
    CP_EV_ORDER_CANCELLED = 2,
    /* browsing */
    CP_EV_SESSION_STARTED = 3,
    CP_EV_PAGE_VIEWED = 4,
    CP_EV_PRODUCT_VIEWED = 5,
    CP_EV_SEARCH_PERFORMED = 6,
    CP_EV_CART_ITEM_ADDED = 7,
    CP_EV_CART_ABANDONED = 8,
    /* support */
    CP_EV_TICKET_OPENED = 9,
    CP_EV_TICKET_RESOLVED = 10,
    CP_EV_COMPLAINT_FILED = 11,
    CP_EV_SURVEY_ANSWERED = 12,
    /* profile */
    CP_EV_PROFILE_UPDATED = 13
} cp_ev_type_t;

/* Survey kind of survey.answered. */
typedef enum {
    CP_SURVEY_NONE = 0, /* not a survey.answered event */
    CP_SURVEY_CSAT = 1, /* score 1..5 */
    CP_SURVEY_NPS = 2   /* score 0..10 */
} cp_survey_t;

/* One attribute of profile.updated, in input order. Strings are
 * NUL-terminated (the lengths exclude the NUL) and live in the decoder's
 * arena. value is the normalised text: known attributes as in
 * docs/contracts.md 1b (tags joined with ',' in input order, is_strategic
 * "true"/"false", birth_year decimal, signup_at epoch ms decimal), other
 * attributes their string, "true"/"false", or a number's shortest
 * round-tripping decimal digits without exponent ("1.5", "100", "-0.001").
 * A removed attribute (JSON null) has value NULL, value_len 0. */
typedef struct cp_attr_s {
    const char *name; /* [a-z0-9_]{1,32} */
    size_t name_len;
    const char *value;
    size_t value_len;
    int removed; /* 1: the attribute is to be removed */
} cp_attr_t;

/* A validated input event, reduced to what scoring needs. Fields a type
 * does not have are 0 / NULL. */
typedef struct cp_event_s {
    cp_ev_type_t type;
    uint64_t event_id_hash; /* cp_hash_fnv1a64(event_id) */
    uint64_t order_id_hash; /* cp_hash_fnv1a64(order_id) */
    int64_t amount;         /* minor units, >= 0: an order's amount, or the
                               value of a browsing event when has_value */
    int64_t occurred_ms;    /* epoch ms */
    int64_t occurred_day;   /* local day number of occurred_ms */
    /* browsing and support ids: cp_hash_fnv1a64 of the id, 0 when absent */
    uint64_t session_id_hash;
    uint64_t product_id_hash;
    uint64_t ticket_id_hash;
    int has_session_id;
    int has_product_id;
    int has_ticket_id;
    int has_value; /* cart.item_added (optional), cart.abandoned (always) */
    /* ticket.resolved: 0..10,000,000 (a JSON number, may be fractional) */
    double resolution_minutes;
    /* survey.answered */
    cp_survey_t survey;
    int score; /* CSAT 1..5, NPS 0..10 */
    /* profile.updated: 1..32 attributes, in the decoder's arena */
    const cp_attr_t *attrs;
    size_t n_attrs;
} cp_event_t;

/* A remembered order. */
typedef struct cp_order_mem_s {
    uint64_t id_hash;
    int64_t net;   /* amount still counted in monetary */
    int cancelled; /* 1 once cancelled: no longer in o or m */
    int64_t day;   /* local day placed; CP_DAY_UNKNOWN for entries written
                      by layout 1 */
} cp_order_mem_t;

#define CP_DAY_UNKNOWN INT64_MIN

typedef enum {
    CP_RFM8_NONE = 0, /* no counted order */
    CP_RFM8_IMPORTANT_VALUE,
    CP_RFM8_IMPORTANT_DEVELOP,
    CP_RFM8_IMPORTANT_KEEP,
    CP_RFM8_IMPORTANT_RETAIN,
    CP_RFM8_GENERAL_VALUE,
    CP_RFM8_GENERAL_DEVELOP,
    CP_RFM8_GENERAL_KEEP,
    CP_RFM8_GENERAL_RETAIN,
    CP_RFM8__COUNT
} cp_rfm8_t;

typedef struct cp_state_s {
    int64_t version;  /* v */
    int64_t orders;   /* o */
    int64_t monetary; /* m, minor units, >= 0 */
    int64_t first_ms; /* f, valid when has_order_time */
    int64_t last_ms;  /* l, valid when has_order_time */
    int64_t last_day; /* local day of last_ms, valid when has_order_time */
    int has_order_time;
    cp_rfm8_t segment; /* s */
    int64_t seq;       /* q */
    /* e: recent event id hashes, oldest first */
    uint64_t event_ids[CP_DEDUP_MAX];
    int n_event_ids;
    /* r: remembered orders, oldest first */
    cp_order_mem_t orders_mem[CP_DEDUP_MAX];
    int n_orders_mem;

    /* ---- layout 2: the whole customer model (contracts section 2) ---- */
    int64_t first_day;   /* local day of first_ms, valid when has_order_time */
    int64_t events;      /* n: events applied, every family */
    int64_t repeat_days; /* b: BTYD x, distinct order days after the first */
    /* z: net spend (minor units) of the orders placed on first_day, so
     * that m - z is the repeat spend behind Gamma-Gamma's mean repeat
     * transaction value; -1 when unknown (a hash written before z). */
    int64_t first_spend;
    cp_decay_t engagement;              /* g: decayed browsing score */
    int64_t browse_n[CP_BROWSE__COUNT]; /* gc: browsing events per type */
    cp_support_t support;               /* k */
    int64_t won_back_day;               /* yw: day a churn ended; -1 none */
    int strategic; /* profile attribute is_strategic is "true" */
    /* The level of each model as last emitted (s* fields). */
    cp_rfmseg_t rfmq;      /* sq: quantile RFM named segment */
    cp_lifecycle_t stage;  /* sl */
    cp_engagement_t eng;   /* se */
    cp_satisfaction_t sat; /* ss */
    cp_tier_t tier;        /* sv */
    uint64_t custom;       /* sc: bit i = member of custom segment i */
} cp_state_t;

typedef enum {
    CP_APPLY_APPLIED = 0,   /* state changed (or event recorded) */
    CP_APPLY_DUP_EVENT = 1, /* event_id seen: nothing changed */
    CP_APPLY_DUP_ORDER = 2  /* order.placed of a remembered order_id: only
                               the event id was recorded */
} cp_apply_result_t;

typedef struct cp_apply_params_s {
    int dedup_event_ids; /* 1..CP_DEDUP_MAX */
    int dedup_orders;    /* 1..CP_DEDUP_MAX */
    /* Needed by browsing / support events (NULL: those events only count
     * in events and the id memory). */
    const cp_engagement_params_t *engagement;
    const cp_satisfaction_params_t *satisfaction;
} cp_apply_params_t;

/* An empty state (new customer): everything 0, levels NONE, won_back_day
 * -1, nps_last -1. */
void cp_state_init(cp_state_t *st);

/* Applies ev to st per the order rules. Records ev's event id (evicting the
 * oldest beyond dedup_event_ids) unless it is a duplicate; remembers a newly
 * counted order (evicting the oldest beyond dedup_orders). Updates last_day
 * from ev->occurred_day when last_ms moves. Never lets monetary go below 0.
 * Does not touch version, segment or seq.
 *
 * Details the contract leaves open, as implemented:
 * - Windows: only the newest dedup_event_ids ids / dedup_orders orders are
 *   looked up, so a state holding more (the config was lowered) behaves as
 *   if trimmed; the excess is dropped when that memory is next written
 *   (event ids: every non-duplicate event; orders: a newly counted
 *   order.placed, and any refund or cancellation before its lookup). A
 *   CP_APPLY_DUP_ORDER changes nothing but the event id memory. Params
 *   outside 1..CP_DEDUP_MAX are clamped into that range.
 * - monetary saturates at INT64_MAX on order.placed instead of overflowing.
 * - order.cancelled of a counted order sets its net to 0 and cancelled = 1;
 *   orders never goes below 0. first_ms / last_ms / last_day never move
 *   back; equal times leave last_day as it was.
 * - A refund or cancellation of a cancelled order changes nothing but the
 *   event id memory and still returns CP_APPLY_APPLIED.
 * - events counts CP_APPLY_APPLIED results of every family.
 * - repeat_days (BTYD x): a newly counted order on a local day that no
 *   other counted remembered order has, with another counted order before
 *   it, adds 1; a cancellation that leaves its day without a counted
 *   remembered order takes 1 away (never below 0; 0 when no counted order
 *   is left). Exact while a customer's orders fit in dedup.orders; entries
 *   of unknown day (layout 1) count as other days.
 * - first_spend (z): an order placed on a day before first_day starts it
 *   again (= its amount; the old first day's spend becomes repeat spend),
 *   one on first_day adds its amount; a refund or cancellation of a
 *   remembered order of first_day takes its part away; it never exceeds
 *   monetary (an adjustment of an unknown order lowers both). Unknown
 *   (-1) stays unknown until an order starts an earlier first day. If
 *   every order of the first day is cancelled, first_day does not move
 *   (like first_ms) and z is 0.
 * - Browsing: browse_n of its type +1 and the engagement sum (params
 *   ->engagement). Support: cp_support_apply (params->satisfaction); a
 *   survey of kind CP_SURVEY_NONE is ignored. Profile: strategic follows
 *   an is_strategic attribute ("true"; removed or "false": 0); the
 *   attributes themselves are the caller's.
 * Preconditions (validated by whoever decodes the state): counts in
 * 0..CP_DEDUP_MAX, monetary >= 0, ev->amount >= 0; checked with assert(). */
cp_apply_result_t cp_state_apply(cp_state_t *st, const cp_event_t *ev,
                                 const cp_apply_params_t *params);

#endif
