#!/usr/bin/env bash
# The embedded default: installs what is needed, builds cardiotwin and its
# dashboard (Release), imports MIT-BIH records 100-109 into var/cardiotwin.db
# (replayable on the dashboard), makes on first run an admin login for the
# dashboard (var/admin-password) and an admin API token (var/admin-token),
# and serves https://localhost:8443/ with three synthetic patients streaming
# live (PVCs and ventricular runs, paroxysmal AF, bradycardia with pauses)
# until Ctrl-C.
#
# Records come from $CARDIOTWIN_MITDB (default: ../shared/data/mitdb beside the
# source tree); when that folder has none, they are downloaded from PhysioNet
# into var/mitdb. Environment: CT_PORT (default 8443), CT_BIND (127.0.0.1),
# CT_DEMO_PATIENTS (synthetic live patients, default 3; 0 for none).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" --target cardiotwin ct_web
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
# The dashboard's admin login, made once: a random password, shown here and
# kept in var/admin-password (0600); the database holds only its scrypt hash.
# Change it with: build/release/cardiotwin --db var/cardiotwin.db user passwd admin
password_file="$here/var/admin-password"
if ! [ -s "$password_file" ]; then
  (umask 077 && openssl rand -base64 18 | tr -d '\n=' | tr '+/' '-_' > "$password_file.tmp")
  if "$bin" --db "$db" user create --name admin --role admin --password-file "$password_file.tmp" >/dev/null; then
    mv "$password_file.tmp" "$password_file"
  else
    rm -f "$password_file.tmp"
    echo "run: could not create the admin login (does user 'admin' exist already? see 'cardiotwin user list')" >&2
  fi
fi
port="${CT_PORT:-8443}"
echo
echo "run: dashboard  https://localhost:$port/   (self-signed certificate: var/cardiotwin-cert.pem)"
if [ -s "$password_file" ]; then
  echo "run: log in as  admin / $(cat "$password_file")   (kept in var/admin-password)"
fi
echo "run: try  curl --cacert var/cardiotwin-cert.pem -H \"Authorization: Bearer \$(cat var/admin-token)\" https://localhost:$port/fhir/Patient"

exec "$bin" --db "$db" serve --bind "${CT_BIND:-127.0.0.1}" --port "$port" --demo "${CT_DEMO_PATIENTS:-3}"
