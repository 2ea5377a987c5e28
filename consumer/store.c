/*
 * store.c - customer hash <-> state, and the compare-and-set write script.
 *
 * Field encodings (contracts section 2): integers in decimal; `s` the
 * segment code; `w:<topic>:<partition>` decimal offsets (layouts 1 to 3;
 * layout 4 keeps them in one binary field `w`). Layout 2 added
 * `lv`, `n`, `b`, `g`, `gc`, `k`, `yw`, the level codes `sq sl se ss sv`,
 * `sc` and `a:<name>`; doubles are written with %.17g so that they read
 * back bit for bit. Layout 3 writes the de-duplication memories `e` and
 * `r` in binary (8-byte ids, LEB128 numbers: a third of the hex text) and
 * keeps the outbox (`x` text, `xq` highest seq) in its own key
 * <prefix>x:{<id>}: an `x` of hundreds of bytes inside the customer hash
 * turned it into a hashtable for good (Redis never converts back), three
 * times the memory of the compact listpack. Layouts 1 and 2 are still
 * read: `e` as 16 hex digits per id, `r` as "<16 hex>:<net>[:<day>][:c]"
 * entries joined by ',', and an outbox inside the hash; the next write
 * rewrites them.
 */
#include "store.h"

#include "due.h"
#include "hash.h"
#include "num.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The write: check the partition epochs (fencing), then the version, move
 * population sums, write the fields. Validation happens in C before the
 * call and every check comes before the first write, so the script never
 * fails half-way.
 *
 * KEYS: customer, outbox, partition keys (ne), [population]. The
 * outbox key is written with the customer hash or not at all; a legacy
 * outbox in the hash is among the deleted fields. ARGV per partition:
 * the writer's epoch, the partition position after the customer's last
 * event of the batch and that event's fingerprint. An epoch greater than
 * the writer's means another instance took the partition over: -j (j =
 * the partition's index) and nothing written. An epoch missing or smaller
 * (Redis lost it) is restored to the writer's. A greater position moves
 * the partition's o and f (the check at assignment,
 * docs/fault-tolerance.md "Recreated input topics"). */
const char cp_store_write_lua[] =
    /* A counter HINCRBY accepts: canonical decimal integers only ("007",
     * "-0" and "1.5" would fail the script after its first write). */
    "local function isint(c)\n"
    "  return c == '0' or (#c <= 20 and string.match(c, '^%-?[1-9]%d*$') ~= "
    "nil)\n"
    "end\n"
    "local ne = tonumber(ARGV[2])\n"
    "for j = 1, ne do\n"
    "  local cur = tonumber(redis.call('HGET', KEYS[2 + j], 'e') or '0') or 0\n"
    "  if cur > tonumber(ARGV[3 * j]) then return -j end\n"
    "end\n"
    "local v = redis.call('HGET', KEYS[1], 'v') or '0'\n"
    "if v ~= ARGV[1] then return 0 end\n"
    /* An outbox key of another type fails here (WRONGTYPE), not after the
     * first write. */
    "redis.call('HEXISTS', KEYS[2], 'xq')\n"
    "local np = tonumber(ARGV[3 + 3 * ne])\n"
    "local pk = KEYS[3 + ne]\n"
    "local names = {'n', 'sf', 'sm', 'sl'}\n"
    /* Redis has no rollback: check every population sum before the first
     * write. A sum that would leave the int64 range (or is not a number)
     * is frozen instead of failing the customer's write half-way. */
    "local move = true\n"
    "for j = 1, np do\n"
    "  local d = ARGV[3 + 3 * ne + j]\n"
    "  if d ~= '0' then\n"
    "    local raw = redis.call('HGET', pk, names[j]) or '0'\n"
    "    local cur = isint(raw) and tonumber(raw) or nil\n"
    "    if cur == nil or math.abs(cur + tonumber(d)) >= 9.2e18 then\n"
    "      move = false\n"
    "    end\n"
    "  end\n"
    "end\n"
    /* The histogram likewise: a key of another type fails here, before
     * any write; a count that is not an integer freezes the moves. */
    "local hn = tonumber(ARGV[4 + 3 * ne + np])\n"
    "local hmove = true\n"
    "if hn > 0 then\n"
    "  local hk = KEYS[3 + ne + (np > 0 and 1 or 0)]\n"
    "  for j = 1, hn do\n"
    "    local c = redis.call('HGET', hk, ARGV[3 + 3 * ne + np + 2 * j])\n"
    "    if c and not isint(c) then hmove = false end\n"
    "  end\n"
    "end\n"
    /* The due index likewise (ZSCORE fails on another type). */
    "local zi = 5 + 3 * ne + np + 2 * hn\n"
    "local nz = tonumber(ARGV[zi])\n"
    "local zk = KEYS[3 + ne + (np > 0 and 1 or 0) + (hn > 0 and 1 or 0)]\n"
    "if nz > 0 then redis.call('ZSCORE', zk, ARGV[zi + nz]) end\n"
    /* Metric counters likewise (docs/metrics.md): a key of another type
     * fails here; a count that is not an integer, or would leave the
     * int64 range, freezes them. */
    "local mi = zi + 1 + nz\n"
    "local nmk = tonumber(ARGV[mi])\n"
    "local mb = 3 + ne + (np > 0 and 1 or 0) + (hn > 0 and 1 or 0) +\n"
    "           (nz > 0 and 1 or 0)\n"
    "local mmove = true\n"
    "if nmk > 0 then\n"
    "  local nmi = tonumber(ARGV[mi + 1])\n"
    "  for j = 0, nmi - 1 do\n"
    "    local b = mi + 2 + 3 * j\n"
    "    local c = redis.call('HGET', KEYS[mb + tonumber(ARGV[b])],\n"
    "                         ARGV[b + 1])\n"
    "    if c and (not isint(c) or math.abs(tonumber(c)) >= 9e18) then\n"
    "      mmove = false\n"
    "    end\n"
    "  end\n"
    "  redis.call('ZSCORE', KEYS[mb + nmk], '0')\n"
    "end\n"
    "for j = 1, ne do\n"
    "  local k = KEYS[2 + j]\n"
    "  local cur = tonumber(redis.call('HGET', k, 'e') or '0') or 0\n"
    "  if cur < tonumber(ARGV[3 * j]) then\n"
    "    redis.call('HSET', k, 'e', ARGV[3 * j])\n"
    "  end\n"
    "  local o = tonumber(redis.call('HGET', k, 'o') or '-1') or -1\n"
    "  if o < tonumber(ARGV[3 * j + 1]) then\n"
    "    redis.call('HSET', k, 'o', ARGV[3 * j + 1], 'f', ARGV[3 * j + 2])\n"
    "  end\n"
    "end\n"
    "if move then\n"
    "  for j = 1, np do\n"
    "    local d = ARGV[3 + 3 * ne + j]\n"
    "    if d ~= '0' then redis.call('HINCRBY', pk, names[j], d) end\n"
    "  end\n"
    "end\n"
    "local i = 4 + 3 * ne + np\n"
    /* Quantile RFM histogram moves; a bucket emptied is deleted. */
    "local nh = tonumber(ARGV[i]); i = i + 1\n"
    "if nh > 0 and hmove then\n"
    "  local hk = KEYS[3 + ne + (np > 0 and 1 or 0)]\n"
    "  for j = 1, nh do\n"
    "    if redis.call('HINCRBY', hk, ARGV[i], ARGV[i + 1]) == 0 then\n"
    "      redis.call('HDEL', hk, ARGV[i])\n"
    "    end\n"
    "    i = i + 2\n"
    "  end\n"
    "else\n"
    "  i = i + 2 * nh\n"
    "end\n"
    /* The due index: a hint beside the hash's dd (another slot). */
    "if nz == 2 then redis.call('ZADD', zk, ARGV[i + 1], ARGV[i + 2])\n"
    "elseif nz == 1 then redis.call('ZREM', zk, ARGV[i + 1]) end\n"
    "i = i + 1 + nz\n"
    "i = i + 1\n"
    "if nmk > 0 then\n"
    "  local nmi = tonumber(ARGV[i]); i = i + 1\n"
    "  for j = 1, nmi do\n"
    "    if mmove then\n"
    "      redis.call('HINCRBY', KEYS[mb + tonumber(ARGV[i])], ARGV[i + 1],\n"
    "                 ARGV[i + 2])\n"
    "    end\n"
    "    i = i + 3\n"
    "  end\n"
    "  for j = 1, nmk do\n"
    "    if mmove then redis.call('ZADD', KEYS[mb + nmk], ARGV[i], ARGV[i]) "
    "end\n"
    "    i = i + 1\n"
    "  end\n"
    "end\n"
    "local nd = tonumber(ARGV[i]); i = i + 1\n"
    "for j = 1, nd do redis.call('HDEL', KEYS[1], ARGV[i]); i = i + 1 end\n"
    "local nx = tonumber(ARGV[i]); i = i + 1\n"
    "if nx > 0 then\n"
    "  redis.call('HSET', KEYS[2], 'x', ARGV[i], 'xq', ARGV[i + 1])\n"
    "  i = i + nx\n"
    "end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, i))\n"
    "return 1\n";

/* Takes a partition's epoch: greater than every epoch taken before and at
 * least the server's clock in milliseconds, so an owner that took it after
 * Redis lost the key still outranks every earlier owner. Returns the epoch
 * and the partition's position and fingerprint (nil when none). */
const char cp_store_epoch_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'e') or '0') or 0\n"
    "local e = math.max(cur + 1, now)\n"
    "redis.call('HSET', KEYS[1], 'e', string.format('%d', e))\n"
    "return {e, redis.call('HGET', KEYS[1], 'o'),\n"
    "        redis.call('HGET', KEYS[1], 'f')}\n";

/* Clears the outbox (KEYS[2], and a legacy one in the customer hash
 * KEYS[1]) once everything up to ARGV[1] was delivered; an outbox whose xq
 * moved past it holds records not yet delivered and stays. Bumps the
 * version so a write computed from a read that still saw the outbox is
 * refused instead of resurrecting delivered records. Returns the new
 * version (>= 1) when it cleared, 0 when it left the outbox. */
const char cp_store_clear_lua[] =
    "local n = tonumber(ARGV[1])\n"
    "local q = redis.call('HGET', KEYS[2], 'xq')\n"
    "local lq = redis.call('HGET', KEYS[1], 'xq')\n"
    "local key = q and tonumber(q) <= n\n"
    "local legacy = lq and tonumber(lq) <= n\n"
    "if not (key or legacy) then return 0 end\n"
    /* The bump is the step that can fail (a non-integer v): first. */
    "local v = redis.call('HINCRBY', KEYS[1], 'v', 1)\n"
    "if key then redis.call('DEL', KEYS[2]) end\n"
    "if legacy then redis.call('HDEL', KEYS[1], 'x', 'xq') end\n"
    "return v\n";

const char cp_store_reindex_lua[] =
    "local dd = redis.call('HGET', KEYS[1], 'dd')\n"
    "if dd and string.match(dd, '^%d+$') then\n"
    "  redis.call('ZADD', KEYS[2], dd, ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "return 0\n";

void cp_store_fingerprint(int64_t timestamp_ms, const void *value, size_t len,
                          char out[CP_FP_SIZE])
{
    snprintf(out, CP_FP_SIZE, "%" PRId64 ":%016" PRIx64, timestamp_ms,
             cp_hash_fnv1a64(value, len));
}

/* "<prefix><kind>:{<id>}". */
static char *key_of(const char *prefix, char kind, const char *id,
                    size_t id_len, cp_arena_t *a, size_t *len)
{
    size_t plen = strlen(prefix);
    char *key = cp_arena_alloc(a, plen + id_len + 5);
    if (!key)
        return NULL;
    memcpy(key, prefix, plen);
    key[plen] = kind;
    memcpy(key + plen + 1, ":{", 2);
    memcpy(key + plen + 3, id, id_len);
    memcpy(key + plen + 3 + id_len, "}", 2);
    *len = plen + id_len + 4;
    return key;
}

char *cp_store_key(const char *prefix, const char *id, size_t id_len,
                   cp_arena_t *a, size_t *len)
{
    return key_of(prefix, 'c', id, id_len, a, len);
}

cp_err_t cp_store_keys(const char *prefix, const char *id, size_t id_len,
                       cp_arena_t *a, cp_store_keys_t *keys)
{
    keys->key = key_of(prefix, 'c', id, id_len, a, &keys->key_len);
    keys->xkey = key_of(prefix, 'x', id, id_len, a, &keys->xkey_len);
    keys->dkey = NULL;
    keys->dmark = -1;
    keys->id = id;
    keys->id_len = id_len;
    return keys->key && keys->xkey ? CP_OK : CP_ENOMEM;
}

void cp_stored_init(cp_stored_t *s)
{
    cp_state_init(&s->st);
    s->layout = 1;
    s->had = 0;
    s->attrs = NULL;
    s->n_attrs = 0;
    s->cap_attrs = 0;
    s->wms = NULL;
    s->n_wms = 0;
    s->cap_wms = 0;
    s->legacy_w = NULL;
    s->n_legacy_w = 0;
    s->cap_legacy_w = 0;
    s->outbox = NULL;
    s->outbox_len = 0;
    s->outbox_seq = 0;
    s->outbox_legacy = 0;
    s->exists = 0;
    s->raw_e = s->raw_r = NULL;
    s->raw_e_len = s->raw_r_len = 0;
    s->parsing = 0;
    memset(&s->h, 0, sizeof(s->h));
    memset(&s->h_new, 0, sizeof(s->h_new));
    s->h_track = 0;
    cp_churn_state_init(&s->cs);
    s->due_ms = CP_STORE_DUE_NEVER;
    s->mk_on = 0;
    s->mk_day = INT64_MIN;
    s->mk_bits = 0;
}

/* ---- parsing ---------------------------------------------------------- */

/* Canonical decimals only ("-?(0|[1-9][0-9]*)"): the write script compares
 * the version as a string, so " 7", "+7" or "07" must not parse as 7. */
static int parse_i64(const char *v, size_t len, int64_t *out)
{
    char buf[32];
    size_t neg = len > 0 && v[0] == '-';
    if (len == neg || len >= sizeof(buf) || v[neg] < '0' || v[neg] > '9' ||
        (v[neg] == '0' && len > neg + 1))
        return -1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end)
        return -1;
    *out = x;
    return 0;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int parse_hex64(const char *v, uint64_t *out)
{
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        int n = hex_nibble(v[i]);
        if (n < 0)
            return -1;
        x = (x << 4) | (uint64_t)n;
    }
    *out = x;
    return 0;
}

static int parse_event_ids(cp_state_t *st, const char *v, size_t len)
{
    if (len % 16 || len / 16 > CP_DEDUP_MAX)
        return -1;
    st->n_event_ids = 0;
    for (size_t i = 0; i < len; i += 16)
        if (parse_hex64(v + i, &st->event_ids[st->n_event_ids++]) != 0)
            return -1;
    return 0;
}

/* One "<16 hex>:<net>[:c]" entry of field r. */
static int parse_order_entry(cp_order_mem_t *o, const char *v, size_t len)
{
    if (len < 18 || v[16] != ':' || parse_hex64(v, &o->id_hash) != 0)
        return -1;
    o->cancelled = 0;
    o->day = CP_DAY_UNKNOWN;
    if (len >= 2 && v[len - 2] == ':' && v[len - 1] == 'c') {
        o->cancelled = 1;
        len -= 2;
    }
    if (len < 18)
        return -1; /* "<16 hex>:c": no net before the flag */
    const char *net = v + 17;
    const char *colon = memchr(net, ':', len - 17);
    size_t net_len = colon ? (size_t)(colon - net) : len - 17;
    if (colon && (parse_i64(colon + 1, len - 17 - net_len - 1, &o->day) != 0 ||
                  o->day < -CP_STORE_DAY_MAX || o->day > CP_STORE_DAY_MAX))
        return -1;
    return parse_i64(net, net_len, &o->net) == 0 && o->net >= 0 ? 0 : -1;
}

static int parse_orders(cp_state_t *st, const char *v, size_t len)
{
    st->n_orders_mem = 0;
    size_t i = 0;
    while (i < len) {
        const char *comma = memchr(v + i, ',', len - i);
        size_t n = comma ? (size_t)(comma - (v + i)) : len - i;
        if (st->n_orders_mem == CP_DEDUP_MAX ||
            parse_order_entry(&st->orders_mem[st->n_orders_mem++], v + i, n) !=
                0)
            return -1;
        i += n + 1;
    }
    return 0;
}

/* ---- binary de-duplication memories (layout 3) ------------------------ */

static void put_u64le(unsigned char *p, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(x >> (8 * i));
}

static uint64_t get_u64le(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | p[i];
    return x;
}

static uint64_t zigzag(int64_t d)
{
    return d >= 0 ? (uint64_t)d << 1 : ((uint64_t)(-(d + 1)) << 1) | 1;
}

static int64_t unzigzag(uint64_t z)
{
    return z & 1 ? -(int64_t)(z >> 1) - 1 : (int64_t)(z >> 1);
}

size_t cp_store_encode_e(const cp_state_t *st, unsigned char *out)
{
    for (int i = 0; i < st->n_event_ids; i++)
        put_u64le(out + 8 * i, st->event_ids[i]);
    return (size_t)st->n_event_ids * 8;
}

int cp_store_decode_e(cp_state_t *st, const unsigned char *v, size_t len)
{
    if (len % 8 || len / 8 > CP_DEDUP_MAX)
        return -1;
    st->n_event_ids = (int)(len / 8);
    for (int i = 0; i < st->n_event_ids; i++)
        st->event_ids[i] = get_u64le(v + 8 * i);
    return 0;
}

/* An r entry: id hash (8 bytes LE), LEB128 net, LEB128 tag = d * 2 +
 * cancelled, d = 0 when the day is unknown (layout-1 entries), else
 * zigzag(day - previous known day, 0 before the first) + 1: consecutive
 * orders are days apart, so the tag is mostly one byte. */
size_t cp_store_encode_r(const cp_state_t *st, unsigned char *out)
{
    size_t n = 0;
    int64_t prev = 0;
    for (int i = 0; i < st->n_orders_mem; i++) {
        const cp_order_mem_t *o = &st->orders_mem[i];
        uint64_t d = 0;
        if (o->day != CP_DAY_UNKNOWN) {
            d = zigzag(o->day - prev) + 1;
            prev = o->day;
        }
        put_u64le(out + n, o->id_hash);
        n += 8;
        n += cp_uvarint_put(out + n, (uint64_t)o->net);
        n += cp_uvarint_put(out + n, d << 1 | (o->cancelled != 0));
    }
    return n;
}

int cp_store_decode_r(cp_state_t *st, const unsigned char *v, size_t len)
{
    int64_t prev = 0;
    size_t i = 0;
    st->n_orders_mem = 0;
    while (i < len) {
        uint64_t net, tag;
        size_t k;
        if (st->n_orders_mem == CP_DEDUP_MAX || len - i < 10)
            return -1; /* an entry is at least 10 bytes */
        cp_order_mem_t *o = &st->orders_mem[st->n_orders_mem++];
        o->id_hash = get_u64le(v + i);
        i += 8;
        if (!(k = cp_uvarint_get(v + i, len - i, &net)) || net > INT64_MAX)
            return -1;
        i += k;
        if (!(k = cp_uvarint_get(v + i, len - i, &tag)))
            return -1;
        i += k;
        o->net = (int64_t)net;
        o->cancelled = (int)(tag & 1);
        o->day = CP_DAY_UNKNOWN;
        uint64_t d = tag >> 1;
        if (d == 0)
            continue;
        if (d - 1 > (uint64_t)4 * CP_STORE_DAY_MAX)
            return -1; /* a delta no two stored days have */
        int64_t day = prev + unzigzag(d - 1);
        if (day < -CP_STORE_DAY_MAX || day > CP_STORE_DAY_MAX)
            return -1;
        o->day = prev = day;
    }
    return 0;
}

/* An arena array of n elements with room for one more: arr itself, or a
 * copy with twice the capacity (first when empty; the old block stays in
 * the arena). NULL when out of memory. */
static void *arena_grow(void *arr, int n, int *cap, size_t size, int first,
                        cp_arena_t *a)
{
    if (n < *cap)
        return arr;
    int c = *cap ? *cap * 2 : first;
    void *p = cp_arena_alloc(a, size * (size_t)c);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, arr, size * (size_t)n);
    *cap = c;
    return p;
}

static cp_wm_t *wm_find(cp_stored_t *s, uint32_t tid, int32_t partition)
{
    for (int i = 0; i < s->n_wms; i++)
        if (s->wms[i].tid == tid && s->wms[i].partition == partition)
            return &s->wms[i];
    return NULL;
}

/* A new watermark of (tid, partition), offset unset. */
static cp_wm_t *wm_add(cp_stored_t *s, uint32_t tid, int32_t partition,
                       cp_arena_t *a)
{
    cp_wm_t *wms =
        arena_grow(s->wms, s->n_wms, &s->cap_wms, sizeof(*wms), 4, a);
    if (!wms)
        return NULL;
    s->wms = wms;
    cp_wm_t *wm = &s->wms[s->n_wms++];
    wm->tid = tid;
    wm->partition = partition;
    wm->in_w = 0;
    return wm;
}

/* Adds a watermark read from the hash; one already there
 * (w and a legacy field of the same partition) keeps the greater offset. */
static int wm_read(cp_stored_t *s, uint32_t tid, int32_t partition,
                   int64_t offset, cp_arena_t *a)
{
    cp_wm_t *wm = wm_find(s, tid, partition);
    if (wm) {
        if (offset > wm->offset)
            wm->offset = offset;
        return 0;
    }
    if (!(wm = wm_add(s, tid, partition, a)))
        return -1;
    wm->offset = offset;
    return 0;
}

/* Layout <= 3: "w:<topic>:<partition>" -> watermark, and the field's name
 * kept for the write to delete. */
static int parse_wm_field(cp_stored_t *s, const char *f, size_t flen,
                          const char *v, size_t vlen, cp_arena_t *a)
{
    const char *colon = NULL;
    for (size_t i = flen; i > 2; i--)
        if (f[i - 1] == ':') {
            colon = f + i - 1;
            break;
        }
    int64_t part, off;
    if (!colon || colon == f + 2 ||
        parse_i64(colon + 1, flen - (size_t)(colon + 1 - f), &part) != 0 ||
        part < 0 || part > INT32_MAX || parse_i64(v, vlen, &off) != 0 ||
        off < 0)
        return -1;
    uint32_t tid = cp_hash_fnv1a32(f + 2, (size_t)(colon - (f + 2)));
    const char **names = arena_grow(s->legacy_w, s->n_legacy_w,
                                    &s->cap_legacy_w, sizeof(*names), 4, a);
    if (!names)
        return -1;
    s->legacy_w = names;
    char *name = cp_arena_strndup(a, f, flen);
    if (!name)
        return -1;
    s->legacy_w[s->n_legacy_w++] = name;
    return wm_read(s, tid, (int32_t)part, off, a);
}

size_t cp_store_encode_w(const cp_stored_t *s, unsigned char *out)
{
    size_t n = 0;
    for (int i = 0; i < s->n_wms; i++) {
        const cp_wm_t *wm = &s->wms[i];
        for (int b = 0; b < 4; b++)
            out[n++] = (unsigned char)(wm->tid >> (8 * b));
        n += cp_uvarint_put(out + n, (uint64_t)wm->partition);
        n += cp_uvarint_put(out + n, (uint64_t)wm->offset);
    }
    return n;
}

int cp_store_decode_w(cp_stored_t *s, const unsigned char *v, size_t len,
                      cp_arena_t *a)
{
    size_t pos = 0;
    if (len == 0)
        return -1; /* never written empty */
    while (pos < len) {
        uint64_t part, off;
        size_t k;
        if (len - pos < 4)
            return -1;
        uint32_t tid = (uint32_t)v[pos] | (uint32_t)v[pos + 1] << 8 |
                       (uint32_t)v[pos + 2] << 16 | (uint32_t)v[pos + 3] << 24;
        pos += 4;
        if (!(k = cp_uvarint_get(v + pos, len - pos, &part)) ||
            part > INT32_MAX)
            return -1;
        pos += k;
        if (!(k = cp_uvarint_get(v + pos, len - pos, &off)) || off > INT64_MAX)
            return -1;
        pos += k;
        /* The same partition twice in w is corrupt; once in w and once
         * in a legacy field is an upgrade: the greater offset counts. */
        cp_wm_t *wm = wm_find(s, tid, (int32_t)part);
        if (wm && wm->in_w)
            return -1;
        if (wm_read(s, tid, (int32_t)part, (int64_t)off, a) != 0)
            return -1;
        wm_find(s, tid, (int32_t)part)->in_w = 1;
    }
    return 0;
}

/* The outbox is lines "<code>\t<json>\n" with a known code. */
static int outbox_valid(const char *v, size_t len)
{
    if (len == 0 || v[len - 1] != '\n')
        return 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(v + i, '\n', len - i);
        size_t n = (size_t)(nl - (v + i));
        if (n < 3 || (v[i] != CP_OUTBOX_SEGMENTS && v[i] != CP_OUTBOX_CHURN) ||
            v[i + 1] != '\t' || memchr(v + i, '\0', n))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Room for len more outbox bytes (and a NUL): the outbox so far is copied
 * into a new arena block; returns where the new bytes go, NULL on
 * allocation failure. s->outbox_len is the caller's to move. */
static char *outbox_grow(cp_stored_t *s, size_t len, cp_arena_t *a)
{
    char *p = cp_arena_alloc(a, s->outbox_len + len + 1);
    if (!p)
        return NULL;
    if (s->outbox_len)
        memcpy(p, s->outbox, s->outbox_len);
    p[s->outbox_len + len] = '\0';
    s->outbox = p;
    return p + s->outbox_len;
}

static int field_is(const char *f, size_t flen, const char *name)
{
    return strlen(name) == flen && memcmp(f, name, flen) == 0;
}

/* x (outbox lines, appended) or xq (the highest seq wins), from the
 * outbox key or a legacy customer hash. */
static int parse_outbox(cp_stored_t *s, const char *f, size_t flen,
                        const char *v, size_t vlen, cp_arena_t *a)
{
    if (field_is(f, flen, "xq")) {
        int64_t q;
        if (parse_i64(v, vlen, &q) != 0 || q < 0)
            return -1;
        if (q > s->outbox_seq)
            s->outbox_seq = q;
        return 0;
    }
    if (!field_is(f, flen, "x") || !outbox_valid(v, vlen))
        return -1;
    char *p = outbox_grow(s, vlen, a);
    if (!p)
        return -1;
    memcpy(p, v, vlen);
    s->outbox_len += vlen;
    return 0;
}

static cp_err_t field_error(const char *f, size_t flen, char *errstr,
                            size_t errstr_size)
{
    snprintf(errstr, errstr_size, "unreadable customer field '%.*s'",
             (int)(flen > 64 ? 64 : flen), f);
    return CP_EPARSE;
}

/* Keeps an e or r value until cp_store_parse_end knows the layout. */
static int keep_raw(const char **raw, size_t *raw_len, const char *v,
                    size_t vlen, cp_arena_t *a)
{
    char *p = cp_arena_alloc(a, vlen ? vlen : 1);
    if (!p)
        return -1;
    memcpy(p, v, vlen);
    *raw = p;
    *raw_len = vlen;
    return 0;
}

int cp_store_parse_double(const char *v, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double x = strtod(buf, &end);
    if (errno || *end || !isfinite(x) || buf[0] == ' ')
        return -1;
    *out = x;
    return 0;
}

/* Splits v at sep into at most max parts; returns the count. */
static int split(const char *v, size_t len, char sep, const char **p, size_t *n,
                 int max)
{
    int k = 0;
    size_t i = 0;
    for (;;) {
        if (k == max)
            return -1;
        const char *c = memchr(v + i, sep, len - i);
        size_t l = c ? (size_t)(c - (v + i)) : len - i;
        p[k] = v + i;
        n[k++] = l;
        if (!c)
            return k;
        i += l + 1;
    }
}

/* g: "<score>:<ref_ms>". */
static int parse_engagement(cp_state_t *st, const char *v, size_t len)
{
    const char *p[2];
    size_t n[2];
    if (split(v, len, ':', p, n, 2) != 2 ||
        cp_store_parse_double(p[0], n[0], &st->engagement.score) != 0 ||
        st->engagement.score < 0 ||
        parse_i64(p[1], n[1], &st->engagement.ref_ms) != 0)
        return -1;
    st->engagement.n = 1;
    return 0;
}

/* gc: browsing events per type, ',' separated. */
static int parse_browse_counts(cp_state_t *st, const char *v, size_t len)
{
    const char *p[CP_BROWSE__COUNT];
    size_t n[CP_BROWSE__COUNT];
    if (split(v, len, ',', p, n, CP_BROWSE__COUNT) != CP_BROWSE__COUNT)
        return -1;
    for (int i = 0; i < CP_BROWSE__COUNT; i++)
        if (parse_i64(p[i], n[i], &st->browse_n[i]) != 0 || st->browse_n[i] < 0)
            return -1;
    return 0;
}

/* h: "<R>,<F>,<M>", the histogram buckets the customer is counted in. */
static int parse_hist(cp_stored_t *s, const char *v, size_t len)
{
    const char *p[3];
    size_t n[3];
    if (split(v, len, ',', p, n, 3) != 3)
        return -1;
    for (int d = 0; d < 3; d++)
        if (parse_i64(p[d], n[d], &s->h.b[d]) != 0 ||
            s->h.b[d] < -CP_STORE_DAY_MAX || s->h.b[d] > CP_STORE_DAY_MAX)
            return -1;
    s->h.in = 1;
    return 0;
}

/* k: events,open,resolved,resolution_min_sum,complaints n,score,ref,
 * csat_last,csat_last_ms,csat_sum,csat_n,nps_last,nps_last_ms. */
#define K_PARTS 13
static int parse_support(cp_state_t *st, const char *v, size_t len)
{
    const char *p[K_PARTS];
    size_t n[K_PARTS];
    int64_t x[K_PARTS];
    cp_support_t *k = &st->support;
    if (split(v, len, ',', p, n, K_PARTS) != K_PARTS)
        return -1;
    for (int i = 0; i < K_PARTS; i++) {
        if (i == 3 || i == 5)
            continue;
        if (parse_i64(p[i], n[i], &x[i]) != 0)
            return -1;
    }
    if (cp_store_parse_double(p[3], n[3], &k->resolution_min_sum) != 0 ||
        cp_store_parse_double(p[5], n[5], &k->complaints.score) != 0)
        return -1;
    k->events = x[0];
    k->open_tickets = x[1];
    k->resolved = x[2];
    k->complaints.n = x[4] != 0;
    k->complaints.ref_ms = x[6];
    k->csat_last = (int)x[7];
    k->csat_last_ms = x[8];
    k->csat_sum = x[9];
    k->csat_n = x[10];
    k->nps_last = (int)x[11];
    k->nps_last_ms = x[12];
    if (k->events < 1 || k->open_tickets < 0 || k->resolved < 0 ||
        k->resolution_min_sum < 0 || k->complaints.score < 0 ||
        (x[4] != 0 && x[4] != 1) || x[7] < 0 || x[7] > 5 || k->csat_sum < 0 ||
        k->csat_n < 0 || x[11] < -1 || x[11] > 10)
        return -1;
    return 0;
}

/* A level code of one model: index into codes (NULL entries skipped). */
static int parse_code(const char *v, size_t len, const char *(*code)(int),
                      int count, int *out)
{
    for (int i = 0; i < count; i++) {
        const char *c = code(i);
        if (c && strlen(c) == len && memcmp(c, v, len) == 0) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

static const char *rfmq_code(int i)
{
    return cp_rfmseg_code((cp_rfmseg_t)i);
}
static const char *stage_code(int i)
{
    return cp_lifecycle_code((cp_lifecycle_t)i);
}
static const char *eng_code(int i)
{
    return cp_engagement_code((cp_engagement_t)i);
}
static const char *sat_code(int i)
{
    return cp_satisfaction_code((cp_satisfaction_t)i);
}
static const char *tier_code(int i)
{
    return cp_tier_code((cp_tier_t)i);
}

/* sc: member custom segments, names joined by ','; names the config no
 * longer has are dropped. */
static int parse_custom(cp_state_t *st, const char *v, size_t len,
                        const cp_store_ctx_t *ctx)
{
    st->custom = 0;
    size_t i = 0;
    while (i <= len) {
        const char *c = memchr(v + i, ',', len - i);
        size_t n = c ? (size_t)(c - (v + i)) : len - i;
        if (n == 0)
            return -1;
        for (int j = 0; ctx && j < ctx->n_segments && j < 64; j++)
            if (strlen(ctx->segments[j]) == n &&
                memcmp(ctx->segments[j], v + i, n) == 0)
                st->custom |= (uint64_t)1 << j;
        if (!c)
            break;
        i += n + 1;
    }
    return 0;
}

static int parse_level(cp_stored_t *s, const char *f, size_t flen,
                       const char *v, size_t vlen, const cp_store_ctx_t *ctx)
{
    cp_state_t *st = &s->st;
    int x;
    if (flen != 2)
        return 1; /* not a level field */
    switch (f[1]) {
    case 'q':
        s->had |= CP_F_SQ;
        if (parse_code(v, vlen, rfmq_code, CP_RFMSEG__COUNT, &x) != 0)
            return -1;
        st->rfmq = (cp_rfmseg_t)x;
        return 0;
    case 'l':
        s->had |= CP_F_SL;
        if (parse_code(v, vlen, stage_code, CP_LC__COUNT, &x) != 0)
            return -1;
        st->stage = (cp_lifecycle_t)x;
        return 0;
    case 'e':
        s->had |= CP_F_SE;
        if (parse_code(v, vlen, eng_code, CP_ENG__COUNT, &x) != 0)
            return -1;
        st->eng = (cp_engagement_t)x;
        return 0;
    case 's':
        s->had |= CP_F_SS;
        if (parse_code(v, vlen, sat_code, CP_SAT__COUNT, &x) != 0)
            return -1;
        st->sat = (cp_satisfaction_t)x;
        return 0;
    case 'v':
        s->had |= CP_F_SV;
        if (parse_code(v, vlen, tier_code, CP_TIER__COUNT, &x) != 0)
            return -1;
        st->tier = (cp_tier_t)x;
        return 0;
    case 'c':
        s->had |= CP_F_SC;
        return parse_custom(st, v, vlen, ctx);
    }
    return 1;
}

/* a:<name>: a profile attribute. */
static int parse_attr(cp_stored_t *s, const char *f, size_t flen, const char *v,
                      size_t vlen, cp_arena_t *a)
{
    if (flen < 3 || flen > 34 || vlen > 64)
        return -1;
    if (cp_store_attr_set(s, f + 2, flen - 2, v, vlen, a) != CP_OK)
        return -1;
    s->attrs[s->n_attrs - 1].dirty = 0;
    return 0;
}

/* ---- churn fields (docs/churn.md "Consumer integration") --------------- */

/* gp: "<peak>"; its reference time is g's (checked at the end). */
static int parse_peak(cp_stored_t *s, const char *v, size_t len)
{
    cp_decay_t *pk = &s->cs.eng_peak;
    if (cp_store_parse_double(v, len, &pk->score) != 0 || pk->score < 0)
        return -1;
    pk->n = 1;
    return 0;
}

/* sp: "<short>,<long>,<ref ms>,<orders 1|2>". */
static int parse_spend(cp_stored_t *s, const char *v, size_t len)
{
    const char *p[4];
    size_t n[4];
    cp_churn_state_t *cs = &s->cs;
    int64_t ref;
    if (split(v, len, ',', p, n, 4) != 4 ||
        cp_store_parse_double(p[0], n[0], &cs->spend_short.score) != 0 ||
        cp_store_parse_double(p[1], n[1], &cs->spend_long.score) != 0 ||
        cs->spend_short.score < 0 || cs->spend_long.score < 0 ||
        parse_i64(p[2], n[2], &ref) != 0 ||
        parse_i64(p[3], n[3], &cs->spend_orders) != 0 || cs->spend_orders < 1 ||
        cs->spend_orders > 2)
        return -1;
    cs->spend_short.ref_ms = cs->spend_long.ref_ms = ref;
    cs->spend_short.n = cs->spend_long.n = 1;
    return 0;
}

/* cw: "<level low|medium|high>,<since ms>": an episode. */
static int parse_warn(cp_stored_t *s, const char *v, size_t len)
{
    const char *p[2];
    size_t n[2];
    char code[8];
    cp_churn_level_t level;
    cp_churn_warn_t *w = &s->cs.warn;
    if (split(v, len, ',', p, n, 2) != 2 || n[0] >= sizeof(code))
        return -1;
    memcpy(code, p[0], n[0]);
    code[n[0]] = '\0';
    if (cp_churn_level_parse(code, &level) != 0 ||
        level == CP_CHURN_LEVEL_NONE ||
        parse_i64(p[1], n[1], &w->since_ms) != 0)
        return -1;
    w->level = level;
    w->armed = 0;
    return 0;
}

/* mk: "<latest activity day>,<bits>" (docs/metrics.md); the day is "-"
 * before any activity. */
static int parse_mk(cp_stored_t *s, const char *v, size_t len)
{
    const char *p[2];
    size_t n[2];
    int64_t bits;
    if (split(v, len, ',', p, n, 2) != 2 || parse_i64(p[1], n[1], &bits) != 0 ||
        bits < 0 || bits > (CP_MK_COHORT | CP_MK_REPEAT))
        return -1;
    if (n[0] == 1 && p[0][0] == '-')
        s->mk_day = INT64_MIN;
    else if (parse_i64(p[0], n[0], &s->mk_day) != 0 ||
             s->mk_day < -CP_DUE_DAY_MAX || s->mk_day > CP_DUE_DAY_MAX)
        return -1;
    s->mk_bits = (int)bits;
    s->mk_on = 1;
    return 0;
}

/* dd: "<epoch ms>", an instant custpulse can format (0..9999-12-31). */
static int parse_due(cp_stored_t *s, const char *v, size_t len)
{
    return parse_i64(v, len, &s->due_ms) == 0 && s->due_ms >= 0 &&
                   s->due_ms <= CP_DUE_MS_MAX
               ? 0
               : -1;
}

static int parse_churn_field(cp_stored_t *s, const char *f, size_t flen,
                             const char *v, size_t vlen)
{
    if (field_is(f, flen, "gp")) {
        s->had |= CP_F_GP;
        return parse_peak(s, v, vlen);
    }
    if (field_is(f, flen, "sp")) {
        s->had |= CP_F_SP;
        return parse_spend(s, v, vlen);
    }
    if (field_is(f, flen, "cw")) {
        s->had |= CP_F_CW;
        return parse_warn(s, v, vlen);
    }
    s->had |= CP_F_DD;
    return parse_due(s, v, vlen);
}

static int parse_int_field(cp_stored_t *s, const char *f, size_t flen,
                           const char *v, size_t vlen, const cp_tz_t *tz)
{
    cp_state_t *st = &s->st;
    int64_t x;
    if (parse_i64(v, vlen, &x) != 0)
        return -1;
    switch (f[0]) {
    case 'v':
        st->version = x;
        return x >= 0 ? 0 : -1;
    case 'o':
        st->orders = x;
        return x >= 0 ? 0 : -1;
    case 'm':
        st->monetary = x;
        return x >= 0 ? 0 : -1;
    case 'q':
        st->seq = x;
        return x >= 0 ? 0 : -1;
    case 'f':
        st->first_ms = x;
        st->first_day = cp_tz_day(tz, x);
        st->has_order_time = 1;
        return 0;
    case 'n':
        st->events = x;
        return x >= 0 ? 0 : -1;
    case 'b':
        st->repeat_days = x;
        return x >= 0 ? 0 : -1;
    case 'z':
        st->first_spend = x;
        return x >= 0 ? 0 : -1;
    case 'l':
        st->last_ms = x;
        st->last_day = cp_tz_day(tz, x);
        st->has_order_time = 1;
        return 0;
    }
    return -1;
}

cp_err_t cp_store_parse_field(cp_stored_t *s, const char *f, size_t flen,
                              const char *v, size_t vlen,
                              const cp_store_ctx_t *ctx, cp_arena_t *a,
                              char *errstr, size_t errstr_size)
{
    int rc = 0;
    s->exists = 1;
    s->parsing = 1;
    if (flen == 1 && strchr("vomqflnbz", f[0])) {
        if (f[0] == 'b')
            s->had |= CP_F_B;
        if (f[0] == 'z')
            s->had |= CP_F_Z;
        rc = parse_int_field(s, f, flen, v, vlen, ctx->tz);
    } else if (field_is(f, flen, "gp") || field_is(f, flen, "sp") ||
               field_is(f, flen, "cw") || field_is(f, flen, "dd")) {
        rc = parse_churn_field(s, f, flen, v, vlen);
    } else if (field_is(f, flen, "mk")) {
        s->had |= CP_F_MK;
        rc = parse_mk(s, v, vlen);
    } else if (flen == 2 && f[0] == 's') {
        rc = parse_level(s, f, flen, v, vlen, ctx);
        if (rc > 0)
            rc = 0; /* an unknown s* field: ignored */
    } else if (field_is(f, flen, "lv")) {
        int64_t lv;
        rc = parse_i64(v, vlen, &lv) == 0 && lv >= 1 && lv <= 1000 ? 0 : -1;
        s->layout = (int)lv;
    } else if (field_is(f, flen, "g")) {
        rc = parse_engagement(&s->st, v, vlen);
    } else if (field_is(f, flen, "h")) {
        s->had |= CP_F_H;
        rc = parse_hist(s, v, vlen);
    } else if (field_is(f, flen, "gc")) {
        rc = parse_browse_counts(&s->st, v, vlen);
    } else if (field_is(f, flen, "k")) {
        rc = parse_support(&s->st, v, vlen);
    } else if (field_is(f, flen, "yw")) {
        rc = parse_i64(v, vlen, &s->st.won_back_day) == 0 &&
                     s->st.won_back_day >= 0
                 ? 0
                 : -1;
    } else if (flen > 2 && f[0] == 'a' && f[1] == ':') {
        rc = parse_attr(s, f, flen, v, vlen, a);
        if (rc == 0 && field_is(f, flen, "a:is_strategic"))
            s->st.strategic = vlen == 4 && memcmp(v, "true", 4) == 0;
    } else if (field_is(f, flen, "s")) {
        char code[32];
        if (vlen == 0 || vlen >= sizeof(code))
            rc = -1;
        else {
            memcpy(code, v, vlen);
            code[vlen] = '\0';
            rc = cp_rfm8_parse(code, &s->st.segment);
        }
        s->had |= CP_F_S;
    } else if (field_is(f, flen, "e")) {
        s->had |= CP_F_E;
        rc = keep_raw(&s->raw_e, &s->raw_e_len, v, vlen, a);
    } else if (field_is(f, flen, "r")) {
        s->had |= CP_F_R;
        rc = keep_raw(&s->raw_r, &s->raw_r_len, v, vlen, a);
    } else if (field_is(f, flen, "x") || field_is(f, flen, "xq")) {
        s->outbox_legacy = 1; /* layout <= 2 */
        rc = parse_outbox(s, f, flen, v, vlen, a);
    } else if (field_is(f, flen, "w")) {
        rc = cp_store_decode_w(s, (const unsigned char *)v, vlen, a);
    } else if (flen > 2 && f[0] == 'w' && f[1] == ':') {
        rc = parse_wm_field(s, f, flen, v, vlen, a);
    }
    return rc ? field_error(f, flen, errstr, errstr_size) : CP_OK;
}

cp_err_t cp_store_parse_end(cp_stored_t *s, char *errstr, size_t errstr_size)
{
    const int bin = s->layout >= 3;
    const unsigned char *e = (const unsigned char *)s->raw_e;
    const unsigned char *r = (const unsigned char *)s->raw_r;
    const char *bad = NULL;
    if (e && (bin ? cp_store_decode_e(&s->st, e, s->raw_e_len)
                  : parse_event_ids(&s->st, s->raw_e, s->raw_e_len)) != 0)
        bad = "e";
    else if (r && (bin ? cp_store_decode_r(&s->st, r, s->raw_r_len)
                       : parse_orders(&s->st, s->raw_r, s->raw_r_len)) != 0)
        bad = "r";
    else if (s->cs.eng_peak.n && !s->st.engagement.n)
        bad = "gp"; /* a peak without the score it follows */
    s->raw_e = s->raw_r = NULL;
    s->parsing = 0;
    if (s->st.has_order_time && !(s->had & CP_F_Z))
        s->st.first_spend = -1; /* written before z: unknown */
    if (s->cs.eng_peak.n)
        s->cs.eng_peak.ref_ms = s->st.engagement.ref_ms;
    return bad ? field_error(bad, strlen(bad), errstr, errstr_size) : CP_OK;
}

cp_err_t cp_store_parse_outbox_field(cp_stored_t *s, const char *f, size_t flen,
                                     const char *v, size_t vlen, cp_arena_t *a,
                                     char *errstr, size_t errstr_size)
{
    if (parse_outbox(s, f, flen, v, vlen, a) == 0)
        return CP_OK;
    snprintf(errstr, errstr_size, "unreadable outbox field '%.*s'",
             (int)(flen > 64 ? 64 : flen), f);
    return CP_EPARSE;
}

/* ---- profile attributes ------------------------------------------------ */

const cp_sattr_t *cp_store_attr(const cp_stored_t *s, const char *name,
                                size_t name_len)
{
    for (int i = 0; i < s->n_attrs; i++)
        if (s->attrs[i].name_len == name_len &&
            memcmp(s->attrs[i].name, name, name_len) == 0)
            return &s->attrs[i];
    return NULL;
}

cp_err_t cp_store_attr_set(cp_stored_t *s, const char *name, size_t name_len,
                           const char *value, size_t value_len, cp_arena_t *a)
{
    cp_sattr_t *at = (cp_sattr_t *)cp_store_attr(s, name, name_len);
    if (!at && !value)
        return CP_OK; /* removing an attribute the customer does not have */
    if (!at) {
        /* Only attributes held count against the limit; entries removed in
         * this batch stay until the write deletes them (at most as many
         * again). */
        int held = 0;
        for (int i = 0; i < s->n_attrs; i++)
            held += !s->attrs[i].removed;
        if (held >= CP_STORE_ATTRS_MAX || s->n_attrs >= 2 * CP_STORE_ATTRS_MAX)
            return CP_ERANGE;
        cp_sattr_t *attrs = arena_grow(s->attrs, s->n_attrs, &s->cap_attrs,
                                       sizeof(*attrs), 8, a);
        if (!attrs)
            return CP_ENOMEM;
        s->attrs = attrs;
        char *nm = cp_arena_strndup(a, name, name_len);
        if (!nm)
            return CP_ENOMEM;
        at = &s->attrs[s->n_attrs++];
        at->name = nm;
        at->name_len = name_len;
    }
    at->value = NULL;
    at->value_len = 0;
    if (value) {
        char *v = cp_arena_strndup(a, value, value_len);
        if (!v)
            return CP_ENOMEM;
        at->value = v;
        at->value_len = value_len;
    }
    at->removed = value == NULL;
    at->dirty = 1;
    return CP_OK;
}

/* ---- watermarks and outbox -------------------------------------------- */

uint32_t cp_store_topic_id(const char *topic)
{
    return cp_hash_fnv1a32(topic, strlen(topic));
}

cp_wm_t *cp_store_wm(cp_stored_t *s, const char *topic, int32_t partition)
{
    return wm_find(s, cp_store_topic_id(topic), partition);
}

cp_err_t cp_store_wm_set(cp_stored_t *s, const char *topic, int32_t partition,
                         int64_t offset, cp_arena_t *a)
{
    if (partition < 0 || offset < 0)
        return CP_EINVAL; /* not a Kafka position; w could not hold it */
    uint32_t tid = cp_store_topic_id(topic);
    cp_wm_t *wm = wm_find(s, tid, partition);
    if (!wm && !(wm = wm_add(s, tid, partition, a)))
        return CP_ENOMEM;
    wm->offset = offset;
    return CP_OK;
}

cp_err_t cp_store_outbox_add(cp_stored_t *s, char code, const char *json,
                             size_t len, int64_t seq, cp_arena_t *a)
{
    char *p = outbox_grow(s, 2 + len + 1, a);
    if (!p)
        return CP_ENOMEM;
    p[0] = code;
    p[1] = '\t';
    memcpy(p + 2, json, len);
    p[2 + len] = '\n';
    s->outbox_len += 2 + len + 1;
    s->outbox_seq = seq;
    return CP_OK;
}

/* ---- the write -------------------------------------------------------- */

cp_err_t cp_argv_add(cp_argv_t *av, cp_arena_t *a, const char *s, size_t len)
{
    if (av->argc == av->cap) {
        int cap = av->cap ? av->cap * 2 : 32;
        const char **argv = cp_arena_alloc(a, sizeof(*argv) * (size_t)cap);
        size_t *lens = cp_arena_alloc(a, sizeof(*lens) * (size_t)cap);
        if (!argv || !lens)
            return CP_ENOMEM;
        if (av->argc) {
            memcpy(argv, av->argv, sizeof(*argv) * (size_t)av->argc);
            memcpy(lens, av->argvlen, sizeof(*lens) * (size_t)av->argc);
        }
        av->argv = argv;
        av->argvlen = lens;
        av->cap = cap;
    }
    av->argv[av->argc] = s;
    av->argvlen[av->argc] = len;
    av->argc++;
    return CP_OK;
}

static cp_err_t add_str(cp_argv_t *av, cp_arena_t *a, const char *s)
{
    return cp_argv_add(av, a, s, strlen(s));
}

static cp_err_t add_i64(cp_argv_t *av, cp_arena_t *a, int64_t v)
{
    char *p = cp_arena_alloc(a, 24);
    if (!p)
        return CP_ENOMEM;
    return cp_argv_add(av, a, p, (size_t)snprintf(p, 24, "%" PRId64, v));
}

static cp_err_t add_pair_i64(cp_argv_t *av, cp_arena_t *a, const char *f,
                             int64_t v)
{
    cp_err_t err = add_str(av, a, f);
    return err ? err : add_i64(av, a, v);
}

static char *fmt(cp_arena_t *a, size_t cap, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

static char *fmt(cp_arena_t *a, size_t cap, const char *f, ...)
{
    char *p = cp_arena_alloc(a, cap);
    if (!p)
        return NULL;
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(p, cap, f, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap ? p : NULL;
}

static cp_err_t add_pair_str(cp_argv_t *av, cp_arena_t *a, const char *f,
                             const char *v)
{
    if (!v)
        return CP_ENOMEM;
    cp_err_t err = add_str(av, a, f);
    return err ? err : add_str(av, a, v);
}

/* A binary de-duplication memory (field e or r) of at most max bytes,
 * NUL bytes included (hence the explicit length). */
static cp_err_t add_dedup(cp_argv_t *av, cp_arena_t *a, const char *f,
                          const cp_state_t *st,
                          size_t (*encode)(const cp_state_t *, unsigned char *),
                          size_t max)
{
    unsigned char *p = cp_arena_alloc(a, max);
    if (!p)
        return CP_ENOMEM;
    cp_err_t err = add_str(av, a, f);
    return err ? err : cp_argv_add(av, a, (const char *)p, encode(st, p));
}

static char *encode_support(const cp_support_t *k, cp_arena_t *a)
{
    return fmt(a, 400,
               "%" PRId64 ",%" PRId64 ",%" PRId64 ",%.17g,%d,%.17g,%" PRId64
               ",%d,%" PRId64 ",%" PRId64 ",%" PRId64 ",%d,%" PRId64,
               k->events, k->open_tickets, k->resolved, k->resolution_min_sum,
               k->complaints.n ? 1 : 0, k->complaints.score,
               k->complaints.ref_ms, k->csat_last, k->csat_last_ms, k->csat_sum,
               k->csat_n, k->nps_last, k->nps_last_ms);
}

static char *encode_custom(uint64_t bits, const cp_store_ctx_t *ctx,
                           cp_arena_t *a)
{
    size_t cap = 1;
    for (int j = 0; j < ctx->n_segments && j < 64; j++)
        cap += strlen(ctx->segments[j]) + 1;
    char *p = cp_arena_alloc(a, cap);
    if (!p)
        return NULL;
    size_t n = 0;
    for (int j = 0; j < ctx->n_segments && j < 64; j++) {
        if (!(bits >> j & 1))
            continue;
        size_t l = strlen(ctx->segments[j]);
        if (n)
            p[n++] = ',';
        memcpy(p + n, ctx->segments[j], l);
        n += l;
    }
    p[n] = '\0';
    return p;
}

/* gp, sp, cw and dd, where the state has them (their bits into *now). */
static cp_err_t add_churn_fields(const cp_stored_t *s, cp_arena_t *a,
                                 cp_argv_t *av, unsigned *now)
{
    const cp_churn_state_t *cs = &s->cs;
    cp_err_t err = CP_OK;
    if (cs->eng_peak.n && s->st.engagement.n) {
        *now |= CP_F_GP;
        err =
            add_pair_str(av, a, "gp", fmt(a, 32, "%.17g", cs->eng_peak.score));
    }
    if (cs->spend_orders > 0) {
        *now |= CP_F_SP;
        err =
            err ? err
                : add_pair_str(av, a, "sp",
                               fmt(a, 96, "%.17g,%.17g,%" PRId64 ",%" PRId64,
                                   cs->spend_short.score, cs->spend_long.score,
                                   cs->spend_short.ref_ms, cs->spend_orders));
    }
    if (!cs->warn.armed) {
        *now |= CP_F_CW;
        err = err ? err
                  : add_pair_str(av, a, "cw",
                                 fmt(a, 40, "%s,%" PRId64,
                                     cp_churn_level_code(cs->warn.level),
                                     cs->warn.since_ms));
    }
    if (s->due_ms != CP_STORE_DUE_NEVER) {
        *now |= CP_F_DD;
        err = err ? err : add_pair_i64(av, a, "dd", s->due_ms);
    }
    if (s->mk_on) {
        *now |= CP_F_MK;
        err = err ? err
                  : add_pair_str(av, a, "mk",
                                 s->mk_day == INT64_MIN
                                     ? fmt(a, 8, "-,%d", s->mk_bits)
                                     : fmt(a, 32, "%" PRId64 ",%d", s->mk_day,
                                           s->mk_bits));
    }
    return err;
}

/* The fields of the state, and the optional fields to delete (their names
 * into del[], count in *n_del). */
static cp_err_t add_state_fields(const cp_stored_t *s,
                                 const cp_store_ctx_t *ctx, cp_arena_t *a,
                                 cp_argv_t *av, const char **del, int *n_del)
{
    const cp_state_t *st = &s->st;
    cp_err_t err = CP_OK;
    unsigned now = 0;
    err = err ? err : add_pair_i64(av, a, "v", st->version + 1);
    err = err ? err : add_pair_i64(av, a, "lv", CP_STORE_LAYOUT);
    err = err ? err : add_pair_i64(av, a, "o", st->orders);
    err = err ? err : add_pair_i64(av, a, "m", st->monetary);
    err = err ? err : add_pair_i64(av, a, "q", st->seq);
    err = err ? err : add_pair_i64(av, a, "n", st->events);
    if (st->has_order_time) {
        err = err ? err : add_pair_i64(av, a, "f", st->first_ms);
        err = err ? err : add_pair_i64(av, a, "l", st->last_ms);
    }
    if (st->has_order_time && st->first_spend >= 0)
        err = err ? err : add_pair_i64(av, a, "z", st->first_spend);
    if (st->repeat_days > 0) {
        now |= CP_F_B;
        err = err ? err : add_pair_i64(av, a, "b", st->repeat_days);
    }
    if (st->segment != CP_RFM8_NONE) {
        now |= CP_F_S;
        err = err ? err : add_pair_str(av, a, "s", cp_rfm8_code(st->segment));
    }
    struct {
        unsigned bit;
        const char *f;
        const char *code;
    } levels[] = {
        {CP_F_SQ, "sq", cp_rfmseg_code(st->rfmq)},
        {CP_F_SL, "sl", cp_lifecycle_code(st->stage)},
        {CP_F_SE, "se", cp_engagement_code(st->eng)},
        {CP_F_SS, "ss", cp_satisfaction_code(st->sat)},
        {CP_F_SV, "sv", cp_tier_code(st->tier)},
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (!levels[i].code)
            continue;
        now |= levels[i].bit;
        err = err ? err : add_pair_str(av, a, levels[i].f, levels[i].code);
    }
    if (st->custom && ctx) {
        char *sc = encode_custom(st->custom, ctx, a);
        if (sc && sc[0]) {
            now |= CP_F_SC;
            err = err ? err : add_pair_str(av, a, "sc", sc);
        } else if (!sc) {
            return CP_ENOMEM;
        }
    }
    if (st->engagement.n)
        err = err ? err
                  : add_pair_str(av, a, "g",
                                 fmt(a, 64, "%.17g:%" PRId64,
                                     st->engagement.score,
                                     st->engagement.ref_ms));
    int browsed = 0;
    for (int i = 0; i < CP_BROWSE__COUNT; i++)
        browsed |= st->browse_n[i] != 0;
    if (browsed)
        err = err ? err
                  : add_pair_str(av, a, "gc",
                                 fmt(a, 160,
                                     "%" PRId64 ",%" PRId64 ",%" PRId64
                                     ",%" PRId64 ",%" PRId64 ",%" PRId64,
                                     st->browse_n[0], st->browse_n[1],
                                     st->browse_n[2], st->browse_n[3],
                                     st->browse_n[4], st->browse_n[5]));
    if (st->support.events)
        err = err ? err
                  : add_pair_str(av, a, "k", encode_support(&st->support, a));
    if (st->won_back_day >= 0)
        err = err ? err : add_pair_i64(av, a, "yw", st->won_back_day);
    for (int i = 0; i < s->n_attrs && !err; i++) {
        const cp_sattr_t *at = &s->attrs[i];
        if (!at->dirty)
            continue;
        char *f =
            fmt(a, at->name_len + 3, "a:%.*s", (int)at->name_len, at->name);
        if (!f)
            return CP_ENOMEM;
        if (at->removed) {
            del[(*n_del)++] = f;
            continue;
        }
        err = add_str(av, a, f);
        err = err ? err : cp_argv_add(av, a, at->value, at->value_len);
    }
    err = err ? err : add_churn_fields(s, a, av, &now);
    if (s->h_track && s->h_new.in) {
        now |= CP_F_H;
        err = err ? err
                  : add_pair_str(av, a, "h",
                                 fmt(a, 72, "%" PRId64 ",%" PRId64 ",%" PRId64,
                                     s->h_new.b[0], s->h_new.b[1],
                                     s->h_new.b[2]));
    } else if (!s->h_track && (s->had & CP_F_H)) {
        now |= CP_F_H; /* not tracked by this write: left as it is */
    }
    if (st->n_event_ids) {
        now |= CP_F_E;
        err = err ? err
                  : add_dedup(av, a, "e", st, cp_store_encode_e,
                              (size_t)st->n_event_ids * CP_STORE_E_ENTRY);
    }
    if (st->n_orders_mem) {
        now |= CP_F_R;
        err = err ? err
                  : add_dedup(av, a, "r", st, cp_store_encode_r,
                              (size_t)st->n_orders_mem * CP_STORE_R_ENTRY_MAX);
    }
    /* Optional fields the customer had and no longer has. */
    static const struct {
        unsigned bit;
        const char *f;
    } opt[] = {
        {CP_F_S, "s"},   {CP_F_B, "b"},   {CP_F_SQ, "sq"}, {CP_F_SL, "sl"},
        {CP_F_SE, "se"}, {CP_F_SS, "ss"}, {CP_F_SV, "sv"}, {CP_F_SC, "sc"},
        {CP_F_E, "e"},   {CP_F_R, "r"},   {CP_F_H, "h"},   {CP_F_GP, "gp"},
        {CP_F_SP, "sp"}, {CP_F_CW, "cw"}, {CP_F_DD, "dd"}, {CP_F_MK, "mk"}};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
        if ((s->had & opt[i].bit) && !(now & opt[i].bit))
            del[(*n_del)++] = opt[i].f;
    return err;
}

/* w: every watermark, when the customer has one (they are never
 * removed; an unchanged w is dropped by cp_store_write_delta). */
static cp_err_t add_wms(const cp_stored_t *s, cp_arena_t *a, cp_argv_t *av)
{
    if (!s->n_wms)
        return CP_OK;
    unsigned char *w =
        cp_arena_alloc(a, (size_t)s->n_wms * CP_STORE_W_ENTRY_MAX);
    if (!w)
        return CP_ENOMEM;
    cp_err_t err = add_str(av, a, "w");
    return err ? err
               : cp_argv_add(av, a, (const char *)w, cp_store_encode_w(s, w));
}

/* "nx [x xq]": the outbox key's new content, nx = 0 when empty. */
static cp_err_t add_outbox(const cp_stored_t *s, cp_arena_t *a, cp_argv_t *av)
{
    if (!s->outbox_len)
        return add_str(av, a, "0");
    cp_err_t err = add_str(av, a, "2");
    err = err ? err : cp_argv_add(av, a, s->outbox, s->outbox_len);
    return err ? err : add_i64(av, a, s->outbox_seq);
}

cp_err_t cp_store_write_args(const cp_stored_t *s, const cp_store_ctx_t *ctx,
                             const char *sha, const cp_store_keys_t *keys,
                             const cp_epoch_ref_t *eps, int n_eps,
                             const char *popkey, const cp_pop_t *pop_delta,
                             const cp_store_hist_t *hist,
                             const cp_store_metrics_t *metrics, cp_arena_t *a,
                             cp_argv_t *av)
{
    const int nmk = metrics ? metrics->n_keys : 0;
    const int nh = hist ? hist->n : 0;
    cp_err_t err = CP_OK;
    if (s->parsing)
        return CP_EINVAL; /* e and r not decoded: cp_store_parse_end */
    av->argc = 0;
    err = err ? err : add_str(av, a, "EVALSHA");
    err = err ? err : add_str(av, a, sha);
    /* The due index: 2 = ZADD dd id, 1 = ZREM id, 0 = not touched. */
    const int mark = keys->dmark >= 0 && s->outbox_len > 0;
    const int64_t score =
        mark && keys->dmark < s->due_ms ? keys->dmark : s->due_ms;
    const int nz = !keys->dkey                               ? 0
                   : s->due_ms != CP_STORE_DUE_NEVER || mark ? 2
                   : (s->had & CP_F_DD)                      ? 1
                                                             : 0;
    err = err ? err
              : add_i64(av, a,
                        2 + n_eps + (pop_delta ? 1 : 0) + (nh ? 1 : 0) +
                            (nz ? 1 : 0) + (nmk ? nmk + 1 : 0));
    err = err ? err : cp_argv_add(av, a, keys->key, keys->key_len);
    err = err ? err : cp_argv_add(av, a, keys->xkey, keys->xkey_len);
    for (int i = 0; i < n_eps; i++)
        err = err ? err : add_str(av, a, eps[i].key);
    if (pop_delta)
        err = err ? err : add_str(av, a, popkey);
    if (nh)
        err = err ? err : add_str(av, a, hist->key);
    if (nz)
        err = err ? err : add_str(av, a, keys->dkey);
    for (int i = 0; i < nmk; i++)
        err = err ? err : add_str(av, a, metrics->keys[i]);
    if (nmk)
        err = err ? err : add_str(av, a, metrics->days_key);
    err = err ? err : add_i64(av, a, s->st.version);
    err = err ? err : add_i64(av, a, n_eps);
    for (int i = 0; i < n_eps; i++) {
        err = err ? err : add_i64(av, a, eps[i].epoch);
        err = err ? err : add_i64(av, a, eps[i].pos);
        err = err ? err : cp_argv_add(av, a, eps[i].fp, strlen(eps[i].fp));
    }
    if (pop_delta) {
        err = err ? err : add_str(av, a, "4");
        err = err ? err : add_i64(av, a, pop_delta->n);
        err = err ? err : add_i64(av, a, pop_delta->sf);
        err = err ? err : add_i64(av, a, pop_delta->sm);
        err = err ? err : add_i64(av, a, pop_delta->sl);
    } else {
        err = err ? err : add_str(av, a, "0");
    }
    err = err ? err : add_i64(av, a, nh);
    for (int i = 0; i < nh; i++) {
        err = err ? err : add_str(av, a, hist->fields[i]);
        err = err ? err : add_i64(av, a, hist->deltas[i]);
    }
    err = err ? err : add_i64(av, a, nz);
    if (nz == 2)
        err = err ? err : add_i64(av, a, score);
    if (nz)
        err = err ? err : cp_argv_add(av, a, keys->id, keys->id_len);
    err = err ? err : add_i64(av, a, nmk);
    if (nmk) {
        err = err ? err : add_i64(av, a, metrics->n_inc);
        for (int i = 0; i < metrics->n_inc; i++) {
            err = err ? err : add_i64(av, a, metrics->inc[i].key);
            err = err ? err : add_str(av, a, metrics->inc[i].field);
            err = err ? err : add_i64(av, a, metrics->inc[i].delta);
        }
        for (int i = 0; i < nmk; i++)
            err = err ? err : add_i64(av, a, metrics->days[i]);
    }
    /* The state's fields go to a second vector first: the deletions
     * (e.g. s of a customer whose last order was cancelled, removed
     * attributes, a legacy outbox) and the outbox come before them in the
     * script's arguments. */
    const char **del =
        cp_arena_alloc(a, sizeof(*del) * (2 * CP_STORE_ATTRS_MAX + 24 +
                                          (size_t)s->n_legacy_w));
    int n_del = 0;
    cp_argv_t fields = {0};
    if (!del)
        return CP_ENOMEM;
    err = err ? err : add_state_fields(s, ctx, a, &fields, del, &n_del);
    err = err ? err : add_wms(s, a, &fields);
    for (int i = 0; i < s->n_legacy_w; i++)
        del[n_del++] = s->legacy_w[i]; /* now in w */
    if (s->outbox_legacy) {
        del[n_del++] = "x"; /* moved into the outbox key */
        del[n_del++] = "xq";
    }
    err = err ? err : add_i64(av, a, n_del);
    av->del_at = av->argc;
    av->n_del = n_del;
    for (int i = 0; i < n_del; i++)
        err = err ? err : add_str(av, a, del[i]);
    err = err ? err : add_outbox(s, a, av);
    av->fields_at = av->argc;
    for (int i = 0; i < fields.argc; i++)
        err = err ? err : cp_argv_add(av, a, fields.argv[i], fields.argvlen[i]);
    return err;
}

static int argv_eq(const cp_argv_t *av, int i, const char *s, size_t len)
{
    return av->argvlen[i] == len && memcmp(av->argv[i], s, len) == 0;
}

cp_err_t cp_store_write_delta(cp_argv_t *av, const cp_image_t *img,
                              cp_arena_t *a, cp_image_t *after)
{
    const int n_set = (av->argc - av->fields_at) / 2;
    static const cp_image_t empty = {NULL, 0};
    if (!img)
        img = &empty;
    /* The image after: bounded by the old one plus every written pair. */
    size_t cap = img->len;
    for (int k = 0; k < n_set; k++) {
        int i = av->fields_at + 2 * k;
        cap += cp_image_pair_size(av->argvlen[i], av->argvlen[i + 1]);
    }
    unsigned char *out = cp_arena_alloc(a, cap ? cap : 1);
    char *set_seen = cp_arena_alloc(a, (size_t)n_set + 1);
    char *keep = cp_arena_alloc(a, (size_t)n_set + 1);
    if (!out || !set_seen || !keep)
        return CP_ENOMEM;
    memset(set_seen, 0, (size_t)n_set + 1);
    memset(keep, 1, (size_t)n_set + 1);
    size_t len = 0, pos = 0, fl, vl;
    const char *f, *v;
    while (cp_image_next(img, &pos, &f, &fl, &v, &vl) == 1) {
        int gone = 0;
        for (int d = 0; d < av->n_del && !gone; d++)
            gone = argv_eq(av, av->del_at + d, f, fl);
        int k = 0;
        while (k < n_set && !argv_eq(av, av->fields_at + 2 * k, f, fl))
            k++;
        if (k < n_set) {
            int i = av->fields_at + 2 * k;
            set_seen[k] = 1;
            keep[k] = !argv_eq(av, i + 1, v, vl); /* unchanged: not sent */
            len += cp_image_put_pair(out + len, f, fl, av->argv[i + 1],
                                     av->argvlen[i + 1]);
        } else if (!gone) {
            len += cp_image_put_pair(out + len, f, fl, v, vl);
        }
    }
    for (int k = 0; k < n_set; k++) {
        int i = av->fields_at + 2 * k;
        if (!set_seen[k])
            len += cp_image_put_pair(out + len, av->argv[i], av->argvlen[i],
                                     av->argv[i + 1], av->argvlen[i + 1]);
    }
    /* Compaction: the script's HSET needs one pair at least, and v always
     * changes. */
    int w = av->fields_at;
    for (int k = 0; k < n_set; k++) {
        int i = av->fields_at + 2 * k;
        if (!keep[k])
            continue;
        av->argv[w] = av->argv[i];
        av->argvlen[w] = av->argvlen[i];
        av->argv[w + 1] = av->argv[i + 1];
        av->argvlen[w + 1] = av->argvlen[i + 1];
        w += 2;
    }
    av->argc = w;
    after->p = out;
    after->len = len;
    return CP_OK;
}
