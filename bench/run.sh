#!/bin/sh
# Builds loom and runs every benchmark in one go, then prints a summary
# table with ratios and whether each target is met. Machines are noisy:
# compare the ratios of one run, not absolute figures from different runs.
#
# Usage: sh bench/run.sh            (about 2-3 minutes)
#   BUILD=dir     build folder (default: build; must have -Dbench=true)
#   RESULTS=dir   where the raw outputs go (default: a fresh temporary dir)
#   PYTHON=exe    Python that sees torch (default: /usr/bin/python3)
#   NO_TORCH=1    skip the PyTorch script
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
RESULTS=${RESULTS:-$(mktemp -d /tmp/loom-bench.XXXXXX)}
mkdir -p "$RESULTS"
rm -f "$RESULTS/warnings.txt"

ninja -C "$BUILD" bench/bench-matmul bench/bench-elementwise \
  bench/bench-overhead >"$RESULTS/build.txt" 2>&1 ||
  { cat "$RESULTS/build.txt"; exit 1; }

busy() { # CPU time the machine has used or lost to its hypervisor (steal)
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

run() { # name command...: runs, shows and keeps the output
  name=$1
  shift
  echo "=== $name: $*"
  start=$(date +%s)
  before=$(busy)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%U %S' -o "$RESULTS/$name.cpu" "$@" |
      tee "$RESULTS/$name.txt" | grep -v '^@' || true
  else
    "$@" | tee "$RESULTS/$name.txt" | grep -v '^@' || true
  fi
  after=$(busy)
  echo "($(($(date +%s) - start)) s)"
  # Other processes (or a hypervisor's steal) skew every figure, as both
  # cores are in use: say so when they took over a CPU-second meanwhile.
  if [ -f "$RESULTS/$name.cpu" ]; then
    awk -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" \
      'NR == 1 { other = (a - b) / hz - $1 - $2
        if (other > 1) printf "WARNING: other processes or steal took %.1f " \
          "CPU-s during this run; its figures may be off\n", other }' \
      "$RESULTS/$name.cpu" | tee -a "$RESULTS/warnings.txt"
  fi
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores:" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
run matmul "$BUILD/bench/bench-matmul"
run elementwise "$BUILD/bench/bench-elementwise"
run overhead "$BUILD/bench/bench-overhead"
if [ -z "${NO_TORCH:-}" ]; then
  # Passive waiting is PyTorch's best configuration here: with OpenMP's
  # default spinning it runs ~3x slower on 2 cores.
  run overhead_torch env OMP_WAIT_POLICY=passive "$PYTHON" \
    "$ROOT/bench/overhead_torch.py"
else
  : >"$RESULTS/overhead_torch.txt"
fi

echo
echo "================================ summary"
cat "$RESULTS"/*.txt | awk '
function verdict(ok) { return ok ? "met" : "MISSED" }
$1 == "@matmul" {
  nm++
  target = ($2 == "square" && $4 >= 256) || $2 == "lstm"
  mm[nm] = sprintf("%-7s %s %5d %5d %5d %9.1f %9.1f %7.3f  %s", $2, $3, $4,
                   $5, $6, $7, $8, $9, target ? verdict($9 >= 0.95) : "-")
  if (target) { mt++; if ($9 >= 0.95) mok++ }
}
$1 == "@elem" {
  ne++
  ok = $10 >= 0.8 && $11 >= 0.8
  el[ne] = sprintf("%-8s %3dM %7.2f %7.2f %7.2f %5.2f %7.2f %7.2f %5.2f " \
                   "%8.2f  %s", $2, $3 / 1048576, $4, $5, $8, $10, $6, $9,
                   $11, $7, verdict(ok))
  et++; if (ok) eok++
}
$1 == "@overhead" {
  if ($2 == "loom") { loom[$3] = $4; order[++no] = $3 }
  else if (!($3 in torch) || $4 < torch[$3]) { torch[$3] = $4; cfg[$3] = $2 }
}
END {
  print "matmul: GFLOP/s, loom (scope + output alloc per call) vs cblas_sgemm"
  print "  target loom/blas >= 0.95 for squares >= 256 and the LSTM shapes"
  printf "%-7s %s %5s %5s %5s %9s %9s %7s  %s\n", "shape", "op", "M", "N",
         "K", "loom", "blas", "ratio", "target"
  for (i = 1; i <= nm; i++) print mm[i]
  printf "  -> %d of %d targeted shapes met\n\n", mok, mt
  print "elementwise: GB/s (read + written); r = loom / plain loop at equal"
  print "  threads; target r >= 0.80 with 2 threads and with 1 thread"
  printf "%-8s %4s %7s %7s %7s %5s %7s %7s %5s %8s  %s\n", "op", "n",
         "memcpy", "plain/1", "loom/1", "r1", "plain/2", "loom/2", "r2",
         "p2+alloc", "target"
  for (i = 1; i <= ne; i++) print el[i]
  printf "  -> %d of %d cases met\n\n", eok, et
  print "overhead: ns per op, y = add(y, b) on 1x1 tensors in chains of 1000"
  print "  torch = best of set_num_threads(1)/(2), OMP_WAIT_POLICY=passive;"
  print "  target torch/loom >= 5"
  printf "%-8s %9s %9s %-7s %8s  %s\n", "mode", "loom", "torch", "(cfg)",
         "ratio", "target"
  for (i = 1; i <= no; i++) {
    m = order[i]
    if (m in torch)
      printf "%-8s %9.1f %9.1f %-7s %8.1f  %s\n", m, loom[m], torch[m],
             cfg[m], torch[m] / loom[m], verdict(torch[m] / loom[m] >= 5)
    else
      printf "%-8s %9.1f %9s %-7s %8s  %s\n", m, loom[m], "-", "", "-", "-"
  }
}'
if [ -s "$RESULTS/warnings.txt" ]; then
  echo
  echo "WARNING: the machine was busy during part of this run (see above);"
  echo "rerun for figures to rely on."
fi
echo
echo "raw outputs: $RESULTS"
