"""Checks of UI text as a reader sees it, shared by the unit, page and browser tests.

* :func:`markdown_losses` - what Streamlit's Markdown would eat or show wrongly in a text:
  ``*``/``_`` that pair up into emphasis (``__len__`` shown as a bold "len", ``2*w0*w1`` as
  "2w0w1"), and backslash escapes that a non-Markdown place (a table cell) shows literally.
* :func:`english_sentences` - runs of English words in text meant to be Chinese (a step note
  left in English), outside code spans and blocks.
* :func:`ui_texts` - every text an AppTest run shows: Markdown, alerts, labels, options, tables.

The emphasis rule is CommonMark's (what Streamlit's renderer follows): a run of ``*`` or ``_``
opens emphasis when it is left-flanking (``_`` also not inside a word), closes it when
right-flanking, and emphasis needs an opener before a closer of the same character. Code spans
(backticks) are literal, so identifiers written as code are never flagged.
"""
from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Iterator

# An inline code span: a run of backticks, anything, the same run (CommonMark).
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.*?)(?<!`)\1(?!`)", re.S)
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?:[:!][^{}]*)?\}")
_PUNCT = set(string.punctuation)


def without_code(text: str) -> str:
    """``text`` with fenced blocks and inline code spans replaced by a neutral word."""
    text = _FENCE.sub(" CODE ", text)
    return _CODE_SPAN.sub(" CODE ", text)


def _is_space(ch: str) -> bool:
    return ch == "" or ch.isspace()


def _is_punct(ch: str) -> bool:
    return ch in _PUNCT or (ch != "" and unicodedata.category(ch).startswith("P"))


def _flanking(before: str, after: str) -> tuple[bool, bool]:
    left = not _is_space(after) and (not _is_punct(after) or _is_space(before) or _is_punct(before))
    right = not _is_space(before) and (not _is_punct(before) or _is_space(after) or _is_punct(after))
    return left, right


def _delimiter_runs(text: str) -> list[list]:
    """[character, position, length, can open, can close] of every ``*``/``_`` run not escaped by a backslash."""
    runs = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch not in "*_":
            i += 1
            continue
        j = i
        while j < len(text) and text[j] == ch:
            j += 1
        before = text[i - 1] if i else ""
        after = text[j] if j < len(text) else ""
        left, right = _flanking(before, after)
        if ch == "*":
            runs.append([ch, i, j - i, left, right])
        else:  # "_" does not open or close inside a word
            runs.append([ch, i, j - i, left and (not right or _is_punct(before)),
                         right and (not left or _is_punct(after))])
        i = j
    return runs


def _emphasis(text: str) -> list[tuple[int, int]]:
    """(opener, closer) positions of the emphasis CommonMark's "process emphasis" finds."""
    runs = _delimiter_runs(text)
    pairs = []
    for k, (ch, pos, count, opens, closes) in enumerate(runs):
        if not closes:
            continue
        remaining = count
        for m in range(k - 1, -1, -1):
            och, opos, ocount, oopens, ocloses = runs[m]
            if remaining == 0:
                break
            if och != ch or not oopens or ocount == 0:
                continue
            both = ocloses or opens
            if both and (ocount + count) % 3 == 0 and not (ocount % 3 == 0 and count % 3 == 0):
                continue  # CommonMark's "rule of 3"
            used = 2 if ocount >= 2 and remaining >= 2 else 1
            pairs.append((opos, pos))
            runs[m][2] -= used
            remaining -= used
            for between in runs[m + 1:k]:  # delimiters between a pair can no longer match
                between[2] = 0
        runs[k][2] = remaining
        if remaining == 0:
            runs[k][3] = False
    return pairs


def markdown_losses(text: str, template: bool = False) -> list[str]:
    """What Markdown would eat in ``text``: pairs of ``*``/``_`` that become emphasis, and
    backslash escapes (shown literally where the text is not Markdown, eaten where it is).

    ``template``: ``text`` is a catalogue string; its ``{placeholders}`` are left out.
    Returns one short description per problem (empty when the text is safe).
    """
    if template:
        text = _PLACEHOLDER.sub("X", text)
    plain = without_code(text)
    problems = []
    for match in re.finditer(r"\\[!-/:-@\[-`{-~]", plain):
        near = plain[max(0, match.start() - 15):match.end() + 15]
        problems.append(f"backslash escape {match.group(0)!r} near {near!r}")
    for start, end in _emphasis(plain):
        # A page's own **label**, or a catalogue text's bold lead-in ("**Likely real.** ...") at its start.
        if _intended_bold(plain, start, end) and (not template or start == 0):
            continue
        problems.append(f"{plain[start]!r} pairs into emphasis: {plain[max(0, start - 10):end + 10]!r}")
    return problems


def _intended_bold(text: str, start: int, end: int) -> bool:
    """``**label**`` a page writes on purpose: ``**`` after a space or the start, ``**`` before a space,
    punctuation or the end (``x**2 + y**2`` is not: its ``**`` sit inside words)."""
    before = text[start - 1] if start else ""
    after = text[end + 2] if end + 2 < len(text) else ""
    return (text[start:start + 2] == "**" and text[end:end + 2] == "**" and (before == "" or before.isspace())
            and (after == "" or after.isspace() or _is_punct(after)))


# Latin words that are units, symbols or PyTorch's abbreviations, never a sentence's words.
UNITS = {"ms", "px", "kb", "mb", "gb", "lr", "std", "max", "min", "dim", "eps", "fp", "bf", "id", "ok"}
_WORD = re.compile(r"[A-Za-z][a-z]+")
_EDGE = "()[]{}<>,.;:!?\"'"


def english_sentences(text: str, min_tokens: int = 3, min_words: int = 2) -> list[str]:
    """Runs of English in ``text`` outside code: ``min_tokens`` or more ASCII tokens in a row (split on
    whitespace) of which ``min_words`` or more are English words.

    A word is a token of two or more ASCII letters, lowercase or capitalized (``kept``, ``Linear``),
    once brackets and punctuation around it are stripped; identifiers (``state_dict``,
    ``DataLoader``, ``ReLU``, ``torch.save``), numbers, symbols, one-letter variables, acronyms
    (``CPU``) and units (``ms``, ``MB``) are not words but do not end a run. A token with any
    non-ASCII character (Chinese text, full-width punctuation) ends it. So "float64 is kept"
    is English; "在 CUDA 上用 fp16 autocast" is not.
    """
    found: list[str] = []
    run: list[str] = []
    words = 0
    for token in [*without_code(text).split(), "。"]:
        if token.isascii() and token != "CODE":
            run.append(token)
            bare = token.strip(_EDGE)
            words += bool(_WORD.fullmatch(bare)) and bare.lower() not in UNITS
            continue
        if len(run) >= min_tokens and words >= min_words:
            found.append(" ".join(run))
        run, words = [], 0
    return found


def ui_texts(at) -> Iterator[tuple[str, str]]:
    """(kind, text) of everything an AppTest run shows outside code blocks: Markdown and captions,
    titles, alerts, labels, help texts, options, metrics and the cells and headers of tables."""
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success",
                 "exception"):
        for el in getattr(at, kind):
            yield kind, str(el.value)
    for kind in ("button", "checkbox", "toggle", "text_input", "number_input", "selectbox", "radio",
                 "multiselect", "slider", "select_slider", "text_area", "button_group"):
        for el in getattr(at, kind, []):
            for attr in ("label", "help", "placeholder"):
                value = getattr(el, attr, None)
                if isinstance(value, str) and value:
                    yield f"{kind}.{attr}", value
            for option in _options(el):
                yield f"{kind}.option", str(option)
    for el in at.metric:
        yield "metric", f"{el.label} {el.value}"
    for el in at.dataframe:
        frame = el.value
        for column in frame.columns:
            yield "table.header", str(column)
        for value in frame.to_numpy().ravel():
            yield "table.cell", str(value)
    for el in getattr(at, "table", []):
        for value in el.value.to_numpy().ravel():
            yield "table.cell", str(value)


def _options(el) -> Iterable[str]:
    proto = getattr(el, "proto", None)
    options = getattr(proto, "options", None)
    if options is None:
        return []
    out = []
    for option in options:
        out.append(option if isinstance(option, str) else getattr(option, "content", option))
    return out


# What Streamlit renders as Markdown (escapes and code spans are fine there): text elements, widget
# labels and help, the options of radio buttons and segmented controls. Everything else (table cells,
# the options of a select box or multiselect) is shown literally, so a backslash or a backtick shows.
MARKDOWN_KINDS = {"title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success",
                  "radio.option", "button_group.option"}


def _literal_problems(text: str) -> list[str]:
    problems = []
    if re.search(r"\\[!-/:-@\[-`{-~]", text):
        problems.append("a Markdown escape shows literally")
    if re.search(r"`[^`\s][^`]*`", text):
        problems.append("a code span's backticks show literally")
    return problems


def text_problems(at, lang: str) -> list[str]:
    """What a reader would stumble on in an AppTest run: Markdown that eats ``*``/``_``, escapes or
    backticks shown literally, and (``lang == "zh"``) English sentences outside code."""
    problems = []
    for kind, text in ui_texts(at):
        base = kind.split(".")[0]
        markdown = kind in MARKDOWN_KINDS or base in MARKDOWN_KINDS or kind.endswith((".label", ".help"))
        if markdown:
            found = [p for p in markdown_losses(text) if not p.startswith("backslash")]
        else:
            found = _literal_problems(text)
        if lang == "zh":
            found += [f"English: {s!r}" for s in english_sentences(text)]
        problems += [f"{kind}: {p} in {text[:160]!r}" for p in found]
    return problems
