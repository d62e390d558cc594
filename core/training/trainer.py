"""The stepwise trainer, its typed config, precision selection and the training CLI.

``Trainer.step()`` performs one optimizer step (over ``accum_steps`` micro-batches) and
returns a small record; ``run_epoch()`` and ``run()`` are loops of steps that yield event
dicts (``{"kind": "step", ...}``, ``{"kind": "epoch", ...}``; their shapes are in
``core.training.events``). The page's "step one batch" mode, a background job and
``python -m core.train`` in a terminal all drive this class; the step mode and the
benchmarks look inside a step through public methods (``next_batch_indices()``,
``next_batch()``, ``targets()``, ``rng()``, ``autocast()``) and ``grad_norm()``.

Precision lives in ``select_precision`` only: fp16 autocast + GradScaler on CUDA, bf16
autocast where the hardware has native bf16 (refused with the reason on CPUs that would
emulate it 4-6x slower), fp16 on CPU refused; ``auto`` is bf16 where native, else fp32.

Evaluation is honest: model selection (the epoch event's ``best``, hence best.pt) uses the
validation split carved from the training images (``TrainConfig.val_size``), or without one the
training summary; the test split is evaluated and reported, never used to choose. Evaluation
runs the weights' moving average (``TrainConfig.ema``, ``core.training.ema``) and, with
``tta``, test-time augmentation (``core.ml.evaluate.ShiftTTA``).

Launched under ``torchrun`` (env ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) the same command
trains with DistributedDataParallel: gloo on CPU, nccl on CUDA; every rank takes its shard
of the seeded permutation; rank 0 logs, evaluates and writes checkpoints.

Usage::

    python -m core.train                                   # the default recipe
    python -m core.train --preset cnn --optimizer adam --lr 1e-3 --epochs 2
    python -m core.train --recipe r1                       # the tutorials' y = 2x regression
    python -m core.train --config run.json --epochs 3      # a JSON config saved from the lab
    torchrun --standalone --nproc_per_node=2 -m core.train --epochs 2
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import Code, LabError, first_line
from core.ml.activations import eval_batch_size
from core.ml.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.ml.evaluate import ShiftTTA
from core.ml.modules import build_model
from core.training.batches import TrainData, augment_batch, derive_seed, load_data
from core.training.config import Limits, TrainConfig, steps_per_epoch
from core.training.distributed import DistInfo, init_distributed
from core.training.ema import WeightEMA
from core.training.events import (
    DoneEvent,
    EpochEvent,
    EpochRecord,
    EpochStream,
    Evaluation,
    RunStream,
    StepEvent,
    StoppedEvent,
)
from core.training.internals import InternalsRecorder
from core.training.precision import Precision, resolve_device, select_precision


class TrainingDiverged(LabError):
    """The loss became NaN or infinite: the message suggests what to change (code ``trainer.diverged``)."""



# --------------------------------------------------------------------------- trainer
def _loss_fn(name: str, label_smoothing: float) -> nn.Module:
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if name == "bce_with_logits":
        return nn.BCEWithLogitsLoss()
    if name == "mse":
        return nn.MSELoss()
    return nn.L1Loss()


def make_optimizer(cfg: TrainConfig, params, device: torch.device | None = None) -> torch.optim.Optimizer:
    """The config's optimizer over ``params`` (also used to continue a finished run by hand); SGD, Adam
    and AdamW with their fused kernel on CPU and CUDA (one op per step over every parameter), the others
    (and other devices) with the multi-tensor foreach path."""
    kind = device.type if device is not None else "cpu"
    fused: dict[str, Any] = {"fused": True} if kind in ("cpu", "cuda") else {"foreach": True}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                   foreach=True)
    return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def linear_warmup_decay(total: int, warmup_pct: float) -> Callable[[int], float]:
    """The ``linear`` schedule's lr factor at step i: up from 1/warm to 1 over the first ``warm`` steps
    (``warmup_pct`` of ``total``), then linearly down to 0 at the last step."""
    warm = max(1, int(warmup_pct * total))

    def factor(i: int) -> float:
        if i < warm:
            return (i + 1) / warm
        return max(0.0, (total - i) / max(1, total - warm))

    return factor


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int):
    total = steps_per_epoch * cfg.epochs
    if cfg.scheduler == "linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup_decay(total, cfg.warmup_pct))
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if cfg.scheduler == "onecycle":
        kwargs: dict[str, Any] = {"cycle_momentum": False}
        if cfg.optimizer in ("adam", "adamw"):
            kwargs = {"cycle_momentum": True}
        elif cfg.optimizer in ("sgd", "rmsprop") and cfg.momentum > 0:
            kwargs = {"cycle_momentum": True, "max_momentum": cfg.momentum,
                      "base_momentum": max(0.0, cfg.momentum - 0.1)}
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(2, total),
                                                   pct_start=cfg.warmup_pct, **kwargs)
    return None


def grad_norm(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """The total 2-norm of the parameters' gradients (as ``clip_grad_norm_`` measures it), 0 if none."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))


class Trainer:
    """Trains one model on one dataset, one optimizer step at a time.

    ``step()`` -> ``StepEvent``; ``run_epoch()`` and ``run()`` yield step and epoch events;
    ``evaluate()`` -> ``Evaluation`` (``{"loss", "acc", "n"}``) of ``eval_model`` (the averaged
    weights when ``ema`` is on, inside test-time augmentation when ``tta`` is);
    ``checkpoint()`` / ``load_checkpoint()`` capture and restore everything needed to continue
    exactly (weights and their average, optimizer, scheduler, scaler, position in the epoch,
    random generators).
    """

    def __init__(self, config: TrainConfig, data: TrainData | None = None, settings=None, facts: Any = None,
                 dist_info: DistInfo | None = None, limits: Limits | None = None,
                 precision: Precision | None = None, channels_last: bool | None = None) -> None:
        """``data`` may be passed pre-loaded (a page's cached tensors); ``precision``
        overrides ``select_precision`` (tests of the scaler path only); ``channels_last``
        overrides the memory-layout choice (None: the lab's choice; bench/training.py
        compares both layouts)."""
        self.config = TrainConfig.from_dict(config).validate(limits)
        cfg = self.config
        self.dist = dist_info or DistInfo()
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        self.precision = precision or select_precision(cfg.precision, self.device, facts, force=cfg.allow_slow_bf16)
        if self.dist.distributed:
            init_distributed(self.dist, self.device)
        self.task = cfg.resolved_task
        self.loss_name = cfg.resolved_loss
        self.data = (data or load_data(cfg, settings)).to(self.device)
        if len(self.data.train_x) < self.dist.world_size:
            raise ValueError(f"{len(self.data.train_x)} training samples cannot be shared by "
                             f"{self.dist.world_size} processes")

        with torch.random.fork_rng(devices=[]):
            core = build_model(cfg.spec(), seed=cfg.seed, param_cap=(limits or Limits.from_env()).max_params)
        self.core = core.to(self.device)
        # Convolutions run faster in channels-last layout on CPU (oneDNN runs NHWC natively) and on tensor
        # cores, in fp32 and bf16 ("Hardware efficiency" in BENCHMARKS.md compares both layouts).
        has_conv = any(isinstance(m, nn.Conv2d) for m in self.core.modules())
        if channels_last is None:
            channels_last = self.device.type in ("cpu", "cuda") and has_conv
        self.channels_last = bool(channels_last) and has_conv
        if self.channels_last:
            self.core = self.core.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.core
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(self.core, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.loss_fn = _loss_fn(self.loss_name, cfg.label_smoothing).to(self.device)
        self.params = [p for p in self.core.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(cfg, self.params, self.device)
        # What evaluation runs: the weights' moving average (a copy updated after every step), and
        # test-time augmentation over it for images.
        self.ema = WeightEMA(self.core, cfg.ema) if cfg.ema > 0 else None
        averaged = self.ema.module if self.ema is not None else self.core
        self.eval_model: nn.Module = averaged
        if cfg.tta and len(self.data.train_x.shape) == 4:
            self.eval_model = ShiftTTA(averaged, self.data.background)

        # Each process trains on its shard; a step takes batch_size / world samples per process,
        # split into accum_steps micro-batches.
        self.n_shard = len(self.data.train_x) // self.dist.world_size
        per_rank_batch = max(1, cfg.batch_size // self.dist.world_size)
        self.micro_batch = max(1, per_rank_batch // cfg.accum_steps)
        self.batches_per_epoch = (self.n_shard // self.micro_batch if cfg.drop_last and self.n_shard >= self.micro_batch
                                  else -(-self.n_shard // self.micro_batch))
        self.steps_per_epoch = steps_per_epoch(len(self.data.train_x), cfg.batch_size, cfg.accum_steps,
                                               self.dist.world_size, cfg.drop_last)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.scheduler = _scheduler(cfg, self.optimizer, self.steps_per_epoch)
        # fp16 on CUDA: scale the loss against underflow; unscale_ before clipping, step, update.
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision.use_scaler else None

        self.epoch = 0          # completed epochs
        self.batch = 0          # micro-batches done in the current epoch
        self.global_step = 0    # optimizer steps done
        self.last_loss: float | None = None
        # best selection score so far: validation accuracy (classification) or minus the validation loss;
        # without a validation split the epoch's training accuracy / minus training loss. Never a test score.
        self.best: float | None = None
        self.history: list[EpochRecord] = []   # epoch records so far
        self._acc = {"loss_sum": 0.0, "correct": 0, "seen": 0}
        self._order: torch.Tensor | None = None
        # train_loss and train_acc of the last finished epoch
        self._train_summary: tuple[float | None, float | None] = (None, None)
        self._cpu_rng = torch.Generator().manual_seed(derive_seed(cfg.seed, "torch", self.dist.rank)).get_state()
        self._cuda_rng: torch.Tensor | None = None
        if self.device.type == "cuda":
            with torch.random.fork_rng(devices=[self.device], device_type="cuda"):
                torch.cuda.manual_seed(derive_seed(cfg.seed, "cuda", self.dist.rank))
                self._cuda_rng = torch.cuda.get_rng_state(self.device)
        self.aug_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "augment", self.dist.rank))
        # Training internals every internals_every steps (rank 0; core.training.internals): read-only hooks
        # and copies, so the numbers trained are the same with recording on or off.
        self.internals = (InternalsRecorder(self.core, cfg.internals_every,
                                            self.data.outputs if self.task == "classification" else None)
                          if cfg.internals_every > 0 and self.is_main else None)

    # ---------------------------------------------------------------- helpers
    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    @contextmanager
    def rng(self) -> Iterator[None]:
        """Run with this trainer's own RNG state (dropout), isolated from other code.

        The state advances with what runs inside, as it does inside ``step()``.
        """
        cuda = self._cuda_rng is not None
        with torch.random.fork_rng(devices=[self.device] if cuda else [], device_type="cuda"):
            torch.set_rng_state(self._cpu_rng)
            if self._cuda_rng is not None:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            yield
            self._cpu_rng = torch.get_rng_state()
            if cuda:
                self._cuda_rng = torch.cuda.get_rng_state(self.device)

    def autocast(self):
        """The forward pass's precision context: autocast to the run's dtype, or nothing for fp32."""
        p = self.precision
        if p.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=p.autocast_device, dtype=p.dtype)

    def _epoch_order(self) -> torch.Tensor:
        if self._order is None:
            n = len(self.data.train_x)
            gen = torch.Generator().manual_seed(derive_seed(self.config.seed, "shuffle", self.epoch))
            order = torch.randperm(n, generator=gen) if self.config.shuffle else torch.arange(n)
            if self.dist.distributed:
                order = order[self.dist.rank:self.n_shard * self.dist.world_size:self.dist.world_size]
            self._order = order.to(self.data.train_x.device)
        return self._order

    def next_batch_indices(self) -> list[torch.Tensor]:
        """Indices (into ``data.train_x``) of the micro-batches the next ``step()`` trains on."""
        order = self._epoch_order()
        last = min(self.batch + self.config.accum_steps, self.batches_per_epoch)
        return [order[b * self.micro_batch:(b + 1) * self.micro_batch] for b in range(self.batch, last)]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (un-augmented) inputs and labels the next ``step()`` trains on, micro-batches joined."""
        idx = torch.cat(self.next_batch_indices())
        return self.data.train_x[idx], self.data.train_y[idx]

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Labels as the loss function takes them (one-hot floats for ``bce_with_logits``)."""
        if self.loss_name == "bce_with_logits":
            return F.one_hot(y, self.data.outputs).to(torch.float32)
        return y

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ---------------------------------------------------------------- training
    def step(self) -> StepEvent:
        """One optimizer step over ``accum_steps`` micro-batches; returns its record."""
        if self.finished:
            raise RuntimeError(f"the run is complete ({self.config.epochs} epochs); start a new one to train more")
        t0 = time.perf_counter()
        cfg, data = self.config, self.data
        slices = self.next_batch_indices()
        last = self.batch + len(slices)
        total = sum(len(s) for s in slices)
        lr = self.current_lr()
        if not self.core.training:  # evaluation and the step mode's evaluation restore train mode on the whole model;
            self.model.train()      # walking every module each step costs ~0.1 ms (1-2% of a small CNN's step)
        self.optimizer.zero_grad(set_to_none=True)
        # Loss and correct counts stay tensors until every micro-batch is queued (no GPU sync in between),
        # with as few extra ops as possible: each costs ~10 µs on a CPU, a few % of a small model's step
        # ("Trainer overhead" in BENCHMARKS.md).
        losses: list[torch.Tensor] = []
        corrects: list[torch.Tensor] = []
        recorder = self.internals
        recording = recorder is not None and recorder.due(self.global_step + 1)
        with self.rng():
            for i, idx in enumerate(slices):
                x, y = data.train_x[idx], data.train_y[idx]
                if cfg.augment:
                    x = augment_batch(x, self.aug_gen)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                sync = (self._no_sync() if self.dist.distributed and i < len(slices) - 1 else nullcontext())
                watch = recorder.forward(x, y) if recording and recorder is not None and i == 0 else nullcontext()
                with sync:
                    with self.autocast(), watch:
                        out = self.model(x)
                    loss = self.loss_fn(out.float(), self.targets(y))
                    scaled = loss if len(slices) == 1 else loss * (len(idx) / total)
                    if self.scaler is not None:
                        self.scaler.scale(scaled).backward()
                    else:
                        scaled.backward()
                losses.append(loss.detach())
                if self.task == "classification":
                    corrects.append((out.argmax(1) == y).sum())  # argmax is not differentiable: no graph
        loss_value = sum(float(lo) * len(idx) for lo, idx in zip(losses, slices, strict=False)) / total
        correct = sum(int(c) for c in corrects)
        skipped = False
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # true gradients before measuring or clipping them
        if recording and recorder is not None:
            recorder.after_backward()
        if cfg.grad_clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip))
        else:
            norm = float(grad_norm(self.params))
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # skips the step when gradients hold inf/NaN
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale
        else:
            if not math.isfinite(loss_value):
                raise TrainingDiverged("trainer.diverged", loss=Code(str(loss_value)), step=self.global_step + 1)
            self.optimizer.step()
        internals = recorder.after_step() if recording and recorder is not None else {}
        if recorder is not None and (spike := recorder.spike(norm)) is not None:
            internals["spike"] = spike
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        self.global_step += 1
        self.batch = last
        self.last_loss = loss_value
        self._acc["loss_sum"] += loss_value * total
        self._acc["correct"] += int(correct)
        self._acc["seen"] += total
        seconds = time.perf_counter() - t0
        record = StepEvent(
            kind="step", step=self.global_step, epoch=self.epoch + 1, batch=self.batch,
            batches=self.batches_per_epoch, loss=loss_value, lr=lr, grad_norm=norm,
            samples=total * self.dist.world_size, seconds=seconds,
            samples_per_s=total * self.dist.world_size / max(seconds, 1e-9), skipped=skipped,
            epoch_end=self.batch >= self.batches_per_epoch,
        )
        if self.task == "classification":
            record["acc"] = int(correct) / total
        if internals:
            record["internals"] = internals
        if record["epoch_end"]:
            self._train_summary = self._close_epoch()
        return record

    def _no_sync(self):
        """DDP's ``no_sync()``: accumulate a micro-batch's gradients without an all-reduce."""
        ddp: Any = self.model
        return ddp.no_sync()

    def _close_epoch(self) -> tuple[float | None, float | None]:
        acc = self._acc
        stats = torch.tensor([acc["loss_sum"], float(acc["correct"]), float(acc["seen"])], dtype=torch.float64)
        if self.dist.distributed:
            import torch.distributed as dist

            stats = stats.to(self.device)  # NCCL reduces CUDA tensors only
            dist.all_reduce(stats)
        loss_sum, correct, seen = stats.cpu().tolist()
        summary = (loss_sum / max(seen, 1), correct / max(seen, 1) if self.task == "classification" else None)
        self.epoch += 1
        self.batch = 0
        self._order = None
        self._acc = {"loss_sum": 0.0, "correct": 0, "seen": 0}
        return summary

    def _eval_batch(self, sample_shape: tuple[int, ...], largest: int) -> int:
        """Evaluation batch size for this model (computed once per sample shape and cap)."""
        cache = self.__dict__.setdefault("_eval_batches", {})
        key = (sample_shape, largest)
        if key not in cache:
            cache[key] = eval_batch_size(self.core, sample_shape, largest=largest, refuse=False)
        return cache[key]

    @torch.no_grad()
    def evaluate(self, split: str = "test", batch_size: int = 1000) -> Evaluation:
        """Mean loss and accuracy (classification) of ``eval_model`` over a whole split (``train``,
        ``val`` or ``test``), in eval mode.

        Batches hold at most ``batch_size`` samples and no more than fit the memory budget
        (``PYTORCH_LAB_BUDGET_MB``, from the model's activations per sample): a narrow
        model may use 1,000, a very wide one far fewer.
        """
        if split not in ("test", "val", "train"):
            raise ValueError("split must be 'test', 'val' or 'train'")
        x_all, y_all = self.data.split(split)
        self.core.eval()
        batch_size = self._eval_batch(tuple(x_all.shape[1:]), batch_size)
        loss_sum, correct, n = 0.0, 0, len(x_all)
        for start in range(0, n, batch_size):
            x, y = x_all[start:start + batch_size], y_all[start:start + batch_size]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                out = self.eval_model(x)
            loss_sum += float(self.loss_fn(out.float(), self.targets(y))) * len(x)
            if self.task == "classification":
                correct += int((out.argmax(1) == y).sum())
        self.core.train()
        return Evaluation(loss=loss_sum / max(n, 1),
                          acc=correct / max(n, 1) if self.task == "classification" else None, n=n)

    def selection_score(self, event: EpochRecord) -> float | None:
        """What model selection compares (higher is better): the validation accuracy (classification)
        or minus the validation loss; without a validation split, the epoch's training accuracy or minus
        its training loss. The test split never enters it."""
        classify = self.task == "classification"
        if self.data.has_validation:
            value = event["val_acc"] if classify else event["val_loss"]
        else:
            value = event["train_acc"] if classify else event["train_loss"]
        if value is None:
            return None
        return value if classify else -value

    def _epoch_event(self, seconds: float) -> EpochEvent:
        train_loss, train_acc = self._train_summary
        event = EpochEvent(kind="epoch", epoch=self.epoch, step=self.global_step, train_loss=train_loss,
                           train_acc=train_acc, val_loss=None, val_acc=None, test_loss=None, test_acc=None,
                           lr=self.current_lr(), seconds=seconds, best=False)
        if self.is_main:
            if self.data.has_validation:
                val = self.evaluate("val")
                event["val_loss"], event["val_acc"] = val["loss"], val["acc"]
            ev = self.evaluate("test")  # reported only
            event["test_loss"], event["test_acc"] = ev["loss"], ev["acc"]
            score = self.selection_score(event)
            if score is not None and math.isfinite(score) and (self.best is None or score > self.best):
                self.best = score
                event["best"] = True
        self.history.append(EpochRecord(epoch=event["epoch"], step=event["step"], train_loss=event["train_loss"],
                                        train_acc=event["train_acc"], val_loss=event["val_loss"],
                                        val_acc=event["val_acc"], test_loss=event["test_loss"],
                                        test_acc=event["test_acc"], lr=event["lr"], seconds=event["seconds"],
                                        best=event["best"]))
        return event

    def run_epoch(self, stop: Callable[[], bool] | None = None) -> Iterator[EpochStream]:
        """Steps to the end of the current epoch (yielding each), then the epoch event.

        ``stop`` is polled after every step; when it says so, a ``{"kind": "stopped"}``
        event ends the loop (the trainer can be checkpointed and resumed there).
        """
        t0 = time.perf_counter()
        while not self.finished:
            record = self.step()
            yield record
            if record["epoch_end"]:
                yield self._epoch_event(time.perf_counter() - t0)
                return
            if self._should_stop(stop):
                yield self._stopped_event()
                return

    def run(self, stop: Callable[[], bool] | None = None) -> Iterator[RunStream]:
        """All remaining epochs: step and epoch events, then ``{"kind": "done"}`` (or ``stopped``)."""
        while not self.finished:
            for event in self.run_epoch(stop):
                yield event
                if event["kind"] == "stopped":
                    return
            if not self.finished and self._should_stop(stop):
                yield self._stopped_event()
                return
        yield DoneEvent(kind="done", epoch=self.epoch, step=self.global_step, best=self.best,
                        last=self.history[-1] if self.history else None)

    def _stopped_event(self) -> StoppedEvent:
        return StoppedEvent(kind="stopped", epoch=self.epoch, batch=self.batch, step=self.global_step)

    def _should_stop(self, stop: Callable[[], bool] | None) -> bool:
        flag = bool(stop()) if (stop is not None and self.is_main) else False
        if self.dist.distributed:
            import torch.distributed as dist

            t = torch.tensor([int(flag)], dtype=torch.int32)
            if self.device.type == "cuda":
                t = t.to(self.device)
            dist.broadcast(t, 0)
            flag = bool(t.item())
        return flag

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        """The tutorials' checkpoint dict plus what an exact resume needs (weights_only-loadable)."""
        rng: dict[str, Any] = {"torch": self._cpu_rng.clone(), "augment": self.aug_gen.get_state()}
        if self._cuda_rng is not None:
            rng["cuda"] = self._cuda_rng.cpu().clone()
        ckpt: dict[str, Any] = {
            "epoch": self.epoch,
            "model_state_dict": self.core.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "loss": self.last_loss,
            "config": self.config.to_dict(),
            "scheduler_state_dict": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler_state_dict": self.scaler.state_dict() if self.scaler is not None else {},
            "step": self.global_step,
            "progress": {"batch": self.batch, "loss_sum": self._acc["loss_sum"], "correct": self._acc["correct"],
                         "seen": self._acc["seen"], "best": self.best, "world_size": self.dist.world_size,
                         "ema_updates": self.ema.updates if self.ema is not None else 0,
                         "history": [{k: v for k, v in h.items()} for h in self.history]},
            "rng": rng,
        }
        if self.ema is not None:  # the weights evaluation uses (core.ml.evaluate.eval_state_dict)
            ckpt["ema_state_dict"] = self.ema.state_dict()
        if self.data.mean is not None and self.data.std is not None:  # how every split was normalized
            ckpt["normalization"] = {"mean": self.data.mean, "std": self.data.std}
        return ckpt

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.checkpoint(), path)

    def load_checkpoint(self, ckpt: dict | str | Path, max_bytes: int | None = None) -> None:
        """Continue from a checkpoint made by a trainer with the same config."""
        if not isinstance(ckpt, dict):
            ckpt = load_checkpoint(ckpt, max_bytes=max_bytes)
        saved = ckpt.get("config")
        if not isinstance(saved, dict):
            raise CheckpointError("checkpoint.no_lab_config")
        mine = self.config.to_dict()
        diff = sorted(k for k in set(mine) | set(saved) if mine.get(k) != saved.get(k))
        if diff:
            raise CheckpointError("checkpoint.config_differs", diff=Code(", ".join(
                f"{k}: {saved.get(k)!r} vs {mine.get(k)!r}" for k in diff[:5])))
        try:
            self.core.load_state_dict(ckpt["model_state_dict"])
            self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
            if self.scheduler is not None and ckpt.get("scheduler_state_dict"):
                self.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
            if self.scaler is not None and ckpt.get("scaler_state_dict"):
                self.scaler.load_state_dict(ckpt["scaler_state_dict"])
            if self.ema is not None:
                progress = ckpt.get("progress") or {}
                self.ema.load_state_dict(ckpt["ema_state_dict"], int(progress.get("ema_updates", 0)))
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError("checkpoint.does_not_fit", reason=Code(first_line(exc))) from None
        progress = ckpt.get("progress") or {}
        self.epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt.get("step", 0))
        self.batch = int(progress.get("batch", 0))
        if not 0 <= self.batch < self.batches_per_epoch:
            raise CheckpointError("checkpoint.bad_position", batch=self.batch)
        self.last_loss = None if ckpt["loss"] is None else float(ckpt["loss"])
        self._acc = {"loss_sum": float(progress.get("loss_sum", 0.0)), "correct": int(progress.get("correct", 0)),
                     "seen": int(progress.get("seen", 0))}
        self.best = progress.get("best")
        self.history = list(progress.get("history", []))
        self._order = None
        rng = ckpt.get("rng") or {}
        same_world = int(progress.get("world_size", 1)) == self.dist.world_size == 1
        if same_world and isinstance(rng.get("torch"), torch.Tensor):
            self._cpu_rng = rng["torch"].clone()
            self.aug_gen.set_state(rng["augment"])
            if self._cuda_rng is not None and isinstance(rng.get("cuda"), torch.Tensor):
                self._cuda_rng = rng["cuda"].clone()
        else:  # another process layout: fresh, still seeded, generators per rank
            tag = ("resume", self.global_step, self.dist.rank)
            self._cpu_rng = torch.Generator().manual_seed(derive_seed(self.config.seed, "torch", *tag)).get_state()
            self.aug_gen.manual_seed(derive_seed(self.config.seed, "augment", *tag))
