#!/bin/sh
# How a training step's time and memory grow, loom against PyTorch: the
# LSTM and the 2-layer encoder of bench/cost.c swept along sequence length
# (16..512 at batch 32, hidden 256), batch (1..128 at sequence 64, hidden
# 256) and hidden size (128..1024 at sequence 64, batch 32), one process
# per point, then drawn into one PNG (bench-cost-plot, log-log axes).
# PyTorch runs with 2 threads and OMP_WAIT_POLICY=passive.
#
# Usage: sh bench/cost.sh [OUT.png]   (default: RESULTS/cost.png)
#   BUILD=dir RESULTS=dir PYTHON=exe STEPS=n (timed steps a point, 3)
#   NO_TORCH=1 (loom only)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
STEPS=${STEPS:-3}
RESULTS=${RESULTS:-$(mktemp -d /tmp/loom-cost.XXXXXX)}
OUT=${1:-$RESULTS/cost.png}
mkdir -p "$RESULTS"
ninja -C "$BUILD" bench/bench-cost bench/bench-cost-plot \
  >"$RESULTS/build.txt" 2>&1 || { cat "$RESULTS/build.txt"; exit 1; }
. "$ROOT/bench/common.sh"
header | tee "$RESULTS/header.txt"

point() { # MODEL T B H
  "$BUILD/bench/bench-cost" --model "$1" --seq "$2" --batch "$3" \
    --hidden "$4" --steps "$STEPS" | tee -a "$RESULTS/cost.txt" | grep -v '^@'
  if [ -z "${NO_TORCH:-}" ]; then
    "$PYTHON" "$ROOT/bench/cost_torch.py" --model "$1" --seq "$2" \
      --batch "$3" --hidden "$4" --steps "$STEPS" --threads 2 |
      tee -a "$RESULTS/cost.txt" | grep -v '^[@#] torch'
  fi
}

: >"$RESULTS/cost.txt"
for model in lstm encoder; do
  for t in 16 32 64 128 256 512; do point "$model" "$t" 32 256; done
  for b in 1 4 16 64 128; do point "$model" 64 "$b" 256; done
  for h in 128 512 1024; do point "$model" 64 32 "$h"; done
done
"$BUILD/bench/bench-cost-plot" "$RESULTS/cost.txt" "$OUT"
echo "points: $RESULTS/cost.txt; picture: $OUT"
