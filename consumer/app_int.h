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
#include "blocks.h"
#include "buf.h"
#include "cache.h"
#include "config.h"
#include "cp_time.h"
#include "decode.h"
#include "evaluate.h"
#include "redis.h"
#include "rfm.h"
#include "store.h"

/* ---- batch --------------------------------------------------------------- */

/* What applying an event did (tallied once its batch finishes). */
typedef enum {
    CP_OUTCOME_NONE = 0,
    CP_OUTCOME_APPLIED,
    CP_OUTCOME_SKIPPED,  /* watermark: applied before */
    CP_OUTCOME_DUPLICATE /* event_id or order_id remembered */
} cp_outcome_t;

/* One input message of the batch. */
typedef struct cp_bmsg_s {
    rd_kafka_message_t *rkm;
    int part;    /* index into app->parts */
    int ignored; /* its partition was fenced: no effect, offset not stored */
    cp_outcome_t outcome;
    cp_reject_t reject; /* CP_REJECT_NONE for a valid event */
    char reason[192];
    cp_order_in_t in;
    int cust;       /* index into batch.custs, valid events only */
    int64_t now_ms; /* "now" for this event */
    int done;       /* its effect is written: not applied again this batch */
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
    cp_store_keys_t keys; /* arena: customer hash and outbox key */
    int *msgs;            /* arena: indexes into batch.msgs, poll order */
    int n_msgs;
    int cap_msgs;
    cp_cust_phase_t phase;
    int unreadable; /* the stored hash could not be parsed */
    int *ep_parts;  /* arena: partitions (app->parts) of its last write */
    int n_ep_parts;
    /* A sweep's customer (no messages): the orders partition (index into
     * app->parts) whose due index shard it was found in, whose epoch
     * fences its write; -1 for an event batch's customer. */
    int sweep_part;
    /* Population metric increments of this round's write (docs/metrics.md;
     * arena, NULL when metrics are off). more: the write stopped short
     * (the increments would not fit): once written, read again and go on. */
    cp_metrics_acc_t *macc;
    int more;
    /* The customer hash as read this round, from Redis or the state cache
     * (arena; len 0: no hash), and as the round's write leaves it (arena;
     * p NULL: no write). from_cache: read from the cache. */
    cp_image_t img;
    cp_image_t img_new;
    int from_cache;
    /* Its accepted write of this batch left an outbox: the clear's reply
     * decides whether img_new (v + 1) goes to the cache. */
    int cache_on_clear;
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
    CP_BATCH_SCAN,    /* sweep: due index ranges in flight */
    CP_BATCH_READ,    /* HGETALL round trip in flight */
    CP_BATCH_WRITE,   /* CAS round trip in flight */
    CP_BATCH_PRODUCE, /* waiting for delivery reports */
    CP_BATCH_REPL,    /* WAIT for replicas in flight */
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
    int pending;          /* replies or delivery reports outstanding */
    int redis_failed;     /* a reply was lost this round */
    int retry_later;      /* back off before the next round (OOM, errors) */
    int wait_repl;        /* CP_BATCH_WAIT resumes the REPL phase */
    int repl_needed;      /* accepted writes not yet acknowledged by replicas */
    int produce_failures; /* failed produces and deliveries, for the log */
    int attempts;
    int round_fenced;   /* writes refused by an epoch this round */
    int round_accepted; /* writes accepted this round */
    cp_pop_t pop;       /* live mode: population read this round */
    int64_t now_wall_ms;
    /* A sweep batch (docs/churn.md "Time-driven evaluation"): no
     * messages; customers from the due index, evaluated up to sweep_now. */
    int sweep;
    int64_t sweep_now;
    int sweep_full; /* 1: more due than was taken; 2: a shard not ready;
                       4: the scan failed */
    int more_round; /* the next round continues writes that stopped short
                       (not a conflict) */
    struct cp_due_hit_s *hits; /* arena: index entries found */
    int n_hits;
    int cap_hits;
} cp_batch_t;

/* ---- partitions --------------------------------------------------------- */

typedef struct cp_part_s {
    char *topic;
    int32_t partition;
    char *epkey;   /* <prefix>ep:<topic>:<partition>: e, o, f (store.h) */
    int64_t end;   /* high watermark at first assignment; -1 unknown */
    int64_t next;  /* next offset to process (committed or processed) */
    int64_t epoch; /* fencing epoch held; 0 = none (take one first) */
    unsigned gen;  /* assignment generation: stale epoch replies are ignored */
    int active;
    int acquiring;     /* an epoch acquisition is in flight */
    int checking;      /* paused until its committed offset is checked */
    int check_started; /* the check's Kafka half runs (after the epoch) */
    int64_t rpos;      /* position kept in Redis (o) at assignment; -1 none */
    char rfp[CP_FP_SIZE]; /* and the fingerprint of the event before it */
    int alarmed;          /* committed offset beyond the end: not consumed */
    int fenced;           /* a newer owner holds the epoch: drop its messages */
} cp_part_t;

/* Counters of the `stats` log line (docs/fault-tolerance.md). */
typedef struct cp_stats_s {
    uint64_t events;
    uint64_t applied;
    uint64_t skipped_redelivered;
    uint64_t duplicates;
    uint64_t dlq;
    uint64_t outputs;
    uint64_t batches;
    uint64_t writes;
    uint64_t write_conflicts;
    uint64_t writes_fenced;
    uint64_t epochs_acquired;
    uint64_t redis_round_trips;
    uint64_t producer_restarts;
    uint64_t offset_alarms;
    uint64_t wait_short;
    uint64_t attrs_dropped;
    uint64_t btyd_loads;
    uint64_t rfmq_snapshots;
    uint64_t sweeps;          /* sweep batches with customers */
    uint64_t sweep_customers; /* customers read by sweeps */
    uint64_t due_evaluations; /* time-caused evaluations (sweep or event) */
    uint64_t due_stale;       /* index entries found not due: re-indexed */
    uint64_t metrics_days;    /* daily metrics records delivered */
} cp_stats_t;

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
    cp_eval_t eval; /* model parameters and custom segments */
    int exit_at_end;
    int exit_code;
    int pending_stop; /* set by error_cb inside a poll; -1 when none */
    cp_app_state_t state;

    rd_kafka_t *embedded;      /* mock cluster owner, or NULL */
    const char *bootstraps;    /* the embedded cluster's, or NULL */
    int mock_faults_armed;     /* CUSTPULSE_MOCK_FAULTS applied */
    int producer_fatal;        /* set by error_cb; acted on after the poll */
    uint64_t stop_deadline_ms; /* monotonic: shutdown must end by then */
    int consumer_unclosed;     /* close ran out of time: not destroyed */
    uint64_t restart_window_start;
    int restarts_in_window;
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
    /* Recently written customer hashes (cache.mb; docs/performance.md
     * "State cache"); dropped whole when partitions or Redis change. */
    cp_cache_t *cache;
    /* Outbox clears not yet acknowledged (batch.c "CLEAR"). */
    struct cp_pclear_s *pclears;
    cp_blocks_t pclear_spare; /* blocks of answered clears, reused */
    int topics_ready;
    int subscribed;
    char *popkey;
    char *mdayskey;        /* <prefix>mdays: days with metric counters */
    char *btydkey;         /* <prefix>btyd: parameters of `custpulse fit` */
    int btyd_state;        /* 0 to read, 1 read in flight, 2 read */
    int btyd_loaded;       /* the first read answered: start-up may go on */
    uint64_t btyd_read_ms; /* loop time of the last read sent */
    /* Quantile RFM (rfmq.mode = live): the histogram and snapshot keys and
     * the snapshot the customers are scored against (version 0: none). */
    char *rqkey;  /* <prefix>rq */
    char *rqskey; /* <prefix>rqs */
    cp_rfmq_snap_t rqsnap;
    int rq_state;         /* 0 idle, 1 snapshot in flight */
    int rq_loaded;        /* the first snapshot answered (or fixed mode) */
    uint64_t rq_taken_ms; /* loop time of the last snapshot sent */

    cp_batch_t batch;
    int polling;          /* inside try_poll */
    int poll_again;       /* a nested try_poll asked for another poll */
    int64_t clock_max_ms; /* clock = event: greatest event time seen */
    /* The due-time sweep: its timer, and whether a sweep batch is wanted
     * next (set by the timer and by a full sweep; event and sweep batches
     * alternate while both have work). final_sweep: --exit-at-end, every
     * input at its end, sweeping up to the final clock before stopping. */
    uv_timer_t sweep_timer;
    int sweep_wanted;
    int sweep_backoff; /* a sweep waits for its timer (a shard not ready,
                          a failed scan) */
    int final_sweep;
    int64_t swept_to; /* "now" of the last sweep that left nothing due */
    /* The daily customer.metrics records (docs/metrics.md "Output"),
     * emitted by the owner of orders partition 0 for each complete day:
     * metrics_state 0 idle, 1 reading (worker job), 2 producing, 3
     * recording <prefix>mstate's `emitted`. metrics_done: the last day
     * known emitted (-1: none or not yet read). */
    int metrics_state;
    int64_t metrics_done;
    int64_t metrics_upto; /* the last day of the records in flight */
    struct cp_metrics_rec_s *mrecs;
    size_t n_mrecs;
    int *mrec_delivered; /* per record: 0 to produce, -1 in flight, 1 */
    size_t mrec_pending;
    int metrics_failures; /* in a row; --exit-at-end gives up at 3 */
    char *mstatekey;      /* <prefix>mstate */

    cp_part_t *parts;
    int n_parts;
    int cap_parts;
    int got_assignment;
    int topic_missing; /* the orders topic does not exist */
    /* Partitions of the orders topic: the due index shard count
     * (docs/contracts.md section 2); 0 while unknown. Written by the
     * topics job's worker before it hands back to the loop. */
    int due_shards;
    int shards_job;           /* a partition-count job is in flight */
    uint64_t shards_tried_ms; /* loop time of the last one */
    unsigned topics_warned;   /* input topics (input_topics order) warned of */

    cp_stats_t stats;
    uv_timer_t stats_timer;
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
/* Outbox clears sent and not yet acknowledged (or to send again). */
int cp__batch_clears_pending(const cp_app_t *app);
/* Before the first clear: the blocks of answered clears kept for reuse. */
void cp__batch_clears_init(cp_app_t *app);
/* Frees them (shutdown: their outboxes are produced again later). */
void cp__batch_clears_free(cp_app_t *app);
/* Abandons the batch at a shutdown deadline: nothing is stored. */
void cp__batch_abandon(cp_app_t *app);
/* Starts a sweep batch (batch idle): the owned due index shards' entries
 * due by `now`, oldest first, at most due.sweep_batch; calls
 * cp__app_sweep_done when it ends. */
void cp__batch_sweep(cp_app_t *app, int64_t now);

/* app.c */
void cp__app_batch_done(cp_app_t *app);
/* The last pending outbox clear was acknowledged. */
void cp__app_clears_done(cp_app_t *app);
/* A sweep batch ended; full: a shard had more due than it took. */
void cp__app_sweep_done(cp_app_t *app, int full);
void cp__app_schedule_retry(cp_app_t *app, uint64_t ms);
/* Index of the assigned (topic, partition) in app->parts, or -1. */
int cp__app_part_index(cp_app_t *app, const char *topic, int32_t partition);
/* Takes the epoch of app->parts[i] (reply handled by app.c); returns 0 when
 * sent, -1 when Redis is not ready. */
int cp__app_acquire_epoch(cp_app_t *app, int i);

#endif
