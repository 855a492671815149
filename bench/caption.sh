#!/bin/sh
# apps/caption's benchmarks, two parts (both without arguments):
#
# shapes: train on the program's own scenes (its defaults: 8,000 training
#   images of one to three coloured shapes at 64x64 pixels, a quarter of
#   the combinations of several shapes never shown in training) for
#   SHAPES_MINUTES (data and final scores included) with a small attention
#   model (4 blocks of 16/32/64/64 channels, attention over their 4x4 map
#   whose cells carry their x and y, chosen by the state that has read the
#   word before, embeddings 64, LSTM 128, no dropout, Adam 3e-3 on a cosine
#   over the minutes, steps of 16 images with all their captions: the
#   image pooled into one vector loses where each shape is, and a CNN of 3
#   blocks sees too little of the picture to tell one shape above
#   another; README says what each choice brought), then caption
#   the 500 held-out test images (half of them unseen combinations)
#   greedily and with beam 3. Target: exact match (the caption is one of
#   the image's references) >= 95% both ways.
#
# flickr: the Flickr8k 1,000-image subset against the PyTorch baseline
#   (../shared/peers/torch_caption_quality.py) with the same model (4
#   blocks conv3x3-batchnorm-relu-maxpool of 32/64/128/256 channels on
#   64x64 images, global average pooling, a linear map to 256, the image as
#   the LSTM's first input step, embeddings 256, LSTM 512, dropout 0.5), the
#   same data (alnum tokens, words seen 3 times, per-channel normalisation,
#   random flips, all 5 captions of the 753 training images) and the same
#   training (Adam 1e-3 constant, clipping 5, batches of 64 pairs) for
#   MINUTES of wall clock each; scored on the 125 test images against all 5
#   references (NLTK's corpus BLEU, no smoothing): loom greedy and beam 3,
#   PyTorch greedy, and the image-blind controls (the caption of an
#   all-average image; the single training caption that scores best for
#   every image).
#   With PAIRED=1 both run at the same time, PyTorch on core 0 and loom on
#   core 1 (taskset), one thread each, so that both see the same machine;
#   then throughput probes run one at a time on the whole machine for
#   PROBE_MINUTES each (PyTorch at 1 and 2 threads, loom at 2): images/s
#   against PyTorch's better thread count. Without PAIRED: the probes of
#   PyTorch first, then PyTorch at its better thread count for MINUTES,
#   then loom on both cores for MINUTES; images/s from those two runs.
#   Targets (issue 15): loom's BLEU-4 above PyTorch's and at least 2 points
#   above the best single caption's, images/s >= 1.5x PyTorch's, peak RSS
#   <= 0.5x.
#
# steps: the training step's CPU time on one core, a measure that survives a
#   busy machine: loom's `caption train` with the same flags for 4 and for
#   4 + STEPS steps, the difference of their user + system CPU time (so
#   that loading, the final scoring and the first steps' warm-up cancel),
#   and bench/caption_torch.py's mean over STEPS steps of the baseline's
#   training step after 3 warm-up steps (process CPU time); both pinned to
#   core CORE with one thread, alternated REPS times. Not part of the
#   default run.
#
# Usage: sh bench/caption.sh [shapes] [flickr] [steps]
#   BUILD=dir  RESULTS=dir  PYTHON=exe  DATA=dir (../shared/data/flickr8k_1k)
#   PEER=file (../shared/peers/torch_caption_quality.py)  MINUTES=m (15)
#   PAIRED=1  PROBE_MINUTES=m (2)  SHAPES_MINUTES=m (5)
#   LOOM_RECIPE="flags" (loom train flags after the baseline's, e.g.
#   "--attention 128 --captions-per-image 5 --schedule cosine")
#   STEPS=n (20)  REPS=n (2)  CORE=n (0)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
DATA=${DATA:-$ROOT/../shared/data/flickr8k_1k}
PEER=${PEER:-$ROOT/../shared/peers/torch_caption_quality.py}
MINUTES=${MINUTES:-15}
PROBE_MINUTES=${PROBE_MINUTES:-2}
SHAPES_MINUTES=${SHAPES_MINUTES:-5}
PAIRED=${PAIRED:-}
LOOM_RECIPE=${LOOM_RECIPE:-}
RESULTS=${RESULTS:-$(mktemp -d /tmp/loom-caption.XXXXXX)}
STEPS=${STEPS:-20}
REPS=${REPS:-2}
CORE=${CORE:-0}
SHAPES=
FLICKR=
STEP_TIMES=
for arg in "$@"; do
  case $arg in
  shapes) SHAPES=1 ;;
  flickr) FLICKR=1 ;;
  steps) STEP_TIMES=1 ;;
  *) echo "usage: sh bench/caption.sh [shapes] [flickr] [steps]" >&2; exit 2 ;;
  esac
done
[ -n "$SHAPES$FLICKR$STEP_TIMES" ] || { SHAPES=1; FLICKR=1; }
if [ -n "$FLICKR$STEP_TIMES" ]; then
  for f in captions.txt images.tsv images_64x64_rgb_chw.part0.u8 \
    images_64x64_rgb_chw.part1.u8 images_64x64_rgb_chw.part2.u8 \
    images_64x64_rgb_chw.part3.u8; do
    [ -f "$DATA/$f" ] || {
      echo "caption.sh: no $DATA/$f: the Flickr8k 1k subset is missing" \
        "(set DATA=, or run 'sh bench/caption.sh shapes')" >&2
      exit 1
    }
  done
  [ -f "$PEER" ] || {
    echo "caption.sh: no $PEER: the PyTorch baseline is missing (set PEER=)" >&2
    exit 1
  }
  "$PYTHON" -c 'import torch, nltk' 2>/dev/null || {
    echo "caption.sh: $PYTHON cannot import torch and nltk, which the" \
      "baseline needs (set PYTHON=)" >&2
    exit 1
  }
fi
mkdir -p "$RESULTS"
. "$ROOT/bench/common.sh"
ninja -C "$BUILD" apps/caption >"$RESULTS/build.txt" 2>&1 ||
  { cat "$RESULTS/build.txt"; exit 1; }
C=$BUILD/apps/caption
export OMP_WAIT_POLICY=passive
header | tee "$RESULTS/header.txt"
: >"$RESULTS/at.txt"

# scores FILE PATTERN: "B1 B2 B3 B4 EXACT" of the first scores line of the
# program's output that matches PATTERN (EXACT: nan without exact match).
scores() {
  awk -v p="$2" 'index($0, p) == 1 && !done {
      e = "nan"
      for (i = 1; i < NF; i++) {
        if ($i ~ /^BLEU-[1-4]$/) b[substr($i, 6)] = $(i + 1)
        if ($i == "exact" && $(i + 1) == "match") e = $(i + 2)
      }
      sub(/%/, "", e)
      print b[1], b[2], b[3], b[4], e
      done = 1 }
    END { if (!done) print "nan nan nan nan nan" }' "$1"
}

# rate NAME: the (image, caption) pairs/s loom's training run NAME reported.
rate() {
  r=$(tr '\r' '\n' <"$RESULTS/$1.err" |
    sed -n 's/.* \([0-9.]*\) pairs\/s while training.*/\1/p' | tail -n 1)
  echo "${r:-nan}"
}

# evaluate NAME OUT FLAGS...: caption eval of run NAME's checkpoint, the
# scores into OUT (the summary shows nan for scores that failed).
evaluate() {
  name=$1 out=$2
  shift 2
  "$C" eval --checkpoint "$RESULTS/$name.ckpt" "$@" >"$out" \
    2>"$out.err" || { cat "$out.err"; : >"$out"; }
}

# ---- generated shapes ----
if [ -n "$SHAPES" ]; then
  run shapes "$C" train --minutes "$SHAPES_MINUTES" \
    --cnn 16,32,64,64 --embed 64 --hidden 128 --attention 64 --lr 3e-3 \
    --schedule cosine --captions-per-image 4 --dropout 0 \
    --checkpoint "$RESULTS/shapes.ckpt" \
    --plot "$RESULTS/shapes.png" --sheet "$RESULTS/shapes-sheet.png"
  echo "@shapes beam1 $(scores "$RESULTS/shapes.txt" "test:")" \
    "$(rate shapes)" >>"$RESULTS/at.txt"
  evaluate shapes "$RESULTS/shapes.beam3.txt" --beam 3
  echo "@shapes beam3 $(scores "$RESULTS/shapes.beam3.txt" "test")" \
    "$(rate shapes)" >>"$RESULTS/at.txt"
fi

# ---- Flickr8k ----
# The baseline's model, data and training (see the top).
LIKE_TORCH="--data $DATA --image-size 64 --cnn 32,64,128,256 --embed 256
  --hidden 512 --image first --dropout 0.5 --tokens alnum --min-count 3
  --max-words 40 --batch 64 --lr 1e-3 --schedule constant --clip 5 --flip
  --shift 0 --max-len 40"

# torch_run NAME THREADS MINUTES [taskset -c N]: a run of the baseline.
torch_run() {
  name=$1 threads=$2 minutes=$3
  shift 3
  run "$name" "$@" "$PYTHON" "$PEER" --data "$DATA" --minutes "$minutes" \
    --threads "$threads" --json "$RESULTS/$name.json"
}

# torch_figures NAME: "B1 B2 B4 images/s control-B1 control-B4" of a run.
torch_figures() {
  "$PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
f, b = j["final"], j["blind"]
print(f["bleu1"], f["bleu2"], f["bleu4"], j["pairs_per_s"], b["bleu1"],
      b["bleu4"])' "$RESULTS/$1.json"
}

# loom_run NAME THREADS MINUTES [taskset -c N]: a training run (it writes the
# test split's greedy scores at the end).
loom_run() {
  name=$1 threads=$2 minutes=$3
  shift 3
  # shellcheck disable=SC2086 # lists of words
  run "$name" "$@" "$C" train $LIKE_TORCH $LOOM_RECIPE --threads "$threads" \
    --minutes "$minutes" --checkpoint "$RESULTS/$name.ckpt" \
    --plot "$RESULTS/$name.png" --sheet "$RESULTS/$name-sheet.png"
}

# loom_scores NAME: beam 1 with the controls and beam 3 of a loom run.
loom_scores() {
  evaluate "$1" "$RESULTS/$1.beam1.txt" --beam 1 --controls
  evaluate "$1" "$RESULTS/$1.beam3.txt" --beam 3
  r=$(rate "$1")
  m=$(peak_rss "$1")
  for beam in 1 3; do
    echo "@loom beam$beam $(scores "$RESULTS/$1.beam$beam.txt" test) $r $m" \
      >>"$RESULTS/at.txt"
  done
  echo "@control loom_average" \
    "$(scores "$RESULTS/$1.beam1.txt" "control, the average")" \
    >>"$RESULTS/at.txt"
  echo "@control best_single" \
    "$(scores "$RESULTS/$1.beam1.txt" "control, the best")" \
    >>"$RESULTS/at.txt"
}

# probe NAME: a throughput probe's images/s into the summary.
probe() {
  case $1 in
  torch*) r=$(torch_figures "$1" | cut -d' ' -f4) ;;
  *) r=$(rate "$1") ;;
  esac
  echo "@probe $1 $r" >>"$RESULTS/at.txt"
}

if [ -n "$FLICKR" ] && [ -n "$PAIRED" ]; then
  echo "=== paired: PyTorch on core 0 and loom on core 1 at the same time," \
    "$MINUTES minutes"
  before=$(busy)
  (
    NO_BUSY_CHECK=1
    torch_run torch 1 "$MINUTES" taskset -c 0
  ) &
  t=$!
  (
    NO_BUSY_CHECK=1
    loom_run loom 1 "$MINUTES" taskset -c 1
  ) &
  l=$!
  wait $t $l
  busy_check "$before" "$(busy)" torch loom | tee -a "$RESULTS/warnings.txt"
  echo "@torch torch $(torch_figures torch) $(peak_rss torch) 1" \
    >>"$RESULTS/at.txt"
  loom_scores loom
  # throughput on the whole machine, one program at a time
  torch_run torch_probe1 1 "$PROBE_MINUTES"
  torch_run torch_probe2 2 "$PROBE_MINUTES"
  loom_run loom_probe2 2 "$PROBE_MINUTES"
  for p in torch_probe1 torch_probe2 loom_probe2; do probe $p; done
elif [ -n "$FLICKR" ]; then
  torch_run torch_probe1 1 "$PROBE_MINUTES"
  torch_run torch_probe2 2 "$PROBE_MINUTES"
  probe torch_probe1
  probe torch_probe2
  best=$(awk '$1 == "@probe" { r[$2] = $3 }
    END { print (r["torch_probe2"] > r["torch_probe1"] ? 2 : 1) }' \
    "$RESULTS/at.txt")
  torch_run torch "$best" "$MINUTES"
  echo "@torch torch $(torch_figures torch) $(peak_rss torch) $best" \
    >>"$RESULTS/at.txt"
  loom_run loom 2 "$MINUTES"
  loom_scores loom
fi

# ---- CPU time per training step, one core ----
# cpu_seconds STEPS: user + system seconds of a pinned loom run of STEPS
# steps with the baseline's flags.
cpu_seconds() {
  # shellcheck disable=SC2086 # LIKE_TORCH is a list of words
  /usr/bin/time -f "%U %S" -o "$RESULTS/steps.time" taskset -c "$CORE" \
    "$C" train $LIKE_TORCH --threads 1 --steps "$1" --eval-every 0 \
    --checkpoint "$RESULTS/steps.ckpt" --plot '' --sheet '' --quiet \
    >/dev/null 2>"$RESULTS/steps.err" || { cat "$RESULTS/steps.err"; exit 1; }
  awk '{ print $1 + $2 }' "$RESULTS/steps.time"
}
if [ -n "$STEP_TIMES" ]; then
  echo "=== CPU time per training step on core $CORE, one thread" \
    "($STEPS steps, $REPS rounds)" | tee "$RESULTS/steps.txt"
  for r in $(seq "$REPS"); do
    a=$(cpu_seconds 4)
    b=$(cpu_seconds $((4 + STEPS)))
    loom=$(awk -v a="$a" -v b="$b" -v n="$STEPS" \
      'BEGIN { printf "%.1f", (b - a) * 1000 / n }')
    torch=$(cd "$ROOT/bench" && taskset -c "$CORE" "$PYTHON" caption_torch.py \
      --data "$DATA" --threads 1 --steps "$STEPS" |
      sed -n 's/.* \([0-9.]*\) CPU ms\/step.*/\1/p')
    echo "round $r: loom $loom ms/step, PyTorch $torch ms/step," \
      "ratio $(awk -v l="$loom" -v t="$torch" 'BEGIN { printf "%.2f", t / l }')x" |
      tee -a "$RESULTS/steps.txt"
  done
fi

awk -v minutes="$MINUTES" -v paired="$PAIRED" \
  -v shapes_minutes="$SHAPES_MINUTES" '
function verdict(ok) { return ok ? "met" : "MISSED" }
function row(what, b1, b2, b3, b4, r, m) {
  printf "%-34s %6s %6s %6s %6s %9s %8s\n", what, b1, b2, b3, b4, r, m
}
function f(x, d) { return x == "" || x == "nan" ? "-" : sprintf("%." d "f", x) }
$1 == "@shapes" { s[$2] = $7; sn[$2] = $0; sr = $8 }
$1 == "@torch" { tb1 = $3; tb2 = $4; tb4 = $5; tr = $6; tc1 = $7; tc4 = $8
                 tm = $9; tt = $10 }
$1 == "@loom" { k = $2; lb1[k] = $3; lb2[k] = $4; lb3[k] = $5; lb4[k] = $6
                lr = $8; lm = $9 }
$1 == "@control" { k = $2; cb1[k] = $3; cb2[k] = $4; cb3[k] = $5; cb4[k] = $6 }
$1 == "@probe" { probe[$2] = $3 }
END {
  if ("beam1" in s) {
    printf "Generated shapes, %s minutes of training, 500 held-out " \
           "images: exact match\n", shapes_minutes
    printf "  greedy %.2f%%  beam 3 %.2f%%  (%.0f pairs/s)  %s\n",
           s["beam1"], s["beam3"], sr,
           verdict(s["beam1"] >= 95 && s["beam3"] >= 95)
  }
  if (tb4 == "" && !("beam1" in lb4))
    exit
  printf "Flickr8k 1k subset, test split (125 images, 5 references), " \
         "%s minutes of training each%s\n", minutes,
         paired ? ", at the same time, 1 thread and 1 core each" : ""
  row("run", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "images/s", "RSS MiB")
  if (tb4 != "")
    row("PyTorch, " tt " thread(s), greedy", f(tb1, 2), f(tb2, 2), "-",
        f(tb4, 2), f(tr, 1), f(tm, 1))
  for (b = 1; b <= 3; b += 2)
    if (("beam" b) in lb4)
      row("loom, " (paired ? 1 : 2) " thread(s), beam " b, f(lb1["beam" b], 2),
          f(lb2["beam" b], 2), f(lb3["beam" b], 2), f(lb4["beam" b], 2),
          f(lr, 1), f(lm, 1))
  if (tb4 != "")
    row("control: average image (PyTorch)", f(tc1, 2), "-", "-", f(tc4, 2),
        "", "")
  k = "loom_average"
  if (k in cb4)
    row("control: average image (loom)", f(cb1[k], 2), f(cb2[k], 2),
        f(cb3[k], 2), f(cb4[k], 2), "", "")
  k = "best_single"
  if (k in cb4)
    row("control: best training caption", f(cb1[k], 2), f(cb2[k], 2),
        f(cb3[k], 2), f(cb4[k], 2), "", "")
  n = 0
  for (p in probe) {
    printf "%s probe %s: %s images/s", n++ ? "," : "  throughput", p,
           f(probe[p], 1)
  }
  if (n) printf "\n"
  if (tb4 == "" || !("beam1" in lb4))
    exit
  printf "  -> BLEU-4 (greedy both): loom %.2f vs PyTorch %.2f  %s\n",
         lb4["beam1"], tb4, verdict(lb4["beam1"] > tb4)
  printf "  -> BLEU-4 above the best training caption: %.2f - %.2f = " \
         "%.2f  %s\n", lb4["beam1"], cb4["best_single"],
         lb4["beam1"] - cb4["best_single"],
         verdict(lb4["beam1"] - cb4["best_single"] >= 2)
  if (paired) {
    t = probe["torch_probe1"] > probe["torch_probe2"] ? \
        probe["torch_probe1"] : probe["torch_probe2"]
    printf "  -> images/s, loom at 2 threads / PyTorch at its best: " \
           "%.2fx  %s\n", probe["loom_probe2"] / t,
           verdict(probe["loom_probe2"] >= 1.5 * t)
    printf "     (paired, 1 thread each: %.2fx)\n", lr / tr
  } else {
    printf "  -> images/s: loom / PyTorch = %.2fx  %s\n", lr / tr,
           verdict(lr >= 1.5 * tr)
  }
  printf "  -> peak RSS: loom / PyTorch = %.2fx  %s\n", lm / tm,
         verdict(lm <= 0.5 * tm)
}' "$RESULTS/at.txt" | tee "$RESULTS/summary.txt"
if [ -s "$RESULTS/warnings.txt" ]; then
  echo "WARNING: the machine was busy during part of this run (see above)."
fi
echo "raw outputs: $RESULTS"
