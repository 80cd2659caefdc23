#!/usr/bin/env bash
# Installs what is needed, builds cardiotwin twice (Debug, and Asan =
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test in both,
# then runs each libFuzzer harness for a bounded time (clang build).
#
#   scripts/test.sh                  everything
#   CT_FUZZ_SECONDS=0 scripts/test.sh   skip nothing but the fuzz runs' time (0 = build only)
#
# The MIT-BIH records are looked up in $CARDIOTWIN_MITDB (default:
# ../shared/data/mitdb beside the source tree).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -gt 4 ] && jobs=4
mitdb="${CARDIOTWIN_MITDB:-$here/../shared/data/mitdb}"
fuzz_seconds="${CT_FUZZ_SECONDS:-30}"
status=0

run_suite() {
  local type="$1" dir="$2" cc="${3:-cc}"
  echo "== $type build ($cc) =="
  CC="$cc" cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DCT_MITDB_DIR="$mitdb" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $type tests =="
  if ! ctest --test-dir "$dir" --output-on-failure -j"$jobs"; then
    status=1
  fi
}

run_suite Debug build/debug cc
run_suite Asan build/asan clang

echo "== fuzz harnesses (clang, libFuzzer, ${fuzz_seconds}s each) =="
CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DCT_FUZZ=ON -DCT_MITDB_DIR="$mitdb" >/dev/null
fuzzers=$(cd tests/fuzz 2>/dev/null && ls fuzz_*.c 2>/dev/null | sed 's/\.c$//' || true)
if [ -n "$fuzzers" ]; then
  # shellcheck disable=SC2086
  cmake --build build/fuzz -j"$jobs" --target $fuzzers
  for f in $fuzzers; do
    if [ "$fuzz_seconds" -gt 0 ]; then
      corpus=$(mktemp -d)
      [ -d "tests/fuzz/corpus/$f" ] && cp -r "tests/fuzz/corpus/$f/." "$corpus/"
      log="$here/build/fuzz/$f.log"
      if (cd build/fuzz && "./$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 \
             -print_final_stats=1 "$corpus" >"$log" 2>&1); then
        runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')
        echo "fuzz $f: no finding in ${fuzz_seconds}s, $runs executions"
      else
        echo "fuzz $f: FAILED, see $log"
        tail -n 40 "$log"
        status=1
      fi
      rm -rf "$corpus"
    fi
  done
fi

if [ "$status" -ne 0 ]; then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all suites passed"
