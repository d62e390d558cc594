import re
from pathlib import Path

import pytest

from core import i18n
from core.ml import env
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_both_languages_have_the_same_keys_and_placeholders():
    en, zh = i18n.CATALOGUE["en"], i18n.CATALOGUE["zh"]
    assert set(en) == set(zh)
    for key in en:
        assert i18n.placeholders(en[key]) == i18n.placeholders(zh[key]), key
        assert zh[key].strip(), key


def test_every_key_used_by_the_pages_exists():
    used = set()
    for path in [ROOT / "app.py", *ROOT.glob("pages/**/*.py")]:
        used |= set(re.findall(r'tr\(\s*"([a-z0-9_.]+)"', path.read_text()))
    assert used, "no tr() calls found"
    missing = used - set(i18n.CATALOGUE["en"])
    assert not missing, missing


def test_t_formats_and_falls_back():
    assert i18n.t("home.open", "en", page="Data") == "Open Data"
    assert i18n.t("home.open", "zh", page="数据") == "打开数据"
    assert i18n.t("page.data", "xx") == "Data"
    with pytest.raises(KeyError):
        i18n.t("no.such.key")


def test_core_never_imports_streamlit():
    offenders = [p.name for p in (ROOT / "core").rglob("*.py")
                 if re.search(r"^\s*(import streamlit|from streamlit)", p.read_text(), re.M)]
    assert not offenders


def test_bf16_detection():
    assert env.bf16_support({"avx2", "avx512_bf16"})[0]
    assert env.bf16_support({"amx_bf16"})[0]
    fast, reason = env.bf16_support({"avx2", "fma"})
    assert not fast and "slower" in reason
    assert env.cpu_flags("processor: 0\nflags\t\t: fpu avx2 sse\n") == {"fpu", "avx2", "sse"}
    facts = env.env_facts()
    assert facts.torch_version and facts.cpu_threads >= 1


def test_settings_from_environment(tmp_path):
    s = load_settings({"PYTORCH_LAB_HOME": str(tmp_path), "PYTORCH_LAB_DOWNLOAD": "0",
                       "PYTORCH_LAB_DOWNLOAD_TIMEOUT": "oops"})
    assert s.home == tmp_path and s.data_root == tmp_path / "data"
    assert not s.allow_download and s.download_timeout == 8.0
    assert load_settings({"PYTORCH_LAB_DOWNLOAD_TIMEOUT": "9999"}).download_timeout == 120.0


def test_readme_settings_table_is_the_settings_module():
    """README's configuration table lists exactly the PYTORCH_LAB_* variables core.settings reads,
    with their real defaults and ranges."""
    from core.settings import SETTINGS_TABLE, readme_row

    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `PYTORCH_LAB_")]
    assert rows == [readme_row(s) for s in SETTINGS_TABLE]
    # The documented defaults are the real ones.
    defaults = load_settings({})
    for s in SETTINGS_TABLE:
        if not callable(s.default) and s.default is not None:
            assert s.readme_default == f"`{int(s.default)}`", s.env
            assert getattr(defaults, s.field) == s.default, s.env
    assert defaults.job_cap == max(1, (__import__("os").cpu_count() or 1) // 4)
    assert defaults.data_root == defaults.home / "data"


def test_every_environment_variable_is_read_in_the_settings_module():
    """No other module parses PYTORCH_LAB_* variables (a test of the one-source rule)."""
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        if path.name == "settings.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "environ" in line and "PYTORCH_LAB_" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert not offenders, offenders


def test_settings_clamp_and_note_bad_values(tmp_path):
    s = load_settings({"PYTORCH_LAB_JOB_CAP": "0", "PYTORCH_LAB_HEARTBEAT_S": "abc", "PYTORCH_LAB_DOWNLOAD": "maybe"})
    assert s.job_cap == 1 and s.heartbeat_s == 2.0 and s.download is True
    assert len(s.notes) == 3 and any("PYTORCH_LAB_JOB_CAP" in n for n in s.notes)
