"""Domain randomisation: inversion, label contrasts, backgrounds, and the recipe's object/acquisition split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from pipeline.transforms.domain import (
    DomainRecipe,
    RandBackgroundd,
    RandInvertContrastd,
    RandLabelContrastd,
    RandLRNoise,
    domain_randomization,
)


def scan() -> dict[str, MetaTensor]:
    """A 24 x 24 x 12 'brain' (1 mm): WM 300, GM 200, CSF 60 inside a box mask, zero outside, with labels."""
    labels = np.zeros((24, 24, 12), np.float32)
    labels[4:20, 4:20, 2:10] = 100  # grey matter
    labels[7:17, 7:17, 3:9] = 44  # white matter
    labels[10:14, 10:14, 5:7] = 51  # ventricle
    image = np.select([labels == 44, labels == 100, labels == 51], [300.0, 200.0, 60.0], 0.0).astype(np.float32)
    affine = torch.eye(4, dtype=torch.float64)
    return {
        "hr": MetaTensor(torch.from_numpy(image)[None], affine=affine),
        "mask": MetaTensor(torch.from_numpy(labels > 0)[None], affine=affine),
        "labels": MetaTensor(torch.from_numpy(labels)[None], affine=affine),
    }


def test_inversion_reverses_the_tissue_order_and_keeps_the_background() -> None:
    data = scan()
    out = RandInvertContrastd("hr", prob=1.0).set_random_state(seed=0)(data)["hr"]
    labels = data["labels"]
    wm, gm, csf = (float(out[labels == value].mean()) for value in (44, 100, 51))
    assert csf > gm > wm >= 0
    assert float(out[labels == 0].abs().max()) == 0.0 and isinstance(out, MetaTensor)
    assert torch.equal(RandInvertContrastd("hr", prob=0.0)(data)["hr"], data["hr"])


def test_label_contrast_replaces_the_image_at_its_scale_and_skips_scans_without_labels() -> None:
    data = scan()
    out = RandLabelContrastd("hr", prob=1.0, contrasts=["t2"]).set_random_state(seed=0)(data)["hr"]
    labels = data["labels"]
    assert float(out[labels == 51].mean()) > float(out[labels == 44].mean())  # T2-like: fluid bright
    assert np.percentile(out[out > 0].numpy(), 99.5) == pytest.approx(300.0, rel=0.02)
    unlabelled = {k: v for k, v in data.items() if k != "labels"}
    assert torch.equal(RandLabelContrastd("hr", prob=1.0)(unlabelled)["hr"], data["hr"])
    with pytest.raises(ValueError, match="unknown contrasts"):
        RandLabelContrastd("hr", contrasts=["pd"])


@pytest.mark.parametrize("mode", ["zeros", "noise", "shell"])
def test_background_never_changes_the_brain(mode: str) -> None:
    data = scan()
    data["hr"] = data["hr"] + 5.0 * (data["mask"] == 0)  # something to replace
    out = RandBackgroundd("hr", prob=1.0, modes=[mode]).set_random_state(seed=0)(data)["hr"]
    mask = data["mask"].bool()
    torch.testing.assert_close(out[mask], data["hr"][mask])
    outside = out[~mask]
    if mode == "zeros":
        assert float(outside.abs().max()) == 0.0
    else:
        assert float(outside.min()) >= 0 and float(outside.mean()) > 0


def test_shell_is_a_dark_skull_inside_a_bright_scalp() -> None:
    labels = np.zeros((64, 64, 64), np.float32)
    grid = np.indices(labels.shape) - 31.5
    brain = (grid**2).sum(0) < 16**2
    data = {
        "hr": MetaTensor(torch.from_numpy(np.where(brain, 250.0, 0.0).astype(np.float32))[None]),
        "mask": MetaTensor(torch.from_numpy(brain)[None]),
    }
    out = RandBackgroundd("hr", prob=1.0, modes=["shell"]).set_random_state(seed=3)(data)["hr"][0].numpy()
    radius = np.sqrt((grid**2).sum(0))
    profile = [float(out[(radius > r) & (radius <= r + 1)].mean()) for r in range(16, 31)]
    scalp = int(np.argmax(profile))
    assert profile[scalp] > 0.3 * 250 and min(profile[:scalp]) < 0.5 * profile[scalp]  # skull darker than scalp
    assert float(out[radius > 31].mean()) < 0.05 * 250  # only a noise floor beyond the head


def test_recipe_splits_object_and_acquisition_transforms() -> None:
    data = scan()
    data["lr"] = MetaTensor(torch.full((1, 12, 12, 12), 0.5))
    everything = DomainRecipe(**{name: 1.0 for name in ("label_contrast", "gamma", "bias", "background", "noise")})
    object_transforms, lr_noise = domain_randomization(everything)
    object_pipeline = Compose(object_transforms)
    object_pipeline.set_random_state(seed=0)
    out = object_pipeline(dict(data))
    assert out["hr"].shape == data["hr"].shape and torch.isfinite(out["hr"]).all()
    assert not torch.equal(out["hr"], data["hr"]) and torch.equal(
        out["lr"], data["lr"]
    )  # LR untouched before synthesis
    noisy = lr_noise.set_random_state(seed=0)(dict(out))
    assert torch.equal(noisy["hr"], out["hr"]) and not torch.equal(noisy["lr"], out["lr"])  # noise: LR only


@pytest.mark.parametrize("units", [1.0, 1000.0])
def test_lr_noise_is_relative_to_the_robust_maximum(units: float) -> None:
    lr = torch.full((1, 40, 40, 20), 0.5 * units)
    lr[:, :20] = units
    draws = []
    for seed in range(6):
        noisy = RandLRNoise(prob=1.0, max_std=0.04).set_random_state(seed=seed)(lr)
        draws.append(float((noisy - lr)[:, :20].std() / units))  # bright half: Rician ~ Gaussian there
    assert 0 < max(draws) <= 0.045 and len({round(d, 6) for d in draws}) > 1
    assert torch.equal(RandLRNoise(prob=0.0)(lr), lr)


def test_recipe_from_a_config_mapping() -> None:
    object_transforms, _ = domain_randomization({"gamma": 0.0, "gamma_range": [0.8, 1.2], "modes": ["zeros"]})
    assert len(object_transforms) == 8
    with pytest.raises(TypeError):
        domain_randomization({"no_such_setting": 1.0})


def test_object_prob_leaves_a_share_of_accesses_as_scanned() -> None:
    data = scan()
    everything = {name: 1.0 for name in ("label_contrast", "gamma", "bias", "background")}
    object_transforms, _ = domain_randomization({**everything, "object_prob": 0.5})
    assert len(object_transforms) == 1  # one draw: the whole chain or nothing
    pipeline = Compose(object_transforms)
    pipeline.set_random_state(seed=0)
    unchanged = [torch.equal(pipeline(dict(data))["hr"], data["hr"]) for _ in range(40)]
    assert 10 <= sum(unchanged) <= 30
    never, _ = domain_randomization({**everything, "object_prob": 0.0})
    assert torch.equal(Compose(never)(dict(data))["hr"], data["hr"])
    with pytest.raises(ValueError, match="object_prob"):
        domain_randomization({"object_prob": 1.5})
