/*
 * siphash.h - SipHash-2-4, the keyed hash (a pseudo-random function) of
 * Aumasson and Bernstein, "SipHash: a fast short-input PRF" (2012), with
 * 64-bit output, and the derivation of its 128-bit key from a string.
 *
 * Unlike the hashes of hash.h its output depends on a secret key, so
 * nobody without the key can map a hash back to its input by hashing
 * candidate inputs. custpulse uses it for the customer ids in logs (log.h).
 */
#ifndef CP_SIPHASH_H
#define CP_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define CP_SIPHASH_KEY_SIZE 16

/* SipHash-2-4 of len bytes at data under the 16-byte key (k0 = bytes 0..7,
 * k1 = bytes 8..15, each little-endian, as in the paper). The result is
 * the same on every host (no endianness or alignment dependence). */
uint64_t cp_siphash24(const uint8_t key[CP_SIPHASH_KEY_SIZE], const void *data,
                      size_t len);

/* Derives a 16-byte SipHash key from a secret of len bytes:
 *   bytes 0..7  = SipHash-2-4("custpulse/idkey0", secret), little-endian,
 *   bytes 8..15 = SipHash-2-4("custpulse/idkey1", secret), little-endian,
 * the two fixed keys being those 16 ASCII bytes. Deterministic: the same
 * secret gives the same key in every process and on every host. The key
 * is only as hard to guess as the secret, so the secret should be random
 * (e.g. 32 hex digits of `openssl rand -hex 16`). */
void cp_siphash_key_derive(const void *secret, size_t len,
                           uint8_t key[CP_SIPHASH_KEY_SIZE]);

#endif
