/*
 * arena.h - a bump allocator for per-batch data (decoded strings, outbox
 * text, watermark arrays). Everything allocated from it dies together at
 * cp_arena_reset, which keeps the first chunk so a warm batch loop does not
 * call malloc.
 */
#ifndef CP_ARENA_H
#define CP_ARENA_H

#include <stddef.h>

typedef struct cp_arena_chunk_s cp_arena_chunk_t;

typedef struct cp_arena_s {
    cp_arena_chunk_t *head; /* current chunk; older ones follow ->next */
    size_t chunk_size;
} cp_arena_t;

void cp_arena_init(cp_arena_t *a, size_t chunk_size);
/* Frees every chunk. */
void cp_arena_free(cp_arena_t *a);
/* Drops all allocations; keeps one chunk of the default size. */
void cp_arena_reset(cp_arena_t *a);
/* size bytes aligned to 16; NULL on allocation failure. */
void *cp_arena_alloc(cp_arena_t *a, size_t size);
/* Copy of s[0..len) plus a NUL; NULL on allocation failure. */
char *cp_arena_strndup(cp_arena_t *a, const char *s, size_t len);

#endif
