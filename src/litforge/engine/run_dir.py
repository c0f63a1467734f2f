"""Where a run's outputs live: ``<root>/<experiment>/<run>/``.

``root`` is ``runs/`` (or ``--trainer.default_root_dir``), ``experiment`` defaults to the model's class
name in lower case and ``run`` to the next free ``version_N``. A fixed ``--run NAME`` finds a run again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "runs"
_VERSION = re.compile(r"^version_(\d+)$")


@dataclass(frozen=True)
class RunDir:
    """A run folder and the well-known files in it."""

    root: Path
    experiment: str
    run: str

    @property
    def path(self) -> Path:
        return self.root / self.experiment / self.run

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    def checkpoint(self, alias: str) -> Path:
        """``best`` or ``last`` -> the file the checkpoint callback writes for it."""
        return self.checkpoints / f"{alias}.ckpt"


def experiment_name(class_path: str | None) -> str:
    """``litforge.models.Classifier`` -> ``classifier``."""
    return (class_path or "model").rsplit(".", 1)[-1].lower()


def existing_runs(root: Path, experiment: str) -> list[str]:
    """Run names under ``root/experiment``, oldest first (version_N by N, then others by mtime)."""
    folder = root / experiment
    if not folder.is_dir():
        return []
    runs = [p for p in folder.iterdir() if p.is_dir()]
    return [p.name for p in sorted(runs, key=lambda p: (_version_number(p.name), p.stat().st_mtime))]


def next_free_run(root: Path, experiment: str) -> str:
    """The next ``version_N`` not yet taken in ``root/experiment``."""
    taken = [n for n in map(_version_number, existing_runs(root, experiment)) if n >= 0]
    return f"version_{max(taken, default=-1) + 1}"


def _version_number(name: str) -> int:
    match = _VERSION.match(name)
    return int(match.group(1)) if match else -1
