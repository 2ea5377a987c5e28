/*
 * main.c - the custpulse command line: run, inspect, config, hash-id, fit,
 * report.
 *
 *   custpulse run     [-c FILE] [-X key=value]... [--exit-at-end]
 *   custpulse inspect [-c FILE] [-X key=value]... CUSTOMER_ID
 *   custpulse config  [-c FILE] [-X key=value]... --list
 *   custpulse hash-id [-c FILE] [-X key=value]... [--] CUSTOMER_ID...
 *   custpulse fit     [-c FILE] [-X key=value]... [--csv PATH]
 *                     [--at YYYY-MM-DD] [--dry-run]          (fit.h)
 *   custpulse report  [-c FILE] [-X key=value]... [--from YYYY-MM-DD]
 *                     [--to YYYY-MM-DD] [--json]             (report.h)
 *
 * Exit codes: 0 success, 1 runtime failure or unknown customer, 2 usage or
 * configuration error.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "decode.h"
#include "cp_time.h"
#include "evaluate.h"
#include "fit.h"
#include "log.h"
#include "money.h"
#include "redis.h"
#include "report.h"
#include "store.h"

extern char **environ;

#define EXIT_USAGE 2

typedef struct cp_cli_s {
    const char *cmd;
    const char *config_file;
    const char **xs; /* -X values, in order */
    int n_xs;
    int exit_at_end;
    int list;
    const char *customer;
    const char **ids; /* hash-id: the customer ids, in order */
    int n_ids;
    cp_fit_args_t fit;       /* fit: --csv, --at, --dry-run */
    cp_report_args_t report; /* report: --from, --to, --json */
} cp_cli_t;

static void usage(FILE *out)
{
    fputs("usage: custpulse run     [-c FILE] [-X key=value]... "
          "[--exit-at-end]\n"
          "       custpulse inspect [-c FILE] [-X key=value]... CUSTOMER_ID\n"
          "       custpulse config  [-c FILE] [-X key=value]... --list\n"
          "       custpulse hash-id [-c FILE] [-X key=value]... [--] "
          "CUSTOMER_ID...\n"
          "       custpulse fit     [-c FILE] [-X key=value]... "
          "[--csv PATH]\n"
          "                         [--at YYYY-MM-DD] [--dry-run]\n"
          "       custpulse report  [-c FILE] [-X key=value]... "
          "[--from YYYY-MM-DD]\n"
          "                         [--to YYYY-MM-DD] [--json]\n"
          "\n"
          "fit estimates the BTYD parameters (btyd.model, btyd.unit) from\n"
          "the customers in Redis or a transactions file and writes them to\n"
          "<redis.key_prefix>btyd (docs/btyd.md).\n"
          "\n"
          "report prints the daily population metrics (active, new,\n"
          "churned, won back, churn rate, customers per lifecycle stage\n"
          "and segment, cohort retention) from the counters in Redis\n"
          "(docs/metrics.md); --json: one JSON object per day.\n"
          "\n"
          "hash-id prints \"<id>\\th:<16 hex>\" per id: the id as the logs\n"
          "show it below log.level debug; log.id_key must be set.\n",
          out);
}

static int parse_args(int argc, char **argv, cp_cli_t *cli)
{
    memset(cli, 0, sizeof(*cli));
    if (argc < 2)
        return -1;
    cli->cmd = argv[1];
    cli->xs = calloc((size_t)argc, sizeof(char *));
    cli->ids = calloc((size_t)argc, sizeof(char *));
    if (!cli->xs || !cli->ids)
        return -1;
    int hash_id = !strcmp(cli->cmd, "hash-id"), ids_only = 0, used;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (ids_only || (hash_id && !strcmp(a, "--"))) {
            if (ids_only) /* after "--": ids may start with '-' */
                cli->ids[cli->n_ids++] = a;
            ids_only = 1;
            continue;
        }
        if ((!strcmp(a, "-c") || !strcmp(a, "-X")) && i + 1 >= argc)
            return -1;
        if (!strcmp(a, "-c"))
            cli->config_file = argv[++i];
        else if (!strcmp(a, "-X"))
            cli->xs[cli->n_xs++] = argv[++i];
        else if (!strcmp(a, "--exit-at-end") && !strcmp(cli->cmd, "run"))
            cli->exit_at_end = 1;
        else if (!strcmp(a, "--list") && !strcmp(cli->cmd, "config"))
            cli->list = 1;
        else if (a[0] != '-' && !strcmp(cli->cmd, "inspect") && !cli->customer)
            cli->customer = a;
        else if (a[0] != '-' && hash_id)
            cli->ids[cli->n_ids++] = a;
        else if (!strcmp(cli->cmd, "fit") &&
                 (used = cp_fit_arg(&cli->fit, a,
                                    i + 1 < argc ? argv[i + 1] : NULL)) > 0)
            i += used - 1;
        else if (!strcmp(cli->cmd, "report") &&
                 (used = cp_report_arg(&cli->report, a,
                                       i + 1 < argc ? argv[i + 1] : NULL)) > 0)
            i += used - 1;
        else
            return -1;
    }
    if (hash_id && cli->n_ids == 0)
        return -1;
    if (!strcmp(cli->cmd, "inspect") && !cli->customer)
        return -1;
    if (!strcmp(cli->cmd, "config") && !cli->list)
        return -1;
    return strcmp(cli->cmd, "run") && strcmp(cli->cmd, "inspect") &&
                   strcmp(cli->cmd, "config") && strcmp(cli->cmd, "fit") &&
                   strcmp(cli->cmd, "report") && !hash_id
               ? -1
               : 0;
}

/* Defaults, then file, then CUSTPULSE_* environment, then -X. */
static cp_config_t *load_config(const cp_cli_t *cli)
{
    char err[512];
    cp_config_t *cfg = cp_config_new();
    if (!cfg)
        return NULL;
    cp_err_t rc = CP_OK;
    if (cli->config_file)
        rc = cp_config_load_file(cfg, cli->config_file, err, sizeof(err));
    if (rc == CP_OK)
        rc = cp_config_load_env(cfg, environ, err, sizeof(err));
    for (int i = 0; i < cli->n_xs && rc == CP_OK; i++)
        rc = cp_config_set_kv(cfg, cli->xs[i], err, sizeof(err));
    if (rc == CP_OK)
        rc = cp_config_finalize(cfg, err, sizeof(err));
    if (rc == CP_OK) {
        /* Custom segment rules are compiled here too, so a bad rule is a
         * configuration error (exit 2) with its line and column. */
        cp_eval_t ev;
        rc = cp_eval_init(&ev, cfg, NULL, err, sizeof(err));
        if (rc == CP_OK)
            cp_eval_free(&ev);
    }
    if (rc != CP_OK) {
        fprintf(stderr, "custpulse: configuration error: %s\n", err);
        cp_config_free(cfg);
        return NULL;
    }
    cp_log_set_level(cfg->log_level);
    return cfg;
}

/* ---- inspect ----------------------------------------------------------------
 */

static redisContext *redis_connect_sync(const cp_config_t *cfg)
{
    char err[256];
    redisContext *c = cp_redis_connect_sync(cfg, err, sizeof(err));
    if (!c)
        fprintf(stderr, "custpulse: %s\n", err);
    return c;
}

static json_t *time_or_null(const cp_state_t *st, int64_t ms)
{
    char ts[32];
    if (!st->has_order_time)
        return json_null();
    cp_time_format_utc(ms, ts, sizeof(ts));
    return json_string(ts);
}

static json_t *state_json(const cp_config_t *cfg, const char *id,
                          const cp_stored_t *s)
{
    char money[48];
    const cp_state_t *st = &s->st;
    cp_money_format(st->monetary, cfg->currency_digits, money, sizeof(money));
    json_t *o = json_object();
    json_object_set_new(o, "customer_id", json_string(id));
    json_object_set_new(o, "orders", json_integer(st->orders));
    json_object_set_new(o, "monetary", json_string(money));
    json_object_set_new(o, "currency", json_string(cfg->currency));
    json_object_set_new(o, "first_order_at", time_or_null(st, st->first_ms));
    json_object_set_new(o, "last_order_at", time_or_null(st, st->last_ms));
    const char *seg = cp_rfm8_code(st->segment);
    json_object_set_new(o, "segment", seg ? json_string(seg) : json_null());
    json_object_set_new(o, "version", json_integer(st->version));
    json_object_set_new(o, "seq", json_integer(st->seq));
    json_t *offs = json_object();
    const char *inputs[] = {cfg->topic_orders, cfg->topic_browsing,
                            cfg->topic_support, cfg->topic_profile};
    for (int i = 0; i < s->n_wms; i++) {
        /* w keeps topic ids: named by the configured input topics, an
         * unknown id (a topic no longer configured) as #<id in hex>. */
        const char *name = NULL;
        for (size_t t = 0; t < sizeof(inputs) / sizeof(inputs[0]); t++)
            if (inputs[t] && inputs[t][0] &&
                cp_store_topic_id(inputs[t]) == s->wms[i].tid)
                name = inputs[t];
        char k[300];
        if (name)
            snprintf(k, sizeof(k), "%s:%d", name, (int)s->wms[i].partition);
        else
            snprintf(k, sizeof(k), "#%08" PRIx32 ":%d", s->wms[i].tid,
                     (int)s->wms[i].partition);
        json_object_set_new(offs, k, json_integer(s->wms[i].offset));
    }
    json_object_set_new(o, "offsets", offs);
    json_object_set_new(o, "pending_outputs",
                        json_integer(s->outbox_len ? 1 : 0));
    return o;
}

static json_t *code_json(const char *code)
{
    return code ? json_string(code) : json_null();
}

static json_t *real_json(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* Every model of s evaluated at now_ms (docs/models.md), and the levels
 * last emitted. */
static json_t *models_json(const cp_config_t *cfg, const cp_eval_t *e,
                           const cp_stored_t *s, const cp_rfmq_snap_t *snap,
                           int64_t now_ms, const cp_tz_t *tz)
{
    const cp_state_t *st = &s->st;
    const cp_support_t *k = &st->support;
    int64_t today = cp_tz_day(tz, now_ms);
    cp_models_t mo;
    cp_models_eval(st, now_ms, today, &e->p, &mo);
    char ts[32];
    cp_time_format_utc(now_ms, ts, sizeof(ts));
    json_t *m = json_object();
    json_object_set_new(m, "evaluated_at", json_string(ts));

    const int live = cfg->rfmq_mode == 0;
    cp_rfmq_score_t rq =
        live ? cp_rfmq_score_live(st, snap)
             : cp_rfmq_score_fixed(st, today, cfg->rfmq_fixed_r,
                                   cfg->rfmq_fixed_f, cfg->rfmq_fixed_m_minor);
    json_t *rf = json_object();
    json_object_set_new(rf, "segment", code_json(cp_rfmseg_code(rq.seg)));
    json_object_set_new(rf, "emitted", code_json(cp_rfmseg_code(st->rfmq)));
    json_object_set_new(rf, "r", json_integer(rq.r));
    json_object_set_new(rf, "f", json_integer(rq.f));
    json_object_set_new(rf, "m", json_integer(rq.m));
    json_object_set_new(rf, "snapshot",
                        live && snap->version > 0 ? json_integer(snap->version)
                                                  : json_null());
    json_object_set_new(rf, "mode", json_string(live ? "live" : "fixed"));
    json_t *hb = json_null();
    if (s->h.in) {
        hb = json_array();
        for (int d = 0; d < 3; d++)
            json_array_append_new(hb, json_integer(s->h.b[d]));
    }
    json_object_set_new(rf, "buckets", hb);
    json_object_set_new(m, "rfm", rf);

    json_t *lc = json_object();
    json_object_set_new(lc, "stage", code_json(cp_lifecycle_code(mo.stage)));
    json_object_set_new(lc, "emitted", code_json(cp_lifecycle_code(st->stage)));
    json_object_set_new(lc, "won_back_day",
                        st->won_back_day >= 0 ? json_integer(st->won_back_day)
                                              : json_null());
    json_object_set_new(m, "lifecycle", lc);

    static const char *const browse[CP_BROWSE__COUNT] = {
        "sessions", "page_views", "product_views",
        "searches", "cart_adds",  "cart_abandons"};
    json_t *en = json_object();
    json_object_set_new(en, "level", code_json(cp_engagement_code(mo.eng)));
    json_object_set_new(en, "emitted", code_json(cp_engagement_code(st->eng)));
    json_object_set_new(en, "score", json_real(mo.engagement));
    for (int i = 0; i < CP_BROWSE__COUNT; i++)
        json_object_set_new(en, browse[i], json_integer(st->browse_n[i]));
    json_object_set_new(m, "engagement", en);

    json_t *sa = json_object();
    json_object_set_new(sa, "level", code_json(cp_satisfaction_code(mo.sat)));
    json_object_set_new(sa, "emitted",
                        code_json(cp_satisfaction_code(st->sat)));
    json_object_set_new(sa, "open_tickets", json_integer(k->open_tickets));
    json_object_set_new(sa, "resolved", json_integer(k->resolved));
    json_object_set_new(
        sa, "avg_resolution_minutes",
        k->resolved ? json_real(k->resolution_min_sum / (double)k->resolved)
                    : json_null());
    json_object_set_new(sa, "complaints", json_real(mo.complaints));
    json_object_set_new(sa, "csat_last",
                        k->csat_last ? json_integer(k->csat_last)
                                     : json_null());
    json_object_set_new(sa, "csat_avg",
                        k->csat_n ? json_real(cp_support_csat_avg(k))
                                  : json_null());
    json_object_set_new(sa, "nps_last",
                        k->nps_last >= 0 ? json_integer(k->nps_last)
                                         : json_null());
    json_object_set_new(sa, "nps_class",
                        code_json(cp_nps_code(cp_nps_class(k->nps_last))));
    json_object_set_new(m, "satisfaction", sa);

    if (mo.has_btyd) {
        json_t *b = json_object();
        json_object_set_new(
            b, "model",
            json_string(e->p.btyd_model == CP_BTYD_BGNBD ? "bgnbd" : "mbgnbd"));
        json_object_set_new(
            b, "unit",
            json_string(e->p.clv.unit == CP_BTYD_DAYS ? "days" : "weeks"));
        json_object_set_new(b, "params_version", json_integer(e->btyd_version));
        json_object_set_new(b, "x", json_real(mo.x));
        json_object_set_new(b, "t_x", json_real(mo.t_x));
        json_object_set_new(b, "T", json_real(mo.T));
        json_object_set_new(b, "p_alive", real_json(mo.p_alive));
        json_object_set_new(b, "expected_30d", real_json(mo.expected[0]));
        json_object_set_new(b, "expected_90d", real_json(mo.expected[1]));
        json_object_set_new(b, "expected_365d", real_json(mo.expected[2]));
        json_object_set_new(b, "clv", real_json(mo.clv));
        json_object_set_new(m, "btyd", b);
    } else {
        json_object_set_new(m, "btyd", json_null());
    }

    json_t *va = json_object();
    json_object_set_new(va, "tier", code_json(cp_tier_code(mo.value.tier)));
    json_object_set_new(va, "emitted", code_json(cp_tier_code(st->tier)));
    json_object_set_new(va, "score", json_real(mo.value.score));
    json_object_set_new(va, "historical", json_real(mo.value.historical));
    json_object_set_new(va, "predicted", json_real(mo.value.predicted));
    json_object_set_new(va, "strategic", json_real(mo.value.strategic));
    json_object_set_new(m, "value", va);

    json_t *cu = json_object();
    uint64_t in = cp_eval_custom(e, s, &mo, today);
    for (int i = 0; i < e->n_segs; i++)
        json_object_set_new(cu, e->seg_names[i],
                            json_string(in >> i & 1 ? "in" : "out"));
    json_object_set_new(m, "custom", cu);
    (void)cfg;
    return m;
}

static json_t *profile_json(const cp_stored_t *s)
{
    json_t *p = json_object();
    for (int i = 0; i < s->n_attrs; i++)
        if (!s->attrs[i].removed)
            json_object_set_new(
                p, s->attrs[i].name,
                json_stringn(s->attrs[i].value, s->attrs[i].value_len));
    return p;
}

/* Reads the BTYD hash into e (a failure leaves e without parameters). */
static void load_btyd_sync(redisContext *c, const cp_config_t *cfg,
                           cp_eval_t *e)
{
    redisReply *r = redisCommand(c, "HGETALL %sbtyd", cfg->redis_prefix);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements <= 128) {
        const char *f[64], *v[64];
        size_t fl[64], vl[64], n = 0;
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            f[n] = r->element[i]->str;
            fl[n] = (size_t)r->element[i]->len;
            v[n] = r->element[i + 1]->str;
            vl[n++] = (size_t)r->element[i + 1]->len;
        }
        char err[160];
        if (cp_eval_load_btyd(e, f, fl, v, vl, n, err, sizeof(err)) < 0)
            fprintf(stderr, "custpulse: BTYD parameters unusable: %s\n", err);
    }
    freeReplyObject(r);
}

/* The current quantile RFM snapshot (version 0 when none or unreadable). */
static void load_rfmq_sync(redisContext *c, const cp_config_t *cfg,
                           cp_rfmq_snap_t *snap)
{
    memset(snap, 0, sizeof(*snap));
    redisReply *r = redisCommand(c, "HMGET %srqs v t n", cfg->redis_prefix);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[2]->type == REDIS_REPLY_STRING) {
        snap->version = strtoll(r->element[0]->str, NULL, 10);
        snap->n = strtoll(r->element[2]->str, NULL, 10);
        if (cp_rfmq_thresholds_parse(r->element[1]->str,
                                     (size_t)r->element[1]->len, snap) != 0) {
            fprintf(stderr, "custpulse: quantile RFM snapshot unreadable\n");
            memset(snap, 0, sizeof(*snap));
        }
    }
    freeReplyObject(r);
}

static int cmd_inspect(const cp_config_t *cfg, const char *id)
{
    char err[256];
    cp_tz_t *tz = cp_tz_new(cfg->timezone, err, sizeof(err));
    redisContext *c = tz ? redis_connect_sync(cfg) : NULL;
    if (!c) {
        cp_tz_free(tz);
        return 1;
    }
    cp_eval_t ev;
    if (cp_eval_init(&ev, cfg, tz, err, sizeof(err)) != CP_OK) {
        fprintf(stderr, "custpulse: %s\n", err);
        redisFree(c);
        cp_tz_free(tz);
        return 2;
    }
    load_btyd_sync(c, cfg, &ev);
    cp_rfmq_snap_t snap;
    load_rfmq_sync(c, cfg, &snap);
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_store_keys_t keys;
    redisReply *r = NULL, *x = NULL;
    if (cp_store_keys(cfg->redis_prefix, id, strlen(id), &a, &keys) == CP_OK) {
        r = redisCommand(c, "HGETALL %b", keys.key, keys.key_len);
        x = redisCommand(c, "HGETALL %b", keys.xkey, keys.xkey_len);
    }
    int rc = 1;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "custpulse: redis: %s\n",
                r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
    } else if (r->elements == 0) {
        fprintf(stderr, "custpulse: unknown customer\n");
    } else {
        cp_stored_t *s = malloc(sizeof(*s));
        cp_stored_init(s);
        rc = 0;
        for (size_t i = 0; i + 1 < r->elements && rc == 0; i += 2)
            if (cp_store_parse_field(
                    s, r->element[i]->str, (size_t)r->element[i]->len,
                    r->element[i + 1]->str, (size_t)r->element[i + 1]->len,
                    &ev.sctx, &a, err, sizeof(err)) != CP_OK)
                rc = 1;
        if (rc == 0 && cp_store_parse_end(s, err, sizeof(err)) != CP_OK)
            rc = 1;
        /* The outbox key only tells whether outputs are pending. */
        for (size_t i = 0; x && x->type == REDIS_REPLY_ARRAY &&
                           i + 1 < x->elements && rc == 0;
             i += 2)
            if (cp_store_parse_outbox_field(
                    s, x->element[i]->str, (size_t)x->element[i]->len,
                    x->element[i + 1]->str, (size_t)x->element[i + 1]->len, &a,
                    err, sizeof(err)) != CP_OK)
                rc = 1;
        if (rc != 0)
            fprintf(stderr, "custpulse: %s\n", err);
        if (rc == 0) {
            json_t *o = state_json(cfg, id, s);
            json_object_set_new(o, "layout", json_integer(s->layout));
            json_object_set_new(o, "events", json_integer(s->st.events));
            json_object_set_new(
                o, "models",
                models_json(cfg, &ev, s, &snap, cp_time_wall_ms(), tz));
            json_object_set_new(o, "profile", profile_json(s));
            json_dumpf(o, stdout, JSON_PRESERVE_ORDER | JSON_INDENT(2));
            fputc('\n', stdout);
            json_decref(o);
        }
        free(s);
    }
    cp_arena_free(&a);
    freeReplyObject(r);
    freeReplyObject(x);
    redisFree(c);
    cp_eval_free(&ev);
    cp_tz_free(tz);
    return rc;
}

/* ---- hash-id ----------------------------------------------------------------
 */

/* Prints "<id>\th:<16 hex>" per id, as CP_LCUST logs the id (log.h), so an
 * operator holding log.id_key can grep the logs for one customer. An empty
 * log.id_key means a random key per process, which no hash printed here
 * could match: refused (exit 2). */
static int cmd_hash_id(const cp_config_t *cfg, const cp_cli_t *cli)
{
    char h[CP_LOG_ID_HASH_SIZE];
    if (!cfg->log_id_key[0]) {
        fprintf(stderr, "custpulse: hash-id: log.id_key is empty, so every "
                        "process hashes ids with its own random key; set "
                        "log.id_key (the daemon's) to get the logged hashes\n");
        return EXIT_USAGE;
    }
    cp_log_set_id_key(cfg->log_id_key); /* a non-empty key cannot fail */
    for (int i = 0; i < cli->n_ids; i++) {
        cp_log_hash_id(cli->ids[i], h);
        printf("%s\t%s\n", cli->ids[i], h);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    cp_cli_t cli;
    /* Before any other jansson call (decode.h). */
    cp_decode_scratch_init();
    atexit(cp_decode_scratch_free);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &cli) != 0) {
        usage(stderr);
        free(cli.xs);
        free(cli.ids);
        return EXIT_USAGE;
    }
    cp_config_t *cfg = load_config(&cli);
    int rc = EXIT_USAGE;
    if (cfg && !strcmp(cli.cmd, "config")) {
        cp_config_list(stdout);
        rc = 0;
    } else if (cfg && !strcmp(cli.cmd, "hash-id")) {
        rc = cmd_hash_id(cfg, &cli);
    } else if (cfg && cp_log_set_id_key(cfg->log_id_key) != CP_OK) {
        /* run, inspect: no customer id is logged with a guessable key */
        fprintf(stderr, "custpulse: no random bytes for the log id key "
                        "(getrandom, /dev/urandom); set log.id_key\n");
        rc = 1;
    } else if (cfg && !strcmp(cli.cmd, "inspect")) {
        rc = cmd_inspect(cfg, cli.customer);
    } else if (cfg && !strcmp(cli.cmd, "fit")) {
        rc = cp_fit_run(cfg, &cli.fit, redis_connect_sync);
    } else if (cfg && !strcmp(cli.cmd, "report")) {
        rc = cp_report_run(cfg, &cli.report, redis_connect_sync);
    } else if (cfg) {
        rc = cp_app_run(cfg, cli.exit_at_end);
        cfg = NULL; /* owned by the app */
    }
    cp_config_free(cfg);
    free(cli.xs);
    free(cli.ids);
    return rc;
}
