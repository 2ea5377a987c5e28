/*
 * config.c - the configuration table and everything derived from it.
 *
 * config_table[] is the single source of truth: cp_config_new() applies
 * its defaults through the same parser as user input, cp_config_set()
 * validates against it, and cp_config_list() prints it as the reference
 * (docs/config.md; a unit test keeps that file equal to the output).
 * `kafka.*` keys are not in the table: they are kept as given for
 * librdkafka, which validates them.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cp_time.h"
#include "money.h"

/* ------------------------------------------------------------- the table */

typedef enum {
    CT_STRING, /* char *, non-empty unless CF_EMPTY_OK */
    CT_SECRET, /* char *, never printed (not even its default) */
    CT_INT,    /* int or int64_t (by field size), min..max */
    CT_ENUM,   /* an int-sized enum, index into values[] */
    CT_DECIMAL /* char *, a money amount checked in cp_config_finalize */
} ctype_t;

#define CF_EMPTY_OK 0x1 /* CT_STRING: "" is a valid value */
#define CF_NOT_ZERO 0x2 /* CT_INT: 0 is excluded from min..max */

typedef struct {
    const char *name;
    ctype_t type;
    const char *def; /* default, in the text form a user would write */
    int64_t min, max;
    const char *const *values; /* CT_ENUM: NULL-terminated, index = value */
    size_t off, size;          /* the field in cp_config_t */
    int flags;
    const char *range_doc; /* overrides the generated range column */
    const char *desc;
} centry_t;

/* One line per entry kind; clang-format would spread them out. */
/* clang-format off */
#define FIELD(m) offsetof(cp_config_t, m), sizeof(((cp_config_t *)0)->m)
#define E_STR(n, m, d, fl, rd, ds)                                             \
    {n, CT_STRING, d, 0, 0, NULL, FIELD(m), fl, rd, ds}
#define E_SECRET(n, m, ds) {n, CT_SECRET, "", 0, 0, NULL, FIELD(m), 0, NULL, ds}
#define E_INT(n, m, d, lo, hi, fl, ds)                                         \
    {n, CT_INT, d, lo, hi, NULL, FIELD(m), fl, NULL, ds}
#define E_ENUM(n, m, d, v, ds) {n, CT_ENUM, d, 0, 0, v, FIELD(m), 0, NULL, ds}
#define E_DEC(n, m, d, rd, ds)                                                 \
    {n, CT_DECIMAL, d, 0, 0, NULL, FIELD(m), 0, rd, ds}
/* clang-format on */

static const char *const clock_values[] = {"wall", "event", NULL};
static const char *const ref_values[] = {"live", "fixed", NULL};
static const char *const level_values[] = {"error", "warn", "info", "debug",
                                           NULL};

/* dedup.* bounds are scoring's CP_DEDUP_MAX (128); common/ does not include
 * scoring/, so the number is repeated here. */
static const centry_t config_table[] = {
    E_STR("topic.orders", topic_orders, "customer.orders", 0, NULL,
          "Input topic of order events."),
    E_STR("topic.browsing", topic_browsing, "customer.browsing", 0, NULL,
          "Input topic of browsing events (reserved)."),
    E_STR("topic.support", topic_support, "customer.support", 0, NULL,
          "Input topic of support events (reserved)."),
    E_STR("topic.segments", topic_segments, "customer.segment-changes", 0, NULL,
          "Output topic of segment changes."),
    E_STR("topic.churn", topic_churn, "customer.churn-warnings", 0, NULL,
          "Output topic of churn warnings."),
    E_STR("topic.dlq", topic_dlq, "custpulse.dlq", 0, NULL,
          "Dead-letter topic for invalid input messages."),
    E_INT("topic.partitions", topic_partitions, "3", 1, 10000, 0,
          "Partitions of the output and DLQ topics created at start-up."),
    E_INT("topic.replication", topic_replication, "-1", -1, 32, CF_NOT_ZERO,
          "Replication factor of the topics created at start-up; -1 = "
          "broker default."),
    E_STR("redis.host", redis_host, "127.0.0.1", 0, NULL,
          "Redis host name or address."),
    E_INT("redis.port", redis_port, "6379", 1, 65535, 0, "Redis port."),
    E_SECRET("redis.password", redis_password,
             "Redis password (AUTH); empty for none. Never printed."),
    E_INT("redis.db", redis_db, "0", 0, 1000, 0,
          "Redis database number (SELECT)."),
    E_INT("redis.timeout_ms", redis_timeout_ms, "2000", 10, 600000, 0,
          "Deadline per Redis command, in milliseconds."),
    E_STR("redis.key_prefix", redis_prefix, "cp:", CF_EMPTY_OK, NULL,
          "Prefix of every Redis key."),
    E_INT("redis.wait_replicas", redis_wait_replicas, "0", 0, 100, 0,
          "Replicas that must acknowledge a batch's writes (WAIT) before "
          "its outputs are produced and its offsets committed; 0 = the "
          "primary's acknowledgement suffices."),
    E_INT("redis.wait_timeout_ms", redis_wait_timeout_ms, "1000", 1, 600000, 0,
          "Timeout of one WAIT; a batch short of replicas waits again "
          "until they acknowledge."),
    E_STR("currency", currency, "USD", 0,
          "ISO 4217 code with known minor units",
          "Reporting currency; orders in other currencies go to the DLQ."),
    E_STR("timezone", timezone, "UTC", 0,
          "`UTC`, `+hh:mm`, `-hh:mm` or an IANA name",
          "Time zone of day boundaries (recency in days)."),
    E_ENUM("clock", clock, "wall", clock_values,
           "Source of \"now\": `wall` = system clock, read once per batch; "
           "`event` = greatest event time seen."),
    E_ENUM("rfm.reference", rfm_reference, "live", ref_values,
           "What the RFM segment compares with: live population averages "
           "or the `rfm.fixed.*` values."),
    E_INT("rfm.fixed.recency_days", rfm_fixed_recency_days, "90", 0, 100000, 0,
          "Fixed reference recency, in days (`rfm.reference = fixed`)."),
    E_INT("rfm.fixed.frequency", rfm_fixed_frequency, "2", 1, 1000000000, 0,
          "Fixed reference frequency, in orders (`rfm.reference = fixed`)."),
    E_DEC("rfm.fixed.monetary", rfm_fixed_monetary, "100.00",
          "decimal >= 0, at most the currency's minor digits",
          "Fixed reference monetary value, in currency units "
          "(`rfm.reference = fixed`)."),
    E_INT("dedup.event_ids", dedup_event_ids, "16", 1, 128, 0,
          "Recent event ids remembered per customer for de-duplication."),
    E_INT("dedup.orders", dedup_orders, "32", 1, 128, 0,
          "Recent orders remembered per customer for de-duplication."),
    E_INT("batch.size", batch_size, "1000", 1, 100000, 0,
          "Most input messages per batch."),
    E_INT("input.max_bytes", input_max_bytes, "65536", 64, 10485760, 0,
          "Largest input message value in bytes; larger ones go to the DLQ."),
    E_STR("output.source", output_source, "custpulse", 0, NULL,
          "CloudEvents `source` of output events."),
    E_ENUM("log.level", log_level, "info", level_values,
           "Log threshold; at `debug` customer ids are logged unhashed."),
    E_SECRET("log.id_key", log_id_key,
             "Key of the keyed hash (SipHash-2-4) of customer ids in logs; "
             "empty = a random key per process. Never printed."),
    E_INT("stats.interval_ms", stats_interval_ms, "60000", 0, 86400000, 0,
          "Period of the `stats` log line (counters), in milliseconds; "
          "0 = only the final line at exit."),
    E_INT("shutdown.timeout_ms", shutdown_timeout_ms, "10000", 100, 600000, 0,
          "Longest clean shutdown (drain, deliver, commit), in "
          "milliseconds."),
};

#define TABLE_LEN (sizeof(config_table) / sizeof(config_table[0]))
#define KAFKA_PREFIX "kafka."
#define ENV_PREFIX "CUSTPULSE_"

/* -------------------------------------------------------------- helpers */

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...)
{
    va_list ap;

    if (errstr == NULL || size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

static const centry_t *table_find(const char *name)
{
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (strcmp(config_table[i].name, name) == 0)
            return &config_table[i];
    }
    return NULL;
}

static void *field_ptr(cp_config_t *cfg, const centry_t *e)
{
    return (char *)cfg + e->off;
}

static int is_string_type(ctype_t t)
{
    return t == CT_STRING || t == CT_SECRET || t == CT_DECIMAL;
}

/* ------------------------------------------------------------- setters */

static cp_err_t set_string(cp_config_t *cfg, const centry_t *e,
                           const char *value, char *errstr, size_t size)
{
    char **slot = field_ptr(cfg, e);
    char *copy;

    if (value[0] == '\0' && e->type != CT_SECRET && !(e->flags & CF_EMPTY_OK)) {
        seterr(errstr, size, "%s: must not be empty", e->name);
        return CP_EPARSE;
    }
    copy = strdup(value);
    if (copy == NULL) {
        seterr(errstr, size, "%s: out of memory", e->name);
        return CP_ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return CP_OK;
}

/* Whole-string strtoll: no leading space, no trailing junk, no overflow. */
static cp_err_t parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s[0] == '\0' || isspace((unsigned char)s[0]))
        return CP_EPARSE;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end != '\0')
        return CP_EPARSE;
    if (errno == ERANGE)
        return CP_ERANGE;
    *out = v;
    return CP_OK;
}

static cp_err_t set_int(cp_config_t *cfg, const centry_t *e, const char *value,
                        char *errstr, size_t size)
{
    int64_t v;
    cp_err_t err = parse_i64(value, &v);

    if (err == CP_EPARSE) {
        seterr(errstr, size, "%s: '%s' is not an integer", e->name, value);
        return err;
    }
    if (err != CP_OK || v < e->min || v > e->max ||
        (v == 0 && (e->flags & CF_NOT_ZERO))) {
        seterr(errstr, size, "%s: '%s' is out of range %lld..%lld%s", e->name,
               value, (long long)e->min, (long long)e->max,
               (e->flags & CF_NOT_ZERO) ? " (0 excluded)" : "");
        return CP_ERANGE;
    }
    if (e->size == sizeof(int64_t)) {
        *(int64_t *)field_ptr(cfg, e) = v;
    } else {
        *(int *)field_ptr(cfg, e) = (int)v;
    }
    return CP_OK;
}

static cp_err_t set_enum(cp_config_t *cfg, const centry_t *e, const char *value,
                         char *errstr, size_t size)
{
    for (int i = 0; e->values[i] != NULL; i++) {
        if (strcmp(e->values[i], value) == 0) {
            /* The enum fields are int-sized (static_assert below). */
            memcpy(field_ptr(cfg, e), &i, sizeof(i));
            return CP_OK;
        }
    }
    seterr(errstr, size, "%s: '%s' is not one of the allowed values", e->name,
           value);
    return CP_EPARSE;
}

_Static_assert(sizeof(cp_clock_mode_t) == sizeof(int), "enum is int-sized");
_Static_assert(sizeof(cp_ref_mode_t) == sizeof(int), "enum is int-sized");
_Static_assert(sizeof(cp_log_level_t) == sizeof(int), "enum is int-sized");

static cp_err_t set_entry(cp_config_t *cfg, const centry_t *e,
                          const char *value, char *errstr, size_t size)
{
    switch (e->type) {
    case CT_INT:
        return set_int(cfg, e, value, errstr, size);
    case CT_ENUM:
        return set_enum(cfg, e, value, errstr, size);
    default:
        return set_string(cfg, e, value, errstr, size);
    }
}

/* Sets kafka.<name>; an existing name keeps its place, with the new value. */
static cp_err_t set_kafka(cp_config_t *cfg, const char *name, const char *value,
                          char *errstr, size_t size)
{
    char *v = strdup(value);
    cp_kv_t *grown;

    if (v == NULL)
        goto nomem;
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        if (strcmp(cfg->kafka[i].key, name) == 0) {
            free(cfg->kafka[i].value);
            cfg->kafka[i].value = v;
            return CP_OK;
        }
    }
    grown = realloc(cfg->kafka, (cfg->kafka_cnt + 1) * sizeof(*grown));
    if (grown == NULL)
        goto nomem;
    cfg->kafka = grown;
    grown[cfg->kafka_cnt].key = strdup(name);
    if (grown[cfg->kafka_cnt].key == NULL)
        goto nomem;
    grown[cfg->kafka_cnt].value = v;
    cfg->kafka_cnt++;
    return CP_OK;
nomem:
    free(v);
    seterr(errstr, size, "kafka.%s: out of memory", name);
    return CP_ENOMEM;
}

cp_err_t cp_config_set(cp_config_t *cfg, const char *key, const char *value,
                       char *errstr, size_t errstr_size)
{
    const centry_t *e;

    if (key == NULL || value == NULL) {
        seterr(errstr, errstr_size, "configuration key or value missing");
        return CP_EINVAL;
    }
    if (strncmp(key, KAFKA_PREFIX, strlen(KAFKA_PREFIX)) == 0) {
        const char *name = key + strlen(KAFKA_PREFIX);

        if (name[0] != '\0')
            return set_kafka(cfg, name, value, errstr, errstr_size);
    } else if ((e = table_find(key)) != NULL) {
        return set_entry(cfg, e, value, errstr, errstr_size);
    }
    seterr(errstr, errstr_size, "unknown configuration key '%s'", key);
    return CP_EUNKNOWNKEY;
}

/* -------------------------------------------------------- new and free */

cp_config_t *cp_config_new(void)
{
    cp_config_t *cfg = calloc(1, sizeof(*cfg));

    if (cfg == NULL)
        return NULL;
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (set_entry(cfg, &config_table[i], config_table[i].def, NULL, 0) !=
            CP_OK) {
            cp_config_free(cfg);
            return NULL;
        }
    }
    cfg->currency_digits = -1; /* until cp_config_finalize */
    return cfg;
}

void cp_config_free(cp_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (is_string_type(config_table[i].type))
            free(*(char **)field_ptr(cfg, &config_table[i]));
    }
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    free(cfg);
}

const char *cp_config_kafka_get(const cp_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        if (strcmp(cfg->kafka[i].key, key) == 0)
            return cfg->kafka[i].value;
    }
    return NULL;
}

/* ---------------------------------------------------------------- -X */

cp_err_t cp_config_set_kv(cp_config_t *cfg, const char *kv, char *errstr,
                          size_t errstr_size)
{
    const char *eq = kv != NULL ? strchr(kv, '=') : NULL;
    char *key;
    cp_err_t err;

    /* Without '=' there is no value, so echoing kv reveals no secret. */
    if (eq == NULL || eq == kv) {
        seterr(errstr, errstr_size, "expected key=value, got '%s'",
               kv != NULL ? kv : "");
        return CP_EPARSE;
    }
    key = strndup(kv, (size_t)(eq - kv));
    if (key == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        return CP_ENOMEM;
    }
    err = cp_config_set(cfg, key, eq + 1, errstr, errstr_size);
    free(key);
    return err;
}

/* ------------------------------------------------------ properties file */

/* Trims ASCII white space at both ends, in place. */
static char *trim(char *s)
{
    char *end = s + strlen(s);

    while (isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* One line of a properties file; errors get the file:line prefix. */
static cp_err_t load_line(cp_config_t *cfg, char *line, const char *where,
                          char *errstr, size_t size)
{
    char msg[512];
    char *key = trim(line), *eq;
    cp_err_t err;

    if (key[0] == '\0' || key[0] == '#')
        return CP_OK;
    eq = strchr(key, '=');
    if (eq == NULL || eq == key) {
        seterr(errstr, size, "%s: expected 'key = value'", where);
        return CP_EPARSE;
    }
    *eq = '\0';
    err = cp_config_set(cfg, trim(key), trim(eq + 1), msg, sizeof(msg));
    if (err != CP_OK)
        seterr(errstr, size, "%s: %s", where, msg);
    return err;
}

cp_err_t cp_config_load_file(cp_config_t *cfg, const char *path, char *errstr,
                             size_t errstr_size)
{
    char where[512];
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    cp_err_t err = CP_OK;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        seterr(errstr, errstr_size, "cannot open '%s': %s", path,
               strerror(errno));
        return CP_EIO;
    }
    while (err == CP_OK && getline(&line, &cap, f) != -1) {
        snprintf(where, sizeof(where), "%s:%ld", path, ++lineno);
        err = load_line(cfg, line, where, errstr, errstr_size);
    }
    if (err == CP_OK && ferror(f)) {
        seterr(errstr, errstr_size, "cannot read '%s'", path);
        err = CP_EIO;
    }
    free(line);
    fclose(f);
    return err;
}

/* ---------------------------------------------------------- environment */

/* 1 when the variable name (after CUSTPULSE_, n bytes) spells key
 * upper-cased with '.' -> '_'. */
static int env_matches(const char *name, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n && key[i] != '\0'; i++) {
        char want = key[i] == '.' ? '_' : (char)toupper((unsigned char)key[i]);

        if (name[i] != want)
            return 0;
    }
    return i == n && key[i] == '\0';
}

/* KAFKA_X_Y (n bytes) -> "kafka.x.y" in out; the caller checks the prefix. */
static char *env_kafka_key(const char *name, size_t n)
{
    size_t plen = strlen(KAFKA_PREFIX);
    char *key = malloc(plen + n + 1);

    if (key == NULL)
        return NULL;
    memcpy(key, KAFKA_PREFIX, plen);
    for (size_t i = 6; i < n; i++) /* skip "KAFKA_" */
        key[plen + i - 6] =
            name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
    key[plen + n - 6] = '\0';
    return key;
}

/* The table key for variable name (n bytes after CUSTPULSE_), as a new
 * string; NULL with *err set when there is none. */
static char *env_key(const char *name, size_t n, cp_err_t *err)
{
    *err = CP_EUNKNOWNKEY;
    if (n > 6 && strncmp(name, "KAFKA_", 6) == 0) {
        char *key = env_kafka_key(name, n);

        if (key == NULL)
            *err = CP_ENOMEM;
        return key;
    }
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (env_matches(name, n, config_table[i].name)) {
            char *key = strdup(config_table[i].name);

            if (key == NULL)
                *err = CP_ENOMEM;
            return key;
        }
    }
    return NULL;
}

static cp_err_t load_env_var(cp_config_t *cfg, const char *var, char *errstr,
                             size_t size)
{
    const char *name = var + strlen(ENV_PREFIX);
    const char *eq = strchr(name, '=');
    size_t vlen = (size_t)(eq - var);
    char msg[512];
    cp_err_t err;
    char *key = env_key(name, (size_t)(eq - name), &err);

    if (key == NULL) {
        seterr(errstr, size, "%s environment variable '%.*s'",
               err == CP_ENOMEM ? "out of memory for" : "unknown", (int)vlen,
               var);
        return err;
    }
    err = cp_config_set(cfg, key, eq + 1, msg, sizeof(msg));
    if (err != CP_OK)
        seterr(errstr, size, "%.*s: %s", (int)vlen, var, msg);
    free(key);
    return err;
}

cp_err_t cp_config_load_env(cp_config_t *cfg, char *const *envp, char *errstr,
                            size_t errstr_size)
{
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *var = envp[i];
        cp_err_t err;

        /* Entries without '=' are not variables; nothing to apply. The
         * test hooks (docs/fault-tolerance.md) are read where they act. */
        if (strncmp(var, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 ||
            strchr(var, '=') == NULL ||
            strncmp(var, "CUSTPULSE_FAILPOINT=", 20) == 0 ||
            strncmp(var, "CUSTPULSE_MOCK_FAULTS=", 22) == 0)
            continue;
        err = load_env_var(cfg, var, errstr, errstr_size);
        if (err != CP_OK)
            return err;
    }
    return CP_OK;
}

/* ------------------------------------------------------------- finalize */

static cp_err_t finalize_currency(cp_config_t *cfg, char *errstr, size_t size)
{
    const char *c = cfg->currency;
    int ok = strlen(c) == 3;

    for (int i = 0; ok && i < 3; i++)
        ok = c[i] >= 'A' && c[i] <= 'Z';
    cfg->currency_digits = ok ? cp_currency_digits(c) : -1;
    if (cfg->currency_digits < 0) {
        seterr(errstr, size, "currency: '%s' is not a supported ISO 4217 code",
               c);
        return CP_EINVAL;
    }
    return CP_OK;
}

static cp_err_t finalize_monetary(cp_config_t *cfg, char *errstr, size_t size)
{
    const char *s = cfg->rfm_fixed_monetary;
    cp_err_t err = cp_money_parse(s, strlen(s), cfg->currency_digits,
                                  &cfg->rfm_fixed_monetary_minor);

    if (err != CP_OK)
        seterr(errstr, size,
               "rfm.fixed.monetary: '%s' is not a valid %s amount: %s", s,
               cfg->currency, cp_err_str(err));
    return err;
}

static cp_err_t finalize_timezone(cp_config_t *cfg, char *errstr, size_t size)
{
    char msg[256];
    cp_tz_t *tz = cp_tz_new(cfg->timezone, msg, sizeof(msg));

    if (tz == NULL) {
        seterr(errstr, size, "timezone: %s", msg);
        return CP_EINVAL;
    }
    cp_tz_free(tz);
    return CP_OK;
}

cp_err_t cp_config_finalize(cp_config_t *cfg, char *errstr, size_t errstr_size)
{
    cp_err_t err = finalize_currency(cfg, errstr, errstr_size);

    if (err == CP_OK)
        err = finalize_monetary(cfg, errstr, errstr_size);
    if (err == CP_OK)
        err = finalize_timezone(cfg, errstr, errstr_size);
    return err;
}

/* ---------------------------------------------------------------- --list */

static const char *type_name(ctype_t t)
{
    static const char *const names[] = {"string", "secret", "integer", "enum",
                                        "decimal"};
    return names[t];
}

/* The range/values column of e. */
static void print_range(FILE *out, const centry_t *e)
{
    if (e->range_doc != NULL) {
        fputs(e->range_doc, out);
    } else if (e->type == CT_INT) {
        fprintf(out, "%lld..%lld%s", (long long)e->min, (long long)e->max,
                (e->flags & CF_NOT_ZERO) ? ", not 0" : "");
    } else if (e->type == CT_ENUM) {
        for (int i = 0; e->values[i] != NULL; i++)
            fprintf(out, "%s`%s`", i > 0 ? ", " : "", e->values[i]);
    } else if (e->type == CT_SECRET || (e->flags & CF_EMPTY_OK)) {
        fputs("may be empty", out);
    } else if (e->type == CT_STRING) {
        fputs("non-empty", out);
    }
}

static void print_entry(FILE *out, const centry_t *e)
{
    fprintf(out, "| `%s` | %s | ", e->name, type_name(e->type));
    /* A secret's default is not shown (it is empty, but the column must
     * never become the place where a secret appears). */
    if (e->type != CT_SECRET && e->def[0] != '\0')
        fprintf(out, "`%s`", e->def);
    fputs(" | ", out);
    print_range(out, e);
    fprintf(out, " | %s |\n", e->desc);
}

void cp_config_list(FILE *out)
{
    fputs("# custpulse configuration\n"
          "\n"
          "Generated from the table in `common/config.c` (the output of\n"
          "`custpulse config --list`); do not edit by hand.\n"
          "\n"
          "Sources, later wins: these defaults, the properties file (`-c "
          "FILE`:\n"
          "`key = value` lines, `#` comments), `CUSTPULSE_<KEY>` environment\n"
          "variables (key upper-cased, `.` -> `_`, e.g. "
          "`CUSTPULSE_REDIS_HOST`),\n"
          "then `-X key=value`. Unknown keys are an error.\n"
          "\n"
          "| key | type | default | range/values | description |\n"
          "|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < TABLE_LEN; i++)
        print_entry(out, &config_table[i]);
    fputs("\n"
          "## kafka.*\n"
          "\n"
          "Keys starting with `kafka.` are not in the table above: they are\n"
          "passed to librdkafka with the prefix removed "
          "(`kafka.bootstrap.servers`\n"
          "-> `bootstrap.servers`), and librdkafka validates them. "
          "`kafka.consumer.*`\n"
          "and `kafka.producer.*` apply to the consumer or the producer "
          "only. Setting\n"
          "a key again replaces its value. In the environment, "
          "`CUSTPULSE_KAFKA_X_Y`\n"
          "sets `kafka.x.y` (lower-cased, `_` -> `.`).\n",
          out);
}
