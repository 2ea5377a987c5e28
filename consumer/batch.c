/*
 * batch.c - one batch of input messages through the data path:
 *
 *   decode -> group by customer -> READ (one pipelined round trip of
 *   HGETALL of each customer's hash and outbox key) -> apply events in
 *   order (scoring/) -> WRITE (one pipelined round trip of compare-and-set
 *   scripts, outputs in each customer's outbox) -> PRODUCE outputs and DLQ
 *   records -> CLEAR delivered outboxes -> store offsets.
 *
 * A customer whose write is refused (stale version, NOSCRIPT) or whose
 * outcome is unknown (connection lost, deadline) goes back to READ: the
 * fresh read's watermarks skip what was applied and its outbox re-emits
 * what was not yet delivered, so retrying is always safe.
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "metrics_out.h"
#include "failpoint.h"
#include "hash.h"
#include "log.h"
#include "output.h"

#define RETRY_MS 500
#define CONFLICT_ROUNDS 5 /* immediate re-reads before backing off */
/* Due evaluations of one customer in one sweep batch; one still behind
 * stays due and goes on in the next. Before an event there is no such
 * bound (the event must come after all of them: outputs must not depend
 * on when sweeps ran), only a guard against a due time that fails to
 * advance. */
#define DUE_STEPS_MAX 256
#define DUE_STEPS_GUARD (1 << 22)
/* An unreadable customer found by a sweep is looked at again after this. */
#define UNREADABLE_RETRY_MS ((int64_t)24 * 3600 * 1000)

static void go_read(cp_app_t *app);
static void send_clears(cp_app_t *app);
static void go_produce(cp_app_t *app);
static void go_clear(cp_app_t *app);
static void go_repl(cp_app_t *app);
static void after_repl(cp_app_t *app);
static void resume(cp_app_t *app);
static void finish(cp_app_t *app);

int cp__batch_init(cp_batch_t *b, int batch_size)
{
    memset(b, 0, sizeof(*b));
    uint32_t tsize = 16;
    while (tsize < (uint32_t)batch_size * 2)
        tsize <<= 1;
    b->msgs = calloc((size_t)batch_size, sizeof(*b->msgs));
    b->custs = calloc((size_t)batch_size, sizeof(*b->custs));
    b->table = calloc(tsize, sizeof(*b->table));
    b->table_mask = tsize - 1;
    cp_arena_init(&b->arena, 256 * 1024);
    /* 16 MiB: more than a batch of 1,000 events takes */
    cp_arena_set_keep(&b->arena, 64);
    cp_buf_init(&b->json);
    return b->msgs && b->custs && b->table ? 0 : -1;
}

static void destroy_msgs(cp_batch_t *b)
{
    for (int i = 0; i < b->n_msgs; i++) {
        if (b->msgs[i].rkm)
            rd_kafka_message_destroy(b->msgs[i].rkm);
        b->msgs[i].rkm = NULL;
    }
    b->n_msgs = 0;
}

void cp__batch_free(cp_batch_t *b)
{
    destroy_msgs(b);
    free(b->msgs);
    free(b->custs);
    free(b->table);
    cp_arena_free(&b->arena);
    cp_buf_free(&b->json);
    memset(b, 0, sizeof(*b));
}

/* ---- grouping -------------------------------------------------------- */

static int cust_find_or_add(cp_app_t *app, cp_batch_t *b, const char *id,
                            size_t len)
{
    uint32_t h = (uint32_t)cp_hash_fnv1a64(id, len);
    for (uint32_t i = h & b->table_mask;; i = (i + 1) & b->table_mask) {
        int slot = b->table[i];
        if (slot == 0) {
            cp_cust_t *c = &b->custs[b->n_custs];
            memset(c, 0, offsetof(cp_cust_t, stored));
            c->sweep_part = -1;
            c->id = id;
            c->id_len = len;
            if (cp_store_keys(app->cfg->redis_prefix, id, len, &b->arena,
                              &c->keys) != CP_OK)
                return -1;
            b->table[i] = ++b->n_custs;
            return b->n_custs - 1;
        }
        cp_cust_t *c = &b->custs[slot - 1];
        if (c->id_len == len && memcmp(c->id, id, len) == 0)
            return slot - 1;
    }
}

static int cust_add_msg(cp_batch_t *b, cp_cust_t *c, int msg)
{
    if (c->n_msgs == c->cap_msgs) {
        int cap = c->cap_msgs ? c->cap_msgs * 4 : 4;
        int *n = cp_arena_alloc(&b->arena, sizeof(int) * (size_t)cap);
        if (!n)
            return -1;
        if (c->n_msgs)
            memcpy(n, c->msgs, sizeof(int) * (size_t)c->n_msgs);
        c->msgs = n;
        c->cap_msgs = cap;
    }
    c->msgs[c->n_msgs++] = msg;
    return 0;
}

static void oom(void)
{
    fputs("custpulse: out of memory in the batch path\n", stderr);
    abort();
}

/* The input family of a subscribed topic. */
static cp_family_t family_of(const cp_config_t *cfg, const char *topic)
{
    if (cfg->topic_browsing[0] && !strcmp(topic, cfg->topic_browsing))
        return CP_FAMILY_BROWSING;
    if (cfg->topic_support[0] && !strcmp(topic, cfg->topic_support))
        return CP_FAMILY_SUPPORT;
    if (cfg->topic_profile[0] && !strcmp(topic, cfg->topic_profile))
        return CP_FAMILY_PROFILE;
    return CP_FAMILY_ORDERS;
}

/* Decodes every message; valid ones are grouped by customer and get
 * their "now" (clock = event: running maximum in poll order). Messages of
 * a fenced (or no longer assigned) partition are ignored. */
static void decode_all(cp_app_t *app, cp_batch_t *b)
{
    int64_t clock = app->clock_max_ms;
    /* A poll returns runs of messages of one partition: look a partition
     * up once per run. */
    const rd_kafka_topic_t *run_rkt = NULL;
    int32_t run_partition = -1;
    int run_part = -1;
    cp_family_t run_family = CP_FAMILY_ORDERS;
    for (int i = 0; i < b->n_msgs; i++) {
        cp_bmsg_t *m = &b->msgs[i];
        rd_kafka_message_t *rkm = m->rkm;
        if (rkm->rkt != run_rkt || rkm->partition != run_partition) {
            run_rkt = rkm->rkt;
            run_partition = rkm->partition;
            run_part = cp__app_part_index(app, rd_kafka_topic_name(rkm->rkt),
                                          rkm->partition);
            run_family = family_of(app->cfg, rd_kafka_topic_name(rkm->rkt));
        }
        m->part = run_part;
        m->ignored = m->part < 0 || app->parts[m->part].fenced ||
                     app->parts[m->part].checking ||
                     app->parts[m->part].alarmed;
        m->outcome = CP_OUTCOME_NONE;
        m->done = 0;
        m->reject = CP_REJECT_NONE;
        if (m->ignored)
            continue;
        m->reject = cp_decode_event(
            &app->dparams, run_family, rkm->key, rkm->key_len, rkm->payload,
            rkm->len, &b->arena, &m->in, m->reason, sizeof(m->reason));
        if (m->reject != CP_REJECT_NONE)
            continue;
        if (m->in.ev.occurred_ms > clock)
            clock = m->in.ev.occurred_ms;
        m->now_ms = app->cfg->clock == CP_CLOCK_EVENT ? clock : b->now_wall_ms;
        m->cust =
            cust_find_or_add(app, b, m->in.customer_id, m->in.customer_id_len);
        if (m->cust < 0 || cust_add_msg(b, &b->custs[m->cust], i) != 0)
            oom();
    }
}

/* A new batch of n messages (0: a sweep). */
static void batch_reset(cp_batch_t *b, int n, int sweep)
{
    b->n_msgs = n;
    b->n_custs = 0;
    b->n_recs = 0;
    b->attempts = 0;
    b->wait_repl = 0;
    b->repl_needed = 0;
    b->produce_failures = 0;
    b->redis_failed = 0;
    b->retry_later = 0;
    b->sweep = sweep;
    memset(b->table, 0, sizeof(*b->table) * (b->table_mask + 1));
    b->now_wall_ms = cp_time_wall_ms();
}

void cp__batch_start(cp_app_t *app, int n)
{
    cp_batch_t *b = &app->batch;
    batch_reset(b, n, 0);
    decode_all(app, b);
    if (b->n_custs == 0)
        go_produce(app);
    else
        go_read(app);
}

/* ---- round bookkeeping ------------------------------------------------- */

static void round_failed_reply(cp_app_t *app, redisReply *reply,
                               const char *what)
{
    cp_batch_t *b = &app->batch;
    if (!reply) {
        b->redis_failed = 1;
        return;
    }
    b->retry_later = 1;
    const char *err = reply->type == REDIS_REPLY_ERROR && reply->str
                          ? reply->str
                          : "unexpected reply type";
    cp_log(strncmp(err, "OOM", 3) == 0 ? CP_LOG_WARN : CP_LOG_ERROR,
           "redis refused a command; retrying", CP_LS("step", what),
           CP_LS("error", err), CP_LEND);
}

/* Next step after a round in which some customers still need work: wait
 * for Redis, back off, or go again now (READ, or CLEAR when clearing). */
static void next_round(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    if (!b->more_round)
        b->attempts++;
    b->more_round = 0;
    if (b->redis_failed || !cp_redis_ready(app->redis)) {
        b->phase = CP_BATCH_WAIT; /* resumed by cp__batch_redis_ready */
        if (cp_redis_ready(app->redis))
            cp__app_schedule_retry(app, 0);
    } else if (b->retry_later || b->attempts > CONFLICT_ROUNDS) {
        /* Repeated version conflicts mean another writer keeps winning:
         * back off instead of spinning against Redis. */
        if (b->attempts == CONFLICT_ROUNDS + 1)
            cp_log(CP_LOG_WARN, "repeated version conflicts; backing off",
                   CP_LI("rounds", b->attempts), CP_LEND);
        b->phase = CP_BATCH_WAIT;
        cp__app_schedule_retry(app, RETRY_MS);
    } else {
        resume(app);
    }
}

static int count_phase(const cp_batch_t *b, cp_cust_phase_t phase)
{
    int n = 0;
    for (int i = 0; i < b->n_custs; i++)
        n += b->custs[i].phase == phase;
    return n;
}

/* ---- READ ---------------------------------------------------------------- */

static void apply_and_write(cp_app_t *app);

static void read_reply_done(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    if (--b->pending > 0)
        return;
    if (b->redis_failed || b->retry_later) {
        next_round(app);
        return;
    }
    cp_fp(CP_FP_BETWEEN_READ_WRITE);
    apply_and_write(app);
}

static void on_pop_read(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = pd;
    cp_batch_t *b = &app->batch;
    if (b->phase != CP_BATCH_READ)
        return;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
        round_failed_reply(
            app, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL,
            "read population");
    } else {
        int64_t *dst[4] = {&b->pop.n, &b->pop.sf, &b->pop.sm, &b->pop.sl};
        for (int i = 0; i < 4; i++) {
            redisReply *e = reply->element[i];
            *dst[i] =
                e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : 0;
        }
    }
    read_reply_done(app);
}

static void unreadable(cp_cust_t *c, const char *err)
{
    cp_log(CP_LOG_ERROR,
           "customer state unreadable; its events go to the dead-letter "
           "topic",
           CP_LCUST("customer", c->id), CP_LS("error", err), CP_LEND);
    c->unreadable = 1;
}

/* A reply of field-value pairs, all strings, into c->stored: the customer
 * hash (outbox = 0) or the outbox key (outbox = 1). */
static void parse_pairs(cp_app_t *app, cp_cust_t *c, redisReply *reply,
                        int outbox)
{
    char err[128] = "a field is not a string";
    cp_err_t rc = CP_OK;
    for (size_t i = 0; i + 1 < reply->elements && rc == CP_OK; i += 2) {
        redisReply *f = reply->element[i], *v = reply->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            rc = CP_EPARSE;
        else if (outbox)
            rc = cp_store_parse_outbox_field(
                &c->stored, f->str, (size_t)f->len, v->str, (size_t)v->len,
                &app->batch.arena, err, sizeof(err));
        else
            rc = cp_store_parse_field(&c->stored, f->str, (size_t)f->len,
                                      v->str, (size_t)v->len, &app->eval.sctx,
                                      &app->batch.arena, err, sizeof(err));
    }
    if (rc == CP_OK && !outbox)
        rc = cp_store_parse_end(&c->stored, err, sizeof(err));
    if (rc != CP_OK) {
        unreadable(c, err);
        return;
    }
    if (outbox)
        return;
    /* The hash as read: the write sends only what differs from it, and
     * the state cache keeps what the write leaves. */
    size_t len = 0;
    for (size_t i = 0; i + 1 < reply->elements; i += 2)
        len += cp_image_pair_size((size_t)reply->element[i]->len,
                                  (size_t)reply->element[i + 1]->len);
    unsigned char *p = cp_arena_alloc(&app->batch.arena, len ? len : 1);
    if (!p)
        oom();
    c->img.p = p;
    c->img.len = 0;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *f = reply->element[i], *v = reply->element[i + 1];
        c->img.len += cp_image_put_pair(p + c->img.len, f->str, (size_t)f->len,
                                        v->str, (size_t)v->len);
    }
}

/* A customer in the state cache: its image parsed as a read would parse
 * the hash. Returns 1, or 0 when not cached (or, never expected, the
 * image does not parse: dropped, read from Redis). */
static int read_cached(cp_app_t *app, cp_cust_t *c)
{
    const cp_image_t *im = cp_cache_get(app->cache, c->id, c->id_len);
    if (!im)
        return 0;
    unsigned char *p = cp_arena_alloc(&app->batch.arena, im->len ? im->len : 1);
    if (!p)
        oom();
    memcpy(p, im->p, im->len);
    c->img.p = p;
    c->img.len = im->len;
    cp_stored_init(&c->stored);
    c->unreadable = 0;
    char err[128] = "";
    cp_err_t rc = CP_OK;
    size_t pos = 0, fl, vl;
    const char *f, *v;
    int more;
    while (rc == CP_OK &&
           (more = cp_image_next(&c->img, &pos, &f, &fl, &v, &vl)) != 0)
        rc = more < 0 ? CP_EPARSE
                      : cp_store_parse_field(&c->stored, f, fl, v, vl,
                                             &app->eval.sctx, &app->batch.arena,
                                             err, sizeof(err));
    if (rc == CP_OK)
        rc = cp_store_parse_end(&c->stored, err, sizeof(err));
    if (rc != CP_OK) {
        cp_log(CP_LOG_WARN, "cached state unreadable; reading Redis",
               CP_LCUST("customer", c->id), CP_LS("error", err), CP_LEND);
        cp_cache_drop(app->cache, c->id, c->id_len);
        return 0;
    }
    c->from_cache = 1;
    return 1;
}

/* An error that retrying cannot cure: the key is not ours to read. */
static int is_wrongtype(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && reply->str &&
           strncmp(reply->str, "WRONGTYPE", 9) == 0;
}

/* The customer hash's reply, then (same connection, in order) the outbox
 * key's: the first resets c->stored, the second adds the outbox. */
static void on_read(cp_app_t *app, cp_cust_t *c, redisReply *reply, int outbox)
{
    if (app->batch.phase != CP_BATCH_READ)
        return;
    if (!outbox) {
        cp_stored_init(&c->stored);
        c->unreadable = 0;
        c->img.p = NULL;
        c->img.len = 0;
        c->from_cache = 0;
    }
    if (is_wrongtype(reply)) {
        cp_log(CP_LOG_ERROR,
               "customer key holds another type; its events go "
               "to the dead-letter topic",
               CP_LCUST("customer", c->id),
               CP_LS("key", outbox ? "outbox" : "customer"), CP_LEND);
        c->unreadable = 1;
    } else if (!reply || reply->type != REDIS_REPLY_ARRAY)
        round_failed_reply(
            app, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL,
            "read customer");
    else if (!c->unreadable)
        parse_pairs(app, c, reply, outbox);
    read_reply_done(app);
}

static void on_cust_read(cp_redis_t *r, redisReply *reply, void *pd)
{
    on_read(cp_redis_opaque(r), pd, reply, 0);
}

static void on_outbox_read(cp_redis_t *r, redisReply *reply, void *pd)
{
    on_read(cp_redis_opaque(r), pd, reply, 1);
}

static void send_or_fail(cp_app_t *app, cp_redis_cb *cb, void *pd, int argc,
                         const char **argv, const size_t *lens)
{
    if (cp_redis_cmd(app->redis, cb, pd, argc, argv, lens) == CP_OK)
        app->batch.pending++;
    else
        app->batch.redis_failed = 1;
}

/* Takes the epoch of every partition of the batch that has none (a first
 * batch since the assignment, or an acquisition that failed). The replies
 * arrive before the reads sent after them. */
static void acquire_epochs(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    for (int i = 0; i < b->n_msgs; i++) {
        const cp_bmsg_t *m = &b->msgs[i];
        if (m->ignored || m->reject != CP_REJECT_NONE ||
            app->parts[m->part].epoch != 0 || app->parts[m->part].acquiring)
            continue;
        if (cp__app_acquire_epoch(app, m->part) != 0)
            b->redis_failed = 1;
    }
}

static void go_read(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    send_clears(app); /* Redis runs them before this batch's commands */
    b->phase = CP_BATCH_READ;
    b->redis_failed = 0;
    b->retry_later = 0;
    acquire_epochs(app);
    b->pending = 1; /* guard while sending */
    if (app->cfg->rfm_reference == CP_REF_LIVE) {
        const char *argv[] = {"HMGET", app->popkey, "n", "sf", "sm", "sl"};
        size_t lens[] = {5, strlen(app->popkey), 1, 2, 2, 2};
        send_or_fail(app, on_pop_read, app, 6, argv, lens);
    }
    for (int i = 0; i < b->n_custs; i++) {
        cp_cust_t *c = &b->custs[i];
        if (c->phase != CP_CUST_READ || read_cached(app, c))
            continue;
        const char *argv[] = {"HGETALL", c->keys.key};
        size_t lens[] = {7, c->keys.key_len};
        send_or_fail(app, on_cust_read, c, 2, argv, lens);
        argv[1] = c->keys.xkey;
        lens[1] = c->keys.xkey_len;
        send_or_fail(app, on_outbox_read, c, 2, argv, lens);
    }
    if (b->pending > 1)
        app->stats.redis_round_trips++;
    read_reply_done(app);
}

/* ---- apply --------------------------------------------------------------- */

static void pop_move(cp_pop_t *pop, const cp_pop_t *from, const cp_pop_t *to)
{
    pop->n += to->n - from->n;
    pop->sf += to->sf - from->sf;
    pop->sm += to->sm - from->sm;
    pop->sl += to->sl - from->sl;
}

/* The record in batch.json into the customer's outbox at its seq, for
 * the topic of code (CP_OUTBOX_*). */
static void to_outbox_code(cp_app_t *app, cp_cust_t *c, char code)
{
    cp_batch_t *b = &app->batch;
    if (cp_buf_failed(&b->json) ||
        cp_store_outbox_add(&c->stored, code, b->json.data, b->json.len,
                            c->stored.st.seq, &b->arena) != CP_OK)
        oom();
}

static void to_outbox(cp_app_t *app, cp_cust_t *c)
{
    to_outbox_code(app, c, CP_OUTBOX_SEGMENTS);
}

/* ---- population metrics (docs/metrics.md "Consumer integration") -------- */

static void metrics_full(const cp_cust_t *c);

/* Starts the customer's metric increments for this round's write. A
 * customer not yet in the counters (no mk: a new customer, or a hash
 * written while metrics were off) enters them with its stored stage and
 * segment on `day` (a new customer has neither); one already counted in
 * its cohort cannot be any more (its first order is past). Metrics off:
 * no increments, and an mk is dropped (turning them on again counts the
 * customer anew). */
static void metrics_begin(cp_app_t *app, cp_cust_t *c, int64_t day)
{
    cp_stored_t *s = &c->stored;
    if (!app->cfg->topic_metrics[0]) {
        s->mk_on = 0;
        return;
    }
    if (!c->macc) {
        c->macc = cp_arena_alloc(&app->batch.arena, sizeof(*c->macc));
        if (!c->macc)
            oom();
        cp_metrics_acc_init(c->macc);
    }
    if (s->mk_on)
        return;
    s->mk_on = 1;
    s->mk_day = INT64_MIN;
    s->mk_bits = 0;
    if (s->exists) {
        if (cp_metrics_on_baseline(c->macc, s->st.stage, s->st.segment, day))
            metrics_full(c);
        if (s->st.orders > 0 || s->st.repeat_days > 0)
            s->mk_bits = CP_MK_COHORT | CP_MK_REPEAT;
    }
}

/* An applied event's own increments: activity (once a day, the
 * customer's latest active day moving forward), the first counted order
 * (its cohort's size) and the first repeat order day (its cohort's
 * retention), each once per customer (mk's bits). */
static void metrics_event(cp_cust_t *c, const cp_event_t *ev,
                          int64_t orders_before, int64_t repeat_before)
{
    cp_stored_t *s = &c->stored;
    int full = 0;
    if (s->mk_day == INT64_MIN || ev->occurred_day > s->mk_day) {
        full |= cp_metrics_on_active(c->macc, ev->occurred_day);
        s->mk_day = ev->occurred_day;
    }
    if (orders_before == 0 && s->st.orders > 0 && s->st.has_order_time &&
        !(s->mk_bits & CP_MK_COHORT)) {
        full |= cp_metrics_on_first_order(c->macc, s->st.first_day);
        s->mk_bits |= CP_MK_COHORT;
    }
    if (repeat_before == 0 && s->st.repeat_days > 0 && s->st.has_order_time &&
        !(s->mk_bits & CP_MK_REPEAT)) {
        full |= cp_metrics_on_first_repeat(c->macc, s->st.first_day,
                                           ev->occurred_day);
        s->mk_bits |= CP_MK_REPEAT;
    }
    if (full)
        metrics_full(c);
}

/* Room for one more evaluation or event (their increments at most). */
static int metrics_room(const cp_cust_t *c)
{
    return !c->macc || cp_metrics_room(c->macc) >= CP_METRICS_EVENT_MAX;
}

/* Never: the caller made room first (metrics_room); the state is written
 * without that change's increments rather than not at all. */
static void metrics_full(const cp_cust_t *c)
{
    cp_log(CP_LOG_ERROR, "metric increments do not fit in one write; skipped",
           CP_LCUST("customer", c->id), CP_LEND);
}

/* What an evaluation is stamped with: an applied event, or the clock
 * reaching the customer's due instant (docs/churn.md "Time-driven
 * evaluation"), whose changes carry cause kind "time" and the due instant
 * as their time, so their ids and content are the same in every run. */
typedef struct cp_cause_s {
    int64_t now_ms;       /* the evaluation's "now" */
    int64_t time_ms;      /* the event's occurred_at, or the due instant */
    const char *event_id; /* NULL: caused by time */
    const char *topic;
    int32_t partition;
    int64_t offset;
} cp_cause_t;

static cp_cause_t event_cause(const cp_bmsg_t *m)
{
    cp_cause_t k = {.now_ms = m->now_ms,
                    .time_ms = m->in.ev.occurred_ms,
                    .event_id = m->in.event_id,
                    .topic = rd_kafka_topic_name(m->rkm->rkt),
                    .partition = m->rkm->partition,
                    .offset = m->rkm->offset};
    return k;
}

static void emit_change(cp_app_t *app, cp_cust_t *c, const cp_cause_t *k,
                        cp_rfm8_t to, int64_t today, const cp_rfm_ref_t *ref)
{
    cp_state_t *st = &c->stored.st;
    cp_batch_t *b = &app->batch;
    st->seq++;
    cp_seg_change_t ch = {.customer_id = c->id,
                          .customer_id_len = c->id_len,
                          .from = st->segment,
                          .to = to,
                          .seq = st->seq,
                          .recency_days = cp_rfm_recency_days(st, today),
                          .frequency = st->orders,
                          .monetary = st->monetary,
                          .ref_mode = app->cfg->rfm_reference,
                          .ref = *ref,
                          .time_ms = k->time_ms,
                          .event_id = k->event_id,
                          .topic = k->topic,
                          .partition = k->partition,
                          .offset = k->offset};
    cp_buf_reset(&b->json);
    cp_output_segment_change(&b->json, &ch, app->cfg);
    to_outbox(app, c);
    if (c->macc && cp_metrics_on_segment(c->macc, st->segment, to,
                                         cp_tz_day(app->tz, k->time_ms)))
        metrics_full(c);
    st->segment = to;
}

static cp_rfm_ref_t reference(const cp_app_t *app, int64_t today)
{
    const cp_config_t *cfg = app->cfg;
    if (cfg->rfm_reference == CP_REF_LIVE)
        return cp_pop_reference(&app->batch.pop, today);
    cp_rfm_ref_t ref = {(double)cfg->rfm_fixed_recency_days,
                        (double)cfg->rfm_fixed_frequency,
                        (double)cfg->rfm_fixed_monetary_minor};
    return ref;
}

/* One change of another model than rfm8 into the outbox; rq (the
 * quantile RFM scores, with the snapshot they were taken against) only for
 * CP_MODEL_RFM. */
static void emit_model_rq(cp_app_t *app, cp_cust_t *c, const cp_cause_t *k,
                          cp_model_t kind, const char *name, const char *from,
                          const char *to, const cp_models_t *mo, int64_t today,
                          const cp_rfmq_score_t *rq, int64_t rq_snapshot)
{
    cp_state_t *st = &c->stored.st;
    cp_batch_t *b = &app->batch;
    st->seq++;
    cp_model_change_t ch = {.customer_id = c->id,
                            .customer_id_len = c->id_len,
                            .kind = kind,
                            .custom_name = name,
                            .from = from,
                            .to = to,
                            .seq = st->seq,
                            .st = st,
                            .mo = mo,
                            .today = today,
                            .time_ms = k->time_ms,
                            .event_id = k->event_id,
                            .topic = k->topic,
                            .partition = k->partition,
                            .offset = k->offset};
    if (rq) {
        ch.rq = *rq;
        ch.rq_snapshot = rq_snapshot;
    }
    cp_buf_reset(&b->json);
    cp_output_model_change(&b->json, &ch, app->cfg);
    to_outbox(app, c);
}

static void emit_model(cp_app_t *app, cp_cust_t *c, const cp_cause_t *k,
                       cp_model_t kind, const char *name, const char *from,
                       const char *to, const cp_models_t *mo, int64_t today)
{
    emit_model_rq(app, c, k, kind, name, from, to, mo, today, NULL, 0);
}

/* The quantile RFM scores of st: against the snapshot held (live) or the
 * config's thresholds (fixed). */
static cp_rfmq_score_t rfmq_score(const cp_app_t *app, const cp_state_t *st,
                                  int64_t today, int64_t *snapshot)
{
    const cp_config_t *cfg = app->cfg;
    if (cfg->rfmq_mode == 0) {
        *snapshot = app->rqsnap.version;
        return cp_rfmq_score_live(st, &app->rqsnap);
    }
    *snapshot = 0;
    return cp_rfmq_score_fixed(st, today, cfg->rfmq_fixed_r, cfg->rfmq_fixed_f,
                               cfg->rfmq_fixed_m_minor);
}

/* The churn rules after the models (docs/churn.md "Consumer
 * integration"): one step of the warning state machine; a warning,
 * escalation or recovery goes into the outbox with the next seq. */
static void evaluate_churn(cp_app_t *app, cp_cust_t *c, const cp_cause_t *k,
                           const cp_models_t *mo, int64_t today)
{
    cp_state_t *st = &c->stored.st;
    cp_churn_state_t *cs = &c->stored.cs;
    const cp_eval_t *e = &app->eval;
    cp_churn_eval_t ev;
    cp_churn_eval(st, cs, mo, k->now_ms, today, &e->p, &e->cp, &ev);
    const cp_churn_warn_t before = cs->warn;
    /* Read before the step: a recovery clears the episode. */
    int ordered = cp_churn_ordered_since(st, &cs->warn);
    /* An episode starts at the causing event's time, not at "now": with
     * clock = wall "now" is the batch's wall clock, and the stored start
     * (cw) and the warning's episode_started_at must be the same in every
     * run (re-deliveries, restarts). */
    cp_churn_action_t act = cp_churn_step(
        &cs->warn, ev.level, ordered, ev.signals_recovered, k->time_ms, &e->cp);
    if (act == CP_CHURN_ACT_NONE)
        return;
    st->seq++;
    const int rec = act == CP_CHURN_ACT_RECOVER;
    cp_churn_out_t out = {.customer_id = c->id,
                          .customer_id_len = c->id_len,
                          .action = act,
                          .seq = st->seq,
                          .level = rec ? before.level : cs->warn.level,
                          .previous_level = before.level,
                          .episode_ms = act == CP_CHURN_ACT_WARN
                                            ? cs->warn.since_ms
                                            : before.since_ms,
                          .recovered_by_order = ordered,
                          .ev = &ev,
                          .cp = &e->cp,
                          .st = st,
                          .mo = mo,
                          .time_ms = k->time_ms,
                          .event_id = k->event_id,
                          .topic = k->topic,
                          .partition = k->partition,
                          .offset = k->offset};
    cp_buf_reset(&app->batch.json);
    cp_output_churn(&app->batch.json, &out, app->cfg);
    to_outbox_code(app, c, CP_OUTBOX_CHURN);
}

/* The next evaluation instant (dd) of the customer after an evaluation at
 * now_ms: scoring's day and instant, the day turned into its first
 * instant in the configured zone. */
static int64_t due_instant(const cp_app_t *app, const cp_stored_t *s,
                           int64_t now_ms, int64_t today)
{
    cp_due_t d = cp_due_next(&s->st, &s->cs, now_ms, today, &app->eval.dp);
    int64_t day_start =
        d.day != CP_DUE_NEVER ? cp_tz_day_start(app->tz, d.day) : 0;
    int64_t dd = cp_due_instant(&d, day_start);
    return dd > CP_DUE_MS_MAX ? CP_STORE_DUE_NEVER : dd;
}

/* Evaluates every model after an applied event and emits each change, in
 * the order of cp_model_t (docs/contracts.md section 4), then the churn
 * rules, and computes the next due time. */
static void evaluate(cp_app_t *app, cp_cust_t *c, const cp_cause_t *k,
                     int64_t today)
{
    cp_state_t *st = &c->stored.st;
    const cp_eval_t *e = &app->eval;
    cp_rfm_ref_t ref = reference(app, today);
    cp_rfm8_t seg = cp_rfm8_classify(st, today, &ref);
    if (seg != st->segment)
        emit_change(app, c, k, seg, today, &ref);

    cp_models_t mo;
    cp_models_eval(st, k->now_ms, today, &e->p, &mo);
    int64_t snap;
    cp_rfmq_score_t rq = rfmq_score(app, st, today, &snap);
    if (rq.seg != st->rfmq) {
        emit_model_rq(app, c, k, CP_MODEL_RFM, NULL, cp_rfmseg_code(st->rfmq),
                      cp_rfmseg_code(rq.seg), &mo, today, &rq, snap);
        st->rfmq = rq.seg;
    }
    if (mo.stage != st->stage) {
        emit_model(app, c, k, CP_MODEL_LIFECYCLE, NULL,
                   cp_lifecycle_code(st->stage), cp_lifecycle_code(mo.stage),
                   &mo, today);
        if (c->macc && cp_metrics_on_stage(c->macc, st->stage, mo.stage,
                                           cp_tz_day(app->tz, k->time_ms)))
            metrics_full(c);
        st->stage = mo.stage;
    }
    if (mo.eng != st->eng) {
        emit_model(app, c, k, CP_MODEL_ENGAGEMENT, NULL,
                   cp_engagement_code(st->eng), cp_engagement_code(mo.eng), &mo,
                   today);
        st->eng = mo.eng;
    }
    if (mo.sat != st->sat) {
        emit_model(app, c, k, CP_MODEL_SATISFACTION, NULL,
                   cp_satisfaction_code(st->sat), cp_satisfaction_code(mo.sat),
                   &mo, today);
        st->sat = mo.sat;
    }
    if (mo.value.tier != st->tier) {
        emit_model(app, c, k, CP_MODEL_VALUE, NULL, cp_tier_code(st->tier),
                   cp_tier_code(mo.value.tier), &mo, today);
        st->tier = mo.value.tier;
    }
    uint64_t in = cp_eval_custom(e, &c->stored, &mo, today);
    for (int i = 0; i < e->n_segs; i++) {
        uint64_t bit = (uint64_t)1 << i;
        if ((in & bit) == (st->custom & bit))
            continue;
        emit_model(app, c, k, CP_MODEL_CUSTOM, e->seg_names[i],
                   st->custom & bit ? "in" : "out", in & bit ? "in" : "out",
                   &mo, today);
        st->custom ^= bit;
    }
    if (e->churn_on)
        evaluate_churn(app, c, k, &mo, today);
    c->stored.due_ms = due_instant(app, &c->stored, k->now_ms, today);
}

/* Runs the customer's due evaluations up to `until` (inclusive), each at
 * its due instant, oldest first, at most max; returns how many ran. */
static int catch_up(cp_app_t *app, cp_cust_t *c, int64_t until, int max)
{
    int n = 0;
    while (c->stored.due_ms <= until && n < max) {
        if (!metrics_room(c)) {
            c->more = 1; /* the rest after this write */
            break;
        }
        cp_cause_t k = {.now_ms = c->stored.due_ms,
                        .time_ms = c->stored.due_ms};
        evaluate(app, c, &k, cp_tz_day(app->tz, k.now_ms));
        n++;
        if (c->stored.due_ms <= k.now_ms) {
            /* Never (due times are after "now"): not a loop either. */
            cp_log(CP_LOG_ERROR, "due time did not advance",
                   CP_LCUST("customer", c->id), CP_LI("due_ms", k.now_ms),
                   CP_LEND);
            c->stored.due_ms = CP_STORE_DUE_NEVER;
            break;
        }
    }
    app->stats.due_evaluations += (uint64_t)n;
    return n;
}

/* The attributes of a profile.updated into the stored customer. */
static void apply_attrs(cp_app_t *app, cp_cust_t *c, const cp_event_t *ev)
{
    for (size_t i = 0; i < ev->n_attrs; i++) {
        const cp_attr_t *at = &ev->attrs[i];
        cp_err_t err = cp_store_attr_set(&c->stored, at->name, at->name_len,
                                         at->removed ? NULL : at->value,
                                         at->value_len, &app->batch.arena);
        if (err == CP_ENOMEM)
            oom();
        if (err == CP_ERANGE)
            app->stats.attrs_dropped++;
    }
    /* is_strategic as kept (it may have been dropped at the limit). */
    const cp_sattr_t *st = cp_store_attr(&c->stored, "is_strategic", 12);
    c->stored.st.strategic = st && !st->removed && st->value_len == 4 &&
                             memcmp(st->value, "true", 4) == 0;
}

/* Applies the customer's messages in order, moving each applied event's
 * population contribution in the batch's figures and in *delta (what the
 * write adds to the population hash); returns 1 if a write is needed. */
static int apply_customer(cp_app_t *app, cp_cust_t *c, cp_pop_t *delta)
{
    cp_stored_t *s = &c->stored;
    cp_batch_t *b = &app->batch;
    cp_apply_params_t params = {app->cfg->dedup_event_ids,
                                app->cfg->dedup_orders, &app->eval.p.engagement,
                                &app->eval.p.satisfaction};
    int changed = 0;
    c->macc = NULL;
    c->more = 0;
    /* Outcomes are this round's: a refused write's are void. */
    for (int k = 0; k < c->n_msgs; k++) {
        cp_bmsg_t *m = &b->msgs[c->msgs[k]];
        if (!m->done)
            m->outcome = CP_OUTCOME_NONE;
    }
    for (int k = 0; k < c->n_msgs; k++) {
        cp_bmsg_t *m = &b->msgs[c->msgs[k]];
        if (m->ignored || m->done)
            continue;
        const char *topic = rd_kafka_topic_name(m->rkm->rkt);
        cp_wm_t *wm = cp_store_wm(s, topic, m->rkm->partition);
        if (wm && m->rkm->offset <= wm->offset) {
            m->outcome = CP_OUTCOME_SKIPPED; /* applied before: re-delivery */
            continue;
        }
        const cp_event_t *ev = &m->in.ev;
        /* A customer entering the counters does so on the day of the
         * write's first change: a due instant before the event, if any. */
        int64_t until =
            ev->occurred_ms < m->now_ms ? ev->occurred_ms : m->now_ms;
        metrics_begin(app, c,
                      app->cfg->due_sweep_ms > 0 && s->due_ms <= until
                          ? cp_tz_day(app->tz, s->due_ms)
                          : ev->occurred_day);
        /* Time first: every evaluation due by the event's own time (and
         * by "now") runs before it, whether or not a sweep got to it, so
         * the outputs do not depend on when sweeps ran. */
        if (app->cfg->due_sweep_ms > 0) {
            catch_up(app, c, until, DUE_STEPS_GUARD);
            changed |= c->more; /* what ran is written */
        }
        if (c->more || !metrics_room(c)) {
            c->more = 1; /* this event and the rest after this write */
            changed = 1;
            break;
        }
        cp_pop_t before = cp_pop_delta(NULL, &s->st);
        /* Won back: an order placed while the customer was churned (the
         * stage on the order's own day, before the order). */
        cp_lifecycle_t stage_before =
            ev->type == CP_EV_ORDER_PLACED
                ? cp_models_stage(&s->st, ev->occurred_day,
                                  &app->eval.p.lifecycle)
                : CP_LC_NONE;
        int64_t orders_before = s->st.orders;
        int64_t repeat_before = s->st.repeat_days;
        cp_apply_result_t res = cp_state_apply(&s->st, ev, &params);
        if (cp_store_wm_set(s, topic, m->rkm->partition, m->rkm->offset,
                            &b->arena) != CP_OK)
            oom();
        changed = 1;
        m->outcome =
            res == CP_APPLY_APPLIED ? CP_OUTCOME_APPLIED : CP_OUTCOME_DUPLICATE;
        if (res != CP_APPLY_APPLIED)
            continue;
        if (ev->type == CP_EV_PROFILE_UPDATED)
            apply_attrs(app, c, ev);
        if (s->st.orders > orders_before) {
            s->st.won_back_day = cp_lifecycle_won_back_day(
                stage_before, ev->occurred_day, s->st.won_back_day);
            cp_churn_on_order(&s->cs, ev->amount, ev->occurred_ms,
                              &app->eval.cp);
        }
        if (ev->type >= CP_EV_SESSION_STARTED &&
            ev->type <= CP_EV_CART_ABANDONED)
            cp_churn_on_browse(&s->cs, &s->st.engagement, &app->eval.cp);
        if (c->macc)
            metrics_event(c, ev, orders_before, repeat_before);
        int64_t today = cp_tz_day(app->tz, m->now_ms);
        cp_pop_t after = cp_pop_delta(NULL, &s->st);
        pop_move(&b->pop, &before, &after);
        pop_move(delta, &before, &after);
        cp_cause_t cause = event_cause(m);
        evaluate(app, c, &cause, today);
    }
    return changed;
}

static void reject_customer(cp_app_t *app, cp_cust_t *c)
{
    for (int k = 0; k < c->n_msgs; k++) {
        cp_bmsg_t *m = &app->batch.msgs[c->msgs[k]];
        if (m->done)
            continue; /* written by an earlier round of this batch */
        m->reject = CP_REJECT_STATE_UNREADABLE;
        snprintf(m->reason, sizeof(m->reason),
                 "the customer's stored state cannot be read");
    }
    c->phase = CP_CUST_DONE;
}

/* ---- WRITE --------------------------------------------------------------- */

static void write_reply_done(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    if (--b->pending > 0)
        return;
    if (b->round_fenced > 0)
        cp_log(CP_LOG_WARN, "writes refused: a newer owner holds the partition",
               CP_LI("refused", b->round_fenced),
               CP_LI("accepted", b->round_accepted), CP_LEND);
    if (count_phase(b, CP_CUST_READ) > 0) {
        next_round(app);
        return;
    }
    if (b->repl_needed) {
        go_repl(app);
        return;
    }
    if (b->sweep)
        cp_fp(CP_FP_SWEEP_AFTER_WRITE);
    cp_fp(CP_FP_AFTER_REDIS_WRITE);
    go_produce(app);
}

/* ---- REPL (redis.wait_replicas > 0) ----------------------------------------
 *
 * WAIT follows the writes in their pipeline; if too few replicas
 * acknowledged, WAIT is sent again (behind an INCR, so it also covers
 * writes sent on a connection lost since) until they do. Nothing is
 * produced or committed before. */

static void on_wait(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = cp_redis_opaque(r);
    cp_batch_t *b = &app->batch;
    (void)pd;
    if (b->phase != CP_BATCH_WRITE && b->phase != CP_BATCH_REPL)
        return;
    if (reply && reply->type == REDIS_REPLY_INTEGER &&
        reply->integer >= app->cfg->redis_wait_replicas) {
        b->repl_needed = 0;
    } else if (reply && reply->type == REDIS_REPLY_INTEGER) {
        app->stats.wait_short++;
        if ((app->stats.wait_short & (app->stats.wait_short - 1)) == 0)
            cp_log(CP_LOG_WARN,
                   "too few replicas acknowledged the batch's writes; "
                   "waiting before producing and committing",
                   CP_LI("acknowledged", reply->integer),
                   CP_LI("wanted", app->cfg->redis_wait_replicas),
                   CP_LI("times", app->stats.wait_short), CP_LEND);
    } else if (b->phase == CP_BATCH_REPL) {
        round_failed_reply(app, reply, "wait for replicas");
    }
    if (b->phase == CP_BATCH_WRITE)
        write_reply_done(app);
    else if (--b->pending == 0)
        after_repl(app);
}

static void send_wait(cp_app_t *app)
{
    char n[16], t[16];
    snprintf(n, sizeof(n), "%d", app->cfg->redis_wait_replicas);
    snprintf(t, sizeof(t), "%d", app->cfg->redis_wait_timeout_ms);
    const char *argv[] = {"WAIT", n, t};
    size_t lens[] = {4, strlen(n), strlen(t)};
    send_or_fail(app, on_wait, NULL, 3, argv, lens);
}

static void on_repl_incr(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = cp_redis_opaque(r);
    (void)pd;
    if (app->batch.phase != CP_BATCH_REPL)
        return;
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        round_failed_reply(
            app, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL,
            "wait for replicas");
    if (--app->batch.pending == 0)
        after_repl(app);
}

static void go_repl(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    b->phase = CP_BATCH_REPL;
    b->wait_repl = 0;
    b->redis_failed = 0;
    b->retry_later = 0;
    b->pending = 1; /* guard */
    size_t klen = strlen(app->cfg->redis_prefix) + 5;
    char *key = cp_arena_alloc(&b->arena, klen);
    if (!key)
        oom();
    snprintf(key, klen, "%swait", app->cfg->redis_prefix);
    const char *argv[] = {"INCR", key};
    size_t lens[] = {4, strlen(key)};
    send_or_fail(app, on_repl_incr, NULL, 2, argv, lens);
    send_wait(app);
    app->stats.redis_round_trips++;
    if (--b->pending == 0)
        after_repl(app);
}

static void after_repl(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    if (!b->repl_needed) {
        if (b->sweep)
            cp_fp(CP_FP_SWEEP_AFTER_WRITE);
        cp_fp(CP_FP_AFTER_REDIS_WRITE);
        go_produce(app);
        return;
    }
    b->wait_repl = 1;
    if (b->redis_failed || b->retry_later || !cp_redis_ready(app->redis)) {
        next_round(app);
        return;
    }
    /* WAIT itself waited redis.wait_timeout_ms: go again now. */
    b->phase = CP_BATCH_WAIT;
    cp__app_schedule_retry(app, 0);
}

/* The j-th (1-based) epoch of c's write was outranked: another instance
 * owns that partition now. Its messages are dropped from this batch (not
 * applied, offsets not stored) and from later polls until the partition
 * is assigned again. */
static void fence(cp_app_t *app, cp_cust_t *c, long long j)
{
    cp_batch_t *b = &app->batch;
    if (j < 1 || j > c->n_ep_parts)
        return;
    int part = c->ep_parts[j - 1];
    if (!app->parts[part].fenced)
        cp_log(CP_LOG_WARN, "partition fenced: another instance owns it now",
               CP_LS("topic", app->parts[part].topic),
               CP_LI("partition", app->parts[part].partition),
               CP_LI("epoch", app->parts[part].epoch), CP_LEND);
    app->parts[part].fenced = 1;
    for (int i = 0; i < b->n_msgs; i++)
        if (b->msgs[i].part == part)
            b->msgs[i].ignored = 1;
}

static void on_cust_written(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_cust_t *c = pd;
    cp_app_t *app = cp_redis_opaque(r);
    if (app->batch.phase != CP_BATCH_WRITE)
        return;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        c->phase = CP_CUST_DONE;
        if (c->more) {
            /* Written up to where it stopped: what was applied is done,
             * the rest goes in another round (not a conflict). */
            c->phase = CP_CUST_READ;
            app->batch.more_round = 1;
            for (int k = 0; k < c->n_msgs; k++) {
                cp_bmsg_t *m = &app->batch.msgs[c->msgs[k]];
                m->done |= m->outcome != CP_OUTCOME_NONE;
            }
        }
        /* The hash is img_new now; with an outbox left, it goes to the
         * cache once the clear (which bumps v) is acknowledged. */
        if (c->stored.outbox_len == 0) {
            (void)cp_cache_put(app->cache, c->id, c->id_len, &c->img_new);
        } else {
            /* Not cached until its clear answers with the version this
             * write left + 1: any other writer in between (another
             * instance owning another of its partitions) makes that
             * version another state. */
            cp_cache_drop(app->cache, c->id, c->id_len);
            c->cache_on_clear = !c->more;
        }
        app->stats.writes++;
        app->batch.round_accepted++;
        app->batch.repl_needed = app->cfg->redis_wait_replicas > 0;
    } else {
        c->phase = CP_CUST_READ;
        cp_cache_drop(app->cache, c->id, c->id_len); /* stale or unknown */
        if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer < 0) {
            app->stats.writes_fenced++;
            app->batch.round_fenced++;
            fence(app, c, -reply->integer);
        } else if (reply && reply->type == REDIS_REPLY_INTEGER) {
            app->stats.write_conflicts++;
            cp_log(CP_LOG_DEBUG, "version conflict; re-reading",
                   CP_LCUST("customer", c->id), CP_LEND);
        } else if (reply && reply->type == REDIS_REPLY_ERROR &&
                   strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            cp_redis_reload_scripts(r);
        } else {
            round_failed_reply(app, reply, "write customer");
        }
    }
    write_reply_done(app);
}

/* The partitions c's write carries: one per partition of its live
 * messages, with the epoch held and the position after (and fingerprint
 * of) c's last message in it. */
static cp_epoch_ref_t *cust_epochs(cp_app_t *app, cp_cust_t *c, int *n)
{
    cp_batch_t *b = &app->batch;
    if (c->sweep_part >= 0) {
        /* A sweep's write: fenced by its shard's orders partition, whose
         * position it does not move. */
        cp_epoch_ref_t *ep = cp_arena_alloc(&b->arena, sizeof(*ep));
        c->ep_parts = cp_arena_alloc(&b->arena, sizeof(int));
        if (!ep || !c->ep_parts)
            oom();
        const cp_part_t *part = &app->parts[c->sweep_part];
        ep->key = part->epkey;
        ep->epoch = part->epoch;
        ep->pos = -1;
        ep->fp = "";
        c->ep_parts[0] = c->sweep_part;
        c->n_ep_parts = 1;
        *n = 1;
        return ep;
    }
    cp_epoch_ref_t *eps =
        cp_arena_alloc(&b->arena, sizeof(*eps) * (size_t)c->n_msgs);
    const rd_kafka_message_t **last =
        cp_arena_alloc(&b->arena, sizeof(*last) * (size_t)c->n_msgs);
    c->ep_parts = cp_arena_alloc(&b->arena, sizeof(int) * (size_t)c->n_msgs);
    if (!eps || !last || !c->ep_parts)
        oom();
    c->n_ep_parts = 0;
    for (int k = 0; k < c->n_msgs; k++) {
        const cp_bmsg_t *m = &b->msgs[c->msgs[k]];
        if (m->ignored)
            continue;
        int j = 0;
        while (j < c->n_ep_parts && c->ep_parts[j] != m->part)
            j++;
        if (j == c->n_ep_parts) {
            const cp_part_t *part = &app->parts[m->part];
            eps[j].key = part->epkey;
            eps[j].epoch = part->epoch;
            eps[j].pos = -1;
            last[j] = NULL;
            c->ep_parts[c->n_ep_parts++] = m->part;
        }
        /* The position moves over what this write applies only (a
         * write that stops short leaves the rest for the next one). */
        if (m->outcome != CP_OUTCOME_NONE && m->rkm->offset + 1 > eps[j].pos) {
            eps[j].pos = m->rkm->offset + 1;
            last[j] = m->rkm;
        }
    }
    for (int j = 0; j < c->n_ep_parts; j++) {
        if (!last[j]) {
            eps[j].fp = ""; /* pos -1: the position is not moved */
            continue;
        }
        char *fp = cp_arena_alloc(&b->arena, CP_FP_SIZE);
        if (!fp)
            oom();
        cp_store_fingerprint(rd_kafka_message_timestamp(last[j], NULL),
                             last[j]->payload, last[j]->len, fp);
        eps[j].fp = fp;
    }
    *n = c->n_ep_parts;
    return eps;
}

/* The due index shard of c, <prefix>due:<shard> with shard =
 * murmur2(id) mod the orders topic's partition count (Kafka's default
 * partitioner for keyed Java producers); NULL while that count is
 * unknown (the hash's dd is the truth either way). */
static int due_shard(const cp_app_t *app, const cp_cust_t *c)
{
    if (app->due_shards <= 0)
        return -1;
    return (int)((cp_hash_murmur2(c->id, c->id_len) & 0x7fffffff) %
                 (uint32_t)app->due_shards);
}

/* <prefix>due:<shard>, in the arena. */
static const char *shard_key(cp_app_t *app, int shard)
{
    size_t len = strlen(app->cfg->redis_prefix) + 16;
    char *key = cp_arena_alloc(&app->batch.arena, len);
    if (!key)
        oom();
    snprintf(key, len, "%sdue:%d", app->cfg->redis_prefix, shard);
    return key;
}

static const char *due_key(cp_app_t *app, const cp_cust_t *c)
{
    int shard = due_shard(app, c);
    return shard < 0 ? NULL : shard_key(app, shard);
}

/* The metric increments of c's write as the script's keys and
 * arguments; NULL when there are none. */
static const cp_store_metrics_t *metrics_args(cp_app_t *app, const cp_cust_t *c)
{
    if (!c->macc || c->macc->n == 0)
        return NULL;
    cp_arena_t *a = &app->batch.arena;
    cp_store_metrics_t *ms = cp_arena_alloc(a, sizeof(*ms));
    if (!ms)
        oom();
    ms->days_key = app->mdayskey;
    ms->n_keys = 0;
    ms->n_inc = 0;
    for (int i = 0; i < c->macc->n; i++) {
        const cp_metrics_inc_t *x = &c->macc->inc[i];
        char key[256], field[64];
        size_t klen = cp_metrics_key_name(app->cfg->redis_prefix,
                                          (cp_metrics_key_t)x->key, x->day, key,
                                          sizeof(key));
        size_t flen = cp_metrics_field_name((cp_metrics_key_t)x->key, x->field,
                                            field, sizeof(field));
        if (!klen || klen >= sizeof(key) || !flen || flen >= sizeof(field))
            continue; /* a day custpulse cannot name: not counted */
        int j = 0;
        while (j < ms->n_keys && strcmp(ms->keys[j], key) != 0)
            j++;
        if (j == ms->n_keys) {
            char *k = cp_arena_strndup(a, key, klen);
            if (!k)
                oom();
            ms->keys[j] = k;
            ms->days[j] = x->day;
            ms->n_keys++;
        }
        char *f = cp_arena_strndup(a, field, flen);
        if (!f)
            oom();
        ms->inc[ms->n_inc].key = j;
        ms->inc[ms->n_inc].field = f;
        ms->inc[ms->n_inc].delta = x->delta;
        ms->n_inc++;
    }
    return ms->n_inc ? ms : NULL;
}

static void write_customer(cp_app_t *app, cp_cust_t *c, const cp_pop_t *delta)
{
    cp_argv_t av = {0};
    const int live = app->cfg->rfm_reference == CP_REF_LIVE;
    int n_eps = 0;
    cp_epoch_ref_t *eps = cust_epochs(app, c, &n_eps);
    /* Quantile RFM: the customer moves from the buckets it is counted in
     * (h as read) to those of its new state. */
    cp_store_hist_t hist = {.key = app->rqkey, .n = 0};
    cp_stored_t *s = &c->stored;
    c->keys.dkey = due_key(app, c);
    c->keys.dmark = c->sweep_part >= 0 ? app->batch.sweep_now : -1;
    s->h_track = app->cfg->rfmq_mode == 0;
    if (s->h_track) {
        s->h_new = cp_rfmq_pos(&s->st);
        hist.n = cp_rfmq_moves(&s->h, &s->h_new, hist.fields, hist.deltas);
    }
    if (cp_store_write_args(s, &app->eval.sctx,
                            cp_redis_script_sha(app->redis, CP_SCRIPT_WRITE),
                            &c->keys, eps, n_eps, app->popkey,
                            live ? delta : NULL, &hist, metrics_args(app, c),
                            &app->batch.arena, &av) != CP_OK ||
        cp_store_write_delta(&av, &c->img, &app->batch.arena, &c->img_new) !=
            CP_OK)
        oom();
    c->cache_on_clear = 0;
    c->phase = CP_CUST_WRITE;
    if (cp_redis_cmd(app->redis, on_cust_written, c, av.argc, av.argv,
                     av.argvlen) == CP_OK) {
        app->batch.pending++;
    } else {
        c->phase = CP_CUST_READ;
        app->batch.redis_failed = 1;
    }
}

/* ---- sweep customers ------------------------------------------------------
 */

static void on_ignored(cp_redis_t *r, redisReply *reply, void *pd)
{
    (void)r;
    (void)reply;
    (void)pd;
}

static void on_reindexed(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_cust_t *c = pd;
    cp_app_t *app = cp_redis_opaque(r);
    cp_batch_t *b = &app->batch;
    if (b->phase != CP_BATCH_WRITE)
        return;
    (void)c;
    if (reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0)
        cp_redis_reload_scripts(r);
    /* Otherwise the entry stays as it is: the next sweep finds it again
     * and puts it right then. */
    write_reply_done(app);
}

/* A sweep found c in another shard than its own (the orders topic gained
 * partitions): the entry there goes (its own shard gets one with the
 * write or the reindex). */
static void drop_moved(cp_app_t *app, cp_cust_t *c)
{
    int found_shard = app->parts[c->sweep_part].partition;
    int own = due_shard(app, c);
    if (own < 0 || own == found_shard)
        return;
    const char *found = shard_key(app, found_shard);
    const char *argv[] = {"ZREM", found, c->id};
    size_t lens[] = {4, strlen(found), c->id_len};
    cp_redis_cmd(app->redis, on_ignored, NULL, 3, argv, lens);
}

/* Puts c's index entry right from its hash (the reindex script: dd, or
 * no entry without one). */
/* Sends the reindex script for the customer hash key / id into due index
 * shard `shard`; cp_redis_cmd's result. */
static cp_err_t send_reindex(cp_app_t *app, const char *key, size_t key_len,
                             int shard, const char *id, size_t id_len,
                             cp_redis_cb *cb, void *pd)
{
    const char *dkey = shard_key(app, shard);
    const char *argv[] = {
        "EVALSHA", cp_redis_script_sha(app->redis, CP_SCRIPT_REINDEX),
        "2",       key,
        dkey,      id};
    size_t lens[] = {7, 40, 1, key_len, strlen(dkey), id_len};
    return cp_redis_cmd(app->redis, cb, pd, 6, argv, lens);
}

static void reindex(cp_app_t *app, cp_cust_t *c)
{
    int shard = due_shard(app, c);
    if (shard < 0)
        return;
    if (send_reindex(app, c->keys.key, c->keys.key_len, shard, c->id, c->id_len,
                     on_reindexed, c) == CP_OK)
        app->batch.pending++;
    else
        app->batch.redis_failed = 1;
    drop_moved(app, c);
}

/* A sweep's customer: its evaluations due by the sweep's "now". Returns 1
 * when it needs a write. Otherwise its index entry was stale (an event
 * moved dd since, or a sweep's outbox mark) and is put right: now, or
 * after the clear when an outbox is left to produce. */
static int sweep_customer(cp_app_t *app, cp_cust_t *c)
{
    c->macc = NULL;
    c->more = 0;
    int own = due_shard(app, c);
    if (own >= 0 && own != app->parts[c->sweep_part].partition) {
        /* Found in another shard than its own (the orders topic gained
         * partitions): moved there, evaluated by that shard's owner. */
        c->phase = CP_CUST_DONE;
        app->stats.due_stale++;
        reindex(app, c);
        return 0;
    }
    if (c->stored.due_ms <= app->batch.sweep_now)
        metrics_begin(app, c, cp_tz_day(app->tz, c->stored.due_ms));
    if (catch_up(app, c, app->batch.sweep_now, DUE_STEPS_MAX) > 0) {
        if (c->stored.due_ms <= app->batch.sweep_now)
            app->batch.sweep_full |= 1; /* further behind: another sweep */
        return 1;
    }
    c->phase = CP_CUST_DONE;
    app->stats.due_stale++;
    if (!c->stored.outbox_len)
        reindex(app, c);
    return 0;
}

/* A sweep found a customer whose state cannot be read (logged): it is
 * looked at again a day later instead of at every sweep. */
static void defer_unreadable(cp_app_t *app, cp_cust_t *c)
{
    const char *found = shard_key(app, app->parts[c->sweep_part].partition);
    char score[24];
    int n = snprintf(score, sizeof(score), "%" PRId64,
                     app->batch.sweep_now + UNREADABLE_RETRY_MS);
    const char *argv[] = {"ZADD", found, "XX", score, c->id};
    size_t lens[] = {4, strlen(found), 2, (size_t)n, c->id_len};
    cp_redis_cmd(app->redis, on_ignored, NULL, 5, argv, lens);
    c->phase = CP_CUST_DONE;
}

/* Every live message's partition holds an epoch (its acquisition may have
 * failed with the connection, or been refused). */
static int epochs_held(const cp_app_t *app)
{
    const cp_batch_t *b = &app->batch;
    for (int i = 0; i < b->n_msgs; i++) {
        const cp_bmsg_t *m = &b->msgs[i];
        if (!m->ignored && m->reject == CP_REJECT_NONE &&
            b->custs[m->cust].phase == CP_CUST_READ &&
            app->parts[m->part].epoch == 0)
            return 0;
    }
    for (int i = 0; i < b->n_custs; i++)
        if (b->custs[i].sweep_part >= 0 && b->custs[i].phase == CP_CUST_READ &&
            app->parts[b->custs[i].sweep_part].epoch == 0)
            return 0;
    return 1;
}

static void apply_and_write(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    if (!epochs_held(app)) {
        b->retry_later = 1;
        next_round(app);
        return;
    }
    b->phase = CP_BATCH_WRITE;
    b->round_fenced = 0;
    b->round_accepted = 0;
    b->pending = 1; /* guard while sending */
    for (int i = 0; i < b->n_custs; i++) {
        cp_cust_t *c = &b->custs[i];
        if (c->phase != CP_CUST_READ)
            continue;
        if (c->unreadable) {
            if (c->sweep_part >= 0)
                defer_unreadable(app, c);
            else
                reject_customer(app, c);
            continue;
        }
        if (c->sweep_part >= 0 && app->parts[c->sweep_part].fenced) {
            c->phase = CP_CUST_DONE; /* the shard has a new owner */
            continue;
        }
        cp_pop_t delta = {0, 0, 0, 0};
        if (c->sweep_part >= 0) {
            if (!sweep_customer(app, c))
                continue;
        } else if (!apply_customer(app, c, &delta)) {
            c->phase = CP_CUST_DONE; /* nothing new; outbox may remain */
            continue;
        }
        write_customer(app, c, &delta);
    }
    if (b->pending > 1 && app->cfg->redis_wait_replicas > 0)
        send_wait(app); /* covers this round's writes, same round trip */
    if (b->pending > 1)
        app->stats.redis_round_trips++;
    write_reply_done(app);
}

/* ---- PRODUCE ------------------------------------------------------------- */

static int count_outbox_lines(const cp_stored_t *s)
{
    int n = 0;
    for (size_t i = 0; i < s->outbox_len; i++)
        n += s->outbox[i] == '\n';
    return n;
}

static void add_outbox_recs(cp_app_t *app, int ci)
{
    cp_batch_t *b = &app->batch;
    cp_stored_t *s = &b->custs[ci].stored;
    const char *p = s->outbox, *end = s->outbox + s->outbox_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        /* A churn record of an outbox written while topic.churn was set
         * is dropped once it is empty (warnings turned off): the clear
         * removes it with the rest. */
        const char *topic = p[0] == CP_OUTBOX_SEGMENTS
                                ? app->cfg->topic_segments
                            : p[0] == CP_OUTBOX_CHURN ? app->cfg->topic_churn
                                                      : "";
        if (nl - p > 2 && p[1] == '\t' && topic[0]) {
            cp_rec_t *rec = &b->recs[b->n_recs++];
            memset(rec, 0, sizeof(*rec));
            rec->topic = topic;
            rec->key = b->custs[ci].id;
            rec->key_len = b->custs[ci].id_len;
            rec->value = p + 2;
            rec->value_len = (size_t)(nl - p - 2);
            rec->msg = -1;
            rec->cust = ci;
        }
        p = nl + 1;
    }
}

/* A customer's outbox is produced by this batch unless the customer is
 * unreadable or every message of it belongs to a fenced partition (the
 * new owner re-drives the outbox at its read). */
static int owns_outbox(const cp_app_t *app, const cp_cust_t *c)
{
    const cp_batch_t *b = &app->batch;
    if (c->unreadable)
        return 0;
    if (c->sweep_part >= 0)
        return !app->parts[c->sweep_part].fenced;
    for (int k = 0; k < c->n_msgs; k++)
        if (!b->msgs[c->msgs[k]].ignored)
            return 1;
    return 0;
}

static void build_records(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    int n = 0;
    for (int i = 0; i < b->n_msgs; i++)
        n += b->msgs[i].reject != CP_REJECT_NONE;
    for (int i = 0; i < b->n_custs; i++)
        if (owns_outbox(app, &b->custs[i]))
            n += count_outbox_lines(&b->custs[i].stored);
    b->recs =
        n ? cp_arena_alloc(&b->arena, sizeof(cp_rec_t) * (size_t)n) : NULL;
    if (n && !b->recs)
        oom();
    b->n_recs = 0;
    for (int i = 0; i < b->n_msgs; i++) {
        cp_bmsg_t *m = &b->msgs[i];
        if (m->reject == CP_REJECT_NONE)
            continue;
        cp_rec_t *rec = &b->recs[b->n_recs++];
        memset(rec, 0, sizeof(*rec));
        rec->topic = app->cfg->topic_dlq;
        rec->key = m->rkm->key;
        rec->key_len = m->rkm->key_len;
        rec->value = m->rkm->payload;
        rec->value_len = m->rkm->len;
        rec->msg = i;
        rec->cust = -1;
    }
    for (int i = 0; i < b->n_custs; i++)
        if (owns_outbox(app, &b->custs[i]))
            add_outbox_recs(app, i);
}

static rd_kafka_headers_t *dlq_headers(const cp_bmsg_t *m, const cp_rec_t *rec)
{
    rd_kafka_headers_t *orig = NULL, *h;
    if (rd_kafka_message_headers(m->rkm, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
        h = rd_kafka_headers_copy(orig);
    else
        h = rd_kafka_headers_new(5);
    char part[16], off[24];
    snprintf(part, sizeof(part), "%d", (int)m->rkm->partition);
    snprintf(off, sizeof(off), "%" PRId64, m->rkm->offset);
    rd_kafka_header_add(h, "cp.error.class", -1, cp_reject_class(m->reject),
                        -1);
    rd_kafka_header_add(h, "cp.error.message", -1, m->reason, -1);
    rd_kafka_header_add(h, "cp.source.topic", -1,
                        rd_kafka_topic_name(m->rkm->rkt), -1);
    rd_kafka_header_add(h, "cp.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "cp.source.offset", -1, off, -1);
    if (rec->value_dropped) {
        char size[24];
        snprintf(size, sizeof(size), "%zu", m->rkm->len);
        rd_kafka_header_add(h, "cp.value.dropped", -1, size, -1);
    }
    return h;
}

/* Records a failed produce or delivery. A DLQ record too large for the
 * producer (an input up to the broker's limit can exceed librdkafka's
 * message.max.bytes) goes again without its value, with header
 * cp.value.dropped = the original size; anything else is retried, and
 * logged at the batch's 1st, 2nd, 4th, 8th ... failure. */
static void rec_failed(cp_app_t *app, cp_rec_t *rec, rd_kafka_resp_err_t err)
{
    rec->failures++;
    if (rec->msg >= 0 && !rec->value_dropped &&
        (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
         err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE)) {
        rec->value_dropped = 1;
        rec->value = NULL;
        rec->value_len = 0;
        cp_log(CP_LOG_WARN,
               "dead-letter record too large; sending it "
               "without its value",
               CP_LS("topic", rec->topic), CP_LEND);
        return;
    }
    /* One failed request fails every record in it: count per batch. */
    int n = ++app->batch.produce_failures;
    if ((n & (n - 1)) == 0)
        cp_log(CP_LOG_WARN, "produce failed; retrying",
               CP_LS("topic", rec->topic),
               CP_LS("error", rd_kafka_err2str(err)), CP_LI("failures", n),
               CP_LEND);
}

/* Produces rec; returns 0, or -1 when it must be retried later. */
static int produce_rec(cp_app_t *app, cp_rec_t *rec)
{
    rd_kafka_headers_t *h;
    if (cp_fp(CP_FP_PRODUCER_FATAL))
        rd_kafka_test_fatal_error(
            app->producer, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            "failpoint producer_fatal");
    if (rec->msg >= 0) {
        h = dlq_headers(&app->batch.msgs[rec->msg], rec);
    } else {
        h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "content-type", -1,
                            "application/cloudevents+json", -1);
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        app->producer, RD_KAFKA_V_TOPIC(rec->topic),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(rec->key, rec->key_len),
        RD_KAFKA_V_VALUE((void *)rec->value, rec->value_len),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(rec), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(h);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rec_failed(app, rec, err);
        return -1;
    }
    rec->delivered = -1; /* in flight */
    return 0;
}

/* Produces every record not delivered and not in flight. */
static void produce_pending(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    int stalled = 0;
    for (int i = 0; i < b->n_recs; i++) {
        cp_rec_t *rec = &b->recs[i];
        if (rec->delivered == 0 && !stalled && produce_rec(app, rec) != 0)
            stalled = 1;
    }
    if (stalled)
        cp__app_schedule_retry(app, 100);
}

static void go_produce(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    b->phase = CP_BATCH_PRODUCE;
    build_records(app);
    b->pending = b->n_recs;
    if (b->pending == 0) {
        cp_fp(CP_FP_AFTER_PRODUCE);
        go_clear(app);
        return;
    }
    produce_pending(app);
    cp_fp(CP_FP_AFTER_PRODUCE);
}

void cp__batch_delivered(cp_app_t *app, cp_rec_t *rec, rd_kafka_resp_err_t err)
{
    cp_batch_t *b = &app->batch;
    if (b->phase != CP_BATCH_PRODUCE)
        return;
    if (err) {
        /* Possibly persisted (e.g. __MSG_TIMED_OUT): producing again may
         * duplicate, and duplicates carry the same CloudEvent id. */
        rec_failed(app, rec, err);
        rec->delivered = 0;
        cp__app_schedule_retry(app, RETRY_MS);
        return;
    }
    rec->delivered = 1;
    if (rec->msg >= 0)
        app->stats.dlq++;
    else
        app->stats.outputs++;
    if (--b->pending == 0)
        go_clear(app);
}

/* ---- CLEAR -----------------------------------------------------------------
 *
 * Once its records are delivered, a customer's outbox is cleared by a
 * script sent without waiting for its reply: the batch stores its offsets
 * and ends, and the next batch's commands follow the clears on the same
 * connection, so Redis runs every clear before them (a batch waits for two
 * round trips, READ and WRITE). A clear whose outcome is lost (connection,
 * deadline, NOSCRIPT) is sent again before anything else once Redis is
 * back; the script is idempotent. Shutdown waits for the clears in flight.
 * An outbox whose clear never ran (a crash, the shutdown deadline) holds
 * delivered records: they are produced again, with the same CloudEvent
 * ids, at the customer's next read. */

typedef struct cp_pclear_s {
    cp_block_t blk; /* blk.cap: bytes of buf */
    struct cp_pclear_s *next;
    int sent;  /* in flight */
    int shard; /* >= 0: a sweep's customer, re-indexed from dd once
                  cleared (its write indexed it at the outbox mark) */
    int64_t seq;
    /* The hash once cleared, if this batch wrote it (v: the write's + 1):
     * cached when the clear answers with exactly that version. */
    int64_t img_v;
    size_t img_len; /* 0: none */
    size_t key_len, xkey_len, id_len;
    char buf[]; /* key, xkey, id (each NUL-terminated), then the image */
} cp_pclear_t;

static void send_clears(cp_app_t *app);

static const char *pc_key(const cp_pclear_t *pc)
{
    return pc->buf;
}

static const char *pc_xkey(const cp_pclear_t *pc)
{
    return pc->buf + pc->key_len + 1;
}

static const char *pc_id(const cp_pclear_t *pc)
{
    return pc->buf + pc->key_len + pc->xkey_len + 2;
}

/* c's hash once its clear ran, if nobody wrote it in between: img_new
 * with v one higher, into out (img_new.len + 24 bytes); returns the
 * length, 0 when the image has no v. */
static size_t image_cleared(const cp_cust_t *c, unsigned char *out)
{
    const cp_image_t *img = &c->img_new;
    size_t len = 0, pos = 0, fl, vl;
    const char *f, *v;
    int found = 0;
    while (cp_image_next(img, &pos, &f, &fl, &v, &vl) == 1) {
        if (fl == 1 && f[0] == 'v') {
            char nv[24];
            int n =
                snprintf(nv, sizeof(nv), "%" PRId64, c->stored.st.version + 2);
            len += cp_image_put_pair(out + len, "v", 1, nv, (size_t)n);
            found = 1;
        } else {
            len += cp_image_put_pair(out + len, f, fl, v, vl);
        }
    }
    return found ? len : 0;
}

static const unsigned char *pc_image(const cp_pclear_t *pc)
{
    return (const unsigned char *)pc->buf + pc->key_len + pc->xkey_len +
           pc->id_len + 3;
}

static void pclear_unlink(cp_app_t *app, cp_pclear_t *pc)
{
    cp_pclear_t **pp = &app->pclears;
    while (*pp && *pp != pc)
        pp = &(*pp)->next;
    if (*pp)
        *pp = pc->next;
    cp_blocks_put(&app->pclear_spare, pc);
}

static void pclear_done(cp_app_t *app, cp_pclear_t *pc)
{
    pclear_unlink(app, pc);
    if (!app->pclears)
        cp__app_clears_done(app);
}

/* The re-index after a sweep's clear answered: whatever the outcome, the
 * clear is done (an entry left at the mark is put right by the next sweep
 * that finds it). */
static void on_pclear_reindexed(cp_redis_t *r, redisReply *reply, void *pd)
{
    if (reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0)
        cp_redis_reload_scripts(r);
    pclear_done(cp_redis_opaque(r), pd);
}

static void on_cleared(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_pclear_t *pc = pd;
    cp_app_t *app = cp_redis_opaque(r);
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        /* The new version, or 0: already cleared, or a newer outbox. The
         * image is the hash only if the version is the one it predicts. */
        if (pc->img_len && reply->integer == pc->img_v) {
            cp_image_t img = {pc_image(pc), pc->img_len};
            (void)cp_cache_put(app->cache, pc_id(pc), pc->id_len, &img);
        }
        /* a sweep's customer: the outbox mark goes, dd again */
        if (pc->shard >= 0 &&
            send_reindex(app, pc_key(pc), pc->key_len, pc->shard, pc_id(pc),
                         pc->id_len, on_pclear_reindexed, pc) == CP_OK)
            return; /* done when it answers */
        pclear_done(app, pc);
        return;
    }
    pc->sent = 0;
    cp_cache_drop(app->cache, pc_id(pc), pc->id_len);
    if (reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        cp_redis_reload_scripts(r);
        send_clears(app); /* behind the SCRIPT LOAD */
    } else if (reply) {
        cp_log(CP_LOG_ERROR, "redis refused an outbox clear; retrying",
               CP_LS("error", reply->type == REDIS_REPLY_ERROR && reply->str
                                  ? reply->str
                                  : "unexpected reply type"),
               CP_LEND);
        cp__app_schedule_retry(app, RETRY_MS);
    }
    /* lost with the connection: sent again when it is back */
}

/* Sends every clear not in flight, ahead of what follows on the
 * connection. */
static void send_clears(cp_app_t *app)
{
    if (!cp_redis_ready(app->redis))
        return;
    for (cp_pclear_t *pc = app->pclears; pc; pc = pc->next) {
        if (pc->sent)
            continue;
        char seq[24];
        int n = snprintf(seq, sizeof(seq), "%" PRId64, pc->seq);
        const char *argv[] = {
            "EVALSHA",   cp_redis_script_sha(app->redis, CP_SCRIPT_CLEAR),
            "2",         pc_key(pc),
            pc_xkey(pc), seq};
        size_t lens[] = {7, 40, 1, pc->key_len, pc->xkey_len, (size_t)n};
        if (cp_redis_cmd(app->redis, on_cleared, pc, 6, argv, lens) != CP_OK)
            return;
        pc->sent = 1;
    }
}

static void add_clear(cp_app_t *app, const cp_cust_t *c)
{
    size_t kl = c->keys.key_len, xl = c->keys.xkey_len, il = c->id_len;
    size_t icap = c->cache_on_clear && c->img_new.p ? c->img_new.len + 24 : 0;
    cp_pclear_t *pc =
        cp_blocks_get(&app->pclear_spare, kl + xl + il + 3 + icap);
    if (!pc)
        oom();
    pc->sent = 0;
    pc->img_v = c->stored.st.version + 2;
    pc->img_len = 0;
    pc->shard = c->sweep_part >= 0 ? due_shard(app, c) : -1;
    pc->seq = c->stored.outbox_seq;
    pc->key_len = kl;
    pc->xkey_len = xl;
    pc->id_len = il;
    memcpy(pc->buf, c->keys.key, kl);
    pc->buf[kl] = '\0';
    memcpy(pc->buf + kl + 1, c->keys.xkey, xl);
    pc->buf[kl + 1 + xl] = '\0';
    memcpy(pc->buf + kl + xl + 2, c->id, il);
    pc->buf[kl + xl + 2 + il] = '\0';
    if (icap)
        pc->img_len =
            image_cleared(c, (unsigned char *)pc->buf + kl + xl + il + 3);
    /* Their order among themselves does not matter (a clear of an older
     * seq after a newer one answers 0); all go before any later command. */
    pc->next = app->pclears;
    app->pclears = pc;
}

static void go_clear(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    cp_fp(CP_FP_BEFORE_OUTBOX_CLEAR);
    for (int i = 0; i < b->n_custs; i++) {
        cp_cust_t *c = &b->custs[i];
        if (c->stored.outbox_len && owns_outbox(app, c))
            add_clear(app, c);
    }
    send_clears(app);
    finish(app);
}

int cp__batch_clears_pending(const cp_app_t *app)
{
    return app->pclears != NULL;
}

void cp__batch_clears_init(cp_app_t *app)
{
    /* up to 64 blocks (key, outbox key, id, image), room in 128 B steps */
    cp_blocks_init(&app->pclear_spare, sizeof(cp_pclear_t), 128, 64);
}

void cp__batch_clears_free(cp_app_t *app)
{
    while (app->pclears) {
        cp_pclear_t *pc = app->pclears;
        app->pclears = pc->next;
        free(pc);
    }
    cp_blocks_trim(&app->pclear_spare, 0);
}

/* ---- offsets ---------------------------------------------------------------
 */

static void store_offsets(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(4);
    for (int i = 0; i < b->n_msgs; i++) {
        rd_kafka_message_t *rkm = b->msgs[i].rkm;
        if (b->msgs[i].ignored)
            continue;
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
            list, rd_kafka_topic_name(rkm->rkt), rkm->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(
                list, rd_kafka_topic_name(rkm->rkt), rkm->partition);
        if (rkm->offset + 1 > tp->offset)
            tp->offset = rkm->offset + 1;
    }
    if (list->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(list);
        return;
    }
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(app->consumer, list);
    if (err)
        cp_log(CP_LOG_WARN, "offsets store failed",
               CP_LS("error", rd_kafka_err2str(err)), CP_LEND);
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &list->elems[i];
        if (tp->err) {
            /* Not assigned any more: the new owner consumes it again. */
            cp_log(CP_LOG_WARN, "offset not stored", CP_LS("topic", tp->topic),
                   CP_LI("partition", tp->partition),
                   CP_LS("error", rd_kafka_err2str(tp->err)), CP_LEND);
            continue;
        }
        for (int p = 0; p < app->n_parts; p++) {
            cp_part_t *part = &app->parts[p];
            if (part->partition == tp->partition &&
                strcmp(part->topic, tp->topic) == 0 && tp->offset > part->next)
                part->next = tp->offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
}

static void finish(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    cp_fp(CP_FP_BEFORE_COMMIT);
    if (b->n_msgs > 0)
        store_offsets(app);
    for (int i = 0; i < b->n_msgs; i++) {
        const cp_bmsg_t *m = &b->msgs[i];
        if (m->reject != CP_REJECT_NONE || m->ignored)
            continue;
        app->stats.events++;
        app->stats.applied += m->outcome == CP_OUTCOME_APPLIED;
        app->stats.skipped_redelivered += m->outcome == CP_OUTCOME_SKIPPED;
        app->stats.duplicates += m->outcome == CP_OUTCOME_DUPLICATE;
        if (m->in.ev.occurred_ms > app->clock_max_ms)
            app->clock_max_ms = m->in.ev.occurred_ms;
    }
    destroy_msgs(b);
    b->n_custs = 0;
    b->n_recs = 0;
    b->recs = NULL;
    cp_arena_reset(&b->arena);
    b->phase = CP_BATCH_IDLE;
    if (b->sweep) {
        b->sweep = 0;
        cp__app_sweep_done(app, b->sweep_full);
        return;
    }
    app->stats.batches++;
    cp__app_batch_done(app);
}

/* ---- SWEEP -----------------------------------------------------------------
 *
 * One ZRANGEBYSCORE per owned shard (the due index of each assigned
 * orders partition, docs/churn.md "Time-driven evaluation"), all in one
 * round trip; the entries due by the sweep's "now", oldest first, at most
 * due.sweep_batch over all shards, then the batch path from READ on. */

typedef struct cp_due_hit_s {
    const char *id; /* arena */
    size_t len;
    double score;
    int part; /* app->parts index of the shard's orders partition */
} cp_due_hit_t;

static int sweep_budget(const cp_app_t *app)
{
    int n = app->cfg->due_sweep_batch;
    return n < app->cfg->batch_size ? n : app->cfg->batch_size;
}

static int hit_cmp(const void *x, const void *y)
{
    const cp_due_hit_t *a = x, *b = y;
    if (a->score != b->score)
        return a->score < b->score ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->id, b->id, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static void add_hit(cp_app_t *app, const char *id, size_t len, double score,
                    int part)
{
    cp_batch_t *b = &app->batch;
    if (b->n_hits == b->cap_hits) {
        int cap = b->cap_hits ? b->cap_hits * 2 : 64;
        cp_due_hit_t *n = cp_arena_alloc(&b->arena, sizeof(*n) * (size_t)cap);
        if (!n)
            oom();
        if (b->n_hits)
            memcpy(n, b->hits, sizeof(*n) * (size_t)b->n_hits);
        b->hits = n;
        b->cap_hits = cap;
    }
    char *copy = cp_arena_alloc(&b->arena, len + 1);
    if (!copy)
        oom();
    memcpy(copy, id, len);
    copy[len] = '\0';
    b->hits[b->n_hits++] = (cp_due_hit_t){copy, len, score, part};
}

static void sweep_end(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    cp_arena_reset(&b->arena);
    b->hits = NULL;
    b->n_hits = b->cap_hits = 0;
    b->sweep = 0;
    b->phase = CP_BATCH_IDLE;
    cp__app_sweep_done(app, b->sweep_full);
}

static void scan_reply_done(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    if (--b->pending > 0)
        return;
    if (b->redis_failed || b->retry_later) {
        b->sweep_full = 4; /* failed: the sweep timer tries again */
        sweep_end(app);
        return;
    }
    int budget = sweep_budget(app);
    if (b->n_hits > budget)
        b->sweep_full |= 1;
    if (b->n_hits > 1)
        qsort(b->hits, (size_t)b->n_hits, sizeof(*b->hits), hit_cmp);
    for (int i = 0; i < b->n_hits && b->n_custs < budget; i++) {
        int ci = cust_find_or_add(app, b, b->hits[i].id, b->hits[i].len);
        if (ci < 0)
            oom();
        if (b->custs[ci].sweep_part < 0)
            b->custs[ci].sweep_part = b->hits[i].part;
    }
    if (b->n_custs == 0) {
        sweep_end(app);
        return;
    }
    app->stats.sweeps++;
    app->stats.sweep_customers += (uint64_t)b->n_custs;
    go_read(app);
}

static void on_scan(cp_redis_t *r, redisReply *reply, void *pd)
{
    cp_app_t *app = cp_redis_opaque(r);
    cp_batch_t *b = &app->batch;
    int part = (int)(intptr_t)pd;
    if (b->phase != CP_BATCH_SCAN)
        return;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        round_failed_reply(
            app, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL,
            "scan due index");
        scan_reply_done(app);
        return;
    }
    if ((int)(reply->elements / 2) >= sweep_budget(app))
        b->sweep_full |= 1;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *m = reply->element[i], *sc = reply->element[i + 1];
        char *end = NULL;
        double score = sc->type == REDIS_REPLY_STRING && sc->str
                           ? strtod(sc->str, &end)
                           : 0;
        if (m->type == REDIS_REPLY_STRING && m->len >= 1 &&
            m->len <= CP_ID_MAX && !memchr(m->str, '\0', (size_t)m->len) &&
            end && *end == '\0') {
            add_hit(app, m->str, (size_t)m->len, score, part);
            continue;
        }
        /* Not a customer id custpulse writes: it would come back at every
         * sweep. */
        cp_log(CP_LOG_WARN, "due index entry is not a customer id; removed",
               CP_LI("shard", app->parts[part].partition), CP_LEND);
        if (m->type == REDIS_REPLY_STRING) {
            const char *key = shard_key(app, app->parts[part].partition);
            const char *argv[] = {"ZREM", key, m->str};
            size_t lens[] = {4, strlen(key), (size_t)m->len};
            cp_redis_cmd(app->redis, on_ignored, NULL, 3, argv, lens);
        }
    }
    scan_reply_done(app);
}

void cp__batch_sweep(cp_app_t *app, int64_t now)
{
    cp_batch_t *b = &app->batch;
    batch_reset(b, 0, 1);
    b->sweep_now = now;
    b->sweep_full = 0;
    b->hits = NULL;
    b->n_hits = b->cap_hits = 0;
    b->phase = CP_BATCH_SCAN;
    b->pending = 1; /* guard */
    send_clears(app);
    char nowbuf[24], lim[16];
    int nlen = snprintf(nowbuf, sizeof(nowbuf), "%" PRId64, now);
    int llen = snprintf(lim, sizeof(lim), "%d", sweep_budget(app));
    for (int i = 0; i < app->n_parts; i++) {
        cp_part_t *part = &app->parts[i];
        if (!part->active || part->fenced || part->alarmed ||
            part->partition >= app->due_shards ||
            strcmp(part->topic, app->cfg->topic_orders) != 0)
            continue;
        if (part->checking || part->epoch == 0) {
            /* Not ready yet: this sweep goes on without the shard and
             * another comes soon. */
            if (!part->checking && !part->acquiring &&
                cp__app_acquire_epoch(app, i) != 0)
                b->redis_failed = 1;
            b->sweep_full |= 2;
            continue;
        }
        const char *key = shard_key(app, part->partition);
        const char *argv[] = {"ZRANGEBYSCORE", key,     "-inf", nowbuf,
                              "WITHSCORES",    "LIMIT", "0",    lim};
        size_t lens[] = {13, strlen(key), 4, (size_t)nlen,
                         10, 5,           1, (size_t)llen};
        send_or_fail(app, on_scan, (void *)(intptr_t)i, 8, argv, lens);
    }
    if (b->pending > 1)
        app->stats.redis_round_trips++;
    scan_reply_done(app);
}

/* ---- external events ------------------------------------------------------
 */

/* Resumes a batch waiting for Redis in the phase it was in. */
static void resume(cp_app_t *app)
{
    if (app->batch.wait_repl)
        go_repl(app);
    else
        go_read(app);
}

void cp__batch_redis_ready(cp_app_t *app)
{
    send_clears(app); /* before any command of the batch */
    if (app->batch.phase == CP_BATCH_WAIT)
        resume(app);
}

void cp__batch_retry(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    send_clears(app);
    if (b->phase == CP_BATCH_WAIT && cp_redis_ready(app->redis))
        resume(app);
    else if (b->phase == CP_BATCH_PRODUCE)
        produce_pending(app);
}

void cp__batch_drop_partitions(cp_app_t *app,
                               const rd_kafka_topic_partition_list_t *list)
{
    cp_batch_t *b = &app->batch;
    if (b->phase != CP_BATCH_IDLE)
        return; /* never: the consumer is polled only between batches */
    int kept = 0;
    for (int i = 0; i < b->n_msgs; i++) {
        rd_kafka_message_t *rkm = b->msgs[i].rkm;
        if (rd_kafka_topic_partition_list_find(
                list, rd_kafka_topic_name(rkm->rkt), rkm->partition))
            rd_kafka_message_destroy(rkm);
        else
            b->msgs[kept++].rkm = rkm;
    }
    b->n_msgs = kept;
}

void cp__batch_abandon(cp_app_t *app)
{
    cp_batch_t *b = &app->batch;
    if (b->phase == CP_BATCH_IDLE)
        return;
    cp_log(CP_LOG_WARN,
           "shutdown deadline: abandoning the batch in flight; "
           "its offsets are not committed and it will be "
           "consumed again",
           CP_LI("messages", b->n_msgs), CP_LEND);
    /* Late replies and delivery reports see a phase that is not theirs and
     * are ignored; records were produced with F_COPY. */
    b->phase = CP_BATCH_IDLE;
}
