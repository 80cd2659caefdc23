#!/usr/bin/env bash
# `cardiotwin audit export` and offline verification: NDJSON and FHIR,
# whole and filtered, verified by `audit verify --file` and by the
# reference verifier printed in docs/audit.md (taken from the page itself,
# so that the documented procedure is the tested one); a tampered line in
# either format fails and names its entry; a checkpoint checked by hand
# with openssl as the page shows.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

db="$ct_tmp/ct.db"
pub="$ct_tmp/cardiotwin-audit-pub.pem"
gen="$ct_tmp/gen/synth"
mkdir -p "$gen"
for i in $(seq 1 9); do
  printf 'r%s 1 360 100\nr%s.dat 16 200 16 0 0 0 0 ECG\n' "$i" "$i" > "$gen/r$i.hea"
  head -c 200 /dev/zero > "$gen/r$i.dat"
done

# The reference verifier, cut out of the documentation.
verifier="$ct_tmp/verify_export.py"
sed -n '/<!-- verify_export.py begin -->/,/<!-- verify_export.py end -->/p' "$CT_SOURCE_DIR/docs/audit.md" |
  sed '1,2d;$d' | sed '$d' > "$verifier"
expect_match "docs/audit.md holds the reference verifier" '^def main\(path, pub\):' "$(grep '^def main' "$verifier")"

run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/100" "$gen/r1" "$gen/r2" "$gen/r3" "$gen/r4" "$gen/r5"
run "$CT_BIN" --db "$db" audit checkpoint
run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/101" "$gen/r6" "$gen/r7"
run "$CT_BIN" --db "$db" audit checkpoint
run "$CT_BIN" --db "$db" import "$gen/r8" "$gen/r9"
expect_eq "11 entries" 11 "$(sqlite3 "$db" 'SELECT count(*) FROM audit_log')"

# check_export NAME FILE [WANT-IN-OUTPUT]: verified by cardiotwin and by the script.
check_export() {
  run "$CT_BIN" audit verify --file "$2" --pubkey "$pub"
  expect_eq "$1: audit verify --file exits 0" 0 "$rc"
  [ -n "${3:-}" ] && expect_match "$1: audit verify --file says" "$3" "$out"
  run python3 "$verifier" "$2" "$pub"
  expect_eq "$1: the documented verifier agrees" 0 "$rc"
  expect_match "$1: the documented verifier says OK" '^OK: ' "$out"
}

run "$CT_BIN" --db "$db" audit export --out "$ct_tmp/all.ndjson"
expect_eq "export ndjson exits 0" 0 "$rc"
expect_eq "export summary" "exported 11 of 11 entries to $ct_tmp/all.ndjson (2 checkpoints, 0 subtree hashes)" "$out"
expect_eq "export file is 0600" 600 "$(stat -c %a "$ct_tmp/all.ndjson")"
expect_eq "header + 11 entries + 2 checkpoints + end" 15 "$(wc -l < "$ct_tmp/all.ndjson")"
expect_eq "the export is recorded in the log" "export|AuditEvent" \
  "$(sqlite3 "$db" 'SELECT action, resource_type FROM audit_log WHERE seq = 12')"
check_export "whole ndjson" "$ct_tmp/all.ndjson" '^export OK: .*all\.ndjson: 11 entries, hash chain intact; 2 checkpoints verified'

run "$CT_BIN" --db "$db" audit export --format fhir --out "$ct_tmp/all.json"
expect_eq "export fhir exits 0" 0 "$rc"
expect_eq "a FHIR Bundle of type collection" "Bundle collection" \
  "$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print(b["resourceType"], b["type"])' "$ct_tmp/all.json")"
expect_eq "12 AuditEvents" 12 "$(grep -o '"resourceType":"AuditEvent"' "$ct_tmp/all.json" | wc -l)"
check_export "whole fhir" "$ct_tmp/all.json" '12 entries, hash chain intact'
# Any formatting of the same JSON verifies.
python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2],"w"), indent=2, sort_keys=True)' \
  "$ct_tmp/all.json" "$ct_tmp/pretty.json"
check_export "pretty-printed fhir" "$ct_tmp/pretty.json"

run "$CT_BIN" --db "$db" audit export --patient mitdb-100 --out "$ct_tmp/p100.ndjson"
expect_match "filtered export summary" '^exported 1 of 13 entries .* subtree hashes\)$' "$out"
check_export "patient filter, ndjson" "$ct_tmp/p100.ndjson" \
  '1 entry of a log of 13 \(filter: patient mitdb-100; [0-9]+ subtree hash(es)? stands? for the others\)'
run "$CT_BIN" --db "$db" audit export --format fhir --patient mitdb-101 --since 2000-01-01 --out "$ct_tmp/p101.json"
check_export "patient and since filter, fhir" "$ct_tmp/p101.json" 'filter: since 2000-01-01T00:00:00.000Z, patient mitdb-101'
run "$CT_BIN" --db "$db" audit export --since 2999-01-01T00:00Z --out "$ct_tmp/none.ndjson"
check_export "filter matching nothing" "$ct_tmp/none.ndjson" '0 entries of a log of'

# Standard output, and the same content.
run "$CT_BIN" --db "$db" audit export
expect_eq "export to stdout exits 0" 0 "$rc"
expect_match "stdout export starts with the header" '^\{"type":"header","format":"cardiotwin-audit-export"' "$out"

# Tampered exports.
line=$(grep -n '"seq":3,' "$ct_tmp/all.ndjson" | cut -d: -f1)
sed "${line}s/\"actor\":\"[^\"]*\"/\"actor\":\"mallory\"/" "$ct_tmp/all.ndjson" > "$ct_tmp/bad.ndjson"
run "$CT_BIN" audit verify --file "$ct_tmp/bad.ndjson" --pubkey "$pub"
expect_eq "tampered ndjson line: exit 1" 1 "$rc"
expect_match "tampered ndjson line: names line and entry" "bad\\.ndjson line $line: entry 3: hash mismatch" "$err"
run python3 "$verifier" "$ct_tmp/bad.ndjson" "$pub"
expect_eq "tampered ndjson line: the documented verifier fails" 1 "$rc"
expect_match "tampered ndjson line: the documented verifier names it" 'FAIL: entry 3: hash mismatch' "$err"

sed "${line}d" "$ct_tmp/all.ndjson" > "$ct_tmp/gap.ndjson"
run "$CT_BIN" audit verify --file "$ct_tmp/gap.ndjson" --pubkey "$pub"
expect_match "removed ndjson line" 'entry 3 missing \(the chain jumps from entry 2 to 4\)' "$err"
head -n 9 "$ct_tmp/all.ndjson" > "$ct_tmp/cut.ndjson"
run "$CT_BIN" audit verify --file "$ct_tmp/cut.ndjson" --pubkey "$pub"
expect_eq "cut export: exit 1" 1 "$rc"
expect_match "cut export: says so" 'ends without its end item after entry' "$err"

python3 - "$ct_tmp/all.json" "$ct_tmp/bad.json" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
for e in b["entry"]:
    r = e["resource"]
    if r["resourceType"] == "AuditEvent" and r["id"] == "5":
        r["agent"][0]["who"]["identifier"]["value"] = "mallory"
json.dump(b, open(sys.argv[2], "w"))
EOF
run "$CT_BIN" audit verify --file "$ct_tmp/bad.json" --pubkey "$pub"
expect_eq "edited FHIR agent: exit 1" 1 "$rc"
expect_match "edited FHIR agent: names the entry" 'Bundle entry 6: entry 5: the AuditEvent says something else than the entry its hashes cover' "$err"
python3 - "$ct_tmp/all.json" "$ct_tmp/bad2.json" <<'EOF'
import base64, json, sys
b = json.load(open(sys.argv[1]))
for e in b["entry"]:
    r = e["resource"]
    if r["resourceType"] == "AuditEvent" and r["id"] == "7":
        sub = r["extension"][0]["extension"][0]
        raw = bytearray(base64.b64decode(sub["valueBase64Binary"]))
        raw[-3] ^= 1
        sub["valueBase64Binary"] = base64.b64encode(bytes(raw)).decode()
json.dump(b, open(sys.argv[2], "w"))
EOF
run "$CT_BIN" audit verify --file "$ct_tmp/bad2.json" --pubkey "$pub"
expect_eq "edited FHIR canonical bytes: exit 1" 1 "$rc"
expect_match "edited FHIR canonical bytes: names the entry" 'entry 7: ' "$err"
run python3 "$verifier" "$ct_tmp/bad2.json" "$pub"
expect_eq "edited FHIR canonical bytes: the documented verifier fails" 1 "$rc"

# Without the public key the checkpoints prove nothing: refused.
run "$CT_BIN" audit verify --file "$ct_tmp/all.ndjson"
expect_eq "no --pubkey with --file: exit 1" 1 "$rc"
expect_match "no --pubkey: says what to give" 'give --pubkey' "$err"
run "$CT_BIN" audit verify --file "$ct_tmp/nonexistent"
expect_eq "missing export file: exit 1" 1 "$rc"
printf 'hello\n' > "$ct_tmp/junk.txt"
run "$CT_BIN" audit verify --file "$ct_tmp/junk.txt" --pubkey "$pub"
expect_match "not an export" 'not a cardiotwin audit export' "$err"

# A checkpoint checked by hand, as docs/audit.md shows.
cp_line=$(grep '"type":"checkpoint"' "$ct_tmp/all.ndjson" | head -1)
field() { printf '%s' "$cp_line" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
printf 'cardiotwin audit checkpoint v1\ncheckpoint %s\nsize %s\nhead %s\nroot %s\ntime_ms %s\n' \
  "$(field checkpoint)" "$(field size)" "$(field head_hash)" "$(field root)" "$(field time_ms)" > "$ct_tmp/msg"
field signature | xxd -r -p > "$ct_tmp/sig"
run openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$ct_tmp/msg" -sigfile "$ct_tmp/sig"
expect_eq "openssl verifies a checkpoint signature by hand" 0 "$rc"
expect_eq "the key id is SHA-256 of the raw public key" "$(field key_id)" \
  "$(openssl pkey -pubin -in "$pub" -outform DER | tail -c 32 | sha256sum | cut -d' ' -f1)"
printf 'x' >> "$ct_tmp/msg"
run openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$ct_tmp/msg" -sigfile "$ct_tmp/sig"
expect_eq "one byte more and openssl refuses" 1 "$rc"

# Usage errors.
run "$CT_BIN" --db "$db" audit export --format xml
expect_eq "--format xml is a usage error" 2 "$rc"
run "$CT_BIN" --db "$db" audit export --since yesterday
expect_eq "--since yesterday is a usage error" 2 "$rc"
expect_match "--since says what it takes" 'YYYY-MM-DD' "$err"
run "$CT_BIN" --db "$db" audit export --since 2024-05-01T12:00:00
expect_match "--since without a zone is refused" 'has no zone' "$err"

finish
