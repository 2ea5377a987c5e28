/*
 * fuzz_config.c - libFuzzer target for the configuration parsers: every
 * input line goes through cp_config_set_kv (the -X path, which shares
 * cp_config_set with the file and environment paths), then the cross-key
 * checks of cp_config_finalize.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp_config_t *cfg = cp_config_new();
    char *buf = malloc(size + 1);
    if (!cfg || !buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    char err[512];
    for (char *line = buf, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        cp_config_set_kv(cfg, line, err, sizeof(err));
    }
    cp_config_finalize(cfg, err, sizeof(err));
    free(buf);
    cp_config_free(cfg);
    return 0;
}
