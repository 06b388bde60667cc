# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Fast inference and training on CPU and GPU: precision, threads, fused and rewritten networks."""

from __future__ import annotations

from pipeline.acceleration.fast_mdcsrn import FastMDCSRN, batch_norm_affine, fold_batch_norm
from pipeline.acceleration.fast_mrlnet import FastMRLNet
from pipeline.acceleration.float32_path import Float32Path
from pipeline.acceleration.optimize import channels_last_format, optimize_for_inference
from pipeline.acceleration.pointwise import activation_spec, norm_act
from pipeline.acceleration.precision import (
    BF16_MIN_SPEEDUP,
    PRECISIONS,
    autocast_dtype,
    cpu_bf16_capability,
    measure_cpu_speedup,
    precision_context,
    resolve_precision,
)
from pipeline.acceleration.runtime import (
    available_cpu_cores,
    configure_cpu_runtime,
    configure_process,
    requested_recompile_limit,
)

__all__ = [
    "BF16_MIN_SPEEDUP",
    "PRECISIONS",
    "FastMDCSRN",
    "FastMRLNet",
    "Float32Path",
    "activation_spec",
    "autocast_dtype",
    "available_cpu_cores",
    "batch_norm_affine",
    "channels_last_format",
    "configure_cpu_runtime",
    "configure_process",
    "requested_recompile_limit",
    "cpu_bf16_capability",
    "fold_batch_norm",
    "measure_cpu_speedup",
    "norm_act",
    "optimize_for_inference",
    "precision_context",
    "resolve_precision",
]
