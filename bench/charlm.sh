#!/bin/sh
# apps/charlm against PyTorch on tinyshakespeare (65 characters): a
# char-LSTM with embedding 64, 2 layers of 512, seq 100, batch 32, Adam 2e-3,
# clipping 5, no dropout.
#
#   speed (always, ~3 minutes): STEPS training steps in a fresh process
#     each, charlm vs bench/charlm_torch.py with 1 and 2 torch threads:
#     characters per second over those steps and the peak RSS reported by
#     /usr/bin/time -v. Targets: more chars/s than PyTorch's best
#     configuration, and peak RSS <= 0.5x PyTorch's.
#   --quality (~30 minutes more): validation loss (nats/char) reached in
#     MINUTES of training, each run alone, one after the other. charlm
#     validates every 200 steps inside the budget and keeps the best step's
#     checkpoint (FILE.best): its figure is that best, the last validation
#     is shown beside it (twice PyTorch's steps overfit 1 MB of text with
#     no dropout). The PyTorch script validates once, at the end:
#       charlm LSTM                   (the model above)
#       bench/charlm_quality_torch.py (the same in PyTorch, its best thread
#                                      count from the speed part)
#       charlm --model transformer    (pre-norm GELU decoder, d 256, 4
#                                      layers, 8 heads, ff 1024: 3.2M
#                                      parameters against the LSTM's 3.3M)
#     Target: charlm's LSTM at least as good as PyTorch's.
#
# Usage: sh bench/charlm.sh [--quality]
#   BUILD=dir     build folder (default: build)
#   RESULTS=dir   where the raw outputs go (default: a fresh temporary dir)
#   PYTHON=exe    Python that sees torch (default: /usr/bin/python3)
#   DATA=file     the text (default: ../shared/data/tinyshakespeare/input.txt)
#   STEPS=n       training steps of the speed part (50)
#   MINUTES=m     training budget of each quality run (10)
#   TF_LR=x       the transformer's learning rate (1e-3, see below)
#   NO_TORCH=1    skip PyTorch
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
DATA=${DATA:-$ROOT/../shared/data/tinyshakespeare/input.txt}
STEPS=${STEPS:-50}
MINUTES=${MINUTES:-10}
# Adam 1e-3 is the usual rate for a small character transformer (nanoGPT's
# shakespeare_char uses it); it was chosen before any run, not tuned here.
TF_LR=${TF_LR:-1e-3}
RESULTS=${RESULTS:-$(mktemp -d /tmp/loom-charlm.XXXXXX)}
QUALITY=
for arg in "$@"; do
  case $arg in
  --quality) QUALITY=1 ;;
  *) echo "usage: sh bench/charlm.sh [--quality]" >&2; exit 2 ;;
  esac
done
mkdir -p "$RESULTS"
. "$ROOT/bench/common.sh"
if [ ! -f "$DATA" ]; then
  echo "charlm.sh: no $DATA (set DATA=)" >&2
  exit 1
fi
ninja -C "$BUILD" apps/charlm >"$RESULTS/build-charlm.txt" 2>&1 ||
  { cat "$RESULTS/build-charlm.txt"; exit 1; }

MODEL="--hidden 512 --embed 64 --layers 2 --seq 100 --batch 32"
# Validation only at the end and no checkpoints on the way, as PyTorch's
# quality script does: the time budget goes to training.
QUIET_ON_THE_WAY="--eval-every 1000000000 --save-every 1000000000 --plot="
CKPT="$RESULTS/charlm.ckpt"

header | tee "$RESULTS/charlm_header.txt"
# charlm prints "done: N steps, R chars/s while training, validation ...".
run charlm_speed_loom "$BUILD/apps/charlm" train --data "$DATA" $MODEL \
  --steps "$STEPS" $QUIET_ON_THE_WAY --checkpoint "$CKPT"
rate=$(sed -n 's/.*steps, \([0-9.]*\) chars\/s while training.*/\1/p' \
  "$RESULTS/charlm_speed_loom.err" | tail -n 1)
echo "@charlm loom ${rate:-nan} ${rate:-nan} $(peak_rss charlm_speed_loom)" \
  >"$RESULTS/charlm_at.txt"
best_threads=2
if [ -z "${NO_TORCH:-}" ]; then
  best=0
  for t in 2 1; do
    run "charlm_speed_torch$t" "$PYTHON" "$ROOT/bench/charlm_torch.py" \
      --threads "$t" --steps "$STEPS"
    line=$(grep '^@charlm' "$RESULTS/charlm_speed_torch$t.txt" || true)
    # charlm_torch.py's own RSS figure is replaced by time -v's, as loom's.
    echo "$line" | awk -v rss="$(peak_rss "charlm_speed_torch$t")" \
      'NF == 5 { print $1, $2, $3, $4, rss }' >>"$RESULTS/charlm_at.txt"
    r=$(echo "$line" | awk '{ print $3 }')
    if awk -v r="${r:-0}" -v b="$best" 'BEGIN { exit !(r > b) }'; then
      best=$r
      best_threads=$t
    fi
  done
fi

# Validation every 200 steps (a few seconds each) counts against the budget.
VALIDATING="--eval-every 200 --save-every 1000000000 --plot="
if [ -n "$QUALITY" ]; then
  run charlm_quality_loom "$BUILD/apps/charlm" train --data "$DATA" $MODEL \
    --minutes "$MINUTES" $VALIDATING --checkpoint "$CKPT"
  if [ -z "${NO_TORCH:-}" ]; then
    run charlm_quality_torch "$PYTHON" "$ROOT/bench/charlm_quality_torch.py" \
      --data "$DATA" --minutes "$MINUTES" --threads "$best_threads"
  fi
  run charlm_quality_transformer "$BUILD/apps/charlm" train --data "$DATA" \
    --model transformer --hidden 256 --layers 4 --heads 8 --ff 1024 \
    --seq 100 --batch 32 --lr "$TF_LR" --minutes "$MINUTES" \
    $VALIDATING --checkpoint "$RESULTS/charlm-transformer.ckpt"
  # "step N: validation V nats/char" lines are charlm's evaluations, the
  # last one at the end; "best validation B nats/char (...) at step S" is
  # on its "done:" line; the parameter count is on its "model:" line.
  for m in loom transformer; do
    f=$RESULTS/charlm_quality_$m.err
    tr '\r' '\n' <"$f" | awk -v m="$m" '
      /^model:/ { for (i = 1; i < NF; i++) if ($(i + 1) == "parameters;")
                    params = $i }
      /^step [0-9]+: validation .* nats\/char/ { step = $2; sub(":", "", step)
                                               last = $4 }
      /chars\/s while training/ {
        for (i = 1; i < NF; i++) {
          if ($(i + 1) == "chars/s") rate = $i
          if ($i == "best" && $(i + 1) == "validation") best = $(i + 2)
          if ($i == "at" && $(i + 1) == "step") bstep = $(i + 2)
        }
        sub(",", "", bstep)
      }
      END { printf "@quality %s %s %s %s %s %s %s\n", m, best, step, rate,
                   params, last, bstep }'
  done >>"$RESULTS/charlm_at.txt"
  if [ -z "${NO_TORCH:-}" ]; then
    # "RESULT minutes=M steps=N chars/s=R val_loss_nats=V ..."
    awk '$1 == "RESULT" {
           for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
           printf "@quality torch %s %s %s 3322497 %s %s\n",
                  f["val_loss_nats"], f["steps"], f["chars/s"],
                  f["val_loss_nats"], f["steps"] }' \
      "$RESULTS/charlm_quality_torch.txt" >>"$RESULTS/charlm_at.txt"
  fi
fi

# The summary, also kept for bench/run_models.sh.
awk -v steps="$STEPS" -v minutes="$MINUTES" '
function verdict(ok) { return ok ? "met" : "MISSED" }
$1 == "@charlm" && $2 == "loom" { lr = $3; lm = $5 }
$1 == "@charlm" && $2 != "loom" {
  cfg[$2] = 1; rate[$2] = $3; med[$2] = $4; rss[$2] = $5
  if ($3 > best) { best = $3; bcfg = $2 }
}
$1 == "@quality" { q[$2] = $3; qs[$2] = $4; qr[$2] = $5; qp[$2] = $6
                   ql[$2] = $7; qb[$2] = $8 }
END {
  printf "charlm (tinyshakespeare, LSTM 2x512, embed 64, seq 100, batch " \
         "32): %d steps in a fresh process\n", steps
  print "  chars/s over all steps; peak RSS from /usr/bin/time -v;"
  print "  targets: loom chars/s > torch best, loom RSS <= 0.5x torch"
  printf "%-8s %10s %12s %10s\n", "run", "chars/s", "(median)", "RSS MiB"
  printf "%-8s %10.0f %12s %10.1f\n", "loom", lr, "-", lm
  for (c in cfg)
    printf "%-8s %10.0f %12.0f %10.1f\n", c, rate[c], med[c], rss[c]
  if (best > 0) {
    printf "  -> speed: loom / %s = %.2fx  %s\n", bcfg, lr / best,
           verdict(lr > best)
    printf "  -> memory: loom / %s = %.2fx  %s\n", bcfg, lm / rss[bcfg],
           verdict(lm <= 0.5 * rss[bcfg])
  }
  if ("loom" in q || "torch" in q || "transformer" in q) {
    printf "\nquality: validation loss (nats/char) reached in %s minutes " \
           "of training\n  (charlm validates every 200 steps: best is the " \
           "lowest, at step <at>; torch validates once, at the end)\n",
           minutes
    printf "%-12s %10s %8s %10s %8s %10s %10s\n", "model", "best", "at",
           "last", "steps", "chars/s", "params"
    split("loom torch transformer", order, " ")
    label["loom"] = "loom LSTM"
    label["torch"] = "torch LSTM"
    label["transformer"] = "loom transf."
    for (i = 1; i <= 3; i++) {
      m = order[i]
      if (m in q)
        printf "%-12s %10.4f %8d %10.4f %8d %10.0f %10d\n", label[m], q[m],
               qb[m], ql[m], qs[m], qr[m], qp[m]
    }
    if (("loom" in q) && ("torch" in q))
      printf "  -> loom LSTM vs torch LSTM: %+.4f nats  %s\n",
             q["loom"] - q["torch"], verdict(q["loom"] <= q["torch"])
    if (("loom" in q) && ("transformer" in q))
      printf "  -> transformer vs LSTM (both loom): %+.4f nats\n",
             q["transformer"] - q["loom"]
  }
}' "$RESULTS/charlm_at.txt" | tee "$RESULTS/charlm_summary.txt"
if [ -s "$RESULTS/warnings.txt" ]; then
  echo "WARNING: the machine was busy during part of this run (see above)."
fi
echo "raw outputs: $RESULTS"
