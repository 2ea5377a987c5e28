/*
 * expr.h - the rule language of custom segments (docs/segments.md).
 *
 * A rule such as
 *     profile.country in ["DE", "AT"] and rfm.m >= 500.00
 * is parsed once, at start-up, into a compiled form (cp_expr_parse); it is
 * then evaluated for each customer after each state change (cp_expr_eval).
 * Field names are resolved at parse time to slot ids by a callback of the
 * caller; at evaluation the caller hands in an array of values indexed by
 * slot id.
 *
 * Pure computation: no I/O, no clock, no global state. Parsing allocates
 * the compiled rule; evaluation never allocates, never recurses and takes
 * time linear in the size of the rule.
 */
#ifndef CP_EXPR_H
#define CP_EXPR_H

#include <stddef.h>

/* ---------------------------------------------------------------------------
 * Limits (each exceeded one is a parse error; docs/segments.md "Limits")
 * ------------------------------------------------------------------------ */

#define CP_EXPR_MAX_TEXT 4096  /* bytes of rule text */
#define CP_EXPR_MAX_DEPTH 64   /* nesting: '(' and prefix 'not' / '-' */
#define CP_EXPR_MAX_NODES 512  /* literals, names, operators, list items */
#define CP_EXPR_MAX_LIST 256   /* items of one [...] list */
#define CP_EXPR_MAX_STRING 256 /* bytes of one string literal, decoded */

/* ---------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------ */

/* Type of a value; CP_EXPR_ANY only describes a field (see the resolver). */
typedef enum {
    CP_EXPR_NULL = 0,
    CP_EXPR_BOOL = 1,
    CP_EXPR_NUM = 2,
    CP_EXPR_STR = 3,
    CP_EXPR_ANY = 4
} cp_expr_type_t;

/* One value. Money is a number in currency units (12.34), not minor units.
 * A string is str.len bytes at str.ptr (not NUL-terminated, compared byte
 * by byte); str.ptr may be NULL only when str.len is 0. */
typedef struct cp_expr_value_s {
    cp_expr_type_t type; /* never CP_EXPR_ANY */
    union {
        int b; /* CP_EXPR_BOOL: 0 or not 0 */
        double num;
        struct {
            const char *ptr;
            size_t len;
        } str;
    } v;
} cp_expr_value_t;

/* Constructors of values, for the caller's slot array. */
static inline cp_expr_value_t cp_expr_null(void)
{
    cp_expr_value_t val = {.type = CP_EXPR_NULL};
    return val;
}

static inline cp_expr_value_t cp_expr_bool(int b)
{
    cp_expr_value_t val = {.type = CP_EXPR_BOOL, .v.b = b != 0};
    return val;
}

static inline cp_expr_value_t cp_expr_num(double num)
{
    cp_expr_value_t val = {.type = CP_EXPR_NUM, .v.num = num};
    return val;
}

static inline cp_expr_value_t cp_expr_str(const char *ptr, size_t len)
{
    cp_expr_value_t val = {.type = CP_EXPR_STR, .v.str = {ptr, len}};
    return val;
}

/* ---------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

typedef struct cp_expr_s cp_expr_t;

/* Resolves the field `name` (len bytes, not NUL-terminated, e.g.
 * "profile.country") to a slot id >= 0, or returns -1 if the field is
 * unknown. It may set *type to the field's type when present:
 * CP_EXPR_BOOL, CP_EXPR_NUM or CP_EXPR_STR (every field may also be null,
 * i.e. missing); *type is CP_EXPR_ANY on entry and CP_EXPR_ANY or
 * CP_EXPR_NULL mean "unknown until evaluation" (e.g. profile attributes).
 * The type is only used for the parse-time checks. Called on the thread of
 * cp_expr_parse, once per occurrence of a name. */
typedef int (*cp_expr_resolve_fn)(void *ud, const char *name, size_t len,
                                  cp_expr_type_t *type);

#define CP_EXPR_ERR_MAX 192

/* A parse error. line and column are 1-based; column counts characters
 * (UTF-8 code points: bytes that are not 10xxxxxx continuation bytes), a
 * tab counts as one. offset is the 0-based byte offset of the same place.
 * message is "line:column: text", e.g. "1:17: expected ']' after list".
 * line = column = 0 when the error has no place (out of memory). */
typedef struct cp_expr_err_s {
    int line;
    int column;
    size_t offset;
    char message[CP_EXPR_ERR_MAX];
} cp_expr_err_t;

/* Parses and type-checks the rule text (len bytes, need not be
 * NUL-terminated) and compiles it. Names are resolved with resolve(ud,
 * ...); resolve may be NULL (then every name is unknown).
 * Returns the compiled rule, to be freed with cp_expr_free, or NULL with
 * *err filled (err may be NULL). The compiled rule copies everything it
 * needs: text may be freed afterwards. Reentrant. */
cp_expr_t *cp_expr_parse(const char *text, size_t len,
                         cp_expr_resolve_fn resolve, void *ud,
                         cp_expr_err_t *err);

/* Frees expr; NULL is a no-op. */
void cp_expr_free(cp_expr_t *expr);

/* One more than the largest slot id the rule uses (0 if it uses no field):
 * the smallest n_slots that gives every field of the rule a value. */
size_t cp_expr_slots_used(const cp_expr_t *expr);

/* ---------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------ */

/* Evaluates expr with the field of slot id i taking the value slots[i]; a
 * slot id >= n_slots, a value of an unknown type and a number that is not
 * finite all read as null. Returns 1 if the rule's value is true (the
 * customer is a member), else 0.
 * Does not allocate, does not recurse, runs in O(size of the rule) and
 * uses about CP_EXPR_MAX_NODES * sizeof(cp_expr_value_t) bytes of stack.
 * expr is only read: any number of threads may evaluate one rule at the
 * same time. */
int cp_expr_eval(const cp_expr_t *expr, const cp_expr_value_t *slots,
                 size_t n_slots);

#endif
