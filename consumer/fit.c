/*
 * fit.c - `custpulse fit` (fit.h): reads the customers from a transactions
 * file or from Redis, fits BG/NBD or MBG/NBD and Gamma-Gamma
 * (scoring/btyd.h), prints the estimates and writes them to
 * <prefix>btyd for the daemon (docs/btyd.md, "Where the parameters live").
 *
 * This is an edge, so the input is validated here. A line of a
 * transactions file that does not parse stops the command with its line
 * number (a file is fixed, not half-read). A customer hash that does not
 * make sense - a field that is not a decimal integer >= 0, first/last
 * order times outside 1970..9999 or in the wrong order, more repeat days
 * than days between them, a key of another type - is skipped and counted:
 * one bad customer must not stop the fit of millions.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btyd.h"
#include "buf.h"
#include "cp_time.h"
#include "fit.h"
#include "hash.h"
#include "log.h"

#define MAX_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */
#define MIN_REPEAT 10                   /* customers with x > 0 a fit needs */
#define PROGRESS_MS 1000                /* Redis progress log interval */

/* btyd.model and btyd.unit are indexes into their value lists in
 * common/config.c, which are not scoring's enum values (BGNBD = 0 there). */
static const struct {
    const char *name;
    cp_btyd_model_t model;
} fit_models[] = {{"mbgnbd", CP_BTYD_MBGNBD}, {"bgnbd", CP_BTYD_BGNBD}};

static const struct {
    const char *name;
    double days;
} fit_units[] = {{"weeks", 7.0}, {"days", 1.0}};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- dates --------------------------------------------------------------- */

/* Days since 1970-01-01 of the calendar date "YYYY-MM-DD" or "YYYYMMDD"
 * (exactly len bytes), or -1 if it is not a valid date in 1970..9999. */
static int64_t date_day(const char *s, size_t len)
{
    char ymd[11];
    if (len == 8 && strspn(s, "0123456789") >= 8) {
        snprintf(ymd, sizeof(ymd), "%.4s-%.2s-%.2s", s, s + 4, s + 6);
        s = ymd;
        len = 10;
    }
    int64_t day;
    return cp_time_parse_date(s, len, &day) == CP_OK ? day : -1;
}

int cp_fit_arg(cp_fit_args_t *args, const char *arg, const char *next)
{
    if (!strcmp(arg, "--dry-run")) {
        args->dry_run = 1;
        return 1;
    }
    if (strcmp(arg, "--csv") && strcmp(arg, "--at"))
        return 0;
    if (next == NULL) {
        fprintf(stderr, "custpulse: fit: %s needs a value\n", arg);
        return -1;
    }
    if (!strcmp(arg, "--csv")) {
        args->csv = next;
        return 2;
    }
    args->at_day = strlen(next) == 10 ? date_day(next, 10) : -1;
    if (args->at_day < 0) {
        fprintf(stderr,
                "custpulse: fit: --at: expected a date YYYY-MM-DD "
                "(1970..9999), got '%s'\n",
                next);
        return -1;
    }
    args->has_at = 1;
    return 2;
}

/* ---- the customers of a fit ---------------------------------------------- */

/* The customers as parallel arrays (scoring's cp_btyd_data_t), in the time
 * unit of the fit, and what was left out. */
typedef struct fit_data_s {
    double *x, *t_x, *T, *zbar; /* zbar in currency (major) units */
    size_t n, cap;
    size_t repeat;       /* customers with x > 0 */
    size_t excluded;     /* first purchase not before --at, or (Redis) the
                            last one after it */
    size_t skipped;      /* invalid customer hashes (Redis) */
    size_t no_orders;    /* hashes without a counted order (Redis) */
    size_t approximated; /* used layout-1 hashes with x = o - 1 (Redis) */
    size_t keys;         /* distinct keys read (Redis) */
} fit_data_t;

static void data_free(fit_data_t *d)
{
    free(d->x);
    free(d->t_x);
    free(d->T);
    free(d->zbar);
    memset(d, 0, sizeof(*d));
}

static int data_grow(fit_data_t *d)
{
    size_t cap = d->cap ? 2 * d->cap : 4096;
    double **cols[] = {&d->x, &d->t_x, &d->T, &d->zbar};
    for (size_t i = 0; i < COUNT_OF(cols); i++) {
        double *p = realloc(*cols[i], cap * sizeof(**cols[i]));
        if (p == NULL)
            return -1;
        *cols[i] = p;
    }
    d->cap = cap;
    return 0;
}

/* Adds a customer from its day numbers (first <= last) and x repeat
 * purchase days; unit is the length of the time unit in days. t_x is 0
 * when x = 0 (scoring's convention; for a hash, orders after the first one
 * may have been cancelled). A customer with no time between the first
 * purchase and at (T <= 0), or with a purchase after at, is excluded.
 * Returns 1 (added), 0 (excluded) or -1 (out of memory). */
static int data_add(fit_data_t *d, int64_t x, int64_t first, int64_t last,
                    int64_t at, double zbar, double unit)
{
    if (first >= at || last > at) {
        d->excluded++;
        return 0;
    }
    if (d->n == d->cap && data_grow(d) != 0)
        return -1;
    d->x[d->n] = (double)x;
    d->t_x[d->n] = x > 0 ? (double)(last - first) / unit : 0.0;
    d->T[d->n] = (double)(at - first) / unit;
    d->zbar[d->n] = x > 0 ? zbar : 0.0;
    d->repeat += x > 0;
    d->n++;
    return 1;
}

/* ---- source A: a transactions file --------------------------------------- */

typedef struct csv_row_s {
    size_t id_off;  /* into csv_t.ids while reading */
    const char *id; /* set once reading is done (the buffer stays put) */
    size_t id_len;
    int64_t day;
    double amount;
} csv_row_t;

typedef struct csv_s {
    csv_row_t *rows;
    size_t n, cap;
    cp_buf_t ids; /* the ids, back to back */
    int64_t last_day;
} csv_t;

/* Trims blanks, the line end and (CSV) one pair of double quotes. */
static char *field_trim(char *s)
{
    s += strspn(s, " \t");
    size_t len = strlen(s);
    while (len > 0 && strchr(" \t\r\n", s[len - 1]))
        s[--len] = '\0';
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        s[len - 1] = '\0';
        s++;
    }
    return s;
}

/* Splits line in place into at most max fields: at commas (CSV) or runs of
 * blanks. Returns the number of fields, max + 1 if there are more. */
static int split(char *line, int is_csv, char **f, int max)
{
    int n = 0;
    char *save = NULL;
    if (!is_csv) {
        for (char *t = strtok_r(line, " \t\r\n", &save); t;
             t = strtok_r(NULL, " \t\r\n", &save)) {
            if (n == max)
                return max + 1;
            f[n++] = t;
        }
        return n;
    }
    for (char *s = line;; n++) {
        char *comma = strchr(s, ',');
        if (n == max)
            return max + 1;
        if (comma)
            *comma = '\0';
        f[n] = field_trim(s);
        if (!comma)
            return n + 1;
        s = comma + 1;
    }
}

/* Parses one transaction: CSV "customer_id,date,amount" or CDNOW's
 * whitespace-separated "id date qty amount" (master) or "id sample_id date
 * qty amount" (sample). Returns NULL or why the line is bad. */
static const char *csv_parse(char *line, int is_csv, csv_row_t *row,
                             const char **id)
{
    char *f[5], *end;
    int n = split(line, is_csv, f, 5);
    if (is_csv ? n != 3 : n != 4 && n != 5)
        return is_csv ? "expected customer_id,date,amount"
                      : "expected id [sample_id] yyyymmdd qty amount";
    const char *date = f[n == 5 ? 2 : 1], *amount = f[n - 1];
    *id = f[0];
    row->id_len = strlen(f[0]);
    row->day = date_day(date, strlen(date));
    errno = 0;
    row->amount = strtod(amount, &end);
    if (row->id_len == 0)
        return "empty customer id";
    if (row->day < 0)
        return "date is not YYYY-MM-DD or YYYYMMDD (1970..9999)";
    if (end == amount || *end || errno || !isfinite(row->amount) ||
        row->amount < 0.0)
        return "amount is not a number >= 0";
    return NULL;
}

static int csv_add(csv_t *cv, const csv_row_t *row, const char *id)
{
    if (cv->n == cv->cap) {
        size_t cap = cv->cap ? 2 * cv->cap : 4096;
        csv_row_t *p = realloc(cv->rows, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        cv->rows = p;
        cv->cap = cap;
    }
    csv_row_t *r = &cv->rows[cv->n++];
    *r = *row;
    r->id_off = cv->ids.len;
    cp_buf_append(&cv->ids, id, row->id_len);
    if (row->day > cv->last_day)
        cv->last_day = row->day;
    return cp_buf_failed(&cv->ids) ? -1 : 0;
}

/* Reads every transaction of path. The first non-blank line is a header
 * if it does not parse; any later line that does not parse is an error.
 * Returns 0, or -1 after a message on stderr. */
static int csv_read(const char *path, csv_t *cv)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "custpulse: fit: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    int is_csv = -1, rc = 0;
    while (rc == 0 && getline(&line, &cap, fp) != -1) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        int first = is_csv < 0;
        if (first)
            is_csv = strchr(line, ',') != NULL;
        csv_row_t row = {0};
        const char *id = NULL, *why = csv_parse(line, is_csv, &row, &id);
        if (why == NULL && csv_add(cv, &row, id) != 0) {
            why = "out of memory";
            first = 0; /* not a header after all */
        }
        if (why != NULL && !first) {
            fprintf(stderr, "custpulse: fit: %s:%zu: %s\n", path, lineno, why);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(fp)) {
        fprintf(stderr, "custpulse: fit: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(fp);
    for (size_t i = 0; i < cv->n; i++)
        cv->rows[i].id = cv->ids.data + cv->rows[i].id_off;
    return rc;
}

static int row_cmp(const void *pa, const void *pb)
{
    const csv_row_t *a = pa, *b = pb;
    int c = memcmp(a->id, b->id, a->id_len < b->id_len ? a->id_len : b->id_len);
    if (c != 0)
        return c;
    if (a->id_len != b->id_len)
        return a->id_len < b->id_len ? -1 : 1;
    return (a->day > b->day) - (a->day < b->day);
}

/* One customer's rows, sorted by day: purchases on one day are one
 * transaction (amounts summed), rows after at are ignored, zbar is the
 * mean of the repeat transactions (the first day's amount not counted). */
static int csv_customer(fit_data_t *d, const csv_row_t *rows, size_t n,
                        int64_t at, double unit)
{
    int64_t first = rows[0].day, last = first, x = 0;
    double repeat_sum = 0.0;
    for (size_t i = 1; i < n && rows[i].day <= at; i++) {
        if (rows[i].day != last) {
            x++;
            last = rows[i].day;
        }
        if (rows[i].day != first)
            repeat_sum += rows[i].amount;
    }
    double zbar = x > 0 ? repeat_sum / (double)x : 0.0;
    return data_add(d, x, first, last, at, zbar, unit) < 0 ? -1 : 0;
}

/* Source A: the customers of a transactions file. *at is --at or, without
 * it, the last date in the file. Returns 0 or -1 (message on stderr). */
static int csv_load(const char *path, const cp_fit_args_t *args, double unit,
                    fit_data_t *d, int64_t *at)
{
    csv_t cv = {0};
    cp_buf_init(&cv.ids);
    int rc = csv_read(path, &cv);
    if (rc == 0 && cv.n == 0) {
        fprintf(stderr, "custpulse: fit: %s: no transactions\n", path);
        rc = -1;
    }
    *at = args->has_at ? args->at_day : cv.last_day;
    if (rc == 0)
        qsort(cv.rows, cv.n, sizeof(*cv.rows), row_cmp);
    for (size_t i = 0, j; rc == 0 && i < cv.n; i = j) {
        for (j = i + 1;
             j < cv.n && cv.rows[j].id_len == cv.rows[i].id_len &&
             !memcmp(cv.rows[j].id, cv.rows[i].id, cv.rows[i].id_len);
             j++)
            ;
        rc = csv_customer(d, &cv.rows[i], j - i, *at, unit);
        if (rc != 0)
            fprintf(stderr, "custpulse: fit: out of memory\n");
    }
    free(cv.rows);
    cp_buf_free(&cv.ids);
    return rc;
}

/* ---- source B: the customer hashes in Redis ------------------------------ */

/* Why a customer hash was skipped (logged as counts). */
#define FIT_SKIP_MAP(XX)                                                       \
    XX(TYPE, "wrong_type")   /* the key is not a hash */                       \
    XX(NUMBER, "bad_number") /* f/l/o/m/b/lv not a decimal integer >= 0 */     \
    XX(TIME, "bad_time")     /* f or l missing, after 9999, or f > l */        \
    XX(REPEAT, "bad_repeat") /* b > days from first to last order */

typedef enum {
#define FIT_SKIP_ENUM(name, str) FIT_SKIP_##name,
    FIT_SKIP_MAP(FIT_SKIP_ENUM)
#undef FIT_SKIP_ENUM
        FIT_SKIP__COUNT
} fit_skip_t;

/* Keys already read, by their 64-bit hash: SCAN may return a key twice
 * (while the table is rehashed), which must not count a customer twice.
 * Open addressing; 0 marks an empty slot. */
typedef struct keyset_s {
    uint64_t *slots;
    size_t cap, n; /* cap a power of two, n <= cap / 2 */
} keyset_t;

static int keyset_grow(keyset_t *ks)
{
    size_t cap = ks->cap ? 2 * ks->cap : 1024;
    uint64_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < ks->cap; i++) {
        size_t j = ks->slots[i] & (cap - 1);
        while (ks->slots[i] && slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = ks->slots[i];
    }
    free(ks->slots);
    ks->slots = slots;
    ks->cap = cap;
    return 0;
}

/* Returns 1 if h was in the set, 0 after adding it, -1 out of memory. */
static int keyset_add(keyset_t *ks, uint64_t h)
{
    if (h == 0)
        h = 1;
    if (2 * (ks->n + 1) > ks->cap && keyset_grow(ks) != 0)
        return -1;
    size_t j = h & (ks->cap - 1);
    for (; ks->slots[j]; j = (j + 1) & (ks->cap - 1))
        if (ks->slots[j] == h)
            return 1;
    ks->slots[j] = h;
    ks->n++;
    return 0;
}

typedef struct fit_redis_s {
    redisContext *c;
    cp_tz_t *tz;
    int64_t at; /* day number */
    double unit;
    double minor; /* minor units per currency unit */
    fit_data_t *d;
    keyset_t seen;
    size_t skip[FIT_SKIP__COUNT];
} fit_redis_t;

static void redis_error(const fit_redis_t *rx, const redisReply *r,
                        const char *what)
{
    fprintf(stderr, "custpulse: fit: redis: %s: %s\n", what,
            r && r->type == REDIS_REPLY_ERROR ? r->str
            : rx->c->err                      ? rx->c->errstr
                                              : "unexpected reply");
}

/* A hash field as a decimal integer >= 0 (what the daemon writes): 1 and
 * *v, 0 when the field is absent, -1 when it is anything else. */
static int field_int(const redisReply *e, int64_t *v)
{
    if (e->type == REDIS_REPLY_NIL)
        return 0;
    if (e->type != REDIS_REPLY_STRING || e->len == 0)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < e->len; i++) {
        int dig = e->str[i] - '0';
        if (dig < 0 || dig > 9 || n > (INT64_MAX - dig) / 10)
            return -1;
        n = n * 10 + dig;
    }
    *v = n;
    return 1;
}

static int skip(fit_redis_t *rx, fit_skip_t why)
{
    rx->skip[why]++;
    rx->d->skipped++;
    return 0;
}

/* x of a hash without b. Layout 2 (lv set) omits b when it is 0. Layout 1
 * predates b: x is 0 when the orders fall on one day or only one is
 * counted, else approximated by o - 1 (*approx = 1; too high when orders
 * share a day or were cancelled). */
static int64_t x_without_b(int has_lv, int64_t o, int64_t first, int64_t last,
                           int *approx)
{
    *approx = !has_lv && o > 1 && last > first;
    return *approx ? o - 1 : 0;
}

/* One HMGET f l o m b lv z reply. Returns 0 (used, excluded or skipped) or
 * -1 (out of memory, or an error reply other than WRONGTYPE). */
static int redis_customer(fit_redis_t *rx, const redisReply *r)
{
    enum { F, L, O, M, B, LV, Z, NF };
    int64_t v[NF] = {0};
    int has[NF];
    if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "WRONGTYPE", 9))
        return skip(rx, FIT_SKIP_TYPE);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != NF) {
        redis_error(rx, r, "HMGET");
        return -1;
    }
    for (int i = 0; i < NF; i++)
        if ((has[i] = field_int(r->element[i], &v[i])) < 0)
            return skip(rx, FIT_SKIP_NUMBER);
    if (!has[O] || v[O] == 0) {
        rx->d->no_orders++;
        return 0;
    }
    if (!has[F] || !has[L] || v[F] > v[L] || v[L] > MAX_MS)
        return skip(rx, FIT_SKIP_TIME);
    int64_t first = cp_tz_day(rx->tz, v[F]), last = cp_tz_day(rx->tz, v[L]);
    if (has[B] && v[B] > last - first)
        return skip(rx, FIT_SKIP_REPEAT);
    int approx = 0;
    int64_t x =
        has[B] ? v[B] : x_without_b(has[LV], v[O], first, last, &approx);
    /* Gamma-Gamma's mean repeat transaction value: the repeat spend
     * m - z over the repeat days (m / o for a hash written before z). */
    double zbar = has[Z] && x > 0 && v[Z] >= 0 && v[Z] <= v[M]
                      ? (double)(v[M] - v[Z]) / rx->minor / (double)x
                      : (double)v[M] / rx->minor / (double)v[O];
    int added = data_add(rx->d, x, first, last, rx->at, zbar, rx->unit);
    if (added < 0)
        fprintf(stderr, "custpulse: fit: out of memory\n");
    rx->d->approximated += added > 0 && approx;
    return added < 0 ? -1 : 0;
}

/* One SCAN page: pipelines HMGET for the keys not seen before, then reads
 * and applies the replies in order. Returns 0 or -1 (message printed). */
static int redis_page(fit_redis_t *rx, const redisReply *keys)
{
    size_t sent = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        int seen = k->type == REDIS_REPLY_STRING
                       ? keyset_add(&rx->seen, cp_hash_fnv1a64(k->str, k->len))
                       : -1;
        if (seen == 0 && redisAppendCommand(rx->c, "HMGET %b f l o m b lv z",
                                            k->str, k->len) != REDIS_OK)
            seen = -1;
        if (seen < 0) {
            redis_error(rx, NULL, "SCAN page");
            rc = -1;
        }
        sent += seen == 0;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rx->c, (void **)&r) != REDIS_OK) {
            redis_error(rx, NULL, "HMGET");
            return -1;
        }
        if (rc == 0)
            rc = redis_customer(rx, r);
        freeReplyObject(r);
    }
    rx->d->keys += sent;
    return rc;
}

/* SCAN pattern "<prefix>c:*" with the prefix's glob characters escaped;
 * NULL when out of memory. */
static char *scan_pattern(const char *prefix)
{
    char *p = malloc(2 * strlen(prefix) + sizeof("c:*")), *o = p;
    if (p == NULL)
        return NULL;
    for (const char *s = prefix; *s; s++) {
        if (strchr("*?[]\\", *s))
            *o++ = '\\';
        *o++ = *s;
    }
    memcpy(o, "c:*", sizeof("c:*"));
    return p;
}

static int scan_reply_ok(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           r->element[0]->len < 32 && r->element[1]->type == REDIS_REPLY_ARRAY;
}

static void redis_progress(const fit_redis_t *rx, const char *msg)
{
    cp_log(CP_LOG_INFO, msg, CP_LI("keys", rx->d->keys),
           CP_LI("customers", rx->d->n), CP_LI("skipped", rx->d->skipped),
           CP_LEND);
}

/* SCANs every customer hash, a page at a time. 0 or -1 (message printed). */
static int redis_scan(fit_redis_t *rx, const char *prefix)
{
    char cursor[32] = "0", *pattern = scan_pattern(prefix);
    int64_t next_log = cp_time_mono_ms() + PROGRESS_MS;
    int rc = pattern ? 0 : -1;
    do {
        redisReply *r = rc ? NULL
                           : redisCommand(rx->c, "SCAN %s MATCH %s COUNT 1000",
                                          cursor, pattern);
        if (rc == 0 && !scan_reply_ok(r)) {
            redis_error(rx, r, "SCAN");
            rc = -1;
        } else if (rc == 0) {
            memcpy(cursor, r->element[0]->str, r->element[0]->len);
            cursor[r->element[0]->len] = '\0';
            rc = redis_page(rx, r->element[1]);
        }
        freeReplyObject(r);
        if (cp_time_mono_ms() >= next_log) {
            redis_progress(rx, "fit: reading customers");
            next_log = cp_time_mono_ms() + PROGRESS_MS;
        }
    } while (rc == 0 && strcmp(cursor, "0"));
    free(pattern);
    return rc;
}

/* Source B: every customer hash under redis.key_prefix. *at is --at or,
 * without it, today in the configured time zone. */
static int redis_load(redisContext *c, const cp_config_t *cfg,
                      const cp_fit_args_t *args, double unit, fit_data_t *d,
                      int64_t *at)
{
    char err[256];
    fit_redis_t rx = {.c = c, .unit = unit, .d = d, .minor = 1.0};
    rx.tz = cp_tz_new(cfg->timezone, err, sizeof(err));
    if (rx.tz == NULL) {
        fprintf(stderr, "custpulse: fit: %s\n", err);
        return -1;
    }
    for (int i = 0; i < cfg->currency_digits; i++)
        rx.minor *= 10.0;
    rx.at = *at =
        args->has_at ? args->at_day : cp_tz_day(rx.tz, cp_time_wall_ms());
    int rc = redis_scan(&rx, cfg->redis_prefix);
    redis_progress(&rx, "fit: customers read");
    if (d->skipped)
        cp_log(CP_LOG_WARN, "fit: invalid customer hashes skipped",
#define FIT_SKIP_LOG(name, str) CP_LI(str, rx.skip[FIT_SKIP_##name]),
               FIT_SKIP_MAP(FIT_SKIP_LOG)
#undef FIT_SKIP_LOG
                   CP_LEND);
    free(rx.seen.slots);
    cp_tz_free(rx.tz);
    return rc;
}

/* ---- fitting, report, write ---------------------------------------------- */

typedef struct fit_out_s {
    const char *model;
    const char *unit;
    const char *source; /* "csv" or "redis" */
    int64_t at;         /* day number */
    size_t n;
    size_t rows; /* distinct (x, t_x, T) rows the BG/NBD likelihood ran on */
    cp_btyd_fit_t bg;
    cp_btyd_gg_fit_t gg;
} fit_out_t;

static void print_param(const char *name, double v, double se)
{
    printf("%s = %.6g (se %.6g)\n", name, v, se);
}

/* Rows of equal (x, t_x, T) with their customer counts: the likelihood
 * runs over distinct rows, not customers (a population measured in days
 * repeats summaries a lot; CDNOW's 2,357 customers are 1,016 rows). */
typedef struct grouped_s {
    double *x, *t_x, *T, *w;
    size_t n;
} grouped_t;

static const fit_data_t *sort_data;

static int by_summary(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const fit_data_t *d = sort_data;
    if (d->x[i] != d->x[j])
        return d->x[i] < d->x[j] ? -1 : 1;
    if (d->t_x[i] != d->t_x[j])
        return d->t_x[i] < d->t_x[j] ? -1 : 1;
    if (d->T[i] != d->T[j])
        return d->T[i] < d->T[j] ? -1 : 1;
    return 0;
}

static void grouped_free(grouped_t *g)
{
    free(g->x);
    free(g->t_x);
    free(g->T);
    free(g->w);
}

static int group_rows(const fit_data_t *d, grouped_t *g)
{
    size_t n = d->n ? d->n : 1;
    size_t *idx = malloc(n * sizeof(*idx));
    g->x = malloc(n * sizeof(double));
    g->t_x = malloc(n * sizeof(double));
    g->T = malloc(n * sizeof(double));
    g->w = malloc(n * sizeof(double));
    g->n = 0;
    if (!idx || !g->x || !g->t_x || !g->T || !g->w) {
        free(idx);
        grouped_free(g);
        return -1;
    }
    for (size_t i = 0; i < d->n; i++)
        idx[i] = i;
    sort_data = d; /* fit runs once per process, on one thread */
    qsort(idx, d->n, sizeof(*idx), by_summary);
    for (size_t k = 0; k < d->n; k++) {
        size_t i = idx[k];
        if (g->n && g->x[g->n - 1] == d->x[i] &&
            g->t_x[g->n - 1] == d->t_x[i] && g->T[g->n - 1] == d->T[i]) {
            g->w[g->n - 1] += 1.0;
            continue;
        }
        g->x[g->n] = d->x[i];
        g->t_x[g->n] = d->t_x[i];
        g->T[g->n] = d->T[i];
        g->w[g->n++] = 1.0;
    }
    free(idx);
    return 0;
}

/* Fits model and Gamma-Gamma (on the customers with x > 0 and zbar > 0).
 * Returns 0, or -1 after a message on stderr. */
static int fit_estimate(cp_btyd_model_t model, const fit_data_t *d,
                        fit_out_t *out)
{
    if (d->repeat < MIN_REPEAT) {
        fprintf(stderr,
                "custpulse: fit: too few customers: %zu of %zu with a "
                "repeat purchase, at least %d needed\n",
                d->repeat, d->n, MIN_REPEAT);
        return -1;
    }
    grouped_t g;
    if (group_rows(d, &g) != 0) {
        fprintf(stderr, "custpulse: fit: out of memory\n");
        return -1;
    }
    cp_btyd_data_t data = {g.x, g.t_x, g.T, NULL, g.n, g.w};
    cp_btyd_status_t st = cp_btyd_fit(model, &data, NULL, &out->bg);
    out->rows = g.n;
    grouped_free(&g);
    if (st != CP_BTYD_OK) {
        fprintf(stderr, "custpulse: fit: %s fit failed: %s\n", out->model,
                cp_btyd_status_str(st));
        return -1;
    }
    /* zbar = 0 (free orders) carries no Gamma-Gamma information: the x of
     * those customers is set to 0 in a copy, which the fit skips. */
    double *gx = malloc((d->n ? d->n : 1) * sizeof(*gx));
    if (gx == NULL) {
        fprintf(stderr, "custpulse: fit: out of memory\n");
        return -1;
    }
    size_t used = 0;
    for (size_t i = 0; i < d->n; i++) {
        int ok = d->x[i] > 0 && d->zbar[i] > 0 && isfinite(d->zbar[i]);
        gx[i] = ok ? d->x[i] : 0.0;
        used += ok;
    }
    cp_btyd_data_t gdata = {gx, d->t_x, d->T, d->zbar, d->n, NULL};
    st = used < MIN_REPEAT ? CP_BTYD_EINVAL
                           : cp_btyd_gg_fit(&gdata, NULL, &out->gg);
    free(gx);
    if (used < MIN_REPEAT)
        fprintf(stderr,
                "custpulse: fit: too few customers for Gamma-Gamma: %zu "
                "with a repeat purchase of positive value, at least %d "
                "needed\n",
                used, MIN_REPEAT);
    else if (st != CP_BTYD_OK)
        fprintf(stderr, "custpulse: fit: Gamma-Gamma fit failed: %s\n",
                cp_btyd_status_str(st));
    return st == CP_BTYD_OK ? 0 : -1;
}

static void print_fit(const fit_out_t *o)
{
    const cp_btyd_fit_t *bg = &o->bg;
    const cp_btyd_gg_fit_t *gg = &o->gg;
    printf("rows = %zu\n", o->rows);
    print_param("r", bg->par.r, bg->se.r);
    print_param("alpha", bg->par.alpha, bg->se.alpha);
    print_param("a", bg->par.a, bg->se.a);
    print_param("b", bg->par.b, bg->se.b);
    printf("loglik = %.4f\n", bg->info.loglik);
    print_param("p", gg->par.p, gg->se.p);
    print_param("q", gg->par.q, gg->se.q);
    print_param("v", gg->par.v, gg->se.v);
    printf("gg_customers = %zu\ngg_loglik = %.4f\n", gg->info.n_used,
           gg->info.loglik);
    if (!bg->info.se_ok || !gg->info.se_ok)
        cp_log(CP_LOG_WARN,
               "fit: standard errors not available (Hessian not positive "
               "definite: an optimum on a boundary)",
               CP_LB("purchase_model", bg->info.se_ok),
               CP_LB("gamma_gamma", gg->info.se_ok), CP_LEND);
}

/* HSET arguments, values formatted into the struct. */
#define HSET_MAX 20
typedef struct hset_s {
    const char *argv[2 + 2 * HSET_MAX];
    size_t len[2 + 2 * HSET_MAX];
    char val[HSET_MAX][32];
    int argc;
} hset_t;

static void hset_add(hset_t *h, const char *field, const char *value)
{
    h->argv[h->argc] = field;
    h->len[h->argc++] = strlen(field);
    h->argv[h->argc] = value;
    h->len[h->argc++] = strlen(value);
}

static void hset_num(hset_t *h, const char *field, double v)
{
    char *s = h->val[(h->argc - 2) / 2];
    snprintf(s, sizeof(h->val[0]), "%.17g", v);
    hset_add(h, field, s);
}

static void hset_int(hset_t *h, const char *field, int64_t v)
{
    char *s = h->val[(h->argc - 2) / 2];
    snprintf(s, sizeof(h->val[0]), "%" PRId64, v);
    hset_add(h, field, s);
}

/* Writes <prefix>btyd in one MULTI/EXEC (HSET every field, HINCRBY
 * version 1). Returns the new version, or -1 after a message. */
static int64_t write_params(redisContext *c, const char *key,
                            const fit_out_t *o)
{
    hset_t h = {.argv = {"HSET", key}, .argc = 2};
    h.len[0] = 4;
    h.len[1] = strlen(key);
    char at[11];
    cp_time_format_date(o->at, at, sizeof(at));
    hset_add(&h, "model", o->model);
    hset_add(&h, "unit", o->unit);
    hset_num(&h, "r", o->bg.par.r);
    hset_num(&h, "alpha", o->bg.par.alpha);
    hset_num(&h, "a", o->bg.par.a);
    hset_num(&h, "b", o->bg.par.b);
    hset_num(&h, "p", o->gg.par.p);
    hset_num(&h, "q", o->gg.par.q);
    hset_num(&h, "v", o->gg.par.v);
    hset_num(&h, "loglik", o->bg.info.loglik);
    hset_num(&h, "gg_loglik", o->gg.info.loglik);
    hset_int(&h, "n", (int64_t)o->n);
    hset_int(&h, "gg_n", (int64_t)o->gg.info.n_used);
    hset_add(&h, "source", o->source);
    hset_add(&h, "at", at);
    hset_int(&h, "fitted_at_ms", cp_time_wall_ms());

    int ok = redisAppendCommand(c, "MULTI") == REDIS_OK &&
             redisAppendCommandArgv(c, h.argc, h.argv, h.len) == REDIS_OK &&
             redisAppendCommand(c, "HINCRBY %s version 1", key) == REDIS_OK &&
             redisAppendCommand(c, "EXEC") == REDIS_OK;
    redisReply *r[4] = {NULL};
    int64_t version = -1;
    for (int i = 0; i < 4 && ok; i++)
        ok = redisGetReply(c, (void **)&r[i]) == REDIS_OK &&
             r[i]->type != REDIS_REPLY_ERROR;
    if (ok && r[3]->type == REDIS_REPLY_ARRAY && r[3]->elements == 2 &&
        r[3]->element[1]->type == REDIS_REPLY_INTEGER)
        version = r[3]->element[1]->integer;
    if (version < 0) {
        const redisReply *e = NULL;
        for (int i = 0; i < 4 && r[i]; i++)
            if (r[i]->type == REDIS_REPLY_ERROR)
                e = r[i];
        if (!e && r[3] && r[3]->type == REDIS_REPLY_ARRAY &&
            r[3]->elements == 2 && r[3]->element[1]->type == REDIS_REPLY_ERROR)
            e = r[3]->element[1]; /* e.g. version not an integer */
        fprintf(stderr, "custpulse: fit: writing %s failed: %s\n", key,
                e        ? e->str
                : c->err ? c->errstr
                         : "unexpected reply");
    }
    for (int i = 0; i < 4; i++)
        freeReplyObject(r[i]);
    return version;
}

static void print_counts(const fit_out_t *o, const fit_data_t *d)
{
    char at[11];
    cp_time_format_date(o->at, at, sizeof(at));
    printf("source = %s\nmodel = %s\nunit = %s\nat = %s\n", o->source, o->model,
           o->unit, at);
    printf("customers = %zu\nrepeat_customers = %zu\nexcluded = %zu\n", d->n,
           d->repeat, d->excluded);
    if (!strcmp(o->source, "redis"))
        printf("keys = %zu\nno_orders = %zu\nskipped = %zu\n"
               "approximated = %zu\n",
               d->keys, d->no_orders, d->skipped, d->approximated);
}

/* Writes the parameters unless dry_run; 0 or 1 (the exit code). */
static int fit_write(const cp_config_t *cfg, const cp_fit_args_t *args,
                     redisContext **c, cp_fit_connect_fn *connect,
                     const fit_out_t *o)
{
    if (args->dry_run)
        return 0;
    if (*c == NULL && (*c = connect(cfg)) == NULL)
        return 1;
    cp_buf_t key;
    cp_buf_init(&key);
    cp_buf_printf(&key, "%sbtyd", cfg->redis_prefix);
    int64_t version = cp_buf_failed(&key) ? -1 : write_params(*c, key.data, o);
    if (version >= 0)
        printf("written = %s version %" PRId64 "\n", key.data, version);
    cp_buf_free(&key);
    return version >= 0 ? 0 : 1;
}

int cp_fit_run(const cp_config_t *cfg, const cp_fit_args_t *args,
               cp_fit_connect_fn *connect)
{
    if (cfg->btyd_model < 0 ||
        (size_t)cfg->btyd_model >= COUNT_OF(fit_models) || cfg->btyd_unit < 0 ||
        (size_t)cfg->btyd_unit >= COUNT_OF(fit_units)) {
        fprintf(stderr, "custpulse: fit: btyd.model/btyd.unit out of range\n");
        return 1;
    }
    double unit = fit_units[cfg->btyd_unit].days;
    fit_out_t out = {.model = fit_models[cfg->btyd_model].name,
                     .unit = fit_units[cfg->btyd_unit].name,
                     .source = args->csv ? "csv" : "redis"};
    fit_data_t d = {0};
    redisContext *c = NULL;
    int64_t t0 = cp_time_mono_ms();
    int rc = 1;
    if (args->csv ? csv_load(args->csv, args, unit, &d, &out.at)
                  : (c = connect(cfg)) == NULL ||
                        redis_load(c, cfg, args, unit, &d, &out.at))
        goto done;
    int64_t t1 = cp_time_mono_ms();
    out.n = d.n;
    print_counts(&out, &d);
    printf("read_ms = %" PRId64 "\n", t1 - t0);
    fflush(stdout);
    if (fit_estimate(fit_models[cfg->btyd_model].model, &d, &out) != 0)
        goto done;
    int64_t t2 = cp_time_mono_ms();
    print_fit(&out);
    printf("fit_ms = %" PRId64 "\n", t2 - t1);
    rc = fit_write(cfg, args, &c, connect, &out);
done:
    if (fflush(stdout) != 0)
        rc = 1;
    redisFree(c);
    data_free(&d);
    return rc;
}
