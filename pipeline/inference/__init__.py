# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Full-volume SR inference: baselines, networks (sliding window / slice-wise), file and cohort runs."""

from __future__ import annotations

from pipeline.inference.baselines import BASELINE_NAMES, InterpolationSR, ZeroFilledKSpaceSR, make_baseline
from pipeline.inference.bundle_dirs import bundle_search_path, find_bundle, named_bundle_weights
from pipeline.inference.interpolation import interpolate_array, interpolate_volume
from pipeline.inference.kspace import zero_fill_array, zero_filled_upsample
from pipeline.inference.methods import available_bundles, bundle_info, load_bundle_method, load_method, load_weights
from pipeline.inference.network_method import UPSAMPLING_MODES, NetworkSR, choose_slice_axis, to_network_input
from pipeline.inference.run import (
    inference_parameters,
    output_is_complete,
    resolve_zoom,
    super_resolve_file,
    super_resolve_volume,
)
from pipeline.scaling import network_intensity_mapping, robust_intensity_scale, robust_intensity_shift
from pipeline.inference.sidecar import read_sidecar, sidecar_path, software_versions, with_zoom_key
from pipeline.inference.through_plane import ThroughPlaneSR, input_acquisition, isotropic_zoom, thick_axis

__all__ = [
    "BASELINE_NAMES",
    "UPSAMPLING_MODES",
    "InterpolationSR",
    "NetworkSR",
    "ThroughPlaneSR",
    "ZeroFilledKSpaceSR",
    "available_bundles",
    "bundle_info",
    "bundle_search_path",
    "choose_slice_axis",
    "find_bundle",
    "inference_parameters",
    "input_acquisition",
    "interpolate_array",
    "interpolate_volume",
    "isotropic_zoom",
    "load_bundle_method",
    "load_method",
    "load_weights",
    "make_baseline",
    "named_bundle_weights",
    "network_intensity_mapping",
    "output_is_complete",
    "read_sidecar",
    "resolve_zoom",
    "robust_intensity_scale",
    "robust_intensity_shift",
    "sidecar_path",
    "software_versions",
    "super_resolve_file",
    "super_resolve_volume",
    "thick_axis",
    "to_network_input",
    "with_zoom_key",
    "zero_fill_array",
    "zero_filled_upsample",
]
