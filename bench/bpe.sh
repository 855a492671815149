#!/bin/sh
# BPE learning: `translate bpe learn` against subword-nmt's learn-bpe on
# the same text, one program at a time, checking that both write the same
# codes. Texts: Multi30k's train.en (29,000 lines) and train.de + train.en
# (joint BPE, 58,000 lines), 10,000 merges, min-frequency 2.
#
# Usage (repo root): sh bench/bpe.sh
#   BUILD=dir        loom build folder (default: build)
#   SUBWORD_NMT=dir  a checkout of github:rsennrich/subword-nmt (its
#                    subword_nmt/ package is run from there; without it only
#                    loom is timed)
#   DATA=dir         the shared data (default: ../shared/data)
#   RESULTS=dir      keep raw outputs there (default: a temp dir)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DATA=${DATA:-$ROOT/../shared/data}
PY=${PY:-/usr/bin/python3}
WORK=$(mktemp -d /tmp/loom-bpe.XXXXXX)
RESULTS=${RESULTS:-$WORK/results}
mkdir -p "$RESULTS"
trap 'rm -rf "$WORK"/joint.txt' EXIT
. "$ROOT/bench/common.sh"

ninja -C "$BUILD" apps/translate/translate >"$RESULTS/build.txt" 2>&1 ||
  { cat "$RESULTS/build.txt"; exit 1; }
T=$BUILD/apps/translate/translate
M=$DATA/multi30k
cat "$M/train.de" "$M/train.en" >"$WORK/joint.txt"
header

# cpu NAME: user + system seconds of the last `run NAME`
cpu() {
  awk '/User time/ { u = $NF } /System time/ { s = $NF }
    END { printf "%.2f", u + s }' "$RESULTS/$1.time"
}
wall() {
  awk '/Elapsed/ { n = split($NF, t, ":"); s = 0
    for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.2f", s }' \
    "$RESULTS/$1.time"
}

for text in train.en joint; do
  in=$M/$text
  [ "$text" = joint ] && in=$WORK/joint.txt
  run "loom_$text" sh -c "'$T' bpe learn -s 10000 < '$in' > '$RESULTS/loom_$text.codes'"
  line="$text: loom $(cpu "loom_$text") CPU-s ($(wall "loom_$text") s wall)"
  if [ -n "${SUBWORD_NMT:-}" ]; then
    run "subword_nmt_$text" sh -c "cd '$SUBWORD_NMT' && '$PY' -c \
      'import sys; sys.argv[0] = \"subword-nmt\"; from subword_nmt.subword_nmt import main; main()' \
      learn-bpe -s 10000 < '$in' > '$RESULTS/subword_nmt_$text.codes'"
    same=different
    cmp -s "$RESULTS/loom_$text.codes" "$RESULTS/subword_nmt_$text.codes" &&
      same=identical
    line="$line, subword-nmt $(cpu "subword_nmt_$text") CPU-s ($(wall \
      "subword_nmt_$text") s wall): codes $same"
  fi
  echo "$line"
done
