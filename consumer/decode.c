/*
 * decode.c - input validation and decoding of order events; see decode.h.
 */
#include "decode.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "money.h"

static const char *reject_classes[] = {
#define CP__REJECT_STR(name, str) str,
    CP_REJECT_MAP(CP__REJECT_STR)
#undef CP__REJECT_STR
};

const char *cp_reject_class(cp_reject_t r)
{
    if ((int)r < 0 || r >= CP_REJECT__COUNT)
        return "unknown";
    return reject_classes[r];
}

static cp_reject_t reject(cp_reject_t r, char *msg, size_t msg_size,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static cp_reject_t reject(cp_reject_t r, char *msg, size_t msg_size,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
    return r;
}

/* Required fields and their JSON types, checked in this order so the
 * reject class does not depend on jansson's key order. */
enum {
    F_EVENT_ID,
    F_TYPE,
    F_CUSTOMER_ID,
    F_OCCURRED_AT,
    F_ORDER_ID,
    F_AMOUNT,
    F_CURRENCY,
    F__COUNT
};

static const char *field_names[F__COUNT] = {
    "event_id", "type",   "customer_id", "occurred_at",
    "order_id", "amount", "currency"};

static int field_type_ok(int f, const json_t *v)
{
    if (f == F_AMOUNT)
        return json_is_string(v) || json_is_number(v);
    return json_is_string(v);
}

static int id_ok(const json_t *v)
{
    size_t len = json_string_length(v);
    return len >= 1 && len <= CP_ID_MAX &&
           memchr(json_string_value(v), '\0', len) == NULL;
}

static int parse_type(const json_t *v, cp_ev_type_t *out)
{
    static const struct {
        const char *name;
        cp_ev_type_t type;
    } types[] = {{"order.placed", CP_EV_ORDER_PLACED},
                 {"order.refunded", CP_EV_ORDER_REFUNDED},
                 {"order.cancelled", CP_EV_ORDER_CANCELLED}};
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strlen(types[i].name) == len &&
            memcmp(s, types[i].name, len) == 0) {
            *out = types[i].type;
            return 0;
        }
    }
    return -1;
}

static int currency_well_formed(const json_t *v)
{
    const char *s = json_string_value(v);
    if (json_string_length(v) != 3)
        return 0;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return 0;
    return 1;
}

static cp_err_t parse_amount(const json_t *v, int digits, int64_t *minor)
{
    if (json_is_string(v))
        return cp_money_parse(json_string_value(v), json_string_length(v),
                              digits, minor);
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > CP_MONEY_MAX_MAJOR)
            return CP_ERANGE;
        int64_t m = i;
        for (int d = 0; d < digits; d++)
            m *= 10;
        *minor = m;
        return CP_OK;
    }
    return cp_money_from_double(json_real_value(v), digits, minor);
}

/* Checks the fields whose failure does not depend on the others' content. */
static cp_reject_t check_fields(const cp_decode_params_t *p, json_t *fields[],
                                const void *key, size_t key_len,
                                cp_order_in_t *out, char *msg, size_t msg_size)
{
    for (int f = 0; f < F__COUNT; f++)
        if (!fields[f])
            return reject(CP_REJECT_MISSING_FIELD, msg, msg_size,
                          "required field '%s' is missing or null",
                          field_names[f]);
    for (int f = 0; f < F__COUNT; f++)
        if (!field_type_ok(f, fields[f]))
            return reject(CP_REJECT_INVALID_FIELD_TYPE, msg, msg_size,
                          "field '%s' must be a %s", field_names[f],
                          f == F_AMOUNT ? "decimal string or number"
                                        : "string");
    if (parse_type(fields[F_TYPE], &out->ev.type) != 0)
        return reject(CP_REJECT_UNKNOWN_EVENT_TYPE, msg, msg_size,
                      "field 'type' is not a known order event type");
    if (!id_ok(fields[F_CUSTOMER_ID]))
        return reject(CP_REJECT_INVALID_CUSTOMER_ID, msg, msg_size,
                      "field 'customer_id' must be 1-%d bytes without NUL",
                      CP_ID_MAX);
    if (!id_ok(fields[F_EVENT_ID]))
        return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                      "field 'event_id' must be 1-%d bytes without NUL",
                      CP_ID_MAX);
    if (!id_ok(fields[F_ORDER_ID]))
        return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                      "field 'order_id' must be 1-%d bytes without NUL",
                      CP_ID_MAX);
    if (json_string_length(fields[F_CUSTOMER_ID]) != key_len ||
        memcmp(json_string_value(fields[F_CUSTOMER_ID]), key, key_len) != 0)
        return reject(CP_REJECT_KEY_MISMATCH, msg, msg_size,
                      "Kafka key differs from field 'customer_id'");
    return CP_REJECT_NONE;
}

static cp_reject_t check_values(const cp_decode_params_t *p, json_t *fields[],
                                cp_order_in_t *out, char *msg, size_t msg_size)
{
    const json_t *ts = fields[F_OCCURRED_AT];
    if (cp_time_parse_rfc3339(json_string_value(ts), json_string_length(ts),
                              &out->ev.occurred_ms) != CP_OK)
        return reject(CP_REJECT_INVALID_TIMESTAMP, msg, msg_size,
                      "field 'occurred_at' is not an RFC 3339 time with a "
                      "zone between 1970 and 9999");
    if (!currency_well_formed(fields[F_CURRENCY]))
        return reject(CP_REJECT_INVALID_CURRENCY, msg, msg_size,
                      "field 'currency' is not an ISO 4217 code");
    if (strcmp(json_string_value(fields[F_CURRENCY]), p->currency) != 0)
        return reject(CP_REJECT_CURRENCY_MISMATCH, msg, msg_size,
                      "field 'currency' differs from the reporting "
                      "currency %s",
                      p->currency);
    cp_err_t err =
        parse_amount(fields[F_AMOUNT], p->currency_digits, &out->ev.amount);
    if (err != CP_OK)
        return reject(CP_REJECT_INVALID_AMOUNT, msg, msg_size,
                      "field 'amount': %s (non-negative, at most %d "
                      "decimals)",
                      cp_err_str(err), p->currency_digits);
    return CP_REJECT_NONE;
}

static cp_reject_t fill_out(const cp_decode_params_t *p, json_t *fields[],
                            cp_arena_t *arena, cp_order_in_t *out, char *msg,
                            size_t msg_size)
{
    const json_t *cid = fields[F_CUSTOMER_ID];
    const json_t *eid = fields[F_EVENT_ID];
    const json_t *oid = fields[F_ORDER_ID];
    out->customer_id_len = json_string_length(cid);
    out->customer_id =
        cp_arena_strndup(arena, json_string_value(cid), out->customer_id_len);
    out->event_id_len = json_string_length(eid);
    out->event_id =
        cp_arena_strndup(arena, json_string_value(eid), out->event_id_len);
    if (!out->customer_id || !out->event_id) {
        /* A few hundred bytes could not be allocated: the process cannot
         * work on; rejecting the event would lose it. */
        fputs("custpulse: out of memory while decoding\n", stderr);
        abort();
    }
    out->ev.event_id_hash = cp_hash_fnv1a64(out->event_id, out->event_id_len);
    out->ev.order_id_hash =
        cp_hash_fnv1a64(json_string_value(oid), json_string_length(oid));
    out->ev.occurred_day = cp_tz_day(p->tz, out->ev.occurred_ms);
    return CP_REJECT_NONE;
}

cp_reject_t cp_decode_order(const cp_decode_params_t *p, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            cp_arena_t *arena, cp_order_in_t *out, char *msg,
                            size_t msg_size)
{
    memset(out, 0, sizeof(*out));
    if (value_len > p->max_bytes)
        return reject(CP_REJECT_OVERSIZE, msg, msg_size,
                      "message of %zu bytes exceeds input.max_bytes %zu",
                      value_len, p->max_bytes);
    if (!key || key_len == 0)
        return reject(CP_REJECT_MISSING_KEY, msg, msg_size,
                      "Kafka key (customer id) is null or empty");
    if (!value || value_len == 0)
        return reject(CP_REJECT_INVALID_JSON, msg, msg_size,
                      "message value is empty");

    json_error_t jerr;
    json_t *root = json_loadb(value, value_len,
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return reject(CP_REJECT_INVALID_JSON, msg, msg_size,
                      "not valid JSON at line %d column %d", jerr.line,
                      jerr.column);
    cp_reject_t r = CP_REJECT_NONE;
    if (!json_is_object(root)) {
        r = reject(CP_REJECT_INVALID_JSON, msg, msg_size,
                   "message is not a JSON object");
        goto done;
    }
    json_t *fields[F__COUNT];
    for (int f = 0; f < F__COUNT; f++) {
        fields[f] = json_object_get(root, field_names[f]);
        if (json_is_null(fields[f]))
            fields[f] = NULL;
    }
    r = check_fields(p, fields, key, key_len, out, msg, msg_size);
    if (r == CP_REJECT_NONE)
        r = check_values(p, fields, out, msg, msg_size);
    if (r == CP_REJECT_NONE)
        r = fill_out(p, fields, arena, out, msg, msg_size);
done:
    json_decref(root);
    if (r == CP_REJECT_NONE)
        msg[0] = '\0';
    return r;
}
