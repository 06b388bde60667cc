# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Find SR methods by name: the baselines, or a MONAI bundle (by name in the bundle search path, or a folder).

Bundle names resolve through :mod:`pipeline.inference.bundle_dirs` (``--bundle-dir``,
``$MRISR_BUNDLE_DIR``, the installed package's bundles, the source checkout's ``bundles/``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from pipeline.inference.baselines import BASELINE_NAMES, make_baseline
from pipeline.inference.bundle_dirs import BUNDLES_DIR, bundle_search_path, check_bundle_dir, find_bundle, found_bundles
from pipeline.inference.device import resolve_device
from pipeline.protocols import Protocol as PipelineProtocol
from pipeline.protocols import get_protocol

__all__ = [
    "SRMethod",
    "BUNDLES_DIR",
    "available_bundles",
    "bundle_info",
    "bundle_metadata",
    "method_bundle_metadata",
    "load_weights",
    "load_bundle_method",
    "load_method",
]


class SRMethod(Protocol):
    """Anything that maps a (1, X, Y, Z) LR volume and a zoom to an SR volume on the zoomed grid."""

    name: str
    last_runtime_s: float | None

    def __call__(self, lr: MetaTensor, zoom: list[float]) -> MetaTensor: ...


def available_bundles(bundles_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the bundles in the search path (``bundles_dir`` searched first) that ship trained weights."""
    return [name for name, (root, _) in found_bundles(bundles_dir).items() if (root / "models" / "model.pt").is_file()]


def load_weights(
    network: torch.nn.Module, checkpoint: str | os.PathLike, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Load a state dict (or a ``{"network": state_dict, ...}`` checkpoint) into ``network``."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained weights")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "network" in state and isinstance(state["network"], dict):
        state = state["network"]
    network.load_state_dict(state)
    return network.to(device).eval()


def bundle_metadata(bundle_root: str | os.PathLike) -> dict[str, Any]:
    """The bundle's ``configs/metadata.json``."""
    return json.loads((Path(bundle_root) / "configs" / "metadata.json").read_text(encoding="utf-8"))


def method_bundle_metadata(method: Any) -> dict[str, Any]:
    """The ``configs/metadata.json`` of the bundle ``method`` was loaded from (an adapted method: its bundle's).

    ``{}`` for a method not loaded from a bundle (a baseline). QC limits and the input-noise check read it.
    """
    inner = getattr(method, "method", method)
    info = getattr(inner, "bundle_info", None) or {}
    return bundle_metadata(info["path"]) if info.get("path") else {}


def bundle_protocol(method: Any) -> PipelineProtocol | None:
    """The degradation protocol a bundle-loaded method was trained on (its metadata's ``degradation_protocol``).

    ``None`` for a method not loaded from a bundle or a bundle that names no protocol. The one place that
    turns a bundle's protocol name into a :class:`~pipeline.protocols.Protocol` (QC and ``--adapt`` use it).
    """
    info = getattr(method, "bundle_info", None) or {}
    metadata = Path(info["path"]) / "configs" / "metadata.json" if info.get("path") else None
    name = bundle_metadata(info["path"]).get("degradation_protocol") if metadata and metadata.is_file() else None
    return get_protocol(name) if name else None


def bundle_info(bundle_root: str | os.PathLike) -> dict[str, Any]:
    """Name, version and folder of a bundle, as recorded in every output's sidecar."""
    root = Path(bundle_root).resolve()
    has_metadata = (root / "configs" / "metadata.json").is_file()  # a training output folder may have none
    meta = bundle_metadata(root) if has_metadata else {}
    return {"name": meta.get("name", root.name), "version": meta.get("version"), "path": str(root)}


def load_bundle_method(
    bundle_root: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    precision: str | None = None,
    **overrides: Any,
) -> Any:
    """Instantiate a bundle's ``sr_method`` (a :class:`NetworkSR` with its trained weights).

    Args:
        bundle_root: the bundle folder (holding ``configs/inference.json`` and ``models/model.pt``).
        device: overrides the bundle's ``device`` ("auto" = CUDA when available, else CPU).
        precision: overrides the bundle's ``precision`` ("auto", "fp32", "bf16", "fp16").
        overrides: further config overrides, e.g. ``sr_method#batch_size=8``.
    """
    root = Path(bundle_root).resolve()
    config = root / "configs" / "inference.json"
    if not config.is_file():
        raise FileNotFoundError(f"{config}: not a bundle (no configs/inference.json)")
    parser = ConfigParser()
    parser.read_config(str(config))
    parser["bundle_root"] = str(root)
    if device is not None:
        parser["device"] = f"$torch.device('{resolve_device(device)}')"
    if precision is not None:
        parser["precision"] = precision
    for key, value in overrides.items():
        parser[key] = value
    return parser.get_parsed_content("sr_method")


def load_method(
    spec: str,
    *,
    device: str | torch.device | None = None,
    precision: str | None = None,
    bundles_dir: str | os.PathLike | None = None,
) -> Any:
    """A baseline by name, a bundle by name (in the search path, ``bundles_dir`` first) or a bundle folder path.

    ``device`` and ``precision`` apply to bundles (baselines run on the CPU in float64/float32);
    ``device`` is checked for every method (:func:`~pipeline.inference.device.resolve_device`).
    """
    if device is not None:
        resolve_device(device)
    if spec in BASELINE_NAMES:
        return make_baseline(spec)
    check_bundle_dir(bundles_dir)
    found = find_bundle(spec, bundles_dir)
    root = Path(spec) if (Path(spec) / "configs").is_dir() else (found[0] if found else None)
    if root is None or not (root / "configs" / "inference.json").is_file():
        searched = ", ".join(str(entry.path) for entry in bundle_search_path(bundles_dir))
        raise ValueError(f"unknown method {spec!r}: not a baseline {BASELINE_NAMES} nor a bundle in {searched}")
    return load_bundle_method(root, device=device, precision=precision)
