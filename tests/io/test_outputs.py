"""Output checks before computing, one-line error messages, masks, and atomic writes that survive a crash."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.inference.device import resolve_device
from pipeline.io import (
    InvalidVolumeError,
    OutputPathError,
    atomic_write_text,
    check_output_folder,
    check_output_path,
    check_outputs,
    error_message,
    load_mask,
    load_volume,
    same_file,
    sidecar_path,
)
from tests.conftest import blob_volume
from tests.utils import write_nifti


@pytest.mark.parametrize(
    "name, sidecar",
    [("a.nii.gz", "a.json"), ("a.nii", "a.json"), ("a.b.mha", "a.b.json"), ("dicom_dir", "dicom_dir.json")],
)
def test_sidecar_path(name: str, sidecar: str) -> None:
    assert sidecar_path(Path("x") / name) == Path("x") / sidecar


def test_check_output_path(tmp_path: Path) -> None:
    check_output_path(tmp_path / "new" / "deeper" / "sr.nii.gz")  # folders to be created are fine
    assert not (tmp_path / "new").exists()
    with pytest.raises(OutputPathError, match="must end in .nii or .nii.gz"):
        check_output_path(tmp_path / "sr.nii.gz.bak")
    (tmp_path / "dir.nii").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_path(tmp_path / "dir.nii")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match=f"{tmp_path / 'file'} is a file"):
        check_output_path(tmp_path / "file" / "sub" / "sr.nii.gz")
    with pytest.raises(OutputPathError, match="is a file"):
        check_output_folder(tmp_path / "file" / "out")
    check_output_folder(tmp_path / "out")


def test_check_outputs_protects_inputs_and_their_sidecars(tmp_path: Path) -> None:
    source = tmp_path / "lr.nii.gz"
    source.write_bytes(b"")
    with pytest.raises(FileExistsError, match="refusing to write over the input$"):
        check_outputs([source], [source])
    with pytest.raises(FileExistsError, match="lr.json: refusing to write over the sidecar of the input"):
        check_outputs([tmp_path / "lr.nii"], [source])
    with pytest.raises(FileExistsError, match="m.json: refusing to write over the sidecar"):
        check_outputs([tmp_path / "sr.nii.gz", tmp_path / "m.nii"], [source, tmp_path / "m.nii.gz"])
    check_outputs([tmp_path / "sr.nii.gz"], [source, None])


def test_same_file_sees_links(tmp_path: Path) -> None:
    target = tmp_path / "a.nii.gz"
    target.write_bytes(b"x")
    (tmp_path / "link.nii.gz").symlink_to(target)
    os.link(target, tmp_path / "hard.nii.gz")
    assert same_file(tmp_path / "link.nii.gz", target) and same_file(tmp_path / "hard.nii.gz", target)
    assert same_file(tmp_path / "sub" / ".." / "a.nii.gz", target)
    assert not same_file(tmp_path / "b.nii.gz", target)


@pytest.mark.parametrize(
    "err, message",
    [
        (FileNotFoundError("x.nii: no such file or folder"), "x.nii: no such file or folder"),
        (NotADirectoryError(20, "Not a directory", "out/sr.nii"), "out/sr.nii: Not a directory"),
        (MemoryError(), "not enough memory"),
        (ValueError("first line\n  second line"), "first line second line"),
        (KeyError("k"), "'k'"),
        (AssertionError(), "AssertionError"),
    ],
)
def test_error_message_is_one_nonempty_line(err: BaseException, message: str) -> None:
    assert error_message(err) == message


def test_error_message_unwraps_bundle_config_errors() -> None:
    try:
        try:
            raise FileNotFoundError("lr.nii.gz: no such file or folder")
        except FileNotFoundError as cause:
            raise RuntimeError("Failed to evaluate ConfigExpression: $pipeline...") from cause
    except RuntimeError as err:
        assert error_message(err) == "lr.nii.gz: no such file or folder"


def test_load_mask(tmp_path: Path) -> None:
    image = load_volume(write_nifti(tmp_path / "t1.nii.gz", blob_volume((8, 9, 10))))
    mask = load_mask(write_nifti(tmp_path / "ones.nii.gz", np.ones((8, 9, 10), np.float32)), image)
    assert mask.dtype == torch.bool and bool(mask.all()) and mask.shape == image.shape
    rounding = np.eye(4)
    rounding[0, 3] = 1e-5
    rounded = write_nifti(tmp_path / "round.nii.gz", np.ones((8, 9, 10), np.float32), rounding)
    assert load_mask(rounded, image).shape == image.shape
    with pytest.raises(InvalidVolumeError, match="empty mask"):
        load_mask(write_nifti(tmp_path / "zeros.nii.gz", np.zeros((8, 9, 10), np.float32)), image)
    with pytest.raises(InvalidVolumeError, match=r"mask shape \(8, 9, 9\) differs"):
        load_mask(write_nifti(tmp_path / "small.nii.gz", np.ones((8, 9, 9), np.float32)), image)
    shifted = np.diag([1.0, 1.0, 2.0, 1.0])
    with pytest.raises(InvalidVolumeError, match="another grid"):
        load_mask(write_nifti(tmp_path / "shifted.nii.gz", np.ones((8, 9, 10), np.float32), shifted), image)


@pytest.mark.parametrize(
    "device, message", [("tpu9", "not a device"), ("meta", "not supported"), ("cuda:x", "not a device")]
)
def test_resolve_device_rejects_unknown_devices(device: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_device(device)
    assert resolve_device("cpu") == torch.device("cpu")


def test_atomic_write_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / ".notes.0123abcd.tmp.txt").write_text("from a killed run")
    atomic_write_text(tmp_path / "notes.txt", "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
