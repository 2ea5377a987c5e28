/*
 * fuzz_expr.c - libFuzzer target for the segment rule language
 * (scoring/expr.c): the input is a rule text, parsed with a resolver that
 * knows a few fields of every type. A failed parse must leave a well-formed
 * error; a rule that parses is evaluated against several slot arrays
 * (missing, typed, mistyped and extreme values, too few slots), and
 * `not (rule)` must then give the opposite membership.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"

static const struct {
    const char *name;
    cp_expr_type_t type;
} fields[] = {
    {"a", CP_EXPR_ANY},
    {"n", CP_EXPR_NUM},
    {"s", CP_EXPR_STR},
    {"b", CP_EXPR_BOOL},
    {"profile.country", CP_EXPR_ANY},
    {"rfm.m", CP_EXPR_NUM},
    {"x.y.z", CP_EXPR_NUM},
};

#define N_FIELDS (sizeof fields / sizeof fields[0])

static int resolve(void *ud, const char *name, size_t len, cp_expr_type_t *type)
{
    (void)ud;
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (strlen(fields[i].name) == len &&
            memcmp(fields[i].name, name, len) == 0) {
            *type = fields[i].type;
            return (int)i;
        }
    }
    return -1;
}

#define N_SETS 4

static void fill_slots(cp_expr_value_t set[N_SETS][N_FIELDS])
{
    /* 0: everything missing */
    for (size_t i = 0; i < N_FIELDS; i++)
        set[0][i] = cp_expr_null();
    /* 1: the declared types */
    set[1][0] = cp_expr_str("DE", 2);
    set[1][1] = cp_expr_num(500.0);
    set[1][2] = cp_expr_str("churned", 7);
    set[1][3] = cp_expr_bool(1);
    set[1][4] = cp_expr_str("AT", 2);
    set[1][5] = cp_expr_num(1e-3);
    set[1][6] = cp_expr_num(-0.0);
    /* 2: other types than declared, non-finite numbers */
    set[2][0] = cp_expr_num(1.5);
    set[2][1] = cp_expr_str("x", 1);
    set[2][2] = cp_expr_bool(1);
    set[2][3] = cp_expr_num(0.0);
    set[2][4] = cp_expr_bool(0);
    set[2][5] = cp_expr_num(NAN);
    set[2][6] = cp_expr_num(INFINITY);
    /* 3: extremes, empty and non-ASCII strings */
    set[3][0] = cp_expr_str("\xc3\xa9\0x", 4);
    set[3][1] = cp_expr_num(-1e308);
    set[3][2] = cp_expr_str(NULL, 0);
    set[3][3] = cp_expr_bool(0);
    set[3][4] = cp_expr_str("", 0);
    set[3][5] = cp_expr_num(1e308);
    set[3][6] = cp_expr_num(5e-324);
}

static void check_error(const cp_expr_err_t *err, size_t len)
{
    if (memchr(err->message, '\0', sizeof err->message) == NULL)
        abort();
    if (err->line < 1 || err->column < 1 || err->offset > len)
        abort();
}

/* Membership of expr for every slot set, one bit each. */
static unsigned eval_all(const cp_expr_t *expr,
                         cp_expr_value_t set[N_SETS][N_FIELDS])
{
    unsigned bits = 0;
    for (int k = 0; k < N_SETS; k++) {
        int r = cp_expr_eval(expr, set[k], N_FIELDS);
        if (r != 0 && r != 1)
            abort();
        bits |= (unsigned)r << k;
    }
    /* too few slots: the missing ones read as null */
    if (cp_expr_eval(expr, NULL, 0) != cp_expr_eval(expr, set[0], N_FIELDS))
        abort();
    return bits;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp_expr_value_t set[N_SETS][N_FIELDS];
    fill_slots(set);
    cp_expr_err_t err;
    /* Not NUL-terminated: a copy of exactly size bytes (ASan sees any
     * read past the end). */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    cp_expr_t *expr = cp_expr_parse(text, size, resolve, NULL, &err);
    if (expr == NULL) {
        check_error(&err, size);
        free(text);
        return 0;
    }
    if (cp_expr_slots_used(expr) > N_FIELDS)
        abort();
    unsigned bits = eval_all(expr, set);
    cp_expr_free(expr);

    /* not (rule) is the opposite, whenever it is within the limits */
    char *neg = malloc(size + 6);
    if (neg == NULL)
        abort();
    memcpy(neg, "not (", 5);
    memcpy(neg + 5, text, size);
    neg[size + 5] = ')';
    expr = cp_expr_parse(neg, size + 6, resolve, NULL, &err);
    if (expr != NULL) {
        if (eval_all(expr, set) != (~bits & ((1u << N_SETS) - 1)))
            abort();
        cp_expr_free(expr);
    } else {
        check_error(&err, size + 6);
    }
    free(neg);
    free(text);
    return 0;
}
