# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handlers of the training workflow: best model, resumable checkpoint, metrics CSV log.

- :class:`BestModelSaver` (on the evaluator) writes the network's state dict to ``models/model.pt``
  whenever the key validation metric improves. Unlike MONAI's ``CheckpointSaver`` it can save and
  restore its best score, so a resumed run does not overwrite a better model with a worse one.
- :class:`ResumableCheckpoint` (on the trainer) keeps one ``models/checkpoint.pt`` with the network,
  optimiser, trainer state (epoch, iteration) and any other state-dict object, and resumes from it
  with MONAI's ``CheckpointLoader``.
- :class:`MetricsCSVLogger` (on the trainer) writes one row per epoch: mean training loss,
  learning rate, the validation metrics of that epoch, elapsed time.
- :class:`GradientClipping` (on a ``SupervisedTrainer``) clips the gradient norm before each
  optimiser step (the MRLNet paper's recipe).
- :class:`TimeBudget` (on the trainer) ends training at the first epoch end after a wall-time
  budget, once the checkpoint of that epoch is written: long runs go in slices that fit a session
  and continue with ``--resume``.

All files are written atomically (temporary name, then rename), and only by the main process
(rank 0) in distributed runs; every rank keeps the same in-memory state.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import pandas as pd
import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointLoader

from pipeline.io import atomic_path, atomic_torch_save

__all__ = [
    "BestModelSaver",
    "EpochWeightsSaver",
    "GradientClipping",
    "MetricsCSVLogger",
    "ResumableCheckpoint",
    "TimeBudget",
    "loss_from_output",
    "unwrap_module",
]

logger = logging.getLogger(__name__)


def unwrap_module(obj: Any) -> Any:
    """The wrapped module of a ``DistributedDataParallel``/``DataParallel`` network, else ``obj``."""
    if isinstance(obj, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        return obj.module
    return obj


def loss_from_output(output: Mapping[str, Any] | list[Mapping[str, Any]]) -> float:
    """The ``"loss"`` of a trainer's iteration output (a dict, or a list of dicts when decollated)."""
    item = output[0] if isinstance(output, list) else output
    loss = item["loss"]
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)


def _is_main_process() -> bool:
    """True outside distributed runs and on rank 0: the process that writes files."""
    return idist.get_rank() == 0


class BestModelSaver:
    """Save the network's state dict when the evaluator's key metric (larger is better) improves.

    Args:
        save_path: the weights file (``models/model.pt``), a plain state dict as
            ``pipeline.inference.load_weights`` and ``monai.bundle ckpt_export`` expect.
        network: the network (a DDP/DP wrapper is unwrapped).
        metric_name: metric to compare; ``None`` = the evaluator's key metric.

    Attach to the evaluator. Put it in a resumable checkpoint's ``save_dict`` to keep the best score
    across a resume (:meth:`state_dict`, :meth:`load_state_dict`).
    """

    def __init__(self, save_path: str | os.PathLike, network: torch.nn.Module, metric_name: str | None = None) -> None:
        self.save_path = Path(save_path)
        self.network = network
        self.metric_name = metric_name
        self.best_metric = -float("inf")
        self.best_epoch = -1

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        name = self.metric_name or engine.state.key_metric_name  # type: ignore[attr-defined]
        value = float(engine.state.metrics[name])
        if value > self.best_metric:
            self.best_metric, self.best_epoch = value, int(engine.state.epoch)
            if not _is_main_process():
                return
            atomic_torch_save(unwrap_module(self.network).state_dict(), self.save_path)
            logger.info(f"{name} improved to {value:.4f} at epoch {self.best_epoch}: saved {self.save_path}")

    def state_dict(self) -> dict[str, float]:
        return {"best_metric": self.best_metric, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.best_metric, self.best_epoch = float(state["best_metric"]), int(state["best_epoch"])


class EpochWeightsSaver:
    """Keep the network's weights of every epoch, ``<folder>/epoch_NNN.pt``, for weight averaging.

    Args:
        folder: where the files go (``models/epochs`` of the run).
        network: the network (a DDP/DP wrapper is unwrapped).

    Attach to the trainer. Each file is a plain state dict, as ``models/model.pt``;
    :func:`~pipeline.training.averaging.average_run` (``mrisr bundles average``) averages a range of them (as stochastic
    weight averaging does), which smooths the epoch-to-epoch noise of small-batch training.
    """

    def __init__(self, folder: str | os.PathLike, network: torch.nn.Module) -> None:
        self.folder = Path(folder)
        self.network = network

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not _is_main_process():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(unwrap_module(self.network).state_dict(), self.folder / f"epoch_{engine.state.epoch:03d}.pt")


class ResumableCheckpoint:
    """Keep one resumable training checkpoint at a fixed path; optionally resume from it at start.

    The file holds ``{name: obj.state_dict()}`` for every entry of ``save_dict`` (networks are
    unwrapped from DDP) plus ``"trainer"``: the trainer engine's state (epoch, iteration). It is
    rewritten every ``save_interval`` epochs and when training completes.

    Args:
        save_path: the checkpoint file (``models/checkpoint.pt``).
        save_dict: objects with ``state_dict``/``load_state_dict``: network, optimizer, lr scheduler,
            a :class:`BestModelSaver`...; ``None`` entries are left out (a recipe without a scheduler:
            ``"lr_scheduler": null`` in the shared ``bundles/common/train_base.json``).
        save_interval: epochs between saves.
        resume: load ``save_path`` into the objects and the trainer when the trainer starts
            (``FileNotFoundError`` when it does not exist). The trainer continues at the saved
            iteration; its ``max_epochs`` stays the one it was built with.

    Attach to the trainer after its validation handler, so the saved state includes that epoch's
    validation (e.g. the best score of a :class:`BestModelSaver`).
    """

    def __init__(
        self, save_path: str | os.PathLike, save_dict: Mapping[str, Any], save_interval: int = 1, resume: bool = False
    ) -> None:
        if save_interval < 1:
            raise ValueError(f"save_interval must be >= 1, got {save_interval}")
        if not isinstance(resume, bool):
            raise TypeError(f"resume must be a bool (on the command line: --resume True), got {resume!r}")
        if "trainer" in save_dict:
            raise ValueError("save_dict must not contain 'trainer': the attached engine is saved under that name")
        self.save_path = Path(save_path)
        self.save_dict = {name: obj for name, obj in save_dict.items() if obj is not None}
        self.save_interval = save_interval
        self.resume = resume

    def attach(self, engine: Engine) -> None:
        if self.resume:
            if not self.save_path.is_file():
                raise FileNotFoundError(f"{self.save_path}: no checkpoint to resume from")
            load_dict = {**self.save_dict, "trainer": engine}
            CheckpointLoader(str(self.save_path), load_dict, map_location="cpu").attach(engine)
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.save)

    def save(self, engine: Engine) -> None:
        """Write the checkpoint of the current state (on the main process)."""
        if not _is_main_process():
            return
        state = {name: unwrap_module(obj).state_dict() for name, obj in self.save_dict.items()}
        state["trainer"] = engine.state_dict()
        atomic_torch_save(state, self.save_path)


class MetricsCSVLogger:
    """Write a CSV row per training epoch: epoch, iteration, train_loss, learning_rate, validation metrics, time_s.

    Args:
        save_path: the CSV file (rewritten atomically after each epoch).
        evaluator: the validation engine; its metrics enter the row of the epochs it ran.
        optimizer: to log the first parameter group's learning rate.
        loss_transform: maps the trainer's iteration output to the loss value; non-finite values (the
            NaN of iterations without a generator step in :class:`WGANGPTrainer`) are left out of the mean.

    A resumed run keeps the rows of the earlier epochs and continues the log. Attach to the trainer after
    its validation handler.
    """

    def __init__(
        self,
        save_path: str | os.PathLike,
        evaluator: Engine | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        loss_transform: Callable[[Any], float] = loss_from_output,
    ) -> None:
        self.save_path = Path(save_path)
        self.evaluator = evaluator
        self.optimizer = optimizer
        self.loss_transform = loss_transform
        self.rows: list[dict[str, Any]] = []
        self._loss_sum = 0.0
        self._loss_count = 0
        self._start = time.perf_counter()
        self._first_epoch = True

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def started(self, engine: Engine) -> None:
        self._start = time.perf_counter()
        self.rows = []
        self._first_epoch = True

    def epoch_started(self, engine: Engine) -> None:
        self._loss_sum, self._loss_count = 0.0, 0

    def iteration_completed(self, engine: Engine) -> None:
        loss = float(self.loss_transform(engine.state.output))
        if math.isfinite(loss):
            self._loss_sum += loss
            self._loss_count += 1

    def epoch_completed(self, engine: Engine) -> None:
        if not _is_main_process():
            return
        if self._first_epoch and engine.state.epoch > 1 and self.save_path.is_file():  # a resumed run
            previous = pd.read_csv(self.save_path)
            self.rows = previous[previous["epoch"] < engine.state.epoch].to_dict("records")
        self._first_epoch = False
        row: dict[str, Any] = {
            "epoch": engine.state.epoch,
            "iteration": engine.state.iteration,
            "train_loss": self._loss_sum / self._loss_count if self._loss_count else float("nan"),
        }
        if self.optimizer is not None:
            row["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        if self.evaluator is not None and self.evaluator.state.epoch == engine.state.epoch:
            row.update({k: float(v) for k, v in self.evaluator.state.metrics.items()})
        previous_time = self.rows[-1].get("time_s", 0.0) if self.rows else 0.0
        row["time_s"] = round(float(previous_time) + time.perf_counter() - self._start, 2)
        self._start = time.perf_counter()
        self.rows.append(row)
        summary = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        logger.info(f"epoch summary: {summary}")
        with atomic_path(self.save_path) as tmp:
            pd.DataFrame(self.rows).to_csv(tmp, index=False)


class GradientClipping:
    """Clip the total gradient norm of the trainer's network after each backward pass.

    Args:
        max_norm: largest allowed L2 norm of all gradients together (``torch.nn.utils.clip_grad_norm_``).

    Attach to a MONAI ``SupervisedTrainer``: it runs on ``IterationEvents.BACKWARD_COMPLETED``, before
    the optimiser step; with AMP the gradients are unscaled first (``GradScaler.unscale_``).
    """

    def __init__(self, max_norm: float) -> None:
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        self.max_norm = float(max_norm)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        scaler = getattr(engine, "scaler", None)
        if scaler is not None:
            scaler.unscale_(engine.optimizer)  # type: ignore[attr-defined]
        torch.nn.utils.clip_grad_norm_(engine.network.parameters(), self.max_norm)  # type: ignore[attr-defined]


class TimeBudget:
    """Terminate the trainer at the first epoch end after ``minutes`` of wall time.

    Args:
        minutes: the budget, counted from the trainer's start (a resumed run counts afresh);
            ``None`` = no limit (the handler does nothing).

    Attach to the trainer after its :class:`ResumableCheckpoint`, so the epoch that exceeds the
    budget is saved before training ends; resume with ``--resume`` (``resume=True``). In distributed
    runs rank 0's clock decides for every rank (broadcast), so all ranks stop at the same epoch.
    """

    def __init__(self, minutes: float | None = None) -> None:
        if minutes is not None and not minutes > 0:
            raise ValueError(f"minutes must be > 0 or None, got {minutes}")
        self.minutes = minutes
        self._start = time.perf_counter()

    def attach(self, engine: Engine) -> None:
        if self.minutes is None:
            return
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def started(self, engine: Engine) -> None:
        self._start = time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        elapsed_min = (time.perf_counter() - self._start) / 60.0
        over = torch.tensor(int(elapsed_min >= float(self.minutes)))  # type: ignore[arg-type]
        if idist.get_world_size() > 1:
            over = idist.broadcast(over, src=0)
        if int(over) and engine.state.epoch < (engine.state.max_epochs or 0):
            logger.info(
                f"time budget of {self.minutes} min reached after {elapsed_min:.1f} min at epoch "
                f"{engine.state.epoch}: stopping; continue with --resume"
            )
            engine.terminate()
