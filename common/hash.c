/*
 * hash.c - FNV-1a 64, Kafka's murmur2 and MurmurHash3 x64_128.
 *
 * Their outputs are part of custpulse's contracts (de-duplication hashes in
 * Redis, Kafka partition placement, CloudEvents ids), so every function here
 * reads its input byte by byte in a fixed (little-endian) order and never
 * depends on the host's endianness or alignment.
 */
#include "hash.h"

/* ---------------------------------------------------------------- FNV-1a */

uint64_t cp_hash_fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint32_t cp_hash_fnv1a32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = 0x811c9dc5U;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x01000193U;
    }
    return h;
}

/* --------------------------------------------------------------- murmur2 */

/* Little-endian load of n (0..8) bytes; shared by both murmurs. */
static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Mirrors org.apache.kafka.common.utils.Utils.murmur2. Java's int arithmetic
 * wraps, which uint32_t reproduces; Java masks every byte with 0xff (also in
 * the tail), so bytes are unsigned here too; its ">>>" is a logical shift,
 * which is what ">>" does on uint32_t. The length is folded in as Java's
 * int, i.e. modulo 2^32. */
uint32_t cp_hash_murmur2(const void *data, size_t len)
{
    const unsigned char *p = data;
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cU ^ (uint32_t)len;
    size_t nblocks = len / 4;

    for (size_t i = 0; i < nblocks; i++) {
        uint32_t k = (uint32_t)load_le(p + 4 * i, 4);

        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    if (len % 4 != 0) {
        h ^= (uint32_t)load_le(p + 4 * nblocks, len % 4);
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

/* ------------------------------------------------------ MurmurHash3 x64 */

#define MM3_C1 0x87c37b91114253d5ULL
#define MM3_C2 0x4cf5ad432745937fULL

static uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* Final avalanche of one 64-bit lane. */
static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

/* Pre-mixes of the two lanes' input words (also used for the tail). */
static uint64_t mix_k1(uint64_t k1)
{
    return rotl64(k1 * MM3_C1, 31) * MM3_C2;
}

static uint64_t mix_k2(uint64_t k2)
{
    return rotl64(k2 * MM3_C2, 33) * MM3_C1;
}

void cp_hash_murmur3_128(const void *data, size_t len, uint32_t seed,
                         uint64_t out[2])
{
    const unsigned char *p = data;
    size_t nblocks = len / 16;
    size_t tail = len % 16;
    uint64_t h1 = seed, h2 = seed;

    for (size_t i = 0; i < nblocks; i++) {
        const unsigned char *blk = p + 16 * i;

        h1 ^= mix_k1(load_le(blk, 8));
        h1 = rotl64(h1, 27) + h2;
        h1 = h1 * 5 + 0x52dce729;
        h2 ^= mix_k2(load_le(blk + 8, 8));
        h2 = rotl64(h2, 31) + h1;
        h2 = h2 * 5 + 0x38495ab5;
    }

    /* The tail's bytes 8..14 feed lane 2 and bytes 0..7 lane 1; a lane
     * with no tail bytes is left alone (not mixed with a zero word). */
    p += 16 * nblocks;
    if (tail > 8)
        h2 ^= mix_k2(load_le(p + 8, tail - 8));
    if (tail > 0)
        h1 ^= mix_k1(load_le(p, tail > 8 ? 8 : tail));

    h1 ^= (uint64_t)len;
    h2 ^= (uint64_t)len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    out[0] = h1;
    out[1] = h2;
}

/* ------------------------------------------------------------- UUID v8 */

void cp_uuid8_format(const uint64_t h[2], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t o = 0;

    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(h[0] >> (8 * i));
        b[8 + i] = (unsigned char)(h[1] >> (8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x80); /* version 8 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
}
