"""Free text that people and programs give Adieu (a topic's name, a reason,
a webhook's description): control characters are refused where it comes in.

NUL cannot be stored by PostgreSQL at all, and the other control characters
(the rest of C0, DEL, C1) and lone surrogates are not text: they break the
pages, the CSV exports and the logs they end up in. Text that may run over
several lines keeps TAB, LF and CR. The same text is then stored alike on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import re

from adieu.errors import InvalidInput

_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_IN_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def has_controls(value: str, *, lines: bool = False) -> bool:
    """Whether ``value`` holds a control character (with ``lines``: other than
    TAB, LF and CR) or a lone surrogate."""
    return (_IN_LINES if lines else _IN_A_LINE).search(value) is not None


def checked(value: str, what: str, *, lines: bool = False) -> str:
    """``value``, or ``InvalidInput`` naming ``what`` when it holds a control character."""
    if has_controls(value, lines=lines):
        raise InvalidInput(f"{what} cannot contain control characters (such as NUL).")
    return value
