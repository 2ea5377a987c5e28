/*
 * cploadgen.c - load generator for custpulse benchmarks (issue 7): writes a
 * realistic, seed-determined mix of order, browsing and support events to
 * the three input topics, or replays the CDNOW / Online Retail files as
 * order events.
 *
 *   cploadgen -b BOOTSTRAP [--customers N] [--events M] [--seed S]
 *             [--start YYYY-MM-DD] [--days D] [--rate EPS]
 *             [--dup-ratio R] [--bad-ratio R] [--id-prefix P]
 *             [--topic-orders T] [--topic-browsing T] [--topic-support T]
 *             [--print]
 *             [--stats-every SECONDS] [-X key=value]...
 *   cploadgen -b BOOTSTRAP --cdnow PATH [--by-date] ...
 *   cploadgen -b BOOTSTRAP --online-retail PATH ...
 *
 * The synthetic stream (docs/performance.md, "Load generator"):
 *   - customers "lg-<n>", n in 0..N-1 zero-padded to 7 digits; the customer
 *     of each event is drawn from Zipf(s = 1.1) over the N ranks by inverse
 *     CDF: a table of N cumulative doubles (8 MB for 1M) and a binary
 *     search. Rank r is customer r: the low ids are the busy ones.
 *   - topic mix orders : browsing : support = 1 : 10 : 0.3.
 *   - event i of M occurs at start + i * days / M plus 0-59 s of jitter, so
 *     event time rises through [start, start + days).
 *   - order.placed amounts are log-normal with CDNOW's median 26 USD and
 *     mean 36 USD (mu = ln 26, sigma = sqrt(2 ln(36/26)) = 0.807); 3 % of
 *     orders refund and 2 % cancel the customer's last placed order when it
 *     remembers one (one per customer: O(N) memory, nothing per order).
 *   - M counts generated events. Each is malformed with probability
 *     --bad-ratio (invalid JSON, missing customer_id, negative amount or
 *     unknown type, in equal shares); each valid one is sent a second time
 *     (same bytes, same event_id) with probability --dup-ratio. Records
 *     sent = M + duplicates.
 *   - event, order and ticket ids are "lg-e-<i>", "lg-o-<n>", "lg-t-<n>";
 *     --id-prefix replaces "lg-" in them (not in customer ids), so a second
 *     run for the same customers (bench/cpbench.py's steady phase after its
 *     backlog) does not repeat the first run's ids, which custpulse would
 *     take for duplicates.
 * The PRNG is xoshiro256** seeded through splitmix64, so the same arguments
 * give byte-identical streams (--print shows them: one line per record,
 * "<topic>\t<key>\t<json>", an empty key for a null one).
 *
 * Replays produce only to the orders topic, in file order (--by-date: date
 * order, stable), with the event format of tests/data/cdnow_events.py and
 * tests/data/online_retail_events.py (orders stream), byte for byte.
 *
 * Progress and the summary are JSON lines on stderr (common/log.h).
 * Exit codes: 0 ok, 1 a Kafka or delivery failure, 2 usage or bad input,
 * 130 interrupted (what was queued is still flushed).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <zlib.h>

#include "log.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };
enum { T_ORDERS, T_BROWSING, T_SUPPORT, T_COUNT };
enum { BAD_JSON, BAD_NO_CUSTOMER, BAD_NEG_AMOUNT, BAD_TYPE, BAD_COUNT };

#define EV_MAX 1024
#define ZIPF_S 1.1
#define ORDER_MU 3.258096538021482 /* ln 26 */
#define ORDER_SIGMA 0.8067
#define CART_MU 2.70805020110221 /* ln 15 */
#define CART_SIGMA 0.7
#define SHARE_REFUND 0.03
#define SHARE_CANCEL 0.02

static const char *const bad_names[BAD_COUNT] = {
    "invalid_json", "missing_customer_id", "negative_amount", "unknown_type"};
static const char *const topic_keys[T_COUNT] = {"orders", "browsing",
                                                "support"};

typedef struct opts_s {
    const char *bootstrap;
    const char *topics[T_COUNT];
    const char *cdnow;
    const char *online_retail;
    const char *id_prefix; /* of event, order and ticket ids ("lg-") */
    const char *xconf[32];
    size_t xconf_cnt;
    uint64_t customers, events, seed;
    int64_t start; /* epoch seconds, UTC midnight */
    int64_t days;
    double rate, dup_ratio, bad_ratio, stats_every;
    int print, by_date;
} opts_t;

static volatile sig_atomic_t run = 1;

static void on_signal(int sig)
{
    (void)sig;
    run = 0;
}

/* An error as a log line (the message formatted like printf). */
static void errx(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cp_log(CP_LOG_ERROR, msg, CP_LS("program", "cploadgen"), CP_LEND);
}

/* Makes room for one more element of size esz in *v (n used of *cap);
 * -1 when out of memory (*v unchanged). */
static int vec_reserve(void **v, size_t *cap, size_t n, size_t esz)
{
    size_t ncap = *cap ? 2 * *cap : 4096;
    void *p;

    if (n < *cap)
        return 0;
    p = realloc(*v, ncap * esz);
    if (p == NULL)
        return -1;
    *v = p;
    *cap = ncap;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------
 * PRNG: xoshiro256** (Blackman and Vigna), seeded through splitmix64. Not
 * rand(): its sequence differs between C libraries.
 * ------------------------------------------------------------------------- */

typedef struct rng_s {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n); the modulo bias is below 2^-40 for the n used here. */
static uint64_t rng_below(rng_t *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* Standard normal (Box-Muller, one of the pair). */
static double rng_normal(rng_t *r)
{
    double u1 = 1.0 - rng_unit(r), u2 = rng_unit(r);

    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Log-normal money in cents, at least one cent. */
static uint64_t rng_cents(rng_t *r, double mu, double sigma)
{
    double v = exp(mu + sigma * rng_normal(r)) * 100.0;

    return v < 1.0 ? 1 : (uint64_t)llround(v);
}

/* ---------------------------------------------------------------------------
 * Zipf over ranks 0..n-1 by inverse CDF
 * ------------------------------------------------------------------------- */

/* cdf[k] = P(rank <= k) of Zipf(s); NULL when out of memory. */
static double *zipf_new(uint64_t n, double s)
{
    double *cdf = malloc(n * sizeof *cdf), sum = 0.0;

    if (cdf == NULL)
        return NULL;
    for (uint64_t k = 0; k < n; k++) {
        sum += pow((double)(k + 1), -s);
        cdf[k] = sum;
    }
    for (uint64_t k = 0; k < n; k++)
        cdf[k] /= sum;
    cdf[n - 1] = 1.0;
    return cdf;
}

/* The first rank whose cdf exceeds u (u in [0, 1)). */
static uint64_t zipf_sample(const double *cdf, uint64_t n, double u)
{
    uint64_t lo = 0, hi = n - 1;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---------------------------------------------------------------------------
 * Dates (proleptic Gregorian, UTC; H. Hinnant's civil algorithms)
 * ------------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* "YYYY-MM-DDThh:mm:ssZ" of epoch seconds t (0 <= t, year <= 9999). */
static void fmt_rfc3339(int64_t t, char out[32])
{
    int y, m, d;
    int64_t sod = t % 86400;

    civil_from_days(t / 86400, &y, &m, &d);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
}

/* Parses exactly "YYYY-MM-DD" into epoch seconds; -1 when invalid. */
static int parse_date(const char *s, int64_t *out)
{
    int y, m, d, n = 0, yy, mm, dd;

    if (sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
        s[10] != '\0' || y < 1970)
        return -1;
    *out = days_from_civil(y, m, d) * 86400;
    civil_from_days(*out / 86400, &yy, &mm, &dd);
    return yy == y && mm == m && dd == d ? 0 : -1;
}

/* ---------------------------------------------------------------------------
 * Sink: stdout (--print) or a librdkafka producer
 * ------------------------------------------------------------------------- */

typedef struct sink_s {
    rd_kafka_t *rk; /* NULL with --print */
    const opts_t *o;
    uint64_t records[T_COUNT];
    uint64_t failed; /* delivery failures (dr callback, rk's thread) */
    double t0, next_stats;
} sink_t;

/* Delivery report; runs inside rd_kafka_poll/flush on the main thread. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    sink_t *sk = opaque;

    (void)rk;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (sk->failed++ == 0)
        cp_log(CP_LOG_ERROR, "delivery failed",
               CP_LS("error", rd_kafka_err2str(msg->err)), CP_LEND);
}

/* librdkafka's own log lines, as JSON lines too; runs on its threads
 * (cp_log is thread-safe). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    (void)rk;
    cp_log(level <= 3   ? CP_LOG_ERROR
           : level <= 4 ? CP_LOG_WARN
                        : CP_LOG_INFO,
           buf, CP_LS("source", "librdkafka"), CP_LS("facility", fac), CP_LEND);
}

/* Sets key (its first klen bytes) to val; -1 after a message. */
static int conf_kv(rd_kafka_conf_t *conf, const char *key, size_t klen,
                   const char *val)
{
    char k[256], errstr[512];

    if (klen == 0 || klen >= sizeof k) {
        errx("bad librdkafka setting \"%s\"", key);
        return -1;
    }
    memcpy(k, key, klen);
    k[klen] = '\0';
    if (rd_kafka_conf_set(conf, k, val, errstr, sizeof errstr) ==
        RD_KAFKA_CONF_OK)
        return 0;
    errx("config %s: %s", k, errstr);
    return -1;
}

/* The producer: murmur2_random places keyed records as Java producers do;
 * linger.ms batches; idempotence keeps retries from duplicating (the only
 * duplicates are the ones we make). -X key=value settings win. */
static rd_kafka_t *producer_new(const opts_t *o, sink_t *sk)
{
    /* clang-format off */
    const char *const pairs[] = {
        "bootstrap.servers", o->bootstrap,
        "enable.idempotence", "true",
        "linger.ms", "20",
        "batch.num.messages", "10000",
        "compression.type", "lz4",
        "partitioner", "murmur2_random",
        "log.connection.close", "false",
        NULL};
    /* clang-format on */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char errstr[512];

    for (size_t i = 0; pairs[i]; i += 2)
        if (conf_kv(conf, pairs[i], strlen(pairs[i]), pairs[i + 1]))
            goto fail;
    for (size_t i = 0; i < o->xconf_cnt; i++) {
        const char *kv = o->xconf[i], *eq = strchr(kv, '=');
        if (conf_kv(conf, kv, eq ? (size_t)(eq - kv) : 0, eq ? eq + 1 : ""))
            goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, sk);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        errx("producer: %s", errstr);
        goto fail;
    }
    return rk; /* conf now owned by rk */
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static uint64_t sink_total(const sink_t *sk)
{
    return sk->records[T_ORDERS] + sk->records[T_BROWSING] +
           sk->records[T_SUPPORT];
}

static void sink_progress(sink_t *sk, double now)
{
    double el = now - sk->t0;
    uint64_t n = sink_total(sk);

    cp_log(CP_LOG_INFO, "progress", CP_LI("records", n), CP_LD("elapsed_s", el),
           CP_LD("records_per_s", el > 0 ? n / el : 0),
           CP_LI("pending", sk->rk ? rd_kafka_outq_len(sk->rk) : 0), CP_LEND);
    sk->next_stats = now + sk->o->stats_every;
}

/* Paces to --rate and logs progress; checked every 256 records. */
static void sink_tick(sink_t *sk)
{
    uint64_t n = sink_total(sk);
    double now;

    if (n % 256 != 0)
        return;
    now = now_s();
    if (sk->o->rate > 0) {
        double due = sk->t0 + (double)n / sk->o->rate;
        while (run && now < due) {
            double wait = due - now < 0.1 ? due - now : 0.1;
            if (sk->rk)
                rd_kafka_poll(sk->rk, (int)(wait * 1000) + 1);
            else
                nanosleep(&(struct timespec){0, (long)(wait * 1e9)}, NULL);
            now = now_s();
        }
    }
    if (sk->o->stats_every > 0 && now >= sk->next_stats)
        sink_progress(sk, now);
}

/* Sends one record (key NULL: a null key). 0, or -1 on a produce error. */
static int sink_emit(sink_t *sk, int topic, const char *key, const char *val,
                     size_t len)
{
    rd_kafka_resp_err_t err;

    sk->records[topic]++;
    if (sk->rk == NULL) {
        printf("%s\t%s\t%.*s\n", sk->o->topics[topic], key ? key : "", (int)len,
               val);
        sink_tick(sk);
        return 0;
    }
    for (;;) {
        err = rd_kafka_producev(sk->rk, RD_KAFKA_V_TOPIC(sk->o->topics[topic]),
                                RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                RD_KAFKA_V_VALUE((void *)val, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(sk->rk, 100); /* serve delivery reports: room */
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        errx("produce: %s", rd_kafka_err2str(err));
        return -1;
    }
    rd_kafka_poll(sk->rk, 0);
    sink_tick(sk);
    return 0;
}

/* Flushes the producer; EXIT_OK or EXIT_FAIL (failed deliveries or a fatal
 * producer error). */
static int sink_finish(sink_t *sk)
{
    char fatal[256];

    if (sk->rk == NULL)
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
    while (rd_kafka_outq_len(sk->rk) > 0)
        rd_kafka_flush(sk->rk, 1000);
    if (rd_kafka_fatal_error(sk->rk, fatal, sizeof(fatal))) {
        errx("fatal producer error: %s", fatal);
        return EXIT_FAIL;
    }
    return sk->failed ? EXIT_FAIL : EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * Event text
 * ------------------------------------------------------------------------- */

typedef struct ev_s {
    char json[EV_MAX];
    size_t len;
} ev_t;

/* Appends to ev->json; every event here is far below EV_MAX (checked). */
static void ev_add(ev_t *ev, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(ev->json + ev->len, EV_MAX - ev->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= EV_MAX - ev->len) {
        errx("event longer than %d bytes", EV_MAX);
        abort();
    }
    ev->len += (size_t)n;
}

/* ---------------------------------------------------------------------------
 * The synthetic generator
 * ------------------------------------------------------------------------- */

enum {
    O_PLACED,
    O_REFUNDED,
    O_CANCELLED,
    B_SESSION,
    B_PAGE,
    B_PRODUCT,
    B_SEARCH,
    B_CART_ADD,
    B_CART_ABANDON,
    S_OPENED,
    S_RESOLVED,
    S_COMPLAINT,
    S_SURVEY
};

static const char *const type_names[] = {
    "order.placed",   "order.refunded", "order.cancelled",  "session.started",
    "page.viewed",    "product.viewed", "search.performed", "cart.item_added",
    "cart.abandoned", "ticket.opened",  "ticket.resolved",  "complaint.filed",
    "survey.answered"};

static const char *const unknown_types[T_COUNT] = {
    "order.teleported", "page.teleported", "ticket.teleported"};

static const char *const queries[] = {"jazz",       "blues",        "box set",
                                      "live album", "soundtrack",   "vinyl",
                                      "classical",  "greatest hits"};

typedef struct gen_s {
    const opts_t *o;
    rng_t rng;
    double *zipf;
    /* Per customer: 1 + the serial of its last placed order not yet
     * refunded or cancelled (0: none) and that order's cents; 1 + its open
     * ticket's serial. O(N), nothing per order. */
    uint32_t *last_order, *last_cents, *open_ticket;
    uint32_t orders, tickets;
    uint64_t bad[BAD_COUNT], dups;
} gen_t;

static void gen_free(gen_t *g)
{
    free(g->zipf);
    free(g->last_order);
    free(g->last_cents);
    free(g->open_ticket);
}

static int gen_init(gen_t *g, const opts_t *o)
{
    memset(g, 0, sizeof *g);
    g->o = o;
    rng_seed(&g->rng, o->seed);
    g->zipf = zipf_new(o->customers, ZIPF_S);
    g->last_order = calloc(o->customers, sizeof *g->last_order);
    g->last_cents = calloc(o->customers, sizeof *g->last_cents);
    g->open_ticket = calloc(o->customers, sizeof *g->open_ticket);
    if (!g->zipf || !g->last_order || !g->last_cents || !g->open_ticket) {
        errx("out of memory for %" PRIu64 " customers", o->customers);
        gen_free(g);
        return -1;
    }
    return 0;
}

/* Picks the order type; a refund or cancel needs a remembered order. */
static int order_type(gen_t *g, uint64_t c)
{
    double u = rng_unit(&g->rng);

    if (g->last_order[c] == 0 || u >= SHARE_REFUND + SHARE_CANCEL)
        return O_PLACED;
    return u < SHARE_REFUND ? O_REFUNDED : O_CANCELLED;
}

/* Order fields. A malformed event changes no customer memory, as custpulse
 * will refuse it. */
static void order_fields(gen_t *g, uint64_t c, int type, int bad, ev_t *ev)
{
    uint64_t cents;
    uint32_t id;

    if (type == O_PLACED) {
        cents = rng_cents(&g->rng, ORDER_MU, ORDER_SIGMA);
        id = ++g->orders;
        if (bad < 0) {
            g->last_order[c] = id;
            g->last_cents[c] = (uint32_t)cents;
        }
    } else {
        id = g->last_order[c];
        cents = g->last_cents[c];
        if (type == O_REFUNDED && rng_unit(&g->rng) < 0.5)
            cents = 1 + rng_below(&g->rng, cents); /* partial refund */
        if (bad < 0)
            g->last_order[c] = 0;
    }
    ev_add(ev,
           ",\"order_id\":\"%so-%" PRIu32 "\",\"amount\":\"%s%" PRIu64
           ".%02u\",\"currency\":\"USD\"",
           g->o->id_prefix, id, bad == BAD_NEG_AMOUNT ? "-" : "", cents / 100,
           (unsigned)(cents % 100));
}

static int browsing_type(gen_t *g)
{
    static const double cum[] = {0.15, 0.50, 0.80, 0.90, 0.97};
    double u = rng_unit(&g->rng);
    int i = 0;

    while (i < 5 && u >= cum[i])
        i++;
    return B_SESSION + i;
}

/* Browsing fields; the session is the customer's day. */
static void browsing_fields(gen_t *g, uint64_t c, int64_t t, int type, ev_t *ev)
{
    uint64_t product = rng_below(&g->rng, 20000), cents;

    ev_add(ev, ",\"session_id\":\"lg-s-%" PRIu64 "-%" PRId64 "\"", c,
           t / 86400);
    switch (type) {
    case B_SESSION:
        ev_add(ev, ",\"channel\":\"%s\"",
               rng_below(&g->rng, 3) ? "web" : "app");
        break;
    case B_PAGE:
        ev_add(ev, ",\"url\":\"https://shop.example/c/%" PRIu64 "\"",
               product % 40);
        break;
    case B_SEARCH:
        ev_add(ev, ",\"query\":\"%s\"",
               queries[rng_below(&g->rng, sizeof queries / sizeof *queries)]);
        break;
    case B_PRODUCT:
    case B_CART_ADD:
        ev_add(ev, ",\"product_id\":\"lg-p-%" PRIu64 "\"", product);
        break;
    }
    /* an abandoned cart has a value; half the items added carry theirs */
    if (type == B_CART_ABANDON ||
        (type == B_CART_ADD && rng_below(&g->rng, 2))) {
        cents = rng_cents(&g->rng, CART_MU, CART_SIGMA);
        ev_add(ev, ",\"value\":\"%" PRIu64 ".%02u\",\"currency\":\"USD\"",
               cents / 100, (unsigned)(cents % 100));
    }
}

static int support_type(gen_t *g, uint64_t c)
{
    double u = rng_unit(&g->rng);

    if (u < 0.35)
        return S_OPENED;
    if (u < 0.65)
        return g->open_ticket[c] ? S_RESOLVED : S_OPENED;
    return u < 0.75 ? S_COMPLAINT : S_SURVEY;
}

static void support_fields(gen_t *g, uint64_t c, int type, int bad, ev_t *ev)
{
    int nps;

    switch (type) {
    case S_OPENED:
        ev_add(ev, ",\"ticket_id\":\"%st-%" PRIu32 "\"", g->o->id_prefix,
               ++g->tickets);
        if (bad < 0)
            g->open_ticket[c] = g->tickets;
        break;
    case S_RESOLVED:
        ev_add(ev,
               ",\"ticket_id\":\"%st-%" PRIu32
               "\",\"resolution_minutes\":%" PRIu64,
               g->o->id_prefix, g->open_ticket[c],
               5 + rng_below(&g->rng, 4320));
        if (bad < 0)
            g->open_ticket[c] = 0;
        break;
    case S_COMPLAINT:
        if (g->open_ticket[c])
            ev_add(ev, ",\"ticket_id\":\"%st-%" PRIu32 "\"", g->o->id_prefix,
                   g->open_ticket[c]);
        break;
    case S_SURVEY:
        nps = rng_below(&g->rng, 2) == 0;
        ev_add(ev, ",\"survey\":\"%s\",\"score\":%d", nps ? "nps" : "csat",
               nps ? (int)rng_below(&g->rng, 11)
                   : 1 + (int)rng_below(&g->rng, 5));
        break;
    }
}

/* Builds event i (0-based) into ev; returns its topic, sets *bad to its
 * malformation (BAD_*) or -1 and writes the key. */
static int gen_event(gen_t *g, uint64_t i, ev_t *ev, char key[16], int *bad)
{
    const opts_t *o = g->o;
    double u = rng_unit(&g->rng) * 11.3;
    int topic = u < 1.0 ? T_ORDERS : u < 11.0 ? T_BROWSING : T_SUPPORT;
    uint64_t c = zipf_sample(g->zipf, o->customers, rng_unit(&g->rng));
    int64_t span = o->days * 86400;
    int64_t t = (int64_t)((double)i * (double)span / (double)o->events) +
                (int64_t)rng_below(&g->rng, 60);
    char at[32];
    int type;

    *bad = rng_unit(&g->rng) < o->bad_ratio ? (int)rng_below(&g->rng, BAD_COUNT)
                                            : -1;
    if (*bad == BAD_NEG_AMOUNT)
        topic = T_ORDERS;
    if (t >= span)
        t = span - 1;
    fmt_rfc3339(o->start + t, at);
    snprintf(key, 16, "lg-%07" PRIu64, c);
    type = topic == T_ORDERS     ? order_type(g, c)
           : topic == T_BROWSING ? browsing_type(g)
                                 : support_type(g, c);
    ev->len = 0;
    ev_add(ev, "{\"event_id\":\"%se-%" PRIu64 "\",\"type\":\"%s\"",
           o->id_prefix, i + 1,
           *bad == BAD_TYPE ? unknown_types[topic] : type_names[type]);
    if (*bad != BAD_NO_CUSTOMER)
        ev_add(ev, ",\"customer_id\":\"%s\"", key);
    ev_add(ev, ",\"occurred_at\":\"%s\"", at);
    if (topic == T_ORDERS)
        order_fields(g, c, type, *bad, ev);
    else if (topic == T_BROWSING)
        browsing_fields(g, c, t, type, ev);
    else
        support_fields(g, c, type, *bad, ev);
    ev_add(ev, "}");
    if (*bad == BAD_JSON)
        ev->len /= 2; /* cut mid-object */
    return topic;
}

static int run_synthetic(const opts_t *o, sink_t *sk, gen_t *g)
{
    ev_t ev;
    char key[16];
    int bad, topic;

    for (uint64_t i = 0; i < o->events && run; i++) {
        topic = gen_event(g, i, &ev, key, &bad);
        if (bad >= 0)
            g->bad[bad]++;
        if (sink_emit(sk, topic, key, ev.json, ev.len))
            return EXIT_FAIL;
        if (bad < 0 && rng_unit(&g->rng) < o->dup_ratio) {
            g->dups++;
            if (sink_emit(sk, topic, key, ev.json, ev.len))
                return EXIT_FAIL;
        }
    }
    return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * Replays: order events read from a file, then produced in order
 * ------------------------------------------------------------------------- */

typedef struct rec_s {
    int64_t time; /* the sort key of --by-date (or of the file's mapping) */
    uint64_t seq; /* position in the file: the tie-break, keeps sorts stable */
    char *key;    /* NULL: a null key */
    char *json;
    size_t len;
} rec_t;

typedef struct recs_s {
    rec_t *v;
    size_t n, cap;
    uint64_t normalised; /* amounts rewritten to two decimals */
} recs_t;

static void recs_free(recs_t *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].key);
        free(rs->v[i].json);
    }
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}

/* Appends a record (copies key and ev); -1 when out of memory. */
static int recs_add(recs_t *rs, int64_t time, const char *key, const ev_t *ev)
{
    rec_t *r;

    if (vec_reserve((void **)&rs->v, &rs->cap, rs->n, sizeof *rs->v))
        return -1;
    r = &rs->v[rs->n];
    r->time = time;
    r->seq = rs->n;
    r->key = key ? strdup(key) : NULL;
    r->json = malloc(ev->len + 1);
    if ((key && r->key == NULL) || r->json == NULL) {
        free(r->key);
        free(r->json);
        return -1;
    }
    memcpy(r->json, ev->json, ev->len + 1);
    r->len = ev->len;
    rs->n++;
    return 0;
}

static int rec_cmp(const void *a, const void *b)
{
    const rec_t *x = a, *y = b;

    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int recs_produce(recs_t *rs, sink_t *sk)
{
    for (size_t i = 0; i < rs->n && run; i++)
        if (sink_emit(sk, T_ORDERS, rs->v[i].key, rs->v[i].json, rs->v[i].len))
            return EXIT_FAIL;
    return EXIT_OK;
}

/* Parses a non-negative decimal into hundredths, half-up past two
 * decimals; *exact says whether it had exactly two. -1 when not a number. */
static int parse_cents(const char *s, uint64_t *cents, int *exact)
{
    uint64_t whole = 0, frac = 0;
    int digits = 0, round_up = 0;
    const char *p = s;

    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p))
        whole = whole * 10 + (uint64_t)(*p++ - '0');
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return -1;
        for (; isdigit((unsigned char)*p); p++, digits++) {
            if (digits < 2)
                frac = frac * 10 + (uint64_t)(*p - '0');
            else if (digits == 2)
                round_up = *p >= '5';
        }
    }
    if (*p != '\0' || whole > 1000000000000000ULL)
        return -1;
    for (int k = digits; k < 2; k++)
        frac *= 10;
    *cents = whole * 100 + frac + (uint64_t)round_up;
    *exact = digits == 2;
    return 0;
}

/* One CDNOW purchase as tests/data/cdnow_events.py writes it. */
static int cdnow_line(recs_t *rs, uint64_t n, const char *cust,
                      const char *date, const char *value)
{
    ev_t ev = {.len = 0};
    uint64_t cents;
    int exact, y, m, d;

    if (strlen(date) != 8 || strspn(date, "0123456789") != 8 ||
        sscanf(date, "%4d%2d%2d", &y, &m, &d) != 3)
        return -1;
    if (strlen(cust) > 64 || parse_cents(value, &cents, &exact))
        return -1;
    rs->normalised += !exact;
    ev_add(&ev,
           "{\"event_id\":\"cdnow-%" PRIu64 "\",\"type\":\"order.placed\","
           "\"customer_id\":\"%s\",\"occurred_at\":\"%.4s-%.2s-%.2sT00:00:"
           "00Z\",\"order_id\":\"cdnow-o-%" PRIu64 "\",\"amount\":\"%" PRIu64
           ".%02u\",\"currency\":\"USD\"}",
           n, cust, date, date + 4, date + 6, n, cents / 100,
           (unsigned)(cents % 100));
    return recs_add(rs, days_from_civil(y, m, d), cust, &ev);
}

/* Reads the CDNOW master (id date cds value) or sample (id sample_id date
 * cds value) file; a first line that does not start with a digit is the
 * header. EXIT_OK or EXIT_USAGE (with a message). */
static int cdnow_read(const char *path, recs_t *rs)
{
    FILE *f = fopen(path, "r");
    char line[512], c[5][64];
    uint64_t lineno = 0, n = 0;
    int cols, bad = 0;

    if (f == NULL) {
        errx("%s: %s", path, strerror(errno));
        return EXIT_USAGE;
    }
    while (!bad && fgets(line, sizeof line, f)) {
        lineno++;
        cols = sscanf(line, "%63s %63s %63s %63s %63s", c[0], c[1], c[2], c[3],
                      c[4]);
        if (cols <= 0 || (lineno == 1 && !isdigit((unsigned char)c[0][0])))
            continue;
        n++;
        if (cols == 4)
            bad = cdnow_line(rs, n, c[0], c[1], c[3]);
        else if (cols == 5)
            bad = cdnow_line(rs, n, c[0], c[2], c[4]);
        else
            bad = -1;
    }
    fclose(f);
    if (bad) {
        errx("%s:%" PRIu64 ": not a CDNOW line (or out of memory)", path,
             lineno);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs(
        "usage: cploadgen -b BOOTSTRAP [options]   (or --print instead of -b)\n"
        "  --customers N        customers lg-0000000.. (1000000)\n"
        "  --events M           generated events (10000000)\n"
        "  --seed S             PRNG seed (1)\n"
        "  --start YYYY-MM-DD   first event day, UTC (2024-01-01)\n"
        "  --days D             days the events span (365)\n"
        "  --rate EPS           records per second, 0 = unpaced (0)\n"
        "  --dup-ratio R        share of events sent twice (0.001)\n"
        "  --bad-ratio R        share of malformed events (0.0005)\n"
        "  --id-prefix P        prefix of event, order and ticket ids (lg-)\n"
        "  --topic-orders T     (customer.orders)\n"
        "  --topic-browsing T   (customer.browsing)\n"
        "  --topic-support T    (customer.support)\n"
        "  --print              write topic<TAB>key<TAB>json lines to stdout\n"
        "  --stats-every S      progress line every S seconds, 0 = none (5)\n"
        "  --cdnow PATH         replay a CDNOW master/sample file (orders)\n"
        "  --online-retail PATH replay Online Retail invoices (orders)\n"
        "  --by-date            replay in date order (stable)\n"
        "  -X key=value         librdkafka producer setting\n",
        f);
}

enum {
    OPT_CUSTOMERS = 256,
    OPT_EVENTS,
    OPT_SEED,
    OPT_START,
    OPT_DAYS,
    OPT_RATE,
    OPT_DUP,
    OPT_BAD,
    OPT_T_ORDERS,
    OPT_T_BROWSING,
    OPT_T_SUPPORT,
    OPT_PRINT,
    OPT_STATS,
    OPT_CDNOW,
    OPT_RETAIL,
    OPT_BY_DATE,
    OPT_ID_PREFIX
};

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_dbl(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* The prefix goes into JSON strings unescaped: up to 32 plain characters. */
static int parse_id_prefix(const char *s, const char **out)
{
    size_t n = strlen(s);

    if (n > 32 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "abcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return -1;
    *out = s;
    return 0;
}

/* Applies one option; 0, or -1 for a bad value. */
static int opt_apply(opts_t *o, int c, const char *arg)
{
    uint64_t days;

    switch (c) {
    case 'b':
        o->bootstrap = arg;
        return 0;
    case 'X':
        if (o->xconf_cnt == sizeof o->xconf / sizeof *o->xconf)
            return -1;
        o->xconf[o->xconf_cnt++] = arg;
        return 0;
    case OPT_CUSTOMERS:
        return parse_u64(arg, 1, 9999999, &o->customers);
    case OPT_EVENTS:
        return parse_u64(arg, 0, UINT32_MAX, &o->events);
    case OPT_SEED:
        return parse_u64(arg, 0, UINT64_MAX, &o->seed);
    case OPT_START:
        return parse_date(arg, &o->start);
    case OPT_DAYS:
        if (parse_u64(arg, 1, 36500, &days))
            return -1;
        o->days = (int64_t)days;
        return 0;
    case OPT_RATE:
        return parse_dbl(arg, 0, 1e9, &o->rate);
    case OPT_DUP:
        return parse_dbl(arg, 0, 1, &o->dup_ratio);
    case OPT_BAD:
        return parse_dbl(arg, 0, 1, &o->bad_ratio);
    case OPT_STATS:
        return parse_dbl(arg, 0, 1e6, &o->stats_every);
    case OPT_T_ORDERS:
    case OPT_T_BROWSING:
    case OPT_T_SUPPORT:
        o->topics[c - OPT_T_ORDERS] = arg;
        return *arg ? 0 : -1;
    case OPT_CDNOW:
        o->cdnow = arg;
        return 0;
    case OPT_RETAIL:
        o->online_retail = arg;
        return 0;
    case OPT_PRINT:
        o->print = 1;
        return 0;
    case OPT_BY_DATE:
        o->by_date = 1;
        return 0;
    case OPT_ID_PREFIX:
        return parse_id_prefix(arg, &o->id_prefix);
    }
    return -1;
}

/* Fills o from argv; EXIT_OK, or EXIT_USAGE after a message. */
static int opts_parse(opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"bootstrap", required_argument, NULL, 'b'},
        {"customers", required_argument, NULL, OPT_CUSTOMERS},
        {"events", required_argument, NULL, OPT_EVENTS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"start", required_argument, NULL, OPT_START},
        {"days", required_argument, NULL, OPT_DAYS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"dup-ratio", required_argument, NULL, OPT_DUP},
        {"bad-ratio", required_argument, NULL, OPT_BAD},
        {"topic-orders", required_argument, NULL, OPT_T_ORDERS},
        {"topic-browsing", required_argument, NULL, OPT_T_BROWSING},
        {"topic-support", required_argument, NULL, OPT_T_SUPPORT},
        {"print", no_argument, NULL, OPT_PRINT},
        {"stats-every", required_argument, NULL, OPT_STATS},
        {"cdnow", required_argument, NULL, OPT_CDNOW},
        {"online-retail", required_argument, NULL, OPT_RETAIL},
        {"by-date", no_argument, NULL, OPT_BY_DATE},
        {"id-prefix", required_argument, NULL, OPT_ID_PREFIX},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;

    *o = (opts_t){
        .topics = {"customer.orders", "customer.browsing", "customer.support"},
        .id_prefix = "lg-",
        .customers = 1000000,
        .events = 10000000,
        .seed = 1,
        .days = 365,
        .dup_ratio = 0.001,
        .bad_ratio = 0.0005,
        .stats_every = 5};
    parse_date("2024-01-01", &o->start);
    while ((c = getopt_long(argc, argv, "b:X:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(EXIT_OK);
        }
        if (c == '?' || opt_apply(o, c, optarg)) {
            if (c != '?')
                errx("bad value for %s: \"%s\"", argv[optind - 2], optarg);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc || (!o->print && !o->bootstrap) ||
        (o->cdnow && o->online_retail)) {
        errx("needs -b BOOTSTRAP or --print, at most one replay file, no "
             "other arguments");
        usage(stderr);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The final line: counts per topic, duplicates, malformed by kind. */
static void summary(const sink_t *sk, const gen_t *g, int rc)
{
    double el = now_s() - sk->t0;
    uint64_t n = sink_total(sk), bad = 0;

    for (int k = 0; k < BAD_COUNT; k++)
        bad += g->bad[k];
    cp_log(rc == EXIT_OK ? CP_LOG_INFO : CP_LOG_ERROR, "summary",
           CP_LI("records", n), CP_LI(topic_keys[0], sk->records[0]),
           CP_LI(topic_keys[1], sk->records[1]),
           CP_LI(topic_keys[2], sk->records[2]), CP_LI("duplicates", g->dups),
           CP_LI("malformed", bad), CP_LI(bad_names[0], g->bad[0]),
           CP_LI(bad_names[1], g->bad[1]), CP_LI(bad_names[2], g->bad[2]),
           CP_LI(bad_names[3], g->bad[3]), CP_LD("elapsed_s", el),
           CP_LD("records_per_s", el > 0 ? n / el : 0),
           CP_LI("delivery_failures", sk->failed), CP_LB("interrupted", !run),
           CP_LI("exit", rc), CP_LEND);
}

static int online_retail_read(const char *path, recs_t *rs);

/* Reads the replay file, sorts it when asked and produces it. */
static int run_replay(const opts_t *o, sink_t *sk)
{
    recs_t rs = {0};
    int rc = o->cdnow ? cdnow_read(o->cdnow, &rs)
                      : online_retail_read(o->online_retail, &rs);

    if (rc == EXIT_OK && o->by_date)
        qsort(rs.v, rs.n, sizeof *rs.v, rec_cmp);
    if (rs.normalised)
        cp_log(CP_LOG_WARN, "amounts normalised to 2 decimals",
               CP_LI("count", rs.normalised), CP_LEND);
    if (rc == EXIT_OK)
        rc = recs_produce(&rs, sk);
    recs_free(&rs);
    return rc;
}

int main(int argc, char **argv)
{
    opts_t o;
    sink_t sk = {0};
    gen_t g = {0};
    int rc = opts_parse(&o, argc, argv), frc;

    if (rc != EXIT_OK)
        return rc;
    sk.o = &o;
    if (!o.print && (sk.rk = producer_new(&o, &sk)) == NULL)
        return EXIT_FAIL;
    if (!o.cdnow && !o.online_retail && gen_init(&g, &o)) {
        rc = EXIT_FAIL;
        goto done;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    sk.t0 = now_s();
    sk.next_stats = sk.t0 + o.stats_every;
    if (o.cdnow || o.online_retail)
        rc = run_replay(&o, &sk);
    else
        rc = run_synthetic(&o, &sk, &g);
    frc = sink_finish(&sk);
    if (rc == EXIT_OK)
        rc = frc;
    if (rc == EXIT_OK && !run)
        rc = EXIT_INTERRUPTED;
    summary(&sk, &g, rc);
done:
    gen_free(&g);
    if (sk.rk)
        rd_kafka_destroy(sk.rk);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Online Retail: invoices -> order events, as the orders stream of
 * tests/data/online_retail_events.py (its header comment has the rules)
 * ------------------------------------------------------------------------- */

#define OR_HEADER                                                              \
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"          \
    "CustomerID,Country"

typedef struct invoice_s {
    char no[16];
    char cust[24]; /* "c-<n>", "" for none */
    int64_t time;  /* earliest row, naive UK civil time as epoch seconds */
    int64_t milli; /* sum of quantity * price, in thousandths */
    uint64_t first;
} invoice_t;

typedef struct invoices_s {
    invoice_t *v;
    size_t n, cap;
    uint32_t *slot; /* open addressing: 1 + index into v, 0 empty */
    size_t nslot;
} invoices_t;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
    return h;
}

/* The slot of invoice no: its entry or the empty slot for it. */
static uint32_t *inv_slot(invoices_t *is, const char *no)
{
    size_t i = fnv1a(no) & (is->nslot - 1);

    while (is->slot[i] && strcmp(is->v[is->slot[i] - 1].no, no) != 0)
        i = (i + 1) & (is->nslot - 1);
    return &is->slot[i];
}

/* Keeps the table at most half full and v with room for one more. */
static int inv_grow(invoices_t *is)
{
    if (vec_reserve((void **)&is->v, &is->cap, is->n, sizeof *is->v))
        return -1;
    if (2 * (is->n + 1) <= is->nslot)
        return 0;
    free(is->slot);
    is->nslot = is->nslot ? 2 * is->nslot : 8192;
    is->slot = calloc(is->nslot, sizeof *is->slot);
    if (is->slot == NULL)
        return -1;
    for (size_t k = 0; k < is->n; k++)
        *inv_slot(is, is->v[k].no) = (uint32_t)(k + 1);
    return 0;
}

/* Splits a CSV line into at most max fields in place (quotes removed, ""
 * unescaped). Returns the field count. */
static int csv_split(char *line, char **f, int max)
{
    int n = 0;
    char *r = line, *w;

    while (n < max) {
        f[n++] = w = r;
        if (*r == '"') {
            for (r++; *r; r++) {
                if (*r == '"' && r[1] != '"')
                    break;
                *w++ = *r;
                r += *r == '"';
            }
            r += *r == '"';
        } else {
            while (*r && *r != ',')
                *w++ = *r++;
        }
        if (*r != ',') {
            *w = '\0';
            return n;
        }
        r++;
        *w = '\0';
    }
    return n + 1; /* too many */
}

/* "[-]digits[.up to 3 digits]" -> thousandths; -1 when not that. */
static int parse_milli(const char *s, int64_t *out)
{
    int neg = *s == '-', digits = 0;
    int64_t v = 0;

    s += neg;
    if (!isdigit((unsigned char)*s))
        return -1;
    while (isdigit((unsigned char)*s) && v < INT64_MAX / 100)
        v = v * 10 + (*s++ - '0');
    v *= 1000;
    if (*s == '.')
        for (s++; isdigit((unsigned char)*s) && digits < 3; s++, digits++)
            v += (*s - '0') * (digits == 0 ? 100 : digits == 1 ? 10 : 1);
    if (*s)
        return -1;
    *out = neg ? -v : v;
    return 0;
}

/* "17850.0" -> "c-17850"; "" -> "". -1 when not a positive integer. */
static int retail_customer(const char *s, char out[24])
{
    uint64_t v;
    char digits[21];
    size_t n = strspn(s, "0123456789");

    out[0] = '\0';
    if (*s == '\0')
        return 0;
    if (n == 0 || n > 19 ||
        (s[n] && (s[n] != '.' || s[n + 1] == '\0' ||
                  strspn(s + n + 1, "0") != strlen(s + n + 1))))
        return -1;
    memcpy(digits, s, n);
    digits[n] = '\0';
    v = strtoull(digits, NULL, 10);
    if (v == 0)
        return -1;
    snprintf(out, 24, "c-%" PRIu64, v);
    return 0;
}

/* Naive "YYYY-MM-DD HH:MM[:SS]" -> epoch seconds (no zone). */
static int parse_local(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec = 0;

    if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) < 5)
        return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return 0;
}

/* Epoch day of the last Sunday of a month with 31 days. */
static int64_t last_sunday(int y, int m)
{
    int64_t day = days_from_civil(y, m, 31);

    return day - (day + 4) % 7; /* 1970-01-01 was a Thursday */
}

/* UK civil time -> UTC: BST from 01:00 UTC on the last Sunday of March to
 * 01:00 UTC on the last Sunday of October. */
static int64_t uk_to_utc(int64_t local)
{
    int y, m, d;
    int64_t utc = local - 3600;

    civil_from_days(local / 86400, &y, &m, &d);
    return utc >= last_sunday(y, 3) * 86400 + 3600 &&
                   utc < last_sunday(y, 10) * 86400 + 3600
               ? utc
               : local;
}

/* Adds one data row (index i) to its invoice. -1 when malformed. */
static int retail_row(invoices_t *is, char *line, uint64_t i)
{
    char *f[9], cust[24];
    int64_t qty, price, time;
    uint32_t *slot;
    invoice_t *inv;

    if (csv_split(line, f, 9) != 8 || parse_milli(f[3], &qty) || qty % 1000 ||
        parse_milli(f[5], &price) || parse_local(f[4], &time) ||
        retail_customer(f[6], cust) || strlen(f[0]) == 0 ||
        strlen(f[0]) >= sizeof inv->no ||
        strspn(f[0], "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != strlen(f[0]))
        return -1;
    if (inv_grow(is))
        return -1;
    slot = inv_slot(is, f[0]);
    if (*slot == 0) {
        inv = &is->v[is->n++];
        *slot = (uint32_t)is->n;
        snprintf(inv->no, sizeof inv->no, "%s", f[0]);
        memcpy(inv->cust, cust, sizeof cust);
        inv->time = time;
        inv->milli = 0;
        inv->first = i;
    }
    inv = &is->v[*slot - 1];
    if (strcmp(inv->cust, cust) != 0)
        return -1;
    if (time < inv->time)
        inv->time = time;
    inv->milli += qty / 1000 * price;
    return 0;
}

/* The invoice's order event, if it has one (order_event in the script). */
static int retail_event(recs_t *rs, const invoice_t *inv)
{
    ev_t ev = {.len = 0};
    char at[32];
    int refund = inv->no[0] == 'C';
    int64_t m = refund ? -inv->milli : inv->milli;
    int64_t cents = (m >= 0 ? m + 5 : m - 5) / 10; /* half away from 0 */

    if (refund && inv->milli >= 0) {
        errx("C invoice %s has total >= 0", inv->no);
        return -1;
    }
    if (cents <= 0 && !refund)
        return 0;
    fmt_rfc3339(uk_to_utc(inv->time), at);
    ev_add(&ev, "{\"event_id\":\"or-%s\",\"type\":\"order.%s\"", inv->no,
           refund ? "refunded" : "placed");
    if (inv->cust[0])
        ev_add(&ev, ",\"customer_id\":\"%s\"", inv->cust);
    ev_add(&ev,
           ",\"occurred_at\":\"%s\",\"order_id\":\"%s\",\"amount\":\"%" PRId64
           ".%02d\",\"currency\":\"GBP\"}",
           at, inv->no, cents / 100, (int)(cents % 100));
    return recs_add(rs, inv->time, inv->cust[0] ? inv->cust : NULL, &ev);
}

static int inv_cmp(const void *a, const void *b)
{
    const invoice_t *x = a, *y = b;

    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Reads the CSV (gzipped or plain) into order records in event order:
 * invoice time, then first row. EXIT_OK or EXIT_USAGE. */
static int online_retail_read(const char *path, recs_t *rs)
{
    gzFile gz = gzopen(path, "rb");
    invoices_t is = {0};
    char line[4096];
    uint64_t i = 0;
    int rc = EXIT_OK;

    if (gz == NULL) {
        errx("%s: cannot open", path);
        return EXIT_USAGE;
    }
    if (!gzgets(gz, line, sizeof line) ||
        strncmp(line, OR_HEADER, strlen(OR_HEADER)) != 0) {
        errx("%s: unexpected header", path);
        rc = EXIT_USAGE;
    }
    while (rc == EXIT_OK && gzgets(gz, line, sizeof line)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        i++;
        if (retail_row(&is, line, i)) {
            errx("%s: data row %" PRIu64 ": malformed", path, i);
            rc = EXIT_USAGE;
        }
    }
    gzclose(gz);
    if (rc == EXIT_OK)
        qsort(is.v, is.n, sizeof *is.v, inv_cmp);
    for (size_t k = 0; rc == EXIT_OK && k < is.n; k++)
        if (retail_event(rs, &is.v[k]))
            rc = EXIT_USAGE;
    free(is.v);
    free(is.slot);
    return rc;
}
