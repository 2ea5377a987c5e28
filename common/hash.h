/*
 * hash.h - the non-cryptographic hashes custpulse relies on for identity
 * and placement. Each is fixed by a contract (docs/contracts.md) and must
 * never change output for the same input.
 */
#ifndef CP_HASH_H
#define CP_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
uint64_t cp_hash_fnv1a64(const void *data, size_t len);

/* FNV-1a 32-bit (offset basis 0x811c9dc5, prime 0x01000193). */
uint32_t cp_hash_fnv1a32(const void *data, size_t len);

/* Kafka's murmur2 (seed 0x9747b28c), as the Java client's default
 * partitioner uses it: partition = (murmur2(key) & 0x7fffffff) % n. */
uint32_t cp_hash_murmur2(const void *data, size_t len);

/* MurmurHash3 x64_128 with the given seed; out[0] = h1, out[1] = h2. */
void cp_hash_murmur3_128(const void *data, size_t len, uint32_t seed,
                         uint64_t out[2]);

/* Formats h as a version-8 UUID per docs/contracts.md section 4: the 16
 * bytes are h[0] then h[1], each little-endian; byte 6 gets version 8,
 * byte 8 variant 10; lower-case 8-4-4-4-12 hex plus NUL into out. */
void cp_uuid8_format(const uint64_t h[2], char out[37]);

#endif
