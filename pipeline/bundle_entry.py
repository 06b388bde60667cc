# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The ``run`` step of every SR bundle's ``configs/inference.json``, with ``mrisr``'s one-line errors.

``python -m monai.bundle run --config_file bundles/srcnn/configs/inference.json --bundle_root
bundles/srcnn --input_image lr.nii.gz --output_image sr.nii.gz`` calls :func:`super_resolve`. An
unusable input or output (missing, truncated, 2D, constant, no ``--output_image``, output = input)
ends the process with ``mrisr: error: <file>: <problem>`` on stderr and exit code 1, as ``mrisr
infer`` does, instead of MONAI's chained tracebacks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from pipeline.cli.common import fail
from pipeline.training.adaptation import AdaptedSR
from pipeline.inference.run import super_resolve_file
from pipeline.io import error_message

__all__ = ["super_resolve"]


def super_resolve(
    method: Any,
    input_image: str | os.PathLike | None,
    output_image: str | os.PathLike | None,
    scale: Sequence[float] | None = None,
    adapt: bool = False,
    qc: bool = False,
) -> dict[str, Any]:
    """:func:`~pipeline.inference.super_resolve_file`, exiting with one line and code 1 on any error.

    Args:
        method: the bundle's ``sr_method``.
        input_image: the LR volume (the bundle's ``input_image``; ``None`` when not given).
        output_image: the SR NIfTI to write (``output_image``; ``None`` when not given).
        scale: output voxels per input voxel per axis (the bundle's ``scale``; ``None``: the input's
            degradation sidecar, else the method's own rule, e.g. isotropic for thick slices).
        adapt: fine-tune a copy of the weights on the input first (``--adapt true``; the default
            :class:`~pipeline.training.adaptation.AdaptationBudget`).
        qc: write the trust check beside the output (``--qc true``).

    Returns:
        The output's sidecar dict.
    """
    try:
        if input_image is None:
            raise ValueError("give --input_image (the low-resolution volume to super-resolve)")
        if output_image is None:
            raise ValueError(f"{input_image}: give --output_image (where to write the result, .nii or .nii.gz)")
        runner = AdaptedSR(method) if adapt else method
        return super_resolve_file(runner, input_image, output_image, scale=scale, qc=qc)
    except Exception as err:  # a bundle user gets mrisr's message, not a traceback
        sys.exit(fail(error_message(err)))
