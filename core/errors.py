"""The lab's errors: a code and parameters that each page renders in its own language.

A ``LabError`` carries ``code`` (its catalogue key is ``err.<code>`` in core/i18n/en.toml
and zh.toml) and ``params``; ``str(error)`` is the English text (for the CLI and logs),
``error.message("zh", markdown=True)`` is what a Chinese page shows. Parameters are
rendered by type:

- ``Code("x.view(6, 4)")``: an expression, a shape, a name or PyTorch's own message: shown
  as inline code on a page (so Markdown never eats ``*`` or ``__dunder__``), bare in a terminal;
- ``Term("sizes")``: a word the catalogue translates (key ``term.sizes``);
- a nested ``LabError``: its own message in the same language;
- numbers: as they are, so ``{n:,}`` in a template formats them;
- anything else: as text, Markdown-escaped on a page.

``exception_text`` and ``first_line`` are the one place that turns any exception (often
torch's own, sometimes coloured with ANSI codes, sometimes a whole traceback) into text.
"""
from __future__ import annotations

import re
from typing import Any

from core.i18n import DEFAULT_LANGUAGE, t

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


class Code(str):
    """A parameter shown as code: typed text, a shape, a layer or setting name, PyTorch's message."""

    __slots__ = ()


class Term(str):
    """A parameter that is a word of the catalogue (``term.<value>``), translated with the message."""

    __slots__ = ()


def escape_markdown(text: str) -> str:
    """Text shown literally where Streamlit renders Markdown (user input must not become bold or links)."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def code_span(text: str) -> str:
    """``text`` as one Markdown inline code span, whatever backticks it holds (CommonMark's fence rule)."""
    text = " ".join(str(text).splitlines())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render(code: str, params: dict[str, Any], lang: str = DEFAULT_LANGUAGE, markdown: bool = False) -> str:
    """The catalogue text ``err.<code>`` in ``lang`` with its parameters rendered (see the module doc)."""
    values = {name: _value(value, lang, markdown) for name, value in params.items()}
    return t(f"err.{code}", lang, **values)


def _value(value: Any, lang: str, markdown: bool) -> Any:
    if isinstance(value, LabError):
        return value.message(lang, markdown)
    if isinstance(value, Message):
        return value.text(lang, markdown)
    if isinstance(value, Code):
        return code_span(value) if markdown else str(value)
    if isinstance(value, Term):
        return t(f"term.{value}", lang)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return escape_markdown(str(value)) if markdown else str(value)


class LabError(ValueError):
    """An error the user can act on: ``code`` names its text, ``params`` fill it (see the module doc).

    A ``ValueError`` so that callers that guard user input with ``except ValueError`` keep working.
    """

    def __init__(self, code: str, /, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(self.message())

    def message(self, lang: str = DEFAULT_LANGUAGE, markdown: bool = False) -> str:
        return render(self.code, self.params, lang, markdown)

    def __reduce__(self):  # picklable with its code and parameters (st.session_state, multiprocessing)
        return (_rebuild, (type(self), self.code, self.params))


def _rebuild(cls: type[LabError], code: str, params: dict[str, Any]) -> LabError:
    err = cls.__new__(cls)
    LabError.__init__(err, code, **params)
    return err


class Message:
    """A text of the catalogue that is not an error (a step's note, a table's rule): its full key
    and parameters, rendered like an error's (``Code`` as code, ``Term`` translated, numbers kept).

    Engines return these instead of English sentences, so each page shows them in its language.
    """

    __slots__ = ("key", "params")

    def __init__(self, key: str, /, **params: Any) -> None:
        self.key = key
        self.params = params

    def text(self, lang: str = DEFAULT_LANGUAGE, markdown: bool = False) -> str:
        values = {name: _value(value, lang, markdown) for name, value in self.params.items()}
        return t(self.key, lang, **values)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"Message({self.key!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.key, self.params) == (other.key, other.params)

    def __hash__(self) -> int:
        return hash(self.key)


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
