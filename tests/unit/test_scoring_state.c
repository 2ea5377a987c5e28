/*
 * test_scoring_state.c - cp_state_apply: the order rules and the
 * de-duplication windows of docs/contracts.md section 2.
 *
 * Pure unit tests, no services. Event and order ids are small integers
 * standing in for their FNV-1a hashes; every test asserts exact values.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "state.h"

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

#define DAY_MS 86400000LL

static const cp_apply_params_t defaults = {16, 32, NULL, NULL};

/* An event at day `day` (noon UTC), so occurred_day matches occurred_ms. */
static cp_event_t ev_at(cp_ev_type_t type, uint64_t eid, uint64_t oid,
                        int64_t amount, int64_t day)
{
    cp_event_t ev = {.type = type,
                     .event_id_hash = eid,
                     .order_id_hash = oid,
                     .amount = amount,
                     .occurred_ms = day * DAY_MS + DAY_MS / 2,
                     .occurred_day = day};
    return ev;
}

static cp_apply_result_t apply(cp_state_t *st, cp_ev_type_t type, uint64_t eid,
                               uint64_t oid, int64_t amount, int64_t day,
                               const cp_apply_params_t *params)
{
    cp_event_t ev = ev_at(type, eid, oid, amount, day);
    return cp_state_apply(st, &ev, params);
}

static cp_apply_result_t place(cp_state_t *st, uint64_t eid, uint64_t oid,
                               int64_t amount, int64_t day)
{
    return apply(st, CP_EV_ORDER_PLACED, eid, oid, amount, day, &defaults);
}

static cp_apply_result_t refund(cp_state_t *st, uint64_t eid, uint64_t oid,
                                int64_t amount)
{
    return apply(st, CP_EV_ORDER_REFUNDED, eid, oid, amount, 500, &defaults);
}

static cp_apply_result_t cancel(cp_state_t *st, uint64_t eid, uint64_t oid,
                                int64_t amount)
{
    return apply(st, CP_EV_ORDER_CANCELLED, eid, oid, amount, 500, &defaults);
}

static void assert_times(const cp_state_t *st, int64_t first_day,
                         int64_t last_day)
{
    assert_int_equal(st->has_order_time, 1);
    assert_int_equal(st->first_ms, first_day * DAY_MS + DAY_MS / 2);
    assert_int_equal(st->last_ms, last_day * DAY_MS + DAY_MS / 2);
    assert_int_equal(st->last_day, last_day);
}

static void assert_order_mem(const cp_state_t *st, int i, uint64_t oid,
                             int64_t net, int cancelled)
{
    assert_true(i < st->n_orders_mem);
    assert_int_equal(st->orders_mem[i].id_hash, oid);
    assert_int_equal(st->orders_mem[i].net, net);
    assert_int_equal(st->orders_mem[i].cancelled, cancelled);
}

/* st's event id memory is exactly ids[0..n), oldest first. */
static void assert_event_ids(const cp_state_t *st, const uint64_t *ids, int n)
{
    assert_int_equal(st->n_event_ids, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(st->event_ids[i], ids[i]);
}

/* st's order memory holds exactly the ids oids[0..n), oldest first. */
static void assert_order_ids(const cp_state_t *st, const uint64_t *oids, int n)
{
    assert_int_equal(st->n_orders_mem, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(st->orders_mem[i].id_hash, oids[i]);
}

/* Field by field (memcmp would also compare padding): everything but the
 * event id memory is equal. */
static void assert_same_but_event_ids(const cp_state_t *a, const cp_state_t *b)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->orders, b->orders);
    assert_int_equal(a->monetary, b->monetary);
    assert_int_equal(a->first_ms, b->first_ms);
    assert_int_equal(a->last_ms, b->last_ms);
    assert_int_equal(a->last_day, b->last_day);
    assert_int_equal(a->has_order_time, b->has_order_time);
    assert_int_equal(a->segment, b->segment);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->n_orders_mem, b->n_orders_mem);
    for (int i = 0; i < a->n_orders_mem; i++)
        assert_order_mem(a, i, b->orders_mem[i].id_hash, b->orders_mem[i].net,
                         b->orders_mem[i].cancelled);
}

static void assert_state_equal(const cp_state_t *a, const cp_state_t *b)
{
    assert_same_but_event_ids(a, b);
    assert_event_ids(a, b->event_ids, b->n_event_ids);
}

/* ---------------------------------------------------------------------------
 * Init and order.placed
 * ------------------------------------------------------------------------ */

static void test_init_is_empty(void **unused)
{
    (void)unused;
    cp_state_t st, zero;
    memset(&st, 0xab, sizeof st);
    memset(&zero, 0, sizeof zero);
    /* Everything 0 but the "none" markers of layout 2. */
    zero.won_back_day = -1;
    zero.support.nps_last = -1;
    cp_state_init(&st);
    assert_memory_equal(&st, &zero, sizeof st);
    assert_int_equal(st.segment, CP_RFM8_NONE);
    assert_int_equal(st.stage, CP_LC_NONE);
    assert_int_equal(st.eng, CP_ENG_NONE);
    assert_int_equal(st.sat, CP_SAT_NONE);
    assert_int_equal(st.tier, CP_TIER_NONE);
    assert_int_equal(st.rfmq, CP_RFMSEG_NONE);
}

static void test_placed_first_order(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    assert_int_equal(place(&st, 101, 1, 1990, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 1);
    assert_int_equal(st.monetary, 1990);
    assert_times(&st, 19000, 19000);
    const uint64_t ids[] = {101};
    assert_event_ids(&st, ids, 1);
    assert_int_equal(st.n_orders_mem, 1);
    assert_order_mem(&st, 0, 1, 1990, 0);
}

static void test_placed_later_moves_last(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    assert_int_equal(place(&st, 102, 2, 500, 19005), CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 2);
    assert_int_equal(st.monetary, 1500);
    assert_times(&st, 19000, 19005);
    assert_order_mem(&st, 0, 1, 1000, 0);
    assert_order_mem(&st, 1, 2, 500, 0);
}

static void test_placed_out_of_order_earlier(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19005);
    assert_int_equal(place(&st, 102, 2, 500, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 2);
    assert_int_equal(st.monetary, 1500);
    assert_times(&st, 19000, 19005); /* first moves, last and day stay */
}

static void test_placed_between_moves_nothing(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    place(&st, 102, 2, 1000, 19010);
    place(&st, 103, 3, 1000, 19004);
    assert_int_equal(st.orders, 3);
    assert_times(&st, 19000, 19010);
}

static void test_placed_same_ms_keeps_last_day(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    /* Same instant, contrived different day: last_ms does not move, so
     * last_day must not either. */
    cp_event_t ev = ev_at(CP_EV_ORDER_PLACED, 102, 2, 1000, 19000);
    ev.occurred_day = 19001;
    assert_int_equal(cp_state_apply(&st, &ev, &defaults), CP_APPLY_APPLIED);
    assert_times(&st, 19000, 19000);
    /* One ms later moves last_ms and takes the event's day. */
    ev = ev_at(CP_EV_ORDER_PLACED, 103, 3, 1000, 19000);
    ev.occurred_ms += 1;
    ev.occurred_day = 19001;
    cp_state_apply(&st, &ev, &defaults);
    assert_int_equal(st.last_ms, 19000 * DAY_MS + DAY_MS / 2 + 1);
    assert_int_equal(st.last_day, 19001);
    assert_int_equal(st.first_ms, 19000 * DAY_MS + DAY_MS / 2);
}

static void test_placed_duplicate_order(void **unused)
{
    (void)unused;
    cp_state_t st, before;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    before = st;
    /* New event id, same order id, different amount and a later time. */
    assert_int_equal(place(&st, 102, 1, 7777, 19009), CP_APPLY_DUP_ORDER);
    assert_same_but_event_ids(&st, &before);
    const uint64_t ids[] = {101, 102};
    assert_event_ids(&st, ids, 2);
    assert_int_equal(st.orders, 1);
    assert_int_equal(st.monetary, 1000);
    assert_times(&st, 19000, 19000);
}

static void test_placed_zero_amount(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    assert_int_equal(place(&st, 101, 1, 0, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 1);
    assert_int_equal(st.monetary, 0);
    assert_order_mem(&st, 0, 1, 0, 0);
}

static void test_placed_monetary_saturates(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    const int64_t big = 1000000000000000000LL; /* 10^15 major, 3 digits */
    for (uint64_t i = 1; i <= 9; i++)
        place(&st, 100 + i, i, big, 19000);
    assert_int_equal(st.monetary, 9 * big);
    assert_int_equal(place(&st, 110, 10, big, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, INT64_MAX);
    assert_int_equal(place(&st, 111, 11, 1, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, INT64_MAX);
    assert_int_equal(st.orders, 11);
    assert_order_mem(&st, 9, 10, big, 0); /* net is the full amount */
}

static void test_apply_leaves_version_segment_seq(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    st.version = 7;
    st.segment = CP_RFM8_GENERAL_KEEP;
    st.seq = 3;
    place(&st, 101, 1, 1000, 19000);
    refund(&st, 102, 1, 10);
    cancel(&st, 103, 1, 0);
    assert_int_equal(st.version, 7);
    assert_int_equal(st.segment, CP_RFM8_GENERAL_KEEP);
    assert_int_equal(st.seq, 3);
}

/* ---------------------------------------------------------------------------
 * Event id duplicates
 * ------------------------------------------------------------------------ */

static void test_dup_event_changes_nothing(void **unused)
{
    (void)unused;
    cp_state_t st, before;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    place(&st, 102, 2, 500, 19001);
    before = st;
    /* The same event id with any type or payload is ignored entirely. */
    assert_int_equal(place(&st, 101, 9, 5, 19020), CP_APPLY_DUP_EVENT);
    assert_int_equal(refund(&st, 102, 1, 1000), CP_APPLY_DUP_EVENT);
    assert_int_equal(cancel(&st, 101, 2, 500), CP_APPLY_DUP_EVENT);
    assert_state_equal(&st, &before);
}

static void test_dup_event_of_dup_order_event(void **unused)
{
    (void)unused;
    cp_state_t st, before;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    assert_int_equal(place(&st, 102, 1, 1000, 19000), CP_APPLY_DUP_ORDER);
    before = st;
    /* The DUP_ORDER event's id was recorded, so its replay is DUP_EVENT. */
    assert_int_equal(place(&st, 102, 1, 1000, 19000), CP_APPLY_DUP_EVENT);
    assert_state_equal(&st, &before);
}

/* ---------------------------------------------------------------------------
 * order.refunded
 * ------------------------------------------------------------------------ */

static void test_refund_partial(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    assert_int_equal(refund(&st, 102, 1, 300), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 700);
    assert_order_mem(&st, 0, 1, 700, 0);
    assert_int_equal(refund(&st, 103, 1, 300), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 400);
    assert_order_mem(&st, 0, 1, 400, 0);
    assert_int_equal(st.orders, 1);
    assert_times(&st, 19000, 19000);
}

static void test_refund_over_net_is_clamped(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    place(&st, 102, 2, 500, 19001);
    /* 1200 refunded of an order worth 1000: only 1000 leaves m. */
    assert_int_equal(refund(&st, 103, 1, 1200), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 500);
    assert_order_mem(&st, 0, 1, 0, 0);
    assert_order_mem(&st, 1, 2, 500, 0);
    assert_int_equal(st.orders, 2); /* a refund does not uncount */
    /* Fully refunded: a further refund of it removes nothing. */
    assert_int_equal(refund(&st, 104, 1, 100), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 500);
    assert_order_mem(&st, 0, 1, 0, 0);
}

static void test_refund_of_cancelled_is_ignored(void **unused)
{
    (void)unused;
    cp_state_t st, before;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    place(&st, 102, 2, 500, 19001);
    cancel(&st, 103, 1, 1000);
    assert_int_equal(st.monetary, 500);
    before = st;
    assert_int_equal(refund(&st, 104, 1, 200), CP_APPLY_APPLIED);
    assert_same_but_event_ids(&st, &before);
    const uint64_t ids[] = {101, 102, 103, 104};
    assert_event_ids(&st, ids, 4);
    assert_int_equal(st.monetary, 500);
    assert_int_equal(st.orders, 1);
}

static void test_refund_unknown_order(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    assert_int_equal(refund(&st, 102, 99, 300), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 700);
    assert_int_equal(st.orders, 1);
    assert_times(&st, 19000, 19000);
    assert_int_equal(st.n_orders_mem, 1); /* unknown orders are not kept */
    assert_order_mem(&st, 0, 1, 1000, 0);
    /* More than m: floors at 0. */
    assert_int_equal(refund(&st, 103, 98, 5000), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 0);
    assert_int_equal(st.orders, 1);
}

static void test_refund_unknown_on_empty_state(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    assert_int_equal(refund(&st, 101, 1, 300), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 0);
    assert_int_equal(st.orders, 0);
    assert_int_equal(st.has_order_time, 0);
    assert_int_equal(st.n_orders_mem, 0);
    /* The order placed afterwards is a new, fully counted order. */
    assert_int_equal(place(&st, 102, 1, 1000, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 1000);
    assert_int_equal(st.orders, 1);
}

/* ---------------------------------------------------------------------------
 * order.cancelled
 * ------------------------------------------------------------------------ */

static void test_cancel_counted_order(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    place(&st, 102, 2, 500, 19005);
    refund(&st, 103, 1, 200);
    assert_int_equal(st.monetary, 1300);
    /* Cancel removes the order's remaining net, not the event's amount. */
    assert_int_equal(cancel(&st, 104, 1, 1000), CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 1);
    assert_int_equal(st.monetary, 500);
    assert_order_mem(&st, 0, 1, 0, 1);
    assert_order_mem(&st, 1, 2, 500, 0);
    assert_times(&st, 19000, 19005);
}

static void test_cancel_does_not_move_times(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    place(&st, 102, 2, 500, 19005);
    cancel(&st, 103, 2, 500);  /* the latest order */
    cancel(&st, 104, 1, 1000); /* the earliest order */
    assert_int_equal(st.orders, 0);
    assert_int_equal(st.monetary, 0);
    assert_times(&st, 19000, 19005);
}

static void test_cancel_twice(void **unused)
{
    (void)unused;
    cp_state_t st, before;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    place(&st, 102, 2, 500, 19001);
    cancel(&st, 103, 1, 1000);
    before = st;
    assert_int_equal(cancel(&st, 104, 1, 1000), CP_APPLY_APPLIED);
    assert_same_but_event_ids(&st, &before);
    assert_int_equal(st.n_event_ids, 4);
    assert_int_equal(st.orders, 1);
    assert_int_equal(st.monetary, 500);
    assert_order_mem(&st, 0, 1, 0, 1);
}

static void test_cancel_unknown_order(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    assert_int_equal(cancel(&st, 102, 99, 400), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 600);
    assert_int_equal(st.orders, 1);
    assert_times(&st, 19000, 19000);
    assert_int_equal(st.n_orders_mem, 1);
    /* More than m: floors at 0, orders still unchanged. */
    assert_int_equal(cancel(&st, 103, 98, 601), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 0);
    assert_int_equal(st.orders, 1);
    /* On an empty state: everything stays 0. */
    cp_state_init(&st);
    assert_int_equal(cancel(&st, 104, 97, 50), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 0);
    assert_int_equal(st.orders, 0);
    assert_int_equal(st.has_order_time, 0);
}

static void test_cancel_net_above_monetary_floors(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    refund(&st, 102, 99, 800); /* unknown order: m 200, net still 1000 */
    assert_int_equal(st.monetary, 200);
    assert_int_equal(cancel(&st, 103, 1, 1000), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 0);
    assert_int_equal(st.orders, 0);
    assert_order_mem(&st, 0, 1, 0, 1);
}

static void test_cancel_orders_floor_at_zero(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    st.orders = 0; /* an inconsistent stored state must not go negative */
    assert_int_equal(cancel(&st, 102, 1, 1000), CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 0);
    assert_int_equal(st.monetary, 0);
}

static void test_placed_again_after_cancel(void **unused)
{
    (void)unused;
    cp_state_t st, before;
    cp_state_init(&st);
    place(&st, 101, 1, 1000, 19000);
    cancel(&st, 102, 1, 1000);
    before = st;
    assert_int_equal(place(&st, 103, 1, 1000, 19003), CP_APPLY_DUP_ORDER);
    assert_same_but_event_ids(&st, &before);
    assert_int_equal(st.orders, 0);
    assert_int_equal(st.monetary, 0);
    assert_times(&st, 19000, 19000);
    assert_order_mem(&st, 0, 1, 0, 1);
}

/* ---------------------------------------------------------------------------
 * Order memory window
 * ------------------------------------------------------------------------ */

static void test_order_window_1(void **unused)
{
    (void)unused;
    const cp_apply_params_t p = {16, 1, NULL, NULL};
    cp_state_t st;
    cp_state_init(&st);
    apply(&st, CP_EV_ORDER_PLACED, 101, 1, 1000, 19000, &p);
    apply(&st, CP_EV_ORDER_PLACED, 102, 2, 500, 19001, &p);
    const uint64_t only2[] = {2};
    assert_order_ids(&st, only2, 1);
    assert_order_mem(&st, 0, 2, 500, 0);
    /* o2 is still remembered. */
    assert_int_equal(apply(&st, CP_EV_ORDER_PLACED, 103, 2, 500, 19001, &p),
                     CP_APPLY_DUP_ORDER);
    /* o1 was evicted: its duplicate is counted again. */
    assert_int_equal(apply(&st, CP_EV_ORDER_PLACED, 104, 1, 1000, 19000, &p),
                     CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 3);
    assert_int_equal(st.monetary, 2500);
    const uint64_t only1[] = {1};
    assert_order_ids(&st, only1, 1);
}

static void test_order_window_3(void **unused)
{
    (void)unused;
    const cp_apply_params_t p = {16, 3, NULL, NULL};
    cp_state_t st;
    cp_state_init(&st);
    for (uint64_t o = 1; o <= 4; o++)
        apply(&st, CP_EV_ORDER_PLACED, 100 + o, o, 100, 19000, &p);
    const uint64_t w234[] = {2, 3, 4};
    assert_order_ids(&st, w234, 3);
    assert_int_equal(st.orders, 4);
    /* o1 was the oldest and is gone: counted again, becomes the newest. */
    assert_int_equal(apply(&st, CP_EV_ORDER_PLACED, 105, 1, 100, 19000, &p),
                     CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 5);
    assert_int_equal(st.monetary, 500);
    const uint64_t w341[] = {3, 4, 1};
    assert_order_ids(&st, w341, 3);
    /* o3 is now the oldest remembered and still a duplicate. */
    assert_int_equal(apply(&st, CP_EV_ORDER_PLACED, 106, 3, 100, 19000, &p),
                     CP_APPLY_DUP_ORDER);
    /* o2 was evicted: counted again. */
    assert_int_equal(apply(&st, CP_EV_ORDER_PLACED, 107, 2, 100, 19000, &p),
                     CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 6);
    const uint64_t w412[] = {4, 1, 2};
    assert_order_ids(&st, w412, 3);
}

static void test_refund_and_cancel_of_evicted_order(void **unused)
{
    (void)unused;
    const cp_apply_params_t p = {16, 1, NULL, NULL};
    cp_state_t st;
    cp_state_init(&st);
    apply(&st, CP_EV_ORDER_PLACED, 101, 1, 1000, 19000, &p);
    apply(&st, CP_EV_ORDER_PLACED, 102, 2, 500, 19001, &p);
    /* o1 is no longer remembered: a plain monetary adjustment. */
    apply(&st, CP_EV_ORDER_REFUNDED, 103, 1, 300, 19002, &p);
    assert_int_equal(st.monetary, 1200);
    assert_int_equal(st.orders, 2);
    apply(&st, CP_EV_ORDER_CANCELLED, 104, 1, 700, 19002, &p);
    assert_int_equal(st.monetary, 500);
    assert_int_equal(st.orders, 2); /* an unknown cancel does not uncount */
    assert_int_equal(st.n_orders_mem, 1);
    assert_order_mem(&st, 0, 2, 500, 0);
}

static void test_order_window_lowered(void **unused)
{
    (void)unused;
    cp_state_t st, before;
    cp_state_init(&st);
    for (uint64_t o = 1; o <= 5; o++)
        place(&st, 100 + o, o, 100, 19000);
    assert_int_equal(st.n_orders_mem, 5);

    const cp_apply_params_t p = {16, 2, NULL, NULL};
    /* o5 is inside the new window: a duplicate that changes nothing else,
     * not even the order memory. */
    before = st;
    assert_int_equal(apply(&st, CP_EV_ORDER_PLACED, 106, 5, 100, 19000, &p),
                     CP_APPLY_DUP_ORDER);
    assert_same_but_event_ids(&st, &before);
    assert_int_equal(st.n_orders_mem, 5);
    /* o3 is still stored but outside the newest 2: counted again, and the
     * memory is cut down to the window. */
    assert_int_equal(apply(&st, CP_EV_ORDER_PLACED, 107, 3, 100, 19000, &p),
                     CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 6);
    assert_int_equal(st.monetary, 600);
    const uint64_t w53[] = {5, 3};
    assert_order_ids(&st, w53, 2);
}

static void test_order_window_lowered_refund(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    for (uint64_t o = 1; o <= 4; o++)
        place(&st, 100 + o, o, 100, 19000);
    const cp_apply_params_t p = {16, 2, NULL, NULL};
    /* o1 is outside the lowered window: an adjustment, and the memory is
     * trimmed so o1 cannot come back with a stale net. */
    apply(&st, CP_EV_ORDER_REFUNDED, 105, 1, 30, 19000, &p);
    assert_int_equal(st.monetary, 370);
    const uint64_t w34[] = {3, 4};
    assert_order_ids(&st, w34, 2);
    /* o4 is inside: a normal refund of its net. */
    apply(&st, CP_EV_ORDER_CANCELLED, 106, 4, 100, 19000, &p);
    assert_int_equal(st.monetary, 270);
    assert_int_equal(st.orders, 3);
    assert_order_mem(&st, 1, 4, 0, 1);
}

/* ---------------------------------------------------------------------------
 * Event id window
 * ------------------------------------------------------------------------ */

static void test_event_window_1(void **unused)
{
    (void)unused;
    const cp_apply_params_t p = {1, 32, NULL, NULL};
    cp_state_t st;
    cp_state_init(&st);
    apply(&st, CP_EV_ORDER_PLACED, 101, 1, 1000, 19000, &p);
    apply(&st, CP_EV_ORDER_REFUNDED, 102, 99, 100, 19000, &p);
    assert_int_equal(st.monetary, 900);
    const uint64_t e102[] = {102};
    assert_event_ids(&st, e102, 1);
    assert_int_equal(apply(&st, CP_EV_ORDER_REFUNDED, 102, 99, 100, 19000, &p),
                     CP_APPLY_DUP_EVENT);
    assert_int_equal(st.monetary, 900);
    apply(&st, CP_EV_ORDER_REFUNDED, 103, 98, 100, 19000, &p);
    assert_int_equal(st.monetary, 800);
    /* e102 was evicted by e103: its replay is applied again. */
    assert_int_equal(apply(&st, CP_EV_ORDER_REFUNDED, 102, 99, 100, 19000, &p),
                     CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 700);
    assert_event_ids(&st, e102, 1);
}

static void test_event_window_3(void **unused)
{
    (void)unused;
    const cp_apply_params_t p = {3, 32, NULL, NULL};
    cp_state_t st;
    cp_state_init(&st);
    apply(&st, CP_EV_ORDER_PLACED, 101, 1, 10000, 19000, &p);
    for (uint64_t e = 102; e <= 104; e++)
        apply(&st, CP_EV_ORDER_REFUNDED, e, 90 + e, 100, 19000, &p);
    const uint64_t w234[] = {102, 103, 104};
    assert_event_ids(&st, w234, 3);
    assert_int_equal(st.monetary, 9700);
    /* The oldest (102) is still inside. */
    assert_int_equal(apply(&st, CP_EV_ORDER_REFUNDED, 102, 192, 100, 19000, &p),
                     CP_APPLY_DUP_EVENT);
    /* 101 was evicted: a replay of the placement is no longer a duplicate
     * event, but the order memory still catches it. */
    assert_int_equal(apply(&st, CP_EV_ORDER_PLACED, 101, 1, 10000, 19000, &p),
                     CP_APPLY_DUP_ORDER);
    const uint64_t w341[] = {103, 104, 101};
    assert_event_ids(&st, w341, 3);
    /* 102 is evicted now: its refund is counted again. */
    assert_int_equal(apply(&st, CP_EV_ORDER_REFUNDED, 102, 192, 100, 19000, &p),
                     CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 9600);
    const uint64_t w412[] = {104, 101, 102};
    assert_event_ids(&st, w412, 3);
    assert_int_equal(st.orders, 1);
}

static void test_event_window_lowered(void **unused)
{
    (void)unused;
    cp_state_t st, before;
    cp_state_init(&st);
    place(&st, 101, 1, 10000, 19000);
    for (uint64_t e = 102; e <= 105; e++)
        refund(&st, e, 90 + e, 100); /* unknown orders: -100 each */
    assert_int_equal(st.n_event_ids, 5);
    assert_int_equal(st.monetary, 9600);

    const cp_apply_params_t p = {3, 32, NULL, NULL};
    /* 105 is among the newest 3: a duplicate, nothing changes (the excess
     * is not trimmed by a duplicate). */
    before = st;
    assert_int_equal(apply(&st, CP_EV_ORDER_REFUNDED, 105, 195, 100, 19000, &p),
                     CP_APPLY_DUP_EVENT);
    assert_state_equal(&st, &before);
    /* 102 is stored but not among the newest 3: applied again, and the
     * memory is cut down to the limit. */
    assert_int_equal(apply(&st, CP_EV_ORDER_REFUNDED, 102, 192, 100, 19000, &p),
                     CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 9500);
    const uint64_t w[] = {104, 105, 102};
    assert_event_ids(&st, w, 3);
}

static void test_event_window_max_and_clamp(void **unused)
{
    (void)unused;
    /* Out-of-range params are clamped to 1..CP_DEDUP_MAX. */
    const cp_apply_params_t huge = {100000, 100000, NULL, NULL};
    cp_state_t st;
    cp_state_init(&st);
    for (uint64_t i = 1; i <= CP_DEDUP_MAX + 2; i++)
        apply(&st, CP_EV_ORDER_PLACED, 1000 + i, i, 1, 19000, &huge);
    assert_int_equal(st.n_event_ids, CP_DEDUP_MAX);
    assert_int_equal(st.event_ids[0], 1003);
    assert_int_equal(st.event_ids[CP_DEDUP_MAX - 1], 1000 + CP_DEDUP_MAX + 2);
    assert_int_equal(st.n_orders_mem, CP_DEDUP_MAX);
    assert_int_equal(st.orders_mem[0].id_hash, 3);
    assert_int_equal(st.orders, CP_DEDUP_MAX + 2);

    const cp_apply_params_t zero = {0, -5, NULL, NULL};
    apply(&st, CP_EV_ORDER_PLACED, 5000, 5000, 1, 19000, &zero);
    const uint64_t e[] = {5000};
    assert_event_ids(&st, e, 1);
    const uint64_t o[] = {5000};
    assert_order_ids(&st, o, 1);
}

/* ---------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------ */

/* ---- layout 2: repeat days, events, browsing, support, profile ---------- */

/* z: the first order day's net spend; m - z is the repeat spend. */
static void test_first_spend(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    assert_int_equal(st.first_spend, 0);
    assert_int_equal(place(&st, 1, 11, 10000, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.first_spend, 10000);
    /* same day: adds; a later day: repeat spend */
    assert_int_equal(place(&st, 2, 12, 5000, 19000), CP_APPLY_APPLIED);
    assert_int_equal(place(&st, 3, 13, 7000, 19004), CP_APPLY_APPLIED);
    assert_int_equal(st.first_spend, 15000);
    assert_int_equal(st.monetary, 22000);
    /* an earlier day arrives late: it is the first day now, and day
     * 19000's 150.00 is repeat spend */
    assert_int_equal(place(&st, 4, 14, 3000, 18990), CP_APPLY_APPLIED);
    assert_int_equal(st.first_spend, 3000);
    assert_int_equal(st.repeat_days, 2);
    /* duplicates change nothing */
    assert_int_equal(place(&st, 5, 14, 3000, 18990), CP_APPLY_DUP_ORDER);
    assert_int_equal(st.first_spend, 3000);
    /* refunds: of a first-day order lowers z, of another day not */
    assert_int_equal(refund(&st, 6, 14, 1000), CP_APPLY_APPLIED);
    assert_int_equal(st.first_spend, 2000);
    assert_int_equal(refund(&st, 7, 11, 1000), CP_APPLY_APPLIED);
    assert_int_equal(st.first_spend, 2000);
    assert_int_equal(st.monetary, 23000);
    /* cancelling the first day's order: z 0, the day stays first */
    assert_int_equal(cancel(&st, 8, 14, 0), CP_APPLY_APPLIED);
    assert_int_equal(st.first_spend, 0);
    assert_int_equal(st.first_day, 18990);
    assert_int_equal(st.monetary, 21000);
    /* an unknown order's adjustment lowers m, and z with it */
    cp_state_init(&st);
    assert_int_equal(place(&st, 1, 11, 10000, 19000), CP_APPLY_APPLIED);
    assert_int_equal(refund(&st, 2, 99, 9500), CP_APPLY_APPLIED);
    assert_int_equal(st.monetary, 500);
    assert_int_equal(st.first_spend, 500);
    /* unknown (-1, a hash from before z) stays unknown on the same or a
     * later day, and becomes known with an earlier first day */
    cp_state_init(&st);
    assert_int_equal(place(&st, 1, 11, 10000, 19000), CP_APPLY_APPLIED);
    st.first_spend = -1;
    assert_int_equal(place(&st, 2, 12, 1000, 19000), CP_APPLY_APPLIED);
    assert_int_equal(place(&st, 3, 13, 1000, 19001), CP_APPLY_APPLIED);
    assert_int_equal(refund(&st, 4, 11, 1000), CP_APPLY_APPLIED);
    assert_int_equal(st.first_spend, -1);
    assert_int_equal(place(&st, 5, 14, 2500, 18000), CP_APPLY_APPLIED);
    assert_int_equal(st.first_spend, 2500);
}

static void test_repeat_days(void **unused)
{
    (void)unused;
    cp_state_t st;
    cp_state_init(&st);
    /* first order: x stays 0 */
    assert_int_equal(place(&st, 1, 11, 100, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.repeat_days, 0);
    /* same day again: not a repeat day */
    assert_int_equal(place(&st, 2, 12, 100, 19000), CP_APPLY_APPLIED);
    assert_int_equal(st.repeat_days, 0);
    /* a later day, then an earlier one (out of order): both count */
    assert_int_equal(place(&st, 3, 13, 100, 19005), CP_APPLY_APPLIED);
    assert_int_equal(place(&st, 4, 14, 100, 18990), CP_APPLY_APPLIED);
    assert_int_equal(st.repeat_days, 2);
    assert_int_equal(st.first_day, 18990);
    assert_int_equal(st.last_day, 19005);
    /* duplicate order id and duplicate event: nothing */
    assert_int_equal(place(&st, 5, 13, 100, 19007), CP_APPLY_DUP_ORDER);
    assert_int_equal(place(&st, 3, 99, 100, 19008), CP_APPLY_DUP_EVENT);
    assert_int_equal(st.repeat_days, 2);
    /* cancelling one of two orders of day 19000 keeps the day */
    assert_int_equal(cancel(&st, 6, 12, 0), CP_APPLY_APPLIED);
    assert_int_equal(st.repeat_days, 2);
    /* cancelling the only order of day 19005 drops it */
    assert_int_equal(cancel(&st, 7, 13, 0), CP_APPLY_APPLIED);
    assert_int_equal(st.repeat_days, 1);
    /* a refund to zero keeps the order (and its day) counted */
    assert_int_equal(refund(&st, 8, 14, 100), CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 2);
    assert_int_equal(st.repeat_days, 1);
    /* cancelling everything: x = 0 */
    assert_int_equal(cancel(&st, 9, 11, 0), CP_APPLY_APPLIED);
    assert_int_equal(cancel(&st, 10, 14, 0), CP_APPLY_APPLIED);
    assert_int_equal(st.orders, 0);
    assert_int_equal(st.repeat_days, 0);
    /* events: every applied event, duplicates not */
    assert_int_equal(st.events, 9);
}

static void test_browsing_support_profile(void **unused)
{
    (void)unused;
    cp_engagement_params_t ep = {.half_life_ms = 14.0 * DAY_MS,
                                 .weight = {1, 0.5, 1, 1, 3, 2},
                                 .high = 20,
                                 .medium = 5,
                                 .low = 1};
    cp_satisfaction_params_t sp = {.complaint_half_life_ms = 30.0 * DAY_MS,
                                   .at_risk_complaints = 2,
                                   .at_risk_open_tickets = 3,
                                   .at_risk_csat = 2,
                                   .satisfied_csat = 4};
    cp_apply_params_t p = {16, 32, &ep, &sp};
    cp_state_t st;
    cp_state_init(&st);
    cp_event_t ev = ev_at(CP_EV_CART_ITEM_ADDED, 1, 0, 0, 100);
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    ev = ev_at(CP_EV_PAGE_VIEWED, 2, 0, 0, 114); /* one half-life later */
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    assert_int_equal(st.browse_n[CP_BROWSE_CART_ADD], 1);
    assert_int_equal(st.browse_n[CP_BROWSE_PAGE], 1);
    /* 3 halved + 0.5 at day 114 */
    assert_true(fabs(st.engagement.score - 2.0) < 1e-12);
    assert_int_equal(st.orders, 0);

    ev = ev_at(CP_EV_TICKET_OPENED, 3, 0, 0, 120);
    ev.ticket_id_hash = 77;
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    ev = ev_at(CP_EV_TICKET_RESOLVED, 4, 0, 0, 121);
    ev.resolution_minutes = 90.5;
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    ev = ev_at(CP_EV_SURVEY_ANSWERED, 5, 0, 0, 122);
    ev.survey = CP_SURVEY_CSAT;
    ev.score = 5;
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    ev = ev_at(CP_EV_SURVEY_ANSWERED, 6, 0, 0, 122);
    ev.survey = CP_SURVEY_NPS;
    ev.score = 3;
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    ev = ev_at(CP_EV_COMPLAINT_FILED, 7, 0, 0, 123);
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    assert_int_equal(st.support.events, 5);
    assert_int_equal(st.support.open_tickets, 0);
    assert_int_equal(st.support.resolved, 1);
    assert_true(st.support.resolution_min_sum == 90.5);
    assert_int_equal(st.support.csat_last, 5);
    assert_int_equal(st.support.nps_last, 3);
    assert_true(st.support.complaints.score == 1.0);
    /* a duplicate support event changes nothing */
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_DUP_EVENT);
    assert_int_equal(st.support.events, 5);

    cp_attr_t attrs[2] = {{"country", 7, "DE", 2, 0},
                          {"is_strategic", 12, "true", 4, 0}};
    ev = ev_at(CP_EV_PROFILE_UPDATED, 8, 0, 0, 124);
    ev.attrs = attrs;
    ev.n_attrs = 2;
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    assert_int_equal(st.strategic, 1);
    cp_attr_t removed = {"is_strategic", 12, NULL, 0, 1};
    ev = ev_at(CP_EV_PROFILE_UPDATED, 9, 0, 0, 125);
    ev.attrs = &removed;
    ev.n_attrs = 1;
    assert_int_equal(cp_state_apply(&st, &ev, &p), CP_APPLY_APPLIED);
    assert_int_equal(st.strategic, 0);
    assert_int_equal(st.events, 9);

    /* without model params browsing and support only count */
    cp_state_t bare;
    cp_state_init(&bare);
    ev = ev_at(CP_EV_SEARCH_PERFORMED, 1, 0, 0, 100);
    assert_int_equal(cp_state_apply(&bare, &ev, &defaults), CP_APPLY_APPLIED);
    assert_int_equal(bare.browse_n[CP_BROWSE_SEARCH], 1);
    assert_int_equal(bare.engagement.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_repeat_days),
        cmocka_unit_test(test_first_spend),
        cmocka_unit_test(test_browsing_support_profile),
        cmocka_unit_test(test_placed_first_order),
        cmocka_unit_test(test_placed_later_moves_last),
        cmocka_unit_test(test_placed_out_of_order_earlier),
        cmocka_unit_test(test_placed_between_moves_nothing),
        cmocka_unit_test(test_placed_same_ms_keeps_last_day),
        cmocka_unit_test(test_placed_duplicate_order),
        cmocka_unit_test(test_placed_zero_amount),
        cmocka_unit_test(test_placed_monetary_saturates),
        cmocka_unit_test(test_apply_leaves_version_segment_seq),
        cmocka_unit_test(test_dup_event_changes_nothing),
        cmocka_unit_test(test_dup_event_of_dup_order_event),
        cmocka_unit_test(test_refund_partial),
        cmocka_unit_test(test_refund_over_net_is_clamped),
        cmocka_unit_test(test_refund_of_cancelled_is_ignored),
        cmocka_unit_test(test_refund_unknown_order),
        cmocka_unit_test(test_refund_unknown_on_empty_state),
        cmocka_unit_test(test_cancel_counted_order),
        cmocka_unit_test(test_cancel_does_not_move_times),
        cmocka_unit_test(test_cancel_twice),
        cmocka_unit_test(test_cancel_unknown_order),
        cmocka_unit_test(test_cancel_net_above_monetary_floors),
        cmocka_unit_test(test_cancel_orders_floor_at_zero),
        cmocka_unit_test(test_placed_again_after_cancel),
        cmocka_unit_test(test_order_window_1),
        cmocka_unit_test(test_order_window_3),
        cmocka_unit_test(test_refund_and_cancel_of_evicted_order),
        cmocka_unit_test(test_order_window_lowered),
        cmocka_unit_test(test_order_window_lowered_refund),
        cmocka_unit_test(test_event_window_1),
        cmocka_unit_test(test_event_window_3),
        cmocka_unit_test(test_event_window_lowered),
        cmocka_unit_test(test_event_window_max_and_clamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
