/*
 * kafka.h - librdkafka configuration and the blocking admin helpers.
 *
 * Configuration: custpulse's defaults per client, then the user's kafka.*
 * keys (kafka.consumer.* / kafka.producer.* for one client), then the
 * settings the guarantees depend on, which the user may not change.
 * The helpers that block (topic creation, watermark queries) run on libuv
 * worker threads, never on the loop thread.
 */
#ifndef CP_KAFKA_H
#define CP_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"
#include "cp_err.h"

typedef enum { CP_KAFKA_CONSUMER = 0, CP_KAFKA_PRODUCER = 1 } cp_kafka_role_t;

/* If kafka.bootstrap.servers is "embedded", starts librdkafka's mock
 * cluster (3 brokers) in-process and returns its handle (to destroy at
 * exit), writing the mock bootstrap list to *bootstraps. Otherwise returns
 * NULL with *bootstraps = NULL and no error. On failure returns NULL and
 * fills errstr with *bootstraps = NULL and *failed = 1. */
rd_kafka_t *cp_kafka_embedded_new(const cp_config_t *cfg,
                                  const char **bootstraps, int *failed,
                                  char *errstr, size_t errstr_size);

/* Creates the configured input and output topics in the embedded cluster
 * (the mock answers no CreateTopics in librdkafka 2.0.2). */
cp_err_t cp_kafka_embedded_topics(rd_kafka_t *embedded, const cp_config_t *cfg,
                                  char *errstr, size_t errstr_size);

/* A configuration for role; bootstraps overrides kafka.bootstrap.servers
 * when not NULL. Returns NULL and fills errstr on an invalid key/value. */
/* Where a partition without a committed offset starts: the user's
 * (consumer.)auto.offset.reset, default "earliest" (the position check at
 * assignment seeks there; docs/fault-tolerance.md, "Recreated input
 * topics"). */
const char *cp_kafka_reset_policy(const cp_config_t *cfg);

/* Arms CUSTPULSE_MOCK_FAULTS on the embedded cluster (test hook). */
cp_err_t cp_kafka_mock_faults_arm(rd_kafka_t *embedded, char *errstr,
                                  size_t errstr_size);

rd_kafka_conf_t *cp_kafka_conf_new(const cp_config_t *cfg, cp_kafka_role_t role,
                                   const char *bootstraps, char *errstr,
                                   size_t errstr_size);

/* Creates each missing topic (partitions and replication from cfg);
 * "already exists" counts as success. Blocks up to timeout_ms.
 * Thread: any; call it from a worker thread. */
cp_err_t cp_kafka_create_topics(rd_kafka_t *rk, const cp_config_t *cfg,
                                const char **topics, int n, int timeout_ms,
                                char *errstr, size_t errstr_size);

/* Fetches the metadata of each topic into rk's cache, so that its first
 * produce does not wait for a metadata refresh. Blocks up to timeout_ms
 * per topic; returns how many topics were found. Thread: worker. */
int cp_kafka_warm_metadata(rd_kafka_t *rk, const char **topics, int n,
                           int timeout_ms);

/* Partition count of topic from a metadata request for all topics (a
 * request naming the topic could auto-create it from a producer handle);
 * -1 when the topic is not listed or the request failed. Blocks up to
 * timeout_ms. Thread: worker. */
int cp_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms);

#endif
