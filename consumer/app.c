/*
 * app.c - the daemon's lifecycle on one libuv loop: start-up (Redis
 * handshake, output topics), librdkafka's queues brought into the loop,
 * rebalances, the batch cycle, --exit-at-end and graceful shutdown.
 *
 * librdkafka's consumer and producer queues each signal a pipe when they go
 * from empty to non-empty (rd_kafka_queue_io_event_enable); a uv_poll on
 * the pipe wakes the loop. The consumer is polled only between batches, so
 * a rebalance callback never sees work in flight for the partitions it
 * revokes, and nothing blocks inside a callback.
 */
#define _GNU_SOURCE 1 /* pipe2 */
#include "app.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_int.h"
#include "kafka.h"
#include "log.h"

static void begin_stop(cp_app_t *app, int code);
static void try_poll(cp_app_t *app);

static _Atomic int stop_flag; /* read by worker threads */

/* ---- partitions ---------------------------------------------------------- */

static cp_part_t *part_find(cp_app_t *app, const char *topic, int32_t p)
{
    for (int i = 0; i < app->n_parts; i++)
        if (app->parts[i].partition == p &&
            strcmp(app->parts[i].topic, topic) == 0)
            return &app->parts[i];
    return NULL;
}

static void parts_assign(cp_app_t *app,
                         const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];
        cp_part_t *part = part_find(app, tp->topic, tp->partition);
        if (!part) {
            if (app->n_parts == app->cap_parts) {
                int cap = app->cap_parts ? app->cap_parts * 2 : 16;
                cp_part_t *n = realloc(app->parts, sizeof(*n) * (size_t)cap);
                if (!n)
                    abort();
                app->parts = n;
                app->cap_parts = cap;
            }
            part = &app->parts[app->n_parts++];
            part->topic = strdup(tp->topic);
            part->partition = tp->partition;
            part->end = -1; /* the end is fixed at the first assignment */
            part->next = -1;
        }
        part->active = 1;
    }
}

static void parts_revoke(cp_app_t *app,
                         const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        cp_part_t *part =
            part_find(app, list->elems[i].topic, list->elems[i].partition);
        if (part)
            part->active = 0;
    }
}

/* --exit-at-end: ends are high watermarks queried on a worker thread. */
typedef struct cp_end_job_s {
    uv_work_t req;
    cp_app_t *app;
    rd_kafka_topic_partition_list_t *list; /* offset = committed */
    int64_t *hi;
    int64_t *lo;
} cp_end_job_t;

static void end_job_work(uv_work_t *req)
{
    cp_end_job_t *job = req->data;
    rd_kafka_t *rk = job->app->consumer;
    for (int i = 0; i < job->list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &job->list->elems[i];
        int64_t lo = -1, hi = -1;
        while (!atomic_load(&stop_flag) &&
               rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition,
                                                &lo, &hi, 5000) !=
                   RD_KAFKA_RESP_ERR_NO_ERROR)
            sleep(1);
        job->lo[i] = lo;
        job->hi[i] = hi;
    }
    while (!atomic_load(&stop_flag) &&
           rd_kafka_committed(rk, job->list, 5000) !=
               RD_KAFKA_RESP_ERR_NO_ERROR)
        sleep(1);
}

static void check_end(cp_app_t *app);

static void end_job_done(uv_work_t *req, int status)
{
    cp_end_job_t *job = req->data;
    cp_app_t *app = job->app;
    for (int i = 0; i < job->list->cnt && status == 0; i++) {
        rd_kafka_topic_partition_t *tp = &job->list->elems[i];
        cp_part_t *part = part_find(app, tp->topic, tp->partition);
        if (!part || part->end >= 0)
            continue;
        part->end = job->hi[i];
        int64_t start = tp->offset >= 0 ? tp->offset : job->lo[i];
        if (start > part->next)
            part->next = start;
        cp_log(CP_LOG_INFO, "partition end fixed", CP_LS("topic", tp->topic),
               CP_LI("partition", tp->partition), CP_LI("end", part->end),
               CP_LI("start", start), CP_LEND);
    }
    rd_kafka_topic_partition_list_destroy(job->list);
    free(job->hi);
    free(job->lo);
    free(job);
    check_end(app);
}

static void query_ends(cp_app_t *app,
                       const rd_kafka_topic_partition_list_t *list)
{
    cp_end_job_t *job = calloc(1, sizeof(*job));
    job->app = app;
    job->list = rd_kafka_topic_partition_list_copy(list);
    job->hi = calloc((size_t)list->cnt + 1, sizeof(int64_t));
    job->lo = calloc((size_t)list->cnt + 1, sizeof(int64_t));
    job->req.data = job;
    uv_queue_work(app->loop, &job->req, end_job_work, end_job_done);
}

static void check_end(cp_app_t *app)
{
    if (!app->exit_at_end || app->state != CP_APP_RUNNING ||
        app->batch.phase != CP_BATCH_IDLE)
        return;
    if (!app->got_assignment && !app->topic_missing)
        return;
    int active = 0;
    for (int i = 0; i < app->n_parts; i++) {
        const cp_part_t *p = &app->parts[i];
        active += p->active;
        if (p->active && (p->end < 0 || p->next < p->end))
            return;
    }
    /* No partition now but some before: a lost assignment or an eager
     * revoke, with the next assignment still to come. */
    if (active == 0 && app->n_parts > 0)
        return;
    cp_log(CP_LOG_INFO, "all assigned partitions reached their end", CP_LEND);
    begin_stop(app, 0);
}

/* ---- librdkafka callbacks (loop thread: served by our polls) ----------------
 */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    cp_app_t *app = opaque;
    int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        cp_log(CP_LOG_INFO, "partitions assigned", CP_LI("count", list->cnt),
               CP_LEND);
        if (coop)
            error = rd_kafka_incremental_assign(rk, list);
        else
            aerr = rd_kafka_assign(rk, list);
        parts_assign(app, list);
        app->got_assignment = 1;
        if (app->exit_at_end && list->cnt > 0)
            query_ends(app, list);
    } else {
        /* Polled only between batches: nothing is in flight for these; messages
         * taken by the current poll are dropped below. */
        cp_log(rd_kafka_assignment_lost(rk) ? CP_LOG_WARN : CP_LOG_INFO,
               "partitions revoked", CP_LI("count", list->cnt),
               CP_LB("lost", rd_kafka_assignment_lost(rk)), CP_LEND);
        if (coop)
            error = rd_kafka_incremental_unassign(rk, list);
        else
            aerr = rd_kafka_assign(rk, NULL);
        parts_revoke(app, list);
        cp__batch_drop_partitions(app, list);
    }
    if (error) {
        cp_log(CP_LOG_ERROR, "assignment failed",
               CP_LS("error", rd_kafka_error_string(error)), CP_LEND);
        rd_kafka_error_destroy(error);
    } else if (aerr) {
        cp_log(CP_LOG_ERROR, "assignment failed",
               CP_LS("error", rd_kafka_err2str(aerr)), CP_LEND);
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    cp_app_t *app = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        cp_log(CP_LOG_ERROR, "fatal kafka error",
               CP_LS("client", rd_kafka_name(rk)), CP_LS("error", buf),
               CP_LEND);
        app->pending_stop = 1; /* acted on after the poll returns */
        return;
    }
    cp_log(CP_LOG_WARN, "kafka error", CP_LS("client", rd_kafka_name(rk)),
           CP_LS("error", rd_kafka_err2str((rd_kafka_resp_err_t)err)),
           CP_LS("reason", reason), CP_LEND);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    cp__batch_delivered(opaque, rkm->_private, rkm->err);
}

static void act_on_pending_stop(cp_app_t *app)
{
    if (app->pending_stop >= 0) {
        int code = app->pending_stop;
        app->pending_stop = -1;
        begin_stop(app, code);
    }
}

/* ---- polling ------------------------------------------------------------- */

static void drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

/* A non-data message from the consumer queue. */
static void consumer_event(cp_app_t *app, rd_kafka_message_t *rkm)
{
    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    if (rkm->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        rkm->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        if (!app->topic_missing)
            cp_log(CP_LOG_WARN,
                   "input topic does not exist yet; it is "
                   "picked up once it appears",
                   CP_LS("topic", app->cfg->topic_orders), CP_LEND);
        app->topic_missing = 1;
        return;
    }
    cp_log(CP_LOG_WARN, "consumer error",
           CP_LS("error", rd_kafka_message_errstr(rkm)), CP_LEND);
}

static void try_poll(cp_app_t *app)
{
    if (app->state != CP_APP_RUNNING || app->batch.phase != CP_BATCH_IDLE)
        return;
    /* batch.n_msgs counts while filling, so a rebalance served by this very
     * poll can drop the messages of partitions it revokes. */
    cp_batch_t *b = &app->batch;
    b->n_msgs = 0;
    while (b->n_msgs < app->cfg->batch_size) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(app->consumer, 0);
        if (!rkm)
            break;
        if (rkm->err) {
            consumer_event(app, rkm);
            rd_kafka_message_destroy(rkm);
            continue;
        }
        app->topic_missing = 0;
        b->msgs[b->n_msgs++].rkm = rkm;
    }
    if (b->n_msgs > 0)
        cp__batch_start(app, b->n_msgs);
    else
        check_end(app);
    act_on_pending_stop(app);
}

static void on_cq_readable(uv_poll_t *h, int status, int events)
{
    cp_app_t *app = h->data;
    (void)status;
    (void)events;
    drain_pipe(app->cq_pipe[0]);
    try_poll(app);
}

static void serve_producer(cp_app_t *app)
{
    while (rd_kafka_poll(app->producer, 0) > 0)
        ;
    act_on_pending_stop(app);
}

static void on_pq_readable(uv_poll_t *h, int status, int events)
{
    cp_app_t *app = h->data;
    (void)status;
    (void)events;
    drain_pipe(app->pq_pipe[0]);
    serve_producer(app);
}

/* The pipes are written only when a queue goes from empty to non-empty, so
 * an event enqueued before io events were enabled (a broker that refuses
 * connections at start-up) would leave a queue that never signals again.
 * Once a second, serve whichever queue holds anything. */
static void on_tick(uv_timer_t *t)
{
    cp_app_t *app = t->data;
    if (app->state == CP_APP_CLOSED)
        return;
    if (rd_kafka_queue_length(app->pq) > 0)
        serve_producer(app);
    if (rd_kafka_queue_length(app->cq) > 0)
        try_poll(app);
}

void cp__app_batch_done(cp_app_t *app)
{
    if (app->state == CP_APP_STOPPING) {
        begin_stop(app, app->exit_code);
        return;
    }
    check_end(app);
    try_poll(app);
}

static void on_retry_timer(uv_timer_t *t)
{
    cp__batch_retry(t->data);
}

void cp__app_schedule_retry(cp_app_t *app, uint64_t ms)
{
    uv_timer_start(&app->retry_timer, on_retry_timer, ms, 0);
}

/* ---- start-up -------------------------------------------------------------
 */

static void maybe_start(cp_app_t *app)
{
    if (app->state != CP_APP_STARTING || !app->redis_ready ||
        !app->topics_ready)
        return;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, app->cfg->topic_orders,
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(app->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        cp_log(CP_LOG_ERROR, "subscribe failed",
               CP_LS("error", rd_kafka_err2str(err)), CP_LEND);
        begin_stop(app, 1);
        return;
    }
    app->subscribed = 1;
    app->state = CP_APP_RUNNING;
    cp_log(CP_LOG_INFO, "running", CP_LS("topic", app->cfg->topic_orders),
           CP_LEND);
    try_poll(app);
}

static void on_redis_status(cp_redis_t *r, cp_redis_status_t status,
                            void *opaque)
{
    cp_app_t *app = opaque;
    (void)r;
    if (status == CP_REDIS_FATAL) {
        begin_stop(app, 1);
        return;
    }
    app->redis_ready = status == CP_REDIS_READY;
    if (!app->redis_ready)
        return;
    maybe_start(app);
    cp__batch_redis_ready(app);
}

typedef struct cp_topics_job_s {
    uv_work_t req;
    cp_app_t *app;
    int ok;
} cp_topics_job_t;

static void topics_work(uv_work_t *req)
{
    cp_topics_job_t *job = req->data;
    const cp_config_t *cfg = job->app->cfg;
    const char *topics[] = {cfg->topic_segments, cfg->topic_churn,
                            cfg->topic_dlq};
    int logged = 0;
    while (!atomic_load(&stop_flag)) {
        char err[512];
        if (cp_kafka_create_topics(job->app->producer, cfg, topics, 3, 10000,
                                   err, sizeof(err)) == CP_OK) {
            job->ok = 1;
            return;
        }
        if ((logged & (logged - 1)) == 0) /* 1st, 2nd, 4th, 8th ... */
            cp_log(CP_LOG_WARN, "cannot create output topics yet; retrying",
                   CP_LS("error", err), CP_LI("attempts", logged + 1), CP_LEND);
        logged++;
        sleep(1);
    }
}

static void topics_done(uv_work_t *req, int status)
{
    cp_topics_job_t *job = req->data;
    cp_app_t *app = job->app;
    app->topics_ready = job->ok && status == 0;
    free(job);
    if (app->topics_ready)
        maybe_start(app);
}

static int queue_to_loop(cp_app_t *app, rd_kafka_queue_t *q, int fds[2],
                         uv_poll_t *poll, uv_poll_cb cb)
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    rd_kafka_queue_io_event_enable(q, fds[1], "1", 1);
    uv_poll_init(app->loop, poll, fds[0]);
    poll->data = app;
    uv_poll_start(poll, UV_READABLE, cb);
    return 0;
}

static rd_kafka_t *client_new(cp_app_t *app, cp_kafka_role_t role,
                              const char *bootstraps)
{
    char err[512];
    rd_kafka_conf_t *conf =
        cp_kafka_conf_new(app->cfg, role, bootstraps, err, sizeof(err));
    if (!conf) {
        cp_log(CP_LOG_ERROR, "invalid kafka configuration", CP_LS("error", err),
               CP_LEND);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, app);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (role == CP_KAFKA_CONSUMER)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    else
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(role == CP_KAFKA_CONSUMER ? RD_KAFKA_CONSUMER
                                                            : RD_KAFKA_PRODUCER,
                                  conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        cp_log(CP_LOG_ERROR, "cannot create kafka client", CP_LS("error", err),
               CP_LEND);
    }
    /* else conf is now owned by rk */
    return rk;
}

/* ---- shutdown -------------------------------------------------------------
 */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_redis_closed(void *arg)
{
    (void)arg;
}

static void close_all(cp_app_t *app)
{
    app->state = CP_APP_CLOSED;
    uv_close((uv_handle_t *)&app->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&app->tick_timer, on_handle_closed);
    uv_close((uv_handle_t *)&app->shutdown_timer, on_handle_closed);
    uv_close((uv_handle_t *)&app->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&app->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&app->cq_poll, on_handle_closed);
    uv_close((uv_handle_t *)&app->pq_poll, on_handle_closed);
    cp_redis_close(app->redis, on_redis_closed, app);
    app->redis = NULL;
}

/* Commits, leaves the group and flushes; runs once no batch is in flight. */
static void finish_shutdown(cp_app_t *app)
{
    if (app->subscribed) {
        rd_kafka_resp_err_t err = rd_kafka_commit(app->consumer, NULL, 0);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            cp_log(CP_LOG_ERROR, "final commit failed",
                   CP_LS("error", rd_kafka_err2str(err)), CP_LEND);
            app->exit_code = app->exit_code ? app->exit_code : 1;
        }
    }
    app->batch.phase = CP_BATCH_IDLE;
    rd_kafka_consumer_close(app->consumer);
    rd_kafka_flush(app->producer, 5000);
    const cp_redis_stats_t *rs = cp_redis_stats(app->redis);
    cp_log(CP_LOG_INFO, "stopped", CP_LI("events", app->n_events),
           CP_LI("dlq", app->n_dlq), CP_LI("outputs", app->n_outputs),
           CP_LI("batches", app->n_batches),
           CP_LI("redis_commands", rs->commands),
           CP_LI("exit_code", app->exit_code), CP_LEND);
    close_all(app);
}

static void on_shutdown_deadline(uv_timer_t *t)
{
    cp_app_t *app = t->data;
    cp__batch_abandon(app);
    finish_shutdown(app);
}

static void begin_stop(cp_app_t *app, int code)
{
    if (app->state == CP_APP_CLOSED)
        return;
    if (code > app->exit_code)
        app->exit_code = code; /* a failure after SIGTERM still counts */
    if (app->state != CP_APP_STOPPING) {
        app->exit_code = code;
        app->state = CP_APP_STOPPING;
        atomic_store(&stop_flag, 1);
        cp_log(CP_LOG_INFO, "stopping", CP_LI("exit_code", code), CP_LEND);
        uv_timer_start(&app->shutdown_timer, on_shutdown_deadline,
                       (uint64_t)app->cfg->shutdown_timeout_ms, 0);
    }
    if (app->batch.phase == CP_BATCH_IDLE) {
        uv_timer_stop(&app->shutdown_timer);
        finish_shutdown(app);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    cp_app_t *app = s->data;
    cp_log(CP_LOG_INFO, "signal received", CP_LI("signal", signum), CP_LEND);
    begin_stop(app, 0);
}

/* ---- run ------------------------------------------------------------------
 */

static int app_init(cp_app_t *app, cp_config_t *cfg, int exit_at_end)
{
    char err[256];
    app->cfg = cfg;
    app->exit_at_end = exit_at_end;
    app->tz = cp_tz_new(cfg->timezone, err, sizeof(err));
    if (!app->tz) {
        cp_log(CP_LOG_ERROR, "invalid timezone", CP_LS("error", err), CP_LEND);
        return -1;
    }
    app->dparams.max_bytes = (size_t)cfg->input_max_bytes;
    app->dparams.currency = cfg->currency;
    app->dparams.currency_digits = cfg->currency_digits;
    app->dparams.tz = app->tz;
    size_t plen = strlen(cfg->redis_prefix) + 4;
    app->popkey = malloc(plen);
    snprintf(app->popkey, plen, "%spop", cfg->redis_prefix);
    if (cp__batch_init(&app->batch, cfg->batch_size) != 0)
        return -1;

    const char *bootstraps = NULL;
    int failed = 0;
    app->embedded =
        cp_kafka_embedded_new(cfg, &bootstraps, &failed, err, sizeof(err));
    if (failed) {
        cp_log(CP_LOG_ERROR, "cannot start the embedded cluster",
               CP_LS("error", err), CP_LEND);
        return -1;
    }
    app->producer = client_new(app, CP_KAFKA_PRODUCER, bootstraps);
    app->consumer =
        app->producer ? client_new(app, CP_KAFKA_CONSUMER, bootstraps) : NULL;
    if (!app->consumer)
        return -1;
    rd_kafka_poll_set_consumer(app->consumer);
    app->cq = rd_kafka_queue_get_consumer(app->consumer);
    app->pq = rd_kafka_queue_get_main(app->producer);
    if (queue_to_loop(app, app->cq, app->cq_pipe, &app->cq_poll,
                      on_cq_readable) != 0 ||
        queue_to_loop(app, app->pq, app->pq_pipe, &app->pq_poll,
                      on_pq_readable) != 0)
        return -1;
    app->redis =
        cp_redis_new(app->loop, cfg, on_redis_status, app, err, sizeof(err));
    return app->redis ? 0 : -1;
}

static void app_start(cp_app_t *app)
{
    uv_timer_init(app->loop, &app->retry_timer);
    uv_timer_init(app->loop, &app->shutdown_timer);
    uv_timer_init(app->loop, &app->tick_timer);
    app->retry_timer.data = app->shutdown_timer.data = app;
    app->tick_timer.data = app;
    uv_timer_start(&app->tick_timer, on_tick, 0, 1000);
    uv_signal_init(app->loop, &app->sigterm);
    uv_signal_init(app->loop, &app->sigint);
    app->sigterm.data = app->sigint.data = app;
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);
    uv_signal_start(&app->sigint, on_signal, SIGINT);
    cp_redis_start(app->redis);
    if (app->embedded) {
        char err[256];
        if (cp_kafka_embedded_topics(app->embedded, app->cfg, err,
                                     sizeof(err)) != CP_OK) {
            cp_log(CP_LOG_ERROR, "embedded cluster", CP_LS("error", err),
                   CP_LEND);
            begin_stop(app, 1);
            return;
        }
        app->topics_ready = 1;
        return;
    }
    cp_topics_job_t *job = calloc(1, sizeof(*job));
    job->app = app;
    job->req.data = job;
    uv_queue_work(app->loop, &job->req, topics_work, topics_done);
}

static void app_free(cp_app_t *app)
{
    /* Messages of an abandoned batch hold references into the consumer:
     * rd_kafka_destroy would wait for them forever. */
    cp__batch_free(&app->batch);
    if (app->cq)
        rd_kafka_queue_destroy(app->cq);
    if (app->pq)
        rd_kafka_queue_destroy(app->pq);
    if (app->consumer)
        rd_kafka_destroy(app->consumer);
    if (app->producer)
        rd_kafka_destroy(app->producer);
    if (app->embedded)
        rd_kafka_destroy(app->embedded);
    for (int i = 0; i < 2; i++) {
        if (app->cq_pipe[i] > 0)
            close(app->cq_pipe[i]);
        if (app->pq_pipe[i] > 0)
            close(app->pq_pipe[i]);
    }
    for (int i = 0; i < app->n_parts; i++)
        free(app->parts[i].topic);
    free(app->parts);
    free(app->popkey);
    cp_tz_free(app->tz);
    cp_config_free(app->cfg);
}

int cp_app_run(cp_config_t *cfg, int exit_at_end)
{
    uv_loop_t loop;
    cp_app_t app;
    memset(&app, 0, sizeof(app));
    app.cq_pipe[0] = app.cq_pipe[1] = app.pq_pipe[0] = app.pq_pipe[1] = -1;
    app.pending_stop = -1;
    uv_loop_init(&loop);
    app.loop = &loop;
    int rc = 1;
    if (app_init(&app, cfg, exit_at_end) == 0) {
        app_start(&app);
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = app.exit_code;
    } else if (app.redis) {
        cp_redis_close(app.redis, on_redis_closed, &app);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    app_free(&app);
    uv_loop_close(&loop);
    return rc;
}
