"""Static matplotlib plots for the notebooks (matplotlib imported lazily). Each returns its Figure, closed in pyplot
and never shown here: a notebook cell shows it as its last expression (or with ``display(fig)``), a script saves it
with ``fig.savefig``."""

from __future__ import annotations

from bpnet_core.fileio import read_json
from bpnet_core.tables import format_table


def plot_sweep(rows: list[dict], metric: str = "AP"):
    """One panel per swept decoder parameter: ``metric`` against the parameter value."""
    import matplotlib.pyplot as plt

    params = list(dict.fromkeys(r["param"] for r in rows))
    fig, axes = plt.subplots(1, len(params), figsize=(4.5 * len(params), 3.2), squeeze=False)
    for ax, p in zip(axes[0], params):
        pts = [(r["value"], r[metric]) for r in rows if r["param"] == p]
        ax.plot([x for x, _ in pts], [y for _, y in pts], "o-")
        ax.set_xlabel(p)
        ax.set_ylabel(f"COCO keypoint {metric}")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)  # out of pyplot: shown once, by whoever displays the returned figure
    return fig


def plot_curves(series: dict[str, tuple[list, list]], xlabel: str, ylabel: str, logy: bool = False, title: str = ""):
    """Line plot of named (x, y) series, e.g. loss curves or a learning-rate schedule."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)  # out of pyplot: shown once, by whoever displays the returned figure
    return fig


def metrics_table(rows: dict[str, dict], keys: list[str]) -> str:
    """A fixed-width text table: one row per name, one column per key (floats to 3 decimals)."""
    cells = [[name, *(f"{m[k]:.3f}" if isinstance(m.get(k), float) else str(m.get(k, "")) for k in keys)]
             for name, m in rows.items()]  # fmt: skip
    return format_table(["", *keys], cells, style="text", widths=[22] + [9] * len(keys))


def plot_lr_schedule(lr_spec, steps_per_epoch: int, num_epoch: int):
    """The learning rate at every step of a training run, from the spec's ``learning_rate_schedule``."""
    import numpy as np

    from bpnet_core.train.schedules import schedule_from_spec

    sched = schedule_from_spec(lr_spec, steps_per_epoch, num_epoch)
    steps = np.arange(0, max(1, steps_per_epoch * num_epoch) + 1, max(1, steps_per_epoch * num_epoch // 200))
    lrs = [float(sched(int(s))) for s in steps]
    return plot_curves({"learning rate": (steps.tolist(), lrs)}, "step", "learning rate", logy=True,
                       title=type(sched).__name__)  # fmt: skip


def plot_history(status_file):
    """Training (and validation) loss per epoch from a training run's ``status.json``."""
    hist = read_json(status_file, "training status file").get("history", [])
    series = {"train loss": ([h["epoch"] for h in hist], [h["loss"] for h in hist])}
    val = [(h["epoch"], h["val_loss"]) for h in hist if h.get("val_loss") is not None]
    if val:
        series["validation loss"] = ([e for e, _ in val], [v for _, v in val])
    return plot_curves(series, "epoch", "loss (TAO: ½Σ masked squared error / batch + regularisation)")
