/* translate: train translation models, translate, and the text tools
 * around them (scores, byte-pair encoding). Dispatches to a subcommand. */
#include "translate.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: translate COMMAND [options]   (translate COMMAND --help for "
          "its options)\n"
          "\n"
          "commands:\n"
          "  train       train a translation model on parallel text\n"
          "  translate   translate standard input with a trained model\n"
          "  attention   draw one sentence's attention as a heatmap PNG\n"
          "  score       BLEU and chrF of hypotheses against references, as "
          "sacreBLEU\n"
          "              prints them (translate score REF [REF...] < HYP)\n"
          "  bpe         byte-pair encoding as subword-nmt: learn, apply, "
          "undo, vocab\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "score"))
    return translate_score_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "bpe"))
    return translate_bpe_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "train"))
    return translate_train_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "translate"))
    return translate_translate_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "attention"))
    return translate_attention_main(argc - 1, argv + 1);
  fprintf(stderr, "translate: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}
