/*
 * decode.h - validates one input message and decodes it into an event.
 *
 * Every input is hostile until this says otherwise. The checks and their
 * order are the contract of docs/contracts.md section 1; the first failing
 * check decides the reject class, which becomes the DLQ header
 * cp.error.class. No I/O: this is what the fuzz target drives.
 */
#ifndef CP_DECODE_H
#define CP_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "cp_time.h"
#include "state.h"

#define CP_REJECT_MAP(XX)                                                      \
    XX(NONE, "none")                                                           \
    XX(OVERSIZE, "oversize")                                                   \
    XX(MISSING_KEY, "missing_key")                                             \
    XX(INVALID_JSON, "invalid_json")                                           \
    XX(MISSING_FIELD, "missing_field")                                         \
    XX(INVALID_FIELD_TYPE, "invalid_field_type")                               \
    XX(UNKNOWN_EVENT_TYPE, "unknown_event_type")                               \
    XX(INVALID_CUSTOMER_ID, "invalid_customer_id")                             \
    XX(INVALID_FIELD, "invalid_field")                                         \
    XX(KEY_MISMATCH, "key_mismatch")                                           \
    XX(INVALID_TIMESTAMP, "invalid_timestamp")                                 \
    XX(INVALID_CURRENCY, "invalid_currency")                                   \
    XX(CURRENCY_MISMATCH, "currency_mismatch")                                 \
    XX(INVALID_AMOUNT, "invalid_amount")                                       \
    XX(STATE_UNREADABLE, "state_unreadable")

typedef enum {
#define CP__REJECT_ENUM(name, str) CP_REJECT_##name,
    CP_REJECT_MAP(CP__REJECT_ENUM)
#undef CP__REJECT_ENUM
        CP_REJECT__COUNT
} cp_reject_t;

/* The class string of r ("invalid_json", ...). */
const char *cp_reject_class(cp_reject_t r);

#define CP_ID_MAX 128 /* bytes, for customer_id, event_id, order_id */

typedef struct cp_decode_params_s {
    size_t max_bytes;     /* input.max_bytes */
    const char *currency; /* reporting currency */
    int currency_digits;  /* its minor-unit digits */
    const cp_tz_t *tz;    /* for local day numbers */
} cp_decode_params_t;

/* A decoded order event. Strings live in the arena given to decode. */
typedef struct cp_order_in_s {
    cp_event_t ev;
    const char *customer_id; /* NUL-terminated, validated */
    size_t customer_id_len;
    const char *event_id; /* NUL-terminated, validated */
    size_t event_id_len;
} cp_order_in_t;

/* Validates key/value and fills out. Returns CP_REJECT_NONE, or the reject
 * class with a reason in msg (names the field, never echoes input bytes).
 * key may be NULL (null key). Strings are copied into arena. */
cp_reject_t cp_decode_order(const cp_decode_params_t *p, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            cp_arena_t *arena, cp_order_in_t *out, char *msg,
                            size_t msg_size);

#endif
