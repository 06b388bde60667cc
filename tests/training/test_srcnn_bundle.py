"""The SRCNN template bundle: train (2 iterations), resume, evaluate and infer on a tiny synthetic cohort."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_net_in_out

from pipeline.inference import load_bundle_method
from pipeline.training import bundle_workflow, load_initial_weights, train
from pipeline.training.config_layers import training_layers
from tests.conftest import blob_volume
from tests.training.test_bundles import copy_configs

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "srcnn"
CONFIGS = BUNDLE / "configs"


def train_overrides(bundle_root: Path, manifest: Path) -> dict:
    """Small patches, one epoch of two iterations, everything written under ``bundle_root``."""
    return {
        "bundle_root": str(bundle_root),
        "dataset_manifest": str(manifest),
        "train#dataset#patch_size": [8, 8],
        "train#dataset#num_samples": 2,
        "train#trainer#max_epochs": 1,
        "train#trainer#epoch_length": 2,
    }


def _layers(name: str) -> list[Path]:
    """``train.json`` stands for its three layers (inference.json, the shared base, train.json)."""
    return training_layers(BUNDLE) if name == "train.json" else [CONFIGS / name]


def workflow(config_files: list[str], **overrides) -> ConfigWorkflow:
    wf = ConfigWorkflow(
        config_file=[str(f) for name in config_files for f in _layers(name)],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        workflow_type="train",
        **overrides,
    )
    wf.initialize()
    return wf


@pytest.fixture
def trained_bundle(tmp_path: Path, synthetic_manifest: Path) -> Path:
    root = tmp_path / "bundle"
    copy_configs("srcnn", root)  # a bundle folder: configs + the weights trained below
    wf = workflow(["train.json"], **train_overrides(root, synthetic_manifest))
    wf.run()
    assert wf.trainer.state.iteration == 2
    wf.finalize()
    return root


def test_train_writes_weights_checkpoint_and_log(trained_bundle: Path):
    state = torch.load(trained_bundle / "models" / "model.pt", weights_only=True)
    assert set(state) == {f"layers.{i}.conv.{p}" for i in range(3) for p in ("weight", "bias")}
    checkpoint = torch.load(trained_bundle / "models" / "checkpoint.pt", weights_only=True)
    assert set(checkpoint) == {"network", "optimizer", "lr_scheduler", "best_model", "rng", "trainer"}
    assert checkpoint["trainer"]["iteration"] == 2
    assert checkpoint["lr_scheduler"]["last_epoch"] == 1 and checkpoint["lr_scheduler"]["milestones"] == {}
    log = pd.read_csv(trained_bundle / "logs" / "metrics.csv")
    assert list(log["epoch"]) == [1]
    assert log["learning_rate"][0] == pytest.approx(1e-4)  # the paper's fixed rate
    assert {"train_loss", "val_psnr", "cubic_psnr", "psnr_gain"} <= set(log.columns)
    assert log["psnr_gain"][0] == pytest.approx(log["val_psnr"][0] - log["cubic_psnr"][0])


def test_resume_continues_iteration_count(trained_bundle: Path, synthetic_manifest: Path):
    overrides = train_overrides(trained_bundle, synthetic_manifest)
    overrides.update({"train#trainer#max_epochs": 2, "resume": True})
    wf = workflow(["train.json"], **overrides)
    wf.run()
    assert wf.trainer.state.epoch == 2 and wf.trainer.state.iteration == 4
    wf.finalize()
    assert list(pd.read_csv(trained_bundle / "logs" / "metrics.csv")["iteration"]) == [2, 4]
    assert torch.load(trained_bundle / "models" / "checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 4


def test_resume_without_checkpoint_fails(tmp_path: Path, synthetic_manifest: Path):
    overrides = train_overrides(tmp_path / "fresh", synthetic_manifest)
    wf = workflow(["train.json"], **overrides, resume=True)
    with pytest.raises(RuntimeError):  # the FileNotFoundError, wrapped by the config parser
        wf.run()


def test_evaluate(trained_bundle: Path, synthetic_manifest: Path):
    configs = ["train.json", "evaluate.json"]
    wf = workflow(configs, bundle_root=str(trained_bundle), dataset_manifest=str(synthetic_manifest))
    wf.run()
    metrics = wf.evaluator.state.metrics
    assert set(metrics) == {"val_psnr", "cubic_psnr", "psnr_gain"}
    per_scan = pd.read_csv(trained_bundle / "eval" / "val_psnr_raw.csv")
    assert list(per_scan["filename"]) == ["sub4"]  # the test split: reported numbers only


def test_inference(trained_bundle: Path, tmp_path: Path):
    lr = tmp_path / "lr.nii.gz"
    affine = np.diag([2.0, 2.0, 1.5, 1.0])
    nib.save(nib.Nifti1Image(blob_volume((12, 14, 6)), affine), str(lr))
    out = tmp_path / "sr.nii.gz"
    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "inference.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        workflow_type=None,
        bundle_root=str(trained_bundle),
        input_image=str(lr),
        output_image=str(out),
    )
    wf.initialize()
    wf.run()
    sr = nib.load(str(out))
    assert sr.shape == (24, 28, 6)
    np.testing.assert_allclose(np.diag(sr.affine)[:3], [1.0, 1.0, 1.5])
    method = load_bundle_method(complete_bundle(trained_bundle), device="cpu")
    version = json.loads((CONFIGS / "metadata.json").read_text())["version"]
    assert method.name == "srcnn" and method.bundle_info["version"] == version


def complete_bundle(trained_bundle: Path) -> Path:
    """The trained weights with this repository's configs: a complete bundle folder."""
    root = trained_bundle.parent / "complete"
    (root / "models").mkdir(parents=True)
    (root / "configs").symlink_to(CONFIGS)
    (root / "models" / "model.pt").write_bytes((trained_bundle / "models" / "model.pt").read_bytes())
    return root


def test_train_entry_point(tmp_path: Path, synthetic_manifest: Path):
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "configs").symlink_to(CONFIGS)
    overrides = train_overrides(root, synthetic_manifest)
    overrides.pop("bundle_root")
    wf = train(root, **overrides)
    assert wf.trainer.state.iteration == 2 and (root / "models" / "model.pt").is_file()
    with pytest.raises(FileNotFoundError):
        bundle_workflow(root, ["no_such.json"])


def test_time_budget_stops_at_an_epoch_end_and_resume_finishes(tmp_path: Path, synthetic_manifest: Path):
    root = tmp_path / "bundle"
    overrides = train_overrides(root, synthetic_manifest)
    overrides.update({"train#trainer#max_epochs": 3, "max_minutes": 1e-6})
    wf = workflow(["train.json"], **overrides)
    wf.run()
    assert wf.trainer.state.epoch == 1  # stopped after the first epoch, its checkpoint written
    assert torch.load(root / "models" / "checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 2
    overrides.update({"max_minutes": None, "resume": True})
    resumed = workflow(["train.json"], **overrides)
    resumed.run()
    assert resumed.trainer.state.epoch == 3 and resumed.trainer.state.iteration == 6
    assert list(pd.read_csv(root / "logs" / "metrics.csv")["epoch"]) == [1, 2, 3]


def test_initial_weights_are_loaded_after_the_config_builds_the_network(
    trained_bundle: Path, tmp_path: Path, synthetic_manifest: Path
):
    weights = trained_bundle / "models" / "model.pt"
    wf = workflow(["train.json"], **train_overrides(tmp_path / "continued", synthetic_manifest))
    load_initial_weights(wf, weights)
    expected = torch.load(weights, weights_only=True)
    for name, value in wf.parser.get_parsed_content("network").state_dict().items():
        torch.testing.assert_close(value, expected[name])
    (tmp_path / "bad.pt").write_text("not weights")
    with pytest.raises(ValueError, match="bad.pt"):
        load_initial_weights(wf, tmp_path / "bad.pt")
    torch.save({"other": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_initial_weights(wf, tmp_path / "other.pt")


def test_network_matches_metadata():
    meta, config = str(CONFIGS / "metadata.json"), str(CONFIGS / "inference.json")
    verify_net_in_out(net_id="network_def", meta_file=meta, config_file=config, any=16)

