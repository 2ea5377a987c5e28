/*
 * state.c - applies one order event to one customer's state.
 *
 * Implements the order rules and the upstream de-duplication of
 * docs/contracts.md section 2 as a pure function: the caller reads the state
 * from Redis, calls cp_state_apply() and writes the result back with a
 * compare-and-set. Nothing here does I/O or reads a clock; version, segment
 * and seq belong to the caller.
 *
 * The two bounded memories (event ids `e`, remembered orders `r`) are kept
 * oldest first. A lookup only sees the newest `window` entries, so a state
 * written under a larger dedup.* setting behaves as if it had been trimmed.
 * The excess is dropped when that memory is next written: the event ids on
 * every non-duplicate event, the orders on a newly counted order.placed and
 * before a refund or cancellation looks its order up (so an order that fell
 * out of the window cannot come back with a stale net if the window grows).
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "state.h"

/* ---------------------------------------------------------------------------
 * Small arithmetic helpers
 * ------------------------------------------------------------------------ */

/* a + b for a, b >= 0, saturating at INT64_MAX instead of overflowing. */
static int64_t add_sat(int64_t a, int64_t b)
{
    if (b > INT64_MAX - a)
        return INT64_MAX;
    return a + b;
}

/* max(0, a - b) for a, b >= 0 (cannot overflow). */
static int64_t sub_floor0(int64_t a, int64_t b)
{
    return a > b ? a - b : 0;
}

/* A window size from the config, forced into 1..CP_DEDUP_MAX so that a bad
 * parameter can never write past the fixed arrays. */
static int window_of(int configured)
{
    if (configured < 1)
        return 1;
    if (configured > CP_DEDUP_MAX)
        return CP_DEDUP_MAX;
    return configured;
}

/* Index of the first entry inside the window of the newest `window`. */
static int window_start(int count, int window)
{
    return count > window ? count - window : 0;
}

/* Drops the oldest entries of an oldest-first array of *count elements of
 * elem_size bytes until at most keep remain. */
static void drop_oldest(void *arr, int *count, size_t elem_size, int keep)
{
    int drop = *count - keep;
    if (drop <= 0)
        return;
    unsigned char *base = arr;
    memmove(base, base + (size_t)drop * elem_size, (size_t)keep * elem_size);
    *count = keep;
}

/* ---------------------------------------------------------------------------
 * Event id memory (e)
 * ------------------------------------------------------------------------ */

static int event_id_seen(const cp_state_t *st, uint64_t hash, int window)
{
    for (int i = window_start(st->n_event_ids, window); i < st->n_event_ids;
         i++) {
        if (st->event_ids[i] == hash)
            return 1;
    }
    return 0;
}

/* Appends hash as the newest id, dropping the oldest beyond window. */
static void event_id_record(cp_state_t *st, uint64_t hash, int window)
{
    drop_oldest(st->event_ids, &st->n_event_ids, sizeof st->event_ids[0],
                window - 1);
    st->event_ids[st->n_event_ids++] = hash;
}

/* ---------------------------------------------------------------------------
 * Remembered orders (r)
 * ------------------------------------------------------------------------ */

static void orders_trim(cp_state_t *st, int keep)
{
    drop_oldest(st->orders_mem, &st->n_orders_mem, sizeof st->orders_mem[0],
                keep);
}

/* The remembered order with this id inside the window, or NULL. */
static cp_order_mem_t *order_find(cp_state_t *st, uint64_t hash, int window)
{
    for (int i = window_start(st->n_orders_mem, window); i < st->n_orders_mem;
         i++) {
        if (st->orders_mem[i].id_hash == hash)
            return &st->orders_mem[i];
    }
    return NULL;
}

static void order_remember(cp_state_t *st, uint64_t hash, int64_t net,
                           int64_t day, int window)
{
    /* Trim first so that the append always has room (window <= MAX). */
    orders_trim(st, window - 1);
    cp_order_mem_t *om = &st->orders_mem[st->n_orders_mem++];
    om->id_hash = hash;
    om->net = net;
    om->cancelled = 0;
    om->day = day;
}

/* Another counted (not cancelled) remembered order than `self` placed on
 * `day`. */
static int day_counted(const cp_state_t *st, int64_t day,
                       const cp_order_mem_t *self)
{
    for (int i = 0; i < st->n_orders_mem; i++) {
        const cp_order_mem_t *o = &st->orders_mem[i];
        if (o != self && !o->cancelled && o->day == day)
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Order rules
 * ------------------------------------------------------------------------ */

/* f = min(f, t), l = max(l, t); last_day follows l. */
static void note_order_time(cp_state_t *st, const cp_event_t *ev)
{
    if (!st->has_order_time) {
        st->first_ms = ev->occurred_ms;
        st->first_day = ev->occurred_day;
        st->last_ms = ev->occurred_ms;
        st->last_day = ev->occurred_day;
        st->has_order_time = 1;
        return;
    }
    if (ev->occurred_ms < st->first_ms) {
        st->first_ms = ev->occurred_ms;
        st->first_day = ev->occurred_day;
    }
    if (ev->occurred_ms > st->last_ms) {
        st->last_ms = ev->occurred_ms;
        st->last_day = ev->occurred_day;
    }
}

/* z never exceeds m (both are net of what left). */
static void cap_first_spend(cp_state_t *st)
{
    if (st->first_spend > st->monetary)
        st->first_spend = st->monetary;
}

static cp_apply_result_t apply_placed(cp_state_t *st, const cp_event_t *ev,
                                      int window)
{
    /* Any remembered entry, cancelled or not: a cancelled order placed
     * again is not counted again. */
    if (order_find(st, ev->order_id_hash, window) != NULL)
        return CP_APPLY_DUP_ORDER;

    int repeat = st->orders > 0 && !day_counted(st, ev->occurred_day, NULL);
    if (!st->has_order_time || ev->occurred_day < st->first_day)
        st->first_spend = ev->amount;
    else if (ev->occurred_day == st->first_day && st->first_spend >= 0)
        st->first_spend = add_sat(st->first_spend, ev->amount);
    st->orders++;
    st->monetary = add_sat(st->monetary, ev->amount);
    note_order_time(st, ev);
    order_remember(st, ev->order_id_hash, ev->amount, ev->occurred_day, window);
    if (repeat)
        st->repeat_days++;
    return CP_APPLY_APPLIED;
}

static void apply_refunded(cp_state_t *st, const cp_event_t *ev, int window)
{
    orders_trim(st, window);
    cp_order_mem_t *om = order_find(st, ev->order_id_hash, window);
    if (om == NULL) {
        st->monetary = sub_floor0(st->monetary, ev->amount);
        cap_first_spend(st);
        return;
    }
    if (om->cancelled)
        return; /* its money already left m with the cancellation */

    int64_t d = ev->amount < om->net ? ev->amount : om->net;
    om->net -= d;
    st->monetary = sub_floor0(st->monetary, d);
    if (st->has_order_time && om->day == st->first_day && st->first_spend > 0)
        st->first_spend = sub_floor0(st->first_spend, d);
    cap_first_spend(st);
}

static void apply_cancelled(cp_state_t *st, const cp_event_t *ev, int window)
{
    orders_trim(st, window);
    cp_order_mem_t *om = order_find(st, ev->order_id_hash, window);
    if (om == NULL) {
        st->monetary = sub_floor0(st->monetary, ev->amount);
        cap_first_spend(st);
        return;
    }
    if (om->cancelled)
        return;

    if (st->orders > 0)
        st->orders--;
    st->monetary = sub_floor0(st->monetary, om->net);
    if (st->has_order_time && om->day == st->first_day && st->first_spend > 0)
        st->first_spend = sub_floor0(st->first_spend, om->net);
    cap_first_spend(st);
    om->net = 0;
    om->cancelled = 1;
    if (st->orders == 0)
        st->repeat_days = 0;
    else if (st->repeat_days > 0 && !day_counted(st, om->day, NULL))
        st->repeat_days--;
}

/* ---------------------------------------------------------------------------
 * Browsing, support and profile
 * ------------------------------------------------------------------------ */

static void apply_browsing(cp_state_t *st, const cp_event_t *ev,
                           const cp_apply_params_t *params)
{
    cp_browse_t k = (cp_browse_t)(ev->type - CP_EV_SESSION_STARTED);
    st->browse_n[k]++;
    if (params->engagement)
        cp_engagement_add(&st->engagement, k, ev->occurred_ms,
                          params->engagement);
}

static void apply_support(cp_state_t *st, const cp_event_t *ev,
                          const cp_apply_params_t *params)
{
    cp_support_ev_t k;
    switch (ev->type) {
    case CP_EV_TICKET_OPENED:
        k = CP_SUPPORT_TICKET_OPENED;
        break;
    case CP_EV_TICKET_RESOLVED:
        k = CP_SUPPORT_TICKET_RESOLVED;
        break;
    case CP_EV_COMPLAINT_FILED:
        k = CP_SUPPORT_COMPLAINT;
        break;
    default:
        if (ev->survey == CP_SURVEY_CSAT)
            k = CP_SUPPORT_CSAT;
        else if (ev->survey == CP_SURVEY_NPS)
            k = CP_SUPPORT_NPS;
        else
            return;
        break;
    }
    if (params->satisfaction)
        cp_support_apply(&st->support, k, ev->score, ev->resolution_minutes,
                         ev->occurred_ms, params->satisfaction);
}

static void apply_profile(cp_state_t *st, const cp_event_t *ev)
{
    for (size_t i = 0; i < ev->n_attrs; i++) {
        const cp_attr_t *at = &ev->attrs[i];
        if (at->name_len == 12 && memcmp(at->name, "is_strategic", 12) == 0)
            st->strategic = !at->removed && at->value_len == 4 &&
                            memcmp(at->value, "true", 4) == 0;
    }
}

/* ---------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

void cp_state_init(cp_state_t *st)
{
    memset(st, 0, sizeof *st);
    st->segment = CP_RFM8_NONE;
    cp_decay_init(&st->engagement);
    cp_support_init(&st->support);
    st->won_back_day = -1;
}

cp_apply_result_t cp_state_apply(cp_state_t *st, const cp_event_t *ev,
                                 const cp_apply_params_t *params)
{
    assert(st->n_event_ids >= 0 && st->n_event_ids <= CP_DEDUP_MAX);
    assert(st->n_orders_mem >= 0 && st->n_orders_mem <= CP_DEDUP_MAX);
    assert(st->monetary >= 0 && ev->amount >= 0);

    int ev_window = window_of(params->dedup_event_ids);
    int ord_window = window_of(params->dedup_orders);

    if (event_id_seen(st, ev->event_id_hash, ev_window))
        return CP_APPLY_DUP_EVENT;
    event_id_record(st, ev->event_id_hash, ev_window);

    cp_apply_result_t res = CP_APPLY_APPLIED;
    switch (ev->type) {
    case CP_EV_ORDER_PLACED:
        res = apply_placed(st, ev, ord_window);
        break;
    case CP_EV_ORDER_REFUNDED:
        apply_refunded(st, ev, ord_window);
        break;
    case CP_EV_ORDER_CANCELLED:
        apply_cancelled(st, ev, ord_window);
        break;
    case CP_EV_SESSION_STARTED:
    case CP_EV_PAGE_VIEWED:
    case CP_EV_PRODUCT_VIEWED:
    case CP_EV_SEARCH_PERFORMED:
    case CP_EV_CART_ITEM_ADDED:
    case CP_EV_CART_ABANDONED:
        apply_browsing(st, ev, params);
        break;
    case CP_EV_TICKET_OPENED:
    case CP_EV_TICKET_RESOLVED:
    case CP_EV_COMPLAINT_FILED:
    case CP_EV_SURVEY_ANSWERED:
        apply_support(st, ev, params);
        break;
    case CP_EV_PROFILE_UPDATED:
        apply_profile(st, ev);
        break;
    }
    if (res == CP_APPLY_APPLIED)
        st->events++;
    return res;
}
