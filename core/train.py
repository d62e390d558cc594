"""``python -m core.train``: the lab's training command (see core.runs.cli).

Usage::

    python -m core.train                                   # the default recipe
    python -m core.train --preset cnn --optimizer adam --lr 1e-3 --epochs 2
    python -m core.train --recipe r1                       # the tutorials' y = 2x regression
    python -m core.train --config run.json --epochs 3      # a JSON config saved from the lab
    torchrun --standalone --nproc_per_node=2 -m core.train --epochs 2

The same command, with ``--run-id``, is what a background job runs (core.runs.jobs).
"""
import sys

from core.runs.cli import main

if __name__ == "__main__":
    sys.exit(main())
