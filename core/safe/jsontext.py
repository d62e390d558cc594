"""The one reader of JSON a user typed, uploaded or sent in a link.

``json.loads`` raises more than ``JSONDecodeError``: a number of more than 4,300 digits is a
plain ``ValueError`` (Python's limit on converting digits to an int), ``[[[[...`` nested deeply
enough is a ``RecursionError``, undecodable bytes a ``UnicodeDecodeError``. Each becomes a coded
``LabError`` (``json.*``) naming what was read, so no page ever shows an uncaught exception.
"""
from __future__ import annotations

import json
from typing import Any

from core.errors import Code, LabError, Term, exception_text


def loads_user_json(text: str | bytes, max_chars: int, what: str = "json.text",
                    error: type[LabError] = LabError) -> Any:
    """``json.loads(text)`` for untrusted text of at most ``max_chars`` characters.

    ``what`` is a catalogue word (``term.<what>``) naming the text in messages ("the config");
    ``error`` is the ``LabError`` subclass raised (e.g. ``SpecError``).
    """
    if len(text) > max_chars:
        raise error("json.too_long", what=Term(what), max=max_chars)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error("json.invalid", what=Term(what), msg=Code(exc.msg), line=exc.lineno, column=exc.colno) from None
    except RecursionError:  # json.loads recurses once per [ or {
        raise error("json.too_deep", what=Term(what)) from None
    except UnicodeDecodeError:
        raise error("json.not_text", what=Term(what)) from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise error("json.number", what=Term(what), reason=Code(exception_text(exc, 200))) from None
