"""Out-of-distribution evaluation of one bundle: does its gain over cubic B-spline survive a domain shift?

The development-side set of issue 24, all through ``mrisr evaluate`` (``evaluate_cohort``) on the
``test`` split of ``data_manifests/malf_dev.csv`` (4 scans that chose nothing):

==============  ==============================================================  ==================
set             scans                                                           protocol
==============  ==============================================================  ==================
in-domain       the test T1 scans                                               ``P``
t2              synthetic T2-like contrast from their label maps                ``P``
flair           synthetic FLAIR-like contrast from their label maps             ``P``
bias+noise      the test scans times a random bias field                        ``P+rician<N>``
noise           the test scans                                                  ``P+rician<N>``
colin27-head    Colin27's full head with skull and neck (not cropped)           ``P``
==============  ==============================================================  ==================

The derived scans are made with ``mrisr synth-contrast --split test --contrast {t2,flair,bias}`` (seeded
per scan; made once into ``--derived-dir``). PSNR is taken in the brain mask (the manifest's; Colin27's
is ``ch2bet`` > 0.5) with data range = HR max - min in the mask, the project's one definition.

Writes ``ood_per_scan.csv`` (one row per set, scan and method, with the gain over cubic and, for
k-space protocols, over zero-filled k-space) and ``ood_summary.md`` (means per set, the
out-of-distribution mean over all 17 scans, its fraction of the in-domain gain, the worst scan, and the
issue 24 targets). No assertion: a measurement.

Usage:
    python benchmarks/ood_evaluation.py --bundle rrlsrn --protocol bicubic-x2 --output-dir results/ood/rrlsrn
    python benchmarks/ood_evaluation.py --bundle runs/rrlsrn/domain2 --protocol bicubic-x2 \\
        --output-dir results/ood/domain2 --label rrlsrn-domain2
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
from pathlib import Path

import pandas as pd

from pipeline.acceleration.precision import machine_description
from pipeline.evaluation import evaluate_cohort
from pipeline.manifests import read_manifest
from pipeline.synthesis import derived_manifest, synthesize_contrast_file

ROOT = Path(__file__).resolve().parents[1]
MALF_MANIFEST = ROOT / "data_manifests" / "malf_dev.csv"
COLIN_MANIFEST = ROOT / "data_manifests" / "colin27_head.csv"
ZERO_FILLED = "kspace_zero_filled"
OOD_SETS = ("t2", "flair", "bias+noise", "noise", "colin27-head")
DEFAULT_NOISE_PERCENT = 3.0


def derived_set(contrast: str, derived_dir: Path) -> Path:
    """The manifest of the ``contrast`` versions of the test scans, made once (seeded, so always the same)."""
    folder = derived_dir / contrast
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    table = read_manifest(MALF_MANIFEST, split="test")
    outputs = {}
    for _, row in table.iterrows():
        path = folder / f"{row['scan_id']}_{contrast}.nii.gz"
        if not path.is_file():
            synthesize_contrast_file(row, contrast, path)
        outputs[str(row["scan_id"])] = path
    return derived_manifest(table, outputs, contrast, manifest)


def evaluation_sets(protocol: str, noise_percent: float, derived_dir: Path) -> dict[str, tuple[Path, str, bool]]:
    """``{set: (manifest, protocol, crop_to_mask)}`` of the in-domain and out-of-distribution sets."""
    noisy = f"{protocol}+rician{noise_percent:g}"
    return {
        "in-domain": (MALF_MANIFEST, protocol, True),
        "t2": (derived_set("t2", derived_dir), protocol, True),
        "flair": (derived_set("flair", derived_dir), protocol, True),
        "bias+noise": (derived_set("bias", derived_dir), noisy, True),
        "noise": (MALF_MANIFEST, noisy, True),
        "colin27-head": (COLIN_MANIFEST, protocol, False),
    }


def gains(per_scan: pd.DataFrame, baselines: list[str]) -> pd.DataFrame:
    """Per-scan rows of the network methods with ``gain_vs_<baseline>`` columns (dB) and the precision they ran in.

    ``precision`` is what ``mrisr evaluate`` recorded for the network (``auto`` resolves per machine), so the
    committed CSV says whether a figure came from fp32 or bf16.
    """
    psnr = per_scan.pivot_table(index=["set", "scan_id"], columns="method", values="psnr")
    precision = per_scan.set_index(["set", "scan_id", "method"])["precision"]
    networks = [m for m in psnr.columns if m not in baselines]
    rows = []
    for method in networks:
        part = pd.DataFrame({"method": method, "psnr": psnr[method]})
        for baseline in baselines:
            part[f"psnr_{baseline}"] = psnr[baseline]
            part[f"gain_vs_{baseline}"] = psnr[method] - psnr[baseline]
        part["precision"] = precision.xs(method, level="method").reindex(part.index)
        rows.append(part.reset_index())
    return pd.concat(rows, ignore_index=True)


def summary_markdown(table: pd.DataFrame, baselines: list[str], header: str) -> str:
    """Mean gain per set, the out-of-distribution mean and the issue 24 targets, as Markdown."""
    lines = [header, ""]
    for method, part in table.groupby("method"):
        order = {name: i for i, name in enumerate(("in-domain", *OOD_SETS))}
        by_set = part.sort_values("set", key=lambda column: column.map(order)).groupby("set", sort=False)
        columns = ["set", "n", "cubic (dB)"] + [f"gain vs {b} (dB)" for b in baselines] + ["worst scan vs cubic"]
        lines += [f"### {method}", "", "| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
        for name, rows in by_set:
            cells = [name, str(len(rows)), f"{rows['psnr_cubic'].mean():.2f}"]
            cells += [f"{rows[f'gain_vs_{b}'].mean():+.2f}" for b in baselines]
            cells.append(f"{rows['gain_vs_cubic'].min():+.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        ood = part[part["set"].isin(OOD_SETS)]
        in_domain = part.loc[part["set"] == "in-domain", "gain_vs_cubic"].mean()
        fraction = ood["gain_vs_cubic"].mean() / in_domain if in_domain > 0 else float("nan")
        lines += [
            "",
            f"- out-of-distribution mean gain over cubic ({len(ood)} scans): {ood['gain_vs_cubic'].mean():+.2f} dB"
            f" = {100 * fraction:.0f} % of the in-domain {in_domain:+.2f} dB (target >= 60 %:"
            f" {'met' if fraction >= 0.6 else 'missed'})",
            f"- scans below cubic: {int((ood['gain_vs_cubic'] < 0).sum())} of {len(ood)} (target 0)",
        ]
        if ZERO_FILLED in baselines:
            lines.append(
                f"- scans below zero-filled k-space: {int((ood[f'gain_vs_{ZERO_FILLED}'] < 0).sum())} of {len(ood)}"
                " (target 0)"
            )
        lines.append("")
    return "\n".join(lines)


def reproducing_command(args: argparse.Namespace) -> str:
    """The command that reproduces the figures: the options that change them, not ``--sets``/``--reuse``."""
    words = ["python benchmarks/ood_evaluation.py", f"--bundle {args.bundle}", f"--protocol {args.protocol}"]
    if args.noise != DEFAULT_NOISE_PERCENT:
        words.append(f"--noise {args.noise:g}")
    if args.precision:
        words.append(f"--precision {args.precision}")
    if args.label:
        words.append(f"--label {args.label}")
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="bundle name or folder")
    parser.add_argument("--protocol", required=True, help="the bundle's protocol, e.g. bicubic-x2")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--label", help="method name in the tables (default: the bundle's)")
    parser.add_argument(
        "--noise", type=float, default=DEFAULT_NOISE_PERCENT, help="Rician noise, %% of the LR's robust maximum"
    )
    parser.add_argument("--derived-dir", type=Path, default=ROOT / "results" / "derived")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--sets", nargs="+", default=None, help="only these sets (default: all)")
    parser.add_argument("--reuse", action="store_true", help="read sets already evaluated in --output-dir")
    args = parser.parse_args()

    baselines = ["cubic"] + ([ZERO_FILLED] if args.protocol.startswith("kspace") else [])
    frames = []
    for name, (manifest, protocol, crop) in evaluation_sets(args.protocol, args.noise, args.derived_dir).items():
        if args.sets and name not in args.sets:
            continue
        done = args.output_dir / name / "per_scan_metrics.csv"
        if args.reuse and done.is_file():
            frames.append(pd.read_csv(done, dtype={"scan_id": str}).assign(set=name, protocol=protocol))
            continue
        result = evaluate_cohort(
            manifest,
            protocol,
            [*baselines, args.bundle],
            args.output_dir / name,
            crop_to_mask=crop,
            precision=args.precision,
            progress=False,
        )
        if not result.failures.empty:
            print(f"{name}: failures, see {result.output_dir / 'failures.csv'}")
        frames.append(result.per_scan.assign(set=name, protocol=protocol))
    per_scan = pd.concat(frames, ignore_index=True)
    table = gains(per_scan, baselines)
    if args.label:
        table["method"] = args.label
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    header = (
        f"## Out-of-distribution evaluation: `{args.bundle}`, protocol `{args.protocol}`, noise {args.noise:g} %\n\n"
        f"Measured {datetime.date.today().isoformat()} at commit {commit.stdout.strip() or '?'} on a"
        f" {machine_description()}; PSNR in the brain"
        f" mask, data range = HR max - min in the mask. Command: `{reproducing_command(args)}`."
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output_dir / "ood_per_scan.csv", index=False, float_format="%.4f")
    text = summary_markdown(table, baselines, header)
    (args.output_dir / "ood_summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
