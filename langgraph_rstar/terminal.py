"""Untrusted text on a terminal: model and server strings are shown, never interpreted.

Model output and server errors are data. Printed through rich they would be parsed as markup
(``[/INST]`` is a closing tag and raises, ``[a,b]`` vanishes, ``[link=...]`` makes a hyperlink),
and raw control characters would reach the terminal (``ESC ]8;;`` hyperlinks, ``\\r`` overwriting
the line). Every view passes such strings through :func:`markup_safe` (inside rich markup) or
:func:`plain` (outside it).

Example:
    >>> markup_safe("[/INST] 3 + 4 = [7]")
    '\\\\[/INST] 3 + 4 = [7]'
    >>> plain("red\\x1b[31m text\\r")
    'red\\\\x1b[31m text\\\\r'
"""

from __future__ import annotations

import re

from rich.markup import escape

__all__ = ["markup_safe", "plain"]

# C0 controls except tab and newline, DEL, and C1 controls (some terminals act on those too).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: object) -> str:
    """``str(text)`` with control characters shown as escapes (``\\x1b``) instead of acted on."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def markup_safe(text: object) -> str:
    """:func:`plain` text escaped for rich markup: printed exactly as it reads."""
    return escape(plain(text))
