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

if [ -f "$civetweb_dir/src/civetweb.c" ] && [ -f "$civetweb_dir/include/civetweb.h" ]; then
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
mv "$civetweb_dir.tmp" "$civetweb_dir"
echo "setup: civetweb source in $civetweb_dir"
