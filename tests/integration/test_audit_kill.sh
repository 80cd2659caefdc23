#!/usr/bin/env bash
# kill -9 in the middle of a burst of writes: a writer that stores one FHIR
# resource version and its audit entry per transaction, as fast as it can
# (tests/tools/ct_audit_burst.c), is killed with SIGKILL at a random moment,
# six times, with `audit checkpoint` running beside it every other time;
# then an import of MIT-BIH records is killed mid-write, three times. After
# each kill the log must verify, and entries and stored data must match one
# to one: no change without its entry, no entry without its change.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${CT_TOOL_ct_audit_burst:?CT_TOOL_ct_audit_burst must name the burst writer}"

db="$ct_tmp/ct.db"
pub="$ct_tmp/cardiotwin-audit-pub.pem"

# random_sleep MIN_MS SPAN_MS
random_sleep() { sleep "$(printf '0.%03d' $(( $1 + RANDOM % $2 )))"; }

# The invariants, after every kill.
check_db() {
  local what=$1
  run "$CT_BIN" --db "$db" audit verify --pubkey "$pub"
  expect_eq "$what: audit verify exits 0" 0 "$rc"
  [ "$rc" = 0 ] || echo "   $err"
  expect_eq "$what: integrity_check" ok "$(sqlite3 "$db" 'PRAGMA integrity_check')"
  expect_eq "$what: one entry per stored version" \
    "$(sqlite3 "$db" 'SELECT count(*) FROM resource_version')" \
    "$(sqlite3 "$db" "SELECT count(*) FROM audit_log WHERE resource_type = 'Observation'")"
  expect_eq "$what: every stored version has its entry" 0 "$(sqlite3 "$db" "SELECT count(*) FROM resource_version v
    WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.resource_type = v.type AND a.resource_id = v.id
                      AND a.resource_version = v.version)")"
  expect_eq "$what: every entry has its stored version" 0 "$(sqlite3 "$db" "SELECT count(*) FROM audit_log a
    WHERE a.resource_type = 'Observation' AND NOT EXISTS (SELECT 1 FROM resource_version v
      WHERE v.type = a.resource_type AND v.id = a.resource_id AND v.version = a.resource_version)")"
}

run "$CT_TOOL_ct_audit_burst" "$db" 50
expect_eq "a first burst of 50 runs to the end" "0 50" "$rc $out"
run "$CT_BIN" --db "$db" audit checkpoint
expect_eq "first checkpoint" 0 "$rc"
check_db "after 50 transactions"

before=$(sqlite3 "$db" 'SELECT count(*) FROM audit_log')
for round in 1 2 3 4 5 6; do
  "$CT_TOOL_ct_audit_burst" "$db" >/dev/null 2>"$ct_tmp/burst.err" &
  pid=$!
  ct_cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  random_sleep 100 400
  if [ $((round % 2)) -eq 0 ]; then
    # A checkpoint while the writer holds the lock as often as it can.
    run "$CT_BIN" --db "$db" audit checkpoint
    expect_eq "round $round: checkpoint beside the writer exits 0" 0 "$rc"
    [ "$rc" = 0 ] || echo "   $err"
    random_sleep 0 300
  fi
  kill -9 "$pid"
  set +e; { wait "$pid"; } 2>/dev/null; status=$?; set -e
  expect_eq "round $round: the writer died of SIGKILL" 137 "$status"
  check_db "round $round"
  now=$(sqlite3 "$db" 'SELECT count(*) FROM audit_log')
  if [ "$now" -gt "$before" ]; then ok "round $round: the burst wrote ($((now - before)) entries)"; else
    fail "round $round: the burst wrote nothing"; fi
  before=$now
done
run "$CT_BIN" --db "$db" audit checkpoint
expect_eq "a checkpoint after the kills" 0 "$rc"
check_db "after the last checkpoint"

# An import killed mid-write: a record is stored with its entry or not at all.
db2="$ct_tmp/import.db"
recs=()
for r in 100 101 102 103 104 105 106 107 108 109; do recs+=("$CARDIOTWIN_MITDB/$r"); done
for round in 1 2 3; do
  "$CT_BIN" --db "$db2" import "${recs[@]}" >/dev/null 2>&1 &
  pid=$!
  ct_cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  random_sleep 200 700
  kill -9 "$pid" 2>/dev/null || true
  set +e; { wait "$pid"; } 2>/dev/null; set -e
  run "$CT_BIN" --db "$db2" audit verify
  expect_eq "import round $round: audit verify exits 0" 0 "$rc"
  expect_eq "import round $round: one entry per stored record" \
    "$(sqlite3 "$db2" 'SELECT count(*) FROM record')" \
    "$(sqlite3 "$db2" "SELECT count(*) FROM audit_log WHERE action = 'import'")"
  expect_eq "import round $round: the same patients" \
    "$(sqlite3 "$db2" "SELECT group_concat(identifier) FROM (SELECT p.identifier FROM record r JOIN patient p ON p.id = r.patient_id ORDER BY 1)")" \
    "$(sqlite3 "$db2" "SELECT group_concat(patient) FROM (SELECT patient FROM audit_log WHERE action = 'import' ORDER BY 1)")"
done
run "$CT_BIN" --db "$db2" import "${recs[@]}"
expect_eq "the import finishes after the kills" 0 "$rc"
expect_eq "10 records, 10 import entries" "10 10" \
  "$(sqlite3 "$db2" 'SELECT count(*) FROM record') $(sqlite3 "$db2" "SELECT count(*) FROM audit_log WHERE action = 'import'")"
run "$CT_BIN" --db "$db2" audit verify
expect_eq "and the log verifies" 0 "$rc"

finish
