"""How much of an LR's noise does each method pass into its output? A diagnostic of the noisy out-of-distribution sets.

Each scan of a split is degraded twice under ``--protocol``: noise-free and with Rician noise of ``--noise`` %
of the LR's robust maximum (the same noise draw as ``mrisr evaluate``'s ``<protocol>+rician<N>``). Each method
super-resolves both; in the brain mask, with data range = HR max - min in the mask (the project's PSNR):

- ``noise_transfer_pct``: RMS of ``method(noisy) - method(clean)``, % of the data range: the noise the method
  passes on (cubic B-spline's is the reference: a method that denoises passes less, one that sharpens more);
- ``clean_error_pct``: RMS of ``method(clean) - HR``, % of the data range;
- ``psnr_clean`` and ``psnr_noisy`` (dB).

No assertion: a measurement. Methods are names or bundle folders (``runs/...``), as for ``mrisr evaluate``.

Usage:
    python benchmarks/noise_transfer.py --methods cubic rrlsrn mrln --output results/noise_transfer.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import data_range, psnr
from pipeline.inference.methods import load_method
from pipeline.io import load_volume
from pipeline.manifests import read_manifest
from pipeline.pairs import brain_mask, degraded_pair
from pipeline.protocols import get_protocol

ROOT = Path(__file__).resolve().parents[1]


def rms_percent(values: np.ndarray, value_range: float) -> float:
    return 100.0 * float(np.sqrt(np.mean(values**2))) / value_range


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--manifest", type=Path, default=ROOT / "data_manifests" / "malf_dev.csv")
    parser.add_argument("--split", default="val")
    parser.add_argument("--protocol", default="bicubic-x2")
    parser.add_argument("--noise", type=float, default=3.0, help="Rician noise, %% of the LR's robust maximum")
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()

    methods = [load_method(spec, precision=args.precision) for spec in args.methods]
    rows = []
    for _, row in read_manifest(args.manifest, split=args.split).iterrows():
        hr = load_volume(row["hr"])
        mask, _ = brain_mask(hr, row.get("mask"), str(row["scan_id"]))
        clean = degraded_pair(get_protocol(args.protocol), hr, mask, crop_to_mask=True)
        noisy = degraded_pair(get_protocol(f"{args.protocol}+rician{args.noise:g}"), hr, mask, crop_to_mask=True)
        reference, inside = clean.hr[0].numpy(), clean.mask[0].numpy()
        value_range = data_range(reference, inside)
        for spec, method in zip(args.methods, methods):
            from_clean = method(clean.lr, list(clean.zoom))[0].float().numpy()
            from_noisy = method(noisy.lr, list(noisy.zoom))[0].float().numpy()
            rows.append(
                {
                    "scan_id": str(row["scan_id"]),
                    "method": spec,
                    "protocol": args.protocol,
                    "noise_percent": args.noise,
                    "psnr_clean": round(psnr(from_clean, reference, inside, value_range), 4),
                    "psnr_noisy": round(psnr(from_noisy, reference, inside, value_range), 4),
                    "noise_transfer_pct": round(rms_percent((from_noisy - from_clean)[inside], value_range), 4),
                    "clean_error_pct": round(rms_percent((from_clean - reference)[inside], value_range), 4),
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    print(table.groupby("method", sort=False)[["psnr_clean", "psnr_noisy", "noise_transfer_pct"]].mean().round(3))


if __name__ == "__main__":
    main()
