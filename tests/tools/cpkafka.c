/*
 * cpkafka.c - a small Kafka command-line tool for custpulse's tests and demo.
 *
 * kcat does most of this, but tests need more than it gives: exact bytes both
 * ways (binary keys, values and header values travel as base64 in JSON), an
 * idempotent batch produce that fails when any delivery fails, a consume that
 * drains every partition to the high watermark seen at start and then ends,
 * topic admin that waits until partitions have leaders, and a group's
 * committed offsets read without joining the group.
 *
 *   cpkafka produce      -b B -t T [--partitioner P] [-X k=v]...  < JSON lines
 *   cpkafka consume      -b B -t T [--timeout-ms N] [-X k=v]...   > JSON lines
 *   cpkafka create-topic -b B -t T -p N [-r N] [--config k=v]...
 *   cpkafka delete-topic -b B -t T
 *   cpkafka committed    -b B -g G -t T
 *
 * Input line (produce), every field optional:
 *   {"key": "text"|null, "key_b64": "...", "value": "text"|null,
 *    "value_b64": "...", "headers": [["name", "text"|null], ...],
 *    "headers_b64": [["name", "base64"|null], ...], "partition": n,
 *    "timestamp": epoch_ms}
 * An absent key or value is null. Unknown fields are an error.
 *
 * Output line (consume), ordered by partition, then offset:
 *   {"partition": p, "offset": o, "timestamp": ms,
 *    "key": "text"|null, "key_b64": "..."|null,
 *    "value": "text"|null, "value_b64": "..."|null,
 *    "headers": [{"name": "n", "value": "text"|null,
 *                 "value_b64": "..."|null}, ...]}
 * *_b64 is always the exact bytes (null only for a null key/value/header
 * value); the text field is set too when the bytes are valid UTF-8.
 *
 * Exit codes: 0 ok, 1 Kafka or delivery failure, 2 usage or bad input,
 * 3 the topic does not exist.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_NOTOPIC = 3 };

#define DEFAULT_TIMEOUT_MS 60000
#define ADMIN_POLL_MS 100

typedef struct opts_s {
    const char *cmd;
    const char *bootstrap;
    const char *topic;
    const char *group;
    const char *partitioner;
    int partitions;
    int replication;
    int timeout_ms;
    const char **xconf; /* "k=v" for librdkafka (-X) */
    size_t xconf_cnt;
    const char **tconf; /* "k=v" topic configs (--config) */
    size_t tconf_cnt;
} opts_t;

static void errx(const char *fmt, ...)
{
    va_list ap;
    fputs("cpkafka: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* rd_kafka_query_watermark_offsets, retried while the partition's leader
 * is settling (a topic just created or recreated, a broker just
 * restarted: metadata can name a leader before it serves the partition),
 * until timeout_ms. */
static rd_kafka_resp_err_t query_watermarks(rd_kafka_t *rk, const char *topic,
                                            int p, int64_t *low, int64_t *high,
                                            int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, topic, p, low, high, left > 0 ? (int)left : 1);
        int settling = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                       err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                       err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                       err == RD_KAFKA_RESP_ERR_NOT_COORDINATOR;
        if (!settling || now_ms() + 100 >= deadline)
            return err;
        usleep(100 * 1000);
    }
}

/* ---------------------------------------------------------------------------
 * Base64 (RFC 4648, standard alphabet, padded)
 * ------------------------------------------------------------------------- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Returns a malloc'ed NUL-terminated encoding of p[0..n), or NULL on
 * allocation failure. */
static char *b64_encode(const unsigned char *p, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1);
    char *o = out;
    size_t i;

    if (!out)
        return NULL;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64_chars[v >> 18 & 63];
        *o++ = b64_chars[v >> 12 & 63];
        *o++ = b64_chars[v >> 6 & 63];
        *o++ = b64_chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        *o++ = b64_chars[v >> 18 & 63];
        *o++ = b64_chars[v >> 12 & 63];
        *o++ = i + 1 < n ? b64_chars[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_chars, c) : NULL;
    return p ? (int)(p - b64_chars) : -1;
}

/* Decodes s[0..n) into a malloc'ed *out of *outlen bytes (never NULL on
 * success, even for zero bytes). Strict: length a multiple of 4, padding only
 * at the end. Returns 0, or -1 on malformed input or allocation failure. */
static int b64_decode(const char *s, size_t n, unsigned char **out,
                      size_t *outlen)
{
    unsigned char *buf;
    size_t i, o = 0, pad = 0;

    if (n % 4 != 0)
        return -1;
    if (n > 0 && s[n - 1] == '=')
        pad = n > 1 && s[n - 2] == '=' ? 2 : 1;
    buf = malloc(n / 4 * 3 + 1);
    if (!buf)
        return -1;
    for (i = 0; i < n; i += 4) {
        int v[4], k, last = i + 4 == n;
        uint32_t w = 0;
        for (k = 0; k < 4; k++) {
            v[k] = (last && k >= 4 - (int)pad) ? 0 : b64_value(s[i + k]);
            if (v[k] < 0) {
                free(buf);
                return -1;
            }
            w = w << 6 | (uint32_t)v[k];
        }
        buf[o++] = (unsigned char)(w >> 16);
        if (!last || pad < 2)
            buf[o++] = (unsigned char)(w >> 8);
        if (!last || pad < 1)
            buf[o++] = (unsigned char)w;
    }
    *out = buf;
    *outlen = o;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Clients and metadata
 * ------------------------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, key, val, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        errx("config %s: %s", key, errstr);
        return -1;
    }
    return 0;
}

static int conf_set_kv(rd_kafka_conf_t *conf, const char *kv)
{
    char key[256];
    const char *eq = strchr(kv, '=');

    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
        errx("-X expects key=value, got \"%s\"", kv);
        return -1;
    }
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    return conf_set(conf, key, eq + 1);
}

/* A config with the bootstrap servers, the NULL-terminated key/value list
 * `pairs`, then the user's -X settings (which win). NULL on error. */
static rd_kafka_conf_t *conf_new(const opts_t *o, const char *const *pairs)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    size_t i;

    if (conf_set(conf, "bootstrap.servers", o->bootstrap) ||
        conf_set(conf, "log.connection.close", "false"))
        goto fail;
    for (i = 0; pairs && pairs[i]; i += 2)
        if (conf_set(conf, pairs[i], pairs[i + 1]))
            goto fail;
    for (i = 0; i < o->xconf_cnt; i++)
        if (conf_set_kv(conf, o->xconf[i]))
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* Takes ownership of conf (also on failure). */
static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));

    if (!rk) {
        errx("rd_kafka_new: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

typedef struct topic_info_s {
    int exists;     /* listed by the broker without error */
    int partitions; /* partition count */
    int leaders;    /* partitions that have a leader */
} topic_info_t;

/* Asks the cluster (not librdkafka's cache) about one topic. Returns 0 with
 * *ti filled, -1 if the metadata request failed. */
static int topic_info(rd_kafka_t *rk, const char *topic, int timeout_ms,
                      topic_info_t *ti)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t err;
    int i, p;

    memset(ti, 0, sizeof(*ti));
    /* All topics: asking for one by name could auto-create it (on brokers
     * that allow it) and would create a topic handle we do not need. */
    err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (err) {
        errx("metadata: %s", rd_kafka_err2str(err));
        return -1;
    }
    for (i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[i];
        if (strcmp(mt->topic, topic) != 0)
            continue;
        ti->exists = mt->err == RD_KAFKA_RESP_ERR_NO_ERROR ||
                     mt->err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
        ti->partitions = mt->partition_cnt;
        for (p = 0; p < mt->partition_cnt; p++)
            if (mt->partitions[p].leader >= 0 && !mt->partitions[p].err)
                ti->leaders++;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* Partition count of an existing topic; -EXIT_NOTOPIC when it does not
 * exist, -EXIT_FAIL on error. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    topic_info_t ti;

    if (topic_info(rk, topic, timeout_ms, &ti))
        return -EXIT_FAIL;
    if (!ti.exists || ti.partitions == 0) {
        errx("topic %s does not exist", topic);
        return -EXIT_NOTOPIC;
    }
    return ti.partitions;
}

/* ---------------------------------------------------------------------------
 * produce
 * ------------------------------------------------------------------------- */

typedef struct bytes_s {
    const unsigned char *data; /* NULL: null */
    size_t len;
    unsigned char *owned; /* set when data was decoded into a new buffer */
} bytes_t;

typedef struct rec_s {
    bytes_t key;
    bytes_t value;
    rd_kafka_headers_t *hdrs; /* NULL when none */
    int32_t partition;
    int64_t timestamp;
} rec_t;

typedef struct dr_stats_s {
    long delivered;
    long failed;
} dr_stats_t;

static void bytes_free(bytes_t *b)
{
    free(b->owned);
    memset(b, 0, sizeof(*b));
}

/* Reads `name` (text) or `name`_b64 of obj into *b; both absent or null
 * leaves *b null. Returns 0, or -1 with a message in err. */
static int json_bytes(json_t *obj, const char *name, bytes_t *b, char *err,
                      size_t errsz)
{
    char b64name[64];
    json_t *txt = json_object_get(obj, name), *enc;
    size_t n;

    snprintf(b64name, sizeof(b64name), "%s_b64", name);
    enc = json_object_get(obj, b64name);
    memset(b, 0, sizeof(*b));
    if (json_is_null(txt))
        txt = NULL;
    if (json_is_null(enc))
        enc = NULL;
    if (txt && enc) {
        snprintf(err, errsz, "both %s and %s given", name, b64name);
        return -1;
    }
    if ((txt && !json_is_string(txt)) || (enc && !json_is_string(enc))) {
        snprintf(err, errsz, "%s must be a string or null",
                 txt ? name : b64name);
        return -1;
    }
    if (txt) {
        b->data = (const unsigned char *)json_string_value(txt);
        b->len = json_string_length(txt);
    } else if (enc) {
        if (b64_decode(json_string_value(enc), json_string_length(enc),
                       &b->owned, &n)) {
            snprintf(err, errsz, "%s is not valid base64", b64name);
            return -1;
        }
        b->data = b->owned;
        b->len = n;
    }
    return 0;
}

/* Appends [["name", value], ...] to *hdrs (created on first use); values are
 * text, or base64 when b64 is set. Returns 0 or -1 with err. */
static int json_headers(json_t *arr, int b64, rd_kafka_headers_t **hdrs,
                        char *err, size_t errsz)
{
    const char *field = b64 ? "headers_b64" : "headers";
    size_t i;
    json_t *h;

    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr)) {
        snprintf(err, errsz, "%s must be an array of [name, value]", field);
        return -1;
    }
    if (!*hdrs)
        *hdrs = rd_kafka_headers_new(json_array_size(arr));
    json_array_foreach(arr, i, h)
    {
        json_t *name = json_array_get(h, 0), *val = json_array_get(h, 1);
        unsigned char *dec = NULL;
        const void *v = NULL;
        size_t vlen = 0;

        if (!json_is_array(h) || json_array_size(h) != 2 ||
            !json_is_string(name) ||
            !(json_is_string(val) || json_is_null(val))) {
            snprintf(err, errsz, "%s[%zu] must be [name, string|null]", field,
                     i);
            return -1;
        }
        if (json_is_string(val) && !b64) {
            v = json_string_value(val);
            vlen = json_string_length(val);
        } else if (json_is_string(val)) {
            if (b64_decode(json_string_value(val), json_string_length(val),
                           &dec, &vlen)) {
                snprintf(err, errsz, "%s[%zu] value is not valid base64", field,
                         i);
                return -1;
            }
            v = dec;
        }
        rd_kafka_header_add(*hdrs, json_string_value(name), -1, v,
                            (ssize_t)vlen);
        free(dec);
    }
    return 0;
}

static const char *const rec_fields[] = {
    "key",         "key_b64",   "value",     "value_b64", "headers",
    "headers_b64", "partition", "timestamp", NULL};

static int rec_field_known(const char *k)
{
    int i;
    for (i = 0; rec_fields[i]; i++)
        if (strcmp(k, rec_fields[i]) == 0)
            return 1;
    return 0;
}

static void rec_free(rec_t *rec)
{
    bytes_free(&rec->key);
    bytes_free(&rec->value);
    if (rec->hdrs)
        rd_kafka_headers_destroy(rec->hdrs);
    rec->hdrs = NULL;
}

static int json_int_field(json_t *obj, const char *name, int64_t min,
                          int64_t *out, char *err, size_t errsz)
{
    json_t *v = json_object_get(obj, name);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min) {
        snprintf(err, errsz, "%s must be an integer >= %" PRId64, name, min);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* Fills *rec from one input object. The record borrows strings from obj, so
 * obj must outlive it. Returns 0 or -1 with err (rec then freed). */
static int rec_from_json(json_t *obj, rec_t *rec, char *err, size_t errsz)
{
    const char *k;
    json_t *v;
    int64_t part = RD_KAFKA_PARTITION_UA, ts = 0;

    memset(rec, 0, sizeof(*rec));
    if (!json_is_object(obj)) {
        snprintf(err, errsz, "not a JSON object");
        return -1;
    }
    json_object_foreach(obj, k, v)
    {
        if (!rec_field_known(k)) {
            snprintf(err, errsz, "unknown field \"%s\"", k);
            return -1;
        }
    }
    if (json_bytes(obj, "key", &rec->key, err, errsz) ||
        json_bytes(obj, "value", &rec->value, err, errsz) ||
        json_headers(json_object_get(obj, "headers"), 0, &rec->hdrs, err,
                     errsz) ||
        json_headers(json_object_get(obj, "headers_b64"), 1, &rec->hdrs, err,
                     errsz) ||
        json_int_field(obj, "partition", 0, &part, err, errsz) ||
        json_int_field(obj, "timestamp", 0, &ts, err, errsz)) {
        rec_free(rec);
        return -1;
    }
    if (part > INT32_MAX) {
        snprintf(err, errsz, "partition out of range");
        rec_free(rec);
        return -1;
    }
    rec->partition = (int32_t)part;
    rec->timestamp = ts;
    return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    dr_stats_t *st = opaque;

    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->delivered++;
        return;
    }
    if (st->failed++ < 10)
        errx("delivery failed (partition %" PRId32 "): %s", m->partition,
             rd_kafka_err2str(m->err));
}

/* Produces one record, waiting for queue space. Headers pass to librdkafka
 * on success (rec->hdrs is then NULLed). Returns 0 or -1. */
static int produce_one(rd_kafka_t *rk, const char *topic, rec_t *rec)
{
    rd_kafka_vu_t vu[7];
    size_t n = 0;
    rd_kafka_error_t *error;

    vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[n++].u.cstr = topic;
    vu[n].vtype = RD_KAFKA_VTYPE_KEY;
    vu[n].u.mem.ptr = (void *)rec->key.data;
    vu[n++].u.mem.size = rec->key.len;
    vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[n].u.mem.ptr = (void *)rec->value.data;
    vu[n++].u.mem.size = rec->value.len;
    vu[n].vtype = RD_KAFKA_VTYPE_PARTITION;
    vu[n++].u.i32 = rec->partition;
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
    vu[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    vu[n++].u.i64 = rec->timestamp;
    if (rec->hdrs) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
        vu[n++].u.headers = rec->hdrs;
    }
    for (;;) {
        error = rd_kafka_produceva(rk, vu, n);
        if (!error)
            break;
        if (rd_kafka_error_code(error) != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            errx("produce: %s", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            return -1;
        }
        rd_kafka_error_destroy(error);
        rd_kafka_poll(rk, 100); /* serve delivery reports to make room */
    }
    rec->hdrs = NULL; /* now owned by the message */
    return 0;
}

/* Reads stdin line by line and produces each record. Returns the number of
 * records queued, or -EXIT_USAGE / -EXIT_FAIL (records queued before the
 * failure are still delivered by the caller's flush). */
static long produce_stdin(rd_kafka_t *rk, const char *topic)
{
    char *line = NULL, err[256];
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, queued = 0, rc = 0;

    while (rc == 0 && (len = getline(&line, &cap, stdin)) != -1) {
        json_error_t jerr;
        json_t *obj;
        rec_t rec;

        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len)
            continue;
        obj = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &jerr);
        if (!obj) {
            errx("stdin line %ld: invalid JSON: %s", lineno, jerr.text);
            rc = -EXIT_USAGE;
        } else if (rec_from_json(obj, &rec, err, sizeof(err))) {
            errx("stdin line %ld: %s", lineno, err);
            rc = -EXIT_USAGE;
        } else {
            if (produce_one(rk, topic, &rec) == 0)
                queued++;
            else
                rc = -EXIT_FAIL;
            rec_free(&rec);
        }
        json_decref(obj);
        rd_kafka_poll(rk, 0);
    }
    if (rc == 0 && ferror(stdin)) {
        errx("reading stdin: %s", strerror(errno));
        rc = -EXIT_FAIL;
    }
    free(line);
    return rc ? rc : queued;
}

static int cmd_produce(const opts_t *o)
{
    /* Batching comes from linger.ms; message.timeout.ms bounds how long a
     * test waits on a broken broker (the default is 5 minutes). */
    /* clang-format off */
    const char *const pairs[] = {
        "enable.idempotence", "true",
        "linger.ms", "20",
        "batch.num.messages", "10000",
        "message.timeout.ms", "60000",
        "partitioner", o->partitioner ? o->partitioner : "murmur2_random",
        NULL};
    /* clang-format on */
    dr_stats_t st = {0, 0};
    rd_kafka_conf_t *conf = conf_new(o, pairs);
    rd_kafka_t *rk;
    long queued;
    int rc = EXIT_OK, nparts;
    char fatal[256];

    if (!conf)
        return EXIT_USAGE;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &st);
    rk = client_new(RD_KAFKA_PRODUCER, conf);
    conf = NULL; /* now owned by rk */
    if (!rk)
        return EXIT_FAIL;

    nparts = topic_partitions(rk, o->topic, o->timeout_ms);
    if (nparts < 0) {
        rd_kafka_destroy(rk);
        return -nparts;
    }
    queued = produce_stdin(rk, o->topic);
    if (queued < 0)
        rc = (int)-queued;
    while (rd_kafka_outq_len(rk) > 0)
        rd_kafka_flush(rk, 1000);
    if (rd_kafka_fatal_error(rk, fatal, sizeof(fatal))) {
        errx("fatal producer error: %s", fatal);
        rc = EXIT_FAIL;
    }
    if (st.failed > 0 && rc == EXIT_OK)
        rc = EXIT_FAIL;
    errx("produced %ld of %ld messages to %s", st.delivered,
         queued < 0 ? st.delivered + st.failed : queued, o->topic);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---------------------------------------------------------------------------
 * consume
 * ------------------------------------------------------------------------- */

/* Sets obj[name] to the text (or null if not valid UTF-8) and
 * obj[name_b64] to the base64 of p[0..n); both null when p is NULL.
 * Returns 0, -1 on allocation failure. */
static int json_set_bytes(json_t *obj, const char *name, const void *p,
                          size_t n)
{
    char b64name[64];
    json_t *txt = NULL, *enc = NULL;

    snprintf(b64name, sizeof(b64name), "%s_b64", name);
    if (p) {
        char *s = b64_encode(p, n);
        if (!s)
            return -1;
        enc = json_string(s);
        free(s);
        txt = json_stringn(p, n); /* NULL when not UTF-8 */
    }
    json_object_set_new(obj, name, txt ? txt : json_null());
    json_object_set_new(obj, b64name, enc ? enc : json_null());
    return 0;
}

static json_t *headers_json(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    json_t *arr = json_array();
    const char *name;
    const void *val;
    size_t i, size;

    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return arr;
    for (i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) ==
                RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        json_t *h = json_object();
        json_set_bytes(h, "name", name, strlen(name));
        json_set_bytes(h, "value", val, size);
        json_object_del(h, "name_b64"); /* names are C strings */
        json_array_append_new(arr, h);
    }
    return arr;
}

static int print_message(const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    json_t *obj = json_object();
    char *s;
    int rc;

    json_object_set_new(obj, "partition", json_integer(m->partition));
    json_object_set_new(obj, "offset", json_integer(m->offset));
    json_object_set_new(obj, "timestamp",
                        tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
                            ? json_null()
                            : json_integer(ts));
    if (json_set_bytes(obj, "key", m->key, m->key_len) ||
        json_set_bytes(obj, "value", m->payload, m->len)) {
        json_decref(obj);
        return -1;
    }
    json_object_set_new(obj, "headers", headers_json(m));
    s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s)
        return -1;
    rc = puts(s) < 0 ? -1 : 0;
    free(s);
    return rc;
}

/* Prints partition p from `low` until the offset before `high`. Returns 0,
 * or an exit code. */
static int consume_partition(rd_kafka_topic_t *rkt, int32_t p, int64_t low,
                             int64_t high, int64_t deadline)
{
    rd_kafka_message_t *msgs[1000];
    int64_t next = low;
    int rc = EXIT_OK;

    if (rd_kafka_consume_start(rkt, p, low) == -1) {
        errx("consume_start partition %" PRId32 ": %s", p,
             rd_kafka_err2str(rd_kafka_last_error()));
        return EXIT_FAIL;
    }
    while (rc == EXIT_OK && next < high) {
        ssize_t i, n;
        if (now_ms() > deadline) {
            errx("timeout: partition %" PRId32 " at offset %" PRId64
                 " of %" PRId64,
                 p, next, high);
            rc = EXIT_FAIL;
            break;
        }
        n = rd_kafka_consume_batch(rkt, p, 200, msgs, 1000);
        for (i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* Gaps (aborted transactions, control records) can end a
                 * partition before high - 1 was seen as a message. */
                if (m->offset >= high)
                    next = high;
            } else if (m->err) {
                errx("partition %" PRId32 ": %s", p,
                     rd_kafka_message_errstr(m));
                rc = EXIT_FAIL;
            } else if (rc == EXIT_OK && m->offset < high) {
                if (print_message(m)) {
                    errx("writing stdout failed");
                    rc = EXIT_FAIL;
                }
                next = m->offset + 1;
            }
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_consume_stop(rkt, p);
    return rc;
}

/* The legacy per-partition consumer needs no group.id: nothing is joined,
 * committed or created on the broker. */
static int cmd_consume(const opts_t *o)
{
    const char *const pairs[] = {"enable.partition.eof", "true", NULL};
    rd_kafka_conf_t *conf = conf_new(o, pairs);
    rd_kafka_topic_t *rkt;
    rd_kafka_t *rk;
    int64_t deadline = now_ms() + o->timeout_ms;
    int rc = EXIT_OK, nparts, p;

    if (!conf)
        return EXIT_USAGE;
    rk = client_new(RD_KAFKA_CONSUMER, conf);
    conf = NULL; /* now owned by rk */
    if (!rk)
        return EXIT_FAIL;
    nparts = topic_partitions(rk, o->topic, o->timeout_ms);
    if (nparts < 0) {
        rd_kafka_destroy(rk);
        return -nparts;
    }
    rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    for (p = 0; p < nparts && rc == EXIT_OK; p++) {
        int64_t low, high;
        rd_kafka_resp_err_t err =
            query_watermarks(rk, o->topic, p, &low, &high, o->timeout_ms);
        if (err) {
            errx("watermarks of partition %d: %s", p, rd_kafka_err2str(err));
            rc = EXIT_FAIL;
        } else if (high > low) {
            rc = consume_partition(rkt, p, low, high, deadline);
        }
    }
    if (fflush(stdout) != 0) {
        errx("writing stdout: %s", strerror(errno));
        rc = EXIT_FAIL;
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---------------------------------------------------------------------------
 * create-topic, delete-topic
 * ------------------------------------------------------------------------- */

/* Waits for the one result event of an admin request on q. NULL on timeout
 * or when the request as a whole failed (message printed). */
static rd_kafka_event_t *admin_result(rd_kafka_queue_t *q, int timeout_ms)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);

    if (!ev) {
        errx("no admin result within %d ms", timeout_ms);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        errx("admin request: %s", rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static rd_kafka_AdminOptions_t *
admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op, int timeout_ms)
{
    char errstr[256];
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, op);

    rd_kafka_AdminOptions_set_request_timeout(ao, timeout_ms, errstr,
                                              sizeof(errstr));
    rd_kafka_AdminOptions_set_operation_timeout(ao, timeout_ms, errstr,
                                                sizeof(errstr));
    return ao;
}

/* Polls metadata until the topic is gone (want_exists = 0) or has all
 * `partitions` partitions led (want_exists = 1; 0 partitions = any count).
 * Returns 0, or an exit code. */
static int topic_wait(rd_kafka_t *rk, const char *topic, int want_exists,
                      int partitions, int64_t deadline)
{
    topic_info_t ti;

    for (;;) {
        int remaining = (int)(deadline - now_ms());
        if (remaining <= 0 || topic_info(rk, topic, remaining, &ti))
            break;
        if (!want_exists && !ti.exists)
            return EXIT_OK;
        if (want_exists && ti.exists && ti.partitions > 0 &&
            ti.leaders == ti.partitions &&
            (partitions == 0 || ti.partitions == partitions))
            return EXIT_OK;
        if (want_exists && ti.exists && partitions && ti.partitions &&
            ti.partitions != partitions) {
            errx("topic %s exists with %d partitions, not %d", topic,
                 ti.partitions, partitions);
            return EXIT_FAIL;
        }
        usleep(ADMIN_POLL_MS * 1000);
    }
    errx("topic %s: %s within the timeout", topic,
         want_exists ? "partitions have no leaders" : "still listed");
    return EXIT_FAIL;
}

static rd_kafka_NewTopic_t *new_topic(const opts_t *o)
{
    char errstr[256], key[256];
    rd_kafka_NewTopic_t *nt;
    size_t i;

    nt = rd_kafka_NewTopic_new(o->topic, o->partitions, o->replication, errstr,
                               sizeof(errstr));
    if (!nt) {
        errx("%s", errstr);
        return NULL;
    }
    for (i = 0; i < o->tconf_cnt; i++) {
        const char *eq = strchr(o->tconf[i], '=');
        if (!eq || eq == o->tconf[i] ||
            (size_t)(eq - o->tconf[i]) >= sizeof(key)) {
            errx("--config expects key=value, got \"%s\"", o->tconf[i]);
            rd_kafka_NewTopic_destroy(nt);
            return NULL;
        }
        memcpy(key, o->tconf[i], (size_t)(eq - o->tconf[i]));
        key[eq - o->tconf[i]] = '\0';
        rd_kafka_NewTopic_set_config(nt, key, eq + 1);
    }
    return nt;
}

static int cmd_create_topic(const opts_t *o)
{
    rd_kafka_conf_t *conf = conf_new(o, NULL);
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    rd_kafka_NewTopic_t *nt;
    rd_kafka_AdminOptions_t *ao;
    rd_kafka_event_t *ev;
    int64_t deadline = now_ms() + o->timeout_ms;
    int rc = EXIT_FAIL;

    if (!conf)
        return EXIT_USAGE;
    if (!(nt = new_topic(o))) {
        rd_kafka_conf_destroy(conf);
        return EXIT_USAGE;
    }
    rk = client_new(RD_KAFKA_PRODUCER, conf);
    conf = NULL; /* now owned by rk */
    if (!rk) {
        rd_kafka_NewTopic_destroy(nt);
        return EXIT_FAIL;
    }
    q = rd_kafka_queue_new(rk);
    ao = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, o->timeout_ms);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    if ((ev = admin_result(q, o->timeout_ms + 5000))) {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(
                rd_kafka_event_CreateTopics_result(ev), &cnt);
        rd_kafka_resp_err_t err = cnt == 1 ? rd_kafka_topic_result_error(res[0])
                                           : RD_KAFKA_RESP_ERR__BAD_MSG;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR ||
            err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = topic_wait(rk, o->topic, 1, o->partitions, deadline);
        else
            errx("create %s: %s", o->topic,
                 cnt == 1 ? rd_kafka_topic_result_error_string(res[0])
                          : rd_kafka_err2str(err));
        if (rc == EXIT_OK)
            errx("topic %s: %s, %d partitions", o->topic,
                 err ? "already existed" : "created", o->partitions);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

static int cmd_delete_topic(const opts_t *o)
{
    rd_kafka_conf_t *conf = conf_new(o, NULL);
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    rd_kafka_DeleteTopic_t *dt;
    rd_kafka_AdminOptions_t *ao;
    rd_kafka_event_t *ev;
    int64_t deadline = now_ms() + o->timeout_ms;
    int rc = EXIT_FAIL;

    if (!conf)
        return EXIT_USAGE;
    rk = client_new(RD_KAFKA_PRODUCER, conf);
    conf = NULL; /* now owned by rk */
    if (!rk)
        return EXIT_FAIL;
    q = rd_kafka_queue_new(rk);
    dt = rd_kafka_DeleteTopic_new(o->topic);
    ao = admin_options(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS, o->timeout_ms);
    rd_kafka_DeleteTopics(rk, &dt, 1, ao, q);
    if ((ev = admin_result(q, o->timeout_ms + 5000))) {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(
                rd_kafka_event_DeleteTopics_result(ev), &cnt);
        rd_kafka_resp_err_t err = cnt == 1 ? rd_kafka_topic_result_error(res[0])
                                           : RD_KAFKA_RESP_ERR__BAD_MSG;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rc = topic_wait(rk, o->topic, 0, 0, deadline);
            if (rc == EXIT_OK)
                errx("topic %s: deleted", o->topic);
        } else if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            errx("topic %s does not exist", o->topic);
            rc = EXIT_NOTOPIC;
        } else {
            errx("delete %s: %s", o->topic,
                 cnt == 1 ? rd_kafka_topic_result_error_string(res[0])
                          : rd_kafka_err2str(err));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---------------------------------------------------------------------------
 * committed
 * ------------------------------------------------------------------------- */

static void print_committed(const opts_t *o,
                            const rd_kafka_topic_partition_list_t *parts)
{
    json_t *obj = json_object(), *offs = json_object();
    char pbuf[16], *s;
    int i;

    for (i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        snprintf(pbuf, sizeof(pbuf), "%" PRId32, tp->partition);
        json_object_set_new(offs, pbuf,
                            tp->offset >= 0 ? json_integer(tp->offset)
                                            : json_null());
    }
    json_object_set_new(obj, "group", json_string(o->group));
    json_object_set_new(obj, "topic", json_string(o->topic));
    json_object_set_new(obj, "offsets", offs);
    s = json_dumps(obj, JSON_COMPACT);
    if (s)
        puts(s);
    free(s);
    json_decref(obj);
}

/* A consumer in the group that never subscribes: it fetches the group's
 * offsets from the coordinator without joining, so it does not disturb a
 * running member. */
static int cmd_committed(const opts_t *o)
{
    /* clang-format off */
    const char *const pairs[] = {
        "group.id", o->group,
        "enable.auto.commit", "false",
        NULL};
    /* clang-format on */
    rd_kafka_conf_t *conf = conf_new(o, pairs);
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_resp_err_t err;
    rd_kafka_t *rk;
    int nparts, p, rc = EXIT_OK;

    if (!conf)
        return EXIT_USAGE;
    rk = client_new(RD_KAFKA_CONSUMER, conf);
    conf = NULL; /* now owned by rk */
    if (!rk)
        return EXIT_FAIL;
    nparts = topic_partitions(rk, o->topic, o->timeout_ms);
    if (nparts < 0) {
        rd_kafka_destroy(rk);
        return -nparts;
    }
    parts = rd_kafka_topic_partition_list_new(nparts);
    for (p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(parts, o->topic, p);
    err = rd_kafka_committed(rk, parts, o->timeout_ms);
    if (err) {
        errx("committed: %s", rd_kafka_err2str(err));
        rc = EXIT_FAIL;
    } else {
        print_committed(o, parts);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------- */

static void usage(void)
{
    fputs("usage:\n"
          "  cpkafka produce      -b BOOTSTRAP -t TOPIC [--partitioner P] "
          "[-X k=v]... < json-lines\n"
          "  cpkafka consume      -b BOOTSTRAP -t TOPIC [--timeout-ms N] "
          "[-X k=v]...\n"
          "  cpkafka create-topic -b BOOTSTRAP -t TOPIC -p PARTITIONS "
          "[-r REPLICAS] [--config k=v]...\n"
          "  cpkafka delete-topic -b BOOTSTRAP -t TOPIC\n"
          "  cpkafka committed    -b BOOTSTRAP -g GROUP -t TOPIC\n"
          "options for all: --timeout-ms N (default 60000), -X k=v "
          "(librdkafka config)\n",
          stderr);
}

static int parse_int(const char *s, int min, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > INT32_MAX)
        return -1;
    *out = (int)v;
    return 0;
}

enum { OPT_PARTITIONER = 1000, OPT_TIMEOUT, OPT_CONFIG };

static int parse_opts(int argc, char **argv, opts_t *o)
{
    static const struct option longopts[] = {
        {"bootstrap", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"group", required_argument, NULL, 'g'},
        {"partitions", required_argument, NULL, 'p'},
        {"replication", required_argument, NULL, 'r'},
        {"partitioner", required_argument, NULL, OPT_PARTITIONER},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
        {"config", required_argument, NULL, OPT_CONFIG},
        {NULL, 0, NULL, 0}};
    int c;

    o->xconf = calloc((size_t)argc, sizeof(*o->xconf));
    o->tconf = calloc((size_t)argc, sizeof(*o->tconf));
    if (!o->xconf || !o->tconf)
        return -1;
    while ((c = getopt_long(argc, argv, "b:t:g:p:r:X:", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'b':
            o->bootstrap = optarg;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'g':
            o->group = optarg;
            break;
        case 'p':
            if (parse_int(optarg, 1, &o->partitions))
                return -1;
            break;
        case 'r':
            if (parse_int(optarg, -1, &o->replication))
                return -1;
            break;
        case 'X':
            o->xconf[o->xconf_cnt++] = optarg;
            break;
        case OPT_CONFIG:
            o->tconf[o->tconf_cnt++] = optarg;
            break;
        case OPT_PARTITIONER:
            o->partitioner = optarg;
            break;
        case OPT_TIMEOUT:
            if (parse_int(optarg, 1, &o->timeout_ms))
                return -1;
            break;
        default:
            return -1;
        }
    }
    if (optind != argc) {
        errx("unexpected argument \"%s\"", argv[optind]);
        return -1;
    }
    return 0;
}

/* Checks the options each command needs. */
static int check_opts(const opts_t *o)
{
    if (!o->bootstrap || !o->topic) {
        errx("%s needs -b BOOTSTRAP and -t TOPIC", o->cmd);
        return -1;
    }
    if (strcmp(o->cmd, "create-topic") == 0 && o->partitions < 1) {
        errx("create-topic needs -p PARTITIONS");
        return -1;
    }
    if (strcmp(o->cmd, "committed") == 0 && !o->group) {
        errx("committed needs -g GROUP");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(const opts_t *o);
    } cmds[] = {{"produce", cmd_produce},
                {"consume", cmd_consume},
                {"create-topic", cmd_create_topic},
                {"delete-topic", cmd_delete_topic},
                {"committed", cmd_committed}};
    opts_t o;
    size_t i;
    int rc = EXIT_USAGE;

    memset(&o, 0, sizeof(o));
    o.replication = 1;
    o.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (argc < 2) {
        usage();
        return EXIT_USAGE;
    }
    o.cmd = argv[1];
    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(o.cmd, cmds[i].name) != 0)
            continue;
        if (parse_opts(argc - 1, argv + 1, &o) || check_opts(&o))
            usage();
        else
            rc = cmds[i].run(&o);
        break;
    }
    if (i == sizeof(cmds) / sizeof(cmds[0])) {
        errx("unknown command \"%s\"", o.cmd);
        usage();
    }
    free(o.xconf);
    free(o.tconf);
    return rc;
}
