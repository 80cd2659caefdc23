#!/usr/bin/env bash
# The fixes scripts/setup.sh carries on civetweb (docs/http.md, "Fixes
# carried on civetweb"), applied to small stand-ins for civetweb.c that hold
# the two places they change: each applies once, a second run changes
# nothing, and a source whose place has moved stops setup with a message
# instead of building an unfixed server.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fixes() { # fixes DIR: runs setup.sh's apply_civetweb_fixes on DIR in a subshell
  ( source <(sed -n '/^apply_civetweb_fixes()/,/^}/p' "$CT_SOURCE_DIR/scripts/setup.sh")
    apply_civetweb_fixes "$1" )
}
stand_in() { # stand_in DIR: the two places as civetweb 1.15 has them
  mkdir -p "$1/src"
  printf '%s\n' \
    'static int' \
    'pull_all(FILE *fp, struct mg_connection *conn, char *buf, int len)' \
    '{' \
    '		} else {' \
    '			nread += n;' \
    '			len -= n;' \
    '		}' \
    '}' \
    'static int' \
    'parse_http_headers(char **buf, struct mg_header hdr[MG_MAX_HEADERS])' \
    '{' \
    '		if (dp == *buf) {' \
    '			/* End of headers reached. */' \
    '			break;' \
    '		}' \
    '}' >"$1/src/civetweb.c"
}

d="$ct_tmp/cw"
stand_in "$d"
run fixes "$d"
expect_eq "both fixes apply" 0 "$rc"
expect_match "setup says which" 'applied the header-end fix' "$out"
expect_match "... and the other" 'applied the body-time fix' "$out"
expect_eq "the header-end check follows its anchor" \
  "			if ((*dp != 13) && (*dp != 10) && (*dp != 0)) {" \
  "$(grep -A3 'End of headers reached' "$d/src/civetweb.c" | sed -n 4p)"
expect_eq "the body-time check follows len -= n in pull_all" \
  "			if ((timeout >= 0.0)" "$(grep -A3 'len -= n;' "$d/src/civetweb.c" | sed -n 4p)"
cp "$d/src/civetweb.c" "$ct_tmp/once.c"
run fixes "$d"
expect_eq "a second run: ok" 0 "$rc"
expect_eq "a second run says nothing" "" "$out"
if cmp -s "$ct_tmp/once.c" "$d/src/civetweb.c"; then ok "a second run changes nothing"; else fail "a second run changed civetweb.c"; fi

m="$ct_tmp/moved1"
stand_in "$m"
sed -i 's|/\* End of headers reached. \*/|/* end */|' "$m/src/civetweb.c"
run fixes "$m"
expect_eq "header-end's place moved: setup fails" 1 "$rc"
expect_match "... saying which fix" 'cannot apply the header-end fix' "$err"

m="$ct_tmp/moved2"
stand_in "$m"
sed -i 's|^pull_all(FILE|pull_all_bytes(FILE|' "$m/src/civetweb.c"
run fixes "$m"
expect_eq "body-time's place moved: setup fails" 1 "$rc"
expect_match "... saying which fix" 'cannot apply the body-time fix' "$err"

m="$ct_tmp/moved3"
stand_in "$m"
sed -i 's|^\t\t\tlen -= n;$|\t\t\tlen = len - n;|' "$m/src/civetweb.c"
run fixes "$m"
expect_eq "body-time's line moved inside pull_all: setup fails" 1 "$rc"
expect_match "... saying it did not apply" 'the body-time fix did not apply' "$err"
if [ ! -e "$m/src/civetweb.c.fixed" ]; then ok "no half-written file is left"; else fail "civetweb.c.fixed left behind"; fi
finish
