"""The lab's error texts: what an exception says, cleaned for a page or a terminal.

``exception_text`` and ``first_line`` are the one place that turns an exception (often
torch's own, sometimes coloured with ANSI codes, sometimes a whole traceback) into text
a user can read; every module that shows an exception's message uses them.
"""
from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def exception_text(exc: BaseException, limit: int = 1000) -> str:
    """The exception's message without colour codes (its type name when it has none), cut at ``limit``."""
    text = strip_ansi(str(exc)).strip()
    if not text:
        return type(exc).__name__
    if len(text) > limit:
        text = text[:limit].rstrip() + " …"
    return text


def first_line(exc: BaseException | str, limit: int = 300) -> str:
    """The first meaningful line of an exception (or text): no traceback lines, at most ``limit`` characters."""
    text = strip_ansi(exc if isinstance(exc, str) else str(exc))
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", 'File "', "----", "====")):
            line = re.sub(r"\s+at\s*$", "", line)  # TorchScript ends its first line with "at" + source
            return line[:limit] + ("…" if len(line) > limit else "")
    return "" if isinstance(exc, str) else type(exc).__name__
