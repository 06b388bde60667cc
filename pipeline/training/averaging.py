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

``mrisr bundles interpolate START END --weight a`` writes ``(1 - a) x START + a x END`` the same way: the
weight-space ensembles of WiSE-FT (Wortsman et al., CVPR 2022), between a bundle's shipped weights and a
fine-tuning of them (for example a domain-randomised run), so that the trade between in-domain and shifted
inputs can be chosen on ``val`` without training again. It is meaningful only when END was fine-tuned from
START (the two then lie in one basin); between unrelated weights the mixture is not a network of either.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from pipeline.io import atomic_path, atomic_write_json
from pipeline.training.run_folders import RUN_RECORD, display_path, read_run_record, utc_now

__all__ = ["EPOCHS_DIR", "average_run", "average_state_dicts", "epoch_weight_files", "interpolate_weights"]

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


def average_state_dicts(
    states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """The average of state dicts with the same keys (float tensors averaged in float64, cast back).

    Args:
        states: the state dicts.
        weights: one weight per state, summing to 1 (``None``: uniform).

    Non-float entries (integer buffers such as batch counters) must agree and are taken from the first.

    Raises:
        ValueError: no states, different keys or shapes, differing non-float entries, or weights that are
            not one per state or do not sum to 1.
    """
    if not states:
        raise ValueError("no state dicts to average")
    if weights is None:
        weights = [1.0 / len(states)] * len(states)
    if len(weights) != len(states) or abs(sum(weights) - 1.0) > 1e-9:
        raise ValueError(f"need one weight per state dict, summing to 1; got {list(weights)}")
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
            out[key] = sum(w * t.double() for w, t in zip(weights, tensors)).to(tensors[0].dtype)
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
    origin = {"averaged_from": {"run": display_path(run), "epochs": [first, last], "files": len(files)}}
    return _write_weights_folder(out, run, average, origin)


def interpolate_weights(
    start_dir: str | os.PathLike, end_dir: str | os.PathLike, weight: float, out_dir: str | os.PathLike
) -> Path:
    """Write ``(1 - weight) x start + weight x end`` (their ``models/model.pt``) as a new run folder ``out_dir``.

    Args:
        start_dir, end_dir: run or bundle folders (``configs/`` and ``models/model.pt``) of the same network;
            ``end_dir`` should be a fine-tuning of ``start_dir`` (see the module docstring).
        weight: the share of ``end_dir``, in [0, 1].
        out_dir: the new run folder; must not exist yet.

    Returns:
        ``out_dir``: ``end_dir``'s configs, the interpolated ``models/model.pt`` and a ``run.json``
        (``end_dir``'s record plus ``interpolated_from``: both folders and the weight).

    Raises:
        ValueError: ``weight`` outside [0, 1], or weights of different networks.
        FileNotFoundError: a folder without ``configs/`` or ``models/model.pt``.
        FileExistsError: ``out_dir`` exists.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the interpolation weight must be in [0, 1], got {weight}")
    start, end, out = Path(start_dir), Path(end_dir), Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out}: already exists; choose a new folder for the interpolated weights")
    states = []
    for folder in (start, end):
        model = folder / "models" / "model.pt"
        if not (folder / "configs").is_dir() or not model.is_file():
            raise FileNotFoundError(f"{folder}: not a run or bundle folder (needs configs/ and models/model.pt)")
        states.append(torch.load(model, map_location="cpu", weights_only=True))
    try:
        mixture = average_state_dicts(states, [1.0 - weight, weight])
    except ValueError as err:
        raise ValueError(f"{start} and {end} do not hold the same network: {err}") from err
    origin = {"interpolated_from": {"start": display_path(start), "end": display_path(end), "weight": weight}}
    return _write_weights_folder(out, end, mixture, origin)


def _write_weights_folder(
    out: Path, source: Path, state: Mapping[str, torch.Tensor], origin: Mapping[str, object]
) -> Path:
    """``out`` with ``source``'s configs, ``state`` as ``models/model.pt`` and ``source``'s record plus
    ``origin``; built under a temporary name and renamed, so ``out`` never holds half a folder."""
    partial = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed earlier call
    shutil.copytree(source / "configs", partial / "configs")
    (partial / "models").mkdir()
    with atomic_path(partial / "models" / "model.pt") as tmp:
        torch.save(dict(state), tmp)
    atomic_write_json(partial / RUN_RECORD, {**read_run_record(source), "created": utc_now(), **origin})
    partial.rename(out)
    return out
