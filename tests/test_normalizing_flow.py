"""Tests of ``flows_src.normalizing_flow``: the math of Sec. 3, checked against autograd,
numerical integration and a plain reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bench.reference import ReferenceFlow
from flows_src.config import NFConfig
from flows_src.couplings import AffineCoupling, Permutation, linears
from flows_src.normalizing_flow import CouplingStack, NormalizingFlow

#: A small spline flow: the flow's face must not depend on the transform.
SPLINE = NFConfig(transform="spline", n_couplings=4, bins=5, hidden=16, n_linear=3)


def ring(n: int, seed: int) -> torch.Tensor:
    """A noisy unit ring, standardized per axis: 2D data that no Gaussian fits well."""
    g = torch.Generator().manual_seed(seed)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    radius = 1 + 0.1 * torch.randn(n, generator=g)
    x = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    return (x - x.mean(0)) / x.std(0)


def train(flow: NormalizingFlow, x: torch.Tensor, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        batch = x[torch.randint(len(x), (128,), generator=g)]
        loss, _ = flow.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()


def autograd_log_det(inverse, y: torch.Tensor) -> torch.Tensor:
    """log|det J| of ``inverse`` at each row of ``y``, from autograd's per-point Jacobian."""
    jac = torch.func.vmap(torch.func.jacrev(lambda p: inverse(p[None])[0]))(y)
    sign, log_abs_det = torch.linalg.slogdet(jac)
    assert (sign != 0).all()
    return log_abs_det


@pytest.fixture
def trained_flow() -> NormalizingFlow:
    torch.manual_seed(0)
    flow = NormalizingFlow(NFConfig(n_couplings=6)).double()
    # A large step size moves the weights far from their initialisation in a few steps.
    train(flow, ring(2000, seed=0).double(), steps=30, lr=1e-2)
    return flow


def test_base_log_density_is_the_standard_normal():
    torch.manual_seed(0)
    flow = NormalizingFlow(NFConfig(n_couplings=1)).double()
    z = 3 * torch.randn(100, 2, dtype=torch.float64)
    # With coupling weights zeroed, phi is the identity and log p(x) is log p_z(x).
    with torch.no_grad():
        for p in flow.parameters():
            p.zero_()
    p_z = torch.distributions.MultivariateNormal(
        torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    )
    torch.testing.assert_close(flow.log_prob(z), p_z.log_prob(z), rtol=0, atol=1e-12)


@pytest.mark.parametrize("flow_kind", ["init", "trained", "spline"])
def test_flow_log_det_matches_autograd_jacobian(flow_kind: str, trained_flow: NormalizingFlow):
    torch.manual_seed(0)
    flow = {"trained": trained_flow,
            "init": NormalizingFlow(NFConfig(n_couplings=6)).double(),
            "spline": NormalizingFlow(SPLINE).double()}[flow_kind]
    x = 2 * torch.randn(64, 2, dtype=torch.float64)
    expected = autograd_log_det(flow.inverse, x)
    assert expected.abs().max() > 0.1, "a near-identity flow would make this test vacuous"
    z, log_det = flow.inverse_and_log_det(x)
    torch.testing.assert_close(z, flow.inverse(x), rtol=0, atol=0)
    torch.testing.assert_close(log_det, expected, rtol=0, atol=1e-10)


def test_log_prob_is_eq_2_and_loss_is_eq_9():
    torch.manual_seed(0)
    flow = NormalizingFlow(NFConfig(n_couplings=4)).double()
    x = torch.randn(50, 2, dtype=torch.float64)
    z, log_det = flow.inverse_and_log_det(x)
    log_pz = -0.5 * (z.square().sum(1) + 2 * math.log(2 * math.pi))
    torch.testing.assert_close(flow.log_prob(x), log_pz + log_det, rtol=0, atol=1e-12)
    loss, parts = flow.loss(x)
    torch.testing.assert_close(loss, -(log_pz + log_det).mean(), rtol=0, atol=1e-12)
    torch.testing.assert_close(parts["log_det"], log_det.mean(), rtol=0, atol=1e-12)
    torch.testing.assert_close(parts["log_pz"], log_pz.mean(), rtol=0, atol=1e-12)
    assert not parts["log_det"].requires_grad and not parts["log_pz"].requires_grad


def test_inverse_and_forward_are_identities():
    torch.manual_seed(0)
    flow = NormalizingFlow()
    z = torch.randn(500, 2)
    x = flow(z)
    assert (x - z).abs().max() > 0.1
    torch.testing.assert_close(flow.inverse(x), z, rtol=0, atol=1e-5)
    torch.testing.assert_close(flow(flow.inverse(z)), z, rtol=0, atol=1e-5)
    layer, perm = flow.couplings.layer(0), Permutation()
    torch.testing.assert_close(layer.inverse(layer(z)), z, rtol=0, atol=1e-6)
    torch.testing.assert_close(layer(layer.inverse(z)), z, rtol=0, atol=1e-6)
    torch.testing.assert_close(perm(z), z.flip(1), rtol=0, atol=0)
    torch.testing.assert_close(perm.inverse(perm(z)), z, rtol=0, atol=0)
    assert perm.state_dict() == {}, "a fixed permutation belongs to no checkpoint"


@pytest.mark.parametrize("trained", [False, True], ids=["init", "trained"])
def test_density_integrates_to_one(trained: bool, trained_flow: NormalizingFlow):
    torch.manual_seed(0)
    flow = trained_flow if trained else NormalizingFlow().double()
    # The box [-8, 8]^2 holds all but a negligible share of the mass: check it by sampling.
    half_width = 8.0
    samples = flow.sample(100_000, torch.Generator().manual_seed(0))
    outside = (samples.abs() > half_width).any(dim=1).double().mean().item()
    assert outside < 1e-3
    step = 0.04
    ticks = torch.arange(-half_width + step / 2, half_width, step, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    with torch.no_grad():
        log_p = flow.log_prob(grid)
    assert not log_p.isnan().any()
    mass = log_p.exp().sum().item() * step**2
    assert abs(mass - (1 - outside)) < 5e-3


def test_log_prob_is_minus_inf_where_the_inverse_overflows(trained_flow: NormalizingFlow):
    trained_flow.couplings.log_s_bound = None  # unbounded, as the exercise's own architecture
    far = torch.tensor([[-8.0, -8.0], [1e200, -1e200], [float("nan"), 0.0]], dtype=torch.float64)
    with torch.no_grad():
        z = trained_flow.inverse(far[:2])
        log_p = trained_flow.log_prob(far)
    assert not z.isfinite().all(), "the trained flow no longer overflows: pick farther points"
    assert (log_p[:2] == -math.inf).all()
    assert log_p[2].isnan()


def test_log_s_bound_caps_each_layers_scale_and_keeps_the_inverse_finite(
        trained_flow: NormalizingFlow):
    far = torch.tensor([[1e6, -1e6], [-3e3, 2e3]], dtype=torch.float64)
    with torch.no_grad():
        for params in trained_flow.couplings.per_layer():
            log_s, _ = trained_flow.couplings.log_s_and_b(far[:, 0], params)
            assert log_s.abs().max() <= trained_flow.config.model.log_s_bound
        z, log_det = trained_flow.inverse_and_log_det(far)
    assert z.isfinite().all() and log_det.isfinite().all()
    bound = trained_flow.config.model.log_s_bound
    assert log_det.abs().max() <= bound * trained_flow.config.model.n_couplings
    # inside the data's range the clamp is nearly the identity: B tanh(r/B) = r - r^3/3B^2
    r = torch.linspace(-1, 1, 11, dtype=torch.float64)
    assert (bound * torch.tanh(r / bound) - r).abs().max() < 1 / (3 * bound**2) + 1e-12


def test_fused_stack_is_the_plain_reference_flow_values_and_gradients():
    """The flow's fused layers compute the plain flow of Eq. 3-9 (the library's readable
    coupling layers composed as a reader would): same function, same loss, same gradients."""
    torch.manual_seed(0)
    reference = ReferenceFlow(n_couplings=15, hidden=8, n_linear=5).double()
    flow = NormalizingFlow(NFConfig(n_couplings=15, hidden=8, n_linear=5,
                                    log_s_bound=None)).double()
    flow.couplings = CouplingStack.from_layers(reference.couplings)
    x = 1.5 * torch.randn(256, 2, dtype=torch.float64)
    z_ref, log_det_ref = reference.inverse_and_log_det(x)
    z, log_det = flow.inverse_and_log_det(x)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-9)
    torch.testing.assert_close(log_det, log_det_ref, rtol=0, atol=1e-9)
    torch.testing.assert_close(flow(x), reference(x), rtol=0, atol=1e-9)

    # Layer k's gradients are slice k of the stack's: [k, 0] the log s network, [k, 1] b.
    flow.loss(x)[0].backward()
    reference.loss(x).backward()
    stack = flow.couplings
    for k, theirs in enumerate(reference.couplings):
        for net, j in ((theirs.log_s_net, 0), (theirs.b_net, 1)):
            for i, linear in enumerate(linears(net)):
                torch.testing.assert_close(stack.weight[i].grad[k, j], linear.weight.grad,
                                           rtol=1e-7, atol=1e-10)
                torch.testing.assert_close(stack.bias[i].grad[k, j, :, 0], linear.bias.grad,
                                           rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("log_s_bound", [None, 2.0])
def test_stack_and_plain_layers_convert_both_ways(log_s_bound: float | None):
    torch.manual_seed(0)
    stack = CouplingStack.random(4, hidden=8, n_linear=4, negative_slope=0.1,
                                 log_s_bound=log_s_bound).double()
    state = torch.get_rng_state()
    layers = [stack.layer(k) for k in range(len(stack))]
    assert torch.equal(torch.get_rng_state(), state), "reading a layer draws no numbers"
    assert all(isinstance(layer, AffineCoupling) and layer.log_s_bound == log_s_bound
               and layer.negative_slope == 0.1 for layer in layers)
    again = CouplingStack.from_layers(layers)
    assert len(again) == 4 and again.log_s_bound == log_s_bound
    for ours, theirs in zip(stack.parameters(), again.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    # the fused math of layer k is the plain layer k's, forward, inverse and log-det
    z = 2 * torch.randn(64, 2, dtype=torch.float64)
    for params, layer in zip(stack.per_layer(), layers):
        torch.testing.assert_close(stack.forward_r(*z.unbind(1), params), layer(z)[:, 1],
                                   rtol=0, atol=1e-12)
        z_r, log_det = stack.inverse_r(*z.unbind(1), params)
        torch.testing.assert_close(torch.stack([z[:, 0], z_r], 1), layer.inverse(z),
                                   rtol=0, atol=1e-12)
        torch.testing.assert_close(log_det, layer.log_det_inverse(z), rtol=0, atol=1e-12)


def test_one_parameter_tensor_per_depth_not_per_layer():
    flow = NormalizingFlow(NFConfig(n_couplings=4))
    assert isinstance(flow.couplings, CouplingStack) and len(flow.couplings) == 4
    assert len(list(flow.parameters())) == 10
    assert sorted(flow.state_dict())[:2] == ["couplings.bias.0", "couplings.bias.1"]


def test_from_layers_rejects_layers_that_differ():
    with pytest.raises(ValueError, match="^layers must share n_linear, got \\[4, 5\\]$"):
        CouplingStack.from_layers([AffineCoupling(n_linear=5), AffineCoupling(n_linear=4)])
    with pytest.raises(ValueError, match="^layers must share negative_slope and log_s_bound"):
        CouplingStack.from_layers([AffineCoupling(), AffineCoupling(log_s_bound=2.0)])
    with pytest.raises(RuntimeError):  # torch.stack: another width
        CouplingStack.from_layers([AffineCoupling(hidden=8), AffineCoupling(hidden=16)])


def test_initialisation_is_nn_linear_default():
    torch.manual_seed(0)
    flow = NormalizingFlow()
    for i, fan_in in enumerate([1, 8, 8, 8, 8]):
        bound = 1 / math.sqrt(fan_in)
        for name in ("weight", "bias"):
            values = getattr(flow.couplings, name)[i].flatten()
            # U(-bound, bound): every value inside, standard deviation bound / sqrt(3).
            assert values.abs().max() <= bound
            assert abs(values.std().item() / (bound / math.sqrt(3)) - 1) < 0.25


def hidden_mean_squares(flow: NormalizingFlow, x: torch.Tensor) -> torch.Tensor:
    """Mean square of each hidden layer's pre-activation in the first coupling's MLPs."""
    weights, biases = flow.couplings.per_layer()[0]
    h, squares = x[:, 0].expand(2, 1, -1), []
    for i, (weight, bias) in enumerate(zip(weights[:-1], biases[:-1])):
        if i:
            h = nn.functional.leaky_relu(h, flow.config.model.negative_slope)
        h = torch.baddbmm(bias, weight, h)
        squares.append(h.square().mean())
    return torch.stack(squares)


def test_he_initialisation_keeps_the_signal_through_the_depth_and_starts_at_identity():
    x = torch.randn(4096, 2, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    he = NormalizingFlow(NFConfig(hidden=32, init="he"))
    torch.manual_seed(0)
    default = NormalizingFlow(NFConfig(hidden=32))
    with torch.no_grad():
        he_squares, default_squares = hidden_mean_squares(he, x), hidden_mean_squares(default, x)
        # He: each hidden layer's pre-activations keep their scale (a LeakyReLU halves the
        # mean square, the weights' variance 2 / fan_in doubles it back)
        assert (he_squares[1:] / he_squares[:-1]).sub(1).abs().max() < 0.5
        # the default shrinks it (~50x from the first hidden layer to the last)
        assert default_squares[-1] < default_squares[0] / 20
        # zero output layers: every coupling is the identity, so the flow's density is N(0, I)
        assert torch.equal(he.inverse(x), x)
        assert torch.allclose(he.log_prob(x), -0.5 * x.square().sum(1) - math.log(2 * math.pi))
    # the first layer keeps its biases (its kinks spread over the data), the hidden ones are 0
    weights, biases = he.couplings.weight, he.couplings.bias
    assert (biases[0] != 0).all() and all((b == 0).all() for b in biases[1:])
    assert (weights[-1] == 0).all() and all((w != 0).all() for w in weights[:-1])


def test_init_must_be_one_of_the_named_ones():
    with pytest.raises(ValueError, match="^init must be one of 'uniform', 'he', got 'xavier'"):
        NFConfig(init="xavier")


@pytest.mark.parametrize(("n_couplings", "transform"),
                         [(5, "affine"), (4, "affine"), (3, "spline")])
def test_intermediates(n_couplings: int, transform: str):
    torch.manual_seed(0)
    flow = NormalizingFlow(NFConfig(n_couplings=n_couplings, transform=transform, bins=4,
                                    hidden=16 if transform == "spline" else 8))
    z = torch.randn(30, 2)
    x, forward_states = flow(z, return_intermediates=True)
    assert forward_states.shape == (n_couplings + 1, 30, 2)
    torch.testing.assert_close(forward_states[-1], x, rtol=0, atol=0)
    # In the axes of x: z itself after an even number of swaps, else z swapped.
    z_shown = z if n_couplings % 2 else z.flip(1)
    torch.testing.assert_close(forward_states[0], z_shown, rtol=0, atol=0)
    # Every coupling layer moves the points along one axis, the last one along the 2nd axis.
    for k in range(1, n_couplings + 1):
        step = forward_states[k] - forward_states[k - 1]
        moved = 1 if (n_couplings - k) % 2 == 0 else 0
        assert (step[:, 1 - moved] == 0).all() and (step[:, moved] != 0).all()

    z_back, inverse_states = flow.inverse(x, return_intermediates=True)
    assert inverse_states.shape == (n_couplings + 1, 30, 2)
    torch.testing.assert_close(inverse_states[0], x, rtol=0, atol=0)
    torch.testing.assert_close(inverse_states, forward_states.flip(0), rtol=0, atol=1e-5)
    torch.testing.assert_close(z_back, z, rtol=0, atol=1e-5)


@pytest.mark.parametrize("config", [NFConfig(n_couplings=3), SPLINE], ids=["affine", "spline"])
def test_sample_uses_the_generator(config: NFConfig):
    torch.manual_seed(0)
    flow = NormalizingFlow(config)
    x = flow.sample(100, torch.Generator().manual_seed(7))
    assert x.shape == (100, 2) and not x.requires_grad
    torch.testing.assert_close(x, flow.sample(100, torch.Generator().manual_seed(7)))
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(x, flow(z).detach(), rtol=0, atol=0)
    assert not torch.equal(x, flow.sample(100, torch.Generator().manual_seed(8)))
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        flow.sample(0)


def test_training_lowers_validation_nll():
    torch.manual_seed(0)
    flow = NormalizingFlow(NFConfig(n_couplings=6))
    x_train, x_val = ring(4000, seed=0), ring(1000, seed=1)

    def val_nll() -> float:
        with torch.no_grad():
            return -flow.log_prob(x_val).mean().item()

    before = val_nll()
    train(flow, x_train, steps=400, lr=3e-3)
    after = val_nll()
    # The best Gaussian for standardized data has NLL log(2 pi e) = 2.84 nats: beating it
    # clearly means the flow learned the ring, not just its scale.
    assert after < before - 0.5
    assert after < math.log(2 * math.pi * math.e) - 0.3


# Inductor itself still calls torch.jit.script_method; that warning is torch's, not ours.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
def test_compiled_loss_matches_eager():
    """The one torch.compile test: a cold compile costs tens of seconds."""
    torch.manual_seed(0)
    flow = NormalizingFlow(NFConfig(n_couplings=2))
    x = torch.randn(64, 2)
    params = list(flow.parameters())
    # Compiled, the layers run as broadcast products and sums instead of baddbmm: the same
    # function and the same gradients, for every parameter.
    compiled = torch.compile(flow.loss, fullgraph=True)
    loss, parts = compiled(x)
    grads = torch.autograd.grad(loss, params)
    eager_loss, eager_parts = flow.loss(x)
    eager_grads = torch.autograd.grad(eager_loss, params)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
    for name in ("log_det", "log_pz"):
        torch.testing.assert_close(parts[name], eager_parts[name], rtol=1e-5, atol=1e-6)
    for grad, eager_grad in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(grad, eager_grad, rtol=1e-4, atol=1e-6)


def test_the_flow_checks_its_inputs_and_takes_any_float_and_integer_types():
    flow = NormalizingFlow(NFConfig(n_couplings=3))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\), got \(4, 3\)"):
        flow.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="floating-point"):
        flow.log_prob(torch.zeros(4, 2, dtype=torch.long))
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    # float64 (or a numpy array) is computed in the weights' dtype: the float32 answer
    torch.testing.assert_close(flow.log_prob(x.double()), flow.log_prob(x), rtol=0, atol=0)
    torch.testing.assert_close(flow.log_prob(x.double().numpy()), flow.log_prob(x), rtol=0,
                               atol=0)
    assert flow.sample(np.int64(3)).shape == (3, 2)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        flow.sample(True)
