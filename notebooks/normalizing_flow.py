# %% [markdown]
# # Normalizing flows (Sec. 3)
#
# A RealNVP-style normalizing flow $x = \phi(z)$, $z \sim \mathcal{N}(0, I)$, built from
# affine coupling layers (Eq. 3–6) with a permutation between consecutive ones (Sec. 3.1.5),
# trained by maximum likelihood with the loss of Eq. 9,
# $\mathcal{L}(x) = -\log p_z(\phi^{-1}(x)) - \log\left|\det \frac{\partial
# \phi^{-1}(x)}{\partial x^T}\right|$, on the unconditional Olympic-rings data. With the
# default `preset = "spec"` the architecture and training hyper-parameters are the
# exercise's (`flows_src.config.NFConfig`); `preset = "strong"` answers the same questions
# with the stronger configuration of `flows_src/presets.py` (into its own run folder). The
# model lives in `flows_src/normalizing_flow.py`.

# %% tags=["parameters"]
seed = 0
preset = "spec"  # "spec": the exercise's settings; "strong": flows_src/presets.py
epochs = None  # None: the preset's (spec: 20)
n_points = 250_000
n_val = 10_000
batch_size = None  # None: the preset's (spec: 128)
lr = None  # None: the preset's (spec: 1e-3)
compile_model = True
n_eval = 10_000
grid_resolution = 0.03
force = False
runs_root = "runs"

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch

from create_data import create_unconditional_olympic_rings
from flows_src import metrics, plotting, presets, rings
from flows_src.normalizing_flow import NormalizingFlow
from flows_src.parameters import check_parameters
from flows_src.runs import run_dir, write_json
from flows_src.training import train_or_load, validation

config = presets.config("nf", preset, n_points=n_points, n_val=n_val, epochs=epochs,
                        batch_size=batch_size, lr=lr, seed=seed, compile=compile_model)
check_parameters(n_eval=n_eval, grid_resolution=grid_resolution)
out = run_dir("normalizing_flow", seed, runs_root, preset)
print(f"preset {preset!r}: {config}")

# %% [markdown]
# ## Training
# The training and held-out points are drawn in one call (one standardization), then split.
# A trained checkpoint is reused when the configuration and the code are unchanged
# (`force = True` retrains).

# %%
points, standardizer = create_unconditional_olympic_rings(
    n_points + n_val, verbose=False, seed=seed, return_standardizer=True)
x = torch.as_tensor(points, dtype=torch.float32)
x_train, x_val = x[:n_points], x[n_points:]

torch.manual_seed(seed)
model = NormalizingFlow(config)
history = train_or_load(model, (x_train,), config, checkpoint=out / "model.pt", force=force,
                        validate=validation(x_val))
model.eval()
print(f"{sum(p.numel() for p in model.parameters()):,} parameters; "
      f"{history.train_seconds:.0f} s of training ({len(history.batch_loss):,} steps, "
      f"compiled: {history.compiled}, first step {history.first_step_seconds:.1f} s)")

# %% [markdown]
# ## Q1: Loss
# The validation loss (Eq. 9, mean over the held-out points) after every epoch, with its two
# components: the mean log-determinant of the inverse Jacobian and the mean
# $\log p_z(\phi^{-1}(x))$. The loss is $-(\log p_z + \log|\det|)$. The dashed line is the
# data entropy $H$, the lowest loss any model can reach on this data.

# %%
H = rings.data_entropy()
fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
plotting.epoch_curves(ax, history.epochs[1:], {
    "loss": "validation loss (Eq. 9)", "log_det": r"$\log|\det \partial\phi^{-1}/\partial x|$",
    "log_pz": r"$\log p_z(\phi^{-1}(x))$"}, floor=H, title="Q1: validation loss and its parts")
plotting.finish(fig, out / "nf_q1_loss.png")
first, last = history.epochs[1], history.epochs[-1]
print(metrics.format_table(  # every fifth epoch: the figure has them all
    [[e["epoch"], e["loss"], e["log_det"], e["log_pz"]] for e in history.epochs[1:]
     if e["epoch"] % 5 == 0 or e["epoch"] in (1, config.epochs)],
    ["epoch", "val loss", "log det", "log p_z"]))

# %% [markdown]
# **Reading the two components.** If the flow were perfect, $\phi^{-1}(x)$ would be exactly
# standard normal, so the mean $\log p_z$ would be minus the entropy of $\mathcal{N}(0, I)$,
# $-\log(2\pi e)$, whatever the data; and the loss would be the data entropy $H$, so the mean
# log-determinant would have to reach $\log(2\pi e) - H$. A model whose latents are already
# roughly Gaussian therefore improves almost only through the log-determinant: it learns to
# *expand* the thin bands (the inverse map stretches the data region into the whole
# Gaussian). The printed numbers show where the run stands.

# %%
gauss = np.log(2 * np.pi * np.e)
print(f"Epoch 1 -> {last['epoch']}: validation loss {first['loss']:.3f} -> {last['loss']:.3f}"
      f" nats (data entropy H = {H:.3f}, gap {last['loss'] - H:.3f}).")
print(f"mean log p_z: {first['log_pz']:.3f} -> {last['log_pz']:.3f} (a perfect flow: "
      f"-log(2 pi e) = {-gauss:.3f}); mean log-det: {first['log_det']:.3f} -> "
      f"{last['log_det']:.3f} (a perfect flow: log(2 pi e) - H = {gauss - H:.3f}).")
print(f"Of the {first['loss'] - last['loss']:.3f}-nat drop since epoch 1, "
      f"{last['log_det'] - first['log_det']:.3f} came from the log-determinant and "
      f"{last['log_pz'] - first['log_pz']:.3f} from log p_z.")

# %% [markdown]
# ## Q2: Sampling
# Three samplings of 1,000 points, with three seeds.

# %%
fig, axes = plotting.panels(3, size=3.4)
for ax, s in zip(axes, (seed, seed + 1, seed + 2)):
    sample = model.sample(1000, torch.Generator().manual_seed(s))
    plotting.bands(ax, standardizer)
    plotting.points(ax, sample, s=3, title=f"seed {s}: in-band "
                    f"{metrics.in_band_fraction(sample, standardizer):.2f}")
fig.suptitle("Q2: 1,000 samples from the normalizing flow, three seeds")
plotting.finish(fig, out / "nf_q2_samples.png")

# %% [markdown]
# ## Q3: Sampling over time
# 1,000 points pushed through the flow, shown after the layers at every fifth of the way
# ($t$ = layer / number of layers). Each panel shows the points in the data's own axes.

# %%
z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(seed))
with torch.no_grad():
    _, states = model.forward(z, return_intermediates=True)
L = config.n_couplings
layers = np.unique(np.round(np.linspace(0, L, 6)).astype(int))
fig, axes = plotting.panels(len(layers), size=2.3, cols=3)
for ax, k in zip(axes, layers):
    plotting.points(ax, states[k], s=2, title=f"after layer {k} of {L} (t = {k / L:.1f})"
                    if k else "z ~ N(0, I) (t = 0)")
fig.suptitle("Q3: the distribution layer by layer")
plotting.finish(fig, out / "nf_q3_layers.png")

# %% [markdown]
# ## Q4: Sampling trajectories
# Ten points through the flow, layer by layer; the colour is the time $t$ = layer / number
# of layers. The
# ten latent points are spread evenly over the Gaussian (`rings.spread_latents`: one per
# tenth of its mass) rather than drawn at random, and flow matching's Q3 starts from the
# same ten, so the two pictures compare like with like.

# %%
z10 = torch.as_tensor(rings.spread_latents(10), dtype=torch.float32)
with torch.no_grad():
    _, path = model.forward(z10, return_intermediates=True)
times = np.arange(L + 1) / L
fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
plotting.bands(ax, standardizer)
plotting.trajectories(ax, path, times, title="Q4: forward trajectories of 10 samples "
                      "(circles: final points)")
plotting.time_colorbar(fig, ax, f"time t (layer / {L})")
plotting.finish(fig, out / "nf_q4_trajectories.png")
path_ratio = metrics.path_length_ratio(path)
print(f"Path length / straight-line distance, mean over the 10 points: {path_ratio:.2f} "
      f"(1 = straight)")

# %% [markdown]
# ## Q5: Probability estimation
# Five points chosen in ring coordinates (`flows_src.rings.PROBE_POINTS`): three on a band
# (the tops of the blue and black rings, the green ring's lower right) and two off the
# logo (the hole of the black ring, and a point beside the logo). Their inverse process
# $x \to z$ layer by layer, coloured by $t$ (from 1 at $x$ down to 0 at $z$), and
# $\log p(x)$ of each (Eq. 2).

# %%
probe = torch.as_tensor(standardizer.transform(rings.PROBE_POINTS), dtype=torch.float32)
with torch.no_grad():
    z_probe, back = model.inverse(probe, return_intermediates=True)
    log_p = model.log_prob(probe).numpy()
    reconstruction = (model.forward(z_probe) - probe).norm(dim=1).numpy()
probe_rows = [[i, "inside" if inside else "outside", f"({r[0]:+.2f}, {r[1]:+.2f})",
               f"({s_[0]:+.2f}, {s_[1]:+.2f})", float(lp)]
              for i, (inside, r, s_, lp) in enumerate(
                  zip(rings.PROBE_INSIDE, rings.PROBE_POINTS, probe.numpy(), log_p))]
print(metrics.format_table(probe_rows, ["point", "where", "ring coords", "standardized",
                                        "log p(x)"]))

# %%
# the view: the data, the five points and the latents near them (a far point's latent can
# lie far out in the Gaussian's tail; it is then off the picture)
xlim = (min(-2.6, probe[:, 0].min().item() - 0.4), max(2.6, probe[:, 0].max().item() + 0.4))
ylim = (min(-2.9, probe[:, 1].min().item() - 0.4), max(2.6, probe[:, 1].max().item() + 0.4))
with torch.no_grad():
    xs, ys, grid = metrics.log_prob_grid(model.log_prob, xlim, ylim, grid_resolution)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
plotting.bands(ax1, standardizer)
plotting.trajectories(ax1, back, 1 - times, title="Q5: inverse trajectories x -> z")
plotting.probes(ax1, probe)
ax1.set(xlim=(-4, 4), ylim=(-4, 4))
plotting.time_colorbar(fig, ax1, "time t (1 at x, 0 at z)")
image = plotting.density(ax2, xs, ys, grid, vmin=max(grid.max() - 8, grid.min()),
                         title="log p(x) of the flow, and the five points")
plotting.bands(ax2, standardizer, color="w")
fig.colorbar(image, ax=ax2, label="log p(x)", shrink=0.8)
plotting.probes(ax2, probe, [f"{v:.1f}" for v in log_p])
plotting.finish(fig, out / "nf_q5_probability.png")

# %%
inside, outside = log_p[rings.PROBE_INSIDE], log_p[~rings.PROBE_INSIDE]
print(f"Inside the logo: log p = {', '.join(f'{v:.2f}' for v in inside)}; outside: "
      f"{', '.join(f'{v:.2f}' for v in outside)}.")
if inside.min() > outside.max():
    print(f"Every inside point is more likely than every outside point: the least likely "
          f"inside point ({inside.min():.2f}) beats the most likely outside one "
          f"({outside.max():.2f}) by {inside.min() - outside.max():.2f} nats, a density "
          f"ratio of {np.exp(inside.min() - outside.max()):.2f}.")
else:
    print(f"Not every inside point beats every outside one: the least likely inside point "
          f"({inside.min():.2f}) is below the most likely outside one ({outside.max():.2f}).")
print(f"For scale: a perfect model has log p = {-H:.2f} everywhere on the bands (uniform "
      f"density 1/area) and -infinity off them.")

# %% [markdown]
# **Why.** Training maximizes the likelihood of the data, and the data lives only on the
# bands; the density integrates to 1, so mass put on the bands must be taken from elsewhere.
# The flow therefore learns high $\log p$ on the rings and low $\log p$ off them. The
# inverse trajectories show the mechanism: a point on a band is mapped into the bulk of the
# Gaussian (small $\|z\|$, high $\log p_z$) by an inverse map that expands its neighbourhood
# (positive log-determinant), while a point off the logo is pushed to the Gaussian's tail or
# lands in a region the inverse map compresses. A flow is a continuous bijection from the
# plane to the plane, so it cannot give exactly zero density between rings: the heat map
# shows thin "bridges" of density where the map stretches the Gaussian between bands, and
# the hole of a ring keeps more density than far-away points.

# %% [markdown]
# ## Results
# Held-out NLL against the data entropy, and the quality of 10,000 samples.

# %%
with torch.no_grad():
    samples = model.sample(n_eval, torch.Generator().manual_seed(seed + 100))
    nll = metrics.nll(model.log_prob, x_val)
result = metrics.quality(samples, x_val, standardizer, nll)
print(metrics.format_quality(result, "normalizing flow"))
write_json(out / "metrics.json", {
    "preset": preset, "config": dataclasses.asdict(config), **result,
    "train_seconds": history.train_seconds, "first_step_seconds": history.first_step_seconds,
    "compiled": history.compiled, "epochs": history.epochs, "path_length_ratio": path_ratio,
    "probe": {"standardized": probe, "log_p": log_p, "inside": rings.PROBE_INSIDE,
              "z": z_probe, "reconstruction_error": reconstruction},
    "standardizer": dataclasses.asdict(standardizer),
})
print(f"forward(inverse(x)) error on the five points: max {reconstruction.max():.2e}")
