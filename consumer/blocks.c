/*
 * blocks.c - bounded lists of free blocks for reuse; see blocks.h.
 */
#include "blocks.h"

#include <stdlib.h>

void cp_blocks_init(cp_blocks_t *b, size_t header, size_t round, int max)
{
    b->head = NULL;
    b->n = 0;
    b->max = max;
    b->header = header;
    b->round = round ? round : 1;
    b->kept_bytes = 0;
    b->mallocs = 0;
}

void *cp_blocks_get(cp_blocks_t *b, size_t need)
{
    for (cp_block_t **pp = &b->head; *pp; pp = &(*pp)->free_next) {
        cp_block_t *k = *pp;
        if (k->cap >= need && k->cap / 2 <= need) {
            *pp = k->free_next;
            b->n--;
            b->kept_bytes -= cp_blocks_cost(b, k->cap);
            return k;
        }
    }
    size_t cap = (need + b->round - 1) / b->round * b->round;
    cp_block_t *k = malloc(b->header + cap);
    if (k) {
        k->cap = cap;
        b->mallocs++;
    }
    return k;
}

void cp_blocks_put(cp_blocks_t *b, void *blk)
{
    cp_block_t *k = blk;
    if (b->n >= b->max) {
        free(k);
        return;
    }
    k->free_next = b->head;
    b->head = k;
    b->n++;
    b->kept_bytes += cp_blocks_cost(b, k->cap);
}

void cp_blocks_trim(cp_blocks_t *b, uint64_t limit)
{
    while (b->head && b->kept_bytes > limit) {
        cp_block_t *k = b->head;
        b->head = k->free_next;
        b->n--;
        b->kept_bytes -= cp_blocks_cost(b, k->cap);
        free(k);
    }
}
