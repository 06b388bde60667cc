# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Atomic file writing: write to a temporary name in the destination folder, then rename.

A crash or a kill while writing leaves the destination untouched (either absent or the previous
complete file), never a truncated file.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "ensure_not_input", "remove_stale_temporaries"]


def ensure_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Raise ``FileExistsError`` if ``output`` is the same file as any of ``inputs``.

    Inputs are never overwritten: a typo that names an input file as the output must fail, not
    destroy data.
    """
    out = Path(output).expanduser().resolve()
    for candidate in inputs:
        if candidate is None or str(candidate) == "":
            continue
        if Path(candidate).expanduser().resolve() == out:
            raise FileExistsError(f"{output}: refusing to write over an input file")


def _split_name(dest: Path) -> tuple[str, str]:
    """(stem, suffix) of a destination; ``.nii.gz`` counts as one suffix."""
    suffix = "".join(dest.suffixes[-2:]) if dest.name.endswith(".nii.gz") else dest.suffix
    return (dest.name[: len(dest.name) - len(suffix)] if suffix else dest.name), suffix


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_path` left beside ``path`` when a run was killed.

    A SIGKILL (or a power cut) skips the clean-up, leaving hidden ``.<stem>.<8 hex>.tmp<suffix>``
    files; a rerun that writes ``path`` again calls this first. Returns the removed paths.
    """
    dest = Path(path)
    if not dest.parent.is_dir():
        return []
    stem, suffix = _split_name(dest)
    pattern = re.compile(rf"\.{re.escape(stem)}\.[0-9a-f]{{8}}\.tmp{re.escape(suffix)}")
    stale = [p for p in dest.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffixes); rename it onto ``path`` on success.

    The temporary file is removed if the body raises. Parent folders are created.

    Example::

        with atomic_path("out/sr.nii.gz") as tmp:
            nib.save(img, tmp)
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stem, suffix = _split_name(dest)
    tmp = dest.with_name(f".{stem}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, dest)
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


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
