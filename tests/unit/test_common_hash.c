/*
 * test_common_hash.c - FNV-1a 64, Kafka murmur2, MurmurHash3 x64_128 and the
 * version-8 UUID against published or independently computed vectors.
 *
 * murmur2: the vectors of Kafka's UtilsTest.testMurmur2 (Java client), plus
 * high-byte inputs from an independent port of Utils.murmur2. MurmurHash3:
 * values from the Python mmh3 package (mmh3.hash64(data, seed, True,
 * signed=False)).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

static void test_fnv1a64_vectors(void **state)
{
    (void)state;
    assert_true(cp_hash_fnv1a64("", 0) == 0xcbf29ce484222325ULL);
    assert_true(cp_hash_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(cp_hash_fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
    assert_true(cp_hash_fnv1a64("c-42", 4) == 0x479d58925d4967cbULL);
}

static void test_fnv1a32_vectors(void **state)
{
    (void)state;
    assert_true(cp_hash_fnv1a32("", 0) == 0x811c9dc5U);
    assert_true(cp_hash_fnv1a32("a", 1) == 0xe40c292cU);
    assert_true(cp_hash_fnv1a32("foobar", 6) == 0xbf9cf968U);
    assert_true(cp_hash_fnv1a32("customer.orders", 15) == 0xf415f85cU);
}

static void test_fnv1a64_length_not_nul(void **state)
{
    (void)state;
    /* Hashes exactly len bytes, embedded NULs included. */
    assert_true(cp_hash_fnv1a64("ab\0cd", 5) != cp_hash_fnv1a64("ab", 2));
    assert_true(cp_hash_fnv1a64("foobarXYZ", 6) == 0x85944171f73967e8ULL);
}

typedef struct {
    const char *key;
    int32_t java; /* Utils.murmur2(key.getBytes()) as Java prints it */
} murmur2_case_t;

static void test_murmur2_kafka_vectors(void **state)
{
    static const murmur2_case_t cases[] = {
        {"21", -973932308},
        {"", 275646681},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        {"abc", 479470107},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t h = cp_hash_murmur2(cases[i].key, strlen(cases[i].key));

        assert_int_equal((int32_t)h, cases[i].java);
    }
}

static void test_murmur2_high_bytes(void **state)
{
    (void)state;
    /* Java masks every byte with 0xff, also in the tail: no sign
     * extension. Lengths 1, 3 and 5 exercise each tail case. */
    assert_int_equal((int32_t)cp_hash_murmur2("\xff", 1), -311467685);
    assert_int_equal((int32_t)cp_hash_murmur2("\x80\x81\xfe", 3), 796990047);
    assert_int_equal((int32_t)cp_hash_murmur2("\xc3\xa9t\xc3\xa9", 5),
                     -2101193575);
}

static void test_murmur2_partition(void **state)
{
    (void)state;
    /* Java's default partitioner: toPositive(murmur2(key)) % n. */
    uint32_t h = cp_hash_murmur2("21", 2);

    assert_int_equal((h & 0x7fffffffU) % 3, 0);
    assert_int_equal((h & 0x7fffffffU) % 16, 12);
}

typedef struct {
    const char *data;
    size_t len;
    uint32_t seed;
    uint64_t h1, h2;
} mm3_case_t;

static void test_murmur3_vectors(void **state)
{
    static const mm3_case_t cases[] = {
        {"", 0, 0, 0, 0},
        {"hello", 5, 0, 0xcbd8a7b341bd9b02ULL, 0x5b1e906a48ae1d19ULL},
        {"hello", 5, 42, 0xc4b8b3c960af6f08ULL, 0x2334b875b0efbc7aULL},
        {"a", 1, 0, 0x85555565f6597889ULL, 0xe6b53a48510e895aULL},
        {"12345678", 8, 0, 0x3b4a640638b1419cULL, 0x913b0e676bd42557ULL},
        {"123456789", 9, 0, 0x3c84645edb66cca4ULL, 0x99f8fac73a1ea105ULL},
        {"0123456789abcdef", 16, 0, 0x4be06d94cf4ad1a7ULL,
         0x87c35b5c63a708daULL},
        {"0123456789abcdefg", 17, 0, 0x8e32612daa45f9deULL,
         0x0800f4c206c372eeULL},
        {"The quick brown fox jumps over the lazy dog", 43, 0,
         0xe34bbc7bbc071b6cULL, 0x7a433ca9c49a9347ULL},
        {"c-42\0rfm8\0001", 11, 0, 0xffd7ebc0e3fc0e5eULL,
         0xaa27ae5861762f59ULL},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 15, 1,
         0xe761246ae92405d3ULL, 0x114df623ca2adbb0ULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t out[2];

        cp_hash_murmur3_128(cases[i].data, cases[i].len, cases[i].seed, out);
        assert_true(out[0] == cases[i].h1);
        assert_true(out[1] == cases[i].h2);
    }
}

static void test_murmur3_all_bytes_seeded(void **state)
{
    unsigned char data[256];
    uint64_t out[2];

    (void)state;
    for (int i = 0; i < 256; i++)
        data[i] = (unsigned char)i;
    cp_hash_murmur3_128(data, sizeof(data), 0xdeadbeef, out);
    assert_true(out[0] == 0xea7abf8fa54a76b4ULL);
    assert_true(out[1] == 0x055e8c5a707f4ed8ULL);
}

static void test_murmur3_unaligned_input(void **state)
{
    char buf[64];
    uint64_t a[2], b[2];

    (void)state;
    /* Same bytes at an odd address hash the same (no aligned loads). */
    memcpy(buf + 1, "The quick brown fox jumps over the lazy dog", 43);
    cp_hash_murmur3_128(buf + 1, 43, 0, a);
    cp_hash_murmur3_128("The quick brown fox jumps over the lazy dog", 43, 0,
                        b);
    assert_memory_equal(a, b, sizeof(a));
}

static void test_uuid8_contract_example(void **state)
{
    uint64_t h[2];
    char out[37];

    (void)state;
    /* id of (customer "c-42", model "rfm8", seq 1) per contracts section 4 */
    cp_hash_murmur3_128("c-42\0rfm8\0001", 11, 0, h);
    cp_uuid8_format(h, out);
    assert_string_equal(out, "5e0efce3-c0eb-87ff-992f-766158ae27aa");
}

static void test_uuid8_byte_order_and_bits(void **state)
{
    const uint64_t h[2] = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    const uint64_t ones[2] = {UINT64_MAX, UINT64_MAX};
    const uint64_t zeros[2] = {0, 0};
    char out[37];

    (void)state;
    cp_uuid8_format(h, out);
    assert_string_equal(out, "efcdab89-6745-8301-9032-547698badcfe");
    cp_uuid8_format(ones, out);
    assert_string_equal(out, "ffffffff-ffff-8fff-bfff-ffffffffffff");
    cp_uuid8_format(zeros, out);
    assert_string_equal(out, "00000000-0000-8000-8000-000000000000");
    assert_int_equal(strlen(out), 36);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a64_vectors),
        cmocka_unit_test(test_fnv1a64_length_not_nul),
        cmocka_unit_test(test_fnv1a32_vectors),
        cmocka_unit_test(test_murmur2_kafka_vectors),
        cmocka_unit_test(test_murmur2_high_bytes),
        cmocka_unit_test(test_murmur2_partition),
        cmocka_unit_test(test_murmur3_vectors),
        cmocka_unit_test(test_murmur3_all_bytes_seeded),
        cmocka_unit_test(test_murmur3_unaligned_input),
        cmocka_unit_test(test_uuid8_contract_example),
        cmocka_unit_test(test_uuid8_byte_order_and_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
