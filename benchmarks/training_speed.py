"""Training speed of every bundle's CPU recipe: today's settings against the fast settings, in one run.

For each bundle with ``configs/train_cpu.json``, its trainer (``train.json``'s layers + ``train_cpu.json``,
no handlers) runs ``--iterations`` iterations after ``--warmup`` ones, twice from the same seed:

- today: the settings before the fast path: ``SimpleInferer`` (channels-first, float32), a plain
  ``monai.data.DataLoader``, PyTorch's default threads and allocator (in a fresh Python process:
  the fast settings change threads and allocator process-wide);
- fast: the bundle as shipped: :class:`pipeline.training.FastTrainingInferer` (channels-last,
  ``precision`` auto: bf16 autocast where timed faster on this CPU), MONAI's ``ThreadDataLoader``
  (patches drawn in a background thread), threads = cores, allocator keeping freed memory.

Printed per bundle: iterations per second of each, their ratio, the precision chosen, and the mean
training loss of each run (same seed, same patches: equal losses up to rounding show the fast
settings train the same network). mDCSRN-GAN runs without its critic warm-up, so the timed iterations
mix critic and generator steps at the recipe's ratio; its fast path applies to the generator only (the
critic and its gradient penalty stay float32).

Data: ``--manifest`` (default ``data_manifests/malf_dev.csv``, whose scans live in ``../shared/data``);
when its files are missing, a two-scan cohort made from the MNI152 template (``nilearn``).

Usage: python benchmarks/training_speed.py [--bundles mdcsrn mrln msrn_tv] [--iterations 10]
           [--precision fp32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.utils import set_determinism

from pipeline.acceleration import available_cpu_cores
from pipeline.demo import fetch_mni152
from pipeline.inference.methods import BUNDLES_DIR
from pipeline.manifests import read_manifest, row_path
from pipeline.training.config_layers import config_layers


def cohort_manifest(manifest: Path, cache: Path) -> Path:
    """``manifest`` if its files exist, else a two-scan MNI152 cohort written under ``cache``."""
    try:
        table = read_manifest(manifest, split="train", require=("hr", "mask"))
        if all(Path(row_path(row, "hr")).is_file() for _, row in table.iterrows()):
            return manifest
    except (OSError, ValueError):
        pass
    t1_path, mask_path = fetch_mni152(cache)
    rows = []
    for flip in (False, True):
        name = f"mni152{'_flipped' if flip else ''}"
        for key, source in (("hr", t1_path), ("mask", mask_path)):
            path = cache / f"{name}_{key}.nii.gz"
            if not path.exists():
                image = nib.load(str(source))
                data = np.asarray(image.dataobj)
                nib.save(nib.Nifti1Image(data[::-1] if flip else data, image.affine), str(path))
        rows += [
            {"subject_id": name, "split": split, "hr": f"{name}_hr.nii.gz", "mask": f"{name}_mask.nii.gz"}
            for split in ("train",)
        ]
    out = cache / "mni152_training_manifest.csv"
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


def build_trainer(name: str, manifest: Path, iterations: int, fast: bool, max_scans: int, precision: str | None = None):
    parser = ConfigParser()
    root = BUNDLES_DIR / name
    parser.read_config([str(f) for f in config_layers(root, ["train.json", "train_cpu.json"])])
    parser["bundle_root"] = str(root)
    parser["dataset_manifest"] = str(manifest)
    parser["train#dataset#max_scans"] = max_scans
    parser["train#handlers"] = []
    parser["train#trainer#max_epochs"] = 1
    parser["train#trainer#epoch_length"] = iterations
    if "critic_warmup_iterations" in parser["train#trainer"]:
        parser["train#trainer#critic_warmup_iterations"] = 0  # time the GAN's generator steps too, at its ratio
    if fast and precision is not None:
        parser["precision"] = precision
    if not fast:
        parser["train#inferer"] = {"_target_": "SimpleInferer"}
        parser["train#dataloader#_target_"] = "monai.data.DataLoader"
    return parser.get_parsed_content("train#trainer")


def run_trainer(name: str, manifest: Path, args: argparse.Namespace, fast: bool) -> dict:
    set_determinism(seed=0)
    warm = build_trainer(name, manifest, args.warmup, fast, args.max_scans, args.precision)
    warm.run()  # oneDNN primitive creation, precision choice, caches
    set_determinism(seed=0)
    trainer = build_trainer(name, manifest, args.iterations, fast, args.max_scans, args.precision)
    losses: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    inferer = getattr(trainer, "inferer", None)
    return {
        "its_per_s": args.iterations / seconds,
        "mean_loss": float(np.nanmean(losses)),  # GAN: NaN on critic-only iterations
        "precision": getattr(inferer, "precision", None) or "fp32",
    }


def today_in_fresh_process(name: str, manifest: Path, args: argparse.Namespace) -> dict:
    """:func:`run_trainer` with today's settings for ``name`` in a new interpreter."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "today.json"
        command = [sys.executable, __file__, "--today-worker", name, str(output), "--manifest", str(manifest)]
        command += ["--iterations", str(args.iterations), "--warmup", str(args.warmup)]
        command += ["--max-scans", str(args.max_scans)]
        subprocess.run(command, check=True)
        return json.loads(output.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bundles", nargs="+", default=None, help="bundle names (default: every one with train_cpu.json)"
    )
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-scans", type=int, default=3, help="training scans cached (fewer: quicker start)")
    parser.add_argument("--manifest", type=Path, default=Path("data_manifests/malf_dev.csv"))
    parser.add_argument("--cache", type=Path, default=Path("benchmark_data"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="fast run's precision (default: the bundle's)",
    )
    parser.add_argument("--today-worker", nargs=2, metavar=("BUNDLE", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.today_worker:
        name, output = args.today_worker
        Path(output).write_text(json.dumps(run_trainer(name, args.manifest, args, fast=False)))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    manifest = cohort_manifest(args.manifest, args.cache)
    names = args.bundles or sorted(p.parent.parent.name for p in BUNDLES_DIR.glob("*/configs/train_cpu.json"))
    print(f"CPU: {available_cpu_cores()} cores; torch {torch.__version__}; data: {manifest}", flush=True)
    rows = []
    for name in names:
        today = today_in_fresh_process(name, manifest, args)
        fast = run_trainer(name, manifest, args, fast=True)
        row = {"bundle": name, "today": today, "fast": fast, "ratio": fast["its_per_s"] / today["its_per_s"]}
        rows.append(row)
        print(
            f"{name:11s} today {today['its_per_s']:.3f} it/s | "
            f"fast {fast['its_per_s']:.3f} it/s ({fast['precision']}) | "
            f"x{row['ratio']:.2f} | mean loss {today['mean_loss']:.5f} vs {fast['mean_loss']:.5f}",
            flush=True,
        )
    print("\n| bundle | today (it/s) | fast (it/s) | precision | speed-up | mean loss today / fast |")
    print("|---|---:|---:|---|---:|---|")
    for r in rows:
        print(
            f"| {r['bundle']} | {r['today']['its_per_s']:.3f} | "
            f"{r['fast']['its_per_s']:.3f} | {r['fast']['precision']} | "
            f"{r['ratio']:.2f}x | {r['today']['mean_loss']:.5f} / {r['fast']['mean_loss']:.5f} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
