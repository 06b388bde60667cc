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

``mrisr bundles rebase FINETUNED --from ORIGINAL --onto BASE --to NEW_RUN`` writes ``BASE + s x (FINETUNED -
ORIGINAL)``: it replays a fine-tuning (a "task vector", Ilharco et al., ICLR 2023) onto newer weights of the
same network, as ``git rebase`` replays commits. Example: ``mdcsrn_gan`` was fine-tuned adversarially from
``mdcsrn`` 0.4.0; rebased onto the domain-randomised ``mdcsrn`` 0.5.0 it keeps the adversarial sharpening
without another critic warm-up. Like the interpolation, it is meaningful only when the differences are small
(FINETUNED and BASE both fine-tuned from ORIGINAL); score the result on ``val`` before using it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from pipeline.inference.bundle_catalog import file_sha256
from pipeline.io import atomic_torch_save, atomic_write_json
from pipeline.training.run_folders import RUN_RECORD, display_path, read_run_record, utc_now

__all__ = [
    "EPOCHS_DIR",
    "WEIGHT_ORIGIN_KEYS",
    "average_run",
    "average_state_dicts",
    "epoch_weight_files",
    "interpolate_weights",
    "rebase_weights",
]

EPOCHS_DIR = Path("models") / "epochs"
"""Where :class:`~pipeline.training.EpochWeightsSaver` keeps a run's per-epoch weights."""

WEIGHT_ORIGIN_KEYS = ("averaged_from", "interpolated_from", "rebased_from")
"""The ``run.json`` entries that say how a folder's weights were derived (``mrisr bundles export`` copies
them into the bundle's ``training_record``)."""


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
    """The weighted average of state dicts with the same keys (float tensors in float64, cast back).

    Args:
        states: the state dicts.
        weights: one weight per state, summing to 1 (``None``: uniform). Negative weights give an affine
            combination, e.g. ``[1, 1, -1]`` for ``A + B - C`` (:func:`rebase_weights`).

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
    average = average_state_dicts([_load_weights(f) for f in files])
    origin = {"averaged_from": {"run": display_path(run), "epochs": [first, last], "files": len(files)}}
    return _write_weights_folder(out, run, average, origin)


def interpolate_weights(
    start_dir: str | os.PathLike, end_dir: str | os.PathLike, weight: float, out_dir: str | os.PathLike
) -> Path:
    """Write ``(1 - weight) x start + weight x end`` (their ``models/model.pt``) as a new run folder ``out_dir``.

    Args:
        start_dir, end_dir: run or bundle folders (``configs/`` and ``models/model.pt``) of the same network
            (``start_dir`` may be a weights file); ``end_dir`` should be a fine-tuning of ``start_dir`` (see
            the module docstring).
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
    states = [_load_weights(_weights_file(start)), _load_weights(_weights_file(end, folder_only=True))]
    try:
        mixture = average_state_dicts(states, [1.0 - weight, weight])
    except ValueError as err:
        raise ValueError(f"{start} and {end} do not hold the same network: {err}") from err
    origin = {"interpolated_from": {"start": display_path(start), "end": display_path(end), "weight": weight}}
    return _write_weights_folder(out, end, mixture, origin)


def rebase_weights(
    finetuned_dir: str | os.PathLike,
    original_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    scale: float = 1.0,
) -> Path:
    """Write ``base + scale x (finetuned - original)`` (their ``models/model.pt``) as a new run folder ``out_dir``.

    Args:
        finetuned_dir: run or bundle folder whose weights were fine-tuned from ``original_dir``'s; its configs
            go into ``out_dir`` (the result is this network, fine-tuned from ``base_dir`` by proxy).
        original_dir: the weights ``finetuned_dir`` started from: a run or bundle folder, or a weights file
            (e.g. an older bundle version's ``model.pt`` taken from git with ``git show``).
        base_dir: the newer weights of the same network to replay the fine-tuning onto (folder or file).
        out_dir: the new run folder; must not exist yet.
        scale: ``s``, the share of the fine-tuning replayed, > 0 (1: all of it).

    Returns:
        ``out_dir``: ``finetuned_dir``'s configs, the rebased ``models/model.pt`` and a ``run.json``
        (``finetuned_dir``'s record plus ``rebased_from``: the three paths, their weights' SHA-256 and the
        scale).

    Raises:
        ValueError: ``scale`` <= 0, ``original`` holding the same weights as ``finetuned`` (nothing to
            replay) or as ``base`` (nothing to replay onto: usually the wrong version of ``original``),
            weights of different networks, or a
            BatchNorm running variance that the difference would make non-positive.
        FileNotFoundError: a folder without ``configs/`` or ``models/model.pt``.
        FileExistsError: ``out_dir`` exists.
    """
    if scale <= 0.0:
        raise ValueError(f"the scale of the replayed fine-tuning must be > 0, got {scale}")
    finetuned, original, base, out = Path(finetuned_dir), Path(original_dir), Path(base_dir), Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out}: already exists; choose a new folder for the rebased weights")
    sources = {"finetuned": finetuned, "original": original, "base": base}
    files = {role: _weights_file(path, folder_only=role == "finetuned") for role, path in sources.items()}
    finetuned_state, original_state, base_state = (_load_weights(file) for file in files.values())
    if _same_weights(finetuned_state, original_state):
        raise ValueError(
            f"{finetuned} and {original} hold the same weights: there is no fine-tuning to replay "
            "(is ORIGINAL the version FINETUNED started from?)"
        )
    if _same_weights(base_state, original_state):
        raise ValueError(
            f"{base} and {original} hold the same weights: the result would be {finetuned} itself "
            "(is ORIGINAL an older version than BASE, e.g. taken from git rather than from the current bundle?)"
        )
    try:
        rebased = average_state_dicts([base_state, finetuned_state, original_state], [1.0, scale, -scale])
    except ValueError as err:
        raise ValueError(f"{base}, {finetuned} and {original} do not hold the same network: {err}") from err
    for key, tensor in rebased.items():
        if key.endswith("running_var") and not bool((tensor > 0).all()):
            raise ValueError(f"{key}: the rebased BatchNorm running variance is not positive everywhere")
    origin = {
        "rebased_from": {
            **{role: display_path(path) for role, path in sources.items()},
            **{f"{role}_sha256": file_sha256(file) for role, file in files.items()},
            "scale": scale,
        }
    }
    return _write_weights_folder(out, finetuned, rebased, origin)


def _same_weights(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[key], b[key]) for key in a)


def _weights_file(path: Path, *, folder_only: bool = False) -> Path:
    """A run or bundle folder's ``models/model.pt``, or ``path`` itself when it is a weights file (unless
    ``folder_only``: the folder whose configs the new run folder copies)."""
    if path.is_file() and not folder_only:
        return path
    model = path / "models" / "model.pt"
    if not (path / "configs").is_dir() or not model.is_file():
        what = "a run or bundle folder" if folder_only else "a weights file or a run or bundle folder"
        raise FileNotFoundError(f"{path}: not {what} (a folder needs configs/ and models/model.pt)")
    return model


def _load_weights(file: Path) -> dict[str, torch.Tensor]:
    return torch.load(file, map_location="cpu", weights_only=True)


def _write_weights_folder(
    out: Path, source: Path, state: Mapping[str, torch.Tensor], origin: Mapping[str, object]
) -> Path:
    """``out`` with ``source``'s configs, ``state`` as ``models/model.pt`` and ``source``'s record plus
    ``origin``; built under a temporary name and renamed, so ``out`` never holds half a folder."""
    partial = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed earlier call
    shutil.copytree(source / "configs", partial / "configs")
    (partial / "models").mkdir()
    atomic_torch_save(dict(state), partial / "models" / "model.pt")
    atomic_write_json(partial / RUN_RECORD, {**read_run_record(source), "created": utc_now(), **origin})
    partial.rename(out)
    return out
