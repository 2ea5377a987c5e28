/*
 * test_common_siphash.c - SipHash-2-4 and the key derivation.
 *
 * Vectors: key = 00 01 .. 0f, message = 00 01 .. (n-1) for n = 0..63. The
 * values are vectors_sip64 of the authors' reference repository
 * (github.com/veorq/SipHash, vectors.h; there as little-endian bytes), and
 * were checked against an independent Python implementation written from
 * the paper, which also reproduces the paper's appendix A example (n = 15
 * -> a129ca6149be45e5). The derived-key values come from that same Python
 * implementation applied to the derivation documented in siphash.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "siphash.h"

static const uint8_t ref_key[CP_SIPHASH_KEY_SIZE] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};

/* SipHash-2-4(ref_key, 00 01 .. (n-1)) at index n */
static const uint64_t ref_vectors[64] = {
    0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL,
    0x85676696d7fb7e2dULL, 0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL,
    0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL, 0x93f5f5799a932462ULL,
    0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
    0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL,
    0xa129ca6149be45e5ULL, 0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL,
    0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL, 0xbed65cf21aa2ee98ULL,
    0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
    0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL,
    0x2f2e6163076bcfadULL, 0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL,
    0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL, 0x7127512f72f27cceULL,
    0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
    0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL,
    0x9abfd8766a33735cULL, 0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL,
    0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL, 0xf935451de4f21df2ULL,
    0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
    0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL,
    0xa192d576b245165aULL, 0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL,
    0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL, 0xb78dbfaf3a8d83bdULL,
    0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
    0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL,
    0x958a324ceb064572ULL,
};

static void test_reference_vectors(void **state)
{
    uint8_t msg[64];

    (void)state;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* Every tail length 0..7, with 0 to 7 whole words before it. */
    for (size_t n = 0; n < 64; n++) {
        uint64_t h = cp_siphash24(ref_key, msg, n);

        if (h != ref_vectors[n])
            fail_msg("n = %zu: got %016llx, want %016llx", n,
                     (unsigned long long)h, (unsigned long long)ref_vectors[n]);
    }
}

static void test_paper_example(void **state)
{
    const uint8_t msg[15] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};

    (void)state;
    /* Appendix A of the paper. */
    assert_true(cp_siphash24(ref_key, msg, sizeof(msg)) ==
                0xa129ca6149be45e5ULL);
}

static void test_empty_null_data(void **state)
{
    (void)state;
    /* len 0 reads nothing, so data may be NULL. */
    assert_true(cp_siphash24(ref_key, NULL, 0) == ref_vectors[0]);
}

static void test_unaligned_input(void **state)
{
    uint8_t buf[80];

    (void)state;
    for (int off = 1; off < 8; off++) {
        for (int i = 0; i < 63; i++)
            buf[off + i] = (uint8_t)i;
        assert_true(cp_siphash24(ref_key, buf + off, 63) == ref_vectors[63]);
    }
}

static void test_every_key_bit_matters(void **state)
{
    const uint64_t base = cp_siphash24(ref_key, "c-42", 4);

    (void)state;
    for (int bit = 0; bit < 8 * CP_SIPHASH_KEY_SIZE; bit++) {
        uint8_t k[CP_SIPHASH_KEY_SIZE];

        memcpy(k, ref_key, sizeof(k));
        k[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_true(cp_siphash24(k, "c-42", 4) != base);
    }
}

static void test_derive_pinned(void **state)
{
    static const uint8_t want_k[CP_SIPHASH_KEY_SIZE] = {
        0x05, 0x56, 0xbb, 0xe4, 0xc1, 0xff, 0x62, 0x19,
        0x69, 0x69, 0xfb, 0x12, 0xbc, 0x71, 0x6c, 0x52};
    uint8_t k[CP_SIPHASH_KEY_SIZE];

    (void)state;
    /* Pinned: a change here changes every hash in every existing log. */
    cp_siphash_key_derive("k", 1, k);
    assert_memory_equal(k, want_k, sizeof(k));
    assert_true(cp_siphash24(k, "c-1", 3) == 0x9ac18d6ed7e760abULL);
    assert_true(cp_siphash24(k, "c-42", 4) == 0xb8bde997d57ad625ULL);
    cp_siphash_key_derive("another key", 11, k);
    assert_true(cp_siphash24(k, "c-1", 3) == 0x3c383eafbafcaee6ULL);
}

static void test_derive_same_and_different(void **state)
{
    static const char *const secrets[] = {
        "k", "K", "k ", "kk", "", "a much longer secret string"};
    const size_t n = sizeof(secrets) / sizeof(secrets[0]);
    uint8_t a[CP_SIPHASH_KEY_SIZE], b[CP_SIPHASH_KEY_SIZE];

    (void)state;
    for (size_t i = 0; i < n; i++) {
        cp_siphash_key_derive(secrets[i], strlen(secrets[i]), a);
        cp_siphash_key_derive(secrets[i], strlen(secrets[i]), b);
        assert_memory_equal(a, b, sizeof(a)); /* deterministic */
        /* the two halves are different functions of the secret */
        assert_memory_not_equal(a, a + 8, 8);
        for (size_t j = 0; j < i; j++) {
            cp_siphash_key_derive(secrets[j], strlen(secrets[j]), b);
            assert_memory_not_equal(a, b, sizeof(a));
            assert_true(cp_siphash24(a, "c-1", 3) != cp_siphash24(b, "c-1", 3));
        }
    }
    /* The length is part of the secret: a trailing NUL counts. */
    cp_siphash_key_derive("ab\0", 3, a);
    cp_siphash_key_derive("ab", 2, b);
    assert_memory_not_equal(a, b, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_paper_example),
        cmocka_unit_test(test_empty_null_data),
        cmocka_unit_test(test_unaligned_input),
        cmocka_unit_test(test_every_key_bit_matters),
        cmocka_unit_test(test_derive_pinned),
        cmocka_unit_test(test_derive_same_and_different),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
