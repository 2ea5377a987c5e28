/*
 * cache.h - a bounded cache of recently written customer hashes
 * (docs/performance.md "State cache").
 *
 * An entry is the customer hash as custpulse last wrote it: an image, the
 * (field, value) pairs of the hash byte for byte, as HGETALL would return
 * them. A batch whose customer is cached parses the image instead of
 * reading Redis; the write's version compare-and-set validates it (a
 * refused write drops the entry and reads Redis), so a stale entry costs a
 * round trip, never a wrong state. Entries are only put for customers with
 * no outbox left, and the whole cache is dropped when the partitions or
 * the Redis server change.
 *
 * Bounded by bytes (entry headers, ids and images, and the few free blocks
 * kept for reuse); the least recently used entries go first. Not
 * thread-safe: the loop thread only.
 */
#ifndef CP_CACHE_H
#define CP_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* ---- images ---------------------------------------------------------------
 *
 * A hash image: for each pair, the field's length (LEB128), its bytes, the
 * value's length (LEB128), its bytes. Field order is the writer's. */

typedef struct cp_image_s {
    const unsigned char *p;
    size_t len;
} cp_image_t;

/* Iterates over an image: *pos starts at 0. Returns 1 and the pair, 0 at
 * the end, -1 for a malformed image. */
int cp_image_next(const cp_image_t *img, size_t *pos, const char **f,
                  size_t *flen, const char **v, size_t *vlen);

/* Bytes one pair takes in an image. */
size_t cp_image_pair_size(size_t flen, size_t vlen);

/* Appends one pair at out (cp_image_pair_size bytes); returns the bytes
 * written. */
size_t cp_image_put_pair(unsigned char *out, const char *f, size_t flen,
                         const char *v, size_t vlen);

/* The value of field f, or NULL (vlen untouched). */
const char *cp_image_get(const cp_image_t *img, const char *f, size_t flen,
                         size_t *vlen);

/* ---- the cache ------------------------------------------------------------
 */

typedef struct cp_cache_s cp_cache_t;

typedef struct cp_cache_stats_s {
    uint64_t hits;
    uint64_t misses;
    uint64_t puts;
    uint64_t evictions;   /* dropped to stay within the bound */
    uint64_t drops;       /* invalidated (refused write, unknown outcome) */
    uint64_t blocks;      /* entry blocks malloc'd (the others were reused) */
    uint64_t entries;     /* now */
    uint64_t bytes;       /* now, of the entries */
    uint64_t spare_bytes; /* now, of the free blocks kept for reuse */
} cp_cache_stats_t;

/* A cache of at most max_bytes; NULL on allocation failure. max_bytes 0
 * makes a cache that keeps nothing. */
cp_cache_t *cp_cache_new(size_t max_bytes);
void cp_cache_free(cp_cache_t *c);

/* The image of id (valid until the next call that changes the cache), and
 * the entry becomes the most recently used; NULL when not cached. */
const cp_image_t *cp_cache_get(cp_cache_t *c, const char *id, size_t id_len);

/* Puts (copies) id's image, replacing an older one; evicts least recently
 * used entries to stay within the bound. An image larger than the bound
 * is not kept. Returns 0, or -1 on allocation failure (the entry is then
 * absent). */
int cp_cache_put(cp_cache_t *c, const char *id, size_t id_len,
                 const cp_image_t *img);

/* Drops id's entry (if any). */
void cp_cache_drop(cp_cache_t *c, const char *id, size_t id_len);

/* Drops every entry. */
void cp_cache_clear(cp_cache_t *c);

/* The counters (the free blocks' figures brought up to date). */
const cp_cache_stats_t *cp_cache_stats(cp_cache_t *c);

#endif
