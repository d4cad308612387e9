"""The plots of how training went draw what their arguments say."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from flows_src import training_plots  # noqa: E402

EPOCHS = [{"epoch": e, "loss": 3.0 / (e + 1), "log_det": 0.5 * e} for e in range(4)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_epoch_curves_draw_one_line_per_series_and_the_floor():
    ax = training_plots.epoch_curves(plt.subplots()[1], EPOCHS,
                                     {"loss": "loss", "log_det": "log-det"}, floor=0.2)
    loss, log_det, floor = ax.get_lines()
    assert list(loss.get_xdata()) == [0, 1, 2, 3]
    assert list(log_det.get_ydata()) == [0.0, 0.5, 1.0, 1.5]
    assert list(floor.get_ydata()) == [0.2, 0.2]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "loss", "log-det", "data entropy $H$"]


def test_loss_per_epoch_leaves_out_the_untrained_model():
    ax = training_plots.loss_per_epoch(plt.subplots()[1], {"a": EPOCHS, "b": EPOCHS[:2]})
    a, b = ax.get_lines()
    assert list(a.get_xdata()) == [1, 2, 3] and list(b.get_xdata()) == [1]
    assert ax.get_ylabel() == "held-out loss"


def test_batch_losses_average_over_the_window_and_mark_the_epochs():
    losses = np.arange(10, dtype=float)
    ax = training_plots.batch_losses(plt.subplots()[1], losses, window=4, steps_per_epoch=3)
    raw, smooth, *epochs = ax.get_lines()
    assert list(raw.get_ydata()) == list(losses)
    assert list(smooth.get_xdata()) == [3, 4, 5, 6, 7, 8, 9]
    assert list(smooth.get_ydata()) == pytest.approx([1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5])
    assert [line.get_xdata()[0] for line in epochs] == [3, 6, 9]


def test_study_front_joins_the_best_trade_offs_in_order_of_time():
    rows = [{"train_seconds": 30, "shortfall": 0.1, "pareto": True},
            {"train_seconds": 20, "shortfall": 0.5, "pareto": False},
            {"train_seconds": 10, "shortfall": 0.4, "pareto": True}]
    ax = training_plots.study_front(plt.subplots()[1], rows)
    (front,) = ax.get_lines()
    assert list(front.get_xdata()) == [10, 30] and list(front.get_ydata()) == [0.4, 0.1]
    assert ax.collections[0].get_offsets().tolist() == [[20, 0.5]]
