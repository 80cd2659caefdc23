#!/usr/bin/env bash
# Identifiers through the real server: `cardiotwin import` makes each record's
# patient a FHIR Patient (Patient/mitdb-100, identifier
# https://cardiotwin.example/fhir/mitdb-record|100) in the import's
# transaction with its audit entry, once, whatever the re-imports; the
# identifier search parameter (system|value, value, system|, |value) on
# Patient, Observation, DiagnosticReport and Device; conditional create of a
# Patient by identifier (If-None-Exist), alone and in a transaction Bundle;
# and the CapabilityStatement declaring the parameter.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state
sys=https://cardiotwin.example/fhir/mitdb-record

# ---- import makes Patients ------------------------------------------------------------------
run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/100" "$CARDIOTWIN_MITDB/101"
expect_eq "import 100 and 101: 0" 0 "$rc"
expect_eq "two Patients stored" 2 "$(sqlite3 "$db" "SELECT count(*) FROM resource WHERE type = 'Patient'")"
# One import, one audit entry: the import's entry names the Patient it wrote
# and that Patient's version.
expect_eq "each recorded by its import entry, naming version 1" "mitdb-100|1 mitdb-101|1" \
  "$(sqlite3 "$db" "SELECT resource_id || '|' || resource_version FROM audit_log WHERE action = 'import' AND resource_type = 'Patient' ORDER BY seq" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "no separate create entry" 0 \
  "$(sqlite3 "$db" "SELECT count(*) FROM audit_log WHERE action = 'create' AND resource_type = 'Patient'")"
run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/100"
expect_eq "re-import 100: 0" 0 "$rc"
expect_eq "re-import: still one version of Patient/mitdb-100" 1 \
  "$(sqlite3 "$db" "SELECT count(*) FROM resource_version WHERE type = 'Patient' AND id = 'mitdb-100'")"
expect_eq "re-import: no new entry" 2 \
  "$(sqlite3 "$db" "SELECT count(*) FROM audit_log WHERE resource_type = 'Patient'")"

run "$CT_BIN" --db "$db" token create --role admin --name id-client
expect_eq "an admin token is made: 0" 0 "$rc"
token=$out

ct_serve_start --wait 100
ok "server listens on port $port"
base="$origin/fhir"

# req METHOD PATH [curl args...]: a FHIR request with the admin token; sets
# $code (the status even when curl failed after it), $body and $hdrs.
req() { ct_fetch "/fhir$2" -X "$1" -H "Authorization: Bearer $token" -H 'Expect:' "${@:3}"; }
json_ct='Content-Type: application/fhir+json'
ids() { jget "' '.join(sorted(e['resource']['id'] for e in b.get('entry',[]) if e['search']['mode']=='match'))"; }

# ---- the imported Patient through the API ----------------------------------------------------
req GET /Patient/mitdb-100
expect_eq "GET Patient/mitdb-100: 200" 200 "$code"
expect_eq "its identifier" "$sys|100" "$(jget "b['identifier'][0]['system'] + '|' + b['identifier'][0]['value']")"
expect_match "its text says it is an MIT-BIH record" 'MIT-BIH Arrhythmia Database record 100' "$(jget "b['text']['div']")"
expect_eq "served with its version" 1 "$(jget "b['meta']['versionId']")"

req GET "/Patient?identifier=$sys%7C100"
expect_eq "Patient?identifier=system|100: 200" 200 "$code"
expect_eq "... finds mitdb-100 alone" mitdb-100 "$(ids)"
req GET "/Patient?identifier=101"
expect_eq "Patient?identifier=101 (any system)" mitdb-101 "$(ids)"
req GET "/Patient?identifier=$sys%7C"
expect_eq "Patient?identifier=system| (any value)" "mitdb-100 mitdb-101" "$(ids)"
req GET "/Patient?identifier=%7C100"
expect_eq "Patient?identifier=|100 (no system): none" "" "$(ids)"
req GET "/Patient?identifier=$sys%7C100,$sys%7C101"
expect_eq "two values ORed" "mitdb-100 mitdb-101" "$(ids)"
req GET "/Patient?identifier=$sys%7C102"
expect_eq "an unknown record: total 0" 0 "$(jget "b['total']")"
req GET "/Patient?identifier:missing=false"
expect_eq "identifier:missing=false" "mitdb-100 mitdb-101" "$(ids)"
req GET "/Patient?identifier:exact=100"
expect_eq "an unsupported modifier on identifier: 400" 400 "$code"
req GET /Patient -H 'Prefer: handling=strict' --get --data-urlencode "identifier=$sys|100"
expect_eq "strict handling knows identifier: 200" 200 "$code"

# ---- conditional create by identifier --------------------------------------------------------
mrn=https://hospital.example/mrn
patient='{"resourceType":"Patient","identifier":[{"system":"'$mrn'","value":"12345"}],"name":[{"family":"Doe"}]}'
req POST /Patient -H "$json_ct" -H "If-None-Exist: identifier=$mrn|12345" -d "$patient"
expect_eq "conditional create by identifier, first: 201" 201 "$code"
first=$(jget "b['id']")
req POST /Patient -H "$json_ct" -H "If-None-Exist: identifier=$mrn|12345" -d "$patient"
expect_eq "conditional create by identifier, again: 200" 200 "$code"
expect_eq "... the same Patient" "$first" "$(jget "b['id']")"
expect_eq "only one Patient with that MRN" 1 \
  "$(sqlite3 "$db" "SELECT count(*) FROM resource_search WHERE type = 'Patient' AND param = 'identifier' AND code = '12345'")"
req POST /Patient -H "$json_ct" -H "If-None-Exist: identifier=$mrn|99" -d "$patient"
expect_eq "another MRN in If-None-Exist: a new Patient (201)" 201 "$code"
req POST /Patient -H "$json_ct" -H "If-None-Exist: identifier=$mrn|12345" -d "$patient"
expect_eq "If-None-Exist matching two Patients: 412" 412 "$code"
expect_eq "... with an OperationOutcome" OperationOutcome "$(jget "b['resourceType']")"

bundle='{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:9a3c7a52-1c1b-4c44-9b1e-0a6e2f7d9a11",
  "resource":{"resourceType":"Patient","identifier":[{"system":"'$mrn'","value":"777"}]},
  "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier='$mrn'|777"}},
 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"note"},
  "identifier":[{"system":"urn:ietf:rfc:3986","value":"urn:uuid:5f1c0d6e-0000-4000-8000-000000000001"}],
  "subject":{"reference":"urn:uuid:9a3c7a52-1c1b-4c44-9b1e-0a6e2f7d9a11"}},
  "request":{"method":"POST","url":"Observation"}}]}'
req POST "" -H "$json_ct" -d "$bundle"
expect_eq "transaction with a conditional create by identifier: 200" 200 "$code"
expect_eq "... Patient created" "201 Created" "$(jget "b['entry'][0]['response']['status']")"
p777=$(jget "b['entry'][0]['response']['location'].split('/')[1]")
req POST "" -H "$json_ct" -d "$bundle"
expect_eq "the same transaction again: 200" 200 "$code"
expect_eq "... the Patient is found, not made again" "200 OK" "$(jget "b['entry'][0]['response']['status']")"
expect_eq "... the same Patient" "$p777" "$(jget "b['entry'][0]['response']['location'].split('/')[1]")"
req GET "/Observation?identifier=urn:ietf:rfc:3986%7Curn:uuid:5f1c0d6e-0000-4000-8000-000000000001"
expect_eq "Observation?identifier: both notes" 2 "$(jget "b['total']")"
req GET "/Observation?identifier=urn:ietf:rfc:3986%7Curn:uuid:5f1c0d6e-0000-4000-8000-000000000001&patient=$p777"
expect_eq "... of that Patient, identifier ANDed with patient" 2 "$(jget "b['total']")"

# ---- Device and DiagnosticReport ------------------------------------------------------------
req POST /Device -H "$json_ct" -d '{"resourceType":"Device","identifier":[{"system":"urn:oid:1.2.3","value":"gw-7"}]}'
expect_eq "a Device with an identifier: 201" 201 "$code"
dev=$(jget "b['id']")
req GET "/Device?identifier=urn:oid:1.2.3%7Cgw-7"
expect_eq "Device?identifier finds it" "$dev" "$(ids)"
req POST /DiagnosticReport -H "$json_ct" -d '{"resourceType":"DiagnosticReport","status":"final","code":{"text":"x"},"identifier":[{"system":"urn:oid:9","value":"r-1"}],"subject":{"reference":"Patient/mitdb-100"}}'
expect_eq "a DiagnosticReport with an identifier: 201" 201 "$code"
rep=$(jget "b['id']")
req GET "/DiagnosticReport?identifier=r-1&patient=mitdb-100"
expect_eq "DiagnosticReport?identifier finds it" "$rep" "$(ids)"
req GET "/Provenance?identifier=r-1"
expect_match "Provenance has no identifier parameter: a warning" 'identifier' \
  "$(jget "[e['resource']['issue'][0]['diagnostics'] for e in b.get('entry',[]) if e['search']['mode']=='outcome'][0]")"

# ---- the CapabilityStatement ------------------------------------------------------------------
req GET /metadata
for t in Patient Observation DiagnosticReport Device; do
  expect_eq "CapabilityStatement: $t searches identifier (token)" token \
    "$(jget "[p['type'] for r in b['rest'][0]['resource'] if r['type']=='$t' for p in r['searchParam'] if p['name']=='identifier'][0]")"
done
expect_match "CapabilityStatement: the Observation's documentation states the ECG statuses" '409.*422.*503' \
  "$(jget "[r.get('documentation','') for r in b['rest'][0]['resource'] if r['type']=='Observation'][0]")"

ct_serve_stop
run "$CT_BIN" --db "$db" audit verify
expect_eq "the audit chain verifies" 0 "$rc"
finish
