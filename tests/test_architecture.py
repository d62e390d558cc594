"""The layering rule, checked on the source: imports point down only, and there are no cycles.

Layers, top to bottom (README, "Layout")::

    app.py, pages/*.py        the browser side: one thin script per page
    pages/ui/                 Streamlit helpers shared by the pages
    core/train.py, evaluate.py, sweep.py, datasets.py, doctor.py   the commands (python -m core.train,
                              core.evaluate, core.sweep, core.datasets, core.doctor)
    core/lessons/             teaching engines, one per page (tensors, autograd, builder, step mode)
    core/runs/                run store, job queue, worker, trained models, run views
    core/training/            config, precision, batches, trainer, console
    core/ml/                  specs and modules, zoo, data, checkpoint, export, profiling, predict
    core/safe/                parsers of untrusted text: the expression evaluator, share tokens
    core/settings, core/i18n, core/errors     the one settings module, UI text, error texts

A module may import from its own layer or any layer below it, never above; every import
counts, also one inside a function. ``core`` never imports streamlit, and ``bench`` never
imports the tests.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (layer name, module prefixes), top to bottom.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("pages", ("app", "pages")),
    ("pages.ui", ("pages.ui",)),
    ("command", ("core.train", "core.evaluate", "core.sweep", "core.datasets", "core.doctor")),
    ("lessons", ("core.lessons",)),
    ("runs", ("core.runs",)),
    ("training", ("core.training",)),
    ("ml", ("core.ml",)),
    ("safe", ("core.safe",)),
    ("base", ("core.settings", "core.i18n", "core.errors")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """Index of the most specific layer whose prefix matches ``module`` (0 = top)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def sources() -> dict[str, Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py")), *sorted((ROOT / "core").rglob("*.py"))]
    return {module_name(f): f for f in files}


def imports_of(path: Path, known: set[str], missing: list[str] | None = None) -> dict[str, int]:
    """Project modules ``path`` imports (anywhere in the file), with the line of the first import.

    An import of a ``core``/``pages`` name that is no module (``from core import data`` after
    data moved to core.ml) is added to ``missing``.
    """
    found: dict[str, int] = {}
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from core.ml import data" imports the module core.ml.data;
            # "from core.ml.data import x" imports core.ml.data
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
            if missing is not None and node.module in ("core", "pages", "pages.ui"):
                missing += [f"{path.name}:{node.lineno} from {node.module} import {a.name}" for a in node.names
                            if f"{node.module}.{a.name}" not in known]
        if missing is not None and names and names[0].split(".")[0] in ("core", "pages"):
            missing += [f"{path.name}:{node.lineno} {n}" for n in names
                        if n not in known and n.rpartition(".")[0] not in known and n not in ("core", "pages")]
        for name in names:
            target = name
            while target and target not in known:  # "core.ml.data.load" -> "core.ml.data"
                target = target.rpartition(".")[0]
            if target:
                found.setdefault(target, node.lineno)
    return found


def graph() -> dict[str, dict[str, int]]:
    mods = sources()
    known = set(mods)
    return {name: imports_of(path, known) for name, path in mods.items()}


def test_every_module_is_in_a_layer():
    unplaced = [m for m in sources() if layer_of(m) is None and m not in ("core", "pages")]
    assert not unplaced, f"modules outside every layer (add them to LAYERS and README): {unplaced}"


def test_every_project_import_resolves():
    mods = sources()
    missing: list[str] = []
    for path in [*mods.values(), *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "bench").rglob("*.py"))]:
        imports_of(path, set(mods), missing)
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_imports_point_down():
    upward = []
    mods = sources()
    for module, targets in graph().items():
        mine = layer_of(module)
        for target, line in targets.items():
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs < mine:
                upward.append(f"{mods[module].relative_to(ROOT)}:{line} imports {target} "
                              f"({LAYERS[mine][0]} -> {LAYERS[theirs][0]})")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt == node:
                continue
            if state[nxt] == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif state[nxt] == 0:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if state[node] == 0:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_trainer_knows_no_store_and_no_queue():
    edges = graph()
    for module in (m for m in edges if m.startswith("core.training")):
        assert not any(t.startswith("core.runs") for t in edges[module]), module


@pytest.mark.parametrize("folder", ["core"])
def test_core_never_imports_streamlit(folder):
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "streamlit" or n.startswith("streamlit.") for n in names), path


def test_bench_does_not_import_the_tests():
    for path in sorted((ROOT / "bench").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "tests" or n.startswith("tests.") for n in names), path


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: an ml module importing the run store is reported."""
    fake = tmp_path / "bad.py"
    fake.write_text("from core.runs.store import RunStore\n")
    targets = imports_of(fake, set(sources()))
    assert "core.runs.store" in targets
    assert layer_of("core.runs.store") < layer_of("core.ml.data")
