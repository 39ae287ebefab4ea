"""Every string the portal shows has a Greek translation, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
METHOD_MAP = [
    ("app/**.py", "python"),
    ("app/**/templates/**.html", "jinja2"),
    ("app/templates/**.html", "jinja2"),
]


def source_messages() -> set[str]:
    """Every msgid in the sources, extracted the way scripts/translations.sh does."""
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}
    found: set[str] = set()
    for _filename, _line, message, _comments, _context in extract_from_dir(str(ROOT), METHOD_MAP, keywords=keywords):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_source_string_has_a_greek_translation() -> None:
    with open(ROOT / "app/translations/el/LC_MESSAGES/messages.po", "rb") as handle:
        catalog = read_po(handle, locale="el")
    missing = []
    for msgid in sorted(source_messages()):
        entry = catalog.get(msgid)
        strings = entry.string if entry else None
        if entry is None or entry.fuzzy or not all(strings if isinstance(strings, tuple) else [strings]):
            missing.append(msgid)
    assert not missing, "untranslated (run scripts/translations.sh update, then translate):\n" + "\n".join(missing)


def test_greek_translations_keep_the_placeholders() -> None:
    with open(ROOT / "app/translations/el/LC_MESSAGES/messages.po", "rb") as handle:
        catalog = read_po(handle, locale="el")
    for message in catalog:
        if not message.id or message.fuzzy:
            continue  # a fuzzy guess is never compiled (and the test above reports it)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for translated in strings:
            assert set(PLACEHOLDER.findall(translated)) <= wanted | set(PLACEHOLDER.findall(ids[0])), ids[0]
