# %% [markdown]
# # Normalizing flows (Sec. 3)
#
# A RealNVP-style normalizing flow $x = \phi(z)$, $z \sim \mathcal{N}(0, I)$, built from
# affine coupling layers (Eq. 3–6) with a permutation between consecutive ones (Sec. 3.1.5),
# trained by maximum likelihood with the loss of Eq. 9,
# $\mathcal{L}(x) = -\log p_z(\phi^{-1}(x)) - \log\left|\det \frac{\partial
# \phi^{-1}(x)}{\partial x^T}\right|$, on the unconditional Olympic-rings data.

# %% [markdown] tags=["report-skip"]
# With the default `preset = "spec"` the architecture and training hyper-parameters are the
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

# %% tags=["report-skip"]
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch

from create_data import create_unconditional_olympic_rings
from flows_src import (
    experiments,
    figures,
    metrics,
    path_metrics,
    plotting,
    rings,
    training_plots,
)
from flows_src.normalizing_flow import NormalizingFlow
from flows_src.parameters import check_parameters
from flows_src.runs import run_dir, write_json
from flows_src.training import train_or_load, validation

plotting.use_print_style()

config = experiments.config("nf", preset, n_points=n_points, n_val=n_val, epochs=epochs,
                           batch_size=batch_size, lr=lr, seed=seed, compile=compile_model)
check_parameters(n_eval=n_eval, grid_resolution=grid_resolution)
out = run_dir("normalizing_flow", seed, runs_root, preset)
print(f"preset {preset!r}: {config}")

# %% [markdown] tags=["report-skip"]
# ## Training
# The training and held-out points are drawn in one call (one standardization), then split.
# A trained checkpoint is reused when the configuration and the code are unchanged
# (`force = True` retrains).

# %% tags=["report-skip"]
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
# **The model and its settings.** The data comes from the course's `create_data.py`
# functions, vectorized and seeded (same distributions). The flow:

# %%
print(experiments.describe(config))

# %% [markdown]
# ## Q1: Loss
# The validation loss (Eq. 9, mean over 10,000 held-out points) after every epoch, with its
# two components: the mean log-determinant of the inverse Jacobian and the mean
# $\log p_z(\phi^{-1}(x))$; the loss is $-(\log p_z + \log|\det|)$. The dashed line is the
# data entropy $H$, the lowest loss any model can reach on this data.

# %%
H = rings.data_entropy()
fig, ax = plt.subplots(figsize=(6.0, 2.3), layout="constrained")
training_plots.epoch_curves(ax, history.epochs[1:], {
    "loss": "validation loss (Eq. 9)", "log_det": r"$\log|\det \partial\phi^{-1}/\partial x|$",
    "log_pz": r"$\log p_z(\phi^{-1}(x))$"}, floor=H, title="Q1: validation loss and its parts")
ax.legend(loc="center right", ncols=2)
plotting.finish(fig, out / "nf_q1_loss.png")
first, last = history.epochs[1], history.epochs[-1]

# %% [markdown]
# **Reading the two components.** If the flow were perfect, $\phi^{-1}(x)$ would be exactly
# standard normal, so the mean $\log p_z$ would be minus the entropy of $\mathcal{N}(0, I)$,
# $-\log(2\pi e)$, whatever the data, and the loss would be the data entropy $H$, so the
# mean log-determinant would have to reach $\log(2\pi e) - H$: the inverse map must *expand*
# the thin bands into the whole Gaussian. The printed numbers show where the run stands.

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
# Three samplings of 1,000 points, with three sampling seeds (of the noise; the model is
# the one trained with the run's seed), on the same axes.

# %%
seeds = (seed, seed + 1, seed + 2)
draws = [model.sample(1000, torch.Generator().manual_seed(s)) for s in seeds]
xlim, ylim = plotting.view(*draws, least=plotting.DATA_VIEW)
fig, axes = plotting.panels(3, height=2.1)
for ax, s, sample in zip(axes, seeds, draws):
    plotting.bands(ax, standardizer)
    plotting.points(ax, sample, s=2, title=f"sampling seed {s}: in-band "
                    f"{metrics.in_band_fraction(sample, standardizer):.2f}")
plotting.same_limits(axes, xlim, ylim)
plotting.outer_labels(axes, cols=3, space="data")
fig.suptitle("Q2: 1,000 samples from the normalizing flow, three seeds")
plotting.finish(fig, out / "nf_q2_samples.png")
print(figures.outside_note(draws, xlim, ylim))

# %% [markdown]
# ## Q3: Sampling over time
# 1,000 points pushed through the flow, shown after the layers at every fifth of the way
# ($t$ = layer / number of layers), all on the same axes. The last panel is the data space.

# %%
z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(seed))
with torch.no_grad():
    _, states = model.forward(z, return_intermediates=True)
L = config.model.n_couplings
layers = np.unique(np.round(np.linspace(0, L, 6)).astype(int))
shown = [states[k] for k in layers]
xlim, ylim = plotting.view(*shown, least=plotting.DATA_VIEW)
fig, axes = plotting.panels(len(layers), cols=3, height=1.75)
for ax, k, state in zip(axes, layers, shown):
    title = ("latent z (t = 0)" if k == 0 else f"layer {k} of {L}: data (t = 1)" if k == L
             else f"layer {k} of {L} (t = {k / L:.1f})")
    plotting.points(ax, state, s=2, title=title)
plotting.same_limits(axes, xlim, ylim)
plotting.outer_labels(axes, cols=3)
fig.suptitle("Q3: the distribution layer by layer")
plotting.finish(fig, out / "nf_q3_layers.png")
data_view = x_val[:1000]
progress = [[f"layer {k}", *row] for k, row in zip(
    layers, path_metrics.progression(shown, layers / L, data_view, standardizer))]
print(metrics.format_table(progress, ["after", "t", "in-band fraction",
                                      "distance to data (sliced Wasserstein)"]))
print(figures.outside_note(shown, xlim, ylim))

# %% [markdown]
# ## Q4: Sampling trajectories
# Ten points through the flow, layer by layer: the markers are coloured by the time $t$ =
# layer / number of layers, each path has its own line colour and its number at both ends
# (bold at the end, the circle). The ten latent points are spread evenly over the Gaussian
# (one per tenth of its mass) rather than drawn at random; flow matching's Q3 starts from
# the same ten.

# %%
z10 = torch.as_tensor(rings.spread_latents(10), dtype=torch.float32)
with torch.no_grad():
    _, path = model.forward(z10, return_intermediates=True)
times = np.arange(L + 1) / L
fig, ax = plt.subplots(figsize=(5.8, 3.0), layout="constrained")
plotting.bands(ax, standardizer)
plotting.trajectories(ax, path, times, numbered=True,
                      title="Q4: forward trajectories of 10 samples, z -> x")
plotting.time_colorbar(fig, ax, f"time t (layer / {L})")
plotting.finish(fig, out / "nf_q4_trajectories.png")
nf_shape = path_metrics.path_shape(path)
print(f"Medians over the 10 paths ({L} steps each): length / distance between the ends "
      f"{nf_shape['length_over_chord']:.2f} (1 = straight); largest single step "
      f"{nf_shape['largest_step_share']:.0%} of the path (1/{L} = {1 / L:.0%} if every "
      f"step moved as far).")

# %% [markdown]
# ## Q5: Probability estimation
# Five points: three in the middle of a band, away from the box's clipped edges and from the
# other rings (0: the blue ring's lower left, 1: the black ring's upper right, 2: the green
# ring's lower right), and two in no band (3: the centre of the black ring's hole, 4: a point
# beside the logo). Their inverse process $x \to z$ layer by layer, coloured by $t$ (1 at
# $x$, 0 at $z$), and $\log p(x)$ of each, with its two terms (Eq. 2).

# %%
probe = torch.as_tensor(standardizer.transform(rings.PROBE_POINTS), dtype=torch.float32)
with torch.no_grad():
    z_probe, back = model.inverse(probe, return_intermediates=True)
    log_det = model.inverse_and_log_det(probe)[1].numpy()
    log_p = model.log_prob(probe).numpy()
    reconstruction = (model.forward(z_probe) - probe).norm(dim=1).numpy()
log_pz = log_p - log_det
probe_rows = [[i, "inside" if inside else "outside", f"({r[0]:+.2f}, {r[1]:+.2f})",
               f"({x_[0]:+.2f}, {x_[1]:+.2f})", f"({z_[0]:+.2f}, {z_[1]:+.2f})", float(lz),
               float(ld), float(lp)]
              for i, (inside, r, x_, z_, lz, ld, lp) in enumerate(
                  zip(rings.PROBE_INSIDE, rings.PROBE_POINTS, probe.numpy(), z_probe.numpy(),
                      log_pz, log_det, log_p))]
print(metrics.format_table(probe_rows, ["point", "where", "raw (x, y)",
                                        "standardized (plotted)", "latent z", "log p_z(z)",
                                        "log det", "log p(x)"]))

# %%
fig = figures.paths_near_and_far(back, 1 - times, probe, standardizer,
                                  title="Q5: inverse trajectories x -> z",
                                  label="time t (1 at x, 0 at z)")
plotting.finish(fig, out / "nf_q5_trajectories.png")
print(figures.far_note(back[-1], "latent", figures.zoom_view(probe)))

# %%
xlim, ylim = plotting.view(probe, least=plotting.DATA_VIEW, margin=0.4)
with torch.no_grad():
    xs, ys, grid = metrics.log_prob_grid(model.log_prob, xlim, ylim, grid_resolution)
fig, ax = plt.subplots(figsize=(5.0, 2.9), layout="constrained")
image = plotting.density(ax, xs, ys, grid, vmin=max(grid.max() - 8, grid.min()),
                         title="Q5: log p(x) of the flow, and the five points")
plotting.bands(ax, standardizer, color="w")
fig.colorbar(image, ax=ax, label="log p(x)", shrink=0.9)
plotting.probes(ax, probe, [f"{v:.1f}" for v in log_p])
plotting.finish(fig, out / "nf_q5_density.png")

# %%
inside, outside = log_p[rings.PROBE_INSIDE], log_p[~rings.PROBE_INSIDE]
if inside.min() > outside.max():
    print(f"Every inside point is more likely than every outside point: the least likely "
          f"inside point ({inside.min():.2f}) beats the most likely outside one "
          f"({outside.max():.2f}) by {inside.min() - outside.max():.2f} nats, a density "
          f"ratio of {np.exp(inside.min() - outside.max()):.3g}.")
else:
    print(f"Not every inside point beats every outside one: the least likely inside point "
          f"({inside.min():.2f}) is below the most likely outside one ({outside.max():.2f}).")
print(f"For scale: a perfect model has log p = {-H:.2f} everywhere on the bands (uniform "
      f"density 1/area) and -infinity off them.")
far = int(np.argmin(log_p))
print(f"The least likely point, {far}, gets log p_z = {log_pz[far]:.1f} from its latent at "
      f"|z| = {np.linalg.norm(z_probe[far].numpy()):.1f} and log det = {log_det[far]:.1f}; "
      f"the inside points' latents lie at |z| = "
      f"{', '.join(f'{v:.2f}' for v in np.linalg.norm(z_probe.numpy()[:3], axis=1))}.")

# %% [markdown]
# **Why.** Training maximizes the likelihood of the data, and the data lies only on the
# bands; the density integrates to 1, so mass put on the bands is taken from everywhere
# else. The table shows the mechanism in its two terms: an inside point is mapped into the
# bulk of the Gaussian (small $\lVert z\rVert$, high $\log p_z$) by an inverse map that
# expands its neighbourhood (positive log-determinant: the thin band is stretched over much
# of the Gaussian), while an outside point either lands where the inverse map compresses
# space (negative log-determinant) or is thrown into the Gaussian's tail, where
# $\log p_z = -\lVert z\rVert^2/2 - \log 2\pi$ falls quadratically. A flow is a continuous
# bijection of the plane, so it cannot give exactly zero density between the rings: the
# heat map shows thin bridges of density where the map stretches the Gaussian between bands.

# %% [markdown] tags=["report-skip"]
# ## Results
# Held-out NLL against the data entropy, and the quality of 10,000 samples.

# %% tags=["report-skip"]
with torch.no_grad():
    samples = model.sample(n_eval, torch.Generator().manual_seed(seed + 100))
    nll = metrics.nll(model.log_prob, x_val)
result = metrics.quality(samples, x_val, standardizer, nll)
print(metrics.format_quality(result, "normalizing flow"))
write_json(out / "metrics.json", {
    "preset": preset, "config": dataclasses.asdict(config), **result,
    "train_seconds": history.train_seconds, "first_step_seconds": history.first_step_seconds,
    "compiled": history.compiled, "epochs": history.epochs, "path_shape": nf_shape,
    "progression": progress,
    "probe": {"standardized": probe, "log_p": log_p, "log_pz": log_pz, "log_det": log_det,
              "inside": rings.PROBE_INSIDE, "z": z_probe, "reconstruction_error": reconstruction},
    "standardizer": dataclasses.asdict(standardizer),
})
print(f"forward(inverse(x)) error on the five points: max {reconstruction.max():.2e}")
