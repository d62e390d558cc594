"""Browser: every Builder example after every other one, and every view, in both languages.

The bug this guards against shows only in a browser: a widget whose key is deleted keeps its old
value in the browser, which sends it back on the next interaction (M9's 5x10 LSTM got "1, 28, 28"
from the input shape box one click later). AppTest has no browser-side state, so it cannot see it.

One browser context per language runs a sequence of example clicks in which every ordered pair
of a set of examples occurs once (an Euler circuit of the complete directed graph; the two
languages' sets together hold every example), then every view and snippet on the models the
examples load. After each click: no error box, and the input shape
box, the Preset box, the model's heading and the chosen view are those of the example.
"""
from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from core.i18n import CATALOGUE
from core.lessons.builder import EXAMPLES, SNIPPETS, TABS
from core.ml.spec import ModelSpec
from core.ml.zoo import DEFAULT_PRESET, PRESETS
from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e
LANGS = {"en": "English", "zh": "简体中文"}
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def euler_circuit(nodes: list[str]) -> list[str]:
    """A walk through ``nodes`` in which every ordered pair (a, b), a != b, follows each other exactly once
    (Hierholzer's algorithm on the complete directed graph)."""
    left = {a: [b for b in reversed(nodes) if b != a] for a in nodes}
    stack, walk = [nodes[0]], []
    while stack:
        if left[stack[-1]]:
            stack.append(left[stack[-1]].pop())
        else:
            walk.append(stack.pop())
    return walk[::-1]


def test_the_sequence_covers_every_ordered_pair():
    walk = euler_circuit(list(EXAMPLES))
    pairs = list(itertools.pairwise(walk))
    n = len(EXAMPLES)
    assert len(pairs) == len(set(pairs)) == n * (n - 1)


def test_the_two_languages_walk_every_example_and_every_unusual_shape():
    assert set(CIRCUIT["en"]) | set(CIRCUIT["zh"]) == set(EXAMPLES)
    unusual = {k for k, e in EXAMPLES.items() if e.preset and PRESETS[e.preset].spec.input_shape
               not in (PRESETS["cnn"].spec.input_shape, PRESETS["linear"].spec.input_shape,
                       PRESETS["neural_net"].spec.input_shape)}
    for lang in LANGS:
        shapes = {tuple(PRESETS[str(EXAMPLES[k].preset)].spec.input_shape) for k in unusual}
        walked = {tuple(PRESETS[str(EXAMPLES[k].preset)].spec.input_shape) for k in CIRCUIT[lang]
                  if EXAMPLES[k].preset}
        assert shapes <= walked, lang


class Runs:
    """Counts the app's finished script runs from its websocket (a click makes a rerun whose
    start the page does not always show at once; the ``script_finished`` message is certain)."""

    def __init__(self, page) -> None:
        self.finished = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        if isinstance(payload, (bytes, bytearray)):
            msg = ForwardMsg()
            msg.ParseFromString(bytes(payload))
            if msg.WhichOneof("type") == "script_finished" and \
                    msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                self.finished += 1


class Lab:
    """The Builder page in one browser context and one language."""

    def __init__(self, chromium, server, lang: str) -> None:
        self.server = server
        self.context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.runs = Runs(self.page)
        self.text = CATALOGUE[lang]
        self.lang = lang
        self.page.goto(f"{server.url}/builder?lang={LANGS[lang]}")
        # A first request may run twice (the lab registers its navigation, then reruns): wait for the page itself.
        self.page.wait_for_selector(".st-key-bld_shape input")
        self.wait(0)
        self.page.wait_for_timeout(500)
        self.wait(0)

    def state(self) -> str:
        return self.page.evaluate(
            "() => document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state')")

    def wait(self, before: int, timeout: float = 30) -> None:
        """Until a script run after the one counted in ``before`` has finished and the page is idle."""
        deadline = time.time() + timeout
        while self.runs.finished <= before or self.state() != "notRunning":
            if time.time() > deadline:
                raise AssertionError(f"no finished run within {timeout} s")
            self.page.wait_for_timeout(25)

    def click(self, selector: str) -> None:
        before = self.runs.finished
        started = time.time()
        target = self.page.locator(selector).first
        target.click()
        # A click the browser dropped (rarely, on a page still moving) starts no run: click once more.
        deadline = time.time() + 10
        while self.runs.finished <= before and self.state() == "notRunning" and time.time() < deadline:
            self.page.wait_for_timeout(25)
        if self.runs.finished <= before and self.state() == "notRunning":
            target.click()
        try:
            self.wait(before)
        except AssertionError as exc:
            shot(self.page, f"builder-failure-{self.lang}")
            raise AssertionError(f"{exc} after clicking {selector}") from None
        if os.environ.get("LAB_TIMING"):
            print(f"{time.time() - started:5.2f} {selector}")

    def click_link(self, link, title: str) -> None:
        """Open another page of the lab by its navigation link and wait for its heading."""
        before = self.runs.finished
        link.first.click()
        expect(self.page.locator('[data-testid="stMain"] h1').first).to_have_text(title, timeout=30_000)
        self.wait(before)

    def errors(self) -> list[str]:
        """The error boxes' texts; for an exception (its details hidden from users), the server log's traceback."""
        boxes = self.page.locator(ERRORS)
        found = [boxes.nth(i).inner_text() for i in range(boxes.count())]
        if found and "Uncaught app execution" in self.server.log_text():
            found.append(self.server.log_text().split("Uncaught app execution")[-1][-3000:])
        return found

    def active(self, key: str) -> str:
        return self.page.locator(f".st-key-{key} button[aria-checked='true']").first.inner_text()

    def check(self, what: str, spec: ModelSpec, tab: str, preset: str | None) -> None:
        """No error box, and the widgets show the model ``spec`` (a stale value stays stale, so
        waiting a moment for the browser to draw the new one cannot hide the bug)."""
        assert not self.errors(), (what, self.errors())
        shape = ", ".join(map(str, spec.input_shape))
        expect(self.page.locator(".st-key-bld_shape input").first, what).to_have_value(shape, timeout=5000)
        heading = self.text["builder.stack"].format(name=spec.name, n=len(spec.layers))
        expect(self.page.get_by_text(heading, exact=True), what).to_have_count(1, timeout=5000)
        expect(self.page.locator(".st-key-bld_tab button[aria-checked='true']"), what).to_have_text(
            self.text[f"builder.tab.{tab}"], timeout=5000)
        if preset is not None:
            expect(self.page.locator(".st-key-bld_preset input").first, what).to_have_value(
                re.compile(re.escape(self.text[f"zoo.title.{preset}"])), timeout=5000)
        assert not self.errors(), (what, self.errors())


@pytest.fixture(scope="module", params=list(LANGS))
def lab(request, chromium, server) -> Iterator[Lab]:
    lab = Lab(chromium, server, request.param)
    yield lab
    lab.context.close()


# Each language walks every ordered pair of a set of examples; together the two sets hold every example,
# and each holds the models of every unusual input shape (M7's RGB 16x16, M9's sequence, M18's 3-D
# volume), so a shape box left over from any of them meets every other kind of example in both
# languages. (Every ordered pair of all 18, 306 clicks, took two minutes of CI on its own.) Then every
# view and snippet on a model of each input shape (English) and on the least usual ones (Chinese).
CIRCUIT = {"en": ["M3", "M5", "M6", "M7", "M9", "M11", "M13", "M14", "M15", "M16", "M17", "M18"],
           "zh": ["M1", "M2", "M4", "M7", "M8", "M9", "M10", "M12", "M18"]}
VIEWS_ON = {"en": ["M1", "M2", "M4", "M7", "M8", "M9", "M18"], "zh": ["M7", "M9", "M18"]}


def test_every_example_after_every_other_and_every_view(lab):
    spec, preset = PRESETS[DEFAULT_PRESET].spec, DEFAULT_PRESET
    lab.check("start", spec, "summary", preset)
    walk = euler_circuit(CIRCUIT[lab.lang])
    for previous, example in zip(["start", *walk], walk, strict=False):
        ex = EXAMPLES[example]
        lab.click(f".st-key-bld_ex_{example} button")
        if ex.preset:
            spec, preset = PRESETS[ex.preset].spec, ex.preset
        lab.check(f"{previous} -> {example}", spec, ex.tab, preset)
        if ex.snippet:
            expect(lab.page.locator(".st-key-bld_snippet button[aria-checked='true']")).to_have_text(
                lab.text[f"builder.snippet.{ex.snippet}"], timeout=5000)
    for example in VIEWS_ON[lab.lang]:
        ex = EXAMPLES[example]
        lab.click(f".st-key-bld_ex_{example} button")
        spec = PRESETS[str(ex.preset)].spec
        for tab in TABS:
            label = lab.text[f"builder.tab.{tab}"]
            if lab.active("bld_tab") != label:
                lab.click(f".st-key-bld_tab button:has-text('{label}')")
            lab.check(f"{example} -> view {tab}", spec, tab, ex.preset)
        for snippet in SNIPPETS:
            label = lab.text[f"builder.snippet.{snippet}"]
            if lab.active("bld_snippet") != label:
                lab.click(f".st-key-bld_snippet button:has-text('{label}')")
            lab.check(f"{example} -> snippet {snippet}", spec, "snippets", ex.preset)


def test_apply_json_and_the_preset_box_follow_the_model(lab):
    """The JSON box shows the current model (Apply with no edit keeps it), after loads and edits."""
    lab.click(".st-key-bld_ex_M9 button")
    lab.page.locator("[data-testid='stExpander'] summary").filter(has_text=lab.text["builder.json"]).click()
    expect(lab.page.locator(".st-key-bld_json_apply button").first).to_be_visible()
    box = lab.page.locator(".st-key-bld_json textarea").first
    expect(box).to_have_value(re.compile('"name": "LSTMDemo"'), timeout=5000)
    lab.click(".st-key-bld_json_apply button")
    lab.check("M9 -> Apply JSON", PRESETS["lstm_seq"].spec, "summary", "lstm_seq")
    # An edit (a new input shape typed in) shows in the JSON box; Apply keeps the edited model.
    field = lab.page.locator(".st-key-bld_shape input").first
    before = lab.runs.finished
    field.fill("7, 10")
    field.press("Enter")
    lab.wait(before)
    edited = PRESETS["lstm_seq"].spec.edit(input_shape=[7, 10])
    expect(box).to_have_value(re.compile(re.escape('"input_shape": [\n    7,\n    10\n  ]')), timeout=5000)
    lab.click(".st-key-bld_json_apply button")
    lab.check("edit -> Apply JSON", edited, "summary", None)
    lab.click(".st-key-bld_ex_M5 button")
    lab.check("Apply JSON -> M5", PRESETS["cnn"].spec, "summary", "cnn")
    expect(box).to_have_value(PRESETS["cnn"].spec.to_json(), timeout=5000)
    lab.click(".st-key-bld_json_apply button")  # no edit: the model stays the tutorial's CNN
    lab.check("M5 -> Apply JSON", PRESETS["cnn"].spec, "summary", "cnn")
    # Another page and back (Streamlit drops the state of widgets a run does not draw).
    nav = lab.page.locator('[data-testid="stSidebarNav"] a')
    lab.click_link(nav.filter(has_text=lab.text["page.data"]), lab.text["data.title"])
    lab.click_link(nav.filter(has_text=lab.text["page.builder"]), lab.text["builder.title"])
    lab.check("Data -> Builder", PRESETS["cnn"].spec, "summary", "cnn")
    box = lab.page.locator(".st-key-bld_json textarea").first
    if not box.is_visible():
        lab.page.locator("[data-testid='stExpander'] summary").filter(has_text=lab.text["builder.json"]).click()
    expect(box).to_have_value(PRESETS["cnn"].spec.to_json(), timeout=5000)


def test_screenshots_of_the_builder(lab):
    """Pictures for a person to look at (tests/e2e/screenshots): several examples and views."""
    lang = lab.lang
    lab.page.set_viewport_size({"width": 1400, "height": 3400})  # the main area scrolls: a tall window shows it all
    for example in ("M2", "M8", "M9", "M12", "M13", "M15", "M16", "M10", "M18"):
        lab.click(f".st-key-bld_ex_{example} button")
        lab.page.mouse.move(5, 5)  # no tooltip over the picture
        assert not lab.errors()
        shot(lab.page, f"builder-{example}-{lang}")
    lab.click(".st-key-bld_ex_M7 button")
    field = lab.page.locator(".st-key-bld_shape input").first
    before = lab.runs.finished
    field.fill("3, 28, 28")
    field.press("Enter")
    lab.wait(before)
    error = lab.page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    assert "in_features=10816" in error
    shot(lab.page, f"builder-M7-shape-error-{lang}")
    lab.page.set_viewport_size({"width": 1400, "height": 1000})
