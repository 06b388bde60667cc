"""Build script: metadata in setup.cfg; ships the repository's ``bundles/`` inside the package.

A wheel (``pip install .``, ``pip wheel .``, ``python -m build``) holds every bundle as package data
under ``pipeline/bundles/<name>/``: its ``configs/``, ``models/model.pt``, ``LICENSE``,
``docs/README.md`` and ``docs/data_license.txt`` (and ``bundles/schema/`` and ``bundles/common/``, the shared
training base), never the training by-products (``logs/``, ``eval/``, checkpoints, TensorBoard events,
figures). The files are copied at
build time, so ``bundles/`` stays at the repository root, once in git. An editable install ships
nothing: it finds the checkout's ``bundles/`` (``pipeline.inference.bundle_dirs``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLES = Path(__file__).resolve().parent / "bundles"
BUNDLE_FILES = ("LICENSE", "configs/*", "models/model.pt", "docs/README.md", "docs/data_license.txt")
SCHEMA_FILES = ("schema/*", "common/*")


def bundle_files() -> list[Path]:
    """The files of ``bundles/`` that a wheel ships, relative to ``bundles/``."""
    patterns = [f"*/{pattern}" for pattern in BUNDLE_FILES] + list(SCHEMA_FILES)
    return sorted({p.relative_to(BUNDLES) for pattern in patterns for p in BUNDLES.glob(pattern) if p.is_file()})


class build_py_with_bundles(build_py):
    """``build_py`` that also copies the shipped bundle files to ``<build_lib>/pipeline/bundles``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # setuptools < 64 has no editable builds
            return
        target = Path(self.build_lib) / "pipeline" / "bundles"
        shutil.rmtree(target, ignore_errors=True)  # no stale files of an earlier build
        for relative in bundle_files():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(BUNDLES / relative, destination)


setup(cmdclass={"build_py": build_py_with_bundles})
