"""Choosing mDCSRN-GAN's generator on the validation log: best val PSNR among the sharp-enough epochs."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from pipeline.analysis.gan_selection import select_generator, snapshot_path, write_selected_generator


def make_run(root, rows):
    (root / "logs").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "logs" / "metrics.csv", index=False)
    for row in rows:
        if pd.notna(row.get("val_psnr")):
            path = snapshot_path(root, row["epoch"])
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"w": torch.tensor([float(row["epoch"])])}, path)


ROWS = [
    {"epoch": 1, "iteration": 300, "val_psnr": 38.0, "psnr_gain": 3.0, "val_sharpness": 0.970},
    {"epoch": 2, "iteration": 600, "val_psnr": 37.8, "psnr_gain": 2.8, "val_sharpness": 0.991},
    {"epoch": 3, "iteration": 900, "val_psnr": 37.5, "psnr_gain": 2.5, "val_sharpness": 0.999},
    {"epoch": 4, "iteration": 1200, "val_psnr": float("nan"), "psnr_gain": float("nan"), "val_sharpness": float("nan")},
]


def test_best_psnr_among_sharp_enough_epochs_is_written_to_model_pt(tmp_path):
    make_run(tmp_path, ROWS)
    assert select_generator(tmp_path, 0.99)["epoch"] == 2
    assert select_generator(tmp_path, 0.995)["epoch"] == 3
    assert select_generator(tmp_path, 0.0)["epoch"] == 1
    assert write_selected_generator(tmp_path, select_generator(tmp_path, 0.995)) == tmp_path / "models" / "model.pt"
    assert torch.load(tmp_path / "models" / "model.pt")["w"].item() == 3.0
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["model.pt", "validated"]


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        select_generator(tmp_path, 0.99)
    make_run(tmp_path, ROWS)
    with pytest.raises(ValueError, match="sharpest is epoch 3 at 0.9990"):
        select_generator(tmp_path, 1.5)
    snapshot_path(tmp_path, 2).unlink()
    with pytest.raises(FileNotFoundError, match="epoch=2"):
        select_generator(tmp_path, 0.99)
