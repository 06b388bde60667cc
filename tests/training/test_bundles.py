"""The paper bundles (mfcn, mrln, msrn_tv, mdcsrn, mdcsrn_gan, rrlsrn, rrlsrn_x4, thick_slice): train, evaluate,
infer, export on tiny data.

Each bundle's own ``train.json`` runs through ``ConfigWorkflow`` for two iterations on tiny patches of the
synthetic cohort (``tests/training/conftest.py``) into a temporary copy of the bundle; ``evaluate.json`` scores
those weights, ``inference.json`` super-resolves a tiny NIfTI with them and ``ckpt_export`` scripts the
network. The networks keep the papers' widths and depths: only the inputs are small.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_net_in_out

import pipeline.inference.bundle_dirs as bundle_dirs
from pipeline.analysis.critic_separation import critic_separation
from pipeline.protocols import get_protocol
from pipeline.training.config_layers import TRAIN_BASE, train_base_file, training_layers
from pipeline.transforms.grid import zoomed_affine
from tests.conftest import blob_volume

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"

# per bundle: training patch on the network input grid, and the LR test volume's shape and voxel size
CASES = {
    "mfcn": {"patch": [8, 8], "lr_shape": (8, 10, 3), "lr_spacing": (2.0, 2.0, 1.5)},
    "mrln": {"patch": [4, 4], "lr_shape": (8, 10, 3), "lr_spacing": (2.0, 2.0, 1.5)},
    "msrn_tv": {"patch": [8, 8], "lr_shape": (8, 10, 3), "lr_spacing": (2.0, 2.0, 1.5)},
    "mdcsrn": {"patch": [8, 8, 8], "lr_shape": (6, 5, 4), "lr_spacing": (1.0, 2.0, 2.0)},
    "mdcsrn_gan": {"patch": [8, 8, 8], "lr_shape": (6, 5, 4), "lr_spacing": (1.0, 2.0, 2.0)},
    "rrlsrn": {"patch": [4, 4], "lr_shape": (8, 10, 3), "lr_spacing": (2.0, 2.0, 1.5)},
    "rrlsrn_x4": {"patch": [4, 4], "lr_shape": (6, 5, 3), "lr_spacing": (4.0, 4.0, 1.5)},
    "thick_slice": {"patch": [8, 8], "lr_shape": (8, 10, 3), "lr_spacing": (1.0, 1.0, 4.0)},
}
BUNDLES = sorted(CASES)


def configs(name: str) -> Path:
    return BUNDLES_DIR / name / "configs"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def train_config(name: str) -> ConfigParser:
    """A bundle's training config as MONAI reads it: inference.json, the shared base, the bundle's train.json."""
    parser = ConfigParser()
    parser.read_config([str(f) for f in training_layers(BUNDLES_DIR / name)])
    return parser


def copy_configs(name: str, root: Path) -> None:
    """A bundle's configs under ``root/configs``, with the shared training base, as in a run folder."""
    shutil.copytree(configs(name), root / "configs")
    shutil.copyfile(train_base_file(BUNDLES_DIR / name), root / "configs" / TRAIN_BASE)


def workflow(root: Path, config_files: list[str], workflow_type: str | None, **overrides) -> ConfigWorkflow:
    layers = ["inference.json", TRAIN_BASE, "train.json"]
    files = [f for name in config_files for f in (layers if name == "train.json" else [name])]
    wf = ConfigWorkflow(
        config_file=[str(root / "configs" / f) for f in files],
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=workflow_type,
        **overrides,
    )
    wf.initialize()
    return wf


def train_overrides(name: str, root: Path, manifest: Path) -> dict:
    """Two iterations of two tiny patches from one scan, validation on one scan, all written under ``root``."""
    overrides = {
        "bundle_root": str(root),
        "dataset_manifest": str(manifest),
        "train#dataset#patch_size": CASES[name]["patch"],
        "train#dataset#num_samples": 2,
        "train#dataset#max_scans": 1,
        "train#dataloader#batch_size": 1,
        "train#trainer#max_epochs": 1,
        "train#trainer#epoch_length": 2,
        "validate#dataset#max_scans": 1,
    }
    if name == "mdcsrn_gan":
        generator = train_config(name).get_parsed_content("network_def")
        init = root.parent / "mdcsrn_init.pt"
        torch.save(generator.state_dict(), init)
        overrides.update(
            {
                "generator_init": str(init),
                "train#trainer#critic_warmup_iterations": 1,
                "train#trainer#critic_steps": 1,
            }
        )
    if name == "thick_slice":  # the synthetic scans have 12 slices: keep 8-voxel patches inside the thick axis
        overrides.update({"train#dataset#thickness_mm": [2.0, 3.0], "train#dataset#gap_mm": [0.0, 0.0]})
    if name == "rrlsrn_x4":
        x2 = train_config("rrlsrn").get_parsed_content("network_def")
        init = root.parent / "rrlsrn_x2_init.pt"
        torch.save(x2.state_dict(), init)
        overrides["x2_init"] = str(init)
    return overrides


def expected_checkpoint_keys(name: str) -> set[str]:
    keys = {"network", "optimizer", "best_model", "rng", "trainer"}
    if train_config(name)["lr_scheduler"] is not None:
        keys.add("lr_scheduler")
    if name == "mdcsrn_gan":
        keys |= {"critic", "critic_optimizer"}
    return keys


def write_lr_volume(name: str, path: Path) -> np.ndarray:
    case = CASES[name]
    affine = np.diag([*case["lr_spacing"], 1.0])
    affine[:3, 3] = [-10.0, 4.0, 2.0]
    nib.save(nib.Nifti1Image(blob_volume(case["lr_shape"]), affine), str(path))
    return affine


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_train_evaluate_infer_export(name: str, tmp_path: Path, synthetic_manifest: Path):
    root = tmp_path / "bundle"
    copy_configs(name, root)
    meta = read_json(root / "configs" / "metadata.json")
    train_cfg = train_config(name).get()
    spatial_dims = train_cfg["spatial_dims"]

    # train: two iterations, one validation
    wf = workflow(root, ["train.json"], "train", **train_overrides(name, root, synthetic_manifest))
    wf.run()
    trainer = wf.trainer
    assert trainer.state.iteration == 2
    if name == "mdcsrn_gan":
        assert trainer.state.output["generator_updated"]  # warm-up 1, 1 critic step per G step
        assert (root / "models" / "best_val_psnr.pt").is_file()
        assert (root / "models" / "validated" / "generator_epoch=1.pt").is_file()  # for gan_selection
    wf.finalize()
    if name == "mdcsrn_gan":
        overrides = {k: v for k, v in train_overrides(name, root, synthetic_manifest).items() if k != "bundle_root"}
        separation = critic_separation(root, config_files=("train.json",), passes=2, overrides=overrides)
        assert separation["iteration"] == 2 and separation["patches"] == 4  # 1 val scan x 2 patches x 2 passes
        assert math.isfinite(separation["gap_mean"]) and 0 <= separation["positive"] <= 1
    network = ConfigParser(train_cfg).get_parsed_content("network_def")
    network.load_state_dict(torch.load(root / "models" / "model.pt", weights_only=True))
    checkpoint = torch.load(root / "models" / "checkpoint.pt", weights_only=True)
    assert set(checkpoint) == expected_checkpoint_keys(name)
    assert checkpoint["trainer"]["iteration"] == 2
    log = pd.read_csv(root / "logs" / "metrics.csv")
    assert list(log["epoch"]) == [1]
    assert {"train_loss", "learning_rate", "val_psnr", "cubic_psnr", "psnr_gain"} <= set(log.columns)
    assert np.isfinite(log["val_psnr"][0]) and np.isfinite(log["train_loss"][0])
    if name == "mdcsrn_gan":
        assert 0 < log["val_sharpness"][0] < 2
    if "lr_scheduler" in checkpoint:
        assert checkpoint["lr_scheduler"]["last_epoch"] == 1  # stepped once, after the epoch was logged
        assert log["learning_rate"][0] == train_cfg["optimizer"]["lr"]

    # evaluation of models/model.pt on the test split, per-scan CSVs in eval/
    overrides = {"bundle_root": str(root), "dataset_manifest": str(synthetic_manifest), "validate#dataset#max_scans": 1}
    wf = workflow(root, ["train.json", "evaluate.json"], "train", **overrides)
    wf.run()
    expected_metrics = {"val_psnr", "cubic_psnr", "psnr_gain"} | ({"val_sharpness"} if name == "mdcsrn_gan" else set())
    assert set(wf.evaluator.state.metrics) == expected_metrics
    assert list(pd.read_csv(root / "eval" / "val_psnr_raw.csv")["filename"]) == ["sub4"]

    # inference on a tiny LR volume with the weights just trained
    lr_path, sr_path = tmp_path / "lr.nii.gz", tmp_path / "sr.nii.gz"
    lr_affine = write_lr_volume(name, lr_path)
    overrides = {"bundle_root": str(root), "input_image": str(lr_path), "output_image": str(sr_path)}
    if spatial_dims == 3:
        overrides["sr_method#roi_size"] = [8, 8, 8]  # margin 3: patches start 2 voxels apart
    wf = workflow(root, ["inference.json"], None, **overrides)
    wf.run()
    zoom = get_protocol(meta["degradation_protocol"]).zoom
    configured = wf.parser.get_parsed_content("zoom")
    assert configured is None if name == "thick_slice" else list(configured) == list(zoom)  # thick_slice: the header
    sr = nib.load(str(sr_path))
    assert sr.shape == tuple(int(n * z) for n, z in zip(CASES[name]["lr_shape"], zoom))
    np.testing.assert_allclose(sr.affine, zoomed_affine(lr_affine, zoom), atol=1e-5)
    assert np.isfinite(np.asarray(sr.dataobj)).all()
    sidecar = read_json(tmp_path / "sr.json")
    assert sidecar["method"] == name and sidecar["bundle"]["version"] == meta["version"]

    # TorchScript export of the trained weights, equal to the eager network
    ts_path = tmp_path / f"{name}.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts_path),
        ckpt_file=str(root / "models" / "model.pt"),
        meta_file=str(root / "configs" / "metadata.json"),
        config_file=str(root / "configs" / "inference.json"),
    )
    scripted = torch.jit.load(str(ts_path))
    x = torch.rand(1, 1, *([6] * spatial_dims))
    network.eval()
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x))


@pytest.mark.parametrize("name", BUNDLES)
def test_network_matches_metadata(name: str):
    meta = read_json(configs(name) / "metadata.json")
    size = 8 if len(meta["network_data_format"]["inputs"]["image"]["spatial_shape"]) == 3 else 16
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(configs(name) / "metadata.json"),
        config_file=str(configs(name) / "inference.json"),
        device="cpu",
        n=size,
        any=size,
    )


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_describes_the_inference_config(name: str):
    """metadata.json (MONAI's description of the bundle) names the protocol, network and grid inference.json builds."""
    meta = read_json(configs(name) / "metadata.json")
    infer_cfg = read_json(configs(name) / "inference.json")
    assert meta["name"] == name == infer_cfg["sr_method"]["name"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]) and meta["version"] in meta["changelog"]
    if (BUNDLES_DIR / name / "models" / "model.pt").is_file():  # shipped weights come with their scores
        assert meta["eval_metrics"]["psnr_gain_db"] > 0 and "eval_metrics_note" not in meta
    else:
        assert meta["eval_metrics"] == {} and "not trained yet" in meta["eval_metrics_note"]
    assert meta["degradation_protocol"] == infer_cfg["protocol"]
    protocol = get_protocol(infer_cfg["protocol"])
    zoom = ConfigParser(infer_cfg).get_parsed_content("zoom")
    # a through-plane bundle takes its zoom from the input's header; the others derive it from their protocol
    assert zoom == (None if protocol.acquisition is not None else protocol.zoom)
    fmt = meta["network_data_format"]
    for io in (fmt["inputs"]["image"], fmt["outputs"]["pred"]):
        assert io["modality"] == "MR" and io["num_channels"] == 1
        assert len(io["spatial_shape"]) == infer_cfg["spatial_dims"]
    if infer_cfg["upsampling"] == "network":
        factor = int(protocol.zoom[0])
        assert fmt["outputs"]["pred"]["spatial_shape"] == [f"{factor}*n", f"{factor}*n"]
    assert (BUNDLES_DIR / name / "LICENSE").is_file() and (BUNDLES_DIR / name / "docs" / "data_license.txt").is_file()


@pytest.mark.parametrize("name", BUNDLES)
def test_training_layers_on_the_inference_config(name: str):
    """Training builds its network, protocol and validation method from inference.json (no copies to keep
    equal) and its workflow from the shared base; train.json holds the recipe only."""
    recipe = read_json(configs(name) / "train.json")
    for key in ("protocol", "spatial_dims", "upsampling", "network_def", "sr_method", "validate#sr_method"):
        assert key not in recipe, key
    parser = train_config(name)
    assert parser.get()["validate"]["sr_method"] == "@sr_method"
    assert parser["protocol"] == read_json(configs(name) / "inference.json")["protocol"]
    assert tuple(parser.get_parsed_content("zoom")) == get_protocol(parser["protocol"]).zoom
    assert len(parser["train"]["dataset"]["patch_size"]) == parser["spatial_dims"]


@pytest.mark.parametrize("name", [*BUNDLES, "srcnn"])
def test_cpu_recipe_overrides_existing_keys(name: str):
    """``train_cpu.json`` (the recipe the shipped weights were trained with) only changes keys that
    ``train.json`` has, so a typo cannot silently add an unused key."""
    recipe = configs(name) / "train_cpu.json"
    if not recipe.is_file():
        pytest.skip(f"{name} has no CPU recipe")
    parser = train_config(name)
    for key in read_json(recipe):
        assert key in parser, f"{recipe}: {key} is not a key of train.json"


def test_mdcsrn_cpu_recipe_starts_from_the_input_with_calibrated_frozen_statistics(synthetic_manifest: Path):
    """The CPU recipe's network (BatchNorm statistics measured on training batches, then frozen; identity
    start) returns its input in training mode, so training starts at the zero-filled k-space input; the
    paper's recipe keeps batch statistics."""
    parser = ConfigParser()
    parser.read_config([*training_layers(BUNDLES_DIR / "mdcsrn"), configs("mdcsrn") / "train_cpu.json"])
    parser.update({"device": "$torch.device('cpu')", "dataset_manifest": str(synthetic_manifest)})
    parser.update({"train#dataset#patch_size": [8, 8, 8], "train#dataset#max_scans": 1})
    network = parser.get_parsed_content("network").train()
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert not any(m.training for m in norms)
    assert all(float(m.running_var.min()) != 1.0 for m in norms)  # measured, not the initial statistics
    x = torch.rand(2, 1, 12, 12, 12)
    torch.testing.assert_close(network(x), x, atol=1e-4, rtol=1e-4)
    paper = train_config("mdcsrn").get_parsed_content("network_def").train()
    assert all(m.training for m in paper.modules() if isinstance(m, torch.nn.BatchNorm3d))


@pytest.mark.parametrize("name", [*BUNDLES, "srcnn"])
def test_configs_hold_no_absolute_paths(name: str):
    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    for config in configs(name).glob("*.json"):
        for text in strings(read_json(config)):
            personal = text.startswith(("/", "~")) or "/home/" in text or "/work/" in text
            assert not personal, (config.name, text)


@pytest.mark.parametrize(
    "name, source, message",
    [("mdcsrn_gan", "mdcsrn", "no trained weights"), ("rrlsrn_x4", "rrlsrn", "no trained x2 RRLSRN weights")],
)
def test_initialising_weights_must_exist(
    name: str, source: str, message: str, tmp_path: Path, synthetic_manifest: Path, monkeypatch: pytest.MonkeyPatch
):
    """Without the trained bundle it starts from (mdcsrn for the GAN's generator, rrlsrn x2 for the x4
    cascade, found by name like --method), training stops and names the missing file."""
    root = tmp_path / "bundles" / name
    monkeypatch.setattr(bundle_dirs, "PACKAGE_BUNDLES_DIR", root.parent)  # no bundle of that name anywhere
    monkeypatch.setattr(bundle_dirs, "CHECKOUT_BUNDLES_DIR", root.parent)
    monkeypatch.delenv("MRISR_BUNDLE_DIR", raising=False)
    copy_configs(name, root)
    with pytest.raises(RuntimeError) as error:  # when the network is built; the parser wraps the error
        wf = workflow(root, ["train.json"], "train", bundle_root=str(root), dataset_manifest=str(synthetic_manifest))
        wf.run()
    cause = error.value.__cause__
    assert isinstance(cause, FileNotFoundError)
    assert str(cause).endswith(str(Path(source, "models", "model.pt")) + ": " + message)


DOMAIN_BUNDLES = sorted(name for name in CASES if (configs(name) / "train_domain.json").is_file())


@pytest.mark.parametrize("name", DOMAIN_BUNDLES)
def test_domain_randomised_training_layer_trains(name: str, tmp_path: Path, synthetic_manifest: Path):
    """The bundle's documented domain-randomisation recipe layers onto train.json + train_cpu.json and trains."""
    root = tmp_path / "bundle"
    copy_configs(name, root)
    layer = read_json(root / "configs" / "train_domain.json")
    assert layer["train#dataset#domain"] and layer["validate#dataset#extra_protocols"]
    overrides = {
        **train_overrides(name, root, synthetic_manifest),
        "train#dataset#box": [16, 16, 8],
        "validate#dataset#crop_size": None,
        "val_interval": 1,  # a recipe may validate every few epochs; this run has one
    }
    wf = workflow(root, ["train.json", "train_cpu.json", "train_domain.json"], "train", **overrides)
    wf.run()
    assert wf.trainer.state.iteration == 2
    assert len(wf.evaluator.data_loader.dataset) == 2  # the val scan, clean and under the extra protocol
    wf.finalize()
    assert np.isfinite(pd.read_csv(root / "logs" / "metrics.csv")["val_psnr"][0])
