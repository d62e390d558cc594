"""The learner's own datasets on the pages: which ones this session sees, the Data page's upload panel,
and the model that fits one (Builder, Train).

A dataset uploaded on a page is kept in the lab home under a key with a random suffix
(``core.ml.datasets.page_key``); a session sees the datasets it uploaded, and another session only
one a link names (the Data page's ``?data_ds=<key>``, or a share link's Train form)."""
from __future__ import annotations

import streamlit as st

from core.errors import Code
from core.i18n import t
from core.ml import datasets as D
from core.ml.data import DATASETS, find_dataset
from core.ml.userdata import is_user_key
from pages.ui.model_state import load_spec
from pages.ui.text import lang, tr, tr_message

MINE = "datasets_mine"  # keys this session uploaded (it may delete them)


def visible() -> list[str]:
    """The learner's datasets this session sees: its own uploads, and any a link names."""
    keys = [k for k in st.session_state.get(MINE, []) if is_user_key(k)]
    for wanted in (st.query_params.get("data_ds"), st.session_state.get("data_ds"), st.session_state.get("tr_dataset")):
        if isinstance(wanted, str) and wanted not in DATASETS and wanted not in keys and is_user_key(wanted):
            keys.append(wanted)
    return keys


def label(key: str) -> str:
    """A dataset as pickers name it: the lab's by their translated title, a learner's by its title and key."""
    if key in DATASETS:
        return tr(f"data.ds.{key}")
    info = find_dataset(key)
    # A widget's option label is shown literally: the catalogue text without Markdown escapes.
    return t("datasets.label", lang(), title=info.title, name=key) if info is not None else key


def model_for(key: str) -> None:
    """Make a small CNN sized to dataset ``key`` the current model (the Builder shows it)."""
    info = find_dataset(key)
    if info is not None:
        load_spec(D.dataset_model(info.input_shape, info.outputs))
        st.session_state["datasets_notice"] = ("datasets.model_set", {"name": Code(key)})


def input_shape_from(key: str) -> None:
    """The current model takes dataset ``key``'s input shape (the Builder's shape box)."""
    from pages.ui.model_state import current_spec, set_spec

    info = find_dataset(key)
    if info is not None:
        set_spec(lambda: current_spec().edit(input_shape=tuple(info.input_shape)))


def builder_controls() -> None:
    """The Builder's row for the learner's datasets (shown when this session sees one)."""
    mine = visible()
    if not mine:
        return
    c = st.columns([3, 2, 2], vertical_alignment="bottom")
    pick = c[0].selectbox(tr("datasets.builder.pick"), mine, key="bld_ds", format_func=label)
    c[1].button(tr("datasets.builder.shape"), key="bld_ds_shape", on_click=input_shape_from, args=(pick,),
                width="stretch")
    c[2].button(tr("datasets.use_model"), key="bld_ds_model", on_click=model_for, args=(pick,), width="stretch",
                help=tr("datasets.use_model_help"))
    if notice := st.session_state.pop("datasets_notice", None):
        st.success(tr(notice[0], **notice[1]))


def _on_add() -> None:
    s = st.session_state
    upload = s.get("data_up_file")
    s.pop("datasets_added", None)
    if upload is None:
        s["datasets_error"] = D.DatasetError("datasets.empty")
        return
    try:
        key = D.page_key(s.get("data_up_name") or upload.name.rsplit(".", 1)[0])
        done = D.add_file(upload.getvalue(), upload.name, key, size=int(s.get("data_up_size", 28)),
                          channels=int(s.get("data_up_channels", 1)), test_fraction=float(s.get("data_up_test", 0.2)),
                          val_fraction=float(s.get("data_up_val", 0.1)), seed=int(s.get("seed", 0) or 0),
                          title=s.get("data_up_name") or upload.name, target=s.get("data_up_target"),
                          task=s.get("data_up_task", "regression"))
    except ValueError as exc:  # a DatasetError (LabError): shown translated
        s["datasets_error"] = exc
        return
    s.pop("datasets_error", None)
    s[MINE] = [*s.get(MINE, []), done.key]
    s["data_ds"] = done.key  # the Data page shows it at once
    s["datasets_added"] = (done.key, done.notes)


def _on_delete(key: str) -> None:
    s = st.session_state
    try:
        D.remove(key)
    except ValueError as exc:
        s["datasets_error"] = exc
        return
    s[MINE] = [k for k in s.get(MINE, []) if k != key]
    s["data_ds"] = "digits8k"
    if s.get("tr_dataset") == key:
        s["tr_dataset"] = "digits8k"
    s["datasets_notice"] = ("datasets.deleted", {"name": Code(key)})


def upload_panel() -> None:
    """The Data page's "Your own data" panel: upload a zip or npz, choose the size, channels and split."""
    s = st.session_state
    with st.expander(tr("datasets.upload.title"), icon=":material/upload_file:"):
        st.caption(tr("datasets.upload.formats", files=D.MAX_FILES, mb=D.MAX_UPLOAD_BYTES / D.MB,
                      pixels=D.MAX_PIXELS, samples=D.MAX_SAMPLES, classes=D.MAX_CLASSES))
        st.caption(tr("datasets.upload.csv", rows=D.MAX_ROWS, columns=D.MAX_COLUMNS))
        upload = st.file_uploader(tr("datasets.upload.file"), type=["zip", "npz", "csv"], key="data_up_file")
        table = upload is not None and upload.name.lower().endswith(".csv")
        c = st.columns([2, 1, 1])
        c[0].text_input(tr("datasets.upload.name"), key="data_up_name", max_chars=40,
                        placeholder=tr("datasets.upload.name_hint"))
        if table:  # a CSV: which column to predict, and how
            try:
                columns = D.csv_columns(upload.getvalue())
            except ValueError as exc:
                st.error(tr("datasets.refused", reason=exc))
                columns = []
            c[1].selectbox(tr("datasets.upload.target"), columns, index=len(columns) - 1 if columns else None,
                           key="data_up_target")
            c[2].radio(tr("datasets.upload.task"), D.TASKS, key="data_up_task",
                       format_func=lambda k: tr(f"datasets.upload.task.{k}"))
        else:
            c[1].selectbox(tr("datasets.upload.size"), D.SIZES, index=D.SIZES.index(28), key="data_up_size",
                           format_func=lambda n: f"{n}×{n}")
            c[2].radio(tr("datasets.upload.channels"), D.CHANNELS, key="data_up_channels", horizontal=True,
                       format_func=lambda n: tr(f"datasets.upload.channels.{n}"))
        c = st.columns(2)
        c[0].slider(tr("datasets.upload.test"), 0.05, 0.5, 0.2, step=0.05, key="data_up_test")
        if not table:
            c[1].slider(tr("datasets.upload.val"), 0.0, 0.5, 0.1, step=0.05, key="data_up_val")
        st.button(tr("datasets.upload.add"), type="primary", key="data_up_add", on_click=_on_add,
                  disabled=s.get("data_up_file") is None)
    if "datasets_error" in s:
        st.error(tr("datasets.refused", reason=s.pop("datasets_error")))
    if notice := s.pop("datasets_notice", None):
        st.success(tr(notice[0], **notice[1]))
    if added := s.pop("datasets_added", None):
        key, notes = added
        st.success(tr("datasets.added", name=Code(key)))
        for note in notes:
            st.info(tr_message(note))


def dataset_panel(key: str) -> None:
    """What a learner's selected dataset offers: its split, the model that fits it, the command, delete."""
    info = find_dataset(key)
    if info is None:
        return
    if info.image:
        st.caption(tr("datasets.split", train=info.train_size - info.val_size, val=info.val_size,
                      test=info.test_size, shape=Code(str(tuple(info.input_shape))), classes=info.outputs))
    with st.container(horizontal=True):
        st.button(tr("datasets.use_model"), key="data_use_model", on_click=model_for, args=(key,),
                  help=tr("datasets.use_model_help"))
        if key in st.session_state.get(MINE, []):
            st.button(tr("datasets.delete"), key="data_delete", on_click=_on_delete, args=(key,),
                      icon=":material/delete:")
    st.code(f"python -m core.train --dataset {key} --epochs 5", language="bash")


def is_table(key: str) -> bool:
    """A learner's CSV dataset (not images)."""
    info = find_dataset(key)
    return info is not None and info.user and not info.image


def tabular_view(key: str) -> None:
    """The Data page for a learner's CSV: its rows (features standardized at upload), the target's spread
    or the class balance, and what it offers (a model, the command, delete)."""
    import pandas as pd
    import plotly.express as px

    from core.ml.data import load_tabular
    from core.ml.plots import class_balance
    from core.ml.userdata import read_meta

    info = find_dataset(key)
    if info is None:
        return
    meta = read_meta(key)
    train_x, train_y, _test_x, test_y = load_tabular(key)
    st.caption(tr("datasets.table.summary", rows=len(train_y) + len(test_y), features=train_x.shape[1],
                  target=Code(str(meta.get("target"))), task=tr(f"datasets.task.{info.task}"),
                  train=len(train_y), test=len(test_y)) + "  \n" + tr("data.source.user", name=Code(key),
                                                                      file=Code(str(meta.get("source", "")))))
    frame = pd.DataFrame(train_x[:20].numpy(), columns=[str(f) for f in meta.get("features", [])])
    target = str(meta.get("target"))
    frame[target] = [info.classes[int(v)] for v in train_y[:20]] if info.task == "classification" else \
        train_y[:20, 0].numpy()
    st.dataframe(frame, hide_index=True, key="data_table_rows")
    st.caption(tr("datasets.table.standardized"))
    if info.task == "classification":
        counts = pd.DataFrame({"class": list(info.classes),
                               tr("data.balance.train"): torch_bincount(train_y, len(info.classes)),
                               tr("data.balance.test"): torch_bincount(test_y, len(info.classes))})
        st.plotly_chart(class_balance(counts, tr("data.balance.split"), tr("data.balance.count")), key="data_tbl_bal")
    else:
        fig = px.histogram(x=train_y[:, 0].numpy(), nbins=30, labels={"x": target})
        fig.update_layout(height=260, margin=dict(l=0, r=0, t=10, b=0), yaxis_title=tr("data.normalize.count"))
        st.plotly_chart(fig, key="data_tbl_hist")
    dataset_panel(key)


def torch_bincount(labels, n: int) -> list[int]:
    return labels.bincount(minlength=n).tolist()


def fit_train_form() -> None:
    """The Train form's dataset changed to a learner's dataset: the current model becomes one that fits it
    (unless it already does), with the validation split its upload chose and no digit-style augmentation."""
    s = st.session_state
    info = find_dataset(s.get("tr_dataset"))
    if info is None or not info.user:
        return
    s["tr_val_size"] = info.val_size
    s["tr_augment"] = False
    from pages.ui.model_state import current_spec

    spec = current_spec()
    if s.get("tr_source") != "current" or tuple(spec.input_shape) != tuple(info.input_shape):
        s["tr_source"] = "current"
        model_for(info.key)
        s["tr_form_notice"] = ("datasets.model_set", {"name": Code(info.key)})
        s.pop("datasets_notice", None)

