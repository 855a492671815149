#!/bin/sh
# apps/translate against the PyTorch baseline on Multi30k de->en
# (../shared/peers/torch_translate_quality.py): the same transformer
# (d_model 256, 8 heads, 3+3 layers, ff 512, dropout 0.1, post-norm, ReLU,
# xavier init, separate embeddings scaled by 16, sinusoidal positions),
# the same data pipeline (lowercased \w+|[^\w\s] tokens, vocabularies of
# words seen twice, source + <eos>), the same training (Adam 5e-4, betas
# 0.9/0.98, eps 1e-9, constant lr, clipping 1, label smoothing 0.1,
# batches of 128 pairs of similar lengths, validation loss each epoch)
# and the same score (greedy, at most source length + 50 tokens, NLTK's
# corpus BLEU on those tokens, test_2016_flickr), for MINUTES of wall clock
# each, one after the other:
#
#   1. PyTorch at 1 and 2 threads for 2 minutes each: target tokens/s, so
#      the long run uses its better thread count;
#   2. PyTorch for MINUTES: BLEU, tokens/s, peak RSS;
#   3. loom's transformer for MINUTES (validation BLEU each epoch too,
#      inside the budget): BLEU greedy and beam 5, sacreBLEU (detokenised,
#      lowercased, against the raw references) beside the tokenised BLEU,
#      tokens/s, peak RSS;
#   4. with --rnn, loom's attention LSTM for RNN_MINUTES: the same figures.
# Targets (issue 14): loom's BLEU above PyTorch's, tokens/s >= 1.25x, peak
# RSS <= 0.5x; the attention LSTM at BLEU >= 28.
#
# Usage: sh bench/translate.sh [--rnn]
#   BUILD=dir  RESULTS=dir  PYTHON=exe  DATA=dir (../shared/data/multi30k)
#   MINUTES=m (35)  RNN_MINUTES=m (35)  NO_TORCH=1 (skip PyTorch)
#   NO_TRANSFORMER=1 (skip loom's transformer: with --rnn, the LSTM alone)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
DATA=${DATA:-$ROOT/../shared/data/multi30k}
PEER=${PEER:-$ROOT/../shared/peers/torch_translate_quality.py}
MINUTES=${MINUTES:-35}
RNN_MINUTES=${RNN_MINUTES:-35}
RESULTS=${RESULTS:-$(mktemp -d /tmp/loom-translate.XXXXXX)}
RNN=
for arg in "$@"; do
  case $arg in
  --rnn) RNN=1 ;;
  *) echo "usage: sh bench/translate.sh [--rnn]" >&2; exit 2 ;;
  esac
done
mkdir -p "$RESULTS"
. "$ROOT/bench/common.sh"
for f in train.de train.en val.de val.en test_2016_flickr.de \
  test_2016_flickr.en; do
  [ -f "$DATA/$f" ] || { echo "translate.sh: no $DATA/$f (set DATA=)" >&2
                         exit 1; }
done
ninja -C "$BUILD" apps/translate/translate >"$RESULTS/build.txt" 2>&1 ||
  { cat "$RESULTS/build.txt"; exit 1; }
T=$BUILD/apps/translate/translate
export OMP_WAIT_POLICY=passive
header | tee "$RESULTS/header.txt"

# loom: train, translate the test set greedily and with beam 5, score.
# name MINUTES FLAGS...
loom_run() {
  name=$1
  minutes=$2
  shift 2
  run "$name" "$T" train --src "$DATA/train.de" --tgt "$DATA/train.en" \
    --valid-src "$DATA/val.de" --valid-tgt "$DATA/val.en" \
    --minutes "$minutes" --checkpoint "$RESULTS/$name.ckpt" \
    --plot "$RESULTS/$name.png" "$@"
  for beam in 1 5; do
    "$T" translate --checkpoint "$RESULTS/$name.ckpt" --beam $beam \
      --alpha 0 --max-len-a 1 --max-len-b 49 \
      <"$DATA/test_2016_flickr.de" >"$RESULTS/$name.beam$beam.en"
    tok=$("$T" score --tokenized --score-only -m bleu \
      "$DATA/test_2016_flickr.en" <"$RESULTS/$name.beam$beam.en")
    sacre=$("$T" score --lowercase --score-only -m bleu \
      "$DATA/test_2016_flickr.en" <"$RESULTS/$name.beam$beam.en")
    rate=$(tr '\r' '\n' <"$RESULTS/$name.err" |
      sed -n 's/.* (\([0-9.]*\) target tokens\/s while stepping).*/\1/p' |
      tail -n 1)
    echo "@loom $name beam$beam $tok $sacre ${rate:-nan}" \
      "$(peak_rss "$name")" >>"$RESULTS/at.txt"
  done
}

: >"$RESULTS/at.txt"
best_threads=2
if [ -z "${NO_TORCH:-}" ]; then
  best=0
  for t in 1 2; do
    run "torch_probe$t" "$PYTHON" "$PEER" --data "$DATA" --minutes 2 \
      --threads "$t" --test-limit 20 --json "$RESULTS/torch_probe$t.json"
    r=$(sed -n 's/.*train \([0-9]*\) tgt tok\/s.*/\1/p' \
      "$RESULTS/torch_probe$t.txt" | tail -n 1)
    echo "@probe torch$t ${r:-0}" >>"$RESULTS/at.txt"
    if awk -v r="${r:-0}" -v b="$best" 'BEGIN { exit !(r > b) }'; then
      best=$r
      best_threads=$t
    fi
  done
  run torch "$PYTHON" "$PEER" --data "$DATA" --minutes "$MINUTES" \
    --threads "$best_threads" --json "$RESULTS/torch.json"
  # RESULT ... BLEU B ... | train R tgt tok/s ...
  awk -v rss="$(peak_rss torch)" -v t="$best_threads" '$1 == "RESULT" {
      for (i = 1; i < NF; i++) {
        if ($i == "BLEU") b = $(i + 1)
        if ($(i + 1) == "tgt" && $(i + 2) == "tok/s") r = $i
      }
      print "@torch torch" t, b, r, rss }' \
    "$RESULTS/torch.txt" >>"$RESULTS/at.txt"
fi

# The baseline's recipe: 128 pairs a batch, whatever their length.
if [ -z "${NO_TRANSFORMER:-}" ]; then
  loom_run transformer "$MINUTES" --model transformer --batch-sentences 128 \
    --max-tokens 1000000 --lr 5e-4 --smoothing 0.1 --clip 1 --epochs 1000
fi
if [ -n "$RNN" ]; then
  loom_run rnn "$RNN_MINUTES" --model rnn --batch-sentences 64 \
    --max-tokens 1000000 --lr 1e-3 --smoothing 0.1 --clip 5 --epochs 1000
fi

awk -v minutes="$MINUTES" '
function verdict(ok) { return ok ? "met" : "MISSED" }
$1 == "@probe" { probe[$2] = $3 }
$1 == "@torch" { tn = $2; tb = $3; tr = $4; tm = $5 }
$1 == "@loom" { k = $2 " " $3; name[k] = $2; bleu[k] = $4; sacre[k] = $5
                rate[k] = $6; rss[k] = $7; keys[++n] = k }
END {
  printf "Multi30k de->en, test_2016_flickr, %s minutes of training each\n",
         minutes
  for (p in probe) printf "  probe %s: %s tgt tok/s\n", p, probe[p]
  printf "%-22s %8s %10s %10s %9s\n", "run", "BLEU", "sacreBLEU", "tok/s",
         "RSS MiB"
  if (tn != "") printf "%-22s %8.2f %10s %10.0f %9.1f\n", tn " greedy", tb,
                       "-", tr, tm
  for (i = 1; i <= n; i++) {
    k = keys[i]
    printf "%-22s %8.2f %10.2f %10.0f %9.1f\n", k, bleu[k], sacre[k],
           rate[k], rss[k]
  }
  k = "transformer beam1"
  if (tn != "" && (k in bleu)) {
    printf "  -> BLEU (greedy both): loom %.2f vs torch %.2f  %s\n",
           bleu[k], tb, verdict(bleu[k] > tb)
    printf "  -> tokens/s: loom / torch = %.2fx  %s\n", rate[k] / tr,
           verdict(rate[k] >= 1.25 * tr)
    printf "  -> peak RSS: loom / torch = %.2fx  %s\n", rss[k] / tm,
           verdict(rss[k] <= 0.5 * tm)
  }
  k = "rnn beam1"
  if (k in bleu)
    printf "  -> attention LSTM BLEU %.2f (beam 5: %.2f)  %s\n", bleu[k],
           bleu["rnn beam5"], verdict(bleu[k] >= 28 || bleu["rnn beam5"] >= 28)
}' "$RESULTS/at.txt" | tee "$RESULTS/summary.txt"
if [ -s "$RESULTS/warnings.txt" ]; then
  echo "WARNING: the machine was busy during part of this run (see above)."
fi
echo "raw outputs: $RESULTS"
