/*
 * time.c - epoch milliseconds, RFC 3339 and day boundaries in a time zone.
 *
 * Calendar arithmetic is done by hand (days from/to a civil date, after
 * Howard Hinnant's derivation) so it is exact for any year and needs
 * neither strptime nor timegm. Only IANA zones need the C library: their
 * rules live in the TZ database, which localtime_r reads.
 */
#include "cp_time.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MS_PER_DAY 86400000LL

/* ------------------------------------------------------------- calendar */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d. Years are
 * counted from March so the leap day is the last day of its year; an "era"
 * is the 400-year cycle of 146097 days. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400; /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* 0..146096 */

    return era * 146097 + doe - 719468;
}

/* Inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153; /* month from March, 0..11 */

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ------------------------------------------------------------- RFC 3339 */

/* Reads exactly n digits at s into *v; 0 on success, -1 otherwise. */
static int read_num(const char *s, int n, int *v)
{
    int r = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        r = r * 10 + (s[i] - '0');
    }
    *v = r;
    return 0;
}

typedef struct {
    int year, mon, day, hour, min, sec, ms;
    int off_min; /* local minus UTC, minutes */
} rfc3339_t;

/* "YYYY-MM-DD" at s (10 bytes). */
static int parse_date(const char *s, rfc3339_t *t)
{
    if (read_num(s, 4, &t->year) || s[4] != '-' ||
        read_num(s + 5, 2, &t->mon) || s[7] != '-' ||
        read_num(s + 8, 2, &t->day))
        return -1;
    if (t->mon < 1 || t->mon > 12)
        return -1;
    if (t->day < 1 || t->day > days_in_month(t->year, t->mon))
        return -1;
    return 0;
}

/* "HH:MM:SS" at s (8 bytes). A leap second (60) becomes 59.999 later. */
static int parse_clock(const char *s, rfc3339_t *t)
{
    if (read_num(s, 2, &t->hour) || s[2] != ':' ||
        read_num(s + 3, 2, &t->min) || s[5] != ':' ||
        read_num(s + 6, 2, &t->sec))
        return -1;
    if (t->hour > 23 || t->min > 59 || t->sec > 60)
        return -1;
    return 0;
}

/* Optional ".d{1,9}" at s[*pos..len): keeps the first three digits as ms
 * (truncation, which is the floor for a non-negative fraction). */
static int parse_frac(const char *s, size_t len, size_t *pos, rfc3339_t *t)
{
    size_t p = *pos, n = 0;

    t->ms = 0;
    if (p >= len || s[p] != '.')
        return 0;
    p++;
    while (p + n < len && s[p + n] >= '0' && s[p + n] <= '9') {
        if (n < 3)
            t->ms = t->ms * 10 + (s[p + n] - '0');
        n++;
    }
    if (n < 1 || n > 9)
        return -1;
    for (size_t i = n; i < 3; i++)
        t->ms *= 10;
    *pos = p + n;
    return 0;
}

/* "Z", "z" or "+hh:mm" / "-hh:mm" ending exactly at len. */
static int parse_zone(const char *s, size_t len, size_t pos, rfc3339_t *t)
{
    int hh, mm;

    if (pos + 1 == len && (s[pos] == 'Z' || s[pos] == 'z')) {
        t->off_min = 0;
        return 0;
    }
    if (pos + 6 != len || (s[pos] != '+' && s[pos] != '-'))
        return -1;
    if (read_num(s + pos + 1, 2, &hh) || s[pos + 3] != ':' ||
        read_num(s + pos + 4, 2, &mm) || hh > 23 || mm > 59)
        return -1;
    t->off_min = (hh * 60 + mm) * (s[pos] == '-' ? -1 : 1);
    return 0;
}

static int parse_fields(const char *s, size_t len, rfc3339_t *t)
{
    size_t pos = 19;

    if (len < 20 || parse_date(s, t) != 0)
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -1;
    if (parse_clock(s + 11, t) != 0)
        return -1;
    if (parse_frac(s, len, &pos, t) != 0)
        return -1;
    return parse_zone(s, len, pos, t);
}

cp_err_t cp_time_parse_rfc3339(const char *s, size_t len, int64_t *ms_out)
{
    /* The accepted UTC range: 1970-01-01T00:00:00Z up to 9999-12-31
     * 23:59:59.999Z, checked after the offset is applied. */
    static const int64_t max_ms = 253402300800000LL; /* 10000-01-01 */
    rfc3339_t t;

    if (parse_fields(s, len, &t) != 0)
        return CP_EPARSE;
    if (t.sec == 60) {
        t.sec = 59;
        t.ms = 999;
    }
    int64_t secs = days_from_civil(t.year, t.mon, t.day) * 86400 +
                   t.hour * 3600 + t.min * 60 + t.sec - (int64_t)t.off_min * 60;
    int64_t ms = secs * 1000 + t.ms;

    if (ms < 0 || ms >= max_ms)
        return CP_ERANGE;
    *ms_out = ms;
    return CP_OK;
}

size_t cp_time_format_utc(int64_t ms, char *buf, size_t size)
{
    int64_t days = floor_div(ms, MS_PER_DAY);
    int64_t in_day = ms - days * MS_PER_DAY;
    int64_t y;
    int m, d;

    if (size < 25)
        return 0;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return 0;
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, m, d,
             (int)(in_day / 3600000), (int)(in_day / 60000 % 60),
             (int)(in_day / 1000 % 60), (int)(in_day % 1000));
    return 24;
}

cp_err_t cp_time_parse_date(const char *s, size_t len, int64_t *day_out)
{
    rfc3339_t t;

    if (len != 10 || parse_date(s, &t) != 0)
        return CP_EPARSE;
    int64_t day = days_from_civil(t.year, t.mon, t.day);
    if (day < 0)
        return CP_ERANGE;
    *day_out = day;
    return CP_OK;
}

size_t cp_time_format_date(int64_t day, char *buf, size_t size)
{
    /* 0000-01-01 and 9999-12-31; the bounds also keep civil_from_days
     * clear of overflow. */
    static const int64_t min_day = -719528, max_day = 2932896;
    int64_t y;
    int m, d;

    if (size < 11 || day < min_day || day > max_day)
        return 0;
    civil_from_days(day, &y, &m, &d);
    snprintf(buf, size, "%04d-%02d-%02d", (int)y, m, d);
    return 10;
}

/* ---------------------------------------------------------------- clocks */

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cp_time_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t cp_time_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* ------------------------------------------------------------ time zones */

#define CP_ZONEINFO_DIR "/usr/share/zoneinfo"

typedef enum { TZ_FIXED, TZ_IANA } tz_kind_t;

struct cp_tz_s {
    tz_kind_t kind;
    int32_t off_sec;         /* TZ_FIXED (UTC is offset 0) */
    char spec[PATH_MAX + 1]; /* TZ_IANA: ":" + zoneinfo file path */
};

/* The C library keeps one current zone per process (TZ + tzset), so IANA
 * lookups serialise on this mutex and re-point TZ only when the zone
 * differs from the one last applied. custpulse uses one zone per process,
 * so after start-up that never happens again. */
static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static char tz_applied[PATH_MAX + 1];

/* Points the process at spec; caller holds tz_lock. */
static void tz_apply_locked(const char *spec)
{
    if (strcmp(tz_applied, spec) == 0)
        return;
    setenv("TZ", spec, 1);
    tzset();
    snprintf(tz_applied, sizeof(tz_applied), "%s", spec);
}

/* "+hh:mm" / "-hh:mm" with hh 0..23, mm 0..59; 0 on success. */
static int parse_fixed_offset(const char *name, int32_t *off_sec)
{
    rfc3339_t t;

    if (strlen(name) != 6 || parse_zone(name, 6, 0, &t) != 0)
        return -1;
    *off_sec = t.off_min * 60;
    return 0;
}

/* An IANA name is a relative path of [A-Za-z0-9_+-] components. Rejecting
 * everything else keeps the name inside the zoneinfo directory. */
static int iana_name_ok(const char *name)
{
    if (name[0] == '\0' || name[0] == '/' || strstr(name, "..") != NULL)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-' ||
                 c == '/';
        if (!ok || (c == '/' && p[1] == '/'))
            return 0;
    }
    return 1;
}

/* The file must be a regular TZif file: glibc silently falls back to UTC
 * for anything else, which would shift every day boundary unnoticed. */
static int is_tzif_file(const char *path)
{
    struct stat st;
    char magic[4];
    FILE *f;
    int ok;

    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    fclose(f);
    return ok;
}

static void set_err(char *errstr, size_t size, const char *name,
                    const char *why)
{
    if (errstr != NULL && size > 0)
        snprintf(errstr, size, "unknown time zone '%s': %s", name, why);
}

cp_tz_t *cp_tz_new(const char *name, char *errstr, size_t errstr_size)
{
    cp_tz_t tz = {.kind = TZ_FIXED, .off_sec = 0};
    cp_tz_t *out;

    if (name == NULL) {
        set_err(errstr, errstr_size, "(null)", "no name");
        return NULL;
    }
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Z") == 0) {
        /* UTC is offset 0 */
    } else if (name[0] == '+' || name[0] == '-') {
        if (parse_fixed_offset(name, &tz.off_sec) != 0) {
            set_err(errstr, errstr_size, name, "expected +hh:mm or -hh:mm");
            return NULL;
        }
    } else {
        int n;

        if (!iana_name_ok(name)) {
            set_err(errstr, errstr_size, name, "not a zone name");
            return NULL;
        }
        n = snprintf(tz.spec, sizeof(tz.spec), ":%s/%s", CP_ZONEINFO_DIR, name);
        if (n < 0 || (size_t)n >= sizeof(tz.spec) ||
            !is_tzif_file(tz.spec + 1)) {
            set_err(errstr, errstr_size, name, "not found in " CP_ZONEINFO_DIR);
            return NULL;
        }
        tz.kind = TZ_IANA;
    }

    out = malloc(sizeof(*out));
    if (out == NULL) {
        set_err(errstr, errstr_size, name, "out of memory");
        return NULL;
    }
    *out = tz;
    if (out->kind == TZ_IANA) {
        /* Apply now, normally during single-threaded start-up, so the
         * setenv() is over before other threads could call getenv(). */
        pthread_mutex_lock(&tz_lock);
        tz_apply_locked(out->spec);
        pthread_mutex_unlock(&tz_lock);
    }
    return out;
}

void cp_tz_free(cp_tz_t *tz)
{
    free(tz);
}

/* Local time of the second `secs` in an IANA zone; 0, or -1 for years
 * beyond int. */
static int iana_local(const cp_tz_t *tz, int64_t secs, struct tm *tm)
{
    time_t t = (time_t)secs;
    int ok;

    pthread_mutex_lock(&tz_lock);
    tz_apply_locked(tz->spec);
    ok = localtime_r(&t, tm) != NULL;
    pthread_mutex_unlock(&tz_lock);
    return ok ? 0 : -1;
}

/* Local date of the second `secs` in an IANA zone, as a day number. */
static int64_t iana_day(const cp_tz_t *tz, int64_t secs)
{
    struct tm tm;

    if (iana_local(tz, secs, &tm) != 0) /* fall back to UTC */
        return floor_div(secs, 86400);
    return days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1,
                           tm.tm_mday);
}

int64_t cp_tz_day(const cp_tz_t *tz, int64_t ms)
{
    if (tz->kind == TZ_IANA)
        return iana_day(tz, floor_div(ms, 1000));
    return floor_div(ms + (int64_t)tz->off_sec * 1000, MS_PER_DAY);
}

/* ---------------------------------------------------------- day starts */

/* UTC offset in seconds of an IANA zone at `secs` (local - UTC). */
static int64_t iana_offset(const cp_tz_t *tz, int64_t secs)
{
    struct tm tm;

    if (iana_local(tz, secs, &tm) != 0)
        return 0;
    int64_t local =
        days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) *
            86400 +
        tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return local - secs;
}

/* A day boundary: s starts day (or a later one) and s - 1 is before it. */
static int is_day_start(const cp_tz_t *tz, int64_t day, int64_t s)
{
    return iana_day(tz, s) >= day && iana_day(tz, s - 1) < day;
}

/* Offsets are within about +-15 h (and a whole day once, Alaska 1867):
 * every start of `day` lies within this many seconds of day * 86400. */
#define DAY_START_REACH (30 * 3600)
/* Scan step: shorter than any DST change (>= 30 minutes), so no interval
 * of the day being started can hide between two probes. */
#define DAY_START_STEP (15 * 60)

/* The first second of day by a scan and a bisection (the slow path). */
static int64_t iana_day_start_scan(const cp_tz_t *tz, int64_t day)
{
    int64_t lo = day * 86400 - DAY_START_REACH;
    int64_t hi = lo;
    if (iana_day(tz, lo) >= day)
        return lo; /* not a real zone */
    while (hi < day * 86400 + DAY_START_REACH && iana_day(tz, hi) < day)
        hi += DAY_START_STEP;
    if (iana_day(tz, hi) < day)
        return hi;            /* no such day in reach: not a real zone */
    lo = hi - DAY_START_STEP; /* iana_day(lo) < day, no earlier start */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (iana_day(tz, mid) >= day)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* One offset over the whole reach (sampled at both ends and the middle;
 * two changes that cancel out between samples are not seen - no zone has
 * them): local midnight. Otherwise, a DST or zone change near the day:
 * the scan. */
static int64_t iana_day_start(const cp_tz_t *tz, int64_t day)
{
    int64_t base = day * 86400;
    int64_t off = iana_offset(tz, base);
    if (iana_offset(tz, base - DAY_START_REACH) == off &&
        iana_offset(tz, base + DAY_START_REACH) == off &&
        is_day_start(tz, day, base - off))
        return base - off;
    return iana_day_start_scan(tz, day);
}

int64_t cp_tz_day_start(const cp_tz_t *tz, int64_t day)
{
    if (day > CP_TZ_DAY_MAX)
        return INT64_MAX;
    if (day < -CP_TZ_DAY_MAX)
        return INT64_MIN;
    if (tz->kind == TZ_IANA)
        return iana_day_start(tz, day) * 1000;
    return day * MS_PER_DAY - (int64_t)tz->off_sec * 1000;
}
