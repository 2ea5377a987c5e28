/*
 * test_consumer_arena.c - the batch arena: alignment, big one-off chunks,
 * and reset keeping the default-size chunks for the next round (so a warm
 * batch loop does not call malloc) up to the number set (one unless
 * cp_arena_set_keep says more).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "arena.h"

static void test_alloc_aligned(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 1024);
    char *p = cp_arena_alloc(&a, 3);
    char *q = cp_arena_alloc(&a, 17);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    assert_int_equal((uintptr_t)q % 16, 0);
    assert_ptr_equal(q, p + 16);
    char *s = cp_arena_strndup(&a, "abcdef", 3);
    assert_string_equal(s, "abc");
    cp_arena_free(&a);
}

/* Reset keeps the default-size chunks: the same memory serves the next
 * round, in the same order of chunks; a big one-off chunk is freed. */
static void test_reset_reuses_chunks(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 1024);
    cp_arena_set_keep(&a, 8);
    void *first[8];
    for (int i = 0; i < 8; i++)
        first[i] = cp_arena_alloc(&a, 1000); /* one chunk each */
    void *big = cp_arena_alloc(&a, 5000);
    assert_non_null(big);
    cp_arena_reset(&a);
    assert_null(a.head);
    assert_int_equal(a.n_spare, 8);
    int same = 0;
    for (int i = 0; i < 8; i++) {
        void *p = cp_arena_alloc(&a, 1000);
        for (int j = 0; j < 8; j++)
            same += p == first[j];
    }
    assert_int_equal(same, 8); /* every chunk reused, none malloc'd */
    assert_int_equal(a.n_spare, 0);
    cp_arena_free(&a);
}

/* At most `keep` are kept (1 by default); the rest go back to malloc. */
static void test_reset_keeps_at_most(void **state)
{
    (void)state;
    cp_arena_t a;
    cp_arena_init(&a, 64);
    for (int i = 0; i < 10; i++)
        assert_non_null(cp_arena_alloc(&a, 64));
    cp_arena_reset(&a);
    assert_int_equal(a.n_spare, 1); /* the default */
    cp_arena_set_keep(&a, 32);
    for (int i = 0; i < 40; i++)
        assert_non_null(cp_arena_alloc(&a, 64));
    cp_arena_reset(&a);
    assert_int_equal(a.n_spare, 32);
    cp_arena_reset(&a); /* nothing in use: nothing changes */
    assert_int_equal(a.n_spare, 32);
    cp_arena_free(&a);
    assert_null(a.spare);
    assert_int_equal(a.n_spare, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_aligned),
        cmocka_unit_test(test_reset_reuses_chunks),
        cmocka_unit_test(test_reset_keeps_at_most),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
