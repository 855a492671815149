# Shell helpers shared by the benchmark scripts (sourced, not run). run()
# expects RESULTS (a folder) to be set.

# w2v_corpus DATA OUT: the word2vec benchmarks' text, PTB (train, valid,
# test) + the Gutenberg books + the Brown genres from DATA, lowercased,
# one sentence per line (~3.6M tokens).
w2v_corpus() {
  {
    cat "$1/ptb/ptb.train.part1.txt" "$1/ptb/ptb.train.part2.txt" \
      "$1/ptb/ptb.valid.txt" "$1/ptb/ptb.test.txt"
    for f in "$1"/gutenberg/*.txt; do cat "$f"; done
    for f in "$1"/brown/brown_*.txt; do cat "$f"; done
  } | tr 'A-Z' 'a-z' >"$2"
}

busy() { # CPU time the machine has used or lost to its hypervisor (steal)
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# run NAME COMMAND...: runs the command, shows its output and keeps it in
# $RESULTS/NAME.txt, with /usr/bin/time -v's report in $RESULTS/NAME.time
# (its peak RSS is what the charlm figures use). Lines starting with "@"
# are for the summaries and are not shown.
run() {
  name=$1
  shift
  echo "=== $name: $*"
  start=$(date +%s)
  before=$(busy)
  /usr/bin/time -v -o "$RESULTS/$name.time" "$@" 2>"$RESULTS/$name.err" |
    tee "$RESULTS/$name.txt" | grep -v '^@' || true
  after=$(busy)
  # Progress lines rewrite themselves with \r: show only the last state.
  tr '\r' '\n' <"$RESULTS/$name.err" | grep -v '^ *$' | tail -n 4
  echo "($(($(date +%s) - start)) s)"
  # NO_BUSY_CHECK: runs at the same time as another, checked together
  [ -n "${NO_BUSY_CHECK:-}" ] ||
    busy_check "$before" "$after" "$name" | tee -a "$RESULTS/warnings.txt"
}

# busy_check BEFORE AFTER NAME...: a warning when, between two readings of
# busy, CPU time went to other processes than the runs NAME... (or was
# lost to a hypervisor's steal). Both cores are in use, so that time skews
# the figures: say so past a CPU-second.
busy_check() {
  bc_before=$1 bc_after=$2
  shift 2
  for bc_name in "$@"; do cat "$RESULTS/$bc_name.time"; done |
    awk -v b="$bc_before" -v a="$bc_after" -v hz="$(getconf CLK_TCK)" \
      '/User time/ { u += $NF } /System time/ { s += $NF }
       END { other = (a - b) / hz - u - s
         if (other > 1) printf "WARNING: other processes or steal took " \
           "%.1f CPU-s during this run; its figures may be off\n", other }'
}

# peak_rss NAME: the peak RSS in MiB of the last `run NAME`.
peak_rss() {
  awk '/Maximum resident set size/ { printf "%.1f\n", $NF / 1024 }' \
    "$RESULTS/$1.time"
}

# header: the date and the machine, for the top of a report.
header() {
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores:" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');" \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
}
