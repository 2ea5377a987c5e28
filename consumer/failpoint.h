/*
 * failpoint.h - named moments where a test can crash or stall the daemon
 * on purpose (docs/fault-tolerance.md, "Failpoints").
 *
 * CUSTPULSE_FAILPOINT="name:N[:action[:arg]][,...]", read once at start-up;
 * actions: crash (SIGKILL to self), pause:MS (block the calling thread),
 * fatal (returned to the caller, which raises the fault itself). When the
 * variable is unset a hit costs one branch.
 */
#ifndef CP_FAILPOINT_H
#define CP_FAILPOINT_H

typedef enum {
    CP_FP_BETWEEN_READ_WRITE = 0,
    CP_FP_AFTER_REDIS_WRITE,
    CP_FP_AFTER_PRODUCE,
    CP_FP_BEFORE_OUTBOX_CLEAR,
    CP_FP_BEFORE_COMMIT,
    CP_FP_PRODUCER_FATAL,
    CP_FP_SWEEP_AFTER_WRITE,
    CP_FP__COUNT
} cp_fp_t;

/* Parses CUSTPULSE_FAILPOINT; returns 0, or -1 (and logs) when it is
 * malformed. */
int cp_fp_init(void);

extern int cp__fp_armed;
int cp__fp_hit(cp_fp_t fp);

/* Counts a hit of fp; crashes or pauses when armed for this hit. Returns 1
 * when the armed action is `fatal` (the caller raises it), else 0. */
static inline int cp_fp(cp_fp_t fp)
{
    return cp__fp_armed ? cp__fp_hit(fp) : 0;
}

#endif
