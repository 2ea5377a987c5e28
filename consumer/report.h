/*
 * report.h - `custpulse report`: the daily population metrics
 * (docs/metrics.md) computed from the counters in Redis - the days listed
 * in <prefix>mdays, their <prefix>md:<day> hashes and the <prefix>mc:<day>
 * hashes of the cohorts - and printed as a table per day or, with --json,
 * one data object of the daily CloudEvent per line
 * (schemas/customer-metrics.schema.json, $defs/data).
 *
 *   custpulse report [-c FILE] [-X key=value]... [--from YYYY-MM-DD]
 *                    [--to YYYY-MM-DD] [--json]
 *
 * An offline command: synchronous hiredis, no event loop, no threads.
 * Thread: the main thread only.
 */
#ifndef CP_REPORT_H
#define CP_REPORT_H

#include <stdint.h>

#include "config.h"
#include "cp_time.h"
#include "fit.h" /* cp_fit_connect_fn */

struct redisContext;

/* The report options of the command line. */
typedef struct cp_report_args_s {
    int has_from;
    int64_t from; /* --from as a day number */
    int has_to;
    int64_t to; /* --to as a day number */
    int json;   /* --json */
} cp_report_args_t;

/* Reads one report option the way cp_fit_arg (fit.h) reads a fit option:
 * returns the arguments used (1 or 2), 0 for another argument, -1 on a
 * usage error (a missing value, a date that is not YYYY-MM-DD in
 * 1970..9999; the message is on stderr). */
int cp_report_arg(cp_report_args_t *args, const char *arg, const char *next);

/* Runs the command: prints the days listed in <prefix>mdays within
 * [--from, --to] (all when absent) on stdout; the gauges sum the counters
 * of every listed day up to each. Hostile data - a member of mdays that is
 * not a day number, a hash of another type, a field the writer never
 * writes, a value that is not a canonical integer - is reported on stderr
 * and skipped. Returns the exit code: 0; 1 (Redis unreachable or failing,
 * mdays of another type, out of memory, stdout not written); 2 (--from
 * after --to). connect is called at most once. */
int cp_report_run(const cp_config_t *cfg, const cp_report_args_t *args,
                  cp_fit_connect_fn *connect);

/* One day's CloudEvent of customer.metrics (docs/metrics.md). */
typedef struct cp_metrics_rec_s {
    int64_t day;
    char *json; /* malloc'd, NUL-terminated */
    size_t len;
} cp_metrics_rec_t;

/* The daemon's side of the same reading: the daily CloudEvents
 * (cp_output_metrics) of the days in [from, to] that have counters, read
 * through the synchronous connection c, into *recs (cp_report_records_free)
 * and *n, ascending. Nothing is printed: values that do not parse are
 * skipped and counted in *skipped. Returns 0, or 1 when Redis failed or
 * memory ran out (c->errstr may tell). Any thread. */
int cp_report_records(struct redisContext *c, const cp_config_t *cfg,
                      const cp_tz_t *tz, int64_t from, int64_t to,
                      cp_metrics_rec_t **recs, size_t *n, size_t *skipped);
void cp_report_records_free(cp_metrics_rec_t *recs, size_t n);

#endif
