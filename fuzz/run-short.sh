#!/usr/bin/env bash
# The short run of one fuzz target that `make test` does (meson suite
# "fuzz"): 10 s from the seed corpus and dictionary, if the target has them,
# with a scratch corpus that is removed afterwards (the seeds stay as they
# are). Usage: run-short.sh TARGET_EXE SOURCE_FUZZ_DIR NAME
set -uo pipefail
exe=$1 dir=$2 name=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ss-fuzz-$name.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# libFuzzer exits 77 on a crash by default, which meson counts as a skip.
# -runs bounds the run by count, so that `make test` does the same work
# on a fast or a loaded machine (a time bound alone made the outcome
# depend on the load).
args=(-runs=1000 -max_total_time=10 -seed=1 -max_len=65536 -error_exitcode=1 -timeout_exitcode=1
      -artifact_prefix="$tmp/")
[ -f "$dir/$name.dict" ] && args+=(-dict="$dir/$name.dict")
seeds=()
[ -d "$dir/corpus/$name" ] && seeds+=("$dir/corpus/$name")
"$exe" "${args[@]}" "$tmp" "${seeds[@]}"
rc=$?
# Keep what a failure found, next to the build, for the report.
if [ $rc -ne 0 ]; then
  for a in "$tmp"/crash-* "$tmp"/leak-* "$tmp"/timeout-* "$tmp"/oom-*; do
    [ -f "$a" ] && cp "$a" . && echo "reproducer: $(pwd)/$(basename "$a")"
  done
fi
exit $rc
