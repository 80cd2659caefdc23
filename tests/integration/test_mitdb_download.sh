#!/usr/bin/env bash
# `cardiotwin mitdb download` end to end against ct_test_httpd, a local HTTP
# server serving $CARDIOTWIN_MITDB on 127.0.0.1 that fails, cuts and corrupts
# on request: plain download, skip when present, retries, resume within a run
# and across runs, restart when ranges are ignored, a checksum failure that
# leaves nothing under the final names, 404 without retries, usage errors.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${CT_TOOL_ct_test_httpd:?CT_TOOL_ct_test_httpd must name the test server}"

server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
ct_cleanup_hooks+=("stop_server")

# start_server NAME [server options]: a fresh server; sets $url and $log.
start_server() {
  stop_server
  local name=$1
  shift
  log="$ct_tmp/$name.log"
  : >"$log" # exists before the server's own redirection opens it
  "$CT_TOOL_ct_test_httpd" --lifetime 300 "$@" "${serve_dir:-$CARDIOTWIN_MITDB}" \
    >"$log" 2>"$ct_tmp/$name.err" &
  server_pid=$!
  local port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$log" | head -1 || true)
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    echo "FAIL test server did not start: $(cat "$ct_tmp/$name.err")"
    exit 1
  fi
  url="http://127.0.0.1:$port/"
}

# dl [options] RECORD...: the command under test, against the current server,
# with short pauses between retries, bounded in time.
dl() { run timeout 120 "$CT_BIN" mitdb download --base-url "$url" --backoff-ms 10 "$@"; }

# requests PATTERN: how many requests in the server log match.
requests() { grep -c -- "$1" "$log" || true; }

same_as_original() { # same_as_original DIR RECORD
  local f
  for f in hea dat atr; do
    cmp -s "$1/$2.$f" "$CARDIOTWIN_MITDB/$2.$f" || return 1
  done
}

# ---- help and usage -------------------------------------------------------------
run "$CT_BIN" mitdb --help
expect_eq "mitdb --help exits 0" 0 "$rc"
expect_match "mitdb --help lists download" '^  download ' "$out"
run "$CT_BIN" mitdb download --help
expect_eq "mitdb download --help exits 0" 0 "$rc"
for o in --base-url --dest --retries --backoff-ms --ca-file; do
  expect_match "download --help documents $o" "  $o " "$out"
done
run "$CT_BIN" mitdb
expect_eq "mitdb without subcommand is a usage error" 2 "$rc"
run "$CT_BIN" mitdb frobnicate
expect_eq "unknown subcommand is a usage error" 2 "$rc"

start_server usage
for bad in "../100" "100/x" "10 0" "" "100.hea" "$(printf 'a%.0s' $(seq 64))"; do
  dl --dest "$ct_tmp/usage" "$bad"
  expect_eq "record name '$bad' is a usage error" 2 "$rc"
done
expect_match "bad record name message" "is not a record name" "$err"
dl --dest "$ct_tmp/usage" 100 ../101
expect_eq "one bad name among good ones: usage error before any download" 2 "$rc"
dl --dest "$ct_tmp/usage"
expect_eq "no record is a usage error" 2 "$rc"
dl --dest "$ct_tmp/usage" --retries 21 100
expect_eq "--retries 21 is a usage error" 2 "$rc"
dl --dest "$ct_tmp/usage" --retries x 100
expect_eq "--retries x is a usage error" 2 "$rc"
run "$CT_BIN" mitdb download --base-url "file:///etc/" --dest "$ct_tmp/usage" 100
expect_eq "file:// base URL is a usage error" 2 "$rc"
expect_eq "usage errors made no request" 0 "$(requests '^GET')"
expect_eq "usage errors created nothing" "" "$(ls -A "$ct_tmp/usage" 2>/dev/null || true)"

# ---- plain download, then skip ---------------------------------------------------
start_server plain
d="$ct_tmp/plain"
dl --dest "$d" 100 101
expect_eq "download 100 101 exits 0" 0 "$rc"
expect_match "100 summary" \
  '^100: downloaded and verified: 3 files, [0-9]+ bytes, 2 signals of 650000 samples, 2274 annotations$' \
  "$(printf '%s\n' "$out" | grep '^100:')"
expect_match "101 summary" '^101: downloaded and verified: .*annotations$' "$(printf '%s\n' "$out" | grep '^101:')"
expect_eq "no stderr (no terminal, no retries)" "" "$err"
if same_as_original "$d" 100 && same_as_original "$d" 101; then ok "files equal the originals byte for byte"
else fail "downloaded files differ from the originals"; fi
expect_eq "dest holds exactly the six files" "100.atr 100.dat 100.hea 101.atr 101.dat 101.hea" \
  "$(cd "$d" && ls -A | tr '\n' ' ' | sed 's/ $//')"
expect_eq "six requests, none with a Range" 6 "$(requests 'range=- status=200')"

before=$(requests '^GET')
dl --dest "$d" 100 101
expect_eq "second run exits 0" 0 "$rc"
expect_eq "second run: both already present" \
  "100: already present, verified
101: already present, verified" "$out"
expect_eq "second run made no request" "$before" "$(requests '^GET')"

# A copy under the final name that does not verify is replaced.
printf '\x55' | dd of="$d/100.dat" bs=1 seek=975000 conv=notrunc status=none
dl --dest "$d" 100
expect_eq "damaged local copy: exits 0" 0 "$rc"
expect_match "damaged local copy: noted" 'record 100: the copy in .* does not verify.*checksum' "$err"
if same_as_original "$d" 100; then ok "damaged local copy replaced by a verified one"
else fail "damaged local copy not replaced"; fi

# Default destination: $CARDIOTWIN_MITDB, else ./mitdb.
run env CARDIOTWIN_MITDB="$ct_tmp/from-env" timeout 60 "$CT_BIN" mitdb download --base-url "$url" 101
expect_eq "default dest from CARDIOTWIN_MITDB" "0 yes" "$rc $(same_as_original "$ct_tmp/from-env" 101 && echo yes)"
mkdir -p "$ct_tmp/cwd"
(cd "$ct_tmp/cwd" && env -u CARDIOTWIN_MITDB timeout 60 "$CT_BIN" -q mitdb download --base-url "$url" 101) \
  >"$ct_tmp/cwd.out" 2>&1 && rc=0 || rc=$?
expect_eq "default dest ./mitdb" "0 yes" "$rc $(same_as_original "$ct_tmp/cwd/mitdb" 101 && echo yes)"
expect_eq "--quiet prints nothing on success" "" "$(cat "$ct_tmp/cwd.out")"

# ---- transient failures are retried ----------------------------------------------
start_server retry --fail-first 2
d="$ct_tmp/retry"
dl --dest "$d" 100
expect_eq "--fail-first 2: exits 0" 0 "$rc"
expect_eq "--fail-first 2: two 503 per file" 6 "$(requests 'status=503')"
expect_eq "--fail-first 2: each retry noted on stderr" 6 "$(printf '%s\n' "$err" | grep -c 'HTTP 503.*attempt [23] in [0-9]* ms')"
expect_match "--fail-first 2: summary counts retries" '^100: downloaded and verified: .*\(6 retries\)$' "$out"
if same_as_original "$d" 100; then ok "--fail-first 2: files equal the originals"; else fail "--fail-first 2: files differ"; fi

start_server retry-out --fail-first 2
d="$ct_tmp/retry-out"
dl --dest "$d" --retries 1 100
expect_eq "--retries 1 against 2 failures: exits 1" 1 "$rc"
expect_match "--retries 1: says it gave up" 'record 100: 100.hea: HTTP 503 .*gave up after 2 attempts' "$err"
expect_eq "--retries 1: exactly two requests" 2 "$(requests '^GET')"
expect_eq "--retries 1: nothing left in dest" "" "$(ls -A "$d")"

# ---- resume -------------------------------------------------------------------------
start_server cut --cut-after 100000
d="$ct_tmp/cut"
dl --dest "$d" 100
expect_eq "--cut-after: exits 0" 0 "$rc"
expect_eq "--cut-after: the first body was cut" 1 "$(requests 'GET /100.dat range=- status=200 body=100000 cut=yes')"
expect_eq "--cut-after: resumed with a Range from the cut" 1 \
  "$(requests 'GET /100.dat range=bytes=100000- status=206 body=1850000')"
expect_eq "--cut-after: 100.dat fetched in two requests" 2 "$(requests 'GET /100.dat')"
expect_match "--cut-after: summary says resumed" '\(1 retry, 1 resumed\)$' "$out"
if same_as_original "$d" 100; then ok "--cut-after: files equal the originals"; else fail "--cut-after: files differ"; fi

# Across runs: without retries the first run stops at the cut and keeps the
# .part file out of sight; the next run continues it.
start_server cut-runs --cut-after 100000
d="$ct_tmp/cut-runs"
dl --dest "$d" --retries 0 100
expect_eq "cut without retries: exits 1" 1 "$rc"
expect_match "cut without retries: message names record and file" \
  'record 100: 100.dat: .*connection closed after 100000 of 1950000 bytes' "$err"
expect_eq "cut without retries: nothing under final names" "" "$(cd "$d" && ls 100.* 2>/dev/null || true)"
expect_eq "cut without retries: the partial file is kept in staging" 100000 \
  "$(stat -c %s "$d/.partial-100/100.dat.part" 2>/dev/null || echo missing)"
dl --dest "$d" --retries 0 100
expect_eq "next run: exits 0" 0 "$rc"
expect_eq "next run: resumed at byte 100000" 1 "$(requests 'GET /100.dat range=bytes=100000- status=206')"
expect_eq "next run: the header was not fetched again" 1 "$(requests 'GET /100.hea')"
expect_eq "next run: staging folder gone" "" "$(ls -A "$d" | grep partial || true)"
if same_as_original "$d" 100; then ok "resumed across runs: files equal the originals"; else fail "resumed across runs: files differ"; fi

# A server that ignores Range: the client starts the file over.
start_server norange --cut-after 100000 --no-range
d="$ct_tmp/norange"
dl --dest "$d" 100
expect_eq "--no-range: exits 0" 0 "$rc"
expect_eq "--no-range: the Range was answered with the whole file" 1 \
  "$(requests 'GET /100.dat range=bytes=100000- status=200 body=1950000')"
expect_match "--no-range: summary says restarted" 'restarted from zero\)$' "$out"
if same_as_original "$d" 100; then ok "--no-range: files equal the originals"; else fail "--no-range: files differ"; fi

# ---- verification ---------------------------------------------------------------------
start_server corrupt --corrupt /100.dat
d="$ct_tmp/corrupt"
dl --dest "$d" 100 101
expect_eq "corrupt 100.dat: exits 1" 1 "$rc"
expect_match "corrupt 100.dat: checksum error naming record, file and signal" \
  'record 100: 100\.dat: signal [01] .*checksum' "$err"
expect_eq "corrupt 100.dat: one error line" 1 "$(printf '%s\n' "$err" | grep -c 'record 100')"
expect_eq "corrupt 100.dat: nothing of 100 under final names" "" "$(cd "$d" && ls 100.* 2>/dev/null || true)"
expect_eq "corrupt 100.dat: no staging left behind" "" "$(ls -A "$d" | grep partial || true)"
expect_match "corrupt 100.dat: 101 still downloaded" '^101: downloaded and verified' "$out"
if same_as_original "$d" 101; then ok "corrupt 100.dat: 101 equals the original"; else fail "101 differs"; fi

# ---- records whose files disagree with their header -----------------------------------
# 666's header names a signal file outside the folder; 667's signal file is
# shorter than its header says; 668's header promises 1000 samples but the
# server sends a 1.95 MB file, more than such a record can be.
serve_dir="$ct_tmp/srv"
mkdir -p "$serve_dir"
printf '666 1 360 650000\r\n../666.dat 212 200 11 1024 995 -22131 0 MLII\r\n' >"$serve_dir/666.hea"
cp "$CARDIOTWIN_MITDB/100.dat" "$serve_dir/666.dat"
sed 's/^100 /667 /; s/^100\.dat/667.dat/' "$CARDIOTWIN_MITDB/100.hea" >"$serve_dir/667.hea"
head -c 1000000 "$CARDIOTWIN_MITDB/100.dat" >"$serve_dir/667.dat"
cp "$CARDIOTWIN_MITDB/100.atr" "$serve_dir/667.atr"
sed 's/^100 2 360 650000/668 2 360 1000/; s/^100\.dat/668.dat/' "$CARDIOTWIN_MITDB/100.hea" >"$serve_dir/668.hea"
cp "$CARDIOTWIN_MITDB/100.dat" "$serve_dir/668.dat"
cp "$CARDIOTWIN_MITDB/100.atr" "$serve_dir/668.atr"
start_server crafted
unset serve_dir
d="$ct_tmp/crafted/dest"
dl --dest "$d" 666 667 668
expect_eq "crafted records: exits 1" 1 "$rc"
expect_match "666: a signal file outside the folder is refused" 'record 666: 666\.hea: .*\.\./666\.dat' "$err"
expect_eq "666: the signal file was never requested" 0 "$(requests 'GET /666.dat')"
expect_match "667: short signal file named" 'record 667: 667\.dat is 1000000 bytes, header promises 1950000' "$err"
expect_match "668: oversized signal file refused by the header's size" \
  'record 668: 668\.dat: .*1950000 bytes, more than the limit of [0-9]+' "$err"
expect_eq "crafted records: three error lines" 3 "$(printf '%s\n' "$err" | grep -c '^cardiotwin mitdb download: record 66[678]: ')"
expect_eq "crafted records: nothing in dest" "" "$(ls -A "$d")"
expect_eq "crafted records: nothing written beside dest" "dest" "$(ls -A "$ct_tmp/crafted")"

# ---- refusals are not retried -----------------------------------------------------------
start_server missing
d="$ct_tmp/missing"
t0=$(date +%s%N)
run timeout 120 "$CT_BIN" mitdb download --base-url "$url" --backoff-ms 5000 --dest "$d" 999 101
t1=$(date +%s%N)
expect_eq "404 record: exits 1" 1 "$rc"
expect_match "404 record: message names record, file and status" 'record 999: 999\.hea: HTTP 404' "$err"
expect_eq "404 record: a single request, no retry" 1 "$(requests 'GET /999.hea')"
expect_eq "404 record: no retry noted" 0 "$(printf '%s\n' "$err" | grep -c 'attempt' || true)"
ms=$(( (t1 - t0) / 1000000 ))
if [ "$ms" -lt 4000 ]; then ok "404 record: failed fast (${ms} ms, a retry would wait 5000)"
else fail "404 record took ${ms} ms"; fi
expect_match "404 record: the next record is still downloaded" '^101: downloaded and verified' "$out"
expect_eq "404 record: nothing of 999 left" "" "$(ls -A "$d" | grep 999 || true)"

# ---- HTTPS: certificates are always verified -----------------------------------------
pem="$ct_tmp/tls/server.pem"
mkdir -p "$ct_tmp/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$ct_tmp/tls/key.pem" -out "$ct_tmp/tls/cert.pem" 2>/dev/null
cat "$ct_tmp/tls/key.pem" "$ct_tmp/tls/cert.pem" >"$pem"
start_server tls --tls "$pem"
url="https${url#http}"
d="$ct_tmp/tls-untrusted"
dl --dest "$d" 100
expect_eq "self-signed server: exits 1" 1 "$rc"
expect_match "self-signed server: certificate refused" 'record 100: 100\.hea: .*certificate' "$err"
expect_eq "self-signed server: not retried" 0 "$(printf '%s\n' "$err" | grep -c 'attempt' || true)"
expect_eq "self-signed server: no request got through" 0 "$(requests '^GET')"
expect_eq "self-signed server: nothing in dest" "" "$(ls -A "$d")"
d="$ct_tmp/tls-trusted"
dl --dest "$d" --ca-file "$ct_tmp/tls/cert.pem" 100
expect_eq "--ca-file naming the server's certificate: exits 0" 0 "$rc"
if same_as_original "$d" 100; then ok "over HTTPS: files equal the originals"; else fail "over HTTPS: files differ"; fi
dl --dest "$ct_tmp/tls-nofile" --ca-file "$ct_tmp/tls/none.pem" 100
expect_eq "--ca-file that cannot be read: exits 1" 1 "$rc"
expect_match "--ca-file that cannot be read: named" 'none\.pem' "$err"
dl --dest "$d" --dest "$d" --retries
expect_eq "--retries without a value is a usage error" 2 "$rc"
expect_match "missing value named" '--retries needs a value' "$err"

stop_server
finish
