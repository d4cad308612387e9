"""Tests of ``flows_src.spline``: the rational-quadratic spline (monotone, continuous with
its derivative, invertible, the identity outside [-B, B]), the spline coupling layer's
log-determinant against autograd, and a spline flow's density."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from flows_src import experiments, fingerprints
from flows_src.config import NFConfig
from flows_src.fingerprints import fingerprint
from flows_src.normalizing_flow import NormalizingFlow
from flows_src.spline import SplineCoupling, SplineStack, knots, rational_quadratic

B = 3.0


def autograd_log_det(fn, y: torch.Tensor) -> torch.Tensor:
    """log|det J| of ``fn`` at each row of ``y``, from autograd's per-point Jacobian."""
    jac = torch.func.vmap(torch.func.jacrev(lambda p: fn(p[None])[0]))(y)
    sign, log_abs_det = torch.linalg.slogdet(jac)
    assert (sign != 0).all()
    return log_abs_det


def random_splines(n: int, bins: int = 6, scale: float = 2.0, seed: int = 0):
    """``n`` splines far from the identity: bin sizes and derivatives spread over ~e^+-2."""
    u = scale * torch.randn(n, 3 * bins - 1, generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float64)
    return knots(u, B)


def test_knots_span_the_bound_and_zero_is_the_identity():
    x_k, y_k, d = random_splines(5)
    for edges in (x_k, y_k):
        assert (edges[:, 0] == -B).all() and (edges[:, -1] == B).all()
        assert (edges.diff(dim=1) > 0).all()
    assert (d > 0).all() and (d[:, [0, -1]] == 1).all()
    identity = knots(torch.zeros(1, 3 * 6 - 1, dtype=torch.float64), B)
    x = torch.linspace(-2 * B, 2 * B, 101, dtype=torch.float64)
    y, log_det = rational_quadratic(x, *(t.expand(101, -1) for t in identity))
    torch.testing.assert_close(y, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_det, torch.zeros_like(x), rtol=0, atol=1e-12)


def test_spline_is_monotone_and_continuous_at_knots_and_bounds():
    x_k, y_k, d = random_splines(1)
    # a fine grid over [-2B, 2B] plus, for every knot (the ends at +-B too), the knot itself
    # and points a hair to either side
    eps = 1e-11
    at = x_k[0]
    x = torch.cat([torch.linspace(-2 * B, 2 * B, 4001, dtype=torch.float64),
                   at, at - eps, at + eps]).sort().values
    spline = [t.expand(len(x), -1) for t in (x_k, y_k, d)]
    y, log_grad = rational_quadratic(x, *spline)
    assert (y.diff()[x.diff() > 0] > 0).all(), "strictly increasing"
    # continuous: at each knot g(x_k) = y_k, and a hair away g moves by about g' * eps
    on, left, right = (rational_quadratic(p, *(t[:len(at)] for t in spline))
                       for p in (at, at - eps, at + eps))
    torch.testing.assert_close(on[0], y_k[0], rtol=0, atol=1e-12)
    for side in (left, right):
        torch.testing.assert_close(side[0], y_k[0], rtol=0, atol=1e-7)
        # the derivative too: both sides' g' equal the knot's derivative (1 at +-B)
        torch.testing.assert_close(side[1].exp(), d[0], rtol=1e-6, atol=0)
    # the identity outside [-B, B]
    outside = x.abs() > B
    assert torch.equal(y[outside], x[outside]) and (log_grad[outside] == 0).all()


def test_inverse_undoes_the_spline_inside_and_in_the_tails():
    x_k, y_k, d = random_splines(400, seed=1)
    x = torch.linspace(-2 * B, 2 * B, 400, dtype=torch.float64)
    y, log_grad = rational_quadratic(x, x_k, y_k, d)
    back, log_grad_inverse = rational_quadratic(y, x_k, y_k, d, inverse=True)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_grad_inverse, -log_grad, rtol=0, atol=1e-9)
    assert (x.abs() > B).sum() > 100, "the tails are part of the test"


def test_log_grad_matches_autograd_in_both_directions():
    x_k, y_k, d = random_splines(300, seed=2)
    x = torch.linspace(-1.5 * B, 1.5 * B, 300, dtype=torch.float64, requires_grad=True)
    for inverse in (False, True):
        y, log_grad = rational_quadratic(x, x_k, y_k, d, inverse=inverse)
        (grad,) = torch.autograd.grad(y.sum(), x)  # one spline per point: the diagonal
        torch.testing.assert_close(log_grad, grad.log(), rtol=0, atol=1e-9)


def spline_layer(bins: int = 5, seed: int = 0) -> SplineCoupling:
    torch.manual_seed(seed)
    layer = SplineCoupling(bins=bins, bound=B, hidden=16, n_linear=3).double()
    with torch.no_grad():  # an output layer 10x nn.Linear's default: far from the identity
        layer.net[-1].weight.mul_(10)
        layer.net[-1].bias.mul_(10)
    return layer


def test_coupling_inverse_and_log_det_match_autograd():
    layer = spline_layer()
    y = 2 * torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y[:4, 1] = torch.tensor([-4.0, 4.0, -10.0, 7.0], dtype=torch.float64)  # in the tails
    z, log_det = layer.inverse_and_log_det(y)
    assert torch.equal(z[:, 0], y[:, 0]) and torch.equal(z[:4, 1], y[:4, 1])
    expected = autograd_log_det(layer.inverse, y)
    assert expected.abs().max() > 0.3, "a near-identity layer would make this test vacuous"
    torch.testing.assert_close(log_det, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(layer.log_det_inverse(y), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(layer(z), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(autograd_log_det(layer, z), -expected, rtol=0, atol=1e-9)


def spline_flow(seed: int = 0, scale: float = 5.0) -> NormalizingFlow:
    """A small random spline flow, its output layers ``scale`` times nn.Linear's default."""
    torch.manual_seed(seed)
    config = NFConfig(transform="spline", n_couplings=4, bins=6, hidden=16, n_linear=3)
    flow = NormalizingFlow(config).double()
    with torch.no_grad():
        for layer in flow.couplings.per_layer():
            layer.net[-1].weight.mul_(scale)
    return flow


def test_flow_log_det_matches_autograd_and_inverse_undoes_forward():
    flow = spline_flow()
    x = 2 * torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = autograd_log_det(flow.inverse, x)
    assert expected.abs().max() > 0.3
    z, log_det = flow.inverse_and_log_det(x)
    torch.testing.assert_close(log_det, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(flow(z), x, rtol=0, atol=1e-8)  # steep splines: ill-conditioned
    far = torch.tensor([[12.0, -9.0], [0.5, 20.0]], dtype=torch.float64)
    torch.testing.assert_close(flow(flow.inverse(far)), far, rtol=0, atol=1e-8)


def test_spline_flow_density_integrates_to_one():
    # twice the default init: |log det| up to ~6 nats, yet smooth enough for a grid of 0.035
    flow = spline_flow(seed=1, scale=2.0)
    half_width, step = 7.0, 0.035
    ticks = torch.arange(-half_width + step / 2, half_width, step, dtype=torch.float64)
    with torch.no_grad():
        log_p = flow.log_prob(torch.cartesian_prod(ticks, ticks))
        outside = (flow.sample(100_000, torch.Generator().manual_seed(0)).abs()
                   > half_width).any(dim=1).double().mean().item()
    assert outside < 1e-3
    mass = log_p.exp().sum().item() * step**2
    assert abs(mass - (1 - outside)) < 1e-3


def test_he_init_makes_the_spline_flow_the_identity():
    torch.manual_seed(0)
    flow = NormalizingFlow(NFConfig(transform="spline", n_couplings=3, bins=4, hidden=16,
                                    n_linear=3, init="he"))
    x = 4 * torch.randn(100, 2)
    with torch.no_grad():
        z, log_det = flow.inverse_and_log_det(x)
    torch.testing.assert_close(z, x, rtol=0, atol=1e-5)
    torch.testing.assert_close(log_det, torch.zeros(100), rtol=0, atol=1e-5)
    assert math.isfinite(flow.loss(x)[0].item())


@pytest.mark.parametrize(("field", "value", "message"), [
    ("transform", "glow", "^transform must be one of 'affine', 'spline', got 'glow'$"),
    ("bins", 1, r"^bins must be an integer in \[2, 256\], got 1$"),
    ("bins", 8.0, r"^bins must be an integer in \[2, 256\], got 8.0$"),
    ("bound", 0, r"^bound must be a number in \(0, 100\], got 0$"),
    ("bound", True, r"^bound must be a number in \(0, 100\], got True$"),
])
def test_config_names_the_field_and_its_range(field: str, value: object, message: str):
    with pytest.raises(ValueError, match=message):
        NFConfig(**{field: value})


def test_the_spline_preset_builds_a_spline_flow():
    config = experiments.config("nf", "spline")
    model = config.model
    assert (model.transform, model.bins, model.n_couplings) == ("spline", 16, 6)
    torch.manual_seed(0)
    flow = NormalizingFlow(dataclasses.replace(config, hidden=8))
    assert isinstance(flow.couplings, SplineStack) and len(flow.couplings) == 6
    x = torch.randn(32, 2)
    loss, parts = flow.loss(x)
    assert math.isfinite(loss.item()) and set(parts) == {"log_det", "log_pz"}


def test_the_fingerprint_covers_the_spline_module(monkeypatch):
    """A trained spline flow is reused only while the code of ``spline.py`` (and of the
    modules it builds on) is unchanged."""
    config = NFConfig(transform="spline", n_couplings=2, bins=3, hidden=4, n_linear=2)
    flow = NormalizingFlow(config)
    before = fingerprint(flow, config)
    source = fingerprints._source
    for name in ("flows_src.spline", "flows_src.couplings", "flows_src.normalizing_flow"):
        monkeypatch.setattr(fingerprints, "_source", lambda module, name=name: source(module)
                            + ("\nEDITED = 1\n" if module == name else ""))
        assert fingerprint(flow, config) != before, name
