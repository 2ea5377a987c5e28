/*
 * log.c - structured JSON logging to stderr.
 *
 * A line is built in a fixed 4 KiB stack buffer (no allocation, so logging
 * works when memory is short) and written with one fwrite under a mutex, so
 * lines from librdkafka's threads never interleave. Truncation keeps the
 * line valid JSON: a string is cut at a UTF-8 character boundary and closed,
 * later fields are dropped and "truncated":true is appended.
 *
 * Customer ids are logged as a SipHash-2-4 under a process-wide key (from
 * log.id_key, else random), kept under its own mutex because librdkafka's
 * threads may log while start-up sets it.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cp_time.h"
#include "siphash.h"

#define LINE_MAX_BYTES 4096
/* Room always kept free for the tail: ,"truncated":true}\n */
#define LINE_TAIL_BYTES 19
#define LINE_LIMIT (LINE_MAX_BYTES - LINE_TAIL_BYTES)

static atomic_int log_level = CP_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* ------------------------------------------------------------- levels */

void cp_log_set_level(cp_log_level_t level)
{
    atomic_store(&log_level, (int)level);
}

cp_log_level_t cp_log_get_level(void)
{
    return (cp_log_level_t)atomic_load(&log_level);
}

int cp_log_enabled(cp_log_level_t level)
{
    return (int)level <= atomic_load(&log_level);
}

int cp_log_level_parse(const char *s, cp_log_level_t *out)
{
    for (int i = 0; i <= CP_LOG_DEBUG; i++) {
        if (s != NULL && strcmp(s, level_names[i]) == 0) {
            *out = (cp_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------ customer-id key */

static pthread_mutex_t id_key_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t id_key[CP_SIPHASH_KEY_SIZE]; /* under id_key_lock */
static int id_key_set;                      /* under id_key_lock */

/* n bytes from /dev/urandom; 0 on success. */
static int urandom_bytes(unsigned char *p, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0)
        return -1;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return got == n ? 0 : -1;
}

/* n bytes from getrandom(2), or /dev/urandom where that is missing or
 * refused (old kernel, seccomp); 0 on success. */
static int random_bytes(unsigned char *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return urandom_bytes(p, n);
        got += (size_t)r;
    }
    return 0;
}

cp_err_t cp_log_set_id_key(const char *key)
{
    uint8_t k[CP_SIPHASH_KEY_SIZE];

    if (key != NULL && key[0] != '\0')
        cp_siphash_key_derive(key, strlen(key), k);
    else if (random_bytes(k, sizeof(k)) != 0)
        return CP_EIO;
    pthread_mutex_lock(&id_key_lock);
    memcpy(id_key, k, sizeof(k));
    id_key_set = 1;
    pthread_mutex_unlock(&id_key_lock);
    return CP_OK;
}

/* Copies the key into k, making a random one first if none is set yet;
 * 0 on success. */
static int id_key_get(uint8_t k[CP_SIPHASH_KEY_SIZE])
{
    int ok;

    pthread_mutex_lock(&id_key_lock);
    if (!id_key_set && random_bytes(id_key, sizeof(id_key)) == 0)
        id_key_set = 1;
    ok = id_key_set;
    memcpy(k, id_key, sizeof(id_key));
    pthread_mutex_unlock(&id_key_lock);
    return ok ? 0 : -1;
}

cp_err_t cp_log_hash_id(const char *id, char out[CP_LOG_ID_HASH_SIZE])
{
    uint8_t k[CP_SIPHASH_KEY_SIZE];

    if (id_key_get(k) != 0) {
        memcpy(out, "h:?", 4);
        return CP_EIO;
    }
    snprintf(out, CP_LOG_ID_HASH_SIZE, "h:%016" PRIx64,
             cp_siphash24(k, id, strlen(id)));
    return CP_OK;
}

/* --------------------------------------------------------- line writer */

typedef struct {
    char b[LINE_MAX_BYTES];
    size_t len;
    int trunc; /* set once something did not fit; nothing more is added */
} line_t;

/* Appends n raw bytes if they fit below LINE_LIMIT; 0 on success. */
static int line_raw(line_t *ln, const char *s, size_t n)
{
    if (ln->trunc || ln->len + n > LINE_LIMIT) {
        ln->trunc = 1;
        return -1;
    }
    memcpy(ln->b + ln->len, s, n);
    ln->len += n;
    return 0;
}

/* Escape sequence for c into tmp; returns its length. */
static size_t json_escape(unsigned char c, char tmp[7])
{
    static const char esc[] = "\"\"\\\\\bb\ff\nn\rr\tt";

    for (size_t i = 0; i < sizeof(esc) - 1; i += 2) {
        if ((unsigned char)esc[i] == c) {
            tmp[0] = '\\';
            tmp[1] = esc[i + 1];
            return 2;
        }
    }
    if (c < 0x20)
        return (size_t)snprintf(tmp, 7, "\\u%04x", c);
    tmp[0] = (char)c;
    return 1;
}

/* Appends s as a JSON string; 0 when something was written. When it does
 * not fit, the string is cut before the first character that does not
 * (never inside an escape or a UTF-8 sequence), closed with its quote, and
 * the line marked truncated. Both quotes' bytes are checked up front. */
static int line_str(line_t *ln, const char *s)
{
    size_t char_start = 0; /* ln->len where the current character began */
    char tmp[7];

    if (ln->trunc || ln->len + 2 > LINE_LIMIT) {
        ln->trunc = 1;
        return -1;
    }
    ln->b[ln->len++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        size_t n = json_escape(*p, tmp);
        int continuation = (*p & 0xc0) == 0x80;

        if (!continuation)
            char_start = ln->len;
        if (ln->len + n + 1 > LINE_LIMIT) {
            if (continuation)
                ln->len = char_start; /* drop a partial character */
            ln->trunc = 1;
            break;
        }
        memcpy(ln->b + ln->len, tmp, n);
        ln->len += n;
    }
    ln->b[ln->len++] = '"';
    return 0;
}

/* Appends ,"key": whole or not at all; 0 on success. */
static int line_key(line_t *ln, const char *key)
{
    size_t mark = ln->len;

    if (line_raw(ln, ",", 1) == 0 && line_str(ln, key) == 0 && !ln->trunc &&
        line_raw(ln, ":", 1) == 0)
        return 0;
    ln->len = mark;
    ln->trunc = 1;
    return -1;
}

static int line_fmt(line_t *ln, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int line_fmt(line_t *ln, const char *fmt, ...)
{
    char tmp[64]; /* ample for an int64 or a %.17g double */
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof(tmp))
        return -1;
    return line_raw(ln, tmp, (size_t)n);
}

/* -------------------------------------------------------------- values */

static int put_str_or_null(line_t *ln, const char *s)
{
    if (s == NULL)
        return line_raw(ln, "null", 4);
    return line_str(ln, s);
}

static int put_customer(line_t *ln, const char *id)
{
    char tmp[CP_LOG_ID_HASH_SIZE];

    if (id == NULL || cp_log_enabled(CP_LOG_DEBUG))
        return put_str_or_null(ln, id);
    /* PII stays out of non-debug logs; the hash still correlates lines,
     * and being keyed it cannot be reversed from a list of known ids. */
    cp_log_hash_id(id, tmp);
    return line_str(ln, tmp);
}

static int put_double(line_t *ln, double d)
{
    if (!isfinite(d))
        return line_raw(ln, "null", 4); /* JSON has no NaN or infinity */
    return line_fmt(ln, "%.17g", d);
}

#define PUT_BAD_TYPE (-2)

/* Consumes one value of the given type and writes it: 0 when written,
 * -1 when it did not fit (or the line is already truncated), PUT_BAD_TYPE
 * for an unknown type, after which the varargs cannot be read further. */
static int put_value(line_t *ln, int type, va_list *ap)
{
    switch (type) {
    case CP__LOG_T_STR:
        return put_str_or_null(ln, va_arg(*ap, const char *));
    case CP__LOG_T_INT:
        return line_fmt(ln, "%" PRId64, va_arg(*ap, int64_t));
    case CP__LOG_T_DBL:
        return put_double(ln, va_arg(*ap, double));
    case CP__LOG_T_BOOL:
        return va_arg(*ap, int) ? line_raw(ln, "true", 4)
                                : line_raw(ln, "false", 5);
    case CP__LOG_T_CUST:
        return put_customer(ln, va_arg(*ap, const char *));
    default:
        return PUT_BAD_TYPE;
    }
}

/* Appends the (key, type, value) triples up to CP_LEND. Once the line is
 * truncated every write is a no-op, but values are still consumed so the
 * argument list stays in step. A key whose value did not fit is removed. */
static void put_fields(line_t *ln, va_list *ap)
{
    const char *key;

    while ((key = va_arg(*ap, const char *)) != NULL) {
        int type = va_arg(*ap, int);
        size_t mark = ln->len;
        int keyed, r;

        if (type == CP__LOG_T_END)
            return;
        keyed = !ln->trunc && line_key(ln, key) == 0;
        r = put_value(ln, type, ap);
        if (r == PUT_BAD_TYPE) {
            ln->len = mark;
            return;
        }
        if (r != 0 && keyed)
            ln->len = mark;
    }
}

/* ---------------------------------------------------------------- cp_log */

static void line_head(line_t *ln, cp_log_level_t level, const char *msg)
{
    char ts[32];

    if (cp_time_format_utc(cp_time_wall_ms(), ts, sizeof(ts)) == 0)
        snprintf(ts, sizeof(ts), "0000-00-00T00:00:00.000Z");
    line_raw(ln, "{\"ts\":\"", 7);
    line_raw(ln, ts, 24);
    line_raw(ln, "\",\"level\":\"", 11);
    line_raw(ln, level_names[level], strlen(level_names[level]));
    line_raw(ln, "\",\"msg\":", 8);
    put_str_or_null(ln, msg);
}

void cp_log(cp_log_level_t level, const char *msg, ...)
{
    line_t ln;
    va_list ap;

    if ((int)level < CP_LOG_ERROR || level > CP_LOG_DEBUG ||
        !cp_log_enabled(level))
        return;
    ln.len = 0;
    ln.trunc = 0;
    line_head(&ln, level, msg);
    va_start(ap, msg);
    put_fields(&ln, &ap);
    va_end(ap);

    /* The tail's bytes were kept free by LINE_LIMIT. */
    if (ln.trunc) {
        memcpy(ln.b + ln.len, ",\"truncated\":true", 17);
        ln.len += 17;
    }
    memcpy(ln.b + ln.len, "}\n", 2);
    ln.len += 2;

    pthread_mutex_lock(&log_lock);
    fwrite(ln.b, 1, ln.len, stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}
