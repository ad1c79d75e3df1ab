#!/usr/bin/env bash
# Runs the meson test suite in build dir $1 (ASan+UBSan build) and, when a
# second build dir $2 is given (clang + libFuzzer), the short fuzz runs of its
# "fuzz" suite. Prints one closing line, "tests: N passed, N failed, N
# skipped", counted from meson's test logs (each Criterion test counts once),
# after one "failed: SUITE: TEST" line per failure, so that the tail of a CI
# log names what broke.
set -uo pipefail
build=${1:?usage: run-tests.sh BUILD_DIR [FUZZ_BUILD_DIR]}
fuzz=${2:-}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

meson test -C "$build" --print-errorlogs --num-processes 2 --no-suite fuzz
rc=$?
logs=("$build/meson-logs/testlog.json")
if [ -n "$fuzz" ]; then
  meson test -C "$fuzz" --print-errorlogs --num-processes 2 --suite fuzz
  frc=$?
  # meson exits 125 when a build dir has no test in the suite yet.
  if [ $frc -ne 0 ] && [ $frc -ne 125 ]; then rc=$frc; fi
  [ -f "$fuzz/meson-logs/testlog.json" ] && logs+=("$fuzz/meson-logs/testlog.json")
fi

python3 - "${logs[@]}" <<'PY'
# Count individual Criterion tests from each executable's synthesis line;
# a test program without one (a script, a fuzz run) counts as one test.
import json, re, sys
passed = failed = skipped = 0
failures = []  # "suite-name: test" lines, printed after the count
fail_line = re.compile(r"^\[FAIL\] (\S+?):? ", re.M)
syn = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        m = syn.search((r.get("stderr") or "") + (r.get("stdout") or ""))
        if r["result"] == "SKIP":
            skipped += 1
        elif m:
            tested, ok, bad, crash = map(int, m.groups())
            passed += ok
            failed += bad + crash
            skipped += max(tested - ok - bad - crash, 0)
            if r["result"] not in ("OK", "EXPECTEDFAIL") and bad + crash == 0:
                failed += 1  # failed outside any test (sanitizer, timeout)
                failures.append(f"{r['name']}: {r['result']} outside any test")
            out = (r.get("stderr") or "") + (r.get("stdout") or "")
            failures += [f"{r['name']}: {t}" for t in fail_line.findall(out)]
        elif r["result"] in ("OK", "EXPECTEDFAIL"):
            passed += 1
        else:
            failed += 1
            failures.append(f"{r['name']}: {r['result']}")
for f in failures:
    print(f"failed: {f}")
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
