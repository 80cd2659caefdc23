#!/usr/bin/env bash
# The dashboard's WebSocket feed (/ws/feed, docs/dashboard.md), through a
# real client (tests/tools/ct_ws_probe.c: TLS, the HTTP upgrade, masked
# frames): the upgrade is refused without a credential (401) and from
# another origin (403); record 106 replayed at 16x gives hello, a stream
# message (360 Hz, 2 leads), contiguous binary frames whose samples are the
# record's own (format 212 decoded here), beats including class V sent
# after their samples, and a status every second; two sockets on two
# records each get their own stream; a live patient's subscribe gets its
# last seconds of samples; a bad message gets an error and the socket stays
# usable; a patient-bound token cannot replay records; subscribes are in
# the audit log; the number of sockets is capped.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${CT_TOOL_ct_ws_probe:?CT_TOOL_ct_ws_probe must name the WebSocket probe}"
probe=$CT_TOOL_ct_ws_probe

ct_state

for r in 106 100; do
  run "$CT_BIN" --db "$db" import "$CARDIOTWIN_MITDB/$r"
  expect_eq "import $r: exit 0" 0 "$rc"
done
ct_token "$state/admin.token" admin ws-admin
ct_token "$state/clin.token" clinician dr-ws
ct_token "$state/device.token" device gw
clin=$(cat "$state/clin.token")
ct_serve_start --no-web
ws() { "$probe" --port "$port" --cafile "$cert" "$@"; }

# ---- the upgrade: credentials, scope, origin ----------------------------------------------------
run ws --duration-ms 500
expect_eq "no credential: the upgrade is refused" 3 "$rc"
expect_match "no credential: 401 with a JSON message" '^\{"upgrade":401,"body":".*message' "$out"
run ws --token "ct_notATokenOfOursnotATokenOfOursnotATokenOfOu" --duration-ms 500
expect_match "an unknown token: 401" '^\{"upgrade":401' "$out"
run ws --token "$clin" --origin https://evil.example --duration-ms 500
expect_match "another Origin: 403" '^\{"upgrade":403,.*origin' "$out"
run ws --token "$clin" --no-origin --duration-ms 500
expect_match "no Origin: 403" '^\{"upgrade":403' "$out"
run ws --token "$(cat "$state/device.token")" --duration-ms 500
expect_match "a device token (no Observation.r): 403" '^\{"upgrade":403,.*Observation\.r' "$out"

# ---- replay of record 106 at 16x from 60 s (PVCs) -------------------------------------------------
# Two sockets at once: 106 and 100, each with its own cursor.
ws --token "$clin" --duration-ms 4000 --samples "$ct_tmp/s106.txt" \
  --send '0:{"type":"subscribe","source":"record","id":"106","speed":16,"start_s":60}' >"$ct_tmp/w106.out" &
p1=$!
ws --token "$clin" --duration-ms 4000 --samples "$ct_tmp/s100.txt" \
  --send '0:{"type":"subscribe","source":"record","id":"100","speed":4,"start_s":0}' >"$ct_tmp/w100.out" &
p2=$!
wait $p1 && ok "socket on 106 ran its course" || fail "socket on 106 failed"
wait $p2 && ok "socket on 100 ran its course" || fail "socket on 100 failed"

# analyse OUTPUT: one line of facts about what a socket received
analyse() {
  python3 - "$1" <<'PY'
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
first = msgs[0].get("type") if msgs else None
streams = [m for m in msgs if m.get("type") == "stream"]
bins = [m for m in msgs if "binary" in m]
contiguous = all(b["first_sample"] == a["first_sample"] + a["n_frames"] for a, b in zip(bins, bins[1:]))
sizes_ok = all(b["size_ok"] and b["binary"] == 83 and b["version"] == 1 for b in bins)
sent = -1
late = 0
classes = set()
beats = 0
statuses = 0
for m in msgs:
    if "binary" in m:
        sent = m["first_sample"] + m["n_frames"]
    elif m.get("type") == "beats":
        for b in m["beats"]:
            beats += 1
            classes.add(b["cls"])
            if b["sample"] >= sent:
                late += 1
    elif m.get("type") == "status":
        statuses += 1
s = streams[0] if streams else {}
print(first, s.get("id"), s.get("fs_hz"), len(s.get("leads", [])), s.get("first_sample"), s.get("live"),
      "contiguous" if bins and contiguous else "gaps", "sized" if sizes_ok else "badsize",
      bins[0]["first_sample"] if bins else None, "beats-after-samples" if late == 0 else "early-beats",
      "V" if "V" in classes else "noV", beats > 0, statuses)
PY
}
read -r f id fs nl first live contig sized first_bin order hasv hasbeats statuses <<<"$(analyse "$ct_tmp/w106.out")"
expect_eq "106: hello first" hello "$f"
expect_eq "106: stream of record 106, 360 Hz, 2 leads, from sample 21600, not live" "106 360.0 2 21600 False" \
  "$id $fs $nl $first $live"
expect_eq "106: binary frames from 21600, contiguous, well formed" "21600 contiguous sized" "$first_bin $contig $sized"
expect_eq "106: beats came after the samples that hold them" beats-after-samples "$order"
expect_eq "106: beats include class V" "V True" "$hasv $hasbeats"
if [ "$statuses" -ge 3 ]; then ok "106: a status at least once a second ($statuses in 4 s)"; else fail "106: $statuses status messages in 4 s"; fi
frames=$(wc -l <"$ct_tmp/s106.txt")
# 4 s at 16x is 64 s of ECG, 23040 frames; allow for start-up.
if [ "$frames" -ge 14000 ] && [ "$frames" -le 25000 ]; then ok "106: played at about 16x ($frames frames in 4 s)"; else fail "106: $frames frames in 4 s at 16x"; fi
# The samples sent are the record's: 106.dat is format 212.
cmp_dat() { # cmp_dat DAT SAMPLES: "equal N" or the first difference
  python3 - "$1" "$2" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
def s12(v): return v - 4096 if v & 0x800 else v
n = 0
for line in open(sys.argv[2]):
    f, a, b = (int(x) for x in line.split())
    o = f * 3
    want = (s12(d[o] | ((d[o + 1] & 0x0f) << 8)), s12(d[o + 2] | ((d[o + 1] & 0xf0) << 4)))
    if (a, b) != want:
        print("differs at", f, (a, b), want)
        sys.exit(0)
    n += 1
print("equal", n > 1000)
PY
}
expect_eq "106: every sample sent equals the record's" "equal True" "$(cmp_dat "$CARDIOTWIN_MITDB/106.dat" "$ct_tmp/s106.txt")"
read -r f id fs nl first live contig sized first_bin order hasv hasbeats statuses <<<"$(analyse "$ct_tmp/w100.out")"
expect_eq "100 (second socket): its own stream from sample 0" "100 360.0 2 0 False 0 contiguous" \
  "$id $fs $nl $first $live $first_bin $contig"
expect_eq "100: every sample sent equals the record's" "equal True" "$(cmp_dat "$CARDIOTWIN_MITDB/100.dat" "$ct_tmp/s100.txt")"
frames=$(wc -l <"$ct_tmp/s100.txt")
if [ "$frames" -ge 3000 ] && [ "$frames" -le 6500 ]; then ok "100: played at about 4x, its own pace ($frames frames)"; else fail "100: $frames frames in 4 s at 4x"; fi

# ---- bad messages: an error each, the socket stays usable; pause, seek ----------------------------
run ws --token "$clin" --duration-ms 2500 \
  --send '0:nonsense' \
  --send '50:{"type":"subscribe","source":"record","id":"no-such-record"}' \
  --send '100:{"type":"subscribe","source":"record","id":"106","speed":99}' \
  --send '150:{"type":"warp"}' \
  --send '200:{"type":"seek","t_s":1}' \
  --send '250:{"type":"subscribe","source":"record","id":"106","speed":1,"start_s":0}' \
  --send '1200:{"type":"pause"}' \
  --send '1700:{"type":"seek","t_s":600}' \
  --send '1750:{"type":"resume"}'
expect_eq "bad messages: the probe ends normally" 0 "$rc"
errors=$(grep -c '"type":"error"' <<<"$out" || true)
expect_eq "bad messages: one error each (5)" 5 "$errors"
expect_match "not JSON: said so" 'not a JSON object' "$out"
expect_match "an unknown record: named" 'no record no-such-record' "$out"
expect_match "a speed out of range: the range" 'speed.*0\.25\.\.16' "$out"
expect_match "an unknown type: the types" 'unknown message type ..warp.. \(subscribe, pause' "$out"
expect_match "seek before subscribe: said so" 'subscribe to a source first' "$out"
seq=$(python3 -c '
import json, sys
s = [json.loads(l) for l in sys.stdin if l.strip()]
streams = [m["first_sample"] for m in s if m.get("type") == "stream"]
bins = [m for m in s if "binary" in m]
after = [b["first_sample"] for b in bins if b["first_sample"] >= 216000]
print(streams, len(bins) > 0, after[0] if after else None)' <<<"$out")
expect_eq "after the errors: the subscribe works, and a seek to 600 s restarts the stream there" "[0, 216000] True 216000" "$seq"

# ---- a patient-bound token, and the audit log ----------------------------------------------------------
stream_live() { # RECORD SECONDS
  run "$CT_BIN" stream "$CARDIOTWIN_MITDB/$1" --to "https://127.0.0.1:$port/fhir" --token-file "$state/admin.token" \
    --ca-file "$cert" --speed max --limit-seconds "$2" --seconds-per-observation 2
}
stream_live 119 20
expect_eq "stream 119 (20 s) to the live twin: exit 0" 0 "$rc"
ct_token "$state/bound.token" clinician bound-119 --patient mitdb-119
run ws --token "$(cat "$state/bound.token")" --duration-ms 1500 \
  --send '0:{"type":"subscribe","source":"record","id":"106"}' \
  --send '100:{"type":"subscribe","source":"patient","id":"mitdb-100"}' \
  --send '200:{"type":"subscribe","source":"patient","id":"mitdb-119","seconds":5}'
expect_match "bound token: no record replay" 'bound to Patient/mitdb-119: it cannot replay records' "$out"
expect_match "bound token: no other patient" 'bound to Patient/mitdb-119 and cannot see another patient' "$out"
live=$(python3 -c '
import json, sys
s = [json.loads(l) for l in sys.stdin if l.strip()]
st = [m for m in s if m.get("type") == "stream"]
bins = [m for m in s if "binary" in m]
n = sum(b["n_frames"] for b in bins)
print(st[0]["id"] if st else None, st[0]["live"] if st else None, st[0]["first_sample"] if st else None, n)' <<<"$out")
expect_eq "bound token: its own live patient, its last 5 s (samples 5400..7200)" "mitdb-119 True 5400 1800" "$live"

# The live patient's samples are the record's too (the stream started at sample 0).
ws --token "$clin" --duration-ms 1500 --samples "$ct_tmp/s119.txt" \
  --send '0:{"type":"subscribe","source":"patient","id":"mitdb-119","seconds":10}' >"$ct_tmp/w119.out"
expect_eq "live 119: the samples sent equal the record's" "equal True" "$(cmp_dat "$CARDIOTWIN_MITDB/119.dat" "$ct_tmp/s119.txt")"
expect_match "live 119: beats of the samples already held are sent" '"type":"beats"' "$(cat "$ct_tmp/w119.out")"
run ws --token "$clin" --duration-ms 800 --send '0:{"type":"subscribe","source":"patient","id":"nobody"}'
expect_match "a patient the twin does not monitor: an error" 'Patient/nobody is not monitored' "$out"

audit=$("$CT_BIN" --db "$db" audit export --format ndjson 2>/dev/null | python3 -c '
import json, sys
seen = set()
for line in sys.stdin:
    e = json.loads(line)
    d = e.get("detail") or {}
    if isinstance(d, str):
        d = json.loads(d)
    if d.get("via") == "/ws/feed":
        seen.add((e["actor"], e["action"], d.get("source"), d.get("record") or e.get("patient")))
print(sorted(seen))')
expect_match "subscribes are audited: who watched record 106" "\('dr-ws', 'read', 'record', '106'\)" "$audit"
expect_match "subscribes are audited: who watched patient mitdb-119" "\('bound-119', 'read', 'patient', 'mitdb-119'\)" "$audit"

# ---- the cap: 4 workers allow 2 sockets -------------------------------------------------------------
ct_serve_stop
ct_serve_start --no-web --threads 4
ws --token "$clin" --duration-ms 2500 >"$ct_tmp/c1.out" &
c1=$!
ws --token "$clin" --duration-ms 2500 >"$ct_tmp/c2.out" &
c2=$!
sleep 1
run ws --token "$clin" --duration-ms 300
expect_match "a third socket with 4 workers: 503" '^\{"upgrade":503,.*too many live feeds' "$out"
wait $c1 || true
wait $c2 || true
expect_match "the first two got their hello" '"type":"hello"' "$(cat "$ct_tmp/c1.out" "$ct_tmp/c2.out")"
run ws --token "$clin" --duration-ms 300
expect_match "once they closed, a new socket is accepted" '"type":"hello"' "$out"
ct_serve_stop
expect_match "the server stops cleanly with the feed's numbers" 'live feed: [0-9]+ ticks with viewers' "$(cat "$ct_tmp/srv.err")"

finish
