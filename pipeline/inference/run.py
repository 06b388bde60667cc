# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Super-resolve one file: read, choose the zoom, run a method, write NIfTI + JSON sidecar atomically."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.deprecation import renamed_to_zoom
from pipeline.inference.sidecar import read_sidecar, sidecar_path, with_zoom_key, write_with_sidecar
from pipeline.io import check_outputs, load_volume
from pipeline.transforms.grid import spacing_from_affine, zoomed_shape

__all__ = ["resolve_zoom", "inference_parameters", "super_resolve_volume", "super_resolve_file", "output_is_complete"]


def resolve_zoom(
    input_path: str | os.PathLike | None,
    spacing: Sequence[float],
    *,
    zoom: Sequence[float] | None = None,
    target_spacing: Sequence[float] | None = None,
    default: Callable[[Sequence[float]], Sequence[float]] | None = None,
) -> tuple[list[float], dict[str, Any] | None]:
    """The zoom per axis (output voxels per input voxel) and the degradation record, if any.

    Order of precedence: explicit ``zoom`` (3 values), ``target_spacing`` in mm (3 values;
    zoom = spacing / target), the grid change recorded in the input's JSON sidecar by
    ``mrisr degrade`` (LR spacing / HR spacing: 1 for degradations that stay on the HR grid), else
    the method's own rule for the input's voxel ``spacing`` (``default``, e.g.
    :func:`~pipeline.inference.isotropic_zoom` for a thick-slice scan). ``input_path`` ``None``: an
    image that lives in memory only (no sidecar; errors call it "image"). The degradation record is
    returned with its ratio under ``"zoom"`` also when an older ``mrisr degrade`` wrote ``"factors"``
    (:func:`~pipeline.inference.sidecar.with_zoom_key`).
    """
    sidecar = (read_sidecar(input_path) if input_path is not None else None) or {}
    degradation = with_zoom_key(sidecar.get("degradation"))
    name = "image" if input_path is None else input_path
    if zoom is not None:
        zoom = [float(z) for z in zoom]
    elif target_spacing is not None:
        if not all(math.isfinite(float(t)) and float(t) > 0 for t in target_spacing):
            targets = [float(t) for t in target_spacing]
            raise ValueError(f"{name}: --target-spacing must be three positive spacings in mm, got {targets}")
        zoom = [float(s) / float(t) for s, t in zip(spacing, target_spacing)]
    elif degradation and {"input_spacing_mm", "output_spacing_mm"} <= set(degradation):
        first = (sidecar.get("degradation_history") or [degradation])[0]  # chained: back to the original HR
        original = first.get("input_spacing_mm", degradation["input_spacing_mm"])
        zoom = [float(o) / float(i) for o, i in zip(degradation["output_spacing_mm"], original)]
    elif default is not None:
        try:
            zoom = [float(z) for z in default(spacing)]
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    else:
        record = "it lives in memory"
        if input_path is not None:
            record = f"no degradation sidecar ({sidecar_path(input_path).name})"
        raise ValueError(f"{name}: no zoom given and {record}; pass --zoom SX SY SZ or --target-spacing")
    if len(zoom) != 3 or not all(math.isfinite(z) and z > 0 for z in zoom):
        raise ValueError(f"{name}: zoom must be three positive numbers, got {zoom}")
    return zoom, degradation


def _physical_memory() -> int | None:
    """Bytes of memory this machine has, or ``None`` where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # no sysconf (Windows) or no such name
        return None


def _zoom_text(zoom: Sequence[float]) -> str:
    return "zoom " + " x ".join(f"{z:g}" for z in zoom)


def _check_output_size(input_path: str | os.PathLike, shape: Sequence[int], zoom: Sequence[float]) -> None:
    """Raise a ``ValueError`` naming the file and the zoom when the output alone would not fit in memory.

    The output of a ``shape`` input zoomed by ``zoom``, as float32, must fit in this machine's
    physical memory (a mistyped ``--zoom 100 100 100`` fails at once, before any allocation).
    """
    out_shape = zoomed_shape(shape, zoom)
    needed = math.prod(out_shape) * np.dtype(np.float32).itemsize
    memory = _physical_memory()
    if memory is not None and needed > memory:
        raise ValueError(
            f"{input_path}: {_zoom_text(zoom)} gives an output of shape {out_shape} ({needed / 1e9:.1f} GB as "
            f"float32), more than this machine's {memory / 1e9:.1f} GB of memory; check --zoom or --target-spacing"
        )


def _is_out_of_memory(err: BaseException) -> bool:
    """True for running out of memory: ``MemoryError``, torch's ``OutOfMemoryError`` or its CPU allocator's failure."""
    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in str(err)


def _run_method(method: Any, lr: MetaTensor, zoom: list[float], input_path: str | os.PathLike) -> MetaTensor:
    """``method(lr, zoom)``; running out of memory raises a ``MemoryError`` naming the file, zoom and output shape."""
    try:
        return method(lr, zoom)
    except (MemoryError, RuntimeError) as err:
        if not _is_out_of_memory(err):
            raise
        out_shape = zoomed_shape(lr.shape[1:], zoom)
        raise MemoryError(f"{input_path}: super-resolving with {_zoom_text(zoom)} to shape {out_shape}") from err


def inference_parameters(
    method: Any,
    input_path: str | os.PathLike,
    *,
    zoom: Sequence[float] | None = None,
    target_spacing: Sequence[float] | None = None,
    qc: bool = False,
) -> dict[str, Any]:
    """What an SR output depends on, as recorded in its sidecar's ``parameters`` (JSON types).

    The method's name, its bundle's name and version, the input file, the input's degradation
    record (which sets the zoom when none is given), the requested ``zoom`` or
    ``target_spacing``, whether QC files were asked for, and an adapted method's budget. The
    precision and device are left out: they depend on the machine, and a resumed run may use
    another one.
    """
    bundle = getattr(method, "bundle_info", None)
    degradation = (read_sidecar(input_path) or {}).get("degradation")
    parameters = {
        "method": method.name,
        "bundle": {"name": bundle.get("name"), "version": bundle.get("version")} if bundle else None,
        "input": str(Path(input_path).expanduser().resolve()),
        "degradation": degradation,
        "zoom": None if zoom is None else [float(z) for z in zoom],
        "target_spacing": None if target_spacing is None else [float(t) for t in target_spacing],
        "qc": bool(qc) and getattr(method, "network", None) is not None,  # baselines get no trust check
        "adaptation": (
            dataclasses.asdict(method.budget) if dataclasses.is_dataclass(getattr(method, "budget", None)) else None
        ),
    }
    return json.loads(json.dumps(parameters, default=str))


def _reads_back(image_path: Path, shape: Sequence[int]) -> bool:
    """True when the whole NIfTI at ``image_path`` decodes to ``shape`` (a truncated file does not)."""
    try:
        return list(np.asanyarray(nib.load(str(image_path)).dataobj).shape) == list(shape)
    except Exception:  # a corrupt or foreign file is not a finished job
        return False


def output_is_complete(output_path: str | os.PathLike, parameters: dict[str, Any] | None = None) -> bool:
    """True when ``output_path`` is a finished job that a resumed run may skip.

    Its sidecar says "complete" and, when ``parameters`` are given (:func:`inference_parameters`),
    records the same ones (an older sidecar's ``"scale"`` counts as ``"zoom"``); the image reads back
    completely with the recorded shape.
    """
    out = Path(output_path)
    meta = read_sidecar(out)
    if not out.is_file() or not meta or meta.get("status") != "complete":
        return False
    if parameters is not None and with_zoom_key(meta.get("parameters")) != parameters:
        return False
    return _reads_back(out, meta.get("output_shape", []))


def super_resolve_volume(
    method: Any,
    lr: MetaTensor,
    *,
    source: str | os.PathLike | None = None,
    zoom: Sequence[float] | None = None,
    target_spacing: Sequence[float] | None = None,
) -> tuple[MetaTensor, list[float], dict[str, Any] | None]:
    """Super-resolve a loaded (1, X, Y, Z) volume: choose the zoom (:func:`resolve_zoom`) and run ``method``.

    Args:
        method: a loaded method (:func:`~pipeline.inference.load_method`).
        lr: the input, as :func:`~pipeline.io.load_volume` returns it (affine in RAS mm). Its
            ``meta["degradation"]`` is set when ``source``'s sidecar records how it was made (the
            slice profile, for adaptation and QC).
        source: the file ``lr`` was read from (its degradation sidecar can set the zoom; errors
            name it), or ``None`` for an image that lives in memory only.
        zoom, target_spacing: as :func:`resolve_zoom`.

    Returns:
        ``(sr, zoom, degradation)``: the (1, X', Y', Z') output on the zoomed grid (its affine the
        zoomed grid's, values in the input's units), the zoom per axis and the degradation record.

    Raises:
        ValueError: no usable zoom, or an output larger than this machine's memory.
        MemoryError: the method ran out of memory (naming the input, zoom and output shape).
    """
    name = "image" if source is None else source
    zoom, degradation = resolve_zoom(
        source,
        spacing_from_affine(lr.affine),
        zoom=zoom,
        target_spacing=target_spacing,
        default=getattr(method, "zoom_for_input", None),
    )
    if degradation:
        lr.meta["degradation"] = degradation
    _check_output_size(name, lr.shape[1:], zoom)
    return _run_method(method, lr, zoom, name), zoom, degradation


@renamed_to_zoom("scale")
def super_resolve_file(
    method: Any,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    zoom: Sequence[float] | None = None,
    target_spacing: Sequence[float] | None = None,
    qc: bool = False,
    acquisition_overrides: dict[str, Any] | None = None,
    scale: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Super-resolve ``input_path`` into ``output_path`` (NIfTI) plus its JSON sidecar.

    The output path is checked first (:func:`~pipeline.io.check_outputs`: extension, writable
    folder, neither it nor its sidecar an input or an input's sidecar). The output keeps the
    input's qform/sform codes and intensity units; its affine is the zoomed grid's. Both files are
    written through temporary names; the sidecar, written last, marks the job complete and records
    its :func:`inference_parameters`. Returns the sidecar dict.

    ``qc`` (network methods) also writes the uncertainty map and QC figure beside the output and
    records ``qc`` in the sidecar (:func:`pipeline.qc.quality_check`); ``acquisition_overrides``
    (``thickness_mm``, ``gap_mm``, ``profile``) tell through-plane QC how the input's slices were
    acquired. An adapted method (``--adapt``) records what its fine-tuning did under ``adaptation``.
    A network method also records ``input_noise`` (:func:`pipeline.qc.input_noise_record`) and warns when
    its bundle was trained on noise-free inputs and the input looks noisy.
    ``zoom`` and ``target_spacing`` are as :func:`resolve_zoom`'s; ``scale`` is a deprecated alias of
    ``zoom`` (removed in 0.2.0).
    """
    zoom = zoom if scale is None else scale
    from pipeline.qc import check_input_noise, qc_paths, quality_check  # here: pipeline.qc imports pipeline.inference

    run_qc = qc and getattr(method, "network", None) is not None
    check_outputs([output_path, *(qc_paths(output_path)[:1] if run_qc else [])], [input_path])
    parameters = inference_parameters(method, input_path, zoom=zoom, target_spacing=target_spacing, qc=qc)
    lr = load_volume(input_path)
    spacing = spacing_from_affine(lr.affine)
    input_noise = check_input_noise(method, lr, input_path)
    sr, zoom, degradation = super_resolve_volume(
        method, lr, source=input_path, zoom=zoom, target_spacing=target_spacing
    )
    runtime = float(method.last_runtime_s or 0.0)
    record = {
        "method": method.name,
        "bundle": getattr(method, "bundle_info", None),
        "input": str(Path(input_path).resolve()),
        "zoom": zoom,
        "degradation": degradation,
        "parameters": parameters,
        "input_shape": list(lr.shape[1:]),
        "output_shape": list(sr.shape[1:]),
        "input_spacing_mm": [round(float(s), 6) for s in spacing],
        "output_spacing_mm": [round(float(s), 6) for s in spacing_from_affine(sr.affine)],
        "runtime_s": round(runtime, 3),
        "adaptation": getattr(method, "last_adaptation", None),
        "device": str(getattr(method, "device", "cpu")),
        "precision": getattr(method, "precision", None) or "fp32",
        "precision_reason": getattr(method, "precision_reason", None),
        "fast_path": bool(getattr(method, "fast", False)),
        "input_noise": input_noise,
    }

    def qc_outputs() -> dict[str, Any]:
        """The uncertainty map and PNG of ``--qc``, and the record's ``qc`` field (``None`` without QC)."""
        if not run_qc:
            return {"qc": None}
        qc = quality_check(
            method, lr, sr, zoom, output_path, acquisition_overrides=acquisition_overrides, inputs=[input_path]
        )
        return {"qc": qc}

    return write_with_sidecar(sr, output_path, record, inputs=[input_path], side_outputs=qc_outputs)
