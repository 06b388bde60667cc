"""What the input-noise estimate reads on noise-free and noisy LR volumes: the calibration of its warning level.

For every protocol given, each scan is degraded three times: noise-free, and with Rician noise of 1.5 % and 3 %
of the LR's robust maximum (``<protocol>+rician<P>``, the noise of the out-of-distribution evaluation). On each
LR, :func:`pipeline.qc.estimate_noise_fraction` runs in the head mask of
:class:`~pipeline.transforms.BrainMask` (``region="head"``), as ``mrisr infer`` runs it. Scans: the MALF ``val``
and ``test`` T1 scans, the T2-like, FLAIR-like and bias-field versions of the ``test`` scans
(``benchmarks/ood_evaluation.py`` makes them in ``results/derived``) and Colin27's head with skull.

Writes one row per scan, protocol and noise level (``set``, ``split``, ``scan_id``, ``protocol``,
``noise_percent``, ``estimate_percent``) and prints the range per set and noise level. No assertion: a measurement.

Usage:
    python benchmarks/noise_estimate_calibration.py --output docs/results/noise_estimate_calibration.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.io import load_volume
from pipeline.manifests import read_manifest
from pipeline.pairs import brain_mask, degraded_pair
from pipeline.protocols import get_protocol
from pipeline.qc.noise import estimate_noise_fraction
from pipeline.transforms import BrainMask
from pipeline.transforms.grid import spacing_from_affine

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("bicubic-x2", "blur-x2", "kspace-2x2", "bicubic-x4", "thick-4mm")
NOISE_PERCENTS = (0.0, 1.5, 3.0)


def scan_sets(derived_dir: Path) -> list[tuple[str, str, pd.DataFrame, bool]]:
    """``(set, split, manifest rows, crop_to_mask)`` of every set of scans."""
    malf = ROOT / "data_manifests" / "malf_dev.csv"
    sets = [("t1", split, read_manifest(malf, split=split), True) for split in ("val", "test")]
    for contrast in ("t2", "flair", "bias"):
        manifest = derived_dir / contrast / "manifest.csv"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest}: run benchmarks/ood_evaluation.py first (it makes the derived scans)")
        sets.append((contrast, "test", read_manifest(manifest, split="test"), True))
    sets.append(("colin27-head", "-", read_manifest(ROOT / "data_manifests" / "colin27_head.csv"), False))
    return sets


def noisy_protocol(protocol: str, percent: float) -> str:
    return protocol if percent == 0 else f"{protocol}+rician{percent:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--derived-dir", type=Path, default=ROOT / "results" / "derived")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS))
    args = parser.parse_args()

    rows = []
    for name, split, table, crop in scan_sets(args.derived_dir):
        for _, row in table.iterrows():
            hr = load_volume(row["hr"])
            mask, _ = brain_mask(hr, row.get("mask"), str(row["scan_id"]))
            for protocol in args.protocols:
                for percent in NOISE_PERCENTS:
                    degradation = get_protocol(noisy_protocol(protocol, percent))
                    lr = degraded_pair(degradation, hr, mask, crop_to_mask=crop).lr
                    head = BrainMask(region="head")(lr)[0].numpy().astype(bool)
                    estimate = estimate_noise_fraction(lr, head, spacing_from_affine(lr.affine))
                    rows.append(
                        {
                            "set": name,
                            "split": split,
                            "scan_id": str(row["scan_id"]),
                            "protocol": protocol,
                            "noise_percent": percent,
                            "estimate_percent": round(100 * estimate, 3),
                        }
                    )
    table = pd.DataFrame(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    summary = table.groupby(["noise_percent", "set"])["estimate_percent"].agg(["min", "max"])
    print(summary.to_string())


if __name__ == "__main__":
    main()
