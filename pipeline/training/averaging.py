# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Weight averaging of a run's epochs (``mrisr bundles average``), as stochastic weight averaging does.

Small-batch training on a CPU leaves the validation score noisy from epoch to epoch (``thick_slice``:
+2.75 to +2.93 dB over four consecutive epochs on the ``val`` scans); the uniform average of a range of
epochs' weights scores about as well as the best of them without choosing one by the noise. A run keeps
its epochs' weights when its config sets ``keep_epoch_weights``
(:class:`~pipeline.training.EpochWeightsSaver`: ``models/epochs/epoch_NNN.pt``).

The average goes into a new run folder (the source run's configs, ``models/model.pt`` = the average, and
a ``run.json`` that names the source run and the epochs), so it can be scored with ``mrisr evaluate
--split val --methods <folder>`` and shipped with ``mrisr bundles export <folder> --to bundles/<name>``.
PyTorch's ``torch.optim.swa_utils.AveragedModel`` averages during training; this works on saved epochs,
so the range can be chosen after the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from pipeline.io import atomic_path, atomic_write_json
from pipeline.training.run_folders import RUN_RECORD, display_path, read_run_record, utc_now

__all__ = ["EPOCHS_DIR", "average_run", "average_state_dicts", "epoch_weight_files"]

EPOCHS_DIR = Path("models") / "epochs"
"""Where :class:`~pipeline.training.EpochWeightsSaver` keeps a run's per-epoch weights."""


def epoch_weight_files(run_dir: str | os.PathLike, first: int, last: int) -> list[Path]:
    """The run's ``models/epochs/epoch_NNN.pt`` for epochs ``first`` to ``last`` (inclusive).

    Raises:
        ValueError: ``first`` > ``last`` or ``first`` < 1.
        FileNotFoundError: an epoch's file is missing (the message lists them).
    """
    if first < 1 or first > last:
        raise ValueError(f"epochs must satisfy 1 <= first <= last, got {first} {last}")
    folder = Path(run_dir) / EPOCHS_DIR
    files = [folder / f"epoch_{epoch:03d}.pt" for epoch in range(first, last + 1)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: no weights for {', '.join(missing)} (train with keep_epoch_weights)")
    return files


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of state dicts with the same keys (float tensors averaged in float64, cast back).

    Non-float entries (integer buffers such as batch counters) must agree and are taken from the first.

    Raises:
        ValueError: no states, different keys or shapes, or differing non-float entries.
    """
    if not states:
        raise ValueError("no state dicts to average")
    keys = list(states[0])
    out: dict[str, torch.Tensor] = {}
    for index, state in enumerate(states):
        if list(state) != keys:
            raise ValueError(f"state dict {index} has other keys than the first")
    for key in keys:
        tensors = [state[key] for state in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise ValueError(f"{key}: shapes differ between the state dicts")
        if tensors[0].is_floating_point():
            out[key] = (sum(t.double() for t in tensors) / len(tensors)).to(tensors[0].dtype)
        elif all(torch.equal(t, tensors[0]) for t in tensors):
            out[key] = tensors[0].clone()
        else:
            raise ValueError(f"{key}: a non-float entry differs between the state dicts")
    return out


def average_run(run_dir: str | os.PathLike, first: int, last: int, out_dir: str | os.PathLike) -> Path:
    """Write the average of the run's epochs ``first``..``last`` as a new run folder ``out_dir``.

    Args:
        run_dir: a run of ``mrisr train`` with ``models/epochs/`` (``keep_epoch_weights``).
        first, last: the epoch range (inclusive).
        out_dir: the new run folder; must not exist yet (nothing is overwritten).

    Returns:
        ``out_dir``: ``configs/`` (the source run's), ``models/model.pt`` (the average) and ``run.json``
        (the source run's record plus ``averaged_from``: run folder, epochs, files).
    """
    run, out = Path(run_dir), Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out}: already exists; choose a new folder for the averaged weights")
    if not (run / "configs").is_dir():
        raise FileNotFoundError(f"{run}: not a run folder (no configs/)")
    files = epoch_weight_files(run, first, last)
    average = average_state_dicts([torch.load(f, map_location="cpu", weights_only=True) for f in files])
    partial = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed earlier call
    shutil.copytree(run / "configs", partial / "configs")
    (partial / "models").mkdir()
    with atomic_path(partial / "models" / "model.pt") as tmp:
        torch.save(average, tmp)
    record = {
        **read_run_record(run),
        "created": utc_now(),
        "averaged_from": {"run": display_path(run), "epochs": [first, last], "files": len(files)},
    }
    atomic_write_json(partial / RUN_RECORD, record)
    partial.rename(out)
    return out
