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
#
# With PAIRED=1 the two long runs go side by side instead, PyTorch on core
# 0 and loom on core 1 with one thread each (BLEU in MINUTES at equal
# resources, in half the wall clock), then the speed probes one at a time
# on the whole machine: PyTorch at 1 and 2 threads and loom at 2, so the
# tokens/s ratio is against PyTorch's best configuration.
# Targets (issue 14): loom's BLEU above PyTorch's, tokens/s >= 1.25x, peak
# RSS <= 0.5x; the attention LSTM at BLEU >= 28.
#
# Usage: sh bench/translate.sh [--rnn]
#   BUILD=dir  RESULTS=dir  PYTHON=exe  DATA=dir (../shared/data/multi30k)
#   MINUTES=m (35)  RNN_MINUTES=m (35)  PROBE_MINUTES=m (2)
#   NO_TORCH=1 (skip PyTorch)  TEST_LIMIT=n (PyTorch decodes n test
#   sentences: a smoke test of this script)
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
PROBE_MINUTES=${PROBE_MINUTES:-2}
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

# loom_train NAME MINUTES FLAGS...: trains on Multi30k for MINUTES (the
# command prefixed by $PIN, if set).
loom_train() {
  name=$1
  minutes=$2
  shift 2
  run "$name" ${PIN:-} "$T" train --src "$DATA/train.de" \
    --tgt "$DATA/train.en" --valid-src "$DATA/val.de" \
    --valid-tgt "$DATA/val.en" --minutes "$minutes" \
    --checkpoint "$RESULTS/$name.ckpt" --plot "$RESULTS/$name.png" "$@"
}

# loom_rate NAME: the last target tokens/s while stepping of `run NAME`.
loom_rate() {
  r=$(tr '\r' '\n' <"$RESULTS/$1.err" |
    sed -n 's/.* (\([0-9.]*\) target tokens\/s while stepping).*/\1/p' |
    tail -n 1)
  echo "${r:-nan}"
}

# loom_score NAME: translates the test set greedily and with beam 5 and
# scores both (tokenised BLEU as the baseline's, and sacreBLEU).
loom_score() {
  for beam in 1 5; do
    "$T" translate --checkpoint "$RESULTS/$1.ckpt" --beam $beam \
      --alpha 0 --max-len-a 1 --max-len-b 49 \
      <"$DATA/test_2016_flickr.de" >"$RESULTS/$1.beam$beam.en"
    tok=$("$T" score --tokenized --score-only -m bleu \
      "$DATA/test_2016_flickr.en" <"$RESULTS/$1.beam$beam.en")
    sacre=$("$T" score --lowercase --score-only -m bleu \
      "$DATA/test_2016_flickr.en" <"$RESULTS/$1.beam$beam.en")
    echo "@loom $1 beam$beam $tok $sacre $(loom_rate "$1") $(peak_rss "$1")" \
      >>"$RESULTS/at.txt"
  done
}

# torch_train NAME MINUTES THREADS [FLAGS...]: the baseline (prefixed by
# $PIN, if set).
torch_train() {
  name=$1
  minutes=$2
  threads=$3
  shift 3
  run "$name" ${PIN:-} "$PYTHON" "$PEER" --data "$DATA" \
    --minutes "$minutes" --threads "$threads" \
    --json "$RESULTS/$name.json" ${TEST_LIMIT:+--test-limit "$TEST_LIMIT"} \
    "$@"
}

# torch_rate NAME: the baseline's last training tokens/s.
torch_rate() {
  r=$(sed -n 's/.*train \([0-9]*\) tgt tok\/s.*/\1/p' "$RESULTS/$1.txt" |
    tail -n 1)
  echo "${r:-0}"
}

# torch_result NAME LABEL: the @torch line of a full baseline run
# (RESULT ... BLEU B ... | train R tgt tok/s ...).
torch_result() {
  awk -v rss="$(peak_rss "$1")" -v label="$2" '$1 == "RESULT" {
      for (i = 1; i < NF; i++) {
        if ($i == "BLEU") b = $(i + 1)
        if ($(i + 1) == "tgt" && $(i + 2) == "tok/s") r = $i
      }
      print "@torch", label, b, r, rss }' \
    "$RESULTS/$1.txt" >>"$RESULTS/at.txt"
}

# Both speed probes on the whole machine: the baseline at 1 and 2 threads
# (its better count is its best configuration), and with PAIRED loom at 2.
torch_probes() {
  best=0
  best_threads=2
  for t in 1 2; do
    torch_train "torch_probe$t" "$PROBE_MINUTES" "$t" --test-limit 20
    r=$(torch_rate "torch_probe$t")
    echo "@probe torch$t $r" >>"$RESULTS/at.txt"
    if awk -v r="$r" -v b="$best" 'BEGIN { exit !(r > b) }'; then
      best=$r
      best_threads=$t
    fi
  done
}

# The baseline's recipe: 128 pairs a batch, whatever their length.
TRANSFORMER="--model transformer --batch-sentences 128 --max-tokens 1000000
  --lr 5e-4 --smoothing 0.1 --clip 1 --epochs 1000"

: >"$RESULTS/at.txt"
if [ -n "${PAIRED:-}" ]; then
  # Quality at equal resources: both train at the same time, each on a
  # core of its own with one thread (the other core's process is expected,
  # so run() does not warn about it). Speed: probes one at a time.
  NO_BUSY_CHECK=1
  before=$(busy)
  PIN="taskset -c 0" torch_train torch "$MINUTES" 1 &
  PIN="taskset -c 1" loom_train transformer "$MINUTES" $TRANSFORMER \
    --threads 1 &
  wait
  busy_check "$before" "$(busy)" torch transformer |
    tee -a "$RESULTS/warnings.txt"
  NO_BUSY_CHECK=
  torch_result torch "torch1-paired"
  loom_score transformer
  torch_probes
  loom_train loom_probe2 "$PROBE_MINUTES" $TRANSFORMER --threads 2 \
    --plot ''
  echo "@probe loom2 $(loom_rate loom_probe2)" >>"$RESULTS/at.txt"
else
  best_threads=2
  if [ -z "${NO_TORCH:-}" ]; then
    torch_probes
    torch_train torch "$MINUTES" "$best_threads"
    torch_result torch "torch$best_threads"
  fi
  if [ -z "${NO_TRANSFORMER:-}" ]; then
    loom_train transformer "$MINUTES" $TRANSFORMER
    loom_score transformer
  fi
fi
if [ -n "$RNN" ]; then
  loom_train rnn "$RNN_MINUTES" --model rnn --batch-sentences 64 \
    --max-tokens 1000000 --lr 1e-3 --smoothing 0.1 --clip 5 --epochs 1000
  loom_score rnn
fi

awk -v minutes="$MINUTES" -v rnn_minutes="$RNN_MINUTES" '
function verdict(ok) { return ok ? "met" : "MISSED" }
$1 == "@probe" { probe[$2] = $3 }
$1 == "@torch" { tn = $2; tb = $3; tr = $4; tm = $5 }
$1 == "@loom" { k = $2 " " $3; name[k] = $2; bleu[k] = $4; sacre[k] = $5
                rate[k] = $6; rss[k] = $7; keys[++n] = k }
END {
  printf "Multi30k de->en, test_2016_flickr, %s minutes of training",
         ("transformer beam1" in bleu) ? minutes : rnn_minutes
  printf "%s\n", tn != "" ? " each" : ""
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
    if (probe["loom2"] > 0 && probe["torch1"] + probe["torch2"] > 0) {
      # paired: each at its best on the whole machine
      tb2 = probe["torch1"] > probe["torch2"] ? probe["torch1"] : probe["torch2"]
      printf "  -> tokens/s (probes, whole machine): loom %.0f / torch best " \
             "%.0f = %.2fx  %s\n", probe["loom2"], tb2, probe["loom2"] / tb2,
             verdict(probe["loom2"] >= 1.25 * tb2)
      printf "  -> tokens/s (paired, one core each): %.2fx\n", rate[k] / tr
    } else if (tr > 0)
      printf "  -> tokens/s: loom / torch = %.2fx  %s\n", rate[k] / tr,
             verdict(rate[k] >= 1.25 * tr)
    if (tm > 0)
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
