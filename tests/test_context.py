"""The positional convolution computed as a product of spectra equals the grouped conv1d, values and
gradients, for odd and even kernels and inputs shorter than the kernel; and which presets take it."""

from __future__ import annotations

import copy

import pytest
import torch

from w2v2.config import preset
from w2v2.context import PositionalConv


@pytest.mark.parametrize(("d", "kernel", "groups", "t"), [(64, 32, 4, 50), (64, 33, 4, 7), (32, 40, 2, 130),
                                                         (256, 64, 16, 150)])
def test_spectral_positional_conv_equals_conv1d(d: int, kernel: int, groups: int, t: int) -> None:
    torch.manual_seed(0)
    spectral = PositionalConv(d, kernel, groups)
    assert spectral.spectral
    with torch.no_grad():
        spectral.bias.normal_()
    plain = copy.deepcopy(spectral)
    plain.spectral = False
    x = torch.randn(3, t, d)
    grads = []
    for module in (spectral, plain):
        xi = x.clone().requires_grad_()
        y = module(xi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads.append((y.detach(), xi.grad, module.weight_v.grad, module.weight_g.grad, module.bias.grad))
    for got, expected in zip(*grads, strict=True):
        scale = expected.abs().max().item()
        assert (got - expected).abs().max().item() <= 1e-5 * max(scale, 1.0), (got - expected).abs().max()


def test_the_spectral_route_is_taken_where_it_measured_faster() -> None:
    """`small` (64 taps, 16 channels a group) takes it; tiny's 16 taps and base's 48-channel groups do not."""
    for name, expected in (("small", True), ("tiny", False), ("base", False)):
        c = preset(name).context
        assert PositionalConv(c.dim, c.pos_conv_kernel, c.pos_conv_groups).spectral is expected, name


def test_spectral_positional_conv_keeps_the_autocast_dtype() -> None:
    module = PositionalConv(64, 32, 4)
    x = torch.randn(2, 30, 64).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x).dtype == torch.bfloat16
