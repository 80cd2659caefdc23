#!/usr/bin/env bash
# The live twin behind `cardiotwin serve`: ECG streamed to the FHIR API by
# `cardiotwin stream` runs through the detector and the alert policy, and
# alerts come back as DiagnosticReports. Checked on the real server: MIT-BIH
# 106 (frequent PVCs, ventricular runs) yields reports coded 164895002
# (ventricular tachycardia) or 427172004 (PVCs), each version with its
# Provenance naming the detector Device; MIT-BIH 100 (normal sinus rhythm)
# yields no high-priority alert; reports are pushed to an upstream by the
# server's push thread; an ECG overlapping the stream with other
# samples is refused 409, one at a rate the detector cannot analyse is kept
# but not monitored, an ECG update is refused 422, and nothing of a refused
# ECG is stored; a bad policy file stops the server at start.
#
# The detected beats are not checked here against `cardiotwin detect`: the
# twin keeps them in the server's memory (the live view) and stores only
# the reports and their derived counts, so they cannot be reached from
# outside the process. tests/twin/test_live.c proves the equality in-process
# on records 100 and 106.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state

# A policy file that is not valid JSON: the server refuses to start, naming it.
printf '{"rules":' >"$ct_tmp/bad-policy.json"
run "$CT_BIN" --db "$db" serve --port 0 --policy "$ct_tmp/bad-policy.json"
expect_eq "a bad policy file: serve exits 1" 1 "$rc"
expect_match "a bad policy file: the error names it" 'bad-policy\.json' "$err"
run "$CT_BIN" --db "$db" serve --port 0 --upstream ftp://example.org/fhir
expect_eq "an upstream that is not http(s): usage, exit 2" 2 "$rc"

# The upstream: ct_test_fhir_sink (tests/tools/) on 127.0.0.1, which logs
# every request. It takes no Bundle at /fhir (404), so each push attempt
# shows in its log and the outbox gives the row up.
: "${CT_TOOL_ct_test_fhir_sink:?CT_TOOL_ct_test_fhir_sink must name the test sink}"
sink_pid=""
stop_sink() {
  if [ -n "$sink_pid" ]; then
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    sink_pid=""
  fi
}
ct_cleanup_hooks+=("stop_sink")
mkdir -p "$ct_tmp/cap"
"$CT_TOOL_ct_test_fhir_sink" --lifetime 300 --capture "$ct_tmp/cap" >"$ct_tmp/sink.log" 2>"$ct_tmp/sink.err" &
sink_pid=$!
sink_port=""
for _ in $(seq 200); do
  sink_port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$ct_tmp/sink.log" | head -1 || true)
  [ -n "$sink_port" ] && break
  sleep 0.05
done
[ -n "$sink_port" ] || { fail "the sink did not start: $(cat "$ct_tmp/sink.err")"; finish; exit 1; }

ct_token "$state/admin.token" admin twin-admin
token=$(cat "$state/admin.token")
ct_serve_start --upstream "http://127.0.0.1:$sink_port/fhir"
base="$origin/fhir"
expect_match "the server says the live twin started" 'live twin started with the default alert policy' \
  "$(cat "$ct_tmp/srv.err")"
api() { curl -sS --cacert "$cert" -H "Authorization: Bearer $token" "$@"; }
# req METHOD PATH [curl args]: $code and $body
req() { ct_fetch "/fhir$2" -X "$1" -H "Authorization: Bearer $token" "${@:3}"; }
stream() { # stream RECORD START SECONDS
  run "$CT_BIN" stream "$CARDIOTWIN_MITDB/$1" --to "$base" --token-file "$state/admin.token" --ca-file "$cert" \
    --speed max --start "$2" --limit-seconds "$3"
}

# ---- 106: PVCs and ventricular runs -------------------------------------------------------------
stream 106 2026-11-20T10:00:00Z 600
expect_eq "106: the stream exits 0" 0 "$rc"
expect_match "106: 60 Observations accepted" '^106: 60 Observations sent to Patient/mitdb-106' "$out"
req GET "/DiagnosticReport?patient=mitdb-106&_count=100"
expect_eq "106: search DiagnosticReports: 200" 200 "$code"
summary=$(py '
import json, sys
b = json.load(open(sys.argv[1]))
codes = set()
for e in b.get("entry", []):
    r = e["resource"]
    for cc in r.get("conclusionCode", []):
        for c in cc.get("coding", []):
            if c.get("system") == "http://snomed.info/sct":
                codes.add(c["code"])
print(b.get("total", 0), " ".join(sorted(codes)))')
n_reports=${summary%% *}
codes=${summary#* }
if [ "${n_reports:-0}" -ge 1 ]; then ok "106: the twin wrote reports ($n_reports)"; else fail "106: no report: $body"; fi
expect_match "106: a report for ventricular tachycardia or PVCs" '(^| )(164895002|427172004)( |$)' "$codes"
req GET "/DiagnosticReport?patient=mitdb-106&conclusion=http://snomed.info/sct%7C427172004"
n_pvc=$(py 'import json,sys; print(json.load(open(sys.argv[1])).get("total", 0))')
req GET "/DiagnosticReport?patient=mitdb-106&conclusion=http://snomed.info/sct%7C164895002"
n_vt=$(py 'import json,sys; print(json.load(open(sys.argv[1])).get("total", 0))')
if [ $((n_pvc + n_vt)) -ge 1 ]; then ok "106: searchable by conclusion ($n_pvc PVC, $n_vt VT)"; else fail "106: no report found by conclusion"; fi

# Every version of every report has its Provenance, naming that version and the detector Device.
req GET "/DiagnosticReport?patient=mitdb-106&_count=100"
py 'import json,sys
for e in json.load(open(sys.argv[1])).get("entry", []):
    r = e["resource"]
    print(r["id"], r["meta"]["versionId"], r["status"], r["code"]["coding"][0]["code"], r["subject"]["reference"])' >"$ct_tmp/reports"
bad=""
n_checked=0
while read -r id ver status loinc subject; do
  [ "$subject" == "Patient/mitdb-106" ] || bad="$bad $id:subject=$subject"
  [ "$loinc" == "11524-6" ] || bad="$bad $id:code=$loinc"
  for v in $(seq 1 "$ver"); do
    req GET "/Provenance/$id-prov-$v"
    if [ "$code" != 200 ]; then
      bad="$bad $id-prov-$v:HTTP$code"
      continue
    fi
    what=$(py 'import json,sys
p = json.load(open(sys.argv[1]))
print(" ".join(t["reference"] for t in p["target"]), " ".join(a["who"]["reference"] for a in p["agent"]))')
    [[ " $what " == *" DiagnosticReport/$id/_history/$v "* ]] || bad="$bad $id-prov-$v:target"
    [[ "$what" == *"Device/cardiotwin-ecg-detector-"* ]] || bad="$bad $id-prov-$v:agent"
    n_checked=$((n_checked + 1))
  done
done <"$ct_tmp/reports"
expect_eq "106: each report version has a Provenance naming it and the detector ($n_checked checked)" "" "$bad"
req GET "/Device/$(api "$base/Provenance/$(head -n 1 "$ct_tmp/reports" | cut -d' ' -f1)-prov-1" |
  python3 -c 'import json,sys; print([a["who"]["reference"] for a in json.load(sys.stdin)["agent"] if a["who"]["reference"].startswith("Device/")][0].split("/")[1])')"
expect_eq "106: the detector Device reads back" 200 "$code"

# The push thread took the reports upstream, as FHIR transaction Bundles POSTed to the base.
pushed=0
for _ in $(seq 100); do
  pushed=$(grep -c '^POST /fhir status=' "$ct_tmp/sink.log" || true)
  [ "$pushed" -ge 1 ] && break
  sleep 0.1
done
if [ "$pushed" -ge 1 ]; then ok "upstream: the push thread POSTed reports to it ($pushed)"; else fail "upstream: nothing pushed: $(cat "$ct_tmp/sink.log")"; fi
for _ in $(seq 50); do
  grep -q 'pushed to http://127.0.0.1:[0-9]*/fhir: 0 delivered, 0 to retry, [1-9][0-9]* given up' "$ct_tmp/srv.err" && break
  sleep 0.1
done
expect_match "upstream: the server log says what the push did (the sink refuses: given up)" \
  'pushed to http://127\.0\.0\.1:[0-9]+/fhir: 0 delivered, 0 to retry, [1-9][0-9]* given up' "$(cat "$ct_tmp/srv.err")"

# ---- 100: normal sinus rhythm, no high-priority alert -----------------------------------------------
stream 100 2026-11-20T10:00:00Z 600
expect_eq "100: the stream exits 0" 0 "$rc"
req GET "/DiagnosticReport?patient=mitdb-100&_count=100"
expect_eq "100: search DiagnosticReports: 200" 200 "$code"
high=$(py 'import json,sys
print(sum(1 for e in json.load(open(sys.argv[1])).get("entry", []) if "priority high" in e["resource"].get("conclusion", "")))')
expect_eq "100: no high-priority alert report" 0 "$high"
req GET "/Observation?patient=mitdb-100&code=131328&_count=0"
expect_match "100: its 60 ECG Observations are stored" '"total":60' "$body"

# ---- refusals: nothing of a refused ECG is stored ---------------------------------------------------
# The first 10 s of 100 again, 5 s after the stream's start:
# overlaps what the twin took, with other samples.
stream 100 2026-11-20T10:00:05Z 10
expect_eq "an overlapping ECG: the stream exits 1" 1 "$rc"
expect_match "an overlapping ECG: 409 with the twin's words" 'HTTP 409' "$err"
req GET "/Observation?patient=mitdb-100&code=131328&_count=0"
expect_match "an overlapping ECG: nothing stored" '"total":60' "$body"
# The stream continues where it ended: taken.
stream 100 2026-11-20T10:10:00Z 10
expect_eq "the next 10 s, where the stream ended: exits 0" 0 "$rc"

# The specification's ekg example (100 Hz): kept, not monitored.
sed 's#Patient/f001#Patient/mitdb-100#' "$CT_SOURCE_DIR/fhir/examples/observation-example-sample-data.json" >"$ct_tmp/ekg.json"
req POST /Observation -H 'Content-Type: application/fhir+json' --data-binary @"$ct_tmp/ekg.json"
expect_eq "the 100 Hz ekg example: 201 (stored, not monitored)" 201 "$code"
ekg_id=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["id"])')
expect_match "the server log says it is not monitored" "Observation/$ekg_id stored, not monitored" "$(cat "$ct_tmp/srv.err")"
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); b["id"]=sys.argv[2]; print(json.dumps(b))' \
  "$ct_tmp/ekg.json" "$ekg_id" >"$ct_tmp/ekg-put.json"
req PUT "/Observation/$ekg_id" -H 'Content-Type: application/fhir+json' --data-binary @"$ct_tmp/ekg-put.json"
expect_eq "an ECG update: 422" 422 "$code"
expect_match "an ECG update: the OperationOutcome says to post new data" 'cannot be updated.*new Observation' "$body"

# An ECG Observation inside a transaction Bundle.
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(json.dumps({"resourceType":"Bundle","type":"transaction","entry":[{"resource":o,"request":{"method":"POST","url":"Observation"}}]}))' \
  "$ct_tmp/ekg.json" >"$ct_tmp/tx.json"
req POST "" -H 'Content-Type: application/fhir+json' --data-binary @"$ct_tmp/tx.json"
expect_eq "an ECG in a transaction Bundle: 422" 422 "$code"
expect_match "... saying to post it alone or in a batch" 'alone or in a batch Bundle' "$body"
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(json.dumps({"resourceType":"Bundle","type":"batch","entry":[{"resource":o,"request":{"method":"POST","url":"Observation"}}]}))' \
  "$ct_tmp/ekg.json" >"$ct_tmp/batch.json"
req POST "" -H 'Content-Type: application/fhir+json' --data-binary @"$ct_tmp/batch.json"
expect_match "an ECG in a batch Bundle: 201 inside" '"status":"201' "$body"

# A non-ECG Observation is stored as before.
req POST /Observation -H 'Content-Type: application/fhir+json' \
  -d '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/mitdb-100"},"effectiveDateTime":"2026-11-20T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}'
expect_eq "a heart-rate Observation: 201" 201 "$code"

# A clean stop.
ct_serve_stop
expect_eq "SIGTERM: the server, its twin and its push thread stop, exit 0" 0 "$stop_rc"
finish
