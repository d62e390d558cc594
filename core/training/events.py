"""The records the trainer returns and yields, as documented shapes.

``Trainer.step()`` returns a ``StepEvent``; ``Trainer.run_epoch()`` and ``Trainer.run()``
yield step events, an ``EpochEvent`` at the end of each epoch, and end with a
``StoppedEvent`` (stopped early, resumable) or, for ``run()``, a ``DoneEvent``. Every
event is a plain dict (TypedDicts are dicts at run time), tagged by its ``"kind"``, so
``if ev["kind"] == "epoch"`` narrows the type for a checker and the run store, the
console and the pages read them as they always did.

Numbers are Python floats and ints (never tensors), so an event can be written to the
run store or printed as JSON as it is.

(No ``from __future__ import annotations`` here: TypedDict sees ``NotRequired`` only in
evaluated annotations, and ``__required_keys__`` / ``__optional_keys__`` must be right.)
"""
from typing import Literal, NotRequired, TypedDict


class StepEvent(TypedDict):
    """One optimizer step (over ``accum_steps`` micro-batches)."""

    kind: Literal["step"]
    step: int               # optimizer steps done, this one included (1-based)
    epoch: int              # the epoch this step belongs to (1-based)
    batch: int              # micro-batches of this epoch done after this step
    batches: int            # micro-batches per epoch (for this process)
    loss: float             # mean training loss over the step's samples
    lr: float               # the learning rate this step used
    grad_norm: float        # total gradient norm before clipping (unscaled under fp16)
    samples: int            # samples in this step, over all processes
    seconds: float          # wall time of the step
    samples_per_s: float
    skipped: bool           # fp16: the GradScaler skipped the update (inf/NaN gradients)
    epoch_end: bool         # this step finished the epoch (an EpochEvent follows in run_epoch)
    acc: NotRequired[float]  # classification only: accuracy on the step's samples
    # a recording step's training internals ({"<layer>/<stat>": value}, core.training.internals), and any
    # step's gradient-norm spike ({"spike": norm / recent median})
    internals: NotRequired[dict[str, float]]


class EpochRecord(TypedDict):
    """An epoch's summary, as kept in ``Trainer.history`` and in a checkpoint's progress."""

    epoch: int                  # epochs completed
    step: int                   # optimizer steps done
    train_loss: float | None    # mean over the epoch's training samples (all processes)
    train_acc: float | None     # classification only
    val_loss: float | None      # on the validation split (model selection); None without one, on other ranks
    val_acc: float | None       # classification only; None without a validation split, on other ranks
    test_loss: float | None     # on the test split (reported, never used to choose); None on ranks other than 0
    test_acc: float | None      # classification only; None on ranks other than 0
    lr: float                   # the learning rate after the epoch
    seconds: float              # wall time of the epoch, validation and test passes included
    best: bool                  # the best selection score so far (Trainer.selection_score: validation, never test)


class EpochEvent(EpochRecord):
    """The end of an epoch: its ``EpochRecord`` tagged ``kind="epoch"``."""

    kind: Literal["epoch"]


class StoppedEvent(TypedDict):
    """The stop callback asked to stop: the trainer can be checkpointed and resumed here."""

    kind: Literal["stopped"]
    epoch: int   # epochs completed
    batch: int   # micro-batches done in the current epoch
    step: int    # optimizer steps done


class DoneEvent(TypedDict):
    """``run()`` trained every configured epoch."""

    kind: Literal["done"]
    epoch: int
    step: int
    best: float | None           # the best selection score (validation accuracy, or minus the lowest validation loss)
    last: EpochRecord | None     # the last epoch's record


class Evaluation(TypedDict):
    """``Trainer.evaluate()``: mean loss and accuracy over a split."""

    loss: float
    acc: float | None   # classification only
    n: int              # samples evaluated


EpochStream = StepEvent | EpochEvent | StoppedEvent
"""What ``run_epoch()`` yields."""

RunStream = StepEvent | EpochEvent | StoppedEvent | DoneEvent
"""What ``run()`` yields."""
