/*
 * redis.h - the asynchronous Redis connection of the event loop.
 *
 * hiredis 0.14 async with its libuv adapter, plus what hiredis 0.14 lacks:
 * a deadline per command (one uv timer over the in-order FIFO of in-flight
 * commands; hiredis cannot cancel a command, so a missed deadline drops the
 * connection and every in-flight command completes with an unknown
 * outcome), reconnection with backoff, and a handshake on each connection
 * (AUTH, SELECT, maxmemory-policy check, SCRIPT LOAD) before it is ready.
 *
 * Thread: everything here runs on the loop thread.
 */
#ifndef CP_REDIS_H
#define CP_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "cp_err.h"

struct redisReply;
typedef struct cp_redis_s cp_redis_t;

/* Completion of one command. reply is valid only during the call (copy
 * what you keep); NULL means the outcome is unknown: the connection was
 * lost or the deadline passed before a reply. Never called from inside
 * cp_redis_cmd. */
typedef void(cp_redis_cb)(cp_redis_t *r, struct redisReply *reply,
                          void *privdata);

typedef enum {
    CP_REDIS_DOWN = 0,  /* connection lost; reconnecting */
    CP_REDIS_READY = 1, /* handshake done; commands accepted */
    CP_REDIS_FATAL = 2  /* misconfigured server (e.g. eviction policy) */
} cp_redis_status_t;

typedef void(cp_redis_status_cb)(cp_redis_t *r, cp_redis_status_t status,
                                 void *opaque);

typedef enum {
    CP_SCRIPT_WRITE = 0,
    CP_SCRIPT_CLEAR = 1,
    CP_SCRIPT_EPOCH = 2,
    CP_SCRIPT_RFMQ_SNAPSHOT = 3,
    CP_SCRIPT_REINDEX = 4,
    CP_SCRIPT__COUNT
} cp_script_t;

typedef struct cp_redis_stats_s {
    uint64_t commands;    /* commands sent */
    uint64_t replies;     /* replies received */
    uint64_t timeouts;    /* connections dropped by a deadline */
    uint64_t disconnects; /* connections lost for any reason */
    uint64_t restarts;    /* server run_id changes (restart, failover) */
} cp_redis_stats_t;

/* A connection object; call cp_redis_start to connect. cfg must outlive it.
 * Returns NULL and fills errstr on failure. */
cp_redis_t *cp_redis_new(uv_loop_t *loop, const cp_config_t *cfg,
                         cp_redis_status_cb *on_status, void *opaque,
                         char *errstr, size_t errstr_size);
void cp_redis_start(cp_redis_t *r);
int cp_redis_ready(const cp_redis_t *r);

/* Sends one command (pipelined behind those in flight). Returns CP_OK and
 * later calls cb exactly once, or returns CP_EREDIS (not ready) and never
 * calls cb. */
cp_err_t cp_redis_cmd(cp_redis_t *r, cp_redis_cb *cb, void *privdata, int argc,
                      const char **argv, const size_t *argvlen);

/* SHA1 of a loaded script (valid while ready). */
const char *cp_redis_script_sha(const cp_redis_t *r, cp_script_t s);
/* Asks for a new SCRIPT LOAD of all scripts ahead of later commands (after
 * a NOSCRIPT reply: a restarted or failed-over server has an empty cache). */
void cp_redis_reload_scripts(cp_redis_t *r);

const cp_redis_stats_t *cp_redis_stats(const cp_redis_t *r);
/* The opaque given to cp_redis_new. */
void *cp_redis_opaque(const cp_redis_t *r);

/* Drops the connection (in-flight callbacks get NULL), stops reconnecting
 * and closes the handles; on_closed(arg) runs once all are closed, after
 * which the object is freed. */
void cp_redis_close(cp_redis_t *r, void (*on_closed)(void *arg), void *arg);

/* A synchronous connection for the commands and the daemon's worker
 * jobs (custpulse report, inspect, fit, the daily metrics): connected,
 * authenticated and on redis.db, with redis.timeout_ms; NULL with err set
 * ("cannot connect to redis: ..." or "redis: <error>"). */
struct redisContext *cp_redis_connect_sync(const cp_config_t *cfg, char *err,
                                           size_t err_size);

#endif
