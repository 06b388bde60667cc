# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Find SR methods by name: the baselines, or a MONAI bundle (``bundles/<name>`` or a folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from pipeline.inference.baselines import BASELINE_NAMES, make_baseline
from pipeline.inference.device import resolve_device

__all__ = ["SRMethod", "BUNDLES_DIR", "available_bundles", "bundle_info", "bundle_metadata", "load_weights", "load_bundle_method", "load_method"]

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"


class SRMethod(Protocol):
    """Anything that maps a (1, X, Y, Z) LR volume and a zoom to an SR volume on the zoomed grid."""

    name: str
    last_runtime_s: float | None

    def __call__(self, lr: MetaTensor, zoom: list[float]) -> MetaTensor: ...


def available_bundles(bundles_dir: str | os.PathLike = BUNDLES_DIR) -> list[str]:
    """Names of the bundles under ``bundles_dir`` that ship trained weights."""
    root = Path(bundles_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if (p / "configs" / "inference.json").is_file() and (p / "models" / "model.pt").is_file()
    )


def load_weights(network: torch.nn.Module, checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
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


def bundle_info(bundle_root: str | os.PathLike) -> dict[str, Any]:
    """Name, version and folder of a bundle, as recorded in every output's sidecar."""
    root = Path(bundle_root).resolve()
    meta = bundle_metadata(root)
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
    bundles_dir: str | os.PathLike = BUNDLES_DIR,
) -> Any:
    """A baseline by name, a bundle by name (under ``bundles_dir``) or a bundle folder path.

    ``device`` and ``precision`` apply to bundles (baselines run on the CPU in float64/float32);
    ``device`` is checked for every method (:func:`~pipeline.inference.device.resolve_device`).
    """
    if device is not None:
        resolve_device(device)
    if spec in BASELINE_NAMES:
        return make_baseline(spec)
    candidate = Path(spec)
    root = candidate if (candidate / "configs").is_dir() else Path(bundles_dir) / spec
    if not (root / "configs" / "inference.json").is_file():
        raise ValueError(f"unknown method {spec!r}: not a baseline {BASELINE_NAMES} nor a bundle in {bundles_dir}")
    return load_bundle_method(root, device=device, precision=precision)
