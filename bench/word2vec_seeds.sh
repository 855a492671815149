#!/bin/sh
# Mean analogy accuracy and WordSim-353 Spearman of loom's word2vec over
# several seeds, for A/B tests of the training algorithm (one run moves by
# ~0.5 point and ~0.015, so single runs cannot tell a change from noise).
# Builds the same PTB + Gutenberg + Brown corpus as bench/word2vec.sh.
#
# Usage: sh bench/word2vec_seeds.sh [cbow|sg] [RUNS]     (~4 s per CBOW run)
#   BUILD=dir   build folder (default: build)
#   FIRST=n     the first seed (default 1): seeds FIRST..FIRST+RUNS-1
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
MODE=${1:-cbow}
RUNS=${2:-20}
DATA=$ROOT/../shared/data
[ -d "$DATA/ptb" ] || { echo "word2vec_seeds.sh: no $DATA" >&2; exit 1; }
WORK=$(mktemp -d /tmp/loom-w2v-seeds.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
. "$ROOT/bench/common.sh"
w2v_corpus "$DATA" "$WORK/corpus.txt"
if [ "$MODE" = sg ]; then cbow=0; alpha=0.025; else cbow=1; alpha=0.05; fi
ninja -C "$BUILD" apps/word2vec >/dev/null
W2V=$BUILD/apps/word2vec
s=${FIRST:-1}
while [ "$s" -lt "$((${FIRST:-1} + RUNS))" ]; do
  "$W2V" -train "$WORK/corpus.txt" -output "$WORK/v.bin" -size 100 \
    -window 5 -negative 5 -hs 0 -sample 1e-3 -min-count 5 -cbow $cbow \
    -alpha $alpha -threads 2 -iter 5 -binary 1 -seed "$s" -debug 0 \
    >/dev/null 2>&1
  "$W2V" eval "$WORK/v.bin" \
    -questions "$DATA/word2vec_eval/questions-words.txt" \
    -wordsim "$DATA/word2vec_eval/wordsim353.tsv" |
    awk -v s="$s" '/^analogy accuracy/ { a = $3 }
                   /^word similarity/ { r = $4 } END { print s, a, r }'
  s=$((s + 1))
done | awk -v m="$MODE" '{ a += $2; r += $3; n++; print }
  END { printf "%s: mean analogy %.3f%%, WordSim %.4f over %d seeds\n",
               m, a / n, r / n, n }'
