# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr infer``: super-resolve a volume or a cohort with a bundle or a baseline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.cli.common import (
    add_bundle_dir_argument,
    add_input_arguments,
    add_methods_argument,
    add_overwrite_argument,
    add_precision_argument,
    add_zoom_argument,
    fail,
    read_cohort_manifest,
    run_single_or_cohort,
)
from pipeline.evaluation.tissue import TISSUE_ORDER, TISSUES
from pipeline.evaluation.volume_check import VOLUME_TOLERANCE_PCT, tissue_check_path, write_tissue_volume_check
from pipeline.inference import (
    BASELINE_NAMES,
    ThroughPlaneSR,
    available_bundles,
    inference_parameters,
    output_is_complete,
    read_sidecar,
    super_resolve_file,
)
from pipeline.io import atomic_write_text, error_message, read_json
from pipeline.manifests import scan_id
from pipeline.training.adaptation import (
    AdaptationBudget,
    AdaptedSR,
    load_adaptable_method,
)

__all__ = ["InferJob", "add_downstream_arguments", "add_parser", "add_qc_arguments", "add_run_arguments"]

QC_COLUMNS = ("scan_id", "data_consistency", "uncertainty_relative", "input_noise", "in_range", "flags")


@dataclass(frozen=True)
class InferJob:
    """One ``mrisr infer`` output: super-resolve an input, then run the downstream check; or tell that it is done.

    Attributes:
        method: a loaded method (:func:`~pipeline.training.adaptation.load_adaptable_method`).
        zoom, target_spacing: as :func:`~pipeline.inference.resolve_zoom` (``None``: the input's sidecar or
            the method's own rule).
        qc: write the trust check (network methods).
        acquisition_overrides: the slices' ``thickness_mm``, ``gap_mm``, ``profile`` (through-plane QC).
        downstream: ``"tissue"`` to write ``<stem>_tissue.json`` beside each output, else ``None``.
        tissue_contrast: the inputs' contrast for ``downstream`` ("t1", "t2", "flair").
    """

    method: Any
    zoom: Sequence[float] | None = None
    target_spacing: Sequence[float] | None = None
    qc: bool = False
    acquisition_overrides: dict[str, object] = field(default_factory=dict)
    downstream: str | None = None
    tissue_contrast: str = "t1"

    def __call__(self, source: str | Path, output: Path) -> dict[str, Any]:
        """Write ``output``, its sidecar (returned), QC files and downstream check."""
        record = super_resolve_file(
            self.method,
            source,
            output,
            zoom=self.zoom,
            target_spacing=self.target_spacing,
            qc=self.qc,
            acquisition_overrides=self.acquisition_overrides,
        )
        if self.downstream == "tissue":
            write_tissue_volume_check(output, self.tissue_contrast)
        return record

    def is_complete(self, source: str | Path, output: Path) -> bool:
        """True when ``output`` and its downstream check were written by this job's settings (resume skips it)."""
        parameters = inference_parameters(
            self.method, source, zoom=self.zoom, target_spacing=self.target_spacing, qc=self.qc
        )
        checked = self.downstream is None or tissue_check_path(output).is_file()
        return checked and output_is_complete(output, parameters)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--zoom`` (deprecated alias ``--scale``), ``--target-spacing``, ``--device``, ``--precision``: how a
    method runs (infer, bids)."""
    add_zoom_argument(parser, old="--scale", type=float, nargs=3, metavar=("SX", "SY", "SZ"))
    parser.add_argument(
        "--target-spacing", type=float, nargs=3, metavar=("DX", "DY", "DZ"), help="output spacing in mm"
    )
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda:0...")
    add_precision_argument(parser)


def add_qc_arguments(parser: argparse.ArgumentParser, *, default: str) -> None:
    """``--qc`` / ``--no-qc`` (``args.qc``: ``None`` when neither is given); ``default`` says when QC runs unasked."""
    qc = parser.add_mutually_exclusive_group()
    qc.add_argument("--qc", dest="qc", action="store_true", default=None, help=f"write the trust check ({default})")
    qc.add_argument("--no-qc", dest="qc", action="store_false", help="skip the trust check")


def add_downstream_arguments(
    parser: argparse.ArgumentParser, *, tables: str, contrast_default: str | None, contrast_help: str
) -> None:
    """``--downstream tissue`` and ``--tissue-contrast``; ``tables`` names the cohort tables that collect the checks."""
    parser.add_argument(
        "--downstream",
        choices=("tissue",),
        help="tissue: segment each output and the cubic B-spline of its input into CSF/GM/WM (ANTs Atropos) and "
        f"write their volumes side by side (<stem>_tissue.json; {tables}), flagging "
        f"GM or WM volumes more than {VOLUME_TOLERANCE_PCT:g} %% from cubic's",
    )
    parser.add_argument("--tissue-contrast", choices=sorted(TISSUE_ORDER), default=contrast_default, help=contrast_help)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="super-resolve volumes with a bundle or a baseline",
        description="Super-resolve a volume (INPUT -o OUTPUT) or every row of a manifest (--manifest, "
        "--output-dir; resumes: an output is skipped when it reads back completely and its sidecar "
        "records the same method, bundle version, input, zoom and QC setting; --overwrite redoes it). The "
        "zoom comes from --zoom, --target-spacing, the input's degradation sidecar, or the bundle's own rule "
        "(thick_slice: isotropic from the header). Writes NIfTI + a JSON sidecar; with QC (on by default for a "
        "manifest) also <stem>_uncertainty.nii.gz, <stem>_qc.png and, for a manifest, qc_report.csv.",
    )
    add_input_arguments(parser, default_column="lr")
    add_methods_argument(
        parser,
        several=False,
        required=True,
        more_help=f": a baseline {BASELINE_NAMES}, a bundle name ({', '.join(available_bundles()) or 'none installed'})"
        " or a bundle folder",
    )
    add_bundle_dir_argument(parser)
    add_run_arguments(parser)
    add_overwrite_argument(parser)
    add_qc_arguments(parser, default="default for a manifest")
    adapt = parser.add_argument_group("scan-specific adaptation (bundles only)")
    adapt.add_argument(
        "--adapt",
        action="store_true",
        help="fine-tune a copy of the bundle's weights on the input itself before super-resolving it (the shipped "
        "weights are not changed); steps, time and loss go into the sidecar",
    )
    defaults = AdaptationBudget()
    adapt.add_argument(
        "--adapt-steps",
        type=int,
        default=defaults.max_steps,
        help=f"at most this many steps (default {defaults.max_steps})",
    )
    adapt.add_argument(
        "--adapt-seconds",
        type=float,
        default=defaults.max_seconds,
        help=f"at most this many seconds (default {defaults.max_seconds:g})",
    )
    add_downstream_arguments(
        parser,
        tables="for a manifest also tissue_volumes.csv",
        contrast_default="t1",
        contrast_help="the scans' contrast for --downstream tissue: which tissue is darkest (default t1)",
    )
    slices = parser.add_argument_group(
        "thick-slice acquisition (through-plane bundles; default: contiguous Gaussian slices)"
    )
    slices.add_argument(
        "--slice-thickness", type=float, help="slice thickness in mm (the header gives only the spacing)"
    )
    slices.add_argument("--slice-gap", type=float, help="gap between slices in mm (spacing = thickness + gap)")
    slices.add_argument("--slice-profile", choices=("gaussian", "boxcar"), help="slice profile")
    parser.set_defaults(func=run)


def _acquisition_overrides(args: argparse.Namespace) -> dict[str, object]:
    given = {"thickness_mm": args.slice_thickness, "gap_mm": args.slice_gap, "profile": args.slice_profile}
    return {key: value for key, value in given.items() if value is not None}


def _manifest_outputs(args: argparse.Namespace, suffix: str) -> list[tuple[str, Path]]:
    """``(scan_id, output path)`` of every row of a manifest run, in manifest order."""
    table = read_cohort_manifest(args, require=(args.column,))
    out_dir = Path(args.output_dir).expanduser()
    return [(scan_id(row), out_dir / f"{scan_id(row)}_{suffix}.nii.gz") for _, row in table.iterrows()]


def write_qc_report(args: argparse.Namespace, suffix: str) -> None:
    """``qc_report.csv`` of a manifest run from its outputs' sidecars; print the scans out of range.

    A scan is out of range when its QC measures exceed the bundle's limits or when its input looked noisy to a
    bundle trained on noise-free inputs (the sidecar's ``input_noise.warning``); ``input_noise`` is the estimate
    (fraction of the input's robust maximum).
    """
    out_dir = Path(args.output_dir).expanduser()
    rows = []
    for scan, output in _manifest_outputs(args, suffix):
        sidecar = read_sidecar(output) or {}
        record, noise = sidecar.get("qc"), sidecar.get("input_noise") or {}
        if record:
            flags = [*(record.get("flags") or []), *([noise["warning"]] if noise.get("warning") else [])]
            rows.append(
                {
                    "scan_id": scan,
                    "data_consistency": record.get("data_consistency"),
                    "uncertainty_relative": record.get("uncertainty_relative"),
                    "input_noise": noise.get("estimate"),
                    "in_range": not flags,
                    "flags": flags,
                }
            )
    if not rows:
        return
    report = pd.DataFrame(rows, columns=list(QC_COLUMNS))
    report["flags"] = report["flags"].map(lambda flags: "; ".join(flags or []))
    atomic_write_text(out_dir / "qc_report.csv", report.to_csv(index=False))
    flagged = report[~report["in_range"].astype(bool)]
    print(f"QC: {len(report) - len(flagged)} of {len(report)} outputs in range; table in {out_dir / 'qc_report.csv'}")
    for _, row in flagged.iterrows():
        print(f"QC out of range: {row['scan_id']}: {row['flags']}")


def _report_tissue_volumes(args: argparse.Namespace, suffix: str) -> int:
    """Print the tissue-volume check of a single output, or collect a manifest's into ``tissue_volumes.csv``."""
    if args.manifest is None:
        record = read_json(tissue_check_path(args.output))
        volumes = ", ".join(
            f"{t.upper()} {record[f'{t}_ml']:.1f} ml ({record[f'{t}_difference_pct']:+.2f} %)" for t in TISSUES
        )
        print(f"tissue volumes vs cubic B-spline: {volumes}; " + ("; ".join(record["flags"]) or "no flag"))
        return 0
    out_dir = Path(args.output_dir).expanduser()
    rows = []
    for scan, output in _manifest_outputs(args, suffix):
        path = tissue_check_path(output)
        if path.is_file():
            record = read_json(path)
            rows.append({"scan_id": scan, **record, "flags": "; ".join(record["flags"])})
    if not rows:
        return 0
    report = pd.DataFrame(rows).drop(columns=["segmenter", "mask"])
    atomic_write_text(out_dir / "tissue_volumes.csv", report.to_csv(index=False))
    flagged = report[report["flags"] != ""]
    print(
        f"tissue volumes: {len(report) - len(flagged)} of {len(report)} outputs within ±{VOLUME_TOLERANCE_PCT:g} % "
        f"of cubic for GM and WM; table in {out_dir / 'tissue_volumes.csv'}"
    )
    for _, row in flagged.iterrows():
        print(f"tissue volumes: {row['scan_id']}: {row['flags']}")
    return 0


def run(args: argparse.Namespace) -> int:
    qc = args.qc if args.qc is not None else args.manifest is not None
    overrides = _acquisition_overrides(args)
    try:
        method = load_adaptable_method(
            args.method, device=args.device, precision=args.precision, bundles_dir=args.bundle_dir
        )
        if args.adapt or isinstance(method, AdaptedSR):  # --adapt, or a method named <bundle>+adapt
            budget = AdaptationBudget(max_steps=args.adapt_steps, max_seconds=args.adapt_seconds)
            bundle_method = method.method if isinstance(method, AdaptedSR) else method
            method = AdaptedSR(bundle_method, budget, acquisition_overrides=overrides)
            if not isinstance(bundle_method, ThroughPlaneSR):
                print(
                    f"mrisr: note: {bundle_method.name} adapts on pairs one scale coarser than its task; this can "
                    "lower its accuracy (pipeline.training.adaptation): compare with the unadapted output",
                    file=sys.stderr,
                )
    except Exception as err:  # bundle configs fail with any error type; each becomes one line
        return fail(error_message(err))

    job = InferJob(
        method,
        zoom=args.zoom,
        target_spacing=args.target_spacing,
        qc=qc,
        acquisition_overrides=overrides,
        downstream=args.downstream,
        tissue_contrast=args.tissue_contrast,
    )
    suffix = f"sr-{method.name}"
    status = run_single_or_cohort(
        args,
        lambda source, output, _row: job(source, output),
        suffix=suffix,
        description=f"infer ({method.name})",
        is_complete=None if args.overwrite else job.is_complete,
    )
    if args.downstream == "tissue" and args.shard is None:
        status = max(status, _report_tissue_volumes(args, suffix))
    wants_report = qc and getattr(method, "network", None) is not None  # baselines get no trust check
    if wants_report and args.manifest is not None and args.output_dir is not None and args.shard is None:
        try:
            write_qc_report(args, suffix)
        except (OSError, ValueError) as err:
            if status == 0:  # otherwise the run has already reported why the manifest failed
                return fail(f"{args.output_dir}: the QC report failed: {error_message(err)}")
    return status
