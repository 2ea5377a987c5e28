/*
 * output.h - output events as CloudEvents 1.0 structured JSON
 * (docs/contracts.md section 4), built into a cp_buf_t without JSON trees.
 */
#ifndef CP_OUTPUT_H
#define CP_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "evaluate.h"
#include "rfm.h"
#include "rfmq.h"

typedef struct cp_seg_change_s {
    const char *customer_id;
    size_t customer_id_len;
    cp_rfm8_t from;
    cp_rfm8_t to;
    int64_t seq;
    int64_t recency_days;
    int64_t frequency;
    int64_t monetary; /* minor units */
    cp_ref_mode_t ref_mode;
    cp_rfm_ref_t ref;
    int64_t time_ms;      /* the causing event's occurred_at, or the due
                             instant of a time-caused change */
    const char *event_id; /* NULL: caused by time (cause.kind "time") */
    const char *topic;
    int32_t partition;
    int64_t offset;
} cp_seg_change_t;

/* The CloudEvent id of (customer, model, seq): a version-8 UUID from
 * MurmurHash3 x64_128 of customer + "\0" + model + "\0" + decimal(seq). */
void cp_output_event_id(const char *customer_id, size_t len, const char *model,
                        int64_t seq, char out[37]);

/* Appends the segment-change CloudEvent for c to b. */
void cp_output_segment_change(cp_buf_t *b, const cp_seg_change_t *c,
                              const cp_config_t *cfg);

/* A change of another model's level (docs/contracts.md section 4). */
typedef struct cp_model_change_s {
    const char *customer_id;
    size_t customer_id_len;
    cp_model_t kind;
    const char *custom_name; /* CP_MODEL_CUSTOM: the segment's name */
    const char *from;        /* level codes; NULL = none (JSON null) */
    const char *to;
    int64_t seq;
    /* CP_MODEL_RFM: the scores and the snapshot version they were taken
     * against (0 in fixed mode: JSON null) */
    cp_rfmq_score_t rq;
    int64_t rq_snapshot;
    const cp_state_t *st;  /* the state after the event */
    const cp_models_t *mo; /* the models at the event's "now" */
    int64_t today;
    int64_t time_ms;      /* the causing event's occurred_at, or the due
                             instant of a time-caused change */
    const char *event_id; /* NULL: caused by time (cause.kind "time") */
    const char *topic;
    int32_t partition;
    int64_t offset;
} cp_model_change_t;

/* Appends the CloudEvent of c to b: data.model is the model's name
 * ("lifecycle", "engagement", "satisfaction", "value", "custom:<name>"),
 * from/to its levels and data.scores the figures behind the level. */
void cp_output_model_change(cp_buf_t *b, const cp_model_change_t *c,
                            const cp_config_t *cfg);

/* A churn warning, escalation or recovery (docs/churn.md, schema
 * schemas/churn-warning.schema.json). */
typedef struct cp_churn_out_s {
    const char *customer_id;
    size_t customer_id_len;
    cp_churn_action_t action; /* WARN, ESCALATE or RECOVER */
    int64_t seq;
    cp_churn_level_t level;          /* warned level; RECOVER: the episode's */
    cp_churn_level_t previous_level; /* ESCALATE: the level before */
    int64_t episode_ms;              /* the episode's start */
    int recovered_by_order;          /* RECOVER: an order (else signals) */
    const cp_churn_eval_t *ev;       /* the rules at the evaluation */
    const cp_churn_params_t *cp;
    const cp_state_t *st;  /* the state after the event, levels updated */
    const cp_models_t *mo; /* the models at the event's "now" */
    int64_t time_ms;       /* the causing event's occurred_at, or the due
                              instant of a time-caused change */
    const char *event_id;  /* NULL: caused by time (cause.kind "time") */
    const char *topic;
    int32_t partition;
    int64_t offset;
} cp_churn_out_t;

/* Appends the churn CloudEvent of c to b: type
 * com.custpulse.churn.warning (action warn / escalate) or
 * com.custpulse.churn.recovered, id from (customer, "churn", seq). */
void cp_output_churn(cp_buf_t *b, const cp_churn_out_t *c,
                     const cp_config_t *cfg);

#endif
