/*
 * kafka.c - librdkafka configuration, embedded cluster, topic admin.
 */
#include "kafka.h"

#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Keys that only mean something to one client: passed to that one only,
 * so librdkafka does not warn about ignored properties on the other. */
static const char *consumer_only[] = {"group.",
                                      "auto.offset.reset",
                                      "enable.auto.commit",
                                      "auto.commit.interval.ms",
                                      "session.timeout.ms",
                                      "max.poll.interval.ms",
                                      "partition.assignment.strategy",
                                      "fetch.",
                                      "queued.",
                                      "isolation.level",
                                      "heartbeat.interval.ms",
                                      "enable.partition.eof",
                                      "check.crcs",
                                      "allow.auto.create.topics",
                                      "coordinator.query.interval.ms",
                                      NULL};
static const char *producer_only[] = {"linger.ms",
                                      "queue.buffering.",
                                      "batch.",
                                      "acks",
                                      "request.required.acks",
                                      "compression.",
                                      "message.timeout.ms",
                                      "delivery.timeout.ms",
                                      "enable.idempotence",
                                      "retries",
                                      "message.send.max.retries",
                                      "partitioner",
                                      "transactional.id",
                                      "sticky.partitioning.linger.ms",
                                      NULL};

static int has_prefix_in(const char *key, const char **list)
{
    for (int i = 0; list[i]; i++)
        if (strncmp(key, list[i], strlen(list[i])) == 0)
            return 1;
    return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    /* librdkafka logs every failed connection attempt at LOG_ERR (3); a
     * broker being down is retried and surfaced by error_cb, so warn. */
    cp_log_level_t l = level <= 2   ? CP_LOG_ERROR
                       : level <= 4 ? CP_LOG_WARN
                       : level <= 6 ? CP_LOG_INFO
                                    : CP_LOG_DEBUG;
    cp_log(l, "librdkafka", CP_LS("client", rd_kafka_name(rk)),
           CP_LS("facility", fac), CP_LS("detail", buf), CP_LEND);
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                    char *errstr, size_t errstr_size)
{
    char err[256];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
        /* librdkafka's message names the key; values can be secrets. */
        snprintf(errstr, errstr_size, "kafka.%s: %s", key, err);
        return -1;
    }
    return 0;
}

static int set_defaults(rd_kafka_conf_t *conf, cp_kafka_role_t role,
                        char *errstr, size_t errstr_size)
{
    static const char *consumer_defaults[][2] = {
        {"group.id", "custpulse"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        {"allow.auto.create.topics", "false"},
        {"topic.metadata.refresh.interval.ms", "10000"},
        {"queued.max.messages.kbytes", "16384"},
        {NULL, NULL}};
    static const char *producer_defaults[][2] = {
        {"linger.ms", "5"},
        {"partitioner", "murmur2_random"},
        {"topic.metadata.refresh.interval.ms", "10000"},
        {NULL, NULL}};
    const char *(*d)[2] =
        role == CP_KAFKA_CONSUMER ? consumer_defaults : producer_defaults;
    for (int i = 0; d[i][0]; i++)
        if (conf_set(conf, d[i][0], d[i][1], errstr, errstr_size) != 0)
            return -1;
    return 0;
}

/* Settings the delivery guarantees rest on (docs/contracts.md section 5). */
static int set_forced(const cp_config_t *cfg, rd_kafka_conf_t *conf,
                      cp_kafka_role_t role, char *errstr, size_t errstr_size)
{
    const char *key = role == CP_KAFKA_CONSUMER ? "enable.auto.offset.store"
                                                : "enable.idempotence";
    const char *want = role == CP_KAFKA_CONSUMER ? "false" : "true";
    const char *user = cp_config_kafka_get(cfg, key);
    if (user && strcmp(user, want) != 0) {
        snprintf(errstr, errstr_size,
                 "kafka.%s must be %s: custpulse stores offsets only after "
                 "their effects are durable",
                 key, want);
        return -1;
    }
    return conf_set(conf, key, want, errstr, errstr_size);
}

const char *cp_kafka_reset_policy(const cp_config_t *cfg)
{
    const char *v = cp_config_kafka_get(cfg, "consumer.auto.offset.reset");
    if (!v)
        v = cp_config_kafka_get(cfg, "auto.offset.reset");
    return v ? v : "earliest";
}

rd_kafka_conf_t *cp_kafka_conf_new(const cp_config_t *cfg, cp_kafka_role_t role,
                                   const char *bootstraps, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (set_defaults(conf, role, errstr, errstr_size) != 0)
        goto fail;
    const char *mine = role == CP_KAFKA_CONSUMER ? "consumer." : "producer.";
    const char *theirs = role == CP_KAFKA_CONSUMER ? "producer." : "consumer.";
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        const char *key = cfg->kafka[i].key;
        if (strncmp(key, theirs, strlen(theirs)) == 0)
            continue;
        if (strncmp(key, mine, strlen(mine)) == 0)
            key += strlen(mine);
        else if (has_prefix_in(key, role == CP_KAFKA_CONSUMER ? producer_only
                                                              : consumer_only))
            continue;
        if (bootstraps && strcmp(key, "bootstrap.servers") == 0)
            continue;
        if (conf_set(conf, key, cfg->kafka[i].value, errstr, errstr_size) != 0)
            goto fail;
    }
    if (bootstraps &&
        conf_set(conf, "bootstrap.servers", bootstraps, errstr, errstr_size))
        goto fail;
    if (set_forced(cfg, conf, role, errstr, errstr_size) != 0)
        goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *cp_kafka_embedded_new(const cp_config_t *cfg,
                                  const char **bootstraps, int *failed,
                                  char *errstr, size_t errstr_size)
{
    *bootstraps = NULL;
    *failed = 0;
    const char *bs = cp_config_kafka_get(cfg, "bootstrap.servers");
    if (!bs || strcmp(bs, "embedded") != 0)
        return NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    char err[256];
    /* test.mock.num.brokers makes this handle own a mock cluster. */
    if (rd_kafka_conf_set(conf, "test.mock.num.brokers", "3", err,
                          sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errstr_size, "embedded cluster: %s", err);
        *failed = 1;
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errstr_size, "embedded cluster: %s", err);
        *failed = 1;
        return NULL;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
    *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    cp_log(CP_LOG_WARN,
           "using the embedded mock Kafka cluster: data lives in this "
           "process only and the mock keeps about 5 MB per partition",
           CP_LS("bootstrap", *bootstraps), CP_LEND);
    return rk;
}

/* Test hook of the embedded cluster: CUSTPULSE_MOCK_FAULTS =
 * "<request>:<count>:<ERROR_NAME>[,...]" makes the next <count> requests
 * of that kind fail with that broker error (ERROR_NAME as librdkafka names
 * it without RD_KAFKA_RESP_ERR_, e.g. NOT_LEADER_FOR_PARTITION); request is
 * produce, fetch, commit or init_producer_id. Armed when the first batch
 * starts, so the test's own input producer is not hit. Fault tests only. */
cp_err_t cp_kafka_mock_faults_arm(rd_kafka_t *embedded, char *errstr,
                                  size_t errstr_size)
{
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(embedded);
    static const struct {
        const char *name;
        int16_t api_key;
    } apis[] = {
        {"produce", 0}, {"fetch", 1}, {"commit", 8}, {"init_producer_id", 22}};
    const char *v = getenv("CUSTPULSE_MOCK_FAULTS");
    if (!v || !*v)
        return CP_OK;
    const struct rd_kafka_err_desc *descs;
    size_t n_descs;
    rd_kafka_get_err_descs(&descs, &n_descs);
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", v);
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        char *c1 = strchr(item, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        int api = -1;
        long cnt = c2 ? strtol(c1 + 1, NULL, 10) : 0;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (c2) {
            *c1 = '\0';
            for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
                if (strcmp(apis[i].name, item) == 0)
                    api = apis[i].api_key;
            for (size_t i = 0; i < n_descs; i++)
                if (descs[i].name && descs[i].code > 0 &&
                    strcmp(descs[i].name, c2 + 1) == 0)
                    err = descs[i].code;
        }
        if (api < 0 || cnt < 1 || cnt > 1000 || !err) {
            snprintf(errstr, errstr_size,
                     "CUSTPULSE_MOCK_FAULTS: expected request:count:ERROR "
                     "items, got '%s'",
                     v);
            return CP_EINVAL;
        }
        rd_kafka_resp_err_t errs[1000];
        for (long i = 0; i < cnt; i++)
            errs[i] = err;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)api, (size_t)cnt,
                                                errs);
        cp_log(CP_LOG_WARN, "mock cluster fault armed", CP_LS("request", item),
               CP_LI("count", cnt), CP_LS("error", c2 + 1), CP_LEND);
    }
    return CP_OK;
}

cp_err_t cp_kafka_embedded_topics(rd_kafka_t *embedded, const cp_config_t *cfg,
                                  char *errstr, size_t errstr_size)
{
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(embedded);
    const char *topics[] = {cfg->topic_orders,  cfg->topic_segments,
                            cfg->topic_churn,   cfg->topic_metrics,
                            cfg->topic_dlq,     cfg->topic_browsing,
                            cfg->topic_support, cfg->topic_profile};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        if (!topics[i][0])
            continue; /* an input topic not consumed */
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, topics[i], cfg->topic_partitions, 1);
        if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            snprintf(errstr, errstr_size, "embedded topic %s: %s", topics[i],
                     rd_kafka_err2str(err));
            return CP_EKAFKA;
        }
    }
    return CP_OK;
}

/* True when the broker's metadata lists topic (and it has no error). */
static int topic_exists(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int exists = 0;
    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR)
        exists = md->topic_cnt == 1 && md->topics[0].err == 0 &&
                 md->topics[0].partition_cnt > 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return exists;
}

static int topic_result_ok(rd_kafka_t *rk, const rd_kafka_topic_result_t *tr,
                           char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(tr);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR ||
        err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        return 1;
    /* A principal without CREATE gets an authorization error even for a
     * topic that exists: then there is nothing to do. */
    if ((err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
         err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
         err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION) &&
        topic_exists(rk, rd_kafka_topic_result_name(tr), 5000))
        return 1;
    snprintf(errstr, errstr_size, "create topic %s: %s",
             rd_kafka_topic_result_name(tr),
             rd_kafka_topic_result_error_string(tr)
                 ? rd_kafka_topic_result_error_string(tr)
                 : rd_kafka_err2str(err));
    return 0;
}

cp_err_t cp_kafka_create_topics(rd_kafka_t *rk, const cp_config_t *cfg,
                                const char **topics, int n, int timeout_ms,
                                char *errstr, size_t errstr_size)
{
    rd_kafka_NewTopic_t *nt[8];
    char err[256];
    if (n > 8)
        return CP_EINVAL;
    for (int i = 0; i < n; i++)
        nt[i] = rd_kafka_NewTopic_new(topics[i], cfg->topic_partitions,
                                      cfg->topic_replication, err, sizeof(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, err,
                                              sizeof(err));
    rd_kafka_CreateTopics(rk, nt, (size_t)n, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    cp_err_t rc = CP_OK;
    if (!ev) {
        snprintf(errstr, errstr_size, "create topics: timed out");
        rc = CP_ETIMEDOUT;
    } else if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "create topics: %s",
                 rd_kafka_event_error_string(ev));
        rc = CP_EKAFKA;
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(
                rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++)
            if (!topic_result_ok(rk, res[i], errstr, errstr_size))
                rc = CP_EKAFKA;
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
    return rc;
}

int cp_kafka_warm_metadata(rd_kafka_t *rk, const char **topics, int n,
                           int timeout_ms)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (!rkt)
            continue;
        if (rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topic_cnt == 1 && md->topics[0].err == 0)
            ok++;
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    return ok;
}

int cp_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].err == 0 &&
            md->topics[i].partition_cnt > 0)
            n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}
