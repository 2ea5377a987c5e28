/*
 * test_consumer_reply_pool.c - hiredis replies built from the reply pool:
 * RESP bytes fed through a redisReader with the pool's functions, as the
 * loop's connection does. Values, nesting, nil, integers, errors, strings
 * and arrays beyond the size classes, protocol errors in the middle of a
 * reply, a reader freed with a reply half read; and that every object and
 * buffer comes back to the pool (out == 0) and a warm pool does not malloc.
 * Built against hiredis 1.x it also checks RESP3 replies that mix the
 * library's objects with the pool's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "reply_pool.h"

typedef struct {
    cp_reply_pool_t *pool;
    redisReader *reader;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pool = cp_reply_pool_new();
    f->reader = redisReaderCreate();
    if (!f->pool || !f->reader)
        return -1;
    cp_reply_pool_attach(f->pool, f->reader);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    redisReaderFree(f->reader); /* frees a half-read reply through the pool */
    assert_int_equal(cp_reply_pool_stats(f->pool).out, 0);
    cp_reply_pool_free(f->pool);
    free(f);
    return 0;
}

/* Feeds len bytes and returns the one complete reply they hold. */
static redisReply *read_reply(fixture_t *f, const char *resp, size_t len)
{
    void *reply = NULL;
    assert_int_equal(redisReaderFeed(f->reader, resp, len), REDIS_OK);
    assert_int_equal(redisReaderGetReply(f->reader, &reply), REDIS_OK);
    assert_non_null(reply);
    return reply;
}

/* Frees as hiredis' async layer does after a callback. */
static void free_reply(fixture_t *f, redisReply *reply)
{
    f->reader->fn->freeObject(reply);
}

static void assert_all_back(const fixture_t *f)
{
    cp_reply_pool_stats_t s = cp_reply_pool_stats(f->pool);
    assert_int_equal(s.out, 0);
}

static const char NESTED[] = "*4\r\n"
                             "$3\r\nfoo\r\n"
                             "*3\r\n:42\r\n$-1\r\n*2\r\n+OK\r\n$0\r\n\r\n"
                             "*-1\r\n"
                             "-ERR wrong\r\n";

static void check_nested(const redisReply *r)
{
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 4);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
    assert_int_equal(r->element[0]->len, 3);
    assert_string_equal(r->element[0]->str, "foo");
    const redisReply *in = r->element[1];
    assert_int_equal(in->type, REDIS_REPLY_ARRAY);
    assert_int_equal(in->elements, 3);
    assert_int_equal(in->element[0]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(in->element[0]->integer, 42);
    assert_int_equal(in->element[1]->type, REDIS_REPLY_NIL);
    assert_int_equal(in->element[2]->type, REDIS_REPLY_ARRAY);
    assert_int_equal(in->element[2]->element[0]->type, REDIS_REPLY_STATUS);
    assert_string_equal(in->element[2]->element[0]->str, "OK");
    assert_int_equal(in->element[2]->element[1]->len, 0);
    assert_string_equal(in->element[2]->element[1]->str, "");
    assert_int_equal(r->element[2]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[3]->type, REDIS_REPLY_ERROR);
    assert_string_equal(r->element[3]->str, "ERR wrong");
}

static void test_nested_values_and_return(void **state)
{
    fixture_t *f = *state;
    redisReply *r = read_reply(f, NESTED, sizeof(NESTED) - 1);
    check_nested(r);
    assert_int_not_equal(cp_reply_pool_stats(f->pool).out, 0);
    free_reply(f, r);
    assert_all_back(f);
    assert_int_not_equal(cp_reply_pool_stats(f->pool).cached, 0);
}

static void test_warm_pool_does_not_malloc(void **state)
{
    fixture_t *f = *state;
    free_reply(f, read_reply(f, NESTED, sizeof(NESTED) - 1));
    uint64_t warm = cp_reply_pool_stats(f->pool).mallocs;
    for (int i = 0; i < 100; i++) {
        redisReply *r = read_reply(f, NESTED, sizeof(NESTED) - 1);
        check_nested(r);
        free_reply(f, r);
    }
    assert_int_equal(cp_reply_pool_stats(f->pool).mallocs, warm);
    assert_all_back(f);
}

static void test_top_level_scalars(void **state)
{
    fixture_t *f = *state;
    redisReply *r = read_reply(f, ":-9223372036854775807\r\n", 23);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer == -9223372036854775807LL);
    free_reply(f, r);
    r = read_reply(f, "$-1\r\n", 5);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    free_reply(f, r);
    r = read_reply(f, "*0\r\n", 4);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 0);
    free_reply(f, r);
    r = read_reply(f, "-NOSCRIPT no\r\n", 14);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_string_equal(r->str, "NOSCRIPT no");
    free_reply(f, r);
    assert_all_back(f);
}

/* A bulk string of n bytes of a pattern, as RESP. */
static char *bulk(size_t n, size_t *len)
{
    char *s = malloc(n + 32);
    int h = sprintf(s, "$%zu\r\n", n);
    for (size_t i = 0; i < n; i++)
        s[h + i] = (char)('a' + i % 26);
    memcpy(s + h + n, "\r\n", 2);
    *len = (size_t)h + n + 2;
    return s;
}

/* Every size around the class bounds, and beyond the largest (16 KiB):
 * those are plain mallocs, never cached. */
static void test_string_sizes(void **state)
{
    fixture_t *f = *state;
    const size_t sizes[] = {0,    1,     14,    15,    16,    17,     31,
                            1023, 16382, 16383, 16384, 20000, 1 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t len;
        char *resp = bulk(sizes[i], &len);
        redisReply *r = read_reply(f, resp, len);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(r->len, sizes[i]);
        assert_int_equal(r->str[sizes[i]], '\0');
        if (sizes[i])
            assert_int_equal(r->str[sizes[i] - 1], 'a' + (sizes[i] - 1) % 26);
        free_reply(f, r);
        free(resp);
        assert_all_back(f);
    }
    uint64_t m = cp_reply_pool_stats(f->pool).mallocs;
    size_t len;
    char *resp = bulk(20000, &len);
    free_reply(f, read_reply(f, resp, len));
    assert_int_equal(cp_reply_pool_stats(f->pool).mallocs, m + 1);
    free(resp);
}

/* An array of n integers: element arrays beyond the classes (n > 2048) are
 * malloc'ed; the object list keeps at most its bound, the rest is freed. */
static void test_big_array_bounded(void **state)
{
    fixture_t *f = *state;
    const int n = 10000;
    char *resp = malloc((size_t)n * 8 + 16), *w = resp;
    w += sprintf(w, "*%d\r\n", n);
    for (int i = 0; i < n; i++)
        w += sprintf(w, ":%d\r\n", i);
    redisReply *r = read_reply(f, resp, (size_t)(w - resp));
    assert_int_equal(r->elements, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(r->element[i]->integer, i);
    assert_int_equal(cp_reply_pool_stats(f->pool).out, n + 2);
    free_reply(f, r);
    cp_reply_pool_stats_t s = cp_reply_pool_stats(f->pool);
    assert_int_equal(s.out, 0);
    assert_true(s.cached <= 4096);
    assert_true(s.released >= (uint64_t)n - 4096);
    free(resp);
}

/* A protocol error after some elements: the reader frees the partial
 * reply (unread elements NULL) through the pool; nothing stays out. */
static void test_protocol_error_mid_reply(void **state)
{
    fixture_t *f = *state;
    static const char bad[] = "*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n!oops\r\n";
    void *reply = NULL;
    assert_int_equal(redisReaderFeed(f->reader, bad, sizeof(bad) - 1),
                     REDIS_OK);
    assert_int_equal(redisReaderGetReply(f->reader, &reply), REDIS_ERR);
    assert_null(reply);
    assert_int_equal(f->reader->err, REDIS_ERR_PROTOCOL);
    assert_all_back(f);
}

/* The reader is freed (teardown: connection dropped) with a reply half
 * read: hiredis frees the partial tree through the pool. */
static void test_reader_freed_mid_reply(void **state)
{
    fixture_t *f = *state;
    static const char part[] = "*2\r\n*2\r\n$5\r\nhello\r\n";
    void *reply = NULL;
    assert_int_equal(redisReaderFeed(f->reader, part, sizeof(part) - 1),
                     REDIS_OK);
    assert_int_equal(redisReaderGetReply(f->reader, &reply), REDIS_OK);
    assert_null(reply); /* incomplete */
    assert_int_not_equal(cp_reply_pool_stats(f->pool).out, 0);
}

/* Replies split across feeds, as socket reads split them. */
static void test_split_feeds(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < sizeof(NESTED) - 1; i++) {
        void *reply = NULL;
        assert_int_equal(redisReaderFeed(f->reader, NESTED + i, 1), REDIS_OK);
        assert_int_equal(redisReaderGetReply(f->reader, &reply), REDIS_OK);
        if (i < sizeof(NESTED) - 2) {
            assert_null(reply);
        } else {
            check_nested(reply);
            free_reply(f, reply);
        }
    }
    assert_all_back(f);
}

#if HIREDIS_MAJOR >= 1
/* RESP3 (hiredis 1.x only): a map, a double, a bool and a verbatim string
 * are the library's objects; the map's string elements are the pool's.
 * Freeing the map must return those and free the rest. */
static void test_resp3_mixed_ownership(void **state)
{
    fixture_t *f = *state;
    static const char map[] = "%3\r\n$1\r\na\r\n,1.5\r\n$1\r\nb\r\n#t\r\n"
                              "+c\r\n=7\r\ntxt:hey\r\n";
    redisReply *r = read_reply(f, map, sizeof(map) - 1);
    assert_int_equal(r->type, REDIS_REPLY_MAP);
    assert_int_equal(r->elements, 6);
    assert_string_equal(r->element[0]->str, "a");
    assert_int_equal(r->element[1]->type, REDIS_REPLY_DOUBLE);
    assert_true(r->element[1]->dval == 1.5);
    assert_int_equal(r->element[3]->type, REDIS_REPLY_BOOL);
    assert_int_equal(r->element[4]->type, REDIS_REPLY_STATUS);
    assert_int_equal(r->element[5]->type, REDIS_REPLY_VERB);
    assert_string_equal(r->element[5]->str, "hey");
    assert_int_equal(cp_reply_pool_stats(f->pool).out, 6); /* a, b, c */
    free_reply(f, r);
    assert_all_back(f);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] =
    { cmocka_unit_test_setup_teardown(test_nested_values_and_return, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_warm_pool_does_not_malloc, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_top_level_scalars, setup, teardown),
      cmocka_unit_test_setup_teardown(test_string_sizes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_big_array_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_protocol_error_mid_reply, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_reader_freed_mid_reply, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_split_feeds, setup, teardown),
#if HIREDIS_MAJOR >= 1
      cmocka_unit_test_setup_teardown(test_resp3_mixed_ownership, setup,
                                      teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
