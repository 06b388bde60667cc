# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Run one job per scan over a cohort: progress bar, go on past failures, report them."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from pipeline.io.atomic import atomic_write_text
from pipeline.io.errors import error_message

__all__ = ["CohortReport", "run_cohort"]


@dataclass
class CohortReport:
    """What a cohort run did: ids done, skipped (already valid) and failed (with the error)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def write_failures(self, path: str | os.PathLike) -> Path | None:
        """Write the failures table (CSV: scan_id, input, error_type, error) if anything failed.

        A failures file left by an earlier run is removed when this run has none.
        """
        dest = Path(path)
        if not self.failures:
            if dest.exists():
                dest.unlink()
            return None
        atomic_write_text(dest, pd.DataFrame(self.failures).to_csv(index=False))
        return dest

    def summary(self) -> str:
        return f"{len(self.done)} done, {len(self.skipped)} skipped (already done), {len(self.failures)} failed"


def run_cohort(
    items: Iterable[tuple[str, str, Callable[[], Any]]],
    *,
    is_done: Callable[[str], bool] = lambda _: False,
    description: str = "scans",
    progress: bool = True,
) -> CohortReport:
    """Run ``job()`` for each ``(scan_id, input_description, job)`` item.

    Items whose ``is_done(scan_id)`` is true are skipped (resuming an interrupted run). An
    exception in one job is recorded and the run goes on; ``KeyboardInterrupt`` stops it.
    """
    report = CohortReport()
    item_list = list(items)
    with tqdm(item_list, desc=description, unit="scan", disable=not progress) as bar:
        for scan, source, job in bar:
            bar.set_postfix_str(scan)
            if is_done(scan):
                report.skipped.append(scan)
                continue
            try:
                report.results[scan] = job()
                report.done.append(scan)
            except Exception as err:  # one bad scan must not stop the cohort
                report.failures.append(
                    {
                        "scan_id": scan,
                        "input": source,
                        "error_type": type(err).__name__,
                        "error": error_message(err),
                        "where": traceback.extract_tb(err.__traceback__)[-1].name if err.__traceback__ else "",
                    }
                )
                tqdm.write(f"FAILED {scan}: {type(err).__name__}: {error_message(err)}")
    return report
