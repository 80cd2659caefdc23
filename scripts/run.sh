#!/usr/bin/env bash
# The embedded default: installs what is needed, builds cardiotwin (Release),
# imports MIT-BIH records 100-109 into var/cardiotwin.db, makes an admin API
# token on first run (var/admin-token) and serves HTTPS on
# https://localhost:8443/ until Ctrl-C.
#
# Records come from $CARDIOTWIN_MITDB (default: ../shared/data/mitdb beside the
# source tree); when that folder has none, they are downloaded from PhysioNet
# into var/mitdb. Environment: CT_PORT (default 8443), CT_BIND (127.0.0.1).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" --target cardiotwin
bin="$here/build/release/cardiotwin"

mkdir -p var
chmod 0700 var
db="$here/var/cardiotwin.db"
mitdb="${CARDIOTWIN_MITDB:-$here/../shared/data/mitdb}"
records=(100 101 102 103 104 105 106 107 108 109)

if ! [ -f "$mitdb/100.hea" ]; then
  echo "run: no MIT-BIH records in $mitdb; downloading ${records[*]} into var/mitdb"
  mitdb="$here/var/mitdb"
  mkdir -p "$mitdb"
  "$bin" mitdb download --dest "$mitdb" "${records[@]}" || echo "run: download failed; serving without records" >&2
fi

paths=()
for r in "${records[@]}"; do
  [ -f "$mitdb/$r.hea" ] && paths+=("$mitdb/$r")
done
if [ ${#paths[@]} -gt 0 ]; then
  "$bin" --db "$db" import "${paths[@]}"
fi

# An admin token for the API, made once and kept in var/admin-token (0600):
# the database holds only its hash, so this file is the one copy.
token_file="$here/var/admin-token"
if ! [ -s "$token_file" ]; then
  (umask 077 && "$bin" --db "$db" token create --role admin --name "admin-$(date -u +%Y%m%dT%H%M%SZ)" > "$token_file.tmp")
  mv "$token_file.tmp" "$token_file"
  echo "run: admin API token created, shown once here and kept in var/admin-token:"
  echo "  $(cat "$token_file")"
else
  echo "run: admin API token in var/admin-token"
fi
port="${CT_PORT:-8443}"
echo "run: try  curl --cacert var/cardiotwin-cert.pem -H \"Authorization: Bearer \$(cat var/admin-token)\" https://localhost:$port/fhir/Patient"

exec "$bin" --db "$db" serve --bind "${CT_BIND:-127.0.0.1}" --port "$port"
