"""The lab's one catalogue of UI text, in English and Simplified Chinese.

Pages look every string up here by key (``t("data.title", lang)``), so a page exists in
both languages or a test fails: both languages must hold the same keys and the same
``{placeholders}``. A small dict beats gettext here: no build step for .mo files, and
the tests can compare the two languages directly.
"""
from __future__ import annotations

import string

LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT_LANGUAGE = "en"

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        # app frame
        "app.title": "PyTorch Lab",
        "section.basics": "Basics",
        "section.models": "Models",
        "section.training": "Training",
        "section.tools": "Tools",
        "page.home": "Home",
        "page.data": "Data",
        "sidebar.language": "Language",
        "sidebar.seed": "Global seed",
        "sidebar.seed_help": "Seeds data order, augmentation and initial weights, so a shared link reproduces them.",
        "sidebar.environment": "Environment",
        "env.torch": "torch",
        "env.python": "Python",
        "env.cuda": "CUDA",
        "env.cuda_yes": "available: {count} device(s), {name}",
        "env.cuda_no": "not available (CPU only)",
        "env.threads": "CPU threads",
        "env.threads_value": "{threads} torch threads on {cores} cores",
        "env.cpu": "CPU",
        "env.bf16": "Fast bf16 on CPU",
        "env.bf16_yes": "yes ({reason})",
        "env.bf16_no": "no ({reason})",
        # home
        "home.title": "PyTorch Lab",
        "home.intro": "A hands-on lab for the classic PyTorch tutorials: tensors, autograd, models, "
                      "data, training, profiling and export, with live feedback in the browser. "
                      "Everything runs offline on the bundled MNIST digits.",
        "home.pages": "What you can do here",
        "home.open": "Open {page}",
        "home.card.data": "Browse the bundled MNIST digits or full MNIST/FashionMNIST: sample grid, class "
                          "balance, normalization before/after, augmentation preview, DataLoader batches "
                          "and a custom Dataset.",
        "home.env": "This machine",
        "home.env.fact": "fact",
        "home.env.value": "value",
        "home.zoo": "Model zoo",
        "home.zoo_intro": "The tutorials' models, each built from a model spec (data, not code):",
        "home.zoo.col.preset": "preset",
        "home.zoo.col.example": "example",
        "home.zoo.col.title": "model",
        "home.zoo.col.input": "input shape",
        "home.zoo.col.output": "output shape",
        "home.zoo.col.params": "parameters",
        # data page
        "data.title": "Data",
        "data.intro": "The data the lab trains on. The default is 8,000 real MNIST digits shipped with the "
                      "lab, split reproducibly into 7,000 train and 1,000 test images.",
        "data.dataset": "Dataset",
        "data.unavailable": "{title} is not available: {reason}",
        "data.fallback": "Showing the bundled digits instead.",
        "data.summary": "{train:,} train and {test:,} test images of {h}×{w} pixels, {classes} classes; "
                        "train mean {mean:.4f}, std {std:.4f}.",
        "data.source": "Source: {source}",
        "data.examples": "Examples from the tutorials",
        "data.example.D1": "D1 · custom Dataset + DataLoader",
        "data.example.D2": "D2 · normalization ranges",
        "data.example.D3": "D3 · flip + ImageNet normalize",
        "data.view": "View",
        "data.view.samples": "Samples",
        "data.view.balance": "Class balance",
        "data.view.normalize": "Normalization",
        "data.view.augment": "Augmentation",
        "data.view.batch": "DataLoader batch",
        "data.view.custom": "Custom Dataset",
        "data.samples.count": "Images",
        "data.samples.class": "Class",
        "data.samples.all": "all classes",
        "data.samples.caption": "Training images with their labels (drawn with the global seed).",
        "data.balance.caption": "Images per class in each split.",
        "data.balance.split": "split",
        "data.balance.count": "images",
        "data.normalize.caption": "Value ranges of the training images at each step of ToTensor + Normalize. "
                                  "Normalize((0.1307,), (0.3081,)) gives mean ≈ 0 and std ≈ 1 on MNIST; "
                                  "(0.5,), (0.5,) maps [0, 1] to [-1, 1].",
        "data.normalize.hist": "Pixel values after each step",
        "data.augment.kind": "Augmentation",
        "data.augment.hflip": "RandomHorizontalFlip",
        "data.augment.rotation": "RandomRotation(30°)",
        "data.augment.affine": "RandomAffine (rotate, shift, scale, shear)",
        "data.augment.imagenet": "D3: flip + ToTensor + Normalize(ImageNet) on RGB",
        "data.augment.before": "Before",
        "data.augment.after": "After",
        "data.augment.caption": "The same images before and after; change the global seed to draw new random parameters.",
        "data.augment.imagenet_note": "Normalized values are shown un-normalized for display; the table holds the real values.",
        "data.batch.size": "Batch size",
        "data.batch.caption": "One shuffled batch from the lab's tensor-resident loader: {batches:,} batches per epoch.",
        "data.batch.inputs": "inputs",
        "data.batch.targets": "targets",
        "data.batch.col.tensor": "tensor",
        "data.batch.col.shape": "shape",
        "data.batch.col.dtype": "dtype",
        "data.custom.caption": "A Dataset with __len__ and __getitem__ over 100 random (data, label) pairs, "
                               "read by DataLoader(batch_size=32, shuffle=True).",
        "data.custom.len": "len(dataset) = {n}; dataset[0] shapes: data {x}, label {y}",
        "data.custom.col.batch": "batch",
        "data.custom.col.x": "data shape",
        "data.custom.col.y": "labels shape",
        "data.code": "PyTorch code",
        "error.bad_value": "Invalid value: {reason}",
    },
    "zh": {
        "app.title": "PyTorch 实验室",
        "section.basics": "基础",
        "section.models": "模型",
        "section.training": "训练",
        "section.tools": "工具",
        "page.home": "首页",
        "page.data": "数据",
        "sidebar.language": "语言",
        "sidebar.seed": "全局随机种子",
        "sidebar.seed_help": "决定数据顺序、数据增强和初始权重，分享链接即可复现。",
        "sidebar.environment": "运行环境",
        "env.torch": "torch",
        "env.python": "Python",
        "env.cuda": "CUDA",
        "env.cuda_yes": "可用：{count} 个设备，{name}",
        "env.cuda_no": "不可用（仅 CPU）",
        "env.threads": "CPU 线程",
        "env.threads_value": "{cores} 个核心上的 {threads} 个 torch 线程",
        "env.cpu": "CPU",
        "env.bf16": "CPU 快速 bf16",
        "env.bf16_yes": "支持（{reason}）",
        "env.bf16_no": "不支持（{reason}）",
        "home.title": "PyTorch 实验室",
        "home.intro": "动手学习经典 PyTorch 教程：张量、自动求导、模型、数据、训练、性能分析与导出，"
                      "在浏览器中实时反馈。全部内容可在离线状态下使用内置的 MNIST 手写数字运行。",
        "home.pages": "在这里可以做什么",
        "home.open": "打开{page}",
        "home.card.data": "浏览内置 MNIST 手写数字或完整的 MNIST/FashionMNIST：样本网格、类别分布、"
                          "归一化前后对比、数据增强预览、DataLoader 批次和自定义 Dataset。",
        "home.env": "本机环境",
        "home.env.fact": "项目",
        "home.env.value": "值",
        "home.zoo": "模型库",
        "home.zoo_intro": "教程中的模型，每个都由模型规格（数据而非代码）构建：",
        "home.zoo.col.preset": "预设",
        "home.zoo.col.example": "示例",
        "home.zoo.col.title": "模型",
        "home.zoo.col.input": "输入形状",
        "home.zoo.col.output": "输出形状",
        "home.zoo.col.params": "参数量",
        "data.title": "数据",
        "data.intro": "实验室用于训练的数据。默认使用随实验室附带的 8,000 张真实 MNIST 手写数字，"
                      "可复现地划分为 7,000 张训练图像和 1,000 张测试图像。",
        "data.dataset": "数据集",
        "data.unavailable": "{title} 不可用：{reason}",
        "data.fallback": "改为显示内置手写数字。",
        "data.summary": "{train:,} 张训练图像和 {test:,} 张测试图像，尺寸 {h}×{w}，共 {classes} 类；"
                        "训练集均值 {mean:.4f}，标准差 {std:.4f}。",
        "data.source": "来源：{source}",
        "data.examples": "教程示例",
        "data.example.D1": "D1 · 自定义 Dataset + DataLoader",
        "data.example.D2": "D2 · 归一化数值范围",
        "data.example.D3": "D3 · 翻转 + ImageNet 归一化",
        "data.view": "视图",
        "data.view.samples": "样本",
        "data.view.balance": "类别分布",
        "data.view.normalize": "归一化",
        "data.view.augment": "数据增强",
        "data.view.batch": "DataLoader 批次",
        "data.view.custom": "自定义 Dataset",
        "data.samples.count": "图像数量",
        "data.samples.class": "类别",
        "data.samples.all": "全部类别",
        "data.samples.caption": "训练图像及其标签（按全局随机种子抽取）。",
        "data.balance.caption": "每个划分中各类别的图像数量。",
        "data.balance.split": "划分",
        "data.balance.count": "图像数",
        "data.normalize.caption": "训练图像在 ToTensor + Normalize 各步骤后的数值范围。"
                                  "Normalize((0.1307,), (0.3081,)) 使 MNIST 的均值约为 0、标准差约为 1；"
                                  "(0.5,), (0.5,) 把 [0, 1] 映射到 [-1, 1]。",
        "data.normalize.hist": "各步骤后的像素值分布",
        "data.augment.kind": "增强方式",
        "data.augment.hflip": "RandomHorizontalFlip（水平翻转）",
        "data.augment.rotation": "RandomRotation（旋转 30°）",
        "data.augment.affine": "RandomAffine（旋转、平移、缩放、剪切）",
        "data.augment.imagenet": "D3：翻转 + ToTensor + ImageNet 归一化（RGB）",
        "data.augment.before": "增强前",
        "data.augment.after": "增强后",
        "data.augment.caption": "同一批图像增强前后的对比；修改全局随机种子可抽取新的随机参数。",
        "data.augment.imagenet_note": "归一化后的值在显示时已反归一化；表格中是真实数值。",
        "data.batch.size": "批大小",
        "data.batch.caption": "实验室张量常驻加载器中打乱后的一个批次：每轮 {batches:,} 个批次。",
        "data.batch.inputs": "输入",
        "data.batch.targets": "标签",
        "data.batch.col.tensor": "张量",
        "data.batch.col.shape": "形状",
        "data.batch.col.dtype": "数据类型",
        "data.custom.caption": "一个实现了 __len__ 和 __getitem__ 的 Dataset，包含 100 个随机（数据，标签）对，"
                               "由 DataLoader(batch_size=32, shuffle=True) 读取。",
        "data.custom.len": "len(dataset) = {n}；dataset[0] 的形状：数据 {x}，标签 {y}",
        "data.custom.col.batch": "批次",
        "data.custom.col.x": "数据形状",
        "data.custom.col.y": "标签形状",
        "data.code": "PyTorch 代码",
        "error.bad_value": "无效的值：{reason}",
    },
}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def t(key: str, lang: str = DEFAULT_LANGUAGE, **values) -> str:
    """The text for ``key`` in ``lang`` (English when the language is unknown)."""
    table = CATALOGUE.get(lang, CATALOGUE[DEFAULT_LANGUAGE])
    text = table.get(key)
    if text is None:
        raise KeyError(f"no UI text for {key!r}")
    return text.format(**values) if values else text
