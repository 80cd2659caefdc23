#!/usr/bin/env bash
# The dashboard's server side over HTTP (docs/dashboard.md): the static
# files under --web-root (public, Content-Type by extension, ETag and 304,
# the pages' own Content-Security-Policy, no way out of the root), and the
# JSON API: /api/sources lists the imported record 106 and the live
# patients, /api/alerts lists a live patient's alerts, acknowledging one
# answers 200 then 409 and is in the audit log with the user, /api/strip
# gives the stored ECG of a live patient, errors are JSON with messages,
# and a token bound to a patient sees that patient only.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state

# A web root of our own: the page itself is another test's business.
web="$ct_tmp/web"
mkdir -p "$web/js" "$web/css" "$web/vendor/three" "$web/.git"
printf '<!doctype html><title>cardiotwin</title><script type="module" src="/js/main.js"></script>\n' >"$web/index.html"
printf 'export const answer = 42;\n' >"$web/js/main.js"
printf 'body { color: black; }\n' >"$web/css/app.css"
printf 'export const three = 1;\n' >"$web/vendor/three/three.module.js"
printf 'secret\n' >"$web/.git/config"
printf 'secret\n' >"$web/js/.hidden.js"
printf 'root:x:0:0\n' >"$ct_tmp/outside.txt"
ln -s "$ct_tmp/outside.txt" "$web/js/escape.js"
ln -s "$web/js/main.js" "$web/js/alias.js"

run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/106"
expect_eq "import 106: exit 0" 0 "$rc"
ct_token "$state/admin.token" admin dash-admin
ct_token "$state/clin.token" clinician dr-ada

run "$CT_BIN" --db "$db" serve --port 0 --web-root "$ct_tmp/no-such-dir"
expect_eq "a web root that does not exist: serve exits 1" 1 "$rc"
expect_match "a web root that does not exist: the error names it" 'web root .*no-such-dir' "$err"

ct_serve_start --web-root "$web"

# ---- static files: public, typed, cached by ETag, own CSP, nothing outside the root ----------
ct_fetch /
expect_eq "GET /: 200 without login" 200 "$code"
expect_match "GET /: index.html" '<title>cardiotwin</title>' "$body"
expect_eq "GET /: text/html" "text/html; charset=utf-8" "$(header Content-Type)"
expect_eq "GET /: Cache-Control no-cache" "no-cache" "$(header Cache-Control)"
expect_eq "GET /: the dashboard's CSP" \
  "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'" \
  "$(header Content-Security-Policy)"
expect_eq "GET /: nosniff as every response" nosniff "$(header X-Content-Type-Options)"
ct_fetch /js/main.js
expect_eq "GET /js/main.js: 200" 200 "$code"
expect_eq "GET /js/main.js: text/javascript" "text/javascript; charset=utf-8" "$(header Content-Type)"
expect_eq "GET /js/main.js: the file's bytes" "export const answer = 42;" "$body"
etag=$(header ETag)
expect_match "GET /js/main.js: a strong ETag" '^"[0-9a-f.-]+"$' "$etag"
ct_fetch /js/main.js -H "If-None-Match: $etag"
expect_eq "If-None-Match with the ETag: 304" 304 "$code"
expect_eq "304: no body" "" "$body"
ct_fetch /js/main.js -H 'If-None-Match: "other", W/'"$etag"
expect_eq "If-None-Match listing the weak form among others: 304" 304 "$code"
ct_fetch /js/main.js -H 'If-None-Match: "stale"'
expect_eq "If-None-Match with another ETag: 200" 200 "$code"
ct_fetch /css/app.css
expect_eq "GET /css/app.css: text/css" "text/css; charset=utf-8" "$(header Content-Type)"
ct_fetch /vendor/three/three.module.js
expect_eq "GET /vendor/three/three.module.js: 200" 200 "$code"
ct_fetch /js/alias.js
expect_eq "a symlink inside the root: served" 200 "$code"
ct_fetch /js/escape.js
expect_eq "a symlink out of the root: 404" 404 "$code"
expect_match "refusals are JSON with a message" '^\{"status":404,"error":"not_found","message":"[^"]+"\}$' "$body"
ct_fetch /js/.hidden.js
expect_eq "a dotfile: 404" 404 "$code"
ct_fetch /.git/config
expect_eq "a dot directory: 404" 404 "$code"
ct_fetch /js/%2e%2e/%2e%2e/outside.txt
expect_match "encoded dot segments: refused (400 or 404)" '^(400|404)$' "$code"
ct_fetch /js/..%2f..%2foutside.txt
expect_match "an encoded slash: refused (400 or 404)" '^(400|404)$' "$code"
ct_fetch /js/../../outside.txt --path-as-is
expect_match "literal dot segments: refused (400 or 404)" '^(400|404)$' "$code"
[[ "$body" != *root:x* ]] && ok "no traversal reached the file outside the root" || fail "traversal: $body"
ct_fetch /js/
expect_eq "a directory: 404" 404 "$code"
ct_fetch /js/nothing.js
expect_eq "a missing file: 404" 404 "$code"
ct_fetch /js/main.js -X POST
expect_eq "POST to a static file: 405" 405 "$code"
ct_fetch /api/sources
expect_eq "the API needs a credential: 401" 401 "$code"
expect_match "401 is JSON with a message" '"message":"[^"]+' "$body"

# ---- live patients: 106 (PVCs, alerts) and 100 --------------------------------------------------
t0_ms=1795341600000 # 2026-11-22T10:00:00Z
stream() { # stream RECORD SECONDS
  run "$CT_BIN" stream "$CARDIOTWIN_MITDB/$1" --to "$origin/fhir" --token-file "$state/admin.token" --ca-file "$cert" \
    --speed max --start 2026-11-22T10:00:00Z --limit-seconds "$2"
}
stream 106 600
expect_eq "stream 106 (600 s) to the live twin: exit 0" 0 "$rc"
stream 100 60
expect_eq "stream 100 (60 s): exit 0" 0 "$rc"
ct_token "$state/bound.token" clinician bound-100 --patient mitdb-100
auth=(-H "Authorization: Bearer $(cat "$state/clin.token")")
# Acknowledging needs what reading the alert needs (DiagnosticReport.r):
# it changes no clinical data, and the audit log keeps who did it.
admin=(-H "Authorization: Bearer $(cat "$state/admin.token")")
bound=(-H "Authorization: Bearer $(cat "$state/bound.token")")

ct_fetch /api/sources "${auth[@]}"
expect_eq "GET /api/sources: 200" 200 "$code"
expect_eq "GET /api/sources: application/json" application/json "$(header Content-Type)"
expect_eq "GET /api/sources: the API's CSP, not the pages'" "default-src 'none'; frame-ancestors 'none'" \
  "$(header Content-Security-Policy)"
summary=$(py 'import json,sys
b = json.load(open(sys.argv[1]))
r = {x["id"]: x for x in b["records"]}
p = {x["id"]: x for x in b["patients"]}
x = r.get("106", {})
y = p.get("mitdb-106", {})
print(sorted(r), x.get("fs_hz"), x.get("leads"), round(x.get("duration_s", 0), 1), sorted(p),
      y.get("live"), y.get("fs_hz"), y.get("leads"), y.get("alerts", -1) >= 0, y.get("updated_ms", 0) > 0)')
expect_eq "/api/sources: record 106 (360 Hz, MLII and V1, 1805.6 s) and live patients 100 and 106" \
  "['106'] 360.0 ['MLII', 'V1'] 1805.6 ['mitdb-100', 'mitdb-106'] True 360.0 ['II', 'V1'] True True" "$summary"

ct_fetch "/api/alerts?patient=mitdb-106" "${auth[@]}"
expect_eq "GET /api/alerts: 200" 200 "$code"
n_alerts=$(py 'import json,sys; print(len(json.load(open(sys.argv[1]))["alerts"]))')
if [ "${n_alerts:-0}" -ge 1 ]; then ok "106 has alerts ($n_alerts)"; else fail "106: no alert: $body"; fi
shape=$(py 'import json,sys
a = json.load(open(sys.argv[1]))["alerts"]
keys = sorted(a[0])
newest_first = all(a[i]["id"] > a[i + 1]["id"] for i in range(len(a) - 1))
print(",".join(keys), a[0]["patient"], a[0]["acknowledged"], a[0]["acknowledged_by"], a[0]["state"] in ("open", "cleared", "ended"), newest_first)')
expect_eq "an alert's fields, newest first" \
  "acknowledged,acknowledged_by,acknowledged_ms,end_ms,id,onset_ms,patient,priority,report_id,rule,state,summary mitdb-106 False None True True" "$shape"
alert_id=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["alerts"][0]["id"])')
ct_fetch "/api/alerts?patient=mitdb-106&limit=1" "${auth[@]}"
expect_eq "limit=1: one alert" 1 "$(py 'import json,sys; print(len(json.load(open(sys.argv[1]))["alerts"]))')"
ct_fetch "/api/alerts?patient=mitdb-106&limit=0" "${auth[@]}"
expect_eq "limit=0: 400" 400 "$code"
expect_match "limit=0: the message says the range" 'limit must be a number 1\.\.500' "$body"
ct_fetch /api/alerts "${auth[@]}"
expect_eq "no patient: 400" 400 "$code"
expect_match "no patient: the message says what is missing" 'patient parameter is required' "$body"

# ---- acknowledge: 200, then 409 by whom; in the audit log with the user ------------------------
ct_fetch "/api/alerts/$alert_id/acknowledge" -X POST "${bound[@]}"
expect_eq "acknowledge another patient's alert with a bound token: 404" 404 "$code"
ct_fetch "/api/alerts/$alert_id/acknowledge" -X POST "${auth[@]}"
expect_eq "acknowledge by a clinician: 200" 200 "$code"
expect_eq "acknowledge: the alert, acknowledged by the user" "$alert_id True dr-ada True" \
  "$(py 'import json,sys; a = json.load(open(sys.argv[1])); print(a["id"], a["acknowledged"], a["acknowledged_by"], a["acknowledged_ms"] > 0)')"
ct_fetch "/api/alerts/$alert_id/acknowledge" -X POST "${admin[@]}"
expect_eq "acknowledge again: 409" 409 "$code"
expect_match "409 says by whom" 'dr-ada' "$body"
ct_fetch "/api/alerts/999999/acknowledge" -X POST "${admin[@]}"
expect_eq "acknowledge an alert that does not exist: 404" 404 "$code"
ct_fetch "/api/alerts/abc/acknowledge" -X POST "${admin[@]}"
expect_eq "acknowledge a non-numeric id: 404" 404 "$code"
ct_fetch "/api/alerts/$alert_id/acknowledge" "${auth[@]}"
expect_eq "GET on acknowledge: 405" 405 "$code"
auditor_line=$("$CT_BIN" --db "$db" audit export --format ndjson 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("action") == "acknowledge":
        print(e.get("actor"), e.get("role"), e.get("patient"))' | head -n 1)
expect_eq "the acknowledgement is in the audit log with the user" "dr-ada clinician mitdb-106" "$auditor_line"
reads=$("$CT_BIN" --db "$db" audit export --format ndjson 2>/dev/null | python3 -c '
import json, sys
n = {}
for line in sys.stdin:
    e = json.loads(line)
    d = e.get("detail") or {}
    if isinstance(d, str):
        d = json.loads(d)
    if e.get("actor") == "dr-ada" and d.get("api"):
        n[d["api"]] = n.get(d["api"], 0) + 1
print(" ".join(f"{k}={v}" for k, v in sorted(n.items())))')
expect_match "reads through the API are audited (sources, alerts)" '/api/alerts=[0-9]+ /api/sources=1' "$reads"

# ---- the strip: stored ECG of a live patient ------------------------------------------------------
from=$((t0_ms + 60000))
to=$((t0_ms + 70000))
ct_fetch "/api/strip?patient=mitdb-106&from_ms=$from&to_ms=$to" "${auth[@]}"
expect_eq "GET /api/strip (10 s): 200" 200 "$code"
expect_eq "strip: 2 leads of 3600 samples from sample 21600, II and V1" "360.0 $t0_ms 21600 II,V1 3600,3600 True" \
  "$(py 'import json,sys
b = json.load(open(sys.argv[1]))
print(b["fs_hz"], b["t0_ms"], b["first_sample"], ",".join(l["name"] for l in b["leads"]),
      ",".join(str(len(s)) for s in b["samples"]), all(isinstance(v, int) for s in b["samples"] for v in s))')"
# The samples are the record's: MIT-BIH 106 is format 212, two 12-bit samples in 3 bytes.
dat_slice=$(python3 - "$CARDIOTWIN_MITDB/106.dat" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
def s12(v): return v - 4096 if v & 0x800 else v
start, n = 21600, 5
out = []
for f in range(start, start + n):
    o = f * 3
    out.append(f"{s12(d[o] | ((d[o + 1] & 0x0f) << 8))}/{s12(d[o + 2] | ((d[o + 1] & 0xf0) << 4))}")
print(" ".join(out))
PY
)
expect_eq "strip: the samples equal the record's" "$dat_slice" \
  "$(py 'import json,sys
b = json.load(open(sys.argv[1]))
s = b["samples"]
print(" ".join("%d/%d" % (s[0][i], s[1][i]) for i in range(5)))')"
ct_fetch "/api/strip?patient=mitdb-106&from_ms=$from&to_ms=$((from + 61000))" "${auth[@]}"
expect_eq "a strip over 60 s: 400" 400 "$code"
expect_match "a strip over 60 s: the message says the limit" 'at most 60000 ms' "$body"
ct_fetch "/api/strip?patient=mitdb-106&from_ms=$to&to_ms=$from" "${auth[@]}"
expect_eq "to_ms before from_ms: 400" 400 "$code"
ct_fetch "/api/strip?patient=mitdb-106&from_ms=abc&to_ms=$to" "${auth[@]}"
expect_eq "from_ms not a number: 400" 400 "$code"
ct_fetch "/api/strip?patient=mitdb-106&from_ms=1000&to_ms=2000" "${auth[@]}"
expect_eq "a span before any stored ECG: 404" 404 "$code"
expect_match "404 names the patient" 'Patient/mitdb-106' "$body"
ct_fetch "/api/strip?patient=nobody&from_ms=$from&to_ms=$to" "${auth[@]}"
expect_eq "a patient without ECG: 404" 404 "$code"
ct_fetch "/api/strip?patient=bad%20id&from_ms=$from&to_ms=$to" "${auth[@]}"
expect_eq "a patient id that is not a FHIR id: 400" 400 "$code"

# ---- a token bound to a patient sees that patient only ----------------------------------------------
ct_fetch /api/sources "${bound[@]}"
expect_eq "bound token: /api/sources 200" 200 "$code"
expect_eq "bound token: only its patient, no records" "['mitdb-100'] []" \
  "$(py 'import json,sys; b = json.load(open(sys.argv[1])); print([p["id"] for p in b["patients"]], b["records"])')"
ct_fetch "/api/alerts?patient=mitdb-106" "${bound[@]}"
expect_eq "bound token: another patient's alerts: 403" 403 "$code"
expect_match "bound token: the 403 says why" 'bound to Patient/mitdb-100' "$body"
ct_fetch "/api/alerts?patient=mitdb-100" "${bound[@]}"
expect_eq "bound token: its own patient's alerts: 200" 200 "$code"
ct_fetch "/api/strip?patient=mitdb-106&from_ms=$from&to_ms=$to" "${bound[@]}"
expect_eq "bound token: another patient's strip: 403" 403 "$code"
ct_fetch "/api/strip?patient=mitdb-100&from_ms=$((t0_ms + 10000))&to_ms=$((t0_ms + 12000))" "${bound[@]}"
expect_eq "bound token: its own patient's strip: 200" 200 "$code"
ct_fetch "/api/alerts?patient=mitdb-106" "${auth[@]}"
other_id=$(py 'import json,sys; a = [x for x in json.load(open(sys.argv[1]))["alerts"] if not x["acknowledged"]]; print(a[0]["id"] if a else "")')
if [ -n "$other_id" ]; then
  ct_fetch "/api/alerts/$other_id/acknowledge" -X POST "${bound[@]}"
  # Outside its compartment the alert does not exist for a bound token.
  expect_eq "bound token: acknowledging another patient's alert: 404" 404 "$code"
else
  fail "106 has no second alert to try a bound acknowledgement on"
fi

ct_serve_stop
# Without a web root, / is 404 (and the API still answers).
ct_serve_start --name srv2 --no-web
ct_fetch /
expect_eq "--no-web: / is 404" 404 "$code"
ct_fetch /api/sources "${auth[@]}"
expect_eq "--no-web: the API still answers" 200 "$code"
ct_serve_stop

finish
