#!/usr/bin/env bash
# `cardiotwin eval` end to end: reference annotations scored against
# themselves (100%, with the exact beat counts of the test period), test
# annotation files of our own making, the JSON document, the paced-record
# summary, and the errors a user meets.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

line_of() { printf '%s\n' "$out" | grep -E "^$1 " || true; }

# --- the reference against itself ---------------------------------------------
run "$CT_BIN" eval --test-annotator atr 100 101 207 203
expect_eq "eval atr vs atr exits 0" 0 "$rc"
expect_eq "no progress bar when stderr is not a terminal" "" "$err"
expect_match "100: 1902 beats after 5 min, all 100%" \
  '^100 +1902 +100\.00 +100\.00 +100\.00 +100\.00 +100\.00 +100\.00 +- +- +- +-$' "$(line_of 100)"
expect_match "101: no VEB, so VEB statistics undefined" \
  '^101 +1523 +100\.00 +100\.00 +- +- +100\.00 +100\.00 ' "$(line_of 101)"
expect_match "207: beats in VF are excluded (1592)" '^207 +1592 +100\.00' "$(line_of 207)"
expect_match "203: AF episodes and durations 100%" \
  '^203 +2481 .* 100 +100 +100 +100$' "$(line_of 203)"
expect_match "gross over 4 records" '^Gross +7498 +100\.00 +100\.00' "$(line_of Gross | head -1)"
expect_match "totals" '^Total QRS complexes: 7498  Total VEBs: 483  Total SVEBs: 139$' \
  "$(printf '%s\n' "$out" | grep '^Total' | head -1)"
expect_eq "no paced record, no second summary" 0 "$(printf '%s\n' "$out" | grep -c 'Excluding paced' || true)"

# --- paths, --records-dir, and the paced summary ----------------------------------
run env -u CARDIOTWIN_MITDB "$CT_BIN" eval --test-annotator atr --records-dir "$CARDIOTWIN_MITDB" 102 "$CARDIOTWIN_MITDB/100"
expect_eq "bare name in --records-dir and a path" 0 "$rc"
expect_match "paced 102 scored (Q beats)" '^102 +1821 +100\.00' "$(line_of 102)"
expect_match "summary without paced records" '^Excluding paced records \(102, 104, 107, 217\) \(1 record\)$' \
  "$(printf '%s\n' "$out" | grep '^Excluding')"
expect_match "its gross line counts only 100" '^Gross +1902 ' "$(line_of Gross | tail -1)"

# --- JSON ---------------------------------------------------------------------------
run "$CT_BIN" eval --json --test-annotator atr 100 104
expect_eq "--json exits 0" 0 "$rc"
printf '%s' "$out" >"$ct_tmp/eval.json"
check=$(node -e '
const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const r = j.records, s = j.summary;
const out = [
  r.length, r[0].record, r[0].reference_beats, r[0].matrix.counts[0][0], r[0].matrix.counts[1][1],
  r[0].matrix.counts[2][2], r[0].beats.qrs_se.percent, r[0].beats.qrs_se.num, r[0].beats.qrs_se.den,
  r[0].start_sample, r[0].end_sample, r[0].match_window_samples,
  r[1].paced, r[1].beats.sveb_se.defined, r[1].beats.sveb_se.percent,
  s.all.reference_beats, s.all.gross.qrs_pp.num, s.all.average.qrs_se.records,
  s.excluding_paced.records.join("+"), s.excluding_paced.reference_beats, r[0].af.episode_se.defined,
];
console.log(out.join(" "));' "$ct_tmp/eval.json" 2>&1)
expect_eq "JSON content" \
  "2 100 1902 1872 29 1 100 1902 1902 108000 650000 54 true false  3759 3759 2 100 1902 false" "$check"

# --- test annotation files of our own -------------------------------------------------
# The reference under another annotator name scores 100%; an empty annotation
# file (only the end marker) finds nothing: Se 0, +P undefined.
mkdir -p "$ct_tmp/db"
for f in hea dat atr; do ln -s "$CARDIOTWIN_MITDB/100.$f" "$ct_tmp/db/100.$f"; done
ln -s "$CARDIOTWIN_MITDB/100.atr" "$ct_tmp/db/100.tst"
printf '\0\0' >"$ct_tmp/db/100.empty"
printf '\x4d\x04' >"$ct_tmp/db/100.cut"  # one word and no end marker
run "$CT_BIN" eval --test-annotator tst --records-dir "$ct_tmp/db" 100
expect_match "another annotator name" '^100 +1902 +100\.00 +100\.00' "$(line_of 100)"
run "$CT_BIN" eval --test-annotator empty --records-dir "$ct_tmp/db" 100
expect_eq "empty test file exits 0" 0 "$rc"
expect_match "empty test file: Se 0, +P undefined" '^100 +1902 +0\.00 +- +0\.00 +- +0\.00 +- ' "$(line_of 100)"
run "$CT_BIN" eval --test-annotator cut --records-dir "$ct_tmp/db" 100
expect_eq "truncated test file exits 1" 1 "$rc"
expect_match "and names the file" '100\.cut' "$err"

# --- errors ---------------------------------------------------------------------------
run "$CT_BIN" eval --test-annotator atr 100 999
expect_eq "unknown record exits 1" 1 "$rc"
expect_match "and names it" '^cardiotwin eval: record 999: no such record' "$err"
expect_eq "and prints no partial table" "" "$out"
run "$CT_BIN" eval --bogus 100
expect_eq "bad option exits 2" 2 "$rc"
expect_match "and says so" "unknown option '--bogus'" "$err"
run "$CT_BIN" eval --lead 99x 100
expect_eq "bad --lead exits 2" 2 "$rc"
run "$CT_BIN" eval --lead
expect_eq "--lead without value exits 2" 2 "$rc"
run "$CT_BIN" eval
expect_eq "no record exits 2" 2 "$rc"
run "$CT_BIN" eval --test-annotator nope 100
expect_eq "missing test annotation file exits 1" 1 "$rc"
expect_match "and names it" '100\.nope' "$err"
run "$CT_BIN" eval --test-annotator '../x' 100
expect_eq "annotator with a path exits 2" 2 "$rc"
run "$CT_BIN" eval --help
expect_eq "--help exits 0" 0 "$rc"
expect_match "--help describes --test-annotator" '--test-annotator ANN' "$out"

# --- the detector itself ------------------------------------------------------------------
run "$CT_BIN" eval 100
expect_eq "eval with the detector exits 0" 0 "$rc"
expect_match "and scores record 100" '^100 +1902 +[0-9]+\.[0-9]{2} +[0-9]+\.[0-9]{2} ' "$(line_of 100)"

finish
