# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Atomic file writing: write to a temporary name in the destination folder, then rename.

A crash or a kill while writing leaves the destination untouched (either absent or the previous
complete file), never a truncated file. The data are flushed to disk (``fsync``) before the
rename, so a power cut cannot leave a renamed but empty file either. The temporaries a killed run
left beside a destination are removed when that destination is written again. Temporary names
stay short whatever the destination's (a long stem is cut and given a digest), and a system
error while writing (a full disk, a file too large) names the destination.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pipeline.io.errors import OutputPathError

__all__ = [
    "atomic_path",
    "atomic_torch_save",
    "atomic_write_text",
    "atomic_write_json",
    "ensure_not_input",
    "read_json",
    "remove_stale_temporaries",
    "same_file",
    "split_name",
]

_MAX_TEMPORARY_STEM = 64  # bytes of a destination's stem kept in its temporary names (file names hold 255)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file: same resolved path, or (both existing) one inode.

    The inode test catches hard links and case-insensitive file systems (``LR.nii`` = ``lr.nii``).
    """
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.resolve() == pb.resolve():
        return True
    return pa.exists() and pb.exists() and os.path.samefile(pa, pb)


def ensure_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Raise ``FileExistsError`` if ``output`` is the same file as any of ``inputs``.

    Inputs are never overwritten: a typo that names an input file as the output must fail, not
    destroy data.
    """
    for candidate in inputs:
        if candidate is not None and str(candidate) != "" and same_file(output, candidate):
            raise FileExistsError(f"{output}: refusing to write over an input file")


def split_name(dest: Path) -> tuple[str, str]:
    """(stem, suffix) of a destination; ``.nii.gz`` counts as one suffix."""
    suffix = "".join(dest.suffixes[-2:]) if dest.name.endswith(".nii.gz") else dest.suffix
    return (dest.name[: len(dest.name) - len(suffix)] if suffix else dest.name), suffix


def _temporary_stem(stem: str) -> str:
    """``stem`` as the temporaries of its destination show it: itself, or when longer than
    ``_MAX_TEMPORARY_STEM`` bytes its start and a digest of the whole (distinct stems stay distinct)."""
    encoded = stem.encode()
    if len(encoded) <= _MAX_TEMPORARY_STEM:
        return stem
    digest = hashlib.sha256(encoded).hexdigest()[:8]
    return f"{encoded[: _MAX_TEMPORARY_STEM - 9].decode(errors='ignore')}~{digest}"


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_path` left beside ``path`` when a run was killed.

    A SIGKILL (or a power cut) skips the clean-up, leaving hidden ``.<stem>.<8 hex>.tmp<suffix>``
    files (a long stem shortened, see :func:`_temporary_stem`); :func:`atomic_path` calls this
    before it writes ``path`` again. Returns the removed paths.
    """
    dest = Path(path)
    if not dest.parent.is_dir():
        return []
    stem, suffix = split_name(dest)
    pattern = re.compile(rf"\.{re.escape(_temporary_stem(stem))}\.[0-9a-f]{{8}}\.tmp{re.escape(suffix)}")
    stale = [p for p in dest.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _fsync(path: Path, flags: int = os.O_RDWR) -> None:
    """Flush what was written to ``path`` to disk."""
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename) to disk, where the system allows it.

    POSIX systems do; Windows cannot open a folder and some network file systems refuse the
    call: the rename is then as durable as the system makes it.
    """
    try:
        _fsync(folder, os.O_RDONLY)
    except OSError:
        pass


def _is_write_error(err: OSError, tmp: Path) -> bool:
    """True for a system error writing ``tmp`` (a full disk, a file too large...), not one about another file."""
    return err.errno is not None and (err.filename is None or str(err.filename) == str(tmp))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffixes); rename it onto ``path`` on success.

    Before: parent folders are created and the temporaries of ``path`` that a killed run left are
    removed (:func:`remove_stale_temporaries`). On success the temporary file is flushed to disk,
    renamed onto ``path`` and the rename flushed. The temporary file is removed if the body raises.

    Raises:
        OutputPathError: a system error while writing, flushing or renaming the temporary file
            (``ENOSPC``, ``EFBIG``...), naming ``path``; other errors of the body pass unchanged.

    Example::

        with atomic_path("out/sr.nii.gz") as tmp:
            nib.save(img, tmp)
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest)
    stem, suffix = split_name(dest)
    tmp = dest.with_name(f".{_temporary_stem(stem)}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, dest)
        _fsync_folder(dest.parent)
    except OSError as err:
        if not _is_write_error(err, tmp):
            raise
        raise OutputPathError(dest, f"cannot be written: {err.strerror or err}") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def _atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    return _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    """The JSON document at ``path`` (UTF-8); ``ValueError`` naming the file when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, the same bytes for the same tensors wherever it is saved.

    ``torch.save`` to a path names the zip archive inside after the file, here a random temporary name, so
    two saves of equal weights would differ byte for byte (and in SHA-256); saving through an open file
    gives the archive torch's fixed default name.
    """
    import torch  # here, not at the top: the rest of pipeline.io does not need torch

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as stream:
            torch.save(obj, stream)

    return _atomic_write(path, save)
