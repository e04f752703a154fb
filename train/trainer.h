/* train/trainer.h — the training loop of sla-train: flow-matching fine-tuning of the DiT.
 *
 * trainer_run takes a validated run_config_t and runs it to cfg->steps optimizer steps:
 * it opens the dataset, builds the model on the chosen backend, starts from a checkpoint
 * (resume = auto | PATH), from init_weights, or from a seeded initialisation, then per step:
 * grad_accum micro-batches of forward + backward (the next micro-batch read and noised on a thread
 * of its own meanwhile; loss scaled by 1/grad_accum; with a teacher,
 * + distill_weight * mse(pred, the frozen dense teacher's pred) on the same inputs), global gradient
 * norm and clipping, AdamW on fp32 master weights with the table's weight-decay mask, optional EMA,
 * one log line and one JSONL metrics line (out_dir/metrics.jsonl; with the step's time, the host
 * data time not hidden behind the GPU, and the norm + optimizer time; a resume first drops the
 * lines of the steps it will run again, so each step appears once), and a checkpoint every
 * ckpt_every steps and at the end. A non-finite loss skips the step with a warning (AdamW's bias
 * correction counts the updates applied, adam_steps, as PyTorch does; the metrics line writes null
 * for a non-finite loss or norm); max_bad_steps in a row stop the run (exit status 1).
 * SIGTERM/SIGINT finish the current step, write a checkpoint and return 0. Everything random is
 * keyed by (seed, step, sample slot), so a resumed run continues bit for bit. Returns the process
 * exit status; messages go to stderr. */
#ifndef SLA_TRAINER_H
#define SLA_TRAINER_H

#include "config.h"

/* Which rank of how many this process is (1 of 1 until the multi-GPU issue). */
typedef struct trainer_rank {
    int rank, world;
} trainer_rank_t;

int trainer_run(const run_config_t *cfg, trainer_rank_t who);

/* From now on SIGTERM/SIGINT ask the run to stop after its current (or first) step with a
 * checkpoint; call it first thing, so that a signal during start-up is not lost. */
void trainer_catch_signals(void);

#endif
