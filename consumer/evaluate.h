/*
 * evaluate.h - the consumer's side of the models (docs/models.md): their
 * parameters from the config and from `custpulse fit` (the BTYD hash in
 * Redis), the compiled custom segments, and the change detection that
 * turns a customer's new state into segment-change events.
 *
 * No I/O: the caller reads the BTYD hash and hands its fields in.
 */
#ifndef CP_EVALUATE_H
#define CP_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "churn.h"
#include "config.h"
#include "due.h"
#include "expr.h"
#include "models.h"
#include "store.h"

/* Models whose level is emitted, in the order their changes are emitted
 * for one event. */
typedef enum {
    CP_MODEL_RFM8 = 0,
    CP_MODEL_RFM, /* quantile RFM: named segment */
    CP_MODEL_LIFECYCLE,
    CP_MODEL_ENGAGEMENT,
    CP_MODEL_SATISFACTION,
    CP_MODEL_VALUE,
    CP_MODEL_CUSTOM /* custom:<name> */
} cp_model_t;

/* Distinct profile.<name> fields over all rules. */
#define CP_EVAL_ATTRS_MAX 64

typedef struct cp_eval_s {
    cp_models_params_t p;
    cp_store_ctx_t sctx;
    const char *seg_names[CP_SEGMENTS_MAX];
    cp_expr_t *seg_rules[CP_SEGMENTS_MAX];
    int n_segs;
    size_t n_slots; /* slots the rules use */
    /* profile.<name> fields the rules use: slot CP_EVAL_FIXED_SLOTS + i */
    char *attr_names[CP_EVAL_ATTRS_MAX];
    size_t attr_lens[CP_EVAL_ATTRS_MAX];
    int n_attr_names;
    int64_t btyd_version; /* version of the loaded parameters; 0 none */
    /* Churn warnings (docs/churn.md): the rules' parameters; churn_on = 0
     * when topic.churn is empty (no warning is evaluated or emitted, the
     * peak and spend sums are still kept). */
    cp_churn_params_t cp;
    int churn_on;
    /* Due times: dp.models = &p, dp.churn = &cp or NULL (e must not move
     * after cp_eval_init). */
    cp_due_params_t dp;
    int custom_daily; /* a custom rule reads a field that moves with time */
} cp_eval_t;

/* Fills e from cfg (finalized) and compiles the custom segments. Returns
 * CP_OK, or CP_EINVAL with "segment.<name>.rule: <line:column: message>"
 * in err, or CP_ENOMEM. The config must outlive e (names are borrowed). */
cp_err_t cp_eval_init(cp_eval_t *e, const cp_config_t *cfg, const cp_tz_t *tz,
                      char *err, size_t err_size);
void cp_eval_free(cp_eval_t *e);

/* Loads the BTYD parameters from the fields of the hash `custpulse fit`
 * writes (docs/btyd.md "Where the parameters live"): n pairs of
 * field/value strings. Returns 1 when parameters of a newer version were
 * taken, 0 when nothing changed (same version, or no hash: n = 0), -1 when
 * the hash is unusable (err says why; the parameters held stay). The
 * hash's model and unit must match the config's btyd.model / btyd.unit. */
int cp_eval_load_btyd(cp_eval_t *e, const char *const *fields,
                      const size_t *flens, const char *const *values,
                      const size_t *vlens, size_t n, char *err,
                      size_t err_size);

/* The custom segments st is a member of (bit i = segment i) given the
 * model values mo at `now` and the customer's attributes. */
uint64_t cp_eval_custom(const cp_eval_t *e, const cp_stored_t *s,
                        const cp_models_t *mo, int64_t today);

/* Names a rule may use and their types (docs/segments.md "Fields"). */
size_t cp_eval_field_count(void);
const char *cp_eval_field_name(size_t i, cp_expr_type_t *type);

#endif
