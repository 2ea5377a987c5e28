/*
 * test_scoring_expr.c - the segment rule language (docs/segments.md):
 * precedence, every operator, in-lists, null semantics, parse-time type
 * errors, every error message with its line:column, each limit at its
 * exact boundary, unicode strings, deep nesting and realistic rules.
 *
 * Pure unit tests, no services; every result is computed by hand.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expr.h"

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* The fields of these tests: name, slot, type. */
enum {
    S_COUNTRY,  /* profile.country, any */
    S_RFM_M,    /* rfm.m, number */
    S_LIFE,     /* lifecycle, string */
    S_CART,     /* browsing.cart_value, number */
    S_CSAT,     /* satisfaction.csat_avg, number */
    S_VIP,      /* vip, bool */
    S_N,        /* n, number */
    S_S,        /* s, string */
    S_B,        /* b, bool */
    S_A,        /* a, any */
    S_UNTYPED,  /* untyped: the resolver leaves the type unset */
    S_NULLTYPE, /* nulltype: the resolver says CP_EXPR_NULL (= any) */
    N_SLOTS
};

static const struct {
    const char *name;
    int slot;
    cp_expr_type_t type;
} fields[] = {
    {"profile.country", S_COUNTRY, CP_EXPR_ANY},
    {"rfm.m", S_RFM_M, CP_EXPR_NUM},
    {"lifecycle", S_LIFE, CP_EXPR_STR},
    {"browsing.cart_value", S_CART, CP_EXPR_NUM},
    {"satisfaction.csat_avg", S_CSAT, CP_EXPR_NUM},
    {"vip", S_VIP, CP_EXPR_BOOL},
    {"n", S_N, CP_EXPR_NUM},
    {"s", S_S, CP_EXPR_STR},
    {"b", S_B, CP_EXPR_BOOL},
    {"a", S_A, CP_EXPR_ANY},
    {"untyped", S_UNTYPED, CP_EXPR_ANY},
    {"nulltype", S_NULLTYPE, CP_EXPR_NULL},
};

static int resolve_calls;

static int resolve(void *ud, const char *name, size_t len, cp_expr_type_t *type)
{
    (void)ud;
    resolve_calls++;
    assert_int_equal(*type, CP_EXPR_ANY);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strlen(fields[i].name) == len &&
            memcmp(fields[i].name, name, len) == 0) {
            if (fields[i].slot != S_UNTYPED)
                *type = fields[i].type;
            return fields[i].slot;
        }
    }
    return -1;
}

/* The slot values of one evaluation; all null unless set. */
static cp_expr_value_t slots[N_SLOTS];

static int reset_slots(void **unused)
{
    (void)unused;
    for (int i = 0; i < N_SLOTS; i++)
        slots[i] = cp_expr_null();
    return 0;
}

static cp_expr_t *parse_len(const char *text, size_t len)
{
    cp_expr_err_t err;
    cp_expr_t *expr = cp_expr_parse(text, len, resolve, NULL, &err);
    if (expr == NULL)
        fail_msg("parse of '%s' failed: %s", text, err.message);
    return expr;
}

static cp_expr_t *parse(const char *text)
{
    return parse_len(text, strlen(text));
}

/* Parses text, evaluates it against slots[] and frees it. */
static int eval_len(const char *text, size_t len)
{
    cp_expr_t *expr = parse_len(text, len);
    int r = cp_expr_eval(expr, slots, N_SLOTS);
    cp_expr_free(expr);
    return r;
}

static int eval(const char *text)
{
    return eval_len(text, strlen(text));
}

#define assert_rule_true(text)                                                 \
    do {                                                                       \
        if (eval(text) != 1)                                                   \
            fail_msg("'%s' is not true", text);                                \
    } while (0)

#define assert_rule_false(text)                                                \
    do {                                                                       \
        if (eval(text) != 0)                                                   \
            fail_msg("'%s' is not false", text);                               \
    } while (0)

/* Parse error of text[0..len): the full message, line and column. */
static void check_error_len(const char *text, size_t len, const char *message,
                            int line, int column)
{
    cp_expr_err_t err;
    memset(&err, 0x55, sizeof err);
    cp_expr_t *expr = cp_expr_parse(text, len, resolve, NULL, &err);
    if (expr != NULL) {
        cp_expr_free(expr);
        fail_msg("'%s' parsed, expected error '%s'", text, message);
    }
    if (strcmp(err.message, message) != 0)
        fail_msg("'%s': got '%s', expected '%s'", text, err.message, message);
    assert_int_equal(err.line, line);
    assert_int_equal(err.column, column);
}

/* The message must start with "line:column: ". */
#define check_error(text, line, column, msg)                                   \
    check_error_len(text, strlen(text), #line ":" #column ": " msg, line,      \
                    column)

/* A string of n copies of piece, then tail; caller frees. */
static char *repeat(const char *head, const char *piece, size_t n,
                    const char *tail)
{
    size_t hl = strlen(head), pl = strlen(piece), tl = strlen(tail);
    char *s = malloc(hl + pl * n + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + i * pl, piece, pl);
    memcpy(s + hl + pl * n, tail, tl + 1);
    return s;
}

/* ---------------------------------------------------------------------------
 * Arithmetic and precedence
 * ------------------------------------------------------------------------ */

static void test_arithmetic(void **unused)
{
    (void)unused;
    assert_rule_true("1 + 2 == 3");
    assert_rule_true("7 - 10 == -3");
    assert_rule_true("2 * 3.5 == 7");
    assert_rule_true("7 / 2 == 3.5");
    assert_rule_true("7 % 3 == 1");
    assert_rule_true("-7 % 3 == -1"); /* sign of the dividend (fmod) */
    assert_rule_true("7 % -3 == 1");
    assert_rule_true("7.5 % 2 == 1.5");
    assert_rule_true("1e3 == 1000");
    assert_rule_true("1.5E-2 == 0.015");
    assert_rule_true("2.5e+1 == 25");
    assert_rule_true("007 == 7");
    assert_rule_true("- -3 == 3");
    assert_rule_true("-(2 + 3) == -5");
    assert_rule_true("0.1 + 0.2 != 0.3"); /* doubles, as documented */
    assert_rule_true("500.00 == 500");
}

static void test_precedence(void **unused)
{
    (void)unused;
    assert_rule_true("1 + 2 * 3 == 7");
    assert_rule_true("(1 + 2) * 3 == 9");
    assert_rule_true("10 - 4 - 3 == 3");   /* left-associative */
    assert_rule_true("100 / 10 / 5 == 2"); /* left-associative */
    assert_rule_true("2 * 3 % 4 == 2");    /* (2 * 3) % 4 */
    assert_rule_true("-2 * 3 == -6");
    assert_rule_true("10 - -2 == 12");
    assert_rule_true("1 + 2 < 4"); /* arithmetic binds tighter */
    /* and binds tighter than or */
    assert_rule_true("true or false and false");
    assert_rule_false("(true or false) and false");
    /* not binds looser than comparisons, tighter than and */
    assert_rule_true("not 1 == 2");
    assert_rule_true("not true or true");
    assert_rule_false("not false and false");
    assert_rule_true("not not true");
    assert_rule_true("1 + 1 == 2 and 2 * 2 == 4");
    assert_rule_true("(true or false) and (false or (true and not false))");
    assert_rule_false("false or false or false or (true and false)");
    assert_rule_true("false or false or true");
    assert_rule_false("true and true and false");
}

/* ---------------------------------------------------------------------------
 * Comparisons and lists
 * ------------------------------------------------------------------------ */

static void test_comparisons(void **unused)
{
    (void)unused;
    assert_rule_true("1 < 2");
    assert_rule_false("2 < 2");
    assert_rule_true("2 <= 2");
    assert_rule_false("3 <= 2");
    assert_rule_true("3 > 2");
    assert_rule_false("2 > 2");
    assert_rule_true("2 >= 2");
    assert_rule_false("1 >= 2");
    assert_rule_true("1 != 2");
    assert_rule_false("2 != 2");
    assert_rule_true("2 == 2");
    /* strings: byte order, a prefix first */
    assert_rule_true("\"a\" < \"b\"");
    assert_rule_true("\"ab\" > \"a\"");
    assert_rule_true("\"\" < \"a\"");
    assert_rule_true("\"b\" >= \"ab\"");
    assert_rule_true("\"Z\" < \"a\"");
    assert_rule_true("\"abc\" == \"abc\"");
    assert_rule_true("\"abc\" != \"abd\"");
    assert_rule_true("\"a\" <= \"a\"");
    /* bools: equality only */
    assert_rule_true("true == true");
    assert_rule_true("true != false");
    assert_rule_false("false == true");
    /* no space needed around operators */
    assert_rule_true("(1<2)and\"a\"==\"a\"");
}

static void test_in_lists(void **unused)
{
    (void)unused;
    slots[S_S] = cp_expr_str("y", 1);
    assert_rule_true("s in [\"x\", \"y\"]");
    assert_rule_false("s not in [\"x\", \"y\"]");
    slots[S_S] = cp_expr_str("z", 1);
    assert_rule_false("s in [\"x\", \"y\"]");
    assert_rule_true("s not in [\"x\", \"y\"]");
    slots[S_N] = cp_expr_num(-3);
    assert_rule_true("n in [1, 2.5, -3]");
    assert_rule_false("n in [1, 2.5, 3]");
    assert_rule_true("n not in [1, 2.5, 3]");
    assert_rule_false("n in []");
    assert_rule_true("n not in []");
    /* any-typed field, mixed list: same type and value */
    slots[S_A] = cp_expr_str("1", 1);
    assert_rule_true("a in [1, \"1\"]");
    assert_rule_false("a in [1, true]");
    assert_rule_true("a not in [1, true]");
    slots[S_A] = cp_expr_num(1);
    assert_rule_true("a in [\"x\", 1]");
    slots[S_A] = cp_expr_bool(1);
    assert_rule_true("a in [false, true]");
    /* null: x in [a, b] is x == a or x == b; not in is x != a and x != b */
    slots[S_A] = cp_expr_null();
    assert_rule_false("a in [\"x\"]");
    assert_rule_false("a not in [\"x\"]");
    assert_rule_true("a in [null, \"x\"]");
    assert_rule_false("a not in [null]");
    assert_rule_true("a not in []");
    slots[S_A] = cp_expr_str("x", 1);
    assert_rule_true("a not in [null]");
    assert_rule_false("a in [null]");
    /* precedence: in binds like a comparison */
    slots[S_N] = cp_expr_num(2);
    assert_rule_true("n + 1 in [3] and not n in [1]");
    assert_rule_true("not n not in [2]");
}

/* ---------------------------------------------------------------------------
 * Null, missing and mistyped values
 * ------------------------------------------------------------------------ */

static void test_null_semantics(void **unused)
{
    (void)unused;
    /* n is null (missing) */
    assert_rule_true("n == null");
    assert_rule_true("null == n");
    assert_rule_false("n != null");
    assert_rule_false("null != n");
    assert_rule_false("n == 1");
    assert_rule_false("n != 1"); /* any comparison with null is false */
    assert_rule_false("n < 1");
    assert_rule_false("n >= 1");
    assert_rule_true("n + 1 == null");
    assert_rule_true("-n == null");
    assert_rule_true("n * 0 == null");
    assert_rule_true("not (n == 1)");
    assert_rule_false("n == rfm.m"); /* both null: still false */
    assert_rule_true("null == null");
    assert_rule_false("null != null");
    assert_rule_true("(null) == (n)");
    /* logic: null counts as false */
    assert_rule_false("b");
    assert_rule_true("not b");
    assert_rule_true("b or true");
    assert_rule_false("b and true");
    assert_rule_false("true and b");
    assert_rule_true("b == null");
    /* null tests around code with jumps (the literal's code is dropped) */
    assert_rule_false("null == (b or vip)");
    assert_rule_true("null != (b and vip)");
    assert_rule_true("(vip or b) != null and null == n");
    slots[S_N] = cp_expr_num(0);
    assert_rule_false("n == null");
    assert_rule_true("n != null");
    assert_rule_true("n == 0");
}

static void test_null_results(void **unused)
{
    (void)unused;
    assert_rule_true("1 / 0 == null");
    assert_rule_true("0 / 0 == null");
    assert_rule_true("1 % 0 == null");
    assert_rule_true("-1 / 0 == null");
    assert_rule_false("1 / 0 != null");
    assert_rule_false("1 / 0 > 0");
    assert_rule_true("1e308 * 10 == null"); /* overflow */
    assert_rule_true("-1e308 - 1e308 == null");
    assert_rule_true("1e308 * 10 / 1e308 == null"); /* null propagates */
    assert_rule_true("1e308 + 1e308 - 1e308 == null");
    assert_rule_true("1e-400 == 0"); /* underflow reads as 0 */
    /* a slot number that is not finite reads as null */
    slots[S_N] = cp_expr_num(INFINITY);
    assert_rule_true("n == null");
    slots[S_N] = cp_expr_num(NAN);
    assert_rule_true("n == null");
    assert_rule_false("n != 1");
}

static void test_mistyped_values(void **unused)
{
    (void)unused;
    /* an any-typed field holding a string compared with a number */
    slots[S_A] = cp_expr_str("5", 1);
    assert_rule_false("a == 5");
    assert_rule_true("a != 5");
    assert_rule_false("a < 5");
    assert_rule_false("a >= 5");
    assert_rule_true("a + 1 == null");
    assert_rule_true("-a == null");
    assert_rule_false("a"); /* not true */
    assert_rule_true("not a");
    slots[S_A] = cp_expr_bool(1);
    assert_rule_true("a");
    slots[S_UNTYPED] = cp_expr_bool(1);
    assert_rule_false("a < untyped"); /* bools have no order */
    assert_rule_false("a >= untyped");
    slots[S_A] = cp_expr_num(1);
    assert_rule_false("a");
    assert_rule_false("a and true");
    assert_rule_true("a or true");
    /* a slot value against its declared type: its actual type counts */
    slots[S_N] = cp_expr_str("7", 1);
    assert_rule_true("n + 1 == null");
    assert_rule_true("n != 7");
}

static void test_membership_is_true_only(void **unused)
{
    (void)unused;
    slots[S_VIP] = cp_expr_bool(1);
    assert_rule_true("vip");
    slots[S_VIP] = cp_expr_bool(42); /* normalised to true */
    assert_rule_true("vip");
    assert_rule_true("vip == true");
    slots[S_VIP] = cp_expr_bool(0);
    assert_rule_false("vip");
    slots[S_VIP] = cp_expr_null();
    assert_rule_false("vip");
    slots[S_A] = cp_expr_str("true", 4);
    assert_rule_false("a");
    assert_rule_true("true");
    assert_rule_false("false");
    assert_rule_true("untyped == null and nulltype == null");
}

/* ---------------------------------------------------------------------------
 * Strings and unicode
 * ------------------------------------------------------------------------ */

static void test_string_escapes(void **unused)
{
    (void)unused;
    static const char v[] = "a\"b\\c\nd\te";
    slots[S_S] = cp_expr_str(v, sizeof v - 1);
    assert_rule_true("s == \"a\\\"b\\\\c\\nd\\te\"");
    /* \u: UTF-8 output, surrogate pairs, either hex case */
    slots[S_S] = cp_expr_str("\xc3\xa9", 2); /* é */
    assert_rule_true("s == \"\\u00e9\"");
    assert_rule_true("s == \"\\u00E9\"");
    assert_rule_true("s == \"\xc3\xa9\"");
    slots[S_S] = cp_expr_str("\xe2\x82\xac", 3); /* € */
    assert_rule_true("s == \"\\u20AC\"");
    slots[S_S] = cp_expr_str("\xf0\x9f\x98\x80", 4); /* U+1F600 */
    assert_rule_true("s == \"\\uD83D\\uDE00\"");
    assert_rule_true("s == \"\xf0\x9f\x98\x80\"");
    slots[S_S] = cp_expr_str("A", 1);
    assert_rule_true("s == \"\\u0041\"");
    slots[S_S] = cp_expr_str("\x7f", 1);
    assert_rule_true("s == \"\\u007f\""); /* escaped, DEL is allowed */
}

static void test_unicode_strings(void **unused)
{
    (void)unused;
    slots[S_COUNTRY] = cp_expr_str("K\xc3\xb6ln", 5);
    assert_rule_true("profile.country == \"K\xc3\xb6ln\"");
    assert_rule_false("profile.country == \"Koln\"");
    assert_rule_true("profile.country in [\"M\xc3\xbc"
                     "nchen\", \"K\xc3\xb6ln\"]");
    slots[S_S] = cp_expr_str("\xe6\x97\xa5\xe6\x9c\xac", 6); /* 日本 */
    assert_rule_true("s == \"\xe6\x97\xa5\xe6\x9c\xac\"");
    assert_rule_true("s > \"z\""); /* byte order */
    assert_rule_true("\"a\" < \"\xc3\xa9\"");
    /* strings compare by bytes: no normalisation (e + combining acute) */
    slots[S_S] = cp_expr_str("e\xcc\x81", 3);
    assert_rule_false("s == \"\\u00e9\"");
    /* an empty slot string, also with a NULL pointer */
    slots[S_S] = cp_expr_str(NULL, 0);
    assert_rule_true("s == \"\"");
    assert_rule_true("s < \"a\"");
    /* a NULL pointer with a length reads as null */
    slots[S_S] = cp_expr_str(NULL, 3);
    assert_rule_true("s == null");
}

static void test_string_errors(void **unused)
{
    (void)unused;
    check_error("s == \"\\q\"", 1, 7, "invalid escape '\\q'");
    check_error("s == \"\\/\"", 1, 7, "invalid escape '\\/'");
    check_error("s == \"\\u12\"", 1, 7,
                "invalid \\u escape (4 hex digits expected)");
    check_error("s == \"\\u12G4\"", 1, 7,
                "invalid \\u escape (4 hex digits expected)");
    check_error("s == \"\\uD800\"", 1, 7,
                "invalid \\u escape (unpaired surrogate)");
    check_error("s == \"\\uDC00\"", 1, 7,
                "invalid \\u escape (unpaired surrogate)");
    check_error("s == \"\\uD800\\u0041\"", 1, 7,
                "invalid \\u escape (unpaired surrogate)");
    check_error("s == \"\\uD800x\"", 1, 7,
                "invalid \\u escape (unpaired surrogate)");
    check_error("s == \"\\u0000\"", 1, 7, "\\u0000 is not allowed");
    check_error("s == \"abc", 1, 6, "unterminated string");
    check_error("s == \"abc\\", 1, 6, "unterminated string");
    check_error("s == \"a\nb\"", 1, 6, "unterminated string");
    check_error("s == \"a\tb\"", 1, 8,
                "control character in string (use \\n or \\t)");
    check_error("s == \"a\x7f\"", 1, 8,
                "control character in string (use \\n or \\t)");
    check_error("s == \"\xc3(\"", 1, 7, "invalid UTF-8 in string");
    check_error("s == \"\xc0\xaf\"", 1, 7, "invalid UTF-8 in string");
    check_error("s == \"\xed\xa0\x80\"", 1, 7, "invalid UTF-8 in string");
    check_error("s == \"\xf4\x90\x80\x80\"", 1, 7, "invalid UTF-8 in string");
    check_error("s == \"\xe2\x82\"", 1, 7, "invalid UTF-8 in string");
    check_error("s == \"\x80\"", 1, 7, "invalid UTF-8 in string");
    /* a NUL byte inside a string is a control character */
    check_error_len("s == \"a\0\"", 9,
                    "1:8: control character in string (use \\n or \\t)", 1, 8);
}

/* ---------------------------------------------------------------------------
 * Type errors at parse time
 * ------------------------------------------------------------------------ */

static void test_type_errors(void **unused)
{
    (void)unused;
    check_error("\"a\" + \"b\" == \"ab\"", 1, 5,
                "'+' needs numbers, got string");
    check_error("s + 1 > 0", 1, 3, "'+' needs numbers, got string");
    check_error("1 - s > 0", 1, 3, "'-' needs numbers, got string");
    check_error("n * vip > 0", 1, 3, "'*' needs numbers, got bool");
    check_error("n / true > 0", 1, 3, "'/' needs numbers, got bool");
    check_error("n % \"2\" > 0", 1, 3, "'%' needs numbers, got string");
    check_error("-s == 1", 1, 1, "'-' needs numbers, got string");
    check_error("null + 1 == 1", 1, 6, "'+' needs numbers, got null");
    check_error("rfm.m == \"500\"", 1, 7, "cannot compare number with string");
    check_error("rfm.m != true", 1, 7, "cannot compare number with bool");
    check_error("rfm.m < \"5\"", 1, 7, "cannot compare number with string");
    check_error("lifecycle >= 3", 1, 11, "cannot compare string with number");
    check_error("vip < true", 1, 5, "'<' needs numbers or strings, got bool");
    check_error("1 > b", 1, 3, "'>' needs numbers or strings, got bool");
    check_error("rfm.m < null", 1, 7,
                "cannot order null (use '== null' or '!= null')");
    check_error("null >= 1", 1, 6,
                "cannot order null (use '== null' or '!= null')");
    check_error("rfm.m and vip", 1, 7, "'and' needs conditions, got number");
    check_error("vip or s", 1, 5, "'or' needs conditions, got string");
    check_error("vip and null", 1, 5, "'and' needs conditions, got null");
    check_error("not rfm.m", 1, 1, "'not' needs conditions, got number");
    check_error("rfm.m + 1", 1, 1, "a rule must be a condition, got number");
    check_error("(lifecycle)", 1, 1, "a rule must be a condition, got string");
    check_error("null", 1, 1, "a rule must be a condition, got null");
    check_error("lifecycle in [\"a\", 1]", 1, 20,
                "cannot compare string with number");
    check_error("rfm.m not in [1, -2, \"3\"]", 1, 22,
                "cannot compare number with string");
    check_error("vip in [true, 0]", 1, 15, "cannot compare bool with number");
    /* every operation that some value could make meaningful is accepted */
    cp_expr_free(parse("a + 1 > 2 and a == 1 and a < \"x\" and -a < 0"));
    cp_expr_free(parse("a in [1, \"x\", true, null] and a and not a"));
    cp_expr_free(parse("rfm.m in [1, null] and lifecycle != null"));
    cp_expr_free(parse("(1 / 0) == null and untyped + 1 > nulltype"));
    cp_expr_free(parse("a"));
}

/* ---------------------------------------------------------------------------
 * Syntax errors, each with its place
 * ------------------------------------------------------------------------ */

static void test_syntax_errors(void **unused)
{
    (void)unused;
    check_error("profile.country in [\"DE\", \"AT\" \"CH\"]", 1, 32,
                "expected ']' after list");
    check_error("profil.country == \"DE\"", 1, 1,
                "unknown field 'profil.country'");
    check_error("rfm.m > 1 and rfm.x > 1", 1, 15, "unknown field 'rfm.x'");
    check_error("rfm.m >= ", 1, 10, "expected a value, got end of rule");
    check_error("rfm.m >= )", 1, 10, "expected a value, got ')'");
    check_error("vip and", 1, 8, "expected a value, got end of rule");
    check_error("()", 1, 2, "expected a value, got ')'");
    check_error("[1] == 1", 1, 1, "expected a value, got '['");
    check_error("(rfm.m > 1", 1, 11, "expected ')' to close '(' at 1:1");
    check_error("vip and ((vip) or (vip and vip)", 1, 32,
                "expected ')' to close '(' at 1:9");
    check_error("rfm.m > 1)", 1, 10,
                "expected an operator or end of rule, got ')'");
    check_error("vip vip", 1, 5,
                "expected an operator or end of rule, got 'vip'");
    check_error("1 < 2 < 3", 1, 7, "comparisons cannot be chained (use 'and')");
    check_error("1 == 1 == true", 1, 8,
                "comparisons cannot be chained (use 'and')");
    check_error("s in [\"a\"] in [true]", 1, 12,
                "comparisons cannot be chained (use 'and')");
    check_error("n > 1 not in [true]", 1, 7,
                "comparisons cannot be chained (use 'and')");
    check_error("s not \"a\"", 1, 7, "expected 'in' after 'not'");
    check_error("s not", 1, 6, "expected 'in' after 'not'");
    check_error("s in \"a\"", 1, 6, "expected '[' after 'in'");
    check_error("s in [lifecycle]", 1, 7,
                "list items must be literals, got 'lifecycle'");
    check_error("n in [(1)]", 1, 7, "list items must be literals, got '('");
    check_error("n in [1 + 1]", 1, 9, "expected ']' after list");
    check_error("n in [-\"a\"]", 1, 8,
                "list items must be literals, got '\"a\"'");
    check_error("s in [\"a\",]", 1, 11, "list items must be literals, got ']'");
    check_error("s in [\"a\"", 1, 10, "expected ']' after list");
    check_error("s in [\"a\",", 1, 11, "expected ']' after list");
    check_error("s in [", 1, 7, "expected ']' after list");
    check_error("s = \"a\"", 1, 3, "unexpected '=' (use '==')");
    check_error("!vip", 1, 1, "unexpected '!' (use 'not' or '!=')");
    check_error("vip && vip", 1, 5, "unexpected '&' (use 'and')");
    check_error("vip || vip", 1, 5, "unexpected '|' (use 'or')");
    check_error("s == 'a'", 1, 6,
                "unexpected \"'\" (strings use double quotes)");
    check_error("s == \"a\" # comment", 1, 10, "unexpected character '#'");
    check_error("rfm.m \xe2\x89\xa5 1", 1, 7, "unexpected character U+2265");
    check_error("vip or \xf0\x9f\x98\x80", 1, 8,
                "unexpected character U+1F600");
    check_error("vip \xff", 1, 5, "unexpected byte '\\xff'");
    check_error("vip \xc3", 1, 5, "unexpected byte '\\xc3'");
    check_error_len("vip\0", 4, "1:4: unexpected byte '\\x00'", 1, 4);
    check_error("vip AND vip", 1, 5,
                "expected an operator or end of rule, got 'AND' (keywords are "
                "lower case: 'and')");
    check_error("NOT vip", 1, 1,
                "unknown field 'NOT' (keywords are lower case: 'not')");
    check_error("vip == True", 1, 8,
                "unknown field 'True' (keywords are lower case: 'true')");
    check_error("rfm.", 1, 5, "expected a name after '.'");
    check_error("rfm.1 > 0", 1, 5, "expected a name after '.'");
    check_error("rfm..m > 0", 1, 5, "expected a name after '.'");
    check_error("rfm.m > 1.", 1, 9, "invalid number '1.'");
    check_error("rfm.m > 1.e5", 1, 9, "invalid number '1.e5'");
    check_error("rfm.m > 5abc", 1, 9, "invalid number '5abc'");
    check_error("rfm.m > 1e", 1, 9, "invalid number '1e'");
    check_error("rfm.m > 1e+", 1, 9, "invalid number '1e'");
    check_error("rfm.m > 0x10", 1, 9, "invalid number '0x10'");
    check_error("rfm.m > 1.2.3", 1, 9, "invalid number '1.2.3'");
    check_error("rfm.m > .5", 1, 9, "unexpected character '.'");
    check_error("rfm.m > 1e999", 1, 9, "number out of range '1e999'");
    check_error("rfm.m > -1e999", 1, 10, "number out of range '1e999'");
    check_error("", 1, 1, "empty rule");
    check_error("  \n\t ", 1, 1, "empty rule");
    /* a long name is cut in the message */
    check_error("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijXYZ", 1, 1,
                "unknown field "
                "'abcdefghijabcdefghijabcdefghijabcdefghijabcdefgh...'");
}

static void test_error_places(void **unused)
{
    (void)unused;
    /* lines count '\n'; columns restart on each line */
    check_error("vip and\n  rfm.m > \"x\"", 2, 9,
                "cannot compare number with string");
    check_error("vip and\r\n(rfm.m > 1 or\n   n\n   > 1 > 2)", 4, 8,
                "comparisons cannot be chained (use 'and')");
    /* columns count characters, offsets bytes */
    const char *text = "s == \"K\xc3\xb6ln\" and rfm.m > \"x\"";
    cp_expr_err_t err;
    assert_null(cp_expr_parse(text, strlen(text), resolve, NULL, &err));
    assert_string_equal(err.message, "1:23: cannot compare number with string");
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 23);
    assert_int_equal(err.offset, 23);
    /* an error without place */
    assert_null(cp_expr_parse(NULL, 5, resolve, NULL, &err));
    assert_string_equal(err.message, "invalid argument");
    assert_int_equal(err.line, 0);
    assert_int_equal(err.column, 0);
    /* err may be NULL */
    assert_null(cp_expr_parse("vip <", 5, resolve, NULL, NULL));
    /* without a resolver every name is unknown */
    assert_null(cp_expr_parse("vip", 3, NULL, NULL, &err));
    assert_string_equal(err.message, "1:1: unknown field 'vip'");
    /* NULL text with length 0 is the empty rule */
    assert_null(cp_expr_parse(NULL, 0, resolve, NULL, &err));
    assert_string_equal(err.message, "1:1: empty rule");
    /* only len bytes are read: the rest of the buffer does not count */
    cp_expr_t *expr = parse_len("vip garbage", 3);
    slots[S_VIP] = cp_expr_bool(1);
    assert_int_equal(cp_expr_eval(expr, slots, N_SLOTS), 1);
    cp_expr_free(expr);
}

/* ---------------------------------------------------------------------------
 * Limits: the limit is accepted, one more is an error
 * ------------------------------------------------------------------------ */

static void test_limit_text(void **unused)
{
    (void)unused;
    /* "vip" padded with spaces */
    char *text = repeat("vip", " ", CP_EXPR_MAX_TEXT - 3, "");
    assert_int_equal(strlen(text), CP_EXPR_MAX_TEXT);
    slots[S_VIP] = cp_expr_bool(1);
    assert_int_equal(eval(text), 1);
    free(text);
    text = repeat("vip", " ", CP_EXPR_MAX_TEXT - 2, "");
    check_error(text, 1, 1, "rule too long (4097 bytes, max 4096)");
    free(text);
}

static void test_limit_depth(void **unused)
{
    (void)unused;
    slots[S_VIP] = cp_expr_bool(1);
    char *text = repeat("", "(", 64, "vip");
    char *full = repeat(text, ")", 64, "");
    assert_int_equal(eval(full), 1);
    free(text);
    free(full);
    text = repeat("", "(", 65, "vip");
    full = repeat(text, ")", 65, "");
    check_error(full, 1, 65, "nesting too deep (max 64)");
    free(text);
    free(full);

    text = repeat("", "not ", 64, "vip");
    assert_int_equal(eval(text), 1); /* even number of nots */
    free(text);
    text = repeat("", "not ", 65, "vip");
    check_error(text, 1, 257, "nesting too deep (max 64)");
    free(text);

    slots[S_N] = cp_expr_num(5);
    text = repeat("", "- ", 64, "n == 5");
    assert_int_equal(eval(text), 1);
    free(text);
    text = repeat("", "- ", 65, "n == -5");
    check_error(text, 1, 129, "nesting too deep (max 64)");
    free(text);

    /* parentheses and prefix operators share the one bound */
    text = repeat("", "not (", 32, "vip");
    full = repeat(text, ")", 32, "");
    assert_int_equal(eval(full), 1);
    free(text);
    free(full);
    text = repeat("not ", "not (", 32, "vip");
    full = repeat(text, ")", 32, "");
    /* levels 1 + 2 * 32: the 32nd '(' is the 65th */
    check_error(full, 1, 164, "nesting too deep (max 64)");
    free(text);
    free(full);
}

/* n + (n + (n + ... (n) ...)) nested 63 deep: 64 times n. */
static void test_deep_nesting_evaluates(void **unused)
{
    (void)unused;
    char *text = repeat("", "n + (", 63, "n");
    char *full = repeat(text, ")", 63, " == 128");
    slots[S_N] = cp_expr_num(2);
    assert_int_equal(eval(full), 1);
    slots[S_N] = cp_expr_num(1);
    assert_int_equal(eval(full), 0);
    slots[S_N] = cp_expr_null();
    assert_int_equal(eval(full), 0);
    free(text);
    free(full);
    /* deep right-nested logic: vip and (vip and (... b)) */
    text = repeat("", "vip and (", 63, "b");
    full = repeat(text, ")", 63, "");
    slots[S_VIP] = cp_expr_bool(1);
    slots[S_B] = cp_expr_bool(1);
    assert_int_equal(eval(full), 1);
    slots[S_B] = cp_expr_bool(0);
    assert_int_equal(eval(full), 0);
    free(text);
    free(full);
    text = repeat("", "b or (", 63, "vip");
    full = repeat(text, ")", 63, "");
    slots[S_VIP] = cp_expr_bool(1);
    assert_int_equal(eval(full), 1);
    free(text);
    free(full);
}

static void test_limit_nodes(void **unused)
{
    (void)unused;
    /* not + 255 n + 254 '+' + '==' + 0 = 512 nodes */
    char *text = repeat("not n", " + n", 254, " == 0");
    slots[S_N] = cp_expr_num(1);
    assert_int_equal(eval(text), 1); /* 255 != 0 */
    slots[S_N] = cp_expr_num(0);
    assert_int_equal(eval(text), 0);
    free(text);
    /* one more not: the final 0 is node 513 */
    text = repeat("not not n", " + n", 254, " == 0");
    size_t len = strlen(text);
    char msg[64];
    snprintf(msg, sizeof msg, "1:%zu: too many nodes (max 512)", len);
    check_error_len(text, len, msg, 1, (int)len);
    free(text);
    /* a long or-chain: 256 names + 255 'or' = 511 nodes */
    text = repeat("vip", " or vip", 255, "");
    cp_expr_t *expr = parse(text);
    slots[S_VIP] = cp_expr_bool(0);
    assert_int_equal(cp_expr_eval(expr, slots, N_SLOTS), 0);
    cp_expr_free(expr);
    free(text);
}

static void test_limit_list(void **unused)
{
    (void)unused;
    char *text = repeat("n in [0", ", 0", CP_EXPR_MAX_LIST - 2, ", 7]");
    slots[S_N] = cp_expr_num(7);
    assert_int_equal(eval(text), 1);
    slots[S_N] = cp_expr_num(8);
    assert_int_equal(eval(text), 0);
    free(text);
    text = repeat("n in [0", ", 0", CP_EXPR_MAX_LIST - 1, ", 7]");
    /* the 257th item: "n in [0" is 7 bytes, 255 ", 0", then ", 7" */
    check_error(text, 1, 775, "list too long (max 256 items)");
    free(text);
}

static void test_limit_string(void **unused)
{
    (void)unused;
    char *text = repeat("s == \"", "x", CP_EXPR_MAX_STRING, "\"");
    char *val = repeat("", "x", CP_EXPR_MAX_STRING, "");
    slots[S_S] = cp_expr_str(val, CP_EXPR_MAX_STRING);
    assert_int_equal(eval(text), 1);
    free(text);
    text = repeat("s == \"", "x", CP_EXPR_MAX_STRING + 1, "\"");
    check_error(text, 1, 6, "string too long (max 256 bytes)");
    free(text);
    free(val);
    /* decoded bytes count: 128 x "é" is 256 bytes, 129 is too many */
    text = repeat("s == \"", "\xc3\xa9", 128, "\"");
    val = repeat("", "\xc3\xa9", 128, "");
    slots[S_S] = cp_expr_str(val, 256);
    assert_int_equal(eval(text), 1);
    free(text);
    text = repeat("s == \"", "\\u00e9", 128, "\"");
    assert_int_equal(eval(text), 1);
    free(text);
    free(val);
    text = repeat("s == \"", "\xc3\xa9", 129, "\"");
    check_error(text, 1, 6, "string too long (max 256 bytes)");
    free(text);
    /* 256 escapes (512 source bytes) decode to 256 bytes */
    text = repeat("s == \"", "\\n", CP_EXPR_MAX_STRING, "\"");
    val = repeat("", "\n", CP_EXPR_MAX_STRING, "");
    slots[S_S] = cp_expr_str(val, CP_EXPR_MAX_STRING);
    assert_int_equal(eval(text), 1);
    free(text);
    free(val);
}

/* ---------------------------------------------------------------------------
 * The compiled rule and evaluation
 * ------------------------------------------------------------------------ */

static void test_slots(void **unused)
{
    (void)unused;
    cp_expr_t *expr = parse("true");
    assert_int_equal(cp_expr_slots_used(expr), 0);
    assert_int_equal(cp_expr_eval(expr, NULL, 0), 1);
    cp_expr_free(expr);

    expr = parse("n == null and vip == null");
    assert_int_equal(cp_expr_slots_used(expr), S_N + 1); /* S_N > S_VIP */
    /* slots beyond n_slots read as null */
    assert_int_equal(cp_expr_eval(expr, NULL, 0), 1);
    slots[S_N] = cp_expr_num(1);
    slots[S_VIP] = cp_expr_bool(1);
    assert_int_equal(cp_expr_eval(expr, slots, N_SLOTS), 0);
    assert_int_equal(cp_expr_eval(expr, slots, S_N), 0); /* vip is 1 */
    assert_int_equal(cp_expr_eval(expr, slots, S_VIP), 1);
    assert_int_equal(cp_expr_eval(expr, slots, 0), 1);
    /* a value of an unknown type reads as null */
    slots[S_N].type = (cp_expr_type_t)99;
    slots[S_VIP].type = CP_EXPR_ANY;
    assert_int_equal(cp_expr_eval(expr, slots, N_SLOTS), 1);
    cp_expr_free(expr);
    cp_expr_free(NULL);

    /* one resolver call per occurrence of a name */
    resolve_calls = 0;
    expr = parse("n > 1 or n < -1 or vip");
    assert_int_equal(resolve_calls, 3);
    cp_expr_free(expr);
}

static void test_rule_owns_its_strings(void **unused)
{
    (void)unused;
    char *text = strdup("s in [\"alpha\", \"b\\u00e9ta\"] or s == \"gamma\"");
    assert_non_null(text);
    cp_expr_t *expr = parse(text);
    memset(text, 'x', strlen(text));
    free(text);
    slots[S_S] = cp_expr_str("b\xc3\xa9ta", 5);
    assert_int_equal(cp_expr_eval(expr, slots, N_SLOTS), 1);
    slots[S_S] = cp_expr_str("gamma", 5);
    assert_int_equal(cp_expr_eval(expr, slots, N_SLOTS), 1);
    slots[S_S] = cp_expr_str("alph", 4);
    assert_int_equal(cp_expr_eval(expr, slots, N_SLOTS), 0);
    cp_expr_free(expr);
}

/* ---------------------------------------------------------------------------
 * Realistic rules
 * ------------------------------------------------------------------------ */

static void test_rule_vip_de(void **unused)
{
    (void)unused;
    cp_expr_t *expr = parse("profile.country in [\"DE\", \"AT\", \"CH\"] and "
                            "rfm.m >= 500.00 and not (lifecycle == "
                            "\"churned\")");
    static const struct {
        const char *country; /* NULL: absent */
        double m;
        const char *life; /* NULL: absent */
        int member;
    } cases[] = {
        {"DE", 600.0, "active", 1},  {"FR", 600.0, "active", 0},
        {"AT", 499.99, "active", 0}, {"CH", 500.0, "active", 1},
        {"CH", 500.0, "churned", 0}, {"CH", 500.0, NULL, 1},
        {NULL, 900.0, "active", 0},  {"de", 900.0, "active", 0},
        {"DE ", 900.0, "active", 0}, {"AT", 1e9, "at_risk", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reset_slots(NULL);
        if (cases[i].country)
            slots[S_COUNTRY] =
                cp_expr_str(cases[i].country, strlen(cases[i].country));
        slots[S_RFM_M] = cp_expr_num(cases[i].m);
        if (cases[i].life)
            slots[S_LIFE] = cp_expr_str(cases[i].life, strlen(cases[i].life));
        if (cp_expr_eval(expr, slots, N_SLOTS) != cases[i].member)
            fail_msg("case %zu: expected %d", i, cases[i].member);
    }
    /* rfm.m missing: not a member */
    reset_slots(NULL);
    slots[S_COUNTRY] = cp_expr_str("DE", 2);
    assert_int_equal(cp_expr_eval(expr, slots, N_SLOTS), 0);
    cp_expr_free(expr);
}

static void test_rule_big_cart(void **unused)
{
    (void)unused;
    cp_expr_t *expr = parse("browsing.cart_value * 2 > 100 or "
                            "satisfaction.csat_avg < 2.5");
    static const struct {
        int has_cart, has_csat;
        double cart, csat;
        int member;
    } cases[] = {
        {1, 0, 60.0, 0, 1}, {1, 0, 50.0, 0, 0},   {0, 1, 0, 2.4, 1},
        {0, 0, 0, 0, 0},    {1, 1, 10.0, 2.5, 0}, {1, 1, 50.01, 4.0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reset_slots(NULL);
        if (cases[i].has_cart)
            slots[S_CART] = cp_expr_num(cases[i].cart);
        if (cases[i].has_csat)
            slots[S_CSAT] = cp_expr_num(cases[i].csat);
        if (cp_expr_eval(expr, slots, N_SLOTS) != cases[i].member)
            fail_msg("case %zu: expected %d", i, cases[i].member);
    }
    cp_expr_free(expr);
}

static void test_rule_multiline(void **unused)
{
    (void)unused;
    slots[S_LIFE] = cp_expr_str("at_risk", 7);
    slots[S_RFM_M] = cp_expr_num(120.5);
    slots[S_CSAT] = cp_expr_null();
    assert_rule_true("lifecycle in [\"at_risk\", \"hibernating\"]\n"
                     "  and rfm.m % 100 > 20\n"
                     "  and (satisfaction.csat_avg == null\n"
                     "       or satisfaction.csat_avg <= 3)");
    slots[S_CSAT] = cp_expr_num(3.5);
    assert_rule_false("lifecycle in [\"at_risk\", \"hibernating\"]\n"
                      "  and rfm.m % 100 > 20\n"
                      "  and (satisfaction.csat_avg == null\n"
                      "       or satisfaction.csat_avg <= 3)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup(f, reset_slots)
        T(test_arithmetic),
        T(test_precedence),
        T(test_comparisons),
        T(test_in_lists),
        T(test_null_semantics),
        T(test_null_results),
        T(test_mistyped_values),
        T(test_membership_is_true_only),
        T(test_string_escapes),
        T(test_unicode_strings),
        T(test_string_errors),
        T(test_type_errors),
        T(test_syntax_errors),
        T(test_error_places),
        T(test_limit_text),
        T(test_limit_depth),
        T(test_deep_nesting_evaluates),
        T(test_limit_nodes),
        T(test_limit_list),
        T(test_limit_string),
        T(test_slots),
        T(test_rule_owns_its_strings),
        T(test_rule_vip_de),
        T(test_rule_big_cart),
        T(test_rule_multiline),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
