/*
 * reply_pool.h - hiredis reply objects from bounded freelists instead of
 * malloc, for the event loop's asynchronous connection.
 *
 * hiredis' reader builds every reply as a tree of redisReply objects (one
 * per element, plus each string's copy): an HGETALL of a 20-field hash is
 * about 80 mallocs and as many frees. The reader lets its user supply the
 * constructors and the destructor (redisReader.fn); these take the objects
 * and their string and element buffers from per-pool freelists (one for the
 * reply objects, power-of-two size classes from 16 B to 16 KiB for the
 * buffers) and give them back when hiredis frees the reply after its
 * callback. Only one reply is alive at a time on a connection (hiredis
 * frees each right after its callback), so the freelists stay small; each
 * keeps at most about 64 KiB (the object list 4096 objects), the rest goes
 * back to malloc. Strings longer than 16 KiB are plain mallocs.
 *
 * The replies are ordinary redisReply trees: callers read them as before.
 * They must not be given to freeReplyObject (hiredis' async layer frees
 * them through reader->fn). Types of RESP3 (double, bool, map, set, push,
 * verbatim, bignum: hiredis 1.x only, never sent to a RESP2 connection)
 * stay the library's own objects.
 *
 * Thread: a pool and the replies built from it belong to one thread.
 */
#ifndef CP_REPLY_POOL_H
#define CP_REPLY_POOL_H

#include <stddef.h>
#include <stdint.h>

struct redisReader;
typedef struct cp_reply_pool_s cp_reply_pool_t;

typedef struct cp_reply_pool_stats_s {
    size_t out;        /* objects and buffers handed out, not yet back */
    size_t cached;     /* objects and buffers on the freelists */
    uint64_t mallocs;  /* freelist misses (and big strings): real mallocs */
    uint64_t released; /* returned to malloc because a list was full */
} cp_reply_pool_stats_t;

/* A pool with empty freelists; NULL when out of memory. */
cp_reply_pool_t *cp_reply_pool_new(void);

/* Makes reader build its replies from p: copies the reader's current
 * (library default) function table and overrides its RESP2 members. p must
 * outlive the reader (hiredis frees a partly read reply when the reader is
 * freed). A reader of a synchronous context (redisCommand, freeReplyObject)
 * must keep its default functions. */
void cp_reply_pool_attach(cp_reply_pool_t *p, struct redisReader *reader);

/* Frees the freelists and p. Every reply built from p must be freed
 * already (asserted). NULL is a no-op. */
void cp_reply_pool_free(cp_reply_pool_t *p);

cp_reply_pool_stats_t cp_reply_pool_stats(const cp_reply_pool_t *p);

#endif
