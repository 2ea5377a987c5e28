/*
 * fit.h - `custpulse fit`: maximum likelihood estimates of the BTYD
 * parameters (scoring/btyd.h) from a transactions file or from the
 * customer hashes in Redis, printed with their standard errors and written
 * to the hash <redis.key_prefix>btyd that the daemon reads (docs/btyd.md,
 * "Where the parameters live").
 *
 *   custpulse fit [-c FILE] [-X key=value]... [--csv PATH]
 *                 [--at YYYY-MM-DD] [--dry-run]
 *
 * An offline command: synchronous hiredis, no event loop, no threads.
 * Thread: the main thread only.
 */
#ifndef CP_FIT_H
#define CP_FIT_H

#include <stdint.h>

#include "config.h"

struct redisContext;

/* The fit options of the command line. */
typedef struct cp_fit_args_s {
    const char *csv; /* --csv PATH (borrowed from argv); NULL: Redis */
    int has_at;      /* --at given */
    int64_t at_day;  /* --at as days since 1970-01-01 (a calendar date) */
    int dry_run;     /* --dry-run: print, write nothing */
} cp_fit_args_t;

/* Reads one fit option: arg is the current argument, next the one after it
 * (NULL at the end). Returns how many arguments it used (1 or 2), 0 when
 * arg is not a fit option, -1 on a usage error (missing value, --at not a
 * valid YYYY-MM-DD in 1970..9999; a message is on stderr). */
int cp_fit_arg(cp_fit_args_t *args, const char *arg, const char *next);

/* Opens a synchronous connection after AUTH and SELECT as configured, or
 * returns NULL after printing why on stderr. The caller frees it with
 * redisFree. */
typedef struct redisContext *(cp_fit_connect_fn)(const cp_config_t *cfg);

/* Runs the command: reads the customers (args->csv, else Redis through
 * connect), fits the model and unit of cfg (btyd.model, btyd.unit) and
 * Gamma-Gamma, prints "name = value" lines on stdout and, unless
 * args->dry_run, writes <prefix>btyd in one MULTI/EXEC. connect is called
 * at most once, only when Redis is needed. Returns the exit code: 0, or 1
 * (unreadable input, Redis failure, too few customers, a fit that did not
 * converge; the reason is on stderr). */
int cp_fit_run(const cp_config_t *cfg, const cp_fit_args_t *args,
               cp_fit_connect_fn *connect);

#endif
