/*
 * test_common_time.c - RFC 3339 parsing and formatting, clocks, and local
 * day numbers in UTC, fixed offsets and IANA zones (with DST).
 *
 * Expected instants and local dates were computed independently with
 * Python's datetime and zoneinfo. IANA cases need the system tzdata.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_time.h"

/* ------------------------------------------------------------ helpers */

typedef struct {
    const char *s;
    cp_err_t err;
    int64_t ms; /* when err == CP_OK */
} rfc_case_t;

static void run_rfc_cases(const rfc_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t ms = -777;
        /* A heap copy without a NUL: the parser must stay within len
         * (valgrind reports any read past it). */
        size_t len = strlen(cases[i].s);
        char *copy = malloc(len > 0 ? len : 1);
        cp_err_t err;

        memcpy(copy, cases[i].s, len);
        err = cp_time_parse_rfc3339(copy, len, &ms);
        free(copy);
        if (err != cases[i].err)
            fail_msg("'%s': got %s, want %s", cases[i].s, cp_err_name(err),
                     cp_err_name(cases[i].err));
        if (err == CP_OK && ms != cases[i].ms)
            fail_msg("'%s': got %lld, want %lld", cases[i].s, (long long)ms,
                     (long long)cases[i].ms);
        if (err != CP_OK)
            assert_int_equal(ms, -777);
    }
}

static cp_tz_t *tz_ok(const char *name)
{
    char err[128] = "";
    cp_tz_t *tz = cp_tz_new(name, err, sizeof(err));

    if (tz == NULL)
        fail_msg("cp_tz_new(%s): %s", name, err);
    return tz;
}

/* ------------------------------------------------------------ RFC 3339 */

static void test_rfc3339_valid(void **state)
{
    static const rfc_case_t cases[] = {
        {"1970-01-01T00:00:00Z", CP_OK, 0},
        {"2024-03-01T10:15:00+01:00", CP_OK, 1709284500000LL},
        {"2024-03-01t09:15:00z", CP_OK, 1709284500000LL},
        {"2024-03-01 09:15:00Z", CP_OK, 1709284500000LL},
        {"2024-03-01T09:15:00+00:00", CP_OK, 1709284500000LL},
        {"2024-03-01T09:15:00-00:00", CP_OK, 1709284500000LL},
        {"2024-02-29T12:00:00Z", CP_OK, 1709208000000LL},
        {"2000-02-29T00:00:00Z", CP_OK, 951782400000LL},
    };
    (void)state;
    run_rfc_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_rfc3339_fractions(void **state)
{
    static const rfc_case_t cases[] = {
        {"1970-01-01T00:00:01.1Z", CP_OK, 1100},
        {"1970-01-01T00:00:01.12Z", CP_OK, 1120},
        {"1970-01-01T00:00:01.123Z", CP_OK, 1123},
        {"1970-01-01T00:00:01.1239Z", CP_OK, 1123}, /* truncated */
        {"1970-01-01T00:00:01.12399Z", CP_OK, 1123},
        {"1970-01-01T00:00:01.123999Z", CP_OK, 1123},
        {"1970-01-01T00:00:01.1239999Z", CP_OK, 1123},
        {"1970-01-01T00:00:01.12399999Z", CP_OK, 1123},
        {"1970-01-01T00:00:01.999999999Z", CP_OK, 1999},
        {"1970-01-01T00:00:01.000000001Z", CP_OK, 1000},
        {"1970-01-01T00:00:01.0000000001Z", CP_EPARSE, 0}, /* 10 digits */
        {"1970-01-01T00:00:01.Z", CP_EPARSE, 0},
        {"1970-01-01T00:00:01.", CP_EPARSE, 0},
        {"1970-01-01T00:00:01,5Z", CP_EPARSE, 0},
        {"1970-01-01T00:00:01.5+01:00", CP_ERANGE, 0},
        {"1970-01-01T01:00:01.5+01:00", CP_OK, 1500},
    };
    (void)state;
    run_rfc_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_rfc3339_leap_second(void **state)
{
    static const rfc_case_t cases[] = {
        {"2016-12-31T23:59:60Z", CP_OK, 1483228799999LL},
        {"2016-12-31T23:59:60.5Z", CP_OK, 1483228799999LL},
        {"2016-12-31T23:59:59.999Z", CP_OK, 1483228799999LL},
        {"2017-01-01T00:59:60+01:00", CP_OK, 1483228799999LL},
        {"2016-12-31T23:59:61Z", CP_EPARSE, 0},
    };
    (void)state;
    run_rfc_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_rfc3339_offsets(void **state)
{
    static const rfc_case_t cases[] = {
        {"2024-06-15T12:34:56.789+14:00", CP_OK, 1718404496789LL},
        {"2024-06-15T12:34:56.789-00:30", CP_OK, 1718456696789LL},
        {"2024-06-15T12:34:56.789-12:00", CP_OK, 1718498096789LL},
        {"2024-06-15T12:34:56.789+23:59", CP_OK, 1718368556789LL},
        {"2024-06-15T12:34:56+24:00", CP_EPARSE, 0},
        {"2024-06-15T12:34:56+05:60", CP_EPARSE, 0},
        {"2024-06-15T12:34:56+0530", CP_EPARSE, 0},
        {"2024-06-15T12:34:56+05", CP_EPARSE, 0},
        {"2024-06-15T12:34:56+05:3", CP_EPARSE, 0},
        {"2024-06-15T12:34:56 05:30", CP_EPARSE, 0},
        {"2024-06-15T12:34:56+05:30Z", CP_EPARSE, 0},
    };
    (void)state;
    run_rfc_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_rfc3339_calendar(void **state)
{
    static const rfc_case_t cases[] = {
        {"2023-02-29T12:00:00Z", CP_EPARSE, 0},
        {"2100-02-29T00:00:00Z", CP_EPARSE, 0}, /* century, not leap */
        {"2400-02-29T00:00:00Z", CP_OK, 13574563200000LL},
        {"2024-04-31T00:00:00Z", CP_EPARSE, 0},
        {"2024-12-31T00:00:00Z", CP_OK, 1735603200000LL},
        {"2024-00-10T00:00:00Z", CP_EPARSE, 0},
        {"2024-13-10T00:00:00Z", CP_EPARSE, 0},
        {"2024-01-00T00:00:00Z", CP_EPARSE, 0},
        {"2024-01-32T00:00:00Z", CP_EPARSE, 0},
        {"2024-01-01T24:00:00Z", CP_EPARSE, 0},
        {"2024-01-01T23:60:00Z", CP_EPARSE, 0},
    };
    (void)state;
    run_rfc_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_rfc3339_year_bounds(void **state)
{
    static const rfc_case_t cases[] = {
        {"1969-12-31T23:59:59Z", CP_ERANGE, 0},
        {"1969-12-31T23:59:59.999Z", CP_ERANGE, 0},
        {"1970-01-01T00:30:00+01:00", CP_ERANGE, 0},
        {"1969-12-31T23:30:00-01:00", CP_OK, 1800000},
        {"9999-12-31T23:59:59.999Z", CP_OK, 253402300799999LL},
        {"9999-12-31T23:30:00-01:00", CP_ERANGE, 0},
        {"10000-01-01T00:00:00.000+01:00", CP_EPARSE, 0},
        {"0000-01-01T00:00:00Z", CP_ERANGE, 0},
        {"1900-02-28T00:00:00Z", CP_ERANGE, 0},
    };
    (void)state;
    run_rfc_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_rfc3339_syntax(void **state)
{
    static const rfc_case_t cases[] = {
        {"", CP_EPARSE, 0},
        {"2024-03-01", CP_EPARSE, 0},
        {"2024-03-01T10:15:00", CP_EPARSE, 0}, /* no zone */
        {"2024-03-01T10:15Z", CP_EPARSE, 0},
        {"2024-03-01T10:15:00Z ", CP_EPARSE, 0},
        {" 2024-03-01T10:15:00Z", CP_EPARSE, 0},
        {"2024-3-01T10:15:00Z", CP_EPARSE, 0},
        {"2024-03-01X10:15:00Z", CP_EPARSE, 0},
        {"2024/03/01T10:15:00Z", CP_EPARSE, 0},
        {"2024-03-01T10-15-00Z", CP_EPARSE, 0},
        {"2024-03-01T1a:15:00Z", CP_EPARSE, 0},
        {"+024-03-01T10:15:00Z", CP_EPARSE, 0},
        {"2024-03-01T10:15:00UTC", CP_EPARSE, 0},
        {"2024-03-01T10:15:00.123456789012Z", CP_EPARSE, 0},
    };
    (void)state;
    run_rfc_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_rfc3339_reads_exactly_len(void **state)
{
    const char *s = "2024-03-01T09:15:00Zjunk";
    int64_t ms = 0;

    (void)state;
    assert_int_equal(cp_time_parse_rfc3339(s, 20, &ms), CP_OK);
    assert_int_equal(ms, 1709284500000LL);
    assert_int_equal(cp_time_parse_rfc3339(s, 19, &ms), CP_EPARSE);
    assert_int_equal(cp_time_parse_rfc3339(s, 21, &ms), CP_EPARSE);
    assert_int_equal(cp_time_parse_rfc3339(s, 0, &ms), CP_EPARSE);
}

/* ---------------------------------------------------------- formatting */

static void test_format_utc(void **state)
{
    char buf[25];

    (void)state;
    assert_int_equal(cp_time_format_utc(0, buf, sizeof(buf)), 24);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    assert_int_equal(cp_time_format_utc(1483228799999LL, buf, sizeof(buf)), 24);
    assert_string_equal(buf, "2016-12-31T23:59:59.999Z");
    cp_time_format_utc(1709284500000LL, buf, sizeof(buf));
    assert_string_equal(buf, "2024-03-01T09:15:00.000Z");
    cp_time_format_utc(951782400007LL, buf, sizeof(buf));
    assert_string_equal(buf, "2000-02-29T00:00:00.007Z");
    cp_time_format_utc(253402300799999LL, buf, sizeof(buf));
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    cp_time_format_utc(-1, buf, sizeof(buf)); /* floor, not truncation */
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

static void test_format_utc_limits(void **state)
{
    char buf[32];

    (void)state;
    assert_int_equal(cp_time_format_utc(0, buf, 24), 0);
    assert_int_equal(cp_time_format_utc(0, buf, 25), 24);
    assert_int_equal(cp_time_format_utc(253402300800000LL, buf, sizeof(buf)),
                     0); /* year 10000 */
    assert_int_equal(cp_time_format_utc(-62167219200000LL, buf, sizeof(buf)),
                     24); /* 0000-01-01 */
    assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
    assert_int_equal(cp_time_format_utc(-62167219200001LL, buf, sizeof(buf)),
                     0);
}

static void test_format_parse_round_trip(void **state)
{
    char buf[25];

    (void)state;
    /* Steps of a prime number of ms cover every field over 1970..9999. */
    for (int64_t ms = 0; ms < 253402300800000LL; ms += 997001999993LL) {
        int64_t back = -1;

        assert_int_equal(cp_time_format_utc(ms, buf, sizeof(buf)), 24);
        assert_int_equal(cp_time_parse_rfc3339(buf, 24, &back), CP_OK);
        assert_int_equal(back, ms);
    }
}

/* ---------------------------------------------------------------- dates */

static void test_dates(void **state)
{
    char buf[16];
    int64_t day = -1;

    (void)state;
    assert_int_equal(cp_time_parse_date("1970-01-01", 10, &day), CP_OK);
    assert_int_equal(day, 0);
    assert_int_equal(cp_time_parse_date("2024-03-01", 10, &day), CP_OK);
    assert_int_equal(day, 19783);
    assert_int_equal(cp_time_parse_date("2000-02-29", 10, &day), CP_OK);
    assert_int_equal(day, 11016);
    assert_int_equal(cp_time_parse_date("9999-12-31", 10, &day), CP_OK);
    assert_int_equal(day, 2932896);
    day = -1;
    assert_int_equal(cp_time_parse_date("1969-12-31", 10, &day), CP_ERANGE);
    assert_int_equal(cp_time_parse_date("2023-02-29", 10, &day), CP_EPARSE);
    assert_int_equal(cp_time_parse_date("2024-13-01", 10, &day), CP_EPARSE);
    assert_int_equal(cp_time_parse_date("2024-3-01", 9, &day), CP_EPARSE);
    assert_int_equal(cp_time_parse_date("2024/03/01", 10, &day), CP_EPARSE);
    assert_int_equal(cp_time_parse_date("2024-03-01x", 11, &day), CP_EPARSE);
    assert_int_equal(cp_time_parse_date("2024-03-01", 9, &day), CP_EPARSE);
    assert_int_equal(cp_time_parse_date("20240301", 8, &day), CP_EPARSE);
    assert_int_equal(day, -1); /* untouched on errors */

    assert_int_equal(cp_time_format_date(19783, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "2024-03-01");
    assert_int_equal(cp_time_format_date(-1, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "1969-12-31");
    assert_int_equal(cp_time_format_date(2932896, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "9999-12-31");
    assert_int_equal(cp_time_format_date(-719528, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "0000-01-01");
    assert_int_equal(cp_time_format_date(2932897, buf, sizeof(buf)), 0);
    assert_int_equal(cp_time_format_date(-719529, buf, sizeof(buf)), 0);
    assert_int_equal(cp_time_format_date(INT64_MAX, buf, sizeof(buf)), 0);
    assert_int_equal(cp_time_format_date(INT64_MIN, buf, sizeof(buf)), 0);
    assert_int_equal(cp_time_format_date(0, buf, 10), 0);
    for (int64_t d = 0; d <= 2932896; d += 997) {
        int64_t back = -1;

        assert_int_equal(cp_time_format_date(d, buf, sizeof(buf)), 10);
        assert_int_equal(cp_time_parse_date(buf, 10, &back), CP_OK);
        assert_int_equal(back, d);
    }
}

/* -------------------------------------------------------------- clocks */

static void test_clocks(void **state)
{
    int64_t wall = cp_time_wall_ms();
    int64_t m1 = cp_time_mono_ms(), m2 = cp_time_mono_ms();

    (void)state;
    assert_true(wall > 1700000000000LL);   /* after 2023-11 */
    assert_true(wall < 253402300800000LL); /* before year 10000 */
    assert_true(m2 >= m1);
}

/* ---------------------------------------------------------- time zones */

static void test_tz_utc_floor(void **state)
{
    cp_tz_t *tz = tz_ok("UTC");
    cp_tz_t *z = tz_ok("Z");

    (void)state;
    assert_int_equal(cp_tz_day(tz, 0), 0);
    assert_int_equal(cp_tz_day(tz, 86399999), 0);
    assert_int_equal(cp_tz_day(tz, 86400000), 1);
    assert_int_equal(cp_tz_day(tz, -1), -1);
    assert_int_equal(cp_tz_day(tz, -86400000), -1);
    assert_int_equal(cp_tz_day(tz, -86400001), -2);
    assert_int_equal(cp_tz_day(z, 1709284500000LL), 19783); /* 2024-03-01 */
    cp_tz_free(tz);
    cp_tz_free(z);
}

static void test_tz_fixed_offsets(void **state)
{
    cp_tz_t *p8 = tz_ok("+08:00");
    cp_tz_t *m0530 = tz_ok("-05:30");
    cp_tz_t *p14 = tz_ok("+14:00");
    cp_tz_t *m0030 = tz_ok("-00:30");

    (void)state;
    /* 2024-03-01T16:00:00Z is 2024-03-02 00:00 at +08:00 */
    assert_int_equal(cp_tz_day(p8, 1709308800000LL - 1), 19783);
    assert_int_equal(cp_tz_day(p8, 1709308800000LL), 19784);
    /* 2024-06-15T12:34:56.789 local at each offset is day 19889 */
    assert_int_equal(cp_tz_day(p14, 1718404496789LL), 19889);
    assert_int_equal(cp_tz_day(m0030, 1718456696789LL), 19889);
    assert_int_equal(cp_tz_day(m0030, 0), -1); /* 1969-12-31 23:30 */
    assert_int_equal(cp_tz_day(m0030, 1800000), 0);
    assert_int_equal(cp_tz_day(m0530, 19800000 - 1), -1);
    assert_int_equal(cp_tz_day(m0530, 19800000), 0);
    cp_tz_free(p8);
    cp_tz_free(m0530);
    cp_tz_free(p14);
    cp_tz_free(m0030);
}

static void test_tz_iana_dst(void **state)
{
    cp_tz_t *ber = tz_ok("Europe/Berlin");

    (void)state;
    /* winter, CET +01:00 */
    assert_int_equal(cp_tz_day(ber, 1704148200000LL), 19723); /* 23:30 */
    assert_int_equal(cp_tz_day(ber, 1704151800000LL), 19724); /* 00:30 */
    /* night of the spring change */
    assert_int_equal(cp_tz_day(ber, 1711837800000LL), 19812);
    assert_int_equal(cp_tz_day(ber, 1711841400000LL), 19813);
    /* summer, CEST +02:00: 22:30Z is already the next local day */
    assert_int_equal(cp_tz_day(ber, 1719869400000LL), 19905);
    assert_int_equal(cp_tz_day(ber, 1719873000000LL), 19906);
    cp_tz_free(ber);
}

static void test_tz_iana_others(void **state)
{
    cp_tz_t *ny = tz_ok("America/New_York");
    cp_tz_t *kol = tz_ok("Asia/Kolkata");
    cp_tz_t *kir = tz_ok("Pacific/Kiritimati");

    (void)state;
    /* Alternating zones re-points the C library each time. */
    assert_int_equal(cp_tz_day(ny, 1719891000000LL), 19905);
    assert_int_equal(cp_tz_day(kol, 1719858540000LL), 19905);
    assert_int_equal(cp_tz_day(ny, 1719894600000LL), 19906);
    assert_int_equal(cp_tz_day(kol, 1719858600000LL), 19906);
    assert_int_equal(cp_tz_day(kir, 1719827999000LL), 19905);
    assert_int_equal(cp_tz_day(kir, 1719828000000LL), 19906);
    /* before 1970: 1969-07-01T03:00Z is June 30 in New York */
    assert_int_equal(cp_tz_day(ny, -15886800000LL), -185);
    cp_tz_free(ny);
    cp_tz_free(kol);
    cp_tz_free(kir);
}

static void test_tz_rejects(void **state)
{
    static const char *const bad[] = {
        "Nowhere/City",
        "../etc/passwd",
        "/etc/localtime",
        "Europe/../Europe/Berlin",
        "",
        "Europe",
        "Europe//Berlin",
        "zone.tab",
        "+24:00",
        "+5:00",
        "+05:00x",
        "08:00",
        "+05:60",
        "Europe/Berlin ",
        "utc",
    };
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (cp_tz_new(bad[i], err, sizeof(err)) != NULL)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(strncmp(err, "unknown time zone '", 19) == 0);
    }
    assert_null(cp_tz_new("Nowhere/City", err, sizeof(err)));
    assert_string_equal(err, "unknown time zone 'Nowhere/City': not found "
                             "in /usr/share/zoneinfo");
    assert_null(cp_tz_new(NULL, NULL, 0)); /* errstr is optional */
}

#define TZ_THREADS 4

static void *tz_worker(void *arg)
{
    const char *name = arg;
    cp_tz_t *tz = cp_tz_new(name, NULL, 0);
    int64_t want = name[0] == 'E' ? 19906 : 19905;
    intptr_t bad = 0;

    for (int i = 0; i < 2000; i++)
        bad += cp_tz_day(tz, 1719873000000LL) != want;
    cp_tz_free(tz);
    return (void *)bad;
}

static void test_tz_threads(void **state)
{
    static const char *const names[TZ_THREADS] = {
        "Europe/Berlin", "America/New_York", "Europe/Berlin",
        "America/New_York"};
    pthread_t th[TZ_THREADS];

    (void)state;
    /* 2024-07-01T22:30Z: 00:30 on July 2 in Berlin, 18:30 on July 1 in New
     * York; threads switching zones must never see each other's. */
    for (int i = 0; i < TZ_THREADS; i++)
        assert_int_equal(
            pthread_create(&th[i], NULL, tz_worker, (void *)names[i]), 0);
    for (int i = 0; i < TZ_THREADS; i++) {
        void *bad;

        pthread_join(th[i], &bad);
        assert_int_equal((intptr_t)bad, 0);
    }
}

/* ------------------------------------------------------------ day starts */

static void test_day_start_fixed(void **state)
{
    cp_tz_t *utc = tz_ok("UTC");
    cp_tz_t *p8 = tz_ok("+08:00");
    cp_tz_t *m0530 = tz_ok("-05:30");

    (void)state;
    assert_int_equal(cp_tz_day_start(utc, 0), 0);
    assert_int_equal(cp_tz_day_start(utc, 19723), 19723 * 86400000LL);
    assert_int_equal(cp_tz_day_start(utc, -1), -86400000LL);
    /* 2024-03-02 at +08:00 starts 2024-03-01T16:00:00Z */
    assert_int_equal(cp_tz_day_start(p8, 19784), 1709308800000LL);
    assert_int_equal(cp_tz_day_start(m0530, 0), 19800000);
    for (int64_t d = -400; d < 400; d += 7) {
        const cp_tz_t *zs[] = {utc, p8, m0530};
        for (int i = 0; i < 3; i++) {
            int64_t s = cp_tz_day_start(zs[i], d);
            assert_int_equal(cp_tz_day(zs[i], s), d);
            assert_int_equal(cp_tz_day(zs[i], s - 1), d - 1);
        }
    }
    assert_true(cp_tz_day_start(utc, CP_TZ_DAY_MAX + 1) == INT64_MAX);
    assert_true(cp_tz_day_start(p8, -CP_TZ_DAY_MAX - 1) == INT64_MIN);
    assert_int_equal(cp_tz_day_start(utc, CP_TZ_DAY_MAX),
                     CP_TZ_DAY_MAX * 86400000LL);
    cp_tz_free(utc);
    cp_tz_free(p8);
    cp_tz_free(m0530);
}

/* Computed with Python's zoneinfo by a per-minute scan and bisection. */
static void test_day_start_iana_dst(void **state)
{
    static const struct {
        const char *zone;
        int64_t day;
        int64_t start_ms;
    } cases[] = {
        /* spring forward at 02:00: midnight is still CET */
        {"Europe/Berlin", 19813, 1711839600000LL},
        /* fall back at 03:00: midnight is CEST */
        {"Europe/Berlin", 20023, 1729980000000LL},
        /* DST began at midnight (00:00 -> 01:00): the day starts at the
         * change, 01:00 local */
        {"America/Sao_Paulo", 17839, 1541300400000LL},
        /* DST ended at midnight (00:00 -> 23:00 the day before): the
         * day starts at its second, the only real, midnight */
        {"America/Sao_Paulo", 17944, 1550372400000LL},
        /* Havana springs forward at midnight too */
        {"America/Havana", 19792, 1710046800000LL},
        /* Samoa skipped 2011-12-30: it "starts" where 12-31 does */
        {"Pacific/Apia", 15338, 1325239200000LL},
        {"Pacific/Apia", 15339, 1325239200000LL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp_tz_t *tz = tz_ok(cases[i].zone);
        int64_t got = cp_tz_day_start(tz, cases[i].day);
        if (got != cases[i].start_ms)
            fail_msg("%s day %lld: got %lld, want %lld", cases[i].zone,
                     (long long)cases[i].day, (long long)got,
                     (long long)cases[i].start_ms);
        cp_tz_free(tz);
    }
}

/* Every day of two DST seasons: the start is a boundary and no second in
 * the 30 hours before it (probed every 5 minutes, shorter than any DST
 * change) is already on that day. */
static void test_day_start_iana_scan(void **state)
{
    static const char *const zones[] = {"Europe/Berlin", "America/Sao_Paulo",
                                        "Australia/Lord_Howe", "Asia/Tehran"};
    (void)state;
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        cp_tz_t *tz = tz_ok(zones[z]);
        /* 2018-10-01 .. 2018-11-15 and 2019-02-10 .. 2019-04-10 */
        static const int64_t ranges[][2] = {{17805, 17850}, {17937, 17996}};
        for (int r = 0; r < 2; r++) {
            for (int64_t d = ranges[r][0]; d <= ranges[r][1]; d++) {
                int64_t s = cp_tz_day_start(tz, d);
                if (cp_tz_day(tz, s) < d || cp_tz_day(tz, s - 1000) >= d)
                    fail_msg("%s day %lld: %lld is no start", zones[z],
                             (long long)d, (long long)s);
                for (int64_t t = s - 30 * 3600000LL; t < s; t += 300000)
                    if (cp_tz_day(tz, t) >= d)
                        fail_msg("%s day %lld: %lld starts it earlier",
                                 zones[z], (long long)d, (long long)t);
            }
        }
        cp_tz_free(tz);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_valid),
        cmocka_unit_test(test_rfc3339_fractions),
        cmocka_unit_test(test_rfc3339_leap_second),
        cmocka_unit_test(test_rfc3339_offsets),
        cmocka_unit_test(test_rfc3339_calendar),
        cmocka_unit_test(test_rfc3339_year_bounds),
        cmocka_unit_test(test_rfc3339_syntax),
        cmocka_unit_test(test_rfc3339_reads_exactly_len),
        cmocka_unit_test(test_format_utc),
        cmocka_unit_test(test_format_utc_limits),
        cmocka_unit_test(test_format_parse_round_trip),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_tz_utc_floor),
        cmocka_unit_test(test_tz_fixed_offsets),
        cmocka_unit_test(test_tz_iana_dst),
        cmocka_unit_test(test_tz_iana_others),
        cmocka_unit_test(test_tz_rejects),
        cmocka_unit_test(test_tz_threads),
        cmocka_unit_test(test_day_start_fixed),
        cmocka_unit_test(test_day_start_iana_dst),
        cmocka_unit_test(test_day_start_iana_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
