#!/usr/bin/env bash
# Request framing: a header line that does not start with a visible ASCII
# byte (a name byte >= 0x80, a control byte, an obsolete folded line) makes
# the request malformed (400, connection closed). Before the header-end fix
# that scripts/setup.sh applies to civetweb, such a line silently ended the
# headers, the Content-Length after it was dropped, and the body was served
# as a second request on the connection (a smuggled request). Each case
# sends raw bytes over TLS and counts the responses that come back. Then a
# body that trickles in must not hold a worker (the body-time fix).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ct_state
token=$(ct token create --role admin --name framing-admin)
ct_serve_start --wait 100 --no-web

# raw CASE: prints the status codes of every response on one connection
# ("400", "200 200" ...), given the request bytes of CASE.
raw() {
  python3 - "$port" "$cert" "$1" <<'PY'
import re, socket, ssl, sys
port, cert, case = int(sys.argv[1]), sys.argv[2], sys.argv[3]
smuggled = b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n"
head = b"POST /fhir/Patient HTTP/1.1\r\nHost: localhost\r\n"
lines = {
    "high-byte": b"\x80evil: 1\r\n",
    "control-byte": b"\x01evil: 1\r\n",
    "folded": b"X-Long: part one\r\n part two\r\n",
    "plain": b"X-Fine: yes\r\n",
}[case]
req = head + lines + b"Content-Length: %d\r\nContent-Type: application/fhir+json\r\n\r\n" % len(smuggled) + smuggled
ctx = ssl.create_default_context(cafile=cert)
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw_sock:
    with ctx.wrap_socket(raw_sock, server_hostname="localhost") as s:
        s.sendall(req)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                # a keep-alive connection stays open after a full answer
                if case == "plain" and re.search(rb"\r\n\r\n", data) and len(data) > 200:
                    break
        except (socket.timeout, ssl.SSLError, ConnectionResetError):
            pass
print(" ".join(m.decode() for m in re.findall(rb"(?m)^HTTP/1\.[01] (\d{3})", data)))
PY
}

expect_eq "a header name starting with byte 0x80: one 400, nothing smuggled" 400 "$(raw high-byte)"
expect_eq "a header name starting with a control byte: one 400, nothing smuggled" 400 "$(raw control-byte)"
expect_eq "an obsolete folded header line: one 400, nothing smuggled" 400 "$(raw folded)"
# The same request with a sound header is read whole: its body is the
# (unparseable) Patient, refused by the API with 401 (no token), and the
# bytes are never taken for a second request.
expect_eq "a sound request: one answer (401, no token), the body not taken for a request" 401 "$(raw plain)"
# A body trickling in (one byte a second, each under the 5 s receive
# timeout) must not hold a worker: civetweb's body-time fix returns the
# read when the request timeout has passed and the body's minimum pace
# (src/http/body.c) closes the connection. The client gives up after 30 s;
# the server must have closed well before.
trickle=$(python3 - "$port" "$cert" "$token" <<'PY'
import socket, ssl, sys, time
port, cert, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cert)
with socket.create_connection(("127.0.0.1", port), timeout=5) as raw_sock:
    with ctx.wrap_socket(raw_sock, server_hostname="localhost") as s:
        s.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/fhir+json\r\n"
                  b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 100000\r\n\r\n")
        t0 = time.monotonic()
        s.settimeout(1.0)
        closed_after = None
        while time.monotonic() - t0 < 30:
            try:
                s.sendall(b" ")
            except (OSError, ssl.SSLError):
                closed_after = time.monotonic() - t0
                break
            try:
                s.recv(4096)  # an answer or the end: either way the server let go
                closed_after = time.monotonic() - t0
                break
            except socket.timeout:
                pass
            except (OSError, ssl.SSLError):
                closed_after = time.monotonic() - t0
                break
        print("held" if closed_after is None else int(closed_after))
PY
)
if [[ "$trickle" =~ ^[0-9]+$ ]] && [ "$trickle" -ge 2 ] && [ "$trickle" -le 15 ]; then
  ok "an authenticated body trickling at 1 byte/s is cut (after ${trickle} s)"
else
  fail "a body trickling at 1 byte/s held its worker: $trickle"
fi
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$cert" "$origin/healthz")
expect_eq "the server still answers afterwards" 200 "$code"
finish
