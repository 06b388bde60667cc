# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr report <tool>``: the research tools that turn evaluation and training runs into tables, figures and metadata.

One subcommand per tool, each a thin layer over a library function: ``results-table``
(:mod:`pipeline.evaluation.results_table`), ``bundle-scores`` (:mod:`pipeline.evaluation.bundle_scores`),
``qc-limits`` (:mod:`pipeline.qc.limits`), ``complexity`` (:mod:`pipeline.networks.complexity`), ``curves``
(:mod:`pipeline.analysis.curves`), ``gan-selection`` (:mod:`pipeline.analysis.gan_selection`) and
``critic-separation`` (:mod:`pipeline.analysis.critic_separation`). A library is imported only when its tool
runs, so ``mrisr --help`` stays fast. A tool that fails on its inputs ends in one line and exit code 1.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from pipeline.cli.common import fail
from pipeline.io import error_message

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="research tools: results tables, bundle scores and QC limits, network complexity, training curves, "
        "GAN model selection",
        description="Tools that make the tables, figures and bundle metadata of the docs from 'mrisr evaluate' "
        "output folders and training runs. 'mrisr report TOOL --help' describes each.",
    )
    tools = parser.add_subparsers(dest="tool", required=True, metavar="TOOL")
    for add_tool in (
        _add_results_table,
        _add_bundle_scores,
        _add_qc_limits,
        _add_complexity,
        _add_curves,
        _add_gan_selection,
        _add_critic_separation,
    ):
        add_tool(tools)


def _command(tool: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], int]:
    """``tool`` as a command: exit code 0 when it returns, 1 with one line on stderr when its inputs are bad."""

    def run(args: argparse.Namespace) -> int:
        try:
            tool(args)
        except (OSError, ValueError) as err:
            return fail(error_message(err))
        return 0

    return run


def _protocol_folder(text: str) -> tuple[str, str]:
    """``PROTOCOL=DIR`` as ``(protocol, folder)``; anything else is a usage error."""
    protocol, equals, folder = text.partition("=")
    if not (equals and protocol and folder):
        raise argparse.ArgumentTypeError(f"{text!r} is not PROTOCOL=DIR")
    return protocol, folder


def _add_results_table(tools: argparse._SubParsersAction) -> None:
    parser = tools.add_parser(
        "results-table",
        help="method x protocol markdown table from 'mrisr evaluate' folders",
        description="Prints a markdown table, one row per method and one column per protocol, from the summary.csv "
        "of each 'mrisr evaluate' output folder. Each cell is 'PSNR ± sd (gain vs cubic of the same run)' in dB. A "
        "protocol may be given several folders (networks scored in separate runs on the same scans): a method's "
        "first occurrence is kept.",
    )
    parser.add_argument(
        "summaries", nargs="+", type=_protocol_folder, metavar="PROTOCOL=DIR", help="a protocol and its output folder"
    )
    parser.set_defaults(func=_command(_results_table))


def _results_table(args: argparse.Namespace) -> None:
    from pipeline.evaluation.results_table import results_table

    print(results_table(args.summaries))


def _add_bundle_scores(tools: argparse._SubParsersAction) -> None:
    parser = tools.add_parser(
        "bundle-scores",
        help="write a bundle's eval_metrics from an 'mrisr evaluate' folder",
        description="Replaces eval_metrics in BUNDLE/configs/metadata.json with the method's means over the scans "
        "of RESULTS/per_scan_metrics.csv (PSNR, SSIM, sharpness, paired PSNR gain over cubic B-spline of the same "
        "run, scans above cubic) and prints them.",
    )
    parser.add_argument("bundle", help="bundle folder, e.g. bundles/srcnn")
    parser.add_argument("results", help="output folder of mrisr evaluate holding per_scan_metrics.csv")
    parser.add_argument("--method", help="method name in that folder (default: the bundle's name)")
    parser.add_argument("--split", default="test", help="manifest split the folder was evaluated on (default test)")
    parser.set_defaults(func=_command(_bundle_scores))


def _bundle_scores(args: argparse.Namespace) -> None:
    from pipeline.evaluation.bundle_scores import write_bundle_scores

    print(json.dumps(write_bundle_scores(args.bundle, args.results, args.method, args.split), indent=1))


def _add_qc_limits(tools: argparse._SubParsersAction) -> None:
    parser = tools.add_parser(
        "qc-limits",
        help="set a bundle's QC flagging limits from a validation run",
        description="Writes qc_limits into BUNDLE/configs/metadata.json: FACTOR x the largest data_consistency and "
        "uncertainty_relative of the bundle's outputs in an 'mrisr evaluate --qc' run on the val split, with that "
        "source recorded beside them, and prints them.",
    )
    parser.add_argument("bundle", help="the bundle folder")
    parser.add_argument("results", help="an mrisr evaluate --qc output folder (val split)")
    parser.add_argument("--factor", type=float, default=1.5, help="limit / largest value seen (default 1.5)")
    parser.set_defaults(func=_command(_qc_limits))


def _qc_limits(args: argparse.Namespace) -> None:
    from pipeline.qc.limits import write_qc_limits

    print(json.dumps(write_qc_limits(args.bundle, args.results, args.factor), indent=2))


def _add_complexity(tools: argparse._SubParsersAction) -> None:
    parser = tools.add_parser(
        "complexity",
        help="parameters and MACs per output voxel of every network",
        description="Prints the markdown table of pipeline/networks/README.md: parameter counts and "
        "multiply-accumulates per output voxel of every network at its default configuration.",
    )
    parser.set_defaults(func=_command(_complexity))


def _complexity(args: argparse.Namespace) -> None:
    from pipeline.networks.complexity import complexity_table

    print(complexity_table())


def _add_curves(tools: argparse._SubParsersAction) -> None:
    parser = tools.add_parser(
        "curves",
        help="plot training logs: validation PSNR gain and training loss against iterations",
        description="Writes a PNG of the validation PSNR gain over the baseline and the training loss against "
        "iterations from metrics logs (logs/metrics.csv of a training run). Several logs (the stages of one "
        "training) are joined in order, the iterations of each continuing the last.",
    )
    parser.add_argument("logs", nargs="+", help="metrics CSV(s) of MetricsCSVLogger, in training order")
    parser.add_argument("-o", "--output", required=True, help="PNG to write")
    parser.add_argument("--title", default="", help="figure title")
    parser.add_argument(
        "--start-iteration", type=int, default=0, help="iterations behind the weights the first log started from"
    )
    parser.set_defaults(func=_command(_curves))


def _curves(args: argparse.Namespace) -> None:
    from pipeline.analysis.curves import join_logs, plot_training_curves

    print(plot_training_curves(join_logs(args.logs, args.start_iteration), args.output, args.title))


def _add_gan_selection(tools: argparse._SubParsersAction) -> None:
    parser = tools.add_parser(
        "gan-selection",
        help="choose a GAN's generator on the validation log",
        description="Among the generators saved at each validation (models/validated/generator_epoch=N.pt), "
        "chooses the one with the best val_psnr among those whose val_sharpness (relative to HR) reaches "
        "--min-sharpness in logs/metrics.csv, and copies it to models/model.pt (atomically).",
    )
    parser.add_argument("bundle_root", type=Path, help="training run or bundle folder with logs/ and models/validated/")
    parser.add_argument("--min-sharpness", type=float, default=0.99, help="least val sharpness / HR (default 0.99)")
    parser.add_argument("--dry-run", action="store_true", help="report the choice, write nothing")
    parser.set_defaults(func=_command(_gan_selection))


def _gan_selection(args: argparse.Namespace) -> None:
    from pipeline.analysis.gan_selection import select_generator, write_selected_generator

    selected = select_generator(args.bundle_root, args.min_sharpness)
    print(
        f"epoch {selected['epoch']} (iteration {int(selected['iteration'])}): val_psnr {selected['val_psnr']:.3f} dB, "
        f"gain {selected['psnr_gain']:+.3f} dB, val_sharpness {selected['val_sharpness']:.4f} <- {selected['path']}"
    )
    if not args.dry_run:
        print(f"wrote {write_selected_generator(args.bundle_root, selected)}")


def _add_critic_separation(tools: argparse._SubParsersAction) -> None:
    parser = tools.add_parser(
        "critic-separation",
        help="does a WGAN critic tell HR from the generator's output yet?",
        description="Prints, for a GAN training checkpoint, the critic's score gap D(hr) - D(G(lr)) on random "
        "patch pairs of one manifest split (mean ± sd, fraction of patches with a positive gap) and the sd of "
        "D(hr) over patches (how much the critic's score follows patch content).",
    )
    parser.add_argument("bundle_root", type=Path, help="the GAN bundle or training run folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: <bundle_root>/models/checkpoint.pt")
    parser.add_argument(
        "--config", nargs="+", default=["train.json", "train_cpu.json"], help="files in configs/, in order"
    )
    parser.add_argument("--split", default="val", help="manifest split the patches are drawn from (default val)")
    parser.add_argument("--passes", type=int, default=4, help="passes over the split's scans (default 4)")
    parser.set_defaults(func=_command(_critic_separation))


def _critic_separation(args: argparse.Namespace) -> None:
    from pipeline.analysis.critic_separation import critic_separation

    result = critic_separation(args.bundle_root, args.checkpoint, tuple(args.config), args.split, args.passes)
    print(
        f"iteration {result['iteration']}: D(hr) - D(G(lr)) = {result['gap_mean']:+.4f} ± {result['gap_sd']:.4f} "
        f"(positive on {result['positive']:.0%} of {result['patches']} {args.split} patches); "
        f"sd of D(hr) over patches {result['hr_score_sd']:.3f}"
    )
