"""Data: the bundled digits or torchvision's MNIST/FashionMNIST, and the tutorials' data examples."""
import os

import pandas as pd
import streamlit as st
import torch

from core.errors import LabError
from core.ml.data import (
    AUGMENTATIONS,
    DEFAULT_DATASET,
    IMAGE_DATASETS,
    MNIST_MEAN,
    MNIST_NORMALIZE,
    MNIST_STD,
    DatasetShelf,
    ImageData,
    augment_preview,
    class_counts,
    custom_dataset_example,
    dataloader_batch,
    loader_workers_example,
    normalization_table,
    value_stats,
)
from core.ml.plots import class_balance, image_grid, value_histograms
from core.settings import load_settings
from pages.ui import datasets as user_data
from pages.ui.frame import frame
from pages.ui.predict_prompt import page_prompt_box
from pages.ui.state import seed
from pages.ui.text import tr, tr_message
from pages.ui.widgets import code_block, url_choice

frame()
VIEWS = ["samples", "balance", "normalize", "augment", "batch", "workers", "custom"]
EXAMPLES = {"D1": ("custom", None), "D2": ("normalize", None), "D3": ("augment", "imagenet"), "D4": ("workers", None)}
WORKERS_SAMPLE = 512  # images in D4's timed epoch: a few seconds per configuration on 2 busy cores


@st.cache_resource
def shelf() -> DatasetShelf:
    """The datasets all sessions share (read-only); a failure is not kept once files appear (no restart)."""
    return DatasetShelf()


def get_dataset(name: str) -> tuple[ImageData | None, LabError | None]:
    """The dataset or why it is unavailable (shown in each reader's language)."""
    try:
        with st.spinner(tr("data.loading")):
            return shelf().get(name, load_settings()), None
    except LabError as exc:  # DataUnavailable, or a learner's dataset removed or damaged meanwhile
        return None, exc


def show_example(example: str) -> None:
    view, augmentation = EXAMPLES[example]
    st.session_state["data_view"] = view
    if augmentation:
        st.session_state["data_aug"] = augmentation
    if example == "D4":
        st.session_state["data_workers_go"] = True


st.title(tr("data.title"))
st.write(tr("data.intro"))
page_prompt_box("data_normalize", "data_pp")

user_data.upload_panel()  # "Your own data": a zip (ImageFolder) or an npz becomes one of the choices below
# In the URL by its key (digits8k, mnist, ..., or a learner's dataset), shown by its translated name.
name = url_choice(st.selectbox, tr("data.dataset"), list(IMAGE_DATASETS) + user_data.visible(), "data_ds",
                  DEFAULT_DATASET, user_data.label)
if user_data.is_table(name):  # a learner's CSV: its rows and target, not images
    user_data.tabular_view(name)
    st.stop()
data, problem = get_dataset(name)
if data is None:
    st.error(tr("data.unavailable", title=user_data.label(name), reason=problem))
    st.info(tr("data.fallback"))
    data, _ = get_dataset(DEFAULT_DATASET)
h, w = data.image_size
st.caption(tr("data.summary", train=len(data.train_labels), test=len(data.test_labels), h=h, w=w,
              classes=len(data.classes), mean=data.mean, std=data.std) + "  \n" + tr_message(data.source))
if name not in IMAGE_DATASETS:
    user_data.dataset_panel(name)

st.markdown(f"**{tr('data.examples')}**")
with st.container(horizontal=True):  # buttons as wide as their titles, wrapping: no title is cut off
    for example in EXAMPLES:
        st.button(tr(f"data.example.{example}"), key=f"data_ex_{example}", on_click=show_example, args=(example,))

view = url_choice(st.segmented_control, tr("data.view"), VIEWS, "data_view", "samples",
                  lambda v: tr(f"data.view.{v}"), required=True)
train_x, train_y = data.train_images, data.train_labels

if view == "samples":
    left, right = st.columns(2)
    count = left.slider(tr("data.samples.count"), 8, 64, 32, step=8, key="data_n", bind="query-params")
    cls = url_choice(right.selectbox, tr("data.samples.class"), ["all", *map(str, range(len(data.classes)))],
                     "data_cls", "all", lambda c: tr("data.samples.all") if c == "all" else data.classes[int(c)])
    pool = torch.arange(len(train_y)) if cls == "all" else torch.nonzero(train_y == int(cls)).flatten()
    pick = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed()))[:count]]
    st.plotly_chart(image_grid(train_x[pick].float() / 255, [data.classes[i] for i in train_y[pick].tolist()]),
                    config={"displayModeBar": False})
    st.caption(tr("data.samples.caption"))
    code_block("import numpy as np, torch\n"
               "npz = np.load('assets/mnist_digits_8k.npz')\n"
               "images, labels = torch.from_numpy(npz['images']), torch.from_numpy(npz['labels'])\n"
               "print(images.shape, images.dtype)  # torch.Size([8000, 28, 28]) torch.uint8")

elif view == "balance":
    counts = class_counts(data).rename(columns={"train": tr("data.balance.train"), "test": tr("data.balance.test")})
    st.plotly_chart(class_balance(counts, tr("data.balance.split"), tr("data.balance.count")))
    st.caption(tr("data.balance.caption"))
    code_block("counts = torch.bincount(labels, minlength=10)")

elif view == "normalize":
    sample = train_x[:2000]
    table = normalization_table(sample)
    x01 = sample.float() / 255
    steps = {"ToTensor()": x01, "Normalize((0.5,), (0.5,))": (x01 - 0.5) / 0.5,
             MNIST_NORMALIZE: (x01 - MNIST_MEAN) / MNIST_STD}
    if name not in IMAGE_DATASETS:  # a learner's dataset: its own training statistics, as the lab trains on it
        own = f"Normalize(({data.mean:.4f},), ({data.std:.4f},))"
        steps[own] = (x01 - data.mean) / data.std
        table = pd.concat([table, pd.DataFrame([{"step": own, **value_stats(steps[own])}])], ignore_index=True)
    st.dataframe(table.rename(columns={"step": tr("data.normalize.step")}), hide_index=True)
    st.caption(tr("data.normalize.caption"))
    st.markdown(f"**{tr('data.normalize.hist')}**")
    st.plotly_chart(value_histograms(steps,
                                     count_label=tr("data.normalize.count"), value_label=tr("data.normalize.value")),
                    key="data_hist")
    code_block("from torchvision import transforms\n"
               "transform = transforms.Compose([\n"
               "    transforms.ToTensor(),\n"
               "    transforms.Normalize((0.1307,), (0.3081,)),  # or ((0.5,), (0.5,))\n"
               "])")

elif view == "augment":
    kind = url_choice(st.selectbox, tr("data.augment.kind"), list(AUGMENTATIONS), "data_aug", "hflip",
                      lambda k: tr(f"data.augment.{k}"))
    idx = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed()))[:8]
    before, after, table = augment_preview(train_x[idx], kind, seed=seed())
    titles = [data.classes[i] for i in train_y[idx].tolist()]
    st.markdown(f"**{tr('data.augment.before')}**")
    st.plotly_chart(image_grid(before, titles), key="data_before", config={"displayModeBar": False})
    st.markdown(f"**{tr('data.augment.after')}**")
    st.plotly_chart(image_grid(after, titles), key="data_after", config={"displayModeBar": False})
    table["tensor"] = [tr(f"data.augment.row.{row}") for row in table["tensor"]]
    st.dataframe(table.rename(columns={"tensor": tr("data.batch.col.tensor"), "shape": tr("data.batch.col.shape")}),
                 hide_index=True)
    st.caption(tr("data.augment.caption") + (" " + tr("data.augment.imagenet_note") if kind == "imagenet" else ""))
    code_block({
        "hflip": "transforms.RandomHorizontalFlip(p=1.0)",
        "rotation": "transforms.RandomRotation(degrees=30)",
        "affine": "transforms.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.85, 1.15), shear=10)",
        "imagenet": "transform = transforms.Compose([\n    transforms.RandomHorizontalFlip(),\n"
                    "    transforms.ToTensor(),\n    transforms.Normalize(mean=[0.485, 0.456, 0.406],\n"
                    "                         std=[0.229, 0.224, 0.225]),\n])",
    }[kind])

elif view == "batch":
    size = st.number_input(tr("data.batch.size"), min_value=1, max_value=1024, value=64, key="data_bs",
                           bind="query-params")
    batch = dataloader_batch(data, int(size), seed=seed())
    st.caption(tr("data.batch.caption", batches=batch["batches"]))
    st.dataframe(pd.DataFrame([
        {tr("data.batch.col.tensor"): tr("data.batch.inputs"), tr("data.batch.col.shape"): str(batch["x_shape"]),
         tr("data.batch.col.dtype"): batch["x_dtype"]},
        {tr("data.batch.col.tensor"): tr("data.batch.targets"), tr("data.batch.col.shape"): str(batch["y_shape"]),
         tr("data.batch.col.dtype"): batch["y_dtype"]},
    ]), hide_index=True)
    shown = batch["x"][:16] * data.std + data.mean
    st.plotly_chart(image_grid(shown, [data.classes[i] for i in batch["y"][:16].tolist()]),
                    config={"displayModeBar": False})
    code_block(f"loader = DataLoader(train_set, batch_size={int(size)}, shuffle=True)\n"
               "images, labels = next(iter(loader))\n"
               f"print(images.shape, labels.shape)  # {batch['x_shape']} {batch['y_shape']}")

elif view == "workers":  # D4: DataLoader(num_workers=...) timed on this machine
    st.caption(tr("data.workers.caption", n=WORKERS_SAMPLE, cores=os.cpu_count() or 1))
    go = st.button(tr("data.workers.measure"), key="data_workers_run", type="primary")
    if go or st.session_state.pop("data_workers_go", False):
        sample = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed()))[:WORKERS_SAMPLE]
        with st.spinner(tr("data.workers.measuring")):
            st.session_state["data_workers"] = (name, loader_workers_example(train_x[sample], train_y[sample],
                                                                             seed=seed()))
    measured = st.session_state.get("data_workers")
    if measured is not None:
        table = measured[1].copy()
        st.caption(tr("data.workers.done", dataset=user_data.label(measured[0])))
        for pipeline in table["pipeline"].unique():
            rows = table[table["pipeline"] == pipeline].set_index("num_workers")
            best = int(rows["epoch_s"].idxmin())
            st.markdown(tr("data.workers.verdict", pipeline=tr(f"data.workers.pipeline.{pipeline}"), best=best,
                           fast=rows.loc[best, "epoch_s"], slow=rows["epoch_s"].max(),
                           start=rows["first_batch_ms"].max()))
        table["pipeline"] = [tr(f"data.workers.pipeline.{p}") for p in table["pipeline"]]
        st.dataframe(table.rename(columns={c: tr(f"data.workers.col.{c}") for c in table.columns}), hide_index=True,
                     column_config={tr("data.workers.col.first_batch_ms"): st.column_config.NumberColumn(format="%.0f"),
                                    tr("data.workers.col.epoch_s"): st.column_config.NumberColumn(format="%.2f"),
                                    tr("data.workers.col.images_per_s"): st.column_config.NumberColumn(format="%.0f"),
                                    tr("data.workers.col.speedup"): st.column_config.NumberColumn(format="%.2f×")})
        st.caption(tr("data.workers.why", threads=torch.get_num_threads()))
    code_block("from torch.utils.data import DataLoader\n\n"
               "# the same Dataset (one image at a time, with its transform), read by 0 or 2 worker processes\n"
               "for workers in (0, 2):\n"
               "    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers)\n"
               "    start = time.perf_counter()\n"
               "    for images, labels in loader:\n"
               "        pass\n"
               "    print(workers, time.perf_counter() - start)")

else:  # custom Dataset, D1
    result = custom_dataset_example(batch_size=32, seed=seed())
    st.caption(tr("data.custom.caption"))
    st.write(tr("data.custom.len", n=result["len"], x=result["item_shapes"][0], y=result["item_shapes"][1]))
    st.dataframe(pd.DataFrame([{tr("data.custom.col.batch"): i, tr("data.custom.col.x"): str(x),
                                tr("data.custom.col.y"): str(y)} for i, (x, y) in enumerate(result["batches"])]),
                 hide_index=True)
    st.code("from torch.utils.data import Dataset, DataLoader\n\n"
            "class CustomDataset(Dataset):\n"
            "    def __init__(self, data, labels):\n"
            "        self.data, self.labels = data, labels\n\n"
            "    def __len__(self):\n"
            "        return len(self.data)\n\n"
            "    def __getitem__(self, idx):\n"
            "        return self.data[idx], self.labels[idx]\n\n"
            "dataset = CustomDataset(torch.randn(100, 10), torch.randint(0, 2, (100,)))\n"
            "loader = DataLoader(dataset, batch_size=32, shuffle=True)\n"
            "for x, y in loader:\n"
            "    print(x.shape, y.shape)", language="python")
