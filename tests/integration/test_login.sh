#!/usr/bin/env bash
# The dashboard login end to end (docs/dashboard.md "Login", docs/security.md
# "Users and login"): the real `cardiotwin serve`, users made by
# `cardiotwin user create`, and curl with a cookie jar as the browser.
# Checked: the cookie's attributes, a session reading FHIR, CSRF on a
# POST, one 401 message for a wrong password and an unknown name, the lock
# after five failures (429 + Retry-After even with the right password) and
# `user unlock`, logout ending the session, the audit entries of all that
# and of refused requests (and their bound), the per-credential rate limit
# with its Retry-After, the per-address login limit, the user command's
# refusals, and that 20 slow clients dribbling headers or a body do not keep
# /healthz or an authenticated read from answering.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state

# ---- the user command ----------------------------------------------------------------------
printf 'correct horse battery\n' >"$ct_tmp/pw"
printf 'short pw\n' >"$ct_tmp/short"
run ct user --help
expect_eq "user --help exits 0" 0 "$rc"
expect_match "... and says how passwords are stored" 'scrypt' "$out"
run ct user create --name alice
expect_eq "create without --role: usage error" 2 "$rc"
run ct user create --name gw --role device --password-file "$ct_tmp/pw"
expect_eq "a device user: usage error (devices get tokens)" 2 "$rc"
run ct user list
expect_eq "list on a database that does not exist: 1" 1 "$rc"
run ct user create --name alice --role clinician --password-file "$ct_tmp/short"
expect_eq "a password under 12 characters: 1" 1 "$rc"
expect_match "... saying so" 'at least 12' "$err"
run ct user create --name alice --role clinician --password-file "$ct_tmp/pw"
expect_eq "create alice from a password file: 0" 0 "$rc"
expect_eq "... prints nothing on stdout" "" "$out"
run bash -c "printf 'another fine passphrase\n' | '$CT_BIN' --db '$db' user create --name root-admin --role admin"
expect_eq "create an admin reading stdin: 0" 0 "$rc"
run bash -c "printf 'correct horse battery\n' | '$CT_BIN' --db '$db' user create --name alice --role admin"
expect_eq "the same name again: 1" 1 "$rc"
expect_match "... names are never reused" 'already exists' "$err"
run ct user frob
expect_eq "an unknown subcommand: usage error" 2 "$rc"
run ct user list
expect_eq "list: 0" 0 "$rc"
expect_match "list shows alice active with her KDF" 'alice +clinician +- +active +0 .*scrypt:131072:8:1' "$out"
if grep -q 'correct horse' "$db" "$db-wal" 2>/dev/null; then fail "a password is in the database"; else ok "no password in the database or its WAL"; fi

run ct token create --role admin --name admin-1
admin_tok=$out

# ---- the server ----------------------------------------------------------------------------
ct_serve_start --wait 100 --no-web
ok "server listens on port $port"
root=$origin
jar="$ct_tmp/jar"

# req METHOD PATH [curl args]: $code, $body, $hdrs (cookie jar $jar, read and written).
req() {
  ct_fetch "$2" -b "$jar" -c "$jar" -X "$1" "${@:3}"
  [ "$crc" -eq 0 ] || code="curl-failed"
}
login() { # login USER PASSWORD
  printf '{"username":"%s","password":"%s"}' "$1" "$2" >"$ct_tmp/login.json"
  req POST /auth/login -H 'Content-Type: application/json' --data-binary @"$ct_tmp/login.json"
}
audit() { sqlite3 "$db" "SELECT actor || '|' || client || '|' || action || '|' || outcome || '|' || outcome_desc FROM audit_log WHERE $1 ORDER BY seq"; }

: >"$jar"
req GET /auth/session
expect_eq "no session yet: GET /auth/session 401" 401 "$code"

login alice 'correct horse battery'
expect_eq "login: 200" 200 "$code"
expect_eq "... the body names the user and role" "alice clinician" "$(jget "b['user'] + ' ' + b['role']")"
csrf=$(jget "b['csrf']")
expect_match "... with a CSRF token" '^[A-Za-z0-9_-]{43}$' "$csrf"
expect_match "... and expires_ms" '^[0-9]{13}$' "$(jget "b['expires_ms']")"
cookie=$(header Set-Cookie)
expect_match "Set-Cookie: ct_session, 43 characters" '^ct_session=[A-Za-z0-9_-]{43};' "$cookie"
attrs=$(printf '%s' "$cookie" | tr ';' '\n' | sed 's/^ *//' | tail -n +2 | sort | tr '\n' ' ')
expect_eq "... attributes exactly HttpOnly, Max-Age (12 h), Path=/, SameSite=Strict, Secure" \
  "HttpOnly Max-Age=43200 Path=/ SameSite=Strict Secure " "$attrs"
session_cookie=$(printf '%s' "$cookie" | sed 's/;.*//')
if grep -q "${session_cookie#ct_session=}" "$db" "$db-wal" 2>/dev/null; then
  fail "the session cookie is in the database"
else
  ok "the session cookie is not in the database (only its hash)"
fi

req GET /auth/session
expect_eq "GET /auth/session with the cookie: 200" 200 "$code"
expect_eq "... the same CSRF token" "$csrf" "$(jget "b['csrf']")"
req GET /fhir/Patient
expect_eq "the session reads FHIR (clinician: Patient search 200)" 200 "$code"
req POST /fhir/Patient -H 'Content-Type: application/fhir+json' --data-binary '{"resourceType":"Patient"}'
expect_eq "a POST with the cookie and no X-CSRF-Token: 403" 403 "$code"
expect_match "... an OperationOutcome naming X-CSRF-Token" 'X-CSRF-Token' "$(jget "b['issue'][0]['diagnostics']")"
req POST /fhir/Patient -H 'Content-Type: application/fhir+json' -H "X-CSRF-Token: ${csrf:0:42}A" \
  --data-binary '{"resourceType":"Patient"}'
expect_eq "... a wrong X-CSRF-Token: 403" 403 "$code"
req POST /fhir/Patient -H 'Content-Type: application/fhir+json' -H "X-CSRF-Token: $csrf" \
  --data-binary '{"resourceType":"Patient"}'
expect_eq "... with the right token the request goes on to the scope check (clinician may not create): 403" 403 "$code"
expect_match "... and the refusal is the scope's, naming the user" "the user 'alice' \\(role clinician\\)" \
  "$(jget "b['issue'][0]['diagnostics']")"
# An admin session: the same POST with the token is created.
jar_admin="$ct_tmp/jar-admin"
jar_save=$jar
jar=$jar_admin
login root-admin 'another fine passphrase'
expect_eq "admin login: 200" 200 "$code"
acsrf=$(jget "b['csrf']")
req POST /fhir/Patient -H 'Content-Type: application/fhir+json' --data-binary '{"resourceType":"Patient"}'
expect_eq "admin session, POST without X-CSRF-Token: 403" 403 "$code"
req POST /fhir/Patient -H 'Content-Type: application/fhir+json' -H "X-CSRF-Token: $acsrf" \
  --data-binary '{"resourceType":"Patient"}'
expect_eq "admin session, POST with X-CSRF-Token: 201" 201 "$code"
# A Bearer header wins over the cookie, and needs no CSRF token.
req POST /fhir/Patient -H 'Content-Type: application/fhir+json' -H "Authorization: Bearer $admin_tok" \
  --data-binary '{"resourceType":"Patient"}'
expect_eq "a bearer token with the cookie present: the token counts, no CSRF needed: 201" 201 "$code"
req GET /fhir/Patient -H "Authorization: Bearer ct_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
expect_eq "a wrong bearer token is not rescued by a valid cookie: 401" 401 "$code"
jar=$jar_save

# ---- wrong passwords, unknown names, the lock ------------------------------------------------------
login alice 'wrong password!!'
expect_eq "a wrong password: 401" 401 "$code"
msg_wrong=$(jget "b['message']")
login nobody 'correct horse battery'
expect_eq "an unknown user: 401" 401 "$code"
expect_eq "... with the very same message" "$msg_wrong" "$(jget "b['message']")"
printf 'not json' >"$ct_tmp/bad.json"
req POST /auth/login -H 'Content-Type: application/json' --data-binary @"$ct_tmp/bad.json"
expect_eq "a login body that is not JSON: 400" 400 "$code"
req POST /auth/login -H 'Content-Type: application/x-www-form-urlencoded' --data-binary 'username=alice&password=x'
expect_eq "a form-encoded login (what a cross-site form can send): 415" 415 "$code"
for i in 2 3 4 5; do
  login alice "wrong password $i"
  expect_eq "failure $i: 401" 401 "$code"
done
login alice 'correct horse battery'
expect_eq "after 5 failures the right password gets 429" 429 "$code"
retry=$(header Retry-After)
expect_match "... with Retry-After about 15 minutes" '^(8[4-9][0-9]|900)$' "$retry"
run ct user list
expect_match "user list shows alice locked" 'alice +clinician +- +locked' "$out"
run ct user unlock alice
expect_eq "user unlock alice: 0" 0 "$rc"
expect_match "... says it was locked" 'unlocked user alice' "$err"
: >"$jar"
login alice 'correct horse battery'
expect_eq "after unlock the right password: 200" 200 "$code"
csrf=$(jget "b['csrf']")
old_cookie="$ct_tmp/jar-old"
cp "$jar" "$old_cookie"

# ---- logout ---------------------------------------------------------------------------------------
req POST /auth/logout
expect_eq "logout without X-CSRF-Token: 403" 403 "$code"
req POST /auth/logout -H "X-CSRF-Token: $csrf"
expect_eq "logout with it: 204" 204 "$code"
expect_match "... clears the cookie" '^ct_session=; .*Max-Age=0' "$(header Set-Cookie)"
code=$(curl -sS --cacert "$cert" -b "$old_cookie" -o "$ct_tmp/body" -w '%{http_code}' "$root/fhir/Patient")
expect_eq "the old cookie after logout: 401" 401 "$code"
expect_match "... the session has ended" 'session has ended' "$(jget "b['issue'][0]['diagnostics']")"
code=$(curl -sS --cacert "$cert" -H "Cookie: ct_session=not-a-session" -o "$ct_tmp/body" -w '%{http_code}' \
  "$root/fhir/Patient")
expect_eq "a made-up cookie: 401" 401 "$code"
code=$(curl -sS --cacert "$cert" -H "Cookie: ct_session=a; ct_session=b" -o "$ct_tmp/body" -w '%{http_code}' \
  "$root/fhir/Patient")
expect_eq "two session cookies: 401" 401 "$code"

# ---- the audit log ------------------------------------------------------------------------------------
expect_eq "audit: user-create entries for alice and root-admin" 2 \
  "$(sqlite3 "$db" "SELECT count(*) FROM audit_log WHERE action='user-create'")"
expect_match "audit: a successful login of alice from 127.0.0.1" '^alice\|127\.0\.0\.1\|login\|0\|' \
  "$(audit "action='login' AND outcome=0 AND actor='alice'")"
expect_match "audit: a failed login (wrong password)" 'alice\|127\.0\.0\.1\|login\|8\|login refused: wrong password' \
  "$(audit "action='login' AND outcome=8")"
expect_match "audit: a failed login (no such user)" 'nobody\|127\.0\.0\.1\|login\|8\|login refused: no such user' \
  "$(audit "action='login' AND outcome=8")"
expect_match "audit: the lock" 'alice\|127\.0\.0\.1\|login\|8\|account locked until' "$(audit "action='login'")"
expect_match "audit: the refused login while locked" 'login refused: the account is locked' "$(audit "action='login'")"
expect_match "audit: the unlock by the operator" 'user-update' "$(audit "action='user-update'")"
expect_match "audit: the logout" '^alice\|127\.0\.0\.1\|logout\|0\|' "$(audit "action='logout'")"
expect_match "audit: the refused 403 (no CSRF token), with the user" \
  'alice\|127\.0\.0\.1\|create\|8\|refused 403: missing or wrong X-CSRF-Token' "$(audit "outcome=8")"
expect_match "audit: the refused 403 (scope)" 'alice\|127\.0\.0\.1\|create\|8\|refused 403: the user' "$(audit "outcome=8")"
expect_match "audit: the refused 401 of the ended session, under the user's name" \
  'alice\|127\.0\.0\.1\|search\|8\|refused 401: the session has ended' "$(audit "outcome=8")"
expect_match "audit: an anonymous 401" 'anonymous\|127\.0\.0\.1\|.*\|8\|refused 401' "$(audit "outcome=8")"
# Anonymous refusals are bounded: 30 more from this address add at most a few entries.
n_before=$(sqlite3 "$db" "SELECT count(*) FROM audit_log WHERE actor='anonymous'")
for _ in $(seq 1 30); do printf 'url = "%s/fhir/Observation"\noutput = /dev/null\n' "$root"; done >"$ct_tmp/urls"
curl -sS --cacert "$cert" -K "$ct_tmp/urls" -w '%{http_code}\n' >"$ct_tmp/codes" || true
expect_eq "30 anonymous requests: all 401" 30 "$(grep -c '^401$' "$ct_tmp/codes")"
n_after=$(sqlite3 "$db" "SELECT count(*) FROM audit_log WHERE actor='anonymous'")
if [ $((n_after - n_before)) -le 5 ]; then ok "... at most 5 more anonymous audit entries ($((n_after - n_before)))"; else
  fail "... $((n_after - n_before)) anonymous audit entries for 30 refusals"; fi
run ct audit verify
expect_eq "the audit chain verifies" 0 "$rc"

# ---- refusals of the user command on a real database ---------------------------------------------------------
run ct user unlock nobody
expect_eq "unlock an unknown user: 1" 1 "$rc"
run ct user disable root-admin
expect_eq "disable root-admin: 0" 0 "$rc"
jar=$jar_admin
req GET /auth/session
expect_eq "the disabled user's session: 401" 401 "$code"
jar=$jar_save
run ct user disable root-admin
expect_eq "disable again: 0, says so" 0 "$rc"
expect_match "... already disabled" 'already disabled' "$err"
run ct user passwd alice --password-file "$ct_tmp/short"
expect_eq "passwd with a short password: 1" 1 "$rc"

# ---- the per-address login limit ---------------------------------------------------------------------
# 20 at once then 10 a minute: a run of quick attempts ends in 429 before any KDF work.
got429=0
for i in $(seq 1 25); do
  login "ghost$i" 'correct horse battery'
  if [ "$code" = 429 ]; then got429=1; break; fi
done
expect_eq "quick login attempts from one address end in 429" 1 "$got429"
expect_match "... with Retry-After" '^[0-9]+$' "$(header Retry-After)"
expect_match "... saying why" 'too many login attempts' "$(jget "b['message']")"

# ---- the per-credential rate limit ------------------------------------------------------------------------
# A second server beside the first: from here $origin and $port are its (req is not used again).
ct_serve_start --name srv2 --wait 100 --no-web --rate-limit 2 --rate-burst 5
r2=$origin
for _ in $(seq 1 8); do printf 'url = "%s/fhir/Patient"\noutput = /dev/null\n' "$r2"; done >"$ct_tmp/urls"
curl -sS --cacert "$cert" -H "Authorization: Bearer $admin_tok" -K "$ct_tmp/urls" -D "$ct_tmp/rl-hdrs" \
  -w '%{http_code}\n' >"$ct_tmp/codes" || true
expect_eq "8 requests at once, burst 5: 5 pass" 5 "$(grep -c '^200$' "$ct_tmp/codes")"
expect_eq "... 3 get 429" 3 "$(grep -c '^429$' "$ct_tmp/codes")"
expect_match "... with Retry-After: 1" '^Retry-After: 1' "$(tr -d '\r' <"$ct_tmp/rl-hdrs" | grep -i '^Retry-After')"
code=$(curl -sS --cacert "$cert" -H "Authorization: Bearer $admin_tok" -o "$ct_tmp/body" -w '%{http_code}' "$r2/fhir/Patient")
expect_eq "... once more at once: 429" 429 "$code"
expect_eq "... as an OperationOutcome (throttled)" "OperationOutcome throttled" \
  "$(jget "b['resourceType'] + ' ' + b['issue'][0]['code']")"
sleep 1.1
code=$(curl -sS --cacert "$cert" -H "Authorization: Bearer $admin_tok" -o /dev/null -w '%{http_code}' "$r2/fhir/Patient")
expect_eq "... a second later it passes" 200 "$code"
run "$CT_BIN" --db "$db" serve --port 0 --rate-limit abc
expect_eq "serve --rate-limit abc: usage error" 2 "$rc"
run "$CT_BIN" --db "$db" serve --port 0 --rate-burst -3
expect_eq "serve --rate-burst -3: usage error" 2 "$rc"

# ---- slow clients --------------------------------------------------------------------------------------------
# 20 connections (more than the 16 workers) that finish TLS and then send
# their headers one byte a second, and 2 that send their headers and part
# of a body and then stall; for at most 15 s. Meanwhile /healthz and a
# token's read must answer, and the server must drop each slow connection
# within request_timeout (5 s) of taking it on. Each client reports how
# long after its handshake the server closed it (99 if never).
cat >"$ct_tmp/slow.py" <<'PY'
import select, socket, ssl, sys, threading, time
port, cafile, n, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
token = sys.argv[5] if len(sys.argv) > 5 else ""
closed_after = []
lock = threading.Lock()
def closed(s, wait):
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return False
    try:
        return s.recv(4096) == b"" or True
    except (OSError, ssl.SSLError):
        return True
def one():
    ctx = ssl.create_default_context(cafile=cafile)
    took = 99.0
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="localhost")
        start = time.monotonic()
        if mode == "body":
            s.sendall(b"POST /fhir/Observation HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
                      b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 100000\r\n\r\n{\"a\":")
            if closed(s, 15):
                took = time.monotonic() - start
        else:
            data = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 40
            for i in range(len(data)):
                if time.monotonic() - start > 15:
                    break
                try:
                    s.send(data[i:i + 1])
                except (OSError, ssl.SSLError):
                    took = time.monotonic() - start
                    break
                if closed(s, 1.0):
                    took = time.monotonic() - start
                    break
    except (OSError, ssl.SSLError):
        pass
    with lock:
        closed_after.append(took)
ts = [threading.Thread(target=one) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("%.1f" % max(closed_after))
PY
python3 "$ct_tmp/slow.py" "$port" "$cert" 20 headers >"$ct_tmp/slow-h.out" 2>&1 &
slow1=$!
python3 "$ct_tmp/slow.py" "$port" "$cert" 2 body "$admin_tok" >"$ct_tmp/slow-b.out" 2>&1 &
slow2=$!
sleep 1.5
t0=$(date +%s.%N)
code=$(curl -sS --max-time 12 --cacert "$cert" -o /dev/null -w '%{http_code}' "$r2/healthz") || code="timeout"
t1=$(date +%s.%N)
expect_eq "with 22 slow clients, /healthz answers 200" 200 "$code"
secs=$(python3 -c "print(round($t1 - $t0, 1))")
if python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 8 else 1)"; then ok "... within 8 s (${secs} s)"; else fail "... took ${secs} s"; fi
sleep 1.1
t0=$(date +%s.%N)
code=$(curl -sS --max-time 12 --cacert "$cert" -H "Authorization: Bearer $admin_tok" -o /dev/null -w '%{http_code}' \
  "$r2/fhir/Patient") || code="timeout"
t1=$(date +%s.%N)
expect_eq "... and an authenticated read answers 200" 200 "$code"
secs=$(python3 -c "print(round($t1 - $t0, 1))")
if python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 8 else 1)"; then ok "... within 8 s (${secs} s)"; else fail "... took ${secs} s"; fi
wait "$slow1" || true
wait "$slow2" || true
slow_h=$(cat "$ct_tmp/slow-h.out")
slow_b=$(cat "$ct_tmp/slow-b.out")
if python3 -c "import sys; sys.exit(0 if float('$slow_h') < 8 else 1)" 2>/dev/null; then
  ok "the server dropped every header dribbler within ${slow_h} s of its handshake"
else fail "header dribblers held on: $slow_h"; fi
if python3 -c "import sys; sys.exit(0 if float('$slow_b') < 8 else 1)" 2>/dev/null; then
  ok "the server dropped the stalled bodies within ${slow_b} s"
else fail "stalled bodies held on: $slow_b"; fi

# ---- nothing secret in the server's output -----------------------------------------------------------
if grep -q -e 'correct horse' -e "${session_cookie#ct_session=}" -e "$csrf" "$ct_tmp"/srv*.out "$ct_tmp"/srv*.err; then
  fail "a password, cookie or CSRF token is in the server's output"
else
  ok "no password, cookie or CSRF token in the server's output"
fi

finish
