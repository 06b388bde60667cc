"""Synthetic contrasts from label maps: class ordering, determinism, background."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.transforms.label_contrast import LabelContrast, LabelContrastd, tissue_class


def label_map() -> MetaTensor:
    labels = np.zeros((20, 20, 10), np.int16)
    labels[2:18, 2:18, 2:8] = 100  # cortex (grey matter)
    labels[5:15, 5:15, 3:7] = 44  # cerebral white matter
    labels[8:12, 8:12, 4:6] = 51  # lateral ventricle (CSF)
    return MetaTensor(torch.from_numpy(labels)[None].float(), affine=torch.eye(4, dtype=torch.float64))


def mean_of(image: torch.Tensor, labels: MetaTensor, label: int) -> float:
    return float(image[labels == label].mean())


@pytest.mark.parametrize("contrast, order", [("t2", (51, 100, 44)), ("flair", (100, 44, 51))])
def test_tissue_classes_keep_their_contrast_order(contrast: str, order: tuple[int, int, int]) -> None:
    labels = label_map()
    transform = LabelContrast(contrast, smooth_mm=0.0)
    transform.set_random_state(seed=0)
    image = transform(labels)
    means = [mean_of(image, labels, label) for label in order]
    assert means[0] > means[1] > means[2]
    assert float(image[labels == 0].abs().max()) == 0.0
    assert isinstance(image, MetaTensor) and torch.equal(image.affine, labels.affine)


def test_seeded_draws_repeat_and_random_contrasts_differ() -> None:
    labels = label_map()
    a = LabelContrast("random").set_random_state(seed=1)(labels)
    b = LabelContrast("random").set_random_state(seed=1)(labels)
    c = LabelContrast("random").set_random_state(seed=2)(labels)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_dict_version_and_classes() -> None:
    out = LabelContrastd("labels", contrast="t2").set_random_state(seed=0)({"labels": label_map()})
    assert out["image"].shape == (1, 20, 20, 10)
    assert (tissue_class(4), tissue_class(45), tissue_class(47)) == ("csf", "wm", "gm")
    with pytest.raises(ValueError, match="contrast"):
        LabelContrast("pd")


def test_unlabelled_voxels_inside_the_brain_mask_are_fluid() -> None:
    labels = label_map()
    mask = torch.zeros_like(labels)
    mask[:, 1:19, 1:19, 1:9] = 1  # the brain: the labelled block and a 1-voxel rim of sulcal fluid
    rim = (mask > 0) & (labels == 0)
    image = LabelContrast("t2", smooth_mm=0.0).set_random_state(seed=0)(labels, mask)
    assert float(image[rim].mean()) > mean_of(image, labels, 100)  # bright as CSF, above grey matter
    assert float(image[mask == 0].abs().max()) == 0.0
    d = LabelContrastd("labels", mask_key="mask", contrast="flair", smooth_mm=0.0)
    flair = d.set_random_state(seed=0)({"labels": labels, "mask": mask})["image"]
    assert 0 < float(flair[rim].mean()) < mean_of(flair, labels, 44)  # suppressed fluid
