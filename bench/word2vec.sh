#!/bin/sh
# loom's word2vec against the original word2vec tool and gensim, in one
# run, one program at a time (never two at once: the machine has 2 cores).
#
# Corpus: ../shared/data PTB (train, valid, test) + the 17 Gutenberg books +
# the Brown genres, lowercased, one sentence per line (the recipe of the
# peers' w2v_corpus.sh): ~3.6M tokens, the largest English text there.
# Settings for all three: size 100, window 5, negative 5, sample 1e-3,
# min-count 5, 2 threads, $EPOCHS epochs; skip-gram (alpha 0.025), then
# CBOW (alpha 0.05, the original tool's default, given to gensim too).
# Each program runs $RUNS times (loom and gensim with seeds 1..RUNS; the
# original tool has no seed, its two threads make runs differ): the
# evaluations move by ~0.5 point (analogies) and ~0.015 (Spearman) from
# run to run, as much as the targets' margins, so means are compared.
#
# words/s = corpus tokens x epochs / training seconds (median of the runs),
#   where training seconds are: loom's own figure (vocabulary and saving
#   excluded), gensim's train() call, and for the C tool its whole run
#   minus a run that only builds the vocabulary (so its 400 MB table fill
#   and the save count as training). total_s: the whole command.
# Quality: every vector file is scored by `word2vec eval` (analogies among
#   the 30,000 most frequent words, as compute-accuracy; WordSim-353
#   Spearman); the first run's files also by gensim's evaluate_word_analogies
#   / evaluate_word_pairs as a cross-check (g: columns).
#
# Usage (repo root): sh bench/word2vec.sh      (~15 minutes with the defaults)
#   BUILD=dir      loom build folder (default: build)
#   EPOCHS=n       epochs (default 5);  RUNS=n  runs per program (default 5)
#   MODES="sg cbow"
#   W2V_C_DIR=dir  a folder with an already built original `word2vec`
#                  (default: `npm pack word2vec` and make, in a temp dir)
#   DATA=dir       the shared data (default: ../shared/data)
#   RESULTS=dir    keep raw outputs there (default: a temp dir)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DATA=${DATA:-$ROOT/../shared/data}
PY=${PY:-/usr/bin/python3}
EPOCHS=${EPOCHS:-5}
RUNS=${RUNS:-5}
MODES=${MODES:-sg cbow}
THREADS=2
WORK=$(mktemp -d /tmp/loom-w2v.XXXXXX)
RESULTS=${RESULTS:-$WORK/results}
mkdir -p "$RESULTS"
trap 'rm -rf "$WORK"/corpus.txt "$WORK"/*.bin "$WORK"/package "$WORK"/*.tgz' EXIT
Q=$DATA/word2vec_eval/questions-words.txt
WS=$DATA/word2vec_eval/wordsim353.tsv

ninja -C "$BUILD" apps/word2vec >"$RESULTS/build.txt" 2>&1 ||
  { cat "$RESULTS/build.txt"; exit 1; }
W2V_LOOM=$BUILD/apps/word2vec

CORPUS=$WORK/corpus.txt
. "$ROOT/bench/common.sh"
w2v_corpus "$DATA" "$CORPUS"
TOKENS=$(wc -w <"$CORPUS")
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores:" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# corpus: PTB+Gutenberg+Brown, $(wc -l <"$CORPUS") lines, $TOKENS" \
  "tokens, sha256 $(sha256sum "$CORPUS" | cut -c1-16)"

if [ -z "${W2V_C_DIR:-}" ]; then
  (cd "$WORK" && npm pack word2vec --silent >npm.txt 2>/dev/null &&
    tar xzf word2vec-*.tgz && make -C package/src word2vec >make.txt 2>&1)
  W2V_C_DIR=$WORK/package/src
  echo "# original tool: npm package $(cat "$WORK/npm.txt"), its makefile" \
    "($(grep -m1 '^CFLAGS' "$W2V_C_DIR/makefile" | sed 's/^CFLAGS *= *//'))"
else
  echo "# original tool: prebuilt in $W2V_C_DIR"
fi
W2V_C=$W2V_C_DIR/word2vec
echo "# gensim $("$PY" -c 'import gensim; print(gensim.__version__)')," \
  "LineSentence, workers=$THREADS; $RUNS runs of $EPOCHS epochs each"

HZ=$(getconf CLK_TCK) # busy() (common.sh) counts ticks

# measure NAME COMMAND...: runs it (output to $RESULTS/NAME.txt) and prints
# its wall seconds; "@busy" lines name runs that others slowed down.
measure() {
  name=$1
  shift
  before=$(busy)
  /usr/bin/time -f '%e %U %S' -o "$RESULTS/$name.time" "$@" \
    >"$RESULTS/$name.txt" 2>&1 || { cat "$RESULTS/$name.txt" >&2; exit 1; }
  after=$(busy)
  awk -v b="$before" -v a="$after" -v hz="$HZ" -v n="$name" \
    'NR == 1 { other = (a - b) / hz - $2 - $3
      if (other > 1) printf "@busy %s %.1f\n", n, other >"/dev/stderr" }' \
    "$RESULTS/$name.time" 2>>"$RESULTS/busy.txt"
  awk 'NR == 1 { print $1 }' "$RESULTS/$name.time"
}

score() { # VECTORS NAME [gensim] -> "@score NAME acc rho [g_acc g_rho]"
  "$W2V_LOOM" eval "$1" -questions "$Q" -wordsim "$WS" >"$RESULTS/eval_$2.txt"
  acc=$(awk '/^analogy accuracy/ { print $3 }' "$RESULTS/eval_$2.txt")
  rho=$(awk '/^word similarity/ { print $4 }' "$RESULTS/eval_$2.txt")
  g=""
  if [ -n "${3:-}" ]; then
    g=$("$PY" "$ROOT/bench/word2vec_gensim.py" eval "$1" "$Q" "$WS" |
      awk '/^@geval/ { print $2, $4 }')
  fi
  echo "@score $2 $acc $rho $g"
}

COMMON="-size 100 -window 5 -negative 5 -hs 0 -sample 1e-3 -min-count 5"
for mode in $MODES; do
  if [ "$mode" = sg ]; then cbow=0; sg=1; alpha=0.025; else cbow=1; sg=0; alpha=0.05; fi
  ARGS="$COMMON -cbow $cbow -alpha $alpha -threads $THREADS -iter $EPOCHS -binary 1"
  echo "=== $mode: $ARGS"
  run=1
  while [ "$run" -le "$RUNS" ]; do
    check=""
    [ "$run" = 1 ] && check=gensim
    id=${mode}_loom_$run
    t=$(measure "$id" "$W2V_LOOM" -train "$CORPUS" -output "$WORK/$id.bin" \
      $ARGS -seed "$run" -debug 1)
    tr=$(awk '/^trained/ { for (i = 1; i <= NF; i++) if ($i == "in")
      print substr($(i + 1), 1, length($(i + 1)) - 2) }' "$RESULTS/$id.txt")
    echo "@run $mode loom $run $t $tr"
    score "$WORK/$id.bin" "$id" $check

    id=${mode}_gensim_$run
    t=$(measure "$id" "$PY" "$ROOT/bench/word2vec_gensim.py" train "$CORPUS" \
      "$WORK/$id.bin" --sg $sg --epochs "$EPOCHS" --threads $THREADS \
      --alpha $alpha --seed "$run")
    echo "@run $mode gensim $run $t $(awk '/^@gensim/ { print $3 }' "$RESULTS/$id.txt")"
    score "$WORK/$id.bin" "$id" $check

    id=${mode}_c_$run
    v=$(measure "${id}_vocab" "$W2V_C" -train "$CORPUS" \
      -save-vocab "$WORK/c_vocab.txt" $ARGS)
    t=$(measure "$id" "$W2V_C" -train "$CORPUS" -output "$WORK/$id.bin" $ARGS)
    echo "@run $mode c $run $t $(echo "$t $v" | awk '{ printf "%.3f", $1 - $2 }')"
    score "$WORK/$id.bin" "$id" $check
    rm -f "$WORK"/*.bin
    run=$((run + 1))
  done
done | tee "$RESULTS/runs.txt" | grep -v '^@'

echo
echo "================================ word2vec: loom vs gensim vs the original tool"
awk -v tokens="$TOKENS" -v epochs="$EPOCHS" -v modes="$MODES" '
function add(key, v) { n[key]++; s[key] += v; ss[key] += v * v; x[key, n[key]] = v }
function mean(key) { return s[key] / n[key] }
function sd(key) { return n[key] > 1 ? sqrt((ss[key] - s[key] * s[key] / n[key]) / (n[key] - 1)) : 0 }
function median(key,   i, j, t, m) {
  m = n[key]
  for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
    if (x[key, j] < x[key, i]) { t = x[key, i]; x[key, i] = x[key, j]; x[key, j] = t }
  return m % 2 ? x[key, (m + 1) / 2] : (x[key, m / 2] + x[key, m / 2 + 1]) / 2
}
$1 == "@run" { add($2 SUBSEP $3 SUBSEP "wall", $5); add($2 SUBSEP $3 SUBSEP "train", $6) }
$1 == "@score" { split($2, kk, "_"); key = kk[1] SUBSEP kk[2]
  add(key SUBSEP "acc", $3); add(key SUBSEP "rho", $4)
  if (NF >= 6) { gacc[key] = $5; grho[key] = $6 } }
function wps(m, t) { return tokens * epochs / median(m SUBSEP t SUBSEP "train") }
END {
  nm = split(modes, order, " ")
  printf "%-5s %-7s %9s %8s %8s %15s %17s %9s %9s\n", "mode", "tool", "words/s",
    "train_s", "total_s", "analogy%", "wordsim", "g:analogy", "g:wordsim"
  for (j = 1; j <= nm; j++) for (i = 1; i <= 3; i++) {
    m = order[j]; t = i == 1 ? "loom" : i == 2 ? "gensim" : "c"; k = m SUBSEP t
    printf "%-5s %-7s %9.0f %8.2f %8.2f %8.2f +- %4.2f %8.4f +- %5.3f %9.2f %9.4f\n",
      m, t, wps(m, t), median(k SUBSEP "train"), median(k SUBSEP "wall"),
      mean(k SUBSEP "acc"), sd(k SUBSEP "acc"), mean(k SUBSEP "rho"),
      sd(k SUBSEP "rho"), gacc[k], grho[k]
  }
  print ""
  print "targets: words/s >= 1.0 x the faster peer; mean analogy accuracy and"
  print "WordSim Spearman within 1 point (0.01 for Spearman) of the better peer"
  for (j = 1; j <= nm; j++) {
    m = order[j]
    fast = wps(m, "gensim") > wps(m, "c") ? "gensim" : "c"
    ratio = wps(m, "loom") / wps(m, fast)
    la = mean(m SUBSEP "loom" SUBSEP "acc"); lr = mean(m SUBSEP "loom" SUBSEP "rho")
    ga = mean(m SUBSEP "gensim" SUBSEP "acc"); ca = mean(m SUBSEP "c" SUBSEP "acc")
    gr = mean(m SUBSEP "gensim" SUBSEP "rho"); cr = mean(m SUBSEP "c" SUBSEP "rho")
    ba = ga > ca ? ga : ca; br = gr > cr ? gr : cr
    printf "%-5s speed:   loom/%s %.2fx (loom/gensim %.2fx, loom/c %.2fx) %s\n",
      m, fast, ratio, wps(m, "loom") / wps(m, "gensim"),
      wps(m, "loom") / wps(m, "c"), (ratio >= 1 ? "met" : "MISSED")
    printf "%-5s analogy: loom %.2f vs best peer %.2f (%+.2f) %s\n", m, la, ba,
      la - ba, (la >= ba - 1 ? "met" : "MISSED")
    printf "%-5s wordsim: loom %.4f vs best peer %.4f (%+.4f) %s\n", m, lr, br,
      lr - br, (lr >= br - 0.01 ? "met" : "MISSED")
  }
  printf "(words/s: %d corpus tokens x %d epochs / training seconds; " \
    "analogy: compute-accuracy rules, threshold 30000; g: = gensim evaluators, run 1)\n",
    tokens, epochs
}' "$RESULTS/runs.txt"
if [ -s "$RESULTS/busy.txt" ]; then
  echo
  echo "WARNING: other processes took CPU time during these runs (CPU-seconds):"
  sed 's/^@busy /  /' "$RESULTS/busy.txt"
  echo "their speed figures may be off; rerun on a quiet machine."
fi
echo "raw outputs: $RESULTS"
