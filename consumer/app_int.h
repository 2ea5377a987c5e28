/*
 * app_int.h - the run-time state shared by app.c (loop, Kafka, lifecycle)
 * and batch.c (one batch through Redis and back to Kafka). Internal to
 * consumer/.
 *
 * Thread: all of it belongs to the loop thread, except where a field says
 * a worker thread writes it before handing back through uv_queue_work.
 */
#ifndef CP_APP_INT_H
#define CP_APP_INT_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <uv.h>

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "cp_time.h"
#include "decode.h"
#include "redis.h"
#include "rfm.h"
#include "store.h"

/* ---- batch --------------------------------------------------------------- */

/* One input message of the batch. */
typedef struct cp_bmsg_s {
    rd_kafka_message_t *rkm;
    cp_reject_t reject; /* CP_REJECT_NONE for a valid event */
    char reason[192];
    cp_order_in_t in;
    int cust;       /* index into batch.custs, valid events only */
    int64_t now_ms; /* "now" for this event */
} cp_bmsg_t;

typedef enum {
    CP_CUST_READ = 0, /* needs a (re-)read */
    CP_CUST_WRITE,    /* write in flight */
    CP_CUST_DONE      /* written (or nothing to write) */
} cp_cust_phase_t;

/* One distinct customer of the batch. */
typedef struct cp_cust_s {
    const char *id; /* arena */
    size_t id_len;
    const char *key; /* arena: <prefix>c:{<id>} */
    size_t key_len;
    int *msgs; /* arena: indexes into batch.msgs, poll order */
    int n_msgs;
    int cap_msgs;
    cp_cust_phase_t phase;
    int unreadable; /* the stored hash could not be parsed */
    int cleared;    /* outbox clear acknowledged by Redis */
    cp_stored_t stored;
} cp_cust_t;

/* One record to produce (output or DLQ) and its delivery. */
typedef struct cp_rec_s {
    const char *topic;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int msg;  /* DLQ: index of the input message; -1 for outputs */
    int cust; /* output: index of the customer; -1 for DLQ */
    int delivered;
    int failures;      /* produce or delivery failures so far */
    int value_dropped; /* DLQ: value too large for the producer */
} cp_rec_t;

typedef enum {
    CP_BATCH_IDLE = 0,
    CP_BATCH_READ,    /* HGETALL round trip in flight */
    CP_BATCH_WRITE,   /* CAS round trip in flight */
    CP_BATCH_PRODUCE, /* waiting for delivery reports */
    CP_BATCH_CLEAR,   /* outbox clears in flight */
    CP_BATCH_WAIT     /* waiting for Redis or a retry timer */
} cp_batch_phase_t;

typedef struct cp_batch_s {
    cp_batch_phase_t phase;
    cp_bmsg_t *msgs;
    int n_msgs;
    cp_cust_t *custs;
    int n_custs;
    int *table; /* open addressing: customer index + 1, 0 = empty */
    uint32_t table_mask;
    cp_arena_t arena;
    cp_buf_t json;
    cp_rec_t *recs; /* arena */
    int n_recs;
    int pending;      /* replies or delivery reports outstanding */
    int redis_failed; /* a reply was lost this round */
    int retry_later;  /* back off before the next round (OOM, errors) */
    int wait_clear;   /* CP_BATCH_WAIT resumes the CLEAR phase */
    int attempts;
    cp_pop_t pop; /* live mode: population read this round */
    int64_t now_wall_ms;
} cp_batch_t;

/* ---- partitions --------------------------------------------------------- */

typedef struct cp_part_s {
    char *topic;
    int32_t partition;
    int64_t end;  /* high watermark at first assignment; -1 unknown */
    int64_t next; /* next offset to process (committed or processed) */
    int active;
} cp_part_t;

/* ---- application -------------------------------------------------------- */

typedef enum {
    CP_APP_STARTING = 0,
    CP_APP_RUNNING,
    CP_APP_STOPPING,
    CP_APP_CLOSED
} cp_app_state_t;

typedef struct cp_app_s {
    uv_loop_t *loop;
    cp_config_t *cfg;
    cp_tz_t *tz;
    cp_decode_params_t dparams;
    int exit_at_end;
    int exit_code;
    int pending_stop; /* set by error_cb inside a poll; -1 when none */
    cp_app_state_t state;

    rd_kafka_t *embedded; /* mock cluster owner, or NULL */
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_queue_t *cq;
    rd_kafka_queue_t *pq;
    int cq_pipe[2];
    int pq_pipe[2];
    uv_poll_t cq_poll;
    uv_poll_t pq_poll;
    uv_timer_t retry_timer;
    uv_timer_t tick_timer; /* housekeeping: missed queue wake-ups */
    uv_timer_t shutdown_timer;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int open_handles;

    cp_redis_t *redis;
    int redis_ready;
    int topics_ready;
    int subscribed;
    char *popkey;

    cp_batch_t batch;
    int64_t clock_max_ms; /* clock = event: greatest event time seen */

    cp_part_t *parts;
    int n_parts;
    int cap_parts;
    int got_assignment;
    int topic_missing;

    /* counters for the final log line */
    uint64_t n_events;
    uint64_t n_dlq;
    uint64_t n_outputs;
    uint64_t n_batches;
} cp_app_t;

/* batch.c */
int cp__batch_init(cp_batch_t *b, int batch_size);
void cp__batch_free(cp_batch_t *b);
/* Takes ownership of the messages in app->batch.msgs[0..n) and drives the
 * batch; calls cp__app_batch_done when its offsets are stored. */
void cp__batch_start(cp_app_t *app, int n);
/* Redis became ready again: resume a batch that waits for it. */
void cp__batch_redis_ready(cp_app_t *app);
/* A retry timer fired. */
void cp__batch_retry(cp_app_t *app);
/* Delivery report of a record produced by the batch. */
void cp__batch_delivered(cp_app_t *app, cp_rec_t *rec, rd_kafka_resp_err_t err);
/* Drops (and destroys) the messages of the listed partitions from a batch
 * being filled: they were revoked by a rebalance served by the same poll. */
void cp__batch_drop_partitions(cp_app_t *app,
                               const rd_kafka_topic_partition_list_t *list);
/* Abandons the batch at a shutdown deadline: nothing is stored. */
void cp__batch_abandon(cp_app_t *app);

/* app.c */
void cp__app_batch_done(cp_app_t *app);
void cp__app_schedule_retry(cp_app_t *app, uint64_t ms);

#endif
