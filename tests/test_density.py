"""Both families share one face (flows_src.density): sample, log_prob, trajectory."""

import pytest
import torch

from flows_src.config import FMConfig, NFConfig
from flows_src.density import DensityModel, standard_normal
from flows_src.flow_matching import FlowMatching
from flows_src.normalizing_flow import NormalizingFlow

# an odd number of coupling layers: the flow's z end is z itself, not z swapped
MODELS = {"nf": lambda: NormalizingFlow(NFConfig(n_couplings=3)),
          "fm": lambda: FlowMatching(FMConfig(hidden=16, n_linear=3, dt=0.05))}


@pytest.fixture(params=MODELS)
def density(request) -> DensityModel:
    torch.manual_seed(0)
    return MODELS[request.param]().eval()


def test_both_families_have_the_face(density):
    assert isinstance(density, DensityModel)
    x = density.sample(7, torch.Generator().manual_seed(1))
    assert isinstance(x, torch.Tensor) and x.shape == (7, 2) and not x.requires_grad
    torch.testing.assert_close(x, density.sample(7, torch.Generator().manual_seed(1)))
    log_p = density.log_prob(x)
    assert log_p.shape == (7,) and torch.isfinite(log_p).all()


def test_sample_is_the_trajectory_from_the_same_noise(density):
    x = density.sample(5, torch.Generator().manual_seed(2))
    z = standard_normal(5, torch.Generator().manual_seed(2), x)
    path = density.trajectory(z)
    assert path.times[0] == 0 and path.times[-1] == 1 and len(path.times) == len(path.states)
    assert torch.equal(path.states[0], z)
    torch.testing.assert_close(path.states[-1], x, rtol=0, atol=1e-6)
    back = density.trajectory(x, reverse=True, times=[1.0, 0.0])  # snapped to the steps
    assert back.times.tolist() == [1.0, 0.0] and back.states.shape == (2, 5, 2)
    assert torch.equal(back.states[0], x)


def test_an_unconditional_model_refuses_a_class(density):
    with pytest.raises(ValueError, match=r"^c must be None"):
        density.sample(3, c=1)
    with pytest.raises(ValueError, match=r"^c must be None"):
        density.log_prob(torch.zeros(3, 2), 1)


def test_only_flow_matching_has_a_solver_to_set():
    flow, fm = MODELS["nf"](), MODELS["fm"]()
    assert flow.with_sampler(dt=0.5) is flow and flow.exact_likelihood
    assert fm.with_sampler(dt=0.5).sampler.dt == 0.5 and not fm.exact_likelihood
