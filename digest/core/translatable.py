"""Text a reader may see, written below the web layer, which has no request to translate in.

`N_("Please keep your name under %(max)s characters.", max=100)` marks the msgid for the
`messages` catalogue (extraction looks for N_) and returns a `Text`: the English string,
usable anywhere a str is (the API answers and logs show it as it is), which remembers its
msgid and values so a page can show it in the newsletter's language
(digest.web.language.translated).
"""

from __future__ import annotations

from typing import Any


class Text(str):
    """English text that a page can still translate: its msgid and the values it was filled with."""

    msgid: str
    values: dict[str, Any]

    def __new__(cls, msgid: str, **values: Any) -> Text:
        """Return msgid filled with values (gettext's %(name)s placeholders)."""
        text = super().__new__(cls, msgid % values if values else msgid)
        text.msgid = msgid
        text.values = values
        return text


def N_(msgid: str, **values: Any) -> Text:  # noqa: N802 (the name gettext's tools look for)
    """Mark msgid for translation and return it as Text filled with values."""
    return Text(msgid, **values)
