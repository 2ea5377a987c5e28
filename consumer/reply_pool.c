/*
 * reply_pool.c - hiredis reply objects from bounded freelists; see
 * reply_pool.h.
 *
 * Ownership test: the pool builds exactly the RESP2 types (string, status,
 * error, array, integer, nil); any other type was built by the library's
 * own function and is freed by freeReplyObject. The library's arrays
 * (RESP3 map, set, push) may hold pooled elements, so those are released
 * here first and the array handed over empty.
 */
#include "reply_pool.h"

#include <assert.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

/* hiredis 1.0 changed the element count of createArray to size_t. */
#if HIREDIS_MAJOR >= 1
typedef size_t cp_nelem_t;
#else
typedef int cp_nelem_t;
#endif

#define CLASS_MIN_SHIFT 4  /* 16 B */
#define CLASS_MAX_SHIFT 14 /* 16 KiB; longer strings are plain mallocs */
#define N_CLASSES (CLASS_MAX_SHIFT - CLASS_MIN_SHIFT + 1)
#define CLASS_KEEP_BYTES (64 * 1024) /* cached per class, at most ... */
#define CLASS_KEEP_MIN 8             /* ... but always this many blocks */
#define NODES_KEEP 4096

/* A reply object: the redisReply first, so hiredis' pointer is ours. */
typedef struct node_s {
    redisReply rep;
    cp_reply_pool_t *pool;
} node_t;

/* A free block; its first bytes link the list. */
typedef struct block_s {
    struct block_s *next;
} block_t;

typedef struct freelist_s {
    block_t *head;
    size_t n, keep, size;
} freelist_t;

struct cp_reply_pool_s {
    redisReplyObjectFunctions fn;  /* what the readers call */
    redisReplyObjectFunctions lib; /* the library's defaults */
    int have_lib;
    freelist_t nodes;
    freelist_t classes[N_CLASSES];
    size_t out;
    uint64_t mallocs, released;
};

/* ---- freelists ------------------------------------------------------------
 */

static void *list_get(cp_reply_pool_t *p, freelist_t *l)
{
    block_t *b = l->head;
    if (b) {
        l->head = b->next;
        l->n--;
    } else if ((b = malloc(l->size)) != NULL) {
        p->mallocs++;
    } else {
        return NULL;
    }
    p->out++;
    return b;
}

static void list_put(cp_reply_pool_t *p, freelist_t *l, void *ptr)
{
    p->out--;
    if (l->n >= l->keep) {
        p->released++;
        free(ptr);
        return;
    }
    block_t *b = ptr;
    b->next = l->head;
    l->head = b;
    l->n++;
}

/* The size class of a buffer of size bytes; NULL above the largest. The
 * same size gives the same class at free: strings by len + 1, element
 * arrays by elements, neither of which a caller changes. */
static freelist_t *class_of(cp_reply_pool_t *p, size_t size)
{
    int c = 0;
    while (c < N_CLASSES && ((size_t)1 << (c + CLASS_MIN_SHIFT)) < size)
        c++;
    return c < N_CLASSES ? &p->classes[c] : NULL;
}

static void *buf_get(cp_reply_pool_t *p, size_t size)
{
    freelist_t *l = class_of(p, size);
    if (l)
        return list_get(p, l);
    void *ptr = malloc(size);
    if (ptr) {
        p->mallocs++;
        p->out++;
    }
    return ptr;
}

static void buf_put(cp_reply_pool_t *p, void *ptr, size_t size)
{
    freelist_t *l = class_of(p, size);
    if (l) {
        list_put(p, l, ptr);
    } else {
        p->out--;
        free(ptr);
    }
}

/* ---- reader functions -----------------------------------------------------
 */

static int is_pooled_type(int type)
{
    return type == REDIS_REPLY_STRING || type == REDIS_REPLY_STATUS ||
           type == REDIS_REPLY_ERROR || type == REDIS_REPLY_ARRAY ||
           type == REDIS_REPLY_INTEGER || type == REDIS_REPLY_NIL;
}

/* A zeroed reply object of type, hooked into its parent array as the
 * library's constructors do (the reader relies on it). */
static node_t *node_new(const redisReadTask *task, int type)
{
    cp_reply_pool_t *p = task->privdata;
    node_t *n = list_get(p, &p->nodes);
    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->pool = p;
    n->rep.type = type;
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = &n->rep;
    }
    return n;
}

static void free_object(void *obj);

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    cp_reply_pool_t *p = task->privdata;
    if (!is_pooled_type(task->type)) /* RESP3 verbatim, bignum */
        return p->lib.createString(task, str, len);
    char *buf = buf_get(p, len + 1);
    if (!buf)
        return NULL;
    node_t *n = node_new(task, task->type);
    if (!n) {
        buf_put(p, buf, len + 1);
        return NULL;
    }
    memcpy(buf, str, len);
    buf[len] = '\0';
    n->rep.str = buf;
    n->rep.len = len;
    return n;
}

static void *create_array(const redisReadTask *task, cp_nelem_t elements)
{
    cp_reply_pool_t *p = task->privdata;
    if (task->type != REDIS_REPLY_ARRAY) /* RESP3 map, set, push */
        return p->lib.createArray(task, elements);
    redisReply **el = NULL;
    size_t count = (size_t)elements;
    if (count > SIZE_MAX / sizeof(*el))
        return NULL;
    /* zeroed: the reader frees a partly filled array on a protocol error */
    if (count && !(el = buf_get(p, count * sizeof(*el))))
        return NULL;
    if (el)
        memset(el, 0, count * sizeof(*el));
    node_t *n = node_new(task, REDIS_REPLY_ARRAY);
    if (!n) {
        if (el)
            buf_put(p, el, count * sizeof(*el));
        return NULL;
    }
    n->rep.element = el;
    n->rep.elements = count;
    return n;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    node_t *n = node_new(task, REDIS_REPLY_INTEGER);
    if (n)
        n->rep.integer = value;
    return n;
}

static void *create_nil(const redisReadTask *task)
{
    return node_new(task, REDIS_REPLY_NIL);
}

/* hiredis calls this on the top of a reply after its callback, and on a
 * partly built one after a protocol error or when the reader is freed:
 * elements not read yet are NULL. */
static void free_object(void *obj)
{
    redisReply *rep = obj;
    if (!rep)
        return;
    if (!is_pooled_type(rep->type)) {
        /* the library's own object; its elements may be ours */
        if (rep->element) {
            for (size_t i = 0; i < rep->elements; i++)
                free_object(rep->element[i]);
            rep->elements = 0;
        }
        freeReplyObject(rep);
        return;
    }
    node_t *n = (node_t *)rep;
    cp_reply_pool_t *p = n->pool;
    if (rep->type == REDIS_REPLY_ARRAY && rep->element) {
        for (size_t i = 0; i < rep->elements; i++)
            free_object(rep->element[i]);
        buf_put(p, rep->element, rep->elements * sizeof(*rep->element));
    } else if (rep->str) {
        buf_put(p, rep->str, rep->len + 1);
    }
    list_put(p, &p->nodes, n);
}

/* ---- public ---------------------------------------------------------------
 */

cp_reply_pool_t *cp_reply_pool_new(void)
{
    cp_reply_pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->nodes.size = sizeof(node_t);
    p->nodes.keep = NODES_KEEP;
    for (int c = 0; c < N_CLASSES; c++) {
        freelist_t *l = &p->classes[c];
        l->size = (size_t)1 << (c + CLASS_MIN_SHIFT);
        l->keep = CLASS_KEEP_BYTES / l->size;
        if (l->keep < CLASS_KEEP_MIN)
            l->keep = CLASS_KEEP_MIN;
    }
    return p;
}

void cp_reply_pool_attach(cp_reply_pool_t *p, redisReader *reader)
{
    if (!p->have_lib) {
        /* Copied rather than named: hiredis 1.x has members 0.14 lacks
         * (createDouble, createBool); those keep the library's. */
        p->lib = *reader->fn;
        p->fn = p->lib;
        p->fn.createString = create_string;
        p->fn.createArray = create_array;
        p->fn.createInteger = create_integer;
        p->fn.createNil = create_nil;
        p->fn.freeObject = free_object;
        p->have_lib = 1;
    }
    reader->fn = &p->fn;
    reader->privdata = p;
}

static void list_free(freelist_t *l)
{
    while (l->head) {
        block_t *b = l->head;
        l->head = b->next;
        free(b);
    }
    l->n = 0;
}

void cp_reply_pool_free(cp_reply_pool_t *p)
{
    if (!p)
        return;
    assert(p->out == 0);
    list_free(&p->nodes);
    for (int c = 0; c < N_CLASSES; c++)
        list_free(&p->classes[c]);
    free(p);
}

cp_reply_pool_stats_t cp_reply_pool_stats(const cp_reply_pool_t *p)
{
    cp_reply_pool_stats_t s = {
        .out = p->out, .mallocs = p->mallocs, .released = p->released};
    s.cached = p->nodes.n;
    for (int c = 0; c < N_CLASSES; c++)
        s.cached += p->classes[c].n;
    return s;
}
