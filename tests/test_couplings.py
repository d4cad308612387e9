"""Tests of ``flows_src.couplings``: the plain affine coupling layer of Eq. 3-6 against
autograd, and the permutation."""

from __future__ import annotations

import pytest
import torch

from flows_src.couplings import AffineCoupling, Permutation, he_init_, linears, mlp


def autograd_log_det(fn, y: torch.Tensor) -> torch.Tensor:
    """log|det J| of ``fn`` at each row of ``y``, from autograd's per-point Jacobian."""
    jac = torch.func.vmap(torch.func.jacrev(lambda p: fn(p[None])[0]))(y)
    sign, log_abs_det = torch.linalg.slogdet(jac)
    assert (sign != 0).all()
    return log_abs_det


@pytest.mark.parametrize("log_s_bound", [None, 2.0])
def test_log_det_inverse_is_eq_6_and_matches_autograd(log_s_bound: float | None):
    torch.manual_seed(0)
    layer = AffineCoupling(hidden=8, n_linear=5, log_s_bound=log_s_bound).double()
    y = 2 * torch.randn(64, 2, dtype=torch.float64)
    expected = autograd_log_det(layer.inverse, y)
    assert expected.abs().max() > 0.01, "a near-identity layer would make this test vacuous"
    torch.testing.assert_close(layer.log_det_inverse(y), expected, rtol=0, atol=1e-10)
    z, log_det = layer.inverse_and_log_det(y)
    torch.testing.assert_close(log_det, expected, rtol=0, atol=1e-10)
    # Eq. 6: minus the sum of log s over z_r, and the forward map's is its negative
    torch.testing.assert_close(log_det, -layer.log_s(y[:, :1])[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(autograd_log_det(layer, z), -expected, rtol=0, atol=1e-10)


def test_inverse_undoes_forward_and_keeps_z_l():
    torch.manual_seed(0)
    layer = AffineCoupling(log_s_bound=5.0).double()
    z = 3 * torch.randn(200, 2, dtype=torch.float64)
    y = layer(z)
    assert torch.equal(y[:, 0], z[:, 0]) and (y[:, 1] - z[:, 1]).abs().max() > 0.01
    torch.testing.assert_close(layer.inverse(y), z, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(layer.inverse(z)), z, rtol=0, atol=1e-12)
    log_s, b = layer.log_s_and_b(z[:, :1])
    torch.testing.assert_close(y[:, 1:], torch.exp(log_s) * z[:, 1:] + b, rtol=0, atol=0)


def test_log_s_bound_caps_the_scale():
    torch.manual_seed(0)
    layer = AffineCoupling(log_s_bound=0.5)
    far = torch.tensor([[-1e4], [1e4], [0.3]])
    assert layer.log_s(far).abs().max() <= 0.5


def test_two_networks_of_the_exercises_shape():
    layer = AffineCoupling(hidden=8, n_linear=5, negative_slope=0.2)
    for net in (layer.log_s_net, layer.b_net):
        shapes = [tuple(m.weight.shape) for m in linears(net)]
        assert shapes == [(8, 1), (8, 8), (8, 8), (8, 8), (1, 8)]
        assert all(m.negative_slope == 0.2 for m in net if isinstance(m, torch.nn.LeakyReLU))
    with pytest.raises(ValueError, match="^n_linear must be an integer >= 2, got 1$"):
        mlp(1, 8, 1, n_linear=1)


def test_he_init_starts_at_the_identity():
    torch.manual_seed(0)
    layer = AffineCoupling(hidden=32)
    for net in (layer.log_s_net, layer.b_net):
        nets = linears(net)
        he_init_([m.weight for m in nets], [m.bias for m in nets], 0.01)
    z = torch.randn(50, 2)
    assert torch.equal(layer(z), z)


def test_permutation_swaps_and_undoes():
    z = torch.randn(10, 2)
    perm = Permutation()
    assert torch.equal(perm(z), z.flip(1)) and torch.equal(perm.inverse(perm(z)), z)
    assert torch.equal(torch.stack(perm.columns(z.unbind(1)), 1), perm(z))
    assert perm.state_dict() == {}, "a fixed permutation belongs to no checkpoint"
