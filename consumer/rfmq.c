/*
 * rfmq.c - quantile RFM in the consumer; see rfmq.h.
 */
#include "rfmq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

static const char dim_char[3] = {'r', 'f', 'm'};

const char cp_rfmq_snapshot_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') or 0\n"
    "local n = tonumber(ARGV[2])\n"
    "if v > 0 then\n"
    "  local cur = redis.call('HGET', KEYS[1], 't')\n"
    "  local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0') or 0\n"
    "  if cur and (n == 0 or cur == ARGV[1] or now - at < tonumber(ARGV[4]))\n"
    "  then\n"
    "    return {v, cur, redis.call('HGET', KEYS[1], 'n') or '0'}\n"
    "  end\n"
    "elseif n == 0 then\n"
    "  return {0, '', '0'}\n"
    "end\n"
    "v = v + 1\n"
    "local at = string.format('%d', now)\n"
    "redis.call('HSET', KEYS[1], 'v', v, 't', ARGV[1], 'n', ARGV[2],\n"
    "           'at', at, 't:' .. v, ARGV[1], 'n:' .. v, ARGV[2],\n"
    "           'at:' .. v, at)\n"
    "local old = v - tonumber(ARGV[3])\n"
    "if old > 0 then\n"
    "  redis.call('HDEL', KEYS[1], 't:' .. old, 'n:' .. old, 'at:' .. old)\n"
    "end\n"
    "return {v, ARGV[1], ARGV[2]}\n";

cp_rfmq_pos_t cp_rfmq_pos(const cp_state_t *st)
{
    cp_rfmq_pos_t p = {0, {0, 0, 0}};
    if (st->orders < 1 || !st->has_order_time)
        return p;
    p.in = 1;
    p.b[0] = cp_q_bucket_r(st->last_day);
    p.b[1] = cp_q_bucket_f(st->orders);
    p.b[2] = cp_q_bucket_m(st->monetary);
    return p;
}

int cp_rfmq_moves(const cp_rfmq_pos_t *from, const cp_rfmq_pos_t *to,
                  char fields[6][CP_RFMQ_FIELD_MAX], int deltas[6])
{
    int n = 0;
    for (int d = 0; d < 3; d++) {
        if (from->in && to->in && from->b[d] == to->b[d])
            continue;
        if (from->in) {
            snprintf(fields[n], CP_RFMQ_FIELD_MAX, "%c:%" PRId64, dim_char[d],
                     from->b[d]);
            deltas[n++] = -1;
        }
        if (to->in) {
            snprintf(fields[n], CP_RFMQ_FIELD_MAX, "%c:%" PRId64, dim_char[d],
                     to->b[d]);
            deltas[n++] = 1;
        }
    }
    return n;
}

static int by_bucket(const void *a, const void *b)
{
    const cp_q_bin_t *x = a, *y = b;
    return x->bucket < y->bucket ? -1 : x->bucket > y->bucket;
}

cp_err_t cp_rfmq_thresholds(const char *const *fields, const size_t *flens,
                            const char *const *values, const size_t *vlens,
                            size_t n, cp_rfmq_snap_t *s, char *err,
                            size_t err_size)
{
    cp_q_bin_t *bins[3];
    int nb[3] = {0, 0, 0};
    for (int d = 0; d < 3; d++) {
        bins[d] = malloc(sizeof(cp_q_bin_t) * (n ? n : 1));
        if (!bins[d]) {
            for (int k = 0; k < d; k++)
                free(bins[k]);
            return CP_ENOMEM;
        }
    }
    cp_err_t rc = CP_OK;
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i];
        int d = flens[i] > 2 && f[1] == ':' ? (f[0] == 'r'   ? 0
                                               : f[0] == 'f' ? 1
                                               : f[0] == 'm' ? 2
                                                             : -1)
                                            : -1;
        int64_t bucket, count;
        if (d < 0 || cp_num_parse_i64(f + 2, flens[i] - 2, &bucket) != CP_OK ||
            cp_num_parse_i64(values[i], vlens[i], &count) != CP_OK) {
            snprintf(err, err_size, "unreadable histogram field '%.*s'",
                     (int)(flens[i] > 32 ? 32 : flens[i]), f);
            rc = CP_EPARSE;
            break;
        }
        if (count <= 0)
            continue;
        bins[d][nb[d]].bucket = bucket;
        bins[d][nb[d]++].count = count;
    }
    if (rc == CP_OK) {
        for (int d = 0; d < 3; d++) {
            qsort(bins[d], (size_t)nb[d], sizeof(cp_q_bin_t), by_bucket);
            int64_t total = cp_q_thresholds(bins[d], nb[d], s->t[d]);
            if (d == 0)
                s->n = total;
        }
    }
    for (int d = 0; d < 3; d++)
        free(bins[d]);
    return rc;
}

void cp_rfmq_thresholds_text(const cp_rfmq_snap_t *s,
                             char out[CP_RFMQ_TEXT_MAX])
{
    size_t len = 0;
    for (int d = 0; d < 3; d++)
        for (int k = 0; k < 4; k++) {
            const char *sep = k ? "," : d ? ";" : "";
            if (s->t[d][k] == CP_Q_NONE)
                len += (size_t)snprintf(out + len, CP_RFMQ_TEXT_MAX - len,
                                        "%s-", sep);
            else
                len += (size_t)snprintf(out + len, CP_RFMQ_TEXT_MAX - len,
                                        "%s%" PRId64, sep, s->t[d][k]);
        }
}

int cp_rfmq_thresholds_parse(const char *v, size_t len, cp_rfmq_snap_t *s)
{
    size_t i = 0;
    for (int d = 0; d < 3; d++)
        for (int k = 0; k < 4; k++) {
            char sep = k ? ',' : d ? ';' : 0;
            if (sep && (i >= len || v[i++] != sep))
                return -1;
            size_t j = i;
            while (j < len && v[j] != ',' && v[j] != ';')
                j++;
            if (j - i == 1 && v[i] == '-')
                s->t[d][k] = CP_Q_NONE;
            else if (cp_num_parse_i64(v + i, j - i, &s->t[d][k]) != CP_OK ||
                     s->t[d][k] == CP_Q_NONE)
                return -1;
            if (k && s->t[d][k] < s->t[d][k - 1])
                return -1;
            i = j;
        }
    return i == len ? 0 : -1;
}

static cp_rfmq_score_t scored(int r, int f, int m)
{
    cp_rfmq_score_t sc = {r, f, m, cp_rfmseg(r, f)};
    return sc;
}

cp_rfmq_score_t cp_rfmq_score_live(const cp_state_t *st,
                                   const cp_rfmq_snap_t *s)
{
    cp_rfmq_score_t none = {0, 0, 0, CP_RFMSEG_NONE};
    cp_rfmq_pos_t p = cp_rfmq_pos(st);
    if (!p.in || s->version <= 0 || s->n <= 0)
        return none;
    return scored(cp_q_score(p.b[0], s->t[0]), cp_q_score(p.b[1], s->t[1]),
                  cp_q_score(p.b[2], s->t[2]));
}

cp_rfmq_score_t cp_rfmq_score_fixed(const cp_state_t *st, int64_t today,
                                    const int64_t r_days[4], const int64_t f[4],
                                    const int64_t m_minor[4])
{
    cp_rfmq_score_t none = {0, 0, 0, CP_RFMSEG_NONE};
    if (st->orders < 1 || !st->has_order_time)
        return none;
    int64_t days = today - st->last_day;
    if (days < 0)
        days = 0;
    int r = 5, fs = 1, ms = 1;
    for (int k = 0; k < 4; k++) {
        r -= days >= r_days[k];
        fs += st->orders >= f[k];
        ms += st->monetary >= m_minor[k];
    }
    return scored(r, fs, ms);
}
