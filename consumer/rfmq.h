/*
 * rfmq.h - quantile RFM in the consumer (docs/models.md "Quantile RFM"):
 * a customer's place in the population histograms, the moves a write
 * makes in them, the thresholds of a population snapshot, and the scores
 * and named segment of a customer against a snapshot or against the fixed
 * thresholds of the config.
 *
 * No I/O: the caller reads and writes the histogram hash
 * (<prefix>rq, fields "r:<bucket>", "f:<bucket>", "m:<bucket>" = customers)
 * and the snapshot hash (<prefix>rqs).
 */
#ifndef CP_RFMQ_H
#define CP_RFMQ_H

#include <stddef.h>
#include <stdint.h>

#include "cp_err.h"
#include "quantile.h"
#include "state.h"

/* A customer's buckets (R, F, M); in = 0 when not in the population (no
 * counted order). */
typedef struct cp_rfmq_pos_s {
    int in;
    int64_t b[3];
} cp_rfmq_pos_t;

/* The thresholds a population snapshot gives (docs/models.md). version 0:
 * no snapshot yet (then nobody is scored in live mode). */
typedef struct cp_rfmq_snap_s {
    int64_t version;
    int64_t n;       /* customers in the population when taken */
    int64_t t[3][4]; /* R, F, M thresholds (CP_Q_NONE when undefined) */
} cp_rfmq_snap_t;

typedef struct cp_rfmq_score_s {
    int r, f, m;     /* 1..5; 0 when not scored */
    cp_rfmseg_t seg; /* CP_RFMSEG_NONE when not scored */
} cp_rfmq_score_t;

cp_rfmq_pos_t cp_rfmq_pos(const cp_state_t *st);

/* Longest histogram field name: "m:" and an int64 in decimal. */
#define CP_RFMQ_FIELD_MAX 24

/* The histogram moves of a customer going from `from` to `to`: up to 6
 * (field, delta) pairs, -1 for a bucket left and +1 for a bucket entered;
 * nothing for a dimension whose bucket did not change. Returns the count. */
int cp_rfmq_moves(const cp_rfmq_pos_t *from, const cp_rfmq_pos_t *to,
                  char fields[6][CP_RFMQ_FIELD_MAX], int deltas[6]);

/* Thresholds of the histogram hash given as n field/value pairs (an
 * HGETALL reply). Fields that are not "r:<int>", "f:<int>", "m:<int>"
 * and counts that are not integers are CP_EPARSE (err names the field);
 * counts <= 0 are ignored (a bucket emptied by moves). s->version is left
 * as it was; s->n is the R histogram's total. CP_ENOMEM on allocation
 * failure. */
cp_err_t cp_rfmq_thresholds(const char *const *fields, const size_t *flens,
                            const char *const *values, const size_t *vlens,
                            size_t n, cp_rfmq_snap_t *s, char *err,
                            size_t err_size);

/* The thresholds as text, "r1,r2,r3,r4;f1,...;m1,..." (CP_Q_NONE as "-"),
 * what the snapshot hash stores. out must hold CP_RFMQ_TEXT_MAX bytes. */
#define CP_RFMQ_TEXT_MAX 256
void cp_rfmq_thresholds_text(const cp_rfmq_snap_t *s,
                             char out[CP_RFMQ_TEXT_MAX]);

/* Live mode: the scores against a snapshot (none while s->version is 0 or
 * the customer has no counted order). */
cp_rfmq_score_t cp_rfmq_score_live(const cp_state_t *st,
                                   const cp_rfmq_snap_t *s);

/* Fixed mode: R from the days since the last order against r_days
 * (ascending: fewer days than r_days[0] scores 5, ... at least r_days[3]
 * scores 1), F and M count the thresholds reached (1 + #(x >= t)). */
cp_rfmq_score_t cp_rfmq_score_fixed(const cp_state_t *st, int64_t today,
                                    const int64_t r_days[4], const int64_t f[4],
                                    const int64_t m_minor[4]);

/* Parses the thresholds text back into s->t (version and n untouched).
 * Returns 0, or -1 when the text is not what cp_rfmq_thresholds_text
 * writes (thresholds of a dimension must not decrease). */
int cp_rfmq_thresholds_parse(const char *v, size_t len, cp_rfmq_snap_t *s);

/* Takes or adopts the population snapshot (docs/models.md "Quantile
 * RFM"). KEYS[1] = <prefix>rqs; ARGV = the thresholds text, the
 * population count, the number of versions whose history is kept, the
 * minimum age in ms of a snapshot to replace. The current snapshot is
 * kept (adopted) when the population is empty, when its thresholds are the
 * same, or when it is younger than the minimum age (another instance took
 * it); otherwise the next version is recorded. The hash holds v, t, n, at
 * (Redis clock, ms) of the current version and t:<v>, n:<v>, at:<v> of
 * the last ARGV[3] versions, so an event's snapshot number can be traced
 * to its thresholds. Returns {version, thresholds text, population}:
 * {0, "", "0"} while there is no snapshot. */
extern const char cp_rfmq_snapshot_lua[];

#endif
