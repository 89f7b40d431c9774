#!/usr/bin/env bash
# Runs every fuzz target (or the TARGETs named) for SECONDS each (default 300), one after
# another, and prints the execution count each one reached. Usage: run-all.sh [SECONDS [TARGET...]] Corpora grow under fuzz/corpus/ (not committed); the
# committed seeds are in fuzz/seeds/. Needs cargo-fuzz (`cargo install cargo-fuzz`).
set -u
cd "$(dirname "$0")"
seconds=${1:-300}
shift || true
targets=${*:-$(cargo fuzz list)}
for target in $targets; do
  mkdir -p "corpus/$target"
  log="corpus/$target.log"
  cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
  status=$?
  runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "$target: exit $status, ${runs:-?} executions in ${seconds}s"
  if [ "$status" -ne 0 ]; then grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5; fi
done
