"""The comparison panel's detail window: a square inside the mask where HR has the most edges."""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.figures import PanelSlices, detail_window, plot_panel


def striped_disc() -> tuple[np.ndarray, np.ndarray]:
    """(120, 100) slice: an elliptic mask, flat inside except vertical stripes in rows 70-110."""
    rows, cols = np.mgrid[:120, :100]
    mask = ((rows - 60) / 58.0) ** 2 + ((cols - 50) / 48.0) ** 2 < 1
    hr = np.where(mask, 1.0, 0.0) + np.where(mask & (rows >= 70), 0.3 * np.sin(cols / 2.0), 0.0)
    return hr.astype(np.float32), mask


def test_detail_window_lies_in_the_mask_on_the_edges():
    hr, mask = striped_disc()
    rows, cols = detail_window(hr, mask, 24)
    assert rows.stop - rows.start == 24 and cols.stop - cols.start == 24
    assert mask[rows, cols].all()
    assert rows.start >= 70 - 2  # on the stripes, not the flat half
    rows, cols = detail_window(hr, mask, 500)  # clipped to the slice's shorter side
    assert (rows.stop - rows.start, cols) == (100, slice(0, 100)) and 0 <= rows.start and rows.stop <= 120


def test_panel_with_detail_row(tmp_path):
    hr, mask = striped_disc()
    panel = PanelSlices("s", 2, 5, "axial", 1.0, hr, hr, mask, {"net": hr * 0.9}, {"net": 30.0})
    path = plot_panel(panel, tmp_path / "panel.png", title="t", detail_size=32)
    assert path.is_file() and path.stat().st_size > 0
