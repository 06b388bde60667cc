# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The random-number generators of a training run as one checkpointable object.

MONAI's ``set_determinism`` seeds them once at start; a run resumed from a checkpoint must instead
continue from their saved states, or it would redraw the patches and shuffles of its first epochs.
:class:`RNGStates` gathers, with ``state_dict``/``load_state_dict`` like any object in a
:class:`pipeline.training.ResumableCheckpoint`'s ``save_dict``:

- PyTorch's CPU generator (``DataLoader`` shuffling, dropout, weight initialisation) and, when
  CUDA is in use, every CUDA device's generator;
- NumPy's and Python's global generators;
- the private ``RandomState`` of every MONAI ``Randomizable`` transform of a dataset (the patch
  sampler :class:`pipeline.training.RandPairedPatchd` draws from its own).

MONAI has no such object (its ``CheckpointSaver`` saves only what it is given), hence this one.
Patches already prefetched by a ``ThreadDataLoader`` when the checkpoint is written are not
replayed: a resumed run is statistically, not bitwise, the same as an uninterrupted one.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, Randomizable

__all__ = ["RNGStates", "randomizable_transforms"]


def _numpy_state_to_tensors(state: tuple) -> tuple:
    """A NumPy ``RandomState`` state with its key array as a tensor (``torch.load(weights_only=True)``, as
    MONAI's ``CheckpointLoader`` reads, refuses NumPy arrays)."""
    name, keys, position, has_gauss, cached_gaussian = state
    return (
        name,
        torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        int(position),
        int(has_gauss),
        float(cached_gaussian),
    )


def _numpy_state_from_tensors(state: tuple) -> tuple:
    name, keys, position, has_gauss, cached_gaussian = state
    return name, np.asarray(keys, dtype=np.int64).astype(np.uint32), position, has_gauss, cached_gaussian


def randomizable_transforms(dataset: Any) -> list[Randomizable]:
    """The ``Randomizable`` transforms of ``dataset.transform`` (a ``Compose`` is searched recursively)."""
    found: list[Randomizable] = []
    pending = [getattr(dataset, "transform", None)]
    while pending:
        transform = pending.pop(0)
        if isinstance(transform, Compose):
            pending.extend(transform.transforms)
        elif isinstance(transform, Randomizable):
            found.append(transform)
    return found


class RNGStates:
    """Save and restore every random generator a training run draws from.

    Args:
        dataset: the training dataset whose transforms' generators are included (``None``: only the
            global generators).
    """

    def __init__(self, dataset: Any = None) -> None:
        self.transforms = randomizable_transforms(dataset) if dataset is not None else []

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state_to_tensors(np.random.get_state()),
            "python": random.getstate(),
            "transforms": [_numpy_state_to_tensors(transform.R.get_state()) for transform in self.transforms],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["transforms"]
        if len(saved) != len(self.transforms):
            raise ValueError(
                f"the checkpoint holds {len(saved)} random transform state(s), the dataset has "
                f"{len(self.transforms)}: was it written by another training config?"
            )
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
        np.random.set_state(_numpy_state_from_tensors(state["numpy"]))
        random.setstate(state["python"])
        for transform, transform_state in zip(self.transforms, saved):
            transform.R.set_state(_numpy_state_from_tensors(transform_state))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
