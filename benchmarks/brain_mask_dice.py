# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Dice of :class:`pipeline.transforms.BrainMask` against reference brain masks, with runtimes.

Cases, all read from files with :func:`pipeline.io.load_volume`:

- Colin27 ``ch2`` (T1 head with skull, 1 mm) vs ``ch2bet > 0``; also with thick slices (every
  3rd / 5th axial slice kept: 1 x 1 x 3 mm and 1 x 1 x 5 mm voxels) vs the same slices of the
  reference;
- nilearn's MNI152 2009 T1 template (``load_mni152_template(resolution=1)``, which is already
  skull-stripped) vs ``load_mni152_brain_mask(resolution=1)`` (written to a temporary folder);
- MICCAI 2012 skull-stripped scans ``malf/<id>_SS`` vs ``malf/<id>_mask``.

Skull-stripped inputs are scored twice: with the default skull-stripped detection and with it
off (``stripped_fraction=None``: the morphological estimate alone).

Usage::

    python benchmarks/brain_mask_dice.py [--data-root ../shared/data] [--malf 1000 1001 1002]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from monai.data import MetaTensor

from pipeline.io import load_volume
from pipeline.transforms.brain_mask import BrainMask

REPO_ROOT = Path(__file__).resolve().parents[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def thick_slices(img: MetaTensor, step: int) -> MetaTensor:
    """Every ``step``-th slice along the last axis, with the affine's spacing scaled to match."""
    affine = img.affine.clone()
    affine[:3, 2] *= step
    meta = {k: v for k, v in img.meta.items() if k != "affine"}
    return MetaTensor(img[:, :, :, ::step].as_tensor().contiguous(), affine=affine, meta=meta)


def score(name: str, image: MetaTensor, reference: np.ndarray, masker: BrainMask) -> None:
    start = time.perf_counter()
    mask = masker(image)[0].numpy() > 0
    runtime = time.perf_counter() - start
    spacing = "x".join(f"{s:g}" for s in np.linalg.norm(image.affine[:3, :3].numpy(), axis=0))
    print(
        f"{name:<34s} {spacing:>9s} mm  Dice {dice(mask, reference):.4f}  "
        f"volume ratio {mask.sum() / reference.sum():.3f}  {runtime:5.1f} s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--malf", nargs="*", default=["1000", "1001", "1002", "1003", "1004"], help="MICCAI 2012 ids")
    args = parser.parse_args(argv)

    default, no_detection = BrainMask(), BrainMask(stripped_fraction=None)
    colin = args.data_root / "colin27"
    if (colin / "ch2.nii.gz").exists():
        head = load_volume(colin / "ch2.nii.gz")
        reference = load_volume(colin / "ch2bet.nii.gz")[0].numpy() > 0
        score("ch2 vs ch2bet", head, reference, default)
        for step in (3, 5):
            score(f"ch2 vs ch2bet, {step} mm slices", thick_slices(head, step), reference[..., ::step], default)
    else:
        print(f"skipped Colin27: no {colin / 'ch2.nii.gz'}")

    from nilearn import datasets

    with tempfile.TemporaryDirectory() as tmp:
        nib.save(datasets.load_mni152_template(resolution=1), f"{tmp}/mni152_t1.nii.gz")
        nib.save(datasets.load_mni152_brain_mask(resolution=1), f"{tmp}/mni152_mask.nii.gz")
        template = load_volume(f"{tmp}/mni152_t1.nii.gz")
        reference = load_volume(f"{tmp}/mni152_mask.nii.gz")[0].numpy() > 0
    score("MNI152 T1 (stripped) vs mask", template, reference, default)
    score("  same, no stripped detection", template, reference, no_detection)

    for scan in args.malf:
        path = args.data_root / "malf" / f"{scan}_SS.nii.gz"
        if not path.exists():
            print(f"skipped {path}: not found")
            continue
        image = load_volume(path)
        reference = load_volume(path.with_name(f"{scan}_mask.nii.gz"))[0].numpy() > 0
        score(f"MALF {scan}_SS vs {scan}_mask", image, reference, default)
        score("  same, no stripped detection", image, reference, no_detection)
    return 0


if __name__ == "__main__":
    sys.exit(main())
