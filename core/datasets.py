"""``python -m core.datasets``: the learner's own image datasets from a terminal (the Data page's upload).

Usage::

    python -m core.datasets add shapes shapes.zip                 # an ImageFolder zip (one folder per class)
    python -m core.datasets add mydigits my.npz --size 28 --channels 1 --test-fraction 0.2 --val-fraction 0.1
    python -m core.datasets add houses houses.csv --target price --task regression   # a table of numbers
    python -m core.datasets list                                  # (--json for the same as JSON)
    python -m core.datasets remove shapes
    python -m core.train --dataset shapes --epochs 3              # train on it (a small CNN sized to it)

A file the lab refuses (too big, a zip bomb, a path outside the archive, one class, ...) gets a
one-line reason on stderr and exit status 2; nothing is written then.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.ml.datasets import CHANNELS, MAX_UPLOAD_BYTES, MB, SIZES, DatasetError, add_file, remove, summaries
from core.ml.userdata import datasets_dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.datasets",
                                description="Add, list and remove your own image datasets in the lab home.")
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="decode, check, resize, split and register a .zip (ImageFolder) or .npz")
    add.add_argument("name", help="the dataset's name: lowercase letters, digits, - and _ (at most 48)")
    add.add_argument("file", help="a .zip in torchvision's ImageFolder layout, an .npz with images and labels, or a "
                                  ".csv with a header row (then --target)")
    add.add_argument("--size", type=int, default=28, choices=SIZES, help="images are resized to SIZE x SIZE")
    add.add_argument("--channels", type=int, default=1, choices=CHANNELS, help="1 grey, 3 colour")
    add.add_argument("--test-fraction", type=float, default=0.2, help="share of each class held out for testing")
    add.add_argument("--val-fraction", type=float, default=0.1,
                     help="share of the training images held out for validation when a run trains")
    add.add_argument("--seed", type=int, default=0, help="the split's seed (same seed, same split)")
    add.add_argument("--title", default="", help="a short description")
    add.add_argument("--target", default=None, help="a CSV's column to predict (the others are the features)")
    add.add_argument("--task", default="regression", choices=("regression", "classification"),
                     help="a CSV's task: a number (regression) or a class (classification)")
    lst = sub.add_parser("list", help="the registered datasets")
    lst.add_argument("--json", action="store_true", help="as JSON")
    rm = sub.add_parser("remove", help="delete a registered dataset")
    rm.add_argument("name")
    return p


def _add(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise DatasetError("datasets.file_too_large", mb=size / MB, cap=MAX_UPLOAD_BYTES / MB)
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    done = add_file(data, path.name, args.name, size=args.size, channels=args.channels,
                    test_fraction=args.test_fraction, val_fraction=args.val_fraction, seed=args.seed, title=args.title,
                    target=args.target, task=args.task)
    meta = done.meta
    if meta.get("kind") == "csv":
        print(f"added {done.key}: {meta['task']} of {meta['target']} from {len(meta['features'])} features, "
              f"{meta['train_size']} train / {meta['test_size']} test rows; train on it with: "
              f"python -m core.train --dataset {done.key}")
        return 0
    for note in done.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"added {done.key}: {len(meta['classes'])} classes, input shape {tuple(meta['input_shape'])}, "
          f"{meta['train_size']} train ({meta['val_size']} of them held out for validation) / {meta['test_size']} "
          f"test images; train on it with: python -m core.train --dataset {done.key}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "add":
            return _add(args)
        if args.command == "remove":
            remove(args.name)
            print(f"removed {args.name}")
            return 0
        rows = summaries()
        if args.json:
            print(json.dumps(rows, indent=1))
        elif not rows:
            print(f"no datasets in {datasets_dir()}")
        for row in [] if args.json else rows:
            kind = f"{row['classes']} classes" if row["task"] == "classification" else "regression"
            print(f"{row['name']}\t{kind}\t{row['input_shape']}\t"
                  f"{row['train']} train / {row['test']} test\t{row['source']}")
        return 0
    except ValueError as exc:  # a LabError (DatasetError): one line, the reason
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
