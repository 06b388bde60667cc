"""Does the data-consistency residual tell a right forward model from a wrong one? Both, side by side.

For each test scan of a manifest (MALF test split by default), a bundle super-resolves two inputs that
differ only in how they were made from the same HR scan:

- correct: the bundle's own degradation (its ``degradation_protocol``);
- wrong (``--wrong``): for an in-plane bundle, another degradation with the same grid change (default
  k-space truncation 2 x 2 along the same axes, for the bicubic-x2 bundle ``rrlsrn``: the issue's
  example); for a through-plane bundle, slices half as thick as their spacing (``thin``: 2 mm slices
  with 2 mm gaps for 4 mm spacing), of which the header says nothing, so QC assumes contiguous slices.

Both inputs are given without their degradation record, as a NIfTI without sidecar would be.

The residual ``||D(sr) - lr|| / ||lr||`` in the input's head mask (``pipeline.qc``, with the bundle's
forward model ``D``) is printed for both, with their ratio (wrong / correct); the issue's target is a
ratio of at least 2 on every scan. No assertion: this is a measurement.

Usage:
    python benchmarks/qc_consistency.py [--bundle rrlsrn] [--wrong kspace] [--max-scans 4] [--csv out.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.inference import load_bundle_method
from pipeline.inference.methods import BUNDLES_DIR, bundle_metadata
from pipeline.io import load_volume
from pipeline.manifests import read_manifest, scan_id
from pipeline.protocols import get_protocol
from pipeline.qc import qc_measures
from pipeline.transforms import AntialiasedResize, BlurDownsample, KSpaceTruncation

WRONG = {
    "kspace": lambda axes, f: KSpaceTruncation([f] * len(axes), axes=axes, output_grid="lr"),
    "bicubic": lambda axes, f: AntialiasedResize(f, axes=axes),
    "blur": lambda axes, f: BlurDownsample(int(f), axes=axes),
    "thin": None,  # through-plane bundles: see the module docstring
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="rrlsrn")
    parser.add_argument("--wrong", choices=sorted(WRONG), default="kspace")
    parser.add_argument("--manifest", default="data_manifests/malf_dev.csv")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-scans", type=int, default=4)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--csv", help="also write the per-scan table here")
    args = parser.parse_args()
    root = Path(args.bundle) if Path(args.bundle, "configs").is_dir() else BUNDLES_DIR / args.bundle
    protocol = get_protocol(bundle_metadata(root)["degradation_protocol"])
    axes = [a for a, z in enumerate(protocol.zoom) if z != 1]
    if protocol.acquisition is not None:  # through-plane: thinner slices at the same spacing
        spacing = protocol.acquisition.spacing_mm
        wrong_protocol = get_protocol(f"thick-{spacing / 2:g}mm-gap{spacing / 2:g}mm-axis{protocol.acquisition.axis}")
        wrong = wrong_protocol.degrade
        args.wrong = wrong_protocol.name
    else:
        wrong = WRONG[args.wrong](axes, protocol.zoom[axes[0]])
    method = load_bundle_method(root, precision=args.precision)
    rows = []
    table = read_manifest(args.manifest, split=args.split, require=("hr",)).iloc[: args.max_scans]
    for _, row in table.iterrows():
        hr = load_volume(row["hr"])
        cropped = hr[(slice(None), *(slice(0, n - n % int(z)) for n, z in zip(hr.shape[1:], protocol.zoom)))]
        correct_lr, wrong_lr = protocol.degrade(cropped), wrong(cropped)
        for lr in (correct_lr, wrong_lr):
            lr.meta.pop("degradation", None)  # as a NIfTI without sidecar: QC assumes the bundle's model
        figures = {}
        for label, lr in (("correct", correct_lr), ("wrong", wrong_lr)):
            sr = method(lr, list(protocol.zoom))
            figures[label] = qc_measures(method, lr, sr, list(protocol.zoom)).record["data_consistency"]
        rows.append(
            {
                "scan_id": scan_id(row),
                "correct": figures["correct"],
                "wrong": figures["wrong"],
                "ratio": figures["wrong"] / figures["correct"],
            }
        )
        print(
            f"{scan_id(row)}: residual {figures['correct']:.4f} ({protocol.name}) "
            f"vs {figures['wrong']:.4f} ({args.wrong}), ratio {rows[-1]['ratio']:.2f}",
            flush=True,
        )
    result = pd.DataFrame(rows)
    print(
        f"{args.bundle}: ratio wrong / correct {result['ratio'].min():.2f}-{result['ratio'].max():.2f} "
        f"(mean {result['ratio'].mean():.2f})"
    )
    if args.csv:
        result.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
