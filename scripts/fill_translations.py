"""Fill Greek translations from a JSON file of {msgid: msgstr} into the el catalog.

    .venv/bin/python scripts/fill_translations.py translations.json

Used when many new strings arrive at once; the catalog stays the source of truth.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

CATALOG = Path(__file__).resolve().parent.parent / "app/translations/el/LC_MESSAGES/messages.po"


def main() -> None:
    """Write every given translation, clearing the fuzzy flag."""
    wanted = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle, locale="el")
    missing = []
    for msgid, msgstr in wanted.items():
        message = catalog.get(msgid)
        if message is None:
            missing.append(msgid)
            continue
        message.string = tuple(msgstr) if isinstance(msgstr, list) else msgstr
        message.flags.discard("fuzzy")
    with CATALOG.open("wb") as handle:
        write_po(handle, catalog, width=76)
    if missing:
        raise SystemExit("not in the catalog (run scripts/translations.sh update first):\n" + "\n".join(missing))


if __name__ == "__main__":
    main()
