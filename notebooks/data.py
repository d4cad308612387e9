# %% [markdown]
# # The data: points on the Olympic rings
#
# Both parts of the exercise train on 2D points sampled from the Olympic logo (Sec. 2.1).
# `create_unconditional_olympic_rings` draws points uniformly on the union of the five ring
# bands (for the unconditional models); `create_olympic_rings` draws the same number of
# points on each ring and labels them by ring (for the conditional model). Both standardize
# each axis by the sample's mean and standard deviation.

# %% tags=["parameters"]
seed = 0
n_points = 250_000
runs_root = "runs"

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from create_data import create_olympic_rings, create_unconditional_olympic_rings
from flows_src import plotting, rings
from flows_src.parameters import check_parameters
from flows_src.runs import run_dir, write_json

plotting.use_print_style()

check_parameters(seed=seed, n_points=n_points)
out = run_dir("data", seed, runs_root)

# %% [markdown]
# ## Unconditional data
# Rejection sampling from the box $x \in [-1, 5]$, $y \in [-2, 1]$, kept when the point lies
# in some band $\big|\,\lVert p - c_k\rVert - 1\big| \le 0.125$. The box clips the outer
# edges of the outer rings; that is the exercise's data, so it is kept.

# %%
start = time.perf_counter()
x, standardizer = create_unconditional_olympic_rings(n_points, verbose=False, seed=seed,
                                                     return_standardizer=True)
seconds = time.perf_counter() - start
in_band = rings.in_ring(standardizer.inverse(x)).any(1).mean()
print(f"{len(x):,} points in {seconds:.3f} s; dtype {x.dtype}")
print(f"mean {x.mean(0).round(4)}, std {x.std(0).round(4)} (standardized)")
print(f"raw mean {np.round(standardizer.mean, 4)}, raw std {np.round(standardizer.std, 4)}")
print(f"share of points inside a band: {in_band:.4f}")
print(f"data entropy H = {rings.data_entropy():.4f} nats "
      f"(band union area {rings.union_area():.4f}): no model's NLL can be lower")

# %%
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
sub = np.random.default_rng(seed).permutation(len(x))[:20_000]
plotting.points(ax, x[sub], s=1, title="Unconditional data (20,000 of the points)")
plotting.finish(fig, out / "data_unconditional.png")

# %% [markdown]
# ## Class-conditional data
# $n/5$ points per ring, radius $\sim U[1 - t/2, 1 + t/2]$, angle $\sim U[0, 2\pi]$, labelled
# by ring. This sampler is not uniform in area (the density grows toward a ring's inner
# edge) and does not clip to the box, so its mean and std differ slightly from the
# unconditional data's.

# %%
xc, labels, int_to_label = create_olympic_rings(n_points, verbose=False, seed=seed)
counts = np.bincount(labels, minlength=5)
for k, name in int_to_label.items():
    print(f"class {k} ({name:6s}): {counts[k]:,} points")
print(f"mean {xc.mean(0).round(4)}, std {xc.std(0).round(4)} (standardized)")

# %%
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
sub = np.random.default_rng(seed).permutation(len(xc))[:20_000]
plotting.classes(ax, xc[sub], labels[sub], s=1, title="Conditional data, coloured by class")
plotting.finish(fig, out / "data_conditional.png")

# %%
write_json(out / "metrics.json", {
    "n_points": len(x), "sample_seconds": seconds, "mean": x.mean(0), "std": x.std(0),
    "in_band": in_band, "data_entropy": rings.data_entropy(),
    "class_counts": counts, "raw_mean": standardizer.mean, "raw_std": standardizer.std,
})
