#!/usr/bin/env bash
# Mutual TLS for device gateways: `cardiotwin serve --client-ca FILE
# [--client-cert required|optional]` with a CA and client certificates made
# here by the openssl command. Required mode: no certificate, or one from
# another CA, fails the handshake; the right one connects, and a bearer
# token is still needed for /fhir. Optional mode: no certificate connects
# too, a wrong one still fails. The certificate's subject and SHA-256
# fingerprint appear in the access log and in the audit entries of requests
# over such connections. The options' refusals: usage errors, a CA file
# that is missing, not PEM, or holds a leaf instead of a CA.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state
pki="$ct_tmp/pki"
mkdir -p "$pki"

# ---- the PKI --------------------------------------------------------------------------------------
quiet() { "$@" >/dev/null 2>&1 || { fail "openssl: $*"; finish; exit 1; }; }
mkca() { # mkca NAME
  quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/O=Hospital/CN=$1" -keyout "$pki/$1.key" -out "$pki/$1.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
mkclient() { # mkclient CA CN
  quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Hospital/CN=$2" \
    -keyout "$pki/$2.key" -out "$pki/$2.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
    >"$pki/ext.cnf"
  quiet openssl x509 -req -in "$pki/$2.csr" -CA "$pki/$1.pem" -CAkey "$pki/$1.key" -CAcreateserial -days 30 \
    -extfile "$pki/ext.cnf" -out "$pki/$2.pem"
}
mkca ward-ca
mkca other-ca
mkclient ward-ca ward3-gateway
mkclient other-ca rogue-gateway
fp=$(openssl x509 -in "$pki/ward3-gateway.pem" -noout -fingerprint -sha256 | sed 's/^.*=//')
ok "a CA, a client certificate it signed ($fp), and another CA's"

# ---- refusals ----------------------------------------------------------------------------------------
run ct serve --port 0 --client-cert required
expect_eq "--client-cert without --client-ca: usage error" 2 "$rc"
expect_match "... naming what is missing" 'needs --client-ca' "$err"
run ct serve --port 0 --client-ca "$pki/ward-ca.pem" --client-cert sometimes
expect_eq "--client-cert sometimes: usage error" 2 "$rc"
run ct serve --port 0 --client-ca ""
expect_eq "--client-ca '': usage error" 2 "$rc"
run ct serve --port 0 --client-ca "$pki/missing.pem"
expect_eq "a CA file that does not exist: 1" 1 "$rc"
expect_match "... naming it" 'client CA file .*missing.pem' "$err"
printf 'not a certificate\n' >"$pki/garbage.pem"
run ct serve --port 0 --client-ca "$pki/garbage.pem"
expect_eq "a CA file without PEM: 1" 1 "$rc"
expect_match "... saying so" 'no PEM certificate' "$err"
run ct serve --port 0 --client-ca "$pki/ward3-gateway.pem"
expect_eq "a leaf certificate given as the CA: 1" 1 "$rc"
expect_match "... saying it is not a CA" 'certificate #1 .*is not a CA certificate' "$err"
cat "$pki/ward-ca.pem" "$pki/ward3-gateway.pem" >"$pki/mixed.pem"
run ct serve --port 0 --client-ca "$pki/mixed.pem"
expect_eq "a CA file whose second certificate is a leaf: 1" 1 "$rc"
expect_match "... naming its position" 'certificate #2' "$err"
run ct serve --help
expect_match "serve --help documents --client-ca" '--client-ca PEM' "$out"

run ct token create --role admin --name admin-1
expect_eq "an admin token" 0 "$rc"
token=$out

# ---- a server -------------------------------------------------------------------------------------------
# stop_server: SIGTERM; each server's log is kept in all.err for the sanitizer check at the end.
stop_server() {
  [ -n "$server_pid" ] || return 0
  ct_serve_stop
  cat "$ct_tmp/srv.err" >>"$ct_tmp/all.err"
}
# get AS PATH [TOKEN]: AS is none, ward3-gateway or rogue-gateway; sets $code and $crc.
get() {
  local args=(--max-time 10)
  [ "$1" != none ] && args+=(--cert "$pki/$1.pem" --key "$pki/$1.key")
  [ -n "${3:-}" ] && args+=(-H "Authorization: Bearer $3")
  ct_fetch "$2" "${args[@]}" 2>"$ct_tmp/curl.err"
}

# ---- required ----------------------------------------------------------------------------------------------
ct_serve_start --wait 100 --client-ca "$pki/ward-ca.pem"
expect_match "the server says mutual TLS is on, required" 'mutual TLS: 1 CA certificate from .*ward-ca.pem, client certificate required' \
  "$(cat "$ct_tmp/srv.err")"
get none /healthz
expect_eq "required: no certificate fails the handshake (curl fails, no HTTP status)" "fails 000" \
  "$([ "$crc" -ne 0 ] && echo fails || echo works) $code"
get rogue-gateway /healthz
expect_eq "required: another CA's certificate fails the handshake" "fails 000" \
  "$([ "$crc" -ne 0 ] && echo fails || echo works) $code"
get ward3-gateway /healthz
expect_eq "required: the gateway's certificate connects" "0 200" "$crc $code"
get ward3-gateway /fhir/Patient
expect_eq "required: the certificate alone is not a caller: /fhir without a token 401" 401 "$code"
get ward3-gateway /fhir/Patient "$token"
expect_eq "required: certificate and token: 200" 200 "$code"
# s_client: the server asks for a certificate and names the CA it trusts.
sc=$(openssl s_client -connect "127.0.0.1:$port" -CAfile "$cert" -cert "$pki/ward3-gateway.pem" \
  -key "$pki/ward3-gateway.key" </dev/null 2>&1 || true)
expect_match "the handshake's acceptable CA names are the ward CA" 'Acceptable client certificate CA names' "$sc"
expect_match "... O = Hospital, CN = ward-ca" 'CN ?= ?ward-ca' "$sc"
stop_server
log=$(cat "$ct_tmp/srv.err")
expect_match "access log: the certificate's subject and fingerprint" \
  "\"GET /fhir/Patient\" 200 .* cert=\"CN=ward3-gateway,O=Hospital\" sha256=$fp" "$log"
expect_match "access log: the token's name too" "admin-1 \"GET /fhir/Patient\" 200" "$log"
run ct audit export --format ndjson --out "$ct_tmp/audit.ndjson"
expect_eq "export the audit log" 0 "$rc"
expect_eq "the audit entry of the search over mTLS names the certificate" True \
  "$(python3 - "$ct_tmp/audit.ndjson" "$fp" <<'EOF'
import json, sys
hits = 0
for line in open(sys.argv[1]):
    item = json.loads(line)
    d = item.get('detail')
    if item.get('type') == 'entry' and item.get('action') == 'search' and d:
        cc = json.loads(d).get('client_cert') if isinstance(d, str) else d.get('client_cert')
        hits += bool(cc and cc['sha256'] == sys.argv[2] and cc['subject'] == 'CN=ward3-gateway,O=Hospital')
print(hits == 1)
EOF
)"

# ---- optional ----------------------------------------------------------------------------------------------
ct_serve_start --wait 100 --client-ca "$pki/ward-ca.pem" --client-cert optional
get none /healthz
expect_eq "optional: no certificate connects" "0 200" "$crc $code"
get none /fhir/Patient "$token"
expect_eq "optional: no certificate, a token: 200" 200 "$code"
get ward3-gateway /fhir/Patient "$token"
expect_eq "optional: the gateway's certificate: 200" 200 "$code"
get rogue-gateway /healthz
expect_eq "optional: another CA's certificate still fails the handshake" "fails 000" \
  "$([ "$crc" -ne 0 ] && echo fails || echo works) $code"
stop_server
log=$(cat "$ct_tmp/srv.err")
expect_eq "optional: one request logged with a certificate, the rest without" "1" \
  "$(grep -c 'sha256=' <<<"$(grep '"GET /fhir/Patient" 200' <<<"$log")")"

# ---- without the option nothing changes ------------------------------------------------------------------------
ct_serve_start --wait 100
get ward3-gateway /healthz
expect_eq "no --client-ca: a client certificate is not asked for, the request works" "0 200" "$crc $code"
# A request line civetweb cannot parse gets our own 400: its status line
# once echoed the client's "HTTP version", i.e. the following header lines
# with the bearer token (found by tests/fuzz/fuzz_http_request.c).
bad=$( (printf 'GET /fhir/x?a=1 b HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n' "$token"; sleep 1) |
  openssl s_client -quiet -connect "127.0.0.1:$port" -CAfile "$cert" 2>/dev/null | tr -d '\r' || true)
expect_eq "a space in the request target: HTTP/1.1 400" "HTTP/1.1 400 Bad Request" "$(head -n 1 <<<"$bad")"
expect_eq "... the token is not echoed back" 0 "$(grep -c -F "$token" <<<"$bad" || true)"
expect_eq "... with the security headers" 1 "$(grep -c '^Strict-Transport-Security: max-age=63072000$' <<<"$bad" || true)"
stop_server
expect_eq "... and nothing about certificates in the access log" 0 "$(grep -c 'sha256=' "$ct_tmp/srv.err" || true)"
# Under the Asan build a sanitizer report in any server's output fails the test.
expect_eq "no sanitizer report from the servers" 0 \
  "$(grep -c -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$ct_tmp/all.err" || true)"

finish
