#!/bin/sh
# examples/ptb_lm on the first 10,000 words of PTB, a small model for two
# epochs: its output must have the documented columns, the validation
# perplexity must fall well below the vocabulary's 10,000 (what a uniform
# guess scores) and from the first epoch to the second, the plot must be
# written, a run stopped after one epoch and resumed must give the same
# second epoch, and bad options must fail with status 2. Skips (77) without
# the data. Usage: run_ptb_example.sh PTB_LM DATA_DIR PNG
set -u
exe=$1 data=$2 png=$3
ckpt=${png%.png}.ckpt
[ -f "$data/ptb.valid.txt" ] || { echo "no PTB in $data: skipped"; exit 77; }
rm -f "$png" "$ckpt"
run() { "$exe" --data "$data" --limit 10000 --hidden 32 --steps 10 \
  --threads 1 --quiet "$@"; }
out=$(run --epochs 2 --plot "$png") || { echo "ptb_lm failed"; exit 1; }
echo "$out"
echo "$out" | awk '
  /^[0-9]/ { n++; valid[n] = $4; if (NF != 6) bad = 1 }
  END {
    if (bad || n != 2) { print "expected 2 rows of 6 columns"; exit 1 }
    if (!(valid[2] < 2000)) { print "validation perplexity", valid[2]; exit 1 }
    if (!(valid[2] < valid[1])) { print "no progress"; exit 1 }
  }' || exit 1
[ -s "$png" ] || { echo "no plot written"; exit 1; }
# stopped after one epoch, resumed for the second: the same numbers
run --epochs 1 --checkpoint "$ckpt" >/dev/null || { echo "epoch 1"; exit 1; }
resumed=$(run --epochs 2 --checkpoint "$ckpt" --resume) ||
  { echo "resume failed"; exit 1; }
want=$(echo "$out" | awk '/^2\.00 / { print $2, $3, $4, $5 }')
got=$(echo "$resumed" | awk '/^2\.00 / { print $2, $3, $4, $5 }')
[ -n "$want" ] && [ "$want" = "$got" ] ||
  { echo "resumed epoch 2: '$got', straight: '$want'"; exit 1; }
# a checkpoint of other settings is refused
run --epochs 2 --lr 0.5 --checkpoint "$ckpt" --resume >/dev/null 2>&1 &&
  { echo "resumed with another learning rate"; exit 1; }
rm -f "$ckpt"
for bad in "--hidden 0" "--dropout 1" "--config large" "--lr nan" \
  "--minutes -1" "--limit 1" "--resume"; do
  # shellcheck disable=SC2086
  "$exe" --data "$data" $bad >/dev/null 2>&1
  [ $? -eq 2 ] || { echo "$bad: expected exit status 2"; exit 1; }
done
echo "ok"
