#!/usr/bin/env bash
# `cardiotwin import` end to end: records 100-109 into a real SQLite file,
# idempotent re-import, and a corrupt record that must change nothing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

db="$ct_tmp/ct.db"
recs=()
for r in 100 101 102 103 104 105 106 107 108 109; do recs+=("$CARDIOTWIN_MITDB/$r"); done

# Dump of everything stored, to prove "unchanged" byte for byte.
dump() { sqlite3 "$db" .dump | sha256sum | cut -d' ' -f1; }

run "$CT_BIN" --db "$db" import "${recs[@]}"
expect_eq "import 100-109 exits 0" 0 "$rc"
expect_eq "import prints one line per record" 10 "$(printf '%s\n' "$out" | grep -c ': imported ')"
expect_match "record 100 summary" \
  '^100: imported 2 leads \(MLII, V5\), 30:05\.556, 650000 samples per lead, 2274 annotations, 2273 beats$' \
  "$(printf '%s\n' "$out" | grep '^100:')"
expect_match "record 108 has 1763 beats" '1763 beats$' "$(printf '%s\n' "$out" | grep '^108:')"
expect_eq "no progress bar when stderr is not a terminal" "" "$err"

expect_eq "10 records stored" 10 "$(sqlite3 "$db" 'SELECT count(*) FROM record')"
expect_eq "10 patients stored" 10 "$(sqlite3 "$db" 'SELECT count(*) FROM patient')"
expect_eq "20 signals stored" 20 "$(sqlite3 "$db" 'SELECT count(*) FROM signal')"
expect_eq "samples stored in blocks, not rows" \
  "$((20 * ((650000 + 3599) / 3600)))" "$(sqlite3 "$db" 'SELECT count(*) FROM signal_block')"
expect_eq "sample count per signal" 13000000 "$(sqlite3 "$db" 'SELECT sum(n_samples) FROM signal_block')"
expect_eq "2274 annotations for 100" 2274 "$(sqlite3 "$db" \
  "SELECT count(*) FROM annotation a JOIN record r ON r.id = a.record_id WHERE r.name = '100' AND a.annotator = 'atr'")"
expect_eq "journal mode is WAL" wal "$(sqlite3 "$db" 'PRAGMA journal_mode')"
expect_eq "database file mode 0600" 600 "$(stat -c %a "$db")"

# The first block of 100's MLII equals the first 3600 samples decoded by hand
# from the 212 file (first value 995 per the header).
first=$(sqlite3 "$db" "SELECT hex(substr(b.samples, 1, 4)) FROM signal_block b JOIN signal s ON s.id = b.signal_id
  JOIN record r ON r.id = s.record_id WHERE r.name = '100' AND s.idx = 0 AND b.start_sample = 0")
expect_eq "first two MLII samples of 100 (995, 995 little-endian)" "E303E303" "$first"

before=$(dump)
run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/100" "$CARDIOTWIN_MITDB/101"
expect_eq "re-import exits 0" 0 "$rc"
expect_eq "re-import says unchanged" 2 "$(printf '%s\n' "$out" | grep -c 'already imported, unchanged')"
expect_eq "re-import changes nothing" "$before" "$(dump)"

# A copy of record 100 with one byte of its .dat changed, in a fresh folder
# named like the original collection: the checksum must catch it.
bad="$ct_tmp/bad/mitdb"
mkdir -p "$bad"
cp "$CARDIOTWIN_MITDB/100.hea" "$CARDIOTWIN_MITDB/100.dat" "$CARDIOTWIN_MITDB/100.atr" "$bad/"
chmod u+w "$bad"/100.*
printf '\x55' | dd of="$bad/100.dat" bs=1 seek=975000 conv=notrunc status=none
db2="$ct_tmp/ct2.db"
run "$CT_BIN" --db "$db2" import "$CARDIOTWIN_MITDB/101"
before2=$(sqlite3 "$db2" .dump | sha256sum)
run "$CT_BIN" --db "$db2" import "$bad/100"
expect_eq "corrupt record exits 1" 1 "$rc"
expect_match "corrupt record: checksum error naming record and signal" \
  'record 100.*signal [01].*checksum|checksum.*record 100.*signal' "$err"
expect_eq "corrupt record: error is one line plus the summary" 2 "$(printf '%s\n' "$err" | wc -l)"
expect_eq "corrupt record: database unchanged" "$before2" "$(sqlite3 "$db2" .dump | sha256sum)"

# Same files under the name of an already stored record but different bytes.
run "$CT_BIN" --db "$db" import "$bad/100"
expect_eq "other files under a stored name exit 1" 1 "$rc"
expect_match "other files under a stored name are refused" 'already stored from other files' "$err"
expect_eq "refused re-import changes nothing" "$before" "$(dump)"

# A truncated .dat.
cp "$CARDIOTWIN_MITDB/101.hea" "$CARDIOTWIN_MITDB/101.atr" "$bad/"
head -c 1949998 "$CARDIOTWIN_MITDB/101.dat" > "$bad/101.dat"
run "$CT_BIN" --db "$ct_tmp/fresh.db" import "$bad/101"
expect_eq "truncated .dat exits 1" 1 "$rc"
expect_match "truncated .dat names the sizes" '101\.dat.*1949998.*1950000' "$err"

# Several records, one missing: the others are imported, exit 1.
run "$CT_BIN" --db "$ct_tmp/ct3.db" import "$CARDIOTWIN_MITDB/103" "$ct_tmp/nowhere/999"
expect_eq "a missing record exits 1" 1 "$rc"
expect_match "a missing record is named" '999' "$err"
expect_eq "the other record is still imported" 1 "$(sqlite3 "$ct_tmp/ct3.db" 'SELECT count(*) FROM record')"

run "$CT_BIN" --db "$db" import
expect_eq "no RECORD is a usage error" 2 "$rc"
run "$CT_BIN" --db "$db" import --bogus "$CARDIOTWIN_MITDB/100"
expect_eq "unknown option is a usage error" 2 "$rc"
expect_match "unknown option is named" "'--bogus'" "$err"
run "$CT_BIN" import --help
expect_eq "import --help exits 0" 0 "$rc"
expect_match "import --help documents RECORD" 'usage: cardiotwin import' "$out"
run "$CT_BIN" --version
expect_match "--version" '^cardiotwin [0-9]+\.[0-9]+\.[0-9]+$' "$out"

# --db falls back to $CARDIOTWIN_DB.
run env CARDIOTWIN_DB="$ct_tmp/env.db" "$CT_BIN" import "$CARDIOTWIN_MITDB/103"
expect_eq "CARDIOTWIN_DB is used when --db is absent" 1 "$(sqlite3 "$ct_tmp/env.db" 'SELECT count(*) FROM record')"

finish
