"""A finished run's test-split evaluation is computed once, by its worker, and kept next to best.pt:
the Train page reads it instead of evaluating in the server (a busy server would pass its budget)."""
import os

import numpy as np

from core.runs import cli
from core.runs.store import SQLiteRunStore
from core.runs.trained import EVALUATION_FILE, load_run_evaluation, stored_evaluation
from core.runs.view import evaluate_model


def test_the_worker_keeps_the_evaluation_the_page_would_compute(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    assert cli.main(["--recipe", "r3", "--epochs", "1", "--limit-train", "256", "--limit-test", "100",
                     "--home", str(tmp_path), "--quiet"]) == 0
    store = SQLiteRunStore(tmp_path)
    (run,) = store.runs()
    assert (store.run_dir(run["id"]) / EVALUATION_FILE).is_file()
    kept = stored_evaluation(store, run["id"])
    assert kept is not None
    model, x, y = load_run_evaluation(store, run["id"])
    fresh = evaluate_model(model, x, y)
    assert kept["accuracy"] == fresh["accuracy"]
    for key in ("confusion", "per_class", "pred", "wrong"):
        np.testing.assert_array_equal(kept[key], fresh[key])
    # A checkpoint written after the evaluation (a resumed run) makes the kept one stale: not used.
    best = store.run_dir(run["id"]) / "best.pt"
    os.utime(best, (best.stat().st_atime, best.stat().st_mtime + 10))
    assert stored_evaluation(store, run["id"]) is None
