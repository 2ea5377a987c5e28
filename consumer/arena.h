/*
 * arena.h - a bump allocator for per-batch data (decoded strings, outbox
 * text, watermark arrays). Everything allocated from it dies together at
 * cp_arena_reset, which keeps the chunks of the default size (up to
 * CP_ARENA_KEEP_CHUNKS) for the next round, so a warm batch loop does not
 * call malloc.
 */
#ifndef CP_ARENA_H
#define CP_ARENA_H

#include <stddef.h>

typedef struct cp_arena_chunk_s cp_arena_chunk_t;

/* Default-size chunks kept by cp_arena_reset (the batch arena's 256 KiB
 * chunks: 16 MiB, more than a batch of 1,000 events takes). */
#define CP_ARENA_KEEP_CHUNKS 64

typedef struct cp_arena_s {
    cp_arena_chunk_t *head;  /* current chunk; older ones follow ->next */
    cp_arena_chunk_t *spare; /* empty default-size chunks, kept by reset */
    int n_spare;
    size_t chunk_size;
} cp_arena_t;

void cp_arena_init(cp_arena_t *a, size_t chunk_size);
/* Frees every chunk. */
void cp_arena_free(cp_arena_t *a);
/* Drops all allocations; keeps up to CP_ARENA_KEEP_CHUNKS chunks of the
 * default size (an oversized chunk from one big message is freed). */
void cp_arena_reset(cp_arena_t *a);
/* size bytes aligned to 16; NULL on allocation failure. */
void *cp_arena_alloc(cp_arena_t *a, size_t size);
/* Copy of s[0..len) plus a NUL; NULL on allocation failure. */
char *cp_arena_strndup(cp_arena_t *a, const char *s, size_t len);

#endif
