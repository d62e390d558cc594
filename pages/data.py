"""Data: the bundled digits or torchvision's MNIST/FashionMNIST, and the tutorials' data examples."""
import pandas as pd
import streamlit as st
import torch

from core.ml.data import (
    AUGMENTATIONS,
    DATASETS,
    DEFAULT_DATASET,
    IMAGE_DATASETS,
    MNIST_MEAN,
    MNIST_NORMALIZE,
    MNIST_STD,
    DataUnavailable,
    ImageData,
    augment_preview,
    class_counts,
    custom_dataset_example,
    dataloader_batch,
    load_dataset,
    normalization_table,
)
from core.ml.plots import class_balance, image_grid, value_histograms
from core.settings import load_settings
from pages.ui.frame import frame
from pages.ui.predict_prompt import page_prompt_box
from pages.ui.state import seed
from pages.ui.text import tr
from pages.ui.widgets import code_block, url_choice

frame()
VIEWS = ["samples", "balance", "normalize", "augment", "batch", "custom"]
EXAMPLES = {"D1": ("custom", None), "D2": ("normalize", None), "D3": ("augment", "imagenet")}


@st.cache_resource(show_spinner=True)
def get_dataset(name: str) -> tuple[ImageData | None, DataUnavailable | None]:
    """The dataset or why it is unavailable (shown in each reader's language); shared read-only by all sessions."""
    try:
        return load_dataset(name, load_settings()), None
    except DataUnavailable as exc:
        return None, exc


def show_example(example: str) -> None:
    view, augmentation = EXAMPLES[example]
    st.session_state["data_view"] = view
    if augmentation:
        st.session_state["data_aug"] = augmentation


st.title(tr("data.title"))
st.write(tr("data.intro"))
page_prompt_box("data_normalize", "data_pp")

name = st.selectbox(tr("data.dataset"), IMAGE_DATASETS, format_func=lambda k: DATASETS[k].title,
                    key="data_ds", bind="query-params")
data, problem = get_dataset(name)
if data is None:
    st.error(tr("data.unavailable", title=DATASETS[name].title, reason=problem))
    st.info(tr("data.fallback"))
    data, _ = get_dataset(DEFAULT_DATASET)
h, w = data.train_images.shape[1:]
st.caption(tr("data.summary", train=len(data.train_labels), test=len(data.test_labels), h=h, w=w,
              classes=len(data.classes), mean=data.mean, std=data.std) + "  \n" + tr("data.source", source=data.source))

st.markdown(f"**{tr('data.examples')}**")
cols = st.columns(len(EXAMPLES))
for col, example in zip(cols, EXAMPLES, strict=False):
    col.button(tr(f"data.example.{example}"), key=f"data_ex_{example}", on_click=show_example,
               args=(example,), width="stretch")

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
    st.plotly_chart(class_balance(class_counts(data), tr("data.balance.split"), tr("data.balance.count")))
    st.caption(tr("data.balance.caption"))
    code_block("counts = torch.bincount(labels, minlength=10)")

elif view == "normalize":
    sample = train_x[:2000]
    st.dataframe(normalization_table(sample), hide_index=True)
    st.caption(tr("data.normalize.caption"))
    st.markdown(f"**{tr('data.normalize.hist')}**")
    x01 = sample.float() / 255
    st.plotly_chart(value_histograms({"ToTensor()": x01, "Normalize((0.5,), (0.5,))": (x01 - 0.5) / 0.5,
                                      MNIST_NORMALIZE: (x01 - MNIST_MEAN) / MNIST_STD}))
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
    st.dataframe(table, hide_index=True)
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
