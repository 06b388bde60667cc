# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Atomic file writing: write to a temporary name in the destination folder, then rename.

A crash or a kill while writing leaves the destination untouched (either absent or the previous
complete file), never a truncated file.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "ensure_not_input"]


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
    suffix = "".join(dest.suffixes[-2:]) if dest.name.endswith(".nii.gz") else dest.suffix
    stem = dest.name[: len(dest.name) - len(suffix)] if suffix else dest.name
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
