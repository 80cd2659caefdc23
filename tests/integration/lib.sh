# Shared helpers for the integration tests, sourced by each
# tests/integration/test_*.sh (ctest runs those, not this file).
set -euo pipefail

: "${CT_BIN:?CT_BIN must name the cardiotwin binary}"
: "${CARDIOTWIN_MITDB:?CARDIOTWIN_MITDB must name the MIT-BIH folder}"

ct_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ct-it.XXXXXX")
ct_cleanup_hooks=()
ct_cleanup() {
  local h
  for h in "${ct_cleanup_hooks[@]+"${ct_cleanup_hooks[@]}"}"; do eval "$h" || true; done
  rm -rf "$ct_tmp"
}
trap ct_cleanup EXIT

ct_checks=0
ct_failures=0

# pass/fail bookkeeping: every check prints one line.
ok()   { ct_checks=$((ct_checks + 1)); echo "ok   $*"; }
fail() { ct_checks=$((ct_checks + 1)); ct_failures=$((ct_failures + 1)); echo "FAIL $*"; }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
  if [ "$2" == "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
# expect_match WHAT REGEX TEXT
expect_match() {
  # A here-string, not a pipe: with pipefail, grep -q leaving early would
  # make printf die of SIGPIPE on long texts and fail a check that matched.
  if grep -Eq -- "$2" <<<"$3"; then ok "$1"; else fail "$1: '$3' does not match /$2/"; fi
}

# Runs a command, capturing stdout, stderr and the exit code into
# $out, $err and $rc without letting set -e end the test.
run() {
  local o="$ct_tmp/.out" e="$ct_tmp/.err"
  set +e
  "$@" >"$o" 2>"$e"
  rc=$?
  set -e
  out=$(cat "$o")
  err=$(cat "$e")
}

finish() {
  echo "$((ct_checks - ct_failures)) passed, $ct_failures failed"
  [ "$ct_failures" -eq 0 ]
}
