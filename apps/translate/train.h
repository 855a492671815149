/* translate train's pieces (internal): its options (train_options.c), and
 * the state a run saves and resumes from (train_state.c); the loop is in
 * train.c. */
#ifndef NMT_TRAIN_H
#define NMT_TRAIN_H

#include "search.h"

typedef struct {
  const char *src, *tgt, *valid_src, *valid_tgt, *checkpoint, *plot;
  nmt_config model;
  nmt_text_opts text;
  int64_t max_tokens, batch_sentences, warmup, epochs, valid_beam, seed;
  double lr, smoothing, clip, minutes;
  int threads;
  bool resume, quiet;
  bool distributed; /* one of the ranks of mpirun (loom_dist_init ran) */
  /* the model options as the command line gave them, and which it gave:
   * a resumed run's model is the checkpoint's, checked against them */
  nmt_config asked;
  uint32_t asked_flags;
} train_options;

/* Parses `translate train`'s arguments into o (defaults first): 0, 1 after
 * --help, or -1 after a message naming the flag and its range. */
int train_parse(int argc, char **argv, train_options *o);
/* Whether the files training writes can be written (app_check_writable),
 * checked before the data is read so that a run is not lost for one
 * later; '' is no --plot. The exit status: 0, 2 for --checkpoint '', 1
 * for a path that cannot be written, after saying so. */
int train_check_writable(const train_options *o);

/* What a run has done: the training loss every 10 steps (means of those
 * steps) and the validation figures after each epoch. */
typedef struct {
  double *step, *loss;
  int64_t n, cap;
  double *epoch, *val_loss, *val_bleu;
  int64_t n_val, cap_val;
} train_history;

/* Appends a point of the training curve / a validation; 0 or -1 (memory). */
int train_history_push(train_history *h, double step, double loss);
int train_history_push_val(train_history *h, double epoch, double loss,
                           double bleu);
void train_history_free(train_history *h);

/* Where a run stands: the next batch is batch `batch` of epoch `epoch`. */
typedef struct {
  int64_t step, epoch, batch;
  double seconds; /* training time so far, over all runs */
} train_position;

/* After train_read_state: the model options given on the command line
 * that differ from the checkpoint's are refused, each named with both
 * values (they were silently ignored), but --dropout, which changes no
 * parameter and is taken with a note (as charlm does). 0, or -1 after
 * saying which. */
int train_check_resumed_model(train_options *o);

/* Saves everything a resumed run needs into `path` (the model, Adam, the
 * dropout generator, the position, the options that must not change, the
 * text pipeline, the history). 0, or -1 after a message. */
int train_save(const char *path, nmt_model *m, loom_optimizer *opt,
               const train_options *o, const nmt_text *text,
               const train_position *at, const train_history *h);
/* Reads a checkpoint's state before the model exists: the model's
 * configuration and the run's settings into o, the position, the history
 * and the text pipeline. `file` is the checkpoint at `path` as
 * loom_safetensors_load read it (borrowed; the model is restored from the
 * same reading later). 0, or -1 after a message. */
int train_read_state(const loom_tensor_map *file, const char *path,
                     train_options *o, train_position *at, train_history *h,
                     nmt_text **text);

#endif
