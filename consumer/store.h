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
#include "cache.h"
#include "churn.h"
#include "cp_err.h"
#include "cp_time.h"
#include "metrics.h"
#include "rfm.h"
#include "rfmq.h"
#include "state.h"

/* Last applied input offset of one (topic, partition) for a customer. The
 * topic is known by its id (cp_store_topic_id): layout 4 keeps no names. */
typedef struct cp_wm_s {
    uint32_t tid;
    int32_t partition;
    int64_t offset;
    int in_w; /* read from w (a second entry of it there is corrupt) */
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

/* The layout version written in field lv (docs/contracts.md section 2).
 * Layout 3: e and r binary, the outbox in its own key. Layout 4: the
 * watermarks in one binary field w instead of a field per partition. */
#define CP_STORE_LAYOUT 4

/* Bytes of one entry of w at most: topic id, partition and offset as
 * LEB128 (5 and 10 bytes at most). */
#define CP_STORE_W_ENTRY_MAX (4 + 5 + 10)

/* Local day numbers a stored order may carry: |day| <= this (int64 epoch
 * milliseconds span about 1.1e11 days). Keeps the binary r's day deltas
 * far from overflow. */
#define CP_STORE_DAY_MAX ((int64_t)1 << 40)

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
    CP_F_SC = 1 << 7,
    CP_F_E = 1 << 8,
    CP_F_R = 1 << 9,
    CP_F_H = 1 << 10,
    CP_F_Z = 1 << 11,
    CP_F_GP = 1 << 12,
    CP_F_SP = 1 << 13,
    CP_F_CW = 1 << 14,
    CP_F_DD = 1 << 15,
    CP_F_MK = 1 << 16
};

/* dd absent: no evaluation is due (scoring's CP_DUE_NEVER). */
#define CP_STORE_DUE_NEVER INT64_MAX

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
    /* Layout <= 3 watermark fields "w:<topic>:<partition>" read (arena
     * names): the write deletes them, their offsets now in w. */
    const char **legacy_w;
    int n_legacy_w;
    int cap_legacy_w;
    /* Outbox: pending output records, each "<topic code>\t<json>\n", from
     * the outbox key and (legacy) the customer hash. */
    char *outbox; /* arena, NUL-terminated; NULL when empty */
    size_t outbox_len;
    int64_t outbox_seq; /* xq: highest seq in the outbox */
    int outbox_legacy;  /* the hash held x/xq (layout <= 2): the write
                           moves them into the outbox key */
    int exists;         /* the hash existed */
    /* e and r as read, decoded by cp_store_parse_end once lv is known
     * (HGETALL returns fields in any order). */
    const char *raw_e, *raw_r; /* arena; NULL when absent */
    size_t raw_e_len, raw_r_len;
    int parsing; /* fields parsed, cp_store_parse_end not yet called */
    /* Quantile RFM histograms (rfmq.mode = live): h, the buckets the
     * customer is counted in (in = 0 when absent), and, when h_track is
     * set by the caller, the buckets the write records (h_new.in = 0:
     * not counted, h deleted). Without h_track the write leaves h alone. */
    cp_rfmq_pos_t h;
    cp_rfmq_pos_t h_new;
    int h_track;
    /* Churn warnings (docs/churn.md "Consumer integration"): the rules'
     * state beside st (gp, sp, cw; absent = empty peak, empty spend sums,
     * armed) and the next evaluation time (dd, epoch ms; absent =
     * CP_STORE_DUE_NEVER). */
    cp_churn_state_t cs;
    int64_t due_ms;
    /* Population metrics (docs/metrics.md "Consumer integration"): mk,
     * "<latest activity day>,<bits>", present once the customer is in
     * the counters (mk_on). Bits: CP_MK_COHORT (counted in its cohort's
     * n), CP_MK_REPEAT (its first repeat day counted or not countable).
     * mk_day: INT64_MIN before any activity. The write leaves mk as it
     * is when mk_keep is set (metrics off: an existing mk is deleted). */
    int mk_on;
    int64_t mk_day;
    int mk_bits;
} cp_stored_t;

#define CP_MK_COHORT 1
#define CP_MK_REPEAT 2

/* Metric increments a write adds atomically with the state
 * (docs/metrics.md): HINCRBY into n_keys day and cohort hashes (keys[i],
 * day number days[i]) and every days[i] into the day index days_key. */
#define CP_STORE_MKEYS_MAX CP_METRICS_MAX
typedef struct cp_store_metrics_s {
    const char *days_key; /* <prefix>mdays */
    const char *keys[CP_STORE_MKEYS_MAX];
    int64_t days[CP_STORE_MKEYS_MAX];
    int n_keys;
    struct {
        int key; /* index into keys */
        const char *field;
        int64_t delta;
    } inc[CP_METRICS_MAX];
    int n_inc;
} cp_store_metrics_t;

/* The histogram moves a write makes (cp_rfmq_moves) and the histogram
 * key they go to. */
typedef struct cp_store_hist_s {
    const char *key; /* <prefix>rq */
    int n;
    char fields[6][CP_RFMQ_FIELD_MAX];
    int deltas[6];
} cp_store_hist_t;

/* Output topic codes inside the outbox. */
#define CP_OUTBOX_SEGMENTS 's'
#define CP_OUTBOX_CHURN 'c' /* topic.churn */

/* The customer's hash key, "<prefix>c:{<id>}" (the id is the Redis
 * Cluster hash tag), in the arena; its length in *len. NULL on allocation
 * failure. */
char *cp_store_key(const char *prefix, const char *id, size_t id_len,
                   cp_arena_t *a, size_t *len);

/* The customer's keys: all carry the id as hash tag, so the scripts that
 * touch them are legal in Redis Cluster. */
typedef struct cp_store_keys_s {
    const char *key; /* <prefix>c:{<id>}: the customer hash */
    size_t key_len;
    const char *xkey; /* <prefix>x:{<id>}: the outbox (hash x, xq) */
    size_t xkey_len;
    /* The due index the write keeps dd in (a sorted set, member = id):
     * <prefix>due:<shard>, another slot than the customer's (a hint beside
     * the hash, like <prefix>pop). NULL: not kept (cp_store_keys leaves it
     * NULL; the caller sets it). */
    const char *dkey;
    /* >= 0: while the write leaves an outbox, index the customer at
     * min(this, dd) instead of dd (a sweep write: its records have no
     * input offset to come back with, so an outbox left by a crash must
     * make the customer due at once; the reindex script puts dd back
     * after the clear). -1 (cp_store_keys): dd. */
    int64_t dmark;
    const char *id;
    size_t id_len;
} cp_store_keys_t;

/* Fills keys with arena strings (id borrowed, dkey NULL). CP_OK or
 * CP_ENOMEM. */
cp_err_t cp_store_keys(const char *prefix, const char *id, size_t id_len,
                       cp_arena_t *a, cp_store_keys_t *keys);

/* Resets s to a new customer's state. */
void cp_stored_init(cp_stored_t *s);

/* Parses one field of the customer hash; v is binary-safe and copied
 * where kept. Unknown fields are ignored (forward compatible), and so are
 * custom segment names in sc that the config no longer has. e and r are
 * only kept: their encoding depends on lv, which may come later. Returns
 * CP_OK or CP_EPARSE with the field named in errstr. */
cp_err_t cp_store_parse_field(cp_stored_t *s, const char *f, size_t flen,
                              const char *v, size_t vlen,
                              const cp_store_ctx_t *ctx, cp_arena_t *a,
                              char *errstr, size_t errstr_size);

/* Ends parsing the customer hash (call once after its last field, also
 * for an empty hash): decodes e and r, as text before layout 3, binary
 * from it. cp_store_write_args refuses a state parsed without it. Returns
 * CP_OK or CP_EPARSE with the field named in errstr. */
cp_err_t cp_store_parse_end(cp_stored_t *s, char *errstr, size_t errstr_size);

/* Parses one field of the outbox key (x or xq; other fields refused) and
 * adds it to s's outbox (after a legacy outbox read from the hash; xq
 * keeps the higher seq). Returns CP_OK or CP_EPARSE with errstr. */
cp_err_t cp_store_parse_outbox_field(cp_stored_t *s, const char *f, size_t flen,
                                     const char *v, size_t vlen, cp_arena_t *a,
                                     char *errstr, size_t errstr_size);

/* The binary de-duplication memories of layout 3 (docs/contracts.md
 * section 2): e = 8 bytes little-endian per event-id hash; r = per order
 * its id hash (8 bytes LE), LEB128 net, LEB128 day tag. Encoders write
 * into out (CP_STORE_E_ENTRY / CP_STORE_R_ENTRY_MAX bytes per entry) and
 * return the length; decoders return 0, or -1 for a truncated, overlong
 * or out-of-range value, trailing bytes or more than CP_DEDUP_MAX entries
 * (the memory in st is then unspecified). */
#define CP_STORE_E_ENTRY 8
#define CP_STORE_R_ENTRY_MAX 28 /* 8 + net (<= 9) + tag (<= 7), rounded up */
size_t cp_store_encode_e(const cp_state_t *st, unsigned char *out);
size_t cp_store_encode_r(const cp_state_t *st, unsigned char *out);
int cp_store_decode_e(cp_state_t *st, const unsigned char *v, size_t len);
int cp_store_decode_r(cp_state_t *st, const unsigned char *v, size_t len);

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

/* A topic's id in w: FNV-1a 32 of its name (docs/contracts.md section 2,
 * "Encoding of w"). The configuration refuses input topics whose ids
 * collide (cp_config_finalize). */
uint32_t cp_store_topic_id(const char *topic);

/* The watermarks in layout 4's binary w: per watermark the topic id (4
 * bytes little-endian), the partition and the offset as LEB128. The
 * encoder writes CP_STORE_W_ENTRY_MAX bytes per watermark at most and
 * returns the length. The decoder adds the entries to s (an entry already
 * there from a legacy field keeps the greater offset) and returns 0, or -1
 * for an empty value, a truncated or non-canonical number, a partition
 * over INT32_MAX, an offset over INT64_MAX, or a (topic, partition)
 * twice. */
size_t cp_store_encode_w(const cp_stored_t *s, unsigned char *out);
int cp_store_decode_w(cp_stored_t *s, const unsigned char *v, size_t len,
                      cp_arena_t *a);

/* Finds the watermark of (topic, partition); NULL if none. */
cp_wm_t *cp_store_wm(cp_stored_t *s, const char *topic, int32_t partition);
/* Sets the watermark of (topic, partition); CP_EINVAL
 * for a negative partition or offset. */
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
    /* Set by cp_store_write_args: the index of the first deleted field
     * name and their count, and the index of the first (field, value)
     * pair of the customer hash (pairs run to argc). */
    int del_at;
    int n_del;
    int fields_at;
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
 *   EVALSHA sha numkeys key xkey [epkey...] [popkey] [histkey] [duekey]
 *           [metric keys... mdays]
 *           expected_v ne [epoch pos fp]...
 *           npop [dn dsf dsm dsl] nh [hfield delta]... nz [dd] [id]
 *           nmk [nmi [kidx field delta]... [day]...]
 *           ndel [fields...] nx [x xq] field value ...
 * The deleted fields (ndel) and the others are the customer hash's; x and
 * xq (nx = 2 when the outbox is not empty) are written to the outbox key,
 * and a legacy outbox read from the hash is among the deletions. pop_delta
 * is NULL in fixed mode (no population key touched); hist is NULL or has
 * n = 0 when no histogram bucket moves (a count that reaches 0 is
 * deleted). With keys->dkey, nz = 2 adds the customer to the due index
 * at dd (ZADD), nz = 1 removes it (ZREM: no dd any more, the hash had
 * one); nz = 0 and no duekey otherwise. The script returns 1
 * (written), 0 (stale version) or -j (the j-th epoch was outranked:
 * another instance owns that partition now). CP_EINVAL when s was parsed
 * without cp_store_parse_end. */
cp_err_t cp_store_write_args(const cp_stored_t *s, const cp_store_ctx_t *ctx,
                             const char *sha, const cp_store_keys_t *keys,
                             const cp_epoch_ref_t *eps, int n_eps,
                             const char *popkey, const cp_pop_t *pop_delta,
                             const cp_store_hist_t *hist,
                             const cp_store_metrics_t *metrics, cp_arena_t *a,
                             cp_argv_t *av);

/* Makes a write's arguments (cp_store_write_args) a delta: drops the
 * (field, value) pairs the customer hash already holds, img being the
 * hash as read (cache.h image; NULL: not known, nothing dropped), and
 * builds in the arena the image of the hash once the write is done:
 * img without the deleted fields, with the written values. Returns CP_OK
 * or CP_ENOMEM (av unchanged). */
cp_err_t cp_store_write_delta(cp_argv_t *av, const cp_image_t *img,
                              cp_arena_t *a, cp_image_t *after);

/* The Lua sources of the write, outbox-clear and epoch scripts. The clear
 * script: KEYS customer, outbox key; ARGV the highest seq delivered;
 * returns the customer's new version, or 0 when nothing was cleared. */
extern const char cp_store_write_lua[];
extern const char cp_store_clear_lua[];
extern const char cp_store_epoch_lua[];
/* Re-indexes a customer from its hash: KEYS customer hash, due index;
 * ARGV id. ZADD at the hash's dd, or ZREM without one; returns 1 (added)
 * or 0 (removed). Atomic with the hash, so a stale index entry can only
 * be replaced by the truth. */
extern const char cp_store_reindex_lua[];

#endif
