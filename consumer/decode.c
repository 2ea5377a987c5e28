/*
 * decode.c - input validation and decoding of order, browsing, support and
 * profile events; see decode.h.
 *
 * Each family's fields are described by tables (field_t): the envelope,
 * the fields common to a family (orders: order_id, amount, currency) and
 * those of each type. The checks walk the tables phase by phase (missing,
 * JSON type, value, money), so the reject class depends only on the
 * message, never on jansson's key order.
 */
#include "decode.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
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

/* A few hundred bytes could not be allocated: the process cannot work on;
 * rejecting the event would lose it. */
static void *need(void *p)
{
    if (!p) {
        fputs("custpulse: out of memory while decoding\n", stderr);
        abort();
    }
    return p;
}

/* ------------------------------------------------------------ field tables */

typedef enum {
    K_EVENT_ID,    /* envelope: string, checked as K_STRING 1..128 */
    K_TYPE,        /* envelope: string, one of the family's types */
    K_CUSTOMER_ID, /* envelope: string, invalid_customer_id */
    K_OCCURRED_AT, /* envelope: string, invalid_timestamp */
    K_STRING,      /* string of min..max bytes without NUL */
    K_MONEY,       /* decimal string or number (amount, value) */
    K_CURRENCY,    /* string, the money checks */
    K_MINUTES,     /* number 0..MINUTES_MAX */
    K_SURVEY,      /* "csat" or "nps" */
    K_SCORE,       /* integer, range by survey */
    K_ATTRS        /* object of profile attributes */
} kind_t;

typedef enum {
    OPTIONAL,
    REQUIRED,
    PAIRED /* both or neither of the two PAIRED fields of a list */
} presence_t;

/* Where the FNV-1a hash of an id field goes. */
typedef enum { H_NONE, H_ORDER, H_SESSION, H_PRODUCT, H_TICKET } slot_t;

typedef struct {
    const char *name;
    unsigned char kind;     /* kind_t */
    unsigned char presence; /* presence_t */
    unsigned char slot;     /* slot_t */
    unsigned short min, max;
} field_t;

#define MINUTES_MAX 10000000.0
#define LIST_MAX 8 /* fields of one list (head or type) */

#define ID(name, pres, slot)                                                   \
    {                                                                          \
        name, K_STRING, pres, slot, 1, CP_ID_MAX                               \
    }

/* Positions of the envelope in every head list. */
enum { E_EVENT_ID, E_TYPE, E_CUSTOMER_ID, E_OCCURRED_AT };

static const field_t envelope_fields[] = {
    {"event_id", K_EVENT_ID, REQUIRED, H_NONE, 1, CP_ID_MAX},
    {"type", K_TYPE, REQUIRED, H_NONE, 0, 0},
    {"customer_id", K_CUSTOMER_ID, REQUIRED, H_NONE, 1, CP_ID_MAX},
    {"occurred_at", K_OCCURRED_AT, REQUIRED, H_NONE, 0, 0}};

/* The envelope followed by what every order type has (section 1). */
static const field_t order_head_fields[] = {
    {"event_id", K_EVENT_ID, REQUIRED, H_NONE, 1, CP_ID_MAX},
    {"type", K_TYPE, REQUIRED, H_NONE, 0, 0},
    {"customer_id", K_CUSTOMER_ID, REQUIRED, H_NONE, 1, CP_ID_MAX},
    {"occurred_at", K_OCCURRED_AT, REQUIRED, H_NONE, 0, 0},
    ID("order_id", REQUIRED, H_ORDER),
    {"amount", K_MONEY, REQUIRED, H_NONE, 0, 0},
    {"currency", K_CURRENCY, REQUIRED, H_NONE, 0, 0}};

/* Section 1b, in the order of its tables. */
static const field_t session_started_fields[] = {
    ID("session_id", REQUIRED, H_SESSION),
    {"channel", K_STRING, OPTIONAL, H_NONE, 0, 32}};
static const field_t page_viewed_fields[] = {
    {"url", K_STRING, REQUIRED, H_NONE, 1, 2048},
    ID("session_id", OPTIONAL, H_SESSION)};
static const field_t product_viewed_fields[] = {
    ID("product_id", REQUIRED, H_PRODUCT),
    ID("session_id", OPTIONAL, H_SESSION)};
static const field_t search_performed_fields[] = {
    {"query", K_STRING, REQUIRED, H_NONE, 1, 512},
    ID("session_id", OPTIONAL, H_SESSION)};
static const field_t cart_item_added_fields[] = {
    ID("product_id", REQUIRED, H_PRODUCT),
    {"value", K_MONEY, PAIRED, H_NONE, 0, 0},
    {"currency", K_CURRENCY, PAIRED, H_NONE, 0, 0},
    ID("session_id", OPTIONAL, H_SESSION)};
static const field_t cart_abandoned_fields[] = {
    {"value", K_MONEY, REQUIRED, H_NONE, 0, 0},
    {"currency", K_CURRENCY, REQUIRED, H_NONE, 0, 0},
    ID("session_id", OPTIONAL, H_SESSION)};
static const field_t ticket_opened_fields[] = {
    ID("ticket_id", REQUIRED, H_TICKET)};
static const field_t ticket_resolved_fields[] = {
    ID("ticket_id", REQUIRED, H_TICKET),
    {"resolution_minutes", K_MINUTES, REQUIRED, H_NONE, 0, 0}};
static const field_t complaint_filed_fields[] = {
    ID("ticket_id", OPTIONAL, H_TICKET)};
static const field_t survey_answered_fields[] = {
    {"survey", K_SURVEY, REQUIRED, H_NONE, 0, 0},
    {"score", K_SCORE, REQUIRED, H_NONE, 0, 0}};
static const field_t profile_updated_fields[] = {
    {"attributes", K_ATTRS, REQUIRED, H_NONE, 1, CP_ATTRS_MAX}};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define LIST(a) a, N(a)

typedef struct {
    const char *name;
    cp_family_t family;
    cp_ev_type_t type;
    const field_t *fields; /* besides the family's head */
    size_t n_fields;
} type_t;

static const type_t types[] = {
    {"order.placed", CP_FAMILY_ORDERS, CP_EV_ORDER_PLACED, NULL, 0},
    {"order.refunded", CP_FAMILY_ORDERS, CP_EV_ORDER_REFUNDED, NULL, 0},
    {"order.cancelled", CP_FAMILY_ORDERS, CP_EV_ORDER_CANCELLED, NULL, 0},
    {"session.started", CP_FAMILY_BROWSING, CP_EV_SESSION_STARTED,
     LIST(session_started_fields)},
    {"page.viewed", CP_FAMILY_BROWSING, CP_EV_PAGE_VIEWED,
     LIST(page_viewed_fields)},
    {"product.viewed", CP_FAMILY_BROWSING, CP_EV_PRODUCT_VIEWED,
     LIST(product_viewed_fields)},
    {"search.performed", CP_FAMILY_BROWSING, CP_EV_SEARCH_PERFORMED,
     LIST(search_performed_fields)},
    {"cart.item_added", CP_FAMILY_BROWSING, CP_EV_CART_ITEM_ADDED,
     LIST(cart_item_added_fields)},
    {"cart.abandoned", CP_FAMILY_BROWSING, CP_EV_CART_ABANDONED,
     LIST(cart_abandoned_fields)},
    {"ticket.opened", CP_FAMILY_SUPPORT, CP_EV_TICKET_OPENED,
     LIST(ticket_opened_fields)},
    {"ticket.resolved", CP_FAMILY_SUPPORT, CP_EV_TICKET_RESOLVED,
     LIST(ticket_resolved_fields)},
    {"complaint.filed", CP_FAMILY_SUPPORT, CP_EV_COMPLAINT_FILED,
     LIST(complaint_filed_fields)},
    {"survey.answered", CP_FAMILY_SUPPORT, CP_EV_SURVEY_ANSWERED,
     LIST(survey_answered_fields)},
    {"profile.updated", CP_FAMILY_PROFILE, CP_EV_PROFILE_UPDATED,
     LIST(profile_updated_fields)}};

static const char *family_names[] = {"order", "browsing", "support", "profile"};

/* A list of fields and their values in one message (NULL: absent or
 * null). */
typedef struct {
    const field_t *f;
    size_t n;
    json_t *v[LIST_MAX];
} fields_t;

static void fields_get(fields_t *fs, const field_t *f, size_t n, json_t *root)
{
    assert(n <= LIST_MAX);
    fs->f = f;
    fs->n = n;
    for (size_t i = 0; i < n; i++) {
        fs->v[i] = json_object_get(root, f[i].name);
        if (json_is_null(fs->v[i]))
            fs->v[i] = NULL;
    }
}

/* ------------------------------------------------------------ small checks */

static int bytes_ok(const json_t *v, size_t min, size_t max)
{
    size_t len = json_string_length(v);
    return len >= min && len <= max &&
           memchr(json_string_value(v), '\0', len) == NULL;
}

static int str_eq(const json_t *v, const char *s)
{
    return json_string_length(v) == strlen(s) &&
           memcmp(json_string_value(v), s, strlen(s)) == 0;
}

static const type_t *find_type(const json_t *v)
{
    for (size_t i = 0; i < N(types); i++)
        if (str_eq(v, types[i].name))
            return &types[i];
    return NULL;
}

static int upper_letters(const json_t *v, size_t n)
{
    const char *s = json_string_value(v);
    if (json_string_length(v) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
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

/* A JSON number as a double; -0.0 is 0. */
static double number_value(const json_t *v)
{
    double d =
        json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
    return d == 0 ? 0.0 : d;
}

static int survey_score_ok(cp_survey_t survey, json_int_t score)
{
    if (survey == CP_SURVEY_CSAT)
        return score >= 1 && score <= 5;
    return score >= 0 && score <= 10;
}

/* ------------------------------------------------------------- attributes */

typedef enum {
    A_OTHER,
    A_COUNTRY,
    A_STR64, /* region, city, plan */
    A_GENDER,
    A_BIRTH_YEAR,
    A_SIGNUP_AT,
    A_TAGS,
    A_IS_STRATEGIC
} attr_kind_t;

#define ATTR_NAME_MAX 32
#define ATTR_STR_MAX 64
#define GENDER_MAX 16
#define TAGS_MAX 16
#define TAG_MAX 32

static attr_kind_t attr_kind(const char *name, size_t len)
{
    static const struct {
        const char *name;
        attr_kind_t kind;
    } known[] = {{"country", A_COUNTRY},
                 {"region", A_STR64},
                 {"city", A_STR64},
                 {"plan", A_STR64},
                 {"gender", A_GENDER},
                 {"birth_year", A_BIRTH_YEAR},
                 {"signup_at", A_SIGNUP_AT},
                 {"tags", A_TAGS},
                 {"is_strategic", A_IS_STRATEGIC}};
    for (size_t i = 0; i < N(known); i++)
        if (strlen(known[i].name) == len &&
            memcmp(known[i].name, name, len) == 0)
            return known[i].kind;
    return A_OTHER;
}

static int attr_name_ok(const char *name, size_t len)
{
    if (len < 1 || len > ATTR_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* One member of the attributes object. */
typedef struct {
    const char *name;
    size_t name_len;
    json_t *v;  /* NULL: JSON null, removes the attribute */
    size_t pos; /* 1-based, in input order */
    char label[48];
} attr_t;

/* How messages name an attribute: its name when valid (only [a-z0-9_], so
 * nothing but an identifier), else its position. */
static void attr_label(attr_t *at)
{
    if (attr_name_ok(at->name, at->name_len))
        snprintf(at->label, sizeof(at->label), "attribute '%.*s'",
                 (int)at->name_len, at->name);
    else
        snprintf(at->label, sizeof(at->label), "attribute #%zu", at->pos);
}

/* Reads the member at iterator it, the pos-th (1-based) in input order. */
static void attr_get(void *it, size_t pos, attr_t *at)
{
    at->name = json_object_iter_key(it);
#if JANSSON_VERSION_HEX >= 0x020e00
    at->name_len = json_object_iter_key_len(it);
#else
    at->name_len = strlen(at->name);
#endif
    at->v = json_object_iter_value(it);
    if (json_is_null(at->v))
        at->v = NULL;
    at->pos = pos;
    attr_label(at);
}

static int all_strings(const json_t *array)
{
    for (size_t i = 0; i < json_array_size(array); i++)
        if (!json_is_string(json_array_get(array, i)))
            return 0;
    return 1;
}

static cp_reject_t attr_type(const attr_t *at, char *msg, size_t msg_size)
{
    const json_t *v = at->v;
    const char *want = NULL;
    switch (attr_kind(at->name, at->name_len)) {
    case A_BIRTH_YEAR:
        if (!json_is_integer(v))
            want = "an integer";
        break;
    case A_IS_STRATEGIC:
        if (!json_is_boolean(v))
            want = "a boolean";
        break;
    case A_TAGS:
        if (!json_is_array(v) || !all_strings(v))
            want = "an array of strings";
        break;
    case A_OTHER:
        if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
            want = "a string, number or boolean";
        break;
    default:
        if (!json_is_string(v))
            want = "a string";
        break;
    }
    if (want)
        return reject(CP_REJECT_INVALID_FIELD_TYPE, msg, msg_size,
                      "%s must be %s", at->label, want);
    return CP_REJECT_NONE;
}

/* Tags are joined with ',' when stored: a tag may not hold one. */
static int tags_ok(const json_t *v)
{
    if (json_array_size(v) > TAGS_MAX)
        return 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *t = json_array_get(v, i);
        if (!bytes_ok(t, 1, TAG_MAX) ||
            memchr(json_string_value(t), ',', json_string_length(t)))
            return 0;
    }
    return 1;
}

#define NUMBER_TEXT_MAX 400
static void format_real(double v, char *out);

static cp_reject_t attr_value(const attr_t *at, char *msg, size_t msg_size)
{
    const json_t *v = at->v;
    const char *want = NULL;
    int64_t ms;
    switch (attr_kind(at->name, at->name_len)) {
    case A_COUNTRY:
        if (!upper_letters(v, 2))
            want = "an ISO 3166-1 alpha-2 code (two upper-case letters)";
        break;
    case A_STR64:
        if (!bytes_ok(v, 1, ATTR_STR_MAX))
            want = "1-64 bytes without NUL";
        break;
    case A_GENDER:
        if (!bytes_ok(v, 1, GENDER_MAX))
            want = "1-16 bytes without NUL";
        break;
    case A_BIRTH_YEAR:
        if (json_integer_value(v) < 1900 || json_integer_value(v) > 2100)
            want = "a year between 1900 and 2100";
        break;
    case A_SIGNUP_AT:
        if (cp_time_parse_rfc3339(json_string_value(v), json_string_length(v),
                                  &ms) != CP_OK)
            want = "an RFC 3339 time with a zone between 1970 and 9999";
        break;
    case A_TAGS:
        if (!tags_ok(v))
            want = "0-16 strings of 1-32 bytes without NUL or ','";
        break;
    case A_IS_STRATEGIC:
        break;
    case A_OTHER:
        if (json_is_string(v) && !bytes_ok(v, 1, ATTR_STR_MAX))
            want = "1-64 bytes without NUL";
        else if (json_is_real(v) && !isfinite(json_real_value(v)))
            want = "a finite number";
        else if (json_is_real(v)) {
            char text[NUMBER_TEXT_MAX];
            format_real(json_real_value(v), text);
            if (strlen(text) > ATTR_STR_MAX)
                want = "a number of at most 64 characters in decimal form";
        }
        break;
    }
    if (want)
        return reject(CP_REJECT_INVALID_FIELD, msg, msg_size, "%s must be %s",
                      at->label, want);
    return CP_REJECT_NONE;
}

static cp_reject_t attrs_type(json_t *obj, char *msg, size_t msg_size)
{
    size_t pos = 0;
    for (void *it = json_object_iter(obj); it;
         it = json_object_iter_next(obj, it)) {
        attr_t at;
        attr_get(it, ++pos, &at);
        if (!at.v)
            continue;
        cp_reject_t r = attr_type(&at, msg, msg_size);
        if (r != CP_REJECT_NONE)
            return r;
    }
    return CP_REJECT_NONE;
}

static cp_reject_t attrs_value(json_t *obj, const field_t *f, char *msg,
                               size_t msg_size)
{
    size_t n = json_object_size(obj);
    if (n < f->min || n > f->max)
        return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                      "field '%s' must have %u-%u members", f->name,
                      (unsigned)f->min, (unsigned)f->max);
    size_t pos = 0;
    for (void *it = json_object_iter(obj); it;
         it = json_object_iter_next(obj, it)) {
        attr_t at;
        attr_get(it, ++pos, &at);
        if (!attr_name_ok(at.name, at.name_len))
            return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                          "%s: name must be 1-%d bytes of [a-z0-9_]", at.label,
                          ATTR_NAME_MAX);
        if (!at.v)
            continue;
        cp_reject_t r = attr_value(&at, msg, msg_size);
        if (r != CP_REJECT_NONE)
            return r;
    }
    return CP_REJECT_NONE;
}

/* v's shortest round-tripping decimal digits, written without exponent
 * ("1.5", "100", "-0.000001"; -0.0 is "0") into out, which holds at least
 * NUMBER_TEXT_MAX bytes: 17 digits placed anywhere from 10^308 down to
 * 10^-324. */

static void format_real(double v, char *out)
{
    char e_form[40], mant[20];
    size_t n = 0, o = 0;
    int prec = 0;

    if (v == 0 || !isfinite(v)) {
        strcpy(out, "0");
        return;
    }
    for (; prec < 17; prec++) {
        snprintf(e_form, sizeof(e_form), "%.*e", prec, v);
        if (strtod(e_form, NULL) == v)
            break;
    }
    if (prec == 17)
        snprintf(e_form, sizeof(e_form), "%.16e", v);
    const char *e = strchr(e_form, 'e');
    long exp10 = strtol(e + 1, NULL, 10);
    for (const char *p = e_form; p < e; p++)
        if (*p >= '0' && *p <= '9')
            mant[n++] = *p;
    while (n > 1 && mant[n - 1] == '0')
        n--;
    if (v < 0)
        out[o++] = '-';
    if (exp10 < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (long i = 0; i < -exp10 - 1; i++)
            out[o++] = '0';
        memcpy(out + o, mant, n);
        o += n;
    } else {
        size_t int_digits = (size_t)exp10 + 1;
        for (size_t i = 0; i < int_digits; i++)
            out[o++] = i < n ? mant[i] : '0';
        if (n > int_digits) {
            out[o++] = '.';
            memcpy(out + o, mant + int_digits, n - int_digits);
            o += n - int_digits;
        }
    }
    out[o] = '\0';
}

static char *join_tags(cp_arena_t *arena, const json_t *v, size_t *len)
{
    size_t total = 0, n = json_array_size(v);
    for (size_t i = 0; i < n; i++)
        total += json_string_length(json_array_get(v, i)) + 1;
    char *s = need(cp_arena_alloc(arena, total + 1));
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(v, i);
        if (i > 0)
            s[o++] = ',';
        memcpy(s + o, json_string_value(t), json_string_length(t));
        o += json_string_length(t);
    }
    s[o] = '\0';
    *len = o;
    return s;
}

/* The normalised text of a validated attribute value (see cp_attr_t). */
static void attr_fill(cp_arena_t *arena, const attr_t *at, cp_attr_t *out)
{
    char buf[NUMBER_TEXT_MAX];
    const json_t *v = at->v;
    int64_t ms = 0;

    out->name = need(cp_arena_strndup(arena, at->name, at->name_len));
    out->name_len = at->name_len;
    if (!v) {
        out->removed = 1;
        return;
    }
    attr_kind_t kind = attr_kind(at->name, at->name_len);
    if (kind == A_TAGS) {
        out->value = join_tags(arena, v, &out->value_len);
        return;
    }
    if (kind == A_SIGNUP_AT) {
        cp_time_parse_rfc3339(json_string_value(v), json_string_length(v), &ms);
        snprintf(buf, sizeof(buf), "%" PRId64, ms);
    } else if (json_is_string(v)) {
        out->value_len = json_string_length(v);
        out->value =
            need(cp_arena_strndup(arena, json_string_value(v), out->value_len));
        return;
    } else if (json_is_boolean(v)) {
        snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
    } else {
        format_real(json_real_value(v), buf);
    }
    out->value_len = strlen(buf);
    out->value = need(cp_arena_strndup(arena, buf, out->value_len));
}

static void attrs_fill(cp_arena_t *arena, json_t *obj, cp_event_t *ev)
{
    size_t n = json_object_size(obj);
    cp_attr_t *attrs = need(cp_arena_alloc(arena, n * sizeof(*attrs)));
    memset(attrs, 0, n * sizeof(*attrs));
    size_t i = 0;
    for (void *it = json_object_iter(obj); it && i < n;
         it = json_object_iter_next(obj, it)) {
        attr_t at;
        attr_get(it, i + 1, &at);
        attr_fill(arena, &at, &attrs[i++]);
    }
    ev->attrs = attrs;
    ev->n_attrs = i;
}

/* ----------------------------------------------------------------- phases */

static cp_reject_t check_missing(const fields_t *fs, char *msg, size_t msg_size)
{
    for (size_t i = 0; i < fs->n; i++) {
        if (fs->v[i])
            continue;
        if (fs->f[i].presence == REQUIRED)
            return reject(CP_REJECT_MISSING_FIELD, msg, msg_size,
                          "required field '%s' is missing or null",
                          fs->f[i].name);
        if (fs->f[i].presence != PAIRED)
            continue;
        for (size_t j = 0; j < fs->n; j++)
            if (j != i && fs->f[j].presence == PAIRED && fs->v[j])
                return reject(CP_REJECT_MISSING_FIELD, msg, msg_size,
                              "field '%s' is missing or null but '%s' is "
                              "given (both or neither)",
                              fs->f[i].name, fs->f[j].name);
    }
    return CP_REJECT_NONE;
}

/* The JSON type a kind wants, or NULL when v has it. */
static const char *type_wanted(kind_t kind, const json_t *v)
{
    switch (kind) {
    case K_MONEY:
        return json_is_string(v) || json_is_number(v)
                   ? NULL
                   : "a decimal string or number";
    case K_MINUTES:
        return json_is_number(v) ? NULL : "a number";
    case K_SCORE:
        return json_is_integer(v) ? NULL : "an integer";
    case K_ATTRS:
        return json_is_object(v) ? NULL : "an object";
    default:
        return json_is_string(v) ? NULL : "a string";
    }
}

static cp_reject_t check_types(const fields_t *fs, char *msg, size_t msg_size)
{
    for (size_t i = 0; i < fs->n; i++) {
        if (!fs->v[i])
            continue;
        const char *want = type_wanted(fs->f[i].kind, fs->v[i]);
        if (want)
            return reject(CP_REJECT_INVALID_FIELD_TYPE, msg, msg_size,
                          "field '%s' must be %s", fs->f[i].name, want);
    }
    for (size_t i = 0; i < fs->n; i++) {
        if (fs->v[i] && fs->f[i].kind == K_ATTRS) {
            cp_reject_t r = attrs_type(fs->v[i], msg, msg_size);
            if (r != CP_REJECT_NONE)
                return r;
        }
    }
    return CP_REJECT_NONE;
}

static cp_reject_t check_value(const field_t *f, json_t *v, cp_event_t *ev,
                               char *msg, size_t msg_size)
{
    switch ((kind_t)f->kind) {
    case K_EVENT_ID:
    case K_STRING:
        if (bytes_ok(v, f->min, f->max))
            return CP_REJECT_NONE;
        if (f->min == 0)
            return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                          "field '%s' must be at most %u bytes without NUL",
                          f->name, (unsigned)f->max);
        return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                      "field '%s' must be %u-%u bytes without NUL", f->name,
                      (unsigned)f->min, (unsigned)f->max);
    case K_MINUTES:
        ev->resolution_minutes = number_value(v);
        if (ev->resolution_minutes >= 0 &&
            ev->resolution_minutes <= MINUTES_MAX)
            return CP_REJECT_NONE;
        return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                      "field '%s' must be between 0 and %.0f", f->name,
                      MINUTES_MAX);
    case K_SURVEY:
        ev->survey = str_eq(v, "csat")  ? CP_SURVEY_CSAT
                     : str_eq(v, "nps") ? CP_SURVEY_NPS
                                        : CP_SURVEY_NONE;
        if (ev->survey != CP_SURVEY_NONE)
            return CP_REJECT_NONE;
        return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                      "field '%s' is not a known survey kind", f->name);
    case K_SCORE:
        /* survey precedes score in every list that has a score */
        if (survey_score_ok(ev->survey, json_integer_value(v))) {
            ev->score = (int)json_integer_value(v);
            return CP_REJECT_NONE;
        }
        return reject(CP_REJECT_INVALID_FIELD, msg, msg_size,
                      "field '%s' is out of range for its survey (CSAT 1-5, "
                      "NPS 0-10)",
                      f->name);
    case K_ATTRS:
        return attrs_value(v, f, msg, msg_size);
    default: /* envelope specials and money have their own checks */
        return CP_REJECT_NONE;
    }
}

static cp_reject_t check_values(const fields_t *fs, cp_event_t *ev, char *msg,
                                size_t msg_size)
{
    for (size_t i = 0; i < fs->n; i++) {
        if (!fs->v[i])
            continue;
        cp_reject_t r = check_value(&fs->f[i], fs->v[i], ev, msg, msg_size);
        if (r != CP_REJECT_NONE)
            return r;
    }
    return CP_REJECT_NONE;
}

static json_t *find_kind(const fields_t *fs, kind_t kind, const char **name)
{
    for (size_t i = 0; i < fs->n; i++) {
        if (fs->v[i] && fs->f[i].kind == kind) {
            *name = fs->f[i].name;
            return fs->v[i];
        }
    }
    return NULL;
}

/* Money of the head (orders) or of the type (browsing): at most one
 * money/currency pair per event, both present or both absent by now. */
static cp_reject_t check_money(const cp_decode_params_t *p,
                               const fields_t *lists[2], cp_event_t *ev,
                               char *msg, size_t msg_size)
{
    const char *money_name = NULL, *cur_name = NULL;
    json_t *money = NULL, *cur = NULL;
    for (int l = 0; l < 2 && !money; l++) {
        money = find_kind(lists[l], K_MONEY, &money_name);
        cur = find_kind(lists[l], K_CURRENCY, &cur_name);
    }
    if (!money || !cur)
        return CP_REJECT_NONE;
    if (!upper_letters(cur, 3))
        return reject(CP_REJECT_INVALID_CURRENCY, msg, msg_size,
                      "field '%s' is not an ISO 4217 code", cur_name);
    if (strcmp(json_string_value(cur), p->currency) != 0)
        return reject(CP_REJECT_CURRENCY_MISMATCH, msg, msg_size,
                      "field '%s' differs from the reporting currency %s",
                      cur_name, p->currency);
    cp_err_t err = parse_amount(money, p->currency_digits, &ev->amount);
    if (err != CP_OK)
        return reject(CP_REJECT_INVALID_AMOUNT, msg, msg_size,
                      "field '%s': %s (non-negative, at most %d decimals)",
                      money_name, cp_err_str(err), p->currency_digits);
    ev->has_value = strcmp(money_name, "value") == 0;
    return CP_REJECT_NONE;
}

/* ----------------------------------------------------------------- decode */

/* The envelope (plus the family's common fields): phases up to the
 * timestamp. Sets *type. */
static cp_reject_t check_head(cp_family_t family, const fields_t *head,
                              const void *key, size_t key_len,
                              const type_t **type, cp_event_t *ev, char *msg,
                              size_t msg_size)
{
    json_t *const *v = head->v;
    cp_reject_t r = check_missing(head, msg, msg_size);
    if (r == CP_REJECT_NONE)
        r = check_types(head, msg, msg_size);
    if (r != CP_REJECT_NONE)
        return r;
    *type = find_type(v[E_TYPE]);
    if (!*type || (*type)->family != family)
        return reject(CP_REJECT_UNKNOWN_EVENT_TYPE, msg, msg_size,
                      "field 'type' is not a known %s event type",
                      family_names[family]);
    if (!bytes_ok(v[E_CUSTOMER_ID], 1, CP_ID_MAX))
        return reject(CP_REJECT_INVALID_CUSTOMER_ID, msg, msg_size,
                      "field 'customer_id' must be 1-%d bytes without NUL",
                      CP_ID_MAX);
    r = check_values(head, ev, msg, msg_size);
    if (r != CP_REJECT_NONE)
        return r;
    const json_t *cid = v[E_CUSTOMER_ID], *ts = v[E_OCCURRED_AT];
    if (json_string_length(cid) != key_len ||
        memcmp(json_string_value(cid), key, key_len) != 0)
        return reject(CP_REJECT_KEY_MISMATCH, msg, msg_size,
                      "Kafka key differs from field 'customer_id'");
    if (cp_time_parse_rfc3339(json_string_value(ts), json_string_length(ts),
                              &ev->occurred_ms) != CP_OK)
        return reject(CP_REJECT_INVALID_TIMESTAMP, msg, msg_size,
                      "field 'occurred_at' is not an RFC 3339 time with a "
                      "zone between 1970 and 9999");
    return CP_REJECT_NONE;
}

static void fill_ids(const fields_t *fs, cp_event_t *ev)
{
    for (size_t i = 0; i < fs->n; i++) {
        const json_t *v = fs->v[i];
        if (!v || fs->f[i].slot == H_NONE)
            continue;
        uint64_t h =
            cp_hash_fnv1a64(json_string_value(v), json_string_length(v));
        switch ((slot_t)fs->f[i].slot) {
        case H_ORDER:
            ev->order_id_hash = h;
            break;
        case H_SESSION:
            ev->session_id_hash = h;
            ev->has_session_id = 1;
            break;
        case H_PRODUCT:
            ev->product_id_hash = h;
            ev->has_product_id = 1;
            break;
        case H_TICKET:
            ev->ticket_id_hash = h;
            ev->has_ticket_id = 1;
            break;
        case H_NONE:
            break;
        }
    }
}

static void fill_out(const cp_decode_params_t *p, const fields_t *head,
                     const fields_t *tf, cp_arena_t *arena, cp_event_in_t *out)
{
    const json_t *cid = head->v[E_CUSTOMER_ID];
    const json_t *eid = head->v[E_EVENT_ID];
    out->customer_id_len = json_string_length(cid);
    out->customer_id = need(
        cp_arena_strndup(arena, json_string_value(cid), out->customer_id_len));
    out->event_id_len = json_string_length(eid);
    out->event_id = need(
        cp_arena_strndup(arena, json_string_value(eid), out->event_id_len));
    out->ev.event_id_hash = cp_hash_fnv1a64(out->event_id, out->event_id_len);
    out->ev.occurred_day = cp_tz_day(p->tz, out->ev.occurred_ms);
    fill_ids(head, &out->ev);
    fill_ids(tf, &out->ev);
    for (size_t i = 0; i < tf->n; i++)
        if (tf->v[i] && tf->f[i].kind == K_ATTRS)
            attrs_fill(arena, tf->v[i], &out->ev);
}

static cp_reject_t decode_object(const cp_decode_params_t *p,
                                 cp_family_t family, json_t *root,
                                 const void *key, size_t key_len,
                                 cp_arena_t *arena, cp_event_in_t *out,
                                 char *msg, size_t msg_size)
{
    fields_t head, tf;
    const type_t *type = NULL;
    if (family == CP_FAMILY_ORDERS)
        fields_get(&head, LIST(order_head_fields), root);
    else
        fields_get(&head, LIST(envelope_fields), root);
    cp_reject_t r =
        check_head(family, &head, key, key_len, &type, &out->ev, msg, msg_size);
    if (r != CP_REJECT_NONE)
        return r;
    out->ev.type = type->type;
    fields_get(&tf, type->fields, type->n_fields, root);
    r = check_missing(&tf, msg, msg_size);
    if (r == CP_REJECT_NONE)
        r = check_types(&tf, msg, msg_size);
    if (r == CP_REJECT_NONE)
        r = check_values(&tf, &out->ev, msg, msg_size);
    if (r == CP_REJECT_NONE) {
        const fields_t *lists[2] = {&head, &tf};
        r = check_money(p, lists, &out->ev, msg, msg_size);
    }
    if (r == CP_REJECT_NONE)
        fill_out(p, &head, &tf, arena, out);
    return r;
}

/* ---- the scratch arena of jansson's trees ------------------------------
 *
 * Every block jansson allocates carries a 16-byte header telling where it
 * came from (keeping the arena's 16-byte alignment): the calling thread's
 * scratch arena while cp_decode_event parses (freeing is then a no-op; the
 * arena is reset after the event), malloc otherwise. */

#define SCRATCH_CHUNK (64 * 1024)
#define FROM_HEAP 0x48454150u  /* "HEAP" */
#define FROM_ARENA 0x4152454eu /* "AREN" */

typedef struct {
    uint32_t from;
    uint32_t pad[3];
} block_hdr_t;

static int scratch_on;
static _Thread_local cp_arena_t scratch;
static _Thread_local int scratch_ready;
static _Thread_local int in_decode;

static void *json_alloc(size_t n)
{
    block_hdr_t *h;
    if (in_decode) {
        h = cp_arena_alloc(&scratch, sizeof(*h) + n);
        if (h)
            h->from = FROM_ARENA;
    } else {
        h = malloc(sizeof(*h) + n);
        if (h)
            h->from = FROM_HEAP;
    }
    return h ? h + 1 : NULL;
}

static void json_release(void *p)
{
    if (!p)
        return;
    block_hdr_t *h = (block_hdr_t *)p - 1;
    assert(h->from == FROM_HEAP || h->from == FROM_ARENA);
    if (h->from == FROM_HEAP)
        free(h);
}

void cp_decode_scratch_init(void)
{
    json_set_alloc_funcs(json_alloc, json_release);
    scratch_on = 1;
}

void cp_decode_scratch_free(void)
{
    if (scratch_ready)
        cp_arena_free(&scratch);
    scratch_ready = 0;
}

cp_reject_t cp_decode_event(const cp_decode_params_t *p, cp_family_t family,
                            const void *key, size_t key_len, const void *value,
                            size_t value_len, cp_arena_t *arena,
                            cp_event_in_t *out, char *msg, size_t msg_size)
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
    if ((int)family < 0 || family > CP_FAMILY_PROFILE)
        return reject(CP_REJECT_UNKNOWN_EVENT_TYPE, msg, msg_size,
                      "no event family %d", (int)family);

    json_error_t jerr;
    if (scratch_on && !scratch_ready) {
        cp_arena_init(&scratch, SCRATCH_CHUNK);
        scratch_ready = 1;
    }
    in_decode = scratch_on;
    json_t *root = json_loadb(value, value_len,
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    cp_reject_t r;
    if (!root)
        r = reject(CP_REJECT_INVALID_JSON, msg, msg_size,
                   "not valid JSON at line %d column %d", jerr.line,
                   jerr.column);
    else if (json_is_object(root))
        r = decode_object(p, family, root, key, key_len, arena, out, msg,
                          msg_size);
    else
        r = reject(CP_REJECT_INVALID_JSON, msg, msg_size,
                   "message is not a JSON object");
    json_decref(root); /* NULL-safe; with the scratch: nothing freed */
    if (in_decode)
        cp_arena_reset(&scratch);
    in_decode = 0;
    if (!root)
        return r;
    if (r == CP_REJECT_NONE && msg_size > 0)
        msg[0] = '\0';
    return r;
}

cp_reject_t cp_decode_order(const cp_decode_params_t *p, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            cp_arena_t *arena, cp_order_in_t *out, char *msg,
                            size_t msg_size)
{
    return cp_decode_event(p, CP_FAMILY_ORDERS, key, key_len, value, value_len,
                           arena, out, msg, msg_size);
}
