# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The ``network`` and ``run`` steps of every SR bundle's ``configs/inference.json``, with ``mrisr``'s one-line errors.

``python -m monai.bundle run --config_file bundles/srcnn/configs/inference.json --bundle_root
bundles/srcnn --input_image lr.nii.gz --output_image sr.nii.gz`` first calls :func:`check_network`,
then :func:`super_resolve`. An unusable device or checkpoint (``--device tpu9``, ``cuda`` without a
GPU; a missing, empty, truncated or unsafe ``models/model.pt``), input or output (missing,
truncated, 2D, constant, no ``--output_image``, output = input) ends the process with ``mrisr:
error: <file>: <problem>`` on stderr and exit code 1, as ``mrisr infer`` does, instead of MONAI's
chained tracebacks. The config's ``network`` is :func:`load_network`, which raises those errors as
one line for ``mrisr infer --method <bundle>``.
"""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from pipeline.acceleration import configure_process
from pipeline.cli.common import fail
from pipeline.deprecation import renamed_to_zoom
from pipeline.inference.device import resolve_device
from pipeline.inference.methods import load_weights
from pipeline.inference.run import super_resolve_file
from pipeline.io import error_message
from pipeline.training.adaptation import AdaptedSR

__all__ = ["check_network", "load_network", "super_resolve"]


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn any error of the body into ``mrisr: error: <message>`` on stderr and exit code 1."""
    try:
        yield
    except Exception as err:  # a bundle user gets mrisr's message, not a traceback
        sys.exit(fail(error_message(err)))


def _checkpoint_problem(path: Path, network: torch.nn.Module, err: Exception) -> str:
    """Why the checkpoint at ``path`` could not be loaded into ``network`` (``err``), in words."""
    if path.stat().st_size == 0:
        return "empty file (0 bytes), not trained weights"
    if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
        return "refused: it holds Python objects besides weights, and loading them could run code"
    if not zipfile.is_zipfile(path):
        return "not a readable PyTorch checkpoint (truncated or corrupt file?)"
    return f"its weights do not fit the network {type(network).__name__}: {error_message(err)}"


def load_network(
    network: torch.nn.Module, checkpoint: str | os.PathLike, device: str | torch.device | None
) -> torch.nn.Module:
    """The bundle's ``network``: ``network`` with the weights of ``checkpoint``, on ``device``, for inference.

    :func:`~pipeline.inference.load_weights` (``torch.load`` with ``weights_only=True``) on a checked device.

    Raises:
        ValueError: ``device`` is unknown or absent on this machine
            (:func:`~pipeline.inference.device.resolve_device`), or the checkpoint is empty, not a
            PyTorch checkpoint, holds objects besides weights, or its weights do not fit ``network``;
            the message names the checkpoint and the cause.
        FileNotFoundError: there is no checkpoint.
    """
    resolved = resolve_device(device)
    path = Path(checkpoint)
    try:
        return load_weights(network, path, resolved)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch.load and load_state_dict fail with many error types
        raise ValueError(f"{path}: {_checkpoint_problem(path, network, err)}") from err


def check_network(network: torch.nn.Module, checkpoint: str | os.PathLike, device: str | torch.device | None) -> None:
    """The ``run`` step's first expression: :func:`load_network`, exiting with one line and code 1 on any error.

    The bundle config resolves its ``network`` before :func:`super_resolve` is called, outside its
    error handling: this step loads the weights first, where their errors can be caught.
    """
    with _one_line_errors():
        load_network(network, checkpoint, device)


@renamed_to_zoom("scale")
def super_resolve(
    method: Any,
    input_image: str | os.PathLike | None,
    output_image: str | os.PathLike | None,
    zoom: Sequence[float] | None = None,
    adapt: bool = False,
    qc: bool = False,
    *,
    scale: Sequence[float] | None = None,
) -> dict[str, Any]:
    """:func:`~pipeline.inference.super_resolve_file`, exiting with one line and code 1 on any error.

    Args:
        method: the bundle's ``sr_method``.
        input_image: the LR volume (the bundle's ``input_image``; ``None`` when not given).
        output_image: the SR NIfTI to write (``output_image``; ``None`` when not given).
        zoom: output voxels per input voxel per axis (the bundle's ``zoom``; ``None``: the input's
            degradation sidecar, else the method's own rule, e.g. isotropic for thick slices).
        adapt: fine-tune a copy of the weights on the input first (``--adapt true``; the default
            :class:`~pipeline.training.adaptation.AdaptationBudget`).
        qc: write the trust check beside the output (``--qc true``).
        scale: deprecated alias of ``zoom`` (removed in 0.2.0; a bundle config of an older version says
            ``scale=@scale``).

    Returns:
        The output's sidecar dict.
    """
    zoom = zoom if scale is None else scale
    with _one_line_errors():
        configure_process()  # the bundle's entry point: threads, allocator, compile limit (see pipeline.acceleration)
        if input_image is None:
            raise ValueError("give --input_image (the low-resolution volume to super-resolve)")
        if output_image is None:
            raise ValueError(f"{input_image}: give --output_image (where to write the result, .nii or .nii.gz)")
        runner = AdaptedSR(method) if adapt else method
        return super_resolve_file(runner, input_image, output_image, zoom=zoom, qc=qc)
