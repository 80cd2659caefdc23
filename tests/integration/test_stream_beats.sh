#!/usr/bin/env bash
# Streaming a record through the API yields the same beats as `cardiotwin
# detect` on the same record, proven from outside the server: MIT-BIH 106
# and 100 are streamed by `cardiotwin stream --speed max` (both leads, as
# detect reads them by default) into the real `cardiotwin serve`; the
# stream is then ended the way a gateway can end it, by an Observation with
# another lead set (10 s of record 102, leads V5 and V2), which finishes the
# detector exactly as the end of a record does; every stored beat is read
# back through GET /api/beats, page by page via next_from_sample, and the
# (sample, class) of every beat must equal `cardiotwin detect RECORD
# --format csv`, line for line. Also: the answer's shape, the stream
# parameter, to_sample, the latest stream by default, every read audited,
# a patient-bound token for another patient refused 403 (its own patient
# served), a token without Observation.r 403, anonymous 401, bad
# parameters 400 with a message, an unknown patient or stream 404.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state

ct_token "$state/admin.token" admin beats-admin
ct_serve_start

# get TOKEN_FILE|- PATH_AND_QUERY: $code and $body ("-": no Authorization).
get() {
  local auth=()
  [ "$1" != "-" ] && auth=(-H "Authorization: Bearer $(cat "$1")")
  ct_fetch "$2" "${auth[@]+"${auth[@]}"}"
}
admin="$state/admin.token"

stream() { # stream RECORD PATIENT START [LIMIT_SECONDS]
  local lim=()
  [ -n "${4:-}" ] && lim=(--limit-seconds "$4")
  run "$CT_BIN" stream "$CARDIOTWIN_MITDB/$1" --to "$origin/fhir" --token-file "$admin" --ca-file "$cert" \
    --speed max --patient "$2" --start "$3" "${lim[@]+"${lim[@]}"}"
}

# all_beats PATIENT STREAM OUT: every beat through /api/beats, 500 a page,
# as "sample,cls" lines; prints the number of pages.
all_beats() {
  local from=0 pages=0
  : >"$3"
  while :; do
    get "$admin" "/api/beats?patient=$1&stream=$2&from_sample=$from&limit=500"
    if [ "$code" != 200 ]; then
      echo "HTTP $code: $body" >&2
      return 1
    fi
    pages=$((pages + 1))
    from=$(python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))
with open(sys.argv[2], "a") as out:
    for x in b["beats"]:
        out.write("%d,%s\n" % (x["sample"], x["cls"]))
n = b["next_from_sample"]
print("" if n is None else n)' "$ct_tmp/body" "$3")
    [ -z "$from" ] && break
    [ "$pages" -gt 1000 ] && { echo "paging does not end" >&2; return 1; }
  done
  echo "$pages"
}

# same_beats RECORD PATIENT: /api/beats of the patient's stream 1 against detect.
same_beats() {
  local rec=$1 pat=$2
  run "$CT_BIN" detect "$CARDIOTWIN_MITDB/$rec" --format csv
  expect_eq "$rec: detect exits 0" 0 "$rc"
  tail -n +2 <<<"$out" | sort -t, -k1,1n >"$ct_tmp/detect-$rec.csv"
  local pages
  if ! pages=$(all_beats "$pat" 1 "$ct_tmp/api-$rec.unsorted"); then
    fail "$rec: reading the beats through /api/beats"
    return
  fi
  sort -t, -k1,1n "$ct_tmp/api-$rec.unsorted" >"$ct_tmp/api-$rec.csv"
  local n_api n_det
  n_api=$(wc -l <"$ct_tmp/api-$rec.csv")
  n_det=$(wc -l <"$ct_tmp/detect-$rec.csv")
  if [ "$n_det" -lt 1000 ]; then fail "$rec: detect found only $n_det beats"; fi
  if [ "$pages" -ge 2 ]; then ok "$rec: read in $pages pages of at most 500"; else fail "$rec: $pages page(s)"; fi
  if cmp -s "$ct_tmp/api-$rec.csv" "$ct_tmp/detect-$rec.csv"; then
    ok "$rec: the $n_api beats served by /api/beats equal detect's $n_det (sample and class)"
  else
    fail "$rec: /api/beats ($n_api beats) differs from detect ($n_det beats); first differences (< api, > detect):"
    diff "$ct_tmp/api-$rec.csv" "$ct_tmp/detect-$rec.csv" | head -n 20 || true
  fi
  # Nothing served twice across the pages.
  expect_eq "$rec: no beat served twice" "$n_api" "$(sort -u "$ct_tmp/api-$rec.csv" | wc -l)"
}

# ---- 106: frequent PVCs --------------------------------------------------------------------
stream 106 beats-106 2026-11-20T10:00:00Z
expect_eq "106: the stream exits 0" 0 "$rc"
expect_match "106: 181 Observations accepted" '^106: 181 Observations sent to Patient/beats-106' "$out"
# Another lead set after the end: the twin ends stream 1 and its detector finishes.
stream 102 beats-106 2026-11-20T10:31:00Z 10
expect_eq "106: 10 s of another lead set (102: V5, V2) exits 0" 0 "$rc"
same_beats 106 beats-106
n_v=$(grep -c ',V$' "$ct_tmp/api-106.csv" || true)
if [ "$n_v" -ge 400 ]; then ok "106: $n_v ventricular beats among them"; else fail "106: only $n_v V beats"; fi

# The answer's shape, 100 s into the stream (where the detector has a rate).
get "$admin" "/api/beats?patient=beats-106&stream=1&from_sample=36000&limit=3"
expect_eq "shape: 200" 200 "$code"
shape=$(python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))
print(sorted(b), b["patient"], b["stream"], b["fs_hz"], b["t0_ms"], len(b["beats"]), b["next_from_sample"] == b["beats"][-1]["sample"] + 1)
x = b["beats"][1]
print(sorted(x), x["cls"] in "NAVFQ", 20 < x["hr_bpm"] < 300 if x["hr_bpm"] is not None else "null",
      100 < x["rr_ms"] < 3000 and x["sample"] >= 36000)' "$ct_tmp/body")
expect_eq "shape: fields, patient, stream 1, 360 Hz, t0 of 2026-11-20T10:00:00Z, 3 beats, next_from_sample after the last" \
  "['beats', 'fs_hz', 'next_from_sample', 'patient', 't0_ms'] beats-106 1 360.0 1795168800000 3 True" \
  "$(head -n 1 <<<"$shape" | sed "s/'stream', //")"
expect_eq "shape: a beat has sample, cls, hr_bpm, rr_ms" "['cls', 'hr_bpm', 'rr_ms', 'sample'] True True True" \
  "$(tail -n 1 <<<"$shape")"
# to_sample bounds the range, [from, to).
first=$(head -n 1 "$ct_tmp/api-106.csv" | cut -d, -f1)
third=$(sed -n 3p "$ct_tmp/api-106.csv" | cut -d, -f1)
get "$admin" "/api/beats?patient=beats-106&stream=1&from_sample=$first&to_sample=$third"
expect_eq "to_sample: two beats in [first, third), the last page" "2 None" \
  "$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print(len(b["beats"]), b["next_from_sample"])' "$ct_tmp/body")"
# Without stream: the latest (102's 10 s made stream 2).
get "$admin" "/api/beats?patient=beats-106"
expect_eq "no stream parameter: 200" 200 "$code"
expect_match "no stream parameter: the latest stream, 2" '"stream":2' "$body"

# ---- 100: normal sinus rhythm -------------------------------------------------------------------
stream 100 beats-100 2026-11-20T12:00:00Z
expect_eq "100: the stream exits 0" 0 "$rc"
stream 102 beats-100 2026-11-20T12:31:00Z 10
expect_eq "100: ended by another lead set" 0 "$rc"
same_beats 100 beats-100

# ---- every read is audited -------------------------------------------------------------------------
n_audit=$(python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("SELECT count(*) FROM audit_log WHERE action = ? AND resource_type = ? AND detail LIKE ?"
                " AND actor = ? AND patient IN (?, ?)",
                ("search", "Observation", "%/api/beats%", "beats-admin", "beats-106", "beats-100")).fetchone()[0])' "$db")
if [ "$n_audit" -ge 10 ]; then ok "every /api/beats read is in the audit log ($n_audit entries)"; else fail "only $n_audit audit entries for /api/beats"; fi
before=$n_audit
get "$admin" "/api/beats?patient=beats-100&stream=1&limit=1"
after=$(python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
r = c.execute("SELECT count(*), max(seq) FROM audit_log WHERE detail LIKE ?", ("%/api/beats%",)).fetchone()
d = c.execute("SELECT patient, detail FROM audit_log WHERE seq = ?", (r[1],)).fetchone()
print(r[0], d[0], d[1])' "$db")
expect_match "one more read, one more entry naming the patient, stream and count" \
  "^$((before + 1)) beats-100 .*\"stream\":1.*\"beats\":1" "$after"

# ---- who may read ------------------------------------------------------------------------------------
ct_token "$state/nurse.token" clinician nurse-100 --patient beats-100
ct_token "$state/device.token" device gw-beats
get "$state/nurse.token" "/api/beats?patient=beats-106&stream=1"
expect_eq "a token bound to beats-100 asking for beats-106: 403" 403 "$code"
expect_match "... saying it is bound to another patient" '"status":403.*bound to Patient/beats-100' "$body"
get "$state/nurse.token" "/api/beats?patient=beats-100&stream=1&limit=5"
expect_eq "the bound token on its own patient: 200" 200 "$code"
expect_match "... with its beats" '"patient":"beats-100".*"beats":\[\{"sample":' "$body"
get "$state/device.token" "/api/beats?patient=beats-100"
expect_eq "a device token (no Observation.r): 403" 403 "$code"
get - "/api/beats?patient=beats-100"
expect_eq "anonymous: 401" 401 "$code"
expect_match "anonymous: a JSON error" '"status":401' "$body"

# ---- bad parameters: 400 with a message; unknown patient or stream: 404 ------------------------
bad() { # bad QUERY REGEX
  get "$admin" "/api/beats?$1"
  if [ "$code" == 400 ] && grep -Eq -- "\"status\":400,\"error\":\"bad_request\",\"message\":\"[^\"]*$2" <<<"$body"; then
    ok "400 for ?$1"
  else
    fail "?$1: expected 400 matching /$2/, got $code $body"
  fi
}
bad "" 'patient parameter is required'
bad "patient=" 'patient parameter is required'
bad "patient=bad_id!" 'not a FHIR id'
bad "patient=beats-100&limit=0" 'limit must be a whole number from 1 to 10000'
bad "patient=beats-100&limit=10001" 'limit must be'
bad "patient=beats-100&limit=ten" 'limit must be'
bad "patient=beats-100&stream=0" 'stream must be'
bad "patient=beats-100&stream=-1" 'stream must be'
bad "patient=beats-100&from_sample=-5" 'from_sample must be'
bad "patient=beats-100&from_sample=99999999999999999999" 'from_sample must be'
bad "patient=beats-100&from_sample=100&to_sample=100" 'to_sample \(100\) must be greater than from_sample \(100\)'
bad "patient=beats-100&form_sample=5" 'unknown parameter \\"form_sample\\"'
bad "patient=beats-100&limit=5&limit=6" 'limit parameter is given twice'
get "$admin" "/api/beats?patient=nobody"
expect_eq "a patient without a stream: 404" 404 "$code"
expect_match "... saying so" 'Patient/nobody has no ECG stream' "$body"
get "$admin" "/api/beats?patient=beats-100&stream=9"
expect_eq "a stream the patient does not have: 404" 404 "$code"
expect_match "... naming it" 'Patient/beats-100 has no stream 9' "$body"
code=$(curl -sS --cacert "$cert" -H "Authorization: Bearer $(cat "$admin")" -o /dev/null -w '%{http_code}' \
  -X POST "$origin/api/beats?patient=beats-100")
expect_eq "POST /api/beats: 405" 405 "$code"

ct_serve_stop
expect_eq "SIGTERM: the server stops, exit 0" 0 "$stop_rc"
finish
