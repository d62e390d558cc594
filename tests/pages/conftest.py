import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app(tmp_path, monkeypatch):
    """An AppTest of the whole lab (frame + navigation), on a private lab home."""
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")

    def make(page: str | None = None, **params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        if page:
            at.switch_page(page)
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


# An inline code span (core.errors.code_span: a run of backticks, the text, the same run) or a
# Markdown backslash escape (pages.ui.plain).
_SPAN_OR_ESCAPE = re.compile(r"(?<!`)(`+)(?!`)(.*?)(?<!`)\1(?!`)|\\(.)", re.S)


def shown(text: str) -> str:
    """Text as the browser shows it: code spans without their backticks (their text is literal),
    Markdown backslash escapes removed elsewhere."""
    def one(match: re.Match) -> str:
        if match.group(1) is None:
            return match.group(3)
        code = match.group(2)
        return code[1:-1] if len(code) > 2 and code[0] == code[-1] == " " and code.strip() else code

    return _SPAN_OR_ESCAPE.sub(one, str(text))
