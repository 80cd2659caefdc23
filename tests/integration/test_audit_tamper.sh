#!/usr/bin/env bash
# `cardiotwin audit` against a real database tampered with by hand, the way
# an attacker with the file would (sqlite3 shell: drop the trigger, edit,
# put the trigger back): a changed field, a deleted entry, an inserted one,
# two swapped, the tail cut after a checkpoint, an edit hidden by re-hashing
# the rest of the chain, a forged checkpoint. Each copy must fail `audit
# verify` with exit 1 and the entry named; the untouched copy verifies.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

db="$ct_tmp/ct.db"
gen="$ct_tmp/gen/synth"
mkdir -p "$gen"
# A tiny valid WFDB record (one signal of zeros): a fast import, one entry.
make_record() {
  printf '%s 1 360 100\n%s.dat 16 200 16 0 0 0 0 ECG\n' "$1" "$1" > "$gen/$1.hea"
  head -c 200 /dev/zero > "$gen/$1.dat"
}
for i in $(seq 1 10); do make_record "r$i"; done
for i in 11 12 13; do make_record "r$i"; done

# Entries 1..2: MIT-BIH 100 and 101; 3..10 the small records. Checkpoint 1
# signs 10 entries; two more imports and checkpoint 2 signs 12; one more,
# unsigned: 13 entries.
run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/100" "$CARDIOTWIN_MITDB/101"
expect_eq "import 100 and 101" 0 "$rc"
recs=(); for i in $(seq 1 8); do recs+=("$gen/r$i"); done
run "$CT_BIN" --db "$db" import "${recs[@]}"
expect_eq "import 8 small records" 0 "$rc"
expect_eq "one audit entry per import" 10 "$(sqlite3 "$db" 'SELECT count(*) FROM audit_log')"
expect_eq "import entries name the patient" "mitdb-100|import|Patient|mitdb-100|operator|cli" \
  "$(sqlite3 "$db" 'SELECT patient, action, resource_type, resource_id, actor_role, client FROM audit_log WHERE seq = 1')"
expect_eq "the actor is the OS user" "$(id -un)" "$(sqlite3 "$db" 'SELECT actor FROM audit_log WHERE seq = 1')"
expect_match "the detail names record and files" '"record":"100","sha256":"[0-9a-f]{64}"' \
  "$(sqlite3 "$db" 'SELECT detail FROM audit_log WHERE seq = 1')"
# A re-import that changes nothing writes nothing, in the log either.
run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/100"
expect_eq "re-import adds no entry" 10 "$(sqlite3 "$db" 'SELECT count(*) FROM audit_log')"

run "$CT_BIN" --db "$db" audit checkpoint
expect_eq "first checkpoint exits 0" 0 "$rc"
expect_match "first checkpoint creates the key" "created the signing key .*cardiotwin-audit-key.pem" "$out"
expect_match "checkpoint 1 signs 10 entries" '^checkpoint 1: 10 entries, root [0-9a-f]{16}\.\.\., key [0-9a-f]{16}\.\.\.$' \
  "$(printf '%s\n' "$out" | tail -1)"
expect_eq "private key is 0600" 600 "$(stat -c %a "$ct_tmp/cardiotwin-audit-key.pem")"
expect_eq "public key is 0644" 644 "$(stat -c %a "$ct_tmp/cardiotwin-audit-pub.pem")"
run "$CT_BIN" --db "$db" audit checkpoint
expect_eq "nothing new: nothing signed" "checkpoint 1 already signs all 10 entries; nothing to do" "$out"
run "$CT_BIN" --db "$db" import "$gen/r11" "$gen/r12"
run "$CT_BIN" --db "$db" audit checkpoint
expect_match "checkpoint 2 signs 12 entries" '^checkpoint 2: 12 entries' "$out"
run "$CT_BIN" --db "$db" import "$gen/r13"

run "$CT_BIN" --db "$db" audit verify
expect_eq "untouched log verifies" 0 "$rc"
expect_match "OK with the count" '^audit log OK: 13 entries, hash chain intact; 2 checkpoints verified with key [0-9a-f]{16}\.\.\., the newest signs entries 1\.\.12; entry 13 is chained but not yet signed$' "$out"
run "$CT_BIN" --db "$db" audit verify --from 12
expect_match "--from starts at a checkpoint" 'entries 11\.\.13 re-hashed, from checkpoint 1' "$out"

# The database refuses edits while its triggers stand.
run sqlite3 "$db" "UPDATE audit_log SET actor = 'mallory' WHERE seq = 5"
expect_match "UPDATE refused by the database" 'append-only: an entry cannot be changed' "$err"
run sqlite3 "$db" "DELETE FROM audit_log WHERE seq = 13"
expect_match "DELETE refused by the database" 'append-only: an entry cannot be deleted' "$err"
run sqlite3 "$db" "DELETE FROM audit_checkpoint"
expect_match "checkpoint DELETE refused" 'a checkpoint cannot be deleted' "$err"

triggers=$(sqlite3 "$db" "SELECT sql || ';' FROM sqlite_schema WHERE type = 'trigger' AND tbl_name LIKE 'audit%'")
drop_all="DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; DROP TRIGGER audit_log_append_only;
  DROP TRIGGER audit_checkpoint_no_update; DROP TRIGGER audit_checkpoint_no_delete; DROP TRIGGER audit_checkpoint_append_only;"

# tamper NAME SQL: a copy of the database edited by SQL between dropping and
# recreating the triggers; sets $copy.
tamper() {
  copy="$ct_tmp/$1.db"
  cp "$db" "$copy"
  sqlite3 "$copy" "$drop_all $2; $triggers"
}
# expect_caught NAME MESSAGE-REGEX [verify options]
expect_caught() {
  local name=$1 want=$2
  shift 2
  run "$CT_BIN" --db "$copy" audit verify --pubkey "$ct_tmp/cardiotwin-audit-pub.pem" "$@"
  expect_eq "$name: exit 1" 1 "$rc"
  expect_match "$name: names the entry" "$want" "$err"
  expect_eq "$name: one line" 1 "$(printf '%s\n' "$err" | wc -l)"
}

tamper field "UPDATE audit_log SET patient = 'mitdb-999' WHERE seq = 5"
expect_eq "triggers are back in the tampered copy" 6 "$(sqlite3 "$copy" "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name LIKE 'audit%'")"
expect_caught "changed field" '^cardiotwin audit verify: entry 5: hash mismatch: the entry is not what was hashed \(a field was changed\)$'

tamper delete "DELETE FROM audit_log WHERE seq = 7"
expect_caught "deleted entry" 'entry 7 missing \(the chain jumps from entry 6 to 8\)'

tamper insert "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 6; UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1006;
  INSERT INTO audit_log SELECT 6, time_ms + 1, 'mallory', actor_role, client, action, resource_type, resource_id,
    resource_version, patient, outcome, outcome_desc, request_id, detail, hash, randomblob(32) FROM audit_log WHERE seq = 5"
expect_caught "inserted entry" 'entry 6: hash mismatch'

tamper swap "UPDATE audit_log SET seq = 1000 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = 3;
  UPDATE audit_log SET seq = 3 WHERE seq = 1000"
expect_caught "swapped entries" "entry 3: prev_hash is not entry 2's hash \\(an entry was removed, inserted or moved here\\)"

tamper cut "DELETE FROM audit_log WHERE seq > 10"
expect_caught "tail cut after a checkpoint" 'the log ends at entry 10 but checkpoint 2 signed 12 entries \(entries 11\.\.12 were removed\)'
run "$CT_BIN" --db "$copy" audit checkpoint
expect_eq "checkpoint refuses a cut log" 1 "$rc"
expect_match "checkpoint says why" 'not signing' "$err"

tamper cut_unsigned "DELETE FROM audit_log WHERE seq = 13"
run "$CT_BIN" --db "$copy" audit verify
expect_eq "an unsigned tail entry removed is not detectable (documented)" 0 "$rc"

tamper forged_checkpoint "UPDATE audit_checkpoint SET size = 9, head_hash = (SELECT hash FROM audit_log WHERE seq = 9) WHERE id = 1"
expect_caught "forged checkpoint" 'checkpoint 1: the signature does not verify'

tamper removed_checkpoint "DELETE FROM audit_checkpoint WHERE id = 1"
expect_caught "removed checkpoint" 'checkpoint 1 missing \(the first checkpoint is 2\)'

# The careful attacker: change entry 4 and recompute every hash after it, so
# that the chain holds. Only the signed Merkle root shows it.
copy="$ct_tmp/rehash.db"
cp "$db" "$copy"
sqlite3 "$copy" "$drop_all"
python3 - "$copy" <<'EOF'
import hashlib, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
def text(s):
    b = s.encode(); return struct.pack(">I", len(b)) + b
db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4")
prev = db.execute("SELECT hash FROM audit_log WHERE seq = 3").fetchone()[0]
for r in db.execute("SELECT * FROM audit_log WHERE seq >= 4 ORDER BY seq").fetchall():
    (seq, t, actor, role, client, action, rtype, rid, ver, patient, outcome, odesc, reqid, detail, _, _) = r
    c = (b"CTAUDIT1" + struct.pack(">QQ", seq, t) + text(actor) + text(role) + text(client) + text(action)
         + text(rtype) + text(rid) + struct.pack(">Q", ver) + text(patient) + struct.pack(">Q", outcome)
         + text(odesc) + text(reqid) + text(detail or ""))
    h = hashlib.sha256(prev + c).digest()
    db.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, seq))
    prev = h
db.commit()
EOF
sqlite3 "$copy" "$triggers"
expect_caught "re-hashed chain" 'checkpoint 1 \(signed 10 entries\) does not match the log: its Merkle root differs, so an entry in 1\.\.10 was changed'
run "$CT_BIN" --db "$copy" audit verify --from 13
expect_eq "re-hash: --from 13 catches it at the checkpoint's head" 1 "$rc"
expect_match "re-hash: --from names entry 12" 'entry 12: its hash is not the head that checkpoint 2 signed' "$err"

# Another key cannot vouch for this log.
mkdir -p "$ct_tmp/other"
run "$CT_BIN" --db "$ct_tmp/other.db" import "$gen/r1"
run "$CT_BIN" --db "$ct_tmp/other.db" audit checkpoint
run "$CT_BIN" --db "$db" audit verify --pubkey "$ct_tmp/cardiotwin-audit-pub.pem"
expect_eq "own key verifies" 0 "$rc"
mv "$ct_tmp/cardiotwin-audit-pub.pem" "$ct_tmp/own-pub.pem"
mv "$ct_tmp/cardiotwin-audit-key.pem" "$ct_tmp/own-key.pem"
run "$CT_BIN" --db "$ct_tmp/other.db" audit checkpoint --key-dir "$ct_tmp/other"
run "$CT_BIN" --db "$db" audit verify --pubkey "$ct_tmp/other/cardiotwin-audit-pub.pem"
expect_eq "another key: exit 1" 1 "$rc"
expect_match "another key: says so" 'checkpoint 1 was signed by key [0-9a-f]{16}\.\.\., not by the given public key' "$err"
run "$CT_BIN" --db "$db" audit verify
expect_eq "no public key beside the database: exit 1" 1 "$rc"
expect_match "no public key: says what to give" 'no public key to check its signature with \(give --pubkey' "$err"
mv "$ct_tmp/own-pub.pem" "$ct_tmp/cardiotwin-audit-pub.pem"
mv "$ct_tmp/own-key.pem" "$ct_tmp/cardiotwin-audit-key.pem"

# A private key others can read is refused.
chmod 644 "$ct_tmp/cardiotwin-audit-key.pem"
run "$CT_BIN" --db "$db" audit checkpoint
expect_eq "world-readable key refused" 1 "$rc"
expect_match "world-readable key: says chmod" 'readable by others \(mode 0644\); chmod 600 it' "$err"
chmod 600 "$ct_tmp/cardiotwin-audit-key.pem"

# Usage and help.
for sub in checkpoint verify export; do
  run "$CT_BIN" audit "$sub" --help
  expect_eq "audit $sub --help exits 0" 0 "$rc"
  expect_match "audit $sub --help shows usage" "^usage: cardiotwin audit $sub" "$out"
done
run "$CT_BIN" audit --help
expect_eq "audit --help exits 0" 0 "$rc"
run "$CT_BIN" help audit
expect_match "help audit" "^usage: cardiotwin audit checkpoint" "$out"
run "$CT_BIN" audit frobnicate
expect_eq "unknown subcommand exits 2" 2 "$rc"
run "$CT_BIN" --db "$db" audit verify --from 0
expect_eq "--from 0 is a usage error" 2 "$rc"
run "$CT_BIN" --db "$ct_tmp/none.db" audit verify
expect_eq "a missing database is an error, not an empty log" 1 "$rc"
expect_eq "a missing database is not created" "no" "$([ -e "$ct_tmp/none.db" ] && echo yes || echo no)"

finish
