"""The lab's frame: the page list, navigation, the sidebar's language, seed and environment."""
from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import streamlit as st

from core.i18n import DEFAULT_LANGUAGE, LANGUAGES, t
from core.ml.env import env_facts
from pages.ui.state import SEED_MAX
from pages.ui.text import lang, plain, tr

# (section key, page key, script, url path, icon); the one list the frame and Home use.
PAGES = [
    ("section.basics", "page.home", "pages/home.py", "home", ":material/home:"),
    ("section.learn", "page.lessons", "pages/lessons.py", "lessons", ":material/school:"),
    ("section.basics", "page.tensors", "pages/tensors.py", "tensors", ":material/grid_on:"),
    ("section.basics", "page.autograd", "pages/autograd.py", "autograd", ":material/functions:"),
    ("section.models", "page.builder", "pages/builder.py", "builder", ":material/account_tree:"),
    ("section.models", "page.data", "pages/data.py", "data", ":material/dataset:"),
    ("section.training", "page.train", "pages/train.py", "train", ":material/model_training:"),
    ("section.training", "page.runs", "pages/runs.py", "runs", ":material/monitoring:"),
    ("section.tools", "page.profiler", "pages/profiler.py", "profiler", ":material/speed:"),
    ("section.tools", "page.export", "pages/export.py", "export", ":material/download:"),
    ("section.tools", "page.predict", "pages/predict.py", "predict", ":material/draw:"),
    ("section.tools", "page.explain", "pages/explain.py", "explain", ":material/visibility:"),
]


_RUN = threading.local()  # per script thread: is app.py driving this run?
_FROZEN = {"modules": 0}  # how many modules were loaded at the last freeze_loaded_code
_FREEZE_AFTER = 300  # new modules since then that make it worth another freeze (torch alone brings ~1,500)
_FREEZE_LOCK = threading.Lock()


def freeze_loaded_code() -> None:
    """After a page run that loaded many new modules (the engine: torch, pandas, plotly), move every object
    alive now out of the cyclic garbage collector's sight (``gc.freeze``, the standard library's own advice
    for long-running servers).

    The server's sessions share one process: a full collection walks every object in it, and with the
    engine loaded (about 500,000 objects: modules, functions, classes) each one took 0.3-0.6 s while every
    session's script and the event loop waited (BENCHMARKS.md, "Classroom"). Frozen, they are no longer
    walked (the rest is, as before). Objects alive at a freeze that die later are still freed by their
    reference counts; only a reference cycle among them would stay. Called at the end of app.py's runs:
    once per burst of imports, a handful of times in a server's life."""
    with _FREEZE_LOCK:
        loaded = len(sys.modules)
        if loaded - _FROZEN["modules"] < _FREEZE_AFTER:
            return
        _FROZEN["modules"] = loaded
        gc.collect()  # what is garbage now is freed, not frozen
        gc.freeze()


@contextmanager
def framed() -> Iterator[None]:
    """app.py runs the chosen page inside this: the page's ``frame()`` then knows the lab's frame drives it."""
    _RUN.framed = True
    try:
        yield
    finally:
        _RUN.framed = False


def frame() -> None:
    """Run at the top of every page: make sure the lab's frame (app.py) drives this run.

    Streamlit decides per server process, on its first session, whether the app uses
    the legacy ``pages/`` folder; until some run has called ``st.navigation`` it treats
    ``pages/*.py`` as legacy pages and runs a deep-linked page (``/data``) alone, without
    app.py. Streamlit 1.67 has no public option to turn that mode off and no public way
    to ask for it, so app.py marks its own runs (``framed``, a thread-local flag: each
    session's script runs in its own thread, and a run that began in legacy mode stays
    legacy even after another session's ``st.navigation`` switched the process over).
    A page that runs unmarked registers the lab's navigation, which turns the legacy
    mode off for the process, and reruns, so app.py runs the page instead. Public API
    only (``st.navigation``, ``st.rerun``); call it at a page's top level, never in a
    fragment. Covered by tests/e2e/test_app.py (deep link on a fresh server) and
    tests/e2e/test_load_e2e.py (sessions opening a fresh server together).
    """
    if not getattr(_RUN, "framed", False):
        st.navigation(navigation_pages(), position="hidden")
        st.rerun()


def language_and_seed() -> None:
    """The sidebar's global controls; both are bound to the URL so a shared link keeps them."""
    # The label is drawn before the widget reads the URL: take the language from the URL then.
    from_url = {name: code for code, name in LANGUAGES.items()}.get(st.query_params.get("lang", ""))
    label_lang = st.session_state.get("lang") or from_url or DEFAULT_LANGUAGE
    with st.sidebar:
        st.segmented_control(
            t("sidebar.language", label_lang), list(LANGUAGES), format_func=LANGUAGES.__getitem__,
            default=DEFAULT_LANGUAGE, key="lang", bind="query-params", required=True,
        )
        st.number_input(
            tr("sidebar.seed"), min_value=0, max_value=SEED_MAX, value=0, step=1,
            key="seed", bind="query-params", help=tr("sidebar.seed_help"),
        )


def env_rows(markdown: bool = True) -> list[tuple[str, str]]:
    """This machine's facts as (label, value) in the page's language: Markdown for the sidebar (code as
    code, the rest escaped), or plain text for a table (``markdown=False``), which shows text literally:
    there an escape's backslash or a code span's backticks would show."""
    facts = env_facts()
    language = lang()

    def text(key: str, **values) -> str:
        return tr(key, **values) if markdown else t(key, language, **values)

    cuda = (text("env.cuda_yes", count=facts.cuda_device_count, name=str(facts.cuda_device_name))
            if facts.cuda_available else text("env.cuda_no"))
    reason = facts.fast_bf16_note if markdown else facts.fast_bf16_note.message(language)
    bf16 = text("env.bf16_yes" if facts.fast_bf16 else "env.bf16_no", reason=reason)
    cpu = f"{facts.cpu_model} ({facts.cpu_capability})"
    return [
        (text("env.torch"), plain(facts.torch_version) if markdown else facts.torch_version),
        (text("env.python"), facts.python_version),
        (text("env.cuda"), cuda),
        (text("env.threads"), text("env.threads_value", threads=facts.cpu_threads, cores=facts.cpu_count)),
        (text("env.cpu"), plain(cpu) if markdown else cpu),
        (text("env.bf16"), bf16),
    ]


def sidebar_environment(container=None) -> None:
    with (container or st.sidebar).expander(tr("sidebar.environment"), expanded=False):
        st.markdown("\n".join(f"- **{k}**: {v}" for k, v in env_rows()))


HOME_ALIAS = "home"  # /home: Home's own name (the default page itself is served at "/")


def _browser_asks_for_home() -> bool:
    """The browser's address is /home (typed or shared; the last path segment, so a base path works)."""
    path = urlparse(st.context.url or "").path.rstrip("/")
    return path.rsplit("/", 1)[-1] == HOME_ALIAS


def navigation_pages() -> dict[str, list]:
    """The lab's pages by section; Home is the default page, at "/".

    Streamlit gives the default page no other path, so "/home" (a link a user types or shares) opened
    "Page not found" over Home. When the browser is at /home, a hidden page (not in the menu) serves
    Home there, and the default page takes another internal name ("index"), since a page's identity
    is its URL name and two pages cannot share one. Elsewhere the registration is as it always was.
    (``st.switch_page`` to "/" is no way out: it clears the URL, which the URL-bound language refuses.)
    """
    alias = _browser_asks_for_home()
    sections: dict[str, list] = {}
    for section, page, script, url, icon in PAGES:
        home = url == HOME_ALIAS
        sections.setdefault(tr(section), []).append(
            st.Page(script, title=tr(page), url_path="index" if home and alias else url, icon=icon, default=home))
        if home and alias:
            sections[tr(section)].append(st.Page(script, title=tr(page), url_path=HOME_ALIAS, icon=icon,
                                                 visibility="hidden"))
    return sections
