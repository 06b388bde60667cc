"""``mrisr train`` writes to run folders, never into a shipped bundle;
``mrisr bundles export`` ships a run's weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pipeline.cli.main import main
from pipeline.inference.bundle_catalog import file_sha256
from pipeline.training.export import bump_patch
from tests.conftest import REPO_ROOT

SRCNN = REPO_ROOT / "bundles" / "srcnn"
TINY = {"train#dataset#patch_size": [8, 8], "train#dataset#num_samples": 2, "train#trainer#epoch_length": 2}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def bundle_copy(folder: Path) -> Path:
    """A bundle folder with the srcnn bundle's configs and weights (a target that tests may change)."""
    shutil.copytree(SRCNN / "configs", folder / "configs")
    (folder / "models").mkdir()
    shutil.copyfile(SRCNN / "models" / "model.pt", folder / "models" / "model.pt")
    return folder


@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Replace the training workflow by one that writes what a real run writes; record each call."""
    import pipeline.training

    calls: list[dict] = []

    def train(bundle_root, config_files, initial_weights=None, **overrides):
        root = Path(bundle_root)
        calls.append({"root": root, "configs": list(config_files), **overrides})
        (root / "models").mkdir(exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        shutil.copyfile(SRCNN / "models" / "model.pt", root / "models" / "model.pt")
        torch.save({"trainer": {"iteration": 2}}, root / "models" / "checkpoint.pt")

    monkeypatch.setattr(pipeline.training, "train", train)
    return calls


def test_train_by_name_writes_a_new_run_folder_never_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_training: list[dict], capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    before = snapshot(SRCNN)
    assert main(["train", "srcnn", "--config", "train_cpu.json", "--max-epochs", "1"]) == 0
    (run,) = (tmp_path / "runs" / "srcnn").iterdir()
    assert fake_training[0]["root"] == Path("runs") / "srcnn" / run.name
    assert fake_training[0]["configs"] == ["train.json", "train_cpu.json"]
    assert fake_training[0]["train#trainer#max_epochs"] == 1 and fake_training[0]["resume"] is False
    # the run keeps the shared training base it started with
    copied = sorted(p.name for p in (run / "configs").iterdir())
    assert copied == sorted([*(p.name for p in (SRCNN / "configs").iterdir()), "train_base.json"])
    record = json.loads((run / "run.json").read_text())
    assert record["bundle"] == "srcnn" and record["source"] == str(SRCNN.resolve())
    assert record["sessions"][0]["options"]["max_epochs"] == 1
    assert f"mrisr bundles export runs/srcnn/{run.name} --to {SRCNN.resolve()}" in capsys.readouterr().out
    # --resume continues the latest run of the bundle, in the same folder
    assert main(["train", "srcnn", "--config", "train_cpu.json", "--resume"]) == 0
    assert fake_training[1]["root"] == run.relative_to(tmp_path) and fake_training[1]["resume"] is True
    assert len(json.loads((run / "run.json").read_text())["sessions"]) == 2
    assert snapshot(SRCNN) == before


def test_a_config_layer_given_as_a_path_is_copied_into_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_training: list[dict], capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("layer.json").write_text(json.dumps({"train#dataset#domain#object_prob": 0.3}))
    assert main(["train", "srcnn", "--config", "train_cpu.json", "./layer.json", "--max-epochs", "1"]) == 0
    (run,) = (tmp_path / "runs" / "srcnn").iterdir()
    assert fake_training[0]["configs"] == ["train.json", "train_cpu.json", "layer.json"]
    assert json.loads((run / "configs" / "layer.json").read_text()) == {"train#dataset#domain#object_prob": 0.3}
    assert not (SRCNN / "configs" / "layer.json").exists()
    # resuming with the same file, or by its name in the run, is the same layer; another file of that name is not
    assert main(["train", "srcnn", "--config", "train_cpu.json", "layer.json", "--resume"]) == 0
    assert fake_training[1]["configs"] == ["train.json", "train_cpu.json", "layer.json"]
    Path("layer.json").write_text(json.dumps({"train#dataset#domain#object_prob": 0.6}))
    assert main(["train", "srcnn", "--config", "layer.json", "--resume"]) == 1
    assert "holds another layer.json" in capsys.readouterr().err
    assert len(fake_training) == 2


def test_train_resume_needs_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "srcnn", "--resume"]) == 1
    assert "runs/srcnn: no run of srcnn to resume (give --run-dir)" in capsys.readouterr().err
    assert main(["train", "no_such_bundle"]) == 1
    assert "no_such_bundle: no such bundle folder, nor a bundle name in" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_train_background_starts_in_the_new_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    started = {}

    class FakeProcess:
        pid = 4242

        def __init__(self, command, **kwargs):
            started.update(command=command)

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(sys, "argv", ["mrisr", "train", "srcnn", "--background"])
    assert main(["train", "srcnn", "--background"]) == 0
    (run,) = (tmp_path / "runs" / "srcnn").iterdir()
    assert started["command"][2:] == ["pipeline", "train", "srcnn", "--run-dir", str(Path("runs") / "srcnn" / run.name)]
    assert (run / "configs" / "train.json").is_file() and list((run / "logs").glob("train_*.log"))


def test_train_run_folder_resume_export_and_infer(tmp_path: Path, synthetic_manifest: Path, capsys) -> None:
    """Real training (2 iterations) in an explicit run folder, resumed, then exported into a bundle copy."""
    run = tmp_path / "run"
    shutil.copytree(SRCNN / "configs", run / "configs")
    (run / "configs" / "tiny.json").write_text(json.dumps(TINY))
    args = ["train", "srcnn", "--run-dir", str(run), "--config", "tiny.json", "--manifest", str(synthetic_manifest)]
    before = snapshot(SRCNN)
    assert main([*args, "--max-epochs", "1"]) == 0
    assert torch.load(run / "models" / "checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 2
    assert (run / "logs" / "metrics.csv").is_file() and (run / "logs" / "validation_gain.png").is_file()
    assert main([*args, "--max-epochs", "2", "--resume"]) == 0
    assert torch.load(run / "models" / "checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 4
    assert snapshot(SRCNN) == before
    capsys.readouterr()

    target = bundle_copy(tmp_path / "bundles" / "srcnn")
    old_meta = json.loads((target / "configs" / "metadata.json").read_text())
    assert main(["bundles", "export", str(run), "--to", str(target), "--message", "test run"]) == 0
    meta = json.loads((target / "configs" / "metadata.json").read_text())
    sha = file_sha256(run / "models" / "model.pt")
    assert file_sha256(target / "models" / "model.pt") == sha == meta["model_sha256"]
    assert meta["version"] == bump_patch(old_meta["version"])
    assert list(meta["changelog"].items())[0] == (meta["version"], "test run")
    assert meta["training_record"]["run_folder"] == str(run.resolve())
    assert meta["training_record"]["previous_model_sha256"] == file_sha256(SRCNN / "models" / "model.pt")
    assert {k: v for k, v in meta.items() if k not in ("version", "changelog", "model_sha256", "training_record")} == {
        k: v for k, v in old_meta.items() if k not in ("version", "changelog", "model_sha256")
    }
    capsys.readouterr()
    assert main(["bundles", "--bundle-dir", str(tmp_path / "bundles"), "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed["srcnn"]["origin"] == "--bundle-dir" and listed["srcnn"]["checksum_matches"] is True


def test_export_refuses_other_bundles_and_weights_that_do_not_fit(tmp_path: Path, capsys) -> None:
    target = bundle_copy(tmp_path / "target")
    before = snapshot(target)
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    assert main(["bundles", "export", str(run), "--to", str(target)]) == 1
    assert "run/models/model.pt: the run has no selected weights" in capsys.readouterr().err
    torch.save({"not": torch.zeros(1)}, run / "models" / "model.pt")
    assert main(["bundles", "export", str(run), "--to", str(target)]) == 1
    assert "model.pt: does not load into bundle" in capsys.readouterr().err
    (run / "run.json").write_text(json.dumps({"bundle": "rrlsrn"}))
    assert main(["bundles", "export", str(run), "--to", str(target)]) == 1
    assert "the run trained bundle 'rrlsrn', not 'srcnn'" in capsys.readouterr().err
    assert main(["bundles", "export", str(run), "--to", str(tmp_path)]) == 1
    assert "configs/metadata.json: not a bundle" in capsys.readouterr().err
    assert snapshot(target) == before


@pytest.mark.parametrize("version, bumped", [("0.3.0", "0.3.1"), ("1.2.9", "1.2.10")])
def test_bump_patch(version: str, bumped: str) -> None:
    assert bump_patch(version) == bumped
    with pytest.raises(ValueError, match="not MAJOR.MINOR.PATCH"):
        bump_patch("0.3")


def test_export_records_how_rebased_weights_were_derived(tmp_path: Path, capsys) -> None:
    """A rebased folder's ``rebased_from`` goes into the bundle's training_record (the folder may not last)."""
    original = SRCNN / "models" / "model.pt"
    state = torch.load(original, weights_only=True)
    shifted = {}
    for name, shift in [("finetuned", 0.01), ("newer", 0.02)]:  # a fine-tuning and newer weights of the original
        shifted[name] = bundle_copy(tmp_path / name)
        changed = {k: v + shift if v.is_floating_point() else v for k, v in state.items()}
        torch.save(changed, shifted[name] / "models" / "model.pt")
    rebased = tmp_path / "rebased"
    args = ["bundles", "rebase", str(shifted["finetuned"]), "--from", str(original), "--onto", str(shifted["newer"])]
    assert main([*args, "--to", str(rebased)]) == 0
    target = bundle_copy(tmp_path / "bundles" / "srcnn")
    assert main(["bundles", "export", str(rebased), "--to", str(target)]) == 0
    record = json.loads((target / "configs" / "metadata.json").read_text())["training_record"]
    assert record["rebased_from"]["scale"] == 1.0 and record["rebased_from"]["original"].endswith("model.pt")
    assert "averaged_from" not in record and "interpolated_from" not in record
    capsys.readouterr()
