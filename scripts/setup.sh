#!/usr/bin/env bash
# Installs what cardiotwin needs to build and test on Debian 12, and fetches
# civetweb's source from Debian's own source package into .deps/ (once).
# Idempotent: a second run installs nothing and fetches nothing.
#
# Why civetweb from source: Debian's binary libcivetweb1 (1.15) loads OpenSSL
# at run time through the 1.1 API and calls SSL_get_peer_certificate, which
# OpenSSL 3 no longer exports; the first HTTPS request then crashes a worker.
# We compile the same Debian source into the project with OPENSSL_API_3_0 and
# NO_SSL_DL instead. See docs/building.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps="$here/.deps"
civetweb_version="1.15"
civetweb_dir="$deps/civetweb-$civetweb_version"

packages=(build-essential cmake pkg-config clang libclang-rt-14-dev
          libjansson-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev
          libcmocka-dev sqlite3 openssl curl ca-certificates dpkg-dev xz-utils
          chromium)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node packages of the integration tests (a FHIR client and the FHIR R4
# JSON schema), exactly as package-lock.json pins them. `npm ci` starts from
# scratch, so it runs only when node_modules is missing or older than the
# lock file.
if [ -f "$here/package-lock.json" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is missing (install Node.js 20 or newer)" >&2
    exit 1
  fi
  if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules" ]; then
    echo "setup: npm ci"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$here/node_modules"
  fi
fi

# Fixes we carry on top of Debian's civetweb source, applied once to the
# unpacked tree (also to a tree fetched before a fix existed). Each is an
# edit at one unique, named place; setup fails loudly if the place is not
# found, rather than build an unfixed server.
#  header-end: civetweb 1.15's parse_http_headers takes a header line that
#  does not start with a visible ASCII byte (a name byte >= 0x80, a control
#  byte, an obsolete folded line) for the end of the headers and silently
#  drops the lines after it, Content-Length and Transfer-Encoding included,
#  so the body would be read as the next request on the connection. With
#  the fix such a request is malformed (400), as RFC 9112 5.2 allows.
apply_civetweb_fixes() {
  local dir="$1" c="$1/src/civetweb.c"
  if ! grep -q "cardiotwin fix: header-end" "$c"; then
    local anchor="/\* End of headers reached. \*/"
    if [ "$(grep -c "$anchor" "$c")" != "1" ]; then
      echo "setup: civetweb.c has changed: cannot apply the header-end fix (see scripts/setup.sh)" >&2
      exit 1
    fi
    sed -i "s|^\(\t*\)$anchor|&\n\1/* cardiotwin fix: header-end: anything but the blank line ending the\n\1 * headers is a malformed header line, not their end. */\n\1if ((*dp != 13) \&\& (*dp != 10) \&\& (*dp != 0)) {\n\1\treturn -1;\n\1}|" "$c"
    grep -q "cardiotwin fix: header-end" "$c" || { echo "setup: the header-end fix did not apply" >&2; exit 1; }
    echo "setup: civetweb: applied the header-end fix"
  fi
  #  body-time: pull_all, which reads a request body for mg_read, gave up
  #  only when a single receive timed out, so a client sending a byte every
  #  few seconds held a worker for as long as it liked. With the fix a read
  #  returns what it has once request_timeout_ms has passed, and
  #  src/http/body.c's minimum pace closes the connection.
  if ! grep -q "cardiotwin fix: body-time" "$c"; then
    if [ "$(grep -c '^pull_all(FILE \*fp, struct mg_connection \*conn, char \*buf, int len)$' "$c")" != "1" ]; then
      echo "setup: civetweb.c has changed: cannot apply the body-time fix (see scripts/setup.sh)" >&2
      exit 1
    fi
    awk 'BEGIN { state = 0 }
         /^pull_all\(FILE \*fp, struct mg_connection \*conn, char \*buf, int len\)$/ { state = 1 }
         { print }
         state == 1 && /^\t\t\tlen -= n;$/ {
           print "\t\t\t/* cardiotwin fix: body-time: bytes trickling in do not extend the"
           print "\t\t\t * request timeout: return what was read once it has passed. */"
           print "\t\t\tif ((timeout >= 0.0)"
           print "\t\t\t    && ((mg_get_current_time_ns() - start_time) > timeout_ns)) {"
           print "\t\t\t\tbreak;"
           print "\t\t\t}"
           state = 2
         }' "$c" > "$c.fixed"
    if ! grep -q "cardiotwin fix: body-time" "$c.fixed"; then
      rm -f "$c.fixed"
      echo "setup: the body-time fix did not apply" >&2
      exit 1
    fi
    mv "$c.fixed" "$c"
    echo "setup: civetweb: applied the body-time fix"
  fi
}

if [ -f "$civetweb_dir/src/civetweb.c" ] && [ -f "$civetweb_dir/include/civetweb.h" ]; then
  apply_civetweb_fixes "$civetweb_dir"
  exit 0
fi

# A private apt state holding only deb-src twins of the machine's own deb
# entries: the system's sources stay untouched and no mirror is hard-coded.
echo "setup: fetching civetweb $civetweb_version source from Debian"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/parts" "$work/lists/partial" "$work/src"
: > "$work/empty.list"
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  sed -n '/^Types:/ { /\bdeb\b/ s/^Types:.*/Types: deb-src/ }; p' "$f" > "$work/parts/$(basename "$f")"
done
if [ -f /etc/apt/sources.list ]; then
  sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list > "$work/parts/from-sources-list.list"
fi
for f in /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" > "$work/parts/$(basename "$f")"
done
apt_opts=(-o "Dir::Etc::SourceList=$work/empty.list" -o "Dir::Etc::SourceParts=$work/parts"
          -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
"${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq
(cd "$work/src" && "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" source -qq "civetweb=$civetweb_version*" >/dev/null 2>&1 \
   || "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" source -qq civetweb >/dev/null)
src=$(find "$work/src" -maxdepth 1 -type d -name "civetweb-$civetweb_version*" | head -n 1)
if [ -z "$src" ] || [ ! -f "$src/src/civetweb.c" ]; then
  echo "setup: could not unpack civetweb $civetweb_version source" >&2
  exit 1
fi
mkdir -p "$deps"
rm -rf "$civetweb_dir.tmp"
mkdir -p "$civetweb_dir.tmp"
cp -r "$src/src" "$src/include" "$src/LICENSE.md" "$civetweb_dir.tmp/"
[ -d "$src/debian" ] && cp "$src/debian/changelog" "$civetweb_dir.tmp/debian-changelog" || true
apply_civetweb_fixes "$civetweb_dir.tmp"
mv "$civetweb_dir.tmp" "$civetweb_dir"
echo "setup: civetweb source in $civetweb_dir"
