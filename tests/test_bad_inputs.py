"""Bad and awkward inputs (issue 15): no silent wrong result, no traceback, no lost file.

Each test is a case of the corpus that once exited 0 with a wrong result, ended in a traceback or
gave an unclear message, numbered by the issue's item. Every failure must be one line
``mrisr: error: <file>: <problem>`` with exit code 1, write no output and leave no temporary file.
All volumes are small and synthetic.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.data import MetaTensor

import pipeline.io.atomic as atomic
from pipeline.cli.main import main
from pipeline.degrade import degrade_file
from pipeline.inference import (
    NetworkSR,
    inference_parameters,
    make_baseline,
    output_is_complete,
    robust_intensity_scale,
    super_resolve_file,
    to_network_input,
)
from pipeline.io import OutputPathError, atomic_path
from pipeline.networks import SRCNN
from tests.conftest import REPO_ROOT, blob_volume

SRCNN_BUNDLE = REPO_ROOT / "bundles" / "srcnn"
CUBIC_X2 = ["--method", "cubic", "--scale", "2", "2", "1"]
COMMANDS = [["infer", *CUBIC_X2], ["degrade", "--protocol", "blur-x2"], ["preprocess", "--no-n4"]]
COMMAND_IDS = ["infer", "degrade", "preprocess"]


def _write(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4) if affine is None else affine), str(path))
    return path


def _brain(shape: tuple[int, int, int] = (16, 18, 6)) -> np.ndarray:
    """A magnitude volume with an exactly-zero background, as skull-stripped scans have."""
    vol = blob_volume(shape)
    return np.where(vol > 50, vol, 0.0).astype(np.float32)


def _error_line(capsys: pytest.CaptureFixture, *needles: str) -> str:
    """The single ``mrisr: error:`` line on stderr, which must hold every needle; no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("mrisr: error: ")]
    assert len(lines) == 1, err
    assert len(lines[0]) > len("mrisr: error: ") + 10
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def _raises(err: BaseException):
    def function(*_args: object, **_kwargs: object) -> None:
        raise err

    return function


def _manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# 1. network methods return the input's units whatever its range -----------------------------------


class _Recorder(torch.nn.Module):
    """A 3D 'network' that returns its input and keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return x


def _volume(data: np.ndarray) -> MetaTensor:
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None], affine=torch.eye(4))


@pytest.mark.parametrize("ringing", [0.0, 0.02])
def test_magnitude_volume_network_input_is_unchanged(ringing: float) -> None:
    """Ordinary volumes (also with the ~2 % undershoot of bicubic LR) reach the network exactly as in training."""
    data = _brain((10, 12, 6))
    data[data == 0] = -ringing * data.max() * (np.arange((data == 0).sum()) % 2)
    lr, zoom = _volume(data), [2.0, 2.0, 1.0]
    recorder = _Recorder()
    kwargs = dict(spatial_dims=3, upsampling="cubic", roi_size=(20, 24, 6), fast=False, device="cpu", precision="fp32")
    NetworkSR(recorder, **kwargs)(lr, zoom)
    before = to_network_input(lr, zoom, "cubic").as_tensor().float() / robust_intensity_scale(lr)  # as in training
    assert torch.equal(recorder.seen[0][0], before)


@pytest.mark.parametrize("change", ["minus_400", "z_score", "all_negative"])
def test_network_output_returns_to_the_input_units(change: str) -> None:
    """A shifted or z-scored volume gives the positive volume's output, shifted and scaled back."""
    torch.manual_seed(0)
    method = NetworkSR(SRCNN(spatial_dims=2), spatial_dims=2, upsampling="cubic", device="cpu", precision="fp32")
    data = _brain()
    mean, sd = float(data.mean()), float(data.std())
    offset, factor = {"minus_400": (-400.0, 1.0), "z_score": (-mean / sd, 1 / sd), "all_negative": (-300.0, 0.7)}[change]
    reference = method(_volume(data), [2, 2, 1]).numpy()
    changed = method(_volume(data * factor + offset), [2, 2, 1]).numpy()
    expected = reference * factor + offset
    np.testing.assert_allclose(changed, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_infer_negative_volume_keeps_its_units(tmp_path: Path) -> None:
    """The issue's run: srcnn on a volume in [-300, -135] gave mean -111 for an input mean of -272."""
    positive = _brain((20, 20, 4))
    factor = 165.0 / positive.max()
    sr = {}
    for name, data in (("positive", positive), ("negative", positive * factor - 300.0)):
        source = _write(tmp_path / f"{name}.nii.gz", data)
        out = tmp_path / f"sr_{name}.nii.gz"
        args = ["infer", str(source), "-o", str(out), "--method", "srcnn", "--scale", "2", "2", "1"]
        assert main([*args, "--device", "cpu", "--precision", "fp32"]) == 0
        sr[name] = np.asanyarray(nib.load(str(out)).dataobj)
    negative_input = positive * factor - 300.0
    assert abs(sr["negative"].mean() - negative_input.mean()) < 0.02 * abs(negative_input.mean())
    np.testing.assert_allclose(sr["negative"], sr["positive"] * factor - 300.0, rtol=0, atol=1e-3)


# 2. an output's sidecar may not replace an input's sidecar ----------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_output_sidecar_never_replaces_the_input_sidecar(tmp_path: Path, command: list[str], capsys) -> None:
    source = _write(tmp_path / "lr.nii.gz", _brain((24, 24, 24)))
    record = tmp_path / "lr.json"
    record.write_text('{"degradation": "the record of how lr.nii.gz was made"}')
    before = record.read_bytes()
    assert main([command[0], str(source), "-o", str(tmp_path / "lr.nii"), *command[1:]]) == 1
    _error_line(capsys, "lr.json", "sidecar of the input")
    assert record.read_bytes() == before and not (tmp_path / "lr.nii").exists()


# 3. scan ids that clean to one file name --------------------------------------------------------


@pytest.mark.parametrize("ids", [("s/1", "s_1"), ("Sub01", "sub01")])
def test_scan_ids_colliding_as_file_names_fail_the_manifest(tmp_path: Path, ids: tuple[str, str], capsys) -> None:
    for i in range(2):
        _write(tmp_path / f"v{i}.nii.gz", blob_volume((8, 8, 6), seed=i))
    manifest = _manifest(tmp_path / "m.csv", [{"subject_id": s, "lr": f"v{i}.nii.gz"} for i, s in enumerate(ids)])
    out = tmp_path / "out"
    assert main(["infer", "--manifest", str(manifest), "--output-dir", str(out), *CUBIC_X2, "--no-progress"]) == 1
    _error_line(capsys, "m.csv", repr(ids[0]), repr(ids[1]))
    assert not out.exists() or not list(out.glob("*.nii.gz"))


# 4. resume skips only outputs made the same way that read back completely -------------------------


def test_resume_redoes_outputs_made_otherwise_or_truncated(tmp_path: Path, capsys) -> None:
    for i in range(2):
        _write(tmp_path / f"s{i}.nii.gz", blob_volume((8, 10, 6), seed=i))
    manifest = _manifest(tmp_path / "m.csv", [{"subject_id": f"s{i}", "lr": f"s{i}.nii.gz"} for i in range(2)])
    out = tmp_path / "out"
    base = ["infer", "--manifest", str(manifest), "--output-dir", str(out), "--method", "linear", "--no-progress"]

    def run(*extra: str) -> str:
        assert main([*base, *extra]) == 0
        return capsys.readouterr().out

    assert "2 done, 0 skipped" in run("--scale", "2", "2", "1")
    assert "0 done, 2 skipped" in run("--scale", "2", "2", "1")
    assert "2 done, 0 skipped" in run("--scale", "3", "3", "1")  # other parameters: redone
    assert nib.load(str(out / "s0_sr-linear.nii.gz")).shape == (24, 30, 6)
    sidecar = out / "s1_sr-linear.json"
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**record, "precision": "bf16", "device": "cuda:0"}))  # another machine
    assert "0 done, 2 skipped" in run("--scale", "3", "3", "1")
    other_bundle = {**record["parameters"], "bundle": {"name": "x", "version": "0.0.1"}}
    sidecar.write_text(json.dumps({**record, "parameters": other_bundle}))
    image = out / "s0_sr-linear.nii.gz"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])  # truncated by hand, sidecar intact
    assert "2 done, 0 skipped" in run("--scale", "3", "3", "1")
    assert np.asanyarray(nib.load(str(image)).dataobj).shape == (24, 30, 6)
    assert "2 done, 0 skipped" in run("--scale", "3", "3", "1", "--overwrite")


def test_a_rewrite_killed_before_its_sidecar_is_not_complete(nifti_file: Path, tmp_path: Path, monkeypatch) -> None:
    """The old sidecar goes before the new image is written: it cannot vouch for the new one."""
    import pipeline.inference.run as run

    out = tmp_path / "sr.nii.gz"
    super_resolve_file(make_baseline("cubic"), nifti_file, out, scale=[2, 2, 1])
    cubic = inference_parameters(make_baseline("cubic"), nifti_file, scale=[2, 2, 1])
    assert output_is_complete(out, cubic)
    monkeypatch.setattr(run, "atomic_write_json", _raises(KeyboardInterrupt()))  # killed after the image
    with pytest.raises(KeyboardInterrupt):
        super_resolve_file(make_baseline("linear"), nifti_file, out, scale=[2, 2, 1])
    assert out.exists() and not output_is_complete(out, cubic)


# 5. and 12. masks: on the image's grid, and all ones is valid --------------------------------------


def test_preprocess_rejects_a_mask_on_a_shifted_grid(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path / "t1.nii.gz", _brain((24, 24, 24)))
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    mask = _write(tmp_path / "mask.nii.gz", _brain((24, 24, 24)) > 0, shifted)
    out = tmp_path / "out" / "pre.nii.gz"
    assert main(["preprocess", str(source), "-o", str(out), "--mask", str(mask), "--no-n4"]) == 1
    _error_line(capsys, "mask.nii.gz", "another grid")
    assert not out.exists()


def test_preprocess_accepts_an_all_ones_mask_and_rejects_an_empty_one(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path / "t1.nii.gz", blob_volume((20, 20, 20)))
    ones = _write(tmp_path / "ones.nii.gz", np.ones((20, 20, 20)))
    out = tmp_path / "pre.nii.gz"
    assert main(["preprocess", str(source), "-o", str(out), "--mask", str(ones), "--no-n4"]) == 0
    assert nib.load(str(out)).shape == (20, 20, 20)
    capsys.readouterr()
    empty = _write(tmp_path / "empty.nii.gz", np.zeros((20, 20, 20)))
    assert main(["preprocess", str(source), "-o", str(tmp_path / "pre2.nii.gz"), "--mask", str(empty), "--no-n4"]) == 1
    _error_line(capsys, "empty.nii.gz", "empty mask")


# 6. degrade refuses inputs too small for the degradation -------------------------------------------


@pytest.mark.parametrize(
    "shape, model",
    [
        ((3, 3, 5), ["--protocol", "bicubic-x2"]),
        ((3, 3, 5), ["--protocol", "bicubic-x4"]),
        ((5, 5, 4), ["--model", "thick-slice", "--thickness", "6", "--axis", "2"]),
    ],
)
def test_degrade_refuses_tiny_inputs(tmp_path: Path, shape: tuple[int, ...], model: list[str], capsys) -> None:
    source = _write(tmp_path / "tiny.nii.gz", np.random.default_rng(0).random(shape))
    out = tmp_path / "lr.nii.gz"
    assert main(["degrade", str(source), "-o", str(out), *model]) == 1
    _error_line(capsys, "tiny.nii.gz", "too small")
    assert not out.exists() and not _temporaries(tmp_path)


# 7. the bundle command gives mrisr's one-line errors ---------------------------------------------


def _bad_inputs(folder: Path) -> dict[str, Path]:
    (folder / "truncated.nii.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (folder / "text.nii.gz").write_text("not an image\n")
    return {
        "missing": folder / "missing.nii.gz",
        "truncated": folder / "truncated.nii.gz",
        "text": folder / "text.nii.gz",
        "2d": _write(folder / "flat.nii.gz", np.ones((8, 8))),
        "4d": _write(folder / "four.nii.gz", np.random.default_rng(0).random((8, 8, 8, 2))),
        "zero": _write(folder / "zero.nii.gz", np.zeros((8, 8, 8))),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "text", "2d", "4d", "zero", "no_output", "output_is_input"])
def test_bundle_run_errors_are_one_line(tmp_path: Path, case: str, capsys) -> None:
    good = _write(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4)))
    source = {"no_output": good, "output_is_input": good}.get(case) or _bad_inputs(tmp_path)[case]
    output = {"no_output": None, "output_is_input": str(good)}.get(case, str(tmp_path / "sr.nii.gz"))
    workflow = ConfigWorkflow(
        config_file=str(SRCNN_BUNDLE / "configs" / "inference.json"),
        meta_file=str(SRCNN_BUNDLE / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=None,
        bundle_root=str(SRCNN_BUNDLE),
        device="$torch.device('cpu')",
        input_image=str(source),
        output_image=output,
    )
    workflow.initialize()
    with pytest.raises(SystemExit) as exit_info:
        workflow.run()
    assert exit_info.value.code == 1
    _error_line(capsys, source.name)
    assert not (tmp_path / "sr.nii.gz").exists() and not _temporaries(tmp_path)


def test_bundle_command_line_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    missing = tmp_path / "missing.nii.gz"
    command = [sys.executable, "-m", "monai.bundle", "run", "--bundle_root", str(SRCNN_BUNDLE)]
    command += ["--config_file", str(SRCNN_BUNDLE / "configs" / "inference.json"), "--input_image", str(missing)]
    command += ["--output_image", str(tmp_path / "sr.nii.gz"), "--device", "$torch.device('cpu')"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"mrisr: error: {missing}: no such file or folder"


# 8. and 9. headers that lie: a size the file cannot hold, a singular affine -------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_header_claiming_more_voxels_than_the_file_holds(tmp_path: Path, suffix: str, capsys) -> None:
    """A corrupt header claiming 32767³ voxels once ended in an empty message (a MemoryError)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((32767, 32767, 32767))
    header["vox_offset"] = 352
    content = header.binaryblock + b"\0" * 4 + blob_volume((8, 8, 8)).tobytes()
    path = tmp_path / f"huge{suffix}"
    path.write_bytes(gzip.compress(content) if suffix == ".nii.gz" else content)
    assert main(["infer", str(path), "-o", str(tmp_path / "sr.nii.gz"), *CUBIC_X2]) == 1
    _error_line(capsys, path.name, "header claims shape (32767, 32767, 32767)")


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_singular_affine_is_rejected_at_load(tmp_path: Path, command: list[str], capsys) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((24, 24, 24))
    header.set_data_dtype(np.float32)
    header["sform_code"], header["qform_code"] = 1, 0
    for row in ("srow_x", "srow_y", "srow_z"):
        header[row] = 0.0
    source = tmp_path / "singular.nii.gz"
    nib.Nifti1Image(_brain((24, 24, 24)), None, header=header).to_filename(str(source))
    out = tmp_path / "out.nii.gz"
    assert main([command[0], str(source), "-o", str(out), *command[1:]]) == 1
    _error_line(capsys, "singular.nii.gz", "singular affine")
    assert not out.exists()


# 10. devices that do not exist ------------------------------------------------------------------


@pytest.mark.parametrize("device", ["tpu9", "cuda:0" if not torch.cuda.is_available() else "cuda:99", "cuda:x"])
@pytest.mark.parametrize("method", ["srcnn", "cubic"])
def test_unknown_or_absent_device(nifti_file: Path, tmp_path: Path, device: str, method: str, capsys) -> None:
    args = ["infer", str(nifti_file), "-o", str(tmp_path / "sr.nii.gz"), "--method", method, "--scale", "2", "2", "1"]
    assert main([*args, "--device", device]) == 1
    _error_line(capsys, device)


# 11. messages that misled or said too little ------------------------------------------------------


def test_output_under_a_file_names_the_file(nifti_file: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    assert main(["infer", str(nifti_file), "-o", str(blocker / "sr.nii.gz"), *CUBIC_X2]) == 1
    _error_line(capsys, "sr.nii.gz", f"{blocker} is a file")
    manifest = _manifest(tmp_path / "m.csv", [{"subject_id": "s", "lr": str(nifti_file)}])
    assert main(["infer", "--manifest", str(manifest), "--output-dir", str(blocker / "sr"), *CUBIC_X2]) == 1
    _error_line(capsys, f"{blocker} is a file")


def test_empty_manifest_names_the_file(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "empty.csv"
    manifest.write_bytes(b"")
    assert main(["degrade", "--manifest", str(manifest), "--output-dir", str(tmp_path / "o"), "--protocol", "blur-x2"]) == 1
    _error_line(capsys, "empty.csv", "empty file")


def test_zero_size_axis_is_reported_as_such(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path / "empty_axis.nii.gz", np.zeros((0, 8, 8)))
    assert main(["infer", str(source), "-o", str(tmp_path / "sr.nii.gz"), *CUBIC_X2]) == 1
    _error_line(capsys, "empty_axis.nii.gz", "axis of 0 voxels", "(0, 8, 8)")


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
@pytest.mark.parametrize("output", ["sr.mha", "sr.nii.gz/"])
def test_output_is_checked_before_the_input_is_read(tmp_path: Path, command: list[str], output: str, capsys) -> None:
    """A missing input with a bad output reports the output: it was checked first."""
    (tmp_path / "sr.nii.gz").mkdir()
    assert main([command[0], str(tmp_path / "missing.nii.gz"), "-o", str(tmp_path / output), *command[1:]]) == 1
    line = _error_line(capsys)
    assert "missing.nii.gz" not in line and ("must end in .nii" in line or "is a folder" in line)


def test_no_computation_before_the_output_check(nifti_file: Path, tmp_path: Path) -> None:
    def never(*_args: object) -> None:
        raise AssertionError("computed before checking the output")

    with pytest.raises(OutputPathError, match="must end in"):
        super_resolve_file(never, nifti_file, tmp_path / "sr.nrrd", scale=[2, 2, 1])
    with pytest.raises(OutputPathError, match="must end in"):
        degrade_file(never, nifti_file, tmp_path / "lr.mha")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_unwritable_output_folder(nifti_file: Path, tmp_path: Path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["infer", str(nifti_file), "-o", str(locked / "sr.nii.gz"), *CUBIC_X2]) == 1
    _error_line(capsys, "sr.nii.gz", "not writable")


def test_an_unexpected_error_is_still_one_line(monkeypatch: pytest.MonkeyPatch, nifti_file: Path, tmp_path: Path, capsys):
    import pipeline.cli.infer as infer_cli

    args = ["infer", str(nifti_file), "-o", str(tmp_path / "sr.nii.gz"), *CUBIC_X2]
    monkeypatch.setattr(infer_cli, "load_adaptable_method", _raises(MemoryError()))
    assert main(args) == 1
    _error_line(capsys, "not enough memory")
    monkeypatch.setattr(infer_cli, "load_adaptable_method", lambda *a, **k: make_baseline("cubic"))
    monkeypatch.setattr(infer_cli, "run_single_or_cohort", _raises(KeyError("lost key")))
    assert main(args) == 1  # caught by main itself
    _error_line(capsys, "KeyError", "lost key")


# 13. a '#' in a manifest path ---------------------------------------------------------------------


def test_hash_in_manifest_paths_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "scan#1"
    folder.mkdir()
    _write(folder / "lr.nii.gz", blob_volume((8, 8, 6)))
    manifest = _manifest(tmp_path / "m.csv", [{"subject_id": "a#1", "lr": "scan#1/lr.nii.gz", "note": "x # y"}])
    out = tmp_path / "out"
    assert main(["infer", "--manifest", str(manifest), "--output-dir", str(out), *CUBIC_X2, "--no-progress"]) == 0
    assert nib.load(str(out / "a_1_sr-cubic.nii.gz")).shape == (16, 16, 6)


# 14. stale temporaries are swept by every command; data reach the disk before the rename ------------


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_rerun_removes_temporaries_of_a_killed_run(tmp_path: Path, command: list[str]) -> None:
    source = _write(tmp_path / "in.nii.gz", _brain((24, 24, 24)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name in (".sr.0123abcd.tmp.nii.gz", ".sr.89abcdef.tmp.json", ".sr_mask.0a1b2c3d.tmp.nii.gz"):
        (out_dir / name).write_bytes(b"partial")
    if command[0] != "preprocess":
        (out_dir / ".sr_mask.0a1b2c3d.tmp.nii.gz").unlink()  # only preprocess writes a mask
    assert main([command[0], str(source), "-o", str(out_dir / "sr.nii.gz"), *command[1:]]) == 0
    assert not _temporaries(tmp_path)


def test_atomic_write_syncs_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    with atomic_path(tmp_path / "x.json") as tmp:
        tmp.write_text("{}")
    assert events[:2] == ["fsync", "replace"] and (tmp_path / "x.json").read_text() == "{}"
