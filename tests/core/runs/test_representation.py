"""Representation over training: the worker keeps each epoch's PCA map of a fixed subset of test digits
beside the checkpoints (core.runs.representation); a regression run keeps none."""
import numpy as np
import torch

from core.ml.checkpoint import LAST, load_checkpoint
from core.ml.data import load_bundled
from core.ml.evaluate import checkpoint_model, checkpoint_normalization, prepare
from core.ml.explain import penultimate_and_logits, project
from core.runs import cli
from core.runs.representation import REPRESENTATION_FILE, SUBSET, load_representation, subset_indices
from core.runs.store import SQLiteRunStore


def test_each_epoch_gets_a_frame_of_the_same_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    assert cli.main(["--preset", "cnn", "--epochs", "2", "--limit-train", "256", "--limit-test", "100",
                     "--home", str(tmp_path), "--quiet"]) == 0
    store = SQLiteRunStore(tmp_path)
    (run,) = store.runs()
    found = load_representation(store, run["id"])
    assert found is not None
    assert list(found["epochs"]) == [1, 2]
    n = len(found["indices"])
    assert 50 <= n <= SUBSET and found["coords"].shape == (2, n, 2) and found["preds"].shape == (2, n)
    data = load_bundled()
    np.testing.assert_array_equal(found["labels"], data.test_labels[torch.from_numpy(found["indices"])].numpy())
    assert np.bincount(found["labels"], minlength=10).min() >= n // 10  # every class, evenly
    # The last frame is the last checkpoint's features: projecting them again lands on the stored points.
    ckpt = load_checkpoint(store.run_dir(run["id"]) / LAST, map_location=torch.device("cpu"))
    model, _ = checkpoint_model(ckpt)
    x, _ = prepare(data.test_images[torch.from_numpy(found["indices"])], *checkpoint_normalization(ckpt))
    feats, logits = penultimate_and_logits(model, x)
    np.testing.assert_allclose(project(feats, found["means"][-1], found["components"][-1]), found["coords"][-1],
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(logits.argmax(1).numpy(), found["preds"][-1])
    # Consecutive frames agree in sign on each axis (no flips between epochs).
    assert ((found["coords"][0] * found["coords"][1]).sum(axis=0) >= 0).all()


def test_a_run_without_frames_has_none_and_a_damaged_file_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    assert cli.main(["--recipe", "r1", "--epochs", "1", "--home", str(tmp_path), "--quiet"]) == 0
    store = SQLiteRunStore(tmp_path)
    (run,) = store.runs()
    assert load_representation(store, run["id"]) is None  # regression: no digits to map
    (store.run_dir(run["id"]) / REPRESENTATION_FILE).write_bytes(b"not an npz")
    assert load_representation(store, run["id"]) is None


def test_the_subset_is_fixed_and_balanced():
    labels = torch.arange(1000) % 10
    a, b = subset_indices(labels, 500), subset_indices(labels, 500)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 500 and np.bincount(labels[torch.from_numpy(a)].numpy()).tolist() == [50] * 10


def test_the_budget_keeps_the_frames_within_their_share_of_training(monkeypatch):
    """Frames that cost 0.1 s on 1-s epochs (10%) are thinned out to about 3% of the training time; the
    first and the last epoch always get one."""
    from core.runs import representation as R

    clock = {"t": 0.0}
    recorded = []

    def fake_record(store, run_id, ckpt, epoch):
        clock["t"] += 0.1
        recorded.append(epoch)

    monkeypatch.setattr(R, "record_epoch", fake_record)
    monkeypatch.setattr(R.time, "perf_counter", lambda: clock["t"])
    budget = R.Budget(share=0.03)
    for epoch in range(1, 21):
        budget.record(None, "run", {}, epoch, 1.0, final=epoch == 20)
    assert recorded[0] == 1 and recorded[-1] == 20
    assert 3 <= len(recorded) <= 1 + 0.03 * 20 / 0.1 + 1
    assert budget.spent - 0.1 <= 0.03 * budget.trained + 1e-9  # the last frame apart, within 3%
    every = R.Budget(share=0.5)  # a frame cheaper than its share: every epoch gets one
    recorded.clear()
    for epoch in range(1, 6):
        every.record(None, "run", {}, epoch, 1.0, final=epoch == 5)
    assert recorded == [1, 2, 3, 4, 5]
