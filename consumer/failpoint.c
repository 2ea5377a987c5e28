/*
 * failpoint.c - see failpoint.h.
 */
#include "failpoint.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

typedef enum { FP_NONE = 0, FP_CRASH, FP_PAUSE, FP_FATAL } fp_action_t;

typedef struct fp_s {
    const char *name;
    long hits;
    long at; /* 1-based hit that fires; 0 = not armed */
    fp_action_t action;
    long arg; /* pause: milliseconds */
} fp_entry_t;

static fp_entry_t fps[CP_FP__COUNT] = {
    [CP_FP_BETWEEN_READ_WRITE] = {"between_read_write", 0, 0, FP_NONE, 0},
    [CP_FP_AFTER_REDIS_WRITE] = {"after_redis_write", 0, 0, FP_NONE, 0},
    [CP_FP_AFTER_PRODUCE] = {"after_produce", 0, 0, FP_NONE, 0},
    [CP_FP_BEFORE_OUTBOX_CLEAR] = {"before_outbox_clear", 0, 0, FP_NONE, 0},
    [CP_FP_BEFORE_COMMIT] = {"before_commit", 0, 0, FP_NONE, 0},
    [CP_FP_PRODUCER_FATAL] = {"producer_fatal", 0, 0, FP_NONE, 0},
    [CP_FP_SWEEP_AFTER_WRITE] = {"sweep_after_write", 0, 0, FP_NONE, 0},
};

int cp__fp_armed;

static const char *action_name(fp_action_t a)
{
    return a == FP_PAUSE ? "pause" : a == FP_FATAL ? "fatal" : "crash";
}

static long parse_pos(const char *s, size_t len)
{
    long v = 0;
    if (len == 0 || len > 9)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* One "name:N[:action[:arg]]" item of len bytes. */
static int parse_item(const char *s, size_t len)
{
    const char *f[4] = {0};
    size_t fl[4] = {0};
    int n = 0;
    const char *p = s, *end = s + len;
    while (n < 4) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        f[n] = p;
        fl[n] = (size_t)((c ? c : end) - p);
        n++;
        if (!c)
            break;
        p = c + 1;
    }
    if (n < 2 || p > end)
        return -1;
    fp_entry_t *e = NULL;
    for (int i = 0; i < CP_FP__COUNT; i++)
        if (strlen(fps[i].name) == fl[0] &&
            memcmp(fps[i].name, f[0], fl[0]) == 0)
            e = &fps[i];
    long at = parse_pos(f[1], fl[1]);
    if (!e || at < 1)
        return -1;
    fp_action_t action = FP_CRASH;
    long arg = 0;
    if (n >= 3) {
        if (fl[2] == 5 && memcmp(f[2], "crash", 5) == 0 && n == 3)
            action = FP_CRASH;
        else if (fl[2] == 5 && memcmp(f[2], "fatal", 5) == 0 && n == 3)
            action = FP_FATAL;
        else if (fl[2] == 5 && memcmp(f[2], "pause", 5) == 0 && n == 4 &&
                 (arg = parse_pos(f[3], fl[3])) >= 0)
            action = FP_PAUSE;
        else
            return -1;
    }
    e->at = at;
    e->action = action;
    e->arg = arg;
    cp__fp_armed = 1;
    return 0;
}

int cp_fp_init(void)
{
    const char *v = getenv("CUSTPULSE_FAILPOINT");
    if (!v || !*v)
        return 0;
    const char *p = v;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (parse_item(p, len) != 0) {
            cp_log(CP_LOG_ERROR,
                   "CUSTPULSE_FAILPOINT: expected name:N[:crash|:fatal|"
                   ":pause:MS][,...] with a known name",
                   CP_LS("value", v), CP_LEND);
            return -1;
        }
        if (!c)
            break;
        p = c + 1;
    }
    return 0;
}

int cp__fp_hit(cp_fp_t fp)
{
    fp_entry_t *e = &fps[fp];
    e->hits++;
    if (e->at == 0 || e->hits != e->at)
        return 0;
    cp_log(CP_LOG_WARN, "failpoint", CP_LS("name", e->name),
           CP_LI("hit", e->hits), CP_LS("action", action_name(e->action)),
           CP_LEND);
    switch (e->action) {
    case FP_PAUSE: {
        struct timespec ts = {e->arg / 1000, (e->arg % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        cp_log(CP_LOG_WARN, "failpoint resumed", CP_LS("name", e->name),
               CP_LEND);
        return 0;
    }
    case FP_FATAL:
        return 1;
    default:
        raise(SIGKILL);
        return 0;
    }
}
