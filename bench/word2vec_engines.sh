#!/bin/sh
# Why word2vec has a kernel of its own: the fused kernel against the same
# update written with loom ops through autograd (-engine autograd), on the
# same text with bench/word2vec.sh's settings (size 100, window 5,
# negative 5, sample 1e-3, min-count 5), 1 epoch, skip-gram and CBOW.
# Runs alternate between the engines; the summary gives each engine's
# median words/s and their ratio.
#
# Usage (repo root): sh bench/word2vec_engines.sh   (~5 minutes)
#   BUILD=dir   loom build folder (default: build)
#   DATA=dir    the shared data (default: ../shared/data); the text is
#               PTB's training set (0.9M words), lowercased
#   RUNS=n      runs per engine and mode (default 3); THREADS=n (default 2)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DATA=${DATA:-$ROOT/../shared/data}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
WORK=$(mktemp -d /tmp/loom-w2v-engines.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
. "$ROOT/bench/common.sh"

ninja -C "$BUILD" apps/word2vec >"$WORK/build.txt" 2>&1 ||
  { cat "$WORK/build.txt"; exit 1; }
[ -f "$DATA/ptb/ptb.train.part1.txt" ] ||
  { echo "word2vec_engines: no $DATA/ptb (set DATA)" >&2; exit 2; }
cat "$DATA/ptb/ptb.train.part1.txt" "$DATA/ptb/ptb.train.part2.txt" |
  tr 'A-Z' 'a-z' >"$WORK/text.txt"
header
echo "# text: PTB train, $(wc -w <"$WORK/text.txt") words; $THREADS threads"

run=1
while [ "$run" -le "$RUNS" ]; do
  for mode in sg cbow; do
    [ "$mode" = sg ] && cbow=0 || cbow=1
    for engine in fused autograd; do
      "$BUILD/apps/word2vec" -train "$WORK/text.txt" -output "$WORK/v.bin" \
        -binary 1 -size 100 -window 5 -negative 5 -sample 1e-3 \
        -min-count 5 -iter 1 -threads "$THREADS" -cbow $cbow \
        -engine $engine -seed $run -debug 1 2>&1 |
        awk -v m=$mode -v e=$engine -v r=$run \
          '/^trained/ { for (i = 1; i <= NF; i++) if ($i == "words/s")
             printf "run %d %-4s %-8s %9d words/s\n", r, m, e, $(i - 1) }'
    done
  done
  run=$((run + 1))
done | tee "$WORK/runs.txt"

echo
echo "median words/s (load at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
for mode in sg cbow; do
  f=$(awk -v m=$mode '$3 == m && $4 == "fused" { print $5 }' "$WORK/runs.txt" |
    sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  a=$(awk -v m=$mode '$3 == m && $4 == "autograd" { print $5 }' \
    "$WORK/runs.txt" | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  echo "$mode $f $a" |
    awk '{ printf "%-4s fused %9d  autograd %9d  fused/autograd %.1fx\n",
      $1, $2, $3, $2 / $3 }'
done
