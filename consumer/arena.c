/*
 * arena.c - bump allocator for per-batch data; see arena.h.
 */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

struct cp_arena_chunk_s {
    cp_arena_chunk_t *next;
    size_t size; /* usable bytes in data */
    size_t used;
    _Alignas(16) unsigned char data[];
};

static cp_arena_chunk_t *chunk_new(size_t size)
{
    cp_arena_chunk_t *c = malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void cp_arena_init(cp_arena_t *a, size_t chunk_size)
{
    a->head = NULL;
    a->spare = NULL;
    a->n_spare = 0;
    a->keep = 1;
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
}

void cp_arena_set_keep(cp_arena_t *a, int chunks)
{
    a->keep = chunks > 1 ? chunks : 1;
}

static void free_list(cp_arena_chunk_t *c)
{
    while (c) {
        cp_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
}

void cp_arena_free(cp_arena_t *a)
{
    free_list(a->head);
    free_list(a->spare);
    a->head = a->spare = NULL;
    a->n_spare = 0;
}

void cp_arena_reset(cp_arena_t *a)
{
    cp_arena_chunk_t *c = a->head;
    while (c) {
        cp_arena_chunk_t *next = c->next;
        if (c->size == a->chunk_size && a->n_spare < a->keep) {
            c->used = 0;
            c->next = a->spare;
            a->spare = c;
            a->n_spare++;
        } else {
            free(c);
        }
        c = next;
    }
    a->head = NULL;
}

void *cp_arena_alloc(cp_arena_t *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (!a->head || a->head->size - a->head->used < size) {
        size_t want = size > a->chunk_size ? size : a->chunk_size;
        cp_arena_chunk_t *c;
        if (want == a->chunk_size && a->spare) {
            c = a->spare;
            a->spare = c->next;
            a->n_spare--;
            c->next = NULL;
        } else if (!(c = chunk_new(want))) {
            return NULL;
        }
        if (a->head && want != a->chunk_size) {
            /* Big one-off: put it behind the current chunk so the current
             * chunk keeps serving small allocations. */
            c->next = a->head->next;
            a->head->next = c;
            c->used = size;
            return c->data;
        }
        c->next = a->head;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += size;
    return p;
}

char *cp_arena_strndup(cp_arena_t *a, const char *s, size_t len)
{
    char *p = cp_arena_alloc(a, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
