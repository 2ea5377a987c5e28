/*
 * expr.c - parser, type checker, compiler and evaluator of the segment rule
 * language (docs/segments.md is the reference; expr.h the contract).
 *
 * The parser is recursive descent, one function per precedence level, and
 * emits postfix code as it goes: operands push values on a stack, operators
 * pop theirs and push the result. `and`/`or` short-circuit with forward
 * jumps (relative, so code can be moved), which keeps evaluation a single
 * loop over at most 2 * CP_EXPR_MAX_NODES instructions. Recursion while
 * parsing is bounded by CP_EXPR_MAX_DEPTH; evaluation does not recurse.
 *
 * Static types are sets of the four run-time types: a field of type number
 * is "number or null", a profile attribute is "anything". An operation is a
 * parse error only when no value of those sets could make it meaningful.
 *
 * Pure: no I/O (error messages are formatted by hand, not with stdio), no
 * clock, no global state.
 */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"

/* ---------------------------------------------------------------------------
 * Compiled form
 * ------------------------------------------------------------------------ */

typedef enum {
    OP_CONST, /* push consts[arg] */
    OP_NULL,  /* push null */
    OP_SLOT,  /* push slots[arg] */
    OP_ADD,   /* a b -> a + b; likewise SUB MUL DIV MOD */
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_MOD,
    OP_NEG, /* a -> -a */
    OP_EQ,  /* a b -> a == b; likewise NE LT LE GT GE */
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_ISNULL,  /* a -> a == null */
    OP_NOTNULL, /* a -> a != null */
    OP_IN,      /* a -> a in consts[arg .. arg + n) */
    OP_NOTIN,
    OP_NOT, /* a -> not a */
    OP_AND, /* a not true: a := false, skip arg instructions; else pop */
    OP_OR,  /* a true: skip arg instructions; else pop */
    OP_BOOL /* a -> (a is true) */
} op_t;

typedef struct {
    uint8_t op;   /* op_t */
    uint16_t n;   /* OP_IN, OP_NOTIN: list length */
    uint32_t arg; /* const index, slot id, list start or jump length */
} instr_t;

/* One allocation: this header, then consts, code and string bytes. */
struct cp_expr_s {
    const cp_expr_value_t *consts; /* strings point into this object */
    const instr_t *code;
    size_t n_code;
    size_t n_slots;   /* max slot id + 1 */
    size_t max_stack; /* <= CP_EXPR_MAX_NODES: only operands push */
};

/* ---------------------------------------------------------------------------
 * Static types: sets of run-time types
 * ------------------------------------------------------------------------ */

#define TS_NULL 1u
#define TS_BOOL 2u
#define TS_NUM 4u
#define TS_STR 8u
#define TS_ANY (TS_NULL | TS_BOOL | TS_NUM | TS_STR)

/* Name of a type set in messages; null only counts when alone. */
static const char *ts_name(unsigned ts)
{
    switch (ts & ~TS_NULL) {
    case 0:
        return "null";
    case TS_BOOL:
        return "bool";
    case TS_NUM:
        return "number";
    case TS_STR:
        return "string";
    default:
        return "any";
    }
}

/* ---------------------------------------------------------------------------
 * Error messages (a tiny formatter: scoring/ does not use stdio)
 * ------------------------------------------------------------------------ */

/* Longest quoted source text in a message, before "...". */
#define QUOTE_MAX 48

typedef struct {
    char *buf;
    size_t cap, len; /* len < cap; buf[len] == '\0' */
} msg_t;

static void msg_putc(msg_t *m, char c)
{
    if (m->len + 1 < m->cap) {
        m->buf[m->len++] = c;
        m->buf[m->len] = '\0';
    }
}

static void msg_puts(msg_t *m, const char *s)
{
    while (*s)
        msg_putc(m, *s++);
}

static void msg_putz(msg_t *m, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        msg_putc(m, tmp[--n]);
}

/* Bytes outside printable ASCII as \xHH, so a message is always plain
 * ASCII whatever the rule contains. */
static void msg_put_escaped(msg_t *m, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) {
            msg_putc(m, (char)c);
            continue;
        }
        msg_puts(m, "\\x");
        msg_putc(m, hex[c >> 4]);
        msg_putc(m, hex[c & 15]);
    }
}

/* 'text', cut to QUOTE_MAX bytes with "..." */
static void msg_quote(msg_t *m, const char *s, size_t n)
{
    msg_putc(m, '\'');
    msg_put_escaped(m, s, n > QUOTE_MAX ? QUOTE_MAX : n);
    if (n > QUOTE_MAX)
        msg_puts(m, "...");
    msg_putc(m, '\'');
}

/* Formats fmt into m. Directives: %s C string, %z size_t, %q quoted
 * (const char *, size_t), %%. */
static void msg_vformat(msg_t *m, const char *fmt, va_list ap)
{
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            msg_putc(m, *f);
            continue;
        }
        switch (*++f) {
        case 's':
            msg_puts(m, va_arg(ap, const char *));
            break;
        case 'z':
            msg_putz(m, va_arg(ap, size_t));
            break;
        case 'q': {
            const char *s = va_arg(ap, const char *);
            msg_quote(m, s, va_arg(ap, size_t));
            break;
        }
        default:
            assert(*f == '%');
            msg_putc(m, '%');
        }
    }
}

/* Line and column (1-based, columns in UTF-8 code points) of offset. */
static void text_place(const char *text, size_t offset, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < offset; i++) {
        unsigned char b = (unsigned char)text[i];
        if (b == '\n') {
            l++;
            c = 1;
        } else if ((b & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* ---------------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at s (n bytes available) and
 * its code point in *cp; 0 if ill-formed (overlong, surrogate, > U+10FFFF,
 * truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, c = s[0] & 0x1fu, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, c = s[0] & 0x0fu, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, c = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Writes cp (a valid scalar value) as UTF-8 to out; returns its length. */
static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ---------------------------------------------------------------------------
 * Parser state
 * ------------------------------------------------------------------------ */

typedef enum {
    T_EOF,
    T_NUM,
    T_STR,
    T_NAME,
    T_TRUE,
    T_FALSE,
    T_NULL,
    T_AND,
    T_OR,
    T_NOT,
    T_IN,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PERCENT
} tok_kind_t;

typedef struct {
    tok_kind_t kind;
    size_t pos, end; /* source bytes [pos, end) */
    double num;      /* T_NUM */
    size_t str_len;  /* T_STR: decoded bytes at the arena's free end */
} tok_t;

/* A parsed sub-expression. */
typedef struct {
    unsigned ts;  /* static type set */
    int null_lit; /* exactly the literal null (code: one OP_NULL) */
    size_t pc;    /* its first instruction */
    size_t pos;   /* source offset of its first token */
} sub_t;

/* A constant; str_off locates a string in the arena until the final
 * object gives it a pointer. */
typedef struct {
    cp_expr_value_t val;
    size_t str_off;
} pconst_t;

/* and/or emit two instructions, every other node at most one. */
#define CODE_CAP (2 * CP_EXPR_MAX_NODES)

typedef struct {
    const char *text;
    size_t len;
    cp_expr_resolve_fn resolve;
    void *ud;
    cp_expr_err_t *err;
    tok_t tok; /* current token */
    int depth;
    int nodes;
    size_t n_slots;
    instr_t code[CODE_CAP];
    size_t n_code;
    pconst_t consts[CP_EXPR_MAX_NODES];
    size_t n_consts;
    /* Decoded string literals. Each comes from its own part of the text
     * and is never longer than its source, so len + 1 bytes always suffice
     * (the + 1 is for strtod's NUL). Bytes past arena_len are scratch. */
    char *arena;
    size_t arena_len;
} parser_t;

/* Fills *err (if not NULL): "line:column: " and the formatted text; with
 * text NULL the error has no place (line = column = 0, no prefix). */
static void err_vset(cp_expr_err_t *err, const char *text, size_t pos,
                     const char *fmt, va_list ap)
{
    if (err == NULL)
        return;
    msg_t m = {err->message, sizeof err->message, 0};
    err->message[0] = '\0';
    err->offset = pos;
    err->line = err->column = 0;
    if (text != NULL) {
        text_place(text, pos, &err->line, &err->column);
        msg_putz(&m, (size_t)err->line);
        msg_putc(&m, ':');
        msg_putz(&m, (size_t)err->column);
        msg_puts(&m, ": ");
    }
    msg_vformat(&m, fmt, ap);
}

static void err_set(cp_expr_err_t *err, const char *text, size_t pos,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, text, pos, fmt, ap);
    va_end(ap);
}

/* Records the error at byte pos of the rule; returns -1. Parsing stops at
 * the first error, so there is never a second one. */
static int fail(parser_t *p, size_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(p->err, p->text, pos, fmt, ap);
    va_end(ap);
    return -1;
}

/* Message text of a token: 'source' or "end of rule". Returns a pointer
 * into buf. */
static const char *tok_desc(const parser_t *p, const tok_t *tok, char *buf,
                            size_t cap)
{
    if (tok->kind == T_EOF)
        return "end of rule";
    msg_t m = {buf, cap, 0};
    buf[0] = '\0';
    msg_quote(&m, p->text + tok->pos, tok->end - tok->pos);
    return buf;
}

#define DESC_CAP (QUOTE_MAX * 4 + 8)

/* ---------------------------------------------------------------------------
 * Lexer
 * ------------------------------------------------------------------------ */

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident(int c)
{
    return is_ident_start(c) || is_digit(c);
}

static int hex_value(int c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static const struct {
    const char *word;
    tok_kind_t kind;
} keywords[] = {
    {"and", T_AND},   {"or", T_OR},       {"not", T_NOT},   {"in", T_IN},
    {"true", T_TRUE}, {"false", T_FALSE}, {"null", T_NULL},
};

#define N_KEYWORDS (sizeof keywords / sizeof keywords[0])

/* Index of the keyword s[0..n) equals, ignoring ASCII case if icase; -1. */
static int keyword_find(const char *s, size_t n, int icase)
{
    for (size_t k = 0; k < N_KEYWORDS; k++) {
        const char *w = keywords[k].word;
        if (strlen(w) != n)
            continue;
        size_t i = 0;
        for (; i < n; i++) {
            int c = (unsigned char)s[i];
            if (icase && c >= 'A' && c <= 'Z')
                c += 'a' - 'A';
            if (c != w[i])
                break;
        }
        if (i == n)
            return (int)k;
    }
    return -1;
}

/* The keyword a T_NAME token spells in another case ("AND"), or NULL. */
static const char *keyword_miscased(const parser_t *p, const tok_t *tok)
{
    const char *name = p->text + tok->pos;
    size_t n = tok->end - tok->pos;
    if (tok->kind != T_NAME || memchr(name, '.', n) != NULL)
        return NULL;
    int k = keyword_find(name, n, 1);
    return k >= 0 ? keywords[k].word : NULL;
}

/* \uXXXX at s[i] (s[i] == '\\', s[i + 1] == 'u'): the 16-bit unit, or -1. */
static long hex4(const parser_t *p, size_t i)
{
    if (p->len - i < 6)
        return -1;
    long v = 0;
    for (size_t k = i + 2; k < i + 6; k++) {
        int h = hex_value((unsigned char)p->text[k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* The escape at text[*i] (a backslash, not the last byte) into out + *n;
 * advances *i and *n. */
static int lex_escape(parser_t *p, size_t *i, char *out, size_t *n)
{
    size_t at = *i;
    char c = p->text[at + 1];
    const char *simple = strchr("\"\\nt", c);
    if (c != '\0' && simple != NULL) {
        static const char decoded[] = "\"\\\n\t";
        out[(*n)++] = decoded[simple - "\"\\nt"];
        *i = at + 2;
        return 0;
    }
    if (c != 'u')
        return fail(p, at, "invalid escape %q", p->text + at, (size_t)2);
    long u = hex4(p, at);
    if (u < 0)
        return fail(p, at, "invalid \\u escape (4 hex digits expected)");
    size_t used = 6;
    uint32_t cp = (uint32_t)u;
    if (u >= 0xdc00 && u <= 0xdfff)
        return fail(p, at, "invalid \\u escape (unpaired surrogate)");
    if (u >= 0xd800 && u <= 0xdbff) {
        long lo = -1;
        if (p->len - at >= 12 && p->text[at + 6] == '\\' &&
            p->text[at + 7] == 'u')
            lo = hex4(p, at + 6);
        if (lo < 0xdc00 || lo > 0xdfff)
            return fail(p, at, "invalid \\u escape (unpaired surrogate)");
        cp = 0x10000 + (((uint32_t)u - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
        used = 12;
    }
    if (cp == 0)
        return fail(p, at, "\\u0000 is not allowed");
    *n += utf8_encode(cp, out + *n);
    *i = at + used;
    return 0;
}

/* A string literal starting at the quote at pos, decoded into the free end
 * of the arena (committed by the parser when it uses the token). */
static int lex_string(parser_t *p, size_t pos, tok_t *tok)
{
    const unsigned char *s = (const unsigned char *)p->text;
    char *out = p->arena + p->arena_len;
    size_t i = pos + 1, n = 0;
    for (;;) {
        if (i >= p->len || s[i] == '\n')
            return fail(p, pos, "unterminated string");
        unsigned c = s[i];
        if (c == '"')
            break;
        if (c == '\\') {
            if (i + 1 >= p->len)
                return fail(p, pos, "unterminated string");
            if (lex_escape(p, &i, out, &n))
                return -1;
        } else if (c < 0x20 || c == 0x7f) {
            return fail(p, i, "control character in string (use \\n or \\t)");
        } else {
            uint32_t cp;
            size_t k = utf8_decode(s + i, p->len - i, &cp);
            if (k == 0)
                return fail(p, i, "invalid UTF-8 in string");
            memcpy(out + n, s + i, k);
            n += k;
            i += k;
        }
        if (n > CP_EXPR_MAX_STRING)
            return fail(p, pos, "string too long (max %z bytes)",
                        (size_t)CP_EXPR_MAX_STRING);
    }
    tok->kind = T_STR;
    tok->end = i + 1;
    tok->str_len = n;
    return 0;
}

/* End of the run of name and number characters at i, for messages. */
static size_t junk_end(const parser_t *p, size_t i)
{
    while (i < p->len &&
           (is_ident((unsigned char)p->text[i]) || p->text[i] == '.'))
        i++;
    return i;
}

/* Skips digits from i; returns the new index. */
static size_t skip_digits(const parser_t *p, size_t i)
{
    while (i < p->len && is_digit((unsigned char)p->text[i]))
        i++;
    return i;
}

/* digits ["." digits] [("e" | "E") ["+" | "-"] digits] */
static int lex_number(parser_t *p, size_t pos, tok_t *tok)
{
    const char *s = p->text;
    size_t i = skip_digits(p, pos);
    int ok = 1;
    if (i < p->len && s[i] == '.') {
        size_t j = skip_digits(p, i + 1);
        ok = j > i + 1;
        i = j;
    }
    if (ok && i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t j = skip_digits(p, i);
        ok = j > i;
        i = j;
    }
    if (ok && i < p->len && (is_ident((unsigned char)s[i]) || s[i] == '.'))
        ok = 0;
    if (!ok) {
        size_t end = junk_end(p, pos);
        return fail(p, pos, "invalid number %q", s + pos, end - pos);
    }
    /* strtod needs a NUL: copy to the arena's scratch end. The text is
     * known to be a plain decimal number, which strtod reads in the "C"
     * locale custpulse runs in (it never calls setlocale). */
    char *buf = p->arena + p->arena_len;
    memcpy(buf, s + pos, i - pos);
    buf[i - pos] = '\0';
    char *endp;
    double v = strtod(buf, &endp);
    if (endp != buf + (i - pos))
        return fail(p, pos, "invalid number %q", s + pos, i - pos);
    if (!isfinite(v))
        return fail(p, pos, "number out of range %q", s + pos, i - pos);
    tok->kind = T_NUM;
    tok->end = i;
    tok->num = v;
    return 0;
}

/* ident {"." ident}; a keyword if it is one word that is one. */
static int lex_name(parser_t *p, size_t pos, tok_t *tok)
{
    const char *s = p->text;
    size_t i = pos;
    for (;;) {
        while (i < p->len && is_ident((unsigned char)s[i]))
            i++;
        if (i >= p->len || s[i] != '.')
            break;
        if (i + 1 >= p->len || !is_ident_start((unsigned char)s[i + 1]))
            return fail(p, i + 1, "expected a name after '.'");
        i++;
    }
    tok->end = i;
    int k = keyword_find(s + pos, i - pos, 0);
    tok->kind = k >= 0 ? keywords[k].kind : T_NAME;
    return 0;
}

/* A character that starts no token. */
static int lex_bad_char(parser_t *p, size_t pos)
{
    const unsigned char *s = (const unsigned char *)p->text;
    switch (s[pos]) {
    case '=':
        return fail(p, pos, "unexpected '=' (use '==')");
    case '!':
        return fail(p, pos, "unexpected '!' (use 'not' or '!=')");
    case '&':
        return fail(p, pos, "unexpected '&' (use 'and')");
    case '|':
        return fail(p, pos, "unexpected '|' (use 'or')");
    case '\'':
        return fail(p, pos, "unexpected \"'\" (strings use double quotes)");
    }
    if (s[pos] >= 0x20 && s[pos] < 0x7f)
        return fail(p, pos, "unexpected character %q", p->text + pos,
                    (size_t)1);
    uint32_t cp;
    size_t k = utf8_decode(s + pos, p->len - pos, &cp);
    if (k > 1) {
        static const char hex[] = "0123456789ABCDEF";
        char u[9] = "U+";
        size_t n = 2;
        for (int shift = cp > 0xffff ? 16 : 12; shift >= 0; shift -= 4)
            u[n++] = hex[(cp >> shift) & 15];
        u[n] = '\0';
        return fail(p, pos, "unexpected character %s", u);
    }
    return fail(p, pos, "unexpected byte %q", p->text + pos, (size_t)1);
}

/* The token starting at or after pos (whitespace skipped) into *tok. */
static int lex(parser_t *p, size_t pos, tok_t *tok)
{
    const char *s = p->text;
    while (pos < p->len && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' ||
                            s[pos] == '\r'))
        pos++;
    tok->pos = pos;
    tok->end = pos + 1;
    if (pos >= p->len) {
        tok->kind = T_EOF;
        tok->end = pos;
        return 0;
    }
    int c = (unsigned char)s[pos];
    int c2 = pos + 1 < p->len ? (unsigned char)s[pos + 1] : 0;
    if (is_digit(c))
        return lex_number(p, pos, tok);
    if (is_ident_start(c))
        return lex_name(p, pos, tok);
    if (c == '"')
        return lex_string(p, pos, tok);
    if (c2 == '=' && (c == '=' || c == '!' || c == '<' || c == '>')) {
        tok->kind = c == '=' ? T_EQ : c == '!' ? T_NE : c == '<' ? T_LE : T_GE;
        tok->end = pos + 2;
        return 0;
    }
    static const char singles[] = "()[],<>+-*/%";
    static const tok_kind_t single_kinds[] = {
        T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_COMMA, T_LT,
        T_GT,     T_PLUS,   T_MINUS,  T_STAR,   T_SLASH, T_PERCENT};
    const char *hit = c != 0 ? strchr(singles, c) : NULL;
    if (hit == NULL)
        return lex_bad_char(p, pos);
    tok->kind = single_kinds[hit - singles];
    return 0;
}

/* Moves to the next token. */
static int next(parser_t *p)
{
    return lex(p, p->tok.end, &p->tok);
}

/* The token after the current one (a string in it is not committed). */
static int peek(parser_t *p, tok_t *after)
{
    return lex(p, p->tok.end, after);
}

/* ---------------------------------------------------------------------------
 * Code emission
 * ------------------------------------------------------------------------ */

/* Counts one node at pos against CP_EXPR_MAX_NODES. */
static int add_node(parser_t *p, size_t pos)
{
    if (++p->nodes > CP_EXPR_MAX_NODES)
        return fail(p, pos, "too many nodes (max %z)",
                    (size_t)CP_EXPR_MAX_NODES);
    return 0;
}

static int depth_enter(parser_t *p, size_t pos)
{
    if (++p->depth > CP_EXPR_MAX_DEPTH)
        return fail(p, pos, "nesting too deep (max %z)",
                    (size_t)CP_EXPR_MAX_DEPTH);
    return 0;
}

/* Appends an instruction; returns its index. The node limit keeps the
 * code within CODE_CAP. */
static size_t emit(parser_t *p, op_t op, uint32_t arg)
{
    assert(p->n_code < CODE_CAP);
    instr_t *in = &p->code[p->n_code];
    in->op = (uint8_t)op;
    in->n = 0;
    in->arg = arg;
    return p->n_code++;
}

/* Adds a constant (bounded by the node limit); returns its index. */
static uint32_t add_const(parser_t *p, cp_expr_value_t val, size_t str_off)
{
    assert(p->n_consts < CP_EXPR_MAX_NODES);
    p->consts[p->n_consts].val = val;
    p->consts[p->n_consts].str_off = str_off;
    return (uint32_t)p->n_consts++;
}

/* The current literal token (number, string, true, false, null) as a
 * constant, with a leading '-' folded in; 1 if it is no literal. */
static int take_literal(parser_t *p, int negate, cp_expr_value_t *val,
                        size_t *str_off)
{
    *str_off = 0;
    switch (p->tok.kind) {
    case T_NUM:
        *val = cp_expr_num(negate ? -p->tok.num : p->tok.num);
        return 0;
    case T_STR:
        if (negate)
            return 1;
        *val = cp_expr_str(NULL, p->tok.str_len);
        *str_off = p->arena_len;
        p->arena_len += p->tok.str_len; /* commit */
        return 0;
    case T_TRUE:
    case T_FALSE:
        if (negate)
            return 1;
        *val = cp_expr_bool(p->tok.kind == T_TRUE);
        return 0;
    case T_NULL:
        if (negate)
            return 1;
        *val = cp_expr_null();
        return 0;
    default:
        return 1;
    }
}

static unsigned ts_of_value(const cp_expr_value_t *val)
{
    static const unsigned ts[] = {TS_NULL, TS_BOOL, TS_NUM, TS_STR};
    return ts[val->type];
}

/* ---------------------------------------------------------------------------
 * Type checks (errors at the operator's position)
 * ------------------------------------------------------------------------ */

static int check_cond(parser_t *p, const sub_t *s, size_t pos, const char *op)
{
    if (s->ts & TS_BOOL)
        return 0;
    return fail(p, pos, "'%s' needs conditions, got %s", op, ts_name(s->ts));
}

static int check_num(parser_t *p, const sub_t *s, size_t pos, const char *op)
{
    if (s->ts & TS_NUM)
        return 0;
    return fail(p, pos, "'%s' needs numbers, got %s", op, ts_name(s->ts));
}

/* Fails if no non-null value of a can equal one of b. */
static int check_comparable(parser_t *p, unsigned a, unsigned b, size_t pos)
{
    a &= ~TS_NULL;
    b &= ~TS_NULL;
    if (a == 0 || b == 0 || (a & b) != 0)
        return 0;
    return fail(p, pos, "cannot compare %s with %s", ts_name(a), ts_name(b));
}

/* < <= > >=: numbers or strings of one type, never the literal null. */
static int check_order(parser_t *p, const sub_t *l, const sub_t *r, size_t pos,
                       const char *op)
{
    if (l->null_lit || r->null_lit)
        return fail(p, pos, "cannot order null (use '== null' or '!= null')");
    const sub_t *side[2] = {l, r};
    for (int k = 0; k < 2; k++) {
        if (!(side[k]->ts & (TS_NUM | TS_STR)))
            return fail(p, pos, "'%s' needs numbers or strings, got %s", op,
                        ts_name(side[k]->ts));
    }
    return check_comparable(p, l->ts, r->ts, pos);
}

/* ---------------------------------------------------------------------------
 * Parser, one function per precedence level (low to high)
 * ------------------------------------------------------------------------ */

static int parse_or(parser_t *p, sub_t *out);

static const char *tok_text(tok_kind_t kind)
{
    switch (kind) {
    case T_EQ:
        return "==";
    case T_NE:
        return "!=";
    case T_LT:
        return "<";
    case T_LE:
        return "<=";
    case T_GT:
        return ">";
    case T_GE:
        return ">=";
    case T_PLUS:
        return "+";
    case T_MINUS:
        return "-";
    case T_STAR:
        return "*";
    case T_SLASH:
        return "/";
    case T_PERCENT:
        return "%";
    default:
        return "?";
    }
}

/* Field name: resolve to a slot. */
static int parse_name(parser_t *p, sub_t *out)
{
    const char *name = p->text + p->tok.pos;
    size_t n = p->tok.end - p->tok.pos;
    cp_expr_type_t type = CP_EXPR_ANY;
    int slot = p->resolve ? p->resolve(p->ud, name, n, &type) : -1;
    if (slot < 0) {
        const char *kw = keyword_miscased(p, &p->tok);
        if (kw != NULL)
            return fail(p, p->tok.pos,
                        "unknown field %q (keywords are lower case: '%s')",
                        name, n, kw);
        return fail(p, p->tok.pos, "unknown field %q", name, n);
    }
    static const unsigned field_ts[] = {[CP_EXPR_NULL] = TS_ANY,
                                        [CP_EXPR_BOOL] = TS_BOOL | TS_NULL,
                                        [CP_EXPR_NUM] = TS_NUM | TS_NULL,
                                        [CP_EXPR_STR] = TS_STR | TS_NULL,
                                        [CP_EXPR_ANY] = TS_ANY};
    out->ts = (unsigned)type <= CP_EXPR_ANY ? field_ts[type] : TS_ANY;
    emit(p, OP_SLOT, (uint32_t)slot);
    if ((size_t)slot + 1 > p->n_slots)
        p->n_slots = (size_t)slot + 1;
    return next(p);
}

/* literal | name | "(" or_expr ")" */
static int parse_primary(parser_t *p, sub_t *out)
{
    char desc[DESC_CAP];
    out->pc = p->n_code;
    out->pos = p->tok.pos;
    out->null_lit = 0;
    if (p->tok.kind == T_LPAREN) {
        size_t open = p->tok.pos;
        if (depth_enter(p, open) || next(p) || parse_or(p, out))
            return -1;
        if (p->tok.kind != T_RPAREN) {
            int line, col;
            text_place(p->text, open, &line, &col);
            return fail(p, p->tok.pos, "expected ')' to close '(' at %z:%z",
                        (size_t)line, (size_t)col);
        }
        out->pos = open;
        p->depth--;
        return next(p);
    }
    tok_kind_t k = p->tok.kind;
    if (k != T_NAME && k != T_NUM && k != T_STR && k != T_TRUE &&
        k != T_FALSE && k != T_NULL)
        return fail(p, p->tok.pos, "expected a value, got %s",
                    tok_desc(p, &p->tok, desc, sizeof desc));
    if (add_node(p, p->tok.pos))
        return -1;
    if (p->tok.kind == T_NAME)
        return parse_name(p, out);
    cp_expr_value_t val;
    size_t str_off;
    if (take_literal(p, 0, &val, &str_off))
        return fail(p, p->tok.pos, "expected a value");
    out->ts = ts_of_value(&val);
    if (val.type == CP_EXPR_NULL) {
        out->null_lit = 1;
        emit(p, OP_NULL, 0);
    } else {
        emit(p, OP_CONST, add_const(p, val, str_off));
    }
    return next(p);
}

/* "-" unary | primary. A '-' right before a number is folded into it. */
static int parse_unary(parser_t *p, sub_t *out)
{
    if (p->tok.kind != T_MINUS)
        return parse_primary(p, out);
    size_t pos = p->tok.pos;
    if (depth_enter(p, pos) || add_node(p, pos) || next(p))
        return -1;
    if (p->tok.kind == T_NUM) {
        cp_expr_value_t val;
        size_t str_off;
        if (add_node(p, p->tok.pos))
            return -1;
        (void)take_literal(p, 1, &val, &str_off);
        out->pc = emit(p, OP_CONST, add_const(p, val, str_off));
        out->ts = TS_NUM;
        if (next(p))
            return -1;
    } else {
        if (parse_unary(p, out) || check_num(p, out, pos, "-"))
            return -1;
        emit(p, OP_NEG, 0);
        out->ts = out->ts == TS_NUM ? TS_NUM : TS_NUM | TS_NULL;
    }
    out->pos = pos;
    out->null_lit = 0;
    p->depth--;
    return 0;
}

/* One level of left-associative arithmetic: operand {op operand}. */
static int parse_arith(parser_t *p, sub_t *out, int mul)
{
    if (mul ? parse_unary(p, out) : parse_arith(p, out, 1))
        return -1;
    for (;;) {
        tok_kind_t k = p->tok.kind;
        op_t op;
        if (mul && (k == T_STAR || k == T_SLASH || k == T_PERCENT))
            op = k == T_STAR ? OP_MUL : k == T_SLASH ? OP_DIV : OP_MOD;
        else if (!mul && (k == T_PLUS || k == T_MINUS))
            op = k == T_PLUS ? OP_ADD : OP_SUB;
        else
            return 0;
        size_t pos = p->tok.pos;
        sub_t rhs;
        if (check_num(p, out, pos, tok_text(k)) || add_node(p, pos) ||
            next(p) || (mul ? parse_unary(p, &rhs) : parse_arith(p, &rhs, 1)) ||
            check_num(p, &rhs, pos, tok_text(k)))
            return -1;
        emit(p, op, 0);
        out->ts = TS_NUM | TS_NULL; /* x / 0 and overflow are null */
        out->null_lit = 0;
    }
}

/* "[" [literal {"," literal}] "]" after in / not in: the list constants and
 * the OP_IN / OP_NOTIN instruction. */
static int parse_list(parser_t *p, const sub_t *lhs, op_t op)
{
    char desc[DESC_CAP];
    if (p->tok.kind != T_LBRACK)
        return fail(p, p->tok.pos, "expected '[' after 'in'");
    size_t start = p->n_consts, count = 0;
    if (next(p))
        return -1;
    if (p->tok.kind == T_RBRACK)
        goto done;
    for (;;) {
        size_t pos = p->tok.pos;
        int negate = p->tok.kind == T_MINUS;
        if (negate && (add_node(p, pos) || next(p)))
            return -1;
        cp_expr_value_t val;
        size_t str_off;
        if (p->tok.kind == T_EOF)
            return fail(p, p->tok.pos, "expected ']' after list");
        if (take_literal(p, negate, &val, &str_off))
            return fail(p, p->tok.pos, "list items must be literals, got %s",
                        tok_desc(p, &p->tok, desc, sizeof desc));
        if (++count > CP_EXPR_MAX_LIST)
            return fail(p, pos, "list too long (max %z items)",
                        (size_t)CP_EXPR_MAX_LIST);
        if (add_node(p, p->tok.pos) ||
            check_comparable(p, lhs->ts, ts_of_value(&val), pos))
            return -1;
        add_const(p, val, str_off);
        if (next(p))
            return -1;
        if (p->tok.kind == T_RBRACK)
            break;
        if (p->tok.kind != T_COMMA)
            return fail(p, p->tok.pos, "expected ']' after list");
        if (next(p))
            return -1;
    }
done:
    p->code[emit(p, op, (uint32_t)start)].n = (uint16_t)count;
    return next(p);
}

/* Whether the current token starts a comparison operator (*is_cmp) and
 * which (*op); "not" must start "not in" here. */
static int at_comparison(parser_t *p, op_t *op, int *is_cmp)
{
    static const op_t cmp_ops[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    tok_kind_t k = p->tok.kind;
    *is_cmp = 1;
    if (k >= T_EQ && k <= T_GE) {
        *op = cmp_ops[k - T_EQ];
        return 0;
    }
    if (k == T_IN) {
        *op = OP_IN;
        return 0;
    }
    if (k == T_NOT) {
        tok_t after;
        if (peek(p, &after))
            return -1;
        if (after.kind != T_IN)
            return fail(p, after.pos, "expected 'in' after 'not'");
        *op = OP_NOTIN;
        return 0;
    }
    *is_cmp = 0;
    return 0;
}

/* == / != where one side is the literal null: a null test. The literal's
 * single OP_NULL is dropped (jumps are relative, so moving code is safe). */
static void emit_null_test(parser_t *p, const sub_t *l, const sub_t *r, op_t op)
{
    if (r->null_lit) {
        p->n_code--;
    } else {
        memmove(&p->code[l->pc], &p->code[l->pc + 1],
                (p->n_code - l->pc - 1) * sizeof(instr_t));
        p->n_code--;
    }
    emit(p, op == OP_EQ ? OP_ISNULL : OP_NOTNULL, 0);
}

/* additive [(== | != | < | <= | > | >=) additive | ["not"] "in" list] */
static int parse_cmp(parser_t *p, sub_t *out)
{
    if (parse_arith(p, out, 0))
        return -1;
    op_t op;
    int is_cmp;
    if (at_comparison(p, &op, &is_cmp))
        return -1;
    if (!is_cmp)
        return 0;
    size_t pos = p->tok.pos;
    tok_kind_t k = p->tok.kind;
    if (add_node(p, pos) || next(p))
        return -1;
    if (op == OP_IN || op == OP_NOTIN) {
        if (op == OP_NOTIN && next(p))
            return -1;
        if (parse_list(p, out, op))
            return -1;
    } else {
        sub_t rhs;
        if (parse_arith(p, &rhs, 0))
            return -1;
        if ((op == OP_EQ || op == OP_NE) && (out->null_lit || rhs.null_lit)) {
            emit_null_test(p, out, &rhs, op);
        } else {
            int bad = op == OP_EQ || op == OP_NE
                          ? check_comparable(p, out->ts, rhs.ts, pos)
                          : check_order(p, out, &rhs, pos, tok_text(k));
            if (bad)
                return -1;
            emit(p, op, 0);
        }
    }
    out->ts = TS_BOOL;
    out->null_lit = 0;
    if (at_comparison(p, &op, &is_cmp))
        return -1;
    if (is_cmp)
        return fail(p, p->tok.pos, "comparisons cannot be chained (use 'and')");
    return 0;
}

/* "not" not_expr | comparison */
static int parse_not(parser_t *p, sub_t *out)
{
    if (p->tok.kind != T_NOT)
        return parse_cmp(p, out);
    size_t pos = p->tok.pos;
    if (depth_enter(p, pos) || add_node(p, pos) || next(p) ||
        parse_not(p, out) || check_cond(p, out, pos, "not"))
        return -1;
    emit(p, OP_NOT, 0);
    out->ts = TS_BOOL;
    out->pos = pos;
    out->null_lit = 0;
    p->depth--;
    return 0;
}

/* One level of short-circuit logic: operand {("and" | "or") operand}. */
static int parse_logic(parser_t *p, sub_t *out, int is_and)
{
    if (is_and ? parse_not(p, out) : parse_logic(p, out, 1))
        return -1;
    tok_kind_t kind = is_and ? T_AND : T_OR;
    const char *name = is_and ? "and" : "or";
    while (p->tok.kind == kind) {
        size_t pos = p->tok.pos;
        if (check_cond(p, out, pos, name) || add_node(p, pos))
            return -1;
        size_t jump = emit(p, is_and ? OP_AND : OP_OR, 0);
        sub_t rhs;
        if (next(p) ||
            (is_and ? parse_not(p, &rhs) : parse_logic(p, &rhs, 1)) ||
            check_cond(p, &rhs, pos, name))
            return -1;
        size_t end = emit(p, OP_BOOL, 0);
        p->code[jump].arg = (uint32_t)(end - jump);
        out->ts = TS_BOOL;
        out->null_lit = 0;
    }
    return 0;
}

static int parse_or(parser_t *p, sub_t *out)
{
    return parse_logic(p, out, 0);
}

/* ---------------------------------------------------------------------------
 * Compiled rule
 * ------------------------------------------------------------------------ */

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* Largest stack depth of the code. Walking it straight through is enough:
 * a taken jump leaves the depth the fall-through path has at its target. */
static size_t code_max_stack(const instr_t *code, size_t n_code)
{
    size_t depth = 0, max = 0;
    for (size_t pc = 0; pc < n_code; pc++) {
        switch ((op_t)code[pc].op) {
        case OP_CONST:
        case OP_NULL:
        case OP_SLOT:
            depth++;
            break;
        case OP_ADD:
        case OP_SUB:
        case OP_MUL:
        case OP_DIV:
        case OP_MOD:
        case OP_EQ:
        case OP_NE:
        case OP_LT:
        case OP_LE:
        case OP_GT:
        case OP_GE:
            assert(depth >= 2);
            depth--;
            break;
        case OP_AND: /* falling through pops; the right side pushes */
        case OP_OR:
            assert(depth >= 1);
            depth--;
            break;
        default:
            assert(depth >= 1);
            break;
        }
        if (depth > max)
            max = depth;
    }
    assert(depth == 1);
    return max;
}

/* Copies the parser's output into one allocation. */
static cp_expr_t *compile(const parser_t *p)
{
    size_t consts_at = align_up(sizeof(cp_expr_t), _Alignof(cp_expr_value_t));
    size_t code_at = align_up(consts_at + p->n_consts * sizeof(cp_expr_value_t),
                              _Alignof(instr_t));
    size_t str_at = code_at + p->n_code * sizeof(instr_t);
    char *mem = malloc(str_at + p->arena_len + 1);
    if (mem == NULL)
        return NULL;
    cp_expr_t *expr = (cp_expr_t *)mem;
    cp_expr_value_t *consts = (cp_expr_value_t *)(mem + consts_at);
    instr_t *code = (instr_t *)(mem + code_at);
    char *strings = mem + str_at;
    memcpy(strings, p->arena, p->arena_len);
    for (size_t i = 0; i < p->n_consts; i++) {
        consts[i] = p->consts[i].val;
        if (consts[i].type == CP_EXPR_STR)
            consts[i].v.str.ptr = strings + p->consts[i].str_off;
    }
    memcpy(code, p->code, p->n_code * sizeof(instr_t));
    expr->consts = consts;
    expr->code = code;
    expr->n_code = p->n_code;
    expr->n_slots = p->n_slots;
    expr->max_stack = code_max_stack(code, p->n_code);
    assert(expr->max_stack <= CP_EXPR_MAX_NODES);
    return expr;
}

/* The rule: or_expr, a condition, then the end of the text. */
static int parse_rule(parser_t *p)
{
    char desc[DESC_CAP];
    if (next(p))
        return -1;
    if (p->tok.kind == T_EOF)
        return fail(p, 0, "empty rule");
    sub_t rule;
    if (parse_or(p, &rule))
        return -1;
    if (p->tok.kind != T_EOF) {
        const char *kw = keyword_miscased(p, &p->tok);
        return fail(p, p->tok.pos,
                    "expected an operator or end of rule, got %s%s%s%s",
                    tok_desc(p, &p->tok, desc, sizeof desc),
                    kw ? " (keywords are lower case: '" : "", kw ? kw : "",
                    kw ? "')" : "");
    }
    if (!(rule.ts & TS_BOOL))
        return fail(p, rule.pos, "a rule must be a condition, got %s",
                    ts_name(rule.ts));
    return 0;
}

cp_expr_t *cp_expr_parse(const char *text, size_t len,
                         cp_expr_resolve_fn resolve, void *ud,
                         cp_expr_err_t *err)
{
    if (text == NULL && len > 0) {
        err_set(err, NULL, 0, "invalid argument");
        return NULL;
    }
    if (len > CP_EXPR_MAX_TEXT) {
        err_set(err, text, 0, "rule too long (%z bytes, max %z)", len,
                (size_t)CP_EXPR_MAX_TEXT);
        return NULL;
    }
    parser_t *p = malloc(sizeof *p);
    char *arena = malloc(len + 1);
    cp_expr_t *expr = NULL;
    if (p == NULL || arena == NULL) {
        err_set(err, NULL, 0, "out of memory");
        goto done;
    }
    /* Not all of *p: the code and constant arrays are written before
     * they are read. */
    memset(&p->tok, 0, sizeof p->tok);
    p->depth = p->nodes = 0;
    p->n_slots = p->n_code = p->n_consts = p->arena_len = 0;
    p->text = text ? text : "";
    p->len = len;
    p->resolve = resolve;
    p->ud = ud;
    p->err = err;
    p->arena = arena;
    if (parse_rule(p))
        goto done;
    expr = compile(p);
    if (expr == NULL)
        err_set(err, NULL, 0, "out of memory");
done:
    free(arena);
    free(p);
    return expr;
}

void cp_expr_free(cp_expr_t *expr)
{
    free(expr);
}

size_t cp_expr_slots_used(const cp_expr_t *expr)
{
    return expr->n_slots;
}

/* ---------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------ */

static int is_true(const cp_expr_value_t *val)
{
    return val->type == CP_EXPR_BOOL && val->v.b;
}

/* slots[id] made safe: out of range, unknown type, non-finite number and
 * a string without bytes all read as null; bools become 0 / 1. */
static cp_expr_value_t read_slot(const cp_expr_value_t *slots, size_t n_slots,
                                 uint32_t id)
{
    if (id >= n_slots)
        return cp_expr_null();
    const cp_expr_value_t *val = &slots[id];
    switch (val->type) {
    case CP_EXPR_BOOL:
        return cp_expr_bool(val->v.b);
    case CP_EXPR_NUM:
        return isfinite(val->v.num) ? *val : cp_expr_null();
    case CP_EXPR_STR:
        if (val->v.str.ptr == NULL && val->v.str.len > 0)
            return cp_expr_null();
        return *val;
    default:
        return cp_expr_null();
    }
}

/* Order of two non-null values of one type: < 0, 0, > 0. */
static int cmp_same(const cp_expr_value_t *a, const cp_expr_value_t *b)
{
    switch (a->type) {
    case CP_EXPR_NUM:
        return (a->v.num > b->v.num) - (a->v.num < b->v.num);
    case CP_EXPR_STR: {
        size_t la = a->v.str.len, lb = b->v.str.len;
        size_t n = la < lb ? la : lb;
        int c = n ? memcmp(a->v.str.ptr, b->v.str.ptr, n) : 0;
        if (c != 0)
            return c;
        return (la > lb) - (la < lb);
    }
    case CP_EXPR_BOOL:
        return a->v.b - b->v.b;
    default:
        return 0;
    }
}

/* a op b for the comparison ops: false whenever an operand is null; values
 * of different types are only unequal; < <= > >= need numbers or strings. */
static int compare(op_t op, const cp_expr_value_t *a, const cp_expr_value_t *b)
{
    if (a->type == CP_EXPR_NULL || b->type == CP_EXPR_NULL)
        return 0;
    if (a->type != b->type)
        return op == OP_NE;
    if (op != OP_EQ && op != OP_NE && a->type == CP_EXPR_BOOL)
        return 0;
    int c = cmp_same(a, b);
    switch (op) {
    case OP_EQ:
        return c == 0;
    case OP_NE:
        return c != 0;
    case OP_LT:
        return c < 0;
    case OP_LE:
        return c <= 0;
    case OP_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}

/* x in list: x == item for some item; x not in list: x != item for every
 * item (a null item is a null test, as `x == null` / `x != null`). */
static int in_list(const cp_expr_value_t *x, const cp_expr_value_t *items,
                   size_t n, int negate)
{
    op_t op = negate ? OP_NE : OP_EQ;
    for (size_t i = 0; i < n; i++) {
        int r = items[i].type == CP_EXPR_NULL
                    ? (x->type == CP_EXPR_NULL) != negate
                    : compare(op, x, &items[i]);
        if (r != negate) /* decided: a match for in, a miss for not in */
            return !negate;
    }
    return negate;
}

/* a op b for the arithmetic ops; null unless both are numbers and the
 * result is finite (x / 0, x % 0 and overflow are null). */
static cp_expr_value_t arith(op_t op, const cp_expr_value_t *a,
                             const cp_expr_value_t *b)
{
    if (a->type != CP_EXPR_NUM || b->type != CP_EXPR_NUM)
        return cp_expr_null();
    double x = a->v.num, y = b->v.num, r;
    switch (op) {
    case OP_ADD:
        r = x + y;
        break;
    case OP_SUB:
        r = x - y;
        break;
    case OP_MUL:
        r = x * y;
        break;
    case OP_DIV:
        if (y == 0.0)
            return cp_expr_null();
        r = x / y;
        break;
    default:
        if (y == 0.0)
            return cp_expr_null();
        r = fmod(x, y);
        break;
    }
    return isfinite(r) ? cp_expr_num(r) : cp_expr_null();
}

int cp_expr_eval(const cp_expr_t *expr, const cp_expr_value_t *slots,
                 size_t n_slots)
{
    /* Only operand nodes push, so the node limit bounds the stack. */
    cp_expr_value_t stack[CP_EXPR_MAX_NODES];
    size_t sp = 0;
    for (size_t pc = 0; pc < expr->n_code; pc++) {
        const instr_t *in = &expr->code[pc];
        cp_expr_value_t *top = sp ? &stack[sp - 1] : stack;
        switch ((op_t)in->op) {
        case OP_CONST:
            stack[sp++] = expr->consts[in->arg];
            break;
        case OP_NULL:
            stack[sp++] = cp_expr_null();
            break;
        case OP_SLOT:
            stack[sp++] = read_slot(slots, n_slots, in->arg);
            break;
        case OP_ADD:
        case OP_SUB:
        case OP_MUL:
        case OP_DIV:
        case OP_MOD:
            top[-1] = arith((op_t)in->op, &top[-1], top);
            sp--;
            break;
        case OP_NEG:
            *top = top->type == CP_EXPR_NUM ? cp_expr_num(-top->v.num)
                                            : cp_expr_null();
            break;
        case OP_EQ:
        case OP_NE:
        case OP_LT:
        case OP_LE:
        case OP_GT:
        case OP_GE:
            top[-1] = cp_expr_bool(compare((op_t)in->op, &top[-1], top));
            sp--;
            break;
        case OP_ISNULL:
        case OP_NOTNULL:
            *top = cp_expr_bool((top->type == CP_EXPR_NULL) ==
                                (in->op == OP_ISNULL));
            break;
        case OP_IN:
        case OP_NOTIN:
            *top = cp_expr_bool(in_list(top, &expr->consts[in->arg], in->n,
                                        in->op == OP_NOTIN));
            break;
        case OP_NOT:
            *top = cp_expr_bool(!is_true(top));
            break;
        case OP_BOOL:
            *top = cp_expr_bool(is_true(top));
            break;
        case OP_AND:
            if (!is_true(top)) {
                *top = cp_expr_bool(0);
                pc += in->arg;
            } else {
                sp--;
            }
            break;
        case OP_OR:
            if (is_true(top))
                pc += in->arg;
            else
                sp--;
            break;
        }
    }
    assert(sp == 1);
    return is_true(&stack[0]);
}
