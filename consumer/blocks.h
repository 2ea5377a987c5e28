/*
 * blocks.h - a bounded list of free variable-size blocks for reuse, so that
 * what the loop allocates per customer (state cache entries, pending
 * outbox clears) comes back to it instead of to malloc.
 *
 * A block is a struct whose first member is a cp_block_t, followed by
 * `cap` bytes of room. cp_blocks_get hands out a kept block with room
 * for `need` bytes (first fit, at most twice `need`), or mallocs one of
 * `need` rounded up; cp_blocks_put keeps a block (up to `max`) or frees
 * it. Not thread-safe: the loop thread only.
 */
#ifndef CP_BLOCKS_H
#define CP_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

typedef struct cp_block_s {
    struct cp_block_s *free_next; /* while kept */
    size_t cap;                   /* bytes of room after the struct */
} cp_block_t;

typedef struct cp_blocks_s {
    cp_block_t *head; /* kept blocks */
    int n, max;
    size_t header;       /* sizeof the struct a block starts with */
    size_t round;        /* room of a new block: a multiple of this */
    uint64_t kept_bytes; /* header + cap of each kept block */
    uint64_t mallocs;    /* blocks malloc'd (the others were reused) */
} cp_blocks_t;

void cp_blocks_init(cp_blocks_t *b, size_t header, size_t round, int max);
/* A block with cap >= need; NULL when out of memory. */
void *cp_blocks_get(cp_blocks_t *b, size_t need);
/* Keeps blk for reuse, or frees it when max are kept already. */
void cp_blocks_put(cp_blocks_t *b, void *blk);
/* Frees kept blocks until kept_bytes <= limit. */
void cp_blocks_trim(cp_blocks_t *b, uint64_t limit);
/* The bytes a block of `cap` room takes (header + cap). */
static inline uint64_t cp_blocks_cost(const cp_blocks_t *b, size_t cap)
{
    return b->header + cap;
}

#endif
