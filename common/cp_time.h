/*
 * cp_time.h - timestamps (epoch milliseconds), RFC 3339, time zones.
 */
#ifndef CP_TIME_H
#define CP_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "cp_err.h"

/* Parses RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)"; 'T' may be 't' or
 * ' ' and 'Z' may be 'z'; frac 1..9 digits, truncated to ms (floor, also for
 * the offset-adjusted result). Validates field ranges (month 1-12, day within
 * month incl. leap years, hour 0-23, minute 0-59, second 0-60 where 60 is
 * read as 59.999, offset hours 0-23). Years 1970-9999 after conversion to
 * UTC. Returns CP_OK, CP_EPARSE (syntax, or a field outside its range such
 * as month 13 or Feb 29 of a common year) or CP_ERANGE (a valid timestamp
 * outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59.999Z). A leap second
 * is accepted in any minute (the offset may move it). "-00:00" is read as
 * UTC. Exactly len bytes are read; s need not be NUL-terminated. *ms_out
 * is written only on CP_OK. */
cp_err_t cp_time_parse_rfc3339(const char *s, size_t len, int64_t *ms_out);

/* Writes ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 chars + NUL); returns 24, or 0
 * when size < 25 or ms is outside years 0000..9999 (nothing written).
 * Instants before 1970 are floored ("-1" is 1969-12-31T23:59:59.999Z). */
size_t cp_time_format_utc(int64_t ms, char *buf, size_t size);

/* Parses the calendar date "YYYY-MM-DD" (exactly len = 10 bytes, month and
 * day checked, leap years included) into its day number, days since
 * 1970-01-01 (a local day number, as cp_tz_day gives, when the date is a
 * local one). Returns CP_OK, CP_EPARSE (syntax, an impossible date) or
 * CP_ERANGE (before 1970-01-01). *day_out is written only on CP_OK. */
cp_err_t cp_time_parse_date(const char *s, size_t len, int64_t *day_out);

/* Writes day number `day` as "YYYY-MM-DD" (10 chars + NUL); returns 10, or
 * 0 when size < 11 or the date is outside years 0000..9999 (nothing
 * written). */
size_t cp_time_format_date(int64_t day, char *buf, size_t size);

/* Wall clock, epoch ms (CLOCK_REALTIME). Not for use in scoring/. */
int64_t cp_time_wall_ms(void);
/* Monotonic clock in ms, for deadlines. */
int64_t cp_time_mono_ms(void);

/* A time zone for day boundaries: "UTC" (or "Z"), a fixed offset
 * "+08:00"/"-05:30" (hh 00-23, mm 00-59), or an IANA name ("Europe/Berlin")
 * read from the system's zoneinfo (/usr/share/zoneinfo/<name> must be a
 * TZif file; names with "..", a leading '/' or characters other than
 * [A-Za-z0-9_+-/] are refused).
 *
 * IANA zones go through the C library (setenv("TZ") + tzset() +
 * localtime_r under one mutex). custpulse uses one zone per process, so
 * TZ is set when the zone is created (cp_tz_new, normally during
 * single-threaded start-up) and only set again if another zone is used
 * later; it is not restored, so localtime() elsewhere in the process
 * also sees this zone. */
typedef struct cp_tz_s cp_tz_t;

/* Returns NULL and fills errstr ("unknown time zone '<name>': <why>"; errstr
 * may be NULL) when the zone is unknown. Thread-safe. */
cp_tz_t *cp_tz_new(const char *name, char *errstr, size_t errstr_size);
void cp_tz_free(cp_tz_t *tz);

/* Local calendar day number of the instant ms: days since 1970-01-01 of the
 * local date in tz (floor, so instants before 1970 give negative days).
 * IANA zones honour DST (the local offset at that instant). Thread-safe. */
int64_t cp_tz_day(const cp_tz_t *tz, int64_t ms);

/* The first instant (epoch ms) of local day `day` in tz: the smallest ms
 * with cp_tz_day(tz, ms) >= day. UTC and fixed offsets in closed form
 * (day * 86 400 000 - offset); IANA zones by checking the candidates the
 * zone's offsets around that day give (a DST change at midnight makes
 * the day start at the change; a change back across midnight makes the
 * day start at its first midnight), with a scan of the two days around
 * it when none fits (zones changing twice within a day). A skipped day
 * (Pacific/Apia 2011-12-30) starts where the next one does. Saturates to
 * INT64_MIN / INT64_MAX for |day| > CP_TZ_DAY_MAX. Thread-safe. */
#define CP_TZ_DAY_MAX 100000000000LL /* ~2.7e8 years: no ms overflow */
int64_t cp_tz_day_start(const cp_tz_t *tz, int64_t day);

#endif
