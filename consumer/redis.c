/*
 * redis.c - asynchronous Redis connection with deadlines; see redis.h.
 */
#include "redis.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cp_time.h"
#include "log.h"
#include "reply_pool.h"
#include "rfmq.h"
#include "store.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* The command buffer keeps its memory up to this size between commands. */
#define CMDBUF_KEEP (256 * 1024)

/* One in-flight command. Pooled: the hot path does not malloc. */
typedef struct cp_redis_req_s {
    struct cp_redis_req_s *next; /* FIFO link, then free-list link */
    cp_redis_t *r;
    cp_redis_cb *cb;
    void *privdata;
    int64_t deadline; /* monotonic ms */
} cp_redis_req_t;

struct cp_redis_s {
    uv_loop_t *loop;
    const cp_config_t *cfg;
    cp_redis_status_cb *on_status;
    void *opaque;

    redisAsyncContext *ac;
    int ready;
    int closing;
    int handshake_left; /* replies still expected from the handshake */
    int handshake_failed;
    int fatal;
    int64_t connect_deadline; /* 0 when not connecting */
    int backoff_ms;
    int down_logged;

    cp_redis_req_t *head, *tail; /* in flight, oldest first */
    cp_redis_req_t *free_reqs;
    /* reply objects of every connection's reader; outlives them all */
    cp_reply_pool_t *replies;
    cp_buf_t cmdbuf; /* the command being formatted (send_cmd) */

    uv_timer_t deadline_timer;
    uv_timer_t reconnect_timer;
    int open_handles;
    void (*on_closed)(void *);
    void *closed_arg;

    char sha[CP_SCRIPT__COUNT][41];
    char run_id[41]; /* the server's, from INFO server; "" before */
    cp_redis_stats_t stats;
};

static const char *script_src[CP_SCRIPT__COUNT] = {
    cp_store_write_lua, cp_store_clear_lua, cp_store_epoch_lua,
    cp_rfmq_snapshot_lua, cp_store_reindex_lua};

static void connect_now(cp_redis_t *r);
static void conn_lost(cp_redis_t *r, const char *why);
static void on_deadline(uv_timer_t *t);

/* ---- request pool and deadlines ---------------------------------------- */

static cp_redis_req_t *req_get(cp_redis_t *r)
{
    cp_redis_req_t *q = r->free_reqs;
    if (q)
        r->free_reqs = q->next;
    else if (!(q = malloc(sizeof(*q))))
        return NULL;
    q->next = NULL;
    q->r = r;
    return q;
}

static void req_put(cp_redis_t *r, cp_redis_req_t *q)
{
    q->next = r->free_reqs;
    r->free_reqs = q;
}

static void arm_deadline(cp_redis_t *r)
{
    int64_t when = r->head ? r->head->deadline : r->connect_deadline;
    if (!when) {
        uv_timer_stop(&r->deadline_timer);
        return;
    }
    int64_t left = when - cp_time_mono_ms();
    uv_timer_start(&r->deadline_timer, on_deadline,
                   left > 0 ? (uint64_t)left : 0, 0);
}

static void on_deadline(uv_timer_t *t)
{
    cp_redis_t *r = t->data;
    int64_t now = cp_time_mono_ms();
    if (r->head && r->head->deadline <= now) {
        r->stats.timeouts++;
        conn_lost(r, "command deadline passed");
    } else if (!r->head && r->connect_deadline && r->connect_deadline <= now) {
        r->stats.timeouts++;
        conn_lost(r, "connect deadline passed");
    } else {
        arm_deadline(r);
    }
}

/* hiredis calls this in order, once per command; reply NULL when the
 * context is being freed. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    cp_redis_req_t *q = privdata;
    cp_redis_t *r = q->r;
    (void)ac;
    cp_redis_req_t *head = r->head;
    if (head == q) {
        r->head = q->next;
        if (!r->head)
            r->tail = NULL;
    }
    if (reply)
        r->stats.replies++;
    cp_redis_cb *cb = q->cb;
    void *pd = q->privdata;
    req_put(r, q);
    if (r->ac == ac || !reply)
        arm_deadline(r);
    cb(r, reply, pd);
}

/* "<kind><n>\r\n", a RESP array or bulk string header. */
static void put_header(cp_buf_t *b, char kind, size_t n)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    tmp[--i] = '\n';
    tmp[--i] = '\r';
    do
        tmp[--i] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    tmp[--i] = kind;
    cp_buf_append(b, tmp + i, sizeof(tmp) - i);
}

/* The command as RESP in r->cmdbuf, which keeps its memory: hiredis'
 * redisAsyncCommandArgv builds an sds per command (two allocations) only
 * to copy it into its output buffer and free it. argvlen NULL: argv are
 * C strings, as hiredis allows. Returns -1 when out of memory. */
static int format_cmd(cp_redis_t *r, int argc, const char **argv,
                      const size_t *argvlen)
{
    cp_buf_t *b = &r->cmdbuf;
    if (b->cap > CMDBUF_KEEP)
        cp_buf_free(b); /* one huge command does not pin its memory */
    cp_buf_reset(b);
    put_header(b, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        put_header(b, '$', len);
        cp_buf_append(b, argv[i], len);
        cp_buf_append(b, "\r\n", 2);
    }
    return cp_buf_failed(b) ? -1 : 0;
}

static cp_err_t send_cmd(cp_redis_t *r, cp_redis_cb *cb, void *privdata,
                         int argc, const char **argv, const size_t *argvlen)
{
    if (format_cmd(r, argc, argv, argvlen) != 0)
        return CP_ENOMEM;
    cp_redis_req_t *q = req_get(r);
    if (!q)
        return CP_ENOMEM;
    q->cb = cb;
    q->privdata = privdata;
    q->deadline = cp_time_mono_ms() + r->cfg->redis_timeout_ms;
    if (redisAsyncFormattedCommand(r->ac, on_reply, q, r->cmdbuf.data,
                                   r->cmdbuf.len) != REDIS_OK) {
        req_put(r, q);
        return CP_EREDIS;
    }
    if (r->tail)
        r->tail->next = q;
    else
        r->head = q;
    r->tail = q;
    r->stats.commands++;
    if (r->head == q)
        arm_deadline(r);
    return CP_OK;
}

/* ---- handshake ---------------------------------------------------------- */

static void set_ready(cp_redis_t *r)
{
    r->ready = 1;
    r->backoff_ms = BACKOFF_MIN_MS;
    cp_log(CP_LOG_INFO, "redis ready", CP_LS("host", r->cfg->redis_host),
           CP_LI("port", r->cfg->redis_port), CP_LEND);
    r->down_logged = 0;
    r->on_status(r, CP_REDIS_READY, r->opaque);
}

static void handshake_step_done(cp_redis_t *r)
{
    if (--r->handshake_left > 0)
        return;
    if (r->fatal) {
        r->on_status(r, CP_REDIS_FATAL, r->opaque);
        return;
    }
    if (r->handshake_failed) {
        conn_lost(r, "handshake failed");
        return;
    }
    set_ready(r);
}

static void on_handshake_reply(cp_redis_t *r, redisReply *reply, void *pd)
{
    const char *what = pd;
    if (!reply) {
        r->handshake_failed = 1;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        cp_log(CP_LOG_ERROR, "redis handshake error", CP_LS("step", what),
               CP_LS("error", reply->str), CP_LEND);
        r->handshake_failed = 1;
    }
    handshake_step_done(r);
}

static void on_policy_reply(cp_redis_t *r, redisReply *reply, void *pd)
{
    (void)pd;
    if (!reply) {
        r->handshake_failed = 1;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        /* Managed services often rename CONFIG; we cannot check. */
        cp_log(CP_LOG_WARN,
               "cannot read maxmemory-policy; make sure it is "
               "noeviction",
               CP_LS("error", reply->str), CP_LEND);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
               reply->element[1]->type == REDIS_REPLY_STRING &&
               strcmp(reply->element[1]->str, "noeviction") != 0) {
        cp_log(CP_LOG_ERROR,
               "redis maxmemory-policy must be noeviction: an evicted "
               "customer hash loses state silently",
               CP_LS("policy", reply->element[1]->str), CP_LEND);
        r->fatal = 1;
    }
    handshake_step_done(r);
}

/* A new run_id is a restarted or failed-over server: writes it had
 * acknowledged may be gone (docs/fault-tolerance.md, "Redis restarts"). */
static void on_info_reply(cp_redis_t *r, redisReply *reply, void *pd)
{
    (void)pd;
    const char *p = reply && reply->type == REDIS_REPLY_STRING
                        ? strstr(reply->str, "run_id:")
                        : NULL;
    if (!reply) {
        r->handshake_failed = 1;
    } else if (p && strlen(p + 7) >= 40) {
        char id[41];
        memcpy(id, p + 7, 40);
        id[40] = '\0';
        if (r->run_id[0] && strcmp(id, r->run_id) != 0) {
            r->stats.restarts++;
            cp_log(CP_LOG_WARN,
                   "redis restarted or failed over (run_id changed): "
                   "writes it acknowledged last may be lost unless it "
                   "persists every write or replicas acknowledged them",
                   CP_LS("run_id", id), CP_LEND);
        }
        memcpy(r->run_id, id, 41);
    }
    handshake_step_done(r);
}

static void on_script_loaded(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_script_t s = (cp_script_t)(intptr_t)pd;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40)
        memcpy(r->sha[s], reply->str, 41);
    else
        r->handshake_failed = 1;
    if (r->handshake_left > 0)
        handshake_step_done(r);
}

static void send_script_loads(cp_redis_t *r)
{
    for (int s = 0; s < CP_SCRIPT__COUNT; s++) {
        const char *argv[] = {"SCRIPT", "LOAD", script_src[s]};
        size_t lens[] = {6, 4, strlen(script_src[s])};
        if (send_cmd(r, on_script_loaded, (void *)(intptr_t)s, 3, argv, lens) !=
            CP_OK)
            r->handshake_failed = 1;
        else if (!r->ready)
            r->handshake_left++;
    }
}

static void start_handshake(cp_redis_t *r)
{
    r->handshake_left = 1; /* guard until all are sent */
    r->handshake_failed = 0;
    r->fatal = 0;
    const cp_config_t *cfg = r->cfg;
    if (cfg->redis_password && cfg->redis_password[0]) {
        const char *argv[] = {"AUTH", cfg->redis_password};
        size_t lens[] = {4, strlen(cfg->redis_password)};
        if (send_cmd(r, on_handshake_reply, "AUTH", 2, argv, lens) == CP_OK)
            r->handshake_left++;
    }
    char db[16];
    snprintf(db, sizeof(db), "%d", cfg->redis_db);
    const char *sel[] = {"SELECT", db};
    size_t sel_lens[] = {6, strlen(db)};
    if (send_cmd(r, on_handshake_reply, "SELECT", 2, sel, sel_lens) == CP_OK)
        r->handshake_left++;
    const char *pol[] = {"CONFIG", "GET", "maxmemory-policy"};
    size_t pol_lens[] = {6, 3, 16};
    if (send_cmd(r, on_policy_reply, NULL, 3, pol, pol_lens) == CP_OK)
        r->handshake_left++;
    const char *info[] = {"INFO", "server"};
    size_t info_lens[] = {4, 6};
    if (send_cmd(r, on_info_reply, NULL, 2, info, info_lens) == CP_OK)
        r->handshake_left++;
    send_script_loads(r);
    handshake_step_done(r); /* drop the guard */
}

void cp_redis_reload_scripts(cp_redis_t *r)
{
    if (r->ready)
        send_script_loads(r);
}

/* ---- connection lifecycle ----------------------------------------------- */

static void on_reconnect_timer(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_reconnect(cp_redis_t *r)
{
    if (r->closing)
        return;
    uv_timer_start(&r->reconnect_timer, on_reconnect_timer,
                   (uint64_t)r->backoff_ms, 0);
    r->backoff_ms =
        r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void mark_down(cp_redis_t *r, const char *why)
{
    int was_ready = r->ready;
    r->ready = 0;
    r->connect_deadline = 0;
    r->stats.disconnects++;
    if (!r->down_logged) {
        cp_log(CP_LOG_WARN, "redis unavailable; retrying", CP_LS("reason", why),
               CP_LS("host", r->cfg->redis_host),
               CP_LI("port", r->cfg->redis_port), CP_LEND);
        r->down_logged = 1;
    }
    arm_deadline(r);
    if (was_ready)
        r->on_status(r, CP_REDIS_DOWN, r->opaque);
    schedule_reconnect(r);
}

/* Drops the current connection from our side (not inside a hiredis
 * callback): in-flight commands complete with NULL. */
static void conn_lost(cp_redis_t *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    if (!ac)
        return;
    r->ac = NULL;
    r->ready = 0;
    ac->data = NULL;
    redisAsyncFree(ac); /* runs on_reply(NULL) for each in-flight command */
    r->head = r->tail = NULL;
    mark_down(r, why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    cp_redis_t *r = ac->data;
    if (!r || r->ac != ac)
        return;
    r->connect_deadline = 0;
    if (status != REDIS_OK) {
        /* hiredis frees the context itself after a failed connect. */
        r->ac = NULL;
        mark_down(r, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    start_handshake(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    cp_redis_t *r = ac->data;
    (void)status;
    if (!r || r->ac != ac)
        return; /* we dropped it ourselves */
    r->ac = NULL;
    r->head = r->tail = NULL;
    mark_down(r, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void connect_now(cp_redis_t *r)
{
    if (r->closing || r->ac)
        return;
    redisAsyncContext *ac =
        redisAsyncConnect(r->cfg->redis_host, r->cfg->redis_port);
    if (!ac) {
        mark_down(r, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        mark_down(r, why);
        return;
    }
    ac->data = r;
    cp_reply_pool_attach(r->replies, ac->c.reader);
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        mark_down(r, "libuv attach failed");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->connect_deadline = cp_time_mono_ms() + r->cfg->redis_timeout_ms;
    arm_deadline(r);
}

/* ---- public ------------------------------------------------------------- */

cp_redis_t *cp_redis_new(uv_loop_t *loop, const cp_config_t *cfg,
                         cp_redis_status_cb *on_status, void *opaque,
                         char *errstr, size_t errstr_size)
{
    cp_redis_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->replies = cp_reply_pool_new())) {
        free(r);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->loop = loop;
    r->cfg = cfg;
    r->on_status = on_status;
    r->opaque = opaque;
    r->backoff_ms = BACKOFF_MIN_MS;
    cp_buf_init(&r->cmdbuf);
    uv_timer_init(loop, &r->deadline_timer);
    uv_timer_init(loop, &r->reconnect_timer);
    r->deadline_timer.data = r;
    r->reconnect_timer.data = r;
    r->open_handles = 2;
    return r;
}

void cp_redis_start(cp_redis_t *r)
{
    connect_now(r);
}

int cp_redis_ready(const cp_redis_t *r)
{
    return r->ready;
}

cp_err_t cp_redis_cmd(cp_redis_t *r, cp_redis_cb *cb, void *privdata, int argc,
                      const char **argv, const size_t *argvlen)
{
    if (!r->ready || !r->ac)
        return CP_EREDIS;
    return send_cmd(r, cb, privdata, argc, argv, argvlen);
}

const char *cp_redis_script_sha(const cp_redis_t *r, cp_script_t s)
{
    return r->sha[s];
}

void *cp_redis_opaque(const cp_redis_t *r)
{
    return r->opaque;
}

const cp_redis_stats_t *cp_redis_stats(const cp_redis_t *r)
{
    return &r->stats;
}

static void on_handle_closed(uv_handle_t *h)
{
    cp_redis_t *r = h->data;
    if (--r->open_handles > 0)
        return;
    while (r->free_reqs) {
        cp_redis_req_t *q = r->free_reqs;
        r->free_reqs = q->next;
        free(q);
    }
    cp_reply_pool_free(r->replies);
    cp_buf_free(&r->cmdbuf);
    void (*cb)(void *) = r->on_closed;
    void *arg = r->closed_arg;
    free(r);
    if (cb)
        cb(arg);
}

void cp_redis_close(cp_redis_t *r, void (*on_closed)(void *arg), void *arg)
{
    r->closing = 1;
    r->on_closed = on_closed;
    r->closed_arg = arg;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        r->ready = 0;
        ac->data = NULL;
        redisAsyncFree(ac);
        r->head = r->tail = NULL;
    }
    uv_close((uv_handle_t *)&r->deadline_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->reconnect_timer, on_handle_closed);
}

redisContext *cp_redis_connect_sync(const cp_config_t *cfg, char *err,
                                    size_t err_size)
{
    struct timeval tv = {cfg->redis_timeout_ms / 1000,
                         (cfg->redis_timeout_ms % 1000) * 1000};
    redisContext *c =
        redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    if (!c || c->err) {
        snprintf(err, err_size, "cannot connect to redis: %s",
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (cfg->redis_password && cfg->redis_password[0])
        r = redisCommand(c, "AUTH %s", cfg->redis_password);
    if (!cfg->redis_password || !cfg->redis_password[0] ||
        (r && r->type != REDIS_REPLY_ERROR)) {
        freeReplyObject(r);
        r = redisCommand(c, "SELECT %d", cfg->redis_db);
    }
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(err, err_size, "redis: %s", r ? r->str : c->errstr);
    freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}
