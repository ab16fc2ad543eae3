"""Figures (matplotlib, Agg backend; imported only by the commands that draw)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from artefix.atomic import atomic_file
from artefix.fft import fft2c


def _figure_module():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def log_kspace(image: np.ndarray) -> np.ndarray:
    """log(1 + |k|) of a slice's centred k-space, for display."""
    return np.log1p(np.abs(fft2c(np.asarray(image, dtype=np.float64))))


def simulation_preview(clean: np.ndarray, corrupted: np.ndarray, path: Path, title: str = "") -> Path:
    """Save a 5-panel PNG: clean, corrupted, difference, log|k| clean, log|k| corrupted.

    Args:
        clean: Clean slice (H, W).
        corrupted: Corrupted slice (H, W).
        path: PNG path (written atomically).
        title: Figure title.

    Returns:
        ``path``.
    """
    plt = _figure_module()
    diff = corrupted - clean
    lo, hi = np.percentile(clean, [0.5, 99.5])
    d = float(np.percentile(np.abs(diff), 99.5)) or 1.0
    k_clean, k_corr = log_kspace(clean), log_kspace(corrupted)
    k_hi = float(k_clean.max())
    panels = [
        ("clean", clean, "gray", lo, hi),
        ("corrupted", corrupted, "gray", lo, hi),
        ("corrupted - clean", diff, "RdBu_r", -d, d),
        ("log |k| clean", k_clean, "magma", 0.0, k_hi),
        ("log |k| corrupted", k_corr, "magma", 0.0, k_hi),
    ]
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.8), constrained_layout=True)
    for ax, (name, img, cmap, vmin, vmax) in zip(axes, panels, strict=True):
        im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(name)
        ax.axis("off")
        if name.startswith("corrupted -"):
            fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    with atomic_file(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)
