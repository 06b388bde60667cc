# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The embedded demo: MNI152 (from nilearn) → preprocessing, LR synthesis, SR with every bundle.

Steps, all written under one output folder:

1. ``data/``: the MNI152 2009 T1 template and its brain mask, as shipped by ``nilearn``.
2. ``preprocessing/``: brain mask (Dice against nilearn's mask), N4 bias-field correction and
   intensity normalisation of the T1, plus ``preprocessing.png``.
3. ``lr/``: LR volumes for every degradation protocol, plus ``lr_synthesis.png``.
4. ``sr/<protocol>/``: for each protocol with a bundle (and always ``kspace-2x2`` and
   ``bicubic-x2``), ``mrisr evaluate`` with the baselines and the bundles trained for that
   protocol, on the brain's bounding box (``crop_to_mask``): SR NIfTIs, metrics tables,
   ``panel.png`` and ``report.md``. To finish in minutes on a 2-core CPU, this runs on a slab of
   the template (``slab_slices`` 1 mm slices centred on the brain, ``data/mni152_t1_slab-axis*``;
   0 = the whole template), which the summary states. The slab is cut across the protocol's
   ``slice_axis``, an axis the degradation leaves alone: cut across a k-space-truncated axis, its
   faces would ring through the whole LR volume.

Every step prints when it starts, with the elapsed time; long steps show progress bars.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.inference import available_bundles  # noqa: E402
from pipeline.inference.bundle_dirs import find_bundle  # noqa: E402
from pipeline.inference.methods import bundle_metadata  # noqa: E402
from pipeline.io import atomic_path, atomic_write_text, load_volume, save_nifti  # noqa: E402
from pipeline.protocols import PROTOCOLS, get_protocol  # noqa: E402
from pipeline.transforms import BrainMask, N4BiasFieldCorrection, NormalizeIntensityInMask  # noqa: E402

__all__ = ["DEMO_SLAB_SLICES", "MIN_SLAB_SLICES", "brain_slab", "fetch_mni152", "run_demo"]

ALWAYS_EVALUATED = ("kspace-2x2", "bicubic-x2")
DEMO_SLAB_SLICES = 24
"""1 mm slices of the MNI152 template the demo's SR step runs on, across each protocol's undegraded axis."""
MIN_SLAB_SLICES = 16
"""The thinnest slab every protocol runs on: SSIM's 11-voxel window, and 4 LR slices of thick-4mm."""
_AXIS_NAMES = {0: "sagittal", 1: "coronal", 2: "axial"}


def fetch_mni152(folder: Path) -> tuple[Path, Path]:
    """Write nilearn's MNI152 2009 T1 template (1 mm) and its brain mask as NIfTI into ``folder``."""
    from nilearn import datasets

    folder.mkdir(parents=True, exist_ok=True)
    t1_path, mask_path = folder / "mni152_t1.nii.gz", folder / "mni152_brain_mask.nii.gz"
    for path, image in (
        (t1_path, datasets.load_mni152_template(resolution=1)),
        (mask_path, datasets.load_mni152_brain_mask(resolution=1)),
    ):
        if not path.exists():
            with atomic_path(path) as tmp:
                nib.save(image, str(tmp))
    return t1_path, mask_path


def brain_slab(
    t1_path: Path, mask_path: Path, slices: int, axis: int, folder: Path
) -> tuple[Path, Path, tuple[float, float]]:
    """The central ``slices`` slices across array ``axis`` of the brain, as a T1 and a mask NIfTI.

    The slab is centred on the brain mask's extent along ``axis``; its affine is the template's,
    shifted to the slab's first slice, so it stays in MNI world coordinates.

    Returns:
        (T1 path, mask path, (first, last) slice centre's world coordinate along ``axis``'s direction, mm).
    """
    image, mask_image = nib.load(str(t1_path)), nib.load(str(mask_path))
    mask = np.asarray(mask_image.dataobj) > 0.5
    size = mask.shape[axis]
    slices = min(slices, size)
    extent = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    centre = (int(extent[0]) + int(extent[-1])) // 2 if extent.size else size // 2
    start = int(np.clip(centre - slices // 2, 0, size - slices))
    offset = np.zeros(3)
    offset[axis] = start
    affine = image.affine.copy()
    affine[:3, 3] = image.affine[:3, :3] @ offset + image.affine[:3, 3]
    index = tuple(slice(start, start + slices) if a == axis else slice(None) for a in range(3))
    paths = folder / f"mni152_t1_slab-axis{axis}.nii.gz", folder / f"mni152_brain_mask_slab-axis{axis}.nii.gz"
    for path, source, dtype in ((paths[0], image, np.float32), (paths[1], mask_image, np.uint8)):
        with atomic_path(path) as tmp:
            nib.save(nib.Nifti1Image(np.asarray(source.dataobj)[index].astype(dtype), affine), str(tmp))
    ends = [float((affine @ np.array([*(k * (a == axis) for a in range(3)), 1.0]))[axis]) for k in (0, slices - 1)]
    return paths[0], paths[1], (ends[0], ends[1])


def _announcer(start: float) -> Callable[[str], None]:
    def announce(message: str) -> None:
        print(f"[{time.perf_counter() - start:5.0f} s] {message}", flush=True)

    return announce


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2.0 * (a & b).sum() / max(1, a.sum() + b.sum()))


def _middle_slice(volume: np.ndarray, axis: int = 2) -> np.ndarray:
    return np.rot90(np.take(volume, volume.shape[axis] // 2, axis=axis))


def _save_figure(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def run_preprocessing(t1_path: Path, reference_mask_path: Path, out: Path) -> dict[str, float]:
    """Brain mask, N4 and normalisation of the T1; returns Dice and timings."""
    out.mkdir(parents=True, exist_ok=True)
    t1 = load_volume(t1_path)
    reference = nib.load(str(reference_mask_path)).get_fdata() > 0.5
    start = time.perf_counter()
    mask = BrainMask()(t1)
    mask_s = time.perf_counter() - start
    start = time.perf_counter()
    corrected, field = N4BiasFieldCorrection(return_field=True)(t1, mask=mask)
    n4_s = time.perf_counter() - start
    normalised = NormalizeIntensityInMask()(corrected, mask=mask)
    save_nifti(mask, out / "brain_mask.nii.gz", dtype=np.uint8)
    save_nifti(corrected, out / "t1_n4.nii.gz")
    save_nifti(field, out / "n4_bias_field.nii.gz")
    save_nifti(normalised, out / "t1_n4_normalised.nii.gz")
    dice = _dice(mask[0].numpy() > 0, reference)
    fig, axes = plt.subplots(1, 4, figsize=(14, 4))
    panels = (
        ("T1 (MNI152)", t1[0].numpy(), "gray"),
        (f"brain mask, Dice {dice:.3f}", mask[0].numpy(), "gray"),
        ("N4 bias field", field[0].numpy(), "magma"),
        ("N4 + normalised", normalised[0].numpy(), "gray"),
    )
    for ax, (title, volume, cmap) in zip(axes, panels):
        ax.imshow(_middle_slice(volume), cmap=cmap)
        ax.set_title(title)
        ax.axis("off")
    _save_figure(fig, out / "preprocessing.png")
    return {"brain_mask_dice_vs_nilearn": round(dice, 4), "brain_mask_s": round(mask_s, 1), "n4_s": round(n4_s, 1)}


def run_lr_synthesis(t1_path: Path, out: Path) -> None:
    """Every protocol's LR volume of the T1, and a figure of their middle slices."""
    out.mkdir(parents=True, exist_ok=True)
    hr = load_volume(t1_path)
    fig, axes = plt.subplots(1, len(PROTOCOLS) + 1, figsize=(3 * (len(PROTOCOLS) + 1), 3.4))
    axes[0].imshow(_middle_slice(hr[0].numpy(), 0), cmap="gray", aspect="auto")
    axes[0].set_title("HR (sagittal)")
    for ax, protocol in zip(axes[1:], PROTOCOLS.values()):
        lr = protocol.degrade(hr)
        save_nifti(lr, out / f"mni152_lr-{protocol.name}.nii.gz")
        ax.imshow(_middle_slice(lr[0].numpy(), 0), cmap="gray", aspect="auto")
        ax.set_title(f"{protocol.name}\n{tuple(lr.shape[1:])}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    _save_figure(fig, out / "lr_synthesis.png")


def bundles_by_protocol() -> dict[str, list[str]]:
    """Installed bundles grouped by the protocol their weights were trained for."""
    groups: dict[str, list[str]] = {}
    for name in available_bundles():
        protocol = bundle_metadata(find_bundle(name)[0]).get("degradation_protocol")
        if protocol in PROTOCOLS:
            groups.setdefault(protocol, []).append(name)
    return groups


def run_demo(
    output_dir: str | Path, *, device: str = "auto", precision: str | None = None, slab_slices: int = DEMO_SLAB_SLICES
) -> Path:
    """Run the whole demo into ``output_dir``; returns the path of its summary (``README.md``).

    Args:
        output_dir: the demo's folder.
        device: device for the networks.
        precision: the networks' precision (default: each bundle's, auto).
        slab_slices: axial slices of the SR step's slab (0 = the whole template, else ≥ :data:`MIN_SLAB_SLICES`).

    Raises:
        ValueError: ``slab_slices`` is between 1 and ``MIN_SLAB_SLICES - 1`` (or negative).
    """
    if slab_slices < 0 or 0 < slab_slices < MIN_SLAB_SLICES:
        raise ValueError(f"the slab needs 0 (whole template) or at least {MIN_SLAB_SLICES} slices, got {slab_slices}")
    from pipeline.evaluation import evaluate_cohort

    out = Path(output_dir)
    start = time.perf_counter()
    announce = _announcer(start)
    groups = bundles_by_protocol()
    protocols = sorted(set(ALWAYS_EVALUATED) | set(groups))
    announce(
        f"mrisr demo into {out.resolve()}: 4 steps, {len(protocols)} protocols, "
        f"bundles {sorted(sum(groups.values(), []))}"
    )
    announce("1/4 MNI152 2009 T1 template and brain mask (nilearn)")
    t1_path, mask_path = fetch_mni152(out / "data")
    announce("2/4 preprocessing: brain mask, N4 bias-field correction, intensity normalisation (about 30 s)")
    preprocessing = run_preprocessing(t1_path, mask_path, out / "preprocessing")
    announce(
        f"    brain mask Dice vs nilearn's {preprocessing['brain_mask_dice_vs_nilearn']}, N4 {preprocessing['n4_s']} s"
    )
    announce(f"3/4 LR synthesis: {len(PROTOCOLS)} protocols")
    run_lr_synthesis(t1_path, out / "lr")
    manifests: dict[int, tuple[Path, str]] = {}

    def slab_manifest(axis: int) -> tuple[Path, str]:
        """The manifest of the SR step for protocols sliced across ``axis``, and what it covers."""
        if axis not in manifests:
            if slab_slices:
                t1, mask, (first, last) = brain_slab(t1_path, mask_path, slab_slices, axis, out / "data")
                scope = f"{slab_slices} {_AXIS_NAMES[axis]} slices ({'xyz'[axis]} = {first:.0f} to {last:.0f} mm, MNI)"
            else:
                t1, mask, scope = t1_path, mask_path, "the whole template"
            path = out / "data" / f"mni152_manifest-axis{axis}.csv"
            row = {"subject_id": "MNI152", "split": "test", "hr": t1.name, "mask": mask.name}
            atomic_write_text(path, pd.DataFrame([row]).to_csv(index=False))
            manifests[axis] = path, scope
        return manifests[axis]

    tables = []
    for number, name in enumerate(protocols, 1):
        protocol = get_protocol(name)
        methods = [*protocol.baselines, *groups.get(name, [])]
        manifest, scope = slab_manifest(protocol.slice_axis)
        announce(f"4/4 super-resolution, protocol {name} ({number}/{len(protocols)}) on {scope}: {methods}")
        evaluate_cohort(
            manifest,
            name,
            methods,
            out / "sr" / name,
            split="test",
            device=device,
            precision=precision,
            save_volumes=True,
            crop_to_mask=True,  # networks run on the brain's box only: same metrics, 40 % fewer voxels
            progress=True,
        )
        summary = pd.read_csv(out / "sr" / name / "per_scan_metrics.csv")
        summary.insert(0, "protocol", name)
        tables.append(summary)
    scopes = sorted({scope for _, scope in manifests.values()})
    results = pd.concat(tables, ignore_index=True)
    columns = [
        c
        for c in ("protocol", "method", "psnr", "ssim", "nrmse", "psnr_slice", "runtime_s", "precision")
        if c in results
    ]
    table = results[columns].round(4).to_markdown(index=False)
    elapsed = time.perf_counter() - start
    summary_path = out / "README.md"
    atomic_write_text(
        summary_path,
        "# mrisr demo on the MNI152 2009 T1 template (nilearn)\n\n"
        f"Wall time: {elapsed:.0f} s.\n\n## Preprocessing\n\n```json\n{json.dumps(preprocessing, indent=2)}\n```\n\n"
        "Figures: `preprocessing/preprocessing.png`, `lr/lr_synthesis.png`.\n\n"
        "## Super-resolution (brain mask; data range = HR max − min inside the mask)\n\n"
        f"Run on {' and '.join(scopes)}, through the brain's centre and across the axis each protocol leaves "
        "alone, cropped to the brain's box (`mrisr demo --slab 0` runs the whole template).\n\n"
        f"{table}\n\nPer protocol: `sr/<protocol>/report.md`, `panel.png`, SR volumes in `sr/<protocol>/volumes/`.\n",
    )
    print(table)
    announce(f"demo finished in {elapsed:.0f} s; results in {out.resolve()} (summary: {summary_path})")
    return summary_path
