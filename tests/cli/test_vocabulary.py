"""The cohort commands share their flags: ``--methods`` (``--method`` is the same option), ``--split`` with one
default, ``--output-dir``; ``degrade --axes`` for every model (``--axis`` is a deprecated alias)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli.common import manifest_split
from pipeline.cli.main import build_parser, main
from tests.utils import write_manifest


@pytest.mark.parametrize(
    "argv, dest, value",
    [
        (["infer", "x.nii.gz", "-o", "y.nii.gz", "--methods", "cubic"], "method", "cubic"),
        (["infer", "x.nii.gz", "-o", "y.nii.gz", "--method", "cubic"], "method", "cubic"),
        (
            ["evaluate", "--manifest", "m.csv", "--protocol", "bicubic-x2", "--output-dir", "o", "--method", "cubic"],
            "methods",
            ["cubic"],
        ),
        (
            ["evaluate", "--manifest", "m.csv", "--protocol", "bicubic-x2", "--output-dir", "o", "--methods", "a", "b"],
            "methods",
            ["a", "b"],
        ),
    ],
)
def test_methods_is_one_option_in_every_command(argv: list[str], dest: str, value: object) -> None:
    assert getattr(build_parser().parse_args(argv), dest) == value


def _manifest(tmp_path: Path, with_split: bool) -> Path:
    volume = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    rows = [
        {"subject_id": f"s{i}", **({"split": split} if with_split else {}), "hr": (f"s{i}.nii.gz", volume)}
        for i, split in enumerate(("train", "test"))
    ]
    return write_manifest(tmp_path / "m.csv", rows)


def test_split_defaults_to_test_with_a_split_column_and_to_every_row_without(tmp_path: Path, capsys) -> None:
    with_split = _manifest(tmp_path / "a", with_split=True)
    assert manifest_split(None, with_split) == "test"
    assert "--split all" in capsys.readouterr().err
    assert manifest_split(None, _manifest(tmp_path / "b", with_split=False)) == "all"
    assert manifest_split("train", with_split) == "train" and manifest_split("all", with_split) == "all"


@pytest.mark.parametrize("command", ["infer", "degrade", "preprocess", "evaluate", "synth-contrast"])
def test_every_cohort_command_has_the_same_split_choices(command: str, capsys) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--split", "nope"])
    assert "choose from 'train', 'val', 'test', 'all'" in capsys.readouterr().err


def test_degrade_default_runs_on_the_test_rows_only(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, with_split=True)
    out = tmp_path / "lr"
    args = ["degrade", "--manifest", str(manifest), "--output-dir", str(out), "--protocol", "bicubic-x2"]
    assert main([*args, "--no-progress", "--column", "hr"]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["s1_lr-bicubic-x2.nii.gz"]


def test_degrade_thick_slice_takes_axes_and_the_old_axis_still_works(tmp_path: Path, capsys) -> None:
    parser = build_parser()
    base = ["degrade", "x.nii.gz", "-o", "y.nii.gz", "--model", "thick-slice", "--thickness", "4"]
    assert parser.parse_args([*base, "--axes", "1"]).axes == [1]
    assert parser.parse_args([*base, "--axis", "1"]).axes == [1]
    assert capsys.readouterr().err.strip() == "mrisr: --axis is deprecated, use --axes"
