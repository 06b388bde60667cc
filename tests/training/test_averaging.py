"""Weight averaging of a run's epochs: the per-epoch saver, the average, the new run folder, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pipeline.cli.main import main
from pipeline.training import EpochWeightsSaver
from pipeline.training.averaging import average_run, average_state_dicts, epoch_weight_files


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
