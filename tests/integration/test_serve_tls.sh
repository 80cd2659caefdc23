#!/usr/bin/env bash
# `cardiotwin serve` end to end over real TLS: the self-signed certificate
# made on first start and reused on the next, TLS 1.2 and 1.3 accepted and
# really negotiated, TLS 1.1 and CBC suites refused (with the same client
# shown to succeed otherwise, so the refusals mean something), no
# renegotiation, HSTS and the other headers, plain HTTP answered with
# nothing useful, 200+ requests in parallel with connections dropped
# mid-handshake, and SIGTERM ending it with exit 0 while a silent client
# still holds a connection. Ports are always chosen by the system.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state
key="$state/cardiotwin-key.pem"

url() { echo "https://127.0.0.1:$port$1"; }

# ---- usage errors: one line, exit 2; failures: exit 1 ------------------------
run "$CT_BIN" --db "$db" serve --help
expect_eq "serve --help exits 0" 0 "$rc"
expect_match "serve --help describes the options" '--cert PEM' "$out"
run "$CT_BIN" --db "$db" serve --port 70000
expect_eq "--port 70000 is a usage error" 2 "$rc"
expect_match "--port 70000 says why" "^cardiotwin serve: --port '70000' is not a port number" "$err"
run "$CT_BIN" --db "$db" serve --port 12ab
expect_eq "--port 12ab is a usage error" 2 "$rc"
run "$CT_BIN" --db "$db" serve --cert "$ct_tmp/c.pem"
expect_eq "--cert without --key is a usage error" 2 "$rc"
expect_eq "--cert without --key: one line" 1 "$(printf '%s\n' "$err" | wc -l)"
expect_match "--cert without --key names --key" '--cert needs --key' "$err"
run "$CT_BIN" --db "$db" serve --threads 0
expect_eq "--threads 0 is a usage error" 2 "$rc"
run "$CT_BIN" --db "$db" serve --bind localhost --port 0
expect_eq "--bind with a host name fails" 1 "$rc"
expect_match "--bind with a host name says why" "bind address 'localhost' is not an IPv4 or IPv6 address" "$err"
: >"$ct_tmp/unreadable.pem"
chmod 000 "$ct_tmp/unreadable.pem"
echo "not a key" >"$ct_tmp/k.pem"
chmod 600 "$ct_tmp/k.pem"
run "$CT_BIN" --db "$db" serve --port 0 --cert "$ct_tmp/missing.pem" --key "$ct_tmp/k.pem"
expect_eq "missing certificate fails with exit 1" 1 "$rc"
expect_match "missing certificate is named" "^cardiotwin serve: certificate $ct_tmp/missing.pem: No such file or directory$" "$err"
expect_eq "nothing on stdout when start fails" "" "$out"

# ---- first start: a certificate is generated ------------------------------------
[ ! -e "$cert" ] || fail "state directory starts empty"
ct_serve_start --name first --wait 100
ok "server listens on a port the system chose ($port)"
expect_eq "stdout holds the listening line only" 1 "$(wc -l <"$srv_out")"
expect_eq "key file mode 0600" 600 "$(stat -c %a "$key")"
expect_match "generation is logged" "generated a self-signed certificate for localhost: $cert" "$(cat "$srv_err")"
cert_sum=$(sha256sum "$cert" | cut -d' ' -f1)
key_sum=$(sha256sum "$key" | cut -d' ' -f1)
openssl x509 -in "$cert" -noout -ext subjectAltName >"$ct_tmp/san.txt"
expect_match "certificate names localhost, 127.0.0.1 and ::1" \
  'DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1' "$(cat "$ct_tmp/san.txt")"

# ---- TLS versions ------------------------------------------------------------------
run curl -sS -v --cacert "$cert" --tlsv1.2 --tls-max 1.2 "$(url /healthz)"
expect_eq "TLS 1.2: GET /healthz exits 0" 0 "$rc"
expect_eq "TLS 1.2: body" "{\"status\":\"ok\",\"version\":\"$(
  "$CT_BIN" --version | cut -d' ' -f2)\"}" "$out"
expect_match "TLS 1.2 was negotiated with an AEAD ECDHE suite" \
  'SSL connection using TLSv1\.2 / ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)' "$err"
expect_match "HSTS header" '< Strict-Transport-Security: max-age=63072000' "$err"
expect_match "nosniff header" '< X-Content-Type-Options: nosniff' "$err"
expect_match "frame denial" '< X-Frame-Options: DENY' "$err"
expect_match "no caching of responses" '< Cache-Control: no-store' "$err"
expect_match "JSON content type" '< Content-Type: application/json' "$err"
expect_eq "HSTS sent exactly once" 1 "$(printf '%s\n' "$err" | grep -c 'Strict-Transport-Security')"

run curl -sS -v --cacert "$cert" --tlsv1.3 "$(url /healthz)"
expect_eq "TLS 1.3: GET /healthz exits 0" 0 "$rc"
expect_match "TLS 1.3 was negotiated" 'SSL connection using TLSv1\.3 / TLS_' "$err"
expect_match "TLS 1.3: HSTS header" '< Strict-Transport-Security: max-age=63072000' "$err"

run curl -sS -v --cacert "$cert" --tlsv1.2 --tls-max 1.2 --resolve "localhost:$port:127.0.0.1" \
  "https://localhost:$port/healthz"
expect_eq "the certificate verifies for the name localhost too" 0 "$rc"

# The same client, first allowed TLS 1.2 (succeeds), then held to TLS 1.1.
s_client() { openssl s_client -connect "127.0.0.1:$port" -CAfile "$cert" "$@" </dev/null; }
run s_client -tls1_2 -cipher 'DEFAULT:@SECLEVEL=0'
expect_eq "openssl s_client -tls1_2 succeeds" 0 "$rc"
expect_match "s_client -tls1_2 negotiated TLSv1.2" 'Protocol *: TLSv1\.2' "$out"
expect_match "s_client -tls1_2 verified the certificate" 'Verify return code: 0 \(ok\)' "$out"
run s_client -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
expect_eq "TLS 1.1 handshake fails" 1 "$rc"
expect_match "TLS 1.1 is refused with a protocol_version alert" 'alert protocol version' "$err"
run s_client -tls1 -cipher 'DEFAULT:@SECLEVEL=0'
expect_match "TLS 1.0 is refused with a protocol_version alert" 'alert protocol version' "$err"

# TLS 1.2 suites: a CBC suite is refused, the same client with GCM succeeds.
run s_client -tls1_2 -cipher 'ECDHE-ECDSA-AES128-GCM-SHA256'
expect_match "TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 succeeds" 'Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' "$out"
run s_client -tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA'
expect_eq "TLS 1.2 with CBC suites only fails" 1 "$rc"
expect_match "CBC suites are refused with a handshake_failure alert" 'alert handshake failure' "$err"

# No TLS compression, no session tickets in TLS 1.2, no renegotiation.
run s_client -tls1_2
expect_match "no TLS compression" 'Compression: NONE' "$out"
if grep -q 'TLS session ticket:' <<<"$out"; then
  fail "a TLS 1.2 session ticket was issued"
else
  ok "no TLS 1.2 session ticket"
fi
set +e
reneg=$( (sleep 1; echo R; sleep 1) | openssl s_client -connect "127.0.0.1:$port" -CAfile "$cert" -tls1_2 2>&1)
set -e
expect_match "client asked to renegotiate" 'RENEGOTIATING' "$reneg"
expect_match "renegotiation is refused" 'no renegotiation' "$reneg"

# ---- plain HTTP gets nothing useful ---------------------------------------------------
set +e
plain_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/healthz")
set -e
if [ "$plain_code" = "200" ]; then
  fail "plain HTTP got 200"
else
  ok "plain HTTP does not get a 200 (got '$plain_code')"
fi

# ---- routes ----------------------------------------------------------------------------
code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$cert" "$@"; }
expect_eq "unknown path is 404" 404 "$(code "$(url /nope)")"
expect_eq "POST /healthz is 405" 405 "$(code -X POST "$(url /healthz)")"
expect_eq "HEAD /healthz is 200" 200 "$(code -I "$(url /healthz)")"
run curl -sS -i --cacert "$cert" -X DELETE "$(url /healthz)"
expect_match "405 names the allowed methods" $'Allow: GET, HEAD\r' "$out"
expect_match "404 and 405 carry a JSON body" '"error":"method_not_allowed"' "$out"
expect_eq "an encoded NUL in the path is 400" 400 "$(code "$(url /healthz%00.json)")"
expect_eq "an encoded dot segment is 400" 400 "$(code --path-as-is "$(url /x/%2e%2e/healthz)")"
expect_eq "a body over the limit is 413" 413 \
  "$(code -X POST -H 'Content-Length: 17000000' --max-time 5 "$(url /healthz)")"
# What civetweb answers by itself (here: an HTTP version it does not speak)
# carries the same headers.
set +e
raw=$(printf 'GET /healthz HTTP/9.9\r\nHost: localhost\r\n\r\n' |
  timeout 10 openssl s_client -quiet -connect "127.0.0.1:$port" -CAfile "$cert" 2>/dev/null)
set -e
expect_match "civetweb's own error page: 505" '^HTTP/[0-9.]+ 505 ' "$raw"
expect_match "civetweb's own error page: HSTS" $'Strict-Transport-Security: max-age=63072000\r' "$raw"
expect_match "civetweb's own error page: nosniff" $'X-Content-Type-Options: nosniff\r' "$raw"
expect_eq "query string is accepted" 200 "$(code "$(url '/healthz?patient=secret-id-42')")"
sleep 0.2
expect_match "access log line" '127\.0\.0\.1 - "GET /healthz" 200 33 ' "$(cat "$srv_err")"
if grep -q 'secret-id-42' "$srv_err"; then
  fail "the query string reached the access log"
else
  ok "the query string stays out of the access log"
fi

# ---- load: 4 clients x 50 requests, with handshakes dropped halfway -------------------
urls=()
for i in $(seq 1 50); do urls+=(-o /dev/null "$(url /healthz)"); done
load_dir="$ct_tmp/load"
mkdir -p "$load_dir"
# Two clients reuse one connection for 50 requests (keep-alive), two open a
# new TLS connection for every request.
for c in 1 2; do
  curl -s --cacert "$cert" -w '%{http_code}\n' "${urls[@]}" >"$load_dir/ka$c" 2>&1 &
done
for c in 1 2; do
  (for i in $(seq 1 50); do
     curl -s --cacert "$cert" -o /dev/null -w '%{http_code}\n' "$(url /healthz)"
   done) >"$load_dir/new$c" 2>&1 &
done
# Meanwhile: connections that send half a ClientHello, or nothing, and go away.
for i in $(seq 1 5); do
  exec 5<>"/dev/tcp/127.0.0.1/$port"
  printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' >&5
  exec 5>&-
  exec 5<>"/dev/tcp/127.0.0.1/$port"
  exec 5>&-
done
wait_clients=0
for j in $(jobs -p); do
  [ "$j" = "$server_pid" ] && continue
  wait "$j" || wait_clients=$((wait_clients + 1))
done
expect_eq "all load clients exited 0" 0 "$wait_clients"
expect_eq "200 requests answered 200" 200 "$(cat "$load_dir"/* | grep -c '^200$')"
if kill -0 "$server_pid" 2>/dev/null; then ok "server alive after the load"; else fail "server died under load"; fi
run curl -sS --cacert "$cert" "$(url /healthz)"
expect_match "/healthz still answers after the load" '"status":"ok"' "$out"

# ---- SIGTERM: clean stop, even with a silent client holding a worker ------------------
exec 6<>"/dev/tcp/127.0.0.1/$port"
sleep 0.2
ct_serve_stop
exec 6>&-
expect_eq "SIGTERM: exit code 0" 0 "$stop_rc"
if [ "$stop_tenths" -le 50 ]; then ok "SIGTERM: stopped in ${stop_tenths}00 ms"; else fail "SIGTERM: took ${stop_tenths}00 ms"; fi
expect_match "SIGTERM is logged" 'SIGTERM received, stopping' "$(cat "$srv_err")"
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error' "$srv_err"; then
  fail "sanitizer report: $(grep -E 'Sanitizer|runtime error' "$srv_err" | head -3)"
else
  ok "no sanitizer report"
fi

# ---- second start: the same certificate and key ----------------------------------------
ct_serve_start --name second --wait 100
expect_eq "certificate reused byte for byte" "$cert_sum" "$(sha256sum "$cert" | cut -d' ' -f1)"
expect_eq "key reused byte for byte" "$key_sum" "$(sha256sum "$key" | cut -d' ' -f1)"
if grep -q 'generated a self-signed' "$srv_err"; then fail "second start generated again"; else ok "second start generated nothing"; fi
run curl -sS --cacert "$cert" --tlsv1.3 "$(url /healthz)"
expect_match "second start serves with the old certificate" '"status":"ok"' "$out"
ct_serve_stop INT
expect_eq "SIGINT: exit code 0" 0 "$stop_rc"

# ---- the key loosened: refused -------------------------------------------------------------
chmod 644 "$key"
run "$CT_BIN" --db "$db" serve --port 0
expect_eq "world-readable generated key: exit 1" 1 "$rc"
expect_match "world-readable generated key: says so" "private key $key has mode 0644" "$err"
expect_eq "world-readable generated key: one line" 1 "$(printf '%s\n' "$err" | wc -l)"
expect_eq "world-readable generated key: not replaced" "$key_sum" "$(sha256sum "$key" | cut -d' ' -f1)"
chmod 600 "$key"

# ---- an operator's certificate, on IPv6 --------------------------------------------------
op="$ct_tmp/op"
mkdir -p "$op"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$op/key.pem" -out "$op/cert.pem" -days 30 \
  -subj /CN=localhost -addext "subjectAltName=IP:::1,DNS:localhost" 2>/dev/null
chmod 600 "$op/key.pem"
ct_serve_start --name v6 --wait 100 --bind ::1 --cert "$op/cert.pem" --key "$op/key.pem"
v6line=$(head -n 1 "$srv_out")
expect_match "IPv6 listening line" '^cardiotwin: listening on https://\[::1\]:[0-9]+/$' "$v6line"
v6port=$(printf '%s' "$v6line" | sed -n 's|.*\]:\([0-9]*\)/$|\1|p')
run curl -sS -v -g --cacert "$op/cert.pem" --tlsv1.2 --tls-max 1.2 "https://[::1]:$v6port/healthz"
expect_match "RSA certificate over IPv6: ok" '"status":"ok"' "$out"
expect_match "RSA certificate: an ECDHE-RSA AEAD suite" 'TLSv1\.2 / ECDHE-RSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)' "$err"
set +e
openssl s_client -connect "[::1]:$v6port" -tls1_2 -cipher 'DHE-RSA-AES128-GCM-SHA256' </dev/null >"$ct_tmp/dhe.out" 2>&1
set -e
expect_match "DHE-RSA-AES128-GCM-SHA256 works with an RSA key" 'Cipher is DHE-RSA-AES128-GCM-SHA256' "$(cat "$ct_tmp/dhe.out")"
[ ! -e "$op/cardiotwin-cert.pem" ] && [ "$(ls "$state" | grep -c 'cardiotwin-.*\.pem$')" = 2 ] &&
  ok "an operator certificate generates nothing" || fail "files generated beside an operator certificate"
ct_serve_stop
expect_eq "IPv6 server: SIGTERM exit code 0" 0 "$stop_rc"
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error' "$ct_tmp/v6.err"; then
  fail "sanitizer report (IPv6 run)"
else
  ok "no sanitizer report (IPv6 run)"
fi

finish
