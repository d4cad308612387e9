"""The bonus's tools: shooting finds the noise a sampler maps onto a target; steering makes
the sampler end on it."""

import pytest
import torch

from create_data import create_olympic_rings
from flows_src.config import FMConfig
from flows_src.flow_matching import FlowMatching
from flows_src.ode import solve
from flows_src.steering import learn_embedding, shoot, steered
from flows_src.training import train


def test_shooting_inverts_the_euler_map_of_a_linear_field_exactly():
    # for v = A y, n Euler steps map x_0 to (I + h A)^n x_0: the exact answer is known
    a = torch.tensor([[0.2, -1.0], [0.7, -0.3]], dtype=torch.float64)
    target = torch.tensor([[4.0, 5.0], [-1.0, 0.5]], dtype=torch.float64)
    dt = 0.01
    euler_map = torch.linalg.matrix_power(torch.eye(2, dtype=torch.float64) + dt * a, 100)
    expected = torch.linalg.solve(euler_map, target.T).T
    result = shoot(lambda y, t: y @ a.T, target, dt=dt, tol=1e-12)
    torch.testing.assert_close(result.x_0, expected, rtol=0, atol=1e-10)
    # the reverse process alone misses by O(dt); Newton removes the miss in one step
    assert result.errors[0] > 1e-4 and result.errors[-1] < 1e-10


def test_shooting_converges_on_a_nonlinear_field():
    a = torch.tensor([[0.3, -1.0], [0.8, -0.2]], dtype=torch.float64)

    def velocity(y, t):
        return torch.tanh(y @ a.T) * (1 + t[:, None]) - 0.5 * y

    target = torch.tensor([[4.0, 5.0]], dtype=torch.float64)
    result = shoot(velocity, target, dt=0.001, tol=1e-10)
    assert result.errors[-1] < 1e-10
    assert all(b < e for e, b in zip(result.errors, result.errors[1:]))
    final = solve(velocity, result.x_0, dt=0.001).y
    torch.testing.assert_close(final, target, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dt", [0.01, 0.001])
def test_steering_ends_exactly_on_the_target_from_any_noise(dt):
    def velocity(y, t):
        return torch.sin(y) - y

    target = torch.tensor([4.0, 5.0], dtype=torch.float64)
    x_0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    end = solve(steered(velocity, target), x_0, dt=dt).y
    torch.testing.assert_close(end, target.expand(50, 2), rtol=0, atol=1e-9)
    # before steering starts (t < 0.8) the path is the model's own
    plain = solve(velocity, x_0, dt=dt, t_end=0.8).y
    torch.testing.assert_close(solve(steered(velocity, target), x_0, dt=dt, t_end=0.8).y,
                               plain, rtol=0, atol=1e-12)


def test_bonus_reaches_4_5_with_a_small_trained_conditional_model():
    points, labels, _ = create_olympic_rings(4000, verbose=False, seed=0)
    x = torch.as_tensor(points, dtype=torch.float32)
    c = torch.as_tensor(labels)
    config = FMConfig(n_points=4000, epochs=3, batch_size=64, hidden=32, n_linear=4,
                      n_classes=5, lr=3e-3)
    torch.manual_seed(0)
    model = FlowMatching(config)
    train(model, (x, c), config, progress=False)
    target = torch.tensor([[4.0, 5.0]])
    velocity = model.as_velocity(2, 1)
    result = shoot(velocity, target, dt=0.01)
    assert (result.x_1 - target).norm() < 1e-2
    model = model.with_sampler(dt=0.01)
    assert (model.solve(result.x_0, c=2).y - target).norm() < 1e-2
    # the trained model itself never goes there: its nearest sample is far away
    many = model.sample(2000, torch.Generator().manual_seed(1), c=2)
    assert (many - target).norm(dim=1).min() > 1.0


def test_a_new_class_embedding_is_learned_with_the_network_frozen():
    points, labels, _ = create_olympic_rings(8000, verbose=False, seed=0)
    config = FMConfig(n_points=8000, epochs=4, n_classes=5, lr=3e-3)  # the exercise's net
    torch.manual_seed(0)
    model = FlowMatching(config)
    train(model, (torch.as_tensor(points, dtype=torch.float32), torch.as_tensor(labels)),
          config, progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    target = torch.tensor([[4.0, 5.0]])
    embedding, losses = learn_embedding(model, target, steps=1500,
                                        generator=torch.Generator().manual_seed(0))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed: the network must stay frozen"
    assert all(p.requires_grad for p in model.parameters())
    assert embedding.shape == (1, config.model.embed_dim)
    assert sum(losses[-50:]) < 0.5 * sum(losses[:50])
    # ordinary draws sampled with the new class land far nearer the target than any class's
    x_0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    new = solve(model.as_velocity(embedding=embedding), x_0, dt=0.02).y
    old = min((solve(model.as_velocity(k), x_0, dt=0.02).y - target).norm(dim=1).median()
              for k in range(5))
    assert (new - target).norm(dim=1).median() < 0.5 * old
    with pytest.raises(ValueError, match="shape"):
        model.as_velocity(embedding=torch.zeros(2, config.model.embed_dim))


def test_a_new_class_is_learned_on_the_network_s_own_field_whatever_the_guidance():
    # Eq. 16 trains the network's field: the sampler's guidance must not enter the fit
    config = FMConfig(hidden=16, n_linear=3, n_classes=5, class_dropout=0.1)
    torch.manual_seed(0)
    model = FlowMatching(config)
    with torch.no_grad():
        model.net.null_embedding.normal_()
    target = torch.tensor([[4.0, 5.0]])
    plain, plain_losses = learn_embedding(model, target, steps=20,
                                          generator=torch.Generator().manual_seed(0))
    guided, guided_losses = learn_embedding(model.with_sampler(guidance=2.0), target, steps=20,
                                            generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(guided, plain)
    assert guided_losses == plain_losses
