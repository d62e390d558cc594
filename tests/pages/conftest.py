import json
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


def live_components(at: AppTest) -> list[dict]:
    """The data of each live-charts component (pages.ui.live_view) on the page AppTest ran."""
    found = []
    for node in _walk(at._tree):
        proto = getattr(node, "proto", None)
        if getattr(proto, "component_name", None) == "lab_live_charts":
            found.append(json.loads(proto.json))
    return found


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _walk(child)


def live_payload(at: AppTest, index: int = 0, known: str = "") -> tuple[int, dict]:
    """What the browser's live-charts component gets when it polls: the page's component asks the feed
    URL it was given, answered by the lab's HTTP route (pages.ui.live_http) in this process."""
    from urllib.parse import urlsplit

    from starlette.requests import Request

    from pages.ui import live_http

    data = live_components(at)[index]
    url = urlsplit(data["feed"])
    assert url.path == f"{live_http.PREFIX}/feed"
    query = url.query + (f"&v={known}" if known else "")
    response = live_http.feed(Request({"type": "http", "method": "GET", "path": url.path,
                                       "query_string": query.encode(), "headers": []}))
    return response.status_code, json.loads(response.body)
