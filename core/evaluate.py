"""``python -m core.evaluate``: score a lab checkpoint on your own digits, from a terminal.

Usage::

    python -m core.evaluate CHECKPOINT --data FILE.npz           # accuracy, per class, confusion matrix
    python -m core.evaluate CHECKPOINT --data FILE.npz --json    # the same as one JSON object

``FILE.npz`` is in the bundle's format (``np.savez(path, images=..., labels=...)``): ``images``
uint8 (N, 28, 28), white digits on black as MNIST has them, and ``labels`` (N,) whole numbers
0-9. The checkpoint is scored the way the lab scores its own test split: its weights' moving
average when the run kept one, test-time augmentation when the run used it, and the images
normalized with the statistics the run trained with (``core.ml.evaluate``); the confusion matrix
is the Train page's (``core.runs.view.evaluate_model``).

Exit status: 0 after the report; 2 with a one-line ``error: ...`` on stderr for a file that is
not a digits file (shapes, dtypes, labels out of range) or a checkpoint that is not the lab's.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from core.errors import LabError
from core.ml.checkpoint import load_checkpoint
from core.ml.data import find_dataset
from core.ml.evaluate import (
    ShiftTTA,
    checkpoint_model,
    checkpoint_normalization,
    digits_model_check,
    prepare,
    read_digits,
    report,
    report_text,
    uses_tta,
)
from core.runs.view import evaluate_model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.evaluate",
                                description="Score a PyTorch Lab checkpoint on a digits file (the bundle's .npz "
                                            "format), with the weights and preprocessing the lab's test figure uses.")
    p.add_argument("checkpoint", help="a checkpoint the lab saved (best.pt, last.pt or a download)")
    p.add_argument("--data", required=True, metavar="FILE.npz",
                   help="images uint8 (N, 28, 28) and labels (N,) saved with numpy.savez")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    return p


def evaluate_file(checkpoint: str, data: str) -> dict:
    """The report of a checkpoint on a digits file (``core.ml.evaluate.report``'s shape, plus the
    weights and test-time augmentation it was scored with). Raises ``LabError`` (a ``CheckpointError``
    or an ``EvaluationError``)."""
    ckpt = load_checkpoint(checkpoint, map_location=torch.device("cpu"))
    model, spec = checkpoint_model(ckpt)  # the lab's checkpoint, rebuilt, with the weights it is evaluated with
    classes = digits_model_check(ckpt, spec)
    images, labels = read_digits(data, classes)
    config = ckpt["config"]
    norm = checkpoint_normalization(ckpt)
    if norm is None:  # made before the lab stored its normalization: its training split's statistics
        from core.ml.data import load_dataset
        from core.settings import load_settings

        dataset = load_dataset(str(config["dataset"]), load_settings())
        norm = (dataset.mean, dataset.std)
    x, background = prepare(images, *norm)
    tta = uses_tta(config, spec)
    scored = ShiftTTA(model, background).eval() if tta else model
    result = evaluate_model(scored, x, labels, classes=classes)
    found = find_dataset(str(config["dataset"]))
    names = list(found.classes if found is not None else ()) or [str(i) for i in range(classes)]
    return {**report(result, names), "weights": "ema" if "ema_state_dict" in ckpt else "model", "tta": tta}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        out = evaluate_file(args.checkpoint, args.data)
    except LabError as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.checkpoint} on {args.data} ({out['weights']} weights"
              f"{', test-time augmentation' if out['tta'] else ''}):")
        print(report_text(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
