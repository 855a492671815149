/* translate: machine translation from the command line. Each subcommand
 * is a main() of its own, dispatched by main.c; they return the program's
 * exit status (0 done, 1 failed, 2 bad usage). */
#ifndef LOOM_APPS_TRANSLATE_H
#define LOOM_APPS_TRANSLATE_H

/* translate score REF [REF...] < HYP: BLEU and chrF as sacreBLEU. */
int translate_score_main(int argc, char **argv);
/* translate train: learns a model from parallel text (train.c). */
int translate_train_main(int argc, char **argv);
/* translate translate: standard input to standard output (translate_cmd.c). */
int translate_translate_main(int argc, char **argv);
/* translate attention: one sentence's attention as a heatmap PNG. */
int translate_attention_main(int argc, char **argv);

/* translate bpe learn|apply|undo|vocab: byte-pair encoding as
 * subword-nmt. */
int translate_bpe_main(int argc, char **argv);

#endif
