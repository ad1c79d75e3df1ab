#!/usr/bin/env bash
# Runs every libFuzzer target in build dir $1 for $2 seconds each.
set -euo pipefail
build=${1:?usage: run-fuzz.sh BUILD_DIR SECONDS}
secs=${2:-60}
shopt -s nullglob
for f in "$build"/fuzz/fuzz-*; do
  [ -f "$f" ] && [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus="$build/fuzz/corpus-$name"
  mkdir -p "$corpus"
  echo "== $name: ${secs}s"
  "$f" -max_total_time="$secs" -print_final_stats=1 "$corpus"
done
