"""Bad and awkward inputs (issue 15): no silent wrong result, no traceback, no lost file.

Each test is a case of the corpus that once exited 0 with a wrong result, ended in a traceback or
gave an unclear message, numbered by the issue's item. Every failure must be one line
``mrisr: error: <file>: <problem>`` with exit code 1, write no output and leave no temporary file.
All volumes are small and synthetic.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
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
from tests.utils import write_manifest, write_nifti

SRCNN_BUNDLE = REPO_ROOT / "bundles" / "srcnn"
CUBIC_X2 = ["--method", "cubic", "--zoom", "2", "2", "1"]
COMMANDS = [["infer", *CUBIC_X2], ["degrade", "--protocol", "blur-x2"], ["preprocess", "--no-n4"]]
COMMAND_IDS = ["infer", "degrade", "preprocess"]


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
    changes = {"minus_400": (-400.0, 1.0), "z_score": (-mean / sd, 1 / sd), "all_negative": (-300.0, 0.7)}
    offset, factor = changes[change]
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
        source = write_nifti(tmp_path / f"{name}.nii.gz", data, dtype=np.float32)
        out = tmp_path / f"sr_{name}.nii.gz"
        args = ["infer", str(source), "-o", str(out), "--method", "srcnn", "--zoom", "2", "2", "1"]
        assert main([*args, "--device", "cpu", "--precision", "fp32"]) == 0
        sr[name] = np.asanyarray(nib.load(str(out)).dataobj)
    negative_input = positive * factor - 300.0
    assert abs(sr["negative"].mean() - negative_input.mean()) < 0.02 * abs(negative_input.mean())
    np.testing.assert_allclose(sr["negative"], sr["positive"] * factor - 300.0, rtol=0, atol=1e-3)


# 2. an output's sidecar may not replace an input's sidecar ----------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_output_sidecar_never_replaces_the_input_sidecar(tmp_path: Path, command: list[str], capsys) -> None:
    source = write_nifti(tmp_path / "lr.nii.gz", _brain((24, 24, 24)))
    record = tmp_path / "lr.json"
    record.write_text('{"degradation": "the record of how lr.nii.gz was made"}')
    before = record.read_bytes()
    assert main([command[0], str(source), "-o", str(tmp_path / "lr.nii"), *command[1:]]) == 1
    _error_line(capsys, "lr.json", "sidecar of the input")
    assert record.read_bytes() == before and not (tmp_path / "lr.nii").exists()


# 3. scan ids that clean to one file name --------------------------------------------------------


@pytest.mark.parametrize("ids", [("s/1", "s_1"), ("Sub01", "sub01")])
def test_scan_ids_colliding_as_file_names_fail_thewrite_manifest(tmp_path: Path, ids: tuple[str, str], capsys) -> None:
    for i in range(2):
        write_nifti(tmp_path / f"v{i}.nii.gz", blob_volume((8, 8, 6), seed=i))
    manifest = write_manifest(tmp_path / "m.csv", [{"subject_id": s, "lr": f"v{i}.nii.gz"} for i, s in enumerate(ids)])
    out = tmp_path / "out"
    assert main(["infer", "--manifest", str(manifest), "--output-dir", str(out), *CUBIC_X2, "--no-progress"]) == 1
    _error_line(capsys, "m.csv", repr(ids[0]), repr(ids[1]))
    assert not out.exists() or not list(out.glob("*.nii.gz"))


# 4. resume skips only outputs made the same way that read back completely -------------------------


def test_resume_redoes_outputs_made_otherwise_or_truncated(tmp_path: Path, capsys) -> None:
    for i in range(2):
        write_nifti(tmp_path / f"s{i}.nii.gz", blob_volume((8, 10, 6), seed=i))
    manifest = write_manifest(tmp_path / "m.csv", [{"subject_id": f"s{i}", "lr": f"s{i}.nii.gz"} for i in range(2)])
    out = tmp_path / "out"
    base = ["infer", "--manifest", str(manifest), "--output-dir", str(out), "--method", "linear", "--no-progress"]

    def run(*extra: str) -> str:
        assert main([*base, *extra]) == 0
        return capsys.readouterr().out

    assert "2 done, 0 skipped" in run("--zoom", "2", "2", "1")
    assert "0 done, 2 skipped" in run("--zoom", "2", "2", "1")
    assert "2 done, 0 skipped" in run("--zoom", "3", "3", "1")  # other parameters: redone
    assert nib.load(str(out / "s0_sr-linear.nii.gz")).shape == (24, 30, 6)
    sidecar = out / "s1_sr-linear.json"
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**record, "precision": "bf16", "device": "cuda:0"}))  # another machine
    assert "0 done, 2 skipped" in run("--zoom", "3", "3", "1")
    other_bundle = {**record["parameters"], "bundle": {"name": "x", "version": "0.0.1"}}
    sidecar.write_text(json.dumps({**record, "parameters": other_bundle}))
    image = out / "s0_sr-linear.nii.gz"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])  # truncated by hand, sidecar intact
    assert "2 done, 0 skipped" in run("--zoom", "3", "3", "1")
    assert np.asanyarray(nib.load(str(image)).dataobj).shape == (24, 30, 6)
    assert "2 done, 0 skipped" in run("--zoom", "3", "3", "1", "--overwrite")


def test_a_rewrite_killed_before_its_sidecar_is_not_complete(nifti_file: Path, tmp_path: Path, monkeypatch) -> None:
    """The old sidecar goes before the new image is written: it cannot vouch for the new one."""
    import pipeline.inference.sidecar as sidecar

    out = tmp_path / "sr.nii.gz"
    super_resolve_file(make_baseline("cubic"), nifti_file, out, zoom=[2, 2, 1])
    cubic = inference_parameters(make_baseline("cubic"), nifti_file, zoom=[2, 2, 1])
    assert output_is_complete(out, cubic)
    monkeypatch.setattr(sidecar, "atomic_write_json", _raises(KeyboardInterrupt()))  # killed after the image
    with pytest.raises(KeyboardInterrupt):
        super_resolve_file(make_baseline("linear"), nifti_file, out, zoom=[2, 2, 1])
    assert out.exists() and not output_is_complete(out, cubic)


# 5. and 12. masks: on the image's grid, and all ones is valid --------------------------------------


def test_preprocess_rejects_a_mask_on_a_shifted_grid(tmp_path: Path, capsys) -> None:
    source = write_nifti(tmp_path / "t1.nii.gz", _brain((24, 24, 24)))
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    mask = write_nifti(tmp_path / "mask.nii.gz", _brain((24, 24, 24)) > 0, shifted, dtype=np.float32)
    out = tmp_path / "out" / "pre.nii.gz"
    assert main(["preprocess", str(source), "-o", str(out), "--mask", str(mask), "--no-n4"]) == 1
    _error_line(capsys, "mask.nii.gz", "another grid")
    assert not out.exists()


def test_preprocess_accepts_an_all_ones_mask_and_rejects_an_empty_one(tmp_path: Path, capsys) -> None:
    source = write_nifti(tmp_path / "t1.nii.gz", blob_volume((20, 20, 20)))
    ones = write_nifti(tmp_path / "ones.nii.gz", np.ones((20, 20, 20)), dtype=np.float32)
    out = tmp_path / "pre.nii.gz"
    assert main(["preprocess", str(source), "-o", str(out), "--mask", str(ones), "--no-n4"]) == 0
    assert nib.load(str(out)).shape == (20, 20, 20)
    capsys.readouterr()
    empty = write_nifti(tmp_path / "empty.nii.gz", np.zeros((20, 20, 20)), dtype=np.float32)
    assert main(["preprocess", str(source), "-o", str(tmp_path / "pre2.nii.gz"), "--mask", str(empty), "--no-n4"]) == 1
    _error_line(capsys, "empty.nii.gz", "empty mask")


# 6. degrade refuses inputs too small for the degradation -------------------------------------------


@pytest.mark.parametrize(
    "shape, model",
    [
        ((3, 3, 5), ["--protocol", "bicubic-x2"]),
        ((3, 3, 5), ["--protocol", "bicubic-x4"]),
        ((5, 5, 4), ["--model", "thick-slice", "--thickness", "6", "--axes", "2"]),
    ],
)
def test_degrade_refuses_tiny_inputs(tmp_path: Path, shape: tuple[int, ...], model: list[str], capsys) -> None:
    source = write_nifti(tmp_path / "tiny.nii.gz", np.random.default_rng(0).random(shape), dtype=np.float32)
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
        "2d": write_nifti(folder / "flat.nii.gz", np.ones((8, 8)), dtype=np.float32),
        "4d": write_nifti(folder / "four.nii.gz", np.random.default_rng(0).random((8, 8, 8, 2)), dtype=np.float32),
        "zero": write_nifti(folder / "zero.nii.gz", np.zeros((8, 8, 8)), dtype=np.float32),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "text", "2d", "4d", "zero", "no_output", "output_is_input"])
def test_bundle_run_errors_are_one_line(tmp_path: Path, case: str, capsys) -> None:
    good = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4)))
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
    args = ["infer", str(nifti_file), "-o", str(tmp_path / "sr.nii.gz"), "--method", method, "--zoom", "2", "2", "1"]
    assert main([*args, "--device", device]) == 1
    _error_line(capsys, device)


# 11. messages that misled or said too little ------------------------------------------------------


def test_output_under_a_file_names_the_file(nifti_file: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    assert main(["infer", str(nifti_file), "-o", str(blocker / "sr.nii.gz"), *CUBIC_X2]) == 1
    _error_line(capsys, "sr.nii.gz", f"{blocker} is a file")
    manifest = write_manifest(tmp_path / "m.csv", [{"subject_id": "s", "lr": str(nifti_file)}])
    assert main(["infer", "--manifest", str(manifest), "--output-dir", str(blocker / "sr"), *CUBIC_X2]) == 1
    _error_line(capsys, f"{blocker} is a file")


def test_empty_manifest_names_the_file(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "empty.csv"
    manifest.write_bytes(b"")
    args = ["degrade", "--manifest", str(manifest), "--output-dir", str(tmp_path / "o"), "--protocol", "blur-x2"]
    assert main(args) == 1
    _error_line(capsys, "empty.csv", "empty file")


def test_zero_size_axis_is_reported_as_such(tmp_path: Path, capsys) -> None:
    source = write_nifti(tmp_path / "empty_axis.nii.gz", np.zeros((0, 8, 8)), dtype=np.float32)
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
        super_resolve_file(never, nifti_file, tmp_path / "sr.nrrd", zoom=[2, 2, 1])
    with pytest.raises(OutputPathError, match="must end in"):
        degrade_file(never, nifti_file, tmp_path / "lr.mha")


@pytest.fixture
def locked_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder no one may write in: mode 0o500, and for root, whom modes do not stop, ``os.access`` says so too."""
    if os.name != "posix":
        pytest.skip("needs POSIX permissions")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # CI runs as root: refuse it what the kernel refuses other users
        real_access = os.access

        def access(path: os.PathLike, mode: int, **kwargs: object) -> bool:
            return not (mode & os.W_OK and Path(path) == locked) and real_access(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", access)
    yield locked
    locked.chmod(0o700)


def test_unwritable_output_folder(nifti_file: Path, locked_folder: Path, capsys) -> None:
    assert main(["infer", str(nifti_file), "-o", str(locked_folder / "sr.nii.gz"), *CUBIC_X2]) == 1
    _error_line(capsys, "sr.nii.gz", "not writable")
    assert not list(locked_folder.iterdir())


def test_an_unexpected_error_is_still_one_line(
    monkeypatch: pytest.MonkeyPatch, nifti_file: Path, tmp_path: Path, capsys
):
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
    write_nifti(folder / "lr.nii.gz", blob_volume((8, 8, 6)))
    manifest = write_manifest(tmp_path / "m.csv", [{"subject_id": "a#1", "lr": "scan#1/lr.nii.gz", "note": "x # y"}])
    out = tmp_path / "out"
    assert main(["infer", "--manifest", str(manifest), "--output-dir", str(out), *CUBIC_X2, "--no-progress"]) == 0
    assert nib.load(str(out / "a_1_sr-cubic.nii.gz")).shape == (16, 16, 6)


# 14. stale temporaries are swept by every command; data reach the disk before the rename ------------


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_rerun_removes_temporaries_of_a_killed_run(tmp_path: Path, command: list[str]) -> None:
    source = write_nifti(tmp_path / "in.nii.gz", _brain((24, 24, 24)))
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


# Issue 26: failures a pipeline sees are one line, and nothing is misread ---------------------------


def _fails_with(capsys: pytest.CaptureFixture, message: str, output: Path) -> None:
    """Stderr holds one error line, ``mrisr: error: <message>``, and no traceback; no ``output``, no temporary."""
    assert _error_line(capsys) == f"mrisr: error: {message}"
    assert not output.exists() and not _temporaries(output.parent if output.parent.exists() else output.parents[1])


def _unchanged(*paths: Path) -> dict[Path, bytes]:
    """The contents of ``paths``, to compare before and after a command."""
    return {path: path.read_bytes() for path in paths}


class _RunsCode:
    """A pickled object that, loaded without ``weights_only``, would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _srcnn_copy(root: Path, weights: bytes | None) -> Path:
    """The srcnn bundle's configs at ``root`` with ``weights`` as its ``models/model.pt`` (none for ``None``)."""
    shutil.copytree(SRCNN_BUNDLE / "configs", root / "configs")
    (root / "models").mkdir()
    if weights is not None:
        (root / "models" / "model.pt").write_bytes(weights)
    return root


def _bad_weights(case: str, folder: Path) -> bytes | None:
    """A ``model.pt`` of the kind ``case`` (``None``: no file); a malicious one would write in ``folder``."""
    good = (SRCNN_BUNDLE / "models" / "model.pt").read_bytes()
    if case == "malicious":
        return pickle.dumps(_RunsCode(folder / "ran.txt"), protocol=2)
    if case == "foreign":  # another network's weights
        buffer = io.BytesIO()
        torch.save({"w": torch.zeros(1)}, buffer)
        return buffer.getvalue()
    return {"missing": None, "empty": b"", "truncated": good[: len(good) // 2], "good": good}[case]


WEIGHT_PROBLEMS = {
    "missing": "no trained weights",
    "empty": "empty file (0 bytes), not trained weights",
    "truncated": "not a readable PyTorch checkpoint (truncated or corrupt file?)",
    "malicious": "refused: it holds Python objects besides weights, and loading them could run code",
    "foreign": "its weights do not fit the network SRCNN: Error(s) in loading state_dict for SRCNN: Missing key(s) in "
    'state_dict: "layers.0.conv.weight", "layers.0.conv.bias", "layers.1.conv.weight", "layers.1.conv.bias", '
    '"layers.2.conv.weight", "layers.2.conv.bias". Unexpected key(s) in state_dict: "w".',
}
NO_CUDA = "CUDA is not available on this machine; use --device cpu"
DEVICE_PROBLEMS = {
    "tpu9": "--device 'tpu9' is not a device; use auto, cpu, cuda or cuda:N",
    "cuda:x": "--device 'cuda:x' is not a device; use auto, cpu, cuda or cuda:N",
    **(
        {"cuda:99": f"device cuda:99 asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)"}
        if torch.cuda.is_available()
        else {"cuda": f"device cuda asked for, but {NO_CUDA}", "cuda:0": f"device cuda:0 asked for, but {NO_CUDA}"}
    ),
}


def _run_bundle(root: Path, source: Path, output: Path, device: str) -> None:
    """``python -m monai.bundle run`` of the bundle at ``root``, in this process; it must exit with code 1."""
    workflow = ConfigWorkflow(
        config_file=str(root / "configs" / "inference.json"),
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=None,
        bundle_root=str(root),
        device=device,
        input_image=str(source),
        output_image=str(output),
    )
    workflow.initialize()
    with pytest.raises(SystemExit) as exit_info:
        workflow.run()
    assert exit_info.value.code == 1


@pytest.mark.parametrize("case", list(WEIGHT_PROBLEMS))
def test_bundle_run_with_bad_weights_is_one_line(tmp_path: Path, case: str, capsys) -> None:
    root = _srcnn_copy(tmp_path / "bundle", _bad_weights(case, tmp_path))
    source, output = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4))), tmp_path / "out" / "sr.nii.gz"
    before = _unchanged(source)
    _run_bundle(root, source, output, "$torch.device('cpu')")
    _fails_with(capsys, f"{root / 'models' / 'model.pt'}: {WEIGHT_PROBLEMS[case]}", output)
    assert _unchanged(source) == before and not (tmp_path / "ran.txt").exists()


@pytest.mark.parametrize("device", list(DEVICE_PROBLEMS))
def test_bundle_run_on_an_absent_device_is_one_line(tmp_path: Path, device: str, capsys) -> None:
    root = _srcnn_copy(tmp_path / "bundle", _bad_weights("good", tmp_path))
    source, output = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4))), tmp_path / "sr.nii.gz"
    _run_bundle(root, source, output, device)
    _fails_with(capsys, DEVICE_PROBLEMS[device], output)


def test_bundle_command_line_with_truncated_weights(tmp_path: Path) -> None:
    root = _srcnn_copy(tmp_path / "bundle", _bad_weights("truncated", tmp_path))
    source, output = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4))), tmp_path / "sr.nii.gz"
    command = [sys.executable, "-m", "monai.bundle", "run", "--bundle_root", str(root), "--device", "cpu"]
    command += ["--config_file", str(root / "configs" / "inference.json"), "--input_image", str(source)]
    command += ["--output_image", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    checkpoint = root / "models" / "model.pt"
    assert result.stderr.strip().splitlines()[-1] == f"mrisr: error: {checkpoint}: {WEIGHT_PROBLEMS['truncated']}"
    assert not output.exists()


@pytest.mark.parametrize("case", ["empty", "truncated", "malicious"])
def test_infer_with_a_bundle_folder_of_bad_weights_names_model_pt(tmp_path: Path, case: str, capsys) -> None:
    root = _srcnn_copy(tmp_path / "bundle", _bad_weights(case, tmp_path))
    source, output = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4))), tmp_path / "sr.nii.gz"
    assert main(["infer", str(source), "-o", str(output), "--method", str(root), *CUBIC_X2[2:], "--device", "cpu"]) == 1
    _fails_with(capsys, f"{root / 'models' / 'model.pt'}: {WEIGHT_PROBLEMS[case]}", output)


@pytest.mark.parametrize(
    "rows, line, width, others",
    [
        ("s0,v0.nii.gz,\ns1,v1.nii.gz,\n", 2, 3, "; 1 other line(s) differ too"),  # pandas took column 1 as the index
        ("s0,v0.nii.gz\ns1,v1.nii.gz,extra\n", 3, 3, ""),
    ],
    ids=["trailing_commas", "one_wide_row"],
)
def test_manifest_rows_wider_than_the_header_name_the_line(
    tmp_path: Path, rows: str, line: int, width: int, others: str, capsys
) -> None:
    for i in range(2):
        write_nifti(tmp_path / f"v{i}.nii.gz", blob_volume((8, 8, 6), seed=i))
    manifest = tmp_path / "m.csv"
    manifest.write_text("subject_id,lr\n" + rows)
    out = tmp_path / "out"
    assert main(["infer", "--manifest", str(manifest), "--output-dir", str(out), *CUBIC_X2, "--no-progress"]) == 1
    problem = f"line {line} has {width} fields but the header has 2 (a trailing comma?){others}"
    advice = "give every row one value per column (quote values that hold commas)"
    _fails_with(capsys, f"{manifest}: {problem}; {advice}", out)


def _itk_files(folder: Path) -> dict[str, Path]:
    """MetaImage/NRRD files whose headers lie: huge sizes, truncated data, a missing data file."""
    import itk

    image = itk.image_from_array(blob_volume((6, 8, 10)))  # ITK's (x, y, z) = (10, 8, 6)
    for name, compressed in (("raw.mha", False), ("zip.mha", True), ("raw.nrrd", False), ("raw.mhd", False)):
        itk.imwrite(image, str(folder / name), compression=compressed)
    raw_mha, zip_mha, nrrd = ((folder / n).read_bytes() for n in ("raw.mha", "zip.mha", "raw.nrrd"))
    files = {
        "huge.mha": raw_mha.replace(b"DimSize = 10 8 6", b"DimSize = 32767 32767 32767"),
        "huge.nrrd": nrrd.replace(b"sizes: 10 8 6", b"sizes: 32767 32767 32767"),
        "truncated.mha": raw_mha[:-100],
        "truncated_zip.mha": zip_mha[:-200],
        "no_data.mhd": (folder / "raw.mhd").read_bytes().replace(b"raw.raw", b"absent.raw"),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {name: folder / name for name in files}


HUGE = "header claims shape (32767, 32767, 32767) (140.7 TB), more than the 1.9 KB of data in the file can hold"
ITK_PROBLEMS = {
    "huge.mha": HUGE,
    "huge.nrrd": HUGE,
    "truncated.mha": "header claims shape (10, 8, 6) (1.9 KB), more than the 1.8 KB of data in the file can hold",
    "truncated_zip.mha": "header claims shape (10, 8, 6) (1.9 KB, {stored} compressed), more than the {held} of "
    "compressed data in the file can hold",
}


@pytest.mark.parametrize("name", [*ITK_PROBLEMS, "no_data.mhd"])
def test_itk_headers_that_lie_are_named(tmp_path: Path, name: str, capsys) -> None:
    """Once an allocation failure, or "No such file or directory" for a file that exists."""
    source = _itk_files(tmp_path)[name]
    before = _unchanged(source)
    output = tmp_path / "out" / "sr.nii.gz"
    assert main(["infer", str(source), "-o", str(output), *CUBIC_X2]) == 1
    if name == "no_data.mhd":
        problem = f"its data file {tmp_path / 'absent.raw'} does not exist (the header's 'ElementDataFile')"
    else:
        zipped = (tmp_path / "zip.mha").read_bytes()
        stored = int(zipped.split(b"CompressedDataSize = ")[1].split(b"\n")[0])  # 200 bytes more than are left
        assert 1200 <= stored < 100_000  # shown in KB, to 0.1 KB
        sizes = {"stored": f"{stored / 1000:.1f} KB", "held": f"{(stored - 200) / 1000:.1f} KB"}
        problem = ITK_PROBLEMS[name].format(**sizes) + ": truncated file or corrupt header"
    _fails_with(capsys, f"{source}: {problem}", output)
    assert _unchanged(source) == before


def test_a_full_disk_names_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import pipeline.io.writers as writers

    def file_too_large(_image: object, path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    source, output = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4))), tmp_path / "out" / "sr.nii.gz"
    before = _unchanged(source)
    monkeypatch.setattr(writers.nib, "save", file_too_large)
    assert main(["infer", str(source), "-o", str(output), *CUBIC_X2]) == 1
    _fails_with(capsys, f"{output}: cannot be written: File too large", output)
    assert _unchanged(source) == before


def test_zero_target_spacing_is_named(tmp_path: Path, capsys) -> None:
    source, output = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4))), tmp_path / "sr.nii.gz"
    assert main(["infer", str(source), "-o", str(output), "--method", "cubic", "--target-spacing", "0", "1", "1"]) == 1
    problem = "--target-spacing must be three positive spacings in mm, got [0.0, 1.0, 1.0]"
    _fails_with(capsys, f"{source}: {problem}", output)


def test_an_output_too_large_for_memory_names_the_file_and_zoom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import pipeline.inference.run as run

    monkeypatch.setattr(run, "_physical_memory", lambda: 16 * 10**9)
    source, output = write_nifti(tmp_path / "lr.nii.gz", blob_volume((40, 40, 40))), tmp_path / "sr.nii.gz"
    assert main(["infer", str(source), "-o", str(output), "--method", "cubic", "--zoom", "100", "100", "100"]) == 1
    size = "zoom 100 x 100 x 100 gives an output of shape (4000, 4000, 4000) (256.0 GB as float32)"
    memory = "more than this machine's 16.0 GB of memory; check --zoom or --target-spacing"
    _fails_with(capsys, f"{source}: {size}, {memory}", output)


class _OutOfMemory:
    """A method that runs out of memory as torch's CPU allocator does."""

    name = "oom"
    last_runtime_s = None

    def __call__(self, lr: MetaTensor, zoom: list[float]) -> MetaTensor:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")


def test_running_out_of_memory_names_the_file_and_zoom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import pipeline.cli.infer as infer_cli

    monkeypatch.setattr(infer_cli, "load_adaptable_method", lambda *a, **k: _OutOfMemory())
    source, output = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4))), tmp_path / "sr.nii.gz"
    assert main(["infer", str(source), "-o", str(output), *CUBIC_X2]) == 1
    problem = "super-resolving with zoom 2 x 2 x 1 to shape (16, 16, 4)"
    _fails_with(capsys, f"not enough memory: {source}: {problem}", output)


def test_evaluate_checks_its_output_folder_first(locked_folder: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import pipeline.evaluation.evaluate as evaluation

    monkeypatch.setattr(evaluation, "_score_rows", _raises(AssertionError("scored before checking the output folder")))
    write_nifti(tmp_path / "hr.nii.gz", _brain((24, 24, 24)))
    manifest = write_manifest(tmp_path / "m.csv", [{"subject_id": "s", "hr": "hr.nii.gz", "split": "test"}])
    out = locked_folder / "eval"
    args = ["evaluate", "--manifest", str(manifest), "--protocol", "bicubic-x2", "--methods", "cubic"]
    assert main([*args, "--output-dir", str(out), "--no-progress"]) == 1
    _fails_with(capsys, f"{out}: the folder {locked_folder} is not writable", out)


def test_a_legal_long_output_name_is_written(tmp_path: Path) -> None:
    """A 252-character name once failed: its temporary name overflowed the 255 characters a file name may have."""
    source = write_nifti(tmp_path / "lr.nii.gz", blob_volume((8, 8, 4)))
    output = tmp_path / "out" / ("s" * 245 + ".nii.gz")
    assert main(["infer", str(source), "-o", str(output), *CUBIC_X2]) == 0
    assert nib.load(str(output)).shape == (16, 16, 4) and output.with_name("s" * 245 + ".json").is_file()
    assert not _temporaries(tmp_path)


def test_long_names_keep_distinct_short_temporaries(tmp_path: Path) -> None:
    names = ["s" * 245 + ".nii.gz", "s" * 244 + "t.nii.gz"]
    with atomic_path(tmp_path / names[0]) as first, atomic_path(tmp_path / names[1]) as second:
        assert first.name.startswith(".") and len(first.name.encode()) < 100 and len(second.name.encode()) < 100
        assert first.name.split(".")[1] != second.name.split(".")[1]
        first.write_text("1")
        second.write_text("2")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_an_extreme_voxel_is_clipped_with_a_warning(tmp_path: Path) -> None:
    """A single 1e30 voxel once spread through the cubic B-spline prefilter over a whole slice, with exit code 0."""
    clean = _brain((20, 18, 6))
    spiked = clean.copy()
    spiked[3, 9, 3] = 1e30
    sources = {
        name: write_nifti(tmp_path / f"{name}.nii.gz", data) for name, data in (("clean", clean), ("spiked", spiked))
    }
    before = _unchanged(*sources.values())
    pattern = rf"{re.escape(str(sources['spiked']))}: 1 voxel\(s\) beyond 10 times the robust range"
    with pytest.warns(UserWarning, match=pattern):
        assert main(["infer", str(sources["spiked"]), "-o", str(tmp_path / "spiked_sr.nii.gz"), *CUBIC_X2]) == 0
    assert main(["infer", str(sources["clean"]), "-o", str(tmp_path / "clean_sr.nii.gz"), *CUBIC_X2]) == 0
    sr = {name: np.asanyarray(nib.load(str(tmp_path / f"{name}_sr.nii.gz")).dataobj) for name in sources}
    far = np.s_[2 * 10 :]  # 7 or more input voxels from the spike along axis 0
    assert np.abs(sr["spiked"] - sr["clean"])[far].max() < 1e-2 * clean.max()
    assert sr["spiked"].max() < 20 * clean.max() and _unchanged(*sources.values()) == before
