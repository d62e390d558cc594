"""Streamlit helpers shared by app.py and the pages: language, seed, sidebar, page list.

This lives in a sub-package on purpose: Streamlit treats ``*.py`` files directly inside
``pages/`` as page scripts, and only the pages themselves belong there.
"""
from __future__ import annotations

import re

import streamlit as st

from core.env import env_facts
from core.i18n import DEFAULT_LANGUAGE, LANGUAGES, t

SEED_MAX = 2**31 - 1

# (section key, page key, script, url path, icon); the one list the frame and Home use.
PAGES = [
    ("section.basics", "page.home", "pages/home.py", "home", ":material/home:"),
    ("section.basics", "page.tensors", "pages/tensors.py", "tensors", ":material/grid_on:"),
    ("section.basics", "page.autograd", "pages/autograd.py", "autograd", ":material/functions:"),
    ("section.models", "page.builder", "pages/builder.py", "builder", ":material/account_tree:"),
    ("section.models", "page.data", "pages/data.py", "data", ":material/dataset:"),
    ("section.training", "page.train", "pages/train.py", "train", ":material/model_training:"),
    ("section.training", "page.runs", "pages/runs.py", "runs", ":material/monitoring:"),
    ("section.tools", "page.profiler", "pages/profiler.py", "profiler", ":material/speed:"),
    ("section.tools", "page.export", "pages/export.py", "export", ":material/download:"),
    ("section.tools", "page.predict", "pages/predict.py", "predict", ":material/draw:"),
]


def frame() -> None:
    """Run at the top of every page: make sure the lab's frame (app.py) drives this run.

    Streamlit decides per server process, on its first session, whether the app uses
    the legacy ``pages/`` folder; until some run has called ``st.navigation`` it treats
    ``pages/*.py`` as legacy pages. A deep link (``/data``) opened as the first request
    of a fresh server therefore runs the page script alone, with file names in the
    sidebar. Here the page notices that, registers the lab's navigation (which turns
    the legacy mode off for the process) and reruns, so app.py runs the page instead.
    Covered by tests/e2e/test_app.py::test_deep_link_on_fresh_server.

    The process-wide flag is not enough when several sessions open at once: a run that
    began in legacy mode still runs its page alone after another session's run turned the
    flag off (found by the load benchmark, bench/load.py). So this run's own page list is
    checked too: in legacy mode it holds app.py itself as a page, which the lab never does.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory or _legacy_run():
        st.navigation(navigation_pages(), position="hidden")
        st.rerun()


def _legacy_run() -> bool:
    """Whether this script run got the legacy ``pages/`` navigation (app.py listed as a page)."""
    from pathlib import Path

    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return False
    manager = ctx.pages_manager
    pages = manager.get_pages()
    main = Path(manager.main_script_path).resolve()
    return len(pages) > 1 and any(Path(p.get("script_path") or "").resolve() == main for p in pages.values())


@st.cache_resource
def _store(home: str):
    from core.store import RunStore

    return RunStore(home)


def lab_store():
    """The lab's run store (one per lab home; the store keeps one SQLite connection per thread)."""
    from core.settings import load_settings

    return _store(str(load_settings().home))


def lang() -> str:
    value = st.session_state.get("lang", DEFAULT_LANGUAGE)
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def plain(text) -> str:
    """Text shown literally where Streamlit renders Markdown: user input and error messages
    (which quote user input) must not become bold, links or images."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def tr(key: str, **values) -> str:
    """UI text in the current language; inserted values are shown literally (see ``plain``)."""
    return t(key, lang(), **{k: v if isinstance(v, (int, float)) else plain(v) for k, v in values.items()})


def seed() -> int:
    value = st.session_state.get("seed", 0)
    return int(value) if isinstance(value, (int, float)) and 0 <= value <= SEED_MAX else 0


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


def env_rows() -> list[tuple[str, str]]:
    facts = env_facts()
    cuda = (tr("env.cuda_yes", count=facts.cuda_device_count, name=facts.cuda_device_name)
            if facts.cuda_available else tr("env.cuda_no"))
    bf16 = tr("env.bf16_yes" if facts.fast_bf16 else "env.bf16_no", reason=facts.fast_bf16_reason)
    return [
        (tr("env.torch"), facts.torch_version),
        (tr("env.python"), facts.python_version),
        (tr("env.cuda"), cuda),
        (tr("env.threads"), tr("env.threads_value", threads=facts.cpu_threads, cores=facts.cpu_count)),
        (tr("env.cpu"), f"{facts.cpu_model} ({facts.cpu_capability})"),
        (tr("env.bf16"), bf16),
    ]


def sidebar_environment(container=None) -> None:
    with (container or st.sidebar).expander(tr("sidebar.environment"), expanded=False):
        st.markdown("\n".join(f"- **{k}**: {v}" for k, v in env_rows()))


def navigation_pages() -> dict[str, list]:
    sections: dict[str, list] = {}
    for section, page, script, url, icon in PAGES:
        sections.setdefault(tr(section), []).append(
            st.Page(script, title=tr(page), url_path=url, icon=icon, default=(url == "home")))
    return sections


def url_choice(widget, label: str, options: list[str], key: str, default: str, format_func,
               keep_default: bool = False, stale: str | None = None, **kwargs):
    """A choice widget whose value lives in the URL as a stable id, e.g. ``?data_view=balance``.

    Streamlit's own ``bind="query-params"`` writes the *formatted* label into the URL,
    which changes with the UI language, so a link made in one language (or a reload after
    switching language) would lose the choice. Widgets with translated labels sync
    through ``st.query_params`` here instead; the rest use ``bind="query-params"``.

    ``keep_default`` keeps the value in the URL even when it is the default: a default that
    moves (Predict's "newest run") must not decide what a shared link shows later.
    ``stale`` is a tr() key with ``{value}``: shown as a warning when the URL asks for an
    option that is not here (a deleted run), until the user picks another value.
    """
    notice = f"{key}__stale"
    if key not in st.session_state:
        wanted = st.query_params.get(key)
        st.session_state.pop(notice, None)
        if wanted in options:
            st.session_state[key] = wanted
        else:
            st.session_state[key] = default
            if stale and wanted is not None:
                st.session_state[notice] = str(wanted)[:80]
    elif st.session_state[key] not in options:  # an option gone since the last run (a deleted run)
        st.session_state[key] = default
    if notice in st.session_state:
        if st.session_state.get(key) in (default, None):
            st.warning(tr(stale, value=st.session_state[notice]))
        else:
            del st.session_state[notice]
    value = widget(label, options, key=key, format_func=format_func, **kwargs)
    if value is None:  # a widget recreated after a hidden run can come back empty
        value = default
    if value == default and not keep_default:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != value:
        st.query_params[key] = value
    return value


SHARE_PARAM = "s"  # the token's URL parameter (core.share.PARAM; share_url leaves an old one out)
# The Train page's form fields that a share link carries (their widget keys are "tr_" + name).
TRAIN_FIELDS = ("dataset", "optimizer", "lr", "scheduler", "loss", "batch_size", "epochs", "augment", "device",
                "precision", "momentum", "weight_decay", "label_smoothing", "source", "preset")


def _train_form_state() -> dict | None:
    """The Train form's values when the user has touched it (shared so a colleague re-trains the same run)."""
    if "tr_dataset" not in st.session_state:
        return None
    return {f: st.session_state[f"tr_{f}"] for f in TRAIN_FIELDS if f"tr_{f}" in st.session_state}


def _restore_train_form(values) -> None:
    """Validate shared Train form values as a real TrainConfig before putting them in the form."""
    from core.train import TrainConfig

    if not isinstance(values, dict) or set(values) - set(TRAIN_FIELDS):
        raise ValueError("the shared training settings are damaged")
    source = values.get("source", "preset")
    if source not in ("current", "preset"):
        raise ValueError("the shared training settings are damaged")
    config = {k: v for k, v in values.items() if k not in ("source",)}
    TrainConfig.from_dict(config).validate()
    from pages.ui.train_views import FORM_RANGES

    for key, (lo, hi) in FORM_RANGES.items():  # the form's widgets would clamp anything outside silently
        if key in values and not lo <= values[key] <= hi:
            raise ValueError(f"the shared {key} {values[key]:g} is outside the form's range {lo:g} to {hi:g}")
        if isinstance(lo, float) and key in values:
            values = {**values, key: float(values[key])}
    for key, value in values.items():
        st.session_state[f"tr_{key}"] = value


def shared_extras() -> dict:
    """Non-widget state pages add to the share link (e.g. selected runs): {name: JSON value}."""
    return st.session_state.setdefault("share_extras", {})


def restore_shared_state() -> None:
    """Once per session: apply the state a share link carries (``?s=...``), or say why not."""
    from core.models import DEFAULT_PRESET, SpecError, checked_spec, preset_spec
    from core.share import ShareError, decode_state

    if st.session_state.get("share_restored"):
        return
    st.session_state["share_restored"] = True
    token = st.query_params.get(SHARE_PARAM)
    if token is None:
        return
    del st.query_params[SHARE_PARAM]  # the URL then shows live state; the share control makes a new link
    try:
        state = decode_state(token)
        if "model" in state:
            st.session_state["current_spec"] = checked_spec(state["model"])
        if "train" in state:
            _restore_train_form(state["train"])
        extras = {k: v for k, v in state.items() if k not in ("model", "train") and isinstance(k, str)
                  and len(k) <= 40}
        shared_extras().update(extras)
        st.session_state["shared_in"] = extras  # what the link brought, for pages to apply once
    except (ShareError, SpecError, ValueError) as exc:
        st.session_state["share_notice"] = str(exc)
        st.session_state.setdefault("current_spec", preset_spec(DEFAULT_PRESET))


def share_control() -> None:
    """'Share link' in the sidebar: the full URL of this page and its state, with a copy button."""
    from core.models import DEFAULT_PRESET, preset_spec
    from core.share import MAX_URL, ShareError, share_url

    if st.session_state.get("share_notice"):
        st.sidebar.warning(tr("share.ignored", reason=st.session_state.pop("share_notice")))
    with st.sidebar.popover(tr("share.button"), icon=":material/link:", width="stretch"):
        state = dict(shared_extras())
        spec = st.session_state.get("current_spec")
        if spec is not None and spec != preset_spec(DEFAULT_PRESET):
            state["model"] = spec
        if (train := _train_form_state()) is not None:
            state["train"] = train
        # get_all: a multiselect bound to the URL repeats its parameter (?ex_formats=a&ex_formats=b).
        params = {k: st.query_params.get_all(k) for k in st.query_params}
        base = st.context.url or ""
        try:
            url, dropped = share_url(base, params, state)
        except ShareError as exc:
            st.warning(tr("share.too_large", reason=exc))
            url, dropped = share_url(base, params, {})
        st.caption(tr("share.caption"))
        st.code(url, language=None, wrap_lines=True)
        st.caption(tr("share.length", n=len(url)))
        if dropped:
            st.caption(tr("share.dropped", n=MAX_URL, parts=", ".join(tr(f"share.part.{p}") for p in dropped)))


def code_block(code: str) -> None:
    with st.expander(tr("data.code")):
        st.code(code, language="python")
