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
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_int.h"
#include "metrics_out.h"
#include "num.h"
#include "report.h"
#include "failpoint.h"
#include "kafka.h"
#include "log.h"

static void begin_stop(cp_app_t *app, int code);
static void try_poll(cp_app_t *app);
static int maybe_sweep(cp_app_t *app);
static int metrics_pending(cp_app_t *app);
static void check_assigned(cp_app_t *app, rd_kafka_t *rk,
                           rd_kafka_topic_partition_list_t *list);
static void start_check(cp_app_t *app, cp_part_t *part);

static _Atomic int stop_flag; /* read by worker threads */

/* ---- partitions ---------------------------------------------------------- */

int cp__app_part_index(cp_app_t *app, const char *topic, int32_t p)
{
    for (int i = 0; i < app->n_parts; i++)
        if (app->parts[i].partition == p &&
            strcmp(app->parts[i].topic, topic) == 0)
            return i;
    return -1;
}

static cp_part_t *part_find(cp_app_t *app, const char *topic, int32_t p)
{
    int i = cp__app_part_index(app, topic, p);
    return i < 0 ? NULL : &app->parts[i];
}

/* ---- partition epochs (fencing, docs/fault-tolerance.md) ------------------
 *
 * The owner of a partition takes its epoch when the partition is assigned
 * (and again if that failed); every customer write carries it, and the
 * write script refuses writes whose epoch was outranked. The reply names
 * the partition by index and assignment generation, so a reply for an
 * earlier assignment is ignored. It also brings the position kept in
 * Redis, which the position check at assignment needs: the check starts
 * once the epoch is taken. */

#define EPOCH_GEN_BITS 20

static void on_epoch(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = cp_redis_opaque(r);
    intptr_t v = (intptr_t)pd;
    int i = (int)(v >> EPOCH_GEN_BITS);
    unsigned gen = (unsigned)(v & ((1 << EPOCH_GEN_BITS) - 1));
    if (i >= app->n_parts)
        return;
    cp_part_t *part = &app->parts[i];
    if ((part->gen & ((1u << EPOCH_GEN_BITS) - 1)) != gen)
        return;
    part->acquiring = 0;
    redisReply **el =
        reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
            ? reply->element
            : NULL;
    if (el && el[0]->type == REDIS_REPLY_INTEGER && el[0]->integer > 0) {
        if (el[0]->integer > part->epoch)
            part->epoch = el[0]->integer;
        app->stats.epochs_acquired++;
        char *end = NULL;
        long long pos = -1;
        if (el[1]->type == REDIS_REPLY_STRING)
            pos = strtoll(el[1]->str, &end, 10);
        part->rpos = end && !*end && pos >= 0 ? pos : -1;
        part->rfp[0] = '\0';
        if (el[2]->type == REDIS_REPLY_STRING && el[2]->len < CP_FP_SIZE)
            memcpy(part->rfp, el[2]->str, el[2]->len + 1);
        cp_log(CP_LOG_DEBUG, "partition epoch taken",
               CP_LS("topic", part->topic), CP_LI("partition", part->partition),
               CP_LI("epoch", part->epoch), CP_LI("applied", part->rpos),
               CP_LEND);
        if (part->checking && !part->check_started)
            start_check(app, part);
    } else if (reply && reply->type == REDIS_REPLY_ERROR &&
               strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        cp_redis_reload_scripts(r); /* taken again by the next batch */
    } else if (reply) {
        cp_log(CP_LOG_WARN, "cannot take a partition epoch; retrying",
               CP_LS("topic", part->topic), CP_LI("partition", part->partition),
               CP_LS("error", reply->type == REDIS_REPLY_ERROR
                                  ? reply->str
                                  : "unexpected reply type"),
               CP_LEND);
    }
}

int cp__app_acquire_epoch(cp_app_t *app, int i)
{
    cp_part_t *part = &app->parts[i];
    if (!app->redis || !cp_redis_ready(app->redis))
        return -1;
    const char *argv[] = {"EVALSHA",
                          cp_redis_script_sha(app->redis, CP_SCRIPT_EPOCH), "1",
                          part->epkey};
    size_t lens[] = {7, 40, 1, strlen(part->epkey)};
    intptr_t pd = ((intptr_t)i << EPOCH_GEN_BITS) |
                  (intptr_t)(part->gen & ((1u << EPOCH_GEN_BITS) - 1));
    if (cp_redis_cmd(app->redis, on_epoch, (void *)pd, 4, argv, lens) != CP_OK)
        return -1;
    part->acquiring = 1;
    return 0;
}

/* An assignment or a revocation: what the previous ownership held (epoch,
 * fencing, position check) no longer applies; late replies for it are told
 * apart by the generation. */
static void part_new_generation(cp_part_t *part, int active)
{
    part->active = active;
    part->gen++;
    part->epoch = 0;
    part->fenced = 0;
    part->acquiring = 0;
    part->alarmed = 0;
    part->checking = 0;
    part->check_started = 0;
    part->rpos = -1;
    part->rfp[0] = '\0';
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
            memset(part, 0, sizeof(*part));
            part->topic = strdup(tp->topic);
            part->partition = tp->partition;
            size_t klen =
                strlen(app->cfg->redis_prefix) + strlen(tp->topic) + 20;
            part->epkey = malloc(klen);
            if (!part->topic || !part->epkey)
                abort();
            snprintf(part->epkey, klen, "%sep:%s:%d", app->cfg->redis_prefix,
                     tp->topic, (int)tp->partition);
            part->end = -1; /* the end is fixed at the first assignment */
            part->next = -1;
        }
        part_new_generation(part, 1);
        (void)cp__app_acquire_epoch(app, (int)(part - app->parts));
    }
}

static void parts_revoke(cp_app_t *app,
                         const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        cp_part_t *part =
            part_find(app, list->elems[i].topic, list->elems[i].partition);
        if (part)
            part_new_generation(part, 0);
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
        if (p->active && (p->checking || p->end < 0 || p->next < p->end))
            return;
    }
    /* No partition now but some before: a lost assignment or an eager
     * revoke, with the next assignment still to come. */
    if (active == 0 && app->n_parts > 0)
        return;
    /* Every evaluation due by the final clock runs before the exit
     * (docs/churn.md "Time-driven evaluation"). */
    int shards = 0; /* orders partitions owned: due index shards */
    for (int i = 0; i < app->n_parts; i++)
        shards += app->parts[i].active &&
                  strcmp(app->parts[i].topic, app->cfg->topic_orders) == 0;
    if (app->cfg->due_sweep_ms > 0 && shards > 0 && app->final_sweep != 2) {
        if (!app->final_sweep)
            cp_log(CP_LOG_INFO,
                   "all assigned partitions reached their end; "
                   "sweeping due customers",
                   CP_LEND);
        app->final_sweep = 1;
        app->sweep_wanted = 1;
        if (maybe_sweep(app) || app->due_shards <= 0 ||
            !cp_redis_ready(app->redis))
            return; /* a sweep runs, or waits for what it needs (tick) */
        if (app->sweep_wanted)
            return; /* an epoch first: the sweep timer comes back */
    }
    if (metrics_pending(app))
        return; /* the daily metrics up to the final clock first */
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
        cp_cache_clear(app->cache); /* states written elsewhere meanwhile */
        if (!error && !aerr)
            check_assigned(app, rk, list);
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
        cp_cache_clear(app->cache);
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
    if (err == RD_KAFKA_RESP_ERR__FATAL && rk == app->producer) {
        /* librdkafka 2.0.2 can raise a false one (#4438): the producer is
         * recreated once this poll returns (restart_producer). */
        app->producer_fatal = 1;
        return;
    }
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

static void metrics_delivered(cp_app_t *app, size_t i, rd_kafka_resp_err_t err);

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    cp_app_t *app = opaque;
    (void)rk;
    const char *p = rkm->_private;
    const char *m0 = (const char *)app->mrecs;
    if (m0 && p >= m0 && p < m0 + app->n_mrecs * sizeof(*app->mrecs)) {
        metrics_delivered(app, (size_t)(p - m0) / sizeof(*app->mrecs),
                          rkm->err);
        return;
    }
    cp__batch_delivered(app, rkm->_private, rkm->err);
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

/* ---- position check at assignment ------------------------------------------
 *
 * A partition whose events custpulse applied before may have been deleted
 * and recreated (or truncated by a broker that lost data). Its new events
 * get offsets from 0 again, and the customers' watermarks would take each
 * of them for a re-delivery and skip it silently. Kafka 3.9 deletes the
 * group's committed offsets with the topic, so custpulse keeps its own
 * position per partition in Redis (<prefix>ep:<topic>:<p>, o = the offset
 * after the last event applied, f = that event's fingerprint), moved by
 * the same script calls that apply the events.
 *
 * Every assigned partition is paused in the rebalance callback. Once its
 * epoch is taken (which reads o and f), a worker reads its committed
 * offset and watermarks, and - when there is no committed offset but a
 * position in Redis inside the partition - fetches the event at o - 1 and
 * compares its fingerprint. Then:
 *   committed or o beyond the end, or the event at o - 1 is another one
 *     -> alarm; the partition stays paused (its messages are dropped,
 *        uncommitted);
 *   committed before the start (retention deleted events before they were
 *     consumed) -> alarm, go on from the start;
 *   otherwise seek to the committed offset (or where auto.offset.reset
 *     says when there is none) and resume.
 * The seek also discards any message fetched before the pause took
 * effect. */

#define PROBE_TIMEOUT_MS 10000

typedef enum {
    CP_PROBE_NONE = 0,  /* not needed, or the event is gone (retention) */
    CP_PROBE_SAME,      /* the event at o - 1 has the stored fingerprint */
    CP_PROBE_DIFFERENT, /* another event: the topic was recreated */
    CP_PROBE_GAP        /* no event at o - 1 (compaction, control records) */
} cp_probe_t;

typedef struct cp_check_job_s {
    uv_work_t req;
    cp_app_t *app;
    char *topic;
    int32_t partition;
    unsigned gen;
    int64_t committed, lo, hi;
    int64_t rpos;         /* o at assignment, -1 none */
    char rfp[CP_FP_SIZE]; /* f at assignment */
    char fp[CP_FP_SIZE];  /* the fingerprint found at o - 1 */
    cp_probe_t probe;
    int ok;
} cp_check_job_t;

static rd_kafka_topic_partition_list_t *one_tp(const char *topic, int32_t p,
                                               int64_t offset);

/* Fetches the event at job->rpos - 1 with a short-lived consumer that
 * joins no group and commits nothing. Returns 0 with job->probe set, -1
 * when it could not be read in time. Thread: worker. */
static int probe_event(cp_check_job_t *job)
{
    char err[256];
    int64_t want = job->rpos - 1;
    rd_kafka_conf_t *conf =
        cp_kafka_conf_new(job->app->cfg, CP_KAFKA_CONSUMER,
                          job->app->bootstraps, err, sizeof(err));
    if (!conf)
        return -1;
    if (rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
                          sizeof(err)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "queued.max.messages.kbytes", "1024", err,
                          sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l =
        one_tp(job->topic, job->partition, want);
    int rc = rd_kafka_assign(rk, l) ? -1 : 1;
    rd_kafka_topic_partition_list_destroy(l);
    for (int waited = 0;
         rc == 1 && waited < PROBE_TIMEOUT_MS && !atomic_load(&stop_flag);
         waited += 200) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 200);
        if (!rkm)
            continue;
        if (!rkm->err && rkm->partition == job->partition &&
            rkm->offset >= want) {
            if (rkm->offset > want) {
                job->probe = CP_PROBE_GAP;
            } else {
                cp_store_fingerprint(rd_kafka_message_timestamp(rkm, NULL),
                                     rkm->payload, rkm->len, job->fp);
                job->probe = strcmp(job->fp, job->rfp) == 0
                                 ? CP_PROBE_SAME
                                 : CP_PROBE_DIFFERENT;
            }
            rc = 0;
        }
        rd_kafka_message_destroy(rkm);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc == 0 ? 0 : -1;
}

static void check_job_work(uv_work_t *req)
{
    cp_check_job_t *job = req->data;
    rd_kafka_t *rk = job->app->consumer;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, job->topic, job->partition);
    for (int i = 0; i < 5 && !atomic_load(&stop_flag) && !job->ok; i++) {
        job->ok =
            rd_kafka_committed(rk, l, 5000) == 0 && l->elems[0].err == 0 &&
            rd_kafka_query_watermark_offsets(rk, job->topic, job->partition,
                                             &job->lo, &job->hi, 5000) == 0;
        if (!job->ok)
            sleep(1);
    }
    job->committed = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    /* No committed offset but events applied before: a new group, or a
     * recreated topic that has grown past o already. */
    if (job->ok && job->committed < 0 && job->rpos > 0 &&
        job->rpos - 1 >= job->lo && job->rpos - 1 < job->hi &&
        probe_event(job) != 0)
        job->ok = 0;
}

static rd_kafka_topic_partition_list_t *one_tp(const char *topic, int32_t p,
                                               int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = offset;
    return l;
}

static void seek_and_resume(cp_app_t *app, cp_part_t *part, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l =
        one_tp(part->topic, part->partition, offset);
    rd_kafka_error_t *error = rd_kafka_seek_partitions(app->consumer, l, 0);
    if (error) {
        cp_log(CP_LOG_ERROR, "seek failed", CP_LS("topic", part->topic),
               CP_LI("partition", part->partition),
               CP_LS("error", rd_kafka_error_string(error)), CP_LEND);
        rd_kafka_error_destroy(error);
    }
    rd_kafka_resume_partitions(app->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    part->checking = 0;
}

static void offset_alarm(cp_app_t *app, const char *msg, const cp_part_t *part,
                         const cp_check_job_t *job)
{
    app->stats.offset_alarms++;
    cp_log(CP_LOG_ERROR, msg, CP_LS("topic", part->topic),
           CP_LI("partition", part->partition),
           CP_LI("committed", job->committed), CP_LI("applied", job->rpos),
           CP_LI("low", job->lo), CP_LI("high", job->hi), CP_LEND);
}

/* The partition is not consumed: its new events would be taken for
 * re-deliveries. */
static void alarm_stop(cp_app_t *app, cp_part_t *part, const char *msg,
                       const cp_check_job_t *job)
{
    part->alarmed = 1;
    part->checking = 0;
    offset_alarm(app, msg, part, job);
    if (app->exit_at_end)
        begin_stop(app, 1);
}

static void check_job_done(uv_work_t *req, int status)
{
    cp_check_job_t *job = req->data;
    cp_app_t *app = job->app;
    cp_part_t *part = part_find(app, job->topic, job->partition);
    if (status != 0 || app->state != CP_APP_RUNNING || !part || !part->active ||
        part->gen != job->gen) {
        /* stale: a later assignment runs its own check */
    } else if (!job->ok) {
        cp_log(CP_LOG_WARN,
               "cannot read a partition's committed offset yet; retrying",
               CP_LS("topic", part->topic), CP_LI("partition", part->partition),
               CP_LEND);
        start_check(app, part);
    } else if (job->committed > job->hi) {
        alarm_stop(app, part,
                   "committed offset beyond the partition's end: was the "
                   "topic deleted and recreated? The partition is not "
                   "consumed (its new events would be taken for "
                   "re-deliveries); see docs/fault-tolerance.md",
                   job);
    } else if (job->rpos > job->hi) {
        alarm_stop(app, part,
                   "events applied beyond the partition's end: was the topic "
                   "deleted and recreated? The partition is not consumed "
                   "(its new events would be taken for re-deliveries); see "
                   "docs/fault-tolerance.md",
                   job);
    } else if (job->probe == CP_PROBE_DIFFERENT) {
        alarm_stop(app, part,
                   "the event at the last applied offset is not the one "
                   "applied: was the topic deleted and recreated? The "
                   "partition is not consumed (its new events would be "
                   "taken for re-deliveries); see docs/fault-tolerance.md",
                   job);
    } else if (job->committed >= 0 && job->committed < job->lo) {
        offset_alarm(app,
                     "events deleted by retention before they were consumed; "
                     "going on from the earliest available",
                     part, job);
        seek_and_resume(app, part, RD_KAFKA_OFFSET_BEGINNING);
    } else if (job->committed >= 0) {
        seek_and_resume(app, part, job->committed);
    } else {
        const char *policy = cp_kafka_reset_policy(app->cfg);
        int latest = !strcmp(policy, "latest") || !strcmp(policy, "largest") ||
                     !strcmp(policy, "end");
        seek_and_resume(app, part,
                        latest ? RD_KAFKA_OFFSET_END
                               : RD_KAFKA_OFFSET_BEGINNING);
    }
    free(job->topic);
    free(job);
}

static void start_check(cp_app_t *app, cp_part_t *part)
{
    cp_check_job_t *job = calloc(1, sizeof(*job));
    if (!job || !(job->topic = strdup(part->topic)))
        abort();
    job->app = app;
    job->partition = part->partition;
    job->gen = part->gen;
    job->rpos = part->rpos;
    memcpy(job->rfp, part->rfp, sizeof(job->rfp));
    job->req.data = job;
    part->checking = 1;
    part->check_started = 1;
    uv_queue_work(app->loop, &job->req, check_job_work, check_job_done);
}

/* Rebalance callback: pause what was just assigned; its check starts
 * once its epoch is taken (on_epoch). */
static void check_assigned(cp_app_t *app, rd_kafka_t *rk,
                           rd_kafka_topic_partition_list_t *list)
{
    rd_kafka_pause_partitions(rk, list);
    for (int i = 0; i < list->cnt; i++) {
        cp_part_t *part =
            part_find(app, list->elems[i].topic, list->elems[i].partition);
        if (part)
            part->checking = 1;
    }
}

/* Partitions waiting for their check whose epoch acquisition failed
 * (Redis was down): take it again. Called once a second and when Redis
 * becomes ready. */
static void retry_check_epochs(cp_app_t *app)
{
    if (app->state != CP_APP_RUNNING)
        return;
    for (int i = 0; i < app->n_parts; i++) {
        cp_part_t *part = &app->parts[i];
        if (part->active && part->checking && !part->check_started &&
            !part->acquiring)
            (void)cp__app_acquire_epoch(app, i);
    }
}

static void input_topics(const cp_config_t *cfg, const char *out[4], int *n);

/* A non-data message from the consumer queue. */
static void consumer_event(cp_app_t *app, rd_kafka_message_t *rkm)
{
    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    if (rkm->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        rkm->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        /* Only a missing orders topic means "nothing to consume" for
         * --exit-at-end; the other input topics are optional. */
        const char *topic =
            rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : app->cfg->topic_orders;
        const char *topics[4];
        int n_topics;
        input_topics(app->cfg, topics, &n_topics);
        for (int i = 0; i < n_topics; i++) {
            if (strcmp(topics[i], topic) != 0 || (app->topics_warned >> i & 1))
                continue;
            app->topics_warned |= 1u << i;
            cp_log(CP_LOG_WARN,
                   "input topic does not exist yet; it is "
                   "picked up once it appears",
                   CP_LS("topic", topic), CP_LEND);
        }
        if (strcmp(topic, app->cfg->topic_orders) == 0)
            app->topic_missing = 1;
        return;
    }
    cp_log(CP_LOG_WARN, "consumer error",
           CP_LS("error", rd_kafka_message_errstr(rkm)), CP_LEND);
}

static void poll_once(cp_app_t *app);

/* A batch can finish inside the poll that started it (every customer
 * cached, nothing to write or produce): its cp__app_batch_done polls
 * again. That nested poll only asks this one to go on, so the stack does
 * not grow with such batches. */
static void try_poll(cp_app_t *app)
{
    if (app->polling) {
        app->poll_again = 1;
        return;
    }
    app->polling = 1;
    do {
        app->poll_again = 0;
        poll_once(app);
    } while (app->poll_again);
    app->polling = 0;
}

static void poll_once(cp_app_t *app)
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
    if (b->n_msgs > 0 && app->embedded && !app->mock_faults_armed) {
        char err[256];
        app->mock_faults_armed = 1;
        if (cp_kafka_mock_faults_arm(app->embedded, err, sizeof(err)) != CP_OK)
            cp_log(CP_LOG_ERROR, "mock faults", CP_LS("error", err), CP_LEND);
    }
    if (b->n_msgs > 0) {
        cp__batch_start(app, b->n_msgs);
    } else if (!maybe_sweep(app)) {
        check_end(app);
    }
    act_on_pending_stop(app);
}

/* ---- the due-time sweep (docs/churn.md "Time-driven evaluation") ----------
 */

/* The sweep's "now": the system clock, or (clock = event) the greatest
 * event time seen less the allowed lateness; INT64_MIN before any event. */
static int64_t sweep_now(const cp_app_t *app)
{
    if (app->cfg->clock != CP_CLOCK_EVENT)
        return cp_time_wall_ms();
    if (app->clock_max_ms <= 0)
        return INT64_MIN;
    return app->clock_max_ms - app->cfg->clock_lateness_ms;
}

/* Starts a sweep batch if one is wanted and can run now; returns 1 if it
 * started. */
static int maybe_sweep(cp_app_t *app)
{
    if (!app->sweep_wanted || app->sweep_backoff ||
        app->state != CP_APP_RUNNING || app->batch.phase != CP_BATCH_IDLE ||
        app->due_shards <= 0 || !app->redis_ready ||
        !cp_redis_ready(app->redis))
        return 0;
    int64_t now = sweep_now(app);
    if (now == INT64_MIN) {
        app->sweep_wanted = 0; /* nothing can be due before any event */
        return 0;
    }
    app->sweep_wanted = 0;
    cp__batch_sweep(app, now);
    return 1;
}

static void on_sweep_timer(uv_timer_t *t)
{
    cp_app_t *app = t->data;
    if (app->state != CP_APP_RUNNING)
        return;
    app->sweep_wanted = 1;
    app->sweep_backoff = 0;
    maybe_sweep(app);
}

void cp__app_sweep_done(cp_app_t *app, int full)
{
    /* full & 1: more due than one batch takes, go on (after an event
     * batch, if any); full & 2: a shard was not ready (its epoch is being
     * taken), full & 4: the scan failed: come back in 100 ms, by the
     * timer (not from here: no recursion through check_end). */
    if (full & 1)
        app->sweep_wanted = 1;
    if ((full & 6) && app->state == CP_APP_RUNNING) {
        app->sweep_wanted = 1;
        app->sweep_backoff = 1;
        uv_timer_start(&app->sweep_timer, on_sweep_timer, 100,
                       (uint64_t)app->cfg->due_sweep_ms);
    }
    if (full == 0)
        app->swept_to = app->batch.sweep_now; /* everything due by then */
    if (app->state == CP_APP_STOPPING) {
        begin_stop(app, app->exit_code);
        return;
    }
    if (app->final_sweep == 1 && full == 0)
        app->final_sweep = 2; /* nothing due by the final clock is left */
    try_poll(app);
}

static void on_cq_readable(uv_poll_t *h, int status, int events)
{
    cp_app_t *app = h->data;
    (void)status;
    (void)events;
    drain_pipe(app->cq_pipe[0]);
    try_poll(app);
}

static rd_kafka_t *client_new(cp_app_t *app, cp_kafka_role_t role,
                              const char *bootstraps);

#define PRODUCER_RESTARTS_MAX 5 /* within PRODUCER_RESTART_WINDOW_MS */
#define PRODUCER_RESTART_WINDOW_MS 60000

/* A fatal error of the idempotent producer (librdkafka #4438 raises false
 * ones): purge it, so every record in flight gets a delivery report and is
 * marked undelivered, destroy it and create a new one; the batch produces
 * its undelivered records again (same CloudEvent ids). Outputs of batches
 * not yet cleared are still in their customers' outboxes. A fatal error
 * that keeps coming back is real: stop with exit code 1. */
static void restart_producer(cp_app_t *app)
{
    char buf[512] = "";
    app->producer_fatal = 0;
    rd_kafka_fatal_error(app->producer, buf, sizeof(buf));
    uint64_t now = uv_now(app->loop);
    if (now - app->restart_window_start > PRODUCER_RESTART_WINDOW_MS) {
        app->restart_window_start = now;
        app->restarts_in_window = 0;
    }
    if (++app->restarts_in_window > PRODUCER_RESTARTS_MAX) {
        cp_log(CP_LOG_ERROR, "fatal producer error keeps coming back; stopping",
               CP_LS("error", buf), CP_LEND);
        begin_stop(app, 1);
        return;
    }
    app->stats.producer_restarts++;
    cp_log(CP_LOG_ERROR,
           "fatal producer error: recreating the producer; undelivered "
           "records are produced again",
           CP_LS("error", buf), CP_LI("restarts", app->stats.producer_restarts),
           CP_LEND);
    rd_kafka_t *old = app->producer;
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && rd_kafka_outq_len(old) > 0; i++)
        rd_kafka_poll(old, 20); /* purge reports: records marked undelivered */
    rd_kafka_queue_io_event_enable(app->pq, -1, NULL, 0);
    rd_kafka_queue_destroy(app->pq);
    app->pq = NULL;
    rd_kafka_destroy(old);
    app->producer = client_new(app, CP_KAFKA_PRODUCER, app->bootstraps);
    if (!app->producer) {
        begin_stop(app, 1);
        return;
    }
    app->pq = rd_kafka_queue_get_main(app->producer);
    rd_kafka_queue_io_event_enable(app->pq, app->pq_pipe[1], "1", 1);
    if (app->batch.phase == CP_BATCH_PRODUCE)
        cp__app_schedule_retry(app, 0);
    for (size_t i = 0; i < app->n_mrecs; i++)
        if (app->mrec_delivered && app->mrec_delivered[i] == -1)
            app->mrec_delivered[i] = 0; /* purged: produced again */
}

static void serve_producer(cp_app_t *app)
{
    while (app->producer && rd_kafka_poll(app->producer, 0) > 0)
        ;
    if (app->producer_fatal && app->state != CP_APP_CLOSED)
        restart_producer(app);
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
static void on_btyd(cp_redis_t *r, redisReply *reply, void *pd);
static void fetch_due_shards(cp_app_t *app);
static void read_btyd(cp_app_t *app);
static void take_rq_snapshot(cp_app_t *app);

static void metrics_tick(cp_app_t *app);

static void on_tick(uv_timer_t *t)
{
    cp_app_t *app = t->data;
    if (app->state == CP_APP_CLOSED)
        return;
    if (app->pq && rd_kafka_queue_length(app->pq) > 0)
        serve_producer(app);
    if (rd_kafka_queue_length(app->cq) > 0)
        try_poll(app);
    retry_check_epochs(app);
    fetch_due_shards(app);
    metrics_tick(app);
    if (app->final_sweep && app->batch.phase == CP_BATCH_IDLE)
        check_end(app);
    if (app->btyd_loaded && uv_now(app->loop) - app->btyd_read_ms >=
                                (uint64_t)app->cfg->btyd_refresh_ms)
        read_btyd(app);
    if (app->cfg->rfmq_mode == 0 && app->rq_loaded &&
        uv_now(app->loop) - app->rq_taken_ms >=
            (uint64_t)app->cfg->rfmq_snapshot_ms)
        take_rq_snapshot(app);
}

/* ---- daily metrics (docs/metrics.md "Output") ---------------------------
 *
 * The owner of orders partition 0 emits one customer.metrics record per
 * complete local day: a worker job reads the counters with a synchronous
 * connection (cp_report_records, the code of `custpulse report`) from the
 * day after <prefix>mstate's `emitted` up to the day before the clock's
 * (the sweep's "now"); the loop produces them (key = the day) and, once
 * all are delivered, records `emitted`. A crash in between emits them
 * again, with the same ids. */

typedef struct cp_metrics_job_s {
    uv_work_t req;
    cp_app_t *app;
    int64_t upto;
    int64_t emitted; /* read from <prefix>mstate; -1 none */
    cp_metrics_rec_t *recs;
    size_t n;
    size_t skipped;
    int failed;
    char err[256];
} cp_metrics_job_t;

static int metrics_owner(const cp_app_t *app)
{
    for (int i = 0; i < app->n_parts; i++) {
        const cp_part_t *p = &app->parts[i];
        if (p->active && !p->fenced && p->partition == 0 &&
            strcmp(p->topic, app->cfg->topic_orders) == 0)
            return 1;
    }
    return 0;
}

/* The last complete day by the clock; INT64_MIN before any event
 * (clock = event). With the sweep on, the clock of the last sweep that
 * left nothing due in this instance's shards: a day's time-caused moves
 * are counted before its record goes out. */
static int64_t metrics_upto(const cp_app_t *app)
{
    int64_t now = sweep_now(app);
    if (app->cfg->due_sweep_ms > 0 && app->swept_to < now)
        now = app->swept_to;
    return now == INT64_MIN ? INT64_MIN : cp_tz_day(app->tz, now) - 1;
}

static void metrics_work(uv_work_t *req)
{
    cp_metrics_job_t *job = req->data;
    const cp_config_t *cfg = job->app->cfg;
    redisContext *c = cp_redis_connect_sync(cfg, job->err, sizeof(job->err));
    if (!c) {
        job->failed = 1;
        return;
    }
    job->emitted = -1;
    redisReply *r = redisCommand(c, "HGET %s emitted", job->app->mstatekey);
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        snprintf(job->err, sizeof(job->err), "redis: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        job->failed = 1;
    } else if (r->type == REDIS_REPLY_STRING &&
               cp_num_parse_i64(r->str, r->len, &job->emitted) != CP_OK) {
        job->emitted = -1; /* not ours: start again from the first day */
    }
    freeReplyObject(r);
    if (!job->failed && job->emitted < job->upto &&
        cp_report_records(c, cfg, job->app->tz, job->emitted + 1, job->upto,
                          &job->recs, &job->n, &job->skipped) != 0) {
        snprintf(job->err, sizeof(job->err), "redis: %s",
                 c->err ? c->errstr : "reading the counters failed");
        job->failed = 1;
    }
    redisFree(c);
}

static void metrics_recorded(cp_app_t *app);

static void on_mstate(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = cp_redis_opaque(r);
    (void)pd;
    if (app->metrics_state != 3)
        return;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        app->metrics_done = app->metrics_upto;
        app->metrics_failures = 0;
    } else {
        app->metrics_failures++; /* emitted again next time: same ids */
    }
    metrics_recorded(app);
}

/* `emitted` only moves forward: an owner whose clock is behind (after a
 * rebalance or a restart) must not take it back. */
#define MSTATE_LUA                                                             \
    "local c = tonumber(redis.call('HGET', KEYS[1], 'emitted') or '-1')\n"     \
    "if c == nil or c < tonumber(ARGV[1]) then\n"                              \
    "  redis.call('HSET', KEYS[1], 'emitted', ARGV[1])\n"                      \
    "end\n"                                                                    \
    "return 1\n"

static void metrics_record(cp_app_t *app)
{
    char day[24];
    snprintf(day, sizeof(day), "%" PRId64, app->metrics_upto);
    const char *argv[] = {"EVAL", MSTATE_LUA, "1", app->mstatekey, day};
    size_t lens[] = {4, strlen(MSTATE_LUA), 1, strlen(app->mstatekey),
                     strlen(day)};
    app->metrics_state = 3;
    if (cp_redis_cmd(app->redis, on_mstate, NULL, 5, argv, lens) != CP_OK) {
        app->metrics_failures++;
        metrics_recorded(app);
    }
}

static void metrics_recorded(cp_app_t *app)
{
    cp_report_records_free(app->mrecs, app->n_mrecs);
    free(app->mrec_delivered);
    app->mrecs = NULL;
    app->mrec_delivered = NULL;
    app->n_mrecs = 0;
    app->metrics_state = 0;
    if (app->final_sweep)
        check_end(app);
}

/* Produces the records not delivered and not in flight. */
static void metrics_produce(cp_app_t *app)
{
    for (size_t i = 0; i < app->n_mrecs; i++) {
        if (app->mrec_delivered[i] != 0)
            continue;
        cp_metrics_rec_t *rec = &app->mrecs[i];
        char key[16];
        cp_time_format_date(rec->day, key, sizeof(key));
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "content-type", -1,
                            "application/cloudevents+json", -1);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            app->producer, RD_KAFKA_V_TOPIC(app->cfg->topic_metrics),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(rec->json, rec->len), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE(rec), RD_KAFKA_V_END);
        if (err) {
            rd_kafka_headers_destroy(h);
            return; /* again at the next tick */
        }
        app->mrec_delivered[i] = -1;
    }
}

static void metrics_delivered(cp_app_t *app, size_t i, rd_kafka_resp_err_t err)
{
    if (app->metrics_state != 2 || i >= app->n_mrecs)
        return;
    if (err) {
        app->mrec_delivered[i] = 0; /* produced again at the next tick */
        app->metrics_failures++;
        return;
    }
    app->mrec_delivered[i] = 1;
    app->stats.metrics_days++;
    if (--app->mrec_pending == 0)
        metrics_record(app);
}

static void metrics_done(uv_work_t *req, int status)
{
    cp_metrics_job_t *job = req->data;
    cp_app_t *app = job->app;
    if (status != 0 || app->state != CP_APP_RUNNING || !app->producer ||
        job->failed) {
        if (job->failed && app->state != CP_APP_CLOSED) {
            app->metrics_failures++;
            cp_log(CP_LOG_WARN, "daily metrics not read; retrying",
                   CP_LS("error", job->err), CP_LEND);
        }
        cp_report_records_free(job->recs, job->n);
        app->metrics_state = 0;
        free(job);
        if (app->state != CP_APP_CLOSED && app->final_sweep)
            check_end(app);
        return;
    }
    if (job->skipped)
        cp_log(CP_LOG_WARN, "metric counters that do not parse were skipped",
               CP_LI("values", job->skipped), CP_LEND);
    app->metrics_upto = job->upto;
    app->mrecs = job->recs;
    app->n_mrecs = job->n;
    if (job->emitted >= job->upto) {
        /* Another run (or owner) got there first. */
        app->metrics_done = job->emitted;
        free(job);
        metrics_recorded(app);
        return;
    }
    free(job);
    if (app->n_mrecs == 0) {
        metrics_record(app); /* nothing to emit up to there */
        return;
    }
    app->mrec_delivered = calloc(app->n_mrecs, sizeof(int));
    if (!app->mrec_delivered) {
        metrics_recorded(app);
        return;
    }
    app->mrec_pending = app->n_mrecs;
    app->metrics_state = 2;
    metrics_produce(app);
}

/* Starts emitting the complete days not emitted yet, if this instance
 * emits them and nothing is in flight; returns 1 when started. */
static int metrics_start(cp_app_t *app)
{
    if (!app->cfg->topic_metrics[0] || app->metrics_state != 0 ||
        !app->redis_ready || !app->producer || !metrics_owner(app))
        return 0;
    int64_t upto = metrics_upto(app);
    if (upto == INT64_MIN || upto < 0 || upto <= app->metrics_done)
        return 0;
    cp_metrics_job_t *job = calloc(1, sizeof(*job));
    if (!job)
        return 0;
    job->app = app;
    job->upto = upto;
    job->req.data = job;
    app->metrics_state = 1;
    uv_queue_work(app->loop, &job->req, metrics_work, metrics_done);
    return 1;
}

static void metrics_tick(cp_app_t *app)
{
    if (app->state != CP_APP_RUNNING)
        return;
    if (app->metrics_state == 2)
        metrics_produce(app);
    else
        metrics_start(app);
}

/* --exit-at-end: the days up to the final clock are emitted (or being)
 * before the exit; returns 1 while that is not done. Gives up after 3
 * failures in a row (logged). */
static int metrics_pending(cp_app_t *app)
{
    if (!app->cfg->topic_metrics[0] || !metrics_owner(app))
        return 0;
    if (app->metrics_failures >= 3) {
        cp_log(CP_LOG_ERROR, "daily metrics not emitted before the exit",
               CP_LI("failures", app->metrics_failures), CP_LEND);
        return 0;
    }
    if (app->metrics_state != 0)
        return 1;
    return metrics_start(app);
}

void cp__app_batch_done(cp_app_t *app)
{
    if (app->state == CP_APP_STOPPING) {
        begin_stop(app, app->exit_code);
        return;
    }
    /* Event and sweep batches alternate while both have work. */
    if (maybe_sweep(app))
        return;
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

/* ---- BTYD parameters (docs/btyd.md "Where the parameters live") ------- */

static void read_btyd(cp_app_t *app)
{
    if (app->btyd_state == 1 || !app->redis_ready)
        return;
    const char *argv[] = {"HGETALL", app->btydkey};
    size_t lens[] = {7, strlen(app->btydkey)};
    if (cp_redis_cmd(app->redis, on_btyd, app, 2, argv, lens) == CP_OK) {
        app->btyd_state = 1;
        app->btyd_read_ms = uv_now(app->loop);
    }
}

static void maybe_start(cp_app_t *app);

static void on_btyd(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = pd;
    (void)r;
    app->btyd_state = 0;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply)
            cp_log(CP_LOG_WARN, "cannot read the BTYD parameters",
                   CP_LS("key", app->btydkey),
                   CP_LS("error", reply->type == REDIS_REPLY_ERROR
                                      ? reply->str
                                      : "not a hash"),
                   CP_LEND);
        if (reply)
            app->btyd_loaded = 1; /* WRONGTYPE: go on without */
        maybe_start(app);
        return; /* a lost connection: read again when ready */
    }
    app->btyd_state = 2;
    enum { MAXF = 64 };
    const char *f[MAXF], *v[MAXF];
    size_t fl[MAXF], vl[MAXF];
    size_t n = 0;
    for (size_t i = 0; i + 1 < reply->elements && n < MAXF; i += 2) {
        const redisReply *a = reply->element[i], *b = reply->element[i + 1];
        if (a->type != REDIS_REPLY_STRING || b->type != REDIS_REPLY_STRING)
            continue;
        f[n] = a->str;
        fl[n] = (size_t)a->len;
        v[n] = b->str;
        vl[n++] = (size_t)b->len;
    }
    char err[160];
    int rc = cp_eval_load_btyd(&app->eval, f, fl, v, vl, n, err, sizeof(err));
    if (rc > 0) {
        app->stats.btyd_loads++;
        cp_log(CP_LOG_INFO, "BTYD parameters loaded",
               CP_LI("version", app->eval.btyd_version),
               CP_LB("gamma_gamma", app->eval.p.has_gg), CP_LEND);
    } else if (rc < 0 && !app->btyd_loaded) {
        cp_log(CP_LOG_WARN,
               "BTYD parameters unusable; predicted value is 0 "
               "until `custpulse fit` writes usable ones",
               CP_LS("key", app->btydkey), CP_LS("error", err), CP_LEND);
    } else if (n == 0 && !app->btyd_loaded) {
        cp_log(CP_LOG_INFO, "no BTYD parameters yet (run `custpulse fit`)",
               CP_LS("key", app->btydkey), CP_LEND);
    }
    app->btyd_loaded = 1;
    maybe_start(app);
}

/* ---- quantile RFM snapshots (docs/models.md "Quantile RFM") ---------- */

/* Versions whose thresholds the snapshot hash keeps for tracing. */
#define CP_RFMQ_HISTORY 16

static void on_rq_hist(cp_redis_t *r, redisReply *reply, void *pd);
static void on_rq_snap(cp_redis_t *r, redisReply *reply, void *pd);

/* Reads the histograms, then takes or adopts a snapshot of their
 * thresholds (live mode; at start-up before consuming, then every
 * rfmq.snapshot_ms). */
static void take_rq_snapshot(cp_app_t *app)
{
    if (app->rq_state == 1 || !app->redis_ready)
        return;
    const char *argv[] = {"HGETALL", app->rqkey};
    size_t lens[] = {7, strlen(app->rqkey)};
    if (cp_redis_cmd(app->redis, on_rq_hist, app, 2, argv, lens) == CP_OK) {
        app->rq_state = 1;
        app->rq_taken_ms = uv_now(app->loop);
    }
}

/* A failed step: start-up goes on with the snapshot held (none at first:
 * nobody is scored until one is taken); a lost connection tries again
 * when Redis is back. */
static void rq_failed(cp_app_t *app, const redisReply *reply, const char *what)
{
    app->rq_state = 0;
    if (!reply)
        return;
    cp_log(CP_LOG_WARN, "cannot take the quantile RFM snapshot",
           CP_LS("step", what),
           CP_LS("error", reply->type == REDIS_REPLY_ERROR
                              ? reply->str
                              : "unexpected reply"),
           CP_LEND);
    app->rq_loaded = 1;
    maybe_start(app);
}

static void on_rq_hist(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = pd;
    (void)r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        rq_failed(app, reply, "read histograms");
        return;
    }
    size_t n = reply->elements / 2;
    const char **f = malloc(sizeof(char *) * 2 * (n ? n : 1));
    size_t *fl = malloc(sizeof(size_t) * 2 * (n ? n : 1));
    if (!f || !fl) {
        free(f);
        free(fl);
        cp_log(CP_LOG_ERROR, "out of memory", CP_LEND);
        abort();
    }
    const char **v = f + n;
    size_t *vl = fl + n;
    size_t k = 0;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *a = reply->element[i], *b = reply->element[i + 1];
        if (a->type != REDIS_REPLY_STRING || b->type != REDIS_REPLY_STRING)
            continue;
        f[k] = a->str;
        fl[k] = (size_t)a->len;
        v[k] = b->str;
        vl[k++] = (size_t)b->len;
    }
    cp_rfmq_snap_t snap = {0};
    char err[128];
    cp_err_t rc = cp_rfmq_thresholds(f, fl, v, vl, k, &snap, err, sizeof(err));
    free(f);
    free(fl);
    if (rc == CP_ENOMEM) {
        cp_log(CP_LOG_ERROR, "out of memory", CP_LEND);
        abort();
    }
    if (rc != CP_OK) {
        cp_log(CP_LOG_WARN,
               "quantile RFM histograms unreadable; the "
               "snapshot held stays",
               CP_LS("key", app->rqkey), CP_LS("error", err), CP_LEND);
        app->rq_state = 0;
        app->rq_loaded = 1;
        maybe_start(app);
        return;
    }
    char text[CP_RFMQ_TEXT_MAX], nbuf[24], keep[16], age[24];
    cp_rfmq_thresholds_text(&snap, text);
    snprintf(nbuf, sizeof(nbuf), "%" PRId64, snap.n);
    snprintf(keep, sizeof(keep), "%d", CP_RFMQ_HISTORY);
    snprintf(age, sizeof(age), "%d", app->cfg->rfmq_snapshot_ms / 2);
    const char *argv[] = {
        "EVALSHA", cp_redis_script_sha(app->redis, CP_SCRIPT_RFMQ_SNAPSHOT),
        "1",       app->rqskey,
        text,      nbuf,
        keep,      age};
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    if (cp_redis_cmd(app->redis, on_rq_snap, app, 8, argv, lens) != CP_OK)
        app->rq_state = 0;
}

static int64_t reply_i64(const redisReply *x)
{
    if (x->type == REDIS_REPLY_INTEGER)
        return (int64_t)x->integer;
    if (x->type == REDIS_REPLY_STRING)
        return strtoll(x->str, NULL, 10);
    return -1;
}

static void on_rq_snap(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = pd;
    (void)r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        rq_failed(app, reply, "record snapshot");
        return;
    }
    cp_rfmq_snap_t snap = {0};
    snap.version = reply_i64(reply->element[0]);
    snap.n = reply_i64(reply->element[2]);
    if (snap.version > 0 &&
        cp_rfmq_thresholds_parse(reply->element[1]->str,
                                 (size_t)reply->element[1]->len, &snap) != 0) {
        cp_log(CP_LOG_WARN,
               "quantile RFM snapshot unreadable; the snapshot "
               "held stays",
               CP_LS("key", app->rqskey), CP_LI("version", snap.version),
               CP_LEND);
    } else if (snap.version > 0 && snap.version != app->rqsnap.version) {
        app->rqsnap = snap;
        app->stats.rfmq_snapshots++;
        cp_log(CP_LOG_INFO, "quantile RFM snapshot",
               CP_LI("version", snap.version), CP_LI("population", snap.n),
               CP_LS("thresholds", reply->element[1]->str), CP_LEND);
    }
    app->rq_state = 0;
    app->rq_loaded = 1;
    maybe_start(app);
}

/* The topics subscribed: orders and every non-empty other input topic. */
static void input_topics(const cp_config_t *cfg, const char *out[4], int *n)
{
    *n = 0;
    out[(*n)++] = cfg->topic_orders;
    if (cfg->topic_browsing[0])
        out[(*n)++] = cfg->topic_browsing;
    if (cfg->topic_support[0])
        out[(*n)++] = cfg->topic_support;
    if (cfg->topic_profile[0])
        out[(*n)++] = cfg->topic_profile;
}

static void maybe_start(cp_app_t *app)
{
    if (app->state != CP_APP_STARTING || !app->redis_ready ||
        !app->topics_ready || !app->btyd_loaded || !app->rq_loaded)
        return;
    const char *topics[4];
    int n_topics;
    input_topics(app->cfg, topics, &n_topics);
    rd_kafka_topic_partition_list_t *sub =
        rd_kafka_topic_partition_list_new(n_topics);
    for (int i = 0; i < n_topics; i++)
        rd_kafka_topic_partition_list_add(sub, topics[i],
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
           CP_LI("topics", n_topics), CP_LEND);
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
    if (!app->redis_ready) {
        /* The server we reconnect to may be another (failover, restart
         * from an older snapshot): cached states are not to be trusted. */
        cp_cache_clear(app->cache);
        return;
    }
    if (!app->btyd_loaded)
        read_btyd(app);
    if (!app->rq_loaded)
        take_rq_snapshot(app);
    maybe_start(app);
    retry_check_epochs(app);
    cp__batch_redis_ready(app);
}

typedef struct cp_topics_job_s {
    uv_work_t req;
    cp_app_t *app;
    int ok;
    int shards; /* partitions of the orders topic; -1 unknown */
} cp_topics_job_t;

/* ---- due index shards ------------------------------------------------------
 * The shard count is the orders topic's partition count, read at start-up;
 * while the topic does not exist, again every 10 s until it does. A topic
 * that gains partitions later changes every customer's shard: restart
 * custpulse (the sweep step re-indexes). */

static void set_due_shards(cp_app_t *app, int n)
{
    app->due_shards = n;
    cp_log(CP_LOG_INFO, "due index shards",
           CP_LS("topic", app->cfg->topic_orders), CP_LI("shards", n), CP_LEND);
}

typedef struct cp_shards_job_s {
    uv_work_t req;
    cp_app_t *app;
    int shards;
} cp_shards_job_t;

static void shards_work(uv_work_t *req)
{
    cp_shards_job_t *job = req->data;
    /* The consumer handle: the producer may be replaced on the loop
     * (producer restart) while this runs; the consumer lives until after
     * the loop ends. */
    job->shards = cp_kafka_partition_count(job->app->consumer,
                                           job->app->cfg->topic_orders, 5000);
}

static void shards_done(uv_work_t *req, int status)
{
    cp_shards_job_t *job = req->data;
    cp_app_t *app = job->app;
    if (status == 0 && job->shards > 0 && app->due_shards == 0)
        set_due_shards(app, job->shards);
    app->shards_job = 0;
    free(job);
}

static void fetch_due_shards(cp_app_t *app)
{
    if (app->due_shards > 0 || app->shards_job ||
        app->state != CP_APP_RUNNING || !app->consumer ||
        uv_now(app->loop) - app->shards_tried_ms < 10000)
        return;
    cp_shards_job_t *job = calloc(1, sizeof(*job));
    if (!job)
        return;
    job->app = app;
    job->req.data = job;
    app->shards_job = 1;
    app->shards_tried_ms = uv_now(app->loop);
    if (uv_queue_work(app->loop, &job->req, shards_work, shards_done) != 0) {
        app->shards_job = 0;
        free(job);
    }
}

static void topics_work(uv_work_t *req)
{
    cp_topics_job_t *job = req->data;
    const cp_config_t *cfg = job->app->cfg;
    const char *topics[4];
    int n = 0;
    topics[n++] = cfg->topic_segments;
    if (cfg->topic_churn[0])
        topics[n++] = cfg->topic_churn; /* empty: churn warnings off */
    if (cfg->topic_metrics[0])
        topics[n++] = cfg->topic_metrics; /* empty: metrics off */
    topics[n++] = cfg->topic_dlq;
    int logged = 0;
    while (!atomic_load(&stop_flag)) {
        char err[512];
        if (cp_kafka_create_topics(job->app->producer, cfg, topics, n, 10000,
                                   err, sizeof(err)) == CP_OK) {
            /* Without it, the first record to each output topic waits for
             * librdkafka's next metadata refresh (about a second). */
            (void)cp_kafka_warm_metadata(job->app->producer, topics, n, 5000);
            job->shards = cp_kafka_partition_count(job->app->producer,
                                                   cfg->topic_orders, 5000);
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
    if (app->topics_ready && job->shards > 0)
        set_due_shards(app, job->shards);
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

/* ---- stats --------------------------------------------------------------- */

static void log_stats(cp_app_t *app, const char *msg)
{
    const cp_stats_t *s = &app->stats;
    const cp_redis_stats_t *rs = cp_redis_stats(app->redis);
    const cp_cache_stats_t *cs = cp_cache_stats(app->cache);
    cp_log(CP_LOG_INFO, msg, CP_LI("events", s->events),
           CP_LI("applied", s->applied),
           CP_LI("skipped_redelivered", s->skipped_redelivered),
           CP_LI("duplicates", s->duplicates), CP_LI("dlq", s->dlq),
           CP_LI("outputs", s->outputs), CP_LI("batches", s->batches),
           CP_LI("writes", s->writes),
           CP_LI("write_conflicts", s->write_conflicts),
           CP_LI("writes_fenced", s->writes_fenced),
           CP_LI("epochs_acquired", s->epochs_acquired),
           CP_LI("redis_commands", rs->commands),
           CP_LI("redis_round_trips", s->redis_round_trips),
           CP_LI("redis_timeouts", rs->timeouts),
           CP_LI("redis_disconnects", rs->disconnects),
           CP_LI("redis_restarts_seen", rs->restarts),
           CP_LI("producer_restarts", s->producer_restarts),
           CP_LI("offset_alarms", s->offset_alarms),
           CP_LI("wait_short", s->wait_short),
           CP_LI("attrs_dropped", s->attrs_dropped),
           CP_LI("btyd_loads", s->btyd_loads),
           CP_LI("rfmq_snapshots", s->rfmq_snapshots),
           CP_LI("sweeps", s->sweeps),
           CP_LI("sweep_customers", s->sweep_customers),
           CP_LI("due_evaluations", s->due_evaluations),
           CP_LI("due_stale", s->due_stale),
           CP_LI("metrics_days", s->metrics_days),
           CP_LI("cache_hits", cs->hits), CP_LI("cache_misses", cs->misses),
           CP_LI("cache_evictions", cs->evictions),
           CP_LI("exit_code", app->exit_code), CP_LEND);
}

static void on_stats_timer(uv_timer_t *t)
{
    log_stats(t->data, "stats");
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
    uv_close((uv_handle_t *)&app->sweep_timer, on_handle_closed);
    uv_close((uv_handle_t *)&app->stats_timer, on_handle_closed);
    uv_close((uv_handle_t *)&app->shutdown_timer, on_handle_closed);
    uv_close((uv_handle_t *)&app->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&app->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&app->cq_poll, on_handle_closed);
    uv_close((uv_handle_t *)&app->pq_poll, on_handle_closed);
    cp_redis_close(app->redis, on_redis_closed, app);
    app->redis = NULL;
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static int ms_left(const cp_app_t *app)
{
    uint64_t now = mono_ms();
    return now >= app->stop_deadline_ms ? 0
                                        : (int)(app->stop_deadline_ms - now);
}

/* Commits the stored offsets and waits for the result until the deadline.
 * Returns 0 when committed (or nothing to commit). */
/* A commit error saying this member is no longer in the group's current
 * generation (a rebalance happened while it was stopping). */
static int group_moved_on(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
           err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
           err == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
}

static int final_commit(cp_app_t *app, rd_kafka_queue_t *q)
{
    rd_kafka_resp_err_t err =
        rd_kafka_commit_queue(app->consumer, NULL, q, NULL, NULL);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return 0;
    for (int left; !err && (left = ms_left(app)) > 0;) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left < 100 ? left : 100);
        if (!ev)
            continue;
        int done = rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT;
        if (done)
            err = rd_kafka_event_error(ev);
        rd_kafka_event_destroy(ev);
        if (done && (err == RD_KAFKA_RESP_ERR__NO_OFFSET || !err))
            return 0;
        if (done && group_moved_on(err)) {
            /* Our partitions went to other members: they consume from
             * the last committed offsets and the customers' watermarks
             * skip what this instance applied. Retrying cannot help (the
             * generation would have to be rejoined). */
            cp_log(CP_LOG_WARN,
                   "final commit refused: the group rebalanced during "
                   "shutdown; the new owners consume the last offsets "
                   "again (skipped by the customers' watermarks)",
                   CP_LS("error", rd_kafka_err2str(err)), CP_LEND);
            return 0;
        }
        if (done) {
            /* Retriable or not, try again until the deadline. */
            cp_log(CP_LOG_WARN, "final commit failed; retrying",
                   CP_LS("error", rd_kafka_err2str(err)), CP_LEND);
            usleep(100 * 1000);
            err = rd_kafka_commit_queue(app->consumer, NULL, q, NULL, NULL);
            if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
                return 0;
        }
    }
    if (!err)
        err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    cp_log(CP_LOG_ERROR,
           "final commit failed; the last offsets may be consumed again after "
           "a restart (and skipped by the customers' watermarks)",
           CP_LS("error", rd_kafka_err2str(err)), CP_LEND);
    return -1;
}

/* Leaves the group until the deadline. The close runs in librdkafka's
 * background; its rebalance (revoke) arrives on q as an event that must be
 * served through rebalance_cb, or the close never completes. */
static void close_consumer(cp_app_t *app, rd_kafka_queue_t *q)
{
    rd_kafka_error_t *error = rd_kafka_consumer_close_queue(app->consumer, q);
    if (error) {
        cp_log(CP_LOG_WARN, "consumer close failed",
               CP_LS("error", rd_kafka_error_string(error)), CP_LEND);
        rd_kafka_error_destroy(error);
    }
    for (int left; !rd_kafka_consumer_closed(app->consumer) &&
                   (left = ms_left(app)) > 0;) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left < 100 ? left : 100);
        if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
            rebalance_cb(app->consumer, rd_kafka_event_error(ev),
                         rd_kafka_event_topic_partition_list(ev), app);
        if (ev)
            rd_kafka_event_destroy(ev);
    }
    if (!rd_kafka_consumer_closed(app->consumer)) {
        app->consumer_unclosed = 1;
        cp_log(CP_LOG_WARN,
               "shutdown deadline: exiting without a clean group leave; "
               "the group rebalances once the session times out",
               CP_LEND);
    }
}

/* Commits, leaves the group and flushes, all within shutdown.timeout_ms of
 * the stop request; runs once no batch is in flight. */
static void finish_shutdown(cp_app_t *app)
{
    app->batch.phase = CP_BATCH_IDLE;
    rd_kafka_queue_t *q = rd_kafka_queue_new(app->consumer);
    if (app->subscribed && final_commit(app, q) != 0)
        app->exit_code = app->exit_code ? app->exit_code : 1;
    close_consumer(app, q);
    rd_kafka_queue_destroy(q);
    if (app->producer) {
        int left = ms_left(app);
        rd_kafka_flush(app->producer, left < 5000 ? left : 5000);
    }
    log_stats(app, "stopped");
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
        app->stop_deadline_ms =
            mono_ms() + (uint64_t)app->cfg->shutdown_timeout_ms;
        atomic_store(&stop_flag, 1);
        cp_log(CP_LOG_INFO, "stopping", CP_LI("exit_code", code), CP_LEND);
        /* The batch in flight gets three quarters of the time; the rest is
         * for the final commit and the group leave. */
        uv_timer_start(&app->shutdown_timer, on_shutdown_deadline,
                       (uint64_t)app->cfg->shutdown_timeout_ms * 3 / 4, 0);
    }
    /* The batch in flight and the outbox clears sent (their records are
     * delivered; an outbox not cleared would be produced again). */
    if (app->batch.phase == CP_BATCH_IDLE && !cp__batch_clears_pending(app)) {
        uv_timer_stop(&app->shutdown_timer);
        finish_shutdown(app);
    }
}

void cp__app_clears_done(cp_app_t *app)
{
    if (app->state == CP_APP_STOPPING)
        begin_stop(app, 0);
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
    if (cp_fp_init() != 0)
        return -1;
    if (cfg->redis_wait_replicas > 0 &&
        cfg->redis_wait_timeout_ms >= cfg->redis_timeout_ms) {
        /* WAIT blocks the connection: the command deadline would drop it. */
        cp_log(CP_LOG_ERROR,
               "redis.wait_timeout_ms must be below redis.timeout_ms",
               CP_LI("redis.wait_timeout_ms", cfg->redis_wait_timeout_ms),
               CP_LI("redis.timeout_ms", cfg->redis_timeout_ms), CP_LEND);
        return -1;
    }
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
    app->rqkey = malloc(plen);
    app->rqskey = malloc(plen);
    snprintf(app->rqkey, plen, "%srq", cfg->redis_prefix);
    snprintf(app->rqskey, plen, "%srqs", cfg->redis_prefix);
    app->rq_loaded = cfg->rfmq_mode != 0; /* fixed: no snapshot */
    plen = strlen(cfg->redis_prefix) + 5;
    app->btydkey = malloc(plen);
    snprintf(app->btydkey, plen, "%sbtyd", cfg->redis_prefix);
    plen = strlen(cfg->redis_prefix) + sizeof(CP_METRICS_DAYS_KEY);
    app->mdayskey = malloc(plen);
    snprintf(app->mdayskey, plen, "%s%s", cfg->redis_prefix,
             CP_METRICS_DAYS_KEY);
    plen = strlen(cfg->redis_prefix) + 7;
    app->mstatekey = malloc(plen);
    snprintf(app->mstatekey, plen, "%smstate", cfg->redis_prefix);
    app->metrics_done = -1;
    app->swept_to = INT64_MIN;
    if (cp_eval_init(&app->eval, cfg, app->tz, err, sizeof(err)) != CP_OK) {
        cp_log(CP_LOG_ERROR, "invalid custom segment", CP_LS("error", err),
               CP_LEND);
        return -1;
    }
    if (cp__batch_init(&app->batch, cfg->batch_size) != 0)
        return -1;

    const char *bootstraps = NULL;
    int failed = 0;
    app->embedded =
        cp_kafka_embedded_new(cfg, &bootstraps, &failed, err, sizeof(err));
    app->bootstraps = bootstraps;
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
    app->cache = cp_cache_new((size_t)cfg->cache_mb << 20);
    cp__batch_clears_init(app);
    if (!app->cache)
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
    uv_timer_init(app->loop, &app->sweep_timer);
    app->sweep_timer.data = app;
    if (app->cfg->due_sweep_ms > 0)
        uv_timer_start(&app->sweep_timer, on_sweep_timer,
                       (uint64_t)app->cfg->due_sweep_ms,
                       (uint64_t)app->cfg->due_sweep_ms);
    uv_timer_init(app->loop, &app->stats_timer);
    app->stats_timer.data = app;
    if (app->cfg->stats_interval_ms > 0)
        uv_timer_start(&app->stats_timer, on_stats_timer,
                       (uint64_t)app->cfg->stats_interval_ms,
                       (uint64_t)app->cfg->stats_interval_ms);
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
    /* A consumer whose close ran out of time is left to the process exit:
     * destroying it would wait for the close. */
    if (app->consumer && !app->consumer_unclosed)
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
    for (int i = 0; i < app->n_parts; i++) {
        free(app->parts[i].topic);
        free(app->parts[i].epkey);
    }
    free(app->parts);
    free(app->popkey);
    cp_cache_free(app->cache);
    cp__batch_clears_free(app);
    free(app->mdayskey);
    free(app->mstatekey);
    cp_report_records_free(app->mrecs, app->n_mrecs);
    free(app->mrec_delivered);
    free(app->rqkey);
    free(app->rqskey);
    free(app->btydkey);
    cp_eval_free(&app->eval);
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
