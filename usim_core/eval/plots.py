"""PNG pictures beside the eval JSON (matplotlib, Agg backend): space-time fields and error against time."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fields_png(path: Path, true: np.ndarray, pred: np.ndarray, label: str, dt: float, count: int = 3) -> Path:
    """true/pred (B, T, nx) including the initial state; rows: true, predicted, |error| for a few trajectories."""
    plt = _plt()
    count = min(count, true.shape[0])
    fig, axes = plt.subplots(count, 3, figsize=(11, 2.6 * count), squeeze=False)
    extent = (0.0, 1.0, 0.0, dt * (true.shape[1] - 1))
    for i in range(count):
        lim = float(np.abs(true[i]).max()) or 1.0
        for j, (title, img, cmap, vmin) in enumerate((
            ("true", true[i], "RdBu_r", -lim), (label, pred[i], "RdBu_r", -lim),
            ("|error|", np.abs(pred[i] - true[i]), "magma", 0.0),
        )):
            ax = axes[i][j]
            im = ax.imshow(img, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=vmin,
                           vmax=lim if j < 2 else None)
            ax.set_title(f"trajectory {i}: {title}", fontsize=9)
            ax.set_xlabel("x")
            ax.set_ylabel("t")
            fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def error_png(path: Path, curves: dict[str, list[float | None]], dt: float) -> Path:
    """Mean per-frame nRMSE against time, one line per mode and baseline."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        y = np.array([np.nan if v is None else v for v in curve], dtype=float)
        ax.plot(dt * np.arange(1, len(y) + 1), y, label=name, lw=1.5, ls="--" if name in ("persistence", "fno") else "-")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("nRMSE (per frame)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
