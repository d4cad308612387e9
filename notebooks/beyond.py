# %% [markdown]
# # Beyond the exercise
#
# Two questions the exercise leaves open, asked of the unconditional flow-matching model that
# the flow_matching notebook trained with the same seed (it is loaded, not retrained).
# **Solvers**: the exercise samples with 1,000 Euler steps; how few velocity evaluations
# (NFE) do Euler, midpoint and RK4 need for the same samples? **Straighter paths**: minibatch
# optimal-transport coupling (OT-CFM, Tong et al. 2023) pairs noise with data so that the
# regression targets cross less; are its paths straighter, and does that let Euler take
# fewer steps? This notebook is not part of the hand-in report. The solvers are in
# `flows_src/ode.py`, the OT coupling in `flows_src/ot.py`.

# %% tags=["parameters"]
seed = 0
n_points = 250_000
n_val = 10_000
n_eval = 5000
n_nll = 1000
ot_epochs = 5
batch_size = 128
compile_model = False
force = False
runs_root = "runs"

# %%
import matplotlib.pyplot as plt
import torch

from create_data import create_unconditional_olympic_rings
from flows_src import metrics, plotting, rings
from flows_src.config import FMConfig
from flows_src.flow_matching import VelocityField
from flows_src.ode import METHODS, log_prob, nfe_sweep
from flows_src.runs import run_dir, run_file, write_json
from flows_src.training import load_checkpoint, train_or_load, validation

out = run_dir("beyond", seed, runs_root)
model = VelocityField(FMConfig())
fm_history, _ = load_checkpoint(model, run_file("flow_matching", seed, "model.pt", runs_root))
model.eval()
fm_epochs = fm_history.epochs[-1]["epoch"]

points, standardizer = create_unconditional_olympic_rings(
    n_points + n_val, verbose=False, seed=seed, return_standardizer=True)
x = torch.as_tensor(points, dtype=torch.float32)
x_train, x_val = x[:n_points], x[n_points:]
x_0 = torch.randn(n_eval, 2, generator=torch.Generator().manual_seed(seed + 200))

# %% [markdown]
# ## Solvers: quality per network evaluation
# One batch of noise, integrated by each solver with a budget of $5, 10, \dots, 1000$
# velocity evaluations per point: Euler makes one per step, midpoint two, RK4 four, so a
# budget buys $\lfloor \mathrm{NFE} / \mathrm{evaluations\ per\ step} \rfloor$ steps (a
# budget below one step is skipped, and the table shows the NFE actually spent). The yardstick
# is the in-band fraction of the exercise's sampler, Euler with 1,000 steps.

# %%
budgets = [5, 10, 20, 50, 100, 1000]
sweep = nfe_sweep(model.as_velocity(), x_0, budgets)
band = {key: metrics.in_band_fraction(sol.y, standardizer) for key, sol in sweep.items()}
reference = band["euler", 1000]
solver_rows = [[method, sol.nfe, sol.nfe // METHODS[method], band[method, budget],
                band[method, budget] - reference]
               for (method, budget), sol in sweep.items()]
print(metrics.format_table(solver_rows, ["solver", "NFE", "steps", "in-band fraction",
                                         "minus Euler-1000's"]))

fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
for method in METHODS:
    nfe = [sweep[key].nfe for key in sweep if key[0] == method]
    ax.plot(nfe, [band[key] for key in sweep if key[0] == method], "o-", label=method)
ax.axhline(reference, color="k", ls="--", lw=0.8, label="Euler-1000")
ax.axhspan(reference - 0.01, reference + 0.01, color="0.85", zorder=0, label="± 0.01")
ax.set(xscale="log", xlabel="network evaluations per point (NFE)", ylabel="in-band fraction",
       title=f"In-band fraction of {n_eval:,} samples from the same noise")
ax.legend(fontsize=8)
plotting.finish(fig, out / "beyond_solvers.png")

# %%
met = [(sol.nfe, method) for (method, budget), sol in sweep.items()
       if sol.nfe <= 50 and abs(band[method, budget] - reference) <= 0.01]
aim = {"reference": reference, "met": bool(met)}
if met:
    aim["nfe"], aim["solver"] = min(met)
    print(f"Aim met: {aim['solver']} with {aim['nfe']} NFE is within 0.01 of Euler-1000's "
          f"in-band fraction ({reference:.4f}).")
else:
    print(f"Aim not met: no solver is within 0.01 of Euler-1000's in-band fraction "
          f"({reference:.4f}) at 50 NFE or fewer.")

# %% [markdown]
# The held-out NLL (the change-of-variables likelihood of `flows_src.ode.log_prob`, integrated
# backward with the exact divergence) of the same held-out points with each solver at a few
# step sizes; RK4 with $\Delta t = 0.01$ is the reference.

# %%
x_nll = x_val[:n_nll]
nll_rows = []
for method in METHODS:
    for dt in (0.1, 0.05, 0.02, 0.01):
        log_p, nfe = log_prob(model.as_velocity(), x_nll, dt=dt, method=method, return_nfe=True)
        nll_rows.append([method, dt, nfe, float(-log_p.double().mean())])
nll_reference = next(r[3] for r in nll_rows if r[0] == "rk4" and r[1] == 0.01)
for row in nll_rows:
    row.append(row[3] - nll_reference)
print(metrics.format_table(nll_rows, ["solver", "dt", "NFE", f"NLL of {len(x_nll):,} points",
                                      "minus RK4 dt=0.01"]))

# %% [markdown]
# ## Straighter paths (OT-CFM)
# The same network, data and optimiser, trained with noise paired to each batch by minibatch
# optimal transport (`FMConfig(coupling="ot")`). Its paths are compared with the loaded
# model's: ten trajectories from the same ten latents, the path-length ratio (1 = straight)
# and the straightness $S$ of Liu et al. (0 = straight at constant speed) of 1,000 paths
# from the same noise, and the Euler in-band curve of both.

# %%
ot_config = FMConfig(n_points=n_points, n_val=n_val, epochs=ot_epochs, batch_size=batch_size,
                     seed=seed, compile=compile_model, coupling="ot")
torch.manual_seed(seed)
ot_model = VelocityField(ot_config)
ot_history = train_or_load(ot_model, (x_train,), ot_config, checkpoint=out / "ot_model.pt",
                           force=force, validate=validation(x_val))
ot_model.eval()
models = {"independent coupling": model, "OT coupling": ot_model}
print(f"The OT model trained for {ot_epochs} epoch(s) ({ot_history.train_seconds:.0f} s); "
      f"the independent-coupling model for {fm_epochs}.")

# %%
latents = torch.as_tensor(rings.spread_latents(10), dtype=torch.float32)
fig, axes = plotting.panels(2, size=3.6)
straight = {}
for ax, (name, m) in zip(axes, models.items()):
    path = m.sample_from(latents, return_intermediates=True)
    plotting.bands(ax, standardizer)
    plotting.trajectories(ax, path.states[::10], path.times[::10], title=name)
    paths = m.sample_from(x_0[:1000], return_intermediates=True)
    straight[name] = {"path_length_ratio": metrics.path_length_ratio(paths.states),
                      "straightness": metrics.straightness(paths.states, paths.times)}
plotting.time_colorbar(fig, axes)
fig.suptitle("Trajectories of the same 10 latents (circles: final points)")
plotting.finish(fig, out / "beyond_ot_trajectories.png")

euler = {name: nfe_sweep(m.as_velocity(), x_0, budgets, ["euler"]) for name, m in models.items()}
ot_band = {name: [metrics.in_band_fraction(sol.y, standardizer) for sol in sweep_.values()]
           for name, sweep_ in euler.items()}
print(metrics.format_table(
    [[name, s["path_length_ratio"], s["straightness"], *ot_band[name]]
     for name, s in straight.items()],
    ["model", "length / chord", "straightness S", *(f"Euler {b}" for b in budgets)]))

# %%
fig, ax = plt.subplots(figsize=(7, 3.4), layout="constrained")
for name, values in ot_band.items():
    ax.plot(budgets, values, "o-", label=name)
ax.set(xscale="log", xlabel="Euler steps (NFE)", ylabel="in-band fraction",
       title="Euler sampling: independent vs OT coupling")
ax.legend(fontsize=8)
plotting.finish(fig, out / "beyond_ot_euler.png")
write_json(out / "metrics.json", {
    "reference_in_band": reference, "aim": aim,
    "solvers": [dict(zip(["solver", "nfe", "steps", "in_band", "minus_reference"], r))
                for r in solver_rows],
    "nll": [dict(zip(["solver", "dt", "nfe", "nll", "minus_reference"], r)) for r in nll_rows],
    "ot": {"epochs": ot_epochs, "independent_epochs": fm_epochs,
           "train_seconds": ot_history.train_seconds, "budgets": budgets,
           "paths": straight, "euler_in_band": ot_band},
})
print(f"figures and metrics in {out}")

# %% [markdown]
# **Reading the comparison.** A straight path at constant speed is integrated exactly by one
# Euler step, so the closer the length ratio is to 1 and $S$ to 0, the less a coarse Euler
# grid loses. The two models need not be trained equally long (their epochs are printed
# above): when the OT model had fewer, a lower in-band fraction at 1,000 steps says more about
# its training than about the coupling, while its paths' shape is what the coupling changes.

# %% [markdown]
# ## Not here yet
# This notebook compares one seed's models with point estimates: there are no error bars
# (the spread over seeds comes from `make sweep`, not from here), the OT model is trained for
# `ot_epochs` epochs rather than as long as the exercise's model, and there are no stronger
# presets (wider networks, longer training) to ask whether a better-trained field changes
# which solver wins. The numbers above answer "for these
# models", not "in general".
