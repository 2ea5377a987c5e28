/*
 * store.h - the Redis representation of a customer (docs/contracts.md
 * section 2): parsing a hash into state and building the arguments of the
 * compare-and-set write. No I/O: the caller moves the bytes.
 */
#ifndef CP_STORE_H
#define CP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "cp_err.h"
#include "cp_time.h"
#include "rfm.h"
#include "state.h"

/* Last applied input offset of one (topic, partition) for a customer. */
typedef struct cp_wm_s {
    const char *topic; /* arena or config string */
    int32_t partition;
    int64_t offset;
    int dirty; /* changed in this batch: must be written */
} cp_wm_t;

/* One profile attribute, field "a:<name>". */
typedef struct cp_sattr_s {
    const char *name; /* arena */
    size_t name_len;
    const char *value; /* arena; NULL when removed */
    size_t value_len;
    int dirty;   /* changed in this batch: written (or deleted) */
    int removed; /* to be deleted */
} cp_sattr_t;

/* Most attributes kept per customer: a profile.updated with a new name
 * beyond it drops that attribute (docs/contracts.md section 2). */
#define CP_STORE_ATTRS_MAX 64

/* The layout version written in field lv (docs/contracts.md section 2). */
#define CP_STORE_LAYOUT 2

/* Optional fields, as bits of cp_stored_t.had: present when read, so a
 * write deletes the ones the new state no longer has. */
enum {
    CP_F_S = 1 << 0,
    CP_F_B = 1 << 1,
    CP_F_SQ = 1 << 2,
    CP_F_SL = 1 << 3,
    CP_F_SE = 1 << 4,
    CP_F_SS = 1 << 5,
    CP_F_SV = 1 << 6,
    CP_F_SC = 1 << 7
};

/* What parsing needs besides the bytes. */
typedef struct cp_store_ctx_s {
    const cp_tz_t *tz;           /* local days of f and l */
    const char *const *segments; /* custom segment names, config order */
    int n_segments;              /* <= 64 */
} cp_store_ctx_t;

/* Everything custpulse keeps for one customer. */
typedef struct cp_stored_s {
    cp_state_t st;
    int layout;        /* lv as read (1 when absent) */
    unsigned had;      /* CP_F_* bits of the optional fields read */
    cp_sattr_t *attrs; /* arena */
    int n_attrs;
    int cap_attrs;
    cp_wm_t *wms; /* arena */
    int n_wms;
    int cap_wms;
    /* Outbox: pending output records, each "<topic code>\t<json>\n". */
    char *outbox; /* arena, NUL-terminated; NULL when empty */
    size_t outbox_len;
    int64_t outbox_seq; /* xq: highest seq in the outbox */
    int exists;         /* the hash existed */
} cp_stored_t;

/* Output topic codes inside the outbox. */
#define CP_OUTBOX_SEGMENTS 's'

/* The customer's hash key, "<prefix>c:{<id>}" (the id is the Redis
 * Cluster hash tag), in the arena; its length in *len. NULL on allocation
 * failure. */
char *cp_store_key(const char *prefix, const char *id, size_t id_len,
                   cp_arena_t *a, size_t *len);

/* Resets s to a new customer's state. */
void cp_stored_init(cp_stored_t *s);

/* Parses one hash field. Unknown fields are ignored (forward compatible),
 * and so are custom segment names in sc that the config no longer has.
 * Returns CP_OK or CP_EPARSE with the field named in errstr. */
cp_err_t cp_store_parse_field(cp_stored_t *s, const char *f, size_t flen,
                              const char *v, size_t vlen,
                              const cp_store_ctx_t *ctx, cp_arena_t *a,
                              char *errstr, size_t errstr_size);

/* A double as written with %.17g: finite, no leading blank, the whole
 * value consumed. Returns 0 and *out, or -1. */
int cp_store_parse_double(const char *v, size_t len, double *out);

/* The attribute `name`, or NULL. */
const cp_sattr_t *cp_store_attr(const cp_stored_t *s, const char *name,
                                size_t name_len);
/* Sets (value non-NULL) or removes (value NULL) an attribute, marking it
 * dirty; strings are copied into the arena. Removing a name the customer
 * does not have changes nothing. Returns CP_OK, CP_ENOMEM, or CP_ERANGE
 * when a new name would make more than CP_STORE_ATTRS_MAX attributes held
 * (removed ones do not count; nothing changed). */
cp_err_t cp_store_attr_set(cp_stored_t *s, const char *name, size_t name_len,
                           const char *value, size_t value_len, cp_arena_t *a);

/* Finds the watermark of (topic, partition); NULL if none. */
cp_wm_t *cp_store_wm(cp_stored_t *s, const char *topic, int32_t partition);
/* Sets the watermark of (topic, partition), marking it dirty. */
cp_err_t cp_store_wm_set(cp_stored_t *s, const char *topic, int32_t partition,
                         int64_t offset, cp_arena_t *a);
/* Appends one record to the outbox with its seq. */
cp_err_t cp_store_outbox_add(cp_stored_t *s, char code, const char *json,
                             size_t len, int64_t seq, cp_arena_t *a);

/* An argument vector whose strings live in the arena. */
typedef struct cp_argv_s {
    const char **argv;
    size_t *argvlen;
    int argc;
    int cap;
} cp_argv_t;

cp_err_t cp_argv_add(cp_argv_t *av, cp_arena_t *a, const char *s, size_t len);

/* A partition of a customer's write: its key (a hash: e = epoch, o = the
 * position after the last event applied, f = that event's fingerprint),
 * the epoch the writer holds, and the position and fingerprint after the
 * customer's last event of the batch in that partition. */
typedef struct cp_epoch_ref_s {
    const char *key; /* <prefix>ep:<topic>:<partition> */
    int64_t epoch;
    int64_t pos;
    const char *fp; /* cp_store_fingerprint */
} cp_epoch_ref_t;

/* An event's fingerprint: "<timestamp ms>:<FNV-1a 64 of the value, 16
 * hex>" into out (CP_FP_SIZE bytes). The check at assignment compares it
 * with the event found at the same offset. */
#define CP_FP_SIZE 48
void cp_store_fingerprint(int64_t timestamp_ms, const void *value, size_t len,
                          char out[CP_FP_SIZE]);

/* Builds EVALSHA arguments of the write script for s, whose version read
 * from Redis was s->st.version (the new version is that + 1):
 *   EVALSHA sha numkeys key [epkey...] [popkey] expected_v ne
 *           [epoch pos fp]...
 *           npop [dn dsf dsm dsl] ndel [fields...] field value ...
 * pop_delta is NULL in fixed mode (no population key touched). The script
 * returns 1 (written), 0 (stale version) or -j (the j-th epoch was
 * outranked: another instance owns that partition now). */
cp_err_t cp_store_write_args(const cp_stored_t *s, const cp_store_ctx_t *ctx,
                             const char *sha, const char *key, size_t key_len,
                             const cp_epoch_ref_t *eps, int n_eps,
                             const char *popkey, const cp_pop_t *pop_delta,
                             cp_arena_t *a, cp_argv_t *av);

/* The Lua sources of the write, outbox-clear and epoch scripts. */
extern const char cp_store_write_lua[];
extern const char cp_store_clear_lua[];
extern const char cp_store_epoch_lua[];

#endif
