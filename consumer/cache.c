/*
 * cache.c - the bounded state cache (cache.h).
 *
 * Chained hash table over FNV-1a of the id, with a doubly-linked list in
 * use order (head = most recent). Each entry is one block: the entry, then
 * its id and image, with room rounded up to BLOCK_ROUND bytes, reused when
 * a new image fits. Blocks of removed entries (evictions, images that
 * outgrew their block) wait on a short spare list for the next new entry,
 * so a full cache turning over customers does not call malloc.
 */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "hash.h"
#include "num.h"

/* ---- images ---------------------------------------------------------------
 */

/* A length; returns 0 or -1 (truncated, overlong, beyond the image). */
static int len_get(const cp_image_t *img, size_t *pos, size_t *out)
{
    uint64_t v;
    size_t n = cp_uvarint_get(img->p + *pos, img->len - *pos, &v);
    if (n == 0 || v > SIZE_MAX)
        return -1;
    *pos += n;
    *out = (size_t)v;
    return 0;
}

int cp_image_next(const cp_image_t *img, size_t *pos, const char **f,
                  size_t *flen, const char **v, size_t *vlen)
{
    if (*pos >= img->len)
        return 0;
    size_t fl, vl;
    if (len_get(img, pos, &fl) != 0 || fl > img->len - *pos)
        return -1;
    *f = (const char *)img->p + *pos;
    *pos += fl;
    if (len_get(img, pos, &vl) != 0 || vl > img->len - *pos)
        return -1;
    *v = (const char *)img->p + *pos;
    *pos += vl;
    *flen = fl;
    *vlen = vl;
    return 1;
}

size_t cp_image_pair_size(size_t flen, size_t vlen)
{
    return cp_uvarint_size(flen) + flen + cp_uvarint_size(vlen) + vlen;
}

size_t cp_image_put_pair(unsigned char *out, const char *f, size_t flen,
                         const char *v, size_t vlen)
{
    size_t n = cp_uvarint_put(out, flen);
    memcpy(out + n, f, flen);
    n += flen;
    n += cp_uvarint_put(out + n, vlen);
    if (vlen)
        memcpy(out + n, v, vlen);
    return n + vlen;
}

const char *cp_image_get(const cp_image_t *img, const char *f, size_t flen,
                         size_t *vlen)
{
    size_t pos = 0, fl, vl;
    const char *pf, *pv;
    while (cp_image_next(img, &pos, &pf, &fl, &pv, &vl) == 1)
        if (fl == flen && memcmp(pf, f, flen) == 0) {
            *vlen = vl;
            return pv;
        }
    return NULL;
}

/* ---- the cache ------------------------------------------------------------
 */

typedef struct entry_s {
    cp_block_t blk;        /* blk.cap: bytes of data */
    struct entry_s *chain; /* next in the bucket */
    struct entry_s *prev;  /* use order: toward the most recent */
    struct entry_s *next;  /* toward the least recent */
    uint64_t hash;
    size_t id_len;
    cp_image_t img;
    _Alignas(16) unsigned char data[]; /* id, then the image */
} entry_t;

#define BLOCK_ROUND 64
#define SPARE_MAX 16

struct cp_cache_s {
    size_t max_bytes;
    entry_t **buckets;
    size_t n_buckets; /* a power of two, or 0 */
    entry_t *head, *tail;
    cp_blocks_t spare; /* free blocks, within the bound too */
    cp_cache_stats_t stats;
};

#define ENTRY_COST(e) (sizeof(entry_t) + (e)->blk.cap)

cp_cache_t *cp_cache_new(size_t max_bytes)
{
    cp_cache_t *c = calloc(1, sizeof(*c));
    if (c) {
        c->max_bytes = max_bytes;
        cp_blocks_init(&c->spare, sizeof(entry_t), BLOCK_ROUND, SPARE_MAX);
    }
    return c;
}

static void unlink_lru(cp_cache_t *c, entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(cp_cache_t *c, entry_t *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static entry_t **find_slot(cp_cache_t *c, const char *id, size_t id_len,
                           uint64_t h)
{
    if (!c->n_buckets)
        return NULL;
    entry_t **pp = &c->buckets[h & (c->n_buckets - 1)];
    while (*pp) {
        entry_t *e = *pp;
        if (e->hash == h && e->id_len == id_len &&
            memcmp(e->data, id, id_len) == 0)
            return pp;
        pp = &e->chain;
    }
    return pp;
}

static void remove_entry(cp_cache_t *c, entry_t **slot)
{
    entry_t *e = *slot;
    *slot = e->chain;
    unlink_lru(c, e);
    c->stats.bytes -= ENTRY_COST(e);
    c->stats.entries--;
    cp_blocks_put(&c->spare, e);
}

/* Frees kept blocks while the entries and they exceed the bound. */
static void trim_spares(cp_cache_t *c)
{
    cp_blocks_trim(&c->spare, c->max_bytes > c->stats.bytes
                                  ? c->max_bytes - c->stats.bytes
                                  : 0);
}

static void drop_entry(cp_cache_t *c, entry_t *e)
{
    entry_t **pp = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*pp != e)
        pp = &(*pp)->chain;
    remove_entry(c, pp);
}

/* Doubles the buckets (or makes the first 64); keeps the old ones on
 * allocation failure (chains grow longer, nothing is lost). */
static void grow(cp_cache_t *c)
{
    size_t n = c->n_buckets ? c->n_buckets * 2 : 64;
    entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < c->n_buckets; i++) {
        entry_t *e = c->buckets[i];
        while (e) {
            entry_t *next = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    c->stats.bytes += (n - c->n_buckets) * sizeof(*b);
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

void cp_cache_free(cp_cache_t *c)
{
    if (!c)
        return;
    cp_cache_clear(c);
    cp_blocks_trim(&c->spare, 0);
    free(c->buckets);
    free(c);
}

const cp_image_t *cp_cache_get(cp_cache_t *c, const char *id, size_t id_len)
{
    entry_t **slot = find_slot(c, id, id_len, cp_hash_fnv1a64(id, id_len));
    if (!slot || !*slot) {
        c->stats.misses++;
        return NULL;
    }
    entry_t *e = *slot;
    unlink_lru(c, e);
    push_front(c, e);
    c->stats.hits++;
    return &e->img;
}

int cp_cache_put(cp_cache_t *c, const char *id, size_t id_len,
                 const cp_image_t *img)
{
    uint64_t h = cp_hash_fnv1a64(id, id_len);
    size_t need = id_len + img->len;
    const size_t cost =
        sizeof(entry_t) + (need + BLOCK_ROUND - 1) / BLOCK_ROUND * BLOCK_ROUND;
    if (cost > c->max_bytes) {
        cp_cache_drop(c, id, id_len);
        return 0;
    }
    if (c->stats.entries >= c->n_buckets)
        grow(c);
    entry_t **slot = find_slot(c, id, id_len, h);
    if (!slot) {
        cp_cache_drop(c, id, id_len);
        return -1;
    }
    entry_t *e = *slot;
    if (e && e->blk.cap < need) {
        remove_entry(c, slot); /* a new buffer: simpler as a new entry */
        e = NULL;
    }
    if (!e) {
        /* Room first, so that the blocks evicted can serve this entry. */
        while (c->stats.bytes + cost > c->max_bytes && c->tail) {
            drop_entry(c, c->tail);
            c->stats.evictions++;
        }
        if (!(e = cp_blocks_get(&c->spare, need)))
            return -1;
        slot = find_slot(c, id, id_len, h);
        e->prev = e->next = NULL;
        e->hash = h;
        e->id_len = id_len;
        memcpy(e->data, id, id_len);
        e->chain = *slot;
        *slot = e;
        c->stats.entries++;
        c->stats.bytes += ENTRY_COST(e);
    } else {
        unlink_lru(c, e);
    }
    memcpy(e->data + id_len, img->p, img->len);
    e->img.p = e->data + id_len;
    e->img.len = img->len;
    push_front(c, e);
    c->stats.puts++;
    /* A spare block may be larger than cost (up to twice the image). */
    while (c->stats.bytes > c->max_bytes && c->tail && c->tail != e) {
        drop_entry(c, c->tail);
        c->stats.evictions++;
    }
    trim_spares(c);
    return 0;
}

void cp_cache_drop(cp_cache_t *c, const char *id, size_t id_len)
{
    entry_t **slot = find_slot(c, id, id_len, cp_hash_fnv1a64(id, id_len));
    if (slot && *slot) {
        remove_entry(c, slot);
        c->stats.drops++;
    }
}

void cp_cache_clear(cp_cache_t *c)
{
    while (c->head)
        drop_entry(c, c->head);
}

const cp_cache_stats_t *cp_cache_stats(cp_cache_t *c)
{
    c->stats.spare_bytes = c->spare.kept_bytes;
    c->stats.blocks = c->spare.mallocs;
    return &c->stats;
}
