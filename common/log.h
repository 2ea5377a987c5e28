/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 *   cp_log(CP_LOG_WARN, "redis disconnected",
 *          CP_LS("host", host), CP_LI("port", port), CP_LEND);
 *
 * Line: {"ts":"2024-01-01T00:00:00.000Z","level":"warn",
 *        "msg":"redis disconnected","host":"127.0.0.1","port":6379}
 *
 * Thread-safe (librdkafka's log callback calls it from its own threads): each
 * line is formatted into a local buffer and written with one write under a
 * mutex. Lines longer than 4 KiB are truncated (still valid JSON: a long
 * string is cut at a UTF-8 character boundary and closed, fields that do
 * not fit are dropped, and "truncated":true is added at the end).
 * CP_LCUST logs a customer id as "h:<16 hex>", its keyed hash (SipHash-2-4,
 * siphash.h) under the key set by cp_log_set_id_key, unless the level is
 * debug, so raw ids (PII) stay out of production logs and cannot be
 * recovered by hashing a list of known ids without the key. With the key
 * (config log.id_key), `custpulse hash-id ID` prints the hash to grep for.
 */
#ifndef CP_LOG_H
#define CP_LOG_H

#include <stdint.h>

#include "cp_err.h"

typedef enum {
    CP_LOG_ERROR = 0,
    CP_LOG_WARN = 1,
    CP_LOG_INFO = 2,
    CP_LOG_DEBUG = 3
} cp_log_level_t;

typedef enum {
    CP__LOG_T_END = 0,
    CP__LOG_T_STR,  /* const char * (NULL logs null) */
    CP__LOG_T_INT,  /* int64_t */
    CP__LOG_T_DBL,  /* double */
    CP__LOG_T_BOOL, /* int */
    CP__LOG_T_CUST  /* const char * customer id, keyed hash unless debug */
} cp__log_type_t;

#define CP_LS(k, v) (k), CP__LOG_T_STR, (const char *)(v)
#define CP_LI(k, v) (k), CP__LOG_T_INT, (int64_t)(v)
#define CP_LD(k, v) (k), CP__LOG_T_DBL, (double)(v)
#define CP_LB(k, v) (k), CP__LOG_T_BOOL, (int)(v)
#define CP_LCUST(k, v) (k), CP__LOG_T_CUST, (const char *)(v)
#define CP_LEND ((const char *)0)

/* Sets the threshold; messages above it are dropped. Default CP_LOG_INFO. */
void cp_log_set_level(cp_log_level_t level);
cp_log_level_t cp_log_get_level(void);
/* True when level would be written (to skip building expensive fields). */
int cp_log_enabled(cp_log_level_t level);
/* Parses "error|warn|info|debug"; returns 0 on success, -1 otherwise. */
int cp_log_level_parse(const char *s, cp_log_level_t *out);

/* Sets the key of the customer-id hash from config log.id_key. A non-empty
 * key is turned into the 16-byte SipHash key by cp_siphash_key_derive, so
 * every process with the same log.id_key logs the same hash for an id.
 * NULL or "" takes 16 random bytes (getrandom(2), else /dev/urandom): the
 * hashes then correlate the lines of this process only. Until it is
 * called, a random key is made at the first CP_LCUST. Call it at start-up;
 * it is thread-safe anyway (lines being written use the old or the new key
 * whole). Returns CP_OK, or CP_EIO when no random bytes could be read (only
 * for an empty key; the previous key stays). */
cp_err_t cp_log_set_id_key(const char *key);

/* "h:" + 16 hex digits + NUL */
#define CP_LOG_ID_HASH_SIZE 19

/* Writes id's hash (id not NULL) into out exactly as CP_LCUST logs it:
 * "h:" and the SipHash-2-4 of id's bytes (without the NUL) as 16 lower-case
 * hex digits. Returns CP_OK, or CP_EIO with out = "h:?" when there is no key
 * and no random bytes could be read for one (the id is never written). */
cp_err_t cp_log_hash_id(const char *id, char out[CP_LOG_ID_HASH_SIZE]);

/* Writes one line: msg, then (key, type, value) triples until CP_LEND.
 * Doubles are written with %.17g, NaN and infinities as null; a NULL msg
 * or string value as null. An unknown type ends the field list (the rest
 * cannot be read safely). Levels outside error..debug are dropped. */
void cp_log(cp_log_level_t level, const char *msg, ...);

#endif
