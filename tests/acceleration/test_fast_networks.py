"""The fast inference forms equal the trained networks, and every bundle keeps its quality when fast.

- ``optimize_for_inference`` of each network (random weights, BatchNorm with non-trivial statistics)
  matches the network in evaluation mode to float32 rounding;
- for every shipped bundle, on a small synthetic brain degraded by the bundle's protocol, the fast
  path's PSNR in the brain mask is within 0.05 dB of the plain fp32 path's, in fp32 and in bf16.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage

from pipeline.acceleration import FastMDCSRN, FastMRLNet, fold_batch_norm, optimize_for_inference
from pipeline.evaluation.metrics import data_range, psnr
from pipeline.inference import available_bundles, load_bundle_method
from pipeline.inference.methods import BUNDLES_DIR, bundle_metadata
from pipeline.networks import MDCSRN, MFCN, MSRNTV, RRLSRN, SRCNN, MRLNet
from pipeline.protocols import get_protocol


def randomise_norm_statistics(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) * 0.2 - 0.1)
    return net


NETWORKS = {
    "srcnn": (lambda: SRCNN(spatial_dims=2), (2, 1, 20, 18)),
    "mfcn": (lambda: MFCN(spatial_dims=2), (2, 1, 20, 18)),
    "rrlsrn": (lambda: RRLSRN(spatial_dims=2, scale_factor=2), (2, 1, 10, 9)),
    "rrlsrn_x4": (lambda: RRLSRN(spatial_dims=2, scale_factor=4), (1, 1, 6, 5)),
    "mrlnet": (lambda: MRLNet(spatial_dims=2, scale_factor=2, features=16, num_units=3), (2, 1, 10, 9)),
    "msrntv": (lambda: MSRNTV(spatial_dims=2, features=16, num_modules=2), (2, 1, 20, 18)),
    "mdcsrn_b4u4": (lambda: MDCSRN.from_variant("b4u4"), (2, 1, 10, 9, 8)),
    "mdcsrn_2d": (lambda: MDCSRN(spatial_dims=2, num_blocks=2), (2, 1, 12, 10)),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_fast_form_equals_network(name: str) -> None:
    build, shape = NETWORKS[name]
    torch.manual_seed(0)
    net = randomise_norm_statistics(build()).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = optimize_for_inference(net, len(shape) - 2)
    x = torch.rand(shape)
    with torch.inference_mode():
        expected, got = net(x), fast(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got.float(), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "the trained network was modified"


def test_rewrites_are_chosen_by_type() -> None:
    assert isinstance(optimize_for_inference(MDCSRN.from_variant("b4u4"), 3), FastMDCSRN)
    assert isinstance(optimize_for_inference(MRLNet(2, features=8, num_units=2), 2), FastMRLNet)
    srcnn = optimize_for_inference(SRCNN(2), 2)
    assert isinstance(srcnn, SRCNN) and not srcnn.training
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in srcnn.parameters() if p.dim() == 4)


def test_fold_batch_norm_matches_conv_then_norm() -> None:
    torch.manual_seed(1)
    conv = torch.nn.Conv3d(5, 4, 1)
    norm = randomise_norm_statistics(torch.nn.Sequential(torch.nn.BatchNorm3d(4)))[0].eval()
    weight, bias = fold_batch_norm(conv.weight, conv.bias, norm)
    x = torch.rand(2, 5, 3, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(torch.nn.functional.conv3d(x, weight, bias), norm(conv(x)), rtol=1e-5, atol=1e-6)


def test_fast_mdcsrn_reduced_precision_keeps_the_image_path_in_float32() -> None:
    """Under bf16 autocast only the DenseUnit convolutions are bf16: the output stays within 1e-2 of fp32."""
    torch.manual_seed(0)
    net = randomise_norm_statistics(MDCSRN.from_variant("b4u4")).eval()
    fast = optimize_for_inference(net, 3)
    x = torch.rand(1, 1, 12, 12, 12)
    with torch.inference_mode():
        expected = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast(x)
    assert got.dtype == torch.float32
    assert float((got - expected).abs().max()) < 1e-2 * float(expected.abs().max())


def _synthetic_case(protocol_name: str) -> tuple[MetaTensor, np.ndarray, np.ndarray, list[float]]:
    """(LR, HR array, mask, zoom): a small textured synthetic 'brain' degraded by a protocol."""
    protocol = get_protocol(protocol_name)
    if protocol_name.startswith("kspace"):
        shape = (24, 24, 24)
    elif protocol_name.startswith("thick"):
        shape = (24, 20, 24)  # 4 mm slices of 1 mm voxels: 6 slices
    else:
        shape = (32, 28, 6)
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    mask = (grid**2).sum(0) < 0.8
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    hr_array = (mask * (100 + 400 * texture) + 5).astype(np.float32)
    hr = MetaTensor(torch.from_numpy(hr_array)[None], affine=torch.eye(4))
    return protocol.degrade(hr), hr_array, mask, [float(z) for z in protocol.zoom_for([1.0, 1.0, 1.0])]


@pytest.mark.parametrize("name", available_bundles())
def test_bundle_fast_path_keeps_psnr(name: str) -> None:
    """|PSNR(fast) - PSNR(plain fp32)| < 0.05 dB in the mask, for fp32 and bf16 fast paths."""
    protocol = bundle_metadata(BUNDLES_DIR / name)["degradation_protocol"]
    lr, hr, mask, zoom = _synthetic_case(protocol)
    value_range = data_range(hr, mask)
    plain = load_bundle_method(BUNDLES_DIR / name, device="cpu", precision="fp32", **{"sr_method#fast": False})
    reference = psnr(plain(lr, zoom)[0].numpy(), hr, mask, value_range)
    for precision in ("fp32", "bf16"):
        fast = load_bundle_method(BUNDLES_DIR / name, device="cpu", precision=precision)
        sr = fast(lr, zoom)
        assert fast.fast and fast.precision == precision
        assert tuple(sr.shape[1:]) == hr.shape
        got = psnr(sr[0].numpy(), hr, mask, value_range)
        assert abs(got - reference) < 0.05, f"{precision}: {got:.3f} dB against {reference:.3f} dB in fp32"
