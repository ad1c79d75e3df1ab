#!/usr/bin/env bash
# Runs the libFuzzer targets in build dir $1 for $2 seconds each (one job),
# or only the targets named after that (e.g. `run-fuzz.sh build-fuzz 3600
# fuzz-stack`). New inputs go to $1/fuzz/corpus-NAME; the seed corpus
# fuzz/corpus/NAME and the dictionary fuzz/NAME.dict are used when present.
# Inputs up to 64 KiB: the stack targets need room for many packets.
# FUZZ_RUNS=N stops each target after N executions (whichever comes first).
# FUZZ_STACK_RUNS=N and FUZZ_STACK_SECONDS=S give fuzz-stack its own bounds
# (make fuzz: 10 M executions, at most 3 hours).
set -euo pipefail
build=${1:?usage: run-fuzz.sh BUILD_DIR SECONDS [TARGET...]}
secs=${2:-60}
shift 2 || shift $#
src=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$build"/fuzz/fuzz-*; do targets+=("$(basename "$f")"); done
fi
for name in "${targets[@]}"; do
  f="$build/fuzz/$name"
  [ -f "$f" ] && [ -x "$f" ] || { echo "no fuzz target $f" >&2; exit 2; }
  base=fuzz_${name#fuzz-}
  corpus="$build/fuzz/corpus-$name"
  mkdir -p "$corpus"
  t=$secs runs=${FUZZ_RUNS:-}
  if [ "$name" = fuzz-stack ]; then
    t=${FUZZ_STACK_SECONDS:-$t} runs=${FUZZ_STACK_RUNS:-$runs}
  fi
  args=(-max_total_time="$t" -max_len=65536 -print_final_stats=1)
  [ -n "$runs" ] && args+=(-runs="$runs")
  [ -f "$src/fuzz/$base.dict" ] && args+=(-dict="$src/fuzz/$base.dict")
  seeds=()
  [ -d "$src/fuzz/corpus/$base" ] && seeds+=("$src/fuzz/corpus/$base")
  echo "== $name: ${t}s${runs:+ or $runs executions}"
  "$f" "${args[@]}" "$corpus" "${seeds[@]}"
done
