/*
 * cptimes.c - the Kafka side of bench/cpbench.py (issue 7): record
 * timestamps and the cause of each output record, and high watermarks,
 * printed as tab-separated lines that a Python script reads quickly.
 *
 *   cptimes -b BOOTSTRAP --watermarks TOPIC...
 *       TOPIC<TAB>PARTITION<TAB>LOW<TAB>HIGH, one line per partition
 *   cptimes -b BOOTSTRAP [--cause] TOPIC[@START0,START1,...]...
 *       TOPIC<TAB>PARTITION<TAB>OFFSET<TAB>TIMESTAMP_MS
 *       [<TAB>CAUSE_TOPIC<TAB>CAUSE_PARTITION<TAB>CAUSE_OFFSET]
 *   cptimes --version
 *       the librdkafka version linked
 *
 * Records are read from START<p> of partition p (default: its low
 * watermark) up to the high watermark each partition had when cptimes
 * started, then it exits. --cause reads each value as a custpulse output
 * CloudEvent and adds its data.cause input record (topic, partition,
 * offset; "-" three times for a record without one: a time-caused change,
 * a metrics record, a value that is not such JSON). The legacy
 * per-partition consumer joins no group and commits nothing, so reading
 * leaves the topics and custpulse's group as they were.
 *
 * Errors are JSON lines on stderr (common/log.h). Exit codes: 0 ok, 1 a
 * Kafka failure or timeout, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "cp_time.h"
#include "log.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define MAX_TOPICS 16
#define MAX_PARTS 256
#define BATCH 10000

typedef struct part_s {
    const char *topic;
    rd_kafka_topic_t *rkt;
    int32_t partition;
    int64_t next, high; /* read [next, high) */
    int started;
} part_t;

typedef struct opts_s {
    const char *bootstrap;
    int watermarks, cause, timeout_ms;
    char *topics[MAX_TOPICS]; /* "name" or "name@o0,o1,..." (split here) */
    const char *starts[MAX_TOPICS];
    int ntopics;
} opts_t;

/* An error line (common/log.h) with the program's name and fields. */
#define ERR(msg, ...)                                                          \
    cp_log(CP_LOG_ERROR, msg, CP_LS("program", "cptimes"), __VA_ARGS__, CP_LEND)

static rd_kafka_t *consumer_new(const char *bootstrap)
{
    /* clang-format off */
    const char *const pairs[] = {
        "bootstrap.servers", bootstrap,
        "enable.partition.eof", "true",
        "log.connection.close", "false",
        "fetch.message.max.bytes", "4194304",
        "queued.min.messages", "200000",
        NULL};
    /* clang-format on */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char errstr[512];

    for (size_t i = 0; pairs[i]; i += 2)
        if (rd_kafka_conf_set(conf, pairs[i], pairs[i + 1], errstr,
                              sizeof errstr) != RD_KAFKA_CONF_OK) {
            ERR("config", CP_LS("key", pairs[i]), CP_LS("error", errstr));
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        ERR("rd_kafka_new", CP_LS("error", errstr));
        rd_kafka_conf_destroy(conf);
    }
    return rk; /* conf now owned by rk */
}

/* Partition count of topic (from the cluster's metadata); -1 when the
 * request failed or the topic is not there. */
static int partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t err;
    int n = -1;

    err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (err) {
        ERR("metadata", CP_LS("error", rd_kafka_err2str(err)));
        return -1;
    }
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err)
            n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (n < 0)
        ERR("topic does not exist", CP_LS("topic", topic));
    return n;
}

/* Start offset of partition p from "o0,o1,..." (NULL or too short: -1,
 * the low watermark). */
static int64_t start_of(const char *starts, int p)
{
    const char *s = starts;

    for (int i = 0; s && i < p; i++) {
        s = strchr(s, ',');
        if (s)
            s++;
    }
    return s && *s && *s != ',' ? strtoll(s, NULL, 10) : -1;
}

/* Fills parts with every partition of the topics (and their watermarks);
 * returns the count, or -1. */
static int parts_init(rd_kafka_t *rk, const opts_t *o, part_t *parts)
{
    int n = 0;

    for (int t = 0; t < o->ntopics; t++) {
        int np = partition_count(rk, o->topics[t], o->timeout_ms);
        if (np < 0 || n + np > MAX_PARTS) {
            if (np >= 0)
                ERR("too many partitions", CP_LI("max", MAX_PARTS));
            return -1;
        }
        for (int p = 0; p < np; p++, n++) {
            int64_t low, high, start = start_of(o->starts[t], p);
            rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                rk, o->topics[t], p, &low, &high, o->timeout_ms);
            if (err) {
                ERR("watermarks", CP_LS("topic", o->topics[t]),
                    CP_LI("partition", p),
                    CP_LS("error", rd_kafka_err2str(err)));
                return -1;
            }
            parts[n] = (part_t){.topic = o->topics[t],
                                .partition = p,
                                .next = start < low ? low : start,
                                .high = high};
            if (o->watermarks)
                printf("%s\t%d\t%" PRId64 "\t%" PRId64 "\n", o->topics[t], p,
                       low, high);
        }
    }
    return n;
}

/* Prints the cause columns of an output CloudEvent's value. */
static void print_cause(const rd_kafka_message_t *m)
{
    json_t *root = json_loadb(m->payload, m->len, 0, NULL);
    json_t *cause = json_object_get(json_object_get(root, "data"), "cause");
    const char *topic = json_string_value(json_object_get(cause, "topic"));
    json_t *p = json_object_get(cause, "partition");
    json_t *off = json_object_get(cause, "offset");

    if (topic && json_is_integer(p) && json_is_integer(off))
        printf("\t%s\t%" JSON_INTEGER_FORMAT "\t%" JSON_INTEGER_FORMAT, topic,
               json_integer_value(p), json_integer_value(off));
    else
        fputs("\t-\t-\t-", stdout);
    json_decref(root);
}

/* Handles one message of partition pt; returns 0, or -1 on an error. */
static int on_message(part_t *pt, const rd_kafka_message_t *m, int cause)
{
    rd_kafka_timestamp_type_t tstype;
    int64_t ts;

    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* Gaps (control records) can end a partition before high - 1. */
        if (m->offset >= pt->high)
            pt->next = pt->high;
        return 0;
    }
    if (m->err) {
        ERR("consume", CP_LS("topic", pt->topic),
            CP_LI("partition", pt->partition),
            CP_LS("error", rd_kafka_message_errstr(m)));
        return -1;
    }
    if (m->offset < pt->next || m->offset >= pt->high)
        return 0;
    ts = rd_kafka_message_timestamp(m, &tstype);
    printf("%s\t%d\t%" PRId64 "\t%" PRId64, pt->topic, pt->partition, m->offset,
           tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts);
    if (cause)
        print_cause(m);
    putchar('\n');
    pt->next = m->offset + 1;
    return 0;
}

/* Reads every partition from next to high through one queue. */
static int read_parts(rd_kafka_t *rk, part_t *parts, int n, const opts_t *o)
{
    static rd_kafka_message_t *msgs[BATCH];
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    int64_t deadline = cp_time_mono_ms() + o->timeout_ms;
    int rc = EXIT_OK, left = 0;

    for (int i = 0; i < n; i++) {
        parts[i].rkt = rd_kafka_topic_new(rk, parts[i].topic, NULL);
        if (parts[i].next >= parts[i].high)
            continue;
        if (rd_kafka_consume_start_queue(parts[i].rkt, parts[i].partition,
                                         parts[i].next, q) == -1) {
            ERR("consume_start", CP_LS("topic", parts[i].topic),
                CP_LI("partition", parts[i].partition),
                CP_LS("error", rd_kafka_err2str(rd_kafka_last_error())));
            rc = EXIT_FAIL;
            continue;
        }
        parts[i].started = 1;
        left++;
    }
    while (rc == EXIT_OK && left > 0) {
        ssize_t got = rd_kafka_consume_batch_queue(q, 200, msgs, BATCH);
        for (ssize_t k = 0; k < got; k++) {
            part_t *pt = NULL;
            for (int i = 0; i < n && !pt; i++)
                if (parts[i].rkt == msgs[k]->rkt &&
                    parts[i].partition == msgs[k]->partition)
                    pt = &parts[i];
            int was_open = pt && pt->next < pt->high;
            if (pt && rc == EXIT_OK && on_message(pt, msgs[k], o->cause))
                rc = EXIT_FAIL;
            left -= was_open && pt->next >= pt->high;
            rd_kafka_message_destroy(msgs[k]);
        }
        if (rc == EXIT_OK && left > 0 && cp_time_mono_ms() > deadline) {
            ERR("timeout", CP_LI("timeout_ms", o->timeout_ms),
                CP_LI("partitions_unread", left));
            rc = EXIT_FAIL;
        }
    }
    for (int i = 0; i < n; i++) {
        if (parts[i].started)
            rd_kafka_consume_stop(parts[i].rkt, parts[i].partition);
        rd_kafka_topic_destroy(parts[i].rkt);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

static void usage(FILE *f)
{
    fputs("usage: cptimes -b BOOTSTRAP --watermarks TOPIC...\n"
          "       cptimes -b BOOTSTRAP [--cause] [--timeout-ms N] "
          "TOPIC[@START0,START1,...]...\n"
          "       cptimes --version\n",
          f);
}

/* Fills o; EXIT_OK, or EXIT_USAGE after a message. */
static int opts_parse(opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"watermarks", no_argument, NULL, 'w'},
        {"cause", no_argument, NULL, 'c'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;

    *o = (opts_t){.timeout_ms = 120000};
    while ((c = getopt_long(argc, argv, "b:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->bootstrap = optarg;
            break;
        case 'w':
            o->watermarks = 1;
            break;
        case 'c':
            o->cause = 1;
            break;
        case 't':
            o->timeout_ms = atoi(optarg);
            break;
        case 'V':
            printf("librdkafka %s\n", rd_kafka_version_str());
            exit(EXIT_OK);
        case 'h':
            usage(stdout);
            exit(EXIT_OK);
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    for (; optind < argc && o->ntopics < MAX_TOPICS; optind++) {
        char *at = strchr(argv[optind], '@');
        if (at)
            *at = '\0';
        o->starts[o->ntopics] = at ? at + 1 : NULL;
        o->topics[o->ntopics++] = argv[optind];
    }
    if (!o->bootstrap || o->ntopics == 0 || optind < argc ||
        o->timeout_ms <= 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static part_t parts[MAX_PARTS];
    opts_t o;
    rd_kafka_t *rk;
    int rc = opts_parse(&o, argc, argv), n;

    if (rc != EXIT_OK)
        return rc;
    rk = consumer_new(o.bootstrap);
    if (rk == NULL)
        return EXIT_FAIL;
    n = parts_init(rk, &o, parts);
    if (n < 0)
        rc = EXIT_FAIL;
    else if (!o.watermarks)
        rc = read_parts(rk, parts, n, &o);
    if (fflush(stdout) != 0) {
        ERR("writing stdout", CP_LS("error", strerror(errno)));
        rc = EXIT_FAIL;
    }
    rd_kafka_destroy(rk);
    return rc;
}
