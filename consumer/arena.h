/*
 * arena.h - a bump allocator for per-batch data (decoded strings, outbox
 * text, watermark arrays). Everything allocated from it dies together at
 * cp_arena_reset, which keeps chunks of the default size (one, or as many
 * as cp_arena_set_keep allows) for the next round, so a warm batch loop
 * does not call malloc.
 */
#ifndef CP_ARENA_H
#define CP_ARENA_H

#include <stddef.h>

typedef struct cp_arena_chunk_s cp_arena_chunk_t;

typedef struct cp_arena_s {
    cp_arena_chunk_t *head;  /* current chunk; older ones follow ->next */
    cp_arena_chunk_t *spare; /* empty default-size chunks, kept by reset */
    int n_spare;
    int keep; /* chunks reset keeps at most (1 unless set) */
    size_t chunk_size;
} cp_arena_t;

void cp_arena_init(cp_arena_t *a, size_t chunk_size);
/* How many default-size chunks cp_arena_reset keeps (at least 1): the
 * batch arena keeps what a batch takes; an arena that serves one big
 * message now and then should not pin it. */
void cp_arena_set_keep(cp_arena_t *a, int chunks);
/* Frees every chunk. */
void cp_arena_free(cp_arena_t *a);
/* Drops all allocations; keeps up to `keep` chunks of the default size
 * (an oversized chunk from one big message is freed). */
void cp_arena_reset(cp_arena_t *a);
/* size bytes aligned to 16; NULL on allocation failure. */
void *cp_arena_alloc(cp_arena_t *a, size_t size);
/* Copy of s[0..len) plus a NUL; NULL on allocation failure. */
char *cp_arena_strndup(cp_arena_t *a, const char *s, size_t len);

#endif
