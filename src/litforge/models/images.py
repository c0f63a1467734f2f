"""Save a batch of small grey images as one PNG grid in the run folder (GAN samples, reconstructions)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from litforge.atomic_files import atomic_path


def save_image_grid(images: torch.Tensor, path: Path, columns: int | None = None, scale: int = 4) -> Path:
    """Write ``images`` (N, H, W) with values in [0, 1] as a grid PNG at ``path`` (atomically).

    Args:
        images: grey images, values clipped to [0, 1].
        path: the PNG to write; parent folders are created.
        columns: images per row (default: a square-ish grid).
        scale: nearest-neighbour upscaling so 8x8 digits are visible.
    """
    import matplotlib.image

    array = images.detach().float().clamp(0, 1).cpu().numpy()
    n, height, width = array.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    pad = 1
    grid = np.ones((rows * (height + pad) + pad, columns * (width + pad) + pad), dtype=np.float32)
    for i, image in enumerate(array):
        top, left = pad + (i // columns) * (height + pad), pad + (i % columns) * (width + pad)
        grid[top : top + height, left : left + width] = image
    grid = np.kron(grid, np.ones((scale, scale), dtype=np.float32))
    with atomic_path(path) as tmp:
        matplotlib.image.imsave(tmp, grid, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return path


def image_side(num_features: int) -> int:
    """Side of a square single-channel image with ``num_features`` pixels (ValueError otherwise)."""
    side = math.isqrt(num_features)
    if side * side != num_features:
        raise ValueError(f"{num_features} features is not a square single-channel image")
    return side


def epoch_image_path(trainer: object, folder: str) -> Path | None:
    """``<run folder>/<folder>/epoch_NNN.png`` for the trainer's current epoch, or None when the run has
    no folder (``fast_dev_run``, no logger) or this is not rank zero."""
    # Without a logger, Lightning's log_dir is the working directory: no images there.
    log_dir = getattr(trainer, "log_dir", None) if getattr(trainer, "loggers", None) else None
    if log_dir is None or not getattr(trainer, "is_global_zero", True):
        return None
    return Path(log_dir) / folder / f"epoch_{trainer.current_epoch:03d}.png"  # type: ignore[attr-defined]
