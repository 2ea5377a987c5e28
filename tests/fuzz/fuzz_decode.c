/*
 * fuzz_decode.c - libFuzzer target for the input decoder and the customer
 * hash parser: the two places custpulse reads bytes it did not write.
 *
 * Input layout: byte 0 = key length k (0xff = null key), then k key bytes,
 * then the message value. The value is decoded as an event of every family
 * (orders first, then browsing, support, profile), each into a fresh
 * arena, and also fed, split at the first '=', to cp_store_parse_field as
 * one hash field, twice: in a hash without lv (text e and r, an outbox x
 * inside the hash) and in one with lv 3 (binary e and r); layout 2's
 * fields (g, k, sc, a:<name>, r with days) in both. A field that parses is
 * written back with cp_store_write_args, so the encoders see every state
 * the parser accepts, and a binary e or r must come back byte for byte
 * (canonical encodings). The field is also fed to the outbox key's parser
 * (x, xq).
 *
 *   cmake -S . -B build-fuzz -DCP_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   cmake --build build-fuzz --target fuzz_decode
 *   build-fuzz/tests/fuzz/fuzz_decode tests/fuzz/corpus -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "decode.h"
#include "store.h"

static cp_tz_t *tz;
static const char *const segments[] = {"vip", "de_buyers", "idle"};

/* The value written for field f, or NULL. */
static const char *written(const cp_argv_t *av, const char *f, size_t *len)
{
    for (int i = 0; i + 1 < av->argc; i++)
        if (av->argvlen[i] == strlen(f) && !memcmp(av->argv[i], f, strlen(f))) {
            *len = av->argvlen[i + 1];
            return av->argv[i + 1];
        }
    return NULL;
}

static void fuzz_field(const char *f, size_t flen, const char *v, size_t vlen,
                       int layout3, cp_arena_t *a)
{
    static cp_stored_t s;
    static const cp_store_keys_t keys = {.key = "cp:c:{f}",
                                         .key_len = 8,
                                         .xkey = "cp:x:{f}",
                                         .xkey_len = 8,
                                         .dmark = -1,
                                         .id = "f",
                                         .id_len = 1};
    char err[128];
    cp_store_ctx_t ctx = {tz, segments, 3};
    cp_stored_init(&s);
    if ((layout3 && cp_store_parse_field(&s, "lv", 2, "3", 1, &ctx, a, err,
                                         sizeof(err)) != CP_OK) ||
        cp_store_parse_field(&s, f, flen, v, vlen, &ctx, a, err, sizeof(err)) !=
            CP_OK ||
        cp_store_parse_end(&s, err, sizeof(err)) != CP_OK)
        return;
    cp_argv_t av = {0};
    if (cp_store_write_args(&s, &ctx, "sha", &keys, NULL, 0, "cp:pop", NULL,
                            NULL, NULL, a, &av) != CP_OK)
        __builtin_trap();
    size_t n;
    const char *back;
    if (layout3 && vlen && flen == 1 && (f[0] == 'e' || f[0] == 'r') &&
        (!(back = written(&av, f[0] == 'e' ? "e" : "r", &n)) || n != vlen ||
         memcmp(back, v, n) != 0))
        __builtin_trap();
    /* w (layout 4) is canonical and keeps its order: it comes back byte
     * for byte whatever the layout read */
    if (flen == 1 && f[0] == 'w' &&
        (!(back = written(&av, "w", &n)) || n != vlen ||
         memcmp(back, v, n) != 0))
        __builtin_trap();
}

static void fuzz_store(const uint8_t *v, size_t len, cp_arena_t *a)
{
    static cp_stored_t s;
    const uint8_t *eq = memchr(v, '=', len);
    if (!eq)
        return;
    const char *f = (const char *)v, *val = (const char *)eq + 1;
    size_t flen = (size_t)(eq - v), vlen = len - flen - 1;
    fuzz_field(f, flen, val, vlen, 0, a);
    fuzz_field(f, flen, val, vlen, 1, a);
    char err[128];
    cp_stored_init(&s);
    if (cp_store_parse_outbox_field(&s, f, flen, val, vlen, a, err,
                                    sizeof(err)) == CP_OK &&
        s.outbox_len != (flen == 1 ? vlen : 0))
        __builtin_trap();
}

/* What a valid event promises; touches every attribute byte so ASan sees
 * any read past the arena copies. */
static void check_event(const cp_event_in_t *in)
{
    volatile unsigned sink = 0;
    if (in->customer_id_len < 1 || in->customer_id_len > CP_ID_MAX ||
        in->customer_id[in->customer_id_len] != '\0' || in->ev.amount < 0)
        __builtin_trap();
    if (in->ev.type == CP_EV_PROFILE_UPDATED &&
        (in->ev.n_attrs < 1 || in->ev.n_attrs > CP_ATTRS_MAX))
        __builtin_trap();
    for (size_t i = 0; i < in->ev.n_attrs; i++) {
        const cp_attr_t *at = &in->ev.attrs[i];
        if (at->name[at->name_len] != '\0' ||
            (!at->removed && at->value[at->value_len] != '\0'))
            __builtin_trap();
        for (size_t j = 0; j < at->name_len; j++)
            sink += (unsigned char)at->name[j];
        for (size_t j = 0; !at->removed && j < at->value_len; j++)
            sink += (unsigned char)at->value[j];
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tz) {
        char err[128];
        tz = cp_tz_new("UTC", err, sizeof(err));
    }
    if (size < 1)
        return 0;
    size_t klen = data[0] == 0xff ? 0 : data[0];
    if (1 + klen > size)
        return 0;
    const uint8_t *key = data[0] == 0xff ? NULL : data + 1;
    const uint8_t *value = data + 1 + klen;
    size_t vlen = size - 1 - klen;

    cp_decode_params_t p = {4096, "USD", 2, tz};
    cp_arena_t a;
    cp_arena_init(&a, 0);
    cp_order_in_t out;
    char msg[256];
    cp_decode_order(&p, key, klen, value, vlen, &a, &out, msg, sizeof(msg));
    fuzz_store(value, vlen, &a);
    cp_arena_free(&a);

    static const cp_family_t others[] = {CP_FAMILY_BROWSING, CP_FAMILY_SUPPORT,
                                         CP_FAMILY_PROFILE};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        cp_event_in_t ev_in;
        cp_arena_init(&a, 0);
        if (cp_decode_event(&p, others[i], key, klen, value, vlen, &a, &ev_in,
                            msg, sizeof(msg)) == CP_REJECT_NONE)
            check_event(&ev_in);
        cp_arena_free(&a);
    }
    return 0;
}
