"""Weight averaging of a run's epochs: the per-epoch saver, the average, the new run folder, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pipeline.cli.main import main
from pipeline.inference.bundle_catalog import file_sha256
from pipeline.training import EpochWeightsSaver
from pipeline.training.averaging import (
    average_run,
    average_state_dicts,
    epoch_weight_files,
    interpolate_weights,
    rebase_weights,
)


def _run_with_epochs(root: Path, values: list[float]) -> Path:
    run = root / "run"
    (run / "configs").mkdir(parents=True)
    (run / "configs" / "metadata.json").write_text(json.dumps({"name": "toy"}))
    (run / "run.json").write_text(json.dumps({"bundle": "toy", "created": "2026-12-07T00:00:00Z"}))
    network = torch.nn.Linear(2, 1)
    saver = EpochWeightsSaver(run / "models" / "epochs", network)
    for epoch, value in enumerate(values, start=1):
        with torch.no_grad():
            network.weight.fill_(value)
            network.bias.fill_(-value)
        saver(SimpleNamespace(state=SimpleNamespace(epoch=epoch)))
    return run


def test_the_saver_keeps_every_epoch_and_the_average_is_uniform(tmp_path: Path) -> None:
    run = _run_with_epochs(tmp_path, [1.0, 2.0, 4.0, 8.0])
    assert [f.name for f in epoch_weight_files(run, 2, 4)] == ["epoch_002.pt", "epoch_003.pt", "epoch_004.pt"]
    out = average_run(run, 2, 4, tmp_path / "avg")
    weights = torch.load(out / "models" / "model.pt", weights_only=True)
    torch.testing.assert_close(weights["weight"], torch.full((1, 2), 14.0 / 3))
    torch.testing.assert_close(weights["bias"], torch.full((1,), -14.0 / 3))
    record = json.loads((out / "run.json").read_text())
    assert record["bundle"] == "toy" and record["averaged_from"]["epochs"] == [2, 4]
    assert (out / "configs" / "metadata.json").is_file()


def test_missing_epochs_an_existing_output_and_mismatched_states_are_refused(tmp_path: Path) -> None:
    run = _run_with_epochs(tmp_path, [1.0, 2.0])
    with pytest.raises(FileNotFoundError, match="epoch_003.pt"):
        average_run(run, 1, 3, tmp_path / "avg")
    assert not (tmp_path / "avg").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="taken"):
        average_run(run, 1, 2, tmp_path / "taken")
    with pytest.raises(ValueError, match="other keys"):
        average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])
    with pytest.raises(ValueError, match="non-float"):
        average_state_dicts([{"n": torch.tensor(1)}, {"n": torch.tensor(2)}])


def test_cli_average(tmp_path: Path, capsys) -> None:
    run = _run_with_epochs(tmp_path, [1.0, 3.0])
    assert main(["bundles", "average", str(run), "--epochs", "1", "2", "--to", str(tmp_path / "avg")]) == 0
    assert "average of epochs 1-2" in capsys.readouterr().out
    assert main(["bundles", "average", str(run), "--epochs", "1", "5", "--to", str(tmp_path / "avg2")]) != 0
    assert "epoch_003.pt" in capsys.readouterr().err


@pytest.mark.parametrize("keep", [False, True])
def test_keep_epoch_weights_switches_the_saver_on(keep: bool) -> None:
    from monai.bundle import ConfigParser

    from pipeline.training.config_layers import config_layers
    from pipeline.inference.bundle_dirs import CHECKOUT_BUNDLES_DIR as BUNDLES_DIR

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_layers(BUNDLES_DIR / "srcnn", ["train.json"])])
    parser["bundle_root"] = str(BUNDLES_DIR / "srcnn")
    parser["keep_epoch_weights"] = keep
    index = next(i for i, h in enumerate(parser["train#handlers"]) if h["_target_"].endswith("EpochWeightsSaver"))
    saver = parser.get_parsed_content(f"train#handlers#{index}")  # None when disabled
    assert isinstance(saver, EpochWeightsSaver) == keep


def _folder_with_weights(root: Path, name: str, value: float, shape: tuple[int, ...] = (1, 2)) -> Path:
    folder = root / name
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / "metadata.json").write_text(json.dumps({"name": name}))
    (folder / "models").mkdir()
    torch.save({"weight": torch.full(shape, value), "steps": torch.tensor(3)}, folder / "models" / "model.pt")
    return folder


def test_interpolation_mixes_two_folders_and_names_them(tmp_path: Path, capsys) -> None:
    start = _folder_with_weights(tmp_path, "shipped", 1.0)
    end = _folder_with_weights(tmp_path, "finetuned", 5.0)
    out = interpolate_weights(start, end, 0.25, tmp_path / "mix")
    weights = torch.load(out / "models" / "model.pt", weights_only=True)
    torch.testing.assert_close(weights["weight"], torch.full((1, 2), 2.0))
    assert int(weights["steps"]) == 3
    record = json.loads((out / "run.json").read_text())
    assert record["interpolated_from"]["weight"] == 0.25
    assert json.loads((out / "configs" / "metadata.json").read_text())["name"] == "finetuned"
    args = ["bundles", "interpolate", str(start), str(end), "--weight", "1", "--to", str(tmp_path / "end")]
    assert main(args) == 0
    assert "1 x" in capsys.readouterr().out
    torch.testing.assert_close(
        torch.load(tmp_path / "end" / "models" / "model.pt", weights_only=True)["weight"], torch.full((1, 2), 5.0)
    )


def test_interpolation_refuses_bad_weights_other_networks_and_existing_output(tmp_path: Path, capsys) -> None:
    start = _folder_with_weights(tmp_path, "a", 1.0)
    other = _folder_with_weights(tmp_path, "b", 1.0, shape=(2, 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_weights(start, start, 1.5, tmp_path / "out")
    with pytest.raises(ValueError, match="same network"):
        interpolate_weights(start, other, 0.5, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="models/model.pt"):
        interpolate_weights(start, tmp_path, 0.5, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.tmp").exists()
    assert main(["bundles", "interpolate", str(start), str(start), "--weight", "0.5", "--to", str(start)]) != 0
    assert "already exists" in capsys.readouterr().err


def test_rebase_replays_a_fine_tuning_onto_newer_weights(tmp_path: Path, capsys) -> None:
    original = _folder_with_weights(tmp_path, "v1", 1.0)
    finetuned = _folder_with_weights(tmp_path, "gan", 1.5)  # v1 + 0.5
    base = _folder_with_weights(tmp_path, "v2", 3.0)
    out = rebase_weights(finetuned, original, base, tmp_path / "gan_on_v2")
    weights = torch.load(out / "models" / "model.pt", weights_only=True)
    torch.testing.assert_close(weights["weight"], torch.full((1, 2), 3.5))
    assert int(weights["steps"]) == 3
    record = json.loads((out / "run.json").read_text())["rebased_from"]
    assert record["scale"] == 1.0 and record["base"].endswith("v2") and record["original"].endswith("v1")
    assert record["base_sha256"] == file_sha256(base / "models" / "model.pt")
    assert json.loads((out / "configs" / "metadata.json").read_text())["name"] == "gan"
    # ORIGINAL as a weights file (an older version taken from git), half the fine-tuning replayed
    args = ["bundles", "rebase", str(finetuned), "--from", str(original / "models" / "model.pt")]
    assert main([*args, "--onto", str(base), "--scale", "0.5", "--to", str(tmp_path / "half")]) == 0
    assert "0.5 x" in capsys.readouterr().out
    half = torch.load(tmp_path / "half" / "models" / "model.pt", weights_only=True)["weight"]
    torch.testing.assert_close(half, torch.full((1, 2), 3.25))


def test_rebase_refuses_no_fine_tuning_other_networks_bad_variances_and_existing_output(tmp_path: Path, capsys) -> None:
    original = _folder_with_weights(tmp_path, "v1", 1.0)
    same = _folder_with_weights(tmp_path, "same", 1.0)
    other = _folder_with_weights(tmp_path, "other", 1.0, shape=(2, 2))
    finetuned = _folder_with_weights(tmp_path, "gan", 2.0)
    with pytest.raises(ValueError, match="no fine-tuning to replay"):
        rebase_weights(same, original, finetuned, tmp_path / "out")
    with pytest.raises(ValueError, match="would be .*gan itself"):  # ORIGINAL read from a bundle already at BASE
        rebase_weights(finetuned, original, same, tmp_path / "out")
    with pytest.raises(ValueError, match="same network"):
        rebase_weights(finetuned, original, other, tmp_path / "out")
    with pytest.raises(ValueError, match="> 0"):
        rebase_weights(finetuned, original, original, tmp_path / "out", scale=0.0)
    with pytest.raises(FileNotFoundError, match="not a run or bundle folder"):
        rebase_weights(original / "models" / "model.pt", finetuned, original, tmp_path / "out")
    variances = {name: _folder_with_weights(tmp_path, name, value) for name, value in [("bn1", 1.0), ("bn2", 0.2)]}
    for name, value in [("bn1", 1.0), ("bn2", 0.2)]:
        torch.save({"bn.running_var": torch.full((2,), value)}, variances[name] / "models" / "model.pt")
    with pytest.raises(ValueError, match="running variance"):  # 0.2 + (0.2 - 1.0) < 0
        rebase_weights(variances["bn2"], variances["bn1"], variances["bn2"], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.tmp").exists()
    args = ["bundles", "rebase", str(finetuned), "--from", str(original), "--onto", str(original)]
    assert main([*args, "--to", str(original)]) != 0
    assert "already exists" in capsys.readouterr().err
