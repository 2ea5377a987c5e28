/*
 * siphash.c - SipHash-2-4 with 64-bit output, written from the algorithm
 * description in Aumasson and Bernstein, "SipHash: a fast short-input
 * PRF" (2012), section 2, and a key derivation built on it.
 *
 * Words are read byte by byte as little-endian, as the paper specifies, so
 * the output never depends on the host's endianness or alignment.
 */
#include "siphash.h"

/* ---------------------------------------------------------------- core */

typedef struct {
    uint64_t v0, v1, v2, v3;
} sip_state_t;

static uint64_t rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* Little-endian load of n (0..8) bytes. */
static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* One SipRound: two ARX half-rounds over the pairs (v0,v1) and (v2,v3). */
static void sip_round(sip_state_t *s)
{
    s->v0 += s->v1;
    s->v1 = rotl64(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl64(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl64(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl64(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl64(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl64(s->v2, 32);
}

/* Compression of one message word m: c = 2 SipRounds. */
static void sip_compress(sip_state_t *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

uint64_t cp_siphash24(const uint8_t key[CP_SIPHASH_KEY_SIZE], const void *data,
                      size_t len)
{
    const unsigned char *p = data;
    uint64_t k0 = load_le(key, 8), k1 = load_le(key + 8, 8);
    /* Initialisation: the constants spell "somepseudorandomlygeneratedbytes" */
    sip_state_t s = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                     k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    size_t tail = len % 8;

    for (size_t i = 0; i + 8 <= len; i += 8)
        sip_compress(&s, load_le(p + i, 8));
    /* The last word: the 0..7 remaining bytes, zero padding, and len mod
     * 256 in the top byte (so a message ending in zero bytes differs from
     * a shorter one). */
    sip_compress(&s, (tail > 0 ? load_le(p + len - tail, tail) : 0) |
                         ((uint64_t)len << 56));

    /* Finalisation: d = 4 SipRounds. */
    s.v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/* ---------------------------------------------------------- derivation */

void cp_siphash_key_derive(const void *secret, size_t len,
                           uint8_t key[CP_SIPHASH_KEY_SIZE])
{
    /* Two fixed, public keys (16 ASCII bytes each): one SipHash per half
     * of the derived key, so the halves are independent functions of the
     * secret. Changing them would change every logged hash. */
    static const uint8_t fixed[2][CP_SIPHASH_KEY_SIZE + 1] = {
        "custpulse/idkey0", "custpulse/idkey1"};

    for (int half = 0; half < 2; half++) {
        uint64_t h = cp_siphash24(fixed[half], secret, len);

        for (int i = 0; i < 8; i++)
            key[8 * half + i] = (uint8_t)(h >> (8 * i));
    }
}
