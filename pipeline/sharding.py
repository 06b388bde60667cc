# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Split a cohort run over processes (torchrun ranks or ``--shard K/N`` jobs) and find what they wrote.

- Rows: row ``i`` of the manifest (0-based, in file order, after the ``--split`` filter) goes to
  shard ``i mod N``. The assignment is deterministic (a rerun with the same N gives every shard the
  same rows) and shards differ by at most one row.
- Shards: ``--shard K/N`` runs shard K of N in this process, with no process group; K counts from 0
  like torchrun's ``RANK`` and Slurm's ``--array=0-(N-1)``. Under torchrun (``WORLD_SIZE`` > 1 in
  the environment) rank R of W joins a gloo process group and runs shard R of W; with ``--shard K/N``
  as well (a job array of torchrun jobs) it runs shard ``K·W + R`` of ``N·W``.
- Files: a shard writes its partial outputs in ``<output-dir>/shards/<k>-of-<n>/`` and, last,
  ``shard.json`` (the run's settings and the shard's rows): a shard is complete when its record
  exists and names the same settings as the others'.
- Merge (see :mod:`pipeline.cli.common`): under torchrun rank 0 merges after a barrier; with
  ``--shard`` the job that finds every shard complete merges, under a file lock, so the last one to
  finish does.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from pipeline.acceleration import available_cpu_cores, configure_cpu_runtime
from pipeline.io.atomic import atomic_write_json

try:  # POSIX; without it (Windows) concurrent --shard jobs are not serialised while merging
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = [
    "SHARDS_FOLDER",
    "Shard",
    "ShardRun",
    "ShardsIncomplete",
    "cohort_run",
    "complete_records",
    "completed_record",
    "matching_completion_record",
    "merge_lock",
    "parse_shard",
    "read_shard_record",
    "row_positions",
    "shard_folder",
    "start_shard",
    "world_size",
    "write_completion_record",
    "write_shard_record",
]

SHARDS_FOLDER = "shards"
RECORD_NAME = "shard.json"
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=24)  # the longest a rank waits at the barrier for the slowest one


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``): the manifest rows ``index, index + count, ...``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in 0..{self.count - 1}, got {self.index} of {self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def folder_name(self) -> str:
        """``<index>-of-<count>``: the shard's folder under ``<output-dir>/shards/``."""
        return f"{self.index}-of-{self.count}"

    def positions(self, n_rows: int) -> range:
        """Positions (0-based, manifest order after the split filter) of this shard's rows among ``n_rows``."""
        return range(self.index, n_rows, self.count)


def parse_shard(text: str) -> Shard:
    """``"K/N"`` → ``Shard(K, N)``; K counts from 0 (``0/2`` and ``1/2`` are the two halves).

    Raises:
        ValueError: one line saying what is wrong, e.g. ``--shard 2/2: K must be 0..1 ...``.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. --shard 0/4 (K counts from 0: 0/4 ... 3/4)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ValueError(f"--shard {text}: N must be at least 1")
    if index >= count:
        raise ValueError(
            f"--shard {text}: K must be 0..{count - 1} (K counts from 0; a Slurm job array uses --array=0-{count - 1})"
        )
    return Shard(index, count)


@dataclass(frozen=True)
class ShardRun:
    """How this process takes part in a cohort run.

    Attributes:
        shard: the rows this process runs; ``None`` for all of them (a single-process run, which
            writes no shard files).
        distributed: this process is one rank of a torch.distributed group (torchrun).
        lead: this process merges the shards' outputs: rank 0 under torchrun, every ``--shard`` job
            (the merge happens only once every shard is complete).
    """

    shard: Shard | None
    distributed: bool = False
    lead: bool = True

    def max_over_ranks(self, value: int) -> int:
        """The largest ``value`` of all ranks (every rank waits for the others); ``value`` outside torchrun."""
        if not self.distributed:
            return value
        box = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        return int(box.item())

    def from_lead(self, value: int) -> int:
        """Rank 0's ``value`` on every rank (every rank waits for rank 0); ``value`` outside torchrun."""
        if not self.distributed:
            return value
        box = torch.tensor([value], dtype=torch.int64)
        dist.broadcast(box, src=0)
        return int(box.item())


def world_size(environ: Mapping[str, str] = os.environ) -> int:
    """Processes torchrun started for this job (``WORLD_SIZE``; 1 outside torchrun)."""
    return _env_int(environ, "WORLD_SIZE", 1)


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ValueError(f"environment variable {name}={value!r} is not a non-negative integer")
    return int(value)


def _share_cpu_cores(ranks_on_node: int, environ: Mapping[str, str]) -> None:
    """Give each rank of a node ``cores // ranks_on_node`` threads, or ``MRISR_NUM_THREADS`` when set.

    torchrun sets ``OMP_NUM_THREADS=1`` when it starts several processes, so that variable cannot
    tell a user's choice from torchrun's; ``MRISR_NUM_THREADS`` can.
    """
    requested = environ.get("MRISR_NUM_THREADS", "").strip()
    share = max(1, available_cpu_cores() // max(1, ranks_on_node))
    configure_cpu_runtime(int(requested) if requested.isdigit() and int(requested) > 0 else share)


@contextmanager
def cohort_run(requested: Shard | None = None, environ: Mapping[str, str] = os.environ) -> Iterator[ShardRun]:
    """The part of a cohort this process runs, with a gloo process group under torchrun.

    Args:
        requested: ``--shard K/N`` (``None`` or ``0/1``: no split asked for).
        environ: the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_WORLD_SIZE`` set by torchrun).

    Yields:
        :class:`ShardRun`. Under torchrun the CPU threads are shared among the node's ranks (see
        :func:`_share_cpu_cores`) and the process group, started here if none was, is destroyed on exit.
    """
    if world_size(environ) <= 1:
        yield ShardRun(requested if requested is not None and requested.count > 1 else None)
        return
    _share_cpu_cores(_env_int(environ, "LOCAL_WORLD_SIZE", world_size(environ)), environ)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("gloo", timeout=PROCESS_GROUP_TIMEOUT)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        base = requested or Shard(0, 1)
        yield ShardRun(Shard(base.index * world + rank, base.count * world), distributed=True, lead=rank == 0)
    finally:
        if started:
            dist.destroy_process_group()


def shard_folder(output_dir: str | os.PathLike, shard: Shard) -> Path:
    """``<output_dir>/shards/<k>-of-<n>``: where a shard writes its partial outputs."""
    return Path(output_dir) / SHARDS_FOLDER / shard.folder_name


def start_shard(output_dir: str | os.PathLike, shard: Shard) -> Path:
    """Create the shard's folder and remove its record: the shard counts as unfinished until it is written again."""
    folder = shard_folder(output_dir, shard)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD_NAME).unlink(missing_ok=True)
    return folder


def write_shard_record(
    output_dir: str | os.PathLike,
    shard: Shard,
    settings: Mapping[str, Any],
    rows: Sequence[tuple[int, str]],
    **extra: Any,
) -> Path:
    """Mark a shard complete: write ``shard.json`` after its partial outputs.

    Args:
        settings: what the outputs depend on (command, manifest, split, methods...): shards merge
            only with shards of equal settings.
        rows: ``(position, scan_id)`` of the shard's rows, position in manifest order, the scan
            id as it appears in the shard's tables.
        extra: more JSON-serialisable fields for the merge (counts, the panel's scan...).
    """
    return write_completion_record(
        shard_folder(output_dir, shard) / RECORD_NAME, settings, rows, shard=str(shard), **extra
    )


def _row_ids(rows: Sequence[tuple[int, str]]) -> list[list[Any]]:
    return [[int(p), str(s)] for p, s in rows]


def write_completion_record(
    path: str | os.PathLike, settings: Mapping[str, Any], rows: Sequence[tuple[int, str]], **extra: Any
) -> Path:
    """Mark outputs complete: write the JSON record ``path`` (``settings``, ``rows``, ``extra``) after them.

    A shard's ``shard.json`` (:func:`write_shard_record`) and an unsharded evaluation's ``evaluation.json``
    are such records; :func:`matching_completion_record` reads one back for a rerun with the same settings.
    """
    return atomic_write_json(path, {"settings": dict(settings), "rows": _row_ids(rows), **extra})


def matching_completion_record(
    path: str | os.PathLike, settings: Mapping[str, Any], rows: Sequence[tuple[int, str]]
) -> dict[str, Any] | None:
    """The record at ``path`` when it was written with these ``settings`` and ``rows``, else ``None``
    (no, unreadable or different record)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if _as_json(record.get("settings")) != _as_json(dict(settings)) or record.get("rows") != _row_ids(rows):
        return None
    return record


def read_shard_record(output_dir: str | os.PathLike, shard: Shard) -> dict[str, Any] | None:
    """The shard's record, or ``None`` when the shard is not complete (no or unreadable record)."""
    try:
        return json.loads((shard_folder(output_dir, shard) / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def completed_record(
    output_dir: str | os.PathLike, shard: Shard, settings: Mapping[str, Any], rows: Sequence[tuple[int, str]]
) -> dict[str, Any] | None:
    """The shard's record when the shard is complete with these ``settings`` and ``rows``, else ``None``."""
    return matching_completion_record(shard_folder(output_dir, shard) / RECORD_NAME, settings, rows)


class ShardsIncomplete(Exception):
    """Some shards of a run have not written their record yet (or were written by another run)."""

    def __init__(self, shard: Shard, missing: Sequence[int]) -> None:
        self.missing = list(missing)
        names = ", ".join(f"{k}/{shard.count}" for k in self.missing)
        super().__init__(f"waiting for shard(s) {names}; the last one to finish merges the outputs")


def complete_records(output_dir: str | os.PathLike, shard: Shard) -> list[dict[str, Any]]:
    """The records of every shard of ``shard``'s run (``0..count-1``), in shard order.

    A shard belongs to the run when its record has the same settings as ``shard``'s own.

    Raises:
        ShardsIncomplete: a shard has no record, or one from a run with other settings.
        FileNotFoundError: ``shard`` itself has no record.
    """
    own = read_shard_record(output_dir, shard)
    if own is None:
        raise FileNotFoundError(f"{shard_folder(output_dir, shard) / RECORD_NAME}: this shard's record is missing")
    records = [read_shard_record(output_dir, Shard(k, shard.count)) for k in range(shard.count)]
    missing = [k for k, r in enumerate(records) if r is None or _as_json(r["settings"]) != _as_json(own["settings"])]
    if missing:
        raise ShardsIncomplete(shard, missing)
    return records


def row_positions(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Scan id → position in the manifest, over the rows of every record."""
    return {str(scan): int(position) for record in records for position, scan in record["rows"]}


@contextmanager
def merge_lock(output_dir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``<output_dir>/shards/.merge.lock`` (released when the process dies).

    Two ``--shard`` jobs finishing together then merge one after the other, never into the same
    files at once.
    """
    path = Path(output_dir) / SHARDS_FOLDER / ".merge.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
