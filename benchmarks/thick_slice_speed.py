"""Through-plane SR speed on a clinical-size scan: 256 x 256 x 40 slices of 4 mm, on this machine's CPU cores.

The scan is nilearn's MNI152 2009 T1 template (1 mm, a head with skull), padded in-plane to 256 x 256
and cut into 40 Gaussian-profile slices of 4 mm (160 mm of the head). Timed in one run, each after a
warm-up call on a small volume (precision choice, kernel preparation):

- cubic B-spline interpolation to 1 mm (256 x 256 x 160), the baseline;
- ``thick_slice`` (the bundle's fast path, ``--precision``, default the bundle's ``auto``);
- ``thick_slice+adapt`` with the default :class:`~pipeline.training.adaptation.AdaptationBudget`
  (fine-tuning + inference), against the issue's budget of 5 minutes per scan on 2 CPU cores.

Printed: seconds per step, the adaptation record (steps, seconds, loss), and the PSNR of each output
against the 1 mm template inside its brain mask (data range = HR max - min there). No assertion:
machines are shared and noisy.

Usage:
    python benchmarks/thick_slice_speed.py [--bundle bundles/thick_slice] [--precision auto|fp32|bf16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.acceleration import available_cpu_cores, configure_cpu_runtime
from pipeline.demo import fetch_mni152
from pipeline.evaluation.metrics import data_range, psnr
from pipeline.inference import load_bundle_method, make_baseline
from pipeline.inference.methods import BUNDLES_DIR
from pipeline.io import load_volume
from pipeline.protocols import get_protocol
from pipeline.training.adaptation import AdaptedSR

SHAPE = (256, 256, 160)


def clinical_scan(folder: Path) -> tuple[MetaTensor, MetaTensor, np.ndarray]:
    """(HR 256 x 256 x 160 at 1 mm, its 40-slice 4 mm LR, brain mask) from the MNI152 template."""
    t1_path, mask_path = fetch_mni152(folder)
    t1, mask = load_volume(t1_path), load_volume(mask_path)
    padded, padded_mask = torch.zeros((1, *SHAPE)), torch.zeros((1, *SHAPE))
    offsets = [(s - n) // 2 for s, n in zip(SHAPE[:2], t1.shape[1:3])]
    z0 = (t1.shape[3] - SHAPE[2]) // 2 + 10  # keep the top of the head, lose some neck
    region = (slice(None), slice(offsets[0], offsets[0] + t1.shape[1]), slice(offsets[1], offsets[1] + t1.shape[2]))
    padded[region] = t1.as_tensor()[..., z0 : z0 + SHAPE[2]]
    padded_mask[region] = mask.as_tensor()[..., z0 : z0 + SHAPE[2]]
    hr = MetaTensor(padded, affine=t1.affine)
    lr = get_protocol("thick-4mm").degrade(hr)
    return hr, lr, padded_mask[0].numpy() > 0.5


def timed(method, lr: MetaTensor, zoom: list[float]) -> tuple[MetaTensor, float]:
    start = time.perf_counter()
    sr = method(lr, zoom)
    return sr, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=str(BUNDLES_DIR / "thick_slice"))
    parser.add_argument("--precision", default=None)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    configure_cpu_runtime()
    with tempfile.TemporaryDirectory() as tmp:
        hr, lr, mask = clinical_scan(Path(tmp))
    zoom = [1.0, 1.0, 4.0]
    hr_np = hr[0].numpy()
    value_range = data_range(hr_np, mask)
    method = load_bundle_method(args.bundle, precision=args.precision)
    warm = get_protocol("thick-4mm").degrade(hr[:, 96:160, 96:160, 64:96])
    method(warm, zoom)
    print(
        f"input {tuple(lr.shape[1:])} at {tuple(float(s) for s in lr.pixdim)} mm -> {SHAPE}; "
        f"{available_cpu_cores()} cores, {torch.get_num_threads()} threads, precision {method.precision}"
    )
    results = {}
    for name, runner in (
        ("cubic", make_baseline("cubic")),
        ("thick_slice", method),
        ("thick_slice+adapt", AdaptedSR(method)),
    ):
        sr, seconds = timed(runner, lr, zoom)
        results[name] = {
            "seconds": round(seconds, 2),
            "psnr_db": round(psnr(sr[0].numpy(), hr_np, mask, value_range), 3),
        }
        if name.endswith("adapt"):
            results[name]["adaptation"] = runner.last_adaptation
        print(f"{name:18s} {seconds:7.1f} s   PSNR in the brain mask {results[name]['psnr_db']:.2f} dB")
    record = results["thick_slice+adapt"]["adaptation"]
    print(
        f"adaptation: {record['steps']} steps in {record['seconds']:.1f} s, "
        f"L1 {record['loss_start']:.4f} -> {record['loss_end']:.4f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
