"""Multi-process training with torchrun on 2 CPU ranks (gloo): same weights, same result, rank 0 writes.

The cohort is chosen so that batches are deterministic: every slice of a scan is the same 2D image
and the training patch is the whole slice, so the random patch sampler always yields the same pair.
With ``shuffle`` off, the DistributedSampler gives rank 0 scans 0, 2 and rank 1 scans 1, 3; at batch
size 1 per rank the global batches are {0, 1} then {2, 3}, exactly those of one process at batch
size 2. DistributedDataParallel averages the two ranks' gradients, which is the gradient of the
batch-mean loss, so the weights after training must match the single process's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.training import is_secondary_rank
from tests.conftest import blob_volume
from tests.utils import write_manifest
from pipeline.training.config_layers import TRAIN_BASE
from tests.training.test_bundles import copy_configs, train_config, workflow

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "srcnn"
SLICE = (24, 28)

pytestmark = pytest.mark.slow


def slice_stack_manifest(folder: Path, slices: int = 4) -> Path:
    """4 train and 2 val scans, each one 2D image repeated over ``slices`` slices (axis 2), all-ones masks."""
    folder.mkdir(parents=True)
    rows = []
    for i, split in enumerate(["train"] * 4 + ["val"] * 2):
        image = blob_volume((*SLICE, 1), seed=10 + i)
        volume = np.repeat(image, slices, axis=2)
        mask = np.ones(volume.shape, np.uint8)
        rows.append(
            {
                "subject_id": f"sub{i}",
                "split": split,
                "hr": (f"hr{i}.nii.gz", volume),
                "mask": (f"mask{i}.nii.gz", mask),
            }
        )
    return write_manifest(folder / "manifest.csv", rows)


def overrides(manifest: Path, batch_size: int) -> dict:
    return {
        "dataset_manifest": str(manifest),
        "precision": "fp32",
        "train#dataset#patch_size": list(SLICE),
        "train#dataset#num_samples": 1,
        "train#dataloader#batch_size": batch_size,
        "train#dataloader#shuffle": False,
        "train#trainer#max_epochs": 2,
        "train#trainer#epoch_length": 2,
    }


OUTPUT_ONLY = {"TensorBoardStatsHandler", "StatsHandler", "ignite.handlers.ProgressBar", "CheckpointSaver"}


@pytest.mark.parametrize("config", sorted(BUNDLE.parent.glob("*/configs/train.json")), ids=lambda p: p.parts[-3])
def test_output_only_handlers_are_built_on_rank_zero_only(config: Path):
    """Handlers flagged by type, not a list slice; every other handler runs on every rank."""
    train = train_config(config.parts[-3]).get()
    assert train["not_rank_zero"] == "$pipeline.training.is_secondary_rank()"
    for handler in train["train"]["handlers"] + train["validate"]["handlers"]:
        if isinstance(handler, dict):
            assert (handler.get("_disabled_") == "@not_rank_zero") == (handler["_target_"] in OUTPUT_ONLY), handler
    multi = json.loads((config.parent / "multi_gpu_train.json").read_text())
    assert not [key for key in multi if key.endswith("_handlers")]
    assert not is_secondary_rank()  # outside a process group


def run_torchrun(bundle: Path, root: Path, overrides: dict, extra: dict | None = None) -> None:
    """``torchrun --standalone --nproc_per_node=2 -m monai.bundle run`` of ``bundle``'s train.json +
    multi_gpu_train.json under ``root``; each rank writes under ``rank<r>/`` and saves its final
    weights as ``weights_rank<r>.pt``."""
    copy_configs(bundle.name, root)
    per_rank = {
        "ckpt_dir": "$@bundle_root + '/rank' + os.environ['RANK'] + '/models'",
        "log_dir": "$@bundle_root + '/rank' + os.environ['RANK'] + '/logs'",
        "finalize": [
            "$torch.save(@network.module.state_dict(), @bundle_root + '/weights_rank' + os.environ['RANK'] + '.pt')",
            "$dist.is_initialized() and dist.destroy_process_group()",
        ],
        **(extra or {}),
    }
    (root / "configs" / "test_per_rank.json").write_text(json.dumps(per_rank))
    names = ("inference.json", TRAIN_BASE, "train.json", "multi_gpu_train.json", "test_per_rank.json")
    files = [str(root / "configs" / name) for name in names]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "monai.bundle", "run", "--config_file", str(files)]
    command += ["--meta_file", str(root / "configs" / "metadata.json"), "--bundle_root", str(root)]
    for key, value in overrides.items():
        command += [f"--{key}", value if isinstance(value, str) else repr(value)]  # fire parses Python literals
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def files_written(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "configs" not in p.parts}


def test_torchrun_two_cpu_ranks_match_one_process(tmp_path: Path):
    manifest = slice_stack_manifest(tmp_path / "data")
    single_root = tmp_path / "single"
    copy_configs(BUNDLE.name, single_root)
    options = overrides(manifest, batch_size=2)
    single = workflow(single_root, ["train.json"], "train", bundle_root=str(single_root), **options)
    single.run()
    single_weights = {k: v.clone() for k, v in single.parser.get_parsed_content("network").state_dict().items()}
    single.finalize()

    ddp_root = tmp_path / "ddp"
    run_torchrun(BUNDLE, ddp_root, overrides(manifest, batch_size=1), {"train#sampler#shuffle": False})

    rank0 = torch.load(ddp_root / "weights_rank0.pt", weights_only=True)
    rank1 = torch.load(ddp_root / "weights_rank1.pt", weights_only=True)
    for name, value in rank0.items():
        torch.testing.assert_close(value, rank1[name], rtol=0, atol=0)  # DDP keeps the ranks identical
        torch.testing.assert_close(value, single_weights[name], rtol=1e-5, atol=1e-6)  # = one process, global batch

    single_log = pd.read_csv(single_root / "logs" / "metrics.csv")
    ddp_log = pd.read_csv(ddp_root / "rank0" / "logs" / "metrics.csv")
    assert list(ddp_log["iteration"]) == list(single_log["iteration"]) == [2, 4]
    np.testing.assert_allclose(ddp_log["val_psnr"], single_log["val_psnr"], atol=1e-3)  # synced over both val scans

    written = files_written(ddp_root)
    assert {"rank0/models/model.pt", "rank0/models/checkpoint.pt", "rank0/logs/metrics.csv"} <= written
    assert not [p for p in written if p.startswith("rank1/")]  # rank 1 wrote nothing


@pytest.mark.parametrize("name", ["mdcsrn", "mdcsrn_gan", "mfcn", "mrln", "msrn_tv", "rrlsrn", "rrlsrn_x4"])
def test_torchrun_every_bundle(name: str, tmp_path: Path):
    """Two iterations on 2 CPU ranks: the run ends, the ranks' parameters agree, rank 0 alone writes.

    BatchNorm running statistics are each rank's own (DDP broadcasts rank 0's at every forward, the
    last update stays local): rank 0's are the ones saved.
    """
    from tests.training.test_bundles import train_overrides

    manifest = slice_stack_manifest(tmp_path / "data", slices=8)
    root = tmp_path / "bundle"
    options = train_overrides(name, root, manifest)
    options.pop("bundle_root")
    options.update({"precision": "fp32", "train#dataset#max_scans": 2, "validate#dataset#max_scans": 2})
    run_torchrun(BUNDLE.parent / name, root, options)
    rank0 = torch.load(root / "weights_rank0.pt", weights_only=True)
    rank1 = torch.load(root / "weights_rank1.pt", weights_only=True)
    for key, value in rank0.items():
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            torch.testing.assert_close(value, rank1[key], rtol=0, atol=0)
    written = files_written(root)
    assert {"rank0/models/checkpoint.pt", "rank0/logs/metrics.csv"} <= written
    assert not [p for p in written if p.startswith("rank1/")]
