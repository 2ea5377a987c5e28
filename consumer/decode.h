/*
 * decode.h - validates one input message and decodes it into an event.
 *
 * Every input is hostile until this says otherwise. The checks and their
 * order are the contract of docs/contracts.md sections 1 and 1b; the first
 * failing check decides the reject class, which becomes the DLQ header
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

/* Bytes, for customer_id, event_id, order_id and the ids of section 1b. */
#define CP_ID_MAX 128
/* Members of profile.updated's attributes. */
#define CP_ATTRS_MAX 32

/* The input topic an event came from: its `type` must be of that family. */
typedef enum {
    CP_FAMILY_ORDERS,
    CP_FAMILY_BROWSING,
    CP_FAMILY_SUPPORT,
    CP_FAMILY_PROFILE
} cp_family_t;

typedef struct cp_decode_params_s {
    size_t max_bytes;     /* input.max_bytes */
    const char *currency; /* reporting currency */
    int currency_digits;  /* its minor-unit digits */
    const cp_tz_t *tz;    /* for local day numbers */
} cp_decode_params_t;

/* A decoded event of any family. Strings (and ev.attrs) live in the arena
 * given to decode. */
typedef struct cp_event_in_s {
    cp_event_t ev;
    const char *customer_id; /* NUL-terminated, validated */
    size_t customer_id_len;
    const char *event_id; /* NUL-terminated, validated */
    size_t event_id_len;
} cp_event_in_t;

/* A decoded order event: the same struct (kept for consumer/batch.c). */
typedef cp_event_in_t cp_order_in_t;

/* Validates key/value as an event of `family` and fills out. Returns
 * CP_REJECT_NONE, or the reject class with a reason in msg (names the field
 * or attribute, never echoes a value; an attribute whose name is invalid is
 * named by its position). key may be NULL (null key). Strings are copied
 * into arena; out is zeroed first. Aborts if the arena cannot allocate (a
 * few KB at most per message). Thread-safe for distinct arenas.
 *
 * Check order (the first failure decides the class):
 *  1. oversize (value_len > max_bytes), missing_key (key NULL or empty),
 *     invalid_json (empty, not UTF-8 JSON, duplicate keys, not an object);
 *  2. envelope, plus for orders the fields every order type has
 *     (event_id, type, customer_id, occurred_at[, order_id, amount,
 *     currency]), each phase over the fields in that order:
 *     missing_field (absent or null), invalid_field_type,
 *     unknown_event_type (`type` not of `family`, including a type of
 *     another family), invalid_customer_id, invalid_field (event_id, then
 *     order_id), key_mismatch, invalid_timestamp;
 *  3. the fields of the type (contract 1b tables, in table order), again
 *     phase by phase: missing_field (a required field absent or null; a
 *     `value` without `currency` or the reverse names the absent one),
 *     invalid_field_type (also: each attribute value and each tag, in
 *     input order), invalid_field (lengths, ranges, survey kind and score;
 *     for attributes: member count, then each member's name and value in
 *     input order);
 *  4. money, when the event has it: invalid_currency, currency_mismatch,
 *     invalid_amount.
 * An optional field that is null counts as absent. Every string field of
 * section 1b refuses NUL bytes. A family outside cp_family_t gives
 * unknown_event_type before the JSON is parsed. */
cp_reject_t cp_decode_event(const cp_decode_params_t *p, cp_family_t family,
                            const void *key, size_t key_len, const void *value,
                            size_t value_len, cp_arena_t *arena,
                            cp_event_in_t *out, char *msg, size_t msg_size);

/* Makes jansson allocate the trees cp_decode_event parses from a scratch
 * arena of the calling thread, reset after each event, instead of one
 * malloc per JSON value (about 29 per input event). Installs
 * json_set_alloc_funcs, so it must run before any other jansson call of the
 * process (first thing in main); every other jansson allocation still goes
 * to malloc. Without it, cp_decode_event uses malloc throughout. */
void cp_decode_scratch_init(void);
/* Frees the calling thread's scratch arena (at exit). */
void cp_decode_scratch_free(void);

/* cp_decode_event with CP_FAMILY_ORDERS. */
cp_reject_t cp_decode_order(const cp_decode_params_t *p, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            cp_arena_t *arena, cp_order_in_t *out, char *msg,
                            size_t msg_size);

#endif
