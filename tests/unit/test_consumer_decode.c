/*
 * test_consumer_decode.c - the decoder against every case in
 * tests/cases/decode/ (orders) and tests/cases/decode-{browsing,support,
 * profile}/ (key, value, expected class), plus exact decoded values of
 * valid events of every type and the oversize limit.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "decode.h"
#include "hash.h"

#define CASES "../cases/decode"
#define CASES_BROWSING "../cases/decode-browsing"
#define CASES_SUPPORT "../cases/decode-support"
#define CASES_PROFILE "../cases/decode-profile"

static cp_tz_t *tz;

static cp_decode_params_t params(void)
{
    cp_decode_params_t p = {65536, "USD", 2, tz};
    return p;
}

/* Reads a whole file; returns NULL if it does not exist. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* Fails if msg contains s[0..len) (up to its first NUL) when that is at
 * least 4 bytes: shorter strings ("c-1", "USD") occur by chance. */
static void assert_not_echoed(const char *dir, const char *msg, const char *s,
                              size_t len)
{
    const char *nul = memchr(s, '\0', len);
    if (nul)
        len = (size_t)(nul - s);
    if (len < 4 || len >= 256)
        return;
    char needle[256];
    memcpy(needle, s, len);
    needle[len] = '\0';
    if (strstr(msg, needle))
        fail_msg("case %s: message echoes a value: %s", dir, msg);
}

/* Every string value anywhere in v (object keys are names, not values). */
static void assert_no_value_echoed(const char *dir, const char *msg,
                                   const json_t *v)
{
    if (json_is_string(v)) {
        assert_not_echoed(dir, msg, json_string_value(v),
                          json_string_length(v));
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            assert_no_value_echoed(dir, msg, json_array_get(v, i));
    } else if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            assert_no_value_echoed(dir, msg, m);
        }
    }
}

static void check_message(const char *dir, const char *msg, const char *key,
                          size_t klen, const char *value, size_t vlen)
{
    assert_true(strlen(msg) > 0);
    if (key)
        assert_not_echoed(dir, msg, key, klen);
    json_t *root = json_loadb(value, vlen, JSON_ALLOW_NUL, NULL);
    assert_no_value_echoed(dir, msg, root);
    json_decref(root);
}

static void run_case(const char *dir, cp_family_t family, int *checked)
{
    size_t klen = 0, vlen = 0, clen = 0;
    char *key = slurp(dir, "key", &klen);
    char *value = slurp(dir, "value", &vlen);
    char *cls = slurp(dir, "class", &clen);
    assert_non_null(value);
    assert_non_null(cls);
    while (clen && (cls[clen - 1] == '\n'))
        clen--;
    cls[clen] = '\0';

    cp_decode_params_t p = params();
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_event_in_t out;
    char msg[256];
    cp_reject_t r = family == CP_FAMILY_ORDERS
                        ? cp_decode_order(&p, key, klen, value, vlen, &a, &out,
                                          msg, sizeof(msg))
                        : cp_decode_event(&p, family, key, klen, value, vlen,
                                          &a, &out, msg, sizeof(msg));
    if (strcmp(cp_reject_class(r), cls) != 0)
        fail_msg("case %s: expected %s, got %s (%s)", dir, cls,
                 cp_reject_class(r), msg);
    if (r != CP_REJECT_NONE)
        check_message(dir, msg, key, klen, value, vlen);
    else
        assert_string_equal(msg, "");
    cp_arena_free(&a);
    free(key);
    free(value);
    free(cls);
    (*checked)++;
}

/* Runs every case folder of root; returns how many. */
static int run_cases(const char *root, cp_family_t family)
{
    DIR *d = opendir(root);
    assert_non_null(d);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", root, e->d_name);
        run_case(dir, family, &checked);
    }
    closedir(d);
    return checked;
}

static void test_all_cases(void **state)
{
    (void)state;
    assert_true(run_cases(CASES, CP_FAMILY_ORDERS) >= 30);
}

static void test_browsing_cases(void **state)
{
    (void)state;
    assert_true(run_cases(CASES_BROWSING, CP_FAMILY_BROWSING) >= 140);
}

static void test_support_cases(void **state)
{
    (void)state;
    assert_true(run_cases(CASES_SUPPORT, CP_FAMILY_SUPPORT) >= 80);
}

static void test_profile_cases(void **state)
{
    (void)state;
    assert_true(run_cases(CASES_PROFILE, CP_FAMILY_PROFILE) >= 90);
}

static cp_reject_t decode_str(const char *key, const char *value,
                              cp_order_in_t *out, cp_arena_t *a)
{
    cp_decode_params_t p = params();
    char msg[256];
    return cp_decode_order(&p, key, key ? strlen(key) : 0, value, strlen(value),
                           a, out, msg, sizeof(msg));
}

static void test_valid_values(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_order_in_t out;
    assert_int_equal(
        decode_str("c-1",
                   "{\"event_id\":\"e-1\",\"type\":\"order.refunded\","
                   "\"customer_id\":\"c-1\",\"occurred_at\":"
                   "\"2024-03-01T00:15:00.999+01:00\",\"order_id\":\"o-1\","
                   "\"amount\":19.9,\"currency\":\"USD\"}",
                   &out, &a),
        CP_REJECT_NONE);
    assert_int_equal(out.ev.type, CP_EV_ORDER_REFUNDED);
    assert_int_equal(out.ev.amount, 1990);
    /* 2024-02-29T23:15:00.999Z */
    assert_int_equal(out.ev.occurred_ms, 1709248500999LL);
    assert_int_equal(out.ev.occurred_day, 19782); /* 2024-02-29 in UTC */
    assert_string_equal(out.customer_id, "c-1");
    assert_int_equal(out.customer_id_len, 3);
    assert_string_equal(out.event_id, "e-1");
    assert_true(out.ev.event_id_hash == cp_hash_fnv1a64("e-1", 3));
    assert_true(out.ev.order_id_hash == cp_hash_fnv1a64("o-1", 3));
    cp_arena_free(&a);
}

static void test_integer_amount_scaled(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_order_in_t out;
    assert_int_equal(
        decode_str("k",
                   "{\"event_id\":\"e\",\"type\":\"order.placed\","
                   "\"customer_id\":\"k\",\"occurred_at\":"
                   "\"1970-01-01T00:00:00Z\",\"order_id\":\"o\","
                   "\"amount\":1000000000000000,\"currency\":\"USD\"}",
                   &out, &a),
        CP_REJECT_NONE);
    assert_int_equal(out.ev.amount, 100000000000000000LL);
    assert_int_equal(out.ev.occurred_ms, 0);
    cp_arena_free(&a);
}

static void test_oversize(void **state)
{
    (void)state;
    cp_decode_params_t p = params();
    p.max_bytes = 32;
    const char *v = "{\"event_id\":\"e-1\",\"type\":\"order.placed\","
                    "\"customer_id\":\"c-1\"}";
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_order_in_t out;
    char msg[256];
    /* Checked first: even a null key does not change the class. */
    assert_int_equal(
        cp_decode_order(&p, NULL, 0, v, strlen(v), &a, &out, msg, sizeof(msg)),
        CP_REJECT_OVERSIZE);
    p.max_bytes = strlen(v);
    assert_int_equal(
        cp_decode_order(&p, "c-1", 3, v, strlen(v), &a, &out, msg, sizeof(msg)),
        CP_REJECT_MISSING_FIELD);
    cp_arena_free(&a);
}

static void test_class_names(void **state)
{
    (void)state;
    assert_string_equal(cp_reject_class(CP_REJECT_KEY_MISMATCH),
                        "key_mismatch");
    assert_string_equal(cp_reject_class(CP_REJECT_STATE_UNREADABLE),
                        "state_unreadable");
    assert_string_equal(cp_reject_class((cp_reject_t)999), "unknown");
}

/* ---------------------------------------------------------------------------
 * Browsing, support and profile: exact decoded values
 * ------------------------------------------------------------------------ */

#define ENVELOPE(type)                                                         \
    "{\"event_id\":\"e-7\",\"type\":\"" type "\",\"customer_id\":\"c-1\","     \
    "\"occurred_at\":\"2024-03-01T10:15:00+01:00\""

/* 2024-03-01T09:15:00Z */
#define T_MS 1709284500000LL
#define T_DAY 19783

static uint64_t h(const char *s)
{
    return cp_hash_fnv1a64(s, strlen(s));
}

/* Decodes value (key "c-1") as family; asserts it is valid and checks the
 * envelope. */
static void decode_ok(cp_family_t family, const char *value, cp_event_in_t *out,
                      cp_arena_t *a)
{
    cp_decode_params_t p = params();
    char msg[256];
    cp_reject_t r = cp_decode_event(&p, family, "c-1", 3, value, strlen(value),
                                    a, out, msg, sizeof(msg));
    if (r != CP_REJECT_NONE)
        fail_msg("%s: %s (%s)", value, cp_reject_class(r), msg);
    assert_string_equal(msg, "");
    assert_string_equal(out->customer_id, "c-1");
    assert_int_equal(out->customer_id_len, 3);
    assert_string_equal(out->event_id, "e-7");
    assert_int_equal(out->event_id_len, 3);
    assert_true(out->ev.event_id_hash == h("e-7"));
    assert_int_equal(out->ev.occurred_ms, T_MS);
    assert_int_equal(out->ev.occurred_day, T_DAY);
    assert_true(out->ev.order_id_hash == 0);
}

static cp_reject_t decode_family(cp_family_t family, const char *value)
{
    cp_decode_params_t p = params();
    cp_arena_t a;
    cp_event_in_t out;
    char msg[256];
    cp_arena_init(&a, 0);
    cp_reject_t r = cp_decode_event(&p, family, "c-1", 3, value, strlen(value),
                                    &a, &out, msg, sizeof(msg));
    cp_arena_free(&a);
    return r;
}

/* Only the ids given are set; the rest of the 1b fields are zero. */
static void assert_ids(const cp_event_t *ev, const char *session,
                       const char *product, const char *ticket)
{
    assert_int_equal(ev->has_session_id, session != NULL);
    assert_true(ev->session_id_hash == (session ? h(session) : 0));
    assert_int_equal(ev->has_product_id, product != NULL);
    assert_true(ev->product_id_hash == (product ? h(product) : 0));
    assert_int_equal(ev->has_ticket_id, ticket != NULL);
    assert_true(ev->ticket_id_hash == (ticket ? h(ticket) : 0));
}

static void assert_no_extras(const cp_event_t *ev)
{
    assert_true(ev->resolution_minutes == 0);
    assert_int_equal(ev->survey, CP_SURVEY_NONE);
    assert_int_equal(ev->score, 0);
    assert_null(ev->attrs);
    assert_int_equal(ev->n_attrs, 0);
}

static void test_browsing_values(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_event_in_t out;
    cp_arena_init(&a, 0);

    decode_ok(CP_FAMILY_BROWSING,
              ENVELOPE("session.started") ",\"session_id\":\"s-1\","
                                          "\"channel\":\"web\"}",
              &out, &a);
    assert_int_equal(out.ev.type, CP_EV_SESSION_STARTED);
    assert_ids(&out.ev, "s-1", NULL, NULL);
    assert_int_equal(out.ev.has_value, 0);
    assert_int_equal(out.ev.amount, 0);
    assert_no_extras(&out.ev);

    decode_ok(CP_FAMILY_BROWSING,
              ENVELOPE("page.viewed") ",\"url\":\"https://x.example/\"}", &out,
              &a);
    assert_int_equal(out.ev.type, CP_EV_PAGE_VIEWED);
    assert_ids(&out.ev, NULL, NULL, NULL);

    decode_ok(CP_FAMILY_BROWSING,
              ENVELOPE("page.viewed") ",\"url\":\"u\",\"session_id\":\"s-2\"}",
              &out, &a);
    assert_ids(&out.ev, "s-2", NULL, NULL);

    decode_ok(CP_FAMILY_BROWSING,
              ENVELOPE("product.viewed") ",\"product_id\":\"p-9\","
                                         "\"session_id\":null}",
              &out, &a);
    assert_int_equal(out.ev.type, CP_EV_PRODUCT_VIEWED);
    assert_ids(&out.ev, NULL, "p-9", NULL);

    decode_ok(CP_FAMILY_BROWSING,
              ENVELOPE("search.performed") ",\"query\":\"red shoes\","
                                           "\"session_id\":\"s-3\"}",
              &out, &a);
    assert_int_equal(out.ev.type, CP_EV_SEARCH_PERFORMED);
    assert_ids(&out.ev, "s-3", NULL, NULL);
    assert_no_extras(&out.ev);

    decode_ok(CP_FAMILY_BROWSING,
              ENVELOPE("cart.item_added") ",\"product_id\":\"p-1\","
                                          "\"value\":\"19.90\","
                                          "\"currency\":\"USD\","
                                          "\"session_id\":\"s-1\"}",
              &out, &a);
    assert_int_equal(out.ev.type, CP_EV_CART_ITEM_ADDED);
    assert_ids(&out.ev, "s-1", "p-1", NULL);
    assert_int_equal(out.ev.has_value, 1);
    assert_int_equal(out.ev.amount, 1990);

    decode_ok(
        CP_FAMILY_BROWSING,
        ENVELOPE("cart.item_added") ",\"product_id\":\"p-1\","
                                    "\"value\":19.9,\"currency\":\"USD\"}",
        &out, &a);
    assert_int_equal(out.ev.has_value, 1);
    assert_int_equal(out.ev.amount, 1990);

    decode_ok(CP_FAMILY_BROWSING,
              ENVELOPE("cart.item_added") ",\"product_id\":\"p-1\"}", &out, &a);
    assert_int_equal(out.ev.has_value, 0);
    assert_int_equal(out.ev.amount, 0);
    assert_ids(&out.ev, NULL, "p-1", NULL);

    decode_ok(CP_FAMILY_BROWSING,
              ENVELOPE("cart.abandoned") ",\"value\":42,\"currency\":\"USD\"}",
              &out, &a);
    assert_int_equal(out.ev.type, CP_EV_CART_ABANDONED);
    assert_int_equal(out.ev.has_value, 1);
    assert_int_equal(out.ev.amount, 4200);
    assert_ids(&out.ev, NULL, NULL, NULL);
    assert_no_extras(&out.ev);
    cp_arena_free(&a);
}

static void test_support_values(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_event_in_t out;
    cp_arena_init(&a, 0);

    decode_ok(CP_FAMILY_SUPPORT,
              ENVELOPE("ticket.opened") ",\"ticket_id\":\"t-1\"}", &out, &a);
    assert_int_equal(out.ev.type, CP_EV_TICKET_OPENED);
    assert_ids(&out.ev, NULL, NULL, "t-1");
    assert_no_extras(&out.ev);
    assert_int_equal(out.ev.has_value, 0);

    decode_ok(CP_FAMILY_SUPPORT,
              ENVELOPE("ticket.resolved") ",\"ticket_id\":\"t-2\","
                                          "\"resolution_minutes\":12.5}",
              &out, &a);
    assert_int_equal(out.ev.type, CP_EV_TICKET_RESOLVED);
    assert_ids(&out.ev, NULL, NULL, "t-2");
    assert_true(out.ev.resolution_minutes == 12.5);

    decode_ok(CP_FAMILY_SUPPORT,
              ENVELOPE("ticket.resolved") ",\"ticket_id\":\"t-2\","
                                          "\"resolution_minutes\":10000000}",
              &out, &a);
    assert_true(out.ev.resolution_minutes == 10000000.0);

    decode_ok(CP_FAMILY_SUPPORT,
              ENVELOPE("ticket.resolved") ",\"ticket_id\":\"t-2\","
                                          "\"resolution_minutes\":-0.0}",
              &out, &a);
    assert_true(out.ev.resolution_minutes == 0 &&
                !signbit(out.ev.resolution_minutes));

    decode_ok(CP_FAMILY_SUPPORT,
              ENVELOPE("complaint.filed") ",\"ticket_id\":\"t-3\"}", &out, &a);
    assert_int_equal(out.ev.type, CP_EV_COMPLAINT_FILED);
    assert_ids(&out.ev, NULL, NULL, "t-3");

    decode_ok(CP_FAMILY_SUPPORT, ENVELOPE("complaint.filed") "}", &out, &a);
    assert_ids(&out.ev, NULL, NULL, NULL);
    assert_no_extras(&out.ev);

    decode_ok(CP_FAMILY_SUPPORT,
              ENVELOPE("survey.answered") ",\"survey\":\"csat\",\"score\":5}",
              &out, &a);
    assert_int_equal(out.ev.type, CP_EV_SURVEY_ANSWERED);
    assert_int_equal(out.ev.survey, CP_SURVEY_CSAT);
    assert_int_equal(out.ev.score, 5);
    assert_ids(&out.ev, NULL, NULL, NULL);

    decode_ok(CP_FAMILY_SUPPORT,
              ENVELOPE("survey.answered") ",\"survey\":\"nps\",\"score\":0}",
              &out, &a);
    assert_int_equal(out.ev.survey, CP_SURVEY_NPS);
    assert_int_equal(out.ev.score, 0);
    decode_ok(CP_FAMILY_SUPPORT,
              ENVELOPE("survey.answered") ",\"score\":10,\"survey\":\"nps\"}",
              &out, &a);
    assert_int_equal(out.ev.score, 10);
    cp_arena_free(&a);
}

/* Attribute i is name = value (value NULL: removed). */
static void assert_attr(const cp_event_t *ev, size_t i, const char *name,
                        const char *value)
{
    assert_true(i < ev->n_attrs);
    const cp_attr_t *at = &ev->attrs[i];
    assert_string_equal(at->name, name);
    assert_int_equal(at->name_len, strlen(name));
    if (!value) {
        assert_int_equal(at->removed, 1);
        assert_null(at->value);
        assert_int_equal(at->value_len, 0);
        return;
    }
    assert_int_equal(at->removed, 0);
    assert_non_null(at->value);
    assert_string_equal(at->value, value);
    assert_int_equal(at->value_len, strlen(value));
}

static void test_profile_values(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_event_in_t out;
    cp_arena_init(&a, 0);

    decode_ok(CP_FAMILY_PROFILE,
              ENVELOPE("profile.updated") ",\"attributes\":{"
                                          "\"country\":\"DE\","
                                          "\"region\":\"Bavaria\","
                                          "\"city\":\"M\\u00fcnchen\","
                                          "\"plan\":\"gold\","
                                          "\"gender\":\"female\","
                                          "\"birth_year\":1984,"
                                          "\"signup_at\":"
                                          "\"2023-06-01T12:00:00+02:00\","
                                          "\"tags\":[\"vip\",\"news\",\"a\"],"
                                          "\"is_strategic\":true}}",
              &out, &a);
    assert_int_equal(out.ev.type, CP_EV_PROFILE_UPDATED);
    assert_ids(&out.ev, NULL, NULL, NULL);
    assert_int_equal(out.ev.has_value, 0);
    assert_int_equal(out.ev.n_attrs, 9);
    assert_attr(&out.ev, 0, "country", "DE");
    assert_attr(&out.ev, 1, "region", "Bavaria");
    assert_attr(&out.ev, 2, "city", "M\xc3\xbcnchen");
    assert_attr(&out.ev, 3, "plan", "gold");
    assert_attr(&out.ev, 4, "gender", "female");
    assert_attr(&out.ev, 5, "birth_year", "1984");
    assert_attr(&out.ev, 6, "signup_at", "1685613600000");
    assert_attr(&out.ev, 7, "tags", "vip,news,a");
    assert_attr(&out.ev, 8, "is_strategic", "true");

    decode_ok(CP_FAMILY_PROFILE,
              ENVELOPE("profile.updated") ",\"attributes\":{"
                                          "\"tags\":[],"
                                          "\"is_strategic\":false,"
                                          "\"city\":null,"
                                          "\"tier\":\"silver\","
                                          "\"visits\":17,"
                                          "\"neg\":-3,"
                                          "\"ratio\":0.25,"
                                          "\"opted_in\":false,"
                                          "\"vip\":true,"
                                          "\"big\":1e21,"
                                          "\"tiny\":1e-7,"
                                          "\"neg_real\":-2.50,"
                                          "\"whole\":100.0,"
                                          "\"negzero\":-0.0,"
                                          "\"sum\":0.30000000000000004,"
                                          "\"custom_x\":null,"
                                          "\"signup_at\":"
                                          "\"2020-01-01T00:00:00.5Z\"}}",
              &out, &a);
    assert_int_equal(out.ev.n_attrs, 17);
    assert_attr(&out.ev, 0, "tags", "");
    assert_attr(&out.ev, 1, "is_strategic", "false");
    assert_attr(&out.ev, 2, "city", NULL);
    assert_attr(&out.ev, 3, "tier", "silver");
    assert_attr(&out.ev, 4, "visits", "17");
    assert_attr(&out.ev, 5, "neg", "-3");
    assert_attr(&out.ev, 6, "ratio", "0.25");
    assert_attr(&out.ev, 7, "opted_in", "false");
    assert_attr(&out.ev, 8, "vip", "true");
    assert_attr(&out.ev, 9, "big", "1000000000000000000000");
    assert_attr(&out.ev, 10, "tiny", "0.0000001");
    assert_attr(&out.ev, 11, "neg_real", "-2.5");
    assert_attr(&out.ev, 12, "whole", "100");
    assert_attr(&out.ev, 13, "negzero", "0");
    assert_attr(&out.ev, 14, "sum", "0.30000000000000004");
    assert_attr(&out.ev, 15, "custom_x", NULL);
    assert_attr(&out.ev, 16, "signup_at", "1577836800500");
    cp_arena_free(&a);
}

/* Extremes of the number text: 17 significant digits at both ends of the
 * double range, without exponent. */
/* A number attribute is kept in decimal form without exponent, at most 64
 * characters (as a string attribute); a tag may not hold ','. */
static void test_profile_number_extremes(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_event_in_t out;
    cp_arena_init(&a, 0);
    decode_ok(CP_FAMILY_PROFILE,
              ENVELOPE("profile.updated") ",\"attributes\":{"
                                          "\"big\":1e63,"
                                          "\"neg\":-1e62,"
                                          "\"tiny\":1.5e-61,"
                                          "\"i64\":-9223372036854775808}}",
              &out, &a);
    assert_int_equal(out.ev.n_attrs, 4);
    const cp_attr_t *big = &out.ev.attrs[0];
    assert_int_equal(big->value_len, 64);
    assert_int_equal(big->value[0], '1');
    for (size_t i = 1; i < 64; i++)
        assert_int_equal(big->value[i], '0');
    assert_int_equal(out.ev.attrs[1].value_len, 64); /* "-1" + 62 zeros */
    assert_int_equal(out.ev.attrs[2].value_len, 64); /* "0." 60 zeros "15" */
    assert_memory_equal(out.ev.attrs[2].value + 62, "15", 2);
    assert_attr(&out.ev, 3, "i64", "-9223372036854775808");
    cp_arena_free(&a);
    static const char *too_long[] = {
        ENVELOPE("profile.updated") ",\"attributes\":{\"x\":1e64}}",
        ENVELOPE("profile.updated") ",\"attributes\":{\"x\":-1e63}}",
        ENVELOPE("profile.updated") ",\"attributes\":{\"x\":1.5e-62}}",
        ENVELOPE("profile.updated") ",\"attributes\":{\"x\":1."
                                    "7976931348623157e308}}",
        ENVELOPE("profile.updated") ",\"attributes\":{\"tags\":[\"a,b\"]}}",
    };
    for (size_t i = 0; i < sizeof(too_long) / sizeof(too_long[0]); i++)
        assert_int_equal(decode_family(CP_FAMILY_PROFILE, too_long[i]),
                         CP_REJECT_INVALID_FIELD);
}

/* The 32-member limit and the order of attributes as given. */
static void test_profile_32_attributes(void **state)
{
    (void)state;
    char v[2048];
    size_t o = (size_t)snprintf(
        v, sizeof(v), "%s", ENVELOPE("profile.updated") ",\"attributes\":{");
    for (int i = 31; i >= 0; i--)
        o += (size_t)snprintf(v + o, sizeof(v) - o, "\"a%02d\":%d%s", i, i,
                              i ? "," : "}}");
    cp_arena_t a;
    cp_event_in_t out;
    cp_arena_init(&a, 0);
    decode_ok(CP_FAMILY_PROFILE, v, &out, &a);
    assert_int_equal(out.ev.n_attrs, 32);
    assert_attr(&out.ev, 0, "a31", "31");
    assert_attr(&out.ev, 31, "a00", "0");
    cp_arena_free(&a);
    /* one more member */
    v[o - 2] = ',';
    snprintf(v + o - 1, sizeof(v) - o + 1, "\"z\":1}}");
    assert_int_equal(decode_family(CP_FAMILY_PROFILE, v),
                     CP_REJECT_INVALID_FIELD);
}

/* Every type is refused on every other family's topic, and accepted on its
 * own. */
static void test_type_families(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        cp_family_t family;
    } valid[] = {
        {ENVELOPE("order.placed") ",\"order_id\":\"o\",\"amount\":\"1\","
                                  "\"currency\":\"USD\"}",
         CP_FAMILY_ORDERS},
        {ENVELOPE("order.refunded") ",\"order_id\":\"o\",\"amount\":\"1\","
                                    "\"currency\":\"USD\"}",
         CP_FAMILY_ORDERS},
        {ENVELOPE("order.cancelled") ",\"order_id\":\"o\",\"amount\":\"1\","
                                     "\"currency\":\"USD\"}",
         CP_FAMILY_ORDERS},
        {ENVELOPE("session.started") ",\"session_id\":\"s\"}",
         CP_FAMILY_BROWSING},
        {ENVELOPE("page.viewed") ",\"url\":\"u\"}", CP_FAMILY_BROWSING},
        {ENVELOPE("product.viewed") ",\"product_id\":\"p\"}",
         CP_FAMILY_BROWSING},
        {ENVELOPE("search.performed") ",\"query\":\"q\"}", CP_FAMILY_BROWSING},
        {ENVELOPE("cart.item_added") ",\"product_id\":\"p\"}",
         CP_FAMILY_BROWSING},
        {ENVELOPE("cart.abandoned") ",\"value\":1,\"currency\":\"USD\"}",
         CP_FAMILY_BROWSING},
        {ENVELOPE("ticket.opened") ",\"ticket_id\":\"t\"}", CP_FAMILY_SUPPORT},
        {ENVELOPE("ticket.resolved") ",\"ticket_id\":\"t\","
                                     "\"resolution_minutes\":1}",
         CP_FAMILY_SUPPORT},
        {ENVELOPE("complaint.filed") "}", CP_FAMILY_SUPPORT},
        {ENVELOPE("survey.answered") ",\"survey\":\"nps\",\"score\":9}",
         CP_FAMILY_SUPPORT},
        {ENVELOPE("profile.updated") ",\"attributes\":{\"plan\":\"x\"}}",
         CP_FAMILY_PROFILE},
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        /* On the orders topic order_id, amount and currency are required
         * before the type is looked at: give every event those. */
        char with_order[512];
        snprintf(with_order, sizeof(with_order),
                 "{\"order_id\":\"o\",\"amount\":\"1\",%s%s",
                 strstr(valid[i].value, "\"currency\"")
                     ? ""
                     : "\"currency\":\"USD\",",
                 valid[i].value + 1);
        for (int f = CP_FAMILY_ORDERS; f <= CP_FAMILY_PROFILE; f++) {
            const char *v =
                f == CP_FAMILY_ORDERS && valid[i].family != CP_FAMILY_ORDERS
                    ? with_order
                    : valid[i].value;
            cp_reject_t r = decode_family((cp_family_t)f, v);
            cp_reject_t want = (cp_family_t)f == valid[i].family
                                   ? CP_REJECT_NONE
                                   : CP_REJECT_UNKNOWN_EVENT_TYPE;
            if (r != want)
                fail_msg("%s as family %d: %s", v, f, cp_reject_class(r));
        }
    }
}

/* cp_decode_order is cp_decode_event with CP_FAMILY_ORDERS, and leaves the
 * fields of section 1b zero. */
static void test_order_via_event(void **state)
{
    (void)state;
    const char *v = ENVELOPE("order.placed") ",\"order_id\":\"o-1\","
                                             "\"amount\":\"19.90\","
                                             "\"currency\":\"USD\","
                                             "\"session_id\":\"s-1\"}";
    cp_decode_params_t p = params();
    cp_arena_t a;
    cp_event_in_t ev_out;
    cp_order_in_t ord_out;
    char msg[256];
    cp_arena_init(&a, 0);
    assert_int_equal(cp_decode_event(&p, CP_FAMILY_ORDERS, "c-1", 3, v,
                                     strlen(v), &a, &ev_out, msg, sizeof(msg)),
                     CP_REJECT_NONE);
    assert_int_equal(cp_decode_order(&p, "c-1", 3, v, strlen(v), &a, &ord_out,
                                     msg, sizeof(msg)),
                     CP_REJECT_NONE);
    assert_memory_equal(&ev_out.ev, &ord_out.ev, sizeof(cp_event_t));
    assert_int_equal(ev_out.ev.type, CP_EV_ORDER_PLACED);
    assert_int_equal(ev_out.ev.amount, 1990);
    assert_true(ev_out.ev.order_id_hash == h("o-1"));
    assert_ids(&ev_out.ev, NULL, NULL, NULL);
    assert_int_equal(ev_out.ev.has_value, 0);
    assert_no_extras(&ev_out.ev);
    cp_arena_free(&a);
}

/* oversize, null key and a bad family for the new families. */
static void test_new_families_edges(void **state)
{
    (void)state;
    const char *v = ENVELOPE("ticket.opened") ",\"ticket_id\":\"t\"}";
    cp_decode_params_t p = params();
    cp_arena_t a;
    cp_event_in_t out;
    char msg[256];
    cp_arena_init(&a, 0);
    p.max_bytes = strlen(v) - 1;
    for (int f = CP_FAMILY_ORDERS; f <= CP_FAMILY_PROFILE; f++)
        assert_int_equal(cp_decode_event(&p, (cp_family_t)f, NULL, 0, v,
                                         strlen(v), &a, &out, msg, sizeof(msg)),
                         CP_REJECT_OVERSIZE);
    p.max_bytes = strlen(v);
    assert_int_equal(cp_decode_event(&p, CP_FAMILY_SUPPORT, "c-1", 3, v,
                                     strlen(v), &a, &out, msg, sizeof(msg)),
                     CP_REJECT_NONE);
    assert_int_equal(cp_decode_event(&p, CP_FAMILY_SUPPORT, NULL, 0, v,
                                     strlen(v), &a, &out, msg, sizeof(msg)),
                     CP_REJECT_MISSING_KEY);
    assert_int_equal(cp_decode_event(&p, (cp_family_t)7, "c-1", 3, v, strlen(v),
                                     &a, &out, msg, sizeof(msg)),
                     CP_REJECT_UNKNOWN_EVENT_TYPE);
    /* a message buffer of one byte still gets a terminated (empty) text */
    assert_int_equal(cp_decode_event(&p, CP_FAMILY_BROWSING, "c-1", 3, v,
                                     strlen(v), &a, &out, msg, 1),
                     CP_REJECT_UNKNOWN_EVENT_TYPE);
    assert_int_equal(msg[0], '\0');
    cp_arena_free(&a);
}

/* A NUL in a string field of 1b is refused; the same bytes without it are
 * fine. The key carries a NUL too where customer_id does. */
static void test_nul_bytes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        ENVELOPE("session.started") ",\"session_id\":\"s\\u0000\"}",
        ENVELOPE("session.started") ",\"session_id\":\"s\","
                                    "\"channel\":\"\\u0000\"}",
        ENVELOPE("page.viewed") ",\"url\":\"\\u0000\"}",
        ENVELOPE("search.performed") ",\"query\":\"a\\u0000b\"}",
        ENVELOPE("product.viewed") ",\"product_id\":\"\\u0000p\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(decode_family(CP_FAMILY_BROWSING, bad[i]),
                         CP_REJECT_INVALID_FIELD);
    assert_int_equal(
        decode_family(CP_FAMILY_SUPPORT,
                      ENVELOPE("ticket.opened") ","
                                                "\"ticket_id\":\"t\\u0000\"}"),
        CP_REJECT_INVALID_FIELD);
    assert_int_equal(
        decode_family(CP_FAMILY_PROFILE,
                      ENVELOPE("profile.updated") ",\"attributes\":"
                                                  "{\"tags\":[\"a"
                                                  "\\u0000\"]}}"),
        CP_REJECT_INVALID_FIELD);
}

static int setup(void **state)
{
    (void)state;
    char err[128];
    tz = cp_tz_new("UTC", err, sizeof(err));
    return tz ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cp_tz_free(tz);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_cases),
        cmocka_unit_test(test_browsing_cases),
        cmocka_unit_test(test_support_cases),
        cmocka_unit_test(test_profile_cases),
        cmocka_unit_test(test_valid_values),
        cmocka_unit_test(test_integer_amount_scaled),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_browsing_values),
        cmocka_unit_test(test_support_values),
        cmocka_unit_test(test_profile_values),
        cmocka_unit_test(test_profile_number_extremes),
        cmocka_unit_test(test_profile_32_attributes),
        cmocka_unit_test(test_type_families),
        cmocka_unit_test(test_order_via_event),
        cmocka_unit_test(test_new_families_edges),
        cmocka_unit_test(test_nul_bytes),
    };
    /* Every case twice: jansson on malloc, then on the scratch arena
     * custpulse run uses (cp_decode_scratch_init; no jansson value of the
     * first pass is alive when the allocator changes). */
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    cp_decode_scratch_init();
    failed += cmocka_run_group_tests(tests, setup, teardown);
    cp_decode_scratch_free();
    return failed;
}
