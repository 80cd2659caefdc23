#!/usr/bin/env bash
# `cardiotwin serve --demo N`: synthetic patients stream live ECG into the
# twin. Checked on the real server with --demo 2: Patient/demo-1 and demo-2
# exist with their demo identifier; each second of each patient is stored as
# an ECG Observation (MDC 131328, leads II and V1, effectivePeriod of one
# second, successive periods joined), the count grows with time; demo-1's
# ventricular run raises an alert that comes back as a DiagnosticReport
# (ventricular tachycardia or PVCs); every write is in the audit log under
# the system actor "demo-feed"; SIGTERM stops the server at once and the
# audit log verifies. Also: --demo out of range is a usage error.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state

for bad in 17 -1 x ""; do
  run "$CT_BIN" --db "$db" serve --port 0 --demo "$bad"
  expect_eq "--demo '$bad': usage, exit 2" 2 "$rc"
  expect_match "--demo '$bad': the error names the option" '--demo' "$err"
done
for bad in 110 75 1025 x ""; do
  run "$CT_BIN" --db "$db" serve --port 0 --demo 1 --demo-chunk-ms "$bad"
  expect_eq "--demo-chunk-ms '$bad': usage, exit 2" 2 "$rc"
  expect_match "--demo-chunk-ms '$bad': the error names the option and its steps" '--demo-chunk-ms .*steps of 25' "$err"
done
run "$CT_BIN" serve --help
expect_match "serve --help documents --demo" '--demo N' "$out"
expect_match "serve --help documents --demo-chunk-ms" '--demo-chunk-ms MS' "$out"

ct_token "$state/admin.token" admin demo-admin
token=$(cat "$state/admin.token")
ct_serve_start --demo 2
started=$SECONDS
req() { ct_fetch "/fhir$1" -H "Authorization: Bearer $token"; } # req PATH: $code, $body
total() { py 'import json,sys; print(json.load(open(sys.argv[1])).get("total", -1))'; }

# The patients are made before the first second is posted; give the thread a moment.
for _ in $(seq 50); do
  req /Patient/demo-1
  [ "$code" == 200 ] && break
  sleep 0.1
done
expect_eq "GET Patient/demo-1: 200" 200 "$code"
expect_eq "demo-1 is named Demo One" "Demo One" "$(py 'import json,sys; print(json.load(open(sys.argv[1]))["name"][0]["text"])')"
expect_eq "demo-1 carries the demo identifier" "https://cardiotwin.example/demo|demo-1" \
  "$(py 'import json,sys; i=json.load(open(sys.argv[1]))["identifier"][0]; print(i["system"] + "|" + i["value"])')"
req /Patient/demo-2
expect_eq "GET Patient/demo-2: 200" 200 "$code"
req /Patient/demo-3
expect_eq "GET Patient/demo-3: 404 (only 2 asked for)" 404 "$code"
expect_match "the server says the demo feed started" 'demo feed: 2 synthetic patients' "$(cat "$ct_tmp/srv.err")"

# Wait (at most 40 s) for demo-1's first alert report.
n_reports=0
while [ $((SECONDS - started)) -lt 40 ]; do
  req "/DiagnosticReport?patient=demo-1"
  n_reports=$(total)
  [ "${n_reports:-0}" -ge 1 ] && break
  sleep 2
done
if [ "${n_reports:-0}" -ge 1 ]; then
  ok "demo-1: an alert report within $((SECONDS - started)) s ($n_reports)"
else
  fail "demo-1: no DiagnosticReport after 40 s: $body"
fi
codes=$(py '
import json, sys
codes = set()
for e in json.load(open(sys.argv[1])).get("entry", []):
    for cc in e["resource"].get("conclusionCode", []):
        for c in cc.get("coding", []):
            codes.add(c.get("code"))
print(" ".join(sorted(codes)))')
expect_match "demo-1: the report is for ventricular tachycardia or PVCs" '(^| )(164895002|427172004)( |$)' "$codes"

# ECG Observations (the reports add derived ones: heart rate, beat counts):
# one a second per patient, growing, stitched end to start.
ecg_code="urn:oid:2.16.840.1.113883.6.24%7C131328"
req "/Observation?patient=demo-1&code=$ecg_code&_count=200"
expect_eq "Observation search for demo-1: 200" 200 "$code"
n1=$(total)
elapsed=$((SECONDS - started))
if [ "$n1" -ge $((elapsed - 3)) ] && [ "$n1" -le $((elapsed + 3)) ]; then
  ok "demo-1: about one Observation a second ($n1 in $elapsed s)"
else
  fail "demo-1: $n1 Observations in $elapsed s"
fi
shape=$(py '
import json, sys
obs = [e["resource"] for e in json.load(open(sys.argv[1])).get("entry", []) if e["resource"]["resourceType"] == "Observation"]
bad = []
spans = []
for o in obs:
    if o["code"]["coding"][0]["code"] != "131328": bad.append("code")
    leads = [c["code"]["coding"][0]["code"] for c in o["component"]]
    if leads != ["131330", "131331"]: bad.append("leads " + ",".join(leads))
    for c in o["component"]:
        if len(c["valueSampledData"]["data"].split()) != 360: bad.append("not 360 samples")
    spans.append((o["effectivePeriod"]["start"], o["effectivePeriod"]["end"]))
spans.sort()
gaps = sum(1 for a, b in zip(spans, spans[1:]) if a[1] != b[0])
print("ok" if not bad else " ".join(sorted(set(bad))), gaps)')
expect_eq "demo-1: ECG Observations with II and V1, 360 samples each, no gap between seconds" "ok 0" "$shape"
sleep 3
req "/Observation?patient=demo-1&code=$ecg_code&_count=1"
n2=$(total)
if [ "$n2" -gt "$n1" ]; then ok "demo-1: the count grows ($n1 -> $n2)"; else fail "demo-1: the count did not grow ($n1 -> $n2)"; fi
req "/Observation?patient=demo-2&code=$ecg_code&_count=1"
n_2=$(total)
if [ "$n_2" -ge 10 ]; then ok "demo-2 is fed too ($n_2)"; else fail "demo-2: $n_2 Observations"; fi

# Stop: promptly, cleanly.
t0=$SECONDS
ct_serve_stop
expect_eq "SIGTERM: serve exits 0" 0 "$stop_rc"
if [ $((SECONDS - t0)) -le 5 ]; then ok "the server stopped within 5 s"; else fail "the stop took $((SECONDS - t0)) s"; fi

run "$CT_BIN" --db "$db" audit verify
expect_eq "the audit log verifies" 0 "$rc"
run "$CT_BIN" --db "$db" audit export --patient demo-1
n_feed=$(python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    e = json.loads(line)
    if e.get("type") == "entry" and e["actor"] == "demo-feed" and e["role"] == "system" and e["action"] == "create":
        n += 1
print(n)' <<<"$out")
if [ "$n_feed" -ge "$n2" ]; then
  ok "every demo-1 write is audited as demo-feed ($n_feed entries)"
else
  fail "demo-1: $n_feed audit entries by demo-feed for $n2 Observations"
fi

# A shorter posting interval: each Observation carries 250 ms (90 samples
# a lead at 360 Hz), and they still follow each other without a gap.
ct_serve_start --demo 1 --demo-chunk-ms 250
sleep 3
req "/Observation?patient=demo-1&code=$ecg_code&_count=100&_sort=-date"
short=$(py '
import json, sys
obs = [e["resource"] for e in json.load(open(sys.argv[1])).get("entry", []) if e["resource"]["resourceType"] == "Observation"]
new = [o for o in obs if len(o["component"][0]["valueSampledData"]["data"].split()) != 360]
sizes = sorted({len(c["valueSampledData"]["data"].split()) for o in new for c in o["component"]})
spans = sorted((o["effectivePeriod"]["start"], o["effectivePeriod"]["end"]) for o in new)
gaps = sum(1 for a, b in zip(spans, spans[1:]) if a[1] != b[0])
print(len(new) >= 4, sizes, gaps)')
expect_eq "--demo-chunk-ms 250: Observations of 90 samples a lead, no gap" "True [90] 0" "$short"
ct_serve_stop
expect_eq "the second server exits 0" 0 "$stop_rc"

finish
