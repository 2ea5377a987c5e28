/*
 * test_common_log.c - the JSON log line: exact structure (apart from the
 * timestamp), value types, escaping, thresholds, customer-id hashing (keyed
 * SipHash-2-4, test_common_siphash.c), truncation that stays valid JSON,
 * and whole lines under concurrency.
 *
 * stderr (fd 2) is redirected into a temporary file around each cp_log
 * call; assertions run after it is restored so failures stay visible.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cp_time.h"
#include "log.h"

/* ------------------------------------------------------------ capture */

typedef struct {
    FILE *tmp;
    int saved_fd;
} capture_t;

static void capture_begin(capture_t *c)
{
    fflush(stderr);
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved_fd = dup(2);
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fileno(c->tmp), 2) >= 0);
}

/* Restores stderr and returns everything written meanwhile (caller frees). */
static char *capture_end(capture_t *c, size_t *len_out)
{
    long size;
    char *out;

    fflush(stderr);
    dup2(c->saved_fd, 2);
    close(c->saved_fd);
    size = ftell(c->tmp);
    out = malloc((size_t)size + 1);
    rewind(c->tmp);
    assert_int_equal(fread(out, 1, (size_t)size, c->tmp), (size_t)size);
    out[size] = '\0';
    fclose(c->tmp);
    if (len_out != NULL)
        *len_out = (size_t)size;
    return out;
}

/* ---------------------------------------------- a flat JSON validator */

/* Each returns the position after the construct, or NULL if malformed. */
static const char *skip_utf8(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    int extra = u[0] >= 0xf0 ? 3 : u[0] >= 0xe0 ? 2 : u[0] >= 0xc0 ? 1 : -1;

    if (u[0] < 0x80)
        return p + 1;
    if (extra < 0)
        return NULL; /* a continuation byte without its lead */
    for (int i = 1; i <= extra; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return NULL;
    }
    return p + 1 + extra;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++) {
                    if (strchr("0123456789abcdefABCDEF", p[i]) == NULL ||
                        p[i] == '\0')
                        return NULL;
                }
                p += 5;
            } else if (*p != '\0' && strchr("\"\\/bfnrt", *p) != NULL) {
                p++;
            } else {
                return NULL;
            }
        } else if ((p = skip_utf8(p)) == NULL) {
            return NULL;
        }
    }
    return p + 1;
}

static const char *json_number(const char *p)
{
    const char *start;

    if (*p == '-')
        p++;
    start = p;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == start)
        return NULL;
    if (*p == '.') {
        start = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == start)
            return NULL;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == start)
            return NULL;
    }
    return p;
}

static const char *json_value(const char *p)
{
    static const char *const words[] = {"null", "true", "false"};

    if (*p == '"')
        return json_string(p);
    for (int i = 0; i < 3; i++) {
        if (strncmp(p, words[i], strlen(words[i])) == 0)
            return p + strlen(words[i]);
    }
    return json_number(p);
}

/* 1 when line is exactly one flat JSON object followed by '\n'. */
static int is_json_line(const char *line, size_t len)
{
    const char *p = line;

    if (len == 0 || strlen(line) != len || *p++ != '{')
        return 0;
    while (*p != '}') {
        if (p != line + 1 && *p++ != ',')
            return 0;
        if ((p = json_string(p)) == NULL || *p++ != ':')
            return 0;
        if ((p = json_value(p)) == NULL)
            return 0;
    }
    return p + 2 == line + len && p[1] == '\n';
}

/* --------------------------------------------------- line structure */

#define TS_PREFIX "{\"ts\":\""
#define TS_LEN 24

/* Checks the ts field (a current UTC time with ms) and returns the line
 * with it removed: "{" + everything after the ts member's comma. */
static const char *after_ts(const char *line)
{
    int64_t ts, now = cp_time_wall_ms();

    assert_true(strncmp(line, TS_PREFIX, strlen(TS_PREFIX)) == 0);
    line += strlen(TS_PREFIX);
    assert_int_equal(cp_time_parse_rfc3339(line, TS_LEN, &ts), CP_OK);
    assert_int_equal(line[TS_LEN - 1], 'Z');
    assert_int_equal(line[19], '.'); /* milliseconds */
    assert_true(ts <= now && now - ts < 60000);
    assert_true(strncmp(line + TS_LEN, "\",", 2) == 0);
    return line + TS_LEN + 2;
}

static int reset_level(void **state)
{
    (void)state;
    cp_log_set_level(CP_LOG_INFO);
    return 0;
}

/* ------------------------------------------------------------- tests */

static void test_header_example(void **state)
{
    capture_t cap;
    size_t len;
    char *out;

    (void)state;
    capture_begin(&cap);
    cp_log(CP_LOG_WARN, "redis disconnected", CP_LS("host", "127.0.0.1"),
           CP_LI("port", 6379), CP_LEND);
    out = capture_end(&cap, &len);
    assert_true(is_json_line(out, len));
    assert_string_equal(after_ts(out), "\"level\":\"warn\",\"msg\":\"redis "
                                       "disconnected\",\"host\":\"127.0.0."
                                       "1\",\"port\":6379}\n");
    free(out);
}

static void test_value_types(void **state)
{
    capture_t cap;
    size_t len;
    char *out;

    (void)state;
    capture_begin(&cap);
    cp_log(CP_LOG_ERROR, "types", CP_LS("s", NULL), CP_LI("neg", -42),
           CP_LI("min", INT64_MIN), CP_LD("d", 0.1), CP_LD("half", 0.5),
           CP_LD("big", 1e300), CP_LD("nan", NAN), CP_LD("inf", -INFINITY),
           CP_LB("yes", 7), CP_LB("no", 0), CP_LEND);
    out = capture_end(&cap, &len);
    assert_true(is_json_line(out, len));
    assert_string_equal(after_ts(out),
                        "\"level\":\"error\",\"msg\":\"types\",\"s\":null,"
                        "\"neg\":-42,\"min\":-9223372036854775808,"
                        "\"d\":0.10000000000000001,\"half\":0.5,"
                        "\"big\":1.0000000000000001e+300,\"nan\":null,"
                        "\"inf\":null,\"yes\":true,\"no\":false}\n");
    free(out);
}

static void test_escaping(void **state)
{
    capture_t cap;
    size_t len;
    char *out;

    (void)state;
    capture_begin(&cap);
    cp_log(CP_LOG_INFO, "say \"hi\"\n", CP_LS("we\\ird\tkey", "\x01\x7f é"),
           CP_LEND);
    cp_log(CP_LOG_INFO, NULL, CP_LEND);
    out = capture_end(&cap, &len);
    {
        char *second = strchr(out, '\n') + 1;

        assert_true(is_json_line(second, strlen(second)));
        assert_string_equal(after_ts(second),
                            "\"level\":\"info\",\"msg\":null}\n");
        *second = '\0';
    }
    assert_true(is_json_line(out, strlen(out)));
    assert_string_equal(after_ts(out),
                        "\"level\":\"info\",\"msg\":\"say \\\"hi\\\"\\n\","
                        "\"we\\\\ird\\tkey\":\"\\u0001\x7f é\"}\n");
    free(out);
}

static void test_levels(void **state)
{
    capture_t cap;
    size_t len;
    char *out;

    (void)state;
    assert_int_equal(cp_log_get_level(), CP_LOG_INFO);
    assert_true(cp_log_enabled(CP_LOG_INFO));
    assert_false(cp_log_enabled(CP_LOG_DEBUG));

    capture_begin(&cap);
    cp_log(CP_LOG_DEBUG, "dropped", CP_LEND);
    cp_log_set_level(CP_LOG_ERROR);
    cp_log(CP_LOG_WARN, "dropped", CP_LEND);
    cp_log(CP_LOG_INFO, "dropped", CP_LEND);
    cp_log(CP_LOG_ERROR, "kept", CP_LEND);
    cp_log_set_level(CP_LOG_DEBUG);
    cp_log(CP_LOG_DEBUG, "debug kept", CP_LEND);
    cp_log((cp_log_level_t)7, "bad level", CP_LEND);
    out = capture_end(&cap, &len);

    assert_int_equal(cp_log_get_level(), CP_LOG_DEBUG);
    assert_non_null(strstr(out, "\"level\":\"error\",\"msg\":\"kept\"}\n"));
    assert_non_null(
        strstr(out, "\"level\":\"debug\",\"msg\":\"debug kept\"}\n"));
    assert_null(strstr(out, "dropped"));
    assert_null(strstr(out, "bad level"));
    free(out);
}

static void test_level_parse(void **state)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    cp_log_level_t lv = CP_LOG_INFO;

    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cp_log_level_parse(names[i], &lv), 0);
        assert_int_equal(lv, i);
    }
    assert_int_equal(cp_log_level_parse("INFO", &lv), -1);
    assert_int_equal(cp_log_level_parse("warning", &lv), -1);
    assert_int_equal(cp_log_level_parse("", &lv), -1);
    assert_int_equal(cp_log_level_parse(NULL, &lv), -1);
    assert_int_equal(lv, CP_LOG_DEBUG); /* untouched on failure */
}

static void test_customer_hashed_unless_debug(void **state)
{
    capture_t cap;
    size_t len;
    char *out, *second;

    (void)state;
    assert_int_equal(cp_log_set_id_key("k"), CP_OK);
    capture_begin(&cap);
    cp_log(CP_LOG_INFO, "x", CP_LCUST("customer", "c-42"),
           CP_LCUST("none", NULL), CP_LEND);
    cp_log_set_level(CP_LOG_DEBUG);
    cp_log(CP_LOG_INFO, "x", CP_LCUST("customer", "c-42"), CP_LEND);
    out = capture_end(&cap, &len);

    second = strchr(out, '\n') + 1;
    assert_string_equal(after_ts(second), "\"level\":\"info\",\"msg\":\"x\","
                                          "\"customer\":\"c-42\"}\n");
    *second = '\0';
    /* SipHash-2-4 of "c-42" under the key derived from "k" (the pinned
     * value of test_common_siphash.c's test_derive_pinned) */
    assert_string_equal(after_ts(out),
                        "\"level\":\"info\",\"msg\":\"x\",\"customer\":"
                        "\"h:b8bde997d57ad625\",\"none\":null}\n");
    free(out);
}

/* The value CP_LCUST logs for id at info, read back from the line. */
static void logged_customer(const char *id, char out[CP_LOG_ID_HASH_SIZE])
{
    static const char pre[] = "\"level\":\"info\",\"msg\":\"x\",\"c\":\"";
    capture_t cap;
    size_t len;
    char *line;
    const char *v;

    capture_begin(&cap);
    cp_log(CP_LOG_INFO, "x", CP_LCUST("c", id), CP_LEND);
    line = capture_end(&cap, &len);
    assert_true(is_json_line(line, len));
    v = after_ts(line);
    assert_true(strncmp(v, pre, strlen(pre)) == 0);
    v += strlen(pre);
    assert_string_equal(v + CP_LOG_ID_HASH_SIZE - 1, "\"}\n");
    memcpy(out, v, CP_LOG_ID_HASH_SIZE - 1);
    out[CP_LOG_ID_HASH_SIZE - 1] = '\0';
    free(line);
}

/* Runs first: before any cp_log_set_id_key the key is a random one. */
static void test_customer_default_key_random(void **state)
{
    char logged[CP_LOG_ID_HASH_SIZE], direct[CP_LOG_ID_HASH_SIZE];

    (void)state;
    logged_customer("c-42", logged);
    assert_int_equal(cp_log_hash_id("c-42", direct), CP_OK);
    assert_string_equal(logged, direct);
    assert_string_not_equal(logged, "h:479d58925d4967cb"); /* FNV-1a 64 */
    assert_string_not_equal(logged, "h:b8bde997d57ad625"); /* key "k" */
}

static void test_customer_key_derivation(void **state)
{
    char k1[CP_LOG_ID_HASH_SIZE], k2[CP_LOG_ID_HASH_SIZE];
    char other[CP_LOG_ID_HASH_SIZE], direct[CP_LOG_ID_HASH_SIZE];

    (void)state;
    assert_int_equal(cp_log_set_id_key("k"), CP_OK);
    logged_customer("c-1", k1);
    assert_string_equal(k1, "h:9ac18d6ed7e760ab");
    assert_int_equal(cp_log_hash_id("c-1", direct), CP_OK);
    assert_string_equal(direct, k1); /* what `custpulse hash-id` prints */

    assert_int_equal(cp_log_set_id_key("another key"), CP_OK);
    logged_customer("c-1", other);
    assert_string_equal(other, "h:3c383eafbafcaee6");

    /* Setting the same string again gives the same key back. */
    assert_int_equal(cp_log_set_id_key("k"), CP_OK);
    logged_customer("c-1", k2);
    assert_string_equal(k2, k1);
    logged_customer("c-2", k2);
    assert_string_not_equal(k2, k1);
}

static void test_customer_empty_key_random(void **state)
{
    char keyed[CP_LOG_ID_HASH_SIZE], r1[CP_LOG_ID_HASH_SIZE];
    char r2[CP_LOG_ID_HASH_SIZE], r3[CP_LOG_ID_HASH_SIZE];

    (void)state;
    assert_int_equal(cp_log_set_id_key("k"), CP_OK);
    logged_customer("c-42", keyed);
    /* "" and NULL: a fresh random key each time (equal with 2^-64). */
    assert_int_equal(cp_log_set_id_key(""), CP_OK);
    logged_customer("c-42", r1);
    logged_customer("c-42", r3);
    assert_string_equal(r1, r3); /* stable within the key's lifetime */
    assert_int_equal(cp_log_set_id_key(NULL), CP_OK);
    logged_customer("c-42", r2);
    assert_string_not_equal(r1, keyed);
    assert_string_not_equal(r2, keyed);
    assert_string_not_equal(r1, r2);
    assert_string_not_equal(r1, "h:479d58925d4967cb");
}

static void test_unknown_type_stops_fields(void **state)
{
    capture_t cap;
    size_t len;
    char *out;

    (void)state;
    capture_begin(&cap);
    cp_log(CP_LOG_INFO, "m", CP_LI("a", 1), "bad", 99, 5, CP_LEND);
    out = capture_end(&cap, &len);
    assert_true(is_json_line(out, len));
    assert_string_equal(after_ts(out),
                        "\"level\":\"info\",\"msg\":\"m\",\"a\":1}\n");
    free(out);
}

static void test_truncation_long_msg(void **state)
{
    char *msg = malloc(10001);
    capture_t cap;
    size_t len;
    char *out;

    (void)state;
    memset(msg, 'a', 10000);
    msg[10000] = '\0';
    capture_begin(&cap);
    cp_log(CP_LOG_INFO, msg, CP_LI("after", 1), CP_LEND);
    out = capture_end(&cap, &len);
    assert_true(len <= 4096);
    assert_true(len >= 4000);
    assert_true(is_json_line(out, len));
    assert_null(strstr(out, "\"after\""));
    assert_string_equal(out + len - 21, "a\",\"truncated\":true}\n");
    free(out);
    free(msg);
}

static void test_truncation_utf8_boundary(void **state)
{
    char msg[8001];
    capture_t cap;

    (void)state;
    /* 2-byte and 3-byte characters at every alignment of the cut */
    for (int shift = 0; shift < 3; shift++) {
        size_t n = 0, len;
        char *out;

        for (int i = 0; i < shift; i++)
            msg[n++] = 'x';
        while (n + 5 < sizeof(msg)) {
            memcpy(msg + n, "\xc3\xa9\xe4\xb8\xad", 5); /* é中 */
            n += 5;
        }
        msg[n] = '\0';
        capture_begin(&cap);
        cp_log(CP_LOG_INFO, msg, CP_LEND);
        out = capture_end(&cap, &len);
        assert_true(len <= 4096);
        assert_true(is_json_line(out, len)); /* checks UTF-8 too */
        assert_non_null(strstr(out, "\"truncated\":true}\n"));
        free(out);
    }
}

static void test_truncation_sweep_stays_valid(void **state)
{
    char msg[4200];
    capture_t cap;

    (void)state;
    /* Every cut point near the limit, with fields of each kind after the
     * message: the result is always one valid JSON line <= 4096 bytes. */
    for (size_t n = 3950; n < sizeof(msg); n++) {
        size_t len;
        char *out;

        memset(msg, 'm', n);
        msg[n] = '\0';
        msg[n / 2] = '"'; /* one escape in the middle */
        capture_begin(&cap);
        cp_log(CP_LOG_INFO, "", CP_LS("msg2", msg + 3900),
               CP_LI("number", 123456789), CP_LD("d", 0.25), CP_LB("b", 1),
               CP_LCUST("c", "c-42"), CP_LS("tail", "\n\n"), CP_LEND);
        cp_log(CP_LOG_INFO, msg, CP_LI("number", 123456789), CP_LD("d", 0.25),
               CP_LS("s", "é\t"), CP_LEND);
        out = capture_end(&cap, &len);
        {
            char *second = strchr(out, '\n') + 1;
            size_t len2 = len - (size_t)(second - out);

            assert_true(len2 <= 4096);
            assert_true(is_json_line(second, len2));
            *second = '\0';
            assert_true(is_json_line(out, strlen(out)));
        }
        free(out);
    }
}

#define LOG_THREADS 4
#define LOG_LINES 250

static void *log_worker(void *arg)
{
    intptr_t id = (intptr_t)arg;
    char pad[300];

    memset(pad, 'a' + (int)id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < LOG_LINES; i++)
        cp_log(CP_LOG_INFO, "concurrent", CP_LI("thread", id), CP_LI("i", i),
               CP_LS("pad", pad), CP_LEND);
    return NULL;
}

static void test_concurrent_lines_whole(void **state)
{
    pthread_t th[LOG_THREADS];
    capture_t cap;
    size_t len, lines = 0;
    char *out, *line;

    (void)state;
    capture_begin(&cap);
    for (intptr_t i = 0; i < LOG_THREADS; i++)
        pthread_create(&th[i], NULL, log_worker, (void *)i);
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(th[i], NULL);
    out = capture_end(&cap, &len);

    for (line = out; *line != '\0'; lines++) {
        char *nl = strchr(line, '\n');
        char save = nl[1];

        nl[1] = '\0';
        assert_true(is_json_line(line, (size_t)(nl + 1 - line)));
        nl[1] = save;
        line = nl + 1;
    }
    assert_int_equal(lines, LOG_THREADS * LOG_LINES);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: it sees the key before any cp_log_set_id_key */
        cmocka_unit_test_setup(test_customer_default_key_random, reset_level),
        cmocka_unit_test_setup(test_header_example, reset_level),
        cmocka_unit_test_setup(test_value_types, reset_level),
        cmocka_unit_test_setup(test_escaping, reset_level),
        cmocka_unit_test_setup(test_levels, reset_level),
        cmocka_unit_test_setup(test_level_parse, reset_level),
        cmocka_unit_test_setup(test_customer_hashed_unless_debug, reset_level),
        cmocka_unit_test_setup(test_customer_key_derivation, reset_level),
        cmocka_unit_test_setup(test_customer_empty_key_random, reset_level),
        cmocka_unit_test_setup(test_unknown_type_stops_fields, reset_level),
        cmocka_unit_test_setup(test_truncation_long_msg, reset_level),
        cmocka_unit_test_setup(test_truncation_utf8_boundary, reset_level),
        cmocka_unit_test_setup(test_truncation_sweep_stays_valid, reset_level),
        cmocka_unit_test_setup(test_concurrent_lines_whole, reset_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
