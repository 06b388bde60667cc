"""The mrisr command line: single files, manifests, resume, failures and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.cli.main import main
from tests.conftest import blob_volume
from tests.utils import write_manifest, write_nifti


def _no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_degrade_then_infer_reads_zoom_from_sidecar(nifti_file: Path, tmp_path: Path) -> None:
    lr = tmp_path / "lr.nii.gz"
    assert main(["degrade", str(nifti_file), "-o", str(lr), "--protocol", "bicubic-x2", "--no-progress"]) == 0
    record = json.loads((tmp_path / "lr.json").read_text())
    assert record["degradation"]["method"] == "antialiased_resize" and record["protocol"] == "bicubic-x2"
    assert nib.load(str(lr)).shape == (12, 14, 20)
    sr = tmp_path / "sr.nii.gz"
    assert main(["infer", str(lr), "-o", str(sr), "--method", "cubic"]) == 0
    img = nib.load(str(sr))
    assert img.shape == (24, 28, 20)
    np.testing.assert_allclose(img.affine, nib.load(str(nifti_file)).affine, atol=1e-6)  # same grid as the HR


@pytest.mark.parametrize(
    "model_args, shape",
    [
        (["--model", "kspace", "--zoom", "2", "2", "--axes", "0", "1", "--grid", "hr"], (24, 28, 20)),
        (["--model", "blur", "--zoom", "2", "--noise", "rician"], (12, 14, 20)),
        (["--model", "thick-slice", "--thickness", "6", "--gap", "3", "--axes", "2"], (24, 28, 6)),
    ],
)
def test_degrade_models(nifti_file: Path, tmp_path: Path, model_args: list[str], shape: tuple[int, ...]) -> None:
    out = tmp_path / "lr.nii.gz"
    assert main(["degrade", str(nifti_file), "-o", str(out), *model_args]) == 0
    assert nib.load(str(out)).shape == shape


def test_degrade_needs_one_model(nifti_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["degrade", str(nifti_file), "-o", str(tmp_path / "x.nii.gz")]) == 1
    assert "--protocol or --model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.nii.gz", "no such file"),
        (
            lambda d: (d / "trunc.nii.gz").write_bytes(b"\x1f\x8b\x08\x00garbage") and d / "trunc.nii.gz",
            "truncated or corrupt",
        ),
        (lambda d: write_nifti(d / "flat.nii.gz", np.ones((8, 8), np.float32)), "2D image"),
        (lambda d: write_nifti(d / "four.nii.gz", np.ones((8, 8, 8, 2), np.float32)), "4D image"),
        (lambda d: write_nifti(d / "nan.nii.gz", np.full((8, 8, 8), np.nan, np.float32)), "no finite values"),
        (lambda d: write_nifti(d / "zero.nii.gz", np.zeros((8, 8, 8), np.float32)), "constant"),
    ],
)
@pytest.mark.parametrize(
    "command", [["degrade", "--protocol", "bicubic-x2"], ["infer", "--method", "cubic", "--zoom", "2", "2", "1"]]
)
def test_bad_input_exits_nonzero_without_output(
    tmp_path: Path, make_input, message: str, command: list[str], capsys: pytest.CaptureFixture
) -> None:
    source = make_input(tmp_path)
    out = tmp_path / "out" / "result.nii.gz"
    assert main([command[0], str(source), "-o", str(out), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert message in err and Path(source).name in err
    assert not out.exists() and not (tmp_path / "out" / "result.json").exists()
    assert _no_partial_files(tmp_path)


def test_cohort_infer_goes_on_past_bad_rows_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        write_nifti(data / f"s{i}.nii.gz", blob_volume((10, 12, 8), seed=i))
    (data / "corrupt.nii.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    rows = [{"subject_id": f"s{i}", "lr": f"data/s{i}.nii.gz"} for i in range(3)]
    rows += [{"subject_id": "gone", "lr": "data/missing.nii.gz"}, {"subject_id": "bad", "lr": "data/corrupt.nii.gz"}]
    manifest = write_manifest(tmp_path / "cohort.csv", rows)
    out = tmp_path / "sr"
    args = ["infer", "--manifest", str(manifest), "--output-dir", str(out)]
    args += ["--method", "linear", "--zoom", "2", "2", "2", "--no-progress"]
    assert main(args) == 1
    failures = pd.read_csv(out / "failures.csv")
    assert sorted(failures["scan_id"]) == ["bad", "gone"]
    assert (
        failures["error"].str.contains("corrupt.nii.gz").any()
        and failures["error"].str.contains("missing.nii.gz").any()
    )
    done = sorted(p.name for p in out.glob("*.nii.gz"))
    assert done == ["s0_sr-linear.nii.gz", "s1_sr-linear.nii.gz", "s2_sr-linear.nii.gz"]
    # an interrupted run: one output lost, one truncated mid-write by a crash of an older tool
    (out / "s0_sr-linear.nii.gz").unlink()
    (out / "s1_sr-linear.nii.gz").write_bytes(b"\x1f\x8b")
    before = (out / "s2_sr-linear.nii.gz").stat().st_mtime_ns
    write_manifest(manifest, rows[:3])
    assert main(args) == 0
    assert (out / "s2_sr-linear.nii.gz").stat().st_mtime_ns == before  # finished scan not redone
    assert nib.load(str(out / "s1_sr-linear.nii.gz")).shape == (20, 24, 16)
    assert not (out / "failures.csv").exists()
    assert _no_partial_files(tmp_path)


def test_manifest_errors_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("subject,hr\nx,a.nii.gz\n")
    args = ["degrade", "--manifest", str(manifest), "--output-dir", str(tmp_path / "o"), "--protocol", "blur-x2"]
    assert main(args) == 1
    assert "subject_id" in capsys.readouterr().err


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as err:
        main(["infer"])
    assert err.value.code == 2


def test_preprocess_writes_image_mask_and_sidecar(tmp_path: Path) -> None:
    data = blob_volume((40, 44, 36))
    source = write_nifti(tmp_path / "t1.nii.gz", data, np.diag([1.5, 1.5, 1.5, 1.0]))
    out = tmp_path / "out" / "t1_preproc.nii.gz"
    assert main(["preprocess", str(source), "-o", str(out), "--n4-iterations", "10", "10", "--shrink-factor", "2"]) == 0
    assert nib.load(str(out)).shape == (40, 44, 36)
    mask = np.asanyarray(nib.load(str(tmp_path / "out" / "t1_preproc_mask.nii.gz")).dataobj)
    assert mask.dtype == np.uint8 and 0 < mask.mean() < 1
    record = json.loads((tmp_path / "out" / "t1_preproc.json").read_text())
    assert record["intensity_normalization"]["a_max"] > record["intensity_normalization"]["a_min"]
    assert any(step.startswith("N4") for step in record["steps"])


def test_preprocess_negative_volume_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = write_nifti(tmp_path / "negative.nii.gz", blob_volume((24, 24, 24)) - 50.0)
    out = tmp_path / "out" / "neg_preproc.nii.gz"
    assert main(["preprocess", str(source), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "negative.nii.gz" in err and "negative" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_infer_precision_flag_is_recorded(nifti_file: Path, tmp_path: Path, precision: str) -> None:
    sr = tmp_path / "sr.nii.gz"
    args = ["infer", str(nifti_file), "-o", str(sr), "--method", "srcnn", "--zoom", "1", "1", "1", "--device", "cpu"]
    assert main([*args, "--precision", precision]) == 0
    record = json.loads((tmp_path / "sr.json").read_text())
    assert record["precision"] == precision and record["precision_reason"] == "requested"
    assert record["fast_path"] is True


def test_infer_rejects_unknown_precision(nifti_file: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["infer", str(nifti_file), "-o", str(tmp_path / "sr.nii.gz"), "--method", "srcnn", "--precision", "fp8"])


def test_train_refuses_bad_starts_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "train.json").write_text("{}")
    assert main(["train", str(bundle), "--resume"]) == 1
    assert "checkpoint.pt: no checkpoint to resume from" in capsys.readouterr().err
    assert main(["train", str(bundle), "--init-weights", str(tmp_path / "none.pt")]) == 1
    assert "none.pt: no such weights file" in capsys.readouterr().err
    assert main(["train", str(bundle), "--max-minutes", "0"]) == 1
    with pytest.raises(SystemExit):  # argparse: --resume and --init-weights exclude each other
        main(["train", str(bundle), "--resume", "--init-weights", "x.pt"])


def test_train_background_detaches_and_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import subprocess
    import sys

    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "train.json").write_text("{}")
    started = {}

    class FakeProcess:
        pid = 4242

        def __init__(self, command, **kwargs):
            started.update(command=command, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(sys, "argv", ["mrisr", "train", str(bundle), "--background", "--max-minutes", "5"])
    assert main(["train", str(bundle), "--background", "--max-minutes", "5"]) == 0
    assert started["command"][1:] == ["-m", "pipeline", "train", str(bundle), "--max-minutes", "5"]
    assert started["start_new_session"] is True
    out = capsys.readouterr().out
    assert "pid 4242" in out and str(bundle / "logs" / "train_") in out
