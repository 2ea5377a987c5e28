/*
 * test_consumer_cache.c - the state cache (consumer/cache.h): images
 * (pairs round trip, lookup, malformed input refused), hits and misses,
 * replacement in place and with a larger image, the byte bound evicting
 * the least recently used entries, drops, clear, and a cache of 0 bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache.h"

/* An image of n pairs f<i> = value repeated (i + 1) times. */
static size_t make_image(unsigned char *buf, int n, const char *value)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        char f[16], v[512] = "";
        snprintf(f, sizeof(f), "f%d", i);
        for (int k = 0; k <= i; k++)
            strcat(v, value);
        len += cp_image_put_pair(buf + len, f, strlen(f), v, strlen(v));
    }
    return len;
}

static void test_image_pairs(void **state)
{
    (void)state;
    unsigned char buf[1024];
    size_t len = 0;
    char big[300];
    memset(big, 'x', sizeof(big));
    len += cp_image_put_pair(buf + len, "v", 1, "12", 2);
    len += cp_image_put_pair(buf + len, "e", 1, "\0\1\2", 3);
    len += cp_image_put_pair(buf + len, "a:long", 6, big, sizeof(big));
    len += cp_image_put_pair(buf + len, "z", 1, "", 0);
    assert_int_equal(len, cp_image_pair_size(1, 2) + cp_image_pair_size(1, 3) +
                              cp_image_pair_size(6, 300) +
                              cp_image_pair_size(1, 0));
    /* 300 needs two length bytes */
    assert_int_equal(cp_image_pair_size(6, 300), 1 + 6 + 2 + 300);
    cp_image_t img = {buf, len};
    size_t pos = 0, fl, vl;
    const char *f, *v;
    assert_int_equal(cp_image_next(&img, &pos, &f, &fl, &v, &vl), 1);
    assert_int_equal(fl, 1);
    assert_memory_equal(f, "v", 1);
    assert_int_equal(vl, 2);
    assert_memory_equal(v, "12", 2);
    assert_int_equal(cp_image_next(&img, &pos, &f, &fl, &v, &vl), 1);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "\0\1\2", 3);
    assert_int_equal(cp_image_next(&img, &pos, &f, &fl, &v, &vl), 1);
    assert_int_equal(vl, 300);
    assert_int_equal(cp_image_next(&img, &pos, &f, &fl, &v, &vl), 1);
    assert_int_equal(vl, 0);
    assert_int_equal(cp_image_next(&img, &pos, &f, &fl, &v, &vl), 0);

    size_t got = 0;
    const char *e = cp_image_get(&img, "e", 1, &got);
    assert_non_null(e);
    assert_int_equal(got, 3);
    assert_null(cp_image_get(&img, "a", 1, &got));
    assert_non_null(cp_image_get(&img, "a:long", 6, &got));
    assert_int_equal(got, 300);

    /* Every cut of the image ends in -1 or a clean 0 at a pair boundary */
    for (size_t cut = 0; cut < len; cut++) {
        cp_image_t t = {buf, cut};
        size_t p = 0;
        int r;
        while ((r = cp_image_next(&t, &p, &f, &fl, &v, &vl)) == 1)
            ;
        size_t b1 = cp_image_pair_size(1, 2),
               b2 = b1 + cp_image_pair_size(1, 3),
               b3 = b2 + cp_image_pair_size(6, 300);
        int boundary = cut == 0 || cut == b1 || cut == b2 || cut == b3;
        assert_int_equal(r, boundary ? 0 : -1);
    }
    /* an overlong length */
    unsigned char bad[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    cp_image_t b = {bad, sizeof(bad)};
    pos = 0;
    assert_int_equal(cp_image_next(&b, &pos, &f, &fl, &v, &vl), -1);
}

static void test_get_put_replace(void **state)
{
    (void)state;
    cp_cache_t *c = cp_cache_new(1 << 20);
    assert_non_null(c);
    assert_null(cp_cache_get(c, "a", 1));
    unsigned char buf[4096];
    cp_image_t img = {buf, make_image(buf, 3, "ab")};
    assert_int_equal(cp_cache_put(c, "a", 1, &img), 0);
    const cp_image_t *got = cp_cache_get(c, "a", 1);
    assert_non_null(got);
    assert_int_equal(got->len, img.len);
    assert_memory_equal(got->p, buf, img.len);
    assert_null(cp_cache_get(c, "ab", 2)); /* a prefix is another id */

    /* smaller image: replaced in place */
    cp_image_t small = {buf, make_image(buf, 1, "q")};
    assert_int_equal(cp_cache_put(c, "a", 1, &small), 0);
    got = cp_cache_get(c, "a", 1);
    assert_int_equal(got->len, small.len);
    assert_memory_equal(got->p, buf, small.len);
    /* larger: a new buffer */
    cp_image_t large = {buf, make_image(buf, 10, "long")};
    assert_int_equal(cp_cache_put(c, "a", 1, &large), 0);
    got = cp_cache_get(c, "a", 1);
    assert_int_equal(got->len, large.len);
    assert_memory_equal(got->p, buf, large.len);
    assert_int_equal(cp_cache_stats(c)->entries, 1);

    /* many ids: the table grows, every one found */
    for (int i = 0; i < 1000; i++) {
        char id[16];
        snprintf(id, sizeof(id), "id-%d", i);
        unsigned char b[64];
        cp_image_t im = {b, cp_image_put_pair(b, "v", 1, id, strlen(id))};
        assert_int_equal(cp_cache_put(c, id, strlen(id), &im), 0);
    }
    for (int i = 0; i < 1000; i++) {
        char id[16];
        snprintf(id, sizeof(id), "id-%d", i);
        got = cp_cache_get(c, id, strlen(id));
        assert_non_null(got);
        size_t vl = 0;
        const char *v = cp_image_get(got, "v", 1, &vl);
        assert_int_equal(vl, strlen(id));
        assert_memory_equal(v, id, vl);
    }
    assert_int_equal(cp_cache_stats(c)->entries, 1001);
    cp_cache_drop(c, "id-5", 4);
    assert_null(cp_cache_get(c, "id-5", 4));
    assert_int_equal(cp_cache_stats(c)->drops, 1);
    cp_cache_drop(c, "id-5", 4); /* absent: nothing */
    assert_int_equal(cp_cache_stats(c)->drops, 1);
    cp_cache_clear(c);
    assert_int_equal(cp_cache_stats(c)->entries, 0);
    assert_null(cp_cache_get(c, "a", 1));
    cp_cache_free(c);
}

static void test_bound_evicts_lru(void **state)
{
    (void)state;
    unsigned char buf[256];
    cp_image_t img = {buf, make_image(buf, 4, "xy")};
    /* room for about 20 such entries */
    cp_cache_t *c = cp_cache_new(20 * (img.len + 80) + 64 * sizeof(void *));
    char id[16];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        assert_int_equal(cp_cache_put(c, id, strlen(id), &img), 0);
        /* c0 is used all the time: never the least recent */
        assert_non_null(cp_cache_get(c, "c0", 2));
        assert_true(cp_cache_stats(c)->bytes <=
                    20 * (img.len + 80) + 64 * sizeof(void *));
    }
    const cp_cache_stats_t *s = cp_cache_stats(c);
    assert_true(s->entries >= 5 && s->entries < 100);
    assert_int_equal(s->entries + s->evictions, 100);
    assert_non_null(cp_cache_get(c, "c0", 2));
    assert_non_null(cp_cache_get(c, "c99", 3)); /* most recent */
    assert_null(cp_cache_get(c, "c1", 2));      /* least recent went */
    /* the survivors are the most recent ones */
    int n = (int)s->entries;
    for (int i = 99; i > 99 - (n - 1); i--) {
        snprintf(id, sizeof(id), "c%d", i);
        assert_non_null(cp_cache_get(c, id, strlen(id)));
    }
    cp_cache_free(c);

    /* a zero-byte cache keeps nothing; an image over the bound neither */
    c = cp_cache_new(0);
    assert_int_equal(cp_cache_put(c, "a", 1, &img), 0);
    assert_null(cp_cache_get(c, "a", 1));
    assert_int_equal(cp_cache_stats(c)->entries, 0);
    cp_cache_free(c);
    c = cp_cache_new(img.len / 2);
    assert_int_equal(cp_cache_put(c, "a", 1, &img), 0);
    assert_null(cp_cache_get(c, "a", 1));
    cp_cache_free(c);
}

/* A full cache turning over customers reuses the blocks of the entries it
 * evicts (no malloc per new customer): with ids of one length, a new
 * entry's image sits where an evicted one's did. */
static void test_turnover_reuses_blocks(void **state)
{
    (void)state;
    unsigned char buf[256];
    cp_image_t img = {buf, make_image(buf, 4, "xy")};
    cp_cache_t *c = cp_cache_new(8 * (img.len + 80) + 64 * sizeof(void *));
    char id[16];
    const unsigned char *seen[200];
    int n_seen = 0, reused = 0;
    const cp_cache_stats_t *s = cp_cache_stats(c);
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "c%03d", i);
        assert_int_equal(cp_cache_put(c, id, strlen(id), &img), 0);
        /* the free blocks count against the bound too */
        s = cp_cache_stats(c);
        assert_true(s->bytes + s->spare_bytes <=
                    8 * (img.len + 80) + 64 * sizeof(void *));
        const cp_image_t *got = cp_cache_get(c, id, strlen(id));
        assert_non_null(got);
        assert_memory_equal(got->p, img.p, img.len);
        int old = 0;
        for (int j = 0; j < n_seen && !old; j++)
            old = seen[j] == got->p;
        if (old)
            reused++;
        else
            seen[n_seen++] = got->p;
    }
    s = cp_cache_stats(c);
    assert_true(s->evictions >= 190);
    /* every entry after the first evictions took an evicted block: as
     * many blocks malloc'd as the cache holds, one more at most (the new
     * entry is made before the eviction that makes room for it) */
    assert_true(s->blocks <= s->entries + 1);
    assert_true(n_seen <= (int)s->blocks);
    assert_int_equal(reused + n_seen, 200);
    /* an image that outgrows its block moves to a new one, and the old
     * block serves the next new entry */
    unsigned char big[512];
    cp_image_t bimg = {big, make_image(big, 6, "xyzxyz")};
    assert_int_equal(cp_cache_put(c, "c199", 4, &bimg), 0);
    const cp_image_t *got = cp_cache_get(c, "c199", 4);
    assert_non_null(got);
    assert_int_equal(got->len, bimg.len);
    assert_memory_equal(got->p, bimg.p, bimg.len);
    uint64_t blocks = cp_cache_stats(c)->blocks;
    assert_int_equal(cp_cache_put(c, "c200", 4, &img), 0);
    s = cp_cache_stats(c);
    assert_int_equal(s->blocks, blocks); /* c199's old block, or another */
    cp_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_pairs),
        cmocka_unit_test(test_get_put_replace),
        cmocka_unit_test(test_bound_evicts_lru),
        cmocka_unit_test(test_turnover_reuses_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
