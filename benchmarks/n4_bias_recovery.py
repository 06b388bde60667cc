# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""How well N4 removes a known bias field from a real T1 scan.

A MICCAI 2012 (OASIS) skull-stripped scan is multiplied by a smooth synthetic field (a
quadratic polynomial of the world coordinates, scaled to exactly 0.8..1.2 inside the brain),
then corrected with :class:`pipeline.transforms.N4BiasFieldCorrection` inside the brain mask.
Reported: the coefficient of variation (std / mean) of cerebral white-matter intensity
(Neuromorphometrics labels 44 and 45) for the original scan, the scan with the field, and the
N4 output; N4 applied to the original scan as well (the scan has a bias field of its own); the
Pearson correlation of the estimated field with the true one inside the brain (raw, and after
dividing out the field N4 finds in the original scan); and the runtime. Target:
``|CV_n4 - CV_orig| / CV_orig <= 0.10``.

Usage::

    python benchmarks/n4_bias_recovery.py [--data-root ../shared/data] [--scan 1000] [--shrink 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.io import load_volume
from pipeline.transforms.bias_field import N4BiasFieldCorrection
from pipeline.transforms.grid import voxel_to_world

WHITE_MATTER_LABELS = (44, 45)  # Right / Left Cerebral White Matter (Neuromorphometrics)
REPO_ROOT = Path(__file__).resolve().parents[1]


def synthetic_field(affine: np.ndarray, shape: tuple[int, ...], brain: np.ndarray) -> np.ndarray:
    """A smooth field (X, Y, Z) from a fixed quadratic polynomial of world coordinates, 0.8..1.2 in ``brain``."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = voxel_to_world(affine, ijk).reshape(*shape, 3)
    centre = xyz[brain].mean(0)
    half_extent = np.abs(xyz[brain] - centre).max(0)
    u, v, w = np.moveaxis((xyz - centre) / half_extent, -1, 0)  # about -1..1 over the brain
    poly = 0.9 * u - 0.6 * v + 1.0 * w + 0.5 * u * v - 0.7 * w**2 + 0.4 * u**2
    lo, hi = poly[brain].min(), poly[brain].max()
    return 0.8 + 0.4 * (poly - lo) / (hi - lo)


def cv(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--scan", default="1000", help="MICCAI 2012 scan id in malf/ (default 1000)")
    parser.add_argument("--shrink", type=int, default=4, help="N4 shrink factor (default 4)")
    args = parser.parse_args(argv)

    malf = args.data_root / "malf"
    if not (malf / f"{args.scan}_SS.nii.gz").exists():
        print(f"no scan {args.scan} under {malf}", file=sys.stderr)
        return 1
    image = load_volume(malf / f"{args.scan}_SS.nii.gz")
    brain = load_volume(malf / f"{args.scan}_mask.nii.gz")[0].numpy() > 0
    labels = load_volume(malf / f"{args.scan}_glm.nii.gz")[0].numpy().round().astype(int)
    wm = np.isin(labels, WHITE_MATTER_LABELS)

    true_field = synthetic_field(image.affine.numpy(), image.shape[1:], brain)
    biased = image.clone()
    biased[0] = image[0] * torch.from_numpy(true_field).float()

    n4 = N4BiasFieldCorrection(shrink_factor=args.shrink, return_field=True)
    mask = torch.from_numpy(brain)[None]
    start = time.perf_counter()
    n4(torch.rand(1, 16, 16, 16) + 1.0)  # ITK loads its filters on first use: time that apart
    load_time = time.perf_counter() - start
    start = time.perf_counter()
    corrected, field = n4(biased, mask=mask)
    runtime = time.perf_counter() - start
    corrected_orig, field_orig = n4(image, mask=mask)

    field, field_orig = field[0].numpy(), field_orig[0].numpy()
    cvs = {
        "original": cv(image[0].numpy()[wm]),
        "original + N4": cv(corrected_orig[0].numpy()[wm]),
        "with field": cv(biased[0].numpy()[wm]),
        "with field + N4": cv(corrected[0].numpy()[wm]),
    }
    r_raw = np.corrcoef(field[brain], true_field[brain])[0, 1]
    r_own = np.corrcoef((field / field_orig)[brain], true_field[brain])[0, 1]
    rel = abs(cvs["with field + N4"] - cvs["original"]) / cvs["original"]

    shape = tuple(image.shape[1:])
    print(f"scan {args.scan}: {shape} voxels, {int(brain.sum())} in the brain, {int(wm.sum())} white matter")
    print(f"true field inside the brain: {true_field[brain].min():.3f} .. {true_field[brain].max():.3f}")
    for name, value in cvs.items():
        print(f"CV of white matter, {name:<16s} {value:.4f}")
    print(f"|CV_n4 - CV_orig| / CV_orig = {rel:.3f} (target <= 0.10): {'PASS' if rel <= 0.10 else 'FAIL'}")
    print(f"correlation of the estimated field with the true field: {r_raw:.4f}")
    print(f"  after dividing out the scan's own field (N4 of the original): {r_own:.4f}")
    print(f"N4 runtime at shrink {args.shrink}: {runtime:.1f} s (plus {load_time:.1f} s loading ITK's filters once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
