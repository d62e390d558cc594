"""The ML engine's refusals and failure texts are coded LabErrors that read as Chinese in zh."""
import io
import os
import re

import pytest
import torch
from torch import nn

from core import i18n
from core.errors import LabError
from core.ml import checkpoint as C
from core.ml import data as D
from core.ml import export as E
from core.ml import failures as F
from core.ml import predict as P
from core.ml import profiling as PR
from core.ml.env import bf16_note, bf16_support

AREAS = ("checkpoint", "data", "image", "export", "profile", "failure", "env")
CJK = re.compile(r"[\u4e00-\u9fff]")


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def chinese(err: LabError) -> str:
    text = err.message("zh", markdown=True)
    assert CJK.search(text), text
    return text


def test_every_ml_error_text_is_chinese_in_zh():
    """Each err.<area>.* text of this package has Chinese once its placeholders and code spans are removed."""
    zh = i18n.CATALOGUE["zh"]
    keys = [k for k in zh if k.startswith(tuple(f"err.{a}." for a in AREAS))]
    assert len(keys) > 80
    for key in keys:
        words = re.sub(r"\{[^}]*\}|`[^`]*`", "", zh[key])
        if words.strip():  # "{error}" alone is a pass-through
            assert CJK.search(words), key
            assert not re.search(r"[A-Za-z]{3,} [a-z]{3,} [a-z]{3,}", words), f"English words in {key}: {zh[key]}"


def test_a_checkpoint_refusal_reads_in_chinese():
    with pytest.raises(C.CheckpointError) as info:
        C.load_checkpoint(saved({"epoch": 1, "model_state_dict": {}, "optimizer_state_dict": {}, "loss": Payload()}))
    err = info.value
    assert isinstance(err, LabError) and isinstance(err, ValueError) and err.code == "checkpoint.unsafe"
    assert "loading it could run code" in str(err)  # the lab's English, unchanged
    zh = chinese(err)
    assert zh.startswith("上传的文件") and "加载它可能运行代码" in zh and "loading it could" not in zh
    assert "`" in zh  # PyTorch's own words are shown as code
    with pytest.raises(C.CheckpointError) as info:
        C.load_checkpoint(saved({"epoch": 1}), max_bytes=100)
    assert info.value.code == "checkpoint.too_large"
    assert "超过了检查点大小上限 0.0 MB" in chinese(info.value)


def test_a_checkpoint_path_is_code_and_the_default_name_is_translated(tmp_path):
    with pytest.raises(C.CheckpointError) as info:
        C.load_checkpoint(tmp_path / "gone.pt")
    assert info.value.code == "checkpoint.no_file" and f"`{tmp_path / 'gone.pt'}`" in chinese(info.value)
    with pytest.raises(C.CheckpointError) as info:
        C.check_checkpoint({"w": torch.zeros(1)})
    assert str(info.value).startswith("the file is missing the checkpoint keys")
    assert str(info.value).endswith("(it looks like a bare model state_dict)")
    assert chinese(info.value).startswith("该文件") and "只是一个模型的 `state_dict`" in chinese(info.value)


def test_an_image_refusal_reads_in_chinese():
    buf = io.BytesIO()
    from PIL import Image
    Image.new("L", (8, 8)).save(buf, format="TIFF")
    with pytest.raises(P.ImageError) as info:
        P.load_image(buf.getvalue())
    err = info.value
    assert isinstance(err, LabError) and err.code == "image.format_refused"
    assert str(err) == "TIFF images are not accepted: use PNG, JPEG, GIF, BMP or WebP"
    assert chinese(err) == "不接受 TIFF 格式的图像：请使用 PNG、JPEG、GIF、BMP 或 WebP"
    with pytest.raises(P.ImageError) as info:
        P.load_image(b"x" * 11, max_bytes=10)
    assert chinese(info.value) == "文件有 11 字节；上限是 10"


def test_profile_config_is_validated_once_with_coded_errors():
    cfg = PR.ProfileConfig(mode="train_steps", steps=6, max_trace_mb=1)
    assert cfg.max_trace_mb == 1.0 and cfg.model_dump()["steps"] == 6
    with pytest.raises(Exception):  # noqa: B017 - frozen: a validated config cannot be changed afterwards
        cfg.steps = 99
    with pytest.raises(LabError) as info:
        PR.ProfileConfig(steps=51)
    assert info.value.code == "profile.too_many_steps" and "最多只能分析 50 步" in chinese(info.value)
    with pytest.raises(LabError) as info:
        PR.ProfileConfig(batch_size=1025)
    assert str(info.value) == "batch_size must be between 1 and 1024, got 1025"
    assert chinese(info.value) == "`batch_size` 必须在 1 到 1024 之间，实际为 1025"
    with pytest.raises(LabError, match="not a profiler setting") as info:
        PR.ProfileConfig(stepz=3)
    assert info.value.code == "profile.unknown_option"


def test_profiling_failure_is_a_coded_profiling_error():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nmore")

    with pytest.raises(PR.ProfilingError) as info:
        PR.profile_model(Broken(), [4], PR.ProfileConfig(batch_size=2))
    err = info.value
    assert isinstance(err, RuntimeError) and err.code == "profile.model_failed"
    assert "模型在性能分析中失败" in chinese(err) and "`RuntimeError: mat1 and mat2" in chinese(err)


def test_failure_summary_translates_its_hint_but_keeps_torch_words_as_code():
    try:
        try:
            raise RuntimeError("Could not guard on data-dependent expression Eq(u0, 1)")
        except RuntimeError as inner:
            raise ValueError("export broke") from inner
    except ValueError as raised:
        exc = raised
    err = F.failure(exc)
    assert str(err) == F.summarize_error(exc)
    assert str(err) == ("ValueError: export broke Caused by RuntimeError: Could not guard on data-dependent "
                        "expression Eq(u0, 1) Hint: The forward branches on tensor values (like `if x.sum() > 0`); "
                        "torch.export needs shape-only control flow or torch.cond.")
    zh = chinese(err)
    assert "起因" in zh and "提示：前向计算根据张量的值做分支" in zh and "Hint" not in zh
    assert "`ValueError: export broke`" in zh
    assert F.hint_for(RuntimeError("x"), "torchscript_script") == "script_subset"
    assert F.hint_for(RuntimeError("x")) is None


def test_export_failures_keep_a_coded_error_beside_the_table_text():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom: this model refuses to run")

    r = E.export_model(Boom(), [4], "state_dict")
    assert not r.ok and r.failure is not None and r.failure.code == "export.failed.eager"
    assert r.error == str(r.failure)
    assert r.error.startswith("state_dict failed while running the model in eager mode: RuntimeError: boom")
    assert "以 eager 模式运行模型时失败" in chinese(r.failure)
    assert E.results_table([r]).loc[0, "error"] == r.error
    with pytest.raises(LabError) as info:
        E.export_model(nn.Linear(1, 1), [1], "pickle")
    assert info.value.code == "export.unknown_format" and "未知的导出格式" in chinese(info.value)


def test_trace_over_the_cap_is_a_coded_warning():
    cfg = PR.ProfileConfig(mode="train_step", batch_size=2, max_trace_mb=0.001)
    r = PR.profile_model(nn.Linear(4, 2), [4], cfg, task="regression")
    assert r["trace"] is None and r["trace_failure"].code == "profile.trace_too_large"
    assert r["trace_error"] == str(r["trace_failure"])
    assert "不提供下载" in chinese(r["trace_failure"])


def test_data_unavailable_is_a_lab_error_and_still_a_runtime_error(tmp_path):
    from core.settings import load_settings

    settings = load_settings({"PYTORCH_LAB_DATA_ROOT": str(tmp_path), "PYTORCH_LAB_DOWNLOAD": "0"})
    with pytest.raises(D.DataUnavailable) as info:
        D.load_dataset("mnist", settings)
    err = info.value
    assert isinstance(err, RuntimeError) and isinstance(err, LabError) and err.code == "data.downloads_off"
    assert "下载已关闭" in chinese(err) and "`PYTORCH_LAB_DOWNLOAD=0`" in chinese(err)
    nested = D.DataUnavailable("data.unavailable", dataset="MNIST", root="/x", raw="/x/MNIST/raw",
                               reason=D.DataUnavailable("data.download_timeout", seconds=8.0))
    assert "download did not finish within 8 s" in str(nested)
    assert "下载未在 8 秒内完成" in chinese(nested)


def test_bf16_reason_is_coded_for_the_sidebar():
    fast, note = bf16_note({"avx2"})
    assert not fast and note.code == "env.bf16_emulated" and str(note) == bf16_support({"avx2"})[1]
    assert "比 fp32 慢" in chinese(note)
