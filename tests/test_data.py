"""The data sets: shapes, standardization, band membership, balance, determinism, errors."""

import numpy as np
import pytest

from create_data import create_olympic_rings, create_unconditional_olympic_rings
from flows_src import rings


@pytest.fixture(scope="module")
def unconditional():
    return create_unconditional_olympic_rings(50_000, verbose=False, seed=0,
                                              return_standardizer=True)


def test_unconditional_shape_dtype_and_standardization(unconditional):
    x, _ = unconditional
    assert x.shape == (50_000, 2) and x.dtype == np.float64
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-12)


def test_unconditional_points_lie_in_a_band_inside_the_box(unconditional):
    x, standardizer = unconditional
    raw = standardizer.inverse(x)
    assert rings.in_ring(raw).any(1).all()
    x_min, x_max, y_min, y_max = rings.BOX
    assert (raw[:, 0] >= x_min).all() and (raw[:, 0] <= x_max).all()
    assert (raw[:, 1] >= y_min).all() and (raw[:, 1] <= y_max).all()


def test_unconditional_is_uniform_on_the_union(unconditional):
    # uniform on the union: each ring's share of points is its share of the union's area,
    # which the quadrature estimates independently of the sampler
    x, standardizer = unconditional
    owner = rings.ring_of(standardizer.inverse(x))
    xs, ys = np.meshgrid(np.linspace(-1, 5, 1201)[:-1] + 0.0025,
                         np.linspace(-2, 1, 601)[:-1] + 0.0025)
    grid_owner = rings.ring_of(np.column_stack([xs.ravel(), ys.ravel()]))
    area_share = np.bincount(grid_owner[grid_owner >= 0], minlength=5) / (grid_owner >= 0).sum()
    np.testing.assert_allclose(np.bincount(owner, minlength=5) / len(owner), area_share,
                               atol=0.01)


def test_conditional_classes_are_balanced_and_in_their_own_ring():
    x, labels, int_to_label, standardizer = create_olympic_rings(
        10_003, verbose=False, seed=1, return_standardizer=True)
    assert x.shape == (10_003, 2) and labels.shape == (10_003,)
    assert int_to_label == {0: "blue", 1: "black", 2: "red", 3: "yellow", 4: "green"}
    counts = np.bincount(labels, minlength=5)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 10_003
    own = rings.in_ring(standardizer.inverse(x))[np.arange(len(x)), labels]
    assert own.all()
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-12)


def test_same_seed_same_array_other_seed_other_array():
    a = create_unconditional_olympic_rings(1000, verbose=False, seed=7)
    b = create_unconditional_olympic_rings(1000, verbose=False, seed=7)
    c = create_unconditional_olympic_rings(1000, verbose=False, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(create_olympic_rings(500, verbose=False, seed=g1)[0],
                                  create_olympic_rings(500, verbose=False, seed=g2)[0])


@pytest.mark.parametrize("bad", [0, -5, 1, 2.5, "10", True, None])
@pytest.mark.parametrize("fn", [create_unconditional_olympic_rings, create_olympic_rings])
def test_bad_n_points_is_a_clear_value_error(fn, bad):
    # one point has no spread to standardize by: it would come back as NaN
    with pytest.raises(ValueError, match=r"^n_points must be an integer >= 2 .*got"):
        fn(bad, verbose=False, seed=0)


@pytest.mark.parametrize("bad", [0, -0.25, 2.5, float("nan"), float("inf"), "0.25", None])
@pytest.mark.parametrize("fn", [create_unconditional_olympic_rings, create_olympic_rings])
def test_bad_ring_thickness_is_a_clear_value_error_not_a_hang(fn, bad):
    with pytest.raises(ValueError, match=r"^ring_thickness must be a number in \(0, 2\]"):
        fn(100, ring_thickness=bad, verbose=False, seed=0)


def test_two_points_and_thin_or_wide_bands_work():
    assert np.isfinite(create_unconditional_olympic_rings(np.int64(2), verbose=False,
                                                          seed=0)).all()
    assert np.isfinite(create_olympic_rings(2, verbose=False, seed=0)[0]).all()
    for thickness in (0.02, 2):
        x, standardizer = create_unconditional_olympic_rings(
            500, ring_thickness=thickness, verbose=False, seed=0, return_standardizer=True)
        assert rings.in_ring(standardizer.inverse(x), thickness).any(1).all()


def test_the_rejection_sampler_is_bounded():
    # a band so thin that almost no candidate lands in it stops, rather than sampling on
    with pytest.raises(ValueError, match=r"cover too little of the box: \d+ of 100 points"):
        rings.sample_union(100, np.random.default_rng(0), 1e-9)


def test_verbose_plots_without_blocking_headless(monkeypatch):
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    before = len(plt.get_fignums())
    create_unconditional_olympic_rings(300, verbose=True, seed=0)
    create_olympic_rings(300, verbose=True, seed=0)
    assert not shown and len(plt.get_fignums()) == before  # drawn, closed, never blocked


def test_data_entropy_matches_the_band_geometry():
    # five annuli of area pi((r+t/2)^2 - (r-t/2)^2) = 2 pi r t, less overlaps and box clipping
    area = rings.union_area()
    assert 0.8 * 5 * 2 * np.pi * 0.25 < area < 5 * 2 * np.pi * 0.25
    assert rings.union_area(0.25) == pytest.approx(6.405, abs=0.01)
    assert rings.data_entropy() == pytest.approx(1.561, abs=0.005)


def test_standardizer_round_trip_and_probe_points():
    s = rings.Standardizer((2.0, -0.3), (1.5, 0.6))
    p = np.random.default_rng(0).normal(size=(10, 2))
    np.testing.assert_allclose(s.inverse(s.transform(p)), p)
    assert (rings.in_ring(rings.PROBE_POINTS).any(1) == rings.PROBE_INSIDE).all()
    assert rings.PROBE_INSIDE.sum() == 3


def test_spread_latents_cover_the_gaussian_by_mass():
    z = rings.spread_latents(10)
    mass_inside = 1 - np.exp(-np.linalg.norm(z, axis=1) ** 2 / 2)  # P(|Z| <= |z|)
    np.testing.assert_allclose(mass_inside, (np.arange(10) + 0.5) / 10, atol=1e-12)
    angles = np.sort(np.arctan2(z[:, 1], z[:, 0]))
    assert np.diff(angles).min() > 0.2  # no two points in the same direction
