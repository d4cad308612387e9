"""The generic trainer: it learns, is reproducible, checkpoints atomically, stops on a
non-finite loss keeping the last good checkpoint, reuses a finished run, and refuses a
checkpoint of another architecture in one line."""

import dataclasses
import math
import pickle
import re

import pytest
import torch
from torch import nn

from flows_src.config import TrainingConfig
from flows_src.fingerprints import fingerprint
from flows_src.runs import CheckpointError, save_torch
from flows_src.training import (
    NonFiniteLossError,
    TrainingStep,
    load_checkpoint,
    train,
    train_or_load,
)


class Regression(nn.Module):
    """Least squares y ~ w x + b: a model with the trainer's ``loss`` protocol."""

    def __init__(self, width: int = 1, nan_after: int | None = None,
                 interrupt_after: int | None = None):
        super().__init__()
        self.linear = nn.Linear(width, 1)
        self.nan_after = nan_after
        self.interrupt_after = interrupt_after  # Ctrl-C arrives during that call
        self.calls = 0

    def loss(self, x, y):
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt
        loss = ((self.linear(x).squeeze(-1) - y) ** 2).mean()
        if self.nan_after is not None and self.calls > self.nan_after:
            loss = loss * float("nan")
        return loss, {}


def data(n=2048):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, generator=g)
    return x, 3.0 * x[:, 0] - 1.0 + 0.1 * torch.randn(n, generator=g)


CONFIG = TrainingConfig(n_points=2048, n_val=1, epochs=3, batch_size=32, lr=0.1, seed=0)


def fresh(**kw):
    torch.manual_seed(0)
    return Regression(**kw)


def test_training_lowers_the_loss_and_records_history():
    x, y = data()
    model = fresh()
    history = train(model, (x, y), CONFIG, progress=False,
                    validate=lambda m: {"loss": float(m.loss(x, y)[0])})
    assert len(history.batch_loss) == 3 * (2048 // 32)
    assert [e["epoch"] for e in history.epochs] == [0, 1, 2, 3]
    assert history.epochs[-1]["loss"] < 0.1 * history.epochs[0]["loss"]
    assert history.epochs[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine to zero
    assert model.linear.weight.item() == pytest.approx(3.0, abs=0.1)


def test_same_seed_same_weights_other_seed_other_weights():
    x, y = data()
    a, b, c = fresh(), fresh(), fresh()
    train(a, (x, y), CONFIG, progress=False)
    train(b, (x, y), CONFIG, progress=False)
    train(c, (x, y), dataclasses.replace(CONFIG, seed=1), progress=False)
    assert torch.equal(a.linear.weight, b.linear.weight)
    assert not torch.equal(a.linear.weight, c.linear.weight)


def test_checkpoint_round_trip_and_no_leftovers(tmp_path):
    x, y = data()
    path = tmp_path / "model.pt"
    model = fresh()
    history = train(model, (x, y), CONFIG, checkpoint=path, extra={"mean": [1.0, 2.0]},
                    progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    other = fresh()
    loaded, extra = load_checkpoint(other, path)
    assert torch.equal(other.linear.weight, model.linear.weight)
    assert loaded.batch_loss == history.batch_loss and extra == {"mean": [1.0, 2.0]}


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_good_checkpoints(tmp_path):
    x, y = data()
    path = tmp_path / "model.pt"
    train(fresh(), (x, y), CONFIG, checkpoint=path, progress=False)
    finished = path.read_bytes()
    steps = 2048 // 32
    model = fresh(nan_after=steps + 2)  # the third step of epoch 2
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 2, step 3; last good"):
        train(model, (x, y), dataclasses.replace(CONFIG, seed=5), checkpoint=path,
              progress=False)
    assert path.read_bytes() == finished  # the finished run is untouched
    partial = tmp_path / "model.in-progress.pt"
    history, _ = load_checkpoint(fresh(), partial)
    assert len(history.batch_loss) == steps and len(history.epochs) == 2


def test_train_or_load_reuses_a_finished_run_and_force_retrains(tmp_path):
    x, y = data()
    path = tmp_path / "model.pt"
    first = fresh()
    train_or_load(first, (x, y), CONFIG, checkpoint=path, progress=False)
    reused = fresh(nan_after=0)  # would fail at its first step if it trained
    train_or_load(reused, (x, y), CONFIG, checkpoint=path, progress=False)
    assert reused.calls == 0 and torch.equal(reused.linear.weight, first.linear.weight)
    with pytest.raises(NonFiniteLossError):
        train_or_load(reused, (x, y), CONFIG, checkpoint=path, force=True, progress=False)
    # another config means another model: trained, not reused
    other = fresh()
    train_or_load(other, (x, y), dataclasses.replace(CONFIG, epochs=1), checkpoint=path,
                  progress=False)
    assert other.calls == 2048 // 32


def test_fingerprint_ignores_compile_but_not_hyper_parameters():
    model = fresh()
    base = fingerprint(model, CONFIG)
    assert fingerprint(model, dataclasses.replace(CONFIG, compile=True)) == base
    assert fingerprint(model, dataclasses.replace(CONFIG, lr=0.01)) != base


def test_checkpoint_of_another_architecture_is_one_line(tmp_path):
    x, y = data()
    path = tmp_path / "model.pt"
    train(fresh(), (x, y), dataclasses.replace(CONFIG, epochs=1), checkpoint=path,
          progress=False)
    with pytest.raises(ValueError, match="another architecture") as error:
        load_checkpoint(Regression(width=2), path)
    assert "\n" not in str(error.value)


def test_batch_larger_than_data_is_a_clear_error():
    x, y = data(16)
    with pytest.raises(ValueError, match="batch_size must be <= the number of training"):
        train(fresh(), (x, y), CONFIG, progress=False)


@pytest.mark.parametrize("field, value", [("epochs", 0), ("n_points", -1), ("lr", 0.0),
                                          ("lr", True), ("batch_size", 2.5),
                                          ("batch_size", 4096), ("seed", -1),
                                          ("max_grad_norm", 0.0), ("max_grad_norm", True)])
def test_config_rejects_out_of_range_values(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        dataclasses.replace(CONFIG, **{field: value})


def test_training_step_leaves_the_weights_alone_on_a_non_finite_loss():
    x, y = data(64)
    model = fresh(nan_after=1)
    step = TrainingStep(model, CONFIG, total_steps=10)
    assert step(x, y) > 0
    weight = model.linear.weight.detach().clone()
    assert math.isnan(step(x, y))
    assert torch.equal(model.linear.weight, weight)
    assert step.schedule.last_epoch == 1


def test_max_grad_norm_caps_what_adam_sees_of_an_outlier_batch_and_nothing_else():
    x, y = data(64)
    outlier = y.clone()
    outlier[0] = 1e6  # one point far off: this batch's gradient norm is ~1e5
    config = dataclasses.replace(CONFIG, max_grad_norm=2.0)
    squares, clipped_counts = {}, {}
    for name, step_config in [("unclipped", CONFIG), ("clipped", config)]:
        step = TrainingStep(fresh(), step_config, total_steps=10)
        step(x, outlier)
        # after one step Adam's second moment is (1 - beta2) g^2, summed: (1 - beta2) |g|^2
        squares[name] = sum(float(s["exp_avg_sq"].sum()) for s in step.optimizer.state.values())
        clipped_counts[name] = step.clipped
    beta2 = 0.999
    assert squares["unclipped"] > (1 - beta2) * 1e8
    assert squares["clipped"] == pytest.approx((1 - beta2) * 2.0 ** 2, rel=1e-4)
    assert clipped_counts == {"unclipped": 0, "clipped": 1}
    # a batch whose gradient is within the bound steps exactly as without clipping
    plain, within = fresh(), fresh()
    TrainingStep(plain, CONFIG, total_steps=10)(x, y)
    step = TrainingStep(within, dataclasses.replace(CONFIG, max_grad_norm=1e9), total_steps=10)
    step(x, y)
    assert torch.equal(plain.linear.weight, within.linear.weight) and step.clipped == 0


class InfiniteGradient(Regression):
    """A finite loss (0) whose gradient is infinite: d sqrt(u) / du at u = 0."""

    def loss(self, x, y):
        weight = self.linear.weight
        return torch.sqrt(weight - weight.detach()).sum(), {}


def test_with_clipping_a_finite_loss_with_a_non_finite_gradient_is_skipped():
    x, y = data(64)
    model = InfiniteGradient()
    weight = model.linear.weight.detach().clone()
    step = TrainingStep(model, dataclasses.replace(CONFIG, max_grad_norm=1.0), total_steps=10)
    assert step(x, y) == 0.0
    assert torch.equal(model.linear.weight, weight)
    assert step.skipped == 1 and step.schedule.last_epoch == 0
    history = train(InfiniteGradient(), (x, y), dataclasses.replace(CONFIG, max_grad_norm=1.0),
                    progress=False)
    assert history.skipped_steps == 3 * (64 // 32) and history.clipped_steps == 0
    # unclipped, the same step writes NaN into the weights
    TrainingStep(model, CONFIG, total_steps=10)(x, y)
    assert model.linear.weight.isnan().all()


def test_a_failing_compiler_falls_back_to_eager(monkeypatch):
    def no_compiler(fn, **kwargs):
        def compiled(*args):
            raise RuntimeError("no C++ compiler")
        return compiled

    x, y = data()
    eager = fresh()
    train(eager, (x, y), CONFIG, progress=False)
    monkeypatch.setattr(torch, "compile", no_compiler)
    model = fresh()
    with pytest.warns(UserWarning, match=r"torch.compile failed \(RuntimeError\)"):
        history = train(model, (x, y), dataclasses.replace(CONFIG, compile=True),
                        progress=False)
    assert not history.compiled
    assert torch.equal(model.linear.weight, eager.linear.weight)


def test_ctrl_c_says_in_one_line_what_training_left(tmp_path):
    x, y = data()
    path = tmp_path / "model.pt"
    train(fresh(), (x, y), CONFIG, checkpoint=path, progress=False)
    finished = path.read_bytes()
    steps = 2048 // 32
    with pytest.raises(KeyboardInterrupt) as error:  # in epoch 2 of 3
        train(fresh(interrupt_after=steps + 5), (x, y), dataclasses.replace(CONFIG, seed=7),
              checkpoint=path, progress=False)
    partial = tmp_path / "model.in-progress.pt"
    assert str(error.value) == (f"training stopped in epoch 2 of 3: {path} is unchanged; "
                                f"epoch 1's state is in {partial}")
    assert path.read_bytes() == finished
    assert len(load_checkpoint(fresh(), partial)[0].epochs) == 2  # epochs 0 and 1
    with pytest.raises(KeyboardInterrupt, match="^training stopped in epoch 1 of 3: no "
                       "finished checkpoint was written$"):
        train(fresh(interrupt_after=3), (x, y), CONFIG, checkpoint=tmp_path / "new.pt",
              progress=False)


@pytest.mark.parametrize("content", [
    "truncated", "random bytes", "empty", "a plain pickle", "tensors, not a training run"])
def test_an_unreadable_checkpoint_is_one_line_naming_it_and_the_fix(content, tmp_path):
    path = tmp_path / "model.pt"
    train(fresh(), (*data(),), dataclasses.replace(CONFIG, epochs=1), checkpoint=path,
          progress=False)
    good = path.read_bytes()
    if content == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif content == "random bytes":
        path.write_bytes(torch.randint(0, 256, (3000,), dtype=torch.uint8,
                                       generator=torch.Generator().manual_seed(0)).numpy()
                         .tobytes())
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "a plain pickle":
        path.write_bytes(pickle.dumps({"model": "Regression"}))
    else:
        save_torch({"weight": torch.ones(3)}, path)
    for load in (lambda: load_checkpoint(fresh(), path),
                 lambda: train_or_load(fresh(), data(), CONFIG, checkpoint=path,
                                       progress=False)):
        with pytest.raises(CheckpointError, match=f"^checkpoint {re.escape(str(path))} ") as error:
            load()
        message = str(error.value)
        assert "\n" not in message and "-p force True" in message
        assert "weights_only" not in message  # never the unsafe way out
    # retraining with force replaces it
    train_or_load(fresh(), data(), CONFIG, checkpoint=path, force=True, progress=False)
    load_checkpoint(fresh(), path)
