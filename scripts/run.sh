#!/usr/bin/env bash
# The embedded default: installs what is needed, builds cardiotwin (Release),
# imports MIT-BIH records 100-109 into var/cardiotwin.db and serves HTTPS on
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

exec "$bin" --db "$db" serve --bind "${CT_BIND:-127.0.0.1}" --port "${CT_PORT:-8443}"
