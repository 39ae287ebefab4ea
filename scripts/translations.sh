#!/usr/bin/env bash
# Maintain the message catalogs under app/translations.
#
#   scripts/translations.sh update   extract the msgids from app/ into
#                                    app/translations/messages.pot, then merge
#                                    them into every language's messages.po
#                                    (existing translations are kept; new
#                                    strings arrive empty, changed ones fuzzy)
#   scripts/translations.sh compile  build the .mo files; exits non-zero if a
#                                    catalog has errors (e.g. a placeholder
#                                    that does not match its msgid)
#
# Run from anywhere: it works from the repository root. PYBABEL overrides the
# pybabel executable (default: .venv/bin/pybabel).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
CATALOGS=app/translations
TEMPLATE="$CATALOGS/messages.pot"

usage() {
    echo "usage: $0 {update|compile}" >&2
    exit 2
}

[ $# -eq 1 ] || usage

case "$1" in
    update)
        # _, gettext and ngettext are default keywords; the lazy forms are not.
        "$PYBABEL" extract \
            --mapping-file=babel.cfg \
            --keywords=lazy_gettext --keywords=_l \
            --add-comments=TRANSLATORS: \
            --project="Civic Pay" --version=0.1.0 \
            --output-file="$TEMPLATE" \
            .
        "$PYBABEL" update --input-file="$TEMPLATE" --output-dir="$CATALOGS"
        echo "Now translate the empty and fuzzy entries, then run: $0 compile" >&2
        ;;
    compile)
        "$PYBABEL" compile --directory="$CATALOGS" --statistics
        ;;
    *)
        usage
        ;;
esac
