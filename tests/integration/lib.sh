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

# ---- a state directory and the real server ------------------------------------------------------
# The pieces every server test repeats: the database, `cardiotwin serve` on
# a port the system picks, tokens, and curl against the generated
# certificate. What a test checks stays in the test.

# ct ARGS...: the cardiotwin command on the test's database.
ct() { "$CT_BIN" --db "$db" "$@"; }

# ct_state: a fresh state directory $state holding the database $db; $cert
# is where serve writes its self-signed certificate on first start.
ct_state() {
  state="$ct_tmp/state"
  mkdir -p "$state"
  db="$state/ct.db"
  cert="$state/cardiotwin-cert.pem"
}

# Every server ct_serve_start started and ct_serve_stop has not stopped:
# killed at exit (SIGKILL: a server that hangs on SIGTERM must not hang the
# test's exit too; its output is not read any more).
ct_server_pids=()
ct_serve_kill_all() {
  local p
  for p in "${ct_server_pids[@]+"${ct_server_pids[@]}"}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  ct_server_pids=()
}
ct_cleanup_hooks+=("ct_serve_kill_all")

# ct_serve_start [--name NAME] [--wait TENTHS] SERVE-ARGS...: starts
# `cardiotwin --db $db serve --port 0 SERVE-ARGS` in the background, its
# stdout in $ct_tmp/NAME.out and stderr in $ct_tmp/NAME.err (NAME: srv;
# both also in $srv_out and $srv_err), and waits for its first line,
# "cardiotwin: listening on https://HOST:PORT/" (HOST: 127.0.0.1, or the
# address of a --bind in SERVE-ARGS, IPv6 in brackets), polling every
# tenth of a second at most TENTHS times (200). Sets $server_pid, $port and
# $origin (https://HOST:PORT). A server that exits or stays silent
# fails the test, which ends there: nothing after it could mean anything.
# Several servers may run at once; $server_pid is the last one's.
ct_serve_start() {
  local name=srv tries=200 line i a prev="" host=127.0.0.1
  while [ $# -gt 0 ]; do
    case $1 in
      --name) name=$2; shift 2 ;;
      --wait) tries=$2; shift 2 ;;
      *) break ;;
    esac
  done
  for a in "$@"; do
    [ "$prev" = --bind ] && host=$a
    prev=$a
  done
  [[ "$host" == *:* ]] && host="[$host]"
  srv_out="$ct_tmp/$name.out"
  srv_err="$ct_tmp/$name.err"
  # Emptied here, not by the child's redirection: the loop below could
  # otherwise read a previous server's line before the child opens the file.
  : >"$srv_out"
  : >"$srv_err"
  "$CT_BIN" --db "$db" serve --port 0 "$@" >"$srv_out" 2>"$srv_err" &
  server_pid=$!
  ct_server_pids+=("$server_pid")
  port=""
  origin=""
  for ((i = 0; i < tries; i++)); do
    line=$(head -n 1 "$srv_out" 2>/dev/null || true)
    if [[ "$line" == "cardiotwin: listening on https://$host:"* ]] && [[ "${line##*:}" =~ ^([0-9]+)/$ ]]; then
      port=${BASH_REMATCH[1]}
      origin="https://$host:$port"
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      fail "server $name exited before listening: $(cat "$srv_err")"
      finish
      exit 1
    fi
    sleep 0.1
  done
  fail "server $name: no 'listening' line within $tries tenths of a second (stdout: '$line'): $(cat "$srv_err")"
  finish
  exit 1
}

# ct_serve_stop [SIGNAL]: sends SIGNAL (TERM) to $server_pid and waits for
# it; sets $stop_rc (its exit code) and $stop_tenths (how long it took).
# One still running 30 s later is killed and fails the test.
ct_serve_stop() {
  local sig=${1:-TERM} t0 t1 waited=0 p
  [ -n "${server_pid:-}" ] || return 0
  t0=$(date +%s%N)
  kill "-$sig" "$server_pid" 2>/dev/null || true
  while kill -0 "$server_pid" 2>/dev/null && [ "$waited" -lt 300 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    fail "the server did not stop within 30 s of SIG$sig"
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  stop_rc=0
  wait "$server_pid" || stop_rc=$?
  t1=$(date +%s%N)
  stop_tenths=$(((t1 - t0) / 100000000))
  local left=()
  for p in "${ct_server_pids[@]+"${ct_server_pids[@]}"}"; do
    [ "$p" = "$server_pid" ] || left+=("$p")
  done
  ct_server_pids=("${left[@]+"${left[@]}"}")
  server_pid=""
}

# ct_token FILE ROLE NAME [token create options...]: a token made by
# `cardiotwin token create`, alone in FILE, which is never readable by
# others (umask 077 around its creation). A refusal ends the test.
ct_token() {
  local file=$1 role=$2 name=$3
  shift 3
  if ! (umask 077 && ct token create --role "$role" --name "$name" "$@" >"$file" 2>"$ct_tmp/token.err"); then
    fail "token create --role $role --name $name $*: $(cat "$ct_tmp/token.err")"
    finish
    exit 1
  fi
}

# ct_tok KEY ROLE NAME [token create options...]: the same, checked as one
# of the test's checks and kept in ${tok[KEY]} rather than a file.
declare -A tok=()
ct_tok() {
  local key=$1
  shift
  run ct token create --role "$1" --name "$2" "${@:3}"
  expect_eq "create token $2 ($1${3:+ $3 ${4:-}}): 0" 0 "$rc"
  tok[$key]=$out
}

# ct_fetch PATH [CURL-ARGS...]: one request to $origin$PATH, the server's
# certificate verified. Sets $code (the status curl saw, 000 if none),
# $crc (curl's exit code: not 0 when the transfer failed, even after a
# status line), $body (also in $ct_tmp/body) and $hdrs (the response
# headers, without CR).
ct_fetch() {
  local p=$1
  shift
  : >"$ct_tmp/body"
  : >"$ct_tmp/hdrs"
  crc=0
  code=$(curl -sS --cacert "$cert" -o "$ct_tmp/body" -D "$ct_tmp/hdrs" -w '%{http_code}' "$@" "$origin$p") || crc=$?
  body=$(cat "$ct_tmp/body")
  hdrs=$(tr -d '\r' <"$ct_tmp/hdrs")
}

# ct_call TOKEN METHOD PATH [BODY-FILE [CONTENT-TYPE]]: ct_fetch as a FHIR
# client does it (TOKEN as bearer, none if empty; the body with its
# Content-Type, application/fhir+json unless given). $code is
# "curl-failed" when the transfer failed.
ct_call() {
  local t=$1 m=$2 p=$3 f=${4:-} ctype=${5:-application/fhir+json}
  local args=(-H 'Expect:')
  [ -n "$t" ] && args+=(-H "Authorization: Bearer $t")
  if [ "$m" = HEAD ]; then args+=(-I); else args+=(-X "$m"); fi
  [ -n "$f" ] && args+=(-H "Content-Type: $ctype" --data-binary @"$f")
  ct_fetch "$p" "${args[@]}"
  [ "$crc" -eq 0 ] || code="curl-failed"
}

# header NAME: the value of the last response's header NAME (the last one
# if it came twice), any case.
header() { printf '%s\n' "$hdrs" | sed -n "s/^$1: //Ip" | tail -n 1; }
# jget EXPR: a Python expression on b, the last response's JSON body.
jget() { python3 -c "import json,sys; b=json.load(open('$ct_tmp/body')); print($1)"; }
# py SCRIPT: a Python script given the last response's body file as argv[1].
py() { python3 -c "$1" "$ct_tmp/body"; }
