"""The plotting functions return a matplotlib Figure made outside pyplot and never show it."""

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402


@pytest.fixture(autouse=True)
def _no_show(monkeypatch):
    import matplotlib.pyplot as plt

    def refuse(*_, **__):
        raise AssertionError("a library function called plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    assert not plt.get_fignums(), "a library function left a pyplot figure open"


def test_viz_plots_return_figures(tmp_path):
    from bpnet_core.viz.plots import plot_curves, plot_history, plot_sweep

    rows = [{"param": p, "value": v, "AP": v / 2} for p in ("heatmap_threshold", "paf_threshold") for v in (0.1, 0.2)]
    assert isinstance(plot_sweep(rows), Figure)
    assert isinstance(plot_curves({"a": ([0, 1], [1, 2]), "b": ([0, 1], [2, 3])}, "x", "y", logy=True), Figure)
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"history": [{"epoch": 1, "loss": 2.0, "val_loss": 2.5}, {"epoch": 2, "loss": 1.0}]}))
    fig = plot_history(status)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2


def test_show_returns_the_figure():
    from bpnet_core.viz.draw import show

    fig = show(np.zeros((16, 32, 3), np.uint8), title="t")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "t"


def test_prune_plots_return_figures(keras_model):
    from bpnet_core.prune import plot_filter_scores, plot_prune_sweep

    rows = [{"pruning_threshold": t, "params": 1e6 / (1 + t), "flops": 2e9 / (1 + t), "latency_ms": 3.0, "AP": 0.4}
            for t in (0.1, 0.3)]  # fmt: skip
    fig = plot_prune_sweep(rows, baseline={"params": 1e6, "flops": 2e9, "latency_ms": 3.0, "AP": 0.45})
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert isinstance(plot_filter_scores(keras_model, "max", [0.1, 0.5]), Figure)
