#!/bin/sh
# Builds loom and runs the model benchmarks against PyTorch in one go, one
# program at a time, then prints a summary table with ratios and whether
# each target is met. PyTorch runs with OMP_WAIT_POLICY=passive and 1 and 2
# threads; each case is compared with its best (and where OpenBLAS took
# the CPU for an older one, PyTorch also runs with the CPU's kernels named,
# see FORCE_CORE below). The machine is noisy:
# compare the ratios of one run, not absolute figures of different runs.
#
#   bench-rnn / rnn_torch.py                 LSTM, GRU, unrolled LSTM cells
#   bench-transformer / transformer_torch.py encoder and attention
#   bench/charlm.sh (with --charlm)          char-LSTM app: chars/s, RSS
#   bench/charlm.sh --quality (--quality)    and 10-minute validation runs
#
# Usage: sh bench/run_models.sh [--charlm] [--quality]
#   (about 4 minutes; --charlm adds 3, --quality 30 more)
#   BUILD=dir     build folder (default: build; must have -Dbench=true)
#   RESULTS=dir   where the raw outputs go (default: a fresh temporary dir)
#   PYTHON=exe    Python that sees torch (default: /usr/bin/python3)
#   SAMPLES=n     loom's samples per case (7); REPS=n torch's timed steps (30)
#   ROUNDS=n      runs loom and PyTorch n times in turn (1); the summary then
#                 compares medians over the rounds, which steadies ratios on
#                 a machine whose single runs swing by 20 %
#   NO_TORCH=1    skip PyTorch
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
SAMPLES=${SAMPLES:-7}
REPS=${REPS:-30}
ROUNDS=${ROUNDS:-1}
case $ROUNDS in '' | *[!0-9]* | 0*)
  echo "run_models.sh: ROUNDS=$ROUNDS is not a whole number 1-99" >&2
  exit 2 ;;
esac
[ "$ROUNDS" -le 99 ] ||
  { echo "run_models.sh: ROUNDS=$ROUNDS is not in 1-99" >&2; exit 2; }
RESULTS=${RESULTS:-$(mktemp -d /tmp/loom-models.XXXXXX)}
CHARLM=
QUALITY=
for arg in "$@"; do
  case $arg in
  --charlm) CHARLM=1 ;;
  --quality) CHARLM=1; QUALITY=--quality ;;
  *) echo "usage: sh bench/run_models.sh [--charlm] [--quality]" >&2
     exit 2 ;;
  esac
done
mkdir -p "$RESULTS"
# results of an earlier run in a reused RESULTS would join the summary
rm -f "$RESULTS"/rnn*.txt "$RESULTS"/transformer*.txt
rm -f "$RESULTS/warnings.txt"
. "$ROOT/bench/common.sh"

ninja -C "$BUILD" bench/bench-rnn bench/bench-transformer \
  >"$RESULTS/build.txt" 2>&1 || { cat "$RESULTS/build.txt"; exit 1; }

# An OpenBLAS older than the CPU runs its oldest kernels there (Debian
# 12's 0.3.21 takes a Xeon of model 207 for a Prescott: SSE3, a fifth of
# the CPU's rate), and PyTorch's products with them. Its best then
# includes OPENBLAS_CORETYPE naming the kernels of the level loom runs at
# (Haswell's for avx2, SkylakeX's for avx512): PyTorch runs that way too,
# as configurations 1c and 2c (1 and 2 threads). Left alone when the
# environment sets OPENBLAS_CORETYPE.
CORE=$("$PYTHON" -c 'import ctypes
l = ctypes.CDLL("libopenblas.so.0")
l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())' 2>/dev/null || echo unknown)
# loom's level as tensor/isa.c chooses it: the CPU's best, or LOOM_ISA
# when it names a level at or below that (other names are ignored).
has() { grep -m1 '^flags' /proc/cpuinfo | grep -qw "$1"; }
ISA=baseline
if has avx2 && has fma && has bmi1 && has bmi2; then
  ISA=avx2
  if has avx512f && has avx512bw && has avx512cd && has avx512dq &&
    has avx512vl; then ISA=avx512; fi
fi
case ${LOOM_ISA:-}:$ISA in
  baseline:* | avx2:avx512) ISA=$LOOM_ISA ;;
esac
case $(echo "$CORE" | tr 'A-Z' 'a-z') in
  skylakex | cooperlake | sapphirerapids) core_bits=512 ;;
  haswell | zen) core_bits=256 ;;
  unknown) core_bits=999 ;; # not read: leave OpenBLAS alone
  *) core_bits=128 ;;
esac
FORCE_CORE=
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  case $ISA in
    avx512) [ "$core_bits" -ge 512 ] || FORCE_CORE=SkylakeX ;;
    avx2) [ "$core_bits" -ge 256 ] || FORCE_CORE=Haswell ;;
  esac
fi
{
  header
  echo "# loom at $ISA; OpenBLAS core $CORE (OPENBLAS_CORETYPE" \
    "${OPENBLAS_CORETYPE:-unset})${FORCE_CORE:+; PyTorch also with OPENBLAS_CORETYPE=$FORCE_CORE (1c, 2c)}"
} | tee "$RESULTS/header.txt"
# torch_runs NAME SCRIPT: PyTorch at 2 and 1 threads, and with the core
# forced (tags 4 and 3) when FORCE_CORE is set.
torch_runs() {
  for t in 2 1; do
    run "${1}_torch$t$r" "$PYTHON" "$ROOT/bench/$2" --threads "$t" \
      --reps "$REPS"
  done
  [ -n "$FORCE_CORE" ] || return 0
  for t in 2 1; do
    run "${1}_torch${t}c$r" env OPENBLAS_CORETYPE="$FORCE_CORE" "$PYTHON" \
      "$ROOT/bench/$2" --threads "$t" --reps "$REPS" --tag $((t + 2))
  done
}
round=1
while [ "$round" -le "$ROUNDS" ]; do
  r=
  if [ "$ROUNDS" -gt 1 ]; then r=.r$round; fi
  run "rnn$r" "$BUILD/bench/bench-rnn" --samples "$SAMPLES"
  [ -n "${NO_TORCH:-}" ] || torch_runs rnn rnn_torch.py
  run "transformer$r" "$BUILD/bench/bench-transformer" --samples "$SAMPLES"
  [ -n "${NO_TORCH:-}" ] || torch_runs transformer transformer_torch.py
  round=$((round + 1))
done
if [ -n "$CHARLM" ]; then
  BUILD=$BUILD RESULTS=$RESULTS PYTHON=$PYTHON \
    sh "$ROOT/bench/charlm.sh" $QUALITY
fi

echo
echo "================================ summary"
cat "$RESULTS/header.txt"
if [ "$ROUNDS" -gt 1 ]; then
  echo "# $ROUNDS rounds, each loom's programs then PyTorch's; ms: medians;"
  echo "# ratio: the median of the rounds' ratios (each to that round's best)"
fi
awk '
function verdict(ok) { return ok ? "met" : "MISSED" }
# v holds "a b c ..." : their median
function median(v,    a, m, i, j, x) {
  m = split(v, a, " ")
  for (i = 2; i <= m; i++) { # insertion sort, as numbers
    x = a[i] + 0
    for (j = i - 1; j >= 1 && a[j] + 0 > x; j--)
      a[j + 1] = a[j]
    a[j + 1] = x
  }
  return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function add(s, x) { return s == "" ? x : s " " x }
# Per case, over the rounds that have both: loom ms, PyTorch best ms (of 1
# and 2 threads, and of 1c and 2c when run, in that round) and their ratio; sets MS, TORCH, RATIO to
# the medians and THR to the best thread count of the round whose ratio
# is nearest the median (with an even count, of one of the middle two;
# "1c", "2c" for the runs with the core forced); 0
# when no round has PyTorch figures.
function compare(loom, peer,    r, k, b, ls, ts, rs, d, bd, best) {
  ls = ts = rs = ""
  for (r = 1; r <= rounds; r++) {
    if (!((loom, r) in mine))
      continue
    b = ""
    for (k = 1; k <= 4; k++) # 1, 2 threads; 3, 4: the same, core forced
      if ((peer, k, r) in theirs &&
          (b == "" || theirs[peer, k, r] < theirs[peer, b, r]))
        b = k
    ls = add(ls, mine[loom, r])
    if (b == "")
      continue
    ts = add(ts, theirs[peer, b, r])
    rs = add(rs, mine[loom, r] / theirs[peer, b, r])
    best[r] = b
  }
  MS = median(ls)
  if (rs == "")
    return 0
  TORCH = median(ts)
  RATIO = median(rs)
  bd = -1
  for (r = 1; r <= rounds; r++)
    if ((loom, r) in mine && r in best) {
      d = mine[loom, r] / theirs[peer, best[r], r] - RATIO
      d = d < 0 ? -d : d
      if (bd < 0 || d < bd) { bd = d; THR = best[r] > 2 ? best[r] - 2 "c" : best[r] }
    }
  return 1
}
FNR == 1 {
  round = match(FILENAME, /\.r[0-9]+\.txt$/) ? \
          substr(FILENAME, RSTART + 2, RLENGTH - 6) + 0 : 1
  if (round > rounds) rounds = round
}
$1 == "@rnn" && $2 ~ /^torch/ { theirs[$3 ":" $4, substr($2, 6), round] = $5 }
$1 == "@rnn" && ($2 == "train" || $2 == "fwd") {
  if (!(($2 ":" $3) in seen)) { n++; seen[$2 ":" $3]; kind[n] = $2
                                name[n] = $3; peer[n] = $4 }
  mine[$2 ":" $3, round] = $5
}
$1 == "@rnn" && $2 == "fused_vs_steps" { fused = add(fused, $3) }
$1 == "@tf" && $2 == "loom" {
  if (!(("tf:" $3) in seen)) { tn++; seen["tf:" $3]; tname[tn] = $3 }
  mine["tf:" $3, round] = $4
}
$1 == "@tf" && $2 ~ /^torch/ { theirs["tf:" $3, substr($2, 6), round] = $4 }
END {
  print "rnn: ms per training step (zero_grad, fwd, mean(out^2), bwd, Adam),"
  print "  input 256, hidden 512, seq 35; torch = its best of 1 and 2"
  print "  threads (1c, 2c: with the OpenBLAS core of the header); targets:"
  print "  fused layers at batch 32 <= 0.50x torch, the user LSTM cell"
  print "  unrolled step by step <= 0.40x torch.nn.LSTMCell in a loop"
  printf "%-19s %9s %7s %-18s %9s %-3s %7s %7s  %s\n", "loom case", "ms",
         "GFLOP/s", "torch case", "ms", "thr", "ratio", "target", "verdict"
  for (i = 1; i <= n; i++) {
    if (kind[i] != "train")
      continue
    c = name[i]
    target = c ~ /^(lstm|gru)_b32$/ ? 0.50 : c == "user_lstm_b32" ? 0.40 : 0
    has = compare("train:" c, "train:" peer[i])
    # the work of the products: forward, input and weight gradients
    flop = 3 * 2 * 35 * (c ~ /_b1$/ ? 1 : 32) * (c ~ /^gru/ ? 1536 : 2048) * 768
    gf = flop / MS / 1e6
    if (!has) {
      printf "%-19s %9.2f %7.1f %-18s\n", c, MS, gf, "-"
      continue
    }
    r = RATIO
    printf "%-19s %9.2f %7.1f %-18s %9.2f %-3s %7.3f %7s  %s\n", c, MS,
           gf, peer[i], TORCH, THR, r, target ? sprintf("%.2f", target) : "-",
           target ? verdict(r <= target) : "-"
    if (target) { rt++; if (r <= target) rok++ }
    if (c == "user_lstm_b32" && compare("train:" c, "train:prim_loop_b32"))
      printf "%-19s %9.2f %7.1f %-18s %9.2f %-3s %7.3f %7s  %s\n", c,
             MS, gf, "prim_loop_b32", TORCH, THR, RATIO, "-", "-"
  }
  printf "  loom fused LSTM vs its step-by-step path: %.2fx faster\n", \
         median(fused)
  printf "  -> %d of %d targets met\n\n", rok, rt
  print "transformer: ms per step; encoder 2 layers d256 h8 ff1024, seq 64,"
  print "  batch 32, post-norm relu: fwd + mean(out^2) + bwd + Adam;"
  print "  mha: self-attention fwd + bwd; translate: apps/translate'"'"'s model"
  print "  (3+3 layers ff512, 128 x 15 tokens, 6000 words, label smoothing,"
  print "  clipping, Adam); targets: encoder 0.80x (dropout 0) and 0.60x"
  print "  (0.1), mha 0.80x, translate 0.80x (1.25x the tokens/s)"
  printf "%-17s %9s %10s %7s %9s %-3s %7s %7s  %s\n", "case", "loom ms",
         "tokens/s", "GFLOP/s", "torch ms", "thr", "ratio", "target", "verdict"
  for (i = 1; i <= tn; i++) {
    c = tname[i]
    has = compare("tf:" c, "tf:" c)
    goal = c == "encoder_drop0.0" ? 0.80 : c == "encoder_drop0.1" ? 0.60 : \
           c == "mha" || c == "translate" ? 0.80 : 0
    tokens = c == "translate" ? 1920 : 2048
    # multiply-adds of the products per token (x 2 flops x 3 for backward):
    # encoder layer 4d^2 + 2 d ff + 2 T d; mha 4d^2 + 2 T d; translate 3
    # encoder and 3 decoder layers (ff 512, 15 tokens) and the 6000-word
    # output layer
    mac = c ~ /^encoder/ ? 2 * (4 * 65536 + 2 * 256 * 1024 + 2 * 64 * 256) : \
          c == "mha" ? 4 * 65536 + 2 * 64 * 256 : \
          3 * (4 * 65536 + 2 * 256 * 512 + 2 * 15 * 256) + \
          3 * (8 * 65536 + 2 * 256 * 512 + 4 * 15 * 256) + 256 * 6000
    gf = 6 * mac * tokens / MS / 1e6
    if (!has) {
      printf "%-17s %9.2f %10.0f %7.1f\n", c, MS, tokens / MS * 1e3, gf
      continue
    }
    printf "%-17s %9.2f %10.0f %7.1f %9.2f %-3s %7.3f %7s  %s\n", c, MS,
           tokens / MS * 1e3, gf, TORCH, THR, RATIO,
           goal ? sprintf("%.2f", goal) : "-",
           goal ? verdict(RATIO <= goal) : "-"
    if (goal) { et++; if (RATIO <= goal) eok++ }
  }
  printf "  -> %d of %d targets met\n", eok, et
}' "$RESULTS"/rnn*.txt "$RESULTS"/transformer*.txt
if [ -n "$CHARLM" ] && [ -f "$RESULTS/charlm_summary.txt" ]; then
  echo
  cat "$RESULTS/charlm_summary.txt"
fi
if [ -s "$RESULTS/warnings.txt" ]; then
  echo
  echo "WARNING: the machine was busy during part of this run (see above);"
  echo "rerun for figures to rely on."
fi
echo
echo "raw outputs: $RESULTS"
